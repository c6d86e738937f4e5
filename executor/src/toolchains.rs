//! Toolchains installed outside `/usr`, made visible to sandboxed steps.
//!
//! The sandbox shows the host's `/usr` and nothing of home folders, so a Rust toolchain
//! installed the usual way (rustup, under `~/.rustup` and `~/.cargo/bin`) would be missing
//! and `compile_code`/`run_tests` with `language: rust` could never run. [`HostToolchains`]
//! lists the folders to show read-only and the environment the tools need:
//!
//! - `RUSTUP_HOME` (the toolchains and rustup's settings; no credentials live there) and
//!   `CARGO_HOME/bin` (the rustup proxies and installed tools), each read-only;
//! - not the rest of `CARGO_HOME`: it holds `credentials.toml` (registry tokens) and the
//!   registry cache. Inside the sandbox `CARGO_HOME` is `/tmp/cargo-home`, in the step's
//!   private `/tmp`.

use std::path::{Path, PathBuf};

use crate::sandbox::process::DEFAULT_PATH;

/// Host folders and environment for toolchains outside `/usr`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostToolchains {
    /// Shown read-only at their own paths.
    pub read_only: Vec<PathBuf>,
    /// Put before the sandbox's default `PATH`.
    pub path: Vec<PathBuf>,
    /// Set for every sandboxed process.
    pub env: Vec<(String, String)>,
}

impl HostToolchains {
    /// What this host has: a rustup installation (`RUSTUP_HOME`, else `~/.rustup`, with
    /// `CARGO_HOME`, else `~/.cargo`, holding `bin/cargo`). Nothing when there is none.
    pub fn detect() -> HostToolchains {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let from_env_or_home = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(default)))
        };
        let (Some(rustup_home), Some(cargo_home)) = (
            from_env_or_home("RUSTUP_HOME", ".rustup"),
            from_env_or_home("CARGO_HOME", ".cargo"),
        ) else {
            return HostToolchains::default();
        };
        HostToolchains::rustup(&rustup_home, &cargo_home).unwrap_or_default()
    }

    /// A rustup installation at these folders, when it is one.
    pub fn rustup(rustup_home: &Path, cargo_home: &Path) -> Option<HostToolchains> {
        let rustup_home = rustup_home.canonicalize().ok()?;
        let bin = cargo_home.join("bin").canonicalize().ok()?;
        if !rustup_home.join("toolchains").is_dir() || !bin.join("cargo").exists() {
            return None;
        }
        Some(HostToolchains {
            read_only: vec![rustup_home.clone(), bin.clone()],
            path: vec![bin],
            env: vec![
                (
                    "RUSTUP_HOME".into(),
                    rustup_home.to_string_lossy().into_owned(),
                ),
                ("CARGO_HOME".into(), "/tmp/cargo-home".into()),
            ],
        })
    }

    /// The environment to add for sandboxed processes: [`Self::env`] and a `PATH` with
    /// [`Self::path`] first.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        if !self.path.is_empty() {
            let mut path: Vec<String> = self
                .path
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            path.push(DEFAULT_PATH.to_owned());
            env.push(("PATH".into(), path.join(":")));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rustup_installation_is_shown_without_the_rest_of_cargo_home() {
        let root = tempfile::tempdir().unwrap();
        let rustup = root.path().join("rustup");
        let cargo = root.path().join("cargo");
        std::fs::create_dir_all(rustup.join("toolchains/stable")).unwrap();
        std::fs::create_dir_all(cargo.join("bin")).unwrap();
        std::fs::write(cargo.join("bin/cargo"), "").unwrap();
        std::fs::write(cargo.join("credentials.toml"), "token = \"secret\"").unwrap();
        let t = HostToolchains::rustup(&rustup, &cargo).unwrap();
        let rustup = rustup.canonicalize().unwrap();
        let bin = cargo.join("bin").canonicalize().unwrap();
        assert_eq!(t.read_only, vec![rustup.clone(), bin.clone()]);
        let env = t.environment();
        assert!(env.contains(&("CARGO_HOME".into(), "/tmp/cargo-home".into())));
        assert!(env.contains(&("RUSTUP_HOME".into(), rustup.to_string_lossy().into_owned())));
        let path = &env.iter().find(|(k, _)| k == "PATH").unwrap().1;
        assert!(path.starts_with(&format!("{}:", bin.display())), "{path}");
        assert!(path.ends_with(DEFAULT_PATH));
    }

    #[test]
    fn no_rustup_means_nothing_extra() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(HostToolchains::rustup(root.path(), root.path()), None);
        assert!(HostToolchains::default().environment().is_empty());
    }
}
