//! `mission-node admin`: users and tokens with the node stopped and running (through its
//! socket), and `admin fsck` finding each kind of damage in a real data folder, with real
//! node processes, real git and real minisign keys.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mission_e2e::{node_admin, NodeProcess as Node, Ran};
use mission_index::archive::{self, ArchiveLimits, SourceFile};
use mission_index::entry::{IndexEntry, PublishedArchive};
use mission_index::repo::IndexRepo;
use mission_index::signing::{self, PublicKey, SecretKey};
use sha2::{Digest, Sha256};

// ---- helpers: a node process, admin commands, a tiny HTTP client, signed packages ----

/// A fresh data folder (inside a temp dir that also holds the node's log).
fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

/// `admin user add`, asserting it prints one token and nothing else on stdout.
fn add_user(data: &Path, name: &str, scopes: &str) -> String {
    let ran = node_admin(data, &["user", "add", name, "--scopes", scopes]);
    assert!(ran.success, "{ran:?}");
    let token = ran.stdout.trim_end_matches('\n');
    assert!(
        token.starts_with("mrt_") && !token.contains('\n') && !token.contains(' '),
        "stdout must be the token alone: {:?}",
        ran.stdout
    );
    assert!(ran.stderr.contains(name), "{}", ran.stderr);
    token.to_owned()
}

/// One HTTP/1.1 request; returns the status and body.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// An author key pair.
fn author() -> (SecretKey, PublicKey) {
    let g = signing::generate_keypair(None).unwrap();
    (
        SecretKey::parse(&g.secret_key_text, None).unwrap(),
        PublicKey::parse(&g.public_key_text).unwrap(),
    )
}

/// A signed package: its canonical archive and its index line.
fn package(name: &str, version: &str, key: &(SecretKey, PublicKey)) -> (Vec<u8>, IndexEntry) {
    let text = format!(
        "version: '1.0'\nname: {name}\nsteps:\n  - {{id: a, name: A, step_type: create_file, parameters: {{path: out.txt, content: hi}}}}\npackage:\n  name: {name}\n  version: {version}\n  description: A test mission\n  license: MIT\n"
    );
    let files = vec![SourceFile {
        path: "mission.yaml".into(),
        executable: false,
        data: text.clone().into_bytes(),
    }];
    let bytes = archive::build_archive_from_files(files, &ArchiveLimits::default()).unwrap();
    let sig = signing::sign_archive(&key.0, &key.1, &bytes, name, version).unwrap();
    let source =
        mission_index::package::check_mission_text(Path::new("mission.yaml"), &text).unwrap();
    let entry = IndexEntry::for_publish(
        source.manifest.as_ref().unwrap(),
        &source.mission,
        PublishedArchive {
            cksum: archive::cksum(&bytes),
            sig,
            key: key.1.to_base64(),
            pubtime: "2026-01-01T00:00:00Z".into(),
            origin: "test".into(),
        },
    );
    (bytes, entry)
}

fn blob_path(data: &Path, cksum: &str) -> PathBuf {
    data.join("blobs/sha256")
        .join(&cksum[..2])
        .join(&cksum[2..])
}

/// The entries of the index, read from its git repository.
fn index_entries(data: &Path) -> Vec<IndexEntry> {
    let repo = IndexRepo::open(data.join("index.git")).unwrap();
    repo.list_names()
        .unwrap()
        .iter()
        .flat_map(|n| repo.read(n).unwrap().unwrap())
        .collect()
}

/// A data folder seeded by a first start, with the node stopped again.
fn seeded() -> (tempfile::TempDir, PathBuf) {
    let (dir, data) = data_dir();
    Node::start(&data).stop();
    (dir, data)
}

fn fsck(data: &Path, repair: bool) -> Ran {
    if repair {
        node_admin(data, &["fsck", "--repair"])
    } else {
        node_admin(data, &["fsck"])
    }
}

fn assert_clean(ran: &Ran) {
    assert!(ran.success, "fsck should be clean: {ran:?}");
    assert!(ran.stdout.contains("consistent"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("problem:"), "{}", ran.stdout);
}

fn problems(ran: &Ran) -> Vec<&str> {
    ran.stdout
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect()
}

// ---- users and tokens ----

#[test]
fn users_and_tokens_are_managed_with_the_node_stopped_and_running() {
    let (_dir, data) = data_dir();
    // A crash leaves the socket file behind: it must block neither admin nor serve.
    Node::start(&data).kill();
    assert!(data.join("run/node.sock").exists());

    let alice = add_user(&data, "alice", "publish,yank");

    let node = Node::start(&data);
    let socket = data.join("run/node.sock");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the socket is for the node's user only"
        );
    }
    // Through the socket (the store is held by the node; a direct open would be refused).
    let bob = add_user(&data, "bob", "publish");
    assert_ne!(alice, bob);
    let ran = node_admin(&data, &["user", "token", "alice", "--scopes", "owners"]);
    assert!(ran.success, "{ran:?}");
    let alice2 = ran.stdout.trim().to_owned();
    assert!(alice2.starts_with("mrt_") && alice2 != alice);

    // Refusals say what is wrong, both ways.
    let dup = node_admin(&data, &["user", "add", "alice", "--scopes", "publish"]);
    assert_eq!(dup.code, Some(1));
    assert!(dup.stdout.is_empty(), "{dup:?}");
    assert!(
        dup.stderr.contains("the user `alice` already exists"),
        "{}",
        dup.stderr
    );
    let bad = node_admin(&data, &["user", "add", "carol", "--scopes", "publish,fly"]);
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.stderr
            .contains("unknown scope `fly`; scopes are publish, yank, owners, execute, admin"),
        "{}",
        bad.stderr
    );
    let none = node_admin(&data, &["user", "token", "nobody", "--scopes", "publish"]);
    assert!(none.stderr.contains("no user `nobody`"), "{}", none.stderr);

    // Revoke bob's token through the socket, by the token itself.
    let ran = node_admin(&data, &["token", "revoke", &bob]);
    assert!(ran.success, "{ran:?}");
    assert!(ran.stderr.contains("of user `bob`"), "{}", ran.stderr);
    let show = node_admin(&data, &["user", "show", "bob"]);
    assert!(show.stdout.contains("revoked"), "{}", show.stdout);
    assert!(!show.stdout.contains(&bob), "tokens are never shown again");

    node.stop();
    assert!(!socket.exists(), "a clean stop removes the socket");

    // Revoke alice's first token offline, by its id.
    let show = node_admin(&data, &["user", "show", "alice"]);
    assert!(show.success, "{show:?}");
    let lines: Vec<&str> = show.stdout.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{}", show.stdout);
    let first_id = lines
        .iter()
        .find(|l| l.contains("publish,yank"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let ran = node_admin(&data, &["token", "revoke", &first_id]);
    assert!(ran.success, "{ran:?}");
    let show = node_admin(&data, &["user", "show", "alice"]);
    let revoked: Vec<&str> = show
        .stdout
        .lines()
        .filter(|l| l.contains("revoked"))
        .collect();
    assert_eq!(revoked.len(), 1, "{}", show.stdout);
    assert!(revoked[0].contains(&first_id));

    let unknown = node_admin(&data, &["token", "revoke", "mrt_not_a_token"]);
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("no token matches"),
        "{}",
        unknown.stderr
    );
}

/// Needs `POST /api/v1/missions/publish` (the HTTP publish door): with a valid token an
/// empty body is a bad request (400); without one, or with a revoked one, 401.
#[test]
fn tokens_made_by_admin_authenticate_over_http_until_revoked() {
    let (_dir, data) = data_dir();
    Node::start(&data).kill();
    let offline = add_user(&data, "alice", "publish");
    let node = Node::start(&data);
    let online = add_user(&data, "bob", "publish");
    for token in [&offline, &online] {
        let (status, body) = http(
            &node.addr(),
            "POST",
            "/api/v1/missions/publish",
            Some(token),
            b"",
        );
        assert_eq!(status, 400, "a valid token with an empty body: {body}");
    }
    let (status, _) = http(
        &node.addr(),
        "POST",
        "/api/v1/missions/publish",
        Some("mrt_forged"),
        b"",
    );
    assert_eq!(status, 401);
    assert!(node_admin(&data, &["token", "revoke", &online]).success);
    let (status, _) = http(
        &node.addr(),
        "POST",
        "/api/v1/missions/publish",
        Some(&online),
        b"",
    );
    assert_eq!(status, 401, "a revoked token no longer authenticates");
    node.stop();
    assert!(node_admin(&data, &["token", "revoke", &offline]).success);
    let node = Node::start(&data);
    let (status, _) = http(
        &node.addr(),
        "POST",
        "/api/v1/missions/publish",
        Some(&offline),
        b"",
    );
    assert_eq!(status, 401);
}

#[test]
fn admin_refuses_a_missing_data_folder() {
    let (_dir, data) = data_dir();
    let ran = node_admin(&data, &["user", "add", "alice", "--scopes", "publish"]);
    assert!(!ran.success);
    assert!(ran.stderr.contains("does not exist"), "{}", ran.stderr);
    assert!(!data.exists(), "admin must not create a data folder");
}

// ---- fsck ----

#[test]
fn fsck_is_clean_on_a_fresh_node_running_or_not_and_only_warns_about_orphans() {
    let (_dir, data) = seeded();
    let ran = fsck(&data, false);
    assert_clean(&ran);
    assert!(ran.stdout.contains("12 missions"), "{}", ran.stdout);

    let node = Node::start(&data);
    assert_clean(&fsck(&data, false));

    // An orphan blob (a publish that died before its commit) is a warning, not an error.
    let orphan = b"an archive nobody committed";
    let cksum = hex::encode(Sha256::digest(orphan));
    let path = blob_path(&data, &cksum);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, orphan).unwrap();
    let ran = fsck(&data, false);
    assert_clean(&ran);
    assert!(
        ran.stdout
            .contains(&format!("warning: orphan blob {cksum}")),
        "{}",
        ran.stdout
    );
    // A young one may belong to a publish in progress: --repair keeps it...
    let ran = fsck(&data, true);
    assert_clean(&ran);
    assert!(path.exists());
    assert!(ran.stdout.contains("kept"), "{}", ran.stdout);
    node.stop();
    // ... and removes it once it is older than a minute.
    let touched = Command::new("touch")
        .args(["-d", "2 minutes ago"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(touched.success());
    let ran = fsck(&data, true);
    assert_clean(&ran);
    assert!(
        ran.stdout
            .contains(&format!("repaired: orphan blob {cksum}")),
        "{}",
        ran.stdout
    );
    assert!(!path.exists());
    let ran = fsck(&data, false);
    assert!(!ran.stdout.contains("orphan"), "{}", ran.stdout);
}

#[test]
fn fsck_finds_an_altered_and_a_deleted_blob() {
    let (_dir, data) = seeded();
    let entries = index_entries(&data);
    let (altered, deleted) = (&entries[0], &entries[1]);
    let path = blob_path(&data, &altered.cksum);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.push(0);
    std::fs::write(&path, bytes).unwrap();
    std::fs::remove_file(blob_path(&data, &deleted.cksum)).unwrap();

    for ran in [fsck(&data, false), fsck(&data, true)] {
        assert_eq!(ran.code, Some(1), "{ran:?}");
        let found = problems(&ran);
        assert_eq!(found.len(), 2, "{}", ran.stdout);
        assert!(
            found.iter().any(
                |l| l.contains(&format!("{}@{}", altered.name, altered.vers))
                    && l.contains("was altered")
            ),
            "{}",
            ran.stdout
        );
        assert!(
            found.iter().any(
                |l| l.contains(&format!("{}@{}", deleted.name, deleted.vers))
                    && l.contains("is missing")
            ),
            "{}",
            ran.stdout
        );
        assert!(ran.stdout.contains("2 problem(s)"), "{}", ran.stdout);
    }
    // --repair never touches a source of truth: the altered blob is as it was.
    assert!(std::fs::read(&path).unwrap().ends_with(&[0]));
}

#[test]
fn fsck_finds_a_mission_without_owners_and_admin_owner_add_fixes_it() {
    let (_dir, data) = seeded();
    add_user(&data, "alice", "publish");
    // An entry the store does not know: committed straight into index.git, as a crash
    // between the index commit and the owners record would leave it.
    let key = author();
    let (bytes, entry) = package("ghost_mission", "1.0.0", &key);
    let path = blob_path(&data, &entry.cksum);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    IndexRepo::open(data.join("index.git"))
        .unwrap()
        .append(&entry)
        .unwrap();

    let ran = fsck(&data, false);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let found = problems(&ran);
    assert!(
        found.iter().any(|l| l.contains("`ghost_mission`")
            && l.contains("no owners record")
            && l.contains("admin owner add ghost_mission USER")),
        "{}",
        ran.stdout
    );
    // The new commit also left the snapshot behind the head.
    assert!(
        found.iter().any(|l| l.contains("snapshot")),
        "{}",
        ran.stdout
    );
    assert_eq!(found.len(), 2, "{}", ran.stdout);

    // --repair re-signs the snapshot but cannot invent an owner.
    let ran = fsck(&data, true);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stdout.contains("repaired: snapshot"), "{}", ran.stdout);
    assert_eq!(problems(&ran).len(), 1, "{}", ran.stdout);

    let refused = node_admin(&data, &["owner", "add", "no_such_mission", "alice"]);
    assert!(
        refused
            .stderr
            .contains("no mission `no_such_mission` in the index"),
        "{refused:?}"
    );
    let ran = node_admin(&data, &["owner", "add", "ghost_mission", "alice"]);
    assert!(ran.success, "{ran:?}");
    assert_clean(&fsck(&data, false));
}

#[test]
fn fsck_finds_an_old_or_forged_snapshot_and_repair_re_signs_it() {
    let (_dir, data) = seeded();
    let old_json = std::fs::read(data.join("snapshot.json")).unwrap();
    let old_sig = std::fs::read(data.join("snapshot.json.minisig")).unwrap();
    // Move the head on (a yank committed while the node is stopped), and let the node
    // re-sign for it on its next start.
    let victim = &index_entries(&data)[0];
    IndexRepo::open(data.join("index.git"))
        .unwrap()
        .set_yanked(&victim.name, &victim.vers, true)
        .unwrap();
    let node = Node::start(&data);
    assert_clean(&fsck(&data, false));

    // Replaced by the older snapshot while the node runs: found and repaired through it.
    std::fs::write(data.join("snapshot.json"), &old_json).unwrap();
    std::fs::write(data.join("snapshot.json.minisig"), &old_sig).unwrap();
    let ran = fsck(&data, false);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let found = problems(&ran);
    assert_eq!(found.len(), 1, "{}", ran.stdout);
    assert!(
        found[0].contains("vouches for index head") && found[0].contains("--repair"),
        "{}",
        ran.stdout
    );
    let ran = fsck(&data, true);
    assert!(ran.success, "{ran:?}");
    assert!(ran.stdout.contains("repaired: snapshot"), "{}", ran.stdout);
    assert_clean(&fsck(&data, false));
    node.stop();

    // Same with the node stopped.
    std::fs::write(data.join("snapshot.json"), &old_json).unwrap();
    std::fs::write(data.join("snapshot.json.minisig"), &old_sig).unwrap();
    assert_eq!(fsck(&data, false).code, Some(1));
    assert!(fsck(&data, true).success);
    assert_clean(&fsck(&data, false));

    // A snapshot whose JSON was edited no longer verifies.
    let json = std::fs::read_to_string(data.join("snapshot.json")).unwrap();
    std::fs::write(
        data.join("snapshot.json"),
        json.replacen("\"seq\":", "\"seq\":1", 1),
    )
    .unwrap();
    let ran = fsck(&data, false);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(problems(&ran)[0].contains("signature"), "{}", ran.stdout);
    assert!(fsck(&data, true).success);
    assert_clean(&fsck(&data, false));
}

/// A node killed during an index commit leaves `refs/heads/main.lock`; every later commit
/// would fail. fsck reports it, and `serve` removes it on start (fsck::repair_on_start).
#[test]
fn a_git_lock_left_by_a_crash_is_reported_and_cleared_on_start() {
    let (_dir, data) = seeded();
    let lock = data.join("index.git/refs/heads/main.lock");
    std::fs::write(&lock, "0000000000000000000000000000000000000000\n").unwrap();
    let ran = fsck(&data, false);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(
        problems(&ran)
            .iter()
            .any(|l| l.contains("stale git lock file") && l.contains("main.lock")),
        "{}",
        ran.stdout
    );
    // The node starts (it commits config.json for its new address on the way).
    let node = Node::start(&data);
    assert!(!lock.exists());
    assert_clean(&fsck(&data, false));
    node.stop();

    // And fsck --repair removes one too.
    std::fs::write(&lock, "x\n").unwrap();
    let ran = fsck(&data, true);
    assert!(ran.success, "{ran:?}");
    assert!(
        ran.stdout.contains("repaired: stale git lock file"),
        "{}",
        ran.stdout
    );
    assert!(!lock.exists());
}
