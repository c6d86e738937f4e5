//! # mission-e2e: end-to-end tests of the real binaries
//!
//! The tests in `tests/tests/` drive the real `mission` (and later `mission-node`)
//! binaries, the real `git` and `minisign` programs, on real files in temporary folders.
//! This library holds what they share: finding the binaries (built on first use with the
//! same cargo and target folder as the test run) and running commands with a clean,
//! private environment; and, for the node tests, a running `mission-node` ([`Node`], or
//! [`NodeProcess`] over a data folder the test owns), its admin commands ([`node_cmd`],
//! [`node_admin`], [`add_user`]) and a small HTTP client ([`agent`], [`Reply`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// The folder holding the workspace's binaries, built once per test process.
///
/// `cargo test` does not build the binaries of other packages, so the first call runs
/// `cargo build --bins` for the client and the node into the same target folder.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("MISSION_BIN_DIR") {
            return PathBuf::from(dir);
        }
        // target/debug/deps/<test binary> -> target/debug
        let exe = std::env::current_exe().expect("the test binary has a path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary sits in target/<profile>/deps")
            .to_owned();
        let target_dir = profile_dir
            .parent()
            .expect("target/<profile> has a parent")
            .to_owned();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ sits in the workspace");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace)
            .args([
                "build",
                "--quiet",
                "--bins",
                "-p",
                "mission-cli",
                "-p",
                "mission-node",
            ])
            .arg("--target-dir")
            .arg(&target_dir);
        if profile_dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build for the binaries");
        assert!(status.success(), "cargo build of the binaries failed");
        profile_dir
    })
}

/// The path of a workspace binary (`mission`, `mission-node`).
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_owned()
}

/// A `mission` command with its own `MISSION_HOME`, no key password from the caller's
/// environment, and no terminal.
pub fn mission(home: &Path) -> Command {
    let mut cmd = Command::new(bin("mission"));
    cmd.env("MISSION_HOME", home)
        .env_remove("MISSION_KEY_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs `cmd` and returns its output, with stdout and stderr as text for assertions.
pub fn run(cmd: &mut Command) -> Ran {
    let output = cmd.output().expect("the command starts");
    Ran::from(output)
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Ran {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(o: Output) -> Self {
        Ran {
            success: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Whether an external program is installed. Tests that need one call
/// [`require_program`].
pub fn has_program(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .map(|_| true)
        .unwrap_or(false)
}

/// `true` when `program` is installed. When it is not: under CI (`CI` set) the test fails,
/// since CI installs it; elsewhere the test says it is skipped and why, and returns `false`.
pub fn require_program(program: &str, package: &str) -> bool {
    if has_program(program) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("`{program}` is not installed; CI must install it (apt-get install -y {package})");
    }
    eprintln!(
        "SKIPPED: `{program}` is not installed (apt-get install -y {package}); CI runs this test"
    );
    false
}

// ---- a node process ----

/// A `mission-node` command on the data folder `data`, with `RUST_LOG=info`, no
/// `MISSION_NODE_DATA` from the caller's environment, and no terminal.
pub fn node_cmd(data: &Path) -> Command {
    let mut cmd = Command::new(bin("mission-node"));
    cmd.arg("--data")
        .arg(data)
        .env_remove("MISSION_NODE_DATA")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

/// `mission-node admin user add NAME --scopes SCOPES`: the token, which must be alone on
/// stdout.
pub fn add_user(data: &Path, name: &str, scopes: &str) -> String {
    let out = node_cmd(data)
        .args(["admin", "user", "add", name, "--scopes", scopes])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "admin user add {name} failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the token alone on stdout: {stdout:?}");
    assert!(lines[0].starts_with("mrt_"), "not a token: {stdout:?}");
    lines[0].trim().to_owned()
}

/// A `mission-node serve` on 127.0.0.1 with its own data folder in a temporary folder;
/// killed on drop, printing its log when the test is failing. It can be stopped and
/// started again on the same port.
pub struct Node {
    /// The base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The data folder.
    pub data: PathBuf,
    /// The node's stderr.
    pub log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// A node with the default settings (the library seeded) and no users.
    pub fn start() -> Node {
        Node::start_with(None, &[])
    }

    /// [`Node::start_with_users`] without the tokens.
    pub fn start_with(node_toml: Option<&str>, users: &[(&str, &str)]) -> Node {
        Node::start_with_users(node_toml, users).0
    }

    /// A node whose data folder gets `node_toml` (when given), `mission-node init`, and the
    /// users `(name, scopes)` before it starts; returns the node and the users' tokens in
    /// order.
    pub fn start_with_users(
        node_toml: Option<&str>,
        users: &[(&str, &str)],
    ) -> (Node, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        if let Some(toml) = node_toml {
            std::fs::write(data.join("node.toml"), toml).unwrap();
        }
        let init = node_cmd(&data).arg("init").output().unwrap();
        assert!(
            init.status.success(),
            "mission-node init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let tokens = users
            .iter()
            .map(|(name, scopes)| add_user(&data, name, scopes))
            .collect();
        let mut node = Node {
            url: String::new(),
            log: dir.path().join("node.log"),
            data,
            child: None,
            _dir: dir,
        };
        node.spawn("127.0.0.1:0");
        (node, tokens)
    }

    fn spawn(&mut self, listen: &str) {
        let log = std::fs::File::create(&self.log).unwrap();
        let (child, url) = spawn_node(&self.data, listen, log, &self.log);
        self.url = url;
        self.child = Some(child);
    }

    /// Kills the node; the data folder stays until the `Node` is dropped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the node and starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let listen = self.url.trim_start_matches("http://").to_owned();
        self.spawn(&listen);
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Reply {
        self.get_with(path, None)
    }

    /// `GET path` with the token as a Bearer `Authorization`, when given.
    pub fn get_with(&self, path: &str, token: Option<&str>) -> Reply {
        let mut request = agent().get(self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Reply::from(request.call())
    }

    /// `GET path` with `If-None-Match: etag`.
    pub fn get_if_none_match(&self, path: &str, etag: &str) -> Reply {
        Reply::from(
            agent()
                .get(self.url(path))
                .header("If-None-Match", etag)
                .call(),
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- mission-node log ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// Starts `mission-node serve` on `data`, listening on `listen`, its stderr into `log`
/// (named `log_path` in the panic message); returns the child and its base URL, read from
/// the first line it prints.
fn spawn_node(data: &Path, listen: &str, log: std::fs::File, log_path: &Path) -> (Child, String) {
    let mut child = node_cmd(data)
        .args(["--listen", listen, "serve"])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("mission-node starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(url) = line.trim().strip_prefix("mission-node listening on ") else {
        let _ = child.kill();
        panic!(
            "mission-node did not print its address (stdout: {line:?}); log:\n{}",
            std::fs::read_to_string(log_path).unwrap_or_default()
        );
    };
    (child, url.to_owned())
}

/// A `mission-node serve` on 127.0.0.1:0 over a data folder the test owns (for tests that
/// stop it one way or another and look at the folder afterwards); its stderr is appended to
/// `DATA.log`. Killed (SIGKILL) on drop.
pub struct NodeProcess {
    child: Child,
    /// The base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The data folder.
    pub data: PathBuf,
}

impl NodeProcess {
    pub fn start(data: &Path) -> NodeProcess {
        let log_path = data.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let (child, url) = spawn_node(data, "127.0.0.1:0", log, &log_path);
        NodeProcess {
            child,
            url,
            data: data.to_owned(),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    /// What the node has written to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: a clean stop.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mission-node --data DATA admin ARGS...` (logging only warnings, so stderr holds what
/// the command itself says).
pub fn node_admin(data: &Path, args: &[&str]) -> Ran {
    run(node_cmd(data)
        .arg("admin")
        .args(args)
        .env("RUST_LOG", "warn"))
}

// ---- HTTP ----

/// A ureq agent that returns 4xx and 5xx answers instead of errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// A finished HTTP exchange (bodies up to 64 MiB).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl From<Result<ureq::http::Response<ureq::Body>, ureq::Error>> for Reply {
    fn from(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Self {
        let mut response = r.expect("the HTTP exchange completes");
        let body = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap();
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body,
        }
    }
}

impl Reply {
    /// The header `name`, which must be there.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no `{name}` header in {self:?}"))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The `detail` of a JSON error, checking the error shape.
    pub fn detail(&self) -> String {
        let json = self.json();
        json["errors"][0]["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("not an API error: {json}"))
            .to_owned()
    }
    /// Asserts the status, showing the body when it differs.
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status, status, "{}", self.text());
        self
    }
}

/// Adds `Authorization: Bearer TOKEN`.
pub fn with_token(
    request: ureq::RequestBuilder<ureq::typestate::WithBody>,
    token: &str,
) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
    request.header("Authorization", format!("Bearer {token}"))
}

/// `POST /api/v1/missions/publish` with `body`, and the token when given.
pub fn publish_raw(node: &Node, token: Option<&str>, body: Vec<u8>) -> Reply {
    let mut request = agent().post(node.url("/api/v1/missions/publish"));
    if let Some(token) = token {
        request = with_token(request, token);
    }
    Reply::from(request.send(body))
}

// ---- packages to publish ----

use mission_index::archive::{self, ArchiveLimits};
use mission_index::lockfile::Lockfile;
use mission_index::signing::{self, PublicKey, SecretKey};
use mission_index::wire::{PublishBody, PublishMetadata};

/// An author's key pair (fresh, unencrypted).
pub struct Author {
    pub sk: SecretKey,
    pub pk: PublicKey,
}

pub fn author() -> Author {
    let generated = signing::generate_keypair(None).unwrap();
    Author {
        sk: SecretKey::parse(&generated.secret_key_text, None).unwrap(),
        pk: PublicKey::parse(&generated.public_key_text).unwrap(),
    }
}

pub fn mission_yaml(name: &str, version: &str) -> String {
    greeting_yaml(&Greeting {
        name,
        version,
        summary: "Writes a greeting file.",
        description: "Writes a greeting file, for the node API tests.",
        keywords: "test",
        deps: "",
        content: "hello",
    })
}

/// The fields of [`greeting_yaml`].
struct Greeting<'a> {
    name: &'a str,
    version: &'a str,
    /// The mission's own `description`.
    summary: &'a str,
    /// The package's `description`.
    description: &'a str,
    keywords: &'a str,
    /// The `dependencies:` line of the package block, with its newline, or nothing.
    deps: &'a str,
    /// What the mission writes to `hello.txt`.
    content: &'a str,
}

/// A mission.yaml whose one step writes `hello.txt`: the template every test package uses.
fn greeting_yaml(g: &Greeting) -> String {
    let Greeting {
        name,
        version,
        summary,
        description,
        keywords,
        deps,
        content,
    } = g;
    format!(
        r#"version: "1.0"
name: {name}
description: {summary}

package:
  name: {name}
  version: {version}
  description: {description}
  authors: ["Test Author <author@example.invalid>"]
  license: MIT
  categories: [build-automation]
  keywords: [{keywords}]
  pricing: {{ model: free }}
{deps}  permissions:
    network: false
    commands: []
    llm: false
    max_duration_seconds: 60

steps:
  - id: greet
    name: Write the greeting
    step_type: create_file
    parameters:
      path: hello.txt
      content: {content}
"#
    )
}

/// The canonical archive of a package `name` `version`, with a README of `readme_bytes`
/// hard-to-compress bytes (to make archives of a wanted size).
pub fn package(name: &str, version: &str, readme_bytes: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mission.yaml"), mission_yaml(name, version)).unwrap();
    let mut readme = String::from("# A test mission\n");
    let mut seed = 0u64;
    while readme.len() < readme_bytes {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        readme.push_str(&format!("{:016x}\n", seed));
    }
    std::fs::write(dir.path().join("README.md"), readme).unwrap();
    archive::build_archive(dir.path(), &ArchiveLimits::default()).unwrap()
}

/// A publish body for `archive` claiming `name` `version`, signed by `signer` and naming
/// `author`'s key.
pub fn publish_body_signed(
    signer: &Author,
    author: &Author,
    name: &str,
    version: &str,
    archive: Vec<u8>,
) -> Vec<u8> {
    let sig = signing::sign_archive(&signer.sk, &signer.pk, &archive, name, version).unwrap();
    PublishBody {
        metadata: PublishMetadata {
            name: name.to_owned(),
            vers: version.to_owned(),
            cksum: archive::cksum(&archive),
            key: author.pk.to_base64(),
            sig,
        },
        archive,
    }
    .encode()
}

pub fn publish_body(author: &Author, name: &str, version: &str) -> Vec<u8> {
    publish_body_signed(author, author, name, version, package(name, version, 0))
}

// ---- a user of `mission` (install, update, remove, search, ...) ----

/// Text of a command's output, for assertions and messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The canonical archive of a package `name` `version` needing `deps` (`(name, req)`),
/// whose mission writes `hello.txt`.
pub fn package_with_deps(
    name: &str,
    version: &str,
    deps: &[(&str, &str)],
    description: &str,
) -> Vec<u8> {
    let deps = if deps.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = deps.iter().map(|(n, r)| format!("{n}: \"{r}\"")).collect();
        format!("  dependencies: {{ {} }}\n", list.join(", "))
    };
    let yaml = greeting_yaml(&Greeting {
        name,
        version,
        summary: description,
        description,
        keywords: &format!("test, {name}"),
        deps: &deps,
        content: &format!("hello from {name} {version}"),
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mission.yaml"), yaml).unwrap();
    std::fs::write(
        dir.path().join("README.md"),
        format!("# {name} {version}\n"),
    )
    .unwrap();
    archive::build_archive(dir.path(), &ArchiveLimits::default()).unwrap()
}

/// `NAME VERSION` of every mission a lock holds, sorted by name.
pub fn versions(lock: &Lockfile) -> Vec<String> {
    lock.missions()
        .map(|m| format!("{} {}", m.name, m.version))
        .collect()
}

/// A user of `mission`: a home (config, trust store, caches) and a project folder, both
/// in a temporary folder of their own.
pub struct Client {
    pub home: PathBuf,
    pub project: PathBuf,
    /// Extra environment for every command.
    pub env: Vec<(String, String)>,
    /// The node the registry `test` points at ([`Client::point_at`]).
    registry_url: std::cell::RefCell<Option<String>>,
    _dir: tempfile::TempDir,
}

impl Client {
    /// A user whose config.toml is `config` (none when empty).
    pub fn with_config(config: &str) -> Client {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let project = dir.path().join("project");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&project).unwrap();
        if !config.is_empty() {
            std::fs::write(home.join("config.toml"), config).unwrap();
        }
        Client {
            home,
            project,
            env: Vec::new(),
            registry_url: std::cell::RefCell::new(None),
            _dir: dir,
        }
    }

    /// A user whose default registry `test` is the node at `registry_url` (sparse HTTP).
    pub fn new(registry_url: &str) -> Client {
        let client = Client::with_config("");
        client.point_at(registry_url);
        client
    }

    /// Makes the registry `test` (the default) point at `url`.
    pub fn point_at(&self, url: &str) {
        self.registry_url.replace(Some(url.to_owned()));
        self.config_with("");
    }

    /// Writes config.toml: the registry `test` (the default), then `extra` verbatim.
    pub fn config_with(&self, extra: &str) {
        let url = self
            .registry_url
            .borrow()
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:9".to_owned());
        std::fs::write(
            self.home.join("config.toml"),
            format!("[registry]\ndefault = \"test\"\n\n[registries.test]\nindex = \"sparse+{url}/index/\"\n\n{extra}"),
        )
        .unwrap();
    }

    /// Runs `mission ARGS` in `project`.
    pub fn run_in(&self, project: &Path, args: &[&str]) -> Output {
        let mut cmd = mission(&self.home);
        cmd.current_dir(project).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Runs `mission ARGS` in the project.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_in(&self.project, args)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mission {args:?} failed:\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs a command that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "mission {args:?} should have failed:\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stderr)
    }

    /// `missions.lock` of `project`, which must exist.
    pub fn lock_in(&self, project: &Path) -> Lockfile {
        Lockfile::load(&project.join("missions.lock"))
            .unwrap()
            .expect("missions.lock exists")
    }

    /// `missions.lock` of the project, which must exist.
    pub fn lock(&self) -> Lockfile {
        self.lock_in(&self.project)
    }

    /// The folders in `missions/`, sorted (temporary folders would show up too).
    pub fn installed(&self) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.project.join("missions")) {
            Ok(read) => read
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Every file under the project (lockfile and installed missions), with its bytes.
    pub fn tree(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        walk(&self.project, &self.project, &mut files);
        files
    }
}

/// Adds every file under `dir` to `files`, by its path relative to `root`, with its bytes.
pub fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            files.insert(rel, std::fs::read(&path).unwrap());
        }
    }
}
