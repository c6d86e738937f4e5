//! `mission yank NAME@VERSION [--undo] --registry X`: marks a published version as yanked
//! (`DELETE /api/v1/missions/NAME/VERSION/yank`) or takes the mark back (`PUT
//! .../unyank`). As with cargo, a yanked version stays downloadable for lockfiles that
//! already name it; new resolutions skip it.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::registry::{self, Client};

#[derive(clap::Args)]
pub struct Args {
    /// The version to yank: NAME@VERSION
    spec: String,
    /// Unyank: make the version available again
    #[arg(long)]
    undo: bool,
    /// The registry: a name from MISSION_HOME/config.toml, or the node's URL
    #[arg(long)]
    registry: Option<String>,
}

/// Splits `NAME@VERSION`, checking both parts.
pub fn parse_spec(spec: &str) -> Result<(String, String)> {
    let Some((name, version)) = spec.split_once('@') else {
        bail!("`{spec}`: give the version as NAME@VERSION (e.g. fix_build@1.2.0)");
    };
    super::require_name(name, spec, "mission yank fix_build@1.2.0")?;
    mission_index::name::validate_name(name).with_context(|| format!("`{spec}`"))?;
    let version = semver::Version::parse(version)
        .with_context(|| format!("`{spec}`: `{version}` is not a semver version"))?;
    Ok((name.to_owned(), version.to_string()))
}

pub fn run(args: Args) -> Result<ExitCode> {
    let (name, version) = parse_spec(&args.spec)?;
    let client = Client::new(registry::resolve(args.registry.as_deref())?)?;
    let answer = if args.undo {
        client.json(
            "PUT",
            &format!("/api/v1/missions/{name}/{version}/unyank"),
            None,
        )?
    } else {
        client.json(
            "DELETE",
            &format!("/api/v1/missions/{name}/{version}/yank"),
            None,
        )?
    };
    client.expect_success(answer)?;
    let done = if args.undo { "Unyanked" } else { "Yanked" };
    eprintln!("{done} {name}@{version} on {}", client.registry.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_name_at_semver() {
        assert_eq!(
            parse_spec("fix_build@1.2.0").unwrap(),
            ("fix_build".to_owned(), "1.2.0".to_owned())
        );
        for bad in ["fix_build", "fix_build@1.2", "9x@1.0.0", "a@"] {
            let err = format!("{:#}", parse_spec(bad).unwrap_err());
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
