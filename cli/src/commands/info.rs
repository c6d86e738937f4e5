//! `mission info NAME[@VERSION] [--json]`: a mission's details from the node
//! (`GET /api/v1/missions/NAME`).

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use mission_index::repo::IndexConfig;
use mission_index::signing::PublicKey;

use crate::certification_policy;
use crate::registry;
use crate::sparse_client::SparseIndex;
use crate::trust::{TrustConfig, TrustStore};

#[derive(clap::Args)]
pub struct Args {
    /// The mission, as NAME or NAME@VERSION (default: the newest version)
    pub spec: String,
    /// The registry: a name from config.toml or a URL (default: the configured default)
    #[arg(long)]
    pub registry: Option<String>,
    /// Print the details as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let (name, version) = match args.spec.split_once('@') {
        Some((n, v)) => (n.to_owned(), Some(v.trim().to_owned())),
        None => (args.spec.clone(), None),
    };
    super::require_name(&name, &args.spec, "mission info fix_build")?;
    mission_index::name::validate_name(&name).with_context(|| format!("`{}`", args.spec))?;
    // `info` shows one version: an exact one, not a requirement (as `cargo info` takes).
    if let Some(v) = &version {
        if v.is_empty() {
            bail!("`{}`: nothing after @; give a version, as in `{name}@1.2.3`, or none for the newest", args.spec);
        }
        if semver::Version::parse(v).is_err() {
            bail!("`{}`: `{v}` is not a version; info takes an exact one, as in `{name}@1.2.3` (`mission install {name}@{v}` takes a requirement)", args.spec);
        }
    }
    let registry = registry::resolve(args.registry.as_deref())?;
    let home = crate::home::mission_home()?;
    let index = SparseIndex::new(registry.clone(), &home.join("cache").join("index"), false);
    let mut reply = index.get(&format!("/api/v1/missions/{name}"), None)?;
    if reply.status == 404 {
        let close = crate::install::suggestions(&index, &name, false);
        // The same name with `-` for `_` (or in another case) is the same mission.
        if let Some(known) = close.first().filter(|known| {
            mission_index::name::collision_key(known) == mission_index::name::collision_key(&name)
        }) {
            eprintln!("note: translating `{name}` to `{known}`");
            reply = index.get(&format!("/api/v1/missions/{known}"), None)?;
        }
        if reply.status == 404 && close.is_empty() {
            bail!(
                "no mission named `{name}` on {}; search with `mission search WORD`",
                registry.display()
            );
        }
        if reply.status == 404 {
            bail!(
                "no mission named `{name}` on {}; did you mean {}?",
                registry.display(),
                crate::install::quoted(&close, ", ")
            );
        }
    }
    if reply.status != 200 {
        return Err(super::node_error(
            &reply,
            &registry,
            "reading the mission's details",
        ));
    }
    let details: Value = serde_json::from_slice(&reply.body)
        .with_context(|| format!("{}: the answer is not JSON", reply.url))?;
    let versions = details["versions"].as_array().cloned().unwrap_or_default();
    let wanted = version
        .clone()
        .or_else(|| details["max_version"].as_str().map(str::to_owned))
        .or_else(|| {
            versions
                .last()
                .and_then(|v| v["vers"].as_str())
                .map(str::to_owned)
        });
    let chosen = wanted.as_deref().and_then(|w| {
        versions
            .iter()
            .find(|v| v["vers"].as_str() == Some(w))
            .cloned()
    });
    let Some(chosen) = chosen else {
        let listed: Vec<&str> = versions.iter().filter_map(|v| v["vers"].as_str()).collect();
        bail!(
            "`{name}` has no version {}; it has: {}",
            wanted.unwrap_or_default(),
            if listed.is_empty() {
                "none".into()
            } else {
                listed.join(", ")
            }
        );
    };
    if args.json {
        let mut out = details.clone();
        out["version"] = chosen;
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let list = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!(
        "{} {}{}",
        s(&details["name"]),
        s(&chosen["vers"]),
        if chosen["yanked"].as_bool() == Some(true) {
            " (yanked)"
        } else {
            ""
        }
    );
    println!("description: {}", s(&chosen["description"]));
    println!("license: {}", s(&chosen["license"]));
    println!("categories: {}", list(&chosen["categories"]));
    println!("keywords: {}", list(&chosen["keywords"]));
    println!("pricing: {}", chosen["pricing"]);
    println!("permissions: {}", chosen["permissions"]);
    let deps: Vec<String> = chosen["deps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| format!("{} {}", s(&d["name"]), s(&d["req"])))
                .collect()
        })
        .unwrap_or_default();
    println!(
        "dependencies: {}",
        if deps.is_empty() {
            "none".into()
        } else {
            deps.join(", ")
        }
    );
    println!("key: {}", s(&chosen["key"]));
    println!("cksum: {}", s(&chosen["cksum"]));
    println!(
        "published: {} on {}",
        s(&chosen["pubtime"]),
        s(&chosen["origin"])
    );
    let owners: Vec<String> = details["owners"]
        .as_array()
        .map(|a| a.iter().map(|o| s(&o["login"])).collect())
        .unwrap_or_default();
    println!("owners: {}", owners.join(", "));
    // Highest first, yanked ones marked, as the resolver lists them (the node lists them
    // in publication order).
    let mut listed: Vec<(Option<semver::Version>, String)> = versions
        .iter()
        .map(|v| {
            let vers = s(&v["vers"]);
            let shown = if v["yanked"].as_bool() == Some(true) {
                format!("{vers} (yanked)")
            } else {
                vers.clone()
            };
            (semver::Version::parse(&vers).ok(), shown)
        })
        .collect();
    listed.sort_by(|a, b| b.0.cmp(&a.0));
    println!(
        "versions: {}",
        listed
            .into_iter()
            .map(|(_, shown)| shown)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("downloads: {}", details["downloads"].as_u64().unwrap_or(0));
    let lines: Vec<&str> = details["certifications"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let keys = certifier_keys(&index)?;
    let findings = certification_policy::review(
        &s(&details["name"]),
        &s(&chosen["vers"]),
        &s(&chosen["cksum"]),
        &lines.join("\n"),
        &keys,
    );
    println!(
        "certifications: {}",
        if findings.is_empty() {
            "none".to_owned()
        } else {
            findings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The keys whose certifications count for this registry: its node key (pinned or
/// configured; before the first install, the one its config.json names) and
/// `[trust] certifiers`.
fn certifier_keys(index: &SparseIndex) -> Result<certification_policy::Keys> {
    let config = TrustConfig::load()?;
    let node = match TrustStore::load()?.node_key(index.registry())? {
        Some(key) => Some(key),
        None => index
            .fetch("config.json")
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<IndexConfig>(&bytes).ok())
            .map(|c| c.node.key),
    };
    Ok(certification_policy::Keys {
        // Only shown here; an install checks the key for real.
        node: node.and_then(|k| PublicKey::parse(&k).ok()),
        certifiers: config.certifiers,
    })
}
