//! `mission search QUERY [--category C] [--certification L] [--free] [--json]`: the node's
//! search endpoint (`GET /api/v1/missions?q=...`).

use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use mission_index::certification::CertificationLevel;

use crate::registry;
use crate::sparse_client::SparseIndex;

#[derive(clap::Args)]
pub struct Args {
    /// Words to look for in names, descriptions and keywords (empty: list everything)
    #[arg(default_value = "")]
    pub query: String,
    /// Only missions in this category (such as `build-automation`)
    #[arg(long)]
    pub category: Option<String>,
    /// Only missions certified at this level: community, verified, professional or enterprise
    #[arg(long, value_name = "LEVEL")]
    pub certification: Option<String>,
    /// Only free missions
    #[arg(long)]
    pub free: bool,
    /// How many results to show (1 to 1000)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// The registry: a name from config.toml or a URL (default: the configured default)
    #[arg(long)]
    pub registry: Option<String>,
    /// Print the node's answer as JSON
    #[arg(long)]
    pub json: bool,
}

/// `application/x-www-form-urlencoded` escaping of a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn run(args: Args) -> Result<ExitCode> {
    // Checked before any request: a typo would otherwise just find nothing.
    let certification = args
        .certification
        .as_deref()
        .map(|level| {
            level.trim().parse::<CertificationLevel>().map_err(|_| {
                anyhow!(
                    "--certification {level:?} is not a certification level; use one of {}",
                    crate::trust::levels()
                )
            })
        })
        .transpose()?;
    let registry = registry::resolve(args.registry.as_deref())?;
    let home = crate::home::mission_home()?;
    let index = SparseIndex::new(registry.clone(), &home.join("cache").join("index"), false);
    let mut path = format!(
        "/api/v1/missions?q={}&per_page={}",
        encode(&args.query),
        args.limit
    );
    if let Some(c) = &args.category {
        path.push_str(&format!("&category={}", encode(c)));
    }
    // Every published version is `community` (it passed validation at publish): asking
    // for it filters nothing.
    if let Some(level) = certification.filter(|l| *l != CertificationLevel::Community) {
        path.push_str(&format!("&certification={level}"));
    }
    if args.free {
        path.push_str("&pricing=free");
    }
    let reply = index.get(&path, None)?;
    if reply.status != 200 {
        return Err(super::node_error(&reply, &registry, "searching"));
    }
    let json: serde_json::Value = serde_json::from_slice(&reply.body)
        .with_context(|| format!("{}: the answer is not JSON", reply.url))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    let missions = json["missions"].as_array().cloned().unwrap_or_default();
    let total = json["meta"]["total"]
        .as_u64()
        .unwrap_or(missions.len() as u64);
    if missions.is_empty() {
        // Say every filter that applied: an empty answer to a misspelled category must
        // not read as "nothing matches the words".
        let mut filters = Vec::new();
        if let Some(c) = &args.category {
            filters.push(format!("in category `{c}`"));
        }
        if let Some(level) = certification.filter(|l| *l != CertificationLevel::Community) {
            filters.push(format!("certified `{level}`"));
        }
        if args.free {
            filters.push("free".to_owned());
        }
        let what = if args.query.is_empty() {
            "No mission".to_owned()
        } else {
            format!("No mission matching `{}`", args.query)
        };
        let filters = if filters.is_empty() {
            String::new()
        } else {
            format!(" {}", filters.join(", "))
        };
        println!("{what}{filters} on {}.", registry.display());
        if args.category.is_some() {
            println!("Categories are words such as `build-automation`; `mission search` without --category lists every mission with its categories in --json.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let width = missions
        .iter()
        .filter_map(|m| m["name"].as_str())
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    for m in &missions {
        let name = m["name"].as_str().unwrap_or("?");
        let version = m["max_version"].as_str().unwrap_or("?");
        let description = m["description"].as_str().unwrap_or("");
        println!("{name:width$} = \"{version}\"    # {description}");
    }
    if total as usize > missions.len() {
        println!(
            "... and {} more; narrow the query or raise --limit",
            total as usize - missions.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
