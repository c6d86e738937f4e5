//! `[trust] minimum-certification` end to end: a real `mission-node serve` process, missions
//! published to it over HTTP with real minisign keys, certification lines written into the
//! node's index repository (node stopped; the node does not issue them itself yet) signed
//! with the node's own key or a reviewer's, and the real `mission` binary installing,
//! searching and showing them.

use mission_e2e::{
    author as keys, package_with_deps, publish_body_signed, publish_raw, text, versions,
    Author as Keys, Client, Node,
};
use mission_index::archive;
use mission_index::certification::{sign_certification, Certification, CertificationLevel};
use mission_index::repo::IndexRepo;
use mission_index::signing::SecretKey;

const NODE_TOML: &str = "name = \"testnode\"\nseed_library = false\n";

// ---- the node ----

/// A node with one publishing user, alice; returns the node and her token.
fn start_node() -> (Node, String) {
    let (node, mut tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish")]);
    (node, tokens.remove(0))
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
    let cksum = archive::cksum(&archive);
    publish_raw(
        node,
        Some(token),
        publish_body_signed(author, author, name, version, archive),
    )
    .expect(200);
    cksum
}

fn package(name: &str, version: &str, deps: &[&str]) -> Vec<u8> {
    let deps: Vec<(&str, &str)> = deps.iter().map(|n| (*n, "^1")).collect();
    package_with_deps(name, version, &deps, &format!("Mission {name}"))
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
    user.config_with(VERIFIED);
    user.ok(&["install", "solo_tool"]);
    assert_eq!(versions(&user.lock()), ["solo_tool 1.0.0"]);
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
        versions(&user.lock()),
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
    // Every published mission is `community`.
    assert_eq!(user.ok(&["search", "--certification", "community"]), all);
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
    user.config_with(VERIFIED);
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
    user.config_with(&format!(
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
    user.config_with(&format!(
        "[trust]\nminimum-certification = \"verified\"\ncertifiers = [\"{}\"]\n",
        reviewer.pk.to_base64()
    ));
    user.ok(&["install", "app_main"]);
    assert_eq!(
        versions(&user.lock()),
        ["app_main 1.0.0", "base_tools 1.0.0"]
    );

    // [trust.node-keys] pins the node key: another key is refused at the snapshot check,
    // the node's own key works, and it may not contradict [registries.test] node-key.
    let stranger = keys().pk.to_base64();
    user.config_with(&format!("[trust.node-keys]\ntest = \"{stranger}\"\n"));
    let err = user.fails(&["install"]);
    assert!(
        err.contains("snapshot check failed")
            && err.contains("correct this registry's node key in")
            && err.contains("config.toml"),
        "{err}"
    );
    user.config_with(&format!(
        "[trust.node-keys]\ntest = \"{}\"\n",
        nk.pk.to_base64()
    ));
    user.ok(&["install"]);
    // (Written right after `index = ...`, so inside [registries.test].)
    user.config_with(&format!(
        "node-key = \"{stranger}\"\n[trust.node-keys]\ntest = \"{}\"\n",
        nk.pk.to_base64()
    ));
    let err = user.fails(&["install"]);
    assert!(
        err.contains("two different node keys for the registry `test`") && err.contains(&stranger),
        "{err}"
    );

    // A bad [trust] table is refused before anything else, naming what is wrong.
    user.config_with("[trust]\nminimum-certification = \"gold\"\n");
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
    user.config_with(VERIFIED);
    user.ok(&["install", "app_main"]);
    let installed = user.tree();

    // A user who installed without a minimum has no certs files cached.
    let relaxed = Client::new(&node.url);
    relaxed.ok(&["install", "app_main"]);
    relaxed.config_with(VERIFIED);

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
    user.config_with("[trust]\nminimum-certification = \"enterprise\"\n");
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
