//! `[trust] minimum-certification` end to end: a real `mission-node serve` process, missions
//! published to it over HTTP with real minisign keys, certification lines written into the
//! node's index repository (node stopped; the node does not issue them itself yet) signed
//! with the node's own key or a reviewer's, and the real `mission` binary installing,
//! searching and showing them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use mission_e2e::{agent, Node};
use mission_index::archive::{self, ArchiveLimits};
use mission_index::certification::{sign_certification, Certification, CertificationLevel};
use mission_index::lockfile::Lockfile;
use mission_index::repo::IndexRepo;
use mission_index::signing::{self, PublicKey, SecretKey};
use mission_index::wire::{PublishBody, PublishMetadata};

const NODE_TOML: &str = "name = \"testnode\"\nseed_library = false\n";

// ---- the node ----

/// A node with one publishing user, alice; returns the node and her token.
fn start_node() -> (Node, String) {
    let (node, mut tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish")]);
    (node, tokens.remove(0))
}

/// A minisign key pair: an author's or a reviewer's.
struct Keys {
    sk: SecretKey,
    pk: PublicKey,
}

fn keys() -> Keys {
    let g = signing::generate_keypair(None).unwrap();
    Keys {
        sk: SecretKey::parse(&g.secret_key_text, None).unwrap(),
        pk: PublicKey::parse(&g.public_key_text).unwrap(),
    }
}

/// The node's own key pair, from its data folder.
fn node_keys(node: &Node) -> Keys {
    let sk = SecretKey::load(&node.data.join("keys/node.key"), None).unwrap();
    let pk = sk.public_key().unwrap();
    Keys { sk, pk }
}

/// Publishes `name` `version` (depending on `deps`) over HTTP; returns the archive's cksum.
fn publish(
    node: &Node,
    token: &str,
    author: &Keys,
    name: &str,
    version: &str,
    deps: &[&str],
) -> String {
    let archive = package(name, version, deps);
    let sig = signing::sign_archive(&author.sk, &author.pk, &archive, name, version).unwrap();
    let cksum = archive::cksum(&archive);
    let body = PublishBody {
        metadata: PublishMetadata {
            name: name.to_owned(),
            vers: version.to_owned(),
            cksum: cksum.clone(),
            key: author.pk.to_base64(),
            sig,
        },
        archive,
    }
    .encode();
    let mut response = agent()
        .post(format!("{}/api/v1/missions/publish", node.url))
        .header("Authorization", format!("Bearer {token}"))
        .send(body)
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    assert_eq!(status, 200, "publishing {name} {version}: {text}");
    cksum
}

fn package(name: &str, version: &str, deps: &[&str]) -> Vec<u8> {
    let deps = if deps.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = deps.iter().map(|n| format!("{n}: \"^1\"")).collect();
        format!("  dependencies: {{ {} }}\n", list.join(", "))
    };
    let yaml = format!(
        r#"version: "1.0"
name: {name}
description: Mission {name}

package:
  name: {name}
  version: {version}
  description: Mission {name}
  authors: ["Test Author <author@example.invalid>"]
  license: MIT
  categories: [build-automation]
  keywords: [test]
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
      content: hello from {name} {version}
"#
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mission.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("README.md"), format!("# {name}\n")).unwrap();
    archive::build_archive(dir.path(), &ArchiveLimits::default()).unwrap()
}

/// A signed certification line for `name` `vers` with archive `cksum`, by `by`.
fn cert_line(by: &Keys, name: &str, vers: &str, cksum: &str, level: CertificationLevel) -> String {
    let cert = Certification {
        name: name.to_owned(),
        vers: vers.to_owned(),
        cksum: cksum.to_owned(),
        level,
        by: by.pk.key_id(),
        issued: "2026-11-25T14:00:00Z".into(),
        evidence: serde_json::json!({"pipeline": "e2e"}),
    };
    sign_certification(&cert, &by.sk, &by.pk).unwrap().to_line()
}

/// Writes certification lines into the node's index repository, as the node will once it
/// issues them: the node is stopped meanwhile and re-signs its snapshot on start.
fn certify(node: &mut Node, lines: &[(&str, String)]) {
    node.stop();
    let repo = IndexRepo::open(node.data.join("index.git")).unwrap();
    for (name, line) in lines {
        repo.put_certification(name, line).unwrap();
    }
    drop(repo);
    node.restart();
}

/// The paths of the node's requests so far, from its log.
fn node_requests(node: &Node) -> String {
    std::fs::read_to_string(&node.log).unwrap_or_default()
}

// ---- the client ----

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A user of `mission`: a home (config, trust store, caches) and a project folder.
struct Client {
    home: PathBuf,
    project: PathBuf,
    url: String,
    _dir: tempfile::TempDir,
}

impl Client {
    fn new(registry_url: &str) -> Client {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let project = dir.path().join("project");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&project).unwrap();
        let client = Client {
            home,
            project,
            url: registry_url.to_owned(),
            _dir: dir,
        };
        client.trust("");
        client
    }

    /// Writes config.toml: the registry `test` (the default) and then `trust` verbatim.
    fn trust(&self, trust: &str) {
        std::fs::write(
            self.home.join("config.toml"),
            format!(
                "[registry]\ndefault = \"test\"\n\n[registries.test]\nindex = \"sparse+{}/index/\"\n\n{trust}",
                self.url
            ),
        )
        .unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = mission_e2e::mission(&self.home);
        cmd.current_dir(&self.project).args(args);
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
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
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "mission {args:?} should have failed:\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stderr)
    }

    fn lock(&self) -> Lockfile {
        Lockfile::load(&self.project.join("missions.lock"))
            .unwrap()
            .expect("missions.lock exists")
    }

    fn installed(&self) -> Vec<String> {
        self.lock()
            .missions()
            .map(|m| format!("{} {}", m.name, m.version))
            .collect()
    }

    /// Every file under the project (lockfile and installed missions), with its bytes.
    fn tree(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        walk(&self.project, &self.project, &mut files);
        files
    }
}

fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
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

const VERIFIED: &str = "[trust]\nminimum-certification = \"verified\"\n";

// ---- the tests ----

/// A whole tree certified `verified` by the node installs; a tree whose dependency is only
/// `community` (or not certified at all) is refused naming it, leaving the earlier install
/// alone, until it is certified. Without a minimum no certs file is asked for. Search and
/// info show the certifications.
#[test]
fn a_minimum_installs_certified_trees_and_refuses_the_rest() {
    let (mut node, token) = start_node();
    let alice = keys();
    let solo = publish(&node, &token, &alice, "solo_tool", "1.0.0", &[]);
    let base = publish(&node, &token, &alice, "base_tools", "1.0.0", &[]);
    let app = publish(&node, &token, &alice, "app_main", "1.0.0", &["base_tools"]);
    publish(&node, &token, &alice, "plain_one", "1.0.0", &[]);
    let nk = node_keys(&node);
    certify(
        &mut node,
        &[
            (
                "solo_tool",
                cert_line(
                    &nk,
                    "solo_tool",
                    "1.0.0",
                    &solo,
                    CertificationLevel::Verified,
                ),
            ),
            (
                "app_main",
                cert_line(&nk, "app_main", "1.0.0", &app, CertificationLevel::Verified),
            ),
            (
                "base_tools",
                cert_line(
                    &nk,
                    "base_tools",
                    "1.0.0",
                    &base,
                    CertificationLevel::Community,
                ),
            ),
        ],
    );

    // No minimum: installs as before, and not one certs file is asked for.
    let relaxed = Client::new(&node.url);
    relaxed.ok(&["install", "app_main"]);
    let log = node_requests(&node);
    assert!(
        log.contains("/index/ap/p_/app_main"),
        "the node logs index requests:\n{log}"
    );
    assert!(
        !log.contains("/index/certs/"),
        "no certs file without a minimum:\n{log}"
    );

    let user = Client::new(&node.url);
    user.trust(VERIFIED);
    user.ok(&["install", "solo_tool"]);
    assert_eq!(user.installed(), ["solo_tool 1.0.0"]);
    let before = user.tree();

    // base_tools is only `community`: refused, naming it and what it has.
    let err = user.fails(&["install", "app_main"]);
    assert!(
        err.contains("certification check failed for `base_tools` 1.0.0")
            && err.contains("at least `verified`")
            && err.contains("found: `community` by the node's key")
            && err.contains("Nothing was installed"),
        "{err}"
    );
    assert!(
        !err.contains("`app_main` 1.0.0"),
        "app_main is certified: {err}"
    );
    assert_eq!(
        user.tree(),
        before,
        "the earlier install and missions.lock are untouched"
    );

    // A mission with no certification at all is refused too.
    let err = user.fails(&["install", "plain_one"]);
    assert!(
        err.contains("`plain_one` 1.0.0") && err.contains("no certification at all"),
        "{err}"
    );
    assert_eq!(user.tree(), before);

    // Once base_tools is certified `verified`, the tree installs.
    certify(
        &mut node,
        &[(
            "base_tools",
            cert_line(
                &nk,
                "base_tools",
                "1.0.0",
                &base,
                CertificationLevel::Verified,
            ),
        )],
    );
    user.ok(&["install", "app_main"]);
    assert_eq!(
        user.installed(),
        ["app_main 1.0.0", "base_tools 1.0.0", "solo_tool 1.0.0"]
    );
    assert!(user
        .project
        .join("missions/base_tools/mission.yaml")
        .is_file());

    // search --certification: only the certified missions (plain_one has no line).
    let out = user.ok(&["search", "--certification", "verified"]);
    for name in ["solo_tool", "app_main", "base_tools"] {
        assert!(out.contains(name), "{name} in:\n{out}");
    }
    assert!(!out.contains("plain_one"), "{out}");
    let all = user.ok(&["search"]);
    assert!(all.contains("plain_one"), "{all}");
    let err = user.fails(&["search", "--certification", "gold"]);
    assert!(
        err.contains("\"gold\"") && err.contains("community, verified, professional, enterprise"),
        "{err}"
    );

    // info shows the version's certifications and who signed them.
    let out = user.ok(&["info", "base_tools"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("certifications:"))
        .unwrap_or_else(|| panic!("no certifications line:\n{out}"));
    assert!(
        line.contains("`community` by the node's key")
            && line.contains("`verified` by the node's key"),
        "{line}"
    );
    let out = user.ok(&["info", "plain_one"]);
    assert!(out.contains("certifications: none"), "{out}");
}

/// A certification by a reviewer key counts only once the key is in `[trust] certifiers`;
/// one for other bytes, or whose level was raised after signing, never counts.
#[test]
fn only_trusted_signatures_over_these_bytes_count() {
    let (mut node, token) = start_node();
    let alice = keys();
    let base = publish(&node, &token, &alice, "base_tools", "1.0.0", &[]);
    let app = publish(&node, &token, &alice, "app_main", "1.0.0", &["base_tools"]);
    let nk = node_keys(&node);
    let reviewer = keys();
    let other_bytes = "0f".repeat(32);
    let raised = cert_line(
        &nk,
        "base_tools",
        "1.0.0",
        &base,
        CertificationLevel::Community,
    )
    .replace("\"level\":\"community\"", "\"level\":\"professional\"");
    assert!(raised.contains("\"level\":\"professional\""));
    certify(
        &mut node,
        &[
            (
                "app_main",
                cert_line(&nk, "app_main", "1.0.0", &app, CertificationLevel::Verified),
            ),
            (
                "base_tools",
                cert_line(
                    &nk,
                    "base_tools",
                    "1.0.0",
                    &other_bytes,
                    CertificationLevel::Enterprise,
                ),
            ),
            ("base_tools", raised),
            (
                "base_tools",
                cert_line(
                    &reviewer,
                    "base_tools",
                    "1.0.0",
                    &base,
                    CertificationLevel::Professional,
                ),
            ),
        ],
    );

    let user = Client::new(&node.url);
    user.trust(VERIFIED);
    let err = user.fails(&["install", "app_main"]);
    assert!(
        err.contains("certification check failed for `base_tools` 1.0.0"),
        "{err}"
    );
    assert!(
        err.contains("`enterprise` by key") && err.contains("for other bytes"),
        "{err}"
    );
    assert!(
        err.contains("`professional` claimed by key") && err.contains("does not verify"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "`professional` by key {}, which is not the node's key nor in [trust] certifiers",
            reviewer.pk.key_id()
        )),
        "{err}"
    );
    assert!(user.tree().is_empty(), "nothing installed, no lock written");

    // The reviewer's key trusted: its `professional` counts, and reaches even that minimum.
    user.trust(&format!(
        "[trust]\nminimum-certification = \"professional\"\ncertifiers = [\"{}\"]\n",
        reviewer.pk.to_base64()
    ));
    let err = user.fails(&["install", "app_main"]);
    assert!(
        err.contains("`app_main` 1.0.0")
            && err.contains("at least `professional`")
            && !err.contains("`base_tools` 1.0.0"),
        "only app_main (verified) falls short now: {err}"
    );
    user.trust(&format!(
        "[trust]\nminimum-certification = \"verified\"\ncertifiers = [\"{}\"]\n",
        reviewer.pk.to_base64()
    ));
    user.ok(&["install", "app_main"]);
    assert_eq!(user.installed(), ["app_main 1.0.0", "base_tools 1.0.0"]);

    // [trust.node-keys] pins the node key: another key is refused at the snapshot check,
    // the node's own key works, and it may not contradict [registries.test] node-key.
    let stranger = keys().pk.to_base64();
    user.trust(&format!("[trust.node-keys]\ntest = \"{stranger}\"\n"));
    let err = user.fails(&["install"]);
    assert!(
        err.contains("snapshot check failed")
            && err.contains("correct this registry's node key in")
            && err.contains("config.toml"),
        "{err}"
    );
    user.trust(&format!(
        "[trust.node-keys]\ntest = \"{}\"\n",
        nk.pk.to_base64()
    ));
    user.ok(&["install"]);
    // (Written right after `index = ...`, so inside [registries.test].)
    user.trust(&format!(
        "node-key = \"{stranger}\"\n[trust.node-keys]\ntest = \"{}\"\n",
        nk.pk.to_base64()
    ));
    let err = user.fails(&["install"]);
    assert!(
        err.contains("two different node keys for the registry `test`") && err.contains(&stranger),
        "{err}"
    );

    // A bad [trust] table is refused before anything else, naming what is wrong.
    user.trust("[trust]\nminimum-certification = \"gold\"\n");
    let err = user.fails(&["install"]);
    assert!(
        err.contains("config.toml")
            && err.contains("\"gold\"")
            && err.contains("community, verified, professional, enterprise"),
        "{err}"
    );
}

/// `--locked` (without requests when everything is cached) and `--offline` keep applying
/// the minimum, from the cached certs files; a cache without them is not enough.
#[test]
fn locked_and_offline_apply_the_minimum_from_the_cache() {
    let (mut node, token) = start_node();
    let alice = keys();
    let base = publish(&node, &token, &alice, "base_tools", "1.0.0", &[]);
    let app = publish(&node, &token, &alice, "app_main", "1.0.0", &["base_tools"]);
    let nk = node_keys(&node);
    certify(
        &mut node,
        &[
            (
                "app_main",
                cert_line(&nk, "app_main", "1.0.0", &app, CertificationLevel::Verified),
            ),
            (
                "base_tools",
                cert_line(
                    &nk,
                    "base_tools",
                    "1.0.0",
                    &base,
                    CertificationLevel::Verified,
                ),
            ),
        ],
    );
    let user = Client::new(&node.url);
    user.trust(VERIFIED);
    user.ok(&["install", "app_main"]);
    let installed = user.tree();

    // A user who installed without a minimum has no certs files cached.
    let relaxed = Client::new(&node.url);
    relaxed.ok(&["install", "app_main"]);
    relaxed.trust(VERIFIED);

    node.stop();
    // Everything cached, certs files included: no request, and the policy holds.
    let out = user.run(&["install", "--locked"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("nothing to fetch"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(user.project.join("missions")).unwrap();
    user.ok(&["install", "--offline"]);
    assert_eq!(user.tree(), installed);

    // A higher minimum is checked from the same cache, offline and --locked alike.
    user.trust("[trust]\nminimum-certification = \"enterprise\"\n");
    for args in [&["install", "--offline"][..], &["install", "--locked"][..]] {
        let err = user.fails(args);
        assert!(
            err.contains("certification check failed for `app_main` 1.0.0")
                && err.contains("at least `enterprise`")
                && err.contains("found: `verified` by the node's key"),
            "{args:?}: {err}"
        );
        assert_eq!(user.tree(), installed, "{args:?}");
    }

    // Without the certs files cached: offline names them; --locked must ask the node
    // (which is down) instead of installing unchecked.
    let err = relaxed.fails(&["install", "--offline"]);
    assert!(
        err.contains("`app_main` 1.0.0") && err.contains("not in the index cache (offline)"),
        "{err}"
    );
    let err = relaxed.fails(&["install", "--locked"]);
    assert!(err.contains("did not answer"), "{err}");
}
