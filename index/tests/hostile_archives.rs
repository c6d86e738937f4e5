//! Hostile `.mission` archives: each is crafted by hand (with the `tar` crate's `Header` API,
//! or raw header bytes where the crate itself refuses to write the attack), handed to
//! `unpack_archive`, and must be refused with the expected `ArchiveError` variant, leaving no
//! trace: the destination does not exist, no temporary directory remains beside it, and the
//! sentinel files around it (in the destination's parent and in a sibling `outside/`) are
//! exactly as they were. `list_archive` must refuse the same archive for the same reason.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use mission_index::archive::{
    build_archive, build_archive_from_files, list_archive, unpack_archive, ArchiveError,
    ArchiveLimits, SourceFile,
};
use tar::{EntryType, Header};

// ------------------------------------------------------------------------------------------
// Crafting archives.

/// A header as the builder would write it, for `path` (a directory's path ends in `/`).
fn header(path: &str, ty: EntryType, size: u64) -> Header {
    let mut h = Header::new_ustar();
    set_path_bytes(&mut h, path.as_bytes());
    h.set_entry_type(ty);
    h.set_mode(if ty == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h.set_cksum();
    h
}

/// Writes name bytes straight into the ustar `name` (and, past 100 bytes, `prefix`) fields,
/// bypassing `set_path`, which refuses `..`, absolute paths and the like.
fn set_path_bytes(h: &mut Header, bytes: &[u8]) {
    let ustar = h.as_ustar_mut().unwrap();
    ustar.name = [0; 100];
    ustar.prefix = [0; 155];
    if bytes.len() <= 100 {
        ustar.name[..bytes.len()].copy_from_slice(bytes);
    } else {
        let split = bytes
            .iter()
            .enumerate()
            .position(|(i, &b)| b == b'/' && bytes.len() - i - 1 <= 100)
            .unwrap();
        ustar.prefix[..split].copy_from_slice(&bytes[..split]);
        ustar.name[..bytes.len() - split - 1].copy_from_slice(&bytes[split + 1..]);
    }
    h.set_cksum();
}

fn file(path: &str, data: &[u8]) -> (Header, Vec<u8>) {
    (
        header(path, EntryType::Regular, data.len() as u64),
        data.to_vec(),
    )
}

fn dir(path: &str) -> (Header, Vec<u8>) {
    (header(path, EntryType::Directory, 0), Vec::new())
}

/// A tar stream of the given entries: header, data, zero padding; then two zero blocks.
fn tar_stream(entries: &[(Header, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, data) in entries {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Gzip with the canonical header (no name, mtime 0, best compression, OS 255).
fn gz(tar: &[u8]) -> Vec<u8> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    enc.write_all(tar).unwrap();
    enc.finish().unwrap()
}

fn archive(entries: &[(Header, Vec<u8>)]) -> Vec<u8> {
    gz(&tar_stream(entries))
}

/// A canonical-header gzip of `prefix` followed by `mib` MiB of zeros, built in
/// milliseconds: deflate one MiB of zeros once (sync-flushed, so it ends on a byte
/// boundary), repeat those bytes, and combine CRCs. Every back-reference in the repeated
/// chunk points at most 32 KiB back into zeros, so the stream is valid anywhere after a
/// zero chunk; `zero_bomb_helper_is_valid_gzip` checks it against a real decoder.
fn gz_with_zeros(prefix: &[u8], mib: u64) -> Vec<u8> {
    use flate2::{Compress, Crc, FlushCompress};
    let zeros = vec![0u8; 1 << 20];
    let mut deflate = Compress::new(Compression::best(), false);
    let mut run = |input: &[u8], flush| {
        let mut out = Vec::with_capacity(input.len() + 1024);
        let before = deflate.total_in();
        deflate.compress_vec(input, &mut out, flush).unwrap();
        assert_eq!(deflate.total_in() - before, input.len() as u64);
        out
    };
    let head = run(prefix, FlushCompress::Sync);
    let first = run(&zeros, FlushCompress::Sync);
    let steady = run(&zeros, FlushCompress::Sync);
    let end = run(&[], FlushCompress::Finish);

    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff];
    out.extend_from_slice(&head);
    let mut crc = Crc::new();
    crc.update(prefix);
    let mut chunk_crc = Crc::new();
    chunk_crc.update(&zeros);
    for i in 0..mib {
        out.extend_from_slice(if i == 0 { &first } else { &steady });
        crc.combine(&chunk_crc);
    }
    out.extend_from_slice(&end);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    let len = prefix.len() as u64 + (mib << 20);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out
}

#[test]
fn zero_bomb_helper_is_valid_gzip() {
    let bytes = gz_with_zeros(b"prefix", 3);
    let plain = gunzip(&bytes);
    assert_eq!(plain.len(), 6 + (3 << 20));
    assert_eq!(&plain[..6], b"prefix");
    assert!(plain[6..].iter().all(|&b| b == 0));
}

// ------------------------------------------------------------------------------------------
// The scene and the check.

/// `root/work/` holds the destination and a sentinel file; `root/outside/` is a sibling
/// with its own sentinel; `root/work/dest` is where the archive is unpacked.
struct Scene {
    root: tempfile::TempDir,
    dest: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("work")).unwrap();
        fs::create_dir(root.path().join("outside")).unwrap();
        fs::write(root.path().join("work/sentinel.txt"), "work sentinel").unwrap();
        fs::write(root.path().join("outside/sentinel.txt"), "outside sentinel").unwrap();
        let dest = root.path().join("work/dest");
        Scene { root, dest }
    }

    /// Every path under the scene root with its content (or `<dir>`, `<link>`).
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap().to_path_buf();
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    out.insert(rel, "<dir>".into());
                    walk(base, &p, out);
                } else if ft.is_symlink() {
                    out.insert(rel, "<link>".into());
                } else {
                    out.insert(rel, String::from_utf8_lossy(&fs::read(&p).unwrap()).into());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.root.path(), self.root.path(), &mut out);
        out
    }
}

/// Unpacks `archive` and checks it is refused as `expected` (a predicate on the error)
/// with no trace left; `list_archive` must refuse it the same way. Returns the error.
fn refused(
    archive: &[u8],
    limits: &ArchiveLimits,
    expected: impl Fn(&ArchiveError) -> bool,
) -> ArchiveError {
    let listed = list_archive(archive, limits).expect_err("list_archive accepted it");
    assert!(
        expected(&listed),
        "list_archive: unexpected error {listed:?}"
    );

    let scene = Scene::new();
    let before = scene.snapshot();
    let err = unpack_archive(archive, &scene.dest, limits).expect_err("unpack accepted it");
    assert!(expected(&err), "unpack_archive: unexpected error {err:?}");
    assert!(!scene.dest.exists(), "destination was created");
    assert_eq!(
        scene.snapshot(),
        before,
        "something was written or left behind"
    );

    // Unpacking into an existing empty directory leaves it empty.
    fs::create_dir(&scene.dest).unwrap();
    let err2 = unpack_archive(archive, &scene.dest, limits).expect_err("unpack accepted it");
    assert!(expected(&err2), "{err2:?}");
    assert_eq!(fs::read_dir(&scene.dest).unwrap().count(), 0);
    err
}

fn defaults() -> ArchiveLimits {
    ArchiveLimits::default()
}

macro_rules! refuse {
    ($archive:expr, $pattern:pat $(if $guard:expr)?) => {
        refuse!($archive, &defaults(), $pattern $(if $guard)?)
    };
    ($archive:expr, $limits:expr, $pattern:pat $(if $guard:expr)?) => {
        refused(&$archive, $limits, |e| matches!(e, $pattern $(if $guard)?))
    };
}

// ------------------------------------------------------------------------------------------
// The control: the helpers above make archives the unpacker accepts, so every refusal
// below is caused by the one thing each test changes.

#[test]
fn control_hand_made_canonical_archive_is_accepted_and_equals_the_builder() {
    let good = archive(&[
        dir("a/"),
        file("a/b.txt", b"hello"),
        file("mission.yaml", b"name: x\n"),
    ]);
    let scene = Scene::new();
    let report = unpack_archive(&good, &scene.dest, &defaults()).unwrap();
    assert_eq!((report.files, report.bytes), (2, 13));
    assert_eq!(fs::read(scene.dest.join("a/b.txt")).unwrap(), b"hello");
    // Same tar stream as the builder's for the unpacked tree.
    let rebuilt = build_archive(&scene.dest, &defaults()).unwrap();
    assert_eq!(gunzip(&rebuilt), gunzip(&good));
    // And the builder from a list of files (as from a git tree) writes the same bytes.
    let files = vec![
        SourceFile {
            path: "mission.yaml".into(),
            executable: false,
            data: b"name: x\n".to_vec(),
        },
        SourceFile {
            path: "a/b.txt".into(),
            executable: false,
            data: b"hello".to_vec(),
        },
    ];
    assert_eq!(
        build_archive_from_files(files, &defaults()).unwrap(),
        rebuilt
    );
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

// ------------------------------------------------------------------------------------------
// Paths.

#[test]
fn dot_dot_at_the_start() {
    let err = refuse!(
        archive(&[file("../evil", b"pwned")]),
        ArchiveError::PathTraversal { .. }
    );
    assert!(err.to_string().contains("`../evil`"), "{err}");
}

#[test]
fn dot_dot_in_the_middle() {
    let err = refuse!(
        archive(&[dir("a/"), file("a/../../evil", b"pwned")]),
        ArchiveError::PathTraversal { .. }
    );
    assert!(err.to_string().contains("a/../../evil"), "{err}");
}

#[test]
fn absolute_path() {
    refuse!(
        archive(&[file("/abs/evil", b"pwned")]),
        ArchiveError::AbsolutePath { .. }
    );
}

#[test]
fn backslash_name() {
    refuse!(
        archive(&[file("..\\evil", b"pwned")]),
        ArchiveError::Backslash { .. }
    );
}

#[test]
fn nul_inside_the_name() {
    // `a` NUL `../evil`: a C reader stops at the NUL, another might not.
    refuse!(
        archive(&[file("a\0../evil", b"x")]),
        ArchiveError::NulInPath { .. }
    );
}

#[test]
fn non_utf8_name() {
    let (mut h, data) = file("x", b"x");
    set_path_bytes(&mut h, b"caf\xe9.txt");
    refuse!(archive(&[(h, data)]), ArchiveError::NonUtf8Path { .. });
}

#[test]
fn overlong_path() {
    let (d, e) = ("d".repeat(60), "e".repeat(79));
    let long = format!("{d}/{e}/{}", "f".repeat(100)); // 241 bytes
    let limits = defaults();
    let err = refuse!(
        archive(&[
            dir(&format!("{d}/")),
            dir(&format!("{d}/{e}/")),
            file(&long, b"x")
        ]),
        &limits,
        ArchiveError::PathTooLong {
            len: 241,
            limit: 240,
            ..
        }
    );
    assert!(err.to_string().contains(&long));
}

#[test]
fn windows_reserved_and_dot_only_components() {
    refuse!(
        archive(&[file("CON", b"x")]),
        ArchiveError::ReservedName { .. }
    );
    refuse!(
        archive(&[file("aux.yaml", b"x")]),
        ArchiveError::ReservedName { .. }
    );
    refuse!(
        archive(&[file("./x", b"x")]),
        ArchiveError::InvalidComponent { .. }
    );
    refuse!(
        archive(&[dir(".../")]),
        ArchiveError::InvalidComponent { .. }
    );
    refuse!(
        archive(&[file("a:b", b"x")]),
        ArchiveError::InvalidComponent { .. }
    );
    refuse!(
        archive(&[
            dir("sub/"),
            dir("sub/.git/"),
            file("sub/.git/config", b"[core]")
        ]),
        ArchiveError::InvalidComponent { .. }
    );
}

#[test]
fn names_equal_but_for_case() {
    refuse!(
        archive(&[file("README.md", b"a"), file("readme.md", b"b")]),
        ArchiveError::CaseCollision { .. }
    );
}

// ------------------------------------------------------------------------------------------
// Entry types.

fn link(path: &str, ty: EntryType, target: &str) -> (Header, Vec<u8>) {
    let mut h = header(path, ty, 0);
    h.set_mode(0o777);
    h.set_link_name_literal(target).unwrap();
    h.set_cksum();
    (h, Vec::new())
}

#[test]
fn symlink() {
    let err = refuse!(
        archive(&[link("link", EntryType::Symlink, "/etc/passwd")]),
        ArchiveError::Symlink { .. }
    );
    assert!(err.to_string().contains("`link`"), "{err}");
}

#[test]
fn symlink_then_file_through_it() {
    // The classic: `link -> ../outside`, then `link/sentinel.txt` overwrites the sentinel.
    refuse!(
        archive(&[
            link("link", EntryType::Symlink, "../../outside"),
            file("link/sentinel.txt", b"pwned"),
        ]),
        ArchiveError::Symlink { .. }
    );
}

#[test]
fn hard_link() {
    refuse!(
        archive(&[
            file("a", b"x"),
            link("b", EntryType::Link, "../../outside/sentinel.txt")
        ]),
        ArchiveError::HardLink { .. }
    );
}

#[test]
fn devices_and_fifo() {
    let device = |ty| {
        let (mut h, d) = (header("dev", ty, 0), Vec::new());
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_cksum();
        archive(&[(h, d)])
    };
    refuse!(device(EntryType::Char), ArchiveError::CharDevice { .. });
    refuse!(device(EntryType::Block), ArchiveError::BlockDevice { .. });
    refuse!(
        archive(&[(header("pipe", EntryType::Fifo, 0), Vec::new())]),
        ArchiveError::Fifo { .. }
    );
}

#[test]
fn other_entry_types() {
    for ty in [
        EntryType::Continuous,
        EntryType::GNUSparse,
        EntryType::new(b'Z'),
    ] {
        refuse!(
            archive(&[(header("x", ty, 0), Vec::new())]),
            ArchiveError::UnsupportedEntryType { .. }
        );
    }
    // The pre-POSIX regular file type `\0` (the tar crate would write it as `0`).
    let (mut h, d) = file("x", b"x");
    h.as_mut_bytes()[156] = 0;
    h.set_cksum();
    refuse!(
        archive(&[(h, d)]),
        ArchiveError::UnsupportedEntryType { typeflag: '\0', .. }
    );
}

#[test]
fn pax_header_overriding_the_path() {
    let record = b"23 path=../../outside/x\n";
    assert_eq!(record.len(), 23 + 1);
    let mut pax = header(
        "PaxHeaders/innocent",
        EntryType::XHeader,
        record.len() as u64,
    );
    pax.set_cksum();
    refuse!(
        archive(&[(pax, record.to_vec()), file("innocent", b"pwned")]),
        ArchiveError::PaxHeader { .. }
    );
    let global = header("pax_global_header", EntryType::XGlobalHeader, 0);
    refuse!(
        archive(&[(global, Vec::new()), file("innocent", b"x")]),
        ArchiveError::PaxHeader { .. }
    );
}

#[test]
fn gnu_long_name() {
    let name = b"../../outside/sentinel.txt\0";
    let mut long = Header::new_gnu();
    long.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    long.set_entry_type(EntryType::GNULongName);
    long.set_mode(0o644);
    long.set_size(name.len() as u64);
    long.set_cksum();
    refuse!(
        archive(&[(long, name.to_vec()), file("innocent", b"pwned")]),
        ArchiveError::GnuExtension { .. }
    );
}

// ------------------------------------------------------------------------------------------
// Structure.

#[test]
fn duplicate_entry() {
    let err = refuse!(
        archive(&[file("a", b"first"), file("a", b"second")]),
        ArchiveError::Duplicate { .. }
    );
    assert!(err.to_string().contains("`a`"), "{err}");
    // A file, then a directory of the same name.
    refuse!(
        archive(&[file("a", b"x"), file("a-b", b"x"), dir("a/")]),
        ArchiveError::Duplicate { .. }
    );
}

#[test]
fn wrong_order() {
    refuse!(
        archive(&[file("b", b"x"), file("a", b"x")]),
        ArchiveError::OutOfOrder { .. }
    );
    // Directory after its contents.
    refuse!(
        archive(&[dir("a/"), file("a/x", b"x"), file("a/w", b"x")]),
        ArchiveError::OutOfOrder { .. }
    );
}

#[test]
fn file_under_a_file() {
    refuse!(
        archive(&[file("a", b"x"), file("a/b", b"x")]),
        ArchiveError::ParentIsFile { .. }
    );
}

#[test]
fn file_without_its_directory_entry() {
    refuse!(
        archive(&[file("a/b", b"x")]),
        ArchiveError::MissingParent { .. }
    );
}

#[test]
fn empty_directory_entry() {
    // The builder derives directories from files (git cannot hold an empty one), so a
    // directory with nothing beneath it is not canonical, wherever it is.
    let err = refuse!(
        archive(&[dir("empty/"), file("mission.yaml", b"name: x\n")]),
        ArchiveError::EmptyDirectory { path } if path == "empty"
    );
    assert!(err.to_string().contains("`empty/`"), "{err}");
    // The last entry.
    refuse!(
        archive(&[file("mission.yaml", b"x"), dir("zzz/")]),
        ArchiveError::EmptyDirectory { path } if path == "zzz"
    );
    // The only entry.
    refuse!(
        archive(&[dir("d/")]),
        ArchiveError::EmptyDirectory { path } if path == "d"
    );
    // Nested: `a/b/` is followed by a sibling file, not by its own contents.
    refuse!(
        archive(&[dir("a/"), dir("a/b/"), file("a/c", b"x")]),
        ArchiveError::EmptyDirectory { path } if path == "a/b"
    );
    // A directory holding only an empty directory.
    refuse!(
        archive(&[dir("a/"), dir("a/b/"), file("z", b"x")]),
        ArchiveError::EmptyDirectory { path } if path == "a/b"
    );
    // The control: a file at the bottom makes every directory above it canonical.
    let good = archive(&[dir("a/"), dir("a/b/"), file("a/b/c", b"x"), file("z", b"x")]);
    let listed = list_archive(&good, &defaults()).unwrap();
    assert_eq!(listed.len(), 4);
}

// ------------------------------------------------------------------------------------------
// Sizes and bombs.

#[test]
fn huge_declared_size() {
    // 100 GiB declared (base-256 size field), 5 bytes present.
    let (mut h, _) = file("big", b"");
    h.set_size(100 << 30);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(b"small");
    tar.resize(4096, 0);
    refuse!(
        gz(&tar),
        ArchiveError::FileTooLarge { size, .. } if *size == 100 << 30
    );
}

#[test]
fn total_size_over_the_limit() {
    let limits = ArchiveLimits {
        max_total_bytes: 1000,
        max_file_bytes: 600,
        ..defaults()
    };
    refuse!(
        archive(&[file("a", &[1; 600]), file("b", &[2; 600])]),
        &limits,
        ArchiveError::TotalTooLarge { .. }
    );
}

#[test]
fn gzip_bomb_of_zeros() {
    // 1 GiB of zeros, about 1 MiB compressed. The first zero block reads as the end of the
    // archive, so the unpacker stops one byte after the second: it never inflates the rest.
    let bomb = gz_with_zeros(&[], 1024);
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    refuse!(bomb, ArchiveError::DataAfterEnd);
}

#[test]
fn gzip_bomb_inside_a_file() {
    // A header honestly declaring 1 GiB of zeros: refused from the header alone.
    let (mut h, _) = file("zeros", b"");
    h.set_size(1 << 30);
    h.set_cksum();
    let bomb = gz_with_zeros(h.as_bytes(), 1024);
    refuse!(bomb, ArchiveError::FileTooLarge { .. });
}

#[test]
fn too_many_files() {
    let limits = ArchiveLimits {
        max_files: 5,
        ..defaults()
    };
    let names: Vec<String> = (0..6).map(|i| format!("f{i}")).collect();
    let entries: Vec<_> = names.iter().map(|n| file(n, b"x")).collect();
    refuse!(
        archive(&entries),
        &limits,
        ArchiveError::TooManyFiles { limit: 5 }
    );
    // Five is fine.
    list_archive(&archive(&entries[..5]), &limits).unwrap();
}

#[test]
fn compressed_size_over_the_limit() {
    let limits = ArchiveLimits {
        max_compressed_bytes: 64,
        ..defaults()
    };
    refuse!(
        archive(&[file("a", b"hello")]),
        &limits,
        ArchiveError::CompressedTooLarge { limit: 64, .. }
    );
}

// ------------------------------------------------------------------------------------------
// Header fields.

#[test]
fn non_canonical_mode_owner_mtime() {
    let with = |f: &dyn Fn(&mut Header)| {
        let (mut h, d) = file("a", b"x");
        f(&mut h);
        h.set_cksum();
        archive(&[(h, d)])
    };
    refuse!(
        with(&|h| h.set_mode(0o777)),
        ArchiveError::NonCanonicalMode { mode: 0o777, .. }
    );
    refuse!(
        with(&|h| h.set_mode(0o4755)),
        ArchiveError::NonCanonicalMode { .. }
    );
    refuse!(
        with(&|h| h.set_uid(1000)),
        ArchiveError::NonCanonicalOwner { uid: 1000, .. }
    );
    refuse!(
        with(&|h| h.set_gid(1)),
        ArchiveError::NonCanonicalOwner { gid: 1, .. }
    );
    refuse!(
        with(&|h| h.set_mtime(1_700_000_000)),
        ArchiveError::NonCanonicalMtime { .. }
    );
    refuse!(
        with(&|h| h.set_username("root").unwrap()),
        ArchiveError::NonCanonicalHeader {
            field: "user name",
            ..
        }
    );
    // A directory with mode 0644.
    let (mut d, _) = dir("d/");
    d.set_mode(0o644);
    d.set_cksum();
    refuse!(
        archive(&[(d, Vec::new())]),
        ArchiveError::NonCanonicalMode { .. }
    );
}

#[test]
fn gnu_format_header() {
    let mut h = Header::new_gnu();
    h.set_path("a").unwrap();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(1);
    h.set_cksum();
    refuse!(
        archive(&[(h, b"x".to_vec())]),
        ArchiveError::NonCanonicalHeader { field: "magic", .. }
    );
}

#[test]
fn bad_header_checksum() {
    let (mut h, d) = file("a", b"x");
    h.as_mut_bytes()[0] = b'b'; // path changed after the checksum
    refuse!(
        archive(&[(h, d)]),
        ArchiveError::BadHeaderChecksum { index: 1, .. }
    );
}

#[test]
fn non_zero_padding() {
    let (h, _) = file("a", b"x");
    let mut tar = h.as_bytes().to_vec();
    tar.push(b'x');
    tar.extend_from_slice(b"hidden");
    tar.resize(1024 + 1024, 0);
    refuse!(gz(&tar), ArchiveError::NonCanonicalPadding { .. });
}

// ------------------------------------------------------------------------------------------
// Framing.

#[test]
fn not_gzip_at_all() {
    let tar = tar_stream(&[file("a", b"x")]);
    refuse!(tar, ArchiveError::NotGzip);
    refuse!(Vec::<u8>::new(), ArchiveError::NotGzip);
    refuse!(*b"PK\x03\x04zip", ArchiveError::NotGzip);
}

#[test]
fn non_canonical_gzip_header() {
    let tar = tar_stream(&[file("a", b"x")]);
    let mut named = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .filename("../evil")
        .write(Vec::new(), Compression::best());
    named.write_all(&tar).unwrap();
    refuse!(
        named.finish().unwrap(),
        ArchiveError::NonCanonicalGzip { .. }
    );
    let mut dated = GzEncoder::new(Vec::new(), Compression::best());
    dated.write_all(&tar).unwrap();
    let mut bytes = dated.finish().unwrap();
    bytes[4] = 1; // mtime 1
    refuse!(bytes, ArchiveError::NonCanonicalGzip { field: "mtime" });
}

#[test]
fn trailing_garbage() {
    let mut bytes = archive(&[file("a", b"x")]);
    bytes.extend_from_slice(b"garbage");
    refuse!(bytes, ArchiveError::TrailingGarbage { bytes: 7 });
}

#[test]
fn second_gzip_member() {
    let mut bytes = archive(&[file("a", b"x")]);
    bytes.extend(gz(&tar_stream(&[file("z", b"smuggled")])));
    refuse!(bytes, ArchiveError::MultipleGzipMembers);
}

#[test]
fn data_after_the_end_marker() {
    // GNU tar pads to a 10 KiB record; canonical archives do not.
    let mut tar = tar_stream(&[file("a", b"x")]);
    tar.resize(10240, 0);
    refuse!(gz(&tar), ArchiveError::DataAfterEnd);
    // An entry hidden after the end marker.
    let mut tar = tar_stream(&[file("a", b"x")]);
    tar.extend(tar_stream(&[file("b", b"hidden")]));
    refuse!(gz(&tar), ArchiveError::DataAfterEnd);
}

#[test]
fn truncated_archive() {
    let good = archive(&[file("a", &[7u8; 5000]), file("b", b"x")]);
    for cut in [good.len() - 1, good.len() - 8, good.len() / 2, 12] {
        refuse!(good[..cut], ArchiveError::Truncated { .. });
    }
    // The tar stream itself cut short inside a file's data, in a well-formed gzip.
    let tar = tar_stream(&[file("a", &[7u8; 5000])]);
    refuse!(gz(&tar[..2048]), ArchiveError::Truncated { .. });
    // No end-of-archive marker.
    let tar = tar_stream(&[file("a", b"x")]);
    refuse!(gz(&tar[..1024]), ArchiveError::Truncated { .. });
}

#[test]
fn corrupt_data() {
    let good = archive(&[file("a", &[7u8; 5000]), file("b", b"hello world")]);
    // A flipped bit in the CRC.
    let mut bytes = good.clone();
    let crc = bytes.len() - 8;
    bytes[crc] ^= 1;
    refuse!(bytes, ArchiveError::Corrupt { .. });
    // A flipped bit in the deflate stream.
    let mut bytes = good.clone();
    bytes[14] ^= 0x40;
    refuse!(bytes, ArchiveError::Corrupt { .. });
    // A wrong length in the trailer.
    let mut bytes = good.clone();
    let isize = bytes.len() - 2;
    bytes[isize] ^= 1;
    refuse!(bytes, ArchiveError::Corrupt { .. });
}

#[test]
fn ordinary_tar_gz_from_gnu_tar_is_refused() {
    // What an author gets from `tar czf` instead of `mission package`: owners, mtimes and
    // modes from the disk. Readable, but not canonical, so not accepted.
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("mission.yaml"), "name: x\n").unwrap();
    let out = src.path().join("../gnu.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(src.path())
        .arg("mission.yaml")
        .status()
        .expect("GNU tar is needed for this test");
    assert!(status.success());
    let bytes = fs::read(&out).unwrap();
    fs::remove_file(&out).unwrap();
    refuse!(
        bytes,
        ArchiveError::NonCanonicalGzip { .. }
            | ArchiveError::NonCanonicalMode { .. }
            | ArchiveError::NonCanonicalOwner { .. }
            | ArchiveError::NonCanonicalMtime { .. }
            | ArchiveError::NonCanonicalHeader { .. }
    );
}

#[test]
fn non_canonical_path_encoding() {
    // Short paths never use the prefix field.
    let (mut h, data) = file("x", b"x");
    {
        let ustar = h.as_ustar_mut().unwrap();
        ustar.name = [0; 100];
        ustar.name[0] = b'y';
        ustar.prefix[0] = b'x';
    }
    h.set_cksum();
    refuse!(
        archive(&[dir("x/"), (h, data)]),
        ArchiveError::NonCanonicalHeader { field: "name", .. }
    );
    // A long path split at the second `/` when the first one fits.
    let (a, b, c) = ("a".repeat(10), "b".repeat(10), "c".repeat(85));
    let path = format!("{a}/{b}/{c}");
    let (mut h, data) = file(&path, b"x");
    {
        let ustar = h.as_ustar_mut().unwrap();
        let (prefix, name) = path.split_at(21);
        ustar.name = [0; 100];
        ustar.prefix = [0; 155];
        ustar.prefix[..21].copy_from_slice(prefix.as_bytes());
        ustar.name[..name.len() - 1].copy_from_slice(&name.as_bytes()[1..]);
    }
    h.set_cksum();
    let parents = [dir(&format!("{a}/")), dir(&format!("{a}/{b}/"))];
    refuse!(
        archive(&[parents[0].clone(), parents[1].clone(), (h, data)]),
        ArchiveError::NonCanonicalHeader { field: "name", .. }
    );
    // The same path split canonically is fine.
    list_archive(
        &archive(&[parents[0].clone(), parents[1].clone(), file(&path, b"x")]),
        &defaults(),
    )
    .unwrap();
    // A directory without its trailing `/`.
    let mut d = header("d", EntryType::Directory, 0);
    d.set_cksum();
    refuse!(
        archive(&[(d, Vec::new())]),
        ArchiveError::NonCanonicalHeader { field: "name", .. }
    );
}
