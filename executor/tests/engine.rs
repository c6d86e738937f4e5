//! The engine end to end, on real files, real processes and real local HTTP servers.
//!
//! Processes run through `Direct`, a test double of the `Sandbox` trait that starts the
//! program with `std::process::Command` (the real backends are tested in their own module);
//! everything else is the real engine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mission_executor::engine::{run, RunError, RunOptions};
use mission_executor::policy::UserPolicy;
use mission_executor::report::{Report, RunStatus, StepStatus};
use mission_executor::sandbox::{ProcessOutcome, ProcessSpec, Sandbox, SandboxError};
use mission_executor::steps::LlmConfig;
use mission_index::diagnostic::SourceFormat;
use mission_index::mission::{parse_mission, Mission};
use serde_json::{json, Value};

/// Runs the process directly, in the work folder, with the given environment and a
/// wall-clock kill. Not a sandbox: a stand-in for one in these tests.
struct Direct;

impl Sandbox for Direct {
    fn name(&self) -> &'static str {
        "direct-test-double"
    }

    fn run(&self, spec: &ProcessSpec) -> Result<ProcessOutcome, SandboxError> {
        let started = Instant::now();
        let mut child = Command::new(&spec.program)
            .args(&spec.args)
            .current_dir(&spec.workdir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SandboxError::ProgramNotFound {
                    program: spec.program.clone(),
                },
                _ => SandboxError::Io {
                    program: spec.program.clone(),
                    source: e,
                },
            })?;
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out_thread = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out.read_to_end(&mut b);
            b
        });
        let err_thread = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        });
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() >= spec.limits.wall_time {
                timed_out = true;
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        use std::os::unix::process::ExitStatusExt;
        Ok(ProcessOutcome {
            exit_code: status.code(),
            signal: status.signal(),
            stdout: out_thread.join().unwrap(),
            stderr: err_thread.join().unwrap(),
            output_truncated: false,
            timed_out,
            duration: started.elapsed(),
        })
    }
}

fn mission(yaml: &str) -> Mission {
    parse_mission(yaml, SourceFormat::Yaml, Path::new("test.yaml")).unwrap()
}

fn run_in(
    dir: &Path,
    yaml: &str,
    options: impl FnOnce(&mut RunOptions),
) -> Result<Report, RunError> {
    let mut opts = RunOptions::new(dir);
    options(&mut opts);
    run(&mission(yaml), None, Arc::new(Direct), &opts, &())
}

fn step<'r>(report: &'r Report, id: &str) -> &'r mission_executor::report::StepReport {
    report.steps.iter().find(|s| s.id == id).unwrap()
}

fn statuses(report: &Report) -> Vec<(String, StepStatus)> {
    report
        .steps
        .iter()
        .map(|s| (s.id.clone(), s.status))
        .collect()
}

// ------------------------------------------------------------------------------------
// Order, parallelism, failure handling

#[test]
fn steps_run_in_dependency_order_not_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
version: "1.0"
name: order
config: { max_parallel_steps: 1 }
steps:
  - { id: third, name: t, step_type: command, depends_on: [second], parameters: { command: sh, args: ["-c", "echo third >> log"] } }
  - { id: first, name: f, step_type: command, parameters: { command: sh, args: ["-c", "echo first >> log"] } }
  - { id: second, name: s, step_type: command, depends_on: [first], parameters: { command: sh, args: ["-c", "echo second >> log"] } }
"#;
    let report = run_in(dir.path(), yaml, |_| {}).unwrap();
    assert_eq!(report.status, RunStatus::Success, "{report:#?}");
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(log, "first\nsecond\nthird\n");
    // The report keeps the file's order.
    let ids: Vec<&str> = report.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["third", "first", "second"]);
    assert_eq!(report.sandbox, "direct-test-double");
    assert_eq!(report.execution_id.len(), 32);
}

/// Each step writes its own marker, then waits for the other's. Both can succeed only if
/// they run at the same time; one after the other, the first gives up waiting and fails.
const RENDEZVOUS: &str = r#"
version: "1.0"
name: rendezvous
config: { max_parallel_steps: PARALLEL, timeout_seconds: 20 }
steps:
  - id: a
    name: a
    step_type: command
    parameters: { command: sh, args: ["-c", "touch a.mark; i=0; while [ ! -e b.mark ]; do i=$((i+1)); [ $i -gt 100 ] && exit 7; sleep 0.05; done"] }
  - id: b
    name: b
    step_type: command
    parameters: { command: sh, args: ["-c", "touch b.mark; i=0; while [ ! -e a.mark ]; do i=$((i+1)); [ $i -gt 100 ] && exit 7; sleep 0.05; done"] }
"#;

#[test]
fn independent_steps_overlap_up_to_max_parallel_steps() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_in(dir.path(), &RENDEZVOUS.replace("PARALLEL", "2"), |_| {}).unwrap();
    assert_eq!(report.status, RunStatus::Success, "{report:#?}");

    let dir = tempfile::tempdir().unwrap();
    let report = run_in(dir.path(), &RENDEZVOUS.replace("PARALLEL", "1"), |_| {}).unwrap();
    assert_eq!(step(&report, "a").status, StepStatus::Failed, "{report:#?}");
    assert_eq!(step(&report, "a").exit_code, Some(7));
    // b started after a ended, found a's marker and succeeded.
    assert_eq!(step(&report, "b").status, StepStatus::Success);
    assert_eq!(report.status, RunStatus::Failed);
}

#[test]
fn a_failed_command_skips_its_dependents_but_the_mission_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
version: "1.0"
name: skip
config: { max_parallel_steps: 1 }
steps:
  - { id: broken, name: b, step_type: command, parameters: { command: "false" } }
  - { id: after, name: a, step_type: noop, depends_on: [broken], parameters: {} }
  - { id: after_after, name: aa, step_type: noop, depends_on: [after], parameters: {} }
  - { id: cleanup, name: c, step_type: create_file, depends_on: [broken], continue_on_error: true, parameters: { path: cleaned, content: yes } }
  - { id: unrelated, name: u, step_type: create_file, parameters: { path: other, content: x } }
"#;
    let report = run_in(dir.path(), yaml, |_| {}).unwrap();
    assert_eq!(
        statuses(&report),
        vec![
            ("broken".into(), StepStatus::Failed),
            ("after".into(), StepStatus::Skipped),
            ("after_after".into(), StepStatus::Skipped),
            ("cleanup".into(), StepStatus::Success),
            ("unrelated".into(), StepStatus::Success),
        ]
    );
    assert_eq!(step(&report, "broken").exit_code, Some(1));
    assert_eq!(
        step(&report, "after").error.as_deref(),
        Some("Dependency broken failed")
    );
    assert_eq!(
        step(&report, "after_after").error.as_deref(),
        Some("Dependency after was skipped")
    );
    assert!(dir.path().join("cleaned").exists());
    assert!(dir.path().join("other").exists());
    assert_eq!(report.status, RunStatus::Failed);
}

#[test]
fn fail_fast_stops_the_mission_on_a_step_error_and_only_then() {
    let yaml = r#"
version: "1.0"
name: ff
config: { max_parallel_steps: 1, fail_fast: FAIL_FAST }
steps:
  - { id: missing, name: m, step_type: read_file, parameters: { path: no-such-file } }
  - { id: later, name: l, step_type: create_file, parameters: { path: later, content: x } }
"#;
    let dir = tempfile::tempdir().unwrap();
    let report = run_in(dir.path(), &yaml.replace("FAIL_FAST", "true"), |_| {}).unwrap();
    assert_eq!(step(&report, "missing").status, StepStatus::Failed);
    assert!(step(&report, "missing")
        .error
        .as_deref()
        .unwrap()
        .contains("no-such-file"));
    assert_eq!(step(&report, "later").status, StepStatus::NotRun);
    assert!(
        step(&report, "later")
            .error
            .as_deref()
            .unwrap()
            .contains("fail_fast"),
        "{report:#?}"
    );
    assert!(!dir.path().join("later").exists());

    let dir = tempfile::tempdir().unwrap();
    let report = run_in(dir.path(), &yaml.replace("FAIL_FAST", "false"), |_| {}).unwrap();
    assert_eq!(step(&report, "later").status, StepStatus::Success);
    assert!(dir.path().join("later").exists());
}

#[test]
fn a_step_past_its_timeout_is_killed_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
version: "1.0"
name: slow
config: { fail_fast: false, timeout_seconds: 60 }
steps:
  - { id: slow, name: s, step_type: command, timeout_seconds: 1, parameters: { command: sleep, args: ["30"] } }
  - { id: next, name: n, step_type: noop, parameters: {} }
"#;
    let started = Instant::now();
    let report = run_in(dir.path(), yaml, |_| {}).unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let slow = step(&report, "slow");
    assert_eq!(slow.status, StepStatus::Failed);
    assert_eq!(slow.error.as_deref(), Some("timed out after 1 s"));
    assert_eq!(step(&report, "next").status, StepStatus::Success);
}

#[test]
fn unsupported_step_types_fail_by_name_without_stopping_the_mission() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
version: "1.0"
name: u
steps:
  - { id: q, name: q, step_type: sql_query, parameters: { query: "select 1" } }
  - { id: n, name: n, step_type: noop, parameters: {} }
"#;
    let report = run_in(dir.path(), yaml, |_| {}).unwrap();
    assert_eq!(
        step(&report, "q").error.as_deref(),
        Some("step type `sql_query` is not supported by this executor")
    );
    assert_eq!(step(&report, "n").status, StepStatus::Success);
}

// ------------------------------------------------------------------------------------
// Permissions

#[test]
fn a_mission_needing_more_than_the_policy_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
version: "1.0"
name: greedy
steps:
  - { id: first, name: f, step_type: create_file, parameters: { path: first, content: x } }
  - { id: fetch, name: f, step_type: command, parameters: { command: curl, args: ["https://example.org"] } }
  - { id: call, name: c, step_type: http, parameters: { url: "https://api.example.org/x" } }
"#;
    let err = run_in(dir.path(), yaml, |o| {
        o.policy = UserPolicy {
            commands: Some(vec!["echo".into()]),
            ..UserPolicy::default()
        }
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("program `curl`"), "{text}");
    assert!(text.contains("host `api.example.org`"), "{text}");
    assert!(!dir.path().join("first").exists(), "nothing may run");
}

#[test]
fn a_program_the_up_front_check_cannot_read_is_still_held_to_the_grant() {
    // A program built from a template is invisible to the check before the run (the lint
    // cannot know it), so the engine checks it when the step runs.
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
version: "1.0"
name: sneaky
config: { fail_fast: false }
steps:
  - { id: t, name: t, step_type: tool, parameters: { tool: command, parameters: { command: "${TOOL}", args: [pwned] } } }
  - { id: c, name: c, step_type: command, parameters: { command: "touch pwned" } }
"#;
    let report = run_in(dir.path(), yaml, |_| {}).unwrap();
    let t = step(&report, "t");
    assert_eq!(t.status, StepStatus::Failed);
    assert!(
        t.error
            .as_deref()
            .unwrap()
            .contains("`${TOOL}`, which this run may not start"),
        "{t:?}"
    );
    // `touch pwned` is one program name to RustChain; the message says how to fix it.
    let c = step(&report, "c");
    assert!(
        c.error
            .as_deref()
            .unwrap()
            .contains("put the arguments in `args`"),
        "{c:?}"
    );
    assert!(!dir.path().join("pwned").exists());
}

// ------------------------------------------------------------------------------------
// Files

/// A sandbox that runs processes as the caller (this test double) is not lent the work
/// folder, and the engine's file steps and file tools then act as the caller too: writing
/// into a folder below a private (0700) parent works.
#[test]
fn file_steps_and_tools_act_as_the_caller_when_the_sandbox_does() {
    use std::os::unix::fs::PermissionsExt;
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = private.path().join("work");
    std::fs::create_dir(&dir).unwrap();
    let yaml = r#"
version: "1.0"
name: caller
config: { max_parallel_steps: 1 }
steps:
  - { id: write, name: w, step_type: tool, parameters: { tool: write_file, parameters: { path: t/a.txt, content: tool } } }
  - { id: create, name: c, step_type: create_file, depends_on: [write], parameters: { path: t/b.txt, content: step } }
  - { id: pack, name: p, step_type: compress, depends_on: [create], parameters: { source: t, destination: t.tar } }
"#;
    let report = run_in(&dir, yaml, |_| {}).unwrap();
    assert_eq!(report.status, RunStatus::Success, "{report:#?}");
    assert_eq!(
        std::fs::read_to_string(dir.join("t/a.txt")).unwrap(),
        "tool"
    );
    assert_eq!(step(&report, "pack").output["files"], 2, "{report:#?}");
}

#[test]
fn file_steps_work_inside_the_work_folder() {
    let dir = tempfile::tempdir().unwrap();
    let abs_inside = dir.path().join("abs.txt");
    let yaml = format!(
        r#"
version: "1.0"
name: files
config: {{ max_parallel_steps: 1 }}
steps:
  - {{ id: create, name: c, step_type: create_file, parameters: {{ path: sub/dir/a.txt, content: "hello" }} }}
  - {{ id: append, name: a, step_type: edit_file, depends_on: [create], parameters: {{ path: sub/dir/a.txt, content: " world", append: true }} }}
  - {{ id: copy, name: c, step_type: copy_file, depends_on: [append], parameters: {{ source: sub/dir/a.txt, destination: b.txt }} }}
  - {{ id: move, name: m, step_type: move_file, depends_on: [copy], parameters: {{ source: b.txt, destination: sub/c.txt }} }}
  - {{ id: read, name: r, step_type: read_file, depends_on: [move], parameters: {{ path: ./sub/c.txt }} }}
  - {{ id: list, name: l, step_type: list_directory, depends_on: [move], parameters: {{ path: sub }} }}
  - {{ id: search, name: s, step_type: file_search, depends_on: [move], parameters: {{ path: sub, pattern: ".txt" }} }}
  - {{ id: abs, name: abs, step_type: create_file, parameters: {{ path: "{abs}", content: in }} }}
  - {{ id: overwrite, name: o, step_type: edit_file, depends_on: [abs], parameters: {{ path: abs.txt, content: replaced }} }}
  - {{ id: delete, name: d, step_type: delete_file, depends_on: [read, list, search], parameters: {{ path: sub/c.txt }} }}
  - {{ id: delete_again, name: d2, step_type: delete_file, depends_on: [delete], parameters: {{ path: sub/c.txt }} }}
  - {{ id: pack, name: p, step_type: compress, depends_on: [delete_again], parameters: {{ source: sub, destination: out/sub.tar.gz, format: tar.gz }} }}
  - {{ id: zip, name: z, step_type: compress, depends_on: [delete_again], parameters: {{ source: sub, destination: sub.zip, format: zip }} }}
"#,
        abs = abs_inside.display()
    );
    let report = run_in(dir.path(), &yaml, |_| {}).unwrap();
    assert_eq!(report.status, RunStatus::Success, "{report:#?}");
    assert_eq!(step(&report, "read").output["content"], "hello world");
    assert_eq!(step(&report, "list").output["count"], 2); // dir/ and c.txt
    let names: Vec<&str> = step(&report, "list").output["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c.txt", "dir"]);
    assert_eq!(step(&report, "search").output["matches"], 1);
    assert_eq!(std::fs::read_to_string(&abs_inside).unwrap(), "replaced");
    assert_eq!(step(&report, "delete").output["existed"], true);
    assert_eq!(step(&report, "delete_again").output["existed"], false);
    assert!(!dir.path().join("sub/c.txt").exists());

    // The archive holds sub/dir/a.txt as dir/a.txt.
    let file = std::fs::File::open(dir.path().join("out/sub.tar.gz")).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut found = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if entry.header().entry_type().is_file() {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            found.push((path, text));
        }
    }
    assert_eq!(
        found,
        vec![("dir/a.txt".to_string(), "hello world".to_string())]
    );
    assert_eq!(step(&report, "zip").output["files"], 1);
}

#[test]
fn create_file_substitutes_parameters_like_rustchain_variables() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
version: "1.0"
name: subst
steps:
  - { id: w, name: w, step_type: create_file, parameters: { path: out.txt, content: "Hi {who}, {unknown} stays" } }
"#;
    let report = run_in(dir.path(), yaml, |o| {
        o.params = vec![("who".into(), "Ada".into())]
    })
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "Hi Ada, {unknown} stays"
    );
    assert_eq!(step(&report, "w").output["variables_substituted"], true);
}

#[test]
fn file_steps_cannot_leave_the_work_folder() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "top secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        dir.path().join("secret_link"),
    )
    .unwrap();
    let outside_abs = outside.path().join("secret");
    let attempts = [
        (
            "read_file",
            json!({"path": "../secret"}),
            "`..` is not allowed",
        ),
        (
            "read_file",
            json!({"path": outside_abs}),
            "outside the work folder",
        ),
        (
            "read_file",
            json!({"path": "/etc/passwd"}),
            "outside the work folder",
        ),
        (
            "read_file",
            json!({"path": "escape/secret"}),
            "escape/secret",
        ),
        ("read_file", json!({"path": "secret_link"}), "secret_link"),
        (
            "create_file",
            json!({"path": "escape/new", "content": "x"}),
            "escape/new",
        ),
        (
            "edit_file",
            json!({"path": "secret_link", "content": "x"}),
            "secret_link",
        ),
        (
            "copy_file",
            json!({"source": "secret_link", "destination": "copy"}),
            "secret_link",
        ),
        (
            "copy_file",
            json!({"source": "../../etc/passwd", "destination": "copy"}),
            "`..`",
        ),
        (
            "move_file",
            json!({"source": "escape/secret", "destination": "stolen"}),
            "escape/secret",
        ),
        (
            "delete_file",
            json!({"path": "escape/secret"}),
            "escape/secret",
        ),
        ("list_directory", json!({"path": "escape"}), "escape"),
        (
            "compress",
            json!({"source": "escape", "destination": "x.tar"}),
            "escape",
        ),
        (
            "command",
            json!({"command": "true", "working_dir": "escape"}),
            "escape",
        ),
    ];
    for (step_type, params, expected) in attempts {
        let yaml = format!(
            "version: '1.0'\nname: esc\nsteps:\n  - id: s\n    name: s\n    step_type: {step_type}\n    parameters: {params}\n"
        );
        let report = run_in(dir.path(), &yaml, |_| {}).unwrap();
        let s = step(&report, "s");
        assert_eq!(s.status, StepStatus::Failed, "{step_type} {params}: {s:?}");
        let error = s.error.as_deref().unwrap();
        assert!(error.contains(expected), "{step_type} {params}: {error}");
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "top secret"
    );
    let left: Vec<_> = std::fs::read_dir(outside.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing was created or moved outside");
    assert!(!dir.path().join("copy").exists());
    assert!(!dir.path().join("stolen").exists());
}

#[test]
fn data_steps_run_in_a_mission_and_schema_violations_fail() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
version: "1.0"
name: data
config: { fail_fast: false }
steps:
  - id: good
    name: g
    step_type: validate_schema
    parameters:
      data: '{"name": "Ada"}'
      schema: { type: object, required: [name] }
  - id: bad
    name: b
    step_type: validate_schema
    parameters:
      data: '{"age": 3}'
      schema: { type: object, required: [name] }
  - { id: csv, name: c, step_type: csv_process, parameters: { content: "a,b\n1,2\n" } }
  - { id: loader, name: l, step_type: tool, depends_on: [csv], parameters: { tool: json_yaml_loader, parameters: { file_path: data.yaml } } }
"#;
    std::fs::write(dir.path().join("data.yaml"), "k: [1, 2]\n").unwrap();
    let report = run_in(dir.path(), yaml, |_| {}).unwrap();
    assert_eq!(step(&report, "good").status, StepStatus::Success);
    let bad = step(&report, "bad");
    assert_eq!(bad.status, StepStatus::Failed);
    assert!(
        bad.error
            .as_deref()
            .unwrap()
            .contains("\"name\" is a required property"),
        "{bad:?}"
    );
    assert_eq!(step(&report, "csv").output["records"], json!([["1", "2"]]));
    assert_eq!(step(&report, "loader").output["data"], json!({"k": [1, 2]}));
}

// ------------------------------------------------------------------------------------
// HTTP and LLM against local servers

/// A one-thread HTTP server on 127.0.0.1 that answers each request with `reply(request)`
/// and sends the request text to the returned channel.
fn serve(
    requests: usize,
    reply: impl Fn(&str) -> (u16, String) + Send + 'static,
) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                head.push_str(&line);
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let request = format!("{head}{}", String::from_utf8_lossy(&body));
            let (status, body) = reply(&request);
            let _ = tx.send(request);
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    (port, rx)
}

#[test]
fn http_reaches_an_allowed_loopback_host_only_when_the_policy_allows_private_addresses() {
    let (port, requests) = serve(1, |_| (200, r#"{"ok": true}"#.into()));
    let yaml = format!(
        r#"
version: "1.0"
name: http
steps:
  - id: call
    name: c
    step_type: http
    parameters: {{ url: "http://127.0.0.1:{port}/status", method: POST, body: {{ n: 1 }}, headers: {{ X-Test: yes }} }}
"#
    );
    let dir = tempfile::tempdir().unwrap();

    // No --allow-net: refused before running.
    let err = run_in(dir.path(), &yaml, |_| {}).unwrap_err();
    assert!(err.to_string().contains("host `127.0.0.1`"), "{err}");

    // Allowed host, but a loopback address without the private-address permission.
    let report = run_in(dir.path(), &yaml, |o| {
        o.policy.hosts = vec!["127.0.0.1".into()]
    })
    .unwrap();
    let call = step(&report, "call");
    assert_eq!(call.status, StepStatus::Failed);
    assert!(
        call.error
            .as_deref()
            .unwrap()
            .contains("loopback or private"),
        "{call:?}"
    );
    assert!(
        requests.try_recv().is_err(),
        "no request may reach the server"
    );

    // Allowed, private allowed: the request goes through.
    let report = run_in(dir.path(), &yaml, |o| {
        o.policy.hosts = vec!["127.0.0.1".into()];
        o.policy.private_hosts = vec!["127.0.0.1".into()];
    })
    .unwrap();
    let call = step(&report, "call");
    assert_eq!(call.status, StepStatus::Success, "{call:?}");
    assert_eq!(call.output["status"], 200);
    assert_eq!(call.output["response"], json!({"ok": true}));
    let request = requests.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(request.starts_with("POST /status"), "{request}");
    assert!(
        request.to_ascii_lowercase().contains("x-test: yes"),
        "{request}"
    );
    assert!(request.ends_with(r#"{"n":1}"#), "{request}");
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_too() {
    let (port, requests) = serve(1, |_| (200, "{}".into()));
    let yaml = format!(
        "version: '1.0'\nname: h\nsteps:\n  - {{ id: call, name: c, step_type: http, parameters: {{ url: 'http://localhost:{port}/' }} }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let report = run_in(dir.path(), &yaml, |o| {
        o.policy.hosts = vec!["localhost".into()]
    })
    .unwrap();
    let call = step(&report, "call");
    assert!(
        call.error.as_deref().unwrap().contains("resolves to"),
        "{call:?}"
    );
    assert!(requests.try_recv().is_err());
}

#[test]
fn an_http_error_status_fails_the_step_but_not_the_mission() {
    let (port, _requests) = serve(1, |_| (404, r#"{"error": "nope"}"#.into()));
    let yaml = format!(
        "version: '1.0'\nname: h\nsteps:\n  - {{ id: call, name: c, step_type: http, parameters: {{ url: 'http://127.0.0.1:{port}/missing' }} }}\n  - {{ id: next, name: n, step_type: noop, parameters: {{}} }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let report = run_in(dir.path(), &yaml, |o| {
        o.policy.hosts = vec!["127.0.0.1".into()];
        o.policy.private_hosts = vec!["127.0.0.1".into()];
    })
    .unwrap();
    let call = step(&report, "call");
    assert_eq!(call.status, StepStatus::Failed);
    assert_eq!(call.output["status"], 404);
    assert_eq!(step(&report, "next").status, StepStatus::Success);
}

#[test]
fn llm_calls_the_configured_chat_completions_endpoint_and_feeds_substitution() {
    let (port, requests) = serve(1, |_| {
        (
            200,
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "tiny-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Forty-two"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
            })
            .to_string(),
        )
    });
    let yaml = r#"
version: "1.0"
name: ask
steps:
  - { id: ask, name: a, step_type: llm, parameters: { prompt: "What is six times seven?", model: gpt-4, temperature: 0.2, max_tokens: 10 } }
  - { id: save, name: s, step_type: create_file, depends_on: [ask], parameters: { path: answer.txt, content: "Answer: {ask} / {ask_response} / {previous_result}" } }
"#;
    let dir = tempfile::tempdir().unwrap();
    let report = run_in(dir.path(), yaml, |o| {
        o.llm = Some(LlmConfig::new(
            &format!("http://127.0.0.1:{port}/v1"),
            "tiny-model",
            Some("sk-test".into()),
        ))
    })
    .unwrap();
    assert_eq!(report.status, RunStatus::Success, "{report:#?}");
    let ask = step(&report, "ask");
    assert_eq!(ask.output["content"], "Forty-two");
    assert_eq!(ask.output["usage"]["total_tokens"], 7);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("answer.txt")).unwrap(),
        "Answer: Forty-two / Forty-two / Forty-two"
    );
    let request = requests.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        request.starts_with("POST /v1/chat/completions"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer sk-test"),
        "{request}"
    );
    let body: Value =
        serde_json::from_str(&request[request.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["model"], "tiny-model", "the configured model wins");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "What is six times seven?"}])
    );
    assert_eq!(body["max_tokens"], 10);
}

#[test]
fn llm_without_an_endpoint_fails_clearly_and_a_broken_answer_is_an_error() {
    let yaml = "version: '1.0'\nname: ask\nsteps:\n  - { id: ask, name: a, step_type: llm, parameters: { prompt: hi } }\n";
    let dir = tempfile::tempdir().unwrap();
    let report = run_in(dir.path(), yaml, |_| {}).unwrap();
    let ask = step(&report, "ask");
    assert_eq!(ask.status, StepStatus::Failed);
    assert!(
        ask.error.as_deref().unwrap().contains("MISSION_LLM_URL"),
        "{ask:?}"
    );

    let (port, _r) = serve(1, |_| (200, r#"{"not": "a completion"}"#.into()));
    let report = run_in(dir.path(), yaml, |o| {
        o.llm = Some(LlmConfig::new(
            &format!("http://127.0.0.1:{port}"),
            "m",
            None,
        ))
    })
    .unwrap();
    let ask = step(&report, "ask");
    assert!(
        ask.error
            .as_deref()
            .unwrap()
            .contains("did not answer with a chat completion"),
        "{ask:?}"
    );
}

#[test]
fn package_parameters_are_checked_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
version: "1.0"
name: p
steps:
  - { id: w, name: w, step_type: create_file, parameters: { path: out, content: "{crate_path} {level}" } }
package:
  name: p
  version: 1.0.0
  description: d
  license: MIT
  parameters:
    - { name: crate_path, type: path, required: true }
    - { name: level, type: integer, default: 3 }
"#;
    let source =
        mission_index::package::check_mission_text(Path::new("mission.yaml"), yaml).unwrap();
    let manifest = source.manifest.clone().unwrap();
    let go = |params: Vec<(&str, &str)>| {
        let mut o = RunOptions::new(dir.path());
        o.params = params
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        run(&source.mission, Some(&manifest), Arc::new(Direct), &o, &())
    };
    let err = go(vec![]).unwrap_err();
    assert!(err.to_string().contains("crate_path"), "{err}");
    let err = go(vec![("crate_path", "x"), ("level", "high")]).unwrap_err();
    assert!(
        err.to_string().contains("not a integer") || err.to_string().contains("is not a"),
        "{err}"
    );
    let err = go(vec![("crate_path", "x"), ("colour", "red")]).unwrap_err();
    assert!(err.to_string().contains("crate_path, level"), "{err}");
    let report = go(vec![("crate_path", "src")]).unwrap();
    assert_eq!(report.mission, "p");
    assert_eq!(report.version, "1.0.0");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "src 3"
    );
}

#[test]
fn git_steps_run_git_in_the_work_folder() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
version: "1.0"
name: git
config: { max_parallel_steps: 1 }
steps:
  - { id: init, name: i, step_type: command, parameters: { command: git, args: [init, -q, -b, main] } }
  - { id: email, name: e, step_type: command, depends_on: [init], parameters: { command: git, args: [config, user.email, "a@example.org"] } }
  - { id: user, name: u, step_type: command, depends_on: [email], parameters: { command: git, args: [config, user.name, "A"] } }
  - { id: write, name: w, step_type: create_file, depends_on: [user], parameters: { path: a.txt, content: one } }
  - { id: status, name: s, step_type: git_status, depends_on: [write], parameters: {} }
  - { id: commit, name: c, step_type: git_commit, depends_on: [status], parameters: { message: first } }
  - { id: branch, name: b, step_type: git_branch, depends_on: [commit], parameters: { branch: feature } }
  - { id: change, name: ch, step_type: edit_file, depends_on: [branch], parameters: { path: a.txt, content: two } }
  - { id: diff, name: d, step_type: git_diff, depends_on: [change], parameters: {} }
  - { id: bad_branch, name: bb, step_type: git_branch, depends_on: [diff], continue_on_error: true, parameters: { branch: "--orphan" } }
"#;
    let report = run_in(dir.path(), yaml, |o| {
        o.policy.max_duration_seconds = Some(120)
    })
    .unwrap();
    assert_eq!(
        step(&report, "status").output["clean"],
        false,
        "{report:#?}"
    );
    assert_eq!(
        step(&report, "commit").status,
        StepStatus::Success,
        "{report:#?}"
    );
    assert_eq!(step(&report, "branch").output["created"], true);
    assert!(step(&report, "diff").output["diff"]
        .as_str()
        .unwrap()
        .contains("+two"));
    let bad = step(&report, "bad_branch");
    assert!(
        bad.error.as_deref().unwrap().contains("reads as an option"),
        "{bad:?}"
    );
    let head = std::fs::read_to_string(dir.path().join(".git/HEAD")).unwrap();
    assert_eq!(head.trim(), "ref: refs/heads/feature");
}

#[test]
fn service_health_needs_localhost_allowed_and_reports_health() {
    let (port, _requests) = serve(1, |_| (200, "{}".into()));
    let yaml = format!(
        "version: '1.0'\nname: h\nsteps:\n  - {{ id: up, name: u, step_type: service_health, parameters: {{ service: api, port: {port} }} }}\n  - {{ id: down, name: d, step_type: service_health, parameters: {{ service: none, port: 1 }} }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = run_in(dir.path(), &yaml, |_| {}).unwrap_err();
    assert!(err.to_string().contains("host `localhost`"), "{err}");
    let report = run_in(dir.path(), &yaml, |o| {
        o.policy.hosts = vec!["localhost".into()];
        o.policy.private_hosts = vec!["localhost".into()];
    })
    .unwrap();
    assert_eq!(step(&report, "up").output["healthy"], true, "{report:#?}");
    assert_eq!(step(&report, "down").output["healthy"], false);
    assert_eq!(
        step(&report, "down").status,
        StepStatus::Success,
        "RustChain reports, not fails"
    );
}
