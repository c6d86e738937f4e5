//! `mission info NAME[@VERSION|@REQ] [--json]`: a mission's details from the node
//! (`GET /api/v1/missions/NAME`), for the newest version, an exact one, or (as `cargo info
//! foo@^1`) the highest one matching a requirement.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use semver::{Version, VersionReq};
use serde_json::Value;

use mission_index::repo::IndexConfig;
use mission_index::signing::PublicKey;

use crate::certification_policy;
use crate::registry;
use crate::sparse_client::SparseIndex;
use crate::trust::{TrustConfig, TrustStore};

#[derive(clap::Args)]
pub struct Args {
    /// The mission, as NAME, NAME@VERSION or NAME@REQ (`fix_build@^1`: the highest version
    /// matching); NAME alone: the newest version
    pub spec: String,
    /// The registry: a name from config.toml or a URL (default: the configured default)
    #[arg(long)]
    pub registry: Option<String>,
    /// Print the details as JSON
    #[arg(long)]
    pub json: bool,
}

/// Which version `NAME@...` asks for.
#[derive(Debug, PartialEq)]
enum Wanted {
    /// NAME alone: the newest.
    Newest,
    /// NAME@1.2.3.
    Exact(Version),
    /// NAME@^1: the highest version matching, as the user wrote the requirement.
    Matching(VersionReq, String),
}

/// Splits `NAME[@VERSION|@REQ]`, checking both parts.
fn parse_spec(spec: &str) -> Result<(String, Wanted)> {
    let (name, version) = match spec.split_once('@') {
        Some((n, v)) => (n.to_owned(), Some(v.trim())),
        None => (spec.to_owned(), None),
    };
    super::require_name(&name, spec, "mission info fix_build")?;
    mission_index::name::validate_name(&name).with_context(|| format!("`{spec}`"))?;
    let Some(v) = version else {
        return Ok((name, Wanted::Newest));
    };
    if v.is_empty() {
        bail!("`{spec}`: nothing after @; give a version or a requirement, as in `{name}@1.2.3` or `{name}@^1`, or none for the newest");
    }
    if let Ok(exact) = Version::parse(v) {
        return Ok((name, Wanted::Exact(exact)));
    }
    match VersionReq::parse(v) {
        Ok(req) => Ok((name, Wanted::Matching(req, v.to_owned()))),
        Err(e) => bail!("`{spec}`: `{v}` is neither a version nor a requirement ({e}); give one as in `{name}@1.2.3` or `{name}@^1`"),
    }
}

/// The version of `versions` (the node's list) `wanted` picks: the newest is the node's
/// `max_version` (else the last published); a requirement picks the highest matching
/// version that is not yanked, else the highest yanked one.
fn choose<'a>(
    versions: &'a [Value],
    wanted: &Wanted,
    max_version: Option<&str>,
) -> Option<&'a Value> {
    let parsed = |v: &Value| v["vers"].as_str().and_then(|s| Version::parse(s).ok());
    match wanted {
        Wanted::Newest => match max_version {
            Some(max) => versions.iter().find(|v| v["vers"].as_str() == Some(max)),
            None => versions.last(),
        },
        Wanted::Exact(exact) => versions.iter().find(|v| parsed(v).as_ref() == Some(exact)),
        Wanted::Matching(req, _) => {
            let highest = |yanked: bool| {
                versions
                    .iter()
                    .filter(|v| is_yanked(v) == yanked)
                    .filter_map(|v| parsed(v).filter(|p| req.matches(p)).map(|p| (p, v)))
                    .max_by(|a, b| a.0.cmp(&b.0))
                    .map(|(_, v)| v)
            };
            highest(false).or_else(|| highest(true))
        }
    }
}

fn is_yanked(version: &Value) -> bool {
    version["yanked"].as_bool() == Some(true)
}

/// The versions of the node's list, highest first, yanked ones marked, as the resolver
/// lists them (the node lists them in publication order).
fn listed(versions: &[Value]) -> String {
    let mut listed: Vec<(Option<Version>, String)> = versions
        .iter()
        .map(|v| {
            let vers = v["vers"].as_str().unwrap_or("").to_owned();
            let shown = if is_yanked(v) {
                format!("{vers} (yanked)")
            } else {
                vers.clone()
            };
            (Version::parse(&vers).ok(), shown)
        })
        .collect();
    listed.sort_by(|a, b| b.0.cmp(&a.0));
    if listed.is_empty() {
        return "none".to_owned();
    }
    listed
        .into_iter()
        .map(|(_, shown)| shown)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(args: Args) -> Result<ExitCode> {
    let (name, wanted) = parse_spec(&args.spec)?;
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
    let Some(chosen) = choose(&versions, &wanted, details["max_version"].as_str()).cloned() else {
        match &wanted {
            Wanted::Exact(v) => bail!("`{name}` has no version {v}; it has: {}", listed(&versions)),
            Wanted::Matching(_, req) => bail!(
                "no version of `{name}` matches {req}; it has: {}",
                listed(&versions)
            ),
            Wanted::Newest => bail!(
                "`{name}` has no version on {}; it has: {}",
                registry.display(),
                listed(&versions)
            ),
        }
    };
    if args.json {
        let mut out = details.clone();
        out["version"] = chosen;
        if let Wanted::Matching(_, req) = &wanted {
            out["requirement"] = Value::from(req.as_str());
        }
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
    // Which requirement chose the version, and a yanked one marked.
    let how = match (&wanted, is_yanked(&chosen)) {
        (Wanted::Matching(_, req), false) => format!(" (the highest version matching {req})"),
        (Wanted::Matching(_, req), true) => {
            format!(" (yanked; the only versions matching {req} are yanked)")
        }
        (_, true) => " (yanked)".to_owned(),
        (_, false) => String::new(),
    };
    println!("{} {}{how}", s(&details["name"]), s(&chosen["vers"]));
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
    println!("versions: {}", listed(&versions));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The node's list, in publication order: `(version, yanked)`.
    fn node_list(versions: &[(&str, bool)]) -> Vec<Value> {
        versions
            .iter()
            .map(|(v, yanked)| json!({"vers": v, "yanked": yanked}))
            .collect()
    }

    fn chosen(versions: &[Value], spec: &str) -> Option<String> {
        let (_, wanted) = parse_spec(spec).unwrap();
        choose(versions, &wanted, None).map(|v| v["vers"].as_str().unwrap().to_owned())
    }

    #[test]
    fn versions_are_listed_highest_first_yanked_marked() {
        let versions = node_list(&[
            ("1.0.0", false),
            ("1.1.0", true),
            ("2.0.0", false),
            ("1.2.0", false),
        ]);
        assert_eq!(listed(&versions), "2.0.0, 1.2.0, 1.1.0 (yanked), 1.0.0");
        assert_eq!(listed(&[]), "none");
    }

    #[test]
    fn a_requirement_picks_the_highest_match_not_yanked_first() {
        let versions = node_list(&[
            ("1.0.0", true),
            ("1.1.0", false),
            ("2.0.0", false),
            ("1.2.0", true),
        ]);
        assert_eq!(chosen(&versions, "x@^1").as_deref(), Some("1.1.0"));
        assert_eq!(chosen(&versions, "x@1").as_deref(), Some("1.1.0"));
        assert_eq!(chosen(&versions, "x@*").as_deref(), Some("2.0.0"));
        // Only yanked versions match: the highest of them.
        assert_eq!(chosen(&versions, "x@>=1.2, <2").as_deref(), Some("1.2.0"));
        assert_eq!(chosen(&versions, "x@^3"), None);
        // An exact version is taken as it is, yanked or not.
        assert_eq!(chosen(&versions, "x@1.2.0").as_deref(), Some("1.2.0"));
        assert_eq!(chosen(&versions, "x@1.3.0"), None);
    }

    #[test]
    fn specs_are_a_name_and_a_version_or_a_requirement() {
        assert_eq!(parse_spec("x").unwrap(), ("x".to_owned(), Wanted::Newest));
        assert_eq!(
            parse_spec("x@ 1.2.3 ").unwrap().1,
            Wanted::Exact(Version::new(1, 2, 3))
        );
        assert!(matches!(parse_spec("x@^1").unwrap().1, Wanted::Matching(_, r) if r == "^1"));
        for (bad, says) in [
            ("x@", "nothing after @"),
            ("x@one", "neither a version nor a requirement"),
            ("@1.0.0", "empty mission name"),
            (" ", "empty mission name"),
            ("9x", "`9x`"),
        ] {
            let err = format!("{:#}", parse_spec(bad).unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
