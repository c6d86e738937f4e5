//! The report of one run: what ran, how it ended, what it printed.
//!
//! A run produces one [`Report`] (ARCHITECTURE section 9): an execution id, the mission's
//! name, version and checksum, the overall status, one [`StepReport`] per step in the order
//! of the mission file, the total duration and the sandbox backend used. The run succeeds
//! only when every step succeeded; a skipped or not-run step makes it fail.
//!
//! Step outputs are JSON, as RustChain's are, and are capped ([`cap_output`]): a report is
//! stored and shown, and a step that prints a gigabyte must not make it a gigabyte.

use std::fmt::Write as _;

use mission_index::mission::StepType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest string kept in a step output, in bytes; longer ones are cut at a character
/// boundary and end with a note of how much was dropped.
pub const MAX_OUTPUT_STRING: usize = 16 << 10;
/// The most items kept from one list in a step output.
pub const MAX_OUTPUT_ITEMS: usize = 1000;
/// The largest step output kept, serialized; a larger one is replaced by a preview.
pub const MAX_OUTPUT_BYTES: usize = 256 << 10;

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Unique per run (32 hex digits).
    pub execution_id: String,
    /// The package name, or the mission's `name` for a plain mission.
    pub mission: String,
    /// The package version, or the mission's `version` for a plain mission.
    pub version: String,
    /// SHA-256 (hex) of the package archive or mission file that ran, when known.
    pub cksum: Option<String>,
    pub status: RunStatus,
    /// One per step, in the order of the mission file.
    pub steps: Vec<StepReport>,
    pub duration_ms: u64,
    /// The sandbox backend that ran the processes (`bwrap`, `builtin`).
    pub sandbox: String,
}

/// How the whole run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every step succeeded.
    Success,
    /// At least one step failed, was skipped or did not run.
    Failed,
}

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Success,
    /// It ran and failed (a non-zero exit, an HTTP error status, a handler error, a
    /// timeout, an unsupported step type).
    Failed,
    /// Not run because a step it depends on did not succeed.
    Skipped,
    /// Not run because the mission stopped first (`fail_fast`, or its time limit).
    NotRun,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Success => "success",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::NotRun => "not_run",
        }
    }
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepReport {
    pub id: String,
    pub step_type: StepType,
    pub status: StepStatus,
    pub duration_ms: u64,
    /// The exit code of the step's process, for steps that run one.
    pub exit_code: Option<i32>,
    /// What the step produced (capped, see [`cap_output`]); `null` when it did not run.
    pub output: Value,
    pub error: Option<String>,
}

impl Report {
    /// Whether every step succeeded.
    pub fn success(&self) -> bool {
        self.status == RunStatus::Success
    }

    /// A plain-text table: one line per step, then a summary line.
    pub fn table(&self) -> String {
        let id_width = self
            .steps
            .iter()
            .map(|s| s.id.chars().count())
            .chain([4])
            .max()
            .unwrap_or(4);
        let type_width = self
            .steps
            .iter()
            .map(|s| s.step_type.as_str().len())
            .chain([4])
            .max()
            .unwrap_or(4);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:id_width$}  {:type_width$}  {:8}  {:>9}  {:>4}  error",
            "step", "type", "status", "time", "exit"
        );
        for s in &self.steps {
            let exit = s.exit_code.map(|c| c.to_string()).unwrap_or_default();
            let error = s
                .error
                .as_deref()
                .map(|e| first_line(e, 100))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:id_width$}  {:type_width$}  {:8}  {:>7}ms  {:>4}  {}",
                s.id,
                s.step_type.as_str(),
                s.status.as_str(),
                s.duration_ms,
                exit,
                error
            );
        }
        let ok = self
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Success)
            .count();
        let _ = writeln!(
            out,
            "{} {} {}: {} of {} steps succeeded in {} ms (sandbox: {}, execution {})",
            match self.status {
                RunStatus::Success => "ok:",
                RunStatus::Failed => "FAILED:",
            },
            self.mission,
            self.version,
            ok,
            self.steps.len(),
            self.duration_ms,
            self.sandbox,
            self.execution_id
        );
        out
    }
}

fn first_line(text: &str, max_chars: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > max_chars {
        let cut: String = line.chars().take(max_chars).collect();
        format!("{cut}...")
    } else {
        line.to_owned()
    }
}

/// Caps a step output: strings longer than [`MAX_OUTPUT_STRING`] are cut, lists longer
/// than [`MAX_OUTPUT_ITEMS`] keep their head, and an output still larger than
/// [`MAX_OUTPUT_BYTES`] becomes `{"truncated": true, "preview": "..."}`.
pub fn cap_output(value: Value) -> Value {
    let capped = cap_value(value);
    let text = capped.to_string();
    if text.len() <= MAX_OUTPUT_BYTES {
        return capped;
    }
    serde_json::json!({
        "truncated": true,
        "size": text.len(),
        "preview": cut_string(&text, MAX_OUTPUT_STRING),
    })
}

fn cap_value(value: Value) -> Value {
    match value {
        Value::String(s) if s.len() > MAX_OUTPUT_STRING => {
            Value::String(cut_string(&s, MAX_OUTPUT_STRING))
        }
        Value::Array(items) => {
            let total = items.len();
            let mut kept: Vec<Value> = items
                .into_iter()
                .take(MAX_OUTPUT_ITEMS)
                .map(cap_value)
                .collect();
            if total > MAX_OUTPUT_ITEMS {
                kept.push(Value::String(format!(
                    "... {} more items dropped",
                    total - MAX_OUTPUT_ITEMS
                )));
            }
            Value::Array(kept)
        }
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, cap_value(v))).collect())
        }
        other => other,
    }
}

/// The first `max` bytes of `s` (at a character boundary) and a note of what was dropped.
pub fn cut_string(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} more bytes]", &s[..end], s.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_strings_and_lists_are_cut_and_say_so() {
        let big = "é".repeat(MAX_OUTPUT_STRING); // 2 bytes each
        let out = cap_output(json!({"stdout": big, "n": 3}));
        let s = out["stdout"].as_str().unwrap();
        assert!(s.len() < MAX_OUTPUT_STRING + 40);
        assert!(
            s.ends_with(&format!("[{} more bytes]", MAX_OUTPUT_STRING)),
            "{}",
            &s[s.len() - 40..]
        );
        assert_eq!(out["n"], 3);

        let list: Vec<u32> = (0..(MAX_OUTPUT_ITEMS as u32 + 5)).collect();
        let out = cap_output(json!(list));
        let items = out.as_array().unwrap();
        assert_eq!(items.len(), MAX_OUTPUT_ITEMS + 1);
        assert_eq!(items[MAX_OUTPUT_ITEMS], "... 5 more items dropped");
    }

    #[test]
    fn a_huge_output_becomes_a_preview() {
        let many: Vec<String> = (0..MAX_OUTPUT_ITEMS).map(|_| "x".repeat(1000)).collect();
        let out = cap_output(json!({ "lines": many }));
        assert_eq!(out["truncated"], true);
        assert!(out["preview"].as_str().unwrap().len() <= MAX_OUTPUT_STRING + 40);
    }

    #[test]
    fn the_report_serializes_with_snake_case_statuses_and_a_table() {
        let r = Report {
            execution_id: "ab".into(),
            mission: "hello".into(),
            version: "1.0".into(),
            cksum: None,
            status: RunStatus::Failed,
            steps: vec![StepReport {
                id: "greet".into(),
                step_type: StepType::Command,
                status: StepStatus::NotRun,
                duration_ms: 0,
                exit_code: None,
                output: Value::Null,
                error: Some("not run: the mission stopped\nsecond line".into()),
            }],
            duration_ms: 5,
            sandbox: "bwrap".into(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["steps"][0]["status"], "not_run");
        assert_eq!(v["steps"][0]["step_type"], "command");
        let table = r.table();
        assert!(table.contains("greet"), "{table}");
        assert!(table.contains("not run: the mission stopped"), "{table}");
        assert!(!table.contains("second line"), "{table}");
        assert!(table.contains("FAILED: hello 1.0: 0 of 1 steps"), "{table}");
    }
}
