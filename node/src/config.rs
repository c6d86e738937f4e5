//! `node.toml`: the node's settings (documented in `registry-template/node.toml`, which is
//! also the file written into a new data folder).

use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

/// The commented default file, as written into a new data folder.
pub const DEFAULT_NODE_TOML: &str = include_str!("../../registry-template/node.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    #[serde(default)]
    pub public_url: String,
    #[serde(default)]
    pub auth_required: bool,
    #[serde(default = "yes")]
    pub seed_library: bool,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub snapshot: SnapshotSettings,
    #[serde(default)]
    pub execution: ExecutionSettings,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_archive_bytes: u64,
    pub max_publish_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_archive_bytes: 10 << 20,
            max_publish_body_bytes: 11 << 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSettings {
    pub validity_hours: u64,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        SnapshotSettings {
            validity_hours: 168,
        }
    }
}

/// `[execution]`: missions run on the node (`POST /api/v1/missions/{name}/execute`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionSettings {
    /// Runs waiting for a free runner; when the queue is full, requests get 503.
    pub queue: usize,
    /// Runs at the same time.
    pub concurrency: usize,
    /// Runs one user may have queued or running at once (more get 429).
    pub per_user_running: usize,
    /// Runs one user may start in any hour (more get 429).
    pub per_user_per_hour: usize,
    /// Hosts runs may reach (`*.example.org` covers subdomains); empty: no network.
    pub allow_hosts: Vec<String>,
    /// Whether `llm` steps may call the endpoint in the node's `MISSION_LLM_URL` /
    /// `MISSION_LLM_MODEL` environment; off: they are refused.
    pub llm: bool,
    /// The longest one run may take, whatever the mission declares.
    pub max_duration_seconds: u64,
    /// Whether runs see the node's rustup toolchain (read-only `RUSTUP_HOME` and
    /// `CARGO_HOME/bin`), so `compile_code`/`run_tests` for Rust work; off: they see `/usr`'s
    /// programs only.
    pub host_toolchains: bool,
}

impl Default for ExecutionSettings {
    fn default() -> Self {
        ExecutionSettings {
            queue: 32,
            concurrency: 2,
            per_user_running: 2,
            per_user_per_hour: 60,
            allow_hosts: Vec::new(),
            llm: false,
            max_duration_seconds: 600,
            host_toolchains: false,
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl NodeConfig {
    /// Parses `text` (the content of `path`, used in errors).
    pub fn parse(text: &str, path: &Path) -> Result<NodeConfig, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let config: NodeConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if mission_index::name::validate_name(&config.name).is_err() {
            return Err(invalid(format!(
                "name: `{}` must be letters, digits, `-` and `_`, starting with a letter",
                config.name
            )));
        }
        if config.snapshot.validity_hours == 0 {
            return Err(invalid("snapshot.validity_hours must be at least 1".into()));
        }
        let exec = &config.execution;
        for (key, value) in [
            ("queue", exec.queue),
            ("concurrency", exec.concurrency),
            ("per_user_running", exec.per_user_running),
            ("per_user_per_hour", exec.per_user_per_hour),
            ("max_duration_seconds", exec.max_duration_seconds as usize),
        ] {
            if value == 0 {
                return Err(invalid(format!("execution.{key} must be at least 1")));
            }
        }
        let url = &config.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(format!(
                "public_url: `{}` must start with http:// or https://",
                config.public_url
            )));
        }
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        NodeConfig::parse(&text, path)
    }

    /// The base URL clients use: `public_url`, or `http://LISTEN`.
    pub fn base_url(&self, listen: &str) -> String {
        if self.public_url.is_empty() {
            format!("http://{listen}")
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_with_its_defaults() {
        let c = NodeConfig::parse(DEFAULT_NODE_TOML, Path::new("node.toml")).unwrap();
        assert_eq!(c.name, "local");
        assert!(c.seed_library);
        assert_eq!(c.limits.max_archive_bytes, 10 << 20);
        assert_eq!(c.base_url("127.0.0.1:7878"), "http://127.0.0.1:7878");
        assert_eq!(c.execution.queue, 32);
        assert_eq!(c.execution.concurrency, 2);
        assert!(c.execution.allow_hosts.is_empty() && !c.execution.llm);
    }

    #[test]
    fn files_without_an_execution_table_get_its_defaults() {
        let c = NodeConfig::parse("name = \"a\"\n", Path::new("n.toml")).unwrap();
        assert_eq!(c.execution.per_user_running, 2);
        assert_eq!(c.execution.per_user_per_hour, 60);
        let c = NodeConfig::parse(
            "name = \"a\"\n[execution]\nper_user_running = 1\n",
            Path::new("n.toml"),
        )
        .unwrap();
        assert_eq!(c.execution.per_user_running, 1);
        assert_eq!(c.execution.queue, 32);
        let err = NodeConfig::parse(
            "name = \"a\"\n[execution]\nconcurrency = 0\n",
            Path::new("n.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("execution.concurrency"), "{err}");
    }

    #[test]
    fn mistakes_are_named() {
        let err = NodeConfig::parse("name = \"x\"\nsnapshots = 1\n", Path::new("n.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("n.toml") && err.contains("snapshots"), "{err}");
        let err = NodeConfig::parse("name = \"bad name\"\n", Path::new("n.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad name"), "{err}");
        let err = NodeConfig::parse(
            "name = \"a\"\npublic_url = \"ftp://x\"\n",
            Path::new("n.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("public_url"), "{err}");
    }
}
