//! `mission install`, `update`, `remove`, `list`, `search` and `info` end to end: a real
//! `mission-node serve` process, missions published to it over HTTP with real minisign keys,
//! and the real `mission` binary installing them. Tampering is done the way an attacker
//! would: on the node's disk (its blob store, its index repository, with the real `git`),
//! or by a small HTTP server in front of the node that speaks the real protocol but serves
//! an old or forged snapshot.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mission_e2e::{
    agent, author, package_with_deps as package, publish_body_signed, publish_raw, text, versions,
    walk, Author, Client, Node,
};
use mission_index::archive;
use mission_index::index_file_signature;
use mission_index::lockfile::Lockfile;
use mission_index::signing::{self, SecretKey};
use mission_index::snapshot::{self, Snapshot};

const NODE_TOML: &str = "name = \"testnode\"\nseed_library = false\n";

// ---- a node process (Node: mission_e2e) ----

/// A node with one publishing user, alice; returns the node and her token.
fn start_node() -> (Node, String) {
    let (node, mut tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish")]);
    (node, tokens.remove(0))
}

/// Publishing over HTTP, beyond `mission_e2e::Node`.
trait Publish {
    fn publish(
        &self,
        token: &str,
        author: &Author,
        name: &str,
        version: &str,
        deps: &[(&str, &str)],
        description: &str,
    ) -> Vec<u8>;
}

impl Publish for Node {
    fn publish(
        &self,
        token: &str,
        author: &Author,
        name: &str,
        version: &str,
        deps: &[(&str, &str)],
        description: &str,
    ) -> Vec<u8> {
        let archive = package(name, version, deps, description);
        let body = publish_body_signed(author, author, name, version, archive.clone());
        publish_raw(self, Some(token), body).expect(200);
        archive
    }
}

// ---- the client ----

// ---- a fixture server in front of the node ----

/// The snapshot files (JSON, signature) a [`Front`] serves instead of the node's.
type ForgedSnapshot = Arc<Mutex<Option<(Vec<u8>, Vec<u8>)>>>;

/// An HTTP server that forwards every GET to the node (with its `If-None-Match` and
/// `Prefer`, and the answer's `ETag`, `Link` and `Mission-Index-Signature`), except the
/// snapshot files, which it answers with what the test put in `snapshot` (JSON,
/// signature), and the paths given to [`Front::serve_instead`]. One thread a connection,
/// so a delayed answer holds up only its own request. It records the paths asked for, and
/// can hold one answer back until another path has been asked for.
struct Front {
    url: String,
    shared: FrontState,
}

/// What the test can change while a [`Front`] serves.
#[derive(Clone)]
struct FrontState {
    node_url: String,
    /// The node's data folder: its key signs the config.json the front rewrites.
    node_data: std::path::PathBuf,
    snapshot: ForgedSnapshot,
    /// When set, archive downloads have their last byte flipped on the way.
    corrupt_downloads: Arc<AtomicBool>,
    /// When set, `/index/config.json` is served with this `dl` template.
    dl: Arc<Mutex<Option<String>>>,
    /// How long the snapshot files take to arrive.
    snapshot_delay: Arc<Mutex<Duration>>,
    /// When cleared, `Prefer` is not passed on (as from a node without prefetch hints).
    forward_prefer: Arc<AtomicBool>,
    /// Every path asked for, in order; notified on each.
    requested: Arc<(Mutex<Vec<String>>, std::sync::Condvar)>,
    /// `(held, awaited, at most)`: the answer to `held` waits until `awaited` has been
    /// asked for, or `at most` has passed.
    hold: Arc<Mutex<Option<(String, String, Duration)>>>,
    /// Whether the held answer was released by the awaited request (not the time limit).
    released_by_request: Arc<Mutex<Option<bool>>>,
    /// Paths answered with these bytes and this `Mission-Index-Signature` instead of the
    /// node's (an index file edited or replayed on the way).
    served_instead: Arc<Mutex<BTreeMap<String, Instead>>>,
}

/// An answer a [`Front`] gives instead of the node's: the body, the
/// `Mission-Index-Signature`, and how many more times (`None`: always).
type Instead = (Vec<u8>, Option<String>, Option<usize>);

impl Front {
    fn start(node: &Node) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = FrontState {
            node_url: node.url.clone(),
            node_data: node.data.clone(),
            snapshot: Arc::new(Mutex::new(None)),
            corrupt_downloads: Arc::new(AtomicBool::new(false)),
            dl: Arc::new(Mutex::new(None)),
            snapshot_delay: Arc::new(Mutex::new(Duration::ZERO)),
            forward_prefer: Arc::new(AtomicBool::new(true)),
            requested: Arc::new((Mutex::new(Vec::new()), std::sync::Condvar::new())),
            hold: Arc::new(Mutex::new(None)),
            released_by_request: Arc::new(Mutex::new(None)),
            served_instead: Arc::new(Mutex::new(BTreeMap::new())),
        };
        let state = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || state.answer(stream));
            }
        });
        Front { url, shared }
    }

    /// Serves `config.json` with `dl` set to `template`.
    fn serve_dl(&self, template: &str) {
        *self.shared.dl.lock().unwrap() = Some(template.to_owned());
    }

    fn serve_snapshot(&self, json: Vec<u8>, sig: Vec<u8>) {
        *self.shared.snapshot.lock().unwrap() = Some((json, sig));
    }

    fn delay_snapshot(&self, by: Duration) {
        *self.shared.snapshot_delay.lock().unwrap() = by;
    }

    /// Answers `path` with `body` and `signature`, whatever the node has: the next `times`
    /// times, or (`None`) until [`Front::serve_node`].
    fn serve_instead(
        &self,
        path: &str,
        body: Vec<u8>,
        signature: Option<String>,
        times: Option<usize>,
    ) {
        self.shared
            .served_instead
            .lock()
            .unwrap()
            .insert(path.to_owned(), (body, signature, times));
    }

    /// Forwards every path to the node again.
    fn serve_node(&self) {
        self.shared.served_instead.lock().unwrap().clear();
    }

    fn corrupt_downloads(&self, on: bool) {
        self.shared.corrupt_downloads.store(on, Ordering::SeqCst);
    }

    fn forward_prefer(&self, on: bool) {
        self.shared.forward_prefer.store(on, Ordering::SeqCst);
    }

    /// Holds the answer to `held` until `awaited` is asked for, at most `at_most`; forgets
    /// the paths asked for so far.
    fn hold(&self, held: &str, awaited: &str, at_most: Duration) {
        self.shared.requested.0.lock().unwrap().clear();
        *self.shared.hold.lock().unwrap() = Some((held.to_owned(), awaited.to_owned(), at_most));
        *self.shared.released_by_request.lock().unwrap() = None;
    }

    /// Whether the held answer was let go because the awaited path was asked for (`None`:
    /// it was not asked for at all).
    fn released_by_request(&self) -> Option<bool> {
        *self.shared.released_by_request.lock().unwrap()
    }

    fn requested(&self) -> Vec<String> {
        self.shared.requested.0.lock().unwrap().clone()
    }
}

impl FrontState {
    /// The node's signature of `body` as its index file `path` at its current head: what
    /// the node itself would send, had it this file (a node configured that way).
    fn sign_as_node(&self, path: &str, body: &[u8]) -> String {
        let keys = self.node_data.join("keys");
        let secret = SecretKey::load(&keys.join("node.key"), None).unwrap();
        let public = signing::PublicKey::from_file(&keys.join("node.pub")).unwrap();
        let snapshot: Snapshot = agent()
            .get(format!("{}/index/snapshot.json", self.node_url))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        index_file_signature::sign(&secret, &public, &snapshot.node, &snapshot.head, path, body)
            .unwrap()
    }

    /// Answers the one request of `stream` (the client closes after it).
    fn answer(&self, mut stream: std::net::TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let mut if_none_match = None;
        let mut prefer = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("if-none-match") {
                    if_none_match = Some(v.trim().to_owned());
                }
                if k.eq_ignore_ascii_case("prefer") && self.forward_prefer.load(Ordering::SeqCst) {
                    prefer = Some(v.trim().to_owned());
                }
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_owned();
        let (requested, asked) = &*self.requested;
        requested.lock().unwrap().push(path.clone());
        asked.notify_all();
        let hold = self.hold.lock().unwrap().clone();
        if let Some((_, awaited, at_most)) = hold.filter(|(held, _, _)| *held == path) {
            let (seen, _) = asked
                .wait_timeout_while(requested.lock().unwrap(), at_most, |paths| {
                    !paths.contains(&awaited)
                })
                .unwrap();
            *self.released_by_request.lock().unwrap() = Some(seen.contains(&awaited));
        }
        if path.starts_with("/index/snapshot.json") {
            std::thread::sleep(*self.snapshot_delay.lock().unwrap());
        }
        let forged = self.snapshot.lock().unwrap().clone();
        let instead = {
            let mut served = self.served_instead.lock().unwrap();
            let answer = served
                .get(&path)
                .map(|(body, signature, _)| (body.clone(), signature.clone()));
            if let Some((_, _, Some(left))) = served.get_mut(&path) {
                *left -= 1;
                if *left == 0 {
                    served.remove(&path);
                }
            }
            answer
        };
        let mut link = None;
        let mut signature = None;
        let (status, etag, body) = match (&forged, path.as_str()) {
            (Some((json, _)), "/index/snapshot.json") => (200, None, json.clone()),
            (Some((_, sig)), "/index/snapshot.json.minisig") => (200, None, sig.clone()),
            _ if instead.is_some() => {
                let (body, sig) = instead.unwrap();
                signature = sig;
                (200, None, body)
            }
            _ => {
                let template = self
                    .dl
                    .lock()
                    .unwrap()
                    .clone()
                    .filter(|_| path == "/index/config.json");
                let mut request = agent().get(format!("{}{path}", self.node_url));
                if let Some(tag) = if_none_match.as_ref().filter(|_| template.is_none()) {
                    request = request.header("If-None-Match", tag);
                }
                if let Some(prefer) = &prefer {
                    request = request.header("Prefer", prefer);
                }
                let mut response = request.call().unwrap();
                let etag = response
                    .headers()
                    .get("etag")
                    .map(|v| v.to_str().unwrap().to_owned());
                link = response
                    .headers()
                    .get("link")
                    .map(|v| v.to_str().unwrap().to_owned());
                signature = response
                    .headers()
                    .get("mission-index-signature")
                    .map(|v| v.to_str().unwrap().to_owned());
                let mut body = response.body_mut().read_to_vec().unwrap_or_default();
                let mut etag = etag;
                if let Some(template) = template {
                    let mut config: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    config["dl"] = serde_json::Value::String(template);
                    body = serde_json::to_vec(&config).unwrap();
                    etag = None;
                    signature = Some(self.sign_as_node("config.json", &body));
                }
                if path.ends_with("/download") && self.corrupt_downloads.load(Ordering::SeqCst) {
                    if let Some(last) = body.last_mut() {
                        *last ^= 0xff;
                    }
                }
                (response.status().as_u16(), etag, body)
            }
        };
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(etag) = etag {
            head.push_str(&format!("ETag: {etag}\r\n"));
        }
        if let Some(link) = link {
            head.push_str(&format!("Link: {link}\r\n"));
        }
        if let Some(signature) = signature {
            head.push_str(&format!("Mission-Index-Signature: {signature}\r\n"));
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
        let _ = stream.flush();
    }
}

// ---- the tests ----

#[test]
fn install_locks_reproduces_and_works_from_the_cache() {
    let (mut node, token) = start_node();
    let alice = author();
    node.publish(&token, &alice, "base_tools", "1.0.0", &[], "Base tools.");
    let base11 = node.publish(&token, &alice, "base_tools", "1.1.0", &[], "Base tools.");
    let helper = node.publish(
        &token,
        &alice,
        "helper_kit",
        "1.0.0",
        &[("base_tools", "^1.0")],
        "Helps.",
    );
    let app = node.publish(
        &token,
        &alice,
        "app_main",
        "1.0.0",
        &[("helper_kit", "^1")],
        "The app.",
    );

    let user = Client::new(&node.url);
    let out = user.ok(&["install", "app_main"]);
    assert!(out.contains("app_main 1.0.0"), "{out}");

    // Every mission of the graph is in missions/NAME/, and the lock pins each.
    for name in ["app_main", "helper_kit", "base_tools"] {
        let yaml = std::fs::read_to_string(
            user.project
                .join("missions")
                .join(name)
                .join("mission.yaml"),
        )
        .unwrap_or_else(|e| panic!("missions/{name}/mission.yaml: {e}"));
        assert!(yaml.contains(&format!("name: {name}")));
    }
    let lock = user.lock();
    assert_eq!(
        versions(&lock),
        ["app_main 1.0.0", "base_tools 1.1.0", "helper_kit 1.0.0"]
    );
    for (name, bytes) in [
        ("app_main", &app),
        ("helper_kit", &helper),
        ("base_tools", &base11),
    ] {
        let m = lock.get(name).unwrap();
        assert_eq!(m.cksum, archive::cksum(bytes), "{name}");
        assert_eq!(m.key, alice.pk.to_base64(), "{name}");
        // The registry's location, not the user's name for it: a lock can be shared.
        assert_eq!(m.registry, format!("sparse+{}/index/", node.url));
    }
    assert_eq!(
        lock.get("app_main").unwrap().dependencies[0].to_string(),
        "helper_kit 1.0.0"
    );

    let listed: serde_json::Value = serde_json::from_str(&user.ok(&["list", "--json"])).unwrap();
    assert_eq!(listed["missions"].as_array().unwrap().len(), 3);

    // Another user with the same lockfile gets the same tree with --locked.
    let other = Client::new(&node.url);
    std::fs::copy(
        user.project.join("missions.lock"),
        other.project.join("missions.lock"),
    )
    .unwrap();
    other.ok(&["install", "--locked"]);
    assert_eq!(
        other.tree(),
        user.tree(),
        "--locked reproduces the same files"
    );

    // A newer base_tools does not move the lock; --locked refuses to add a mission.
    node.publish(&token, &alice, "base_tools", "1.2.0", &[], "Base tools.");
    node.publish(&token, &alice, "extra_bits", "0.1.0", &[], "Extras.");
    user.ok(&["install"]);
    assert_eq!(
        user.lock().get("base_tools").unwrap().version.to_string(),
        "1.1.0"
    );
    let before = user.tree();
    let err = user.fails(&["install", "extra_bits", "--locked"]);
    assert!(
        err.contains("--locked") && err.contains("`extra_bits` 0.1.0 would be added"),
        "{err}"
    );
    assert_eq!(
        user.tree(),
        before,
        "a refused --locked install changes nothing"
    );

    // Unknown names get suggestions.
    let err = user.fails(&["install", "helper_kits"]);
    assert!(
        err.contains("no mission named `helper_kits`") && err.contains("`helper_kit`"),
        "{err}"
    );

    // update re-resolves ignoring the lock.
    let out = user.ok(&["update", "base_tools"]);
    assert!(out.contains("Updated base_tools 1.1.0 -> 1.2.0"), "{out}");
    assert_eq!(
        user.lock().get("base_tools").unwrap().version.to_string(),
        "1.2.0"
    );

    // With the node stopped, a warm --locked install still succeeds: no request is made.
    node.stop();
    let out = user.run(&["install", "--locked"]);
    assert!(
        out.status.success(),
        "warm --locked with the node stopped: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("nothing to fetch"),
        "{}",
        text(&out.stderr)
    );
    // So does --offline, for the other user, from their cache.
    std::fs::remove_dir_all(other.project.join("missions")).unwrap();
    let out = other.ok(&["install", "--offline"]);
    assert_eq!(other.tree().len(), before.len());
    // What was put back is said, not counted as unchanged.
    assert!(
        out.contains("Restored app_main 1.0.0 -> ") && !out.contains("unchanged"),
        "{out}"
    );
    let out = other.ok(&["install", "--offline"]);
    assert!(
        out.contains("(3 unchanged)") && !out.contains("Restored"),
        "{out}"
    );
    std::fs::remove_dir_all(other.project.join("missions/base_tools")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&other.ok(&["install", "--offline", "--json"])).unwrap();
    for m in json["installed"].as_array().unwrap() {
        assert_eq!(m["folder_was_missing"], m["name"] == "base_tools", "{json}");
    }
    // Offline with an empty cache names what is missing.
    let cold = Client::new(&node.url);
    std::fs::copy(
        user.project.join("missions.lock"),
        cold.project.join("missions.lock"),
    )
    .unwrap();
    let err = cold.fails(&["install", "--offline"]);
    assert!(
        err.contains("not in the index cache") && err.contains("/index/"),
        "{err}"
    );
    // Without --offline and without the node, the error says the node did not answer.
    let err = cold.fails(&["install"]);
    assert!(err.contains("did not answer"), "{err}");

    // remove: refused while needed; then the folder and lock entry go, with the
    // dependencies nothing else needs.
    let err = user.fails(&["remove", "base_tools"]);
    assert!(
        err.contains("`base_tools` is installed only because `helper_kit` 1.0.0 needs it"),
        "{err}"
    );
    let out = user.ok(&["remove", "app_main"]);
    assert!(
        out.contains("Removed app_main 1.0.0")
            && out.contains("Removed helper_kit 1.0.0 (no longer needed)"),
        "{out}"
    );
    assert!(!user.project.join("missions/app_main").exists());
    assert!(!user.project.join("missions/helper_kit").exists());
    assert!(user.lock().is_empty());
}

/// A cached archive altered on the user's disk is never installed: offline (or a
/// `--locked` install that would otherwise make no request) it is refused with a message
/// naming the mission and the file, and removed, so the next install downloads it again.
#[test]
fn a_corrupt_cached_archive_is_refused_and_fetched_again() {
    let (node, token) = start_node();
    let alice = author();
    let base = node.publish(&token, &alice, "base_tools", "1.0.0", &[], "Base tools.");
    node.publish(
        &token,
        &alice,
        "app_main",
        "1.0.0",
        &[("base_tools", "^1")],
        "The app.",
    );
    let user = Client::new(&node.url);
    user.ok(&["install", "app_main"]);
    let installed = user.tree();
    let cached = user
        .home
        .join("cache/archives")
        .join(format!("{}.mission", archive::cksum(&base)));
    let corrupt = |path: &Path| {
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        std::fs::write(path, bytes).unwrap();
    };

    // --offline: refused, with nothing changed.
    corrupt(&cached);
    std::fs::remove_dir_all(user.project.join("missions/app_main")).unwrap();
    let before = user.tree();
    let err = user.fails(&["install", "--offline"]);
    assert!(
        err.contains("the cached archive of `base_tools` 1.0.0")
            && err.contains(&cached.display().to_string())
            && err.contains("is corrupt")
            && err.contains("Run the install again online"),
        "{err}"
    );
    assert_eq!(user.tree(), before, "a refused install changes nothing");
    assert!(!cached.exists(), "the corrupt copy is removed");
    // The next install (online) downloads it again and completes.
    user.ok(&["install", "--locked"]);
    assert_eq!(user.tree(), installed);
    assert_eq!(std::fs::read(&cached).unwrap(), base, "cached again");

    // --locked, online: it would go without the node, as everything is cached; the
    // corrupt copy is met, removed, and downloaded again in the same run.
    corrupt(&cached);
    std::fs::remove_dir_all(user.project.join("missions/app_main")).unwrap();
    let out = user.run(&["install", "--locked"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "note: the cached archive of `base_tools` 1.0.0 ({}) was corrupt and is removed; downloading again from the node",
            cached.display()
        )),
        "{err}"
    );
    assert_eq!(user.tree(), installed);
    assert_eq!(std::fs::read(&cached).unwrap(), base, "cached again");

    // Online, a corrupt copy is simply downloaded again.
    corrupt(&cached);
    std::fs::remove_dir_all(user.project.join("missions")).unwrap();
    user.ok(&["install"]);
    assert_eq!(user.tree(), installed);
    assert_eq!(std::fs::read(&cached).unwrap(), base);

    // A cached index file altered on disk (here its checksum, still valid JSON) is not
    // revalidated with its ETag and trusted: offline it is missing, online it is fetched
    // whole again.
    let index_file = user.home.join("cache/index/test/ba/se/base_tools");
    let text = std::fs::read_to_string(&index_file).unwrap();
    let sum = archive::cksum(&base);
    assert!(text.contains(&sum), "{text}");
    let altered = text.replace(&sum, &"0".repeat(64));
    std::fs::write(&index_file, &altered).unwrap();
    std::fs::remove_dir_all(user.project.join("missions")).unwrap();
    let err = user.fails(&["install", "--offline"]);
    assert!(
        err.contains("not in the index cache") && err.contains("base_tools"),
        "{err}"
    );
    user.ok(&["install"]);
    assert_eq!(user.tree(), installed);
    assert_eq!(std::fs::read_to_string(&index_file).unwrap(), text);
}

#[test]
fn search_and_info_read_the_node() {
    let (node, token) = start_node();
    let alice = author();
    node.publish(
        &token,
        &alice,
        "deploy_site",
        "1.0.0",
        &[],
        "Deploys a static site.",
    );
    node.publish(
        &token,
        &alice,
        "deploy_site",
        "1.1.0",
        &[],
        "Deploys a static site.",
    );
    node.publish(
        &token,
        &alice,
        "lint_docs",
        "0.3.0",
        &[],
        "Lints documentation.",
    );
    let user = Client::new(&node.url);

    let out = user.ok(&["search", "static"]);
    assert!(
        out.contains("deploy_site") && out.contains("1.1.0"),
        "{out}"
    );
    assert!(!out.contains("lint_docs"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&user.ok(&[
        "search",
        "",
        "--free",
        "--category",
        "build-automation",
        "--json",
    ]))
    .unwrap();
    assert_eq!(json["meta"]["total"], 2, "{json}");
    let json: serde_json::Value =
        serde_json::from_str(&user.ok(&["search", "x", "--category", "security", "--json"]))
            .unwrap();
    assert_eq!(json["meta"]["total"], 0, "{json}");
    // An empty answer names the filters that applied, a misspelled category among them.
    let out = user.ok(&["search", "static", "--category", "bogus-cat", "--free"]);
    assert!(
        out.contains("No mission matching `static` in category `bogus-cat`, free on"),
        "{out}"
    );

    let out = user.ok(&["info", "deploy_site"]);
    assert!(
        out.contains("deploy_site 1.1.0") && out.contains("Deploys a static site."),
        "{out}"
    );
    assert!(out.contains(&alice.pk.to_base64()), "{out}");
    assert!(
        out.contains("versions: 1.1.0, 1.0.0\n"),
        "highest first: {out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&user.ok(&["info", "deploy_site@1.0.0", "--json"])).unwrap();
    assert_eq!(json["version"]["vers"], "1.0.0");
    let err = user.fails(&["info", "deploy_sit"]);
    assert!(err.contains("did you mean `deploy_site`"), "{err}");
    // A requirement shows the highest version matching it, as `cargo info` does; nothing
    // after @ is refused.
    let out = user.ok(&["info", "deploy_site@^1"]);
    assert!(
        out.contains("deploy_site 1.1.0 (the highest version matching ^1)"),
        "{out}"
    );
    let err = user.fails(&["info", "deploy_site@"]);
    assert!(err.contains("nothing after @"), "{err}");
    let err = user.fails(&["info", "deploy_site@9.9.9"]);
    assert!(err.contains("has no version 9.9.9; it has: "), "{err}");
    // --limit 0 is refused, not shown as one result.
    let err = user.fails(&["search", "static", "--limit", "0"]);
    assert!(err.contains("--limit") && err.contains("0"), "{err}");
}

#[test]
fn tampering_is_refused_and_leaves_the_install_alone() {
    let (mut node, token) = start_node();
    let alice = author();
    let base = node.publish(&token, &alice, "base_tools", "1.0.0", &[], "Base tools.");
    node.publish(
        &token,
        &alice,
        "app_main",
        "1.0.0",
        &[("base_tools", "^1")],
        "The app.",
    );
    let user = Client::new(&node.url);
    user.ok(&["install", "app_main"]);
    let installed = user.tree();
    let unchanged = |what: &str| {
        assert_eq!(
            user.tree(),
            installed,
            "{what}: the earlier install and missions.lock are untouched"
        )
    };

    // 1. An archive altered on the node's disk: a user without the archive cached is refused.
    let cksum = archive::cksum(&base);
    let blob = node
        .data
        .join("blobs/sha256")
        .join(&cksum[..2])
        .join(&cksum[2..]);
    let original = std::fs::read(&blob).unwrap();
    let mut altered = original.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0xff;
    std::fs::write(&blob, &altered).unwrap();
    let fresh_home = Client::new(&node.url);
    std::fs::remove_dir_all(&user.home).unwrap();
    std::fs::rename(&fresh_home.home, &user.home).unwrap();
    let err = user.fails(&["install"]);
    assert!(
        err.contains("base_tools") && err.contains("corrupt"),
        "{err}"
    );
    unchanged("altered archive");
    std::fs::write(&blob, &original).unwrap();
    user.ok(&["install"]);
    unchanged("reinstall");

    // 1b. Archive bytes altered on the way (the node itself refuses to serve a corrupt
    //     blob, so this is what reaches the client's own checksum check).
    let front = Front::start(&node);
    front.corrupt_downloads(true);
    // Archives come from where config.json's `dl` points: through the front, as from a
    // node whose public_url is the proxy's.
    front.serve_dl(&format!(
        "{}/api/v1/missions/{{name}}/{{version}}/download",
        front.url
    ));
    // The lock names the node: `--registry test` (the front now) moves the project.
    user.point_at(&front.url);
    let fresh_home = Client::new(&front.url);
    std::fs::remove_dir_all(&user.home).unwrap();
    std::fs::rename(&fresh_home.home, &user.home).unwrap();
    let err = user.fails(&["install", "--registry", "test"]);
    assert!(
        err.contains("checksum check failed for `base_tools` 1.0.0"),
        "{err}"
    );
    unchanged("archive altered in transit");
    front.corrupt_downloads(false);
    user.ok(&["install", "--registry", "test"]);
    // The same missions; the lock now names the registry the user installed from.
    let mut through_front = user.tree();
    let mut expected = installed.clone();
    through_front.remove("missions.lock");
    expected.remove("missions.lock");
    assert_eq!(through_front, expected, "reinstall through the front");
    assert!(user
        .lock()
        .missions()
        .all(|m| m.registry == format!("sparse+{}/index/", front.url)));
    user.point_at(&node.url);
    user.ok(&["install", "--registry", "test"]);
    unchanged("back at the node");

    // 2. An old snapshot replayed: saved now, served after the node moved on.
    let old_json = node.get("/index/snapshot.json").body;
    let old_sig = node.get("/index/snapshot.json.minisig").body;
    node.publish(&token, &alice, "later_one", "1.0.0", &[], "Later.");
    user.ok(&["install", "--registry", "test"]); // sees the newer snapshot
    front.serve_snapshot(old_json, old_sig);
    user.point_at(&front.url);
    let err = user.fails(&["install", "--registry", "test"]);
    assert!(
        err.contains("snapshot check failed")
            && err.contains("rollback")
            && err.contains("older or stale index")
            && !err.contains("key really changed"),
        "{err}"
    );
    unchanged("replayed snapshot");

    // 3. An expired snapshot, validly signed with the node's own key.
    let node_sk = SecretKey::load(&node.data.join("keys/node.key"), None).unwrap();
    let node_pk = node_sk.public_key().unwrap();
    let current = node.get("/index/snapshot.json").body;
    let current: Snapshot = serde_json::from_slice(&current).unwrap();
    let now = chrono::Utc::now();
    let mut expired = Snapshot::new(
        &current.node,
        &node_pk,
        current.seq + 1,
        &current.head,
        now - chrono::Duration::hours(3),
        chrono::Duration::hours(1),
    );
    expired.node = current.node.clone();
    let (json, sig) = snapshot::sign_snapshot(&expired, &node_sk, &node_pk).unwrap();
    front.serve_snapshot(json.into_bytes(), sig.into_bytes());
    let err = user.fails(&["install", "--registry", "test"]);
    assert!(
        err.contains("snapshot check failed") && err.contains("expired"),
        "{err}"
    );
    unchanged("expired snapshot");
    // A first-time user refused the same way keeps nothing the node served: no index file
    // and no archive reach its cache, no node key is pinned, its project stays empty. The
    // snapshot arrives late, while the index walk goes on, and still no archive is fetched
    // before it verified.
    front.delay_snapshot(Duration::from_millis(300));
    let downloads_before = node_downloads(&node);
    let newcomer = Client::new(&front.url);
    let err = newcomer.fails(&["install", "app_main"]);
    assert!(err.contains("expired"), "{err}");
    assert_eq!(
        node_downloads(&node),
        downloads_before,
        "no archive fetched for a refused snapshot"
    );
    let mut kept = BTreeMap::new();
    walk(&newcomer.home, &newcomer.home, &mut kept);
    // The empty lock file installs take turns with is all that may be added.
    assert_eq!(kept.remove(".mission-lock"), Some(Vec::new()));
    assert_eq!(
        kept.keys().collect::<Vec<_>>(),
        vec!["config.toml"],
        "only the user's own config"
    );
    assert_eq!(
        std::fs::read_dir(&newcomer.project).unwrap().count(),
        0,
        "nothing left in the project"
    );
    front.delay_snapshot(Duration::ZERO);
    user.point_at(&node.url);

    // 4. An index line altered in the node's repository: base_tools' signature replaced by
    //    one from another key. The node re-signs its snapshot on start, so only the
    //    archive's own signature check can catch it.
    node.stop();
    let mallory = author();
    let forged_sig =
        signing::sign_archive(&mallory.sk, &mallory.pk, &base, "base_tools", "1.0.0").unwrap();
    let git_dir = node.data.join("index.git");
    let git = |args: &[&str], env: &[(&str, &Path)]| -> String {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir").arg(&git_dir).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    let path = "ba/se/base_tools";
    // Commits `change` applied to base_tools' index line, as someone with write access to
    // the node's disk could, with git plumbing (the node is stopped).
    let rewrite_line = |change: &dyn Fn(&mut serde_json::Value)| {
        let line = git(&["show", &format!("main:{path}")], &[]);
        let mut entry: serde_json::Value =
            serde_json::from_str(line.lines().next().unwrap()).unwrap();
        change(&mut entry);
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("line");
        std::fs::write(
            &file,
            format!("{}\n", serde_json::to_string(&entry).unwrap()),
        )
        .unwrap();
        let blob_id = git(&["hash-object", "-w", file.to_str().unwrap()], &[]);
        let index_file = work.path().join("gitindex");
        let env = [("GIT_INDEX_FILE", index_file.as_path())];
        git(&["read-tree", "main"], &env);
        git(
            &[
                "update-index",
                "--cacheinfo",
                &format!("100644,{blob_id},{path}"),
            ],
            &env,
        );
        let tree = git(&["write-tree"], &env);
        let commit = git(
            &[
                "-c",
                "user.name=Mallory",
                "-c",
                "user.email=m@example.invalid",
                "commit-tree",
                &tree,
                "-p",
                "main",
                "-m",
                "tamper",
            ],
            &[],
        );
        git(&["update-ref", "refs/heads/main", &commit], &[]);
    };
    rewrite_line(&|entry| entry["sig"] = serde_json::Value::String(forged_sig.clone()));
    node.restart();
    let err = user.fails(&["install"]);
    assert!(
        err.contains("signature check failed for `base_tools` 1.0.0"),
        "{err}"
    );
    unchanged("altered index line");

    // 4b. The line signed by the author's own key, but over other bytes: the signature
    //     parses and names the right key, and only its equation fails. A user with an
    //     empty cache (the download workers check signatures in batches) is refused, and
    //     the archive does not reach the cache.
    node.stop();
    let mut other_bytes = base.clone();
    let last = other_bytes.len() - 1;
    other_bytes[last] ^= 0xff;
    let wrong_bytes_sig =
        signing::sign_archive(&alice.sk, &alice.pk, &other_bytes, "base_tools", "1.0.0").unwrap();
    rewrite_line(&|entry| entry["sig"] = serde_json::Value::String(wrong_bytes_sig.clone()));
    node.restart();
    let saved_home = user.home.with_extension("saved");
    std::fs::rename(&user.home, &saved_home).unwrap();
    let fresh_home = Client::new(&node.url);
    std::fs::rename(&fresh_home.home, &user.home).unwrap();
    let err = user.fails(&["install"]);
    assert!(
        err.contains("signature check failed for `base_tools` 1.0.0")
            && err.contains("Signature verification failed"),
        "{err}"
    );
    let cached = |ck: &str| {
        user.home
            .join("cache/archives")
            .join(format!("{ck}.mission"))
            .exists()
    };
    assert!(
        !cached(&cksum),
        "an archive whose signature fails is not cached"
    );
    unchanged("signed over other bytes");
    std::fs::remove_dir_all(&user.home).unwrap();
    std::fs::rename(&saved_home, &user.home).unwrap();

    // 5. The author key swapped in the index without a rotation statement: Mallory's key
    //    and a valid signature by it. Every signature check passes; the key pinned for
    //    base_tools at the first install does not, and there is no rotation chain.
    node.stop();
    rewrite_line(&|entry| {
        entry["key"] = serde_json::Value::String(mallory.pk.to_base64());
        entry["sig"] = serde_json::Value::String(forged_sig.clone());
    });
    node.restart();
    let err = user.fails(&["install"]);
    assert!(
        err.contains("`base_tools` 1.0.0")
            && err.contains("author key")
            && err.contains(&mallory.pk.to_base64()),
        "{err}"
    );
    unchanged("author key swapped without rotation");
}

// ---- roots and pruning ----

fn roots(lock: &Lockfile) -> Vec<String> {
    lock.roots().map(|m| m.name.clone()).collect()
}

/// A (needs B, which needs C) and D, published by alice on a fresh node.
fn chain_and_single(node: &Node, token: &str, alice: &Author) {
    node.publish(token, alice, "cc_base", "1.0.0", &[], "C.");
    node.publish(
        token,
        alice,
        "bb_middle",
        "1.0.0",
        &[("cc_base", "^1")],
        "B.",
    );
    node.publish(
        token,
        alice,
        "aa_top",
        "1.0.0",
        &[("bb_middle", "^1")],
        "A.",
    );
    node.publish(token, alice, "dd_alone", "1.0.0", &[], "D.");
}

#[test]
fn remove_takes_the_dependencies_no_remaining_root_needs() {
    let (node, token) = start_node();
    let alice = author();
    chain_and_single(&node, &token, &alice);
    let user = Client::new(&node.url);
    let out = user.run(&["install", "aa_top", "dd_alone"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Not a terminal: no progress output, only the result on stdout.
    assert!(
        !text(&out.stderr).contains("Downloading"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        user.installed(),
        ["aa_top", "bb_middle", "cc_base", "dd_alone"]
    );
    let lock = user.lock();
    assert_eq!(roots(&lock), ["aa_top", "dd_alone"]);
    let text_lock = std::fs::read_to_string(user.project.join("missions.lock")).unwrap();
    assert!(
        text_lock.contains("version = 2\nroots = [\n    \"aa_top\",\n    \"dd_alone\",\n]\n"),
        "{text_lock}"
    );
    let listed: serde_json::Value = serde_json::from_str(&user.ok(&["list", "--json"])).unwrap();
    let root_flags: Vec<(String, bool)> = listed["missions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["root"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        root_flags,
        [
            ("aa_top".to_owned(), true),
            ("bb_middle".to_owned(), false),
            ("cc_base".to_owned(), false),
            ("dd_alone".to_owned(), true)
        ]
    );

    // A dependency cannot be removed while a mission needs it.
    let err = user.fails(&["remove", "cc_base"]);
    assert!(
        err.contains(
            "`cc_base` is installed only because `bb_middle` 1.0.0 needs it; remove that one first"
        ),
        "{err}"
    );

    let out = user.ok(&["remove", "aa_top"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "Removed aa_top 1.0.0",
            "Removed bb_middle 1.0.0 (no longer needed)",
            "Removed cc_base 1.0.0 (no longer needed)",
        ]
    );
    assert_eq!(user.installed(), ["dd_alone"]);
    let lock = user.lock();
    assert_eq!(versions(&lock), ["dd_alone 1.0.0"]);
    assert_eq!(roots(&lock), ["dd_alone"]);
    // The lock matches the folder: a --locked install has nothing to change.
    user.ok(&["install", "--locked"]);
    assert_eq!(user.installed(), ["dd_alone"]);

    // A dependency the user also asked for stays when its dependent goes.
    user.ok(&["install", "aa_top"]);
    user.ok(&["install", "cc_base"]);
    assert_eq!(roots(&user.lock()), ["aa_top", "cc_base", "dd_alone"]);
    let out = user.ok(&["remove", "aa_top"]);
    assert!(
        out.contains("Removed bb_middle 1.0.0 (no longer needed)") && !out.contains("cc_base"),
        "{out}"
    );
    assert_eq!(user.installed(), ["cc_base", "dd_alone"]);
    assert_eq!(versions(&user.lock()), ["cc_base 1.0.0", "dd_alone 1.0.0"]);

    // Removing one asked for that another still needs drops only the asking, as `cargo
    // remove` does; it goes with the last mission that needs it.
    user.ok(&["install", "aa_top"]);
    let out = user.ok(&["remove", "cc_base"]);
    assert!(
        out.contains(
            "Kept cc_base 1.0.0: no longer asked for, but `bb_middle` 1.0.0 still needs it"
        ),
        "{out}"
    );
    assert_eq!(roots(&user.lock()), ["aa_top", "dd_alone"]);
    assert_eq!(
        user.installed(),
        ["aa_top", "bb_middle", "cc_base", "dd_alone"]
    );
    let out = user.ok(&["remove", "aa_top"]);
    assert!(
        out.contains("Removed cc_base 1.0.0 (no longer needed)"),
        "{out}"
    );
    assert_eq!(user.installed(), ["dd_alone"]);
}

#[test]
fn update_drops_a_dependency_the_new_version_no_longer_needs() {
    let (node, token) = start_node();
    let alice = author();
    chain_and_single(&node, &token, &alice);
    let user = Client::new(&node.url);
    user.ok(&["install", "aa_top", "dd_alone"]);
    assert_eq!(
        versions(&user.lock()),
        [
            "aa_top 1.0.0",
            "bb_middle 1.0.0",
            "cc_base 1.0.0",
            "dd_alone 1.0.0"
        ]
    );

    // aa_top 1.1.0 needs cc_base directly and no longer bb_middle.
    node.publish(
        &token,
        &alice,
        "aa_top",
        "1.1.0",
        &[("cc_base", "^1")],
        "A.",
    );
    // A plain install keeps the lock.
    user.ok(&["install"]);
    assert_eq!(
        user.lock().get("aa_top").unwrap().version.to_string(),
        "1.0.0"
    );

    let out = user.ok(&["update"]);
    assert!(out.contains("Updated aa_top 1.0.0 -> 1.1.0"), "{out}");
    assert!(
        !out.contains("cc_base"),
        "unchanged missions are only counted: {out}"
    );
    assert!(
        out.contains("Removed bb_middle 1.0.0 (no longer needed)"),
        "{out}"
    );
    assert_eq!(user.installed(), ["aa_top", "cc_base", "dd_alone"]);
    let lock = user.lock();
    assert_eq!(
        versions(&lock),
        ["aa_top 1.1.0", "cc_base 1.0.0", "dd_alone 1.0.0"]
    );
    assert_eq!(roots(&lock), ["aa_top", "dd_alone"]);
    let yaml = std::fs::read_to_string(user.project.join("missions/aa_top/mission.yaml")).unwrap();
    assert!(yaml.contains("hello from aa_top 1.1.0"), "{yaml}");
}

/// Yanks `name` `version` (or, with `undo`, unyanks it); the node must accept it.
fn yank(node: &Node, token: &str, name: &str, version: &str, undo: bool) {
    let bearer = format!("Bearer {token}");
    let request = if undo {
        let url = node.url(&format!("/api/v1/missions/{name}/{version}/unyank"));
        agent()
            .put(url)
            .header("Authorization", bearer)
            .send_empty()
    } else {
        let url = node.url(&format!("/api/v1/missions/{name}/{version}/yank"));
        agent().delete(url).header("Authorization", bearer).call()
    };
    assert_eq!(request.unwrap().status(), 200, "yanking {name} {version}");
}

#[test]
fn a_yanked_version_is_installed_only_where_the_lock_pins_it() {
    let (node, mut tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish,yank")]);
    let token = tokens.remove(0);
    let alice = author();
    node.publish(&token, &alice, "yk_dep", "1.0.0", &[], "Dep.");
    node.publish(
        &token,
        &alice,
        "yk_app",
        "1.0.0",
        &[("yk_dep", "^1")],
        "App.",
    );
    let locked = Client::new(&node.url);
    locked.ok(&["install", "yk_app"]);
    yank(&node, &token, "yk_dep", "1.0.0", false);

    // A project whose lock pins it keeps it, warned, with or without --locked; a fresh
    // checkout of that project gets it too.
    let warning = "warning: `yk_dep` 1.0.0 in missions.lock is yanked in the registry; run `mission update yk_dep`";
    for args in [&["install"][..], &["install", "--locked"]] {
        let out = locked.run(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(warning),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let checkout = locked.project.with_file_name("checkout");
    std::fs::create_dir_all(&checkout).unwrap();
    std::fs::copy(
        locked.project.join("missions.lock"),
        checkout.join("missions.lock"),
    )
    .unwrap();
    let out = locked.run_in(&checkout, &["install"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(warning), "{}", text(&out.stderr));
    assert_eq!(
        versions(&locked.lock_in(&checkout)),
        ["yk_app 1.0.0", "yk_dep 1.0.0"]
    );

    // A new project is not given it, and is told why and who asked for it.
    let fresh = Client::new(&node.url);
    let err = fresh.fails(&["install", "yk_app"]);
    assert!(
        err.contains(
            "every version of `yk_dep` matching `^1` (required by yk_app 1.0.0) is yanked: 1.0.0"
        ),
        "{err}"
    );
    assert!(!fresh.project.join("missions.lock").exists());
    assert_eq!(fresh.installed(), Vec::<String>::new());

    // A fixed version: `update` moves the pinned project to it, and the warning stops.
    node.publish(&token, &alice, "yk_dep", "1.0.1", &[], "Dep, fixed.");
    let out = locked.ok(&["update", "yk_dep"]);
    assert!(out.contains("Updated yk_dep 1.0.0 -> 1.0.1"), "{out}");
    let out = locked.run(&["install"]);
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("yanked"),
        "{}",
        text(&out.stderr)
    );
    fresh.ok(&["install", "yk_app"]);
    assert_eq!(versions(&fresh.lock()), ["yk_app 1.0.0", "yk_dep 1.0.1"]);

    // Unyanked, 1.0.0 is an ordinary version again: no warning where it is pinned.
    yank(&node, &token, "yk_dep", "1.0.0", true);
    let out = locked.run_in(&checkout, &["install"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("yanked"),
        "{}",
        text(&out.stderr)
    );
}

/// The node's answer to `GET path`: the body and its `Mission-Index-Signature`.
fn signed_file(node: &Node, path: &str) -> (Vec<u8>, Option<String>) {
    let reply = node.get(path).expect(200);
    let signature = reply
        .headers
        .get("mission-index-signature")
        .map(|v| v.to_str().unwrap().to_owned());
    (reply.body, signature)
}

#[test]
fn index_files_edited_replayed_or_unsigned_on_the_way_are_refused() {
    // A proxy between the user and the node passes the real, current snapshot, but edits
    // the index file of `ix_base` (un-yanks a version, adds one signed by its own key),
    // replays an old copy, or strips the node's signature of it.
    let (node, mut tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish,yank")]);
    let token = tokens.remove(0);
    let alice = author();
    node.publish(&token, &alice, "ix_base", "1.0.0", &[], "Base.");
    node.publish(&token, &alice, "ix_base", "1.1.0", &[], "Base, bad.");
    yank(&node, &token, "ix_base", "1.1.0", false);
    let front = Front::start(&node);
    let user = Client::new(&front.url);
    user.ok(&["install", "ix_base@^1"]);
    assert_eq!(versions(&user.lock()), ["ix_base 1.0.0"]);
    let installed = user.tree();
    let path = index_path("ix_base");
    let (real, real_signature) = signed_file(&node, &path);
    let real_text = String::from_utf8(real.clone()).unwrap();
    let refused = |client: &Client, args: &[&str], what: &str, expected: &str| {
        let err = client.fails(args);
        assert!(
            err.contains(&format!(
                "index file {}{path} from test was refused",
                front.url
            )) && err.contains(expected)
                && err.contains("Nothing was installed"),
            "{what}: {err}"
        );
    };

    // 1. Un-yanked on the way, with the node's signature of the real file.
    let unyanked = real_text.replace("\"yanked\":true", "\"yanked\":false");
    assert_ne!(unyanked, real_text);
    front.serve_instead(&path, unyanked.into_bytes(), real_signature.clone(), None);
    refused(
        &user,
        &["install", "ix_base@=1.1.0"],
        "un-yanked",
        "its signature by the node key does not hold",
    );
    assert_eq!(user.tree(), installed, "the install is untouched");
    // Nothing the proxy served reached the cache: offline, 1.1.0 is still yanked.
    let err = user.fails(&["install", "--offline", "ix_base@=1.1.0"]);
    assert!(err.contains("yanked"), "{err}");

    // 2. A version added by someone else's key, with its archive: a user who has pinned
    //    nothing yet (a fresh home, which pins the node key from config.json) is refused.
    let mallory = author();
    let evil = package("ix_base", "1.6.0", &[], "Evil.");
    let mut line: serde_json::Value =
        serde_json::from_str(real_text.lines().next().unwrap()).unwrap();
    line["vers"] = "1.6.0".into();
    line["cksum"] = archive::cksum(&evil).into();
    line["key"] = mallory.pk.to_base64().into();
    line["sig"] = signing::sign_archive(&mallory.sk, &mallory.pk, &evil, "ix_base", "1.6.0")
        .unwrap()
        .into();
    let appended = format!("{real_text}{line}\n");
    front.serve_instead(&path, appended.into_bytes(), real_signature.clone(), None);
    front.serve_instead("/api/v1/missions/ix_base/1.6.0/download", evil, None, None);
    let newcomer = Client::new(&front.url);
    refused(
        &newcomer,
        &["install", "ix_base@^1"],
        "a version by another key",
        "its signature by the node key does not hold",
    );
    assert!(!newcomer.project.join("missions.lock").exists());
    assert!(newcomer.installed().is_empty());

    // 3. No signature at all.
    front.serve_instead(&path, real.clone(), None, None);
    refused(
        &user,
        &["install", "ix_base@=1.0.0"],
        "unsigned",
        "the node sent no `mission-index-signature` header",
    );

    // 4. An old copy, replayed with its own (real) signature after the node moved on:
    //    fetched again twice, then refused as signed for another head.
    front.serve_node();
    node.publish(&token, &alice, "ix_base", "1.2.0", &[], "Base, fixed.");
    front.serve_instead(&path, real.clone(), real_signature.clone(), None);
    let err = user.fails(&["update"]);
    assert!(
        err.contains(&format!(
            "index file {}{path} from test is signed for index head",
            front.url
        )) && err.contains("but the node's signed snapshot names head"),
        "{err}"
    );
    assert_eq!(
        err.matches(
            "note: the index files and the node's signed snapshot name different index heads"
        )
        .count(),
        2,
        "{err}"
    );
    assert_eq!(user.tree(), installed, "the install is untouched");

    // 5. Served once (as when the node publishes between the snapshot and this file), the
    //    old copy costs one more round, and the install goes on.
    front.serve_instead(&path, real, real_signature, Some(1));
    let out = user.run(&["update"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr).matches("different index heads").count(),
        1,
        "{}",
        text(&out.stderr)
    );
    assert_eq!(versions(&user.lock()), ["ix_base 1.2.0"]);

    // And the honest path: straight from the node, with its signatures.
    front.serve_node();
    let straight = Client::new(&node.url);
    straight.ok(&["install", "ix_base@^1"]);
    assert_eq!(versions(&straight.lock()), ["ix_base 1.2.0"]);
}

#[test]
fn a_version_1_lock_counts_every_mission_as_asked_for() {
    let (node, token) = start_node();
    let alice = author();
    chain_and_single(&node, &token, &alice);
    let user = Client::new(&node.url);
    user.ok(&["install", "aa_top", "dd_alone"]);
    // The lock as a client without roots wrote it.
    let path = user.project.join("missions.lock");
    let v2 = std::fs::read_to_string(&path).unwrap();
    let v1 = v2.replacen(
        "version = 2\nroots = [\n    \"aa_top\",\n    \"dd_alone\",\n]\n",
        "version = 1\n",
        1,
    );
    assert_ne!(v1, v2);
    std::fs::write(&path, &v1).unwrap();

    // --locked accepts it and leaves the file alone.
    user.ok(&["install", "--locked"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), v1);

    // Every mission counts as asked for: removing aa_top takes nothing else with it.
    let out = user.ok(&["remove", "aa_top"]);
    assert_eq!(out.trim(), "Removed aa_top 1.0.0");
    assert_eq!(user.installed(), ["bb_middle", "cc_base", "dd_alone"]);
    let lock = user.lock();
    assert_eq!(roots(&lock), ["bb_middle", "cc_base", "dd_alone"]);
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("version = 2\n"));
}

// ---- config.json's `dl` ----

/// A static HTTP server: a GET of a path in `files` answers its bytes, anything else 404.
/// Counts the requests it answered with 200.
struct Mirror {
    url: String,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    served: Arc<Mutex<Vec<String>>>,
}

impl Mirror {
    fn start() -> Mirror {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let files: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let served: Arc<Mutex<Vec<String>>> = Arc::default();
        let (shared_files, shared_served) = (files.clone(), served.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .to_owned();
                let found = shared_files.lock().unwrap().get(&path).cloned();
                let (status, body) = match found {
                    Some(bytes) => {
                        shared_served.lock().unwrap().push(path);
                        (200, bytes)
                    }
                    None => (
                        404,
                        b"{\"errors\":[{\"detail\":\"no such file on the mirror\"}]}".to_vec(),
                    ),
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
                let _ = stream.flush();
            }
        });
        Mirror { url, files, served }
    }

    fn put(&self, path: &str, bytes: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_owned(), bytes.to_vec());
    }

    fn served(&self) -> Vec<String> {
        let mut served = self.served.lock().unwrap().clone();
        served.sort();
        served
    }
}

/// The URL path of `name`'s index file.
fn index_path(name: &str) -> String {
    format!(
        "/index/{}",
        mission_index::layout::entry_path(name).unwrap()
    )
}

/// `GET path` on the node with `Prefer: mission-closure` (and `If-None-Match`, if given).
fn get_hinted(node: &Node, path: &str, etag: Option<&str>) -> mission_e2e::Reply {
    let mut request = agent()
        .get(node.url(path))
        .header("Prefer", "mission-closure");
    if let Some(etag) = etag {
        request = request.header("If-None-Match", etag);
    }
    mission_e2e::Reply::from(request.call())
}

#[test]
fn a_deep_chain_is_fetched_at_once_from_the_nodes_hint() {
    let (node, mut tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish,yank")]);
    let token = tokens.remove(0);
    let alice = author();
    // hc_top -> hc_1 -> hc_2 -> hc_3 -> hc_4 -> hc_5; an old, yanked hc_top needed hc_old.
    node.publish(&token, &alice, "hc_5", "1.0.0", &[], "Last.");
    for i in (1..5).rev() {
        let next = format!("hc_{}", i + 1);
        node.publish(
            &token,
            &alice,
            &format!("hc_{i}"),
            "1.0.0",
            &[(&next, "^1")],
            "Link.",
        );
    }
    node.publish(&token, &alice, "hc_old", "1.0.0", &[], "Old.");
    node.publish(
        &token,
        &alice,
        "hc_top",
        "0.9.0",
        &[("hc_old", "^1")],
        "Old top.",
    );
    node.publish(&token, &alice, "hc_top", "1.0.0", &[("hc_1", "^1")], "Top.");
    let yanked = agent()
        .delete(node.url("/api/v1/missions/hc_top/0.9.0/yank"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(yanked.status(), 200);

    // The node: the whole chain, nearest first, relative to the file asked for; not what
    // only the yanked version needs; only when asked; on 304 too.
    let top = index_path("hc_top");
    let expected: Vec<String> = (1..=5)
        .map(|i| {
            format!(
                "<../..{}>; rel=\"prefetch\"",
                &index_path(&format!("hc_{i}"))[6..]
            )
        })
        .collect();
    let expected = expected.join(", ");
    let hinted = get_hinted(&node, &top, None).expect(200);
    assert_eq!(hinted.header("link"), expected);
    assert_eq!(hinted.header("preference-applied"), "mission-closure");
    assert_eq!(hinted.header("vary"), "Prefer");
    let unasked = node.get(&top).expect(200);
    assert!(unasked.headers.get("link").is_none(), "{unasked:?}");
    assert_eq!(unasked.header("vary"), "Prefer");
    assert_eq!(unasked.body, hinted.body);
    let revalidated = get_hinted(&node, &top, Some(hinted.header("etag"))).expect(304);
    assert_eq!(revalidated.header("link"), expected);
    let last = get_hinted(&node, &index_path("hc_5"), None).expect(200);
    assert!(last.headers.get("link").is_none(), "{last:?}");
    assert_eq!(last.header("preference-applied"), "mission-closure");

    // The client: with the hint, hc_5's file is asked for while hc_1's is still on its
    // way (a walk level by level cannot know of hc_5 before hc_4's file arrived).
    let front = Front::start(&node);
    front.hold(
        &index_path("hc_1"),
        &index_path("hc_5"),
        Duration::from_secs(10),
    );
    let client = Client::new(&front.url);
    client.ok(&["install", "hc_top"]);
    assert_eq!(
        front.released_by_request(),
        Some(true),
        "the chain was fetched level by level: {:?}",
        front.requested()
    );
    assert_eq!(
        versions(&client.lock()),
        [
            "hc_1 1.0.0",
            "hc_2 1.0.0",
            "hc_3 1.0.0",
            "hc_4 1.0.0",
            "hc_5 1.0.0",
            "hc_top 1.0.0"
        ]
    );
    assert!(!front.requested().contains(&index_path("hc_old")));

    // Again with the cache: revalidated (304) files carry the hint too.
    front.hold(
        &index_path("hc_1"),
        &index_path("hc_5"),
        Duration::from_secs(10),
    );
    client.ok(&["update"]);
    assert_eq!(
        front.released_by_request(),
        Some(true),
        "{:?}",
        front.requested()
    );

    // A node without hints (here: a proxy that drops `Prefer`) still gets the same install,
    // one level at a time: the hold runs out before hc_5 is known.
    front.forward_prefer(false);
    front.hold(
        &index_path("hc_1"),
        &index_path("hc_5"),
        Duration::from_millis(1500),
    );
    let other = Client::new(&front.url);
    other.ok(&["install", "hc_top"]);
    assert_eq!(
        front.released_by_request(),
        Some(false),
        "{:?}",
        front.requested()
    );
    assert_eq!(other.lock(), client.lock());

    // A publish that lengthens the chain changes the hint at once.
    node.publish(&token, &alice, "hc_6", "1.0.0", &[], "New last.");
    node.publish(
        &token,
        &alice,
        "hc_5",
        "1.1.0",
        &[("hc_6", "^1")],
        "Longer.",
    );
    let longer = get_hinted(&node, &top, None).expect(200);
    assert_eq!(
        longer.header("link"),
        format!(
            "{expected}, <../..{}>; rel=\"prefetch\"",
            &index_path("hc_6")[6..]
        )
    );
}

/// Starts `mission install NAME` for a new user of `front`, which holds NAME's index file
/// for 3 s; returns once the install has asked for it (so it holds its locks by then).
fn start_held_install(
    front: &Front,
    name: &str,
) -> (Client, std::thread::JoinHandle<std::process::Output>) {
    front.hold(&index_path(name), "/never", Duration::from_secs(3));
    let user = Client::new(&front.url);
    let (home, project, owned) = (user.home.clone(), user.project.clone(), name.to_owned());
    let running = std::thread::spawn(move || {
        let mut cmd = mission_e2e::mission(&home);
        cmd.current_dir(&project).args(["install", &owned]);
        cmd.output().unwrap()
    });
    let asked = index_path(name);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !front.requested().contains(&asked) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first install never asked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (user, running)
}

#[test]
fn two_installs_in_one_home_take_turns_and_keep_each_others_pins() {
    let (node, token) = start_node();
    let alice = author();
    node.publish(&token, &alice, "lk_one", "1.0.0", &[], "One.");
    node.publish(&token, &alice, "lk_two", "1.0.0", &[], "Two.");
    let front = Front::start(&node);
    // The first install stalls on lk_one's index file for 3 s, holding the home.
    let (first, running) = start_held_install(&front, "lk_one");

    // A second install in the same home, another project: it waits for the first.
    let other_project = first.home.parent().unwrap().join("other");
    std::fs::create_dir_all(&other_project).unwrap();
    let second = mission_e2e::mission(&first.home)
        .current_dir(&other_project)
        .args(["install", "lk_two"])
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains("waiting for another mission command to finish"),
        "{}",
        text(&second.stderr)
    );
    let first_out = running.join().unwrap();
    assert!(first_out.status.success(), "{}", text(&first_out.stderr));
    assert_eq!(front.released_by_request(), Some(false));

    // Neither wrote back a trust store without the other's pin.
    let trust = std::fs::read_to_string(first.home.join("trust.toml")).unwrap();
    for name in ["lk_one", "lk_two"] {
        let pin = format!(
            "{} = \"{}\"",
            mission_index::name::collision_key(name),
            alice.pk.to_base64()
        );
        assert!(trust.contains(&pin), "no `{pin}` in trust.toml:\n{trust}");
    }
}

/// `mission_downloads_total` from the node's /metrics (0 before the first download).
fn node_downloads(node: &Node) -> u64 {
    node.get("/metrics")
        .text()
        .lines()
        .find(|l| l.starts_with("mission_downloads_total"))
        .and_then(|l| l.split_whitespace().last())
        .map(|v| v.parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

#[test]
fn archives_come_from_where_config_json_dl_points() {
    let (node, token) = start_node();
    let alice = author();
    let base = node.publish(&token, &alice, "base_tools", "1.0.0", &[], "Base tools.");
    let app = node.publish(
        &token,
        &alice,
        "app_main",
        "1.0.0",
        &[("base_tools", "^1")],
        "The app.",
    );
    let front = Front::start(&node);
    let mirror = Mirror::start();

    // 1. A template with markers: files laid out by prefix, name, version and checksum.
    front.serve_dl(&format!(
        "{}/files/{{lowerprefix}}/{{name}}-{{version}}-{{sha256-checksum}}.mission",
        mirror.url
    ));
    let base_path = format!(
        "/files/ba/se/base_tools-1.0.0-{}.mission",
        archive::cksum(&base)
    );
    let app_path = format!(
        "/files/ap/p_/app_main-1.0.0-{}.mission",
        archive::cksum(&app)
    );
    mirror.put(&base_path, &base);
    mirror.put(&app_path, &app);
    let user = Client::new(&front.url);
    let before = node_downloads(&node);
    user.ok(&["install", "app_main"]);
    let mut want = vec![app_path.clone(), base_path.clone()];
    want.sort();
    assert_eq!(mirror.served(), want, "both archives came from the mirror");
    assert_eq!(node_downloads(&node), before, "none came from the node");
    assert_eq!(user.installed(), ["app_main", "base_tools"]);

    // 2. A template without markers gets /{name}/{version}/download appended, as cargo does.
    front.serve_dl(&format!("{}/plain", mirror.url));
    mirror.put("/plain/base_tools/1.0.0/download", &base);
    mirror.put("/plain/app_main/1.0.0/download", &app);
    let other = Client::new(&front.url);
    other.ok(&["install", "app_main"]);
    assert!(
        mirror
            .served()
            .contains(&"/plain/app_main/1.0.0/download".to_owned()),
        "{:?}",
        mirror.served()
    );
    assert_eq!(other.tree(), user.tree());

    // 3. A mirror serving the wrong bytes (base_tools' archive under app_main's URL) is
    //    caught by the checksum check, and nothing is installed.
    mirror.put("/plain/app_main/1.0.0/download", &base);
    let third = Client::new(&front.url);
    let err = third.fails(&["install", "app_main"]);
    assert!(
        err.contains("checksum check failed for `app_main` 1.0.0")
            && err.contains("nothing was installed"),
        "{err}"
    );
    assert!(!third.project.join("missions.lock").exists());
    assert!(third.installed().is_empty(), "{:?}", third.installed());

    // 4. A `dl` that points nowhere useful says where it went.
    front.serve_dl(&format!("{}/missing/{{name}}/{{version}}", mirror.url));
    let fourth = Client::new(&front.url);
    let err = fourth.fails(&["install", "app_main"]);
    assert!(
        err.contains(&format!("{}/missing/", mirror.url))
            && err.contains("HTTP 404")
            && err.contains("dl"),
        "{err}"
    );

    // 5. A `dl` that is not an http(s) URL is refused before anything is downloaded.
    front.serve_dl("/api/v1/missions/{name}/{version}/download");
    let fifth = Client::new(&front.url);
    let err = fifth.fails(&["install", "app_main"]);
    assert!(
        err.contains("config.json") && err.contains("not an http:// or https:// URL"),
        "{err}"
    );
}

// ---- progress ----

#[test]
fn a_terminal_gets_a_download_progress_bar() {
    // `script` (util-linux) runs the command on a pseudo-terminal and copies what it shows.
    if !mission_e2e::require_program("script", "bsdutils") {
        return;
    }
    let (node, token) = start_node();
    let alice = author();
    node.publish(&token, &alice, "base_tools", "1.0.0", &[], "Base tools.");
    node.publish(
        &token,
        &alice,
        "app_main",
        "1.0.0",
        &[("base_tools", "^1")],
        "The app.",
    );
    let user = Client::new(&node.url);
    let command = format!("{} install app_main", mission_e2e::bin("mission").display());
    let out = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .current_dir(&user.project)
        .env("MISSION_HOME", &user.home)
        .env("TERM", "xterm")
        .env_remove("MISSION_KEY_PASSWORD")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}{}", text(&out.stderr));
    assert!(
        shown.contains("Downloading") && shown.contains("archives"),
        "the terminal shows a download bar: {shown:?}"
    );
    assert!(shown.contains("Installed app_main 1.0.0"), "{shown:?}");
    assert_eq!(user.installed(), ["app_main", "base_tools"]);
}

/// Two installs in one project from two homes (so only the project lock can make them
/// take turns): the second waits for the first, and the lock lists both, as does the
/// folder.
#[test]
fn two_installs_in_one_project_take_turns_and_keep_each_others_missions() {
    let (node, token) = start_node();
    let alice = author();
    node.publish(&token, &alice, "pj_one", "1.0.0", &[], "One.");
    node.publish(&token, &alice, "pj_two", "1.0.0", &[], "Two.");
    let front = Front::start(&node);
    // The first install stalls on pj_one's index file for 3 s, holding the project.
    let (first, running) = start_held_install(&front, "pj_one");

    let other = Client::new(&node.url);
    let second = mission_e2e::mission(&other.home)
        .current_dir(&first.project)
        .args(["install", "pj_two"])
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr)
            .contains("waiting for another mission command to finish with this project"),
        "{}",
        text(&second.stderr)
    );
    let first_out = running.join().unwrap();
    assert!(first_out.status.success(), "{}", text(&first_out.stderr));

    let lock = first.lock();
    assert_eq!(versions(&lock), ["pj_one 1.0.0", "pj_two 1.0.0"]);
    assert_eq!(roots(&lock), ["pj_one", "pj_two"]);
    let mut folders: Vec<String> = std::fs::read_dir(first.project.join("missions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    assert_eq!(folders, ["pj_one", "pj_two"]);
}

/// `mission install` SIGKILLed at seeded random moments while it replaces a tree of 13
/// missions: the next command finds the project as the lockfile on disk describes it,
/// after undoing what the killed one had half done, and leaves no staging folder or
/// lockfile temporary behind. `MISSION_CRASH_SEED=N` replays a failing run.
#[test]
fn an_install_killed_at_any_moment_is_undone_by_the_next_command() {
    const KILLS: usize = 12;
    const LEAVES: usize = 12;
    let (node, token) = start_node();
    let alice = author();
    for major in ["1", "2"] {
        let mut deps = Vec::new();
        for i in 0..LEAVES {
            let name = format!("kl_leaf_{i:02}");
            node.publish(
                &token,
                &alice,
                &name,
                &format!("{major}.0.0"),
                &[],
                "A leaf.",
            );
            deps.push((name, format!("^{major}")));
        }
        let deps: Vec<(&str, &str)> = deps.iter().map(|(n, r)| (n.as_str(), r.as_str())).collect();
        node.publish(
            &token,
            &alice,
            "kl_root",
            &format!("{major}.0.0"),
            &deps,
            "The root.",
        );
    }
    let user = Client::new(&node.url);
    let started = std::time::Instant::now();
    user.ok(&["install", "kl_root@=2.0.0"]);
    // Kills land anywhere from the start to a little past a whole install's duration.
    let span = started.elapsed().as_micros() as u64 * 6 / 5;
    user.ok(&["install", "kl_root@=1.0.0"]);

    let mut seed: u64 = std::env::var("MISSION_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0fc0_ffee);
    eprintln!("MISSION_CRASH_SEED={seed}");
    let consistent = |when: &str| {
        let lock = user.lock();
        let mut folders: Vec<String> = std::fs::read_dir(user.project.join("missions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        folders.sort();
        let mut locked: Vec<String> = lock.missions().map(|m| m.name.clone()).collect();
        locked.sort();
        assert_eq!(
            folders, locked,
            "{when}: the folder holds what the lock lists"
        );
        for m in lock.missions() {
            let yaml = std::fs::read_to_string(
                user.project
                    .join("missions")
                    .join(&m.name)
                    .join("mission.yaml"),
            )
            .unwrap();
            assert!(
                yaml.contains(&format!("version: {}", m.version)),
                "{when}: {} is not at its locked {}",
                m.name,
                m.version
            );
        }
        let stray: Vec<String> = std::fs::read_dir(&user.project)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".missions.lock."))
            .collect();
        assert!(stray.is_empty(), "{when}: lockfile temporaries {stray:?}");
    };
    for kill in 0..KILLS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_micros((seed >> 33) % span.max(1));
        let target = if kill % 2 == 0 {
            "kl_root@=2.0.0"
        } else {
            "kl_root@=1.0.0"
        };
        let mut child = mission_e2e::mission(&user.home)
            .current_dir(&user.project)
            .args(["install", target])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        // The next command cleans up first, then installs what the lock on disk lists.
        let out = user.run(&["install"]);
        assert!(
            out.status.success(),
            "kill {kill} after {delay:?}: {}",
            text(&out.stderr)
        );
        consistent(&format!("kill {kill} after {delay:?}"));
    }
}

/// `mission update` stays within the requirement the user installed a mission with, as
/// `cargo update` stays within Cargo.toml; installing it again without one lifts it.
#[test]
fn update_stays_within_the_requirement_asked_for() {
    let (node, token) = start_node();
    let alice = author();
    for v in ["1.0.0", "1.1.0"] {
        node.publish(&token, &alice, "rq_base", v, &[], "Base.");
    }
    let user = Client::new(&node.url);
    user.ok(&["install", "rq_base@=1.0.0"]);
    node.publish(&token, &alice, "rq_base", "1.2.0", &[], "Base.");
    node.publish(&token, &alice, "rq_base", "2.0.0", &[], "Base.");
    user.ok(&["update"]);
    assert_eq!(
        versions(&user.lock()),
        ["rq_base 1.0.0"],
        "pinned with =1.0.0"
    );
    let text = std::fs::read_to_string(user.project.join("missions.lock")).unwrap();
    assert!(text.contains("\"rq_base@=1.0.0\""), "{text}");
    let listed: serde_json::Value = serde_json::from_str(&user.ok(&["list", "--json"])).unwrap();
    assert_eq!(listed["missions"][0]["requirement"], "=1.0.0", "{listed}");

    // --locked refuses a new requirement, and says so.
    let err = user.fails(&["install", "rq_base@^1", "--locked"]);
    assert!(
        err.contains("`rq_base` would be asked for with `^1` instead of `=1.0.0`"),
        "{err}"
    );
    user.ok(&["install", "rq_base@^1"]);
    user.ok(&["update", "rq_base"]);
    assert_eq!(versions(&user.lock()), ["rq_base 1.2.0"], "within ^1");
    // A bare name keeps the requirement; `@*` drops it.
    user.ok(&["install", "rq_base"]);
    assert_eq!(
        user.lock()
            .root_requirement("rq_base")
            .map(|r| r.to_string()),
        Some("^1".to_owned())
    );
    user.ok(&["update"]);
    assert_eq!(versions(&user.lock()), ["rq_base 1.2.0"], "still within ^1");
    user.ok(&["install", "rq_base@*"]);
    assert_eq!(
        versions(&user.lock()),
        ["rq_base 1.2.0"],
        "the lock is kept"
    );
    user.ok(&["update"]);
    assert_eq!(
        versions(&user.lock()),
        ["rq_base 2.0.0"],
        "no requirement any more"
    );
    // A default registry named wrongly is said, not passed over for the lock's.
    let out = mission_e2e::mission(&user.home)
        .current_dir(&user.project)
        .arg("install")
        .env("MISSION_REGISTRY_DEFAULT", "nothere")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("MISSION_REGISTRY_DEFAULT=nothere"),
        "{err}"
    );
    // Close names are suggested, the same name spelled with `-` first.
    let err = user.fails(&["update", "rq_bse"]);
    assert!(err.contains("did you mean `rq_base`?"), "{err}");
    // The same name with `-` for `_` is the same mission: translated, as `cargo add` does.
    let out = user.run(&["install", "rq-base"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.contains("note: translating `rq-base` to `rq_base`"),
        "{said}"
    );
    assert_eq!(versions(&user.lock()), ["rq_base 2.0.0"]);
    assert!(user.lock().root_requirement("rq_base").is_none());
    let out = user.run(&["info", "RQ-base"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rq_base 2.0.0"));
    let err = user.fails(&["install", "rq_bsae"]);
    assert!(
        err.contains("no mission named `rq_bsae`") && err.contains("did you mean `rq_base`"),
        "{err}"
    );
    let text = std::fs::read_to_string(user.project.join("missions.lock")).unwrap();
    assert!(text.contains("version = 2\n"), "{text}");

    // A dependency must spell the name with `_` where it is published with `_`, as in
    // cargo. The node refuses such a publish once the name is taken...
    let archive = package("rq_app", "1.0.0", &[("rq-base", "^2")], "App.");
    let body = publish_body_signed(&alice, &alice, "rq_app", "1.0.0", archive);
    let refused = publish_raw(&node, Some(&token), body).expect(400);
    assert!(
        refused.detail().contains(
            "`rq_app` depends on `rq-base`, but that mission is published here as `rq_base`"
        ),
        "{}",
        refused.detail()
    );
    // ... but not before it is (it might never be): `sp_app` needs `sp-lib`, then
    // `sp_lib` is published. The client refuses `sp-lib`, with the published spelling,
    // whether or not `sp_lib` is installed as well (before, it was accepted beside an
    // installed `sp_lib` and refused alone).
    node.publish(
        &token,
        &alice,
        "sp_app",
        "1.0.0",
        &[("sp-lib", "^1")],
        "App.",
    );
    node.publish(&token, &alice, "sp_lib", "1.0.0", &[], "Lib.");
    for args in [&["install", "sp_app"][..], &["install", "sp_app", "sp_lib"]] {
        let fresh = Client::new(&node.url);
        let err = fresh.fails(args);
        assert!(
            err.contains(
                "sp_app 1.0.0 depends on `sp-lib`, but the mission is published as `sp_lib`"
            ) && err.contains("the author of sp_app 1.0.0 must fix it"),
            "{args:?}: {err}"
        );
        assert!(!fresh.project.join("missions.lock").exists(), "{args:?}");
    }
    let err = user.fails(&["install", "sp_app"]);
    assert!(err.contains("published as `sp_lib`"), "{err}");
    assert_eq!(
        versions(&user.lock()),
        ["rq_base 2.0.0"],
        "the install is as it was"
    );
    // Another case reads the same (lowercase) index file: accepted, as before.
    node.publish(
        &token,
        &alice,
        "rq_cased",
        "1.0.0",
        &[("RQ_Base", "^2")],
        "Cased.",
    );
    user.ok(&["install", "rq_cased"]);
    assert_eq!(versions(&user.lock()), ["rq_base 2.0.0", "rq_cased 1.0.0"]);
}

/// `install --dir` is remembered in missions.lock: `update` and `remove` work in that
/// folder; another folder, or one outside the project, is refused; and a lockfile whose
/// `dir` leaves the project is refused before anything is written.
#[test]
fn the_install_folder_is_remembered_and_kept_inside_the_project() {
    let (node, token) = start_node();
    let alice = author();
    node.publish(&token, &alice, "dr_base", "1.0.0", &[], "Base.");
    node.publish(
        &token,
        &alice,
        "dr_app",
        "1.0.0",
        &[("dr_base", "^1")],
        "App.",
    );
    let user = Client::new(&node.url);
    user.ok(&["install", "dr_app", "--dir", "vendor/m"]);
    let text = std::fs::read_to_string(user.project.join("missions.lock")).unwrap();
    assert!(text.contains("dir = \"vendor/m\""), "{text}");
    let vendor = user.project.join("vendor/m");
    assert!(vendor.join("dr_app/mission.yaml").is_file());

    node.publish(&token, &alice, "dr_base", "1.1.0", &[], "Base.");
    let out = user.ok(&["update"]);
    assert!(out.contains("Updated dr_base 1.0.0 -> 1.1.0"), "{out}");
    assert!(
        !user.project.join("missions").exists(),
        "update installs where the lock says"
    );
    let yaml = std::fs::read_to_string(vendor.join("dr_base/mission.yaml")).unwrap();
    assert!(yaml.contains("version: 1.1.0"), "{yaml}");

    let listed = user.ok(&["list"]);
    assert!(listed.starts_with("Installed in vendor/m/"), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&user.ok(&["list", "--json"])).unwrap();
    assert_eq!(json["dir"], "vendor/m");
    let err = user.fails(&["install", "dr_base", "--dir", "elsewhere"]);
    assert!(
        err.contains("missions.lock installs its missions into `vendor/m`"),
        "{err}"
    );
    let outside = tempfile::tempdir().unwrap();
    let err = user.fails(&["install", "--dir", &outside.path().display().to_string()]);
    assert!(err.contains("must be a folder inside"), "{err}");

    user.ok(&["remove", "dr_app"]);
    assert!(!vendor.join("dr_app").exists() && !vendor.join("dr_base").exists());

    // A lockfile from someone else pointing outside the project is refused.
    let hostile = Client::new(&node.url);
    let bad = text.replace("dir = \"vendor/m\"", "dir = \"../../victim\"");
    std::fs::write(hostile.project.join("missions.lock"), bad).unwrap();
    let err = hostile.fails(&["install"]);
    assert!(
        err.contains("`dir = \"../../victim\"` must be a folder inside the lockfile's folder"),
        "{err}"
    );
    // ... or at `.git` (whose hooks a mission named `hooks` would replace) ...
    let bad = text.replace("dir = \"vendor/m\"", "dir = \".git\"");
    std::fs::write(hostile.project.join("missions.lock"), bad).unwrap();
    assert!(hostile.fails(&["install"]).contains("`dir = \".git\"`"));
    // ... or at one of the project's own folders, which install never made ...
    std::fs::create_dir_all(hostile.project.join("src/dr_app")).unwrap();
    std::fs::write(hostile.project.join("src/dr_app/main.rs"), "fn main() {}").unwrap();
    let bad = text.replace("dir = \"vendor/m\"", "dir = \"src\"");
    std::fs::write(hostile.project.join("missions.lock"), &bad).unwrap();
    let err = hostile.fails(&["install"]);
    assert!(
        err.contains("was not made by mission install") && err.contains("--dir src"),
        "{err}"
    );
    assert!(hostile.project.join("src/dr_app/main.rs").is_file());
    // ... or through a link out of the project.
    #[cfg(unix)]
    {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(hostile.project.join("missions.lock"), &text).unwrap();
        std::fs::create_dir_all(hostile.project.join("vendor")).unwrap();
        std::os::unix::fs::symlink(outside.path(), hostile.project.join("vendor/m")).unwrap();
        let err = hostile.fails(&["install"]);
        assert!(err.contains("is a symbolic link"), "{err}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
    // `--dir ../x` is refused before anything is made there.
    let err = user.fails(&["install", "dr_base", "--dir", "../escape"]);
    assert!(err.contains("must be a folder inside"), "{err}");
    assert!(!user.project.parent().unwrap().join("escape").exists());
}

/// A version guessed while the index is read, then ruled out by a later requirement (so
/// both versions may be fetched and unpacked ahead): what ends up in `missions/NAME` is
/// exactly the version the lock records, never the other or a mix of both.
#[test]
fn a_version_guessed_then_ruled_out_is_not_what_gets_installed() {
    let (node, token) = start_node();
    let alice = author();
    for v in ["1.0.0", "2.0.0"] {
        node.publish(&token, &alice, "rg_base", v, &[], "Base.");
    }
    // rg_app needs rg_base >=1 (2.0.0 is guessed first) and rg_lib, which needs ^1.
    node.publish(
        &token,
        &alice,
        "rg_lib",
        "1.0.0",
        &[("rg_base", "^1")],
        "Lib.",
    );
    node.publish(
        &token,
        &alice,
        "rg_app",
        "1.0.0",
        &[("rg_base", ">=1"), ("rg_lib", "^1")],
        "App.",
    );
    for _ in 0..3 {
        let user = Client::new(&node.url);
        user.ok(&["install", "rg_app"]);
        assert_eq!(
            versions(&user.lock()),
            ["rg_app 1.0.0", "rg_base 1.0.0", "rg_lib 1.0.0"]
        );
        let yaml =
            std::fs::read_to_string(user.project.join("missions/rg_base/mission.yaml")).unwrap();
        assert!(
            yaml.contains("version: 1.0.0") && yaml.contains("hello from rg_base 1.0.0"),
            "{yaml}"
        );
        assert_eq!(user.installed(), ["rg_app", "rg_base", "rg_lib"]);
    }
}

/// A private node (`auth_required`): every read needs a token, archives too. Without one,
/// the install says once how to set it; a refused one from the environment names the
/// variable; with a valid one, the whole graph installs, and later works from the cache.
#[test]
fn a_private_node_is_installed_from_with_a_token_only() {
    let (node, tokens) = Node::start_with_users(
        Some("name = \"private\"\nseed_library = false\nauth_required = true\n"),
        &[("alice", "publish"), ("bob", "execute")],
    );
    let (alice_token, bob_token) = (&tokens[0], &tokens[1]);
    let alice = author();
    chain_and_single(&node, alice_token, &alice);

    let mut user = Client::new(&node.url);
    let err = user.fails(&["install", "aa_top"]);
    assert!(
        err.contains("HTTP 401")
            && err.contains("only with a token, and no token is set for the registry `test`")
            && err.contains("mission login --registry test")
            && err.contains("MISSION_REGISTRIES_TEST_TOKEN"),
        "{err}"
    );
    assert_eq!(err.matches("mission login").count(), 1, "said once: {err}");
    assert!(!user.project.join("missions.lock").exists());

    user.env = vec![("MISSION_TOKEN".into(), "not-a-token".into())];
    let err = user.fails(&["install", "aa_top"]);
    assert!(
        err.contains("HTTP 401")
            && err.contains("environment variable MISSION_TOKEN was refused")
            && err.contains("not valid"),
        "{err}"
    );

    user.env = vec![("MISSION_REGISTRIES_TEST_TOKEN".into(), bob_token.clone())];
    let out = user.ok(&["install", "aa_top"]);
    assert!(out.contains("Installed aa_top 1.0.0"), "{out}");
    assert_eq!(
        versions(&user.lock()),
        ["aa_top 1.0.0", "bb_middle 1.0.0", "cc_base 1.0.0"]
    );
    // The cache serves a later --offline install without any token.
    user.env.clear();
    std::fs::remove_dir_all(user.project.join("missions")).unwrap();
    let out = user.ok(&["install", "--offline"]);
    assert!(out.contains("Restored cc_base 1.0.0"), "{out}");
}
