//! `mission owner NAME --add USER... | --remove USER... | --list --registry X`: who may
//! publish new versions of a mission (`GET|PUT|DELETE /api/v1/missions/NAME/owners`, body
//! `{"users":[...]}`), as `cargo owner`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;

use crate::registry::{self, Client};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["add", "remove", "list"])))]
pub struct Args {
    /// The mission
    name: String,
    /// Users to add as owners (repeat, or separate with commas)
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    add: Vec<String>,
    /// Users to remove from the owners (repeat, or separate with commas)
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    remove: Vec<String>,
    /// List the owners
    #[arg(long)]
    list: bool,
    /// The registry: a name from MISSION_HOME/config.toml, or the node's URL
    #[arg(long)]
    registry: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    super::require_name(&args.name, &args.name, "mission owner fix_build --list")?;
    mission_index::name::validate_name(&args.name).with_context(|| format!("`{}`", args.name))?;
    let client = Client::new(registry::resolve(args.registry.as_deref())?)?;
    let path = format!("/api/v1/missions/{}/owners", args.name);
    if args.list {
        let answer = client.expect_success(client.json("GET", &path, None)?)?;
        for user in owners_of(&answer.json) {
            println!("{user}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (method, users, done) = if !args.add.is_empty() {
        ("PUT", &args.add, "Added")
    } else {
        ("DELETE", &args.remove, "Removed")
    };
    let answer = client.json(method, &path, Some(&json!({ "users": users })))?;
    let answer = client.expect_success(answer)?;
    match answer.json.get("msg").and_then(|m| m.as_str()) {
        Some(msg) => eprintln!("{msg}"),
        None => eprintln!(
            "{done} {} {} the owners of {}",
            users.join(", "),
            if method == "PUT" { "to" } else { "from" },
            args.name
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The owners in a node's answer: `{"users":[...]}` holding names or objects with a
/// `login` or `name`.
fn owners_of(json: &serde_json::Value) -> Vec<String> {
    json.get("users")
        .and_then(|u| u.as_array())
        .map(|users| {
            users
                .iter()
                .filter_map(|u| {
                    u.as_str()
                        .or_else(|| u.get("login").and_then(|l| l.as_str()))
                        .or_else(|| u.get("name").and_then(|l| l.as_str()))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_read_as_names_or_objects() {
        assert_eq!(
            owners_of(&json!({"users": ["alice", {"login": "bob"}, {"name": "carol"}]})),
            vec!["alice", "bob", "carol"]
        );
        assert!(owners_of(&json!({})).is_empty());
    }
}
