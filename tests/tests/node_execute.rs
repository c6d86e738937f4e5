//! Missions executed on the node, end to end: a real `mission-node serve` process, missions
//! published over real HTTP with real minisign keys, runs in the real sandbox (bubblewrap
//! when it works here), the audit log checked with the real `mission-node admin audit
//! verify`.

use std::time::{Duration, Instant};

use mission_e2e::{agent, node_cmd, Node, Reply};
use mission_index::archive::{self, ArchiveLimits};
use mission_index::signing::{self, PublicKey, SecretKey};
use mission_index::wire::{PublishBody, PublishMetadata};
use serde_json::{json, Value};

// ---- a node process (Node, Reply: mission_e2e) ----

/// What these tests do with a node beyond `mission_e2e::Node`.
trait NodeExt {
    fn execute(&self, name: &str, token: Option<&str>, body: Value) -> Reply;
    fn wait_finished(&self, id: &str, token: &str) -> Value;
    fn publish(&self, token: &str, author: &Author, name: &str, yaml: &str);
    fn audit_verify(&self) -> (bool, String);
}

impl NodeExt for Node {
    fn execute(&self, name: &str, token: Option<&str>, body: Value) -> Reply {
        let mut request = agent().post(self.url(&format!("/api/v1/missions/{name}/execute")));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Reply::from(
            request
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )
    }

    /// Polls the execution until it is no longer queued or running.
    fn wait_finished(&self, id: &str, token: &str) -> Value {
        let started = Instant::now();
        loop {
            let reply = self
                .get_with(&format!("/api/v1/executions/{id}"), Some(token))
                .expect(200);
            let json = reply.json();
            let status = json["status"].as_str().unwrap().to_owned();
            if status != "queued" && status != "running" {
                return json;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "execution {id} still {status} after 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn publish(&self, token: &str, author: &Author, name: &str, yaml: &str) {
        let body = publish_body(author, name, "1.0.0", yaml);
        Reply::from(
            agent()
                .post(self.url("/api/v1/missions/publish"))
                .header("Authorization", format!("Bearer {token}"))
                .send(body),
        )
        .expect(200);
    }

    fn audit_verify(&self) -> (bool, String) {
        let out = node_cmd(&self.data)
            .args(["admin", "audit", "verify"])
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
}

// ---- packages ----

struct Author {
    sk: SecretKey,
    pk: PublicKey,
}

fn author() -> Author {
    let generated = signing::generate_keypair(None).unwrap();
    Author {
        sk: SecretKey::parse(&generated.secret_key_text, None).unwrap(),
        pk: PublicKey::parse(&generated.public_key_text).unwrap(),
    }
}

/// A free package `name` 1.0.0 whose permissions allow `commands` and whose steps are
/// `steps` (YAML, indented as list items under `steps:`).
fn mission_yaml(name: &str, commands: &str, parameters: &str, steps: &str) -> String {
    priced_yaml(name, "{ model: free }", commands, parameters, steps)
}

fn priced_yaml(name: &str, pricing: &str, commands: &str, parameters: &str, steps: &str) -> String {
    format!(
        r#"version: "1.0"
name: {name}
description: A mission for the node execution tests.

package:
  name: {name}
  version: 1.0.0
  description: A mission for the node execution tests.
  authors: ["Test Author <author@example.invalid>"]
  license: MIT
  categories: [build-automation]
  keywords: [test]
  pricing: {pricing}
  permissions:
    network: false
    commands: [{commands}]
    llm: false
    max_duration_seconds: 60
  parameters: {parameters}

steps:
{steps}"#
    )
}

fn publish_body(author: &Author, name: &str, version: &str, yaml: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mission.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("README.md"), "# A test mission\n").unwrap();
    let archive = archive::build_archive(dir.path(), &ArchiveLimits::default()).unwrap();
    let sig = signing::sign_archive(&author.sk, &author.pk, &archive, name, version).unwrap();
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

/// Writes a greeting from its parameter, then shows it with `cat`.
fn greet_yaml() -> String {
    mission_yaml(
        "greet",
        "cat",
        r#"[{ name: greeting, type: string, required: false, default: hello }]"#,
        r#"  - id: write
    name: Write the greeting
    step_type: create_file
    parameters:
      path: greeting.txt
      content: "{greeting} from the node"
  - id: show
    name: Show it
    step_type: command
    depends_on: [write]
    parameters:
      command: cat
      args: [greeting.txt]
"#,
    )
}

/// Runs `false`.
fn broken_yaml() -> String {
    mission_yaml(
        "broken",
        "\"false\"",
        "[]",
        r#"  - id: fail
    name: Fail
    step_type: command
    parameters:
      command: "false"
"#,
    )
}

/// Sleeps for two seconds.
fn slow_yaml() -> String {
    mission_yaml(
        "slow",
        "sleep",
        "[]",
        r#"  - id: nap
    name: Nap
    step_type: command
    parameters:
      command: sleep
      args: ["2"]
"#,
    )
}

const NODE_TOML: &str = "name = \"local\"\nseed_library = false\n";

fn step<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {report}"))
}

fn version_stats(node: &Node, name: &str) -> Value {
    let details = node
        .get_with(&format!("/api/v1/missions/{name}"), None)
        .expect(200)
        .json();
    details["versions"][0]["stats"].clone()
}

// ---- tests ----

#[test]
fn missions_run_on_the_node_report_their_steps_and_are_audited() {
    let (node, tokens) = Node::start_with_users(
        Some(NODE_TOML),
        &[
            ("alice", "publish,execute"),
            ("bob", "execute"),
            ("carol", "publish"),
            ("root", "admin"),
        ],
    );
    let [alice, bob, carol, root] = [&tokens[0], &tokens[1], &tokens[2], &tokens[3]];
    let author = author();
    node.publish(alice, &author, "greet", &greet_yaml());
    node.publish(alice, &author, "broken", &broken_yaml());

    // Refusals before anything runs.
    let reply = node.execute("greet", None, json!({})).expect(401);
    assert!(reply.detail().contains("token"), "{}", reply.detail());
    let reply = node.execute("greet", Some(carol), json!({})).expect(403);
    assert!(reply.detail().contains("execute"), "{}", reply.detail());
    let reply = node
        .execute("nothing_here", Some(alice), json!({}))
        .expect(404);
    assert!(
        reply.detail().contains("nothing_here"),
        "{}",
        reply.detail()
    );
    let reply = node
        .execute("greet", Some(alice), json!({"version": "9.9.9"}))
        .expect(404);
    assert!(reply.detail().contains("9.9.9"), "{}", reply.detail());
    let reply = node
        .execute("greet", Some(alice), json!({"params": {"colour": "red"}}))
        .expect(400);
    assert!(reply.detail().contains("colour"), "{}", reply.detail());

    // A run that succeeds: 202, then the report.
    let accepted = node
        .execute(
            "greet",
            Some(alice),
            json!({"version": "1.0.0", "params": {"greeting": "hi"}}),
        )
        .expect(202)
        .json();
    assert_eq!(accepted["status"], "queued");
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let done = node.wait_finished(&id, alice);
    assert_eq!(done["execution_id"], id.as_str());
    assert_eq!(done["mission"], "greet");
    assert_eq!(done["version"], "1.0.0");
    assert_eq!(done["status"], "succeeded", "{done}");
    let report = &done["report"];
    assert_eq!(report["status"], "success");
    assert_eq!(report["steps"].as_array().unwrap().len(), 2);
    assert_eq!(step(report, "write")["status"], "success");
    let show = step(report, "show");
    assert_eq!(show["status"], "success", "{show}");
    assert_eq!(show["exit_code"], 0);
    assert!(
        show["output"]["stdout"]
            .as_str()
            .unwrap_or_default()
            .contains("hi from the node"),
        "{show}"
    );

    // Only its starter (and an admin) can see it.
    let reply = node
        .get_with(&format!("/api/v1/executions/{id}"), Some(bob))
        .expect(404);
    assert!(reply.detail().contains(&id), "{}", reply.detail());
    node.get_with(&format!("/api/v1/executions/{id}"), None)
        .expect(401);
    let seen = node
        .get_with(&format!("/api/v1/executions/{id}"), Some(root))
        .expect(200)
        .json();
    assert_eq!(seen["status"], "succeeded");
    node.get_with("/api/v1/executions/0123456789abcdef", Some(alice))
        .expect(404);

    // A run whose step fails: failed, with the step's error.
    let accepted = node
        .execute("broken", Some(bob), json!({}))
        .expect(202)
        .json();
    let id = accepted["execution_id"].as_str().unwrap().to_owned();
    let done = node.wait_finished(&id, bob);
    assert_eq!(done["status"], "failed", "{done}");
    let fail = step(&done["report"], "fail");
    assert_eq!(fail["status"], "failed", "{fail}");
    assert_eq!(fail["exit_code"], 1, "{fail}");
    assert!(
        fail["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{fail}"
    );

    // The details show the runs.
    let stats = version_stats(&node, "greet");
    assert_eq!(stats["runs"], 1, "{stats}");
    assert_eq!(stats["successes"], 1);
    assert_eq!(stats["failures"], 0);
    assert!(stats["p50_ms"].as_u64().is_some(), "{stats}");
    assert!(stats["p95_ms"].as_u64().is_some(), "{stats}");
    let stats = version_stats(&node, "broken");
    assert_eq!((&stats["runs"], &stats["failures"]), (&json!(1), &json!(1)));

    // Two runs, each queued and finished: four links, through the running node's socket.
    let (ok, out) = node.audit_verify();
    assert!(ok, "{out}");
    assert!(out.contains("ok: 4 records"), "{out}");

    // The work folders are gone once the runs end.
    let left: Vec<_> = std::fs::read_dir(node.data.join("executions"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "execution folders left: {left:?}");
}

#[test]
fn quotas_answer_429_naming_the_quota() {
    let toml = format!("{NODE_TOML}\n[execution]\nper_user_running = 1\nper_user_per_hour = 3\n");
    let (node, tokens) = Node::start_with_users(Some(&toml), &[("alice", "publish,execute")]);
    let alice = &tokens[0];
    node.publish(alice, &author(), "slow", &slow_yaml());

    let first = node
        .execute("slow", Some(alice), json!({}))
        .expect(202)
        .json();
    let reply = node.execute("slow", Some(alice), json!({})).expect(429);
    assert!(
        reply.detail().contains("per_user_running"),
        "{}",
        reply.detail()
    );
    let id = first["execution_id"].as_str().unwrap();
    assert_eq!(node.wait_finished(id, alice)["status"], "succeeded");

    // The slot is free again; the hourly quota then runs out at three.
    for _ in 0..2 {
        let next = node
            .execute("slow", Some(alice), json!({}))
            .expect(202)
            .json();
        node.wait_finished(next["execution_id"].as_str().unwrap(), alice);
    }
    let reply = node.execute("slow", Some(alice), json!({})).expect(429);
    assert!(
        reply.detail().contains("per_user_per_hour"),
        "{}",
        reply.detail()
    );

    let stats = version_stats(&node, "slow");
    assert_eq!(stats["runs"], 3, "{stats}");
    assert!(stats["p50_ms"].as_u64().unwrap() >= 2000, "{stats}");
    let (ok, out) = node.audit_verify();
    assert!(ok && out.contains("ok: 6 records"), "{out}");
}

#[test]
fn a_full_queue_answers_503_and_paid_missions_402() {
    let toml =
        format!("{NODE_TOML}\n[execution]\nqueue = 1\nconcurrency = 1\nper_user_running = 10\n");
    let (node, tokens) = Node::start_with_users(Some(&toml), &[("alice", "publish,execute")]);
    let alice = &tokens[0];
    let author = author();
    node.publish(alice, &author, "slow", &slow_yaml());
    let paid = priced_yaml(
        "paid",
        "{ model: paid, amount: 500, currency: USD, licence: per_user }",
        "sleep",
        "[]",
        "  - { id: nap, name: Nap, step_type: command, parameters: { command: sleep, args: [\"0\"] } }\n",
    );
    node.publish(alice, &author, "paid", &paid);

    let reply = node.execute("paid", Some(alice), json!({})).expect(402);
    assert!(reply.detail().contains("licence"), "{}", reply.detail());

    // One run on the only runner, one waiting in the queue of one: the next finds it full.
    let running = node
        .execute("slow", Some(alice), json!({}))
        .expect(202)
        .json();
    let running = running["execution_id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    while node
        .get_with(&format!("/api/v1/executions/{running}"), Some(alice))
        .expect(200)
        .json()["status"]
        == "queued"
    {
        assert!(started.elapsed() < Duration::from_secs(30), "never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let waiting = node
        .execute("slow", Some(alice), json!({}))
        .expect(202)
        .json();
    let reply = node.execute("slow", Some(alice), json!({})).expect(503);
    assert!(reply.detail().contains("queue"), "{}", reply.detail());

    assert_eq!(node.wait_finished(&running, alice)["status"], "succeeded");
    let waiting = waiting["execution_id"].as_str().unwrap();
    assert_eq!(node.wait_finished(waiting, alice)["status"], "succeeded");
    let (ok, out) = node.audit_verify();
    assert!(ok && out.contains("ok: 4 records"), "{out}");
}
