//! Process steps: `command`, `process_start`, `process_kill`, and the one door every other
//! step that starts a program goes through ([`run_program`]).
//!
//! As in RustChain, `command` is the program itself (started directly, no shell) and `args`
//! its arguments; `working_dir` is where it runs. Here the program must be one the grant
//! allows, it runs in the [`Sandbox`](crate::sandbox::Sandbox), and `working_dir` must be a
//! folder inside the work folder. A non-zero exit makes the step fail; the mission goes on.
//!
//! Two differences follow from the sandbox. `process_start` cannot leave a process running
//! behind the step (the sandbox kills the whole process group when the step ends), so it
//! runs the process to completion within the step's time limit and reports it like
//! `command`. And `process_kill` runs `kill -9 PID` inside the sandbox, where only the
//! step's own processes are visible: it cannot reach a process of the host.

use serde_json::{json, Value};

use super::{process_dir, str_param, string_list, StepCall, StepContext, StepError, StepOutput};
use crate::sandbox::{Limits, NetworkAccess, ProcessOutcome, ProcessSpec, SandboxError};
use mission_index::mission::StepType;

pub(crate) fn execute(ctx: &StepContext, call: &StepCall<'_>) -> Result<StepOutput, StepError> {
    let p = call.params;
    match call.step_type {
        StepType::Command | StepType::ProcessStart => {
            let command = str_param(p, "command")?;
            let args = string_list(p, "args");
            let cwd = p.get("working_dir").and_then(Value::as_str);
            let outcome = run_program(ctx, call, command, &args, cwd, NetworkAccess::None)?;
            let mut out = outcome_output(&outcome, "Command failed");
            if let Value::Object(map) = &mut out.output {
                map.insert("command".into(), json!(command));
                map.insert("args".into(), json!(args));
            }
            Ok(out)
        }
        StepType::ProcessKill => {
            let pid = p
                .get("pid")
                .and_then(Value::as_u64)
                .ok_or(StepError::MissingParameter {
                    name: "pid",
                    expected: "number",
                })?;
            let outcome = run_program(
                ctx,
                call,
                "kill",
                &["-9".to_owned(), pid.to_string()],
                None,
                NetworkAccess::None,
            )?;
            let killed = outcome.success();
            let mut out = outcome_output(&outcome, "Failed to kill process");
            out.output = json!({"pid": pid, "killed": killed});
            Ok(out)
        }
        other => Ok(super::unsupported(other)),
    }
}

/// Runs `program` in the sandbox: checks the grant, resolves `cwd` inside the work folder,
/// applies the step's time limit, and turns "program not found" into a step error that
/// says how RustChain reads `command`.
pub(crate) fn run_program(
    ctx: &StepContext,
    call: &StepCall<'_>,
    program: &str,
    args: &[String],
    cwd: Option<&str>,
    network: NetworkAccess,
) -> Result<ProcessOutcome, StepError> {
    if program.is_empty() {
        return Err(StepError::BadParameter {
            name: "command",
            reason: "is empty".into(),
        });
    }
    if !ctx.grant.allows_program(program) {
        let hint = if program.contains(char::is_whitespace) {
            " (RustChain starts `command` as one program name: put the arguments in `args`)"
        } else {
            ""
        };
        return Err(StepError::Denied(format!(
            "step `{}` starts `{program}`, which this run may not start{hint}",
            call.id
        )));
    }
    let workdir = process_dir(ctx, cwd)?;
    let limits = Limits {
        wall_time: call.timeout,
        cpu_seconds: call.timeout.as_secs().max(1),
        ..Limits::default()
    };
    let spec = ProcessSpec {
        program: program.to_owned(),
        args: args.to_vec(),
        workdir,
        env: ctx.env.clone(),
        stdin: None,
        limits,
        network,
        read_only: ctx.read_only.clone(),
    };
    match ctx.sandbox.run(&spec) {
        Ok(outcome) if outcome.timed_out => Err(StepError::TimedOut(call.timeout.as_secs())),
        Ok(outcome) => Ok(outcome),
        Err(SandboxError::ProgramNotFound { program }) => Err(StepError::Failed(format!(
            "program `{program}` was not found{}",
            if program.contains(char::is_whitespace) {
                " (RustChain starts `command` as one program name: put the arguments in `args`)"
            } else {
                ""
            }
        ))),
        Err(e) => Err(StepError::Sandbox(e)),
    }
}

/// RustChain's command output: `{exit_code, stdout, stderr}`; failed unless it exited 0.
pub(crate) fn outcome_output(outcome: &ProcessOutcome, failure: &str) -> StepOutput {
    let stdout = String::from_utf8_lossy(&outcome.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&outcome.stderr).into_owned();
    let error = if outcome.success() {
        None
    } else if let Some(signal) = outcome.signal {
        Some(format!("{failure}: killed by signal {signal}"))
    } else {
        Some(format!(
            "{failure} with exit code {}",
            outcome
                .exit_code
                .map_or_else(|| "none".to_owned(), |c| c.to_string())
        ))
    };
    StepOutput {
        success: outcome.success(),
        output: json!({
            "exit_code": outcome.exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "output_truncated": outcome.output_truncated,
        }),
        exit_code: outcome.exit_code,
        error,
    }
}
