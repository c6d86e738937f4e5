//! Step handlers: what each `step_type` does, one module per family.
//!
//! Each handler reads its step's `parameters` the way RustChain v0.1.0 does (the same names,
//! the same defaults, the same output fields) and does the work through one of three doors:
//!
//! - files, only inside the work folder ([`files::WorkFolder`]);
//! - processes, only through the [`Sandbox`] and only programs the [`Grant`] allows;
//! - the network, only to hosts the grant allows, with the private-address guard
//!   ([`net`]), or to the LLM endpoint the user configured ([`llm`]).
//!
//! A handler returns `Ok(StepOutput)` when the step ran, successfully or not (a command
//! that exits non-zero, an HTTP error status), and `Err(StepError)` when it could not run
//! at all (a missing parameter, a path outside the work folder, a denied program). The
//! difference matters for `fail_fast`, exactly as in RustChain: only an error stops the
//! mission; a failed step just makes its dependents skip.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mission_index::mission::StepType;
use serde_json::Value;
use thiserror::Error;

use crate::policy::Grant;
use crate::sandbox::lease::ActAsSandboxUser;
use crate::sandbox::{Sandbox, SandboxError};

pub mod data;
pub mod files;
pub mod git;
pub mod llm;
pub mod net;
pub mod process;
pub mod tool;
pub mod toolchain;

pub use llm::LlmConfig;

/// Everything a handler may use. Shared by the steps of one run (they may run in parallel).
pub struct StepContext {
    pub folder: files::WorkFolder,
    pub sandbox: Arc<dyn Sandbox>,
    pub grant: Grant,
    pub llm: Option<LlmConfig>,
    /// Values `{name}` placeholders in `create_file` content are replaced with: the run's
    /// parameters, and what steps produced (`{step_id}_response` for an `llm` step).
    pub variables: Mutex<BTreeMap<String, String>>,
    /// The environment processes see (besides the sandbox's PATH, HOME, TMPDIR).
    pub env: Vec<(String, String)>,
    /// Host folders processes see read-only (toolchains outside `/usr`).
    pub read_only: Vec<PathBuf>,
    /// The work folder lent to the sandbox uid while any step can still touch it.
    pub workdir_lease: Option<crate::sandbox::lease::WorkdirLease>,
}

/// The step being run, with its time limit.
pub struct StepCall<'a> {
    pub id: &'a str,
    pub step_type: StepType,
    pub params: &'a Value,
    pub timeout: Duration,
}

/// What a step that ran produced.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    pub success: bool,
    pub output: Value,
    pub exit_code: Option<i32>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl StepOutput {
    pub fn ok(output: Value) -> StepOutput {
        StepOutput {
            success: true,
            output,
            exit_code: None,
            error: None,
        }
    }

    pub fn failed(output: Value, error: impl Into<String>) -> StepOutput {
        StepOutput {
            success: false,
            output,
            exit_code: None,
            error: Some(error.into()),
        }
    }
}

/// Why a step could not run. Under `fail_fast` (RustChain's default) this stops the mission.
#[derive(Debug, Error)]
pub enum StepError {
    #[error("missing '{name}' parameter (a {expected})")]
    MissingParameter {
        name: &'static str,
        expected: &'static str,
    },
    #[error("parameter '{name}': {reason}")]
    BadParameter { name: &'static str, reason: String },
    #[error("path `{path}`: {reason}")]
    Path { path: String, reason: String },
    #[error("`{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not permitted: {0}")]
    Denied(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("{0}")]
    Failed(String),
    #[error("timed out after {0} s")]
    TimedOut(u64),
}

/// Runs one step. Types this executor does not implement fail (without stopping the
/// mission, as RustChain's disabled features do) with a message naming the type.
pub fn execute(ctx: &StepContext, call: &StepCall<'_>) -> Result<StepOutput, StepError> {
    use StepType as T;
    if files::handles(call.step_type) {
        // Steps the engine runs itself touch the work folder as the sandbox's user, as
        // sandboxed steps do (the folder is lent to it for the run). Not the steps that
        // start sandboxed processes: starting one needs root.
        let _as_sandbox_user = act_as_sandbox_user(ctx, true)?;
        return files::execute(ctx, call);
    }
    match call.step_type {
        T::Noop => Ok(StepOutput::ok(
            serde_json::json!({"message": "No operation performed"}),
        )),
        T::ParseJson | T::ParseYaml | T::CsvProcess | T::ValidateSchema => {
            data::execute(call.step_type, call.params)
        }
        T::Command | T::ProcessStart | T::ProcessKill => process::execute(ctx, call),
        T::CompileCode | T::RunTests | T::FormatCode | T::LintCode => toolchain::execute(ctx, call),
        T::GitCommit | T::GitBranch | T::GitMerge | T::GitStatus | T::GitDiff => {
            git::execute(ctx, call)
        }
        T::Http | T::ServiceHealth | T::PingHost => net::execute(ctx, call),
        T::Llm => llm::execute(ctx, call),
        T::Tool => tool::execute(ctx, call),
        other => Ok(unsupported(other)),
    }
}

/// For a step that touches the work folder itself (`touches_folder`): acts as the sandbox's
/// user when the sandbox runs processes as that user (see [`ActAsSandboxUser`]).
pub(crate) fn act_as_sandbox_user(
    ctx: &StepContext,
    touches_folder: bool,
) -> Result<Option<ActAsSandboxUser>, StepError> {
    if !touches_folder || !ctx.sandbox.runs_as_sandbox_user() {
        return Ok(None);
    }
    ActAsSandboxUser::start().map(Some).map_err(|e| {
        StepError::Failed(format!(
            "cannot act as the sandbox user for this step's file operations: {e}"
        ))
    })
}

/// The result of a step type this executor does not run.
pub fn unsupported(step_type: StepType) -> StepOutput {
    StepOutput::failed(
        Value::Null,
        format!("step type `{step_type}` is not supported by this executor"),
    )
}

/// Whether the executor runs steps of this type (the others fail with [`unsupported`]).
pub fn is_supported(step_type: StepType) -> bool {
    use StepType as T;
    files::handles(step_type)
        || matches!(
            step_type,
            T::Noop
                | T::ParseJson
                | T::ParseYaml
                | T::CsvProcess
                | T::ValidateSchema
                | T::Command
                | T::ProcessStart
                | T::ProcessKill
                | T::CompileCode
                | T::RunTests
                | T::FormatCode
                | T::LintCode
                | T::GitCommit
                | T::GitBranch
                | T::GitMerge
                | T::GitStatus
                | T::GitDiff
                | T::Http
                | T::ServiceHealth
                | T::PingHost
                | T::Llm
                | T::Tool
        )
}

// ----------------------------------------------------------------------------------------
// Reading parameters, as RustChain: `get(name).and_then(as_str)`.

pub(crate) fn str_param<'a>(params: &'a Value, name: &'static str) -> Result<&'a str, StepError> {
    params
        .get(name)
        .and_then(Value::as_str)
        .ok_or(StepError::MissingParameter {
            name,
            expected: "string",
        })
}

pub(crate) fn opt_str<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str)
}

/// `args`: the strings of a list (RustChain drops non-string items).
pub(crate) fn string_list(params: &Value, name: &str) -> Vec<String> {
    params
        .get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A folder inside the work folder for a process to run in (`None`: the work folder).
pub(crate) fn process_dir(ctx: &StepContext, rel: Option<&str>) -> Result<PathBuf, StepError> {
    match rel {
        None => Ok(ctx.folder.root().to_owned()),
        Some(p) => ctx.folder.real_dir(p),
    }
}

/// RustChain's `{var}` substitution (its `ExecutionContext::substitute_variables`):
/// `{previous_result}` is the first of the `*_response` variables (else of the `*_result`
/// ones) in name order; then each variable `{key}`; a `{step}` placeholder also takes the
/// value of `step_response` or `step_result`, and `{step_result}` that of `step_response`.
/// Unknown placeholders stay as they are.
pub fn substitute_variables(text: &str, variables: &BTreeMap<String, String>) -> String {
    let mut result = text.to_owned();
    if result.contains("{previous_result}") {
        let last = variables
            .iter()
            .filter(|(k, _)| k.ends_with("_response"))
            .chain(variables.iter().filter(|(k, _)| k.ends_with("_result")))
            .map(|(_, v)| v)
            .next();
        if let Some(last) = last {
            result = result.replace("{previous_result}", last);
        }
    }
    for (key, value) in variables {
        result = result.replace(&format!("{{{key}}}"), value);
        if let Some(step) = key.strip_suffix("_response") {
            result = result.replace(&format!("{{{step}}}"), value);
            result = result.replace(&format!("{{{step}_result}}"), value);
        }
        if let Some(step) = key.strip_suffix("_result") {
            result = result.replace(&format!("{{{step}}}"), value);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitution_follows_rustchain() {
        let v = vars(&[
            ("ask_response", "42"),
            ("chain_result", "done"),
            ("who", "you"),
        ]);
        assert_eq!(
            substitute_variables("{ask} {ask_response} {ask_result} {chain} {who} {nope}", &v),
            "42 42 42 done you {nope}"
        );
        // `_response` wins over `_result` for {previous_result}.
        assert_eq!(substitute_variables("{previous_result}", &v), "42");
        let only_result = vars(&[("b_result", "B"), ("a_result", "A")]);
        assert_eq!(substitute_variables("{previous_result}", &only_result), "A");
        assert_eq!(
            substitute_variables("{previous_result}", &BTreeMap::new()),
            "{previous_result}"
        );
    }
}
