//! File steps, confined to the work folder: `create_file`, `edit_file`, `delete_file`,
//! `copy_file`, `move_file`, `read_file`, `list_directory`, `file_search`, `compress`.
//!
//! RustChain opens whatever path a mission names. Here every path is relative to the work
//! folder and cannot leave it:
//!
//! 1. *Lexically*, a path with a `..` component is refused, and an absolute path is accepted
//!    only when it lies inside the work folder (it is made relative to it).
//! 2. *On disk*, every file operation goes through a [`cap_std::fs::Dir`] handle opened on
//!    the work folder. cap-std resolves each path component relative to that open
//!    directory (with `openat2(RESOLVE_BENEATH)` where the kernel has it, else one
//!    `openat(O_NOFOLLOW)` per component), so a symlink that points outside the folder is
//!    refused at the moment of use. There is no check-then-use gap for a process racing
//!    the step to swap a folder for a symlink: the check *is* the open.
//!
//! Symlinks that stay inside the work folder work as usual. Paths handed to processes
//! (the folder a command runs in) are resolved through the same handle first and passed as
//! the resolved real path; a process that swaps a component for a symlink between that
//! resolution and its own start could still redirect it, which is why the sandbox, not
//! this check, is what keeps processes inside.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde_json::{json, Value};

use super::{opt_str, str_param, StepCall, StepContext, StepError, StepOutput};
use mission_index::mission::StepType;

/// The largest file `read_file` (and the loaders) read, in bytes.
pub const MAX_READ_BYTES: u64 = 16 << 20;

/// The work folder: the only place file steps touch.
#[derive(Debug)]
pub struct WorkFolder {
    /// Canonical path.
    root: PathBuf,
    /// The path as given (absolute), for recognising absolute paths inside it.
    given: PathBuf,
    dir: Dir,
}

impl WorkFolder {
    /// Opens `path` (which must be an existing folder) as the work folder.
    pub fn open(path: &Path) -> std::io::Result<WorkFolder> {
        let given = std::path::absolute(path)?;
        let root = std::fs::canonicalize(path)?;
        let dir = Dir::open_ambient_dir(&root, ambient_authority())?;
        Ok(WorkFolder { root, given, dir })
    }

    /// The canonical path of the work folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The open folder handle; every operation through it stays inside.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// `path` relative to the work folder, or why it is refused (see the module docs).
    pub fn relative(&self, path: &str) -> Result<PathBuf, StepError> {
        let refuse = |reason: &str| StepError::Path {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if path.is_empty() {
            return Err(refuse("the path is empty"));
        }
        let p = Path::new(path);
        let inside = if p.is_absolute() {
            p.strip_prefix(&self.root)
                .or_else(|_| p.strip_prefix(&self.given))
                .map_err(|_| refuse("an absolute path outside the work folder"))?
        } else {
            p
        };
        let mut rel = PathBuf::new();
        for component in inside.components() {
            match component {
                Component::Normal(c) => rel.push(c),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(refuse(
                        "`..` is not allowed: paths stay inside the work folder",
                    ))
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(refuse("an absolute path outside the work folder"))
                }
            }
        }
        if rel.as_os_str().is_empty() {
            rel.push(".");
        }
        Ok(rel)
    }

    /// The real (canonical) path of a folder inside the work folder, for a process to run
    /// in. Refused when it resolves outside or is not a folder.
    pub fn real_dir(&self, path: &str) -> Result<PathBuf, StepError> {
        let rel = self.relative(path)?;
        let resolved = self.dir.canonicalize(&rel).map_err(|e| io_error(path, e))?;
        let real = self.root.join(resolved);
        if !real.is_dir() {
            return Err(StepError::Path {
                path: path.to_owned(),
                reason: "is not a folder".into(),
            });
        }
        Ok(real)
    }

    /// Opens `rel` for reading or writing, refusing anything but a regular file. Opened
    /// non-blocking, so a FIFO a sandboxed step planted cannot hang the engine's thread
    /// (opening one blocks until the other end opens); then checked on the open descriptor.
    pub fn open_regular(
        &self,
        rel: &Path,
        options: &mut cap_std::fs::OpenOptions,
        shown: &str,
    ) -> Result<std::fs::File, StepError> {
        use cap_std::fs::OpenOptionsExt;
        let file = self
            .dir
            .open_with(rel, options.custom_flags(libc::O_NONBLOCK))
            .map_err(|e| io_error(shown, e))?
            .into_std();
        let meta = file.metadata().map_err(|e| io_error(shown, e))?;
        if !meta.is_file() {
            return Err(StepError::Path {
                path: shown.to_owned(),
                reason: "is not a regular file".into(),
            });
        }
        // Back to blocking reads and writes (a regular file never blocks anyway), keeping
        // the other flags (O_APPEND above all).
        let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| io_error(shown, e.into()))?;
        rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)
            .map_err(|e| io_error(shown, e.into()))?;
        Ok(file)
    }

    /// Reads a whole file (at most [`MAX_READ_BYTES`]) as UTF-8 text.
    pub fn read_text(&self, path: &str) -> Result<String, StepError> {
        let rel = self.relative(path)?;
        let file = self.open_regular(&rel, cap_std::fs::OpenOptions::new().read(true), path)?;
        let mut bytes = Vec::new();
        file.take(MAX_READ_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(path, e))?;
        if bytes.len() as u64 > MAX_READ_BYTES {
            return Err(StepError::Path {
                path: path.into(),
                reason: format!("is larger than the limit of {MAX_READ_BYTES} bytes"),
            });
        }
        String::from_utf8(bytes).map_err(|_| StepError::Path {
            path: path.into(),
            reason: "is not UTF-8 text".into(),
        })
    }

    /// Writes `content` to `path`, creating its parent folders.
    pub fn write(&self, path: &str, content: &[u8]) -> Result<(), StepError> {
        let rel = self.relative(path)?;
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.dir
                .create_dir_all(parent)
                .map_err(|e| io_error(path, e))?;
        }
        let mut file = self.open_regular(&rel, &mut replace_options(), path)?;
        file.write_all(content).map_err(|e| io_error(path, e))
    }

    /// The entries of a folder: `{name, path, is_dir, size}`, sorted by name.
    pub fn list(&self, path: &str) -> Result<Vec<Value>, StepError> {
        let rel = self.relative(path)?;
        let mut entries = Vec::new();
        for entry in self.dir.read_dir(&rel).map_err(|e| io_error(path, e))? {
            let entry = entry.map_err(|e| io_error(path, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // No following: a symlink is listed as what it is.
            let meta = entry.metadata().map_err(|e| io_error(path, e))?;
            let entry_path = if rel == Path::new(".") {
                PathBuf::from(&name)
            } else {
                rel.join(&name)
            };
            entries.push(json!({
                "name": name,
                "path": entry_path.to_string_lossy(),
                "is_dir": meta.is_dir(),
                "size": meta.len(),
            }));
        }
        entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        Ok(entries)
    }
}

/// Open options that create a file or replace what it held.
fn replace_options() -> cap_std::fs::OpenOptions {
    let mut options = cap_std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    options
}

pub(crate) fn io_error(path: &str, source: std::io::Error) -> StepError {
    StepError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The step types [`execute`] runs.
pub(crate) fn handles(step_type: StepType) -> bool {
    use StepType as T;
    matches!(
        step_type,
        T::CreateFile
            | T::EditFile
            | T::DeleteFile
            | T::CopyFile
            | T::MoveFile
            | T::ReadFile
            | T::ListDirectory
            | T::FileSearch
            | T::Compress
    )
}

pub(crate) fn execute(ctx: &StepContext, call: &StepCall<'_>) -> Result<StepOutput, StepError> {
    let p = call.params;
    let folder = &ctx.folder;
    match call.step_type {
        StepType::CreateFile => {
            let path = str_param(p, "path")?;
            let content = opt_str(p, "content").unwrap_or("");
            let processed = match ctx.variables.lock() {
                Ok(vars) => super::substitute_variables(content, &vars),
                Err(poisoned) => super::substitute_variables(content, &poisoned.into_inner()),
            };
            folder.write(path, processed.as_bytes())?;
            Ok(StepOutput::ok(json!({
                "path": path,
                "size": processed.len(),
                "created": true,
                "variables_substituted": processed != content,
            })))
        }
        StepType::EditFile => {
            let path = str_param(p, "path")?;
            let content = opt_str(p, "content");
            let append = p.get("append").and_then(Value::as_bool).unwrap_or(false);
            let rel = folder.relative(path)?;
            match (content, append) {
                (Some(content), true) => {
                    // RustChain reads the old text (empty when there is none) and appends.
                    let mut file = folder.open_regular(
                        &rel,
                        cap_std::fs::OpenOptions::new().append(true).create(true),
                        path,
                    )?;
                    file.write_all(content.as_bytes())
                        .map_err(|e| io_error(path, e))?;
                }
                (Some(content), false) => folder.write(path, content.as_bytes())?,
                (None, _) => {}
            }
            let size = folder
                .dir()
                .metadata(&rel)
                .map_err(|e| io_error(path, e))?
                .len();
            Ok(StepOutput::ok(
                json!({"path": path, "size": size, "modified": true}),
            ))
        }
        StepType::DeleteFile => {
            let path = str_param(p, "path")?;
            let rel = folder.relative(path)?;
            let existed = match folder.dir().symlink_metadata(&rel) {
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                // Among others, a path through a symlink that leads outside.
                Err(e) => return Err(io_error(path, e)),
            };
            if existed {
                folder
                    .dir()
                    .remove_file(&rel)
                    .map_err(|e| io_error(path, e))?;
            }
            Ok(StepOutput::ok(
                json!({"path": path, "existed": existed, "deleted": existed}),
            ))
        }
        StepType::CopyFile => {
            let source = str_param(p, "source")?;
            let destination = str_param(p, "destination")?;
            let (from, to) = (folder.relative(source)?, folder.relative(destination)?);
            let mut input =
                folder.open_regular(&from, cap_std::fs::OpenOptions::new().read(true), source)?;
            let mut output = folder.open_regular(&to, &mut replace_options(), destination)?;
            let size =
                std::io::copy(&mut input, &mut output).map_err(|e| io_error(destination, e))?;
            // As std::fs::copy (RustChain's): the copy keeps the permission bits.
            if let Ok(meta) = input.metadata() {
                output
                    .set_permissions(meta.permissions())
                    .map_err(|e| io_error(destination, e))?;
            }
            Ok(StepOutput::ok(
                json!({"source": source, "destination": destination, "size": size}),
            ))
        }
        StepType::MoveFile => {
            let source = str_param(p, "source")?;
            let destination = str_param(p, "destination")?;
            let (from, to) = (folder.relative(source)?, folder.relative(destination)?);
            folder
                .dir()
                .rename(&from, folder.dir(), &to)
                .map_err(|e| io_error(source, e))?;
            Ok(StepOutput::ok(
                json!({"source": source, "destination": destination, "moved": true}),
            ))
        }
        StepType::ReadFile => {
            let path = str_param(p, "path")?;
            let content = folder.read_text(path)?;
            let size = content.len();
            Ok(StepOutput::ok(
                json!({"path": path, "content": content, "size": size}),
            ))
        }
        StepType::ListDirectory => {
            let path = str_param(p, "path")?;
            let entries = folder.list(path)?;
            let count = entries.len();
            Ok(StepOutput::ok(
                json!({"path": path, "entries": entries, "count": count}),
            ))
        }
        StepType::FileSearch => {
            let path = str_param(p, "path")?;
            let pattern = str_param(p, "pattern")?;
            let results = search(folder, path, pattern)?;
            let matches = results.len();
            Ok(StepOutput::ok(
                json!({"pattern": pattern, "results": results, "matches": matches}),
            ))
        }
        StepType::Compress => compress(folder, p),
        other => Ok(super::unsupported(other)),
    }
}

/// RustChain's `file_search`: the entries of one folder (not recursive) whose name
/// contains `pattern`.
pub(crate) fn search(
    folder: &WorkFolder,
    path: &str,
    pattern: &str,
) -> Result<Vec<Value>, StepError> {
    Ok(folder
        .list(path)?
        .into_iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.contains(pattern)))
        .map(|e| json!({"name": e["name"], "path": e["path"]}))
        .collect())
}

/// `compress`: `source` (a folder or a file) into `destination` as `tar` (RustChain's
/// default), `tar.gz`/`tgz` or `zip`. Symlinks are left out, never followed, so an archive
/// holds only what is in the work folder.
fn compress(folder: &WorkFolder, p: &Value) -> Result<StepOutput, StepError> {
    let source = str_param(p, "source")?;
    let destination = str_param(p, "destination")?;
    let format = opt_str(p, "format").unwrap_or("tar");
    if !matches!(format, "tar" | "tar.gz" | "tgz" | "zip") {
        return Err(StepError::BadParameter {
            name: "format",
            reason: format!("unsupported compression format `{format}` (tar, tar.gz, zip)"),
        });
    }
    // Both relative to the work folder, resolved through its handle: the walk never uses
    // host paths, which the sandbox user may not be able to pass through.
    let source_rel = folder
        .dir()
        .canonicalize(folder.relative(source)?)
        .map_err(|e| io_error(source, e))?;
    let dest_rel = folder.relative(destination)?;
    if let Some(parent) = dest_rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        folder
            .dir()
            .create_dir_all(parent)
            .map_err(|e| io_error(destination, e))?;
    }
    let out = folder.open_regular(&dest_rel, &mut replace_options(), destination)?;
    let dest_rel = folder
        .dir()
        .canonicalize(&dest_rel)
        .map_err(|e| io_error(destination, e))?;
    let written = match format {
        "zip" => write_zip(folder, out, &source_rel, &dest_rel),
        "tar" => write_tar(folder, out, &source_rel, &dest_rel),
        _ => {
            let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            write_tar(folder, gz, &source_rel, &dest_rel)
        }
    };
    let files = match written {
        Ok(files) => files,
        Err(e) => {
            // No half-written archive left behind.
            let _ = folder.dir().remove_file(&dest_rel);
            return Err(e);
        }
    };
    Ok(StepOutput::ok(json!({
        "source": source,
        "destination": destination,
        "format": format,
        "compressed": true,
        "files": files,
    })))
}

/// One entry of the tree being archived: its path relative to the work folder.
struct Walked {
    rel: PathBuf,
    is_dir: bool,
    is_file: bool,
}

/// Everything under `source` (relative to the work folder; empty for the folder itself),
/// through the folder handle, not following links, sorted by name, leaving out `skip` (the
/// archive being written).
fn walk(folder: &WorkFolder, source: &Path, skip: &Path) -> Result<Vec<Walked>, StepError> {
    const MAX_DEPTH: usize = 256;
    let shown = |p: &Path| p.to_string_lossy().into_owned();
    let here = |p: &Path| {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p.to_path_buf()
        }
    };
    let meta = folder
        .dir()
        .symlink_metadata(here(source))
        .map_err(|e| io_error(&shown(source), e))?;
    let mut out = vec![Walked {
        rel: source.to_path_buf(),
        is_dir: meta.is_dir(),
        is_file: meta.is_file(),
    }];
    let mut pending = if meta.is_dir() {
        vec![(source.to_path_buf(), 0)]
    } else {
        vec![]
    };
    while let Some((dir, depth)) = pending.pop() {
        if depth >= MAX_DEPTH {
            return Err(StepError::Failed(format!(
                "{} is nested more than {MAX_DEPTH} folders deep",
                shown(&dir)
            )));
        }
        let mut children = Vec::new();
        for entry in folder
            .dir()
            .read_dir(here(&dir))
            .map_err(|e| io_error(&shown(&dir), e))?
        {
            let entry = entry.map_err(|e| io_error(&shown(&dir), e))?;
            let kind = entry.file_type().map_err(|e| io_error(&shown(&dir), e))?;
            let rel = dir.join(entry.file_name());
            if rel != skip {
                children.push(Walked {
                    rel,
                    is_dir: kind.is_dir(),
                    is_file: kind.is_file(),
                });
            }
        }
        for child in children {
            if child.is_dir {
                pending.push((child.rel.clone(), depth + 1));
            }
            out.push(child);
        }
    }
    // Path order compares component by component: each folder comes before its contents.
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// The name inside the archive: relative to `source`, or the file's own name when `source`
/// is a file.
fn archive_name(source: &Path, path: &Path) -> PathBuf {
    if path == source {
        path.file_name().map(PathBuf::from).unwrap_or_default()
    } else {
        path.strip_prefix(source)
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

fn write_tar<W: Write>(
    folder: &WorkFolder,
    out: W,
    source: &Path,
    skip: &Path,
) -> Result<usize, StepError> {
    let tar_err = |e: std::io::Error| StepError::Failed(format!("writing the tar archive: {e}"));
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut files = 0;
    for entry in walk(folder, source, skip)? {
        let name = archive_name(source, &entry.rel);
        if name.as_os_str().is_empty() {
            continue;
        }
        let shown = entry.rel.to_string_lossy().into_owned();
        if entry.is_file {
            let mut file = folder.open_regular(
                &entry.rel,
                cap_std::fs::OpenOptions::new().read(true),
                &shown,
            )?;
            builder.append_file(&name, &mut file).map_err(tar_err)?;
            files += 1;
        } else if entry.is_dir {
            let meta = folder
                .dir()
                .symlink_metadata(&entry.rel)
                .map_err(|e| io_error(&shown, e))?;
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.set_mode(cap_std::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777);
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.into_std().duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            header.set_mtime(mtime);
            builder
                .append_data(&mut header, &name, std::io::empty())
                .map_err(tar_err)?;
        }
        // Symlinks and special files are left out.
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(tar_err)?;
    Ok(files)
}

fn write_zip(
    folder: &WorkFolder,
    out: std::fs::File,
    source: &Path,
    skip: &Path,
) -> Result<usize, StepError> {
    let zip_err =
        |e: zip::result::ZipError| StepError::Failed(format!("writing the zip archive: {e}"));
    let mut zip = zip::ZipWriter::new(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut files = 0;
    for entry in walk(folder, source, skip)? {
        if !entry.is_file {
            continue;
        }
        let name = archive_name(source, &entry.rel);
        let shown = entry.rel.to_string_lossy().into_owned();
        zip.start_file(name.to_string_lossy(), options)
            .map_err(zip_err)?;
        let mut file = folder.open_regular(
            &entry.rel,
            cap_std::fs::OpenOptions::new().read(true),
            &shown,
        )?;
        std::io::copy(&mut file, &mut zip).map_err(|e| io_error(&shown, e))?;
        files += 1;
    }
    zip.finish().map_err(zip_err)?;
    Ok(files)
}
