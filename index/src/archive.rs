//! The canonical `.mission` archive: how a package folder becomes bytes, and back.
//!
//! A published version *is* its archive: the index records the archive's SHA-256
//! ([`cksum`]) and the author signs those bytes. So the archive must be a pure function of
//! the package's content. Two authors (or one author on two machines) who build the same tree
//! get the same bytes, whatever the disk says about file order, modification times,
//! permission bits, umask or owners.
//!
//! ## A package is a list of files
//!
//! The content of a package is a list of files, each a path, an executable bit and bytes
//! ([`SourceFile`]); nothing else (no directory of its own, no owner, no time). That is
//! exactly what a git tree holds, so an archive can be built from a folder on disk
//! ([`build_archive`]) or from a list of files, e.g. read from a committed git tree
//! ([`build_archive_from_files`]), and the two agree byte for byte: `mission package` on a
//! clean checkout, `mission tag` on the committed tree and a node rebuilding the pushed
//! tree all get one checksum. Directories are *derived*: each directory that holds at least
//! one file (at any depth) is an entry. Git cannot hold an empty directory, so an empty
//! directory on disk is not part of the package: the folder builder skips it.
//!
//! ## The canonical form
//!
//! An archive is a gzip stream of one POSIX *ustar* tar stream:
//!
//! * **Entries** are the package's files and the directories that contain them, with paths
//!   relative to the package root (no `./` prefix), `/` as separator, a directory written
//!   as `dir/`. They are sorted by the bytes of that entry name, which puts every directory
//!   right before its contents. Every directory that holds a file is an entry, once, so each
//!   entry's parent precedes it; there is no empty directory. The root is not an entry.
//! * **Headers** are plain ustar: mode `0644` for a file (`0755` if it is executable: any
//!   execute bit on disk, mode `100755` in git), `0755` for a directory, uid and gid `0`, empty user and group names, mtime `0`,
//!   no link name, no device numbers. A path over 100 bytes is split into the ustar `prefix`
//!   and `name` fields at the *first* `/` that makes both fit. No PAX or GNU extension
//!   headers are ever written (paths are short enough not to need them).
//! * **Data** follows each file header, zero-padded to 512 bytes; the stream ends with two
//!   zero blocks and nothing else (no padding to a 10 KiB record as GNU tar does).
//! * **Gzip**: one member, header `1f 8b 08 00 00000000 02 ff` (no file name, no comment, no
//!   extra field, mtime 0, "maximum compression", OS "unknown"), a raw deflate stream made by
//!   `miniz_oxide` at level 9 (called directly, so cargo feature unification cannot swap in
//!   another zlib backend), then the CRC-32 and length. Nothing after it.
//!
//! ## What goes in, what is refused, what is skipped
//!
//! [`build_archive`] packs **every file** under the folder (ignored and untracked files
//! too: build from a clean checkout) except the [`SKIPPED_AT_ROOT`] entries directly in the
//! folder, whatever their type: `.git` (the repository directory, or the `.git` file of a
//! worktree or submodule checkout) and `target` (where `mission package` writes its output,
//! as cargo does). [`build_archive_from_files`] leaves out the files under those same root
//! names. Empty directories are skipped. The folder builder refuses, naming the path,
//! wherever they are: symlinks (never followed), sockets, fifos, devices and non-UTF-8
//! names. Both builders refuse a file path with a `.git` component anywhere deeper (a
//! nested repository's config and hooks can run commands when someone later uses git
//! inside the unpacked folder), names that would not survive on Windows or macOS (see
//! below), a path given twice, a file whose path is also a directory of another file, and
//! anything over the [`ArchiveLimits`]. The folder builder checks every path and limit from
//! the files' metadata before it reads a byte.
//!
//! Path rules, shared by the builder and the unpacker: valid UTF-8; no NUL, no control
//! character, no `\`, none of `< > : " | ? *`; not absolute; no `..` component; no empty or
//! dots-only component (`.`, `...`); no component ending in `.` or a space (Windows drops
//! them); no Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `COM1`-`COM9`, `LPT1`-`LPT9`,
//! with or without extension, any case); no `.git` component (any case); no two paths that
//! differ only in case (they would be one file on a case-insensitive file system); at most
//! [`ArchiveLimits::max_path_bytes`] bytes and [`ArchiveLimits::max_depth`] components.
//!
//! ## Unpacking
//!
//! [`unpack_archive`] (and [`list_archive`], [`read_archive_file`], which write nothing)
//! accept exactly what the builder produces and refuse everything else with an
//! [`ArchiveError`] variant per reason. It reads the tar stream block by block itself (the
//! `tar` crate's readers are lenient by design: they follow PAX and GNU extensions and stop
//! at the first zero block), checks every header against the header the builder would write
//! for that entry, refuses a directory entry with no file beneath it
//! ([`ArchiveError::EmptyDirectory`]: the builder never writes one), checks every limit
//! *before* reading the data it governs, counts
//! decompressed bytes against a cap as it reads, and writes only into a fresh temporary
//! directory beside the destination, which is renamed into place at the end or removed on
//! any error.
//!
//! Decompression is bounded twice. Every read is governed by a checked header (a file's
//! declared size against the per-file and total limits, the entry count against
//! `max_files`), and after the end-of-archive marker a single extra byte is an error, so a
//! gzip bomb is refused by the first framing check it breaks: 1 GiB of zeros reads as an
//! end marker followed by data, after 1 KiB. Independently, a counter stops inflating past
//! the most bytes an archive within the limits can hold
//! ([`ArchiveError::DecompressedTooLarge`]), whatever the headers say.
//!
//! Most archives are decoded in one call by libdeflate into a buffer sized from the gzip
//! trailer (`crate::inflate`), which is about twice as fast as streaming. That size is
//! trusted only up to the same cap, and up to what deflate can expand the archive's
//! bytes to; libdeflate never writes past the buffer. So a bomb whose trailer claims a
//! size within those bounds is decoded whole (at most the cap, about 60 MiB by default)
//! before the tar framing refuses it, rather than after 1 KiB. Any archive this path does
//! not take whole (a bad stream, CRC or length, bytes after the member) is read again by
//! the streaming decoder, which names the fault; the tar checks are the same code either
//! way.
//!
//! **Why the unpacker does not re-build and compare bytes.** The tar stream it accepts is,
//! byte for byte, the stream [`build_archive`] would write for the unpacked tree (every
//! header is compared with the canonical header, padding must be zero, the end is exact),
//! and the gzip header and framing are checked too. The one thing not compared is the
//! deflate payload: a deflate library's exact output is not part of any format and may
//! change between versions, and refusing on that would make archives published today
//! unreadable after a dependency update. So one tree has one canonical archive *per version
//! of this code* (a golden-bytes unit test pins it, so a dependency update that changes it
//! fails loudly); any accepted archive unpacks to a tree whose canonical tar stream it
//! carries. A checksum is always of the published bytes: nothing should re-build a tree and
//! expect an old checksum across versions of this code.
//!
//! Unpacked files get exactly mode 0644 or 0755 (whatever the umask); directories are
//! created with the process's default mode. [`build_archive`] holds the package and its
//! archive in memory, which the limits bound.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Size of a tar block.
const BLOCK: usize = 512;

/// The gzip header every canonical archive starts with (RFC 1952): magic, method deflate,
/// no flags, mtime 0, XFL 2 (maximum compression), OS 255 (unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x02, 0xff];

/// The deflate level used by [`build_archive`] (`miniz_oxide`'s 9, "best").
const DEFLATE_LEVEL: u8 = 9;

/// Entries directly in a package folder that never go into its archive: the git
/// repository, and `target/`, where `mission package` writes the archive itself.
pub const SKIPPED_AT_ROOT: &[&str] = &[".git", "target"];

/// Bounds on an archive, enforced by both builders and by every reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Sum of the sizes of all files, unpacked (default 50 MiB).
    pub max_total_bytes: u64,
    /// Size of any one file (default 10 MiB).
    pub max_file_bytes: u64,
    /// Number of entries, files and directories both count (default 10 000).
    pub max_files: usize,
    /// Length of an entry path in bytes, without a directory's trailing `/` (default 240;
    /// ustar cannot store more than 255).
    pub max_path_bytes: usize,
    /// Size of the archive itself, compressed (default 50 MiB).
    pub max_compressed_bytes: u64,
    /// Number of components of an entry path, `a/b/c` has 3 (default 32).
    pub max_depth: usize,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        ArchiveLimits {
            max_total_bytes: 50 * MIB,
            max_file_bytes: 10 * MIB,
            max_files: 10_000,
            max_path_bytes: 240,
            max_compressed_bytes: 50 * MIB,
            max_depth: 32,
        }
    }
}

impl ArchiveLimits {
    /// The most decompressed bytes a valid archive within these limits can hold: the file
    /// data, plus a header block and at most one padding block per entry, plus the two end
    /// blocks. Reading stops past this, whatever the headers claim.
    fn decompressed_cap(&self) -> u64 {
        let per_entry = 2 * BLOCK as u64;
        let entries = u64::try_from(self.max_files).unwrap_or(u64::MAX);
        self.max_total_bytes
            .saturating_add(entries.saturating_mul(per_entry))
            .saturating_add(per_entry)
    }
}

/// What an entry is; the only two kinds an archive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    File,
    Directory,
}

/// One entry of a verified archive, as [`list_archive`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntryInfo {
    /// Path relative to the package root, `/`-separated, without a trailing `/`.
    pub path: String,
    pub kind: EntryKind,
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// Mode 0755 for a file (always false for a directory).
    pub executable: bool,
}

/// What [`unpack_archive`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackReport {
    /// Regular files written (directories not counted).
    pub files: usize,
    /// Bytes of file data written.
    pub bytes: u64,
}

/// Everything that can go wrong building, reading or unpacking an archive. Each refusal
/// has its own variant; paths are entry paths inside the archive (or the package folder)
/// unless the variant says otherwise.
#[derive(Debug, Error)]
pub enum ArchiveError {
    /// A file system operation failed; `path` is a path on disk.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a directory (an archive is built from a package folder)")]
    NotADirectory { path: PathBuf },
    #[error("unpack destination {path} already exists and is not an empty directory")]
    DestinationExists { path: PathBuf },

    // Entry types.
    #[error("`{path}`: symbolic links are not allowed in a package")]
    Symlink { path: String },
    #[error("`{path}`: hard links are not allowed in a package")]
    HardLink { path: String },
    #[error("`{path}`: character devices are not allowed in a package")]
    CharDevice { path: String },
    #[error("`{path}`: block devices are not allowed in a package")]
    BlockDevice { path: String },
    #[error("`{path}`: fifos (named pipes) are not allowed in a package")]
    Fifo { path: String },
    #[error("`{path}`: sockets are not allowed in a package")]
    Socket { path: String },
    #[error("`{path}`: unsupported tar entry type {typeflag:?} (only files and directories)")]
    UnsupportedEntryType { path: String, typeflag: char },
    #[error("`{path}`: PAX extended header (canonical archives have none; it can override paths)")]
    PaxHeader { path: String },
    #[error("`{path}`: GNU long name or long link header (canonical archives have none)")]
    GnuExtension { path: String },

    // Paths.
    #[error("`{path}`: name is not valid UTF-8")]
    NonUtf8Path { path: String },
    #[error("`{path}`: NUL byte inside the name")]
    NulInPath { path: String },
    #[error("`{path}`: backslash in the name (the separator is `/`)")]
    Backslash { path: String },
    #[error("`{path}`: absolute path")]
    AbsolutePath { path: String },
    #[error("`{path}`: `..` component (path traversal)")]
    PathTraversal { path: String },
    #[error("`{path}`: component `{component}` is not allowed: {reason}")]
    InvalidComponent {
        path: String,
        component: String,
        reason: &'static str,
    },
    #[error("`{path}`: `{component}` is a reserved device name on Windows")]
    ReservedName { path: String, component: String },
    #[error("`{path}`: path is {len} bytes, the limit is {limit}")]
    PathTooLong {
        path: String,
        len: usize,
        limit: usize,
    },
    #[error("`{path}`: path has {depth} components, the limit is {limit}")]
    TooDeep {
        path: String,
        depth: usize,
        limit: usize,
    },
    #[error("`{path}`: path cannot be stored in a ustar header (a component over 100 bytes?)")]
    PathNotUstar { path: String },
    #[error("`{path}` and `{other}` differ only in case (one file on macOS and Windows)")]
    CaseCollision { path: String, other: String },

    // Structure.
    #[error("`{path}`: entry appears twice")]
    Duplicate { path: String },
    #[error("`{path}`: entry out of canonical order (it comes after `{previous}`)")]
    OutOfOrder { path: String, previous: String },
    #[error("`{path}`: parent `{parent}` is a file")]
    ParentIsFile { path: String, parent: String },
    #[error("`{path}`: parent directory `{parent}` has no entry before it")]
    MissingParent { path: String, parent: String },
    /// A directory entry with no file beneath it: the builder derives directories from
    /// files (git cannot hold an empty directory), so it never writes one.
    #[error("`{path}/`: directory with no file beneath it (canonical archives hold only directories that contain files)")]
    EmptyDirectory { path: String },
    /// A file list in which `path` is a file and also a directory holding `beneath`.
    #[error("`{path}` is a file, but `{beneath}` puts it as a directory")]
    FileUsedAsDirectory { path: String, beneath: String },

    // Limits.
    #[error("more than {limit} entries (files and directories)")]
    TooManyFiles { limit: usize },
    #[error("`{path}`: {size} bytes, the limit for one file is {limit}")]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error("`{path}`: total unpacked size would exceed the limit of {limit} bytes")]
    TotalTooLarge { path: String, limit: u64 },
    #[error("archive is {size} bytes compressed, the limit is {limit}")]
    CompressedTooLarge { size: u64, limit: u64 },
    #[error("archive decompresses past {limit} bytes (gzip bomb?)")]
    DecompressedTooLarge { limit: u64 },

    // Header fields.
    #[error("`{path}`: mode {mode:o} (canonical: 644 or 755 for files, 755 for directories)")]
    NonCanonicalMode { path: String, mode: u32 },
    #[error("`{path}`: owner uid {uid} gid {gid} (canonical: 0 and 0)")]
    NonCanonicalOwner { path: String, uid: u64, gid: u64 },
    #[error("`{path}`: mtime {mtime} (canonical: 0)")]
    NonCanonicalMtime { path: String, mtime: u64 },
    #[error("`{path}`: header field `{field}` differs from the canonical header")]
    NonCanonicalHeader { path: String, field: &'static str },
    #[error("`{path}`: header field `{field}` cannot be read")]
    BadHeaderField { path: String, field: &'static str },
    #[error("`{path}`: header checksum does not match (entry {index})")]
    BadHeaderChecksum { path: String, index: usize },
    #[error("`{path}`: padding after the file data is not zero")]
    NonCanonicalPadding { path: String },

    // Framing.
    #[error("not a gzip file")]
    NotGzip,
    #[error("gzip header is not canonical: {field}")]
    NonCanonicalGzip { field: &'static str },
    #[error("a second gzip member follows the first")]
    MultipleGzipMembers,
    #[error("{bytes} bytes of garbage after the gzip stream")]
    TrailingGarbage { bytes: usize },
    #[error("data after the end-of-archive marker")]
    DataAfterEnd,
    #[error("archive is truncated (in {context})")]
    Truncated { context: String },
    #[error("archive is corrupt (in {context}): {detail}")]
    Corrupt { context: String, detail: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// SHA-256 of the archive bytes, lowercase hex: the `cksum` of an index entry.
pub fn cksum(archive: &[u8]) -> String {
    hex::encode(Sha256::digest(archive))
}

/// Why `cksum` is not a checksum as [`cksum`] writes it (64 lowercase hex digits), `None`
/// when it is.
pub fn cksum_problem(cksum: &str) -> Option<String> {
    if cksum.len() != 64 {
        return Some(format!(
            "must be 64 hex digits (a SHA-256), not {} characters",
            cksum.chars().count()
        ));
    }
    if let Some(c) = cksum
        .chars()
        .find(|c| !(c.is_ascii_digit() || ('a'..='f').contains(c)))
    {
        return Some(format!("must be lowercase hex digits, found `{c}`"));
    }
    None
}

// ---------------------------------------------------------------------------------------
// Path rules (shared by the builder and the readers, so the builder never writes what a
// reader refuses).

/// Windows device names; a component whose part before the first `.` is one of these
/// (any case) opens the device instead of a file there.
const WINDOWS_DEVICES: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// Checks an entry path (without a directory's trailing `/`) against the path rules and the
/// length and depth limits.
fn check_path(path: &str, limits: &ArchiveLimits) -> Result<(), ArchiveError> {
    let owned = || path.to_string();
    if path.contains('\0') {
        return Err(ArchiveError::NulInPath { path: owned() });
    }
    if path.contains('\\') {
        return Err(ArchiveError::Backslash { path: owned() });
    }
    if path.starts_with('/') {
        return Err(ArchiveError::AbsolutePath { path: owned() });
    }
    if path.split('/').any(|c| c == "..") {
        return Err(ArchiveError::PathTraversal { path: owned() });
    }
    if path.len() > limits.max_path_bytes {
        return Err(ArchiveError::PathTooLong {
            path: owned(),
            len: path.len(),
            limit: limits.max_path_bytes,
        });
    }
    let depth = path.split('/').count();
    if depth > limits.max_depth {
        return Err(ArchiveError::TooDeep {
            path: owned(),
            depth,
            limit: limits.max_depth,
        });
    }
    for component in path.split('/') {
        let invalid = |reason| ArchiveError::InvalidComponent {
            path: owned(),
            component: component.to_string(),
            reason,
        };
        if component.is_empty() {
            return Err(invalid("empty component (`//` or a trailing `/`)"));
        }
        if component.bytes().all(|b| b == b'.') {
            return Err(invalid("dots only"));
        }
        if component.chars().any(char::is_control) {
            return Err(invalid("control character"));
        }
        if component.contains(['<', '>', ':', '"', '|', '?', '*']) {
            return Err(invalid("one of < > : \" | ? * (not allowed on Windows)"));
        }
        if component.ends_with(['.', ' ']) {
            return Err(invalid("ends in `.` or space (Windows drops them)"));
        }
        if component.eq_ignore_ascii_case(".git") {
            return Err(invalid(
                "a `.git` inside a package (git would run its hooks and config)",
            ));
        }
        let stem = component.split('.').next().unwrap_or(component);
        if WINDOWS_DEVICES
            .iter()
            .any(|d| d.eq_ignore_ascii_case(stem.trim_end()))
        {
            return Err(ArchiveError::ReservedName {
                path: owned(),
                component: component.to_string(),
            });
        }
    }
    Ok(())
}

/// Checks that entries arrive in canonical order, each once, each under a directory entry
/// seen before, every directory followed by something beneath it, with no two paths equal
/// but for case. Call [`Structure::end`] after the last entry.
#[derive(Default)]
struct Structure {
    /// The previous entry name (with a directory's trailing `/`).
    previous: Option<String>,
    dirs: HashSet<String>,
    files: HashSet<String>,
    /// Lowercased path -> the path as written.
    folded: HashMap<String, String>,
}

impl Structure {
    fn admit(&mut self, path: &str, kind: EntryKind) -> Result<(), ArchiveError> {
        if self.dirs.contains(path) || self.files.contains(path) {
            return Err(ArchiveError::Duplicate {
                path: path.to_string(),
            });
        }
        let name = entry_name(path, kind);
        if let Some(previous) = &self.previous {
            if name.as_bytes() <= previous.as_bytes() {
                return Err(ArchiveError::OutOfOrder {
                    path: path.to_string(),
                    previous: previous.clone(),
                });
            }
            // In canonical order a directory's contents come right after it, so an entry
            // not beneath the previous directory means that directory holds nothing.
            if let Some(dir) = previous.strip_suffix('/') {
                if !name.starts_with(previous.as_str()) {
                    return Err(ArchiveError::EmptyDirectory {
                        path: dir.to_string(),
                    });
                }
            }
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if self.files.contains(parent) {
                return Err(ArchiveError::ParentIsFile {
                    path: path.to_string(),
                    parent: parent.to_string(),
                });
            }
            if !self.dirs.contains(parent) {
                return Err(ArchiveError::MissingParent {
                    path: path.to_string(),
                    parent: parent.to_string(),
                });
            }
        }
        let folded = path.to_lowercase();
        if let Some(other) = self.folded.get(&folded) {
            return Err(ArchiveError::CaseCollision {
                path: path.to_string(),
                other: other.clone(),
            });
        }
        self.folded.insert(folded, path.to_string());
        match kind {
            EntryKind::File => self.files.insert(path.to_string()),
            EntryKind::Directory => self.dirs.insert(path.to_string()),
        };
        self.previous = Some(name);
        Ok(())
    }

    /// After the last entry: it must not be a directory (it would hold nothing).
    fn end(&self) -> Result<(), ArchiveError> {
        match self.previous.as_deref().and_then(|p| p.strip_suffix('/')) {
            Some(dir) => Err(ArchiveError::EmptyDirectory {
                path: dir.to_string(),
            }),
            None => Ok(()),
        }
    }
}

/// The tar entry name: the path, with a `/` after a directory.
fn entry_name(path: &str, kind: EntryKind) -> String {
    match kind {
        EntryKind::File => path.to_string(),
        EntryKind::Directory => format!("{path}/"),
    }
}

/// Splits an entry name into ustar `(prefix, name)` at the first `/` that makes both fit.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((&[], name));
    }
    name.iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'/' && i > 0)
        .map(|(i, _)| (&name[..i], &name[i + 1..]))
        .find(|(prefix, rest)| prefix.len() <= 155 && !rest.is_empty() && rest.len() <= 100)
}

/// The one header the builder writes for an entry.
fn canonical_header(
    path: &str,
    kind: EntryKind,
    size: u64,
    executable: bool,
) -> Result<[u8; BLOCK], ArchiveError> {
    let name = entry_name(path, kind);
    let (prefix, short) = split_ustar(name.as_bytes()).ok_or(ArchiveError::PathNotUstar {
        path: path.to_string(),
    })?;
    let mut header = tar::Header::new_ustar();
    {
        let ustar = header.as_ustar_mut().ok_or(ArchiveError::PathNotUstar {
            path: path.to_string(),
        })?;
        ustar.name[..short.len()].copy_from_slice(short);
        ustar.prefix[..prefix.len()].copy_from_slice(prefix);
    }
    let (entry_type, mode) = match kind {
        EntryKind::File if executable => (tar::EntryType::Regular, 0o755),
        EntryKind::File => (tar::EntryType::Regular, 0o644),
        EntryKind::Directory => (tar::EntryType::Directory, 0o755),
    };
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header.set_cksum();
    Ok(*header.as_bytes())
}

// ---------------------------------------------------------------------------------------
// Building.

/// One file of a package: the unit an archive is built from.
///
/// A package's content is its list of files. The archive's directory entries are derived
/// from the files' paths (as git derives its trees), so the same files give the same bytes
/// whether they come from a folder on disk ([`build_archive`]) or from a git tree
/// ([`build_archive_from_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the package root, `/`-separated: no leading `./` or `/`, no
    /// trailing `/`.
    pub path: String,
    /// Packed with mode 0755 rather than 0644 (any execute bit on disk; mode 100755 in git).
    pub executable: bool,
    pub data: Vec<u8>,
}

/// Whether `path` is, or lies under, one of the [`SKIPPED_AT_ROOT`] entries.
fn skipped_at_root(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or(path);
    SKIPPED_AT_ROOT.contains(&first)
}

/// One entry to write: a file (`file` indexes the sorted file list) or a derived directory.
struct Planned {
    path: String,
    kind: EntryKind,
    file: Option<usize>,
}

/// Checks everything about an archive that needs only the files' paths and sizes, and
/// returns its entries in canonical order. `files` is `(path, size)`, sorted by path (byte
/// order) and already without the [`SKIPPED_AT_ROOT`] entries. Both builders call this
/// before touching any file content, so the disk builder refuses a huge file from its
/// metadata and both refuse the same tree with the same error.
fn plan(files: &[(&str, u64)], limits: &ArchiveLimits) -> Result<Vec<Planned>, ArchiveError> {
    // Entries are at least the files; a cheap bound before any per-path work.
    if files.len() > limits.max_files {
        return Err(ArchiveError::TooManyFiles {
            limit: limits.max_files,
        });
    }
    for &(path, size) in files {
        check_path(path, limits)?;
        if size > limits.max_file_bytes {
            return Err(ArchiveError::FileTooLarge {
                path: path.to_string(),
                size,
                limit: limits.max_file_bytes,
            });
        }
    }
    for pair in files.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(ArchiveError::Duplicate {
                path: pair[0].0.to_string(),
            });
        }
    }
    // Every ancestor of a file is a directory entry; none may also be a file. (`a-b` sorts
    // between `a` and `a/b`, so this is a lookup, not a look at the neighbour.)
    let names: HashSet<&str> = files.iter().map(|&(path, _)| path).collect();
    let mut dirs: BTreeSet<&str> = BTreeSet::new();
    for &(path, _) in files {
        for (slash, _) in path.match_indices('/') {
            let ancestor = &path[..slash];
            if names.contains(ancestor) {
                return Err(ArchiveError::FileUsedAsDirectory {
                    path: ancestor.to_string(),
                    beneath: path.to_string(),
                });
            }
            dirs.insert(ancestor);
        }
    }
    if files.len() + dirs.len() > limits.max_files {
        return Err(ArchiveError::TooManyFiles {
            limit: limits.max_files,
        });
    }
    let mut planned: Vec<Planned> = files
        .iter()
        .enumerate()
        .map(|(i, &(path, _))| Planned {
            path: path.to_string(),
            kind: EntryKind::File,
            file: Some(i),
        })
        .chain(dirs.into_iter().map(|dir| Planned {
            path: dir.to_string(),
            kind: EntryKind::Directory,
            file: None,
        }))
        .collect();
    // String order is byte order.
    planned.sort_by_cached_key(|p| entry_name(&p.path, p.kind));
    // The readers' structural checks (case collisions among files and directories alike),
    // so the builder never writes what a reader refuses.
    let mut structure = Structure::default();
    let mut total: u64 = 0;
    for entry in &planned {
        structure.admit(&entry.path, entry.kind)?;
        if let Some(i) = entry.file {
            total = total.saturating_add(files[i].1);
            if total > limits.max_total_bytes {
                return Err(ArchiveError::TotalTooLarge {
                    path: entry.path.clone(),
                    limit: limits.max_total_bytes,
                });
            }
        }
    }
    structure.end()?;
    Ok(planned)
}

/// Builds the canonical archive of a package given as its list of files (see the module
/// docs for the format). The order of `files` does not matter. Files under a root `.git` or
/// `target` ([`SKIPPED_AT_ROOT`]) are left out, as [`build_archive`] leaves them out of a
/// folder; every other path must pass the path rules and the limits. Refused: a path given
/// twice ([`ArchiveError::Duplicate`]), two paths equal but for case
/// ([`ArchiveError::CaseCollision`]), a file whose path is also a directory of another file
/// ([`ArchiveError::FileUsedAsDirectory`]).
///
/// Directory entries are derived: each directory holding at least one file, at any depth,
/// is written once, before its contents. So a git tree and a clean checkout of it give the
/// same bytes.
pub fn build_archive_from_files(
    mut files: Vec<SourceFile>,
    limits: &ArchiveLimits,
) -> Result<Vec<u8>, ArchiveError> {
    files.retain(|f| !skipped_at_root(&f.path));
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let sizes: Vec<(&str, u64)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.data.len() as u64))
        .collect();
    let planned = plan(&sizes, limits)?;

    let mut tar = Vec::new();
    for entry in &planned {
        let (data, executable) = match entry.file {
            Some(i) => (files[i].data.as_slice(), files[i].executable),
            None => (&[][..], false),
        };
        tar.extend_from_slice(&canonical_header(
            &entry.path,
            entry.kind,
            data.len() as u64,
            executable,
        )?);
        tar.extend_from_slice(data);
        tar.resize(tar.len().next_multiple_of(BLOCK), 0);
    }
    tar.resize(tar.len() + 2 * BLOCK, 0);

    let out = gzip_canonical(&tar);
    if out.len() as u64 > limits.max_compressed_bytes {
        return Err(ArchiveError::CompressedTooLarge {
            size: out.len() as u64,
            limit: limits.max_compressed_bytes,
        });
    }
    Ok(out)
}

/// `tar` in the canonical gzip framing: the fixed header, a level-9 `miniz_oxide` deflate
/// stream, the CRC-32 and the length.
fn gzip_canonical(tar: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(tar);
    let deflated = miniz_oxide::deflate::compress_to_vec(tar, DEFLATE_LEVEL);
    let mut out = Vec::with_capacity(GZIP_HEADER.len() + deflated.len() + 8);
    out.extend_from_slice(&GZIP_HEADER);
    out.extend_from_slice(&deflated);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952).
    out.extend_from_slice(&(tar.len() as u32).to_le_bytes());
    out
}

/// A regular file found on disk, not yet read.
struct Found {
    path: String,
    executable: bool,
    disk: PathBuf,
    /// Size from the metadata, checked against the limits before the file is read.
    size: u64,
}

/// Builds the canonical archive of the package folder `dir`: the archive of its files
/// ([`build_archive_from_files`]). See the module docs for what is skipped and refused.
///
/// Empty directories (and directories holding only empty directories) are skipped: git
/// cannot hold them, so they are not part of a package, and an archive built from a clean
/// checkout must equal the one built from the committed tree.
pub fn build_archive(dir: &Path, limits: &ArchiveLimits) -> Result<Vec<u8>, ArchiveError> {
    let meta = fs::metadata(dir).map_err(io_err(dir))?;
    if !meta.is_dir() {
        return Err(ArchiveError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut found = collect(dir, limits)?;
    found.sort_by(|a, b| a.path.cmp(&b.path));
    // Every path and limit is checked, from the metadata, before a byte is read.
    let sizes: Vec<(&str, u64)> = found.iter().map(|f| (f.path.as_str(), f.size)).collect();
    plan(&sizes, limits)?;
    let mut files = Vec::with_capacity(found.len());
    let mut total: u64 = 0;
    for entry in found {
        let data = read_limited(&entry, limits)?;
        // A file may have grown since it was listed: keep memory within the limit anyway.
        total = total.saturating_add(data.len() as u64);
        if total > limits.max_total_bytes {
            return Err(ArchiveError::TotalTooLarge {
                path: entry.path,
                limit: limits.max_total_bytes,
            });
        }
        files.push(SourceFile {
            path: entry.path,
            executable: entry.executable,
            data,
        });
    }
    build_archive_from_files(files, limits)
}

/// Walks the folder `root` and returns its regular files, refusing what cannot be archived
/// (symlinks, special files, non-UTF-8 names) wherever it is. Directories are descended,
/// not returned. The walk keeps its own stack, so a deep tree cannot overflow the thread's.
fn collect(root: &Path, limits: &ArchiveLimits) -> Result<Vec<Found>, ArchiveError> {
    let mut found = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        for item in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let item = item.map_err(io_err(&dir))?;
            let disk = item.path();
            let join = |name: &str| {
                if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}/{name}")
                }
            };
            let file_name = item.file_name();
            let Some(name) = file_name.to_str() else {
                return Err(ArchiveError::NonUtf8Path {
                    path: join(&file_name.to_string_lossy()),
                });
            };
            if prefix.is_empty() && SKIPPED_AT_ROOT.contains(&name) {
                continue;
            }
            let path = join(name);
            // DirEntry::metadata does not follow symlinks.
            let meta = item.metadata().map_err(io_err(&disk))?;
            let file_type = meta.file_type();
            if file_type.is_dir() {
                pending.push((disk, path));
                continue;
            }
            if !file_type.is_file() {
                return Err(special_file(path, &file_type));
            }
            // Directories count too, but are only known once all files are: this bounds
            // the walk, `plan` checks the exact count.
            if found.len() >= limits.max_files {
                return Err(ArchiveError::TooManyFiles {
                    limit: limits.max_files,
                });
            }
            found.push(Found {
                path,
                executable: is_executable(&meta),
                disk,
                size: meta.len(),
            });
        }
    }
    Ok(found)
}

fn special_file(path: String, file_type: &fs::FileType) -> ArchiveError {
    if file_type.is_symlink() {
        return ArchiveError::Symlink { path };
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return ArchiveError::Fifo { path };
        }
        if file_type.is_socket() {
            return ArchiveError::Socket { path };
        }
        if file_type.is_char_device() {
            return ArchiveError::CharDevice { path };
        }
        if file_type.is_block_device() {
            return ArchiveError::BlockDevice { path };
        }
    }
    ArchiveError::UnsupportedEntryType {
        path,
        typeflag: '?',
    }
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

/// Reads a file, never more than the per-file limit plus one byte (the file may have grown
/// since it was listed).
fn read_limited(entry: &Found, limits: &ArchiveLimits) -> Result<Vec<u8>, ArchiveError> {
    let file = fs::File::open(&entry.disk).map_err(io_err(&entry.disk))?;
    let mut data = Vec::new();
    file.take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(io_err(&entry.disk))?;
    if data.len() as u64 > limits.max_file_bytes {
        return Err(ArchiveError::FileTooLarge {
            path: entry.path.clone(),
            size: data.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    Ok(data)
}

// ---------------------------------------------------------------------------------------
// Reading.

/// Counts decompressed bytes and fails once more than `remaining` are read.
struct Capped<R> {
    inner: R,
    remaining: u64,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Always allow one byte more than the cap, to tell "exactly at the cap" from "past it".
        let allowed = usize::try_from(self.remaining.saturating_add(1)).unwrap_or(usize::MAX);
        let len = buf.len().min(allowed);
        let n = self.inner.read(&mut buf[..len])?;
        if n as u64 > self.remaining {
            self.exceeded = true;
            return Err(io::Error::other("decompressed size cap exceeded"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Receives the verified entries of an archive, in order.
trait Visitor {
    /// An entry passed every check; its data (if a file) follows in [`Visitor::data`].
    fn entry(&mut self, info: &ArchiveEntryInfo) -> Result<(), ArchiveError>;
    fn data(&mut self, chunk: &[u8]) -> Result<(), ArchiveError>;
    /// The current entry's data is complete.
    fn end_entry(&mut self) -> Result<(), ArchiveError>;
}

/// Where the tar stream comes from: decoded whole up front (the fast path, see
/// [`crate::inflate`]), or inflated as it is read, which tells exactly what is wrong with an
/// archive the fast path would not take.
enum Source<'a> {
    Whole(io::Cursor<Vec<u8>>),
    Streaming(Box<Capped<flate2::bufread::GzDecoder<&'a [u8]>>>),
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Whole(tar) => tar.read(buf),
            Source::Streaming(stream) => stream.read(buf),
        }
    }
}

struct Reader<'a> {
    source: Source<'a>,
    cap: u64,
}

impl Reader<'_> {
    fn error(&self, err: io::Error, context: &str) -> ArchiveError {
        if matches!(&self.source, Source::Streaming(s) if s.exceeded) {
            ArchiveError::DecompressedTooLarge { limit: self.cap }
        } else if err.kind() == io::ErrorKind::UnexpectedEof {
            ArchiveError::Truncated {
                context: context.to_string(),
            }
        } else {
            ArchiveError::Corrupt {
                context: context.to_string(),
                detail: err.to_string(),
            }
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], context: &str) -> Result<(), ArchiveError> {
        self.source
            .read_exact(buf)
            .map_err(|e| self.error(e, context))
    }
}

/// Verifies `archive` completely, handing each entry to `visitor`.
fn walk(
    archive: &[u8],
    limits: &ArchiveLimits,
    cap: u64,
    visitor: &mut dyn Visitor,
) -> Result<(), ArchiveError> {
    walk_with(archive, limits, cap, visitor, true)
}

/// [`walk`], trying the whole-buffer decoder first when `fast` (tests compare both paths).
fn walk_with(
    archive: &[u8],
    limits: &ArchiveLimits,
    cap: u64,
    visitor: &mut dyn Visitor,
    fast: bool,
) -> Result<(), ArchiveError> {
    if archive.len() as u64 > limits.max_compressed_bytes {
        return Err(ArchiveError::CompressedTooLarge {
            size: archive.len() as u64,
            limit: limits.max_compressed_bytes,
        });
    }
    check_gzip_header(archive)?;
    let whole = fast
        .then(|| crate::inflate::inflate_whole(archive, cap))
        .flatten();
    let source = match whole {
        Some(tar) => Source::Whole(io::Cursor::new(tar)),
        None => Source::Streaming(Box::new(Capped {
            inner: flate2::bufread::GzDecoder::new(archive),
            remaining: cap,
            exceeded: false,
        })),
    };
    let mut reader = Reader { source, cap };
    let mut structure = Structure::default();
    let mut count = 0usize;
    let mut total: u64 = 0;
    let mut block = [0u8; BLOCK];
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let context = format!("header of entry {}", count + 1);
        reader.read_exact(&mut block, &context)?;
        if block.iter().all(|&b| b == 0) {
            structure.end()?;
            return finish(reader, &mut block);
        }
        count += 1;
        if count > limits.max_files {
            return Err(ArchiveError::TooManyFiles {
                limit: limits.max_files,
            });
        }
        let info = check_header(&block, count, limits, &mut structure)?;
        total = total.saturating_add(info.size);
        if total > limits.max_total_bytes {
            return Err(ArchiveError::TotalTooLarge {
                path: info.path,
                limit: limits.max_total_bytes,
            });
        }
        visitor.entry(&info)?;
        let context = format!("data of `{}`", info.path);
        let mut left = info.size;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
            reader.read_exact(&mut chunk[..n], &context)?;
            visitor.data(&chunk[..n])?;
            left -= n as u64;
        }
        let padding = (BLOCK - (info.size % BLOCK as u64) as usize) % BLOCK;
        reader.read_exact(&mut block[..padding], &context)?;
        if block[..padding].iter().any(|&b| b != 0) {
            return Err(ArchiveError::NonCanonicalPadding { path: info.path });
        }
        visitor.end_entry()?;
    }
}

/// After the first zero block: exactly one more, then the end of the gzip member (which
/// makes the decoder check the CRC and length), then the end of the input.
fn finish(mut reader: Reader<'_>, block: &mut [u8; BLOCK]) -> Result<(), ArchiveError> {
    reader.read_exact(block, "end-of-archive marker")?;
    if block.iter().any(|&b| b != 0) {
        return Err(ArchiveError::DataAfterEnd);
    }
    let mut probe = [0u8; 1];
    let n = reader
        .source
        .read(&mut probe)
        .map_err(|e| reader.error(e, "end of the gzip stream"))?;
    if n != 0 {
        return Err(ArchiveError::DataAfterEnd);
    }
    let rest = match reader.source {
        // The fast path took the whole input as one member.
        Source::Whole(_) => return Ok(()),
        Source::Streaming(stream) => stream.inner.into_inner(),
    };
    if rest.is_empty() {
        Ok(())
    } else if rest.starts_with(&GZIP_HEADER[..2]) {
        Err(ArchiveError::MultipleGzipMembers)
    } else {
        Err(ArchiveError::TrailingGarbage { bytes: rest.len() })
    }
}

fn check_gzip_header(archive: &[u8]) -> Result<(), ArchiveError> {
    if archive.len() < 2 || archive[..2] != GZIP_HEADER[..2] {
        return Err(ArchiveError::NotGzip);
    }
    if archive.len() < GZIP_HEADER.len() {
        return Err(ArchiveError::Truncated {
            context: "gzip header".to_string(),
        });
    }
    let field = |range: std::ops::Range<usize>| archive[range.clone()] != GZIP_HEADER[range];
    let wrong = if field(2..3) {
        Some("compression method")
    } else if field(3..4) {
        Some("flags (file name, comment, extra field or header CRC)")
    } else if field(4..8) {
        Some("mtime")
    } else if field(8..9) {
        Some("extra flags")
    } else if field(9..10) {
        Some("operating system")
    } else {
        None
    };
    match wrong {
        Some(field) => Err(ArchiveError::NonCanonicalGzip { field }),
        None => Ok(()),
    }
}

/// Names the header field at a byte offset, for [`ArchiveError::NonCanonicalHeader`].
fn header_field(offset: usize) -> &'static str {
    match offset {
        0..100 => "name",
        100..108 => "mode",
        108..116 => "uid",
        116..124 => "gid",
        124..136 => "size",
        136..148 => "mtime",
        148..156 => "checksum",
        156 => "type",
        157..257 => "link name",
        257..263 => "magic",
        263..265 => "version",
        265..297 => "user name",
        297..329 => "group name",
        329..337 => "device major",
        337..345 => "device minor",
        345..500 => "prefix",
        _ => "padding",
    }
}

/// A NUL-terminated header text field: the bytes before the first NUL, or `None` if
/// anything but NUL follows it (a name smuggling bytes after its end).
fn text_field(field: &[u8]) -> Option<&[u8]> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field[end..]
        .iter()
        .all(|&b| b == 0)
        .then_some(&field[..end])
}

/// Verifies one header block (entry number `index`, from 1) and returns the entry.
fn check_header(
    block: &[u8; BLOCK],
    index: usize,
    limits: &ArchiveLimits,
    structure: &mut Structure,
) -> Result<ArchiveEntryInfo, ArchiveError> {
    let header = tar::Header::from_byte_slice(block);
    let ustar = &block[257..265] == b"ustar\x0000";
    let name_field = &block[0..100];
    let prefix_field = &block[345..500];
    let lossy = || {
        let name = String::from_utf8_lossy(name_field.split(|&b| b == 0).next().unwrap_or(&[]));
        let prefix = String::from_utf8_lossy(prefix_field.split(|&b| b == 0).next().unwrap_or(&[]));
        if ustar && !prefix.is_empty() {
            format!("{prefix}/{name}")
        } else {
            name.into_owned()
        }
    };

    let computed: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { b' ' } else { b } as u32)
        .sum();
    if header.cksum().ok() != Some(computed) {
        return Err(ArchiveError::BadHeaderChecksum {
            path: lossy(),
            index,
        });
    }

    let typeflag = block[156];
    match typeflag {
        b'x' | b'g' => return Err(ArchiveError::PaxHeader { path: lossy() }),
        b'L' | b'K' => return Err(ArchiveError::GnuExtension { path: lossy() }),
        _ => {}
    }

    // The path: prefix and name, each NUL-terminated with nothing after the NUL.
    let (Some(name), Some(prefix)) = (text_field(name_field), text_field(prefix_field)) else {
        return Err(ArchiveError::NulInPath { path: lossy() });
    };
    let mut raw = Vec::with_capacity(prefix.len() + 1 + name.len());
    if ustar && !prefix.is_empty() {
        raw.extend_from_slice(prefix);
        raw.push(b'/');
    }
    raw.extend_from_slice(name);
    let Ok(full) = String::from_utf8(raw) else {
        return Err(ArchiveError::NonUtf8Path { path: lossy() });
    };
    let path = match typeflag {
        b'5' => full.strip_suffix('/').unwrap_or(&full).to_string(),
        _ => full.clone(),
    };
    if path.is_empty() {
        return Err(ArchiveError::InvalidComponent {
            path,
            component: String::new(),
            reason: "empty path",
        });
    }
    check_path(&path, limits)?;

    let kind = match typeflag {
        b'0' => EntryKind::File,
        b'5' => EntryKind::Directory,
        b'1' => return Err(ArchiveError::HardLink { path }),
        b'2' => return Err(ArchiveError::Symlink { path }),
        b'3' => return Err(ArchiveError::CharDevice { path }),
        b'4' => return Err(ArchiveError::BlockDevice { path }),
        b'6' => return Err(ArchiveError::Fifo { path }),
        other => {
            return Err(ArchiveError::UnsupportedEntryType {
                path,
                typeflag: other as char,
            })
        }
    };
    if !ustar {
        return Err(ArchiveError::NonCanonicalHeader {
            path,
            field: "magic",
        });
    }

    let bad = |field| {
        let path = path.clone();
        move |_| ArchiveError::BadHeaderField { path, field }
    };
    let mode = header.mode().map_err(bad("mode"))?;
    let executable = match (kind, mode) {
        (EntryKind::File, 0o644) => false,
        (EntryKind::File, 0o755) => true,
        (EntryKind::Directory, 0o755) => false,
        _ => return Err(ArchiveError::NonCanonicalMode { path, mode }),
    };
    let uid = header.uid().map_err(bad("uid"))?;
    let gid = header.gid().map_err(bad("gid"))?;
    if uid != 0 || gid != 0 {
        return Err(ArchiveError::NonCanonicalOwner { path, uid, gid });
    }
    let mtime = header.mtime().map_err(bad("mtime"))?;
    if mtime != 0 {
        return Err(ArchiveError::NonCanonicalMtime { path, mtime });
    }
    // The declared size is checked before a byte of data is read.
    let size = header.size().map_err(bad("size"))?;
    match kind {
        EntryKind::Directory if size != 0 => {
            return Err(ArchiveError::NonCanonicalHeader {
                path,
                field: "size",
            })
        }
        EntryKind::File if size > limits.max_file_bytes => {
            return Err(ArchiveError::FileTooLarge {
                path,
                size,
                limit: limits.max_file_bytes,
            })
        }
        _ => {}
    }

    structure.admit(&path, kind)?;

    let canonical = canonical_header(&path, kind, size, executable)?;
    // Name the field that differs; the checksum only if nothing else does (any other
    // difference changes the checksum too).
    let differs = |i: &usize| canonical[*i] != block[*i];
    let offset = (0..BLOCK)
        .filter(|i| !(148..156).contains(i))
        .find(differs)
        .or_else(|| (148..156).find(differs));
    if let Some(offset) = offset {
        return Err(ArchiveError::NonCanonicalHeader {
            path,
            field: header_field(offset),
        });
    }
    Ok(ArchiveEntryInfo {
        path,
        kind,
        size,
        executable,
    })
}

struct Lister(Vec<ArchiveEntryInfo>);

impl Visitor for Lister {
    fn entry(&mut self, info: &ArchiveEntryInfo) -> Result<(), ArchiveError> {
        self.0.push(info.clone());
        Ok(())
    }
    fn data(&mut self, _chunk: &[u8]) -> Result<(), ArchiveError> {
        Ok(())
    }
    fn end_entry(&mut self) -> Result<(), ArchiveError> {
        Ok(())
    }
}

/// Verifies the whole archive, as [`unpack_archive`] would, and lists its entries in
/// archive order, writing nothing.
pub fn list_archive(
    archive: &[u8],
    limits: &ArchiveLimits,
) -> Result<Vec<ArchiveEntryInfo>, ArchiveError> {
    let mut lister = Lister(Vec::new());
    walk(archive, limits, limits.decompressed_cap(), &mut lister)?;
    Ok(lister.0)
}

struct OneFile<'p> {
    wanted: &'p str,
    reading: bool,
    found: Option<Vec<u8>>,
}

impl Visitor for OneFile<'_> {
    fn entry(&mut self, info: &ArchiveEntryInfo) -> Result<(), ArchiveError> {
        self.reading = info.kind == EntryKind::File && info.path == self.wanted;
        if self.reading {
            self.found = Some(Vec::new());
        }
        Ok(())
    }
    fn data(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        if let (true, Some(found)) = (self.reading, self.found.as_mut()) {
            found.extend_from_slice(chunk);
        }
        Ok(())
    }
    fn end_entry(&mut self) -> Result<(), ArchiveError> {
        self.reading = false;
        Ok(())
    }
}

/// Verifies the whole archive and returns the content of the file at `path` (e.g.
/// `mission.yaml`), or `None` if it holds no such file. Writes nothing.
pub fn read_archive_file(
    archive: &[u8],
    path: &str,
    limits: &ArchiveLimits,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    let mut one = OneFile {
        wanted: path,
        reading: false,
        found: None,
    };
    walk(archive, limits, limits.decompressed_cap(), &mut one)?;
    Ok(one.found)
}

/// Verifies the whole archive and returns its files in archive order (the inverse of
/// [`build_archive_from_files`]). Writes nothing; memory is bounded by the limits.
pub fn read_archive_files(
    archive: &[u8],
    limits: &ArchiveLimits,
) -> Result<Vec<SourceFile>, ArchiveError> {
    let mut all = AllFiles(Vec::new());
    walk(archive, limits, limits.decompressed_cap(), &mut all)?;
    Ok(all.0)
}

struct AllFiles(Vec<SourceFile>);

impl Visitor for AllFiles {
    fn entry(&mut self, info: &ArchiveEntryInfo) -> Result<(), ArchiveError> {
        if info.kind == EntryKind::File {
            self.0.push(SourceFile {
                path: info.path.clone(),
                executable: info.executable,
                data: Vec::new(),
            });
        }
        Ok(())
    }
    fn data(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        // Only files carry data, and a file's data follows its own entry.
        if let Some(file) = self.0.last_mut() {
            file.data.extend_from_slice(chunk);
        }
        Ok(())
    }
    fn end_entry(&mut self) -> Result<(), ArchiveError> {
        Ok(())
    }
}

struct Unpacker {
    root: PathBuf,
    current: Option<(fs::File, PathBuf, bool)>,
    report: UnpackReport,
}

impl Visitor for Unpacker {
    fn entry(&mut self, info: &ArchiveEntryInfo) -> Result<(), ArchiveError> {
        // The path passed check_path and every parent is a directory this unpacker made,
        // so the target is inside `root`; create_new/create_dir never reuse what exists.
        let target = self.root.join(&info.path);
        match info.kind {
            EntryKind::Directory => fs::create_dir(&target).map_err(io_err(&target))?,
            EntryKind::File => {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(io_err(&target))?;
                self.current = Some((file, target, info.executable));
                self.report.files += 1;
                self.report.bytes += info.size;
            }
        }
        Ok(())
    }

    fn data(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        if let Some((file, target, _)) = self.current.as_mut() {
            file.write_all(chunk).map_err(io_err(target))?;
        }
        Ok(())
    }

    fn end_entry(&mut self) -> Result<(), ArchiveError> {
        if let Some((file, target, executable)) = self.current.take() {
            set_file_mode(&file, &target, executable)?;
        }
        Ok(())
    }
}

/// Gives an unpacked file exactly its canonical mode, whatever the umask.
#[cfg(unix)]
fn set_file_mode(file: &fs::File, target: &Path, executable: bool) -> Result<(), ArchiveError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(target))
}

#[cfg(not(unix))]
fn set_file_mode(_file: &fs::File, _target: &Path, _executable: bool) -> Result<(), ArchiveError> {
    Ok(())
}

/// Verifies `archive` and unpacks it to `dest`, which must not exist or be an empty
/// directory (its parent must exist).
///
/// Everything is written into a fresh temporary directory beside `dest` (same parent, so
/// the final rename is atomic), which becomes `dest` only once the whole archive, up to the
/// gzip CRC, has been verified. On any error the temporary directory is removed: `dest` is
/// left as it was and nothing is written anywhere else. Files are not fsynced (an unpacked
/// tree can always be unpacked again from its archive).
pub fn unpack_archive(
    archive: &[u8],
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<UnpackReport, ArchiveError> {
    match fs::symlink_metadata(dest) {
        Ok(meta) => {
            let empty_dir =
                meta.is_dir() && fs::read_dir(dest).map_err(io_err(dest))?.next().is_none();
            if !empty_dir {
                return Err(ArchiveError::DestinationExists {
                    path: dest.to_path_buf(),
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(dest)(e)),
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".mission-unpack-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o755));
    }
    let temp = builder.tempdir_in(parent).map_err(io_err(parent))?;
    // On error `temp` is dropped here, which removes it and everything in it.
    let report = unpack_into(archive, temp.path(), limits)?;
    if cfg!(not(unix)) && dest.exists() {
        // Only Unix renames over an empty directory.
        fs::remove_dir(dest).map_err(io_err(dest))?;
    }
    fs::rename(temp.path(), dest).map_err(io_err(dest))?;
    // The directory now lives at `dest`; keep TempDir from deleting (the now missing) path.
    let _ = temp.keep();
    Ok(report)
}

/// Verifies `archive` and unpacks it into `dest`, a folder this creates (it must not exist;
/// its parent must). Unlike [`unpack_archive`], `dest` is visible while it fills: this is
/// for a caller that stages the result in a private folder of its own (an installer's
/// staging area) and saves the temporary folder and rename per archive. On any error
/// `dest` is removed again.
pub fn unpack_archive_to_new_dir(
    archive: &[u8],
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<UnpackReport, ArchiveError> {
    fs::create_dir(dest).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            ArchiveError::DestinationExists {
                path: dest.to_path_buf(),
            }
        } else {
            io_err(dest)(e)
        }
    })?;
    // The canonical folder mode, whatever the umask (as the files get theirs).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = fs::set_permissions(dest, fs::Permissions::from_mode(0o755)) {
            let _ = fs::remove_dir(dest);
            return Err(io_err(dest)(e));
        }
    }
    unpack_into(archive, dest, limits).inspect_err(|_| {
        let _ = fs::remove_dir_all(dest);
    })
}

/// Verifies `archive` and writes its entries into the existing, empty folder `root`; on an
/// error what was written stays for the caller to remove.
fn unpack_into(
    archive: &[u8],
    root: &Path,
    limits: &ArchiveLimits,
) -> Result<UnpackReport, ArchiveError> {
    let mut unpacker = Unpacker {
        root: root.to_path_buf(),
        current: None,
        report: UnpackReport { files: 0, bytes: 0 },
    };
    walk(archive, limits, limits.decompressed_cap(), &mut unpacker)?;
    Ok(unpacker.report)
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryKind::File => "file",
            EntryKind::Directory => "directory",
        })
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, SystemTime};

    fn write(root: &Path, rel: &str, content: &[u8], mode: u32) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn set_mtime(path: &Path, secs: u64) {
        let file = fs::File::open(path).unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    /// The same package written in two different ways.
    fn two_copies() -> (tempfile::TempDir, tempfile::TempDir) {
        let a = tempfile::tempdir().unwrap();
        write(a.path(), "mission.yaml", b"name: x\n", 0o644);
        write(a.path(), "README.md", b"# x\n", 0o600);
        write(a.path(), "scripts/run.sh", b"#!/bin/sh\necho hi\n", 0o755);
        write(a.path(), "scripts/lib/util.sh", b"true\n", 0o644);
        write(a.path(), "tests/case-1.yaml", b"", 0o644);
        fs::create_dir(a.path().join("empty")).unwrap();
        fs::create_dir_all(a.path().join(".git/objects")).unwrap();
        write(a.path(), ".git/HEAD", b"ref: refs/heads/main\n", 0o644);
        // `target/` at the root holds earlier `mission package` output: never packed.
        write(a.path(), "target/mission/old-0.1.0.mission", b"old", 0o644);

        // Reverse creation order, other modes, mtimes and owners.
        let b = tempfile::tempdir().unwrap();
        fs::create_dir(b.path().join("empty")).unwrap();
        write(b.path(), "tests/case-1.yaml", b"", 0o600);
        write(b.path(), "scripts/lib/util.sh", b"true\n", 0o640);
        write(b.path(), "scripts/run.sh", b"#!/bin/sh\necho hi\n", 0o700);
        write(b.path(), "README.md", b"# x\n", 0o644);
        write(b.path(), "mission.yaml", b"name: x\n", 0o664);
        fs::write(b.path().join(".git"), "gitdir: /elsewhere\n").unwrap();
        for rel in [
            "README.md",
            "scripts/run.sh",
            "mission.yaml",
            "scripts",
            "empty",
        ] {
            set_mtime(&b.path().join(rel), 1_700_000_000);
        }
        fs::set_permissions(b.path().join("scripts"), fs::Permissions::from_mode(0o700)).unwrap();
        if is_root() {
            std::os::unix::fs::chown(b.path().join("README.md"), Some(1234), Some(5678)).unwrap();
            std::os::unix::fs::chown(b.path().join("scripts"), Some(42), Some(42)).unwrap();
        }
        (a, b)
    }

    fn is_root() -> bool {
        fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
    }

    #[test]
    fn same_tree_gives_same_bytes_whatever_the_disk_says() {
        let (a, b) = two_copies();
        let limits = ArchiveLimits::default();
        let one = build_archive(a.path(), &limits).unwrap();
        let two = build_archive(b.path(), &limits).unwrap();
        assert_eq!(cksum(&one), cksum(&two));
        assert_eq!(one, two);
    }

    #[test]
    fn content_or_exec_bit_changes_the_bytes() {
        let (a, _) = two_copies();
        let limits = ArchiveLimits::default();
        let before = build_archive(a.path(), &limits).unwrap();
        fs::set_permissions(
            a.path().join("README.md"),
            fs::Permissions::from_mode(0o744),
        )
        .unwrap();
        let exec = build_archive(a.path(), &limits).unwrap();
        assert_ne!(before, exec);
        fs::set_permissions(
            a.path().join("README.md"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert_eq!(build_archive(a.path(), &limits).unwrap(), before);
        fs::write(a.path().join("README.md"), "# y\n").unwrap();
        assert_ne!(build_archive(a.path(), &limits).unwrap(), before);
    }

    #[test]
    fn entries_are_canonical_and_git_is_skipped() {
        let (a, _) = two_copies();
        let archive = build_archive(a.path(), &ArchiveLimits::default()).unwrap();
        let listed: Vec<(String, EntryKind, u64, bool)> =
            list_archive(&archive, &ArchiveLimits::default())
                .unwrap()
                .into_iter()
                .map(|e| (e.path, e.kind, e.size, e.executable))
                .collect();
        use EntryKind::{Directory as D, File as F};
        let expected = [
            ("README.md", F, 4, false),
            ("mission.yaml", F, 8, false),
            ("scripts", D, 0, false),
            ("scripts/lib", D, 0, false),
            ("scripts/lib/util.sh", F, 5, false),
            ("scripts/run.sh", F, 18, true),
            ("tests", D, 0, false),
            ("tests/case-1.yaml", F, 0, false),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|&(p, k, s, x)| (p.to_string(), k, s, x))
            .collect();
        assert_eq!(listed, expected);
        // Raw tar headers: what any tar tool would see.
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&archive[..])
            .read_to_end(&mut tar)
            .unwrap();
        let mut reader = tar::Archive::new(&tar[..]);
        for entry in reader.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!(h.uid().unwrap(), 0);
            assert_eq!(h.gid().unwrap(), 0);
            assert_eq!(h.mtime().unwrap(), 0);
            assert_eq!(h.username().unwrap(), Some(""));
            assert!(h.as_ustar().is_some());
            let path = String::from_utf8(h.path_bytes().into_owned()).unwrap();
            match h.entry_type() {
                tar::EntryType::Directory => {
                    assert!(path.ends_with('/'), "{path}");
                    assert_eq!(h.mode().unwrap(), 0o755);
                }
                tar::EntryType::Regular => {
                    let want = if path == "scripts/run.sh" {
                        0o755
                    } else {
                        0o644
                    };
                    assert_eq!(h.mode().unwrap(), want, "{path}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(&archive[..10], &GZIP_HEADER);
    }

    #[test]
    fn golden_bytes_pin_the_format() {
        // If this fails, a dependency or a change here altered the canonical bytes: every
        // published checksum would stop being reproducible. Change it only on purpose.
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "mission.yaml",
            b"version: '1.0'\nname: golden\nsteps: []\n",
            0o644,
        );
        write(dir.path(), "bin/run", b"#!/bin/sh\n", 0o755);
        // Not part of the package: this checksum predates skipping empty directories.
        fs::create_dir_all(dir.path().join("docs/drafts")).unwrap();
        let archive = build_archive(dir.path(), &ArchiveLimits::default()).unwrap();
        // GNU tar lists this archive as: `bin/` 0755, `bin/run` 0755 10 bytes, `mission.yaml`
        // 0644 38 bytes, all 0/0 at 1970-01-01.
        let golden = "da6a64521a2f8757915b0ad1475413cb56ec84b68e62be18bc88eaf79bab0a33";
        assert_eq!(cksum(&archive), golden);
        // The same files, as a git tree would give them.
        let files = vec![
            source("bin/run", b"#!/bin/sh\n", true),
            source(
                "mission.yaml",
                b"version: '1.0'\nname: golden\nsteps: []\n",
                false,
            ),
        ];
        let from_files = build_archive_from_files(files, &ArchiveLimits::default()).unwrap();
        assert_eq!(cksum(&from_files), golden);
    }

    fn source(path: &str, data: &[u8], executable: bool) -> SourceFile {
        SourceFile {
            path: path.to_string(),
            executable,
            data: data.to_vec(),
        }
    }

    /// The files of `two_copies().0`, in a scrambled order, with the skipped root entries.
    fn two_copies_as_files() -> Vec<SourceFile> {
        vec![
            source("tests/case-1.yaml", b"", false),
            source(".git/HEAD", b"ref: refs/heads/main\n", false),
            source("scripts/run.sh", b"#!/bin/sh\necho hi\n", true),
            source("mission.yaml", b"name: x\n", false),
            source("target/mission/old-0.1.0.mission", b"old", false),
            source("scripts/lib/util.sh", b"true\n", false),
            source("README.md", b"# x\n", false),
        ]
    }

    #[test]
    fn from_files_equals_the_folder_build() {
        let (a, _) = two_copies();
        let limits = ArchiveLimits::default();
        let from_disk = build_archive(a.path(), &limits).unwrap();
        let mut files = two_copies_as_files();
        assert_eq!(
            build_archive_from_files(files.clone(), &limits).unwrap(),
            from_disk
        );
        // Any order of the list, and without the skipped entries: the same bytes.
        files.reverse();
        assert_eq!(
            build_archive_from_files(files.clone(), &limits).unwrap(),
            from_disk
        );
        files.retain(|f| !f.path.starts_with(".git/") && !f.path.starts_with("target/"));
        files.rotate_left(2);
        assert_eq!(
            build_archive_from_files(files.clone(), &limits).unwrap(),
            from_disk
        );
        // Directories are derived, each once, before their contents.
        let dirs: Vec<String> = list_archive(&from_disk, &limits)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EntryKind::Directory)
            .map(|e| e.path)
            .collect();
        assert_eq!(dirs, ["scripts", "scripts/lib", "tests"]);
        // The exec bit is content.
        let flipped: Vec<SourceFile> = files
            .iter()
            .cloned()
            .map(|mut f| {
                f.executable ^= f.path == "README.md";
                f
            })
            .collect();
        assert_ne!(
            build_archive_from_files(flipped, &limits).unwrap(),
            from_disk
        );
        // `target` is skipped only at the root: `sub/target/x` is packed.
        let deeper = vec![source("sub/target/x", b"x", false)];
        let archive = build_archive_from_files(deeper, &limits).unwrap();
        assert_eq!(
            read_archive_file(&archive, "sub/target/x", &limits).unwrap(),
            Some(b"x".to_vec())
        );
        // No files at all: the empty archive, as for an empty folder.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            build_archive_from_files(Vec::new(), &limits).unwrap(),
            build_archive(empty.path(), &limits).unwrap()
        );
    }

    #[test]
    fn empty_directories_on_disk_do_not_change_the_archive() {
        let (a, _) = two_copies();
        let limits = ArchiveLimits::default();
        fs::remove_dir(a.path().join("empty")).unwrap();
        let before = build_archive(a.path(), &limits).unwrap();
        for empty in [
            "empty",
            "scripts/lib/empty",
            "only/empty/dirs/below",
            "tests/x/y",
            // Names the path rules refuse are fine where nothing will be packed.
            "aux",
            "scripts/ends-with-dot.",
            "sub/.git",
        ] {
            fs::create_dir_all(a.path().join(empty)).unwrap();
            assert_eq!(build_archive(a.path(), &limits).unwrap(), before, "{empty}");
        }
        // A file in one makes it a directory of the package.
        write(a.path(), "only/empty/dirs/below/f", b"f", 0o644);
        let after = build_archive(a.path(), &limits).unwrap();
        let dirs: Vec<String> = list_archive(&after, &limits)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EntryKind::Directory)
            .map(|e| e.path)
            .collect();
        assert_eq!(
            dirs,
            [
                "only",
                "only/empty",
                "only/empty/dirs",
                "only/empty/dirs/below",
                "scripts",
                "scripts/lib",
                "tests"
            ]
        );
        // A symlink is refused even where it would be the only thing in a directory.
        std::os::unix::fs::symlink("/etc", a.path().join("tests/x/y/link")).unwrap();
        let err = build_archive(a.path(), &limits).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Symlink { path } if path == "tests/x/y/link"),
            "{err}"
        );
    }

    #[test]
    fn from_files_refusals_name_the_path() {
        let limits = ArchiveLimits::default();
        let refuse = |paths: &[&str]| {
            let files = paths.iter().map(|p| source(p, b"x", false)).collect();
            build_archive_from_files(files, &limits).unwrap_err()
        };
        let err = refuse(&["ok", "../evil"]);
        assert!(
            matches!(&err, ArchiveError::PathTraversal { path } if path == "../evil"),
            "{err}"
        );
        let err = refuse(&["a/../../evil"]);
        assert!(matches!(err, ArchiveError::PathTraversal { .. }), "{err}");
        let err = refuse(&["/etc/passwd"]);
        assert!(
            matches!(&err, ArchiveError::AbsolutePath { path } if path == "/etc/passwd"),
            "{err}"
        );
        let err = refuse(&["a/b", "mission.yaml", "a/b"]);
        assert!(
            matches!(&err, ArchiveError::Duplicate { path } if path == "a/b"),
            "{err}"
        );
        let err = refuse(&["README.md", "readme.md"]);
        assert!(matches!(err, ArchiveError::CaseCollision { .. }), "{err}");
        // Through a derived directory.
        let err = refuse(&["Docs/a", "docs/b"]);
        assert!(
            matches!(&err, ArchiveError::CaseCollision { path, other } if path == "docs" && other == "Docs"),
            "{err}"
        );
        let err = refuse(&["a", "a-b", "a/b/c"]);
        assert!(
            matches!(&err, ArchiveError::FileUsedAsDirectory { path, beneath } if path == "a" && beneath == "a/b/c"),
            "{err}"
        );
        assert!(err.to_string().contains("`a/b/c`"), "{err}");
        let err = refuse(&["sub/.git/config"]);
        assert!(
            matches!(err, ArchiveError::InvalidComponent { .. }),
            "{err}"
        );
        for bad in ["", "a/", "./a", "a//b"] {
            let err = refuse(&[bad]);
            assert!(
                matches!(err, ArchiveError::InvalidComponent { .. }),
                "{bad:?}: {err}"
            );
        }
        let err = refuse(&["dir\\file"]);
        assert!(matches!(err, ArchiveError::Backslash { .. }), "{err}");
        let err = refuse(&["scripts/COM1.sh"]);
        assert!(matches!(err, ArchiveError::ReservedName { .. }), "{err}");
        let err = refuse(&[&"d".repeat(101)]);
        assert!(matches!(err, ArchiveError::PathNotUstar { .. }), "{err}");
        // The same refusals whatever the order: the first in path order is named.
        let err = refuse(&["z/../x", "a/../x"]);
        assert!(
            matches!(&err, ArchiveError::PathTraversal { path } if path == "a/../x"),
            "{err}"
        );
    }

    #[test]
    fn from_files_enforces_limits() {
        let files = || {
            vec![
                source("sub/c", b"c", false),
                source("b", &[2u8; 600], false),
                source("a", &[1u8; 600], false),
            ]
        };
        let build = |limits: ArchiveLimits| build_archive_from_files(files(), &limits);
        let err = build(ArchiveLimits {
            max_file_bytes: 599,
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::FileTooLarge { path, size: 600, limit: 599 } if path == "a"),
            "{err}"
        );
        let err = build(ArchiveLimits {
            max_total_bytes: 1000,
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::TotalTooLarge { path, limit: 1000 } if path == "b"),
            "{err}"
        );
        // Three files, plus the derived directory `sub`: four entries.
        let err = build(ArchiveLimits {
            max_files: 3,
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(err, ArchiveError::TooManyFiles { limit: 3 }),
            "{err}"
        );
        let err = build(ArchiveLimits {
            max_path_bytes: 4,
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::PathTooLong { path, len: 5, limit: 4 } if path == "sub/c"),
            "{err}"
        );
        let err = build(ArchiveLimits {
            max_depth: 1,
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::TooDeep { path, depth: 2, limit: 1 } if path == "sub/c"),
            "{err}"
        );
        let err = build(ArchiveLimits {
            max_compressed_bytes: 50,
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(err, ArchiveError::CompressedTooLarge { limit: 50, .. }),
            "{err}"
        );
        // Exactly at every limit: accepted, and equal to the folder build.
        let exact = ArchiveLimits {
            max_file_bytes: 600,
            max_total_bytes: 1201,
            max_files: 4,
            max_path_bytes: 5,
            max_depth: 2,
            ..Default::default()
        };
        let archive = build(exact.clone()).unwrap();
        assert_eq!(list_archive(&archive, &exact).unwrap().len(), 4);
        let dir = tempfile::tempdir().unwrap();
        for f in files() {
            write(dir.path(), &f.path, &f.data, 0o644);
        }
        fs::create_dir(dir.path().join("empty")).unwrap();
        assert_eq!(build_archive(dir.path(), &exact).unwrap(), archive);
        // Skipped files do not count against the limits.
        let mut with_git = files();
        with_git.push(source(".git/objects/big", &[0u8; 4096], false));
        with_git.push(source("target", b"file", false));
        assert_eq!(build_archive_from_files(with_git, &exact).unwrap(), archive);
    }

    #[test]
    fn round_trip_build_unpack_build() {
        let (a, _) = two_copies();
        let limits = ArchiveLimits::default();
        let archive = build_archive(a.path(), &limits).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("pkg");
        let report = unpack_archive(&archive, &dest, &limits).unwrap();
        assert_eq!(
            report,
            UnpackReport {
                files: 5,
                bytes: 4 + 8 + 5 + 18
            }
        );
        assert_eq!(
            fs::read(dest.join("scripts/run.sh")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        let mode = fs::metadata(dest.join("scripts/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        // An empty directory is not part of the package.
        assert!(!dest.join("empty").exists());
        assert!(!dest.join(".git").exists());
        assert_eq!(build_archive(&dest, &limits).unwrap(), archive);
        // Nothing left beside it.
        let names: Vec<_> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("pkg")]);
    }

    #[test]
    fn unpack_into_an_empty_directory_but_not_a_full_one() {
        let (a, _) = two_copies();
        let limits = ArchiveLimits::default();
        let archive = build_archive(a.path(), &limits).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("pkg");
        fs::create_dir(&dest).unwrap();
        unpack_archive(&archive, &dest, &limits).unwrap();
        assert!(dest.join("mission.yaml").is_file());
        let err = unpack_archive(&archive, &dest, &limits).unwrap_err();
        assert!(
            matches!(err, ArchiveError::DestinationExists { .. }),
            "{err}"
        );
        let file = out.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = unpack_archive(&archive, &file, &limits).unwrap_err();
        assert!(
            matches!(err, ArchiveError::DestinationExists { .. }),
            "{err}"
        );
        assert_eq!(fs::read(&file).unwrap(), b"x");
    }

    #[test]
    fn unpack_to_a_new_dir_creates_it_refuses_one_that_exists_and_removes_a_failed_one() {
        let (a, _) = two_copies();
        let limits = ArchiveLimits::default();
        let archive = build_archive(a.path(), &limits).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("pkg");
        let report = unpack_archive_to_new_dir(&archive, &dest, &limits).unwrap();
        assert_eq!(report.files, 5);
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(build_archive(&dest, &limits).unwrap(), archive);

        // Even an empty folder is not taken over: the caller owns a fresh name.
        let empty = out.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let err = unpack_archive_to_new_dir(&archive, &empty, &limits).unwrap_err();
        assert!(
            matches!(err, ArchiveError::DestinationExists { .. }),
            "{err}"
        );
        assert!(fs::read_dir(&empty).unwrap().next().is_none());

        // A cut-off archive fails after files were written: the folder goes with them.
        let cut = out.path().join("cut");
        let err =
            unpack_archive_to_new_dir(&archive[..archive.len() - 12], &cut, &limits).unwrap_err();
        assert!(!cut.exists(), "{err}");
        let names: BTreeSet<_> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["empty".to_owned(), "pkg".to_owned()])
        );
    }

    #[test]
    fn read_one_file_without_unpacking() {
        let (a, _) = two_copies();
        let limits = ArchiveLimits::default();
        let archive = build_archive(a.path(), &limits).unwrap();
        assert_eq!(
            read_archive_file(&archive, "mission.yaml", &limits).unwrap(),
            Some(b"name: x\n".to_vec())
        );
        assert_eq!(
            read_archive_file(&archive, "scripts", &limits).unwrap(),
            None
        );
        assert_eq!(read_archive_file(&archive, "nope", &limits).unwrap(), None);
    }

    #[test]
    fn long_paths_use_the_ustar_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let deep = format!("{}/{}/{}", "a".repeat(90), "b".repeat(60), "c".repeat(80));
        write(dir.path(), &deep, b"deep", 0o644);
        let limits = ArchiveLimits::default();
        let archive = build_archive(dir.path(), &limits).unwrap();
        let paths: Vec<String> = list_archive(&archive, &limits)
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths.last().unwrap(), &deep);
        // GNU-compatible readers see the same path.
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&archive[..])
            .read_to_end(&mut tar)
            .unwrap();
        let mut reader = tar::Archive::new(&tar[..]);
        let last = reader.entries().unwrap().last().unwrap().unwrap();
        assert_eq!(last.path_bytes().as_ref(), deep.as_bytes());
        // A component over 100 bytes cannot be stored.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &"d".repeat(101), b"", 0o644);
        let err = build_archive(dir.path(), &limits).unwrap_err();
        assert!(matches!(err, ArchiveError::PathNotUstar { .. }), "{err}");
    }

    #[test]
    fn build_enforces_limits() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", &[1u8; 600], 0o644);
        write(dir.path(), "b", &[2u8; 600], 0o644);
        write(dir.path(), "sub/c", b"c", 0o644);
        let err = build_archive(
            dir.path(),
            &ArchiveLimits {
                max_file_bytes: 599,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::FileTooLarge { path, size: 600, limit: 599 } if path == "a" || path == "b"),
            "{err}"
        );
        let err = build_archive(
            dir.path(),
            &ArchiveLimits {
                max_total_bytes: 1000,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::TotalTooLarge { path, .. } if path == "b"),
            "{err}"
        );
        let err = build_archive(
            dir.path(),
            &ArchiveLimits {
                max_files: 3,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, ArchiveError::TooManyFiles { limit: 3 }),
            "{err}"
        );
        let err = build_archive(
            dir.path(),
            &ArchiveLimits {
                max_path_bytes: 4,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::PathTooLong { path, len: 5, limit: 4 } if path == "sub/c"),
            "{err}"
        );
        let err = build_archive(
            dir.path(),
            &ArchiveLimits {
                max_depth: 1,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(&err, ArchiveError::TooDeep { path, depth: 2, .. } if path == "sub/c"),
            "{err}"
        );
        let err = build_archive(
            dir.path(),
            &ArchiveLimits {
                max_compressed_bytes: 50,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, ArchiveError::CompressedTooLarge { limit: 50, .. }),
            "{err}"
        );
        // Exactly at every limit is fine.
        let exact = ArchiveLimits {
            max_file_bytes: 600,
            max_total_bytes: 1201,
            max_files: 4,
            max_path_bytes: 5,
            max_depth: 2,
            ..Default::default()
        };
        let archive = build_archive(dir.path(), &exact).unwrap();
        assert_eq!(list_archive(&archive, &exact).unwrap().len(), 4);
    }

    #[test]
    fn build_refuses_what_cannot_be_archived() {
        let limits = ArchiveLimits::default();
        let check = |setup: &dyn Fn(&Path), want: &str| {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "mission.yaml", b"x", 0o644);
            setup(dir.path());
            let err = build_archive(dir.path(), &limits).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{want}: {err:?}");
            err.to_string()
        };
        let msg = check(
            &|d| std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap(),
            "Symlink",
        );
        assert!(msg.contains("`link`"), "{msg}");
        check(
            &|d| std::os::unix::fs::symlink("mission.yaml", d.join("sub-link")).unwrap(),
            "Symlink",
        );
        check(
            &|d| {
                let status = std::process::Command::new("mkfifo")
                    .arg(d.join("pipe"))
                    .status()
                    .unwrap();
                assert!(status.success());
            },
            "Fifo",
        );
        check(
            &|d| {
                // The socket file stays after the listener is dropped.
                std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
            },
            "Socket",
        );
        check(
            &|d| {
                use std::os::unix::ffi::OsStrExt;
                let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
                fs::write(d.join(name), "x").unwrap();
            },
            "NonUtf8Path",
        );
        check(
            &|d| write(d, "sub/.git/config", b"[core]\n", 0o644),
            "InvalidComponent",
        );
        check(&|d| write(d, "con.txt", b"", 0o644), "ReservedName");
        check(&|d| write(d, "a:b", b"", 0o644), "InvalidComponent");
        check(&|d| write(d, "back\\slash", b"", 0o644), "Backslash");
        check(&|d| write(d, "...", b"", 0o644), "InvalidComponent");
        check(&|d| write(d, "Mission.yaml", b"", 0o644), "CaseCollision");
        let err = build_archive(Path::new("/definitely/not/here"), &limits).unwrap_err();
        assert!(matches!(err, ArchiveError::Io { .. }), "{err}");
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = build_archive(file.path(), &limits).unwrap_err();
        assert!(matches!(err, ArchiveError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn empty_package_is_a_valid_archive() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ArchiveLimits::default();
        let archive = build_archive(dir.path(), &limits).unwrap();
        assert!(list_archive(&archive, &limits).unwrap().is_empty());
        let out = tempfile::tempdir().unwrap();
        let report = unpack_archive(&archive, &out.path().join("p"), &limits).unwrap();
        assert_eq!(report, UnpackReport { files: 0, bytes: 0 });
    }

    #[test]
    fn whole_buffer_and_streaming_decoding_agree() {
        // Each tar is wrapped in a valid canonical gzip member, so the whole-buffer path
        // takes it; the tar-level checks must then say exactly what streaming says.
        let limits = ArchiveLimits::default();
        let valid = build_archive_from_files(two_copies_as_files(), &limits).unwrap();
        let tar = crate::inflate::inflate_whole(&valid, u64::MAX).unwrap();
        let end = tar.len() - 2 * BLOCK;
        let mut after_end = tar.clone();
        after_end.extend_from_slice(&[0u8; BLOCK]);
        after_end[end + 2 * BLOCK] = 1;
        let mut bad_padding = tar.clone();
        bad_padding[end - 1] = b'x';
        let mut bad_header = tar.clone();
        bad_header[100] = b'7'; // the first entry's mode
        let cases = [
            ("valid", tar.clone()),
            ("data after the end marker", after_end),
            ("non-zero padding", bad_padding),
            ("a header that is not canonical", bad_header),
            ("cut off inside the last entry", tar[..end - 700].to_vec()),
            ("cut off before the end marker", tar[..end].to_vec()),
            ("empty", Vec::new()),
        ];
        for (what, tar) in cases {
            let archive = gzip_canonical(&tar);
            assert!(
                crate::inflate::inflate_whole(&archive, limits.decompressed_cap()).is_some(),
                "{what}: the whole-buffer path should take it"
            );
            let run = |fast| {
                let mut lister = Lister(Vec::new());
                walk_with(
                    &archive,
                    &limits,
                    limits.decompressed_cap(),
                    &mut lister,
                    fast,
                )
                .map(|()| format!("{:?}", lister.0))
                .map_err(|e| e.to_string())
            };
            assert_eq!(run(true), run(false), "{what}");
            assert_eq!(
                run(true).is_ok(),
                what == "valid",
                "{what}: {:?}",
                run(true)
            );
        }
    }

    #[test]
    fn decompression_stops_at_the_cap() {
        // Framing checks refuse every bomb first; the cap still holds if they did not.
        let (a, _) = two_copies();
        let limits = ArchiveLimits::default();
        let archive = build_archive(a.path(), &limits).unwrap();
        let mut lister = Lister(Vec::new());
        let err = walk(&archive, &limits, 1000, &mut lister).unwrap_err();
        assert!(
            matches!(err, ArchiveError::DecompressedTooLarge { limit: 1000 }),
            "{err}"
        );
        let mut lister = Lister(Vec::new());
        let tar_len = 512 * (8 + 4 + 2); // 8 headers, 4 non-empty files, end marker
        walk(&archive, &limits, tar_len, &mut lister).unwrap();
        let mut lister = Lister(Vec::new());
        let err = walk(&archive, &limits, tar_len - 1, &mut lister).unwrap_err();
        assert!(
            matches!(err, ArchiveError::DecompressedTooLarge { .. }),
            "{err}"
        );
    }

    #[test]
    fn path_rules() {
        let limits = ArchiveLimits::default();
        for ok in [
            "a",
            "a/b.c",
            "README.md",
            ".github/x.yml",
            "con-fig",
            "a b",
            "ünïcode",
            ".env",
            "com10",
        ] {
            check_path(ok, &limits).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "a//b",
            ".",
            "a/./b",
            "a.",
            "a ",
            "AUX",
            "lpt1.log",
            "x/Nul.tar.gz",
            "a\tb",
            "q?",
            ".GIT",
            "a/.git",
        ] {
            assert!(check_path(bad, &limits).is_err(), "{bad:?}");
        }
        assert!(matches!(
            check_path("a/../b", &limits),
            Err(ArchiveError::PathTraversal { .. })
        ));
        assert!(matches!(
            check_path("/a", &limits),
            Err(ArchiveError::AbsolutePath { .. })
        ));
        assert!(matches!(
            check_path("a\0b", &limits),
            Err(ArchiveError::NulInPath { .. })
        ));
    }

    #[test]
    fn read_archive_files_inverts_build_archive_from_files() {
        let files = vec![
            SourceFile {
                path: "mission.yaml".into(),
                executable: false,
                data: b"name: x\n".to_vec(),
            },
            SourceFile {
                path: "scripts/run.sh".into(),
                executable: true,
                data: b"#!/bin/sh\n".to_vec(),
            },
            SourceFile {
                path: "README.md".into(),
                executable: false,
                data: Vec::new(),
            },
        ];
        let limits = ArchiveLimits::default();
        let archive = build_archive_from_files(files.clone(), &limits).unwrap();
        let mut back = read_archive_files(&archive, &limits).unwrap();
        let mut expected = files;
        back.sort_by(|a, b| a.path.cmp(&b.path));
        expected.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(back, expected);
        assert_eq!(build_archive_from_files(back, &limits).unwrap(), archive);
    }
}
