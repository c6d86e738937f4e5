//! The `package:` block of a mission package (ARCHITECTURE section 2).
//!
//! RustChain ignores unknown top-level keys, so a package's `mission.yaml` is a RustChain
//! mission with this block added and still runs under RustChain unchanged.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::name::PackageName;

/// The `package:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[serde(tag = "model", rename_all = "snake_case")]
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

/// `network: false` (the default) or `network: [host, ...]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
}

/// An input the user passes with `--param name=value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
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
