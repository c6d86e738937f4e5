//! The `package:` block of a mission package (ARCHITECTURE section 2): what it may hold,
//! how it is read out of a `mission.yaml`, and the rules a publishable block must follow.
//!
//! RustChain ignores unknown top-level keys, so a package's `mission.yaml` is a RustChain
//! mission with this block added and still runs under RustChain unchanged. The block itself is
//! ours, so inside it we are strict, like a registry and stricter than cargo (which only warns):
//! an unknown key such as `dependancies` is an error naming the key, never silently ignored.
//!
//! Reading happens in two stages, each error naming the field (`package.version`,
//! `package.keywords[5]`, `package.dependencies.foo`):
//!
//! 1. [`parse_package_block`] deserializes only the top-level `package:` key (YAML with
//!    `yaml_serde`, JSON with `serde_json`, both through `serde_path_to_error`), so type
//!    errors, unknown keys, bad names, versions and requirements carry the parser's line.
//! 2. [`Manifest::validate`] (or [`Manifest::problems`] for all of them at once) checks what
//!    types alone cannot: the crates.io rules for keywords, an SPDX licence, a URL-looking
//!    repository, no self-dependency or colliding dependency names, a sane price, bare program
//!    names and host names in the permissions, and typed parameter defaults.
//!
//! Choices worth knowing, each made to match crates.io where it has a rule:
//! - **Licence**: an SPDX expression parsed like crates.io does: `/` is read as `OR`, `+`
//!   after a GPL id is accepted, deprecated ids (`GPL-3.0`) are accepted, non-OSI ids are
//!   accepted (any id on the SPDX list, and `LicenseRef-...`), but unknown ids and imprecise
//!   names (`Apache 2.0`) are refused with the parser's reason.
//! - **Dependencies**: a wildcard requirement (`*`) is refused, as crates.io does.
//! - **Keywords**: at most [`MAX_KEYWORDS`], each 1 to [`MAX_KEYWORD_LEN`] ASCII letters,
//!   digits, `-`, `_` or `+`, starting with a letter; duplicates compare case-insensitively.
//! - **Network hosts**: host names or IP addresses without scheme, port or path; a leading
//!   `*.` (`*.example.org`) allows every subdomain of a name with at least two labels, but
//!   not the name itself. `network: true` allows any host (the node's policy still applies).
//! - **Parameters**: a required parameter may not also have a default (one of them is a
//!   mistake).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostic::{
    json_error_location, locate_field_position, source_error, yaml_error_location, SourceError,
    SourceFormat,
};
use crate::name::PackageName;

/// At most this many keywords (crates.io's limit).
pub const MAX_KEYWORDS: usize = 5;
/// The longest keyword accepted (crates.io's limit).
pub const MAX_KEYWORD_LEN: usize = 20;
/// The longest description accepted, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1000;
/// The longest `permissions.max_duration_seconds` accepted: one day.
pub const MAX_DURATION_SECONDS: u64 = 86_400;
/// The longest parameter name accepted.
pub const MAX_PARAMETER_NAME_LEN: usize = 64;

/// The `package:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// crates.io name rules, see [`crate::name`].
    #[schemars(with = "String")]
    pub name: PackageName,
    /// A semver version; immutable once published.
    #[schemars(with = "String")]
    pub version: semver::Version,
    pub description: String,
    #[serde(default)]
    pub authors: Vec<String>,
    /// An SPDX licence expression such as `MIT OR Apache-2.0`.
    pub license: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default)]
    pub categories: Vec<Category>,
    /// At most five.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Other missions this one needs, by name, with a semver requirement.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub dependencies: BTreeMap<PackageName, semver::VersionReq>,
    #[serde(default)]
    pub pricing: Pricing,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
}

/// The fixed category list of the marketplace plan.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    BuildAutomation,
    Testing,
    CodeQuality,
    CiCd,
    Monitoring,
    Security,
    Database,
    Etl,
    MlOps,
    SoxCompliance,
    Privacy,
    #[serde(rename = "iso-27001")]
    Iso27001,
}

impl Category {
    pub const ALL: [Category; 12] = [
        Category::BuildAutomation,
        Category::Testing,
        Category::CodeQuality,
        Category::CiCd,
        Category::Monitoring,
        Category::Security,
        Category::Database,
        Category::Etl,
        Category::MlOps,
        Category::SoxCompliance,
        Category::Privacy,
        Category::Iso27001,
    ];

    /// The spelling used in manifests, the index and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::BuildAutomation => "build-automation",
            Category::Testing => "testing",
            Category::CodeQuality => "code-quality",
            Category::CiCd => "ci-cd",
            Category::Monitoring => "monitoring",
            Category::Security => "security",
            Category::Database => "database",
            Category::Etl => "etl",
            Category::MlOps => "ml-ops",
            Category::SoxCompliance => "sox-compliance",
            Category::Privacy => "privacy",
            Category::Iso27001 => "iso-27001",
        }
    }
}

/// How a mission is sold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "model", rename_all = "snake_case", from = "PricingFields")]
pub enum Pricing {
    #[default]
    Free,
    Paid {
        /// In the currency's minor unit (cents for USD).
        amount: u64,
        /// ISO 4217 code, upper case.
        currency: String,
        licence: LicenceKind,
    },
}

/// How [`Pricing`] is read: the same shape, but serde ignores extra keys beside the tag of a
/// unit variant, so `free` is an empty struct variant here and `{model: free, amount: 5}`
/// is refused instead of silently dropping the amount.
#[derive(Deserialize, JsonSchema)]
#[serde(tag = "model", rename_all = "snake_case", deny_unknown_fields)]
enum PricingFields {
    Free {},
    Paid {
        amount: u64,
        currency: String,
        licence: LicenceKind,
    },
}

impl From<PricingFields> for Pricing {
    fn from(value: PricingFields) -> Self {
        match value {
            PricingFields::Free {} => Pricing::Free,
            PricingFields::Paid {
                amount,
                currency,
                licence,
            } => Pricing::Paid {
                amount,
                currency,
                licence,
            },
        }
    }
}

/// What one licence of a paid mission covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LicenceKind {
    PerUser,
    PerTeam,
    PerOrganization,
    Subscription,
}

/// What a mission's steps need; the executor grants no more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// `false`, or the host names steps may reach.
    #[serde(default)]
    pub network: Network,
    /// Programs command-like steps may start.
    #[serde(default)]
    pub commands: Vec<String>,
    #[serde(default)]
    pub llm: bool,
    #[serde(default = "default_max_duration")]
    pub max_duration_seconds: u64,
}

fn default_max_duration() -> u64 {
    600
}

impl Default for Permissions {
    fn default() -> Self {
        Self {
            network: Network::default(),
            commands: Vec::new(),
            llm: false,
            max_duration_seconds: default_max_duration(),
        }
    }
}

/// `network: false` (the default), `network: true` (any host), or `network: [host, ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Network {
    Allowed(bool),
    Hosts(Vec<String>),
}

impl Default for Network {
    fn default() -> Self {
        Network::Allowed(false)
    }
}

impl Network {
    /// Whether any network access at all is declared.
    pub fn any(&self) -> bool {
        match self {
            Network::Allowed(b) => *b,
            Network::Hosts(h) => !h.is_empty(),
        }
    }

    /// Whether a step may reach `host` (compared case-insensitively; `*.example.org` covers
    /// every subdomain of `example.org` but not `example.org` itself).
    pub fn allows_host(&self, host: &str) -> bool {
        match self {
            Network::Allowed(b) => *b,
            Network::Hosts(patterns) => patterns.iter().any(|p| host_matches(p, host)),
        }
    }
}

// Hand-written so a wrong shape says what is expected rather than serde's "data did not
// match any variant of untagged enum"; the accepted shapes are exactly the untagged ones.
impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NetworkVisitor;
        impl<'de> serde::de::Visitor<'de> for NetworkVisitor {
            type Value = Network;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`false`, `true` or a list of host names")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Network, E> {
                Ok(Network::Allowed(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Network, A::Error> {
                let mut hosts = Vec::new();
                while let Some(host) = seq.next_element::<String>()? {
                    hosts.push(host);
                }
                Ok(Network::Hosts(hosts))
            }
        }
        deserializer.deserialize_any(NetworkVisitor)
    }
}

/// An input the user passes with `--param name=value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: ParameterType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParameterType {
    #[default]
    String,
    Integer,
    Number,
    Boolean,
    Path,
}

impl ParameterType {
    /// The spelling used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "string",
            ParameterType::Integer => "integer",
            ParameterType::Number => "number",
            ParameterType::Boolean => "boolean",
            ParameterType::Path => "path",
        }
    }

    /// Whether `value` is a value of this type (a `path` is a non-empty string).
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (self, value) {
            (ParameterType::String, Value::String(_)) => true,
            (ParameterType::Path, Value::String(s)) => !s.is_empty(),
            (ParameterType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (ParameterType::Number, Value::Number(_)) => true,
            (ParameterType::Boolean, Value::Bool(_)) => true,
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the block out of a mission file.

/// The whole file as seen by this module: only `package`, every other key ignored.
#[derive(Deserialize)]
struct PackageOnly {
    #[serde(default)]
    package: Option<Manifest>,
}

/// Reads the top-level `package:` block of a mission file (`None` when there is none).
///
/// Everything else in the file is ignored here; the mission parser checks it. Errors name
/// `file`, the field path (`package.version`) and, where the parser gives one, the line.
/// This checks types only; call [`Manifest::validate`] for the remaining rules. The input
/// limits of the mission parser ([`crate::mission::check_input_limits`]: size, nesting,
/// alias expansion) apply here too, so this is safe to call on its own on any text.
pub fn parse_package_block(
    text: &str,
    format: SourceFormat,
    file: &Path,
) -> Result<Option<Manifest>, SourceError> {
    crate::mission::check_input_limits(text, format, file)?;
    let error = |path: &str, message: String, (line, column): (Option<usize>, Option<usize>)| {
        let mut error = source_error(text, format, file, path, message, line, column);
        // `pricing` is an internally tagged enum, which serde reads through a buffer: the
        // position the parser reports for it is not the pricing's, so find the field's own.
        if let Some(field) = error
            .field
            .as_deref()
            .filter(|f| f.starts_with("package.pricing"))
        {
            let (line, column) = locate_field_position(text, format, field).unzip();
            error = error.with_line(line, column);
        }
        error
    };
    match format {
        SourceFormat::Yaml => {
            let de = yaml_serde::Deserializer::from_str(text);
            serde_path_to_error::deserialize::<_, PackageOnly>(de)
                .map(|doc| doc.package)
                .map_err(|e| {
                    let path = e.path().to_string();
                    let at = yaml_error_location(e.inner());
                    error(&path, e.into_inner().to_string(), at)
                })
        }
        SourceFormat::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let doc = serde_path_to_error::deserialize::<_, PackageOnly>(&mut de).map_err(|e| {
                let path = e.path().to_string();
                let at = json_error_location(e.inner());
                error(&path, e.into_inner().to_string(), at)
            })?;
            de.end()
                .map_err(|e| error(".", e.to_string(), json_error_location(&e)))?;
            Ok(doc.package)
        }
    }
}

/// Reads the `package:` block and checks every rule: `Ok(None)` when there is no block,
/// otherwise the manifest or every problem found (a type error stops at the first). Each
/// problem carries the line of its field in `text`.
pub fn load_package_block(
    text: &str,
    format: SourceFormat,
    file: &Path,
) -> Result<Option<Manifest>, Vec<SourceError>> {
    let manifest = parse_package_block(text, format, file).map_err(|e| vec![e])?;
    let Some(manifest) = manifest else {
        return Ok(None);
    };
    let problems = manifest.problems();
    if problems.is_empty() {
        Ok(Some(manifest))
    } else {
        Err(problems
            .iter()
            .map(|p| p.to_source_error_in(file, text, format))
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Rules beyond the types.

/// One broken rule of a manifest: the field (`package.keywords[2]`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ManifestError {
    /// The full field path, starting with `package.`.
    pub field: String,
    pub problem: ManifestProblem,
}

impl ManifestError {
    fn new(field: impl Into<String>, problem: ManifestProblem) -> Self {
        Self {
            field: field.into(),
            problem,
        }
    }

    /// The same problem as a [`SourceError`] about `file`, without a line (see
    /// [`ManifestError::to_source_error_in`] for one).
    pub fn to_source_error(&self, file: &Path) -> SourceError {
        SourceError::new(file, self.problem.to_string()).with_field(self.field.clone())
    }

    /// The same problem as a [`SourceError`] about `file`, whose text is `text`, with the
    /// line of the field (or of its nearest parent, for a rule about a key left out).
    pub fn to_source_error_in(&self, file: &Path, text: &str, format: SourceFormat) -> SourceError {
        let (line, column) = locate_field_position(text, format, &self.field).unzip();
        self.to_source_error(file).with_line(line, column)
    }
}

/// What rule a manifest breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestProblem {
    #[error("the description is empty")]
    EmptyDescription,
    #[error("the description is {len} characters long; the limit is {MAX_DESCRIPTION_LEN}")]
    DescriptionTooLong { len: usize },
    #[error("an author is an empty string")]
    EmptyAuthor,
    #[error("`{license}` is not a valid SPDX licence expression: {reason}")]
    License { license: String, reason: String },
    #[error("`{url}` is not a repository URL: {reason}")]
    Repository { url: String, reason: String },
    #[error("{count} keywords given; the limit is {MAX_KEYWORDS}")]
    TooManyKeywords { count: usize },
    #[error("the keyword `{keyword}` is invalid: {reason}")]
    Keyword { keyword: String, reason: String },
    #[error("the keyword `{keyword}` is given twice")]
    DuplicateKeyword { keyword: String },
    #[error("the category `{category}` is given twice")]
    DuplicateCategory { category: &'static str },
    #[error("`{name}` cannot depend on itself")]
    SelfDependency { name: String },
    #[error("`{name}` and `{other}` are the same mission name (case and `-`/`_` are ignored)")]
    DependencyCollision { name: String, other: String },
    #[error(
        "the wildcard requirement `{req}` is not allowed; give a version range such as `^1.0`"
    )]
    WildcardRequirement { req: String },
    #[error("a paid mission needs an amount above 0")]
    ZeroAmount,
    #[error("`{currency}` is not a currency code; use three upper-case letters (ISO 4217) such as `USD`")]
    Currency { currency: String },
    #[error("`{command}` is not a program name: {reason}")]
    Command { command: String, reason: String },
    #[error("`{host}` is not a host name: {reason}")]
    Host { host: String, reason: String },
    #[error("{value} seconds is out of range; give 1 to {MAX_DURATION_SECONDS}")]
    MaxDuration { value: u64 },
    #[error("`{name}` is not a parameter name: {reason}")]
    ParameterName { name: String, reason: String },
    #[error("the parameter `{name}` is declared twice")]
    DuplicateParameter { name: String },
    #[error("the default {value} is not a {expected}")]
    DefaultType {
        value: String,
        expected: &'static str,
    },
    #[error("a required parameter cannot have a default; drop `required` or the default")]
    RequiredWithDefault,
}

/// The SPDX parse mode of crates.io: `/` as `OR`, `+` on GPL ids and deprecated ids are
/// accepted; imprecise names and unknown ids are not.
const LICENSE_MODE: spdx::ParseMode = spdx::ParseMode {
    allow_slash_as_or_operator: true,
    allow_imprecise_license_names: false,
    allow_postfix_plus_on_gpl: true,
    allow_deprecated: true,
    allow_unknown: false,
};

/// Checks an SPDX licence expression the way crates.io does; the error is the parser's
/// reason, with the offending part quoted.
pub fn check_license(license: &str) -> Result<(), String> {
    match spdx::Expression::parse_mode(license, LICENSE_MODE) {
        Ok(_) => Ok(()),
        Err(e) => {
            let part = license.get(e.span.clone()).unwrap_or("").trim();
            if part.is_empty() || part == license.trim() {
                Err(e.reason.to_string())
            } else {
                Err(format!("{} (`{part}`)", e.reason))
            }
        }
    }
}

/// Checks a keyword against the crates.io rules.
pub fn check_keyword(keyword: &str) -> Result<(), String> {
    let Some(first) = keyword.chars().next() else {
        return Err("it is empty".into());
    };
    let len = keyword.chars().count();
    if len > MAX_KEYWORD_LEN {
        return Err(format!(
            "it is {len} characters long; the limit is {MAX_KEYWORD_LEN}"
        ));
    }
    if !first.is_ascii_alphabetic() {
        return Err(format!("it must start with an ASCII letter, not `{first}`"));
    }
    if let Some(c) = keyword
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+')))
    {
        return Err(format!(
            "it contains `{c}`; only ASCII letters, digits, `-`, `_` and `+` are allowed"
        ));
    }
    Ok(())
}

/// Checks an entry of `permissions.commands`: a bare program name, looked up on the
/// sandbox's `PATH`, never a path or a command line.
pub fn check_command_name(command: &str) -> Result<(), String> {
    if command.is_empty() {
        return Err("it is empty".into());
    }
    if command.chars().any(char::is_whitespace) {
        return Err(
            "it contains white space; give the program only (`cargo`), not a command line".into(),
        );
    }
    if command.contains('/') || command.contains('\\') {
        return Err(
            "it is a path; give the bare program name (`python3`, not `/usr/bin/python3`)".into(),
        );
    }
    if command.chars().any(char::is_control) {
        return Err("it contains a control character".into());
    }
    if command == "." || command == ".." {
        return Err("it is not a program".into());
    }
    Ok(())
}

/// Checks an entry of `permissions.network`: a host name or IP address, without scheme, port
/// or path; `*.example.org` (a wildcard first label) is accepted when `allow_wildcard`.
pub fn check_host(host: &str, allow_wildcard: bool) -> Result<(), String> {
    if host.is_empty() {
        return Err("it is empty".into());
    }
    if host.contains("://") {
        return Err("give the host name only, without a scheme such as `https://`".into());
    }
    if host.contains('/') {
        return Err("give the host name only, without a path".into());
    }
    if host.parse::<Ipv4Addr>().is_ok() || host.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    if host.contains(':') {
        return Err("give the host name only, without a port".into());
    }
    let name = match host.strip_prefix("*.") {
        Some(base) if allow_wildcard => {
            if base.split('.').count() < 2 {
                return Err(
                    "a wildcard needs a name of at least two labels after it, as in `*.example.org`"
                        .into(),
                );
            }
            base
        }
        Some(_) => return Err("a wildcard is not allowed here".into()),
        None => host,
    };
    if name.contains('*') {
        return Err(
            "a wildcard is only allowed as the whole first label, as in `*.example.org`".into(),
        );
    }
    if name.len() > 253 {
        return Err(format!(
            "it is {} characters long; the limit is 253",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (two dots, or a dot at an end)".into());
        }
        if label.len() > 63 {
            return Err(format!("the label `{label}` is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "it contains `{c}`; host names hold ASCII letters, digits, `-` and `.`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label `{label}` starts or ends with `-`"));
        }
    }
    Ok(())
}

/// Whether the allow-list entry `pattern` covers `host` (see [`Network::allows_host`]).
fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(base) => host
            .strip_suffix(base)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => host == pattern,
    }
}

/// The scheme and host of an absolute URL such as `https://user@example.org:8443/x?q`
/// (both lowercased; brackets removed from an IPv6 host). Only the authority is read,
/// which is all the permission rules need.
pub(crate) fn url_scheme_and_host(url: &str) -> Result<(String, String), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("it has no scheme such as `https://`".into());
    };
    let mut chars = scheme.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(format!("`{scheme}` is not a URL scheme"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(inner) = host_port.strip_prefix('[') {
        let Some((ip, _port)) = inner.split_once(']') else {
            return Err("it has an unclosed `[` in the host".into());
        };
        ip
    } else {
        match host_port.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            Some(_) => return Err("it has a port that is not a number".into()),
            None => host_port,
        }
    };
    if host.is_empty() {
        return Err("it has no host".into());
    }
    Ok((scheme.to_ascii_lowercase(), host.to_ascii_lowercase()))
}

/// Checks that a repository URL looks like one: `http(s)://`, a valid host, no white space.
fn check_repository(url: &str) -> Result<(), String> {
    if url.chars().any(char::is_whitespace) {
        return Err("it contains white space".into());
    }
    let (scheme, host) = url_scheme_and_host(url)?;
    if scheme != "https" && scheme != "http" {
        return Err(format!("the scheme `{scheme}` is not `https` or `http`"));
    }
    check_host(&host, false).map_err(|reason| format!("the host `{host}`: {reason}"))
}

/// Checks a parameter name: an identifier (ASCII letter or `_`, then letters, digits, `_`).
fn check_parameter_name(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("it is empty".into());
    };
    if name.chars().count() > MAX_PARAMETER_NAME_LEN {
        return Err(format!(
            "it is longer than {MAX_PARAMETER_NAME_LEN} characters"
        ));
    }
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(format!(
            "it must start with an ASCII letter or `_`, not `{first}`"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "it contains `{c}`; only ASCII letters, digits and `_` are allowed"
        ));
    }
    Ok(())
}

impl Manifest {
    /// The key no other published name may share (see [`crate::name::collision_key`]).
    pub fn collision_key(&self) -> String {
        self.name.collision_key()
    }

    /// Checks every rule the types do not; the first problem found, if any.
    pub fn validate(&self) -> Result<(), ManifestError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every rule the manifest breaks, in field order (empty when it is publishable).
    pub fn problems(&self) -> Vec<ManifestError> {
        use ManifestProblem as P;
        let mut out = Vec::new();
        let mut push = |field: String, problem: ManifestProblem| {
            out.push(ManifestError::new(field, problem));
        };

        // name and version are checked by their types (PackageName, semver::Version).
        let description = self.description.trim();
        if description.is_empty() {
            push("package.description".into(), P::EmptyDescription);
        } else if self.description.chars().count() > MAX_DESCRIPTION_LEN {
            push(
                "package.description".into(),
                P::DescriptionTooLong {
                    len: self.description.chars().count(),
                },
            );
        }

        for (i, author) in self.authors.iter().enumerate() {
            if author.trim().is_empty() {
                push(format!("package.authors[{i}]"), P::EmptyAuthor);
            }
        }

        if let Err(reason) = check_license(&self.license) {
            push(
                "package.license".into(),
                P::License {
                    license: self.license.clone(),
                    reason,
                },
            );
        }

        if let Some(url) = &self.repository {
            if let Err(reason) = check_repository(url) {
                push(
                    "package.repository".into(),
                    P::Repository {
                        url: url.clone(),
                        reason,
                    },
                );
            }
        }

        for (i, category) in self.categories.iter().enumerate() {
            if self.categories[..i].contains(category) {
                push(
                    format!("package.categories[{i}]"),
                    P::DuplicateCategory {
                        category: category.as_str(),
                    },
                );
            }
        }

        if self.keywords.len() > MAX_KEYWORDS {
            push(
                "package.keywords".into(),
                P::TooManyKeywords {
                    count: self.keywords.len(),
                },
            );
        }
        for (i, keyword) in self.keywords.iter().enumerate() {
            if let Err(reason) = check_keyword(keyword) {
                push(
                    format!("package.keywords[{i}]"),
                    P::Keyword {
                        keyword: keyword.clone(),
                        reason,
                    },
                );
            } else if self.keywords[..i]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(keyword))
            {
                push(
                    format!("package.keywords[{i}]"),
                    P::DuplicateKeyword {
                        keyword: keyword.clone(),
                    },
                );
            }
        }

        let own_key = self.collision_key();
        let mut seen: BTreeMap<String, &PackageName> = BTreeMap::new();
        for (name, req) in &self.dependencies {
            let field = format!("package.dependencies.{name}");
            let key = name.collision_key();
            if key == own_key {
                push(
                    field.clone(),
                    P::SelfDependency {
                        name: name.to_string(),
                    },
                );
            }
            if let Some(other) = seen.get(&key) {
                push(
                    field.clone(),
                    P::DependencyCollision {
                        name: name.to_string(),
                        other: other.to_string(),
                    },
                );
            } else {
                seen.insert(key, name);
            }
            // `*` parses to a requirement with no comparators at all.
            if req.comparators.is_empty() {
                push(
                    field,
                    P::WildcardRequirement {
                        req: req.to_string(),
                    },
                );
            }
        }

        if let Pricing::Paid {
            amount, currency, ..
        } = &self.pricing
        {
            if *amount == 0 {
                push("package.pricing.amount".into(), P::ZeroAmount);
            }
            if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
                push(
                    "package.pricing.currency".into(),
                    P::Currency {
                        currency: currency.clone(),
                    },
                );
            }
        }

        let permissions = &self.permissions;
        if let Network::Hosts(hosts) = &permissions.network {
            for (i, host) in hosts.iter().enumerate() {
                if let Err(reason) = check_host(host, true) {
                    push(
                        format!("package.permissions.network[{i}]"),
                        P::Host {
                            host: host.clone(),
                            reason,
                        },
                    );
                }
            }
        }
        for (i, command) in permissions.commands.iter().enumerate() {
            if let Err(reason) = check_command_name(command) {
                push(
                    format!("package.permissions.commands[{i}]"),
                    P::Command {
                        command: command.clone(),
                        reason,
                    },
                );
            }
        }
        if !(1..=MAX_DURATION_SECONDS).contains(&permissions.max_duration_seconds) {
            push(
                "package.permissions.max_duration_seconds".into(),
                P::MaxDuration {
                    value: permissions.max_duration_seconds,
                },
            );
        }

        for (i, parameter) in self.parameters.iter().enumerate() {
            let field = format!("package.parameters[{i}]");
            if let Err(reason) = check_parameter_name(&parameter.name) {
                push(
                    format!("{field}.name"),
                    P::ParameterName {
                        name: parameter.name.clone(),
                        reason,
                    },
                );
            } else if self.parameters[..i]
                .iter()
                .any(|p| p.name == parameter.name)
            {
                push(
                    format!("{field}.name"),
                    P::DuplicateParameter {
                        name: parameter.name.clone(),
                    },
                );
            }
            if let Some(default) = &parameter.default {
                if parameter.required {
                    push(format!("{field}.default"), P::RequiredWithDefault);
                }
                if !parameter.kind.accepts(default) {
                    push(
                        format!("{field}.default"),
                        P::DefaultType {
                            value: default.to_string(),
                            expected: parameter.kind.as_str(),
                        },
                    );
                }
            }
        }

        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "mission.yaml";

    /// The example of ARCHITECTURE section 2, inside a real RustChain mission.
    const EXAMPLE: &str = r#"version: "1.0"
name: Fix compilation errors
steps:
  - id: check
    name: Check
    step_type: command
    parameters: { command: cargo, args: [check] }
package:
  name: fix_compilation_errors
  version: 1.2.0
  description: Finds and fixes compiler errors in a Rust crate
  authors: ["Example Author <author@example.org>"]
  license: MIT
  repository: https://example.org/example/fix_compilation_errors
  categories: [build-automation]
  keywords: [rust, compiler]
  dependencies: { rust_toolchain_check: "^1.0" }
  pricing: { model: free }
  permissions:
    network: false
    commands: [cargo, rustc]
    llm: false
    max_duration_seconds: 600
  parameters:
    - { name: crate_path, type: string, required: true, description: Path of the crate }
"#;

    fn parse(text: &str) -> Result<Option<Manifest>, SourceError> {
        parse_package_block(text, SourceFormat::Yaml, Path::new(FILE))
    }

    fn parse_err(text: &str) -> SourceError {
        parse(text).expect_err("the block should be refused")
    }

    /// A valid manifest to break one rule at a time.
    fn example() -> Manifest {
        parse(EXAMPLE).unwrap().unwrap()
    }

    /// The single problem of `m`, as `field: message`.
    fn only_problem(m: &Manifest) -> String {
        let problems = m.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(m.validate(), Err(problems[0].clone()));
        problems[0].to_string()
    }

    /// `package:` with `body` (indented by the caller) after a minimal valid head.
    fn with_package(extra: &str) -> String {
        format!(
            "name: m\npackage:\n  name: demo\n  version: 1.0.0\n  description: d\n  license: MIT\n{extra}"
        )
    }

    #[test]
    fn reads_the_architecture_example() {
        let m = example();
        assert_eq!(m.name.as_str(), "fix_compilation_errors");
        assert_eq!(m.version, semver::Version::new(1, 2, 0));
        assert_eq!(m.categories, vec![Category::BuildAutomation]);
        assert_eq!(m.keywords, vec!["rust", "compiler"]);
        let dep = PackageName::new("rust_toolchain_check").unwrap();
        assert_eq!(m.dependencies[&dep].to_string(), "^1.0");
        assert_eq!(m.pricing, Pricing::Free);
        assert_eq!(m.permissions.commands, vec!["cargo", "rustc"]);
        assert_eq!(m.permissions.network, Network::Allowed(false));
        assert_eq!(m.parameters[0].name, "crate_path");
        assert!(m.parameters[0].required);
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(m.collision_key(), "fix_compilation_errors");
        let loaded = load_package_block(EXAMPLE, SourceFormat::Yaml, Path::new(FILE)).unwrap();
        assert_eq!(loaded, Some(m));
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let m = parse(&with_package("")).unwrap().unwrap();
        assert_eq!(m.pricing, Pricing::Free);
        assert_eq!(m.permissions, Permissions::default());
        assert_eq!(m.permissions.max_duration_seconds, 600);
        assert!(m.authors.is_empty() && m.keywords.is_empty() && m.parameters.is_empty());
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn a_plain_mission_has_no_block() {
        let plain = "version: '1.0'\nname: x\nsteps:\n  - {id: a, name: a, step_type: noop, parameters: {}}\n";
        assert_eq!(parse(plain), Ok(None));
        let json = r#"{"version": "1.0", "name": "x", "steps": []}"#;
        assert_eq!(
            parse_package_block(json, SourceFormat::Json, Path::new("m.json")),
            Ok(None)
        );
        assert_eq!(
            load_package_block(plain, SourceFormat::Yaml, Path::new(FILE)),
            Ok(None)
        );
    }

    #[test]
    fn the_rest_of_the_file_is_not_checked_here() {
        // Step shapes are the mission parser's business, even nonsense ones.
        let text = format!(
            "steps: 42\nconfig: {{ whatever: [1, 2] }}\n{}",
            with_package("")
        );
        assert!(parse(&text).unwrap().is_some());
    }

    #[test]
    fn reads_json_and_reports_its_lines() {
        let json = r#"{
  "name": "x",
  "package": {
    "name": "demo",
    "version": "1.0.0",
    "description": "d",
    "license": "MIT",
    "keywords": ["a", 7]
  }
}"#;
        let err = parse_package_block(json, SourceFormat::Json, Path::new("m.json")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("package.keywords[1]"));
        assert_eq!(err.line, Some(8));
        assert!(err.message.contains("invalid type: integer `7`"), "{err}");
        assert!(
            !err.message.contains("line 8"),
            "position printed twice: {err}"
        );
        assert!(
            err.to_string()
                .starts_with("m.json:8: error: package.keywords[1]: "),
            "{err}"
        );

        let good = json.replace(", 7]", "]");
        let m = parse_package_block(&good, SourceFormat::Json, Path::new("m.json"))
            .unwrap()
            .unwrap();
        assert_eq!(m.keywords, vec!["a"]);

        let trailing = format!("{good} x");
        let err =
            parse_package_block(&trailing, SourceFormat::Json, Path::new("m.json")).unwrap_err();
        assert!(err.message.contains("trailing characters"), "{err}");
        assert_eq!(err.line, Some(10));
    }

    #[test]
    fn a_bad_version_names_the_field_and_line() {
        let err = parse_err(&EXAMPLE.replace("version: 1.2.0", "version: 1.2"));
        assert_eq!(err.field.as_deref(), Some("package.version"), "{err}");
        assert_eq!(err.line, Some(10), "{err}");
        let err = parse_err(&EXAMPLE.replace("version: 1.2.0", "version: one"));
        assert_eq!(err.field.as_deref(), Some("package.version"), "{err}");
        assert!(err.message.contains("unexpected character"), "{err}");
        assert!(
            err.to_string()
                .starts_with("mission.yaml:10: error: package.version: "),
            "{err}"
        );
    }

    #[test]
    fn a_bad_requirement_names_the_dependency() {
        let err = parse_err(&EXAMPLE.replace("\"^1.0\"", "\"^^1\""));
        assert_eq!(
            err.field.as_deref(),
            Some("package.dependencies.rust_toolchain_check"),
            "{err}"
        );
        assert_eq!(err.line, Some(17), "{err}");
    }

    #[test]
    fn a_bad_dependency_name_is_refused_with_the_name() {
        let err = parse_err(&EXAMPLE.replace("rust_toolchain_check:", "\"9lives\":"));
        assert_eq!(
            err.field.as_deref(),
            Some("package.dependencies.9lives"),
            "{err}"
        );
        assert_eq!(
            err.message,
            "the name `9lives` must start with an ASCII letter, not `9`"
        );
        assert_eq!(err.line, Some(17));
        let err = parse_err(&EXAMPLE.replace("rust_toolchain_check:", "core:"));
        assert!(err.message.contains("reserved"), "{err}");
    }

    #[test]
    fn a_bad_or_reserved_package_name_is_refused() {
        let err = parse_err(&EXAMPLE.replace("name: fix_compilation_errors", "name: my mission"));
        assert_eq!(err.field.as_deref(), Some("package.name"), "{err}");
        assert!(err.message.contains("my mission"), "{err}");
        assert_eq!(err.line, Some(9));
        let err = parse_err(&EXAMPLE.replace("name: fix_compilation_errors", "name: Registry"));
        assert_eq!(err.field.as_deref(), Some("package.name"), "{err}");
        assert!(err.message.contains("reserved"), "{err}");
    }

    #[test]
    fn unknown_keys_in_the_block_are_refused_by_name() {
        let err = parse_err(&EXAMPLE.replace("  dependencies:", "  dependancies:"));
        assert_eq!(err.field.as_deref(), Some("package.dependancies"), "{err}");
        assert!(
            err.message.contains("unknown field `dependancies`"),
            "{err}"
        );
        assert!(
            err.message.contains("`dependencies`"),
            "lists the known keys: {err}"
        );
        assert_eq!(err.line, Some(17));

        let err = parse_err(&EXAMPLE.replace("    llm: false", "    lm: false"));
        assert_eq!(
            err.field.as_deref(),
            Some("package.permissions.lm"),
            "{err}"
        );

        let err = parse_err(&EXAMPLE.replace("required: true", "requird: true"));
        assert_eq!(
            err.field.as_deref(),
            Some("package.parameters[0].requird"),
            "{err}"
        );

        let err = parse_err(&EXAMPLE.replace("{ model: free }", "{ model: free, amount: 5 }"));
        assert_eq!(
            err.field.as_deref(),
            Some("package.pricing.amount"),
            "{err}"
        );
        assert!(err.message.contains("unknown field `amount`"), "{err}");
        // serde reads the tagged pricing through a buffer, so the line is found afresh.
        assert_eq!(err.line, Some(18), "{err}");
    }

    #[test]
    fn a_missing_key_names_the_key() {
        let err = parse_err(&EXAMPLE.replace("  license: MIT\n", ""));
        assert_eq!(err.field.as_deref(), Some("package.license"), "{err}");
        assert!(err.message.contains("missing field `license`"), "{err}");
        let err = parse_err(&EXAMPLE.replace(
            "{ model: free }",
            "{ model: paid, amount: 100, currency: USD }",
        ));
        assert_eq!(
            err.field.as_deref(),
            Some("package.pricing.licence"),
            "{err}"
        );
    }

    #[test]
    fn wrong_types_name_the_element() {
        let err = parse_err(&EXAMPLE.replace(
            "keywords: [rust, compiler]",
            "keywords: [a, b, c, d, e, [f]]",
        ));
        assert_eq!(err.field.as_deref(), Some("package.keywords[5]"), "{err}");
        let err =
            parse_err(&EXAMPLE.replace("max_duration_seconds: 600", "max_duration_seconds: -1"));
        assert_eq!(
            err.field.as_deref(),
            Some("package.permissions.max_duration_seconds"),
            "{err}"
        );
        let err = parse_err(&EXAMPLE.replace("type: string", "type: text"));
        assert_eq!(
            err.field.as_deref(),
            Some("package.parameters[0].type"),
            "{err}"
        );
        assert!(err.message.contains("`boolean`"), "lists the types: {err}");
    }

    #[test]
    fn an_unknown_category_lists_the_allowed_ones() {
        let err = parse_err(&EXAMPLE.replace("[build-automation]", "[build-automation, games]"));
        assert_eq!(err.field.as_deref(), Some("package.categories[1]"), "{err}");
        for c in Category::ALL {
            assert!(err.message.contains(c.as_str()), "{c:?} missing from {err}");
        }
    }

    #[test]
    fn network_takes_false_true_or_hosts() {
        let with = |v: &str| parse(&EXAMPLE.replace("network: false", &format!("network: {v}")));
        assert_eq!(
            with("true").unwrap().unwrap().permissions.network,
            Network::Allowed(true)
        );
        assert_eq!(
            with("[api.example.org]")
                .unwrap()
                .unwrap()
                .permissions
                .network,
            Network::Hosts(vec!["api.example.org".into()])
        );
        let err = with("yes please").unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("package.permissions.network"),
            "{err}"
        );
        assert!(
            err.message
                .contains("`false`, `true` or a list of host names"),
            "{err}"
        );
        let err = with("[{a: 1}]").unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("package.permissions.network[0]"),
            "{err}"
        );
    }

    #[test]
    fn paid_pricing_reads_its_fields() {
        let m = parse(&EXAMPLE.replace(
            "{ model: free }",
            "{ model: paid, amount: 1500, currency: USD, licence: per_user }",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            m.pricing,
            Pricing::Paid {
                amount: 1500,
                currency: "USD".into(),
                licence: LicenceKind::PerUser
            }
        );
        assert_eq!(m.validate(), Ok(()));
        let err = parse_err(&EXAMPLE.replace("{ model: free }", "{ model: gratis }"));
        assert_eq!(err.field.as_deref(), Some("package.pricing.model"), "{err}");
        assert!(err.message.contains("unknown variant `gratis`"), "{err}");
    }

    #[test]
    fn serializes_back_to_the_same_shape() {
        let m = example();
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["pricing"], serde_json::json!({"model": "free"}));
        assert_eq!(json["permissions"]["network"], serde_json::json!(false));
        assert_eq!(json["parameters"][0]["type"], "string");
        let back: Manifest = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn description_must_be_present_and_sane() {
        let mut m = example();
        m.description = "   ".into();
        assert_eq!(
            only_problem(&m),
            "package.description: the description is empty"
        );
        m.description = "x".repeat(MAX_DESCRIPTION_LEN + 1);
        assert!(only_problem(&m).starts_with("package.description: the description is 1001"));
        m.description = "x".repeat(MAX_DESCRIPTION_LEN);
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn authors_are_non_empty() {
        let mut m = example();
        m.authors = vec!["A <a@example.org>".into(), " ".into()];
        assert_eq!(
            only_problem(&m),
            "package.authors[1]: an author is an empty string"
        );
    }

    #[test]
    fn licences_follow_crates_io() {
        let mut m = example();
        for ok in [
            "MIT",
            "MIT OR Apache-2.0",
            "MIT/Apache-2.0",
            "(MIT OR Apache-2.0) AND BSD-3-Clause",
            "GPL-3.0+",
            "GPL-3.0-or-later",
            "GPL-3.0",      // deprecated, accepted as on crates.io
            "CC-BY-NC-4.0", // not OSI-approved, still an SPDX id
            "Apache-2.0 WITH LLVM-exception",
            "LicenseRef-Proprietary",
        ] {
            m.license = ok.into();
            assert_eq!(m.validate(), Ok(()), "{ok}");
        }
        m.license = "Apache 2.0".into();
        let msg = only_problem(&m);
        assert!(
            msg.starts_with("package.license: `Apache 2.0` is not a valid SPDX"),
            "{msg}"
        );
        m.license = "MIT OR Foo".into();
        let msg = only_problem(&m);
        assert!(
            msg.contains("unknown term") && msg.contains("`Foo`"),
            "{msg}"
        );
        m.license = "(MIT".into();
        assert!(only_problem(&m).contains("unclosed parens"));
        m.license = String::new();
        assert!(only_problem(&m).starts_with("package.license: "));
    }

    #[test]
    fn repository_must_look_like_a_url() {
        let mut m = example();
        for ok in [
            "https://github.com/a/b",
            "http://git.example.org:8080/a.git",
            "https://[::1]/x",
        ] {
            m.repository = Some(ok.into());
            assert_eq!(m.validate(), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("github.com/a/b", "no scheme"),
            ("ftp://example.org/a", "`ftp`"),
            ("https://exa mple.org/", "white space"),
            ("https:///path", "no host"),
            ("https://bad_host.org/", "`_`"),
            ("https://example.org:http/", "port"),
        ] {
            m.repository = Some(bad.into());
            let msg = only_problem(&m);
            assert!(msg.starts_with("package.repository: "), "{msg}");
            assert!(msg.contains(why), "{bad}: {msg}");
        }
    }

    #[test]
    fn keywords_follow_crates_io() {
        let mut m = example();
        m.keywords = vec!["c++".into(), "no_std".into(), "web-dev".into(), "a1".into()];
        assert_eq!(m.validate(), Ok(()));
        m.keywords = (0..6).map(|i| format!("k{i}")).collect();
        assert_eq!(
            only_problem(&m),
            "package.keywords: 6 keywords given; the limit is 5"
        );
        for (bad, why) in [
            ("1password", "start with an ASCII letter"),
            ("two words", "contains ` `"),
            ("émoji", "start with an ASCII letter"),
            ("a.b", "contains `.`"),
            ("abcdefghijklmnopqrstu", "21 characters"),
            ("", "empty"),
        ] {
            m.keywords = vec!["ok".into(), bad.into()];
            let msg = only_problem(&m);
            assert!(msg.starts_with("package.keywords[1]: "), "{msg}");
            assert!(msg.contains(why), "{bad}: {msg}");
        }
        m.keywords = vec!["Rust".into(), "rust".into()];
        assert_eq!(
            only_problem(&m),
            "package.keywords[1]: the keyword `rust` is given twice"
        );
    }

    #[test]
    fn categories_are_not_repeated() {
        let mut m = example();
        m.categories = vec![Category::Testing, Category::CiCd, Category::Testing];
        assert_eq!(
            only_problem(&m),
            "package.categories[2]: the category `testing` is given twice"
        );
    }

    #[test]
    fn dependencies_are_checked_by_collision_key() {
        let mut m = example();
        m.dependencies.clear();
        m.dependencies.insert(
            PackageName::new("Fix-Compilation-Errors").unwrap(),
            "^1".parse().unwrap(),
        );
        assert_eq!(
            only_problem(&m),
            "package.dependencies.Fix-Compilation-Errors: `Fix-Compilation-Errors` cannot depend on itself"
        );

        m.dependencies.clear();
        m.dependencies.insert(
            PackageName::new("lint-rust").unwrap(),
            "^1".parse().unwrap(),
        );
        m.dependencies.insert(
            PackageName::new("lint_rust").unwrap(),
            "^2".parse().unwrap(),
        );
        let msg = only_problem(&m);
        assert!(msg.starts_with("package.dependencies.lint_rust: "), "{msg}");
        assert!(
            msg.contains("`lint_rust` and `lint-rust` are the same"),
            "{msg}"
        );

        m.dependencies.clear();
        m.dependencies
            .insert(PackageName::new("other").unwrap(), "*".parse().unwrap());
        assert!(only_problem(&m).starts_with("package.dependencies.other: the wildcard"));
        m.dependencies
            .insert(PackageName::new("other").unwrap(), "1.*".parse().unwrap());
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn paid_pricing_needs_an_amount_and_a_currency_code() {
        let mut m = example();
        m.pricing = Pricing::Paid {
            amount: 0,
            currency: "USD".into(),
            licence: LicenceKind::PerTeam,
        };
        assert_eq!(
            only_problem(&m),
            "package.pricing.amount: a paid mission needs an amount above 0"
        );
        for bad in ["usd", "US", "USDT", "U5D", ""] {
            m.pricing = Pricing::Paid {
                amount: 100,
                currency: bad.into(),
                licence: LicenceKind::Subscription,
            };
            let msg = only_problem(&m);
            assert!(
                msg.starts_with("package.pricing.currency: "),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn commands_are_bare_program_names() {
        let mut m = example();
        m.permissions.commands = vec!["cargo".into(), "python3.12".into(), "g++".into()];
        assert_eq!(m.validate(), Ok(()));
        for (bad, why) in [
            ("", "empty"),
            ("cargo build", "white space"),
            ("/usr/bin/git", "path"),
            ("./run.sh", "path"),
            ("a\\b", "path"),
            ("..", "not a program"),
        ] {
            m.permissions.commands = vec!["git".into(), bad.into()];
            let msg = only_problem(&m);
            assert!(
                msg.starts_with("package.permissions.commands[1]: "),
                "{msg}"
            );
            assert!(msg.contains(why), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn network_hosts_are_host_names() {
        let mut m = example();
        m.permissions.network = Network::Hosts(vec![
            "api.example.org".into(),
            "*.githubusercontent.com".into(),
            "localhost".into(),
            "127.0.0.1".into(),
            "::1".into(),
        ]);
        assert_eq!(m.validate(), Ok(()));
        for (bad, why) in [
            ("https://example.org", "scheme"),
            ("example.org/path", "path"),
            ("example.org:443", "port"),
            ("*.org", "two labels"),
            ("api.*.example.org", "first label"),
            ("exa_mple.org", "`_`"),
            ("example..org", "empty label"),
            ("-bad.org", "starts or ends with `-`"),
            ("", "empty"),
        ] {
            m.permissions.network = Network::Hosts(vec![bad.into()]);
            let msg = only_problem(&m);
            assert!(msg.starts_with("package.permissions.network[0]: "), "{msg}");
            assert!(msg.contains(why), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn host_allow_list_matching() {
        let n = Network::Hosts(vec!["api.example.org".into(), "*.cdn.example.net".into()]);
        assert!(n.allows_host("api.example.org"));
        assert!(n.allows_host("API.Example.org"));
        assert!(n.allows_host("a.cdn.example.net"));
        assert!(n.allows_host("a.b.cdn.example.net"));
        assert!(
            !n.allows_host("cdn.example.net"),
            "the wildcard needs a subdomain"
        );
        assert!(!n.allows_host("evilcdn.example.net"));
        assert!(!n.allows_host("example.org"));
        assert!(!n.allows_host("api.example.org.evil.com"));
        assert!(Network::Allowed(true).allows_host("anything.example"));
        assert!(!Network::Allowed(false).allows_host("localhost"));
        assert!(!Network::Hosts(vec![]).any());
    }

    #[test]
    fn max_duration_is_one_second_to_one_day() {
        let mut m = example();
        for ok in [1, 600, MAX_DURATION_SECONDS] {
            m.permissions.max_duration_seconds = ok;
            assert_eq!(m.validate(), Ok(()));
        }
        for bad in [0, MAX_DURATION_SECONDS + 1] {
            m.permissions.max_duration_seconds = bad;
            assert!(only_problem(&m).starts_with("package.permissions.max_duration_seconds: "));
        }
    }

    fn parameter(name: &str, kind: ParameterType, default: Option<serde_json::Value>) -> Parameter {
        Parameter {
            name: name.into(),
            kind,
            required: false,
            description: None,
            default,
        }
    }

    #[test]
    fn parameter_names_are_unique_identifiers() {
        let mut m = example();
        m.parameters = vec![
            parameter("crate_path", ParameterType::Path, None),
            parameter("_x9", ParameterType::String, None),
        ];
        assert_eq!(m.validate(), Ok(()));
        for (bad, why) in [("9x", "start"), ("crate-path", "`-`"), ("", "empty")] {
            m.parameters = vec![parameter(bad, ParameterType::String, None)];
            let msg = only_problem(&m);
            assert!(msg.starts_with("package.parameters[0].name: "), "{msg}");
            assert!(msg.contains(why), "{bad:?}: {msg}");
        }
        m.parameters = vec![
            parameter("a", ParameterType::String, None),
            parameter("a", ParameterType::Integer, None),
        ];
        assert_eq!(
            only_problem(&m),
            "package.parameters[1].name: the parameter `a` is declared twice"
        );
    }

    #[test]
    fn parameter_defaults_match_their_type() {
        use serde_json::json;
        let mut m = example();
        for (kind, ok) in [
            (ParameterType::String, json!("x")),
            (ParameterType::String, json!("")),
            (ParameterType::Path, json!("src")),
            (ParameterType::Integer, json!(-3)),
            (ParameterType::Number, json!(2.5)),
            (ParameterType::Number, json!(2)),
            (ParameterType::Boolean, json!(true)),
        ] {
            m.parameters = vec![parameter("p", kind, Some(ok.clone()))];
            assert_eq!(m.validate(), Ok(()), "{kind:?} {ok}");
        }
        for (kind, bad) in [
            (ParameterType::String, json!(1)),
            (ParameterType::Path, json!("")),
            (ParameterType::Integer, json!(1.5)),
            (ParameterType::Integer, json!("1")),
            (ParameterType::Number, json!("1")),
            (ParameterType::Boolean, json!("yes")),
        ] {
            m.parameters = vec![parameter("p", kind, Some(bad.clone()))];
            let msg = only_problem(&m);
            assert_eq!(
                msg,
                format!(
                    "package.parameters[0].default: the default {bad} is not a {}",
                    kind.as_str()
                )
            );
        }
        let mut p = parameter("p", ParameterType::String, Some(json!("x")));
        p.required = true;
        m.parameters = vec![p];
        assert_eq!(
            only_problem(&m),
            "package.parameters[0].default: a required parameter cannot have a default; drop `required` or the default"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut m = example();
        m.description = String::new();
        m.license = "Nope".into();
        m.keywords = vec!["ok".into(), "bad word".into()];
        m.permissions.commands = vec!["/bin/sh".into()];
        let fields: Vec<String> = m.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "package.description",
                "package.license",
                "package.keywords[1]",
                "package.permissions.commands[0]"
            ]
        );
        assert_eq!(m.validate().unwrap_err().field, "package.description");

        let text = EXAMPLE
            .replace("license: MIT", "license: Nope")
            .replace("[rust, compiler]", "[rust, rust]");
        let errs = load_package_block(&text, SourceFormat::Yaml, Path::new(FILE)).unwrap_err();
        let printed: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(printed.len(), 2, "{printed:?}");
        assert!(
            printed[0].starts_with("mission.yaml:13: error: package.license: `Nope`"),
            "{printed:?}"
        );
        assert_eq!(
            printed[1],
            "mission.yaml:16: error: package.keywords[1]: the keyword `rust` is given twice"
        );
    }

    #[test]
    fn a_duplicate_key_in_the_block_names_the_key_at_its_second_line() {
        let err = parse_err(&EXAMPLE.replace(
            "  description: Finds",
            "  version: 1.3.0\n  description: Finds",
        ));
        assert_eq!(
            err.to_string(),
            "mission.yaml:11: error: package.version: duplicate field `version`"
        );
    }

    #[test]
    fn a_tab_in_the_block_is_explained_without_a_stray_question_mark() {
        let err = parse_err(&EXAMPLE.replace("    llm: false", "\tllm: false"));
        let field = err.field.clone().unwrap_or_default();
        assert!(!field.contains('?'), "{err}");
        assert!(
            err.message.contains("YAML cannot be indented with tabs"),
            "{err}"
        );
        assert_eq!(err.line, Some(22), "{err}");
    }

    #[test]
    fn rule_errors_carry_the_line_of_their_field() {
        let load = |text: &str| {
            load_package_block(text, SourceFormat::Yaml, Path::new(FILE))
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        let printed = load(
            &EXAMPLE
                .replace("[rust, compiler]", "[a, b, c, d, e, f]")
                .replace("network: false", "network: [example.org, \"https://x\"]")
                .replace("max_duration_seconds: 600", "max_duration_seconds: 0")
                .replace(
                    "{ model: free }",
                    "{ model: paid, amount: 0, currency: usd, licence: per_user }",
                ),
        );
        let lines: Vec<&str> = printed
            .iter()
            .map(|p| p.split(": error: ").next().unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                "mission.yaml:16",
                "mission.yaml:18",
                "mission.yaml:18",
                "mission.yaml:20",
                "mission.yaml:23"
            ],
            "{printed:#?}"
        );
        assert!(
            printed[0].contains("package.keywords: 6 keywords"),
            "{printed:?}"
        );
        assert!(
            printed[3].contains("package.permissions.network[1]: "),
            "{printed:?}"
        );

        // JSON too.
        let json = r#"{"name": "x",
  "package": {
    "name": "demo", "version": "1.0.0", "description": "d",
    "license": "MITT"
  }
}"#;
        let errs = load_package_block(json, SourceFormat::Json, Path::new("m.json")).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .starts_with("m.json:4: error: package.license: `MITT`"),
            "{errs:?}"
        );
    }

    #[test]
    fn the_block_reader_applies_the_input_limits_on_its_own() {
        let path = Path::new(FILE);
        let bomb = with_package(&format!(
            "  parameters:\n    - name: p\n      default:\n{}",
            {
                let mut s =
                    String::from("        a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
                for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
                    .iter()
                    .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
                {
                    s.push_str(&format!(
                        "        {name}: &{name} [{}]\n",
                        vec![format!("*{prev}"); 9].join(", ")
                    ));
                }
                s
            }
        ));
        let started = std::time::Instant::now();
        let err = parse_package_block(&bomb, SourceFormat::Yaml, path).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        assert!(err.message.contains("alias bomb"), "{err}");

        let deep = with_package(&format!(
            "  keywords: {}\n",
            "[".repeat(crate::mission::MAX_YAML_BRACKETS + 1)
        ));
        let err = parse_package_block(&deep, SourceFormat::Yaml, path).unwrap_err();
        assert!(err.message.contains("`[` and `{` characters"), "{err}");

        let big = format!(
            "{}# {}\n",
            with_package(""),
            "x".repeat(crate::mission::MAX_MISSION_BYTES)
        );
        for format in [SourceFormat::Yaml, SourceFormat::Json] {
            let err = parse_package_block(&big, format, path).unwrap_err();
            assert!(err.message.contains("larger than"), "{err}");
            let errs = load_package_block(&big, format, path).unwrap_err();
            assert!(errs[0].message.contains("larger than"), "{errs:?}");
        }
    }
}
