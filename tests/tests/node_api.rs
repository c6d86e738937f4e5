//! The node's read API and HTTP publish, end to end: a real `mission-node serve` process on
//! a free port, real HTTP (ureq), real minisign keys, archives built by `mission_index`,
//! and the index checked with the real `git`.
//!
//! Tests that need a token make users with `mission-node admin user add` on the data folder
//! before the node starts (the admin command opens the store itself when no node runs).

use std::process::Command;

use mission_e2e::{
    agent, author, package, publish_body, publish_body_signed, publish_raw, with_token, Node, Reply,
};
use mission_index::archive::{self, ArchiveLimits};
use mission_index::entry::IndexEntry;
use mission_index::signing::{self, PublicKey};
use mission_index::snapshot;
use mission_index::wire::{PublishBody, PublishMetadata};
use sha2::{Digest, Sha256};

// ---- a node process (Node, Reply: mission_e2e) ----

/// `git rev-parse` in the node's index.
fn git_rev(node: &Node, rev: &str) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(node.data.join("index.git"))
        .args(["rev-parse", rev])
        .output()
        .unwrap();
    assert!(out.status.success(), "git rev-parse {rev} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn owners_request(node: &Node, method: &str, name: &str, token: &str, users: &[&str]) -> Reply {
    let url = node.url(&format!("/api/v1/missions/{name}/owners"));
    let body = serde_json::json!({ "users": users }).to_string();
    let request = match method {
        "PUT" => agent().put(url),
        "DELETE" => agent().delete(url).force_send_body(),
        other => panic!("{other}"),
    };
    Reply::from(
        with_token(request, token)
            .header("Content-Type", "application/json")
            .send(body),
    )
}

fn yank_request(node: &Node, name: &str, version: &str, token: &str, undo: bool) -> Reply {
    let request = if undo {
        agent().put(node.url(&format!("/api/v1/missions/{name}/{version}/unyank")))
    } else {
        agent()
            .delete(node.url(&format!("/api/v1/missions/{name}/{version}/yank")))
            .force_send_body()
    };
    Reply::from(with_token(request, token).send(Vec::new()))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The index lines served for the file at `path`.
fn entries(node: &Node, path: &str) -> Vec<IndexEntry> {
    let reply = node.get(&format!("/index/{path}")).expect(200);
    IndexEntry::parse_file(&reply.text()).unwrap()
}

const SEEDED: &str = "rust_toolchain_check";
const SEEDED_PATH: &str = "ru/st/rust_toolchain_check";

fn is_strong_etag(tag: &str) -> bool {
    tag.len() > 2 && tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/")
}

// ---- without a token ----

#[test]
fn sparse_files_carry_strong_etags_and_revalidate_with_304() {
    let node = Node::start();

    // config.json: JSON, the git blob id as strong ETag, clients revalidate.
    let config = node.get("/index/config.json").expect(200);
    assert!(config
        .header("content-type")
        .starts_with("application/json"));
    assert_eq!(config.header("cache-control"), "no-cache");
    let etag = config.header("etag").to_owned();
    assert_eq!(
        etag,
        format!("\"{}\"", git_rev(&node, "main:config.json")),
        "the ETag is the blob id of config.json at the index head"
    );
    let json = config.json();
    assert_eq!(json["api"], node.url);
    assert!(json["dl"].as_str().unwrap().contains("{name}"));

    let not_modified = node.get_if_none_match("/index/config.json", &etag);
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), etag);
    for value in [
        format!("\"0000\", {etag}"),
        "*".to_owned(),
        format!("W/{etag}"),
    ] {
        assert_eq!(
            node.get_if_none_match("/index/config.json", &value).status,
            304,
            "If-None-Match: {value}"
        );
    }
    assert_eq!(
        node.get_if_none_match("/index/config.json", "\"stale\"")
            .status,
        200
    );

    // An entry file of a seeded mission: text, one valid line per version.
    let file = node.get(&format!("/index/{SEEDED_PATH}")).expect(200);
    assert!(file.header("content-type").starts_with("text/plain"));
    assert_eq!(file.header("cache-control"), "no-cache");
    let etag = file.header("etag").to_owned();
    assert!(is_strong_etag(&etag), "{etag}");
    assert_eq!(
        etag,
        format!("\"{}\"", git_rev(&node, &format!("main:{SEEDED_PATH}")))
    );
    let lines = IndexEntry::parse_file(&file.text()).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].name, SEEDED);
    assert_eq!(lines[0].cksum.len(), 64);
    assert_eq!(
        node.get_if_none_match(&format!("/index/{SEEDED_PATH}"), &etag)
            .status,
        304
    );

    // Each layout shape is served where crates.io's layout puts it (two-letter and
    // three-letter names appear only through publishing, so here: the folder shapes
    // answer 404 JSON for an unknown name rather than a routing error).
    for path in ["1/a", "2/ab", "3/a/abc", "ab/cd/abcd"] {
        let reply = node.get(&format!("/index/{path}")).expect(404);
        assert!(reply.detail().contains("no mission named"), "{path}");
    }
}

#[test]
fn unknown_names_and_paths_the_layout_would_not_make_are_404_json() {
    let node = Node::start();

    let unknown = node.get("/index/no/_s/no_such_mission").expect(404);
    assert!(unknown
        .header("content-type")
        .starts_with("application/json"));
    assert!(
        unknown.detail().contains("no_such_mission"),
        "{}",
        unknown.detail()
    );

    // The writer's side index exists in git but is never served.
    let listing = Command::new("git")
        .arg("--git-dir")
        .arg(node.data.join("index.git"))
        .args(["ls-tree", "-r", "--name-only", "main"])
        .output()
        .unwrap();
    let files = String::from_utf8(listing.stdout).unwrap();
    let keys_files: Vec<&str> = files.lines().filter(|f| f.starts_with(".keys/")).collect();
    for file in &keys_files {
        node.get(&format!("/index/{file}")).expect(404);
    }

    for bad in [
        "RU/ST/rust_toolchain_check",
        "ru/st/Rust_Toolchain_Check",
        "ru/xx/rust_toolchain_check",
        "rust_toolchain_check",
        "ru/st/rust_toolchain_check/x",
        "ru/st/%2e%2e/st/rust_toolchain_check",
        "%2e%2e/%2e%2e/config.json",
        ".keys",
        "certs/RU/ST/rust_toolchain_check",
        "HEAD",
        "objects/info/packs",
    ] {
        let reply = node.get(&format!("/index/{bad}"));
        assert_eq!(reply.status, 404, "/index/{bad}: {}", reply.text());
        assert!(!reply.detail().is_empty(), "{bad}");
    }

    // A certification file for a name without certifications: 404 that says so.
    let certs = node.get(&format!("/index/certs/{SEEDED_PATH}")).expect(404);
    assert!(
        certs.detail().contains("no certifications"),
        "{}",
        certs.detail()
    );

    // The API answers the same way.
    let api = node.get("/api/v1/missions/no_such_mission").expect(404);
    assert!(api.detail().contains("no_such_mission"));
    let download = node
        .get("/api/v1/missions/no_such_mission/1.0.0/download")
        .expect(404);
    assert!(download.detail().contains("no_such_mission"));
    let version = node
        .get(&format!("/api/v1/missions/{SEEDED}/9.9.9/download"))
        .expect(404);
    assert!(
        version.detail().contains("9.9.9") && version.detail().contains("1.0.0"),
        "names the missing and the published versions: {}",
        version.detail()
    );
}

#[test]
fn the_snapshot_is_signed_by_the_node_key_of_config_json_and_names_the_head() {
    let node = Node::start();
    let config = node.get("/index/config.json").expect(200).json();
    let key = PublicKey::parse(config["node"]["key"].as_str().unwrap()).unwrap();

    let json = node.get("/index/snapshot.json").expect(200);
    assert!(json.header("content-type").starts_with("application/json"));
    assert_eq!(json.header("cache-control"), "no-cache");
    let sig = node.get("/index/snapshot.json.minisig").expect(200);
    let snap = snapshot::verify_snapshot(&json.text(), &sig.text(), &key, None, chrono::Utc::now())
        .unwrap();
    assert_eq!(snap.head, git_rev(&node, "main"));
    assert_eq!(snap.node, config["node"]["name"].as_str().unwrap());

    let etag = json.header("etag").to_owned();
    assert_eq!(etag, format!("\"{}\"", sha256(&json.body)));
    assert_eq!(
        node.get_if_none_match("/index/snapshot.json", &etag).status,
        304
    );
    let sig_etag = sig.header("etag").to_owned();
    assert_eq!(
        node.get_if_none_match("/index/snapshot.json.minisig", &sig_etag)
            .status,
        304
    );

    // Another node's key does not verify it.
    let stranger = author();
    assert!(snapshot::verify_snapshot(
        &json.text(),
        &sig.text(),
        &stranger.pk,
        None,
        chrono::Utc::now()
    )
    .is_err());
}

#[test]
fn a_download_is_the_signed_archive_the_index_names_and_is_counted() {
    let node = Node::start();
    let config = node.get("/index/config.json").expect(200).json();
    let entry = entries(&node, SEEDED_PATH).remove(0);
    let url = config["dl"]
        .as_str()
        .unwrap()
        .replace("{name}", &entry.name)
        .replace("{version}", &entry.vers);

    let reply = Reply::from(agent().get(&url).call()).expect(200);
    assert_eq!(reply.header("content-type"), "application/gzip");
    assert_eq!(reply.header("content-length"), reply.body.len().to_string());
    assert_eq!(reply.header("etag"), format!("\"{}\"", entry.cksum));
    assert_eq!(sha256(&reply.body), entry.cksum);
    let key = PublicKey::parse(&entry.key).unwrap();
    signing::verify_archive(&key, &entry.sig, &reply.body, &entry.name, &entry.vers).unwrap();
    let files = archive::read_archive_files(&reply.body, &ArchiveLimits::default()).unwrap();
    assert!(files.iter().any(|f| f.path == "mission.yaml"));

    // Details: versions with their index fields, owners, downloads, certifications.
    let details = node
        .get(&format!("/api/v1/missions/{SEEDED}"))
        .expect(200)
        .json();
    assert_eq!(details["name"], SEEDED);
    let v = &details["versions"][0];
    assert_eq!(v["vers"], entry.vers);
    assert_eq!(v["cksum"], entry.cksum);
    assert_eq!(v["yanked"], false);
    assert_eq!(v["license"], entry.license);
    assert_eq!(v["description"], entry.description);
    assert_eq!(v["pricing"]["model"], "free");
    assert_eq!(
        v["step_types"].as_array().unwrap().len(),
        entry.step_types.len()
    );
    assert!(v["permissions"].is_object() && v["deps"].is_array());
    assert!(v["categories"].is_array() && v["keywords"].is_array());
    assert!(v["pubtime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["downloads"], 1, "the download above was counted");
    assert_eq!(details["downloads"], 1);
    assert_eq!(details["owners"][0]["login"], "library");
    assert_eq!(details["certifications"], serde_json::json!([]));

    // A client with the archive revalidates it without a transfer or a count.
    let again = Reply::from(
        agent()
            .get(&url)
            .header("If-None-Match", format!("\"{}\"", entry.cksum))
            .call(),
    );
    assert_eq!(again.status, 304);
    let details = node
        .get(&format!("/api/v1/missions/{SEEDED}"))
        .expect(200)
        .json();
    assert_eq!(details["downloads"], 1);

    // Names are looked up ignoring case, as the layout files are lowercase.
    node.get("/api/v1/missions/Rust_Toolchain_Check")
        .expect(200);
}

/// Download counts are kept in memory and made durable about once a second: counts a
/// second old survive the node being killed.
#[test]
fn download_counts_become_durable_within_a_second() {
    let mut node = Node::start();
    let entry = entries(&node, SEEDED_PATH).remove(0);
    let path = format!("/api/v1/missions/{SEEDED}/{}/download", entry.vers);
    node.get(&path).expect(200);
    node.get(&path).expect(200);
    let details = node
        .get(&format!("/api/v1/missions/{SEEDED}"))
        .expect(200)
        .json();
    assert_eq!(details["downloads"], 2, "counted at once");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    node.restart(); // SIGKILL: nothing is flushed on the way out
    let details = node
        .get(&format!("/api/v1/missions/{SEEDED}"))
        .expect(200)
        .json();
    assert_eq!(details["downloads"], 2, "made durable while the node ran");
}

#[test]
fn a_missing_or_corrupt_blob_is_a_500_never_wrong_bytes() {
    let node = Node::start();
    let entry = entries(&node, SEEDED_PATH).remove(0);
    let blob = node
        .data
        .join("blobs/sha256")
        .join(&entry.cksum[..2])
        .join(&entry.cksum[2..]);
    assert!(blob.is_file(), "the blob store layout: {}", blob.display());
    let path = format!("/api/v1/missions/{SEEDED}/{}/download", entry.vers);

    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let corrupt = node.get(&path).expect(500);
    assert!(
        corrupt.detail().contains("corrupt") && corrupt.detail().contains(&entry.cksum),
        "{}",
        corrupt.detail()
    );

    std::fs::remove_file(&blob).unwrap();
    let missing = node.get(&path).expect(500);
    assert!(
        missing.detail().contains("missing") && missing.detail().contains(SEEDED),
        "{}",
        missing.detail()
    );
    let details = node
        .get(&format!("/api/v1/missions/{SEEDED}"))
        .expect(200)
        .json();
    assert_eq!(details["downloads"], 0, "failed downloads are not counted");
}

/// Archives past the node's in-memory size (1 MiB) are streamed from the checked file
/// rather than sent from memory: the bytes, length and count are the same, and a corrupt
/// one is refused before anything is sent.
#[test]
fn a_large_archive_streams_back_whole_and_a_corrupt_one_is_refused() {
    let (node, tokens) = Node::start_with_users(None, &[("alice", "publish")]);
    let alice = author();
    // Incompressible bytes, so the archive itself is large (and within the default 10 MiB
    // limit): several chunks of the stream.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..3 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let files = vec![
        archive::SourceFile {
            path: "mission.yaml".into(),
            executable: false,
            data: mission_e2e::mission_yaml("api_large", "0.1.0").into_bytes(),
        },
        archive::SourceFile {
            path: "data.bin".into(),
            executable: false,
            data,
        },
    ];
    let bytes = archive::build_archive_from_files(files, &ArchiveLimits::default()).unwrap();
    assert!(bytes.len() > 3 << 20, "{}", bytes.len());
    let body = publish_body_signed(&alice, &alice, "api_large", "0.1.0", bytes.clone());
    publish_raw(&node, Some(&tokens[0]), body).expect(200);

    let path = "/api/v1/missions/api_large/0.1.0/download";
    let reply = node.get(path).expect(200);
    assert_eq!(reply.header("content-length"), bytes.len().to_string());
    assert!(reply.body == bytes, "the very bytes that were signed");
    let details = node.get("/api/v1/missions/api_large").expect(200).json();
    assert_eq!(details["downloads"], 1);

    let cksum = sha256(&bytes);
    let blob = node
        .data
        .join("blobs/sha256")
        .join(&cksum[..2])
        .join(&cksum[2..]);
    let mut stored = std::fs::read(&blob).unwrap();
    stored[2 << 20] ^= 0xff;
    std::fs::write(&blob, &stored).unwrap();
    let corrupt = node.get(path).expect(500);
    assert!(
        corrupt.detail().contains("corrupt") && corrupt.detail().contains(&cksum),
        "{}",
        corrupt.detail()
    );
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    let node = Node::start();
    node.get(&format!("/index/{SEEDED_PATH}")).expect(200);
    node.get("/index/no/_s/no_such_mission").expect(404);
    let metrics = node.get("/metrics").expect(200).text();
    let counted = |route: &str, status: &str| {
        metrics.lines().any(|l| {
            l.starts_with("http_requests_total{")
                && l.contains(&format!("route=\"{route}\""))
                && l.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(counted("/index/{*path}", "200"), "{metrics}");
    assert!(counted("/index/{*path}", "404"), "{metrics}");
}

#[test]
fn writes_without_a_token_are_401_with_a_challenge() {
    let node = Node::start();
    let alice = author();
    let reply = publish_raw(&node, None, publish_body(&alice, "api_hello", "0.1.0")).expect(401);
    assert!(reply.header("www-authenticate").starts_with("Basic"));
    assert!(reply.detail().contains("token"), "{}", reply.detail());

    let bad = publish_raw(
        &node,
        Some("mrt_not_a_token"),
        publish_body(&alice, "api_hello", "0.1.0"),
    )
    .expect(401);
    assert!(bad.detail().contains("not valid"), "{}", bad.detail());

    let yank = Reply::from(
        agent()
            .delete(node.url(&format!("/api/v1/missions/{SEEDED}/1.0.0/yank")))
            .call(),
    );
    assert_eq!(yank.status, 401, "{}", yank.text());
    let owners = Reply::from(
        agent()
            .put(node.url(&format!("/api/v1/missions/{SEEDED}/owners")))
            .send(r#"{"users":["x"]}"#),
    );
    assert_eq!(owners.status, 401, "{}", owners.text());
    // Nothing changed.
    assert_eq!(node.get("/index/ap/i_/api_hello").status, 404);
}

// ---- with tokens (users made with `mission-node admin user add`) ----

#[test]
fn an_http_publish_lands_in_the_index_and_downloads_back() {
    let (node, tokens) = Node::start_with_users(None, &[("alice", "publish,yank,owners")]);
    let alice = author();
    let archive = package("api_hello", "0.1.0", 0);
    let body = publish_body_signed(&alice, &alice, "api_hello", "0.1.0", archive.clone());
    let reply = publish_raw(&node, Some(&tokens[0]), body)
        .expect(200)
        .json();
    assert_eq!(reply["name"], "api_hello");
    assert_eq!(reply["version"], "0.1.0");
    assert_eq!(reply["cksum"], sha256(&archive));
    assert_eq!(
        reply["commit"],
        git_rev(&node, "main"),
        "answered after the commit"
    );

    let lines = entries(&node, "ap/i_/api_hello");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].cksum, sha256(&archive));
    assert_eq!(lines[0].key, alice.pk.to_base64());
    assert_eq!(lines[0].origin, "local");

    let download = node
        .get("/api/v1/missions/api_hello/0.1.0/download")
        .expect(200);
    assert_eq!(download.body, archive, "the very bytes that were signed");
    let details = node.get("/api/v1/missions/api_hello").expect(200).json();
    assert_eq!(
        details["owners"],
        serde_json::json!([{"login": "alice", "kind": "user"}])
    );

    // The snapshot follows the new head.
    let config = node.get("/index/config.json").expect(200).json();
    let key = PublicKey::parse(config["node"]["key"].as_str().unwrap()).unwrap();
    let json = node.get("/index/snapshot.json").expect(200).text();
    let sig = node.get("/index/snapshot.json.minisig").expect(200).text();
    let snap = snapshot::verify_snapshot(&json, &sig, &key, None, chrono::Utc::now()).unwrap();
    assert_eq!(snap.head, git_rev(&node, "main"));

    let metrics = node.get("/metrics").expect(200).text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mission_publishes_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[test]
fn publish_refusals_say_which_rule_failed() {
    let (node, tokens) = Node::start_with_users(
        None,
        &[
            ("alice", "publish,yank,owners"),
            ("bob", "publish"),
            ("yanker", "yank"),
        ],
    );
    let (alice_token, bob_token, yank_only) = (&tokens[0], &tokens[1], &tokens[2]);
    let alice = author();
    let head = git_rev(&node, "main");

    // Signed by another key than the one the metadata names.
    let mallory = author();
    let body = publish_body_signed(
        &mallory,
        &alice,
        "api_hello",
        "0.1.0",
        package("api_hello", "0.1.0", 0),
    );
    let reply = publish_raw(&node, Some(alice_token), body).expect(400);
    assert!(reply.detail().contains("signature"), "{}", reply.detail());

    // The metadata's checksum is not the archive's.
    let archive = package("api_hello", "0.1.0", 0);
    let actual = sha256(&archive);
    let sig = signing::sign_archive(&alice.sk, &alice.pk, &archive, "api_hello", "0.1.0").unwrap();
    let body = PublishBody {
        metadata: PublishMetadata {
            name: "api_hello".into(),
            vers: "0.1.0".into(),
            cksum: "ab".repeat(32),
            key: alice.pk.to_base64(),
            sig,
        },
        archive,
    }
    .encode();
    let reply = publish_raw(&node, Some(alice_token), body).expect(400);
    assert!(
        reply.detail().contains(&"ab".repeat(32)) && reply.detail().contains(&actual),
        "names both checksums: {}",
        reply.detail()
    );

    // The metadata names another version than the archive's mission.yaml.
    let archive = package("api_hello", "0.1.0", 0);
    let reply = publish_raw(
        &node,
        Some(alice_token),
        publish_body_signed(&alice, &alice, "api_hello", "0.2.0", archive),
    )
    .expect(400);
    assert!(
        reply.detail().contains("0.2.0") && reply.detail().contains("0.1.0"),
        "{}",
        reply.detail()
    );

    // Not the canonical archive: the same files, another gzip header (OS byte), signed.
    let mut archive = package("api_hello", "0.1.0", 0);
    archive[9] = if archive[9] == 3 { 0 } else { 3 };
    let reply = publish_raw(
        &node,
        Some(alice_token),
        publish_body_signed(&alice, &alice, "api_hello", "0.1.0", archive),
    )
    .expect(400);
    assert!(reply.detail().contains("canonical"), "{}", reply.detail());

    // A token without the publish scope.
    let reply = publish_raw(
        &node,
        Some(yank_only),
        publish_body(&alice, "api_hello", "0.1.0"),
    )
    .expect(403);
    assert!(reply.detail().contains("publish"), "{}", reply.detail());

    assert_eq!(git_rev(&node, "main"), head, "no refusal touched the index");

    // Now a good publish, then the refusals that depend on it.
    publish_raw(
        &node,
        Some(alice_token),
        publish_body(&alice, "api_hello", "0.1.0"),
    )
    .expect(200);
    let reply = publish_raw(
        &node,
        Some(alice_token),
        publish_body(&alice, "api_hello", "0.1.0"),
    )
    .expect(409);
    assert!(
        reply.detail().contains("already published"),
        "{}",
        reply.detail()
    );

    let bob = author();
    let reply = publish_raw(
        &node,
        Some(bob_token),
        publish_body(&bob, "api_hello", "0.2.0"),
    )
    .expect(403);
    assert!(
        reply.detail().contains("bob") && reply.detail().contains("not an owner"),
        "{}",
        reply.detail()
    );

    // A name that differs from a published one only in `-`/`_` is the same name.
    let reply = publish_raw(
        &node,
        Some(bob_token),
        publish_body(&bob, "rust-toolchain-check", "9.0.0"),
    )
    .expect(409);
    assert!(
        reply.detail().contains("taken") && reply.detail().contains(SEEDED),
        "{}",
        reply.detail()
    );

    // A malformed body.
    let reply = publish_raw(&node, Some(alice_token), vec![1, 2]).expect(400);
    assert!(reply.detail().contains("truncated"), "{}", reply.detail());
}

#[test]
fn oversized_publishes_are_413() {
    let toml = "name = \"small\"\nseed_library = false\n\n[limits]\nmax_archive_bytes = 1500\nmax_publish_body_bytes = 8000\n";
    let (node, tokens) = Node::start_with_users(Some(toml), &[("alice", "publish")]);
    let alice = author();

    // The archive is past max_archive_bytes, the body within its limit.
    let archive = package("api_big", "0.1.0", 3000);
    assert!(
        archive.len() > 1500 && archive.len() < 6000,
        "{}",
        archive.len()
    );
    let reply = publish_raw(
        &node,
        Some(&tokens[0]),
        publish_body_signed(&alice, &alice, "api_big", "0.1.0", archive),
    )
    .expect(413);
    assert!(reply.detail().contains("1500"), "{}", reply.detail());

    // The whole body is past max_publish_body_bytes.
    let archive = package("api_big", "0.1.0", 20_000);
    assert!(
        archive.len() > 8000 && archive.len() < 60_000,
        "{}",
        archive.len()
    );
    let reply = publish_raw(
        &node,
        Some(&tokens[0]),
        publish_body_signed(&alice, &alice, "api_big", "0.1.0", archive),
    )
    .expect(413);
    assert!(reply.detail().contains("8000"), "{}", reply.detail());
    assert_eq!(node.get("/index/ap/i_/api_big").status, 404);
}

#[test]
fn yank_and_unyank_show_in_the_sparse_file_and_yanked_versions_still_download() {
    let (node, tokens) =
        Node::start_with_users(None, &[("alice", "publish,yank"), ("bob", "publish,yank")]);
    let alice = author();
    publish_raw(
        &node,
        Some(&tokens[0]),
        publish_body(&alice, "api_hello", "0.1.0"),
    )
    .expect(200);
    let path = "/index/ap/i_/api_hello";
    let before = node.get(path).expect(200);
    let old_etag = before.header("etag").to_owned();

    // Not an owner: 403 naming the owners; an unknown version: 404.
    let reply = yank_request(&node, "api_hello", "0.1.0", &tokens[1], false).expect(403);
    assert!(reply.detail().contains("alice"), "{}", reply.detail());
    let reply = yank_request(&node, "api_hello", "9.9.9", &tokens[0], false).expect(404);
    assert!(reply.detail().contains("9.9.9"), "{}", reply.detail());
    yank_request(&node, "no_such_mission", "0.1.0", &tokens[0], false).expect(404);

    let reply = yank_request(&node, "api_hello", "0.1.0", &tokens[0], false).expect(200);
    assert_eq!(reply.json(), serde_json::json!({"ok": true}));
    let after = node.get_if_none_match(path, &old_etag);
    assert_eq!(
        after.status, 200,
        "the file changed, so the old ETag no longer matches"
    );
    let lines = IndexEntry::parse_file(&after.text()).unwrap();
    assert!(lines[0].yanked);
    // Yanked versions still download: lockfiles name them.
    node.get("/api/v1/missions/api_hello/0.1.0/download")
        .expect(200);
    let details = node.get("/api/v1/missions/api_hello").expect(200).json();
    assert_eq!(details["versions"][0]["yanked"], true);

    yank_request(&node, "api_hello", "0.1.0", &tokens[0], true).expect(200);
    let lines = entries(&node, "ap/i_/api_hello");
    assert!(!lines[0].yanked);
    assert_eq!(
        node.get(path).header("etag"),
        old_etag,
        "the same bytes as before"
    );
}

#[test]
fn owners_are_listed_added_and_removed_but_never_the_last() {
    let (node, tokens) = Node::start_with_users(
        None,
        &[
            ("alice", "publish,owners"),
            ("bob", "publish,owners"),
            ("carol", "publish"),
        ],
    );
    let (alice_token, bob_token, carol_token) = (&tokens[0], &tokens[1], &tokens[2]);
    let alice = author();
    publish_raw(
        &node,
        Some(alice_token),
        publish_body(&alice, "api_hello", "0.1.0"),
    )
    .expect(200);
    let owners_path = "/api/v1/missions/api_hello/owners";
    let list = |node: &Node| -> Vec<String> {
        node.get(owners_path).expect(200).json()["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["login"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(list(&node), ["alice"]);

    // Only owners, with the owners scope, change owners.
    let reply = owners_request(&node, "PUT", "api_hello", bob_token, &["bob"]).expect(403);
    assert!(
        reply.detail().contains("not an owner"),
        "{}",
        reply.detail()
    );
    let reply = owners_request(&node, "PUT", "api_hello", carol_token, &["carol"]).expect(403);
    assert!(reply.detail().contains("owners"), "{}", reply.detail());

    // An unknown user is named, and nothing changes.
    let reply =
        owners_request(&node, "PUT", "api_hello", alice_token, &["bob", "ghost"]).expect(400);
    assert!(reply.detail().contains("ghost"), "{}", reply.detail());
    assert_eq!(list(&node), ["alice"]);

    owners_request(&node, "PUT", "api_hello", alice_token, &["bob"]).expect(200);
    assert_eq!(list(&node), ["alice", "bob"]);
    // Bob, now an owner, can publish a new version (with the same author key).
    publish_raw(
        &node,
        Some(bob_token),
        publish_body(&alice, "api_hello", "0.2.0"),
    )
    .expect(200);

    let reply =
        owners_request(&node, "DELETE", "api_hello", alice_token, &["alice", "bob"]).expect(400);
    assert!(
        reply.detail().contains("without owners"),
        "{}",
        reply.detail()
    );
    assert_eq!(list(&node), ["alice", "bob"]);

    owners_request(&node, "DELETE", "api_hello", bob_token, &["alice"]).expect(200);
    assert_eq!(list(&node), ["bob"]);
    let reply = owners_request(&node, "DELETE", "api_hello", bob_token, &["bob"]).expect(400);
    assert!(
        reply.detail().contains("without owners"),
        "{}",
        reply.detail()
    );
    let reply = owners_request(&node, "PUT", "api_hello", alice_token, &["alice"]).expect(403);
    assert!(
        reply.detail().contains("not an owner"),
        "{}",
        reply.detail()
    );

    owners_request(&node, "PUT", "no_such_mission", bob_token, &["alice"]).expect(404);
}

#[test]
fn a_private_node_serves_its_index_and_archives_only_with_a_token() {
    let toml = "name = \"private\"\nauth_required = true\n";
    let (node, tokens) = Node::start_with_users(Some(toml), &[("reader", "execute")]);
    for path in [
        "/index/config.json".to_owned(),
        format!("/index/{SEEDED_PATH}"),
        "/index/snapshot.json".to_owned(),
        format!("/api/v1/missions/{SEEDED}"),
        format!("/api/v1/missions/{SEEDED}/1.0.0/download"),
    ] {
        let denied = node.get(&path).expect(401);
        assert!(denied.detail().contains("token"), "{path}");
        let allowed = Reply::from(
            agent()
                .get(node.url(&path))
                .header("Authorization", &tokens[0])
                .call(),
        );
        assert_eq!(allowed.status, 200, "{path}: {}", allowed.text());
    }
    let config = Reply::from(
        agent()
            .get(node.url("/index/config.json"))
            .header("Authorization", format!("Bearer {}", tokens[0]))
            .call(),
    )
    .expect(200)
    .json();
    assert_eq!(config["auth-required"], true);

    // The prefetch hint is no way around the token.
    let hinted = |token: Option<&str>| {
        let mut request = agent()
            .get(node.url(&format!("/index/{SEEDED_PATH}")))
            .header("Prefer", "mission-closure");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Reply::from(request.call())
    };
    let denied = hinted(None).expect(401);
    assert!(denied.headers.get("link").is_none(), "{denied:?}");
    assert!(
        denied.headers.get("preference-applied").is_none(),
        "{denied:?}"
    );
    let allowed = hinted(Some(&tokens[0])).expect(200);
    assert_eq!(allowed.header("preference-applied"), "mission-closure");

    // Nor is git: the index and the mission repositories are cloned with a token only
    // (asked for with 401, given as the HTTP Basic password, as git does).
    for path in [
        "/git/index.git/info/refs?service=git-upload-pack",
        "/git/missions/any_name.git/info/refs?service=git-upload-pack",
    ] {
        let denied = node.get(path).expect(401);
        assert!(
            denied.header("www-authenticate").starts_with("Basic"),
            "{path}"
        );
    }
    let clone = |url: &str| {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("git")
            .args(["clone", "--quiet", url])
            .arg(dir.path().join("index"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (cloned, stderr) = clone(&node.url("/git/index.git"));
    assert!(!cloned, "cloned a private index without a token");
    // git was asked for credentials (a 401), and had none to give.
    assert!(stderr.contains("could not read Username"), "{stderr}");
    let with_token =
        node.url("/git/index.git")
            .replacen("http://", &format!("http://reader:{}@", tokens[0]), 1);
    let (cloned, stderr) = clone(&with_token);
    assert!(cloned, "{stderr}");
}
