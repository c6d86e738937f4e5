//! RustChain missions: the model, the parser and the validator (ARCHITECTURE section 2,
//! `../shared/conformance/README.md`).
//!
//! A *mission* is a RustChain workflow: a `version`, a `name` and a list of `steps`, each
//! with an `id`, a `name`, a `step_type` (one of 51 snake_case names) and `parameters`;
//! `depends_on` lists the ids of steps that must finish first. A registry that hosts
//! missions must accept exactly what RustChain v0.1.0 accepts, or a published mission would
//! fail to run (or a runnable one be refused). So this module does what RustChain does:
//!
//! 1. **Parse** with serde, with the same struct shapes (derived `Deserialize`, unknown keys
//!    ignored so a `package:` block can live in the same file), the same parsers
//!    (`yaml_serde`, the maintained continuation of RustChain's `serde_yaml`, for YAML and
//!    `serde_json` for files ending in `.json`) and the same hand-written `StepType` reader
//!    (snake_case names, the legacy `Tool`, the object form `{type: NAME}`).
//! 2. **Validate** the structure ([`Mission::validate`]): at least one step, unique ids,
//!    every dependency exists, no cycle; the first problem is reported, as RustChain does.
//!
//! Unlike RustChain, every error says where: [`SourceError`] carries the file, the field
//! path (`steps[3].name`, found with `serde_path_to_error`) and the parser's line. For
//! validation problems, found after parsing, a second cheap pass over the text
//! ([`crate::diagnostic::locate_field`]) finds the line of the offending field.
//!
//! The registry reads files from strangers, so parsing is bounded: [`MAX_MISSION_BYTES`] of
//! input, [`MAX_NESTING_DEPTH`] levels of nesting (both parsers stop there with an error
//! instead of overflowing the stack), at most [`MAX_YAML_BRACKETS`] `[`/`{` in a YAML file
//! (libyaml's scanner is quadratic in flow depth) and [`MAX_MISSION_NODES`] YAML values
//! after alias expansion, so a "billion laughs" file of nested anchors is refused quickly
//! instead of exhausting memory. These are the only places where our verdict can differ
//! from RustChain's: a file beyond a limit is refused even where RustChain would
//! (slowly) accept it, e.g. an alias bomb inside a key RustChain skips.
//! [`check_input_limits`] applies the same limits alone, and the `package:` block reader
//! ([`crate::manifest::parse_package_block`]) calls it, so neither reader is unbounded.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io::Read;
use std::path::Path;

use schemars::JsonSchema;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::diagnostic::{
    json_error_location, locate_field, locate_field_position, source_error, yaml_error_location,
    SourceError, SourceFormat, BOM_MESSAGE,
};

/// The largest mission file read, in bytes (1 MiB; real missions are a few KiB).
pub const MAX_MISSION_BYTES: usize = 1 << 20;

/// The deepest nesting of lists and maps accepted. This is the limit `yaml_serde` and
/// `serde_json` both enforce (so RustChain enforces it too); it is named here so errors
/// can explain it.
pub const MAX_NESTING_DEPTH: usize = 128;

/// The most YAML values (scalars, lists, maps) a mission may expand to once aliases are
/// followed. A file without aliases has at most about one value per byte, so only alias
/// expansion (a "billion laughs" bomb) can reach this.
pub const MAX_MISSION_NODES: usize = 2 * MAX_MISSION_BYTES;

/// libyaml's scanner (and so RustChain's and ours) slows down with the square of the
/// nesting depth of flow collections (`[[[[...`): 20 000 levels take seconds, a megabyte of
/// them minutes. The depth can never exceed the number of `[` and `{` characters, so a
/// YAML mission may hold at most this many; real missions hold a few dozen.
pub const MAX_YAML_BRACKETS: usize = 10_000;

/// A RustChain mission, as RustChain v0.1.0 reads it. Unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Mission {
    /// A string; a bare YAML number such as `1.0` is read as its text.
    pub version: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// At least one.
    pub steps: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<MissionConfig>,
}

/// One step of a mission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// Unique within the mission.
    pub id: String,
    pub name: String,
    pub step_type: StepType,
    /// Ids of steps that must finish first; each must exist, and there is no cycle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_on_error: Option<bool>,
    /// Required; `{}` is the usual empty form and `null` is accepted.
    pub parameters: serde_json::Value,
}

/// Mission-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct MissionConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parallel_steps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
}

/// The 51 step types of RustChain v0.1.0, written in snake_case. (The legacy string `Tool`
/// and the object form `{type: NAME, ...}` are read as the same types.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepType {
    Noop,
    CreateFile,
    EditFile,
    DeleteFile,
    CopyFile,
    MoveFile,
    ReadFile,
    ListDirectory,
    FileSearch,
    ParseJson,
    ParseYaml,
    ParseXml,
    CsvProcess,
    ValidateSchema,
    CompileCode,
    RunTests,
    FormatCode,
    LintCode,
    ExtractFunctions,
    GenerateDocs,
    GitCommit,
    GitBranch,
    GitMerge,
    GitStatus,
    GitDiff,
    ProcessStart,
    ProcessKill,
    MonitorResources,
    ServiceHealth,
    Compress,
    SqlQuery,
    RedisSet,
    RedisGet,
    DbBackup,
    DbMigrate,
    WebsocketConnect,
    FtpUpload,
    FtpDownload,
    SshExecute,
    PingHost,
    GenerateEmbedding,
    SimilaritySearch,
    ModelInference,
    Command,
    Http,
    Llm,
    Tool,
    RagQuery,
    RagAdd,
    Chain,
    Agent,
}

impl StepType {
    /// Every step type, in RustChain's order.
    pub const ALL: [StepType; 51] = [
        StepType::Noop,
        StepType::CreateFile,
        StepType::EditFile,
        StepType::DeleteFile,
        StepType::CopyFile,
        StepType::MoveFile,
        StepType::ReadFile,
        StepType::ListDirectory,
        StepType::FileSearch,
        StepType::ParseJson,
        StepType::ParseYaml,
        StepType::ParseXml,
        StepType::CsvProcess,
        StepType::ValidateSchema,
        StepType::CompileCode,
        StepType::RunTests,
        StepType::FormatCode,
        StepType::LintCode,
        StepType::ExtractFunctions,
        StepType::GenerateDocs,
        StepType::GitCommit,
        StepType::GitBranch,
        StepType::GitMerge,
        StepType::GitStatus,
        StepType::GitDiff,
        StepType::ProcessStart,
        StepType::ProcessKill,
        StepType::MonitorResources,
        StepType::ServiceHealth,
        StepType::Compress,
        StepType::SqlQuery,
        StepType::RedisSet,
        StepType::RedisGet,
        StepType::DbBackup,
        StepType::DbMigrate,
        StepType::WebsocketConnect,
        StepType::FtpUpload,
        StepType::FtpDownload,
        StepType::SshExecute,
        StepType::PingHost,
        StepType::GenerateEmbedding,
        StepType::SimilaritySearch,
        StepType::ModelInference,
        StepType::Command,
        StepType::Http,
        StepType::Llm,
        StepType::Tool,
        StepType::RagQuery,
        StepType::RagAdd,
        StepType::Chain,
        StepType::Agent,
    ];

    /// The snake_case name, as written in missions and in the index's `step_types`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Noop => "noop",
            StepType::CreateFile => "create_file",
            StepType::EditFile => "edit_file",
            StepType::DeleteFile => "delete_file",
            StepType::CopyFile => "copy_file",
            StepType::MoveFile => "move_file",
            StepType::ReadFile => "read_file",
            StepType::ListDirectory => "list_directory",
            StepType::FileSearch => "file_search",
            StepType::ParseJson => "parse_json",
            StepType::ParseYaml => "parse_yaml",
            StepType::ParseXml => "parse_xml",
            StepType::CsvProcess => "csv_process",
            StepType::ValidateSchema => "validate_schema",
            StepType::CompileCode => "compile_code",
            StepType::RunTests => "run_tests",
            StepType::FormatCode => "format_code",
            StepType::LintCode => "lint_code",
            StepType::ExtractFunctions => "extract_functions",
            StepType::GenerateDocs => "generate_docs",
            StepType::GitCommit => "git_commit",
            StepType::GitBranch => "git_branch",
            StepType::GitMerge => "git_merge",
            StepType::GitStatus => "git_status",
            StepType::GitDiff => "git_diff",
            StepType::ProcessStart => "process_start",
            StepType::ProcessKill => "process_kill",
            StepType::MonitorResources => "monitor_resources",
            StepType::ServiceHealth => "service_health",
            StepType::Compress => "compress",
            StepType::SqlQuery => "sql_query",
            StepType::RedisSet => "redis_set",
            StepType::RedisGet => "redis_get",
            StepType::DbBackup => "db_backup",
            StepType::DbMigrate => "db_migrate",
            StepType::WebsocketConnect => "websocket_connect",
            StepType::FtpUpload => "ftp_upload",
            StepType::FtpDownload => "ftp_download",
            StepType::SshExecute => "ssh_execute",
            StepType::PingHost => "ping_host",
            StepType::GenerateEmbedding => "generate_embedding",
            StepType::SimilaritySearch => "similarity_search",
            StepType::ModelInference => "model_inference",
            StepType::Command => "command",
            StepType::Http => "http",
            StepType::Llm => "llm",
            StepType::Tool => "tool",
            StepType::RagQuery => "rag_query",
            StepType::RagAdd => "rag_add",
            StepType::Chain => "chain",
            StepType::Agent => "agent",
        }
    }

    /// Looks up a snake_case name (case-sensitive, as RustChain). The legacy `Tool` is
    /// accepted as `tool`.
    pub fn from_name(name: &str) -> Option<StepType> {
        if name == "Tool" {
            return Some(StepType::Tool);
        }
        StepType::ALL.iter().copied().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for StepType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------
// Reading a step type, as RustChain's hand-written `Deserialize for StepType` does.
// ---------------------------------------------------------------------------------------

impl<'de> Deserialize<'de> for StepType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any`, as RustChain: a string or a map; a number or a list is a type
        // error (a YAML plain scalar such as `noop` arrives as a string).
        deserializer.deserialize_any(StepTypeVisitor)
    }
}

struct StepTypeVisitor;

impl<'de> Visitor<'de> for StepTypeVisitor {
    type Value = StepType;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a step type: a snake_case name such as `create_file`, or a map `{type: NAME}`")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<StepType, E> {
        StepType::from_name(name).ok_or_else(|| E::custom(unknown_step_type(name)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StepType, A::Error> {
        let mut name: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "type" {
                if name.is_some() {
                    return Err(de::Error::duplicate_field("type"));
                }
                name = Some(map.next_value()?);
            } else {
                // RustChain reads the other keys as JSON values (so, e.g., a YAML tag there
                // is an error) and drops them.
                map.next_value::<serde_json::Value>()?;
            }
        }
        let name = name.ok_or_else(|| de::Error::missing_field("type"))?;
        self.visit_str(&name)
    }
}

/// The message for an unknown step type: the name, then either a suggestion when it is
/// close to a real one (`CreateFile` is `create_file` in the wrong case) or the full list.
fn unknown_step_type(name: &str) -> String {
    let snake = to_snake_case(name);
    if let Some(t) = StepType::from_name(&snake) {
        return format!(
            "unknown step type `{name}`: step types are snake_case and case-sensitive; did you mean `{t}`?"
        );
    }
    let closest = StepType::ALL
        .iter()
        .map(|t| (strsim::levenshtein(&snake, t.as_str()), *t))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    if let Some((_, t)) = closest {
        return format!("unknown step type `{name}`; did you mean `{t}`?");
    }
    let names: Vec<&str> = StepType::ALL.iter().map(|t| t.as_str()).collect();
    format!(
        "unknown step type `{name}`; RustChain accepts {} (and the legacy `Tool`)",
        names.join(", ")
    )
}

/// `CreateFile`, `createFile`, `create-file` and `CREATE_FILE` all become `create_file`.
fn to_snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c == '-' || c == ' ' {
            out.push('_');
            prev_lower = false;
        } else if c.is_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.extend(c.to_lowercase());
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Structural validation, as RustChain's `MissionLoader::validate_mission`.
// ---------------------------------------------------------------------------------------

/// A structural problem found after parsing. [`ValidationError::field`] names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("the mission has no steps; RustChain requires at least one")]
    NoSteps,
    #[error("duplicate step id `{id}`: steps[{first}] already has it")]
    DuplicateId {
        /// The step that repeats the id.
        index: usize,
        /// The first step with that id.
        first: usize,
        id: String,
    },
    #[error("step `{step}` depends on `{dependency}`, but no step has that id")]
    UnknownDependency {
        index: usize,
        /// Position in the step's `depends_on`.
        position: usize,
        step: String,
        dependency: String,
    },
    #[error("circular dependency: {}", describe_cycle(.cycle))]
    Cycle {
        /// The step of the cycle that comes first in the file.
        index: usize,
        /// Position in its `depends_on` of the next step of the cycle.
        position: usize,
        /// The ids around the cycle, each depending on the next (and the last on the first).
        cycle: Vec<String>,
    },
    /// The dependency check reached a state its own logic rules out. Never a partial
    /// order: a mission is only accepted with every step placed.
    #[error("internal error in the dependency check ({detail}); please report this mission")]
    Internal { detail: &'static str },
}

fn describe_cycle(cycle: &[String]) -> String {
    match cycle {
        [only] => format!("step `{only}` depends on itself"),
        _ => {
            let mut ids: Vec<&str> = cycle.iter().map(String::as_str).collect();
            ids.extend(cycle.first().map(String::as_str));
            format!("{} (each step depends on the next)", ids.join(" -> "))
        }
    }
}

impl ValidationError {
    /// The field at fault, e.g. `steps`, `steps[2].id` or `steps[4].depends_on[0]`.
    pub fn field(&self) -> String {
        match *self {
            ValidationError::NoSteps | ValidationError::Internal { .. } => "steps".to_owned(),
            ValidationError::DuplicateId { index, .. } => format!("steps[{index}].id"),
            ValidationError::UnknownDependency {
                index, position, ..
            }
            | ValidationError::Cycle {
                index, position, ..
            } => format!("steps[{index}].depends_on[{position}]"),
        }
    }
}

impl Mission {
    /// RustChain's structural checks, in its order, stopping at the first problem: at least
    /// one step, unique step ids, every `depends_on` id exists, no dependency cycle.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.steps.is_empty() {
            return Err(ValidationError::NoSteps);
        }
        self.topological_order().map(|_| ())
    }

    /// An execution order: indices into `steps` such that every step comes after the steps
    /// it depends on; among steps that are ready, the one earlier in the file goes first.
    /// Fails as [`Mission::validate`] does (except that no steps is an empty order).
    pub fn topological_order(&self) -> Result<Vec<usize>, ValidationError> {
        let n = self.steps.len();
        let mut index_of: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (index, step) in self.steps.iter().enumerate() {
            if let Some(&first) = index_of.get(step.id.as_str()) {
                return Err(ValidationError::DuplicateId {
                    index,
                    first,
                    id: step.id.clone(),
                });
            }
            index_of.insert(&step.id, index);
        }

        // deps[i]: the steps that step i waits for, in its `depends_on` order.
        let mut deps: Vec<Vec<usize>> = Vec::with_capacity(n);
        for (index, step) in self.steps.iter().enumerate() {
            let mut mine = Vec::new();
            for (position, dependency) in self.depends_on(index).iter().enumerate() {
                match index_of.get(dependency.as_str()) {
                    Some(&d) => mine.push(d),
                    None => {
                        return Err(ValidationError::UnknownDependency {
                            index,
                            position,
                            step: step.id.clone(),
                            dependency: dependency.clone(),
                        })
                    }
                }
            }
            deps.push(mine);
        }

        // Kahn's algorithm, as RustChain, with a min-heap so the order is deterministic.
        let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, mine) in deps.iter().enumerate() {
            for &d in mine {
                dependents[d].push(i);
            }
        }
        let mut ready: BinaryHeap<Reverse<usize>> =
            (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for &j in &dependents[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.push(Reverse(j));
                }
            }
        }
        if order.len() == n {
            return Ok(order);
        }

        // Every step left waits for another step left, so following "waits for" from any
        // of them must come back to a step already seen: that loop is a cycle.
        let left: Vec<bool> = waiting.iter().map(|&w| w > 0).collect();
        let Some(start) = left.iter().position(|&l| l) else {
            return Err(ValidationError::Internal {
                detail: "steps are missing from the order, but none is waiting",
            });
        };
        let Some(cycle) = find_cycle(&deps, &left, start) else {
            return Err(ValidationError::Internal {
                detail: "a waiting step waits for no waiting step",
            });
        };
        // Start the cycle at the step that comes first in the file.
        let first = cycle
            .iter()
            .enumerate()
            .min_by_key(|(_, &step)| step)
            .map(|(at, _)| at)
            .unwrap_or(0);
        let mut cycle = cycle;
        cycle.rotate_left(first);
        let index = cycle[0];
        let next_id = &self.steps[cycle[1 % cycle.len()]].id;
        let position = self
            .depends_on(index)
            .iter()
            .position(|d| d == next_id)
            .unwrap_or(0);
        Err(ValidationError::Cycle {
            index,
            position,
            cycle: cycle.iter().map(|&i| self.steps[i].id.clone()).collect(),
        })
    }

    /// The step types the mission uses, once each, sorted by name (as the index's
    /// `step_types` field).
    pub fn step_types_used(&self) -> Vec<StepType> {
        let mut types: Vec<StepType> = self.steps.iter().map(|s| s.step_type).collect();
        types.sort_by_key(|t| t.as_str());
        types.dedup();
        types
    }

    fn depends_on(&self, index: usize) -> &[String] {
        self.steps
            .get(index)
            .and_then(|s| s.depends_on.as_deref())
            .unwrap_or(&[])
    }
}

/// Follows "waits for" (`deps`) from `start` through the steps still `left` until a step
/// comes back: that loop, in walking order. `None` when the walk reaches a step that waits
/// for no step left, which cannot happen for what Kahn's algorithm leaves over.
fn find_cycle(deps: &[Vec<usize>], left: &[bool], start: usize) -> Option<Vec<usize>> {
    let mut seen_at: Vec<Option<usize>> = vec![None; deps.len()];
    let mut walk = Vec::new();
    let mut current = start;
    loop {
        if let Some(at) = *seen_at.get(current)? {
            return Some(walk.split_off(at));
        }
        seen_at[current] = Some(walk.len());
        walk.push(current);
        current = *deps
            .get(current)?
            .iter()
            .find(|&&d| left.get(d).copied().unwrap_or(false))?;
    }
}

// ---------------------------------------------------------------------------------------
// Parsing with positions.
// ---------------------------------------------------------------------------------------

/// Reads a mission file (`.json` as JSON, anything else as YAML, as RustChain), then
/// parses and validates it with [`parse_mission`].
pub fn load_mission_file(path: &Path) -> Result<Mission, SourceError> {
    let text = read_mission_text(path)?;
    parse_mission(&text, SourceFormat::for_path(path), path)
}

/// Reads a mission file as text, refusing what no mission can be: a file larger than
/// [`MAX_MISSION_BYTES`] (refused after reading at most one byte more than that), or one
/// that is not UTF-8 (the error gives the line and column of the first bad byte, and says
/// so when the file looks like UTF-16).
pub fn read_mission_text(path: &Path) -> Result<String, SourceError> {
    let file = std::fs::File::open(path)
        .map_err(|e| SourceError::new(path, format!("cannot open the mission file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_MISSION_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SourceError::new(path, format!("cannot read the mission file: {e}")))?;
    if bytes.len() > MAX_MISSION_BYTES {
        return Err(too_large(path));
    }
    String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), &e.utf8_error()))
}

/// Parses and validates a mission read from `file` (used in errors only). The result is
/// a mission RustChain v0.1.0 would accept; the error is the first problem RustChain
/// would report, with the field path and, where known, the line.
pub fn parse_mission(
    text: &str,
    format: SourceFormat,
    file: &Path,
) -> Result<Mission, SourceError> {
    if text.len() > MAX_MISSION_BYTES {
        return Err(too_large(file));
    }
    let mission = match format {
        SourceFormat::Yaml => parse_yaml(text, file)?,
        SourceFormat::Json => parse_json(text, file)?,
    };
    if let Err(problem) = mission.validate() {
        let field = problem.field();
        let (line, column) = locate_field_position(text, format, &field).unzip();
        return Err(SourceError::new(file, problem.to_string())
            .with_field(field)
            .with_line(line, column));
    }
    Ok(mission)
}

/// Applies the input limits of this module (see the module documentation) to a whole
/// file, without parsing it into anything: the size, and for YAML the bracket count, the
/// nesting depth and the number of values after alias expansion. [`parse_mission`] and
/// [`crate::manifest::parse_package_block`] both call it, so each is safe on its own.
pub fn check_input_limits(
    text: &str,
    format: SourceFormat,
    file: &Path,
) -> Result<(), SourceError> {
    if text.len() > MAX_MISSION_BYTES {
        return Err(too_large(file));
    }
    match format {
        SourceFormat::Yaml => prescan_yaml(text, file).map(|_| ()),
        // serde_json has no aliases and stops at its own depth limit.
        SourceFormat::Json => Ok(()),
    }
}

/// The top-level keys RustChain reads, and the registry's `package`.
const KNOWN_TOP_LEVEL_KEYS: [&str; 6] = [
    "version",
    "name",
    "description",
    "steps",
    "config",
    "package",
];

/// Warnings for top-level keys that look like a misspelt `package:` block (`pakage`,
/// `packages`, `Package`): RustChain ignores unknown keys, so such a block is silently not
/// a package block at all, and the mission would be published without its manifest or
/// refused for lacking one. Empty when there is nothing to say, and for a file that does
/// not parse or breaks an input limit (the parser's error says more).
pub fn top_level_key_warnings(text: &str, format: SourceFormat) -> Vec<String> {
    if check_input_limits(text, format, Path::new("")).is_err() {
        return Vec::new();
    }
    let keys = match format {
        SourceFormat::Yaml => TopLevelKeys
            .deserialize(yaml_serde::Deserializer::from_str(text))
            .ok(),
        SourceFormat::Json => TopLevelKeys
            .deserialize(&mut serde_json::Deserializer::from_str(text))
            .ok(),
    }
    .unwrap_or_default();
    keys.into_iter()
        .filter(|key| !KNOWN_TOP_LEVEL_KEYS.contains(&key.as_str()) && looks_like_package(key))
        .map(|key| {
            let at =
                locate_field(text, format, &key).map_or(String::new(), |l| format!("line {l}: "));
            format!(
                "{at}the top-level key `{key}` is not a RustChain key, so RustChain ignores it \
                 and this file has no package block; it was probably meant as `package:`"
            )
        })
        .collect()
}

/// Whether a key is `package` give or take case and two typing mistakes.
fn looks_like_package(key: &str) -> bool {
    strsim::damerau_levenshtein(&key.to_lowercase(), "package") <= 2
}

/// Reads the keys of the top-level map, skipping every value without building it.
struct TopLevelKeys;

impl<'de> DeserializeSeed<'de> for TopLevelKeys {
    type Value = Vec<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<String>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevelKeys {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            keys.push(key);
        }
        Ok(keys)
    }
}

fn too_large(file: &Path) -> SourceError {
    SourceError::new(
        file,
        format!("the mission file is larger than {MAX_MISSION_BYTES} bytes (1 MiB), the most a mission may be"),
    )
}

fn not_utf8(file: &Path, bytes: &[u8], error: &std::str::Utf8Error) -> SourceError {
    let at = error.valid_up_to();
    let before = &bytes[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    // Characters, not bytes, before the bad byte on its line (the text up to it is UTF-8).
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = std::str::from_utf8(&before[line_start..])
        .map_or(at - line_start, |s| s.chars().count())
        + 1;
    let utf16 = if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        " (it looks like UTF-16; save it as UTF-8)"
    } else {
        ""
    };
    SourceError::new(
        file,
        format!(
            "the mission file is not valid UTF-8: byte 0x{:02X} at offset {at}{utf16}",
            bytes.get(at).copied().unwrap_or(0)
        ),
    )
    .with_line(Some(line), Some(column))
}

fn parse_yaml(text: &str, file: &Path) -> Result<Mission, SourceError> {
    let root = prescan_yaml(text, file)?;
    serde_path_to_error::deserialize(yaml_serde::Deserializer::from_str(text))
        .map_err(|e| yaml_error(text, file, &e.path().to_string(), e.inner(), root))
}

/// The YAML limits, before any real parse: the bracket count, then a walk of the
/// document that follows aliases as the real parse would but builds nothing, so an alias
/// bomb is refused cheaply. Any error here is one the real parse would also meet (a
/// syntax error, a bomb, a second document...), and a syntax error is the more useful
/// report: yaml_serde would otherwise report whatever field it was reading when the events
/// ran out. Returns what the document's root is ("a map", "a list", ...).
fn prescan_yaml(text: &str, file: &Path) -> Result<Option<&'static str>, SourceError> {
    check_flow_brackets(text, file)?;
    let budget = Cell::new(MAX_MISSION_NODES);
    let root = Cell::new(None);
    let mut track = serde_path_to_error::Track::new();
    let counted = CountNodes {
        budget: &budget,
        depth: 0,
        root: &root,
    }
    .deserialize(serde_path_to_error::Deserializer::new(
        yaml_serde::Deserializer::from_str(text),
        &mut track,
    ));
    match counted {
        Ok(()) => Ok(root.get()),
        Err(e) => Err(yaml_error(
            text,
            file,
            &track.path().to_string(),
            &e,
            root.get(),
        )),
    }
}

fn check_flow_brackets(text: &str, file: &Path) -> Result<(), SourceError> {
    let Some((at, _)) = text
        .char_indices()
        .filter(|&(_, c)| c == '[' || c == '{')
        .nth(MAX_YAML_BRACKETS)
    else {
        return Ok(());
    };
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Err(SourceError::new(
        file,
        format!(
            "the file holds more than {MAX_YAML_BRACKETS} `[` and `{{` characters; the YAML \
             parser slows down badly on deep nesting, so the registry refuses such files (put \
             large data in a separate file)"
        ),
    )
    .with_line(Some(line), Some(column)))
}

/// Turns a yaml_serde error into ours with [`source_error`], plus what only a whole
/// mission can say: an alias bomb, an empty document, a document that is not a map.
fn yaml_error(
    text: &str,
    file: &Path,
    path: &str,
    error: &yaml_serde::Error,
    root: Option<&'static str>,
) -> SourceError {
    let (line, column) = yaml_error_location(error);
    let full = error.to_string();
    if full.contains(TOO_MANY_NODES) {
        let message = format!(
            "the document expands to more than {MAX_MISSION_NODES} values through YAML aliases \
             (an alias bomb?); refused"
        );
        return source_error(text, SourceFormat::Yaml, file, path, message, line, column);
    }
    let mut error = source_error(text, SourceFormat::Yaml, file, path, full, line, column);
    if error.message == BOM_MESSAGE || error.message.contains("more than one YAML document") {
        return error;
    }
    if root == Some("empty") || (error.message == "EOF while parsing a value" && line.is_none()) {
        // yaml_serde reads an empty document as an empty map: "missing field `version`".
        let message = "the file holds no YAML document (it is empty or only comments); a \
                       mission needs `version`, `name` and `steps`";
        return SourceError::new(file, message).with_line(Some(1), Some(1));
    }
    if let Some(kind) = root.filter(|&k| k != "a map" && path == ".") {
        error.message = format!(
            "the document is {kind}, but a mission is a map with `version`, `name` and `steps` \
             ({})",
            error.message
        );
    }
    error
}

fn parse_json(text: &str, file: &Path) -> Result<Mission, SourceError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mission: Mission = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let (line, column) = json_error_location(e.inner());
        let path = e.path().to_string();
        source_error(
            text,
            SourceFormat::Json,
            file,
            &path,
            e.inner().to_string(),
            line,
            column,
        )
    })?;
    // As `serde_json::from_str`: nothing but whitespace may follow the value.
    de.end().map_err(|e| {
        let (line, column) = json_error_location(&e);
        source_error(
            text,
            SourceFormat::Json,
            file,
            ".",
            e.to_string(),
            line,
            column,
        )
    })?;
    Ok(mission)
}

const TOO_MANY_NODES: &str = "mission-index: too many YAML values";

/// Visits every value of a YAML document, following aliases, and fails once more than
/// the budget has been seen. Builds nothing.
struct CountNodes<'b> {
    budget: &'b Cell<usize>,
    /// Lists and maps around this value.
    depth: usize,
    /// What the document's root is ("a map", "a list", ...), for errors.
    root: &'b Cell<Option<&'static str>>,
}

impl CountNodes<'_> {
    fn seen<E>(&self, kind: &'static str) -> Result<(), E> {
        if self.depth == 0 {
            self.root.set(Some(kind));
        }
        Ok(())
    }

    fn inner(&self) -> Self {
        CountNodes {
            budget: self.budget,
            depth: self.depth + 1,
            root: self.root,
        }
    }
}

impl<'de> DeserializeSeed<'de> for CountNodes<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let Some(left) = self.budget.get().checked_sub(1) else {
            return Err(de::Error::custom(TOO_MANY_NODES));
        };
        self.budget.set(left);
        if self.depth >= MAX_NESTING_DEPTH {
            // yaml_serde's own limit: the real parse cannot descend further, so neither do
            // we (and ignoring does not follow aliases).
            IgnoredAny::deserialize(deserializer).map(|_| ())
        } else {
            deserializer.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for CountNodes<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.seen("a boolean")
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.seen("a number")
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        self.seen("a number")
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.seen("a number")
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        self.seen("a number")
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.seen("a number")
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.seen("a string")
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        self.seen("a string")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.seen("null")
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.seen("empty")
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.seen::<A::Error>("a list")?;
        while seq.next_element_seed(self.inner())?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.seen::<A::Error>("a map")?;
        while map.next_key_seed(self.inner())?.is_some() {
            map.next_value_seed(self.inner())?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`): count the value under the tag.
        self.seen::<A::Error>("a tagged value")?;
        let (IgnoredAny, variant) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn yaml(text: &str) -> Result<Mission, SourceError> {
        parse_mission(text, SourceFormat::Yaml, Path::new("m.yaml"))
    }

    fn yaml_err(text: &str) -> SourceError {
        match yaml(text) {
            Ok(m) => panic!("accepted, but should not be: {m:?}\n{text}"),
            Err(e) => e,
        }
    }

    fn json_err(text: &str) -> SourceError {
        match parse_mission(text, SourceFormat::Json, Path::new("m.json")) {
            Ok(m) => panic!("accepted, but should not be: {m:?}\n{text}"),
            Err(e) => e,
        }
    }

    /// A mission around the given `steps:` items (the first step is on line 4).
    fn with_steps(steps: &str) -> String {
        format!("version: '1.0'\nname: test\nsteps:\n{steps}")
    }

    const NOOP: &str = "  - id: a\n    name: A\n    step_type: noop\n    parameters: {}\n";

    #[test]
    fn reads_every_field_of_a_full_mission() {
        let m = yaml(
            "version: \"1.0\"\n\
             name: Full\n\
             description: Every field\n\
             config: {max_parallel_steps: 4, timeout_seconds: 600, fail_fast: false}\n\
             steps:\n\
             \x20 - id: write\n\
             \x20   name: Write\n\
             \x20   step_type: create_file\n\
             \x20   parameters: {path: out.txt, content: hi, mode: 420}\n\
             \x20   timeout_seconds: 30\n\
             \x20   continue_on_error: true\n\
             \x20 - id: show\n\
             \x20   name: Show\n\
             \x20   step_type: command\n\
             \x20   depends_on: [write]\n\
             \x20   parameters: {command: cat, args: [out.txt]}\n",
        )
        .unwrap();
        assert_eq!(m.version, "1.0");
        assert_eq!(m.name, "Full");
        assert_eq!(m.description.as_deref(), Some("Every field"));
        assert_eq!(
            m.config,
            Some(MissionConfig {
                max_parallel_steps: Some(4),
                timeout_seconds: Some(600),
                fail_fast: Some(false),
            })
        );
        assert_eq!(m.steps.len(), 2);
        let write = &m.steps[0];
        assert_eq!(write.step_type, StepType::CreateFile);
        assert_eq!(write.timeout_seconds, Some(30));
        assert_eq!(write.continue_on_error, Some(true));
        assert_eq!(write.depends_on, None);
        assert_eq!(
            write.parameters,
            json!({"path": "out.txt", "content": "hi", "mode": 420})
        );
        assert_eq!(m.steps[1].depends_on, Some(vec!["write".to_owned()]));
        assert_eq!(m.steps[1].parameters["args"], json!(["out.txt"]));
    }

    #[test]
    fn bare_yaml_numbers_are_read_as_their_text_where_a_string_is_expected() {
        let m = yaml(
            "version: 1.0\nname: 2024\nsteps:\n  - id: 1\n    name: 1.10\n    step_type: noop\n    parameters: {}\n",
        )
        .unwrap();
        assert_eq!(m.version, "1.0");
        assert_eq!(m.name, "2024");
        assert_eq!(m.steps[0].id, "1");
        // The text as written, not the number: 1.10 stays 1.10.
        assert_eq!(m.steps[0].name, "1.10");
    }

    #[test]
    fn json_is_strict_about_strings() {
        let e = json_err(
            r#"{"version": 1.0, "name": "n", "steps": [{"id": "a", "name": "A", "step_type": "noop", "parameters": {}}]}"#,
        );
        assert_eq!(e.field.as_deref(), Some("version"));
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("expected a string"), "{e}");
    }

    #[test]
    fn parameters_may_be_null_but_not_missing() {
        for null in ["parameters: null", "parameters: ~", "parameters:"] {
            let text = with_steps(&format!(
                "  - id: a\n    name: A\n    step_type: noop\n    {null}\n"
            ));
            assert_eq!(
                yaml(&text).unwrap().steps[0].parameters,
                serde_json::Value::Null,
                "{null}"
            );
        }
        let e = yaml_err(&with_steps(
            "  - id: a\n    name: A\n    step_type: noop\n    parameters: {}\n  - id: b\n    name: B\n    step_type: noop\n",
        ));
        assert_eq!(e.field.as_deref(), Some("steps[1].parameters"));
        assert_eq!(e.message, "missing field `parameters`");
        assert_eq!(e.line, Some(8), "the line where step b starts");
        assert_eq!(
            e.to_string(),
            "m.yaml:8: error: steps[1].parameters: missing field `parameters`"
        );
    }

    #[test]
    fn missing_mission_fields_are_named() {
        let e = yaml_err("version: '1'\nsteps: []\n");
        assert_eq!(e.field.as_deref(), Some("name"));
        assert_eq!(e.line, Some(1));
        let e = yaml_err("version: '1'\nname: n\n");
        assert_eq!(e.field.as_deref(), Some("steps"));
        let e = yaml_err(&with_steps(
            "  - id: a\n    step_type: noop\n    parameters: {}\n",
        ));
        assert_eq!(e.field.as_deref(), Some("steps[0].name"));
        assert_eq!(e.line, Some(4));
    }

    #[test]
    fn depends_on_must_be_a_list() {
        let e = yaml_err(&with_steps(&format!(
            "{NOOP}  - id: b\n    name: B\n    step_type: noop\n    depends_on: a\n    parameters: {{}}\n"
        )));
        assert_eq!(e.field.as_deref(), Some("steps[1].depends_on"));
        assert!(
            e.message
                .contains("invalid type: string \"a\", expected a sequence"),
            "{e}"
        );
        assert_eq!(e.line, Some(11));
        // null is "no dependencies"
        let m = yaml(&with_steps("  - id: a\n    name: A\n    step_type: noop\n    depends_on: null\n    parameters: {}\n")).unwrap();
        assert_eq!(m.steps[0].depends_on, None);
    }

    #[test]
    fn timeouts_are_unsigned_integers_and_flags_booleans() {
        let e = yaml_err(&with_steps(
            "  - id: a\n    name: A\n    step_type: noop\n    timeout_seconds: -5\n    parameters: {}\n",
        ));
        assert_eq!(e.field.as_deref(), Some("steps[0].timeout_seconds"));
        assert!(e.message.contains("-5"), "{e}");
        assert_eq!(e.line, Some(7));
        let e = yaml_err(&with_steps(
            "  - id: a\n    name: A\n    step_type: noop\n    timeout_seconds: \"30\"\n    parameters: {}\n",
        ));
        assert_eq!(e.field.as_deref(), Some("steps[0].timeout_seconds"));
        // YAML 1.2: `yes` is a string, not a boolean.
        let e = yaml_err(&with_steps(
            "  - id: a\n    name: A\n    step_type: noop\n    continue_on_error: yes\n    parameters: {}\n",
        ));
        assert_eq!(e.field.as_deref(), Some("steps[0].continue_on_error"));
        let e = yaml_err("version: '1'\nname: n\nconfig: {max_parallel_steps: -1}\nsteps: []\n");
        assert_eq!(e.field.as_deref(), Some("config.max_parallel_steps"));
        assert_eq!(e.line, Some(3));
    }

    fn step_type_of(written: &str) -> Result<StepType, SourceError> {
        yaml(&with_steps(&format!(
            "  - id: a\n    name: A\n    step_type: {written}\n    parameters: {{}}\n"
        )))
        .map(|m| m.steps[0].step_type)
    }

    #[test]
    fn step_types_by_name_legacy_tool_and_object_form() {
        for t in StepType::ALL {
            assert_eq!(step_type_of(t.as_str()).unwrap(), t);
            assert_eq!(step_type_of(&format!("\"{t}\"")).unwrap(), t);
        }
        assert_eq!(step_type_of("Tool").unwrap(), StepType::Tool);
        assert_eq!(
            step_type_of("{type: create_file}").unwrap(),
            StepType::CreateFile
        );
        assert_eq!(
            step_type_of("{type: http, metadata: {version: 1.2}, retries: [1, 2]}").unwrap(),
            StepType::Http
        );
        assert_eq!(step_type_of("{type: Tool}").unwrap(), StepType::Tool);

        let e = step_type_of("{metadata: x}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("steps[0].step_type.type"));
        assert_eq!(e.message, "missing field `type`");
        let e = step_type_of("{type: noop, type: http}").unwrap_err();
        assert!(e.message.contains("duplicate field `type`"), "{e}");
        let e = step_type_of("{type: CreateFile}").unwrap_err();
        assert!(e.message.contains("did you mean `create_file`"), "{e}");
        let e = step_type_of("7").unwrap_err();
        assert!(e.message.contains("invalid type: integer `7`"), "{e}");
        assert_eq!(e.field.as_deref(), Some("steps[0].step_type"));
    }

    #[test]
    fn step_types_are_case_sensitive_and_unknown_ones_are_named() {
        let e = step_type_of("CreateFile").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("steps[0].step_type"));
        assert_eq!(e.line, Some(6));
        assert_eq!(
            e.message,
            "unknown step type `CreateFile`: step types are snake_case and case-sensitive; did you mean `create_file`?"
        );
        assert!(step_type_of("TOOL")
            .unwrap_err()
            .message
            .contains("did you mean `tool`"));
        let e = step_type_of("create_fiel").unwrap_err();
        assert_eq!(
            e.message,
            "unknown step type `create_fiel`; did you mean `create_file`?"
        );
        let e = step_type_of("Policy").unwrap_err();
        assert!(
            e.message
                .starts_with("unknown step type `Policy`; RustChain accepts noop, create_file,"),
            "{e}"
        );
        for t in StepType::ALL {
            assert!(e.message.contains(t.as_str()), "{t} missing from {e}");
        }
    }

    #[test]
    fn a_mission_needs_a_step() {
        let e = yaml_err("version: '1'\nname: n\nsteps: []\n");
        assert_eq!(e.field.as_deref(), Some("steps"));
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("no steps"), "{e}");
    }

    #[test]
    fn step_ids_are_unique() {
        let e = yaml_err(&with_steps(&format!(
            "{NOOP}  - id: b\n    name: B\n    step_type: noop\n    parameters: {{}}\n  - id: a\n    name: A again\n    step_type: noop\n    parameters: {{}}\n"
        )));
        assert_eq!(e.field.as_deref(), Some("steps[2].id"));
        assert_eq!(e.line, Some(12));
        assert_eq!(e.message, "duplicate step id `a`: steps[0] already has it");
    }

    #[test]
    fn dependencies_must_exist() {
        let e = yaml_err(&with_steps(&format!(
            "{NOOP}  - id: b\n    name: B\n    step_type: noop\n    depends_on:\n      - a\n      - ghost\n    parameters: {{}}\n"
        )));
        assert_eq!(e.field.as_deref(), Some("steps[1].depends_on[1]"));
        assert_eq!(e.line, Some(13));
        assert_eq!(
            e.message,
            "step `b` depends on `ghost`, but no step has that id"
        );
    }

    #[test]
    fn dependency_cycles_are_refused() {
        let e = yaml_err(&with_steps(
            "  - id: a\n    name: A\n    step_type: noop\n    depends_on: [b]\n    parameters: {}\n\
             \x20 - id: b\n    name: B\n    step_type: noop\n    depends_on: [a]\n    parameters: {}\n",
        ));
        assert_eq!(e.field.as_deref(), Some("steps[0].depends_on[0]"));
        assert_eq!(e.line, Some(7));
        assert_eq!(
            e.message,
            "circular dependency: a -> b -> a (each step depends on the next)"
        );

        let e = yaml_err(&with_steps(&format!(
            "{NOOP}  - id: self\n    name: S\n    step_type: noop\n    depends_on: [a, self]\n    parameters: {{}}\n"
        )));
        assert_eq!(e.field.as_deref(), Some("steps[1].depends_on[1]"));
        assert_eq!(e.line, Some(11));
        assert_eq!(
            e.message,
            "circular dependency: step `self` depends on itself"
        );

        // A cycle behind a valid prefix, named from its first step in the file.
        let e = yaml_err(&with_steps(&format!(
            "{NOOP}  - id: x\n    name: X\n    step_type: noop\n    depends_on: [a, z]\n    parameters: {{}}\n\
             \x20 - id: y\n    name: Y\n    step_type: noop\n    depends_on: [x]\n    parameters: {{}}\n\
             \x20 - id: z\n    name: Z\n    step_type: noop\n    depends_on: [y]\n    parameters: {{}}\n"
        )));
        assert_eq!(e.field.as_deref(), Some("steps[1].depends_on[1]"));
        assert_eq!(
            e.message,
            "circular dependency: x -> z -> y -> x (each step depends on the next)"
        );
    }

    #[test]
    fn order_and_step_types() {
        let m = yaml(&with_steps(
            "  - {id: c, name: C, step_type: llm, depends_on: [b], parameters: {}}\n\
             \x20 - {id: a, name: A, step_type: command, parameters: {}}\n\
             \x20 - {id: b, name: B, step_type: create_file, depends_on: [a, a], parameters: {}}\n\
             \x20 - {id: d, name: D, step_type: command, parameters: {}}\n",
        ))
        .unwrap();
        assert_eq!(m.topological_order().unwrap(), vec![1, 2, 0, 3]);
        assert_eq!(
            m.step_types_used(),
            vec![StepType::Command, StepType::CreateFile, StepType::Llm]
        );
        let empty = Mission { steps: vec![], ..m };
        assert_eq!(empty.topological_order().unwrap(), Vec::<usize>::new());
        assert_eq!(empty.validate(), Err(ValidationError::NoSteps));
    }

    #[test]
    fn unknown_keys_are_ignored_everywhere() {
        let m = yaml(
            "package:\n  name: fix_it\n  version: 1.2.0\n  permissions: {network: false, commands: [cargo]}\n\
             version: '1'\nname: n\nauthor: someone\nconfig: {fail_fast: true, retries: 3}\n\
             steps:\n  - id: a\n    name: A\n    step_type: noop\n    parameters: {}\n    retry_count: 2\n    on_failure: abort\n    <<: {x: 1}\n",
        )
        .unwrap();
        assert_eq!(m.steps.len(), 1);
        assert_eq!(m.config.unwrap().fail_fast, Some(true));
    }

    #[test]
    fn json_missions() {
        let m = parse_mission(
            r#"{"version": "1.0", "name": "j", "metadata": {"x": 1},
                "steps": [{"id": "a", "name": "A", "step_type": "Tool", "parameters": null, "timeout": 30}]}"#,
            SourceFormat::Json,
            Path::new("m.json"),
        )
        .unwrap();
        assert_eq!(m.steps[0].step_type, StepType::Tool);
        assert_eq!(m.steps[0].parameters, serde_json::Value::Null);

        let e = json_err("{\"version\": \"1\", \"name\": \"j\",\n \"steps\": [\n  {\"id\": \"a\", \"name\": \"A\", \"step_type\": \"noop\"}\n ]}");
        assert_eq!(e.field.as_deref(), Some("steps[0].parameters"));
        assert_eq!(e.line, Some(3));
        assert_eq!(
            e.to_string(),
            "m.json:3: error: steps[0].parameters: missing field `parameters`"
        );

        let e = json_err(r#"{"version": "1", "name": "j", "steps": []} trailing"#);
        assert!(e.message.contains("trailing characters"), "{e}");
        assert_eq!(e.line, Some(1));

        let e = json_err("{\"version\": \"1\", \"name\": \"j\",\n \"steps\": [\n  {\"id\": \"a\", \"name\": \"A\", \"step_type\": \"noop\", \"parameters\": {}},\n  {\"id\": \"b\", \"name\": \"B\", \"step_type\": \"noop\", \"parameters\": {}, \"depends_on\": [\"nope\"]}\n ]}");
        assert_eq!(e.field.as_deref(), Some("steps[1].depends_on[0]"));
        assert_eq!(e.line, Some(4));

        let e = json_err("{\"version\": \"1\",\n \"name\": }");
        assert_eq!(e.line, Some(2));
        assert_eq!(e.message, "expected value");

        // YAML-only syntax is not JSON.
        let e = json_err("version: '1'\n");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn the_document_must_be_one_map() {
        let e = yaml_err("- version: '1'\n- name: n\n");
        assert!(
            e.message
                .starts_with("the document is a list, but a mission is a map"),
            "{e}"
        );
        assert_eq!(e.line, Some(1));
        let e = yaml_err("just some text\n");
        assert!(
            e.message
                .starts_with("the document is a string, but a mission is a map"),
            "{e}"
        );
        assert!(
            e.message
                .contains("invalid type: string \"just some text\""),
            "{e}"
        );
        assert_eq!(e.line, Some(1));
        let e = yaml_err("~\n");
        assert!(e.message.starts_with("the document is null"), "{e}");

        let e = yaml_err(&format!("{}---\nversion: '2'\n", with_steps(NOOP)));
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.message.contains("more than one YAML document"), "{e}");

        for empty in ["", "\n\n", "# only a comment\n"] {
            let e = yaml_err(empty);
            assert!(e.message.contains("holds no YAML document"), "{e}");
            assert_eq!(e.line, Some(1));
        }
        let e = json_err("");
        assert!(e.message.contains("EOF"), "{e}");
    }

    #[test]
    fn syntax_errors_give_the_line() {
        // The syntax error, not the missing `name` yaml_serde meets first in the events
        // before the error.
        let e = yaml_err("version: '1'\nname: n\nsteps:\n  - id: a\n   name: bad indent\n");
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.column, Some(4), "{e}");
        assert_eq!(e.field.as_deref(), Some("steps"), "{e}");
        assert_eq!(
            e.message,
            "did not find expected '-' indicator, while parsing a block collection at line 4 column 3"
        );
        let e = yaml_err("version: '1'\n\tname: n\n");
        assert_eq!(e.line, Some(2), "{e}");
        let e = yaml_err("version: '1'\nname: [unclosed\nsteps: []\n");
        assert!(e.line.is_some(), "{e}");
        let e = yaml_err("version: '1'\nname: *nowhere\nsteps: []\n");
        assert!(e.message.contains("unknown anchor"), "{e}");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn duplicate_keys() {
        // A repeated field is an error (serde's check, as in RustChain)...
        let e = yaml_err(&with_steps(
            "  - id: a\n    name: A\n    name: again\n    step_type: noop\n    parameters: {}\n",
        ));
        assert_eq!(e.field.as_deref(), Some("steps[0].name"));
        assert_eq!(e.message, "duplicate field `name`");
        // The line of the repeated key, not of the map holding it.
        assert_eq!(e.line, Some(6));
        let e = yaml_err("version: '1'\nname: n\nname: m\nsteps: []\n");
        assert_eq!(e.field.as_deref(), Some("name"));
        assert_eq!(e.line, Some(3));
        let e =
            json_err("{\"version\": \"1\",\n \"name\": \"n\",\n \"name\": \"m\", \"steps\": []}");
        assert_eq!(e.field.as_deref(), Some("name"));
        assert_eq!(e.line, Some(3));
        // ...but inside `parameters` RustChain keeps the last value, and so do we.
        let m = yaml(&with_steps(
            "  - id: a\n    name: A\n    step_type: noop\n    parameters: {path: x, path: y}\n",
        ))
        .unwrap();
        assert_eq!(m.steps[0].parameters, json!({"path": "y"}));
    }

    /// Runs `f` on a thread with a small stack, so a recursion bug shows up as a crash.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // 100 000 levels: YAML is refused before parsing (libyaml is quadratic in flow
        // depth); JSON reaches serde_json's recursion limit. Neither overflows a small stack.
        let open = "[".repeat(100_000);
        let text = with_steps(&format!(
            "  - id: a\n    name: A\n    step_type: noop\n    parameters: {open}\n"
        ));
        let started = Instant::now();
        let e = on_small_stack(move || yaml(&text).unwrap_err());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            e.message.contains("more than 10000 `[` and `{` characters"),
            "{e}"
        );
        // 4 spaces and `parameters: ` come before the brackets.
        assert_eq!(
            (e.line, e.column),
            (Some(7), Some(16 + MAX_YAML_BRACKETS + 1))
        );
        let text = format!("{{\"version\": \"1\", \"name\": \"n\", \"steps\": [{{\"id\": \"a\", \"parameters\": {open}");
        let e = on_small_stack(move || {
            parse_mission(&text, SourceFormat::Json, Path::new("m.json")).unwrap_err()
        });
        assert!(e.message.starts_with("recursion limit exceeded"), "{e}");
        assert_eq!(e.line, Some(1));

        // 300 levels, closed, where a value is read: both parsers stop at 128 levels.
        let closed = format!("{}{}", "[".repeat(300), "]".repeat(300));
        let text = with_steps(&format!(
            "  - id: a\n    name: A\n    step_type: noop\n    parameters: {closed}\n"
        ));
        let e = on_small_stack(move || yaml(&text).unwrap_err());
        assert_eq!(
            e.message,
            format!("recursion limit exceeded: lists and maps are nested more than {MAX_NESTING_DEPTH} levels deep")
        );
        assert_eq!(e.line, Some(7));
        assert!(
            e.field
                .as_deref()
                .unwrap()
                .starts_with("steps[0].parameters[0][0]"),
            "{e}"
        );
        let deep_json = format!("{{\"version\": \"1\", \"name\": \"n\", \"steps\": [{{\"id\": \"a\", \"name\": \"A\", \"step_type\": \"noop\", \"parameters\": {closed}}}]}}");
        let text = deep_json.clone();
        let e = on_small_stack(move || {
            parse_mission(&text, SourceFormat::Json, Path::new("m.json")).unwrap_err()
        });
        assert!(e.message.starts_with("recursion limit exceeded"), "{e}");
        assert_eq!(e.line, Some(1));

        // In a key RustChain ignores, YAML skips the value without descending, so RustChain
        // accepts it, and so do we. serde_json skips without descending too.
        let text = format!("extra: {closed}\n{}", with_steps(NOOP));
        let steps = on_small_stack(move || yaml(&text).map(|m| m.steps.len()));
        assert_eq!(steps.unwrap(), 1);
        let text = deep_json.replace("\"parameters\": [", "\"parameters\": {}, \"extra\": [");
        let steps = on_small_stack(move || {
            parse_mission(&text, SourceFormat::Json, Path::new("m.json")).map(|m| m.steps.len())
        });
        assert_eq!(steps.unwrap(), 1);
    }

    fn billion_laughs(indent: &str) -> String {
        let mut s = format!("{indent}a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for pair in names.windows(2) {
            let (prev, name) = (pair[0], pair[1]);
            s.push_str(&format!(
                "{indent}{name}: &{name} [{}]\n",
                vec![format!("*{prev}"); 9].join(", ")
            ));
        }
        s
    }

    fn assert_refused_quickly(text: String) {
        let started = Instant::now();
        let e = yaml(&text).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
        assert!(e.message.contains("alias bomb"), "{e}");
        assert!(e.line.is_some() || e.field.is_some(), "{e}");
    }

    #[test]
    fn alias_bombs_are_refused_quickly() {
        // In parameters, where RustChain would build every copy.
        assert_refused_quickly(with_steps(&format!(
            "  - id: a\n    name: A\n    step_type: noop\n    parameters:\n{}",
            billion_laughs("      ")
        )));
        // In a key RustChain ignores: refused too (the manifest reader would expand it).
        assert_refused_quickly(format!(
            "package:\n{}{}",
            billion_laughs("  "),
            with_steps(NOOP)
        ));
        // Inside the object form of a step type, read as JSON values by RustChain.
        assert_refused_quickly(with_steps(&format!(
            "  - id: a\n    name: A\n    parameters: {{}}\n    step_type:\n      type: noop\n{}",
            billion_laughs("      ")
        )));
        // Quadratic: one big anchor aliased many times, within the size limit.
        let big = vec!["x"; 20_000].join(", ");
        let aliases = vec!["*big"; 150_000].join(", ");
        let text = with_steps(&format!(
            "  - id: a\n    name: A\n    step_type: noop\n    parameters:\n      big: &big [{big}]\n      copies: [{aliases}]\n"
        ));
        assert!(text.len() < MAX_MISSION_BYTES);
        assert_refused_quickly(text);
    }

    #[test]
    fn modest_aliases_are_fine() {
        let m = yaml(&with_steps(
            "  - id: a\n    name: A\n    step_type: http\n    parameters: &common {url: 'http://x', retries: 3}\n\
             \x20 - id: b\n    name: B\n    step_type: http\n    parameters: *common\n",
        ))
        .unwrap();
        assert_eq!(m.steps[1].parameters, m.steps[0].parameters);
    }

    #[test]
    fn size_limit() {
        let padding = format!("# {}\n", "x".repeat(MAX_MISSION_BYTES));
        let text = format!("{padding}{}", with_steps(NOOP));
        let e = yaml_err(&text);
        assert!(e.message.contains("larger than 1048576 bytes"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, &text).unwrap();
        let e = load_mission_file(&path).unwrap_err();
        assert_eq!(e.file, path);
        assert!(e.message.contains("larger than"), "{e}");

        // Exactly at the limit is fine.
        let body = with_steps(NOOP);
        let fill = MAX_MISSION_BYTES - body.len() - 3;
        let text = format!("# {}\n{body}", "x".repeat(fill));
        assert_eq!(text.len(), MAX_MISSION_BYTES);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(load_mission_file(&path).unwrap().steps.len(), 1);
    }

    #[test]
    fn load_mission_file_reads_files() {
        let dir = tempfile::tempdir().unwrap();
        let yaml_path = dir.path().join("m.yaml");
        std::fs::write(&yaml_path, with_steps(NOOP)).unwrap();
        assert_eq!(load_mission_file(&yaml_path).unwrap().name, "test");

        // `.json` is parsed as JSON: the same YAML text is then an error.
        let json_path = dir.path().join("m.json");
        std::fs::write(&json_path, with_steps(NOOP)).unwrap();
        let e = load_mission_file(&json_path).unwrap_err();
        assert_eq!(e.file, json_path);
        assert_eq!(e.line, Some(1));

        let mut bytes = with_steps(NOOP).into_bytes();
        bytes.splice(16..16, [0xC3, 0x28]);
        let bad = dir.path().join("latin1.yaml");
        std::fs::write(&bad, &bytes).unwrap();
        let e = load_mission_file(&bad).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("not valid UTF-8: byte 0xC3"), "{e}");

        let utf16 = dir.path().join("utf16.yaml");
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(with_steps(NOOP).encode_utf16().flat_map(u16::to_le_bytes));
        std::fs::write(&utf16, &bytes).unwrap();
        assert!(load_mission_file(&utf16)
            .unwrap_err()
            .message
            .contains("UTF-16"));

        let e = load_mission_file(&dir.path().join("absent.yaml")).unwrap_err();
        assert!(e.message.starts_with("cannot open the mission file"), "{e}");
        let e = load_mission_file(dir.path()).unwrap_err();
        assert!(e.message.starts_with("cannot read the mission file"), "{e}");
    }

    #[test]
    fn yaml_tags_in_parameters_are_refused_as_rustchain_does() {
        let e = yaml_err(&with_steps(
            "  - id: a\n    name: A\n    step_type: noop\n    parameters: {x: !custom 1}\n",
        ));
        assert_eq!(e.line, Some(7));
        assert!(
            e.field
                .as_deref()
                .unwrap()
                .starts_with("steps[0].parameters"),
            "{e}"
        );
    }

    #[test]
    fn a_byte_order_mark_is_named_and_keeps_rustchain_verdict() {
        // libyaml (RustChain's and ours) skips the mark but counts it as a column, so the
        // first key is indented by one and the next line starts a second document: refused.
        let e = yaml_err(&format!("\u{feff}{}", with_steps(NOOP)));
        assert_eq!(
            e.to_string(),
            "m.yaml:1: error: the file starts with a UTF-8 byte-order mark; save it without one"
        );
        // serde_json refuses any mark.
        let e = json_err("\u{feff}{\"version\": \"1\", \"name\": \"n\", \"steps\": []}");
        assert_eq!(e.message, BOM_MESSAGE);
        // A one-line flow mapping after the mark is accepted by RustChain, and by us.
        let m = yaml(
            "\u{feff}{version: '1', name: n, steps: [{id: a, name: A, step_type: noop, parameters: {}}]}\n",
        )
        .unwrap();
        assert_eq!(m.steps.len(), 1);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bom.yaml");
        std::fs::write(&path, format!("\u{feff}{}", with_steps(NOOP))).unwrap();
        assert_eq!(load_mission_file(&path).unwrap_err().message, BOM_MESSAGE);
    }

    #[test]
    fn a_tab_used_as_indentation_is_named_with_its_column() {
        let e = yaml_err("version: '1'\nname: n\nsteps:\n\t- id: a\n");
        assert_eq!(e.line, Some(4), "{e}");
        assert!(
            e.message
                .starts_with("a tab at column 1: YAML cannot be indented with tabs"),
            "{e}"
        );
        let e = yaml_err(&with_steps("  - id: a\n    name: A\n  \tstep_type: noop\n"));
        assert!(
            e.message.contains("YAML cannot be indented with tabs"),
            "{e}"
        );
        assert_eq!(e.line, Some(6), "{e}");
        // A tab inside a value is fine.
        let m = yaml(&with_steps(
            "  - id: a\n    name: \"A\tB\"\n    step_type: noop\n    parameters: {}\n",
        ))
        .unwrap();
        assert_eq!(m.steps[0].name, "A\tB");
    }

    #[test]
    fn read_mission_text_checks_size_and_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        std::fs::write(&path, "name: é\n").unwrap();
        assert_eq!(read_mission_text(&path).unwrap(), "name: é\n");

        // The bad byte on line 2, after `é` (one character, two bytes) and a space.
        std::fs::write(&path, b"a: 1\n\xC3\xA9 \xFF\n").unwrap();
        let e = read_mission_text(&path).unwrap_err();
        assert_eq!((e.line, e.column), (Some(2), Some(3)), "{e}");
        assert!(e.message.contains("byte 0xFF at offset 8"), "{e}");

        std::fs::write(&path, vec![b'#'; MAX_MISSION_BYTES + 1]).unwrap();
        let e = read_mission_text(&path).unwrap_err();
        assert!(e.message.contains("larger than"), "{e}");
        std::fs::write(&path, vec![b'#'; MAX_MISSION_BYTES]).unwrap();
        assert_eq!(read_mission_text(&path).unwrap().len(), MAX_MISSION_BYTES);

        std::fs::write(&path, [0xFE, 0xFF, 0, b'a']).unwrap();
        assert!(read_mission_text(&path)
            .unwrap_err()
            .message
            .contains("UTF-16"));
    }

    #[test]
    fn the_cycle_walk_never_yields_a_partial_answer() {
        // 0 -> 1 -> 2 -> 1
        let deps = vec![vec![1], vec![2], vec![1]];
        assert_eq!(find_cycle(&deps, &[true; 3], 0), Some(vec![1, 2]));
        // Inconsistent input (step 1 waits for nothing left): no cycle, and so
        // `topological_order` reports an internal error rather than an incomplete order.
        assert_eq!(find_cycle(&deps, &[true, true, false], 0), None);
        assert_eq!(find_cycle(&[vec![5]], &[true], 0), None);
        let e = ValidationError::Internal { detail: "x" };
        assert_eq!(e.field(), "steps");
        assert!(e.to_string().contains("internal error"), "{e}");
    }

    #[test]
    fn a_misspelt_package_block_is_warned_about() {
        for key in ["pakage", "packages", "Package", "pacakge", "PACKAGE"] {
            let text = format!("{}{key}:\n  name: demo\n", with_steps(NOOP));
            let warnings = top_level_key_warnings(&text, SourceFormat::Yaml);
            assert_eq!(warnings.len(), 1, "{key}: {warnings:?}");
            assert!(
                warnings[0].starts_with("line 8: the top-level key"),
                "{warnings:?}"
            );
            assert!(warnings[0].contains(&format!("`{key}`")), "{warnings:?}");
            assert!(warnings[0].contains("RustChain ignores it"), "{warnings:?}");
            assert!(warnings[0].contains("meant as `package:`"), "{warnings:?}");
        }
        for fine in ["package", "metadata", "author", "pack", "config"] {
            let text = format!("{}{fine}:\n  name: demo\n", with_steps(NOOP));
            assert_eq!(
                top_level_key_warnings(&text, SourceFormat::Yaml),
                Vec::<String>::new(),
                "{fine}"
            );
        }
        let json = r#"{"version": "1", "name": "n", "steps": [],
 "pakage": {"name": "demo"}}"#;
        let warnings = top_level_key_warnings(json, SourceFormat::Json);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("line 2: "), "{warnings:?}");
        // Nothing to say about text that does not parse, or a bomb.
        assert!(top_level_key_warnings("pakage: [\n", SourceFormat::Yaml).is_empty());
        assert!(top_level_key_warnings(
            &format!("pakage:\n{}", billion_laughs("  ")),
            SourceFormat::Yaml
        )
        .is_empty());
    }
}
