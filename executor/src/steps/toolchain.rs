//! Toolchain steps: `compile_code`, `run_tests`, `format_code`, `lint_code`.
//!
//! As in RustChain: `language` (default `rust`) picks the program and `path` (required) is
//! the folder it runs in, here a folder inside the work folder; the process runs in the
//! sandbox like any `command`.
//!
//! | language | compile_code | run_tests | format_code | lint_code |
//! |---|---|---|---|---|
//! | rust | `cargo check` | `cargo test` | `cargo fmt` | `cargo clippy` |
//! | go | `go build .` | `go test ./...` | `gofmt -w .` | `golint ./...` |
//! | node | `npm run build` | `npm test` | `npx prettier --write .` | `npx eslint .` |

use mission_index::mission::StepType;
use serde_json::{json, Value};

use super::process::{outcome_output, run_program};
use super::{str_param, StepCall, StepContext, StepError, StepOutput};
use crate::sandbox::NetworkAccess;

/// The program and arguments RustChain runs for `step_type` in `language`.
pub fn command_for(
    step_type: StepType,
    language: &str,
) -> Option<(&'static str, &'static [&'static str])> {
    use StepType as T;
    Some(match (language, step_type) {
        ("rust", T::CompileCode) => ("cargo", &["check"]),
        ("rust", T::RunTests) => ("cargo", &["test"]),
        ("rust", T::FormatCode) => ("cargo", &["fmt"]),
        ("rust", T::LintCode) => ("cargo", &["clippy"]),
        ("go", T::CompileCode) => ("go", &["build", "."]),
        ("go", T::RunTests) => ("go", &["test", "./..."]),
        ("go", T::FormatCode) => ("gofmt", &["-w", "."]),
        ("go", T::LintCode) => ("golint", &["./..."]),
        ("node", T::CompileCode) => ("npm", &["run", "build"]),
        ("node", T::RunTests) => ("npm", &["test"]),
        ("node", T::FormatCode) => ("npx", &["prettier", "--write", "."]),
        ("node", T::LintCode) => ("npx", &["eslint", "."]),
        _ => return None,
    })
}

pub(crate) fn execute(ctx: &StepContext, call: &StepCall<'_>) -> Result<StepOutput, StepError> {
    let p = call.params;
    let language = p.get("language").and_then(Value::as_str).unwrap_or("rust");
    let path = str_param(p, "path")?;
    let (program, args) =
        command_for(call.step_type, language).ok_or_else(|| StepError::BadParameter {
            name: "language",
            reason: format!("unsupported language `{language}` (rust, go, node)"),
        })?;
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let outcome = run_program(ctx, call, program, &args, Some(path), NetworkAccess::None)?;
    let failure = match call.step_type {
        StepType::CompileCode => "Compilation failed",
        StepType::RunTests => "Tests failed",
        StepType::FormatCode => "Formatting failed",
        _ => "Linting failed",
    };
    let mut out = outcome_output(&outcome, failure);
    if let Value::Object(map) = &mut out.output {
        map.insert("success".into(), json!(out.success));
        map.insert("language".into(), json!(language));
        map.insert("program".into(), json!(program));
    }
    Ok(out)
}
