//! What this client trusts: `MISSION_HOME/trust.toml`.
//!
//! ```toml
//! [registries."local"]
//! node-key = "RW..."                 # pinned on first use from config.json
//! snapshot = '{"node":...}'          # the last snapshot accepted (JSON), for rollback checks
//!
//! [authors]
//! fix_build = "RW..."                # the author key pinned for each mission name
//! ```
//!
//! A registry's node key is pinned the first time the client talks to it (trust on first
//! use), unless `config.toml` names it: `[registries.NAME] node-key = "RW..."`, which always
//! wins. Author keys are pinned per mission name (compared by `collision_key`) the first
//! time a mission is installed; a later version signed by another key is refused unless a
//! key change is accepted ([`accept_key_change`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use mission_index::name::collision_key;
use mission_index::snapshot::Snapshot;
use serde::{Deserialize, Serialize};

use crate::home;
use crate::registry::Registry;
use crate::sparse_client::SparseIndex;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TrustStore {
    #[serde(default)]
    registries: BTreeMap<String, RegistryTrust>,
    /// collision key of the name -> `RW...`.
    #[serde(default)]
    authors: BTreeMap<String, String>,
    /// The text last read or written, so that saving what did not change writes nothing.
    #[serde(skip)]
    on_disk: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RegistryTrust {
    #[serde(rename = "node-key", default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    /// The last accepted snapshot, as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// `MISSION_HOME/trust.toml`.
pub fn path() -> Result<PathBuf> {
    Ok(home::mission_home()?.join("trust.toml"))
}

impl TrustStore {
    /// Reads the trust store (empty when there is none yet).
    pub fn load() -> Result<TrustStore> {
        let path = path()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TrustStore::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut store: TrustStore = toml::from_str(&text).with_context(|| {
            format!(
                "reading {}: fix it by hand, or delete it to trust every registry and author anew",
                path.display()
            )
        })?;
        store.on_disk = Some(text);
        Ok(store)
    }

    /// Writes the trust store atomically.
    /// Durably: pinned keys and the last snapshot are what protect the next install, so a
    /// crash must leave either the old store or the new one, never an empty file. Nothing
    /// is written when nothing changed.
    pub fn save(&mut self) -> Result<()> {
        let path = path()?;
        let text = toml::to_string(self).context("writing the trust store as TOML")?;
        if self.on_disk.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        mission_index::atomic_file::write_synced(&path, text.as_bytes())
            .with_context(|| format!("saving {}", path.display()))?;
        self.on_disk = Some(text);
        Ok(())
    }

    /// The node key configured for `registry` in `config.toml` (`node-key`), else the pinned
    /// one; `None` on first contact.
    pub fn node_key(&self, registry: &Registry) -> Result<Option<String>> {
        if let Some(configured) = configured_node_key(registry)? {
            return Ok(Some(configured));
        }
        Ok(self
            .registries
            .get(registry.key())
            .and_then(|r| r.node_key.clone()))
    }

    pub fn pin_node_key(&mut self, registry: &Registry, key: &str) {
        self.registries
            .entry(registry.key().to_owned())
            .or_default()
            .node_key = Some(key.to_owned());
    }

    /// The last snapshot accepted from `registry`.
    pub fn last_snapshot(&self, registry: &Registry) -> Result<Option<Snapshot>> {
        let Some(json) = self
            .registries
            .get(registry.key())
            .and_then(|r| r.snapshot.as_deref())
        else {
            return Ok(None);
        };
        let snapshot = serde_json::from_str(json).with_context(|| {
            format!(
                "the last snapshot of `{}` in {} is not readable; delete its `snapshot` line",
                registry.display(),
                path().map(|p| p.display().to_string()).unwrap_or_default()
            )
        })?;
        Ok(Some(snapshot))
    }

    pub fn set_snapshot(&mut self, registry: &Registry, snapshot: &Snapshot) -> Result<()> {
        let json = serde_json::to_string(snapshot).context("storing the snapshot")?;
        self.registries
            .entry(registry.key().to_owned())
            .or_default()
            .snapshot = Some(json);
        Ok(())
    }

    /// The author key pinned for `name`.
    pub fn author_key(&self, name: &str) -> Option<&str> {
        self.authors.get(&collision_key(name)).map(String::as_str)
    }

    pub fn pin_author_key(&mut self, name: &str, key: &str) {
        self.authors.insert(collision_key(name), key.to_owned());
    }
}

/// `[registries.NAME] node-key` in `config.toml`, for a named registry.
fn configured_node_key(registry: &Registry) -> Result<Option<String>> {
    let Some(name) = &registry.name else {
        return Ok(None);
    };
    let path = home::mission_home()?.join("config.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok(table
        .get("registries")
        .and_then(|r| r.get(name))
        .and_then(|r| r.get("node-key"))
        .and_then(|k| k.as_str())
        .map(|k| k.trim().to_owned()))
}

/// Whether the registry's index holds a chain of rotation statements, each signed by the
/// key it retires, from the pinned key `old` to `new` for `name` (ARCHITECTURE section 3;
/// the node serves them at `/index/keys/<layout>/NAME`). A statement that does not verify
/// is an error, not a "no": it means the index was tampered with.
pub fn accept_key_change(index: &SparseIndex, name: &str, old: &str, new: &str) -> Result<bool> {
    let path = mission_index::rotation::keys_path(name)
        .with_context(|| format!("the key rotation file of `{name}`"))?;
    let Some(bytes) = index
        .fetch(&path)
        .with_context(|| format!("fetching the key rotations of `{name}`"))?
    else {
        return Ok(false);
    };
    let text = String::from_utf8(bytes)
        .with_context(|| format!("the key rotation file of `{name}` is not UTF-8"))?;
    let statements = mission_index::rotation::parse_file(&text)
        .with_context(|| format!("reading the key rotations of `{name}`"))?;
    mission_index::rotation::key_chain_allows(&statements, name, old, new)
        .with_context(|| format!("checking the key rotations of `{name}`"))
}
