//! A registry whose index is read over git (`[registries.NAME] index =
//! "git+http://HOST/git/index.git"`), end to end: a real `mission-node serve` process,
//! missions published to it over HTTP with real minisign keys, the real `mission` binary
//! cloning and fetching the node's `/git/index.git` with the real `git`, and a small TCP
//! relay in front of two real nodes for a git index that is not the one the snapshot signs.
//! The same relay, with a hook run before a chosen request, lands a publish in the middle of
//! an install (between the git fetch and the snapshot, or between the snapshot and its
//! signature, the latter with a sparse index).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};

use mission_e2e::{
    agent, author, package_with_deps, publish_body_signed, publish_raw, text, versions, Author,
    Client, Node,
};
use mission_index::archive;

const NODE_TOML: &str = "name = \"gitnode\"\nseed_library = false\n";

/// A node with one publishing user, alice; returns the node and her token.
fn start_node() -> (Node, String) {
    let (node, mut tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish")]);
    (node, tokens.remove(0))
}

fn package(name: &str, version: &str, deps: &[(&str, &str)]) -> Vec<u8> {
    package_with_deps(name, version, deps, &format!("Test mission {name}."))
}

/// Publishes over the node's HTTP API; returns the archive.
fn publish(
    node: &Node,
    token: &str,
    author: &Author,
    name: &str,
    version: &str,
    deps: &[(&str, &str)],
) -> Vec<u8> {
    let archive = package(name, version, deps);
    let body = publish_body_signed(author, author, name, version, archive.clone());
    publish_raw(node, Some(token), body).expect(200);
    archive
}

/// app_main needs helper_kit, which needs base_tools.
fn publish_chain(node: &Node, token: &str, alice: &Author) -> Vec<Vec<u8>> {
    vec![
        publish(node, token, alice, "base_tools", "1.0.0", &[]),
        publish(
            node,
            token,
            alice,
            "helper_kit",
            "1.0.0",
            &[("base_tools", "^1.0")],
        ),
        publish(
            node,
            token,
            alice,
            "app_main",
            "1.0.0",
            &[("helper_kit", "^1")],
        ),
    ]
}

/// A user whose default registry `g` reads the index of the node at `base` over git.
fn git_client(base: &str) -> Client {
    Client::with_config(&format!(
        "[registry]\ndefault = \"g\"\n\n[registries.g]\nindex = \"git+{base}/git/index.git\"\n"
    ))
}

/// The version installed in `project/missions/NAME/` (from its mission.yaml).
fn installed_version(project: &Path, name: &str) -> String {
    let path = project.join("missions").join(name).join("mission.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(yaml.contains(&format!("name: {name}")), "{yaml}");
    // The package's version (the file's own `version: "1.0"` is quoted).
    yaml.lines()
        .filter_map(|l| l.trim().strip_prefix("version: "))
        .find(|v| !v.starts_with('"'))
        .unwrap()
        .to_owned()
}

/// The commit of `refs/heads/main` the node's `/git/index.git` advertises, by the real git.
fn remote_head(base: &str) -> String {
    let out = Command::new("git")
        .args([
            "ls-remote",
            &format!("{base}/git/index.git"),
            "refs/heads/main",
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "git ls-remote: {}", text(&out.stderr));
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// The commit the client's clone of registry `key` says `--offline` reads.
fn accepted_head(home: &Path, key: &str) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(home.join("cache/git").join(key))
        .args(["rev-parse", "refs/mission/index"])
        .output()
        .unwrap();
    assert!(out.status.success(), "git rev-parse: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[test]
fn a_git_index_installs_updates_and_works_offline() {
    if !mission_e2e::require_program("git", "git") {
        return;
    }
    let (mut node, token) = start_node();
    let alice = author();
    let archives = publish_chain(&node, &token, &alice);

    let user = git_client(&node.url);
    let out = user.ok(&["install", "app_main"]);
    assert!(out.contains("app_main 1.0.0"), "{out}");

    // The whole graph is installed and locked, from registry `g`, recorded by its git URL.
    let lock = user.lock();
    assert_eq!(
        versions(&lock),
        ["app_main 1.0.0", "base_tools 1.0.0", "helper_kit 1.0.0"]
    );
    for (name, bytes) in ["base_tools", "helper_kit", "app_main"]
        .iter()
        .zip(&archives)
    {
        let m = lock.get(name).unwrap();
        assert_eq!(m.cksum, archive::cksum(bytes), "{name}");
        assert_eq!(m.registry, format!("git+{}/git/index.git", node.url));
        assert_eq!(installed_version(&user.project, name), "1.0.0");
    }
    // The index came from the git clone (at the node's head), not from the sparse index.
    assert_eq!(accepted_head(&user.home, "g"), remote_head(&node.url));
    assert!(
        !user.home.join("cache/index/g").exists(),
        "no sparse index file was fetched"
    );

    // A new version: `mission update` fetches the index again and takes it.
    publish(&node, &token, &alice, "base_tools", "1.1.0", &[]);
    let out = user.ok(&["update"]);
    assert!(out.contains("Updated base_tools 1.0.0 -> 1.1.0"), "{out}");
    assert_eq!(
        user.lock().get("base_tools").unwrap().version.to_string(),
        "1.1.0"
    );
    assert_eq!(installed_version(&user.project, "base_tools"), "1.1.0");
    assert_eq!(accepted_head(&user.home, "g"), remote_head(&node.url));

    // The node stopped: --offline installs from the clone (and the archive cache).
    node.stop();
    let elsewhere = user.home.parent().unwrap().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let out = user.run_in(&elsewhere, &["install", "app_main", "--offline"]);
    assert!(
        out.status.success(),
        "offline install: {}",
        text(&out.stderr)
    );
    assert_eq!(
        versions(&user.lock_in(&elsewhere)),
        ["app_main 1.0.0", "base_tools 1.1.0", "helper_kit 1.0.0"]
    );
    assert_eq!(installed_version(&elsewhere, "base_tools"), "1.1.0");

    // Online with the node down: the error names the git URL that could not be fetched.
    let git_url = format!("{}/git/index.git", node.url);
    let err = user.fails(&["update"]);
    assert!(
        err.contains(&format!("fetching the git index {git_url}")),
        "{err}"
    );

    // A home that never fetched says so offline.
    let cold = git_client(&node.url);
    let err = cold.fails(&["install", "app_main", "--offline"]);
    assert!(
        err.contains(&git_url) && err.contains("has not been fetched"),
        "{err}"
    );
}

#[test]
fn the_index_url_can_come_from_the_environment_alone() {
    if !mission_e2e::require_program("git", "git") {
        return;
    }
    let (node, token) = start_node();
    let alice = author();
    publish_chain(&node, &token, &alice);

    // No config.toml at all: the registry `ci-node` exists through the environment only.
    let mut user = Client::with_config("");
    user.env.push((
        "MISSION_REGISTRIES_CI_NODE_INDEX".into(),
        format!("git+{}/git/index.git", node.url),
    ));
    let out = user.ok(&["install", "helper_kit", "--registry", "ci-node"]);
    assert!(out.contains("helper_kit 1.0.0"), "{out}");
    let lock = user.lock();
    assert_eq!(versions(&lock), ["base_tools 1.0.0", "helper_kit 1.0.0"]);
    let git_index = format!("git+{}/git/index.git", node.url);
    assert!(lock.missions().all(|m| m.registry == git_index));
    assert!(user.home.join("cache/git/ci-node").is_dir());

    // MISSION_REGISTRY_DEFAULT makes it the default.
    user.env
        .push(("MISSION_REGISTRY_DEFAULT".into(), "ci-node".into()));
    let out = user.ok(&["install", "app_main"]);
    assert!(out.contains("app_main 1.0.0"), "{out}");

    // A name configured nowhere suggests the configured ones.
    let typo = git_client(&node.url);
    let err = typo.fails(&["install", "app_main", "--registry", "gg"]);
    assert!(
        err.contains("no registry named `gg`") && err.contains("did you mean `g`?"),
        "{err}"
    );
}

#[test]
fn bad_git_urls_are_refused_naming_them() {
    if !mission_e2e::require_program("git", "git") {
        return;
    }
    let (node, _token) = start_node();
    let user = Client::with_config("");

    // Not the shape of a node's git index.
    let url = format!("git+{}/index.git", node.url);
    let err = user.fails(&["install", "x_y", "--registry", &url]);
    assert!(
        err.contains(&url) && err.contains("/git/index.git"),
        "{err}"
    );

    // The right shape, but no git repository there (the node mounted elsewhere).
    let url = format!("{}/elsewhere/git/index.git", node.url);
    let err = user.fails(&["install", "x_y", "--registry", &url]);
    assert!(
        err.contains(&format!("fetching the git index {url}")),
        "{err}"
    );

    // Nothing listening at all.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/git/index.git");
    let err = user.fails(&["install", "x_y", "--registry", &format!("git+{url}")]);
    assert!(
        err.contains(&format!("fetching the git index {url}")),
        "{err}"
    );

    // Unknown keys in config.toml are reported, naming the key and the file.
    let warned = Client::with_config(&format!(
        "[registry]\ndefault = \"g\"\ndefualt = \"x\"\n\n[registries.g]\nindex = \"git+{}/git/index.git\"\ntoken = \"t\"\n\n[trust]\nwhatever = 1\n",
        node.url
    ));
    let out = warned.run(&["install", "nothing_here"]);
    let err = text(&out.stderr);
    let file = warned.home.join("config.toml");
    for key in ["registry.defualt", "registries.g.token"] {
        assert!(
            err.contains(&format!(
                "warning: unused key `{key}` in {}",
                file.display()
            )),
            "{err}"
        );
    }
    assert!(!err.contains("unused key `trust"), "{err}");
}

// ---- a relay in front of two nodes ----

/// A TCP relay: each connection goes, as a whole, to the node `git` names when its first
/// request is for `/git/...`, else to `main` (git's and the client's HTTP requests come on
/// connections of their own). A hook can run before a given request goes on.
struct Relay {
    url: String,
    git: Arc<Mutex<String>>,
    before_snapshot: Hook,
}

/// Run once, before the first request whose path starts with the prefix goes on; other
/// such requests wait until it is done, so all come from after it. Requests it is not for
/// never wait.
type Hook = Arc<(Mutex<HookState>, Condvar)>;

#[derive(Default)]
struct HookState {
    /// The prefix, and what to run.
    pending: Option<(String, Box<dyn FnOnce() + Send>)>,
    /// The prefix of the hook running now.
    running: Option<String>,
}

impl Relay {
    fn start(main: &str, git: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let git = Arc::new(Mutex::new(addr_of(git)));
        let main = addr_of(main);
        let routes = git.clone();
        let before_snapshot: Hook = Arc::default();
        let hook = before_snapshot.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let main = main.clone();
                let git = routes.lock().unwrap().clone();
                let hook = hook.clone();
                std::thread::spawn(move || relay(stream, &main, &git, &hook));
            }
        });
        Relay {
            url,
            git,
            before_snapshot,
        }
    }

    /// Runs `hook` before the next request for a path starting with `prefix` goes on.
    fn before_next(&self, prefix: &str, hook: impl FnOnce() + Send + 'static) {
        self.before_snapshot.0.lock().unwrap().pending = Some((prefix.to_owned(), Box::new(hook)));
    }

    fn send_git_to(&self, node: &str) {
        *self.git.lock().unwrap() = addr_of(node);
    }
}

fn addr_of(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

fn relay(mut client: TcpStream, main: &str, git: &str, hook: &Hook) {
    let Some(head) = read_head(&mut client) else {
        return;
    };
    let target = if path_of(&head).starts_with("/git/") {
        git
    } else {
        main
    };
    let Ok(mut upstream) = TcpStream::connect(target) else {
        return;
    };
    let (Ok(mut client_in), Ok(mut upstream_out)) = (client.try_clone(), upstream.try_clone())
    else {
        return;
    };
    let hook = hook.clone();
    // Request by request while they have no body (the client's GETs), so the hook sees
    // every request on a kept-alive connection; as a byte stream from the first with one
    // (git's POSTs).
    let up = std::thread::spawn(move || {
        let mut head = head;
        loop {
            run_hook(&hook, path_of(&head));
            if upstream_out.write_all(&head).is_err() {
                break;
            }
            if has_body(&head) {
                let _ = std::io::copy(&mut client_in, &mut upstream_out);
                break;
            }
            match read_head(&mut client_in) {
                Some(next) => head = next,
                None => break,
            }
        }
        let _ = upstream_out.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// One request head, through its blank line; `None` when the connection ends first.
fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

fn path_of(head: &[u8]) -> String {
    String::from_utf8_lossy(head)
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned()
}

fn has_body(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.lines().any(|line| {
        line.starts_with("transfer-encoding:")
            || (line.starts_with("content-length:") && line.trim_end() != "content-length: 0")
    })
}

/// Runs the hook if it is for `path`, outside the lock; a request for its prefix that
/// comes while it runs waits for it to end.
fn run_hook(hook: &Hook, path: String) {
    let (state, done) = &**hook;
    let mut guard = state.lock().unwrap();
    let is_for = |prefix: &str| path.starts_with(prefix);
    if guard
        .pending
        .as_ref()
        .is_some_and(|(prefix, _)| is_for(prefix))
    {
        if let Some((prefix, run)) = guard.pending.take() {
            guard.running = Some(prefix);
            drop(guard);
            run();
            state.lock().unwrap().running = None;
            done.notify_all();
        }
        return;
    }
    while guard.running.as_deref().is_some_and(is_for) {
        guard = done.wait(guard).unwrap();
    }
}

#[test]
fn a_snapshot_of_another_index_than_the_git_one_is_refused() {
    if !mission_e2e::require_program("git", "git") {
        return;
    }
    // Two real nodes with the same missions: their index commits differ.
    let (node, token) = start_node();
    let (other, other_token) = start_node();
    let alice = author();
    publish_chain(&node, &token, &alice);
    publish_chain(&other, &other_token, &alice);
    assert_ne!(remote_head(&node.url), remote_head(&other.url));

    // The user pins `node`'s key and reaches it through the relay.
    let node_key = agent()
        .get(format!("{}/index/config.json", node.url))
        .call()
        .unwrap()
        .body_mut()
        .read_json::<serde_json::Value>()
        .unwrap()["node"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let relay = Relay::start(&node.url, &node.url);
    let user = Client::with_config(&format!(
        "[registry]\ndefault = \"g\"\n\n[registries.g]\nindex = \"git+{}/git/index.git\"\nnode-key = \"{node_key}\"\n",
        relay.url
    ));
    // Through the relay, to one node: installs.
    user.ok(&["install", "helper_kit"]);
    let installed = std::fs::read(user.project.join("missions.lock")).unwrap();
    let accepted = accepted_head(&user.home, "g");

    // The git index now comes from the other node, the signed snapshot still from the
    // first: refused, and nothing changes.
    relay.send_git_to(&other.url);
    let err = user.fails(&["update"]);
    // Fetched again twice, in case the node had just published, then refused.
    assert_eq!(
        err.matches(
            "note: the index files and the node's signed snapshot name different index heads"
        )
        .count(),
        2,
        "{err}"
    );
    assert!(
        err.contains("the signed snapshot names index commit")
            && err.contains(&remote_head(&node.url))
            && err.contains(&remote_head(&other.url))
            && err.contains(&format!("{}/git/index.git", relay.url)),
        "{err}"
    );
    assert_eq!(
        std::fs::read(user.project.join("missions.lock")).unwrap(),
        installed
    );
    assert_eq!(
        accepted_head(&user.home, "g"),
        accepted,
        "the refused fetch is not what --offline reads"
    );
}

/// A publish landing between the client's git fetch and its snapshot request makes the
/// snapshot name a newer commit than the one fetched: the install fetches both again and
/// goes on, instead of failing with "run it again".
#[test]
fn a_publish_between_the_git_fetch_and_the_snapshot_is_fetched_again() {
    if !mission_e2e::require_program("git", "git") {
        return;
    }
    let (node, token) = start_node();
    let alice = author();
    publish_chain(&node, &token, &alice);
    let relay = Relay::start(&node.url, &node.url);
    let user = git_client(&relay.url);
    user.ok(&["install", "app_main"]);
    let before = remote_head(&node.url);

    // The next install fetches git, then asks for the snapshot: base_tools 1.1.0 is
    // published just before that request goes on.
    let (url, token) = (node.url.clone(), token.clone());
    relay.before_next("/index/snapshot.json", move || {
        publish_from_hook(&url, &token, &alice, "base_tools", "1.1.0");
    });
    let out = user.run(&["update"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_ne!(remote_head(&node.url), before, "the hook published");
    assert_eq!(
        err.matches(
            "note: the index files and the node's signed snapshot name different index heads"
        )
        .count(),
        1,
        "{err}"
    );
    // The second try read the index with the new version, and the snapshot of it.
    assert!(
        text(&out.stdout).contains("Updated base_tools 1.0.0 -> 1.1.0"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(accepted_head(&user.home, "g"), remote_head(&node.url));
}

/// Publishes NAME VERSION (no dependencies) to the node at `url`, from a relay hook.
fn publish_from_hook(url: &str, token: &str, author: &Author, name: &str, version: &str) {
    let archive = package(name, version, &[]);
    let body = publish_body_signed(author, author, name, version, archive);
    let status = agent()
        .post(format!("{url}/api/v1/missions/publish"))
        .header("Authorization", format!("Bearer {token}"))
        .send(&body[..])
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(
        status, 200,
        "publishing {name} {version} from the relay's hook"
    );
}

/// `snapshot.json` and its signature are two requests: a publish landing between them
/// pairs the old snapshot with the new signature. The install fetches both again once and
/// goes on, instead of reporting a signature the node never got wrong. (A sparse index
/// here; the relay only adds the hook.)
#[test]
fn a_publish_between_the_snapshot_and_its_signature_is_fetched_again() {
    let (node, token) = start_node();
    let alice = author();
    publish_chain(&node, &token, &alice);
    let relay = Relay::start(&node.url, &node.url);
    let user = Client::with_config(&format!(
        "[registry]\ndefault = \"s\"\n\n[registries.s]\nindex = \"sparse+{}/index/\"\n",
        relay.url
    ));
    user.ok(&["install", "app_main"]);

    // The snapshot request goes on at once (the hook is not for it; the node answers in a
    // few ms); the signature's waits until base_tools 1.1.0 is published, so it signs the
    // next snapshot.
    let (url, token) = (node.url.clone(), token.clone());
    relay.before_next("/index/snapshot.json.minisig", move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        publish_from_hook(&url, &token, &alice, "base_tools", "1.1.0");
    });
    let out = mission_e2e::mission(&user.home)
        .current_dir(&user.project)
        .arg("update")
        .env("RUST_LOG", "mission=debug")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("the snapshot signature did not verify; fetching both again"),
        "the first pair straddled the publish: {err}"
    );
}
