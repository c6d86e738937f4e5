//! `mission tag [PATH] [--key NAME]`: signs the committed package and records the
//! signature in the annotated git tag `vVERSION`.
//!
//! A node publishes a pushed tag by rebuilding the canonical archive from the tagged tree
//! and checking the signature the tag message carries (see
//! [`mission_index::wire::TagMessage`]). So this command signs exactly that archive: the
//! one built from the files of the HEAD commit's tree (read with `git ls-tree` and `git
//! cat-file`), never from the working folder. A dirty working tree is refused, so what the
//! author sees is what gets signed; symlinks and submodules are refused because a package
//! holds regular files only. Tags are never moved or replaced: a version is immutable.
//!
//! After `mission tag`, a plain `git push http://HOST/git/missions/NAME.git vVERSION`
//! publishes; `mission publish` does both.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use mission_index::archive::{self, ArchiveLimits, SourceFile};
use mission_index::package::{self, MANIFEST_FILE};
use mission_index::signing;
use mission_index::wire::TagMessage;

use crate::keys;

#[derive(clap::Args)]
pub struct Args {
    /// The package: the root of its git repository (default: the current folder)
    path: Option<PathBuf>,
    /// The signing key in MISSION_HOME/keys (see `mission keygen`)
    #[arg(long, default_value = "default")]
    key: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    keys::check_key_name(&args.key)?;
    let dir = args.path.unwrap_or_else(|| PathBuf::from("."));
    let repo = Repo::open(&dir)?;
    let Some(built) = build_from_head(&repo)? else {
        return Ok(ExitCode::FAILURE);
    };
    let tag = TagMessage::tag_name(&built.version);
    if let Some(existing) = repo.tag(&tag)? {
        bail!(
            "the tag {tag} already exists (on commit {}): versions are immutable; raise `package.version` in {MANIFEST_FILE}, commit, and tag again",
            short(&existing.commit)
        );
    }
    let signed = sign(&built, &args.key)?;
    repo.create_tag(&signed)?;
    eprintln!(
        "Tagged {} {} as {tag} (commit {})",
        built.name,
        built.version,
        short(&built.commit)
    );
    eprintln!(
        "  push it with `mission publish`, or `git push <NODE>/git/missions/{}.git {tag}`",
        built.name
    );
    println!("{tag} {}", built.cksum);
    Ok(ExitCode::SUCCESS)
}

/// The first 12 digits of a commit id, for messages.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The canonical archive of a package's HEAD tree, checked.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub version: String,
    pub cksum: String,
    pub archive: Vec<u8>,
    /// The commit whose tree was packed.
    pub commit: String,
}

/// A [`Built`] archive with the author's signature.
#[derive(Debug, Clone)]
pub struct Signed {
    pub built: Built,
    /// The author's public key, `RW...`.
    pub key: String,
    /// The whole `.minisig` text.
    pub signature: String,
}

impl Signed {
    pub fn tag_message(&self) -> TagMessage {
        TagMessage {
            name: self.built.name.clone(),
            version: self.built.version.clone(),
            key: self.key.clone(),
            cksum: self.built.cksum.clone(),
            signature: self.signature.clone(),
        }
    }
}

/// Builds and checks the archive of the HEAD commit's tree: refuses a repository without
/// a commit and a dirty working tree, reads the tree's files, checks `mission.yaml` (the
/// mission, its `package:` block, the permission lint) and builds the canonical archive.
/// `Ok(None)`: the package is invalid and the error (`FILE:LINE: error: ...`) was printed.
pub fn build_from_head(repo: &Repo) -> Result<Option<Built>> {
    let commit = repo.head_commit()?;
    let dirty = repo.dirty_files()?;
    if !dirty.is_empty() {
        let shown: Vec<&str> = dirty.iter().take(10).map(String::as_str).collect();
        let more = if dirty.len() > shown.len() {
            format!(" and {} more", dirty.len() - shown.len())
        } else {
            String::new()
        };
        bail!(
            "the working tree of {} has uncommitted changes ({}{more}): commit or stash them first, so the signed package is the committed one",
            repo.root.display(),
            shown.join(", ")
        );
    }
    let limits = ArchiveLimits::default();
    let files = repo.tree_files(&commit, &limits)?;
    let manifest_path = repo.root.join(MANIFEST_FILE);
    let Some(manifest_file) = files.iter().find(|f| f.path == MANIFEST_FILE) else {
        bail!(
            "commit {} has no {MANIFEST_FILE} at the root of the repository {}: the package must be the repository's root folder",
            short(&commit),
            repo.root.display()
        );
    };
    let text = std::str::from_utf8(&manifest_file.data).map_err(|e| {
        anyhow::anyhow!(
            "{}: the file is not UTF-8 (invalid byte at offset {})",
            manifest_path.display(),
            e.valid_up_to()
        )
    })?;
    let source = match package::check_mission_text(&manifest_path, text) {
        Ok(source) => source,
        Err(err) => {
            // Already `FILE:LINE: error: ...`, the format `mission validate` prints.
            eprintln!("{err}");
            return Ok(None);
        }
    };
    for warning in &source.warnings {
        eprintln!("warning: {}: {warning}", manifest_path.display());
    }
    let Some(manifest) = source.manifest else {
        eprintln!(
            "{}: error: there is no `package:` block: a plain mission is valid, but publishing needs the block (see `mission new`)",
            manifest_path.display()
        );
        return Ok(None);
    };
    let archive = archive::build_archive_from_files(files, &limits).with_context(|| {
        format!(
            "building the archive of commit {} of {}",
            short(&commit),
            repo.root.display()
        )
    })?;
    Ok(Some(Built {
        name: manifest.name.to_string(),
        version: manifest.version.to_string(),
        cksum: archive::cksum(&archive),
        archive,
        commit,
    }))
}

/// Signs `built` with the key `key_name` and checks the new signature.
pub fn sign(built: &Built, key_name: &str) -> Result<Signed> {
    let (public, secret) = keys::load_keys(key_name)?;
    let signature = signing::sign_archive(
        &secret,
        &public,
        &built.archive,
        &built.name,
        &built.version,
    )
    .context("signing the archive")?;
    // A signature that does not verify must never leave this machine.
    signing::verify_archive(
        &public,
        &signature,
        &built.archive,
        &built.name,
        &built.version,
    )
    .context("the new signature does not verify")?;
    Ok(Signed {
        built: built.clone(),
        key: public.to_base64(),
        signature,
    })
}

/// Whether the message of an existing tag is a valid publish of `built`: same name,
/// version and checksum, and a signature by the key it names over these bytes.
pub fn check_tag_message(message: &str, built: &Built) -> Result<TagMessage> {
    let tag = TagMessage::parse(message)?;
    if tag.name != built.name || tag.version != built.version {
        bail!(
            "it is for {} {}, not {} {}",
            tag.name,
            tag.version,
            built.name,
            built.version
        );
    }
    if tag.cksum != built.cksum {
        bail!(
            "it signs an archive with sha256 {}, but the tagged tree gives {}",
            tag.cksum,
            built.cksum
        );
    }
    let key = signing::PublicKey::parse(&tag.key).context("its `key:` line")?;
    signing::verify_archive(
        &key,
        &tag.signature,
        &built.archive,
        &built.name,
        &built.version,
    )
    .context("its signature")?;
    Ok(tag)
}

/// An existing tag.
#[derive(Debug, Clone)]
pub struct ExistingTag {
    /// The commit it points to.
    pub commit: String,
    /// The annotated tag's message; `None` for a lightweight tag.
    pub message: Option<String>,
}

/// The git repository a package lives in; the package is its root folder.
pub struct Repo {
    pub root: PathBuf,
}

impl Repo {
    /// The repository whose root is `dir`.
    pub fn open(dir: &Path) -> Result<Repo> {
        if !dir.is_dir() {
            bail!(
                "{}: no such package folder (give the root of the package's git repository)",
                dir.display()
            );
        }
        let dir = dir
            .canonicalize()
            .with_context(|| format!("reading {}", dir.display()))?;
        let out = Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["rev-parse", "--show-toplevel"])
            .output()
            .context("running `git` (is git installed?)")?;
        if !out.status.success() {
            bail!(
                "{} is not in a git repository: publishing signs the committed package, so make it one (`git init`, `git add .`, `git commit`)",
                dir.display()
            );
        }
        let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim_end_matches('\n'));
        let top = top.canonicalize().unwrap_or(top);
        if top != dir {
            bail!(
                "{} is inside the git repository {}, not its root: a node builds the package from the whole tagged tree, so the package must be the repository's root folder",
                dir.display(),
                top.display()
            );
        }
        Ok(Repo { root: dir })
    }

    /// `git -C ROOT` with settings that keep output parseable.
    pub fn git(&self) -> Command {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&self.root)
            .args(["-c", "core.quotePath=false"]);
        cmd
    }

    /// Runs `git ARGS` and returns its stdout; the error carries git's stderr.
    fn output(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = self
            .git()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running `git {}`", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "`git {}` in {} failed: {}",
                args.join(" "),
                self.root.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    }

    /// The id of the HEAD commit; refuses a repository without one.
    pub fn head_commit(&self) -> Result<String> {
        let out = self
            .git()
            .args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
            .stdin(Stdio::null())
            .output()
            .context("running `git rev-parse`")?;
        if !out.status.success() {
            bail!(
                "the repository {} has no commit yet: commit the package first (`git add .` and `git commit`)",
                self.root.display()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Files that differ from HEAD: modified, staged, deleted or untracked (not ignored).
    pub fn dirty_files(&self) -> Result<Vec<String>> {
        let out = self.output(&["status", "--porcelain=v1", "-z", "--untracked-files=all"])?;
        let mut files = Vec::new();
        let mut records = out.split(|&b| b == 0).filter(|r| !r.is_empty());
        while let Some(record) = records.next() {
            // `XY PATH`; a rename or copy is followed by its source path.
            let status = record.get(..2).unwrap_or_default();
            let path = String::from_utf8_lossy(record.get(3..).unwrap_or_default()).into_owned();
            if status.contains(&b'R') || status.contains(&b'C') {
                records.next();
            }
            files.push(path);
        }
        Ok(files)
    }

    /// The files of `commit`'s tree, read from the object store. Refuses symlinks,
    /// submodules, non-UTF-8 paths, and files past the archive limits (before reading
    /// them).
    pub fn tree_files(&self, commit: &str, limits: &ArchiveLimits) -> Result<Vec<SourceFile>> {
        let listing = self.output(&["ls-tree", "-r", "-z", "-l", "--full-tree", commit])?;
        // (path, executable, object id)
        let mut wanted: Vec<(String, bool, String)> = Vec::new();
        let mut total: u64 = 0;
        for record in listing.split(|&b| b == 0).filter(|r| !r.is_empty()) {
            let tab = record
                .iter()
                .position(|&b| b == b'\t')
                .context("unexpected `git ls-tree` output")?;
            let (meta, path) = (&record[..tab], &record[tab + 1..]);
            let Ok(path) = std::str::from_utf8(path) else {
                bail!(
                    "the path `{}` in commit {} is not UTF-8; package paths must be",
                    String::from_utf8_lossy(path),
                    short(commit)
                );
            };
            let meta = String::from_utf8_lossy(meta);
            let mut fields = meta.split_whitespace();
            let (Some(mode), Some(kind), Some(oid), size) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                bail!("unexpected `git ls-tree` output for {path}");
            };
            let executable = match (mode, kind) {
                ("100644" | "100664", "blob") => false,
                ("100755", "blob") => true,
                ("120000", _) => bail!(
                    "`{path}` is a symbolic link in commit {}: a package holds regular files only",
                    short(commit)
                ),
                ("160000", _) => bail!(
                    "`{path}` is a git submodule in commit {}: a package holds regular files only",
                    short(commit)
                ),
                _ => bail!(
                    "`{path}` has the unsupported git mode {mode} ({kind}) in commit {}",
                    short(commit)
                ),
            };
            let size: u64 = size.and_then(|s| s.parse().ok()).unwrap_or(0);
            if size > limits.max_file_bytes {
                bail!(
                    "`{path}` is {size} bytes; a package file may have at most {}",
                    limits.max_file_bytes
                );
            }
            total = total.saturating_add(size);
            if total > limits.max_total_bytes {
                bail!(
                    "the files of commit {} add up to more than {} bytes, the package limit (at `{path}`)",
                    short(commit),
                    limits.max_total_bytes
                );
            }
            wanted.push((path.to_owned(), executable, oid.to_owned()));
        }
        let contents = self.read_blobs(wanted.iter().map(|(_, _, oid)| oid.as_str()))?;
        Ok(wanted
            .into_iter()
            .zip(contents)
            .map(|((path, executable, _), data)| SourceFile {
                path,
                executable,
                data,
            })
            .collect())
    }

    /// The contents of the blobs `oids`, in order, through one `git cat-file --batch`.
    fn read_blobs<'a>(&self, oids: impl Iterator<Item = &'a str>) -> Result<Vec<Vec<u8>>> {
        let input: String = oids.map(|oid| format!("{oid}\n")).collect();
        let count = input.lines().count();
        let mut child = self
            .git()
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running `git cat-file --batch`")?;
        let mut stdin = child.stdin.take().context("git cat-file has no stdin")?;
        let stdout = child.stdout.take().context("git cat-file has no stdout")?;
        let result = std::thread::scope(|scope| -> Result<Vec<Vec<u8>>> {
            // Written from another thread: git answers while it reads, and a full pipe
            // on either side would otherwise stall both.
            let writer = scope.spawn(move || stdin.write_all(input.as_bytes()));
            let mut reader = BufReader::new(stdout);
            let mut blobs = Vec::with_capacity(count);
            for _ in 0..count {
                let mut header = Vec::new();
                reader
                    .read_until(b'\n', &mut header)
                    .context("reading `git cat-file` output")?;
                let header = String::from_utf8_lossy(&header).trim_end().to_owned();
                let mut fields = header.split(' ');
                let (Some(oid), Some(kind), Some(size)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    bail!("`git cat-file` answered `{header}`");
                };
                if kind != "blob" {
                    bail!("object {oid} is a {kind}, not a file");
                }
                let size: u64 = size
                    .parse()
                    .with_context(|| format!("`git cat-file` answered `{header}`"))?;
                let mut data = Vec::new();
                (&mut reader)
                    .take(size)
                    .read_to_end(&mut data)
                    .context("reading `git cat-file` output")?;
                if data.len() as u64 != size {
                    bail!("`git cat-file` ended inside object {oid}");
                }
                let mut newline = [0u8; 1];
                reader
                    .read_exact(&mut newline)
                    .context("reading `git cat-file` output")?;
                blobs.push(data);
            }
            writer
                .join()
                .map_err(|_| anyhow::anyhow!("the writer to git cat-file panicked"))?
                .context("writing to `git cat-file`")?;
            Ok(blobs)
        });
        let status = child.wait().context("waiting for `git cat-file`")?;
        let blobs = result?;
        if !status.success() {
            bail!("`git cat-file --batch` failed ({status})");
        }
        Ok(blobs)
    }

    /// The tag `name`, when it exists.
    pub fn tag(&self, name: &str) -> Result<Option<ExistingTag>> {
        let reference = format!("refs/tags/{name}");
        let out = self
            .git()
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("{reference}^{{commit}}"))
            .stdin(Stdio::null())
            .output()
            .context("running `git rev-parse`")?;
        if !out.status.success() {
            // Either no such tag, or a tag of something that is not a commit.
            let exists = self
                .git()
                .args(["rev-parse", "--verify", "--quiet", &reference])
                .stdin(Stdio::null())
                .output()
                .context("running `git rev-parse`")?;
            if exists.status.success() {
                bail!("the tag {name} exists but does not point to a commit");
            }
            return Ok(None);
        }
        let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let kind = self.output(&["cat-file", "-t", &reference])?;
        let message = if String::from_utf8_lossy(&kind).trim() == "tag" {
            let raw = self.output(&["cat-file", "tag", &reference])?;
            let raw = String::from_utf8_lossy(&raw).into_owned();
            // Headers, a blank line, then the message.
            Some(
                raw.split_once("\n\n")
                    .map(|(_, message)| message.to_owned())
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        Ok(Some(ExistingTag { commit, message }))
    }

    /// Creates the annotated tag `vVERSION` on the signed commit, and reads it back.
    /// Deletes the local tag `name`.
    pub fn delete_tag(&self, name: &str) -> Result<()> {
        let out = self
            .git()
            .args(["tag", "-d", name])
            .stdin(Stdio::null())
            .output()
            .context("running `git tag -d`")?;
        if !out.status.success() {
            bail!(
                "`git tag -d {name}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    pub fn create_tag(&self, signed: &Signed) -> Result<String> {
        let message = signed.tag_message();
        let name = TagMessage::tag_name(&message.version);
        let mut child = self
            .git()
            // A signing setting of the author's must not turn this into a GPG prompt.
            .args([
                "-c",
                "tag.gpgSign=false",
                "tag",
                "-a",
                "--cleanup=verbatim",
                "-F",
                "-",
            ])
            .arg(&name)
            .arg(&signed.built.commit)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running `git tag`")?;
        let mut stdin = child.stdin.take().context("git tag has no stdin")?;
        let text = message.to_message();
        let written = stdin.write_all(text.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().context("running `git tag`")?;
        if !out.status.success() {
            bail!(
                "`git tag -a {name}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        written.context("writing the tag message to `git tag`")?;
        // Read back what git stored: the node will parse exactly that.
        let stored = self
            .tag(&name)?
            .and_then(|t| t.message)
            .with_context(|| format!("the new tag {name} cannot be read back"))?;
        check_tag_message(&stored, &signed.built)
            .with_context(|| format!("the new tag {name} does not hold a valid signature"))?;
        Ok(name)
    }
}
