//! Which node a command talks to, and with which token, in cargo's habits.
//!
//! Registries are named in `MISSION_HOME/config.toml`:
//!
//! ```toml
//! [registry]
//! default = "local"            # used when --registry is not given
//!
//! [registries.local]
//! index = "sparse+http://127.0.0.1:7878/index/"   # or the node's base URL
//! ```
//!
//! `--registry` takes such a name or a URL: the node's base URL (`http://127.0.0.1:7878`)
//! or its sparse index URL (`sparse+http://127.0.0.1:7878/index/`), from which the base
//! URL is derived. Every route of a node hangs off its base URL (`/api/v1/...`,
//! `/git/...`, `/index/...`).
//!
//! Tokens live in `MISSION_HOME/credentials.toml` (`[registries.KEY] token = "..."`, KEY
//! being the registry's name, or its base URL when it has none), a file only its owner
//! may read: it is created with mode 0600 and replaced atomically. `MISSION_TOKEN`
//! overrides every stored token, and `MISSION_REGISTRIES_<NAME>_TOKEN` (the name
//! upper-cased, `-` as `_`) the token of one named registry, as cargo's
//! `CARGO_REGISTRIES_<NAME>_TOKEN` does.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::home;

/// The environment variable that overrides every stored token.
pub const TOKEN_ENV: &str = "MISSION_TOKEN";

/// `MISSION_HOME/config.toml`, as far as registries go.
#[derive(Debug, Default, Deserialize)]
struct Config {
    #[serde(default)]
    registry: RegistrySection,
    #[serde(default)]
    registries: BTreeMap<String, RegistryConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct RegistrySection {
    default: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RegistryConfig {
    index: String,
}

/// A resolved registry: where it is and under which key its token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The name in `config.toml`, when the registry has one.
    pub name: Option<String>,
    /// The node's base URL, without a trailing `/`: `http://127.0.0.1:7878`.
    pub base_url: String,
}

impl Registry {
    /// The key of this registry's token in `credentials.toml`: its name, else its base URL.
    pub fn key(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.base_url)
    }

    /// How to name this registry on the command line (`--registry X`).
    pub fn display(&self) -> &str {
        self.key()
    }

    /// `BASE/path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The environment variable holding this registry's token, when it has a name.
    pub fn token_env(&self) -> Option<String> {
        self.name.as_ref().map(|name| {
            format!(
                "MISSION_REGISTRIES_{}_TOKEN",
                name.to_ascii_uppercase().replace('-', "_")
            )
        })
    }
}

/// The base URL of a node from a URL a user gives: the base URL itself, or the sparse
/// index URL `sparse+http://HOST/index/`.
pub fn base_url_from(url: &str) -> Result<String> {
    let trimmed = url.trim();
    let plain = trimmed.strip_prefix("sparse+").unwrap_or(trimmed);
    let Some((scheme, rest)) = plain.split_once("://") else {
        bail!("`{url}` is not a URL: give http://HOST[:PORT] or sparse+http://HOST/index/");
    };
    if scheme != "http" && scheme != "https" {
        bail!("`{url}`: a registry URL starts with http:// or https:// (or sparse+http://)");
    }
    if rest.is_empty() || rest.starts_with('/') {
        bail!("`{url}` has no host");
    }
    if rest.contains(['?', '#']) {
        bail!("`{url}`: a registry URL has no query or fragment");
    }
    let mut base = plain.trim_end_matches('/');
    if let Some(stripped) = base.strip_suffix("/index") {
        // Only the sparse form names the index; `http://host/index` could be a node
        // mounted under /index, but that is the index URL's shape, so read it as one.
        base = stripped;
    }
    if base.len() <= scheme.len() + 3 {
        bail!("`{url}` has no host");
    }
    Ok(base.to_owned())
}

fn looks_like_url(arg: &str) -> bool {
    arg.contains("://")
}

fn config_path() -> Result<PathBuf> {
    Ok(home::mission_home()?.join("config.toml"))
}

fn credentials_path() -> Result<PathBuf> {
    Ok(home::mission_home()?.join("credentials.toml"))
}

fn load_config() -> Result<(PathBuf, Config)> {
    let path = config_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((path, Config::default())),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let config: Config =
        toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok((path, config))
}

/// The registry `--registry` names (a name from `config.toml` or a URL), or the
/// configured default when `arg` is `None`.
pub fn resolve(arg: Option<&str>) -> Result<Registry> {
    let (path, config) = load_config()?;
    let configured = |name: &str| -> Result<Registry> {
        let Some(entry) = config.registries.get(name) else {
            let known: Vec<&str> = config.registries.keys().map(String::as_str).collect();
            let known = if known.is_empty() {
                format!("none are configured in {}", path.display())
            } else {
                format!("configured in {}: {}", path.display(), known.join(", "))
            };
            bail!("no registry named `{name}` ({known}); pass its URL with --registry http://HOST:PORT or add `[registries.{name}] index = \"...\"`");
        };
        let base_url = base_url_from(&entry.index)
            .with_context(|| format!("{}: `registries.{name}.index`", path.display()))?;
        Ok(Registry {
            name: Some(name.to_owned()),
            base_url,
        })
    };
    match arg {
        Some(arg) if looks_like_url(arg) => {
            let base_url = base_url_from(arg)?;
            // A URL of a configured registry shares that registry's stored token.
            let name = config.registries.iter().find_map(|(name, entry)| {
                (base_url_from(&entry.index).ok().as_deref() == Some(base_url.as_str()))
                    .then(|| name.clone())
            });
            Ok(Registry { name, base_url })
        }
        Some(name) => configured(name),
        None => match &config.registry.default {
            Some(name) => configured(name),
            None => bail!(
                "no registry given: pass --registry NAME|URL, or set `[registry] default = \"NAME\"` in {}",
                path.display()
            ),
        },
    }
}

/// The stored credentials: the whole file, so saving one token keeps everything else.
fn load_credentials(path: &Path) -> Result<toml::Table> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(toml::Table::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                eprintln!(
                    "warning: {} has mode {mode:o}: other users can read your tokens (chmod 600 it)",
                    path.display()
                );
            }
        }
    }
    text.parse::<toml::Table>()
        .with_context(|| format!("reading {}", path.display()))
}

fn stored_token(table: &toml::Table, key: &str) -> Option<String> {
    table
        .get("registries")?
        .as_table()?
        .get(key)?
        .as_table()?
        .get("token")?
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn env_token(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Where a token came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Env(String),
    File(PathBuf),
}

/// The token for `registry`: `MISSION_TOKEN`, else `MISSION_REGISTRIES_<NAME>_TOKEN`, else
/// the stored one (under the registry's name, then under its base URL).
pub fn token(registry: &Registry) -> Result<(String, TokenSource)> {
    if let Some(token) = env_token(TOKEN_ENV) {
        return Ok((token, TokenSource::Env(TOKEN_ENV.to_owned())));
    }
    if let Some(var) = registry.token_env() {
        if let Some(token) = env_token(&var) {
            return Ok((token, TokenSource::Env(var)));
        }
    }
    let path = credentials_path()?;
    let table = load_credentials(&path)?;
    let keys = [Some(registry.key()), Some(registry.base_url.as_str())];
    for key in keys.into_iter().flatten() {
        if let Some(token) = stored_token(&table, key) {
            return Ok((token, TokenSource::File(path)));
        }
    }
    bail!(
        "no token for the registry `{}`: run `mission login --registry {}`, or set {TOKEN_ENV}",
        registry.display(),
        registry.display()
    )
}

/// Stores `token` for `registry` in `credentials.toml` and returns the file's path. The
/// file is written to a temporary file created with mode 0600 and renamed over the old
/// one, so it is never readable by others, not even for a moment, and never half-written.
pub fn store_token(registry: &Registry, token: &str) -> Result<PathBuf> {
    let path = credentials_path()?;
    let dir = path
        .parent()
        .context("the credentials file has no folder")?
        .to_owned();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut table = load_credentials(&path)?;
    let registries = table
        .entry("registries")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(registries) = registries.as_table_mut() else {
        bail!("{}: `registries` is not a table", path.display());
    };
    let mut entry = toml::Table::new();
    entry.insert("token".into(), toml::Value::String(token.to_owned()));
    registries.insert(registry.key().to_owned(), toml::Value::Table(entry));
    let text = toml::to_string(&table).context("writing the credentials as TOML")?;

    // Through a tempfile temporary file, created with mode 0600 on Unix (O_CREAT with
    // 0600, O_EXCL), synced, then renamed.
    mission_index::atomic_file::write_synced(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------
// Talking to a node's JSON API.

/// A node's answer: its status and its JSON body (`Null` when the body is empty or not
/// JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: serde_json::Value,
    pub text: String,
}

/// An authenticated client of one node's API.
pub struct Client {
    agent: ureq::Agent,
    pub registry: Registry,
    token: String,
}

impl Client {
    /// A client for `registry` with its token (see [`token`]).
    pub fn new(registry: Registry) -> Result<Client> {
        let (token, _) = token(&registry)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Ok(Client {
            agent,
            registry,
            token,
        })
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// `METHOD BASE/path` with an optional JSON body.
    pub fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer> {
        let url = self.registry.url(path);
        let auth = self.bearer();
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", None) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            ("DELETE", Some(body)) => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .force_send_body()
                .send_json(body),
            ("PUT", Some(body)) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .send_json(body),
            ("PUT", None) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .send_empty(),
            ("POST", Some(body)) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_json(body),
            _ => bail!("internal: unsupported request {method} {path}"),
        };
        finish(method, &url, sent)
    }

    /// `POST BASE/path` with a binary body.
    pub fn post_bytes(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Answer> {
        let url = self.registry.url(path);
        let sent = self
            .agent
            .post(&url)
            .header("Authorization", &self.bearer())
            .content_type(content_type)
            .send(body);
        finish("POST", &url, sent)
    }

    /// Fails with the node's own words unless the answer is a success. A 401 adds how to
    /// log in.
    pub fn expect_success(&self, answer: Answer) -> Result<Answer> {
        if (200..300).contains(&answer.status) {
            return Ok(answer);
        }
        let details = error_details(&answer);
        let mut message = if details.is_empty() {
            format!("the node answered HTTP {}", answer.status)
        } else {
            details.join("\n       ")
        };
        if answer.status == 401 {
            message.push_str(&format!(
                "\n       (run `mission login --registry {}` with a valid token)",
                self.registry.display()
            ));
        }
        bail!(message)
    }
}

fn finish(
    method: &str,
    url: &str,
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Answer> {
    let mut response = sent.with_context(|| format!("{method} {url}: the node did not answer"))?;
    let status = response.status().as_u16();
    let mut text = String::new();
    response
        .body_mut()
        .as_reader()
        .take(4 * 1024 * 1024)
        .read_to_string(&mut text)
        .with_context(|| format!("{method} {url}: reading the answer"))?;
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Ok(Answer { status, json, text })
}

/// The `detail` of each error in `{"errors":[{"detail":"..."}]}`, else the body's text.
pub fn error_details(answer: &Answer) -> Vec<String> {
    let details: Vec<String> = answer
        .json
        .get("errors")
        .and_then(|e| e.as_array())
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.get("detail").and_then(|d| d.as_str()))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if details.is_empty() && !answer.text.trim().is_empty() && answer.json.is_null() {
        return vec![format!(
            "HTTP {}: {}",
            answer.status,
            answer.text.trim().chars().take(500).collect::<String>()
        )];
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_come_from_base_and_sparse_urls() {
        for (given, base) in [
            ("http://127.0.0.1:7878", "http://127.0.0.1:7878"),
            ("http://127.0.0.1:7878/", "http://127.0.0.1:7878"),
            (
                "sparse+http://127.0.0.1:7878/index/",
                "http://127.0.0.1:7878",
            ),
            (
                "sparse+https://reg.example.org/index",
                "https://reg.example.org",
            ),
            ("https://example.org/mission", "https://example.org/mission"),
        ] {
            assert_eq!(base_url_from(given).unwrap(), base, "{given}");
        }
        for bad in [
            "ftp://x",
            "http://",
            "sparse+http:///index/",
            "127.0.0.1:7878",
            "http://h/?q",
        ] {
            let err = base_url_from(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn named_registries_have_cargo_style_token_variables() {
        let r = Registry {
            name: Some("my-node".into()),
            base_url: "http://h".into(),
        };
        assert_eq!(
            r.token_env().as_deref(),
            Some("MISSION_REGISTRIES_MY_NODE_TOKEN")
        );
        assert_eq!(r.key(), "my-node");
        let r = Registry {
            name: None,
            base_url: "http://h".into(),
        };
        assert_eq!(r.token_env(), None);
        assert_eq!(r.key(), "http://h");
        assert_eq!(r.url("/api/v1/x"), "http://h/api/v1/x");
    }

    #[test]
    fn node_errors_are_read_from_their_json() {
        let answer = Answer {
            status: 409,
            json: serde_json::json!({"errors":[{"detail":"version exists"},{"detail":"two"}]}),
            text: String::new(),
        };
        assert_eq!(error_details(&answer), vec!["version exists", "two"]);
        let answer = Answer {
            status: 502,
            json: serde_json::Value::Null,
            text: "Bad gateway".into(),
        };
        assert_eq!(error_details(&answer), vec!["HTTP 502: Bad gateway"]);
    }
}
