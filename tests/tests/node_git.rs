//! The node's git door, end to end: a real `mission-node serve` on 127.0.0.1:0, the real
//! `git` client over smart HTTP, real minisign keys.
//!
//! - `/git/index.git`: clone, then pull after the node published more (the seeded library).
//! - `/git/missions/NAME.git`: a `git push` of a signed annotated tag `vVERSION` publishes,
//!   and every refusal reaches the pusher's terminal as `remote: error: ...`.
//!
//! The publish tags are made here as `mission tag` makes them: the canonical archive of the
//! committed files (`archive::build_archive`), signed with `signing::sign_archive`, and the
//! message `wire::TagMessage::to_message()` in `git tag -a vVERSION -F FILE`.
//!
//! Users and tokens come from `mission-node --data D admin user add NAME --scopes S`, run
//! before the node starts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mission_e2e::{add_user, require_program, run, workspace, NodeProcess as Node, Ran};
use mission_index::archive::{self, ArchiveLimits};
use mission_index::entry::IndexEntry;
use mission_index::layout::entry_path;
use mission_index::signing::{self, PublicKey, SecretKey};
use mission_index::wire::TagMessage;
use sha2::{Digest, Sha256};

// ---- the node --------------------------------------------------------------------------

/// Writes `DATA/node.toml` from the template, with the library seeded or not and an
/// optional archive size limit.
fn write_settings(data: &Path, seed: bool, max_archive_bytes: Option<u64>) {
    std::fs::create_dir_all(data).unwrap();
    let mut text =
        std::fs::read_to_string(workspace().join("registry-template/node.toml")).unwrap();
    text = text.replace("seed_library = true", &format!("seed_library = {seed}"));
    if let Some(limit) = max_archive_bytes {
        text = text.replace(
            "max_archive_bytes = 10485760",
            &format!("max_archive_bytes = {limit}"),
        );
    }
    std::fs::write(data.join("node.toml"), text).unwrap();
}

/// The node's git URLs.
trait GitUrls {
    fn index_url(&self) -> String;
    fn mission_url(&self, name: &str) -> String;
    /// The mission URL with `token` as the Basic password, as a credential helper gives it.
    fn push_url(&self, name: &str, token: &str) -> String;
}

impl GitUrls for Node {
    fn index_url(&self) -> String {
        format!("{}/git/index.git", self.url)
    }

    fn mission_url(&self, name: &str) -> String {
        format!("{}/git/missions/{name}.git", self.url)
    }

    fn push_url(&self, name: &str, token: &str) -> String {
        format!("http://git:{token}@{}/git/missions/{name}.git", self.addr())
    }
}

// ---- git -------------------------------------------------------------------------------

/// A git client with no user or system configuration, no terminal prompts, and a fixed
/// identity.
struct Git {
    home: PathBuf,
}

impl Git {
    fn new(root: &Path) -> Git {
        let home = root.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Git { home }
    }

    fn cmd(&self, dir: &Path) -> Command {
        let mut cmd = Command::new("git");
        cmd.current_dir(dir)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "")
            .env("SSH_ASKPASS", "")
            .env("GIT_AUTHOR_NAME", "Ada Author")
            .env("GIT_AUTHOR_EMAIL", "ada@example.org")
            .env("GIT_COMMITTER_NAME", "Ada Author")
            .env("GIT_COMMITTER_EMAIL", "ada@example.org")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Ran {
        run(self.cmd(dir).args(args))
    }

    /// Runs and asserts success.
    fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let ran = self.run(dir, args);
        assert!(
            ran.success,
            "git {} failed in {}:\n{}\n{}",
            args.join(" "),
            dir.display(),
            ran.stdout,
            ran.stderr
        );
        ran.stdout
    }
}

// ---- packages and publish tags ---------------------------------------------------------

struct Key {
    secret: SecretKey,
    public: PublicKey,
}

fn new_key() -> Key {
    let generated = signing::generate_keypair(None).unwrap();
    Key {
        secret: SecretKey::parse(&generated.secret_key_text, None).unwrap(),
        public: PublicKey::parse(&generated.public_key_text).unwrap(),
    }
}

/// The `mission new` template for `name`, at `version`.
fn manifest(name: &str, version: &str) -> String {
    std::fs::read_to_string(workspace().join("registry-template/package/mission.yaml"))
        .unwrap()
        .replace("{{name}}", name)
        .replace("{{author}}", "Ada Author <ada@example.org>")
        .replace("version: 0.1.0", &format!("version: {version}"))
}

/// A package work tree with one commit on `main`.
fn new_package(git: &Git, root: &Path, name: &str, version: &str) -> PathBuf {
    let dir = root.join(format!("pkg-{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    git.ok(&dir, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(dir.join("mission.yaml"), manifest(name, version)).unwrap();
    std::fs::write(dir.join("README.md"), format!("# {name}\n")).unwrap();
    commit_all(git, &dir, "the package");
    dir
}

fn commit_all(git: &Git, dir: &Path, message: &str) {
    git.ok(dir, &["add", "-A"]);
    git.ok(dir, &["commit", "--quiet", "-m", message]);
}

/// The signed tag message `mission tag` would make for the package in `dir` (clean).
fn tag_message(dir: &Path, key: &Key, name: &str, version: &str) -> TagMessage {
    let bytes = archive::build_archive(dir, &ArchiveLimits::default()).unwrap();
    let signature = signing::sign_archive(&key.secret, &key.public, &bytes, name, version).unwrap();
    TagMessage {
        name: name.to_owned(),
        version: version.to_owned(),
        key: key.public.to_base64(),
        cksum: archive::cksum(&bytes),
        signature,
    }
}

/// `git tag -a TAG -F message`.
fn tag_with(git: &Git, dir: &Path, tag: &str, message: &str) {
    let file = dir.with_extension("tagmsg");
    std::fs::write(&file, message).unwrap();
    git.ok(
        dir,
        &[
            "tag",
            "--cleanup=verbatim",
            "-a",
            tag,
            "-F",
            file.to_str().unwrap(),
        ],
    );
}

/// Signs the package in `dir` and tags it `vVERSION` as `mission tag` does.
fn sign_and_tag(git: &Git, dir: &Path, key: &Key, name: &str, version: &str) {
    let message = tag_message(dir, key, name, version);
    tag_with(
        git,
        dir,
        &TagMessage::tag_name(version),
        &message.to_message(),
    );
}

/// A node with alice and bob (both may publish), unseeded.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    git: Git,
    node: Node,
    alice: String,
    bob: String,
    key: Key,
}

impl Fixture {
    fn new(max_archive_bytes: Option<u64>) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let data = root.join("data");
        write_settings(&data, false, max_archive_bytes);
        let alice = add_user(&data, "alice", "publish,yank");
        let bob = add_user(&data, "bob", "publish");
        let node = Node::start(&data);
        let git = Git::new(&root);
        Fixture {
            _tmp: tmp,
            root,
            git,
            node,
            alice,
            bob,
            key: new_key(),
        }
    }

    /// `git push URL REFSPEC...` with `token`.
    fn push(&self, dir: &Path, name: &str, token: &str, refspecs: &[&str]) -> Ran {
        let url = self.node.push_url(name, token);
        let mut args = vec!["push", url.as_str()];
        args.extend_from_slice(refspecs);
        self.git.run(dir, &args)
    }

    /// The index as a fresh clone sees it: the lines of `name`'s entry file.
    fn index_lines(&self, name: &str) -> Vec<String> {
        let dir = tempfile::tempdir_in(&self.root).unwrap();
        self.git.ok(
            dir.path(),
            &["clone", "--quiet", &self.node.index_url(), "index"],
        );
        let path = dir.path().join("index").join(entry_path(name).unwrap());
        std::fs::read_to_string(path)
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    fn remote_refs(&self, name: &str) -> String {
        self.git
            .ok(&self.root, &["ls-remote", &self.node.mission_url(name)])
    }

    /// Publishes `name` `version` as alice; returns the package folder.
    fn publish(&self, name: &str, version: &str) -> PathBuf {
        let dir = new_package(&self.git, &self.root, name, version);
        sign_and_tag(&self.git, &dir, &self.key, name, version);
        let tag = format!("refs/tags/v{version}");
        let ran = self.push(&dir, name, &self.alice, &["refs/heads/main", &tag]);
        assert!(
            ran.success,
            "publishing {name} {version} failed:\n{}\nnode log:\n{}",
            ran.stderr,
            self.node.log()
        );
        dir
    }
}

/// Asserts a push failed and git showed `remote: error: ...` containing each of `wanted`.
#[track_caller]
fn assert_refused(ran: &Ran, wanted: &[&str]) {
    assert!(!ran.success, "the push was accepted:\n{}", ran.stderr);
    let remote_errors: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("remote: error: "))
        .collect();
    assert!(
        !remote_errors.is_empty(),
        "no `remote: error:` line in git's output:\n{}",
        ran.stderr
    );
    let joined = remote_errors.join("\n");
    for w in wanted {
        assert!(
            joined.contains(w),
            "`{w}` is not in the remote errors:\n{}",
            ran.stderr
        );
    }
}

fn have_git() -> bool {
    require_program("git", "git")
}

// ---- the index -------------------------------------------------------------------------

#[test]
fn the_index_clones_over_http_and_pulls_what_is_published_later() {
    if !have_git() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let git = Git::new(tmp.path());
    write_settings(&data, false, None);
    let clone = tmp.path().join("index");
    {
        let node = Node::start(&data);
        git.ok(
            tmp.path(),
            &[
                "clone",
                "--quiet",
                &node.index_url(),
                clone.to_str().unwrap(),
            ],
        );
        let config = std::fs::read_to_string(clone.join("config.json")).unwrap();
        assert!(
            config.contains(&format!("{}/api/v1/missions/", node.url)),
            "{config}"
        );
        assert!(config.contains("\"local\""), "{config}");
        assert!(!clone
            .join(entry_path("rust_toolchain_check").unwrap())
            .exists());

        // The index is read-only over git.
        std::fs::write(clone.join("extra"), "x\n").unwrap();
        commit_all(&git, &clone, "an outsider's change");
        let ran = git.run(&clone, &["push", &node.index_url(), "HEAD:refs/heads/main"]);
        assert_refused(&ran, &["the index is read-only"]);
        git.ok(&clone, &["reset", "--quiet", "--hard", "HEAD~1"]);
    }
    // Restart with the library seeded: its missions are published through the pipeline,
    // and the clone pulls them.
    write_settings(&data, true, None);
    let node = Node::start(&data);
    git.ok(&clone, &["remote", "set-url", "origin", &node.index_url()]);
    git.ok(&clone, &["pull", "--quiet", "--ff-only"]);
    let entry =
        std::fs::read_to_string(clone.join(entry_path("rust_toolchain_check").unwrap())).unwrap();
    let entries = IndexEntry::parse_file(&entry).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].name, "rust_toolchain_check");
    assert_eq!(entries[0].vers, "1.0.0");
    assert_eq!(entries[0].origin, "local");
    let config = std::fs::read_to_string(clone.join("config.json")).unwrap();
    assert!(
        config.contains(&format!("{}/api/v1/missions/", node.url)),
        "config.json does not follow the new address: {config}"
    );

    // A fresh clone sees the same, and history is linear (every commit has one parent).
    let fresh = tmp.path().join("fresh");
    git.ok(
        tmp.path(),
        &[
            "clone",
            "--quiet",
            &node.index_url(),
            fresh.to_str().unwrap(),
        ],
    );
    assert!(fresh
        .join(entry_path("secret_scan_basic").unwrap())
        .is_file());
    let merges = git.ok(&fresh, &["rev-list", "--merges", "HEAD"]);
    assert!(
        merges.trim().is_empty(),
        "merge commits in the index: {merges}"
    );
}

#[test]
fn unknown_mission_repositories_are_not_found() {
    if !have_git() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_settings(&data, false, None);
    let node = Node::start(&data);
    let git = Git::new(tmp.path());
    let ran = git.run(
        tmp.path(),
        &["clone", &node.mission_url("nobody_pushed_this"), "x"],
    );
    assert!(!ran.success);
    assert!(
        ran.stderr
            .contains("remote: error: no mission repository `nobody_pushed_this`"),
        "{}",
        ran.stderr
    );
}

/// Git compresses large upload-pack requests with gzip; the node unpacks them. Sent by
/// hand here (the `gzip` program, a raw HTTP/1.1 request) so the body surely is gzip.
#[test]
fn gzip_request_bodies_are_unpacked() {
    use std::io::{Read, Write};
    if !have_git() || !require_program("gzip", "gzip") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_settings(&data, false, None);
    let node = Node::start(&data);
    let git = Git::new(tmp.path());
    let refs = git.ok(tmp.path(), &["ls-remote", &node.index_url(), "HEAD"]);
    let head = refs.split_whitespace().next().unwrap().to_owned();
    let request = format!("0032want {head}\n00000009done\n");
    let mut gzip = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    gzip.stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let body = gzip.wait_with_output().unwrap().stdout;
    assert_eq!(&body[..2], &[0x1f, 0x8b]);

    let addr = node.url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /git/index.git/git-upload-pack HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-git-upload-pack-request\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("application/x-git-upload-pack-result"),
        "{text}"
    );
    assert!(
        text.contains("0008NAK\n") && text.contains("PACK"),
        "{text}"
    );
}

// ---- authentication (no users needed) --------------------------------------------------

#[test]
fn a_push_without_a_token_makes_git_ask_and_a_bad_token_is_refused() {
    if !have_git() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_settings(&data, false, None);
    let node = Node::start(&data);
    let git = Git::new(tmp.path());
    let dir = new_package(&git, tmp.path(), "needs_auth", "1.0.0");

    // 401 with WWW-Authenticate: git asks for credentials; with prompts off it says so.
    let ran = git.run(&dir, &["push", &node.mission_url("needs_auth"), "main"]);
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("could not read Username")
            && ran.stderr.contains("terminal prompts disabled"),
        "{}",
        ran.stderr
    );

    let url = node.push_url("needs_auth", "mrt_not_a_real_token");
    let ran = git.run(&dir, &["push", &url, "main"]);
    assert!(!ran.success);
    assert!(
        ran.stderr
            .contains("remote: error: the API token is not valid")
            && ran.stderr.contains("Authentication failed"),
        "{}",
        ran.stderr
    );
    assert!(
        !data.join("missions/needs_auth.git").exists(),
        "a refused push created a repository"
    );
}

// ---- publishing by push ----------------------------------------------------------------

#[test]
fn a_pushed_signed_tag_publishes() {
    if !have_git() {
        return;
    }
    let f = Fixture::new(None);
    let dir = new_package(&f.git, &f.root, "hello_git", "1.0.0");
    // An executable file keeps its mode in the archive.
    std::fs::write(dir.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    commit_all(&f.git, &dir, "a script");
    sign_and_tag(&f.git, &dir, &f.key, "hello_git", "1.0.0");
    let message = tag_message(&dir, &f.key, "hello_git", "1.0.0");

    let ran = f.push(&dir, "hello_git", &f.alice, &["main", "v1.0.0"]);
    assert!(ran.success, "{}\n{}", ran.stderr, f.node.log());
    assert!(
        ran.stderr.contains("remote: ok hello_git 1.0.0"),
        "{}",
        ran.stderr
    );

    let lines = f.index_lines("hello_git");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let entry = IndexEntry::parse_file(&lines[0]).unwrap().remove(0);
    assert_eq!(entry.vers, "1.0.0");
    assert_eq!(entry.cksum, message.cksum);
    assert_eq!(entry.key, f.key.public.to_base64());

    let refs = f.remote_refs("hello_git");
    assert!(refs.contains("refs/tags/v1.0.0"), "{refs}");
    assert!(refs.contains("refs/heads/main"), "{refs}");
    // Anyone can clone the mission's repository.
    f.git.ok(
        &f.root,
        &[
            "clone",
            "--quiet",
            &f.node.mission_url("hello_git"),
            "hello_clone",
        ],
    );
    assert!(f.root.join("hello_clone/mission.yaml").is_file());

    // The owner publishes the next version the same way.
    std::fs::write(dir.join("mission.yaml"), manifest("hello_git", "1.1.0")).unwrap();
    commit_all(&f.git, &dir, "1.1.0");
    sign_and_tag(&f.git, &dir, &f.key, "hello_git", "1.1.0");
    let ran = f.push(&dir, "hello_git", &f.alice, &["main", "v1.1.0"]);
    assert!(ran.success, "{}\n{}", ran.stderr, f.node.log());
    assert_eq!(f.index_lines("hello_git").len(), 2);
}

#[test]
fn refused_pushes_tell_the_pusher_why() {
    if !have_git() {
        return;
    }
    let f = Fixture::new(Some(64 * 1024));
    let owned = f.publish("owned_one", "1.0.0");

    // Not an owner.
    let ran = f.push(&owned, "owned_one", &f.bob, &["main"]);
    assert_refused(
        &ran,
        &["`bob` is not an owner of `owned_one` (owners: alice)"],
    );

    // Names that differ only in case or -/_ are the same name.
    for other in ["Owned_One", "owned-one"] {
        let dir = new_package(&f.git, &f.root, other, "1.0.0");
        sign_and_tag(&f.git, &dir, &f.key, other, "1.0.0");
        let ran = f.push(&dir, other, &f.bob, &["v1.0.0"]);
        assert_refused(
            &ran,
            &[&format!("the name `{other}` is taken"), "`owned_one`"],
        );
        // Even its first claimant's own owner gets no second spelling.
        let ran = f.push(&dir, other, &f.alice, &["v1.0.0"]);
        assert_refused(&ran, &[&format!("the name `{other}` is taken")]);
    }

    // The version is already published (build metadata does not make a new version).
    std::fs::write(
        owned.join("mission.yaml"),
        manifest("owned_one", "1.0.0+build.2"),
    )
    .unwrap();
    commit_all(&f.git, &owned, "rebuild");
    sign_and_tag(&f.git, &owned, &f.key, "owned_one", "1.0.0+build.2");
    let ran = f.push(&owned, "owned_one", &f.alice, &["v1.0.0+build.2"]);
    assert_refused(&ran, &["`owned_one` 1.0.0+build.2 is already published"]);

    // Tags are never moved or deleted.
    let ran = f.push(&owned, "owned_one", &f.alice, &[":refs/tags/v1.0.0"]);
    assert_refused(&ran, &["the tag `v1.0.0` cannot be deleted"]);
    f.git.ok(&owned, &["tag", "-d", "v1.0.0"]);
    sign_and_tag(&f.git, &owned, &f.key, "owned_one", "1.0.0");
    let ran = f.push(&owned, "owned_one", &f.alice, &["--force", "v1.0.0"]);
    assert_refused(&ran, &["the tag `v1.0.0` cannot be moved"]);

    // A free name's repository belongs to whoever created it until the first publish.
    let claimed = new_package(&f.git, &f.root, "claimed_one", "1.0.0");
    let ran = f.push(&claimed, "claimed_one", &f.bob, &["main"]);
    assert!(ran.success, "{}", ran.stderr);
    let ran = f.push(
        &claimed,
        "claimed_one",
        &f.alice,
        &["main:refs/heads/other"],
    );
    assert_refused(
        &ran,
        &["/git/missions/claimed_one.git was created by `bob`"],
    );

    // Nothing of the above reached the index.
    assert_eq!(f.index_lines("owned_one").len(), 1);
    assert!(f.index_lines("Owned_One").len() <= 1);
}

#[test]
fn a_tag_that_does_not_match_its_tree_or_signature_is_refused() {
    if !have_git() {
        return;
    }
    let f = Fixture::new(Some(64 * 1024));
    let push_tag = |dir: &Path, name: &str, tag: &str| f.push(dir, name, &f.alice, &[tag]);

    // An invalid mission: the error names the file, the line and the field.
    let dir = new_package(&f.git, &f.root, "broken_one", "1.0.0");
    let text = manifest("broken_one", "1.0.0")
        .replace("step_type: create_file", "step_type: no_such_step");
    let bad_line = text
        .lines()
        .position(|l| l.contains("no_such_step"))
        .unwrap()
        + 1;
    std::fs::write(dir.join("mission.yaml"), text).unwrap();
    commit_all(&f.git, &dir, "broken");
    sign_and_tag(&f.git, &dir, &f.key, "broken_one", "1.0.0");
    let ran = push_tag(&dir, "broken_one", "v1.0.0");
    assert_refused(&ran, &["invalid mission:", "mission.yaml", "no_such_step"]);
    let invalid_line = ran
        .stderr
        .lines()
        .find(|l| l.contains("invalid mission:"))
        .unwrap();
    assert!(
        invalid_line.contains(&format!("mission.yaml:{bad_line}:"))
            && invalid_line.contains("steps[0].step_type"),
        "the error does not name line {bad_line} and the field: {}",
        ran.stderr
    );

    // No signature block.
    let dir = new_package(&f.git, &f.root, "unsigned_one", "1.0.0");
    tag_with(
        &f.git,
        &dir,
        "v1.0.0",
        "mission unsigned_one 1.0.0\n\nkey: RWxx\nsha256: 00\n",
    );
    assert_refused(
        &push_tag(&dir, "unsigned_one", "v1.0.0"),
        &["the tag `v1.0.0`", "has no signature block"],
    );

    // A lightweight tag carries no signature at all.
    let dir = new_package(&f.git, &f.root, "light_one", "1.0.0");
    f.git.ok(&dir, &["tag", "v1.0.0"]);
    assert_refused(
        &push_tag(&dir, "light_one", "v1.0.0"),
        &["`v1.0.0` is a lightweight tag"],
    );

    // A bad signature: signed by another key than the one the tag names.
    let dir = new_package(&f.git, &f.root, "forged_one", "1.0.0");
    let mut message = tag_message(&dir, &new_key(), "forged_one", "1.0.0");
    message.key = f.key.public.to_base64();
    tag_with(&f.git, &dir, "v1.0.0", &message.to_message());
    assert_refused(&push_tag(&dir, "forged_one", "v1.0.0"), &["signature:"]);

    // The tree changed after signing: both checksums are named.
    let dir = new_package(&f.git, &f.root, "changed_one", "1.0.0");
    let signed = tag_message(&dir, &f.key, "changed_one", "1.0.0");
    std::fs::write(dir.join("README.md"), "# changed after signing\n").unwrap();
    commit_all(&f.git, &dir, "change");
    let rebuilt = archive::cksum(&archive::build_archive(&dir, &ArchiveLimits::default()).unwrap());
    tag_with(&f.git, &dir, "v1.0.0", &signed.to_message());
    assert_refused(
        &push_tag(&dir, "changed_one", "v1.0.0"),
        &[&signed.cksum, &rebuilt, "rebuilt from the tagged tree"],
    );

    // The tag names another version than the manifest.
    let dir = new_package(&f.git, &f.root, "mislabelled", "1.0.0");
    let message = tag_message(&dir, &f.key, "mislabelled", "2.0.0");
    tag_with(&f.git, &dir, "v2.0.0", &message.to_message());
    assert_refused(
        &push_tag(&dir, "mislabelled", "v2.0.0"),
        &["the tag is v2.0.0, but mission.yaml says version 1.0.0"],
    );

    // Too large for this node (64 KiB archives): incompressible bytes.
    let dir = new_package(&f.git, &f.root, "big_one", "1.0.0");
    let mut noise = Vec::new();
    let mut block = Sha256::digest(b"seed").to_vec();
    while noise.len() < 200 * 1024 {
        block = Sha256::digest(&block).to_vec();
        noise.extend_from_slice(&block);
    }
    std::fs::write(dir.join("noise.bin"), noise).unwrap();
    commit_all(&f.git, &dir, "noise");
    sign_and_tag(&f.git, &dir, &f.key, "big_one", "1.0.0");
    assert_refused(&push_tag(&dir, "big_one", "v1.0.0"), &["65536"]);

    // Only vVERSION tags.
    let dir = new_package(&f.git, &f.root, "odd_tag", "1.0.0");
    sign_and_tag(&f.git, &dir, &f.key, "odd_tag", "1.0.0");
    f.git.ok(&dir, &["tag", "-a", "release", "-m", "a release"]);
    assert_refused(
        &push_tag(&dir, "odd_tag", "release"),
        &["only version tags named vVERSION", "`release`"],
    );

    // Nothing was published, and no refused tag is in any repository.
    for name in [
        "broken_one",
        "unsigned_one",
        "light_one",
        "forged_one",
        "changed_one",
        "mislabelled",
        "big_one",
        "odd_tag",
    ] {
        assert!(f.index_lines(name).is_empty(), "{name} was published");
        let refs = f.remote_refs(name);
        assert!(
            !refs.contains("refs/tags/"),
            "{name} kept a refused tag: {refs}"
        );
    }
}

#[test]
fn a_token_without_the_publish_scope_cannot_push() {
    if !have_git() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_settings(&data, false, None);
    let token = add_user(&data, "carol", "yank");
    let node = Node::start(&data);
    let git = Git::new(tmp.path());
    let dir = new_package(&git, tmp.path(), "scoped_one", "1.0.0");
    let ran = git.run(
        &dir,
        &["push", &node.push_url("scoped_one", &token), "main"],
    );
    assert_refused(&ran, &["lacks the `publish` scope"]);
}
