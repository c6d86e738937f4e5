//! Publishing from the client's side, as an author does it: `mission login` stores a token,
//! `mission tag` signs the committed package into the tag `vVERSION`, `mission publish`
//! pushes that tag with git (or uploads with `--http`), `mission yank` and `mission owner`
//! manage what was published. Real git, real keys, a real `mission-node` process.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mission_e2e::{bin, mission, run, Ran};
use mission_index::archive::{self, ArchiveLimits};
use mission_index::signing::{self, PublicKey};
use mission_index::wire::TagMessage;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------
// Helpers.

/// Settings that keep git away from the machine's own configuration and give it an
/// identity.
fn isolate_git(cmd: &mut Command) -> &mut Command {
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.org")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.org")
        .env_remove("GIT_CONFIG_COUNT")
        .env_remove("MISSION_TOKEN")
}

/// `mission` with its own home and an isolated git.
fn mission_cmd(home: &Path) -> Command {
    let mut cmd = mission(home);
    isolate_git(&mut cmd);
    cmd
}

/// `git -C dir ARGS`, which must succeed; returns stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(args);
    let ran = run(isolate_git(&mut cmd));
    assert!(ran.success, "git {args:?}: {ran:?}");
    ran.stdout
}

/// A package made by `mission new` (a git repository), plus a key in `home`. Not
/// committed.
fn new_package(home: &Path, parent: &Path, name: &str) -> PathBuf {
    let ran = run(mission_cmd(home).current_dir(parent).args(["new", name]));
    assert!(ran.success, "{ran:?}");
    if !home.join("keys/default.key").exists() {
        let ran = run(mission_cmd(home).args(["keygen", "--unencrypted"]));
        assert!(ran.success, "{ran:?}");
    }
    parent.join(name)
}

fn commit_all(pkg: &Path, message: &str) {
    git(pkg, &["add", "-A"]);
    git(pkg, &["commit", "--quiet", "-m", message]);
}

/// A committed package with a script (an executable file) in a subfolder.
fn committed_package(home: &Path, parent: &Path, name: &str) -> PathBuf {
    let pkg = new_package(home, parent, name);
    fs::create_dir(pkg.join("scripts")).unwrap();
    fs::write(pkg.join("scripts/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            pkg.join("scripts/run.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    commit_all(&pkg, "first version");
    pkg
}

fn tag(home: &Path, pkg: &Path) -> Ran {
    run(mission_cmd(home).arg("tag").arg(pkg))
}

/// The message of the annotated tag `name`.
fn tag_message(pkg: &Path, name: &str) -> String {
    let raw = git(pkg, &["cat-file", "tag", name]);
    raw.split_once("\n\n").unwrap().1.to_owned()
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A one-shot HTTP server on 127.0.0.1 that answers each request with `status` and
/// `body` and hands the request's head back: it shows what the client sent (headers,
/// method, path) without needing a node.
struct Recorder {
    url: String,
    requests: std::sync::mpsc::Receiver<String>,
}

impl Recorder {
    fn start(status: u16, body: &'static str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body_in = vec![0u8; length];
                let _ = reader.read_exact(&mut body_in);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if tx.send(head).is_err() {
                    return;
                }
            }
        });
        Recorder { url, requests: rx }
    }

    fn next(&self) -> String {
        self.requests
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the client sent a request")
    }
}

/// A running `mission-node serve` on a free port with its own data folder; killed on drop.
struct Node {
    child: Child,
    url: String,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut cmd = Command::new(bin("mission-node"));
        isolate_git(&mut cmd);
        let mut child = cmd
            .arg("--data")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "serve"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mission-node starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("mission-node printed its address before exiting")
                .unwrap();
            if let Some(url) = line.strip_prefix("mission-node listening on ") {
                break url.trim().to_owned();
            }
        };
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Node {
            child,
            url,
            data,
            _dir: dir,
        }
    }

    /// `mission-node admin user add NAME --scopes ...`: the new user's token.
    fn add_user(&self, name: &str, scopes: &str) -> String {
        let mut cmd = Command::new(bin("mission-node"));
        let ran = run(cmd
            .arg("--data")
            .arg(&self.data)
            .args(["admin", "user", "add", name, "--scopes", scopes]));
        assert!(ran.success, "admin user add: {ran:?}");
        let token = ran.stdout.trim().to_owned();
        assert!(!token.is_empty() && !token.contains(char::is_whitespace));
        token
    }

    /// `GET path`: status and body.
    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let host = self.url.strip_prefix("http://").unwrap();
        let mut stream = TcpStream::connect(host).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut body = raw[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = unchunk(&body);
        }
        (status, body)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 2 + size + 2..];
    }
}

// ---------------------------------------------------------------------------------------
// Without a node.

#[test]
fn login_writes_a_private_credentials_file_that_later_commands_use() {
    let home = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(200, "{}");
    let ran = run(mission_cmd(home.path()).args([
        "login",
        "--registry",
        &recorder.url,
        "--token",
        "mrt_first",
    ]));
    assert!(ran.success, "{ran:?}");
    let credentials = home.path().join("credentials.toml");
    assert!(
        ran.stderr.contains(&credentials.display().to_string()),
        "login says where it stored the token: {ran:?}"
    );
    #[cfg(unix)]
    assert_eq!(mode_of(&credentials), 0o600);
    let text = fs::read_to_string(&credentials).unwrap();
    assert!(text.contains("mrt_first"), "{text}");
    assert!(
        text.contains(&recorder.url),
        "keyed by the base URL: {text}"
    );

    // From standard input, with the sparse index URL of the same node: the same key,
    // replaced, and still private.
    let sparse = format!("sparse+{}/index/", recorder.url);
    let mut cmd = mission_cmd(home.path());
    cmd.args(["login", "--registry", &sparse])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"mrt_second\n")
        .unwrap();
    let ran = Ran::from(child.wait_with_output().unwrap());
    assert!(ran.success, "{ran:?}");
    let text = fs::read_to_string(&credentials).unwrap();
    assert!(
        text.contains("mrt_second") && !text.contains("mrt_first"),
        "{text}"
    );
    #[cfg(unix)]
    assert_eq!(mode_of(&credentials), 0o600);

    // The stored token goes to the node as a Bearer token...
    let ran = run(mission_cmd(home.path()).args([
        "yank",
        "some_mission@1.0.0",
        "--registry",
        &recorder.url,
    ]));
    assert!(ran.success, "{ran:?}");
    let request = recorder.next();
    assert!(
        request.starts_with("DELETE /api/v1/missions/some_mission/1.0.0/yank "),
        "{request}"
    );
    assert!(
        request.contains("authorization: Bearer mrt_second\r\n")
            || request.contains("Authorization: Bearer mrt_second\r\n"),
        "{request}"
    );

    // ...and MISSION_TOKEN overrides it.
    let ran = run(mission_cmd(home.path())
        .args([
            "yank",
            "some_mission@1.0.0",
            "--undo",
            "--registry",
            &recorder.url,
        ])
        .env("MISSION_TOKEN", "mrt_from_env"));
    assert!(ran.success, "{ran:?}");
    let request = recorder.next();
    assert!(
        request.starts_with("PUT /api/v1/missions/some_mission/1.0.0/unyank "),
        "{request}"
    );
    assert!(
        request.to_ascii_lowercase().contains("bearer mrt_from_env"),
        "{request}"
    );

    // An empty token is refused and changes nothing.
    let ran = run(mission_cmd(home.path()).args(["login", "--registry", &recorder.url]));
    assert!(!ran.success);
    assert!(ran.stderr.contains("empty"), "{ran:?}");
    assert!(fs::read_to_string(&credentials)
        .unwrap()
        .contains("mrt_second"));
}

#[test]
fn named_registries_come_from_the_config_with_their_own_token_variable() {
    let home = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(200, r#"{"users":["alice",{"login":"bob"}]}"#);
    fs::write(
        home.path().join("config.toml"),
        format!(
            "[registry]\ndefault = \"my-node\"\n\n[registries.my-node]\nindex = \"sparse+{}/index/\"\n",
            recorder.url
        ),
    )
    .unwrap();

    // No token anywhere: the error says how to log in.
    let ran = run(mission_cmd(home.path()).args(["owner", "some_mission", "--list"]));
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("mission login --registry my-node"),
        "{ran:?}"
    );

    // An unknown name lists the configured ones.
    let ran = run(mission_cmd(home.path()).args([
        "owner",
        "some_mission",
        "--list",
        "--registry",
        "elsewhere",
    ]));
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("elsewhere") && ran.stderr.contains("my-node"),
        "{ran:?}"
    );

    // The default registry, with cargo's per-registry variable.
    let ran = run(mission_cmd(home.path())
        .args(["owner", "some_mission", "--list"])
        .env("MISSION_REGISTRIES_MY_NODE_TOKEN", "mrt_named"));
    assert!(ran.success, "{ran:?}");
    assert_eq!(ran.stdout, "alice\nbob\n");
    let request = recorder.next();
    assert!(
        request.starts_with("GET /api/v1/missions/some_mission/owners "),
        "{request}"
    );
    assert!(
        request.to_ascii_lowercase().contains("bearer mrt_named"),
        "{request}"
    );

    // A login by name is stored under the name; the node's URL finds it too.
    let ran = run(mission_cmd(home.path()).args([
        "login",
        "--registry",
        "my-node",
        "--token",
        "mrt_stored",
    ]));
    assert!(ran.success, "{ran:?}");
    let text = fs::read_to_string(home.path().join("credentials.toml")).unwrap();
    assert!(text.contains("[registries.my-node]"), "{text}");
    let ran = run(mission_cmd(home.path()).args([
        "owner",
        "some_mission",
        "--add",
        "carol",
        "--registry",
        &recorder.url,
    ]));
    assert!(ran.success, "{ran:?}");
    let request = recorder.next();
    assert!(
        request.starts_with("PUT /api/v1/missions/some_mission/owners "),
        "{request}"
    );
    assert!(
        request.to_ascii_lowercase().contains("bearer mrt_stored"),
        "{request}"
    );
}

#[test]
fn node_errors_are_printed_with_their_detail() {
    let home = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(
        403,
        r#"{"errors":[{"detail":"you are not an owner of `some_mission`"}]}"#,
    );
    let ran = run(mission_cmd(home.path())
        .args(["yank", "some_mission@1.0.0", "--registry", &recorder.url])
        .env("MISSION_TOKEN", "mrt_x"));
    assert!(!ran.success);
    assert!(
        ran.stderr
            .contains("error: you are not an owner of `some_mission`"),
        "{ran:?}"
    );
    let ran = run(mission_cmd(home.path())
        .args(["yank", "some_mission", "--registry", &recorder.url])
        .env("MISSION_TOKEN", "mrt_x"));
    assert!(!ran.success);
    assert!(ran.stderr.contains("NAME@VERSION"), "{ran:?}");
}

#[test]
fn tag_refuses_a_missing_commit_a_dirty_tree_and_an_existing_tag() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = new_package(home.path(), dir.path(), "careful_one");

    let ran = tag(home.path(), &pkg);
    assert!(!ran.success);
    assert!(ran.stderr.contains("no commit"), "{ran:?}");

    commit_all(&pkg, "first");
    fs::write(pkg.join("README.md"), "changed\n").unwrap();
    fs::write(pkg.join("notes.txt"), "not added\n").unwrap();
    let ran = tag(home.path(), &pkg);
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("README.md") && ran.stderr.contains("notes.txt"),
        "the refusal names the changed files: {ran:?}"
    );
    assert!(git(&pkg, &["tag", "--list"]).is_empty());

    git(&pkg, &["checkout", "--quiet", "--", "README.md"]);
    fs::remove_file(pkg.join("notes.txt")).unwrap();
    let ran = tag(home.path(), &pkg);
    assert!(ran.success, "{ran:?}");
    assert_eq!(git(&pkg, &["tag", "--list"]), "v0.1.0\n");
    let first = git(&pkg, &["rev-parse", "v0.1.0"]);

    // Versions are immutable: a new commit with the same version is not tagged again.
    fs::write(pkg.join("README.md"), "second\n").unwrap();
    commit_all(&pkg, "second");
    let ran = tag(home.path(), &pkg);
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("v0.1.0") && ran.stderr.contains("already exists"),
        "{ran:?}"
    );
    assert_eq!(
        git(&pkg, &["rev-parse", "v0.1.0"]),
        first,
        "the tag did not move"
    );

    // The package must be the repository's root: the node packs the whole tree.
    let ran = tag(home.path(), &pkg.join("scripts_missing"));
    assert!(!ran.success);
    fs::create_dir(pkg.join("sub")).unwrap();
    let ran = tag(home.path(), &pkg.join("sub"));
    assert!(!ran.success);
    assert!(ran.stderr.contains("root"), "{ran:?}");
}

#[cfg(unix)]
#[test]
fn tag_refuses_symlinks_and_invalid_packages() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = new_package(home.path(), dir.path(), "linked_one");
    std::os::unix::fs::symlink("README.md", pkg.join("link.md")).unwrap();
    commit_all(&pkg, "with a link");
    let ran = tag(home.path(), &pkg);
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("link.md") && ran.stderr.contains("symbolic link"),
        "{ran:?}"
    );

    let pkg = new_package(home.path(), dir.path(), "sneaky_one");
    let text = fs::read_to_string(pkg.join("mission.yaml")).unwrap();
    fs::write(
        pkg.join("mission.yaml"),
        text.replace("command: echo", "command: curl"),
    )
    .unwrap();
    commit_all(&pkg, "undeclared command");
    let ran = tag(home.path(), &pkg);
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("mission.yaml") && ran.stderr.contains("curl"),
        "{ran:?}"
    );
    assert!(!ran.stderr.contains("error: error"), "{ran:?}");
    assert!(git(&pkg, &["tag", "--list"]).is_empty());
}

#[test]
fn the_tag_message_carries_a_signature_of_the_head_tree_archive() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = committed_package(home.path(), dir.path(), "tagged_one");
    // Ignored and untracked-but-ignored files are not part of the package.
    fs::create_dir_all(pkg.join("target/mission")).unwrap();
    fs::write(pkg.join("target/mission/junk"), "x").unwrap();

    let ran = tag(home.path(), &pkg);
    assert!(ran.success, "{ran:?}");
    let message = tag_message(&pkg, "v0.1.0");
    let parsed = TagMessage::parse(&message).unwrap();
    assert_eq!(parsed.name, "tagged_one");
    assert_eq!(parsed.version, "0.1.0");
    assert_eq!(ran.stdout, format!("v0.1.0 {}\n", parsed.cksum));

    // The node's view: a fresh clone of the tag, packed from disk, gives the signed bytes.
    let clone = dir.path().join("clone");
    let mut cmd = Command::new("git");
    let ran = run(isolate_git(&mut cmd)
        .args(["clone", "--quiet", "--branch", "v0.1.0"])
        .arg(&pkg)
        .arg(&clone));
    assert!(ran.success, "{ran:?}");
    let bytes = archive::build_archive(&clone, &ArchiveLimits::default()).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), parsed.cksum);
    let files = archive::read_archive_files(&bytes, &ArchiveLimits::default()).unwrap();
    let script = files.iter().find(|f| f.path == "scripts/run.sh").unwrap();
    assert!(cfg!(not(unix)) || script.executable);

    let key_text = fs::read_to_string(home.path().join("keys/default.pub")).unwrap();
    let key = PublicKey::parse(&key_text).unwrap();
    assert_eq!(parsed.key, key.to_base64());
    signing::verify_archive(&key, &parsed.signature, &bytes, "tagged_one", "0.1.0").unwrap();
    // And not over anything else.
    let mut other = bytes.clone();
    other.push(0);
    assert!(
        signing::verify_archive(&key, &parsed.signature, &other, "tagged_one", "0.1.0").is_err()
    );
}

#[test]
fn publish_without_a_token_stops_before_touching_the_repository() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = committed_package(home.path(), dir.path(), "early_one");
    for http in [false, true] {
        let mut cmd = mission_cmd(home.path());
        cmd.arg("publish")
            .arg(&pkg)
            .args(["--registry", "http://127.0.0.1:9"]);
        if http {
            cmd.arg("--http");
        }
        let ran = run(&mut cmd);
        assert!(!ran.success);
        assert!(
            ran.stderr
                .contains("mission login --registry http://127.0.0.1:9"),
            "{ran:?}"
        );
    }
    assert!(git(&pkg, &["tag", "--list"]).is_empty());
}

#[test]
fn publish_tags_then_pushes_with_the_token_in_a_header_only() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = committed_package(home.path(), dir.path(), "header_one");
    // Not a git server: it records git's first request and answers nonsense.
    let recorder = Recorder::start(200, "{}");
    let publish = || {
        run(mission_cmd(home.path())
            .arg("publish")
            .arg(&pkg)
            .args(["--registry", &recorder.url])
            .env("MISSION_TOKEN", "mrt_git"))
    };
    let ran = publish();
    assert!(!ran.success, "{ran:?}");
    let request = recorder.next();
    assert!(
        request.starts_with("GET /git/missions/header_one.git/info/refs?service=git-receive-pack "),
        "{request}"
    );
    // base64("mission:mrt_git")
    assert!(
        request.contains("Authorization: Basic bWlzc2lvbjptcnRfZ2l0\r\n"),
        "{request}"
    );
    // The tag was made before the push; the push failed, so it was deleted again, and the
    // next attempt makes it anew (signed with whatever key that attempt is given).
    assert!(
        ran.stderr
            .contains("the tag v0.1.0 made for it was deleted"),
        "{ran:?}"
    );
    assert_eq!(git(&pkg, &["tag", "--list"]), "");
    let ran = publish();
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("Tagged header_one 0.1.0 as v0.1.0"),
        "{ran:?}"
    );
    let _ = recorder.next();
    // The token was never written to the repository.
    let config = fs::read_to_string(pkg.join(".git/config")).unwrap();
    assert!(!config.contains("mrt_git"), "{config}");
}

// ---------------------------------------------------------------------------------------
// With a node. These need `mission-node admin user add` and the publish routes.

/// The sparse index path of a name (crates.io layout, lowercased).
fn index_path(name: &str) -> String {
    let lower = name.to_lowercase();
    match lower.len() {
        1 => format!("/index/1/{lower}"),
        2 => format!("/index/2/{lower}"),
        3 => format!("/index/3/{}/{lower}", &lower[..1]),
        _ => format!("/index/{}/{}/{lower}", &lower[..2], &lower[2..4]),
    }
}

fn assert_published(node: &Node, name: &str, version: &str, cksum: &str) {
    let (status, body) = node.get(&index_path(name));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8(body).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(&format!("\"vers\":\"{version}\"")))
        .unwrap_or_else(|| panic!("no {version} in {text}"));
    assert!(line.contains(cksum), "{line}");
    let (status, body) = node.get(&format!("/api/v1/missions/{name}/{version}/download"));
    assert_eq!(status, 200);
    assert_eq!(hex::encode(Sha256::digest(&body)), cksum);
}

#[test]
fn publish_pushes_the_signed_tag_and_the_node_indexes_it() {
    let node = Node::start();
    let token = node.add_user("alice", "publish,yank,owners");
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = committed_package(home.path(), dir.path(), "pushed_one");
    let ran =
        run(mission_cmd(home.path()).args(["login", "--registry", &node.url, "--token", &token]));
    assert!(ran.success, "{ran:?}");

    let ran = run(mission_cmd(home.path())
        .arg("publish")
        .arg(&pkg)
        .args(["--registry", &node.url]));
    assert!(ran.success, "{ran:?}");
    let cksum = ran.stdout.trim().to_owned();
    assert_eq!(cksum.len(), 64, "{ran:?}");
    assert_eq!(git(&pkg, &["tag", "--list"]), "v0.1.0\n");
    assert_published(&node, "pushed_one", "0.1.0", &cksum);
    // The token never lands in the repository's configuration.
    let config = fs::read_to_string(pkg.join(".git/config")).unwrap();
    assert!(!config.contains(&token), "{config}");

    // The same version again: the node refuses and says why, through git.
    let ran = run(mission_cmd(home.path())
        .arg("publish")
        .arg(&pkg)
        .args(["--registry", &node.url]));
    assert!(!ran.success);
    assert!(ran.stderr.contains("already published"), "{ran:?}");

    // A tag made by `mission tag` is published by a plain `git push`.
    let text = fs::read_to_string(pkg.join("mission.yaml")).unwrap();
    fs::write(
        pkg.join("mission.yaml"),
        text.replace("version: 0.1.0", "version: 0.2.0"),
    )
    .unwrap();
    commit_all(&pkg, "0.2.0");
    let ran = tag(home.path(), &pkg);
    assert!(ran.success, "{ran:?}");
    let cksum2 = ran.stdout.split_whitespace().nth(1).unwrap().to_owned();
    let url = format!(
        "{}/git/missions/pushed_one.git",
        node.url
            .replace("http://", &format!("http://alice:{token}@"))
    );
    git(&pkg, &["push", "--quiet", &url, "v0.2.0"]);
    assert_published(&node, "pushed_one", "0.2.0", &cksum2);

    // A wrong token is refused with a hint.
    let text = fs::read_to_string(pkg.join("mission.yaml")).unwrap();
    fs::write(
        pkg.join("mission.yaml"),
        text.replace("version: 0.2.0", "version: 0.3.0"),
    )
    .unwrap();
    commit_all(&pkg, "0.3.0");
    let ran = run(mission_cmd(home.path())
        .arg("publish")
        .arg(&pkg)
        .args(["--registry", &node.url])
        .env("MISSION_TOKEN", "mrt_wrong"));
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("mission login") && ran.stderr.contains("MISSION_TOKEN was refused"),
        "{ran:?}"
    );
    // The tag made for the refused publish is gone, so the next publish makes it anew.
    assert!(
        ran.stderr
            .contains("the tag v0.3.0 made for it was deleted"),
        "{ran:?}"
    );
    assert_eq!(git(&pkg, &["tag", "--list"]), "v0.1.0\nv0.2.0\n");
    let ran = run(mission_cmd(home.path())
        .arg("publish")
        .arg(&pkg)
        .args(["--registry", &node.url]));
    assert!(ran.success, "{ran:?}");
    assert_eq!(git(&pkg, &["tag", "--list"]), "v0.1.0\nv0.2.0\nv0.3.0\n");

    // Someone who does not own the name is refused for that, not for their token.
    let bob = node.add_user("bob", "publish");
    let text = fs::read_to_string(pkg.join("mission.yaml")).unwrap();
    fs::write(
        pkg.join("mission.yaml"),
        text.replace("version: 0.3.0", "version: 0.4.0"),
    )
    .unwrap();
    commit_all(&pkg, "0.4.0");
    let ran = run(mission_cmd(home.path())
        .arg("publish")
        .arg(&pkg)
        .args(["--registry", &node.url])
        .env("MISSION_TOKEN", &bob));
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("not an owner")
            && ran.stderr.contains("the node refused the publish")
            && !ran.stderr.contains("mission login"),
        "{ran:?}"
    );
}

#[test]
fn publish_over_http_then_yank_and_manage_owners() {
    let node = Node::start();
    let token = node.add_user("alice", "publish,yank,owners");
    node.add_user("bob", "publish");
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = committed_package(home.path(), dir.path(), "uploaded_one");
    let with_token = |cmd: &mut Command| -> Ran { run(cmd.env("MISSION_TOKEN", &token)) };

    let ran = with_token(mission_cmd(home.path()).arg("publish").arg(&pkg).args([
        "--http",
        "--registry",
        &node.url,
    ]));
    assert!(ran.success, "{ran:?}");
    let cksum = ran.stdout.trim().to_owned();
    assert_published(&node, "uploaded_one", "0.1.0", &cksum);
    assert!(
        git(&pkg, &["tag", "--list"]).is_empty(),
        "--http makes no tag"
    );

    // Again: the node's JSON error reaches the author.
    let ran = with_token(mission_cmd(home.path()).arg("publish").arg(&pkg).args([
        "--http",
        "--registry",
        &node.url,
    ]));
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("error: ") && ran.stderr.contains("0.1.0"),
        "{ran:?}"
    );

    let ran = with_token(mission_cmd(home.path()).args([
        "yank",
        "uploaded_one@0.1.0",
        "--registry",
        &node.url,
    ]));
    assert!(ran.success, "{ran:?}");
    let (_, body) = node.get(&index_path("uploaded_one"));
    assert!(
        String::from_utf8_lossy(&body).contains("\"yanked\":true"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let ran = with_token(mission_cmd(home.path()).args([
        "yank",
        "uploaded_one@0.1.0",
        "--undo",
        "--registry",
        &node.url,
    ]));
    assert!(ran.success, "{ran:?}");
    let (_, body) = node.get(&index_path("uploaded_one"));
    assert!(String::from_utf8_lossy(&body).contains("\"yanked\":false"));

    let owners = |home: &Path| -> Vec<String> {
        let ran = with_token(mission_cmd(home).args([
            "owner",
            "uploaded_one",
            "--list",
            "--registry",
            &node.url,
        ]));
        assert!(ran.success, "{ran:?}");
        ran.stdout.lines().map(str::to_owned).collect()
    };
    assert_eq!(owners(home.path()), vec!["alice"]);
    let ran = with_token(mission_cmd(home.path()).args([
        "owner",
        "uploaded_one",
        "--add",
        "bob",
        "--registry",
        &node.url,
    ]));
    assert!(ran.success, "{ran:?}");
    let mut listed = owners(home.path());
    listed.sort();
    assert_eq!(listed, vec!["alice", "bob"]);
    let ran = with_token(mission_cmd(home.path()).args([
        "owner",
        "uploaded_one",
        "--remove",
        "bob",
        "--registry",
        &node.url,
    ]));
    assert!(ran.success, "{ran:?}");
    assert_eq!(owners(home.path()), vec!["alice"]);

    // A bad token: the node's words, and that the variable it came from is to fix.
    let ran = run(mission_cmd(home.path())
        .args(["yank", "uploaded_one@0.1.0", "--registry", &node.url])
        .env("MISSION_TOKEN", "mrt_wrong"));
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("mission login") && ran.stderr.contains("MISSION_TOKEN was refused"),
        "{ran:?}"
    );
}
