//! Permission lint: do the `package.permissions` a mission declares cover what its steps do?
//!
//! The executor grants a mission exactly what its manifest declares (ARCHITECTURE sections 2
//! and 9): the programs in `permissions.commands`, the hosts in `permissions.network`, LLM
//! calls when `permissions.llm` is true, and `max_duration_seconds` of wall-clock time. A
//! mission that needs more fails at run time, in the sandbox, often far into the run. This
//! lint finds those failures before publishing by reading each step's parameters the way
//! RustChain v0.1.0 runs them:
//!
//! | step type | needs |
//! |---|---|
//! | `command`, `process_start`, `tool` with `tool: command` | the program in `command` |
//! | `compile_code`, `run_tests`, `format_code`, `lint_code` | the toolchain for `language` (default `rust`): `cargo`; `go`/`gofmt`/`golint`; `npm`/`npx` |
//! | `git_commit`, `git_branch`, `git_merge`, `git_status`, `git_diff` | `git` |
//! | `process_kill` | `kill` |
//! | `ping_host` | `ping` and the network to `host` |
//! | `http`, `websocket_connect`, `tool` with `tool: http` | the network to the host of `url` |
//! | `ftp_upload`, `ftp_download`, `ssh_execute` | the network to `host` |
//! | `redis_set`, `redis_get` | the network to the host of `redis_url` (default `127.0.0.1`) |
//! | `sql_query` | the network to the host of `database_url`, unless it is SQLite (the default) |
//! | `service_health` | the network to `localhost` (it connects to `localhost:port`) |
//! | `llm`, `model_inference`, `generate_embedding`, `rag_query`, `rag_add`, `agent`, `chain` with a `prompt` | `llm: true` |
//! | `chain` with nested `steps` | what each nested step needs |
//!
//! How a program is read: the first word of `command`, so `command: "chmod +x run.py"`
//! starts `chmod`. When that program is a shell (`bash`, `sh`, `zsh`, `cmd`, `pwsh`, ...)
//! the program *is* the shell: declaring it lets the step start anything its script starts,
//! which the lint cannot see, so it says so (an [`FindingKind::Unverifiable`] note) even when
//! the shell is declared. A program given by path (`./run.sh`) cannot be declared at all,
//! since `permissions.commands` holds bare names.
//!
//! What the lint cannot know it reports rather than passes: a program, URL or host built
//! from a template (`{var}`, `${var}`, `{{ var }}`), a `tool` RustChain does not provide, a
//! toolchain language it does not know, or a step missing the parameter that says what it
//! starts.
//!
//! [`required_permissions`] runs the same reading the other way round and computes the
//! smallest `permissions` block that covers a mission, for `mission new` and for the hint
//! after a failed lint.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::manifest::{url_scheme_and_host, Network, Permissions};
use crate::mission::{Mission, StepType};

/// One way a mission's steps may exceed its declared permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintFinding {
    /// Index of the top-level step in `steps` (for a nested `chain` step, the chain's).
    pub step_index: usize,
    /// The `id` of that step.
    pub step_id: String,
    /// Where in the mission, e.g. `steps[2].parameters.command`.
    pub field: String,
    pub kind: FindingKind,
    /// What the step needs and what to declare.
    pub message: String,
}

/// How sure the lint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    /// The step needs something the permissions do not grant: it will fail in the sandbox.
    Undeclared,
    /// The lint cannot tell what the step needs (a template, an unknown tool, a shell
    /// script); someone has to check by hand.
    Unverifiable,
}

impl fmt::Display for LintFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            FindingKind::Undeclared => "undeclared",
            FindingKind::Unverifiable => "unverifiable",
        };
        write!(
            f,
            "{} (step `{}`): {kind}: {}",
            self.field, self.step_id, self.message
        )
    }
}

/// Checks that `permissions` cover every program, host and LLM call of `mission`'s steps,
/// and that no step's timeout is longer than `max_duration_seconds`. Findings are in step
/// order; an empty list means the lint found nothing to object to.
pub fn lint_permissions(mission: &Mission, permissions: &Permissions) -> Vec<LintFinding> {
    let mut findings = Vec::new();
    for (index, step) in mission.steps.iter().enumerate() {
        let base = format!("steps[{index}]");
        let finding = |field: String, kind: FindingKind, message: String| LintFinding {
            step_index: index,
            step_id: step.id.clone(),
            field,
            kind,
            message,
        };
        let mut needs = Vec::new();
        step_needs(step.step_type, &step.parameters, &base, &mut needs);
        for need in needs {
            if let Some((kind, message)) = check_need(&need, permissions) {
                findings.push(finding(need.field().to_owned(), kind, message));
            }
        }
        if let Some(timeout) = step.timeout_seconds {
            if timeout > permissions.max_duration_seconds {
                findings.push(finding(
                    format!("{base}.timeout_seconds"),
                    FindingKind::Undeclared,
                    format!(
                        "the step may run for {timeout} s, longer than permissions.max_duration_seconds ({} s); the executor stops the mission first",
                        permissions.max_duration_seconds
                    ),
                ));
            }
        }
    }
    findings
}

/// The smallest permissions that cover `mission`: every program its steps start (sorted),
/// `network: false`, the literal hosts they reach, or `true` when a host comes from a
/// template; `llm` when any step calls a model; `max_duration_seconds` the default (600) or
/// the longest step timeout if that is longer (capped at one day). Programs given by path
/// and unknowable needs are left out: [`lint_permissions`] reports them.
pub fn required_permissions(mission: &Mission) -> Permissions {
    let mut needs = Vec::new();
    for (index, step) in mission.steps.iter().enumerate() {
        step_needs(
            step.step_type,
            &step.parameters,
            &format!("steps[{index}]"),
            &mut needs,
        );
    }
    let mut commands = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    let mut any_host = false;
    let mut llm = false;
    for need in needs {
        match need {
            Need::Program { program, .. } => {
                commands.insert(program);
            }
            Need::Network {
                host: Some(host), ..
            } => {
                hosts.insert(host);
            }
            Need::Network { host: None, .. } => any_host = true,
            Need::Llm { .. } => llm = true,
            Need::ProgramByPath { .. } | Need::Unknown { .. } => {}
        }
    }
    let network = if any_host {
        Network::Allowed(true)
    } else if hosts.is_empty() {
        Network::Allowed(false)
    } else {
        Network::Hosts(hosts.into_iter().collect())
    };
    let longest_step = mission
        .steps
        .iter()
        .filter_map(|s| s.timeout_seconds)
        .max()
        .unwrap_or(0);
    let defaults = Permissions::default();
    Permissions {
        network,
        commands: commands.into_iter().collect(),
        llm,
        max_duration_seconds: longest_step.clamp(
            defaults.max_duration_seconds,
            crate::manifest::MAX_DURATION_SECONDS,
        ),
    }
}

/// One thing a step needs, with the field that says so.
#[derive(Debug)]
enum Need {
    /// A bare program name; `shell` when it is a shell (its script starts unseen programs).
    Program {
        program: String,
        field: String,
        shell: bool,
    },
    /// A program given by path, which `permissions.commands` cannot list.
    ProgramByPath {
        program: String,
        field: String,
    },
    /// The network; `host` is `None` when it comes from a template (`what` is the text).
    Network {
        host: Option<String>,
        what: String,
        field: String,
    },
    Llm {
        field: String,
        step_type: String,
    },
    /// The lint cannot tell; `message` says why.
    Unknown {
        field: String,
        message: String,
    },
}

impl Need {
    fn field(&self) -> &str {
        match self {
            Need::Program { field, .. }
            | Need::ProgramByPath { field, .. }
            | Need::Network { field, .. }
            | Need::Llm { field, .. }
            | Need::Unknown { field, .. } => field,
        }
    }
}

/// Compares one need with the permissions: `None` when covered.
fn check_need(need: &Need, permissions: &Permissions) -> Option<(FindingKind, String)> {
    use FindingKind::{Undeclared, Unverifiable};
    let declared = |program: &str| permissions.commands.iter().any(|c| c == program);
    match need {
        Need::Program {
            program,
            shell: false,
            ..
        } => (!declared(program)).then(|| {
            (
                Undeclared,
                format!("starts `{program}`, which permissions.commands does not list; add `{program}`"),
            )
        }),
        Need::Program {
            program,
            shell: true,
            ..
        } => Some(if declared(program) {
            (
                Unverifiable,
                format!("runs a script through the shell `{program}`; the lint cannot see which programs the script starts, and declaring `{program}` lets this step start any of them"),
            )
        } else {
            (
                Undeclared,
                format!("runs a script through the shell `{program}`, which permissions.commands does not list; add `{program}` (which lets the script start any program) or start the programs directly"),
            )
        }),
        Need::ProgramByPath { program, .. } => Some((
            Undeclared,
            format!("starts `{program}` by its path, but permissions.commands holds bare program names only; start it through a declared interpreter (e.g. `command: bash`, `args: [{}]`) or use a program on PATH", program.trim_start_matches("./")),
        )),
        Need::Network {
            host: Some(host), ..
        } => {
            if permissions.network.allows_host(host) {
                None
            } else if permissions.network.any() {
                Some((
                    Undeclared,
                    format!("reaches `{host}`, which permissions.network does not list; add `{host}`"),
                ))
            } else {
                Some((
                    Undeclared,
                    format!("reaches `{host}`, but permissions.network is false; declare `network: [{host}]`"),
                ))
            }
        }
        Need::Network {
            host: None, what, ..
        } => match &permissions.network {
            Network::Allowed(true) => None,
            n if n.any() => Some((
                Unverifiable,
                format!("reaches a host built from a template (`{what}`), so the lint cannot check it against permissions.network"),
            )),
            _ => Some((
                Undeclared,
                format!("reaches the network (`{what}`, built from a template), but permissions.network is false; declare the hosts it may reach"),
            )),
        },
        Need::Llm { step_type, .. } => (!permissions.llm).then(|| {
            (
                Undeclared,
                format!("calls an LLM (a `{step_type}` step), but permissions.llm is false; declare `llm: true`"),
            )
        }),
        Need::Unknown { message, .. } => Some((Unverifiable, message.clone())),
    }
}

/// Shells: a step that starts one can start anything its script names.
const SHELLS: &[&str] = &[
    "sh",
    "bash",
    "zsh",
    "dash",
    "ksh",
    "ash",
    "fish",
    "csh",
    "tcsh",
    "cmd",
    "cmd.exe",
    "powershell",
    "powershell.exe",
    "pwsh",
];

/// The tools RustChain v0.1.0's tool manager provides.
const RUSTCHAIN_TOOLS: &[&str] = &[
    "command",
    "http",
    "create_file",
    "csv_loader",
    "json_yaml_loader",
    "html_loader",
];

/// Whether `text` is (partly) filled in at run time: `{var}`, `${var}`, `{{ var }}`, `$VAR`.
fn is_template(text: &str) -> bool {
    text.contains('{') || text.contains('$')
}

fn str_param<'a>(params: &'a Value, key: &str) -> Option<&'a str> {
    params.get(key).and_then(Value::as_str)
}

/// Appends what one step (or nested chain step) needs. `base` is its path (`steps[2]`).
fn step_needs(step_type: StepType, params: &Value, base: &str, out: &mut Vec<Need>) {
    use StepType as T;
    let p = format!("{base}.parameters");
    let type_field = format!("{base}.step_type");
    match step_type {
        T::Command | T::ProcessStart => command_needs(params, &p, out),
        T::CompileCode | T::RunTests | T::FormatCode | T::LintCode => {
            toolchain_needs(step_type, params, &p, &type_field, out)
        }
        T::GitCommit | T::GitBranch | T::GitMerge | T::GitStatus | T::GitDiff => {
            out.push(Need::Program {
                program: "git".into(),
                field: type_field,
                shell: false,
            })
        }
        T::ProcessKill => out.push(Need::Program {
            program: "kill".into(),
            field: type_field,
            shell: false,
        }),
        T::PingHost => {
            out.push(Need::Program {
                program: "ping".into(),
                field: type_field,
                shell: false,
            });
            host_needs(params, "host", &p, out);
        }
        T::Http | T::WebsocketConnect => url_needs(params, "url", None, &p, out),
        T::FtpUpload | T::FtpDownload | T::SshExecute => host_needs(params, "host", &p, out),
        T::RedisSet | T::RedisGet => {
            url_needs(params, "redis_url", Some("redis://127.0.0.1:6379"), &p, out)
        }
        T::SqlQuery => {
            let url = str_param(params, "database_url").unwrap_or("sqlite://memory:");
            if !url.starts_with("sqlite:") {
                url_needs(params, "database_url", None, &p, out);
            }
        }
        T::ServiceHealth => out.push(Need::Network {
            host: Some("localhost".into()),
            what: "localhost".into(),
            field: type_field,
        }),
        T::Llm | T::ModelInference | T::GenerateEmbedding | T::RagQuery | T::RagAdd | T::Agent => {
            out.push(Need::Llm {
                field: type_field,
                step_type: step_type.as_str().into(),
            })
        }
        T::Chain => chain_needs(params, &p, type_field, out),
        T::Tool => tool_needs(params, &p, out),
        T::Noop
        | T::CreateFile
        | T::EditFile
        | T::DeleteFile
        | T::CopyFile
        | T::MoveFile
        | T::ReadFile
        | T::ListDirectory
        | T::FileSearch
        | T::ParseJson
        | T::ParseYaml
        | T::ParseXml
        | T::CsvProcess
        | T::ValidateSchema
        | T::ExtractFunctions
        | T::GenerateDocs
        | T::MonitorResources
        | T::Compress
        | T::DbBackup
        | T::DbMigrate
        | T::SimilaritySearch => {}
    }
}

/// `command` (+ `args`): a program started directly, or a command line whose first word is.
fn command_needs(params: &Value, p: &str, out: &mut Vec<Need>) {
    let field = format!("{p}.command");
    let Some(command) = str_param(params, "command") else {
        out.push(Need::Unknown {
            field,
            message: "has no `command` string, so the lint cannot tell which program it starts"
                .into(),
        });
        return;
    };
    let Some(program) = command.split_whitespace().next() else {
        out.push(Need::Unknown {
            field,
            message: "has an empty `command`".into(),
        });
        return;
    };
    if is_template(program) {
        out.push(Need::Unknown {
            field,
            message: format!("starts a program built from a template (`{program}`), so the lint cannot tell which; check permissions.commands by hand"),
        });
    } else if program.contains('/') || program.contains('\\') {
        out.push(Need::ProgramByPath {
            program: program.into(),
            field,
        });
    } else {
        out.push(Need::Program {
            program: program.into(),
            field,
            shell: SHELLS.contains(&program),
        });
    }
}

/// The program RustChain starts for a toolchain step, by `language` (default `rust`).
fn toolchain_needs(
    step_type: StepType,
    params: &Value,
    p: &str,
    type_field: &str,
    out: &mut Vec<Need>,
) {
    let (language, field) = match params.get("language") {
        Some(Value::String(l)) => (l.as_str(), format!("{p}.language")),
        Some(_) => {
            out.push(Need::Unknown {
                field: format!("{p}.language"),
                message: "has a `language` that is not a string".into(),
            });
            return;
        }
        None => ("rust", type_field.to_owned()),
    };
    let program = match (language, step_type) {
        ("rust", _) => "cargo",
        ("go", StepType::FormatCode) => "gofmt",
        ("go", StepType::LintCode) => "golint",
        ("go", _) => "go",
        ("node", StepType::FormatCode | StepType::LintCode) => "npx",
        ("node", _) => "npm",
        _ => {
            let message = if is_template(language) {
                format!("picks its toolchain from a template (`{language}`), so the lint cannot tell which program it starts")
            } else {
                format!("has the language `{language}`, which RustChain does not support (rust, go, node); the step fails")
            };
            out.push(Need::Unknown { field, message });
            return;
        }
    };
    out.push(Need::Program {
        program: program.into(),
        field,
        shell: false,
    });
}

/// The host of the URL in `key` (or `default` when absent).
fn url_needs(params: &Value, key: &str, default: Option<&str>, p: &str, out: &mut Vec<Need>) {
    let field = format!("{p}.{key}");
    let Some(url) = str_param(params, key).or(default) else {
        out.push(Need::Unknown {
            field,
            message: format!(
                "has no `{key}` string, so the lint cannot tell which host it reaches"
            ),
        });
        return;
    };
    match url_scheme_and_host(url) {
        Ok((_, host)) if !is_template(&host) => out.push(Need::Network {
            host: Some(host),
            what: url.into(),
            field,
        }),
        _ if is_template(url) => out.push(Need::Network {
            host: None,
            what: url.into(),
            field,
        }),
        Ok(_) => unreachable_host(url, "the host is a template", field, out),
        Err(reason) => unreachable_host(url, &reason, field, out),
    }
}

fn unreachable_host(url: &str, reason: &str, field: String, out: &mut Vec<Need>) {
    out.push(Need::Unknown {
        field,
        message: format!("reaches `{url}`, whose host the lint cannot read ({reason})"),
    });
}

/// A bare host name in `key` (`user@` is dropped).
fn host_needs(params: &Value, key: &str, p: &str, out: &mut Vec<Need>) {
    let field = format!("{p}.{key}");
    let Some(host) = str_param(params, key) else {
        out.push(Need::Unknown {
            field,
            message: format!(
                "has no `{key}` string, so the lint cannot tell which host it reaches"
            ),
        });
        return;
    };
    let bare = host.rsplit_once('@').map_or(host, |(_, h)| h);
    out.push(Need::Network {
        host: (!is_template(bare)).then(|| bare.to_ascii_lowercase()),
        what: host.into(),
        field,
    });
}

/// A `chain` with nested `steps` needs what they need; a legacy chain with a `prompt` runs
/// an LLM.
fn chain_needs(params: &Value, p: &str, type_field: String, out: &mut Vec<Need>) {
    let Some(steps) = params.get("steps") else {
        out.push(Need::Llm {
            field: type_field,
            step_type: "chain".into(),
        });
        return;
    };
    let Some(steps) = steps.as_array() else {
        out.push(Need::Unknown {
            field: format!("{p}.steps"),
            message: "has `steps` that are not a list".into(),
        });
        return;
    };
    for (j, sub) in steps.iter().enumerate() {
        let base = format!("{p}.steps[{j}]");
        let step_type = match sub.get("step_type") {
            Some(Value::String(name)) => StepType::from_name(name),
            Some(Value::Object(o)) => o
                .get("type")
                .and_then(Value::as_str)
                .and_then(StepType::from_name),
            _ => None,
        };
        match step_type {
            Some(t) => step_needs(t, sub.get("parameters").unwrap_or(&Value::Null), &base, out),
            None => out.push(Need::Unknown {
                field: format!("{base}.step_type"),
                message: "is a nested step without a known step type, so the lint cannot tell what it needs".into(),
            }),
        }
    }
}

/// A `tool` step: RustChain reads the tool name from `tool` and its input from `parameters`.
fn tool_needs(params: &Value, p: &str, out: &mut Vec<Need>) {
    let Some(tool) = str_param(params, "tool") else {
        let message = if params.get("tool_name").is_some() {
            "names its tool with `tool_name`, which RustChain does not read (it reads `tool`), so the lint cannot tell what it needs".to_owned()
        } else {
            "has no `tool` string, so the lint cannot tell what it needs".to_owned()
        };
        out.push(Need::Unknown {
            field: format!("{p}.tool"),
            message,
        });
        return;
    };
    let inner = params.get("parameters").unwrap_or(&Value::Null);
    let inner_path = format!("{p}.parameters");
    match tool {
        "command" => command_needs(inner, &inner_path, out),
        "http" => url_needs(inner, "url", None, &inner_path, out),
        t if RUSTCHAIN_TOOLS.contains(&t) => {}
        t => out.push(Need::Unknown {
            field: format!("{p}.tool"),
            message: format!(
                "uses the tool `{t}`, which RustChain does not provide ({}), so the lint cannot tell what it needs",
                RUSTCHAIN_TOOLS.join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mission::Step;

    fn step(id: &str, step_type: StepType, parameters: Value) -> Step {
        Step {
            id: id.into(),
            name: id.into(),
            step_type,
            depends_on: None,
            timeout_seconds: None,
            continue_on_error: None,
            parameters,
        }
    }

    fn mission(steps: Vec<Step>) -> Mission {
        Mission {
            version: "1.0".into(),
            name: "lint test".into(),
            description: None,
            steps,
            config: None,
        }
    }

    fn perms(commands: &[&str], network: Network, llm: bool) -> Permissions {
        Permissions {
            network,
            commands: commands.iter().map(|c| c.to_string()).collect(),
            llm,
            max_duration_seconds: 600,
        }
    }

    fn none() -> Permissions {
        perms(&[], Network::Allowed(false), false)
    }

    /// `(field, kind)` of each finding, to compare in one assertion.
    fn summary(findings: &[LintFinding]) -> Vec<(String, FindingKind)> {
        findings.iter().map(|f| (f.field.clone(), f.kind)).collect()
    }

    fn undeclared(field: &str) -> (String, FindingKind) {
        (field.to_owned(), FindingKind::Undeclared)
    }

    fn unverifiable(field: &str) -> (String, FindingKind) {
        (field.to_owned(), FindingKind::Unverifiable)
    }

    /// Shapes from `hello_world_fixed.yaml`, `build_ai_tool.yaml` and
    /// `coverage_mission_01_memory_v3.yaml`.
    fn command_mission() -> Mission {
        mission(vec![
            step(
                "hello",
                StepType::Command,
                json!({"command": "echo", "args": ["Hello, RustChain World!"]}),
            ),
            step(
                "exec",
                StepType::Command,
                json!({"command": "chmod +x ai_chat.py"}),
            ),
            step(
                "check",
                StepType::Command,
                json!({"command": "cargo", "args": ["check", "--lib"], "working_dir": "."}),
            ),
            step(
                "date",
                StepType::Command,
                json!({"command": "date", "args": []}),
            ),
        ])
    }

    #[test]
    fn commands_must_be_declared() {
        let m = command_mission();
        let findings = lint_permissions(
            &m,
            &perms(&["echo", "cargo"], Network::Allowed(false), false),
        );
        assert_eq!(
            summary(&findings),
            [
                undeclared("steps[1].parameters.command"),
                undeclared("steps[3].parameters.command"),
            ]
        );
        assert_eq!(findings[0].step_index, 1);
        assert_eq!(findings[0].step_id, "exec");
        assert_eq!(
            findings[0].to_string(),
            "steps[1].parameters.command (step `exec`): undeclared: starts `chmod`, which permissions.commands does not list; add `chmod`"
        );
        assert!(findings[1].message.contains("`date`"));

        let all = perms(
            &["cargo", "chmod", "date", "echo"],
            Network::Allowed(false),
            false,
        );
        assert_eq!(lint_permissions(&m, &all), []);
        assert_eq!(required_permissions(&m), all);
    }

    #[test]
    fn a_shell_is_the_program_and_is_always_noted() {
        // From shimmy_practical_fixes.yaml.
        let m = mission(vec![
            step(
                "build",
                StepType::Command,
                json!({"command": "bash", "args": ["-c", "cd /c/repo && cargo build --features llama"]}),
            ),
            step(
                "line",
                StepType::Command,
                json!({"command": "sh -c 'make all'"}),
            ),
        ]);
        let findings = lint_permissions(&m, &none());
        assert_eq!(
            summary(&findings),
            [
                undeclared("steps[0].parameters.command"),
                undeclared("steps[1].parameters.command")
            ]
        );
        assert!(
            findings[0].message.contains("shell `bash`"),
            "{}",
            findings[0]
        );
        assert!(
            findings[1].message.contains("shell `sh`"),
            "{}",
            findings[1]
        );
        assert!(
            !findings[0].message.contains("`cargo`"),
            "the script is not parsed"
        );

        let findings =
            lint_permissions(&m, &perms(&["bash", "sh"], Network::Allowed(false), false));
        assert_eq!(
            summary(&findings),
            [
                unverifiable("steps[0].parameters.command"),
                unverifiable("steps[1].parameters.command")
            ]
        );
        assert!(findings[0]
            .message
            .contains("cannot see which programs the script starts"));
        assert_eq!(required_permissions(&m).commands, ["bash", "sh"]);
    }

    #[test]
    fn templated_and_path_programs_are_reported() {
        let m = mission(vec![
            step(
                "t1",
                StepType::Command,
                json!({"command": "{tool_cmd}", "args": ["x"]}),
            ),
            step(
                "t2",
                StepType::ProcessStart,
                json!({"command": "${runner} --fast"}),
            ),
            step(
                "p",
                StepType::Command,
                json!({"command": "./target/release/shimmy", "args": ["serve"]}),
            ),
            step("none", StepType::Command, json!({"args": ["x"]})),
            step("empty", StepType::Command, json!({"command": "  "})),
        ]);
        let findings = lint_permissions(&m, &perms(&["shimmy"], Network::Allowed(true), true));
        assert_eq!(
            summary(&findings),
            [
                unverifiable("steps[0].parameters.command"),
                unverifiable("steps[1].parameters.command"),
                undeclared("steps[2].parameters.command"),
                unverifiable("steps[3].parameters.command"),
                unverifiable("steps[4].parameters.command"),
            ]
        );
        assert!(
            findings[0].message.contains("template (`{tool_cmd}`)"),
            "{}",
            findings[0]
        );
        assert!(
            findings[2].message.contains("by its path"),
            "{}",
            findings[2]
        );
        assert!(
            findings[3].message.contains("no `command`"),
            "{}",
            findings[3]
        );
        assert!(required_permissions(&m).commands.is_empty());
    }

    #[test]
    fn process_start_is_a_command() {
        let m = mission(vec![step(
            "srv",
            StepType::ProcessStart,
            json!({"command": "python3", "args": ["-m", "http.server"]}),
        )]);
        assert_eq!(
            summary(&lint_permissions(&m, &none())),
            [undeclared("steps[0].parameters.command")]
        );
        assert_eq!(
            lint_permissions(&m, &perms(&["python3"], Network::Allowed(false), false)),
            []
        );
    }

    #[test]
    fn toolchain_steps_start_the_language_toolchain() {
        // From test_step_types_validation.yaml, plus the other languages and the default.
        let m = mission(vec![
            step(
                "c",
                StepType::CompileCode,
                json!({"language": "rust", "path": "."}),
            ),
            step("t", StepType::RunTests, json!({"path": "."})),
            step(
                "f",
                StepType::FormatCode,
                json!({"language": "go", "path": "."}),
            ),
            step(
                "l",
                StepType::LintCode,
                json!({"language": "node", "path": "."}),
            ),
            step(
                "g",
                StepType::CompileCode,
                json!({"language": "go", "path": "."}),
            ),
            step(
                "n",
                StepType::RunTests,
                json!({"language": "node", "path": "."}),
            ),
        ]);
        assert_eq!(
            required_permissions(&m).commands,
            ["cargo", "go", "gofmt", "npm", "npx"]
        );
        let findings = lint_permissions(&m, &perms(&["cargo"], Network::Allowed(false), false));
        assert_eq!(
            summary(&findings),
            [
                undeclared("steps[2].parameters.language"),
                undeclared("steps[3].parameters.language"),
                undeclared("steps[4].parameters.language"),
                undeclared("steps[5].parameters.language"),
            ]
        );
        assert!(findings[0].message.contains("`gofmt`"));

        let odd = mission(vec![
            step(
                "x",
                StepType::CompileCode,
                json!({"language": "cobol", "path": "."}),
            ),
            step(
                "y",
                StepType::RunTests,
                json!({"language": "{lang}", "path": "."}),
            ),
            step("z", StepType::LintCode, json!({"language": 3, "path": "."})),
        ]);
        let findings = lint_permissions(&odd, &none());
        assert_eq!(
            summary(&findings),
            [
                unverifiable("steps[0].parameters.language"),
                unverifiable("steps[1].parameters.language"),
                unverifiable("steps[2].parameters.language"),
            ]
        );
        assert!(
            findings[0].message.contains("`cobol`")
                && findings[0].message.contains("rust, go, node")
        );
    }

    #[test]
    fn git_steps_start_git() {
        let m = mission(vec![
            step("s", StepType::GitStatus, json!({"path": "."})),
            step("c", StepType::GitCommit, json!({"message": "x"})),
        ]);
        assert_eq!(
            summary(&lint_permissions(&m, &none())),
            [
                undeclared("steps[0].step_type"),
                undeclared("steps[1].step_type")
            ]
        );
        assert_eq!(
            lint_permissions(&m, &perms(&["git"], Network::Allowed(false), false)),
            []
        );
    }

    #[test]
    fn network_steps_need_their_hosts() {
        // http from test_http_fixed.yaml; the others from the step parameters RustChain reads.
        let m = mission(vec![
            step(
                "get",
                StepType::Http,
                json!({"url": "https://httpbin.org/json", "method": "GET"}),
            ),
            step(
                "ws",
                StepType::WebsocketConnect,
                json!({"url": "wss://stream.example.org:8443/feed"}),
            ),
            step(
                "ssh",
                StepType::SshExecute,
                json!({"host": "deploy@build.example.org", "username": "deploy", "command": "uptime"}),
            ),
            step(
                "ftp",
                StepType::FtpUpload,
                json!({"host": "ftp.example.org", "local_file": "a", "remote_file": "b"}),
            ),
            step("redis", StepType::RedisGet, json!({"key": "k"})),
            step(
                "pg",
                StepType::SqlQuery,
                json!({"query": "select 1", "database_url": "postgres://u:p@db.example.org:5432/x"}),
            ),
            step("lite", StepType::SqlQuery, json!({"query": "select 1"})),
            step(
                "health",
                StepType::ServiceHealth,
                json!({"service": "test_service", "port": 9999}),
            ),
        ]);
        let findings = lint_permissions(&m, &none());
        assert_eq!(
            summary(&findings),
            [
                undeclared("steps[0].parameters.url"),
                undeclared("steps[1].parameters.url"),
                undeclared("steps[2].parameters.host"),
                undeclared("steps[3].parameters.host"),
                undeclared("steps[4].parameters.redis_url"),
                undeclared("steps[5].parameters.database_url"),
                undeclared("steps[7].step_type"),
            ]
        );
        assert_eq!(
            findings[0].message,
            "reaches `httpbin.org`, but permissions.network is false; declare `network: [httpbin.org]`"
        );
        let required = required_permissions(&m);
        assert_eq!(
            required.network,
            Network::Hosts(vec![
                "127.0.0.1".into(),
                "build.example.org".into(),
                "db.example.org".into(),
                "ftp.example.org".into(),
                "httpbin.org".into(),
                "localhost".into(),
                "stream.example.org".into(),
            ])
        );
        assert_eq!(lint_permissions(&m, &required), []);
        assert_eq!(
            lint_permissions(&m, &perms(&[], Network::Allowed(true), false)),
            []
        );
    }

    #[test]
    fn a_host_list_is_checked_host_by_host() {
        let m = mission(vec![
            step(
                "a",
                StepType::Http,
                json!({"url": "https://api.example.org/v1"}),
            ),
            step(
                "b",
                StepType::Http,
                json!({"url": "https://raw.cdn.example.net/x"}),
            ),
            step(
                "c",
                StepType::Http,
                json!({"url": "https://evil.example.com/"}),
            ),
            step(
                "p",
                StepType::PingHost,
                json!({"host": "127.0.0.1", "count": 1}),
            ),
        ]);
        let allowed = perms(
            &["ping"],
            Network::Hosts(vec![
                "API.example.org".into(),
                "*.cdn.example.net".into(),
                "127.0.0.1".into(),
            ]),
            false,
        );
        let findings = lint_permissions(&m, &allowed);
        assert_eq!(summary(&findings), [undeclared("steps[2].parameters.url")]);
        assert_eq!(
            findings[0].message,
            "reaches `evil.example.com`, which permissions.network does not list; add `evil.example.com`"
        );
        // ping_host also starts `ping`.
        let findings = lint_permissions(&m, &perms(&[], Network::Allowed(true), false));
        assert_eq!(summary(&findings), [undeclared("steps[3].step_type")]);
    }

    #[test]
    fn templated_urls_are_unverifiable_against_a_host_list() {
        let m = mission(vec![
            step("a", StepType::Http, json!({"url": "{api_base}/items"})),
            step("b", StepType::Http, json!({"url": "https://{host}/items"})),
            step("c", StepType::FtpDownload, json!({"host": "${ftp_host}"})),
            step("d", StepType::Http, json!({"method": "GET"})),
            step("e", StepType::Http, json!({"url": "not a url"})),
        ]);
        let list = perms(&[], Network::Hosts(vec!["example.org".into()]), false);
        let findings = lint_permissions(&m, &list);
        assert_eq!(
            summary(&findings),
            [
                unverifiable("steps[0].parameters.url"),
                unverifiable("steps[1].parameters.url"),
                unverifiable("steps[2].parameters.host"),
                unverifiable("steps[3].parameters.url"),
                unverifiable("steps[4].parameters.url"),
            ]
        );
        assert!(findings[0].message.contains("template"), "{}", findings[0]);
        assert!(findings[4].message.contains("no scheme"), "{}", findings[4]);
        // Without any network the templated ones are plainly undeclared.
        let findings = lint_permissions(&m, &none());
        assert_eq!(findings[0].kind, FindingKind::Undeclared);
        assert!(findings[0].message.contains("permissions.network is false"));
        // And `network: true` covers them.
        assert_eq!(
            summary(&lint_permissions(
                &m,
                &perms(&[], Network::Allowed(true), false)
            )),
            [
                unverifiable("steps[3].parameters.url"),
                unverifiable("steps[4].parameters.url")
            ]
        );
        assert_eq!(required_permissions(&m).network, Network::Allowed(true));
    }

    #[test]
    fn model_steps_need_llm() {
        // Shapes from llm_demo.yaml, agent_demo.yaml, comprehensive_demo.yaml and
        // enterprise_ml_pipeline_rustchain.yaml.
        let m = mission(vec![
            step(
                "ask",
                StepType::Llm,
                json!({"prompt": "Hi", "temperature": 0.3, "max_tokens": 200}),
            ),
            step(
                "agent",
                StepType::Agent,
                json!({"name": "ReasoningAgent", "objective": "Analyze"}),
            ),
            step(
                "chain",
                StepType::Chain,
                json!({"type": "sequential", "prompt": "Conclude"}),
            ),
            step(
                "rag",
                StepType::RagAdd,
                json!({"documents": "{{input_documents}}", "index_name": "kb"}),
            ),
            step("q", StepType::RagQuery, json!({"query": "x"})),
            step("emb", StepType::GenerateEmbedding, json!({"text": "x"})),
            step("inf", StepType::ModelInference, json!({"prompt": "x"})),
            step("sim", StepType::SimilaritySearch, json!({"database": "d"})),
        ]);
        let findings = lint_permissions(&m, &none());
        let fields: Vec<String> = findings.iter().map(|f| f.field.clone()).collect();
        assert_eq!(
            fields,
            (0..7)
                .map(|i| format!("steps[{i}].step_type"))
                .collect::<Vec<_>>()
        );
        assert!(findings.iter().all(|f| f.kind == FindingKind::Undeclared));
        assert_eq!(
            findings[1].message,
            "calls an LLM (a `agent` step), but permissions.llm is false; declare `llm: true`"
        );
        assert_eq!(
            lint_permissions(&m, &perms(&[], Network::Allowed(false), true)),
            []
        );
        assert!(required_permissions(&m).llm);
    }

    #[test]
    fn nested_chain_steps_are_linted_with_their_path() {
        let m = mission(vec![step(
            "pipeline",
            StepType::Chain,
            json!({"steps": [
                {"step_name": "build", "step_type": "command", "parameters": {"command": "make", "args": []}},
                {"step_name": "ask", "step_type": {"type": "llm"}, "parameters": {"prompt": "Why?"}},
                {"step_name": "odd", "step_type": "CreateFile", "parameters": {}}
            ]}),
        )]);
        let findings = lint_permissions(&m, &none());
        assert_eq!(
            summary(&findings),
            [
                undeclared("steps[0].parameters.steps[0].parameters.command"),
                undeclared("steps[0].parameters.steps[1].step_type"),
                unverifiable("steps[0].parameters.steps[2].step_type"),
            ]
        );
        assert!(findings
            .iter()
            .all(|f| f.step_index == 0 && f.step_id == "pipeline"));
        let required = required_permissions(&m);
        assert_eq!(required.commands, ["make"]);
        assert!(required.llm, "the nested llm step needs it");
    }

    #[test]
    fn tool_steps_follow_the_tool() {
        // From comprehensive_demo.yaml, data_processing.yaml and
        // generate_specifications_automated.yaml.
        let m = mission(vec![
            step(
                "file",
                StepType::Tool,
                json!({"tool": "create_file", "parameters": {"path": "o.txt", "content": "x"}}),
            ),
            step(
                "csv",
                StepType::Tool,
                json!({"tool": "csv_loader", "parameters": {"file_path": "s.csv"}}),
            ),
            step(
                "cmd",
                StepType::Tool,
                json!({"tool": "command", "parameters": {"command": "ls", "args": ["-la"]}}),
            ),
            step(
                "web",
                StepType::Tool,
                json!({"tool": "http", "parameters": {"url": "https://example.org/"}}),
            ),
            step(
                "spec",
                StepType::Tool,
                json!({"tool_name": "github_spec_kit", "command": "specify"}),
            ),
            step(
                "mystery",
                StepType::Tool,
                json!({"tool": "web_scraper", "parameters": {}}),
            ),
            step("bare", StepType::Tool, json!({})),
        ]);
        let findings = lint_permissions(&m, &none());
        assert_eq!(
            summary(&findings),
            [
                undeclared("steps[2].parameters.parameters.command"),
                undeclared("steps[3].parameters.parameters.url"),
                unverifiable("steps[4].parameters.tool"),
                unverifiable("steps[5].parameters.tool"),
                unverifiable("steps[6].parameters.tool"),
            ]
        );
        assert!(
            findings[2].message.contains("`tool_name`"),
            "{}",
            findings[2]
        );
        assert!(
            findings[3].message.contains("`web_scraper`")
                && findings[3].message.contains("csv_loader")
        );
        let required = required_permissions(&m);
        assert_eq!(required.commands, ["ls"]);
        assert_eq!(required.network, Network::Hosts(vec!["example.org".into()]));
    }

    #[test]
    fn local_steps_need_nothing() {
        let m = mission(vec![
            step("n", StepType::Noop, json!({})),
            step("n2", StepType::Noop, Value::Null),
            step(
                "w",
                StepType::CreateFile,
                json!({"path": "a.txt", "content": "x"}),
            ),
            step("r", StepType::ReadFile, json!({"path": "a.txt"})),
            step(
                "z",
                StepType::Compress,
                json!({"source": "src", "destination": "a.tar", "format": "tar"}),
            ),
            step("j", StepType::ParseJson, json!({"content": "{}"})),
            step("m", StepType::MonitorResources, json!({})),
        ]);
        assert_eq!(lint_permissions(&m, &none()), []);
        assert_eq!(required_permissions(&m), Permissions::default());
    }

    #[test]
    fn step_timeouts_must_fit_the_declared_duration() {
        let mut long = step("long", StepType::Noop, json!({}));
        long.timeout_seconds = Some(900);
        let m = mission(vec![long]);
        let findings = lint_permissions(&m, &none());
        assert_eq!(summary(&findings), [undeclared("steps[0].timeout_seconds")]);
        assert!(findings[0].message.contains("900 s") && findings[0].message.contains("(600 s)"));
        let required = required_permissions(&m);
        assert_eq!(required.max_duration_seconds, 900);
        assert_eq!(lint_permissions(&m, &required), []);
    }
}
