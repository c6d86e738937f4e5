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
//!
//! [registries.mirror]
//! index = "git+http://127.0.0.1:7878/git/index.git"   # the index read over git
//! ```
//!
//! `--registry` takes such a name or a URL. The URLs a registry may be given as:
//! - the node's base URL, `http(s)://HOST[:PORT][/PATH]`;
//! - its sparse index URL, `sparse+http(s)://HOST/index/`;
//! - its git index URL, `git+http(s)://HOST/git/index.git`, or the same without `git+`
//!   (as for cargo, a URL ending in `.git` is a git index). The index is then cloned and
//!   fetched with git (see [`crate::sparse_client`]); a git URL of another shape is
//!   refused, as the node's other routes could not be found from it.
//!
//! The node's base URL is derived from each (the sparse URL without `/index/`, the git URL
//! without `/git/index.git`). Every route of a node hangs off its base URL (`/api/v1/...`,
//! `/git/...`, `/index/...`), so the API, the downloads (`dl` of `config.json`) and the
//! signed snapshot (`/index/snapshot.json`) come from there whichever way the index is read.
//!
//! Environment overrides, as cargo's `CARGO_REGISTRIES_<NAME>_INDEX` and
//! `CARGO_REGISTRY_DEFAULT` (`<NAME>` is the registry name upper-cased, `-` as `_`):
//! - `MISSION_REGISTRIES_<NAME>_INDEX` sets registry NAME's index URL, overriding
//!   `config.toml`, and defines NAME when `config.toml` has no such registry;
//! - `MISSION_REGISTRY_DEFAULT` overrides `[registry] default`.
//!
//! **In missions.lock** a registry is recorded by where it is, not by the name one user gave
//! it: its index URL spelled one way ([`Location::index_url`]: `sparse+BASE/index/` or
//! `git+BASE/git/index.git`), as Cargo.lock records a `source`. A URL read back from a lock
//! (as any URL given to `--registry`) is the registry configured for that place when there
//! is one (in config.toml or as `MISSION_REGISTRIES_<NAME>_INDEX`; the default first), so
//! its token and node key apply; else it is used as it is.
//!
//! Keys of `[registry]` (`default`) and `[registries.NAME]` (`index`, `node-key`) that this
//! client does not know are reported with a warning naming the key and the file, as cargo
//! warns about unused keys. (`[trust]` belongs to [`crate::trust`].) A name that is neither
//! configured nor a URL is refused with the closest configured names, and, when it came
//! from `[registry] default` or `MISSION_REGISTRY_DEFAULT`, says so; an address without
//! its scheme (`localhost:7878`) is told to take one.
//!
//! Tokens live in `MISSION_HOME/credentials.toml` (`[registries.KEY] token = "..."`, KEY
//! being the registry's name, or its base URL when it has none), a file only its owner
//! may read: it is created with mode 0600 and replaced atomically. `MISSION_TOKEN`
//! overrides every stored token, and `MISSION_REGISTRIES_<NAME>_TOKEN` the token of one
//! named registry, as cargo's `CARGO_REGISTRIES_<NAME>_TOKEN` does. A token a node refuses
//! that came from one of these variables is reported as such: `mission login` cannot
//! replace it while the variable is set.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::home;

/// The environment variable that overrides every stored token.
pub const TOKEN_ENV: &str = "MISSION_TOKEN";

/// The environment variable that overrides `[registry] default`.
pub const DEFAULT_ENV: &str = "MISSION_REGISTRY_DEFAULT";

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
    /// Optional here: `MISSION_REGISTRIES_<NAME>_INDEX` may give it (and `node-key` alone
    /// is a valid entry for it).
    index: Option<String>,
}

/// The keys this client reads in `[registry]` and in each `[registries.NAME]`.
/// The tables of config.toml: `[trust]` is read by `crate::trust`, which checks its keys.
const TOP_KEYS: &[&str] = &["registry", "registries", "trust"];
const REGISTRY_KEYS: &[&str] = &["default"];
const REGISTRIES_KEYS: &[&str] = &["index", "node-key"];

/// A resolved registry: where it is and under which key its token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The name in `config.toml`, when the registry has one.
    pub name: Option<String>,
    /// The node's base URL, without a trailing `/`: `http://127.0.0.1:7878`.
    pub base_url: String,
    /// The index's git URL in its `git+` form (`git+http://127.0.0.1:7878/git/index.git`)
    /// when the index is read over git; `None` for the sparse index.
    pub git_index: Option<String>,
}

impl Registry {
    /// A registry reading the sparse index of the node at `base_url`.
    #[cfg(test)]
    pub fn sparse(name: Option<String>, base_url: impl Into<String>) -> Registry {
        Registry {
            name,
            base_url: base_url.into(),
            git_index: None,
        }
    }

    /// The key of this registry's token in `credentials.toml` and of its entry in the
    /// trust store: its name, else its git index URL (`git+...`), else its base URL.
    pub fn key(&self) -> &str {
        self.name
            .as_deref()
            .or(self.git_index.as_deref())
            .unwrap_or(&self.base_url)
    }

    /// The URL git fetches the index from (`http://HOST/git/index.git`), for a git index.
    pub fn git_url(&self) -> Option<&str> {
        self.git_index
            .as_deref()
            .map(|u| u.strip_prefix("git+").unwrap_or(u))
    }

    /// Where this registry is, as [`parse_url`] reads it.
    pub fn location(&self) -> Location {
        Location {
            base_url: self.base_url.clone(),
            git_index: self.git_index.clone(),
        }
    }

    /// The registry as missions.lock records it: its index URL, spelled one way (see
    /// [`Location::index_url`]), whatever name or URL it was given as.
    pub fn index_url(&self) -> String {
        self.location().index_url()
    }

    /// How to name this registry on the command line (`--registry X`).
    pub fn display(&self) -> &str {
        self.key()
    }

    /// `BASE/path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Whether a lock's `registry` field, `recorded` (a name from config.toml or a URL),
    /// names this registry: its name, or a name or URL leading to the same node (however
    /// its index is read).
    pub fn locked_from(&self, recorded: &str) -> bool {
        self.locked_from_in(recorded, &|name| resolve(Some(name)).ok())
    }

    fn locked_from_in(&self, recorded: &str, by_name: &dyn Fn(&str) -> Option<Registry>) -> bool {
        let recorded = recorded.trim();
        if recorded == self.key() || self.name.as_deref() == Some(recorded) {
            return true;
        }
        let base = if looks_like_url(recorded) {
            parse_url(recorded).ok().map(|l| l.base_url)
        } else {
            by_name(recorded).map(|r| r.base_url)
        };
        // Both spelled by parse_url, which lower-cases the host: the path keeps its case.
        base.is_some_and(|base| base == self.base_url)
    }

    /// The environment variable holding this registry's token, when it has a name.
    pub fn token_env(&self) -> Option<String> {
        self.name.as_deref().map(|name| name_env(name, "TOKEN"))
    }
}

/// `MISSION_REGISTRIES_<NAME>_<WHAT>`: the name upper-cased, `-` as `_`.
pub fn name_env(name: &str, what: &str) -> String {
    format!(
        "MISSION_REGISTRIES_{}_{what}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// Where a registry URL leads: the node's base URL, and the git index URL (`git+...`)
/// when the index is read over git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub base_url: String,
    pub git_index: Option<String>,
}

impl Location {
    /// The one spelling of this location: `git+BASE/git/index.git` when the index is read
    /// over git, else `sparse+BASE/index/`. Every URL [`parse_url`] reads as this location
    /// gives this spelling, and [`parse_url`] reads it back as this location, so two
    /// registries are the same exactly when their index URLs are equal. missions.lock
    /// records it (as Cargo.lock records a package's `source`).
    pub fn index_url(&self) -> String {
        match &self.git_index {
            Some(git) => git.clone(),
            None => format!("sparse+{}/index/", self.base_url),
        }
    }
}

/// The shapes a registry URL may have, for error messages.
const SHAPES: &str =
    "give http://HOST[:PORT], sparse+http://HOST/index/ or git+http://HOST/git/index.git";

/// The git index route of every node, below its base URL.
const GIT_INDEX_SUFFIX: &str = "/git/index.git";

/// Where a URL a user gives leads: the base URL itself, the sparse index URL
/// `sparse+http(s)://HOST/index/`, or the git index URL `git+http(s)://HOST/git/index.git`
/// (`git+` may be left out: a URL ending in `.git` is a git index, as for cargo).
pub fn parse_url(url: &str) -> Result<Location> {
    let trimmed = url.trim();
    let (kind, plain) = if let Some(rest) = trimmed.strip_prefix("sparse+") {
        (Some("sparse"), rest)
    } else if let Some(rest) = trimmed.strip_prefix("git+") {
        (Some("git"), rest)
    } else {
        (None, trimmed)
    };
    let Some((scheme, rest)) = plain.split_once("://") else {
        bail!("`{url}` is not a URL: {SHAPES}");
    };
    if scheme != "http" && scheme != "https" {
        bail!("`{url}`: a registry URL starts with http:// or https:// (or sparse+http://, git+http://): {SHAPES}");
    }
    if rest.is_empty() || rest.starts_with('/') {
        bail!("`{url}` has no host");
    }
    if rest.contains(['?', '#']) {
        bail!("`{url}`: a registry URL has no query or fragment");
    }
    let trimmed_path = plain.trim_end_matches('/');
    let git = kind == Some("git") || (kind.is_none() && trimmed_path.ends_with(".git"));
    let base = if git {
        let Some(base) = trimmed_path.strip_suffix(GIT_INDEX_SUFFIX) else {
            bail!("`{url}` is not a node's git index: a git index URL is the node's base URL followed by {GIT_INDEX_SUFFIX}, as in git+http://HOST[:PORT]{GIT_INDEX_SUFFIX}");
        };
        base
    } else if kind == Some("sparse") {
        // Only the sparse form names the index.
        trimmed_path.strip_suffix("/index").unwrap_or(trimmed_path)
    } else {
        // `http://host/index` could be a node mounted under /index, but that is the
        // index URL's shape, so read it as one.
        trimmed_path.strip_suffix("/index").unwrap_or(trimmed_path)
    };
    if base.len() <= scheme.len() + 3 {
        bail!("`{url}` has no host");
    }
    // One spelling per place, so that a lock written by one user compares equal for the
    // next: the host in lower case and no default port, as the `url` crate writes them.
    let base = url::Url::parse(base)
        .map_err(|e| anyhow::anyhow!("`{url}` is not a URL ({e}): {SHAPES}"))?
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    Ok(Location {
        git_index: git.then(|| format!("git+{base}{GIT_INDEX_SUFFIX}")),
        base_url: base,
    })
}

fn looks_like_url(arg: &str) -> bool {
    arg.contains("://")
}

/// `HOST:PORT`, `HOST/PATH` or a dotted host: an address given without its scheme (no
/// registry name has `:`, `/` or `.`).
fn looks_like_address(arg: &str) -> bool {
    !arg.trim().is_empty() && !arg.contains(char::is_whitespace) && arg.contains([':', '/', '.'])
}

/// A name that can be a bare key in `[registries.NAME]` and a part of
/// `MISSION_REGISTRIES_<NAME>_INDEX`: letters, digits, `-` and `_`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn config_path() -> Result<PathBuf> {
    Ok(home::mission_home()?.join("config.toml"))
}

fn credentials_path() -> Result<PathBuf> {
    Ok(home::mission_home()?.join("credentials.toml"))
}

/// The tables, and the keys of `[registry]` and `[registries.NAME]`, in `config` this
/// client does not know, as dotted paths (`registries.local.indx`).
fn unknown_keys(config: &toml::Table) -> Vec<String> {
    // A misspelled table (`[trusts]`) would otherwise be ignored without a word.
    let mut unknown: Vec<String> = config
        .keys()
        .filter(|key| !TOP_KEYS.contains(&key.as_str()))
        .cloned()
        .collect();
    let mut check = |prefix: &str, table: Option<&toml::Value>, known: &[&str]| {
        if let Some(table) = table.and_then(toml::Value::as_table) {
            for key in table.keys() {
                if !known.contains(&key.as_str()) {
                    unknown.push(format!("{prefix}.{key}"));
                }
            }
        }
    };
    check("registry", config.get("registry"), REGISTRY_KEYS);
    if let Some(registries) = config.get("registries").and_then(toml::Value::as_table) {
        for (name, entry) in registries {
            check(&format!("registries.{name}"), Some(entry), REGISTRIES_KEYS);
        }
    }
    unknown
}

/// The names under `[trust.node-keys]` that name no registry: neither a
/// `[registries.NAME]` table nor a `MISSION_REGISTRIES_<NAME>_INDEX` variable. Such a key
/// is never used, which a user pinning a node key would want to know.
fn orphan_node_keys(config: &toml::Table, env: &dyn Env) -> Vec<String> {
    let registries = config.get("registries").and_then(toml::Value::as_table);
    config
        .get("trust")
        .and_then(|t| t.get("node-keys"))
        .and_then(toml::Value::as_table)
        .map(|keys| {
            keys.keys()
                .filter(|name| {
                    !registries.is_some_and(|r| r.contains_key(name.as_str()))
                        && env.var(&name_env(name, "INDEX")).is_none()
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

static WARNED: Once = Once::new();

fn load_config() -> Result<(PathBuf, Config)> {
    let path = config_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((path, Config::default())),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    // Once per run: a command may resolve its registry more than once.
    WARNED.call_once(|| {
        for key in unknown_keys(&table) {
            eprintln!(
                "warning: unused key `{key}` in {}: known are `registry.default`, `registries.NAME.index`, `registries.NAME.node-key` and the `[trust]` table",
                path.display()
            );
        }
        for name in orphan_node_keys(&table, &ProcessEnv) {
            eprintln!(
                "warning: `[trust.node-keys] {name}` in {} is never used: no registry is named `{name}` (add `[registries.{name}] index = \"...\"`, or correct the name)",
                path.display()
            );
        }
    });
    let config: Config = table
        .try_into()
        .with_context(|| format!("reading {}", path.display()))?;
    Ok((path, config))
}

/// The environment, as far as registries go (a function argument, so tests need not
/// change the process's environment).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;

    /// The registries named by a `MISSION_REGISTRIES_<NAME>_INDEX` variable, as NAME
    /// lower-cased (`_` stays `_`: a name given with `-` cannot be told from one with `_`).
    fn index_names(&self) -> Vec<String>;
}

/// The registry name a `MISSION_REGISTRIES_<NAME>_INDEX` variable defines, if `var` is one.
fn index_var_name(var: &str) -> Option<String> {
    let name = var
        .strip_prefix("MISSION_REGISTRIES_")?
        .strip_suffix("_INDEX")?;
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// The process's environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn index_names(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(var, value)| {
                let name = index_var_name(var.to_str()?)?;
                (!value.is_empty()).then_some(name)
            })
            .collect()
    }
}

/// Whether a default registry is named at all (`MISSION_REGISTRY_DEFAULT` or
/// `[registry] default`), valid or not.
pub fn default_is_named() -> bool {
    ProcessEnv.var(DEFAULT_ENV).is_some()
        || load_config().is_ok_and(|(_, config)| config.registry.default.is_some())
}

/// The registry `--registry` names (a name from `config.toml` or the environment, or a
/// URL), or the default (`MISSION_REGISTRY_DEFAULT`, else `[registry] default`) when
/// `arg` is `None`.
pub fn resolve(arg: Option<&str>) -> Result<Registry> {
    let (path, config) = load_config()?;
    resolve_in(arg, &path, &config, &ProcessEnv)
}

fn resolve_in(arg: Option<&str>, path: &Path, config: &Config, env: &dyn Env) -> Result<Registry> {
    // The index URL of a name, and where it was given.
    let index_of = |name: &str| -> Option<(String, String)> {
        let var = name_env(name, "INDEX");
        if let Some(url) = env.var(&var) {
            return Some((url, var));
        }
        let entry = config.registries.get(name)?;
        let url = entry.index.clone();
        match url {
            Some(url) => Some((
                url,
                format!("{}: `registries.{name}.index`", path.display()),
            )),
            None => Some((
                String::new(),
                format!("{}: `registries.{name}`", path.display()),
            )),
        }
    };
    // A configured name, given as `from` says.
    let configured = |name: &str, from: NameFrom| -> Result<Registry> {
        let Some((url, origin)) = index_of(name) else {
            bail!("{}", unknown_name(name, from, path, config));
        };
        if url.is_empty() {
            bail!(
                "{origin} has no `index`: add `index = \"sparse+http://HOST/index/\"` (or a git index URL), or set {}",
                name_env(name, "INDEX")
            );
        }
        let location = parse_url(&url).with_context(|| origin.clone())?;
        Ok(Registry {
            name: Some(name.to_owned()),
            base_url: location.base_url,
            git_index: location.git_index,
        })
    };
    match arg {
        Some(arg) if looks_like_url(arg) => {
            let location = parse_url(arg)?;
            // A URL of a registry configured in config.toml or the environment (read the
            // same way) is that registry, with its name, token and node key; the default
            // registry first, should several names lead there.
            let default = env
                .var(DEFAULT_ENV)
                .or_else(|| config.registry.default.clone());
            let name = default
                .into_iter()
                .chain(config.registries.keys().cloned())
                .chain(env.index_names())
                .find(|name| {
                    index_of(name)
                        .and_then(|(url, _)| parse_url(&url).ok())
                        .as_ref()
                        == Some(&location)
                });
            Ok(Registry {
                name,
                base_url: location.base_url,
                git_index: location.git_index,
            })
        }
        Some(name) => configured(name, NameFrom::Arg),
        None => {
            if let Some(name) = env.var(DEFAULT_ENV) {
                return configured(&name, NameFrom::Env)
                    .with_context(|| format!("{DEFAULT_ENV}={name}"));
            }
            match &config.registry.default {
                Some(name) => configured(name, NameFrom::Config).with_context(|| {
                    format!("`[registry] default = \"{name}\"` in {}", path.display())
                }),
                None => bail!(
                    "no registry given: pass --registry NAME|URL, set `[registry] default = \"NAME\"` in {}, or set {DEFAULT_ENV}",
                    path.display()
                ),
            }
        }
    }
}

/// Where a registry name was given.
#[derive(Clone, Copy)]
enum NameFrom {
    /// `--registry NAME`.
    Arg,
    /// `MISSION_REGISTRY_DEFAULT`.
    Env,
    /// `[registry] default` in config.toml.
    Config,
}

/// Why `name` (given as `from` says) names no registry, and what to do.
fn unknown_name(name: &str, from: NameFrom, path: &Path, config: &Config) -> String {
    // `localhost:7878` is an address without its scheme, not a name.
    if looks_like_address(name) {
        let example = match from {
            NameFrom::Arg => format!("--registry http://{name}"),
            _ => format!("http://{name}"),
        };
        return format!(
            "`{name}` is not a registry name or a URL: add http:// or https:// (e.g. {example})"
        );
    }
    let known: Vec<&str> = config.registries.keys().map(String::as_str).collect();
    let close = crate::install::closest(name, known.iter().copied());
    let mut said = Vec::new();
    if !close.is_empty() {
        said.push(format!(
            "did you mean {}?",
            crate::install::quoted(&close, " or ")
        ));
    }
    // The file is named already when the name came from it.
    let file = match from {
        NameFrom::Config => String::new(),
        _ => format!(" in {}", path.display()),
    };
    said.push(if known.is_empty() {
        format!("none are configured{file}")
    } else {
        format!("configured{file}: {}", known.join(", "))
    });
    let mut fixes = vec![match from {
        NameFrom::Arg => "pass its URL with --registry http://HOST:PORT".to_owned(),
        _ => "correct it".to_owned(),
    }];
    // Only a name of letters, digits, `-` and `_` can be a bare TOML key and a part of an
    // environment variable's name.
    if is_plain_name(name) {
        fixes.push(format!("add `[registries.{name}] index = \"...\"`"));
        fixes.push(format!("set {}", name_env(name, "INDEX")));
    } else {
        fixes[0].push_str(" (a registry's name has only letters, digits, `-` and `_`)");
    }
    let last = fixes.pop().unwrap_or_default();
    let fixes = if fixes.is_empty() {
        last
    } else {
        format!("{}, or {last}", fixes.join(", "))
    };
    format!("no registry named `{name}` ({}); {fixes}", said.join(" "))
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
    bail!("{}", no_token_advice(registry))
}

/// What to do when `registry` has no token: where one can come from.
pub fn no_token_advice(registry: &Registry) -> String {
    let vars = match registry.token_env() {
        Some(var) => format!("{TOKEN_ENV} or {var}"),
        None => TOKEN_ENV.to_owned(),
    };
    format!(
        "no token is set for the registry `{0}`: run `mission login --registry {0}`, or set {vars}",
        registry.display()
    )
}

/// What to do about a token `registry` refused (401/403), knowing where it came from: a
/// token from `MISSION_TOKEN` or `MISSION_REGISTRIES_<NAME>_TOKEN` must be fixed there,
/// as `mission login` cannot replace it while the variable is set.
pub fn refused_token_advice(registry: &Registry, source: Option<&TokenSource>) -> String {
    match source {
        Some(TokenSource::Env(var)) => format!(
            "the token in the environment variable {var} was refused: set a valid token in {var}, or unset it to use the one `mission login --registry {}` stores",
            registry.display()
        ),
        Some(TokenSource::File(path)) => format!(
            "the token stored in {} was refused: run `mission login --registry {}` with a valid token",
            path.display(),
            registry.display()
        ),
        None => format!(
            "the node needs a valid token: run `mission login --registry {}`",
            registry.display()
        ),
    }
}

/// Where the token a request to `registry` carries comes from (see [`token`]); `None`
/// when there is none.
pub fn token_source(registry: &Registry) -> Option<TokenSource> {
    token(registry).ok().map(|(_, source)| source)
}

/// What to do about a node's 401 or 403 answer, knowing where the token sent came from
/// (`None`: no token was sent); `None` for any other status. A 401 is about the token
/// (missing or refused); a 403 is the node refusing this token this request, for the
/// reason it gives (a missing scope, not an owner), which another token may fix.
pub fn refusal_advice(
    registry: &Registry,
    status: u16,
    source: Option<&TokenSource>,
) -> Option<String> {
    let r = registry.display();
    Some(match (status, source) {
        (401, None) => no_token_advice(registry),
        (401, source) => refused_token_advice(registry, source),
        (403, Some(TokenSource::Env(var))) => {
            format!("the token in {var} may not do this on the registry `{r}`: set one that may in {var}")
        }
        (403, Some(TokenSource::File(path))) => format!(
            "the token stored in {} may not do this on the registry `{r}`: run `mission login --registry {r}` with one that may",
            path.display()
        ),
        (403, None) => format!(
            "the registry `{r}` allows this only with a token: run `mission login --registry {r}`"
        ),
        _ => return None,
    })
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
    source: TokenSource,
}

impl Client {
    /// A client for `registry` with its token (see [`token`]).
    pub fn new(registry: Registry) -> Result<Client> {
        let (token, source) = token(&registry)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Ok(Client {
            agent,
            registry,
            token,
            source,
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

    /// Fails with the node's own words unless the answer is a success. A 401 or 403 adds
    /// how to fix the token, knowing where it came from (see [`refusal_advice`]).
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
        if let Some(advice) = refusal_advice(&self.registry, answer.status, Some(&self.source)) {
            message.push_str(&format!("\n       ({advice})"));
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

    fn sparse_at(base: &str) -> Location {
        Location {
            base_url: base.to_owned(),
            git_index: None,
        }
    }

    fn git_at(base: &str) -> Location {
        Location {
            base_url: base.to_owned(),
            git_index: Some(format!("git+{base}/git/index.git")),
        }
    }

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
            assert_eq!(parse_url(given).unwrap(), sparse_at(base), "{given}");
        }
        for bad in [
            "ftp://x",
            "http://",
            "sparse+http:///index/",
            "127.0.0.1:7878",
            "http://h/?q",
            "ssh://git@h/git/index.git",
            "git+ssh://h/git/index.git",
            "git+file:///srv/index.git",
        ] {
            let err = format!("{:#}", parse_url(bad).unwrap_err());
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn git_index_urls_lead_to_the_node_they_hang_off() {
        for (given, base) in [
            (
                "git+http://127.0.0.1:7878/git/index.git",
                "http://127.0.0.1:7878",
            ),
            (
                "git+https://reg.example.org/git/index.git/",
                "https://reg.example.org",
            ),
            // Without `git+`: a URL ending in .git is a git index, as for cargo.
            (
                "http://127.0.0.1:7878/git/index.git",
                "http://127.0.0.1:7878",
            ),
            // A node mounted under a path.
            (
                "https://example.org/mission/git/index.git",
                "https://example.org/mission",
            ),
        ] {
            assert_eq!(parse_url(given).unwrap(), git_at(base), "{given}");
        }
        // Git URLs the node's routes cannot be found from.
        for bad in [
            "git+http://127.0.0.1:7878",
            "git+http://127.0.0.1:7878/index/",
            "git+http://h/index.git",
            "http://h/other/index.git",
            "https://h/git/missions/fix.git",
            "git+http:///git/index.git",
            "git+http://h/git/index.git?ref=main",
        ] {
            let err = format!("{:#}", parse_url(bad).unwrap_err());
            assert!(err.contains(bad), "{bad}: {err}");
        }
        let err = format!("{:#}", parse_url("git+http://h/index.git").unwrap_err());
        assert!(err.contains("/git/index.git"), "{err}");
    }

    /// A fixed environment.
    struct FakeEnv(Vec<(&'static str, &'static str)>);

    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }

        fn index_names(&self) -> Vec<String> {
            self.0
                .iter()
                .filter_map(|(k, _)| index_var_name(k))
                .collect()
        }
    }

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    const CONFIG: &str = r#"
[registry]
default = "local"

[registries.local]
index = "sparse+http://127.0.0.1:7878/index/"

[registries.my-git]
index = "git+http://127.0.0.1:7979/git/index.git"

[registries.keyed]
node-key = "RWQ"
"#;

    fn resolved(arg: Option<&str>, env: &[(&'static str, &'static str)]) -> Result<Registry> {
        resolve_in(
            arg,
            Path::new("/home/u/.mission/config.toml"),
            &config(CONFIG),
            &FakeEnv(env.to_vec()),
        )
    }

    #[test]
    fn names_resolve_through_config_and_environment() {
        let local = resolved(None, &[]).unwrap();
        assert_eq!(local.name.as_deref(), Some("local"));
        assert_eq!(local.base_url, "http://127.0.0.1:7878");
        assert_eq!(local.git_index, None);

        let git = resolved(Some("my-git"), &[]).unwrap();
        assert_eq!(git.base_url, "http://127.0.0.1:7979");
        assert_eq!(git.git_url(), Some("http://127.0.0.1:7979/git/index.git"));
        assert_eq!(git.key(), "my-git");

        // MISSION_REGISTRY_DEFAULT overrides [registry] default.
        let default = resolved(None, &[("MISSION_REGISTRY_DEFAULT", "my-git")]).unwrap();
        assert_eq!(default.name.as_deref(), Some("my-git"));
        let err = format!(
            "{:#}",
            resolved(None, &[("MISSION_REGISTRY_DEFAULT", "nope")]).unwrap_err()
        );
        assert!(err.contains("MISSION_REGISTRY_DEFAULT=nope"), "{err}");

        // MISSION_REGISTRIES_<NAME>_INDEX overrides config.toml (name upper-cased, - as _)...
        let moved = resolved(
            Some("my-git"),
            &[(
                "MISSION_REGISTRIES_MY_GIT_INDEX",
                "http://10.0.0.1:80/git/index.git",
            )],
        )
        .unwrap();
        assert_eq!(
            moved.base_url, "http://10.0.0.1",
            "the default port left out"
        );
        assert!(moved.git_index.is_some());
        // ...completes an entry that has no index...
        let keyed = resolved(
            Some("keyed"),
            &[("MISSION_REGISTRIES_KEYED_INDEX", "sparse+http://k/index/")],
        )
        .unwrap();
        assert_eq!(keyed.base_url, "http://k");
        let err = format!("{:#}", resolved(Some("keyed"), &[]).unwrap_err());
        assert!(
            err.contains("registries.keyed") && err.contains("has no `index`"),
            "{err}"
        );
        // ...and defines a registry config.toml does not have.
        let new = resolved(
            Some("ci"),
            &[(
                "MISSION_REGISTRIES_CI_INDEX",
                "git+http://ci:1/git/index.git",
            )],
        )
        .unwrap();
        assert_eq!(new.name.as_deref(), Some("ci"));
        assert_eq!(
            new.token_env().as_deref(),
            Some("MISSION_REGISTRIES_CI_TOKEN")
        );
        // A bad URL there names the variable.
        let err = format!(
            "{:#}",
            resolved(Some("ci"), &[("MISSION_REGISTRIES_CI_INDEX", "ftp://x")]).unwrap_err()
        );
        assert!(err.contains("MISSION_REGISTRIES_CI_INDEX"), "{err}");

        // A URL of a configured registry, read the same way, takes its name.
        let by_url = resolved(Some("git+http://127.0.0.1:7979/git/index.git"), &[]).unwrap();
        assert_eq!(by_url.name.as_deref(), Some("my-git"));
        // The same node read over sparse HTTP is another registry entry.
        let other = resolved(Some("http://127.0.0.1:7979"), &[]).unwrap();
        assert_eq!(other.name, None);
        // An unnamed git registry is keyed (credentials, trust store) by its git URL.
        let unnamed = resolved(Some("http://10.1.1.1/git/index.git"), &[]).unwrap();
        assert_eq!(unnamed.key(), "git+http://10.1.1.1/git/index.git");
        // A URL named only in the environment is that registry too, and the default is
        // preferred among several names for one place.
        let env = [("MISSION_REGISTRIES_CI_NODE_INDEX", "http://10.2.2.2")];
        let by_env = resolved(Some("sparse+http://10.2.2.2/index/"), &env).unwrap();
        assert_eq!(by_env.name.as_deref(), Some("ci_node"));
        let twice = [
            ("MISSION_REGISTRIES_OTHER_INDEX", "http://127.0.0.1:7878"),
            ("MISSION_REGISTRY_DEFAULT", "other"),
        ];
        let by_default = resolved(Some("http://127.0.0.1:7878/"), &twice).unwrap();
        assert_eq!(by_default.name.as_deref(), Some("other"));
    }

    #[test]
    fn every_spelling_of_a_registry_has_one_index_url() {
        for (given, url) in [
            ("http://h:1", "sparse+http://h:1/index/"),
            ("http://h:1/", "sparse+http://h:1/index/"),
            ("http://h:1/index", "sparse+http://h:1/index/"),
            ("sparse+http://h:1/index", "sparse+http://h:1/index/"),
            ("sparse+http://h:1/index/", "sparse+http://h:1/index/"),
            ("https://h/mission/", "sparse+https://h/mission/index/"),
            ("http://h:1/git/index.git", "git+http://h:1/git/index.git"),
            (
                "git+http://h:1/git/index.git/",
                "git+http://h:1/git/index.git",
            ),
        ] {
            let location = parse_url(given).unwrap();
            assert_eq!(location.index_url(), url, "{given}");
            assert_eq!(parse_url(url).unwrap(), location, "{url} reads back");
        }
        let named = resolved(Some("local"), &[]).unwrap();
        assert_eq!(named.index_url(), "sparse+http://127.0.0.1:7878/index/");
    }

    #[test]
    fn an_unknown_name_suggests_the_closest_configured_ones() {
        let err = format!("{:#}", resolved(Some("locl"), &[]).unwrap_err());
        assert!(err.contains("no registry named `locl`"), "{err}");
        assert!(err.contains("did you mean `local`?"), "{err}");
        assert!(err.contains("MISSION_REGISTRIES_LOCL_INDEX"), "{err}");
        let err = format!("{:#}", resolved(Some("zzzzzz"), &[]).unwrap_err());
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn an_address_without_scheme_is_told_to_take_one() {
        for given in ["localhost:17811", "127.0.0.1:7878/", "reg.example.org"] {
            let err = format!("{:#}", resolved(Some(given), &[]).unwrap_err());
            assert!(
                err.contains(&format!("`{given}` is not a registry name or a URL: add http:// or https:// (e.g. --registry http://{given})")),
                "{err}"
            );
            assert!(
                !err.contains("MISSION_REGISTRIES_") && !err.contains("[registries."),
                "{err}"
            );
        }
        // A name no table or variable could hold gets neither suggested.
        let err = format!("{:#}", resolved(Some("my reg"), &[]).unwrap_err());
        assert!(err.contains("no registry named `my reg`"), "{err}");
        assert!(
            !err.contains("MISSION_REGISTRIES_") && !err.contains("[registries."),
            "{err}"
        );
        // A configured or environment-defined registry of any name is still found.
        let quoted = r#"[registries."localhost:1"]
index = "http://127.0.0.1:1"
"#;
        let r = resolve_in(
            Some("localhost:1"),
            Path::new("/c.toml"),
            &config(quoted),
            &FakeEnv(vec![]),
        )
        .unwrap();
        assert_eq!(r.base_url, "http://127.0.0.1:1");
    }

    #[test]
    fn a_misspelt_default_names_where_it_was_set() {
        let text = CONFIG.replace("default = \"local\"", "default = \"locl\"");
        let err = resolve_in(
            None,
            Path::new("/home/u/.mission/config.toml"),
            &config(&text),
            &FakeEnv(vec![]),
        )
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.starts_with("`[registry] default = \"locl\"` in /home/u/.mission/config.toml: no registry named `locl`"),
            "{err}"
        );
        assert!(err.contains("did you mean `local`?"), "{err}");
    }

    #[test]
    fn a_lock_names_a_registry_by_its_name_or_a_url_of_its_node() {
        let r = Registry::sparse(Some("test".into()), "http://127.0.0.1:7878");
        let by_name = |name: &str| {
            (name == "alias")
                .then(|| Registry::sparse(Some("alias".into()), "http://127.0.0.1:7878"))
        };
        for same in [
            "test",
            "alias",
            "http://127.0.0.1:7878",
            "http://127.0.0.1:7878/",
            "sparse+http://127.0.0.1:7878/index/",
            "git+http://127.0.0.1:7878/git/index.git",
        ] {
            assert!(r.locked_from_in(same, &by_name), "{same}");
        }
        for other in [
            "tset",
            "http://127.0.0.1:7879",
            "https://127.0.0.1:7878",
            "",
        ] {
            assert!(!r.locked_from_in(other, &by_name), "{other}");
        }
    }

    #[test]
    fn refusals_are_advised_by_status_and_token_source() {
        let r = Registry::sparse(Some("g".into()), "http://h");
        let none = refusal_advice(&r, 401, None).unwrap();
        assert!(
            none.contains("no token is set for the registry `g`: run `mission login --registry g`"),
            "{none}"
        );
        let file = TokenSource::File("/home/u/.mission/credentials.toml".into());
        let refused = refusal_advice(&r, 401, Some(&file)).unwrap();
        assert!(
            refused.contains("was refused") && refused.contains("mission login --registry g"),
            "{refused}"
        );
        let forbidden = refusal_advice(&r, 403, Some(&file)).unwrap();
        assert!(
            forbidden.contains("may not do this on the registry `g`")
                && forbidden.contains("mission login --registry g"),
            "{forbidden}"
        );
        let env = TokenSource::Env("MISSION_REGISTRIES_G_TOKEN".into());
        let forbidden = refusal_advice(&r, 403, Some(&env)).unwrap();
        assert!(
            forbidden.contains("MISSION_REGISTRIES_G_TOKEN"),
            "{forbidden}"
        );
        assert_eq!(refusal_advice(&r, 404, Some(&file)), None);
        assert_eq!(refusal_advice(&r, 500, None), None);
    }

    #[test]
    fn unknown_keys_are_found_outside_trust() {
        let table: toml::Table = toml::from_str(
            r#"
[registry]
default = "a"
defualt = "b"

[registries.a]
index = "http://h"
node-key = "RWQ"
token = "secret"

[trust]
anything = true

[trust.more]
x = 1

[trusts]
minimum-certification = "verified"
"#,
        )
        .unwrap();
        assert_eq!(
            unknown_keys(&table),
            ["trusts", "registry.defualt", "registries.a.token"]
        );
    }

    #[test]
    fn one_place_is_spelled_one_way() {
        for (given, base) in [
            ("sparse+http://Example.COM:80/index/", "http://example.com"),
            ("http://example.com/", "http://example.com"),
            ("https://example.com:443", "https://example.com"),
            ("http://example.com:8080/index", "http://example.com:8080"),
            ("git+http://Node.Local/git/index.git", "http://node.local"),
            (
                "http://example.com/Mounted/Here",
                "http://example.com/Mounted/Here",
            ),
        ] {
            assert_eq!(parse_url(given).unwrap().base_url, base, "{given}");
        }
        assert_eq!(
            parse_url("git+http://Node.Local:80/git/index.git")
                .unwrap()
                .git_index
                .as_deref(),
            Some("git+http://node.local/git/index.git")
        );
    }

    #[test]
    fn a_node_key_for_no_registry_is_found() {
        let table: toml::Table = toml::from_str(
            "[registries.local]\nindex = \"http://x\"\n[trust.node-keys]\nlocal = \"RW\"\nlcoal = \"RW\"\nfromenv = \"RW\"\n",
        )
        .unwrap();
        let env = FakeEnv(vec![("MISSION_REGISTRIES_FROMENV_INDEX", "http://y")]);
        assert_eq!(orphan_node_keys(&table, &env), ["lcoal"]);
        assert!(orphan_node_keys(&toml::Table::new(), &env).is_empty());
    }

    #[test]
    fn a_refused_token_from_the_environment_names_its_variable() {
        let r = Registry::sparse(Some("g".into()), "http://h");
        let advice = refused_token_advice(
            &r,
            Some(&TokenSource::Env("MISSION_REGISTRIES_G_TOKEN".into())),
        );
        assert!(advice.contains("MISSION_REGISTRIES_G_TOKEN"), "{advice}");
        let advice = refused_token_advice(&r, Some(&TokenSource::Env(TOKEN_ENV.into())));
        assert!(advice.contains("MISSION_TOKEN"), "{advice}");
        let advice = refused_token_advice(&r, None);
        assert!(advice.contains("mission login --registry g"), "{advice}");
    }

    #[test]
    fn named_registries_have_cargo_style_token_variables() {
        let r = Registry::sparse(Some("my-node".into()), "http://h");
        assert_eq!(
            r.token_env().as_deref(),
            Some("MISSION_REGISTRIES_MY_NODE_TOKEN")
        );
        assert_eq!(r.key(), "my-node");
        let r = Registry::sparse(None, "http://h");
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
