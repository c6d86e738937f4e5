//! Git steps: `git_status`, `git_diff`, `git_commit`, `git_branch`, `git_merge`.
//!
//! Each runs the `git` program in the sandbox, in `path` (default `.`, a folder inside the
//! work folder), with RustChain's arguments: `status --porcelain`, `diff`, `add .` then
//! `commit -m MESSAGE`, `checkout -b BRANCH`, `merge BRANCH`. As in RustChain, `git_status`
//! and `git_diff` succeed whatever git says, and the others fail when git does.

use mission_index::mission::StepType;
use serde_json::{json, Value};

use super::process::{outcome_output, run_program};
use super::{str_param, StepCall, StepContext, StepError, StepOutput};
use crate::sandbox::NetworkAccess;

pub(crate) fn execute(ctx: &StepContext, call: &StepCall<'_>) -> Result<StepOutput, StepError> {
    let p = call.params;
    let path = p.get("path").and_then(Value::as_str).unwrap_or(".");
    let git = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        run_program(ctx, call, "git", &args, Some(path), NetworkAccess::None)
    };
    match call.step_type {
        StepType::GitStatus => {
            let outcome = git(&["status", "--porcelain"])?;
            let stdout = String::from_utf8_lossy(&outcome.stdout).into_owned();
            let clean = stdout.trim().is_empty();
            Ok(StepOutput {
                exit_code: outcome.exit_code,
                ..StepOutput::ok(json!({"status": stdout, "clean": clean}))
            })
        }
        StepType::GitDiff => {
            let outcome = git(&["diff"])?;
            let stdout = String::from_utf8_lossy(&outcome.stdout).into_owned();
            let has_changes = !stdout.trim().is_empty();
            Ok(StepOutput {
                exit_code: outcome.exit_code,
                ..StepOutput::ok(json!({"diff": stdout, "has_changes": has_changes}))
            })
        }
        StepType::GitCommit => {
            let message = str_param(p, "message")?;
            // RustChain ignores how `git add` ends; the commit decides.
            git(&["add", "."])?;
            let outcome = git(&["commit", "-m", message])?;
            let mut out = outcome_output(&outcome, "Git commit failed");
            if let Value::Object(map) = &mut out.output {
                map.insert("committed".into(), json!(out.success));
                map.insert("message".into(), json!(message));
            }
            Ok(out)
        }
        StepType::GitBranch => {
            let branch = branch_param(p)?;
            let outcome = git(&["checkout", "-b", branch])?;
            let mut out = outcome_output(&outcome, "Branch creation failed");
            if let Value::Object(map) = &mut out.output {
                map.insert("branch".into(), json!(branch));
                map.insert("created".into(), json!(out.success));
            }
            Ok(out)
        }
        StepType::GitMerge => {
            let branch = branch_param(p)?;
            let outcome = git(&["merge", branch])?;
            let mut out = outcome_output(&outcome, "Merge failed");
            if let Value::Object(map) = &mut out.output {
                map.insert("merged_branch".into(), json!(branch));
                map.insert("success".into(), json!(out.success));
            }
            Ok(out)
        }
        other => Ok(super::unsupported(other)),
    }
}

/// `branch`, refused when git would read it as an option.
fn branch_param(p: &Value) -> Result<&str, StepError> {
    let branch = str_param(p, "branch")?;
    if branch.starts_with('-') {
        return Err(StepError::BadParameter {
            name: "branch",
            reason: format!("`{branch}` starts with `-`, which git reads as an option"),
        });
    }
    Ok(branch)
}
