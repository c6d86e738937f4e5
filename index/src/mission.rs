//! RustChain missions: the model, the parser and the validator (ARCHITECTURE section 2,
//! `../shared/conformance/README.md`). Parsing and validation are being written.

use schemars::JsonSchema;
use serde::Serialize;

/// A RustChain mission, as RustChain v0.1.0 reads it. Unknown keys are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, JsonSchema)]
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
