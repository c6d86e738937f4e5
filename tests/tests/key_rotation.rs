//! Author key rotation end to end (ARCHITECTURE section 3: "a new author key for a known
//! mission is accepted only with a rotation statement signed by the old key"): a real
//! `mission-node serve` process, real HTTP, real minisign keys made by `mission keygen` and
//! `mission key rotate`, and the statements read back from the sparse index as a client
//! reads them.

use std::path::Path;

use mission_e2e::{
    agent, author, mission, publish_body, publish_raw, run, with_token, Author, Node, Ran, Reply,
};
use mission_index::rotation::{self, RotationStatement};
use mission_index::signing::{PublicKey, SecretKey};

/// An author's key pair from `MISSION_HOME/keys/NAME.{pub,key}` (unencrypted, or with
/// `password`).
fn key_from_home(home: &Path, name: &str, password: Option<&str>) -> Author {
    let keys = home.join("keys");
    Author {
        pk: PublicKey::from_file(&keys.join(format!("{name}.pub"))).unwrap(),
        sk: SecretKey::load(&keys.join(format!("{name}.key")), password).unwrap(),
    }
}

/// An author's home with two keys made by `mission keygen`: `default` (A) and `b` (B).
fn author_with_two_keys() -> (tempfile::TempDir, Author, Author) {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "default");
    keygen(dir.path(), "b");
    let key_a = key_from_home(dir.path(), "default", None);
    let key_b = key_from_home(dir.path(), "b", None);
    (dir, key_a, key_b)
}

fn keygen(home: &Path, name: &str) {
    let ran = run(mission(home).args(["keygen", "--unencrypted", "--name", name]));
    assert!(ran.success, "{ran:?}");
}

/// `mission key rotate --mission NAME --registry URL ARGS` with `token`.
fn key_rotate(home: &Path, node: &Node, token: &str, mission_name: &str, args: &[&str]) -> Ran {
    run(mission(home)
        .args([
            "key",
            "rotate",
            "--mission",
            mission_name,
            "--registry",
            &node.url,
        ])
        .args(args)
        .env("MISSION_TOKEN", token))
}

fn rotate_raw(node: &Node, name: &str, token: &str, statement: &RotationStatement) -> Reply {
    let body = serde_json::to_vec(statement).unwrap();
    Reply::from(
        with_token(
            agent().post(node.url(&format!("/api/v1/missions/{name}/keys/rotate"))),
            token,
        )
        .header("Content-Type", "application/json")
        .send(body),
    )
}

/// The versions served for `path`, with the key each is signed by.
fn served_keys(node: &Node, path: &str) -> Vec<(String, String)> {
    let reply = node.get(&format!("/index/{path}")).expect(200);
    mission_index::entry::IndexEntry::parse_file(&reply.text())
        .unwrap()
        .into_iter()
        .map(|e| (e.vers, e.key))
        .collect()
}

fn is_strong_etag(tag: &str) -> bool {
    tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/")
}

#[test]
fn a_new_key_is_accepted_only_after_a_rotation_signed_by_the_old_one() {
    let (node, tokens) = Node::start_with_users(None, &[("alice", "publish"), ("bob", "publish")]);
    let (alice, bob) = (&tokens[0], &tokens[1]);
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    keygen(home, "default");
    keygen(home, "b");
    let key_a = key_from_home(home, "default", None);
    let key_b = key_from_home(home, "b", None);
    let name = "alice_tool";
    let path = "al/ic/alice_tool";

    publish_raw(&node, Some(alice), publish_body(&key_a, name, "1.0.0")).expect(200);

    // A version signed by another key is refused, and the author is told why.
    let refused = publish_raw(&node, Some(alice), publish_body(&key_b, name, "1.1.0"));
    assert_eq!(refused.status, 400, "{}", refused.text());
    let detail = refused.detail();
    assert!(
        detail.contains(&format!("signed by key {}", key_b.pk.to_base64()))
            && detail.contains(&format!(
                "its current author key is {} (key id {})",
                key_a.pk.to_base64(),
                key_a.pk.key_id()
            ))
            && detail.contains("mission key rotate"),
        "{detail}"
    );
    assert_eq!(node.get(&format!("/index/keys/{path}")).status, 404);

    // The owner rotates A -> B with the client.
    let ran = key_rotate(
        home,
        &node,
        alice,
        name,
        &["--old", "default", "--new", "b"],
    );
    assert!(ran.success, "{ran:?}");
    assert!(
        ran.stdout
            .contains(&format!("Old key id:  {}", key_a.pk.key_id()))
            && ran
                .stdout
                .contains(&format!("New key id:  {}", key_b.pk.key_id())),
        "{ran:?}"
    );

    // Now B's version is accepted, and the index shows which key signed what.
    publish_raw(&node, Some(alice), publish_body(&key_b, name, "1.1.0")).expect(200);
    assert_eq!(
        served_keys(&node, path),
        vec![
            ("1.0.0".to_owned(), key_a.pk.to_base64()),
            ("1.1.0".to_owned(), key_b.pk.to_base64())
        ]
    );
    // ... and A, which handed over, can no longer publish.
    let refused = publish_raw(&node, Some(alice), publish_body(&key_a, name, "1.2.0"));
    assert_eq!(refused.status, 400, "{}", refused.text());

    // The statement is served as a sparse index file, with a strong ETag and 304s.
    let served = node.get(&format!("/index/keys/{path}")).expect(200);
    let etag = served.header("etag").to_owned();
    assert!(is_strong_etag(&etag), "{etag}");
    assert_eq!(served.header("cache-control"), "no-cache");
    node.get_if_none_match(&format!("/index/keys/{path}"), &etag)
        .expect(304);
    // What a client that pinned A on first install does with it.
    let statements = rotation::parse_file(&served.text()).unwrap();
    assert_eq!(statements.len(), 1);
    statements[0].verify().unwrap();
    let (a64, b64) = (key_a.pk.to_base64(), key_b.pk.to_base64());
    assert!(rotation::key_chain_allows(&statements, name, &a64, &b64).unwrap());
    assert!(!rotation::key_chain_allows(&statements, name, &b64, &a64).unwrap());

    // Rotating again from B makes the key `b-next` when no --new is given.
    let ran = key_rotate(home, &node, alice, name, &["--old", "b", "--unencrypted"]);
    assert!(ran.success, "{ran:?}");
    assert!(ran.stdout.contains("New key:"), "{ran:?}");
    assert!(home.join("keys/b-next.pub").exists() && home.join("keys/b-next.key").exists());
    // B handed over to b-next: it can neither publish nor hand over again.
    let refused = publish_raw(&node, Some(alice), publish_body(&key_b, name, "1.2.1"));
    assert_eq!(refused.status, 400, "{}", refused.text());
    let ran = key_rotate(
        home,
        &node,
        alice,
        name,
        &["--old", "b", "--new", "b-fork", "--unencrypted"],
    );
    assert!(
        !ran.success && ran.stderr.contains("only the current key may hand over"),
        "{ran:?}"
    );
    // A new key protected by MISSION_KEY_PASSWORD, from the current one.
    let encrypted = run(mission(home)
        .args([
            "key",
            "rotate",
            "--mission",
            name,
            "--registry",
            &node.url,
            "--old",
            "b-next",
            "--new",
            "c",
        ])
        .env("MISSION_TOKEN", alice)
        .env("MISSION_KEY_PASSWORD", "correct horse"));
    assert!(encrypted.success, "{encrypted:?}");
    assert!(encrypted.stdout.contains("New key:"), "{encrypted:?}");
    let key_c = key_from_home(home, "c", Some("correct horse"));
    publish_raw(&node, Some(alice), publish_body(&key_c, name, "1.3.0")).expect(200);
    let served = node.get(&format!("/index/keys/{path}")).expect(200);
    assert_ne!(
        served.header("etag"),
        etag,
        "the file changed, so does its tag"
    );
    assert_eq!(rotation::parse_file(&served.text()).unwrap().len(), 3);

    // Bob's own mission, signed by his key.
    let key_bob = author();
    publish_raw(
        &node,
        Some(bob),
        publish_body(&key_bob, "bob_tool", "1.0.0"),
    )
    .expect(200);
    // Alice holds B; a statement by B handing bob_tool to her key C, without Bob's key:
    let hijack = rotation::sign_rotation(
        "bob_tool",
        &key_b.sk,
        &key_b.pk,
        &key_c.pk,
        std::time::SystemTime::now(),
    )
    .unwrap();
    // ... from Alice, who does not own it: 403.
    let reply = rotate_raw(&node, "bob_tool", alice, &hijack);
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(
        reply.detail().contains("not an owner of `bob_tool`"),
        "{}",
        reply.detail()
    );
    // ... even sent with Bob's own token, B is not bob_tool's key: 409, naming the key.
    let reply = rotate_raw(&node, "bob_tool", bob, &hijack);
    assert_eq!(reply.status, 409, "{}", reply.text());
    assert!(
        reply.detail().contains(&key_bob.pk.key_id()),
        "{}",
        reply.detail()
    );
    assert_eq!(node.get("/index/keys/bo/b_/bob_tool").status, 404);
    // The same through `mission key rotate`: refused, and the key pair it made for the
    // rotation is gone again.
    let ran = key_rotate(
        home,
        &node,
        alice,
        "bob_tool",
        &["--old", "b", "--new", "d", "--unencrypted"],
    );
    assert!(!ran.success, "{ran:?}");
    assert!(
        ran.stderr.contains("not an owner of `bob_tool`")
            && ran
                .stderr
                .contains("the key pair `d` made for it was removed"),
        "{ran:?}"
    );
    assert!(!home.join("keys/d.pub").exists() && !home.join("keys/d.key").exists());
    let refused = publish_raw(&node, Some(bob), publish_body(&key_c, "bob_tool", "1.1.0"));
    assert_eq!(refused.status, 400, "{}", refused.text());

    // A forged statement (claims A, signed by Bob's key) is refused before anything else.
    let mut forged = rotation::sign_rotation(
        name,
        &key_bob.sk,
        &key_bob.pk,
        &key_a.pk,
        std::time::SystemTime::now(),
    )
    .unwrap();
    forged.old_key = key_c.pk.to_base64();
    let reply = rotate_raw(&node, name, alice, &forged);
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.detail().contains("signature was made by key"),
        "{}",
        reply.detail()
    );

    // Only layout paths under keys/ are served.
    for bad in [
        "/index/keys/AL/IC/alice_tool",
        "/index/keys/al/ic/../ic/alice_tool",
        "/index/.keys/al/ic/alice_tool",
    ] {
        assert_eq!(node.get(bad).status, 404, "{bad}");
    }
}

/// The client side: an install pins the author key; after a rotation signed by the pinned
/// key, an update to the new key's version is accepted and the lock records the new key.
#[test]
fn an_install_follows_a_rotation_signed_by_the_pinned_key() {
    let (node, tokens) = Node::start_with_users(None, &[("alice", "publish")]);
    let alice = &tokens[0];
    let (author_dir, key_a, key_b) = author_with_two_keys();
    let author_home = author_dir.path();
    let name = "rotating_tool";
    publish_raw(&node, Some(alice), publish_body(&key_a, name, "1.0.0")).expect(200);

    // A user installs 1.0.0: key A is pinned in the lock.
    let user_home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let install = |args: &[&str]| {
        run(mission(user_home.path())
            .current_dir(project.path())
            .args(args)
            .args(["--registry", &node.url]))
    };
    let ran = install(&["install", name]);
    assert!(ran.success, "{ran:?}");
    let lock = std::fs::read_to_string(project.path().join("missions.lock")).unwrap();
    assert!(lock.contains(&key_a.pk.to_base64()), "{lock}");

    // The author rotates A -> B and publishes 1.1.0 with B.
    let ran = key_rotate(
        author_home,
        &node,
        alice,
        name,
        &["--old", "default", "--new", "b"],
    );
    assert!(ran.success, "{ran:?}");
    publish_raw(&node, Some(alice), publish_body(&key_b, name, "1.1.0")).expect(200);

    // The user's update follows the chain A -> B, says so, and now pins B.
    let ran = install(&["update", name]);
    assert!(ran.success, "{ran:?}");
    assert!(
        ran.stderr.contains(&format!(
            "note: the author of `{name}` handed over from key {} to {}",
            key_a.pk.to_base64(),
            key_b.pk.to_base64()
        )),
        "{ran:?}"
    );
    let lock = std::fs::read_to_string(project.path().join("missions.lock")).unwrap();
    assert!(lock.contains("1.1.0"), "{lock}");
    assert!(lock.contains(&key_b.pk.to_base64()), "{lock}");
}

/// After A -> B, with A still signing the highest version: the node takes B only (A once
/// slipped through, checked against the highest version's key), and a user pinned to B
/// still installs the versions A signed before the rotation, keeping B pinned.
#[test]
fn after_a_rotation_only_the_new_key_publishes_and_older_versions_still_install() {
    let (node, tokens) = Node::start_with_users(None, &[("alice", "publish")]);
    let alice = &tokens[0];
    let (author_dir, key_a, key_b) = author_with_two_keys();
    let author_home = author_dir.path();
    let name = "old_line";
    publish_raw(&node, Some(alice), publish_body(&key_a, name, "1.0.0")).expect(200);
    publish_raw(&node, Some(alice), publish_body(&key_a, name, "0.1.2")).expect(200);
    let ran = key_rotate(
        author_home,
        &node,
        alice,
        name,
        &["--old", "default", "--new", "b"],
    );
    assert!(ran.success, "{ran:?}");
    publish_raw(&node, Some(alice), publish_body(&key_b, name, "0.1.3")).expect(200);
    // A signed 1.0.0, the highest version, but handed over: refused.
    let refused = publish_raw(&node, Some(alice), publish_body(&key_a, name, "0.1.4"));
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.detail().contains(&format!(
            "its current author key is {}",
            key_b.pk.to_base64()
        )),
        "{}",
        refused.detail()
    );

    // A user pins B with 0.1.3 ...
    let user_home = tempfile::tempdir().unwrap();
    let in_project = |project: &Path, args: &[&str]| {
        run(mission(user_home.path())
            .current_dir(project)
            .args(args)
            .args(["--registry", &node.url]))
    };
    let first = tempfile::tempdir().unwrap();
    let ran = in_project(first.path(), &["install", &format!("{name}@=0.1.3")]);
    assert!(ran.success, "{ran:?}");
    let trust = user_home.path().join("trust.toml");
    let pinned = std::fs::read_to_string(&trust).unwrap();
    assert!(pinned.contains(&key_b.pk.to_base64()), "{pinned}");

    // ... then, in another project, installs 1.0.0, which A signed before it handed over:
    // accepted, and B stays pinned.
    let second = tempfile::tempdir().unwrap();
    let ran = in_project(second.path(), &["install", &format!("{name}@^1")]);
    assert!(ran.success, "{ran:?}");
    assert!(
        ran.stdout.contains(&format!("Installed {name} 1.0.0")),
        "{ran:?}"
    );
    assert_eq!(std::fs::read_to_string(&trust).unwrap(), pinned);

    // A key no statement links to the pinned one, either way, is still refused: with an
    // unrelated key pinned for the name, the same install fails.
    let stranger = author();
    let mut text = std::fs::read_to_string(&trust).unwrap();
    text = text.replace(&key_b.pk.to_base64(), &stranger.pk.to_base64());
    std::fs::write(&trust, text).unwrap();
    let third = tempfile::tempdir().unwrap();
    let ran = in_project(third.path(), &["install", &format!("{name}@^1")]);
    assert!(
        !ran.success && ran.stderr.contains("author key check failed"),
        "{ran:?}"
    );
}
