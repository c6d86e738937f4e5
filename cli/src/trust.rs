//! What this client trusts: `MISSION_HOME/trust.toml` (what it learned) and the `[trust]`
//! table of `MISSION_HOME/config.toml` (what the user asks for).
//!
//! ```toml
//! # trust.toml, written by the client
//! [registries."local"]
//! node-key = "RW..."                 # pinned on first use from config.json
//! snapshot = '{"node":...}'          # the last snapshot accepted (JSON), for rollback checks
//!
//! [authors]
//! fix_build = "RW..."                # the author key pinned for each mission name
//! ```
//!
//! ```toml
//! # config.toml, written by the user
//! [trust]
//! minimum-certification = "verified" # community | verified | professional | enterprise;
//!                                    # default: none (community: no check)
//! certifiers = ["RW..."]             # keys whose certifications count, beside the
//!                                    # registry's own node key
//! [trust.node-keys]
//! local = "RW..."                    # pins registry `local`'s node key
//! ```
//!
//! A registry's node key is pinned the first time the client talks to it (trust on first
//! use), unless `config.toml` names it: `[trust.node-keys] NAME = "RW..."` or
//! `[registries.NAME] node-key = "RW..."` (both may be given, but only with the same key),
//! which always wins. Author keys are pinned per mission name (compared by
//! `collision_key`) the first time a mission is installed; a later version signed by
//! another key is refused unless rotation statements link the two ([`key_relation`]).
//!
//! With `minimum-certification` above `community`, every archive an install puts in place
//! must carry a certification of at least that level, for its exact bytes, signed by the
//! registry's node key or one of `certifiers` (see [`crate::certification_policy`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use mission_index::certification::CertificationLevel;
use mission_index::name::collision_key;
use mission_index::signing::PublicKey;
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

/// What to do if a registry's node key really changed: correct it where it was given
/// (`config.toml`), or let it be pinned again (remove it from the trust store).
pub fn node_key_advice(registry: &Registry) -> String {
    match configured_node_key(registry) {
        Ok(Some(_)) => {
            let path = TrustConfig::load()
                .map(|c| c.path.display().to_string())
                .unwrap_or_else(|_| "config.toml".to_owned());
            format!("If the node's key really changed, check the new key with its operator and correct this registry's node key in {path} ([trust.node-keys] or [registries] node-key)")
        }
        _ => format!(
            "If the node's key really changed, check the new key with its operator, then remove this registry's `node-key` from {} so the next install pins the new one",
            path().map(|p| p.display().to_string()).unwrap_or_default()
        ),
    }
}

/// `[trust.node-keys] NAME`, else `[registries.NAME] node-key`, in `config.toml`, for a
/// named registry.
fn configured_node_key(registry: &Registry) -> Result<Option<String>> {
    let Some(name) = &registry.name else {
        return Ok(None);
    };
    Ok(TrustConfig::load()?.node_keys.remove(name))
}

/// The `[trust]` table of `config.toml`, checked.
#[derive(Debug, Clone, Default)]
pub struct TrustConfig {
    /// `minimum-certification`; `None` when not set.
    pub minimum: Option<CertificationLevel>,
    /// `certifiers`, parsed, in the order given.
    pub certifiers: Vec<PublicKey>,
    /// Registry name -> node key (`RW...`): `[trust.node-keys]` and
    /// `[registries.NAME] node-key` together.
    pub node_keys: BTreeMap<String, String>,
    /// Where it was read from, for messages.
    pub path: PathBuf,
}

/// The keys `[trust]` may hold.
const TRUST_KEYS: [&str; 3] = ["minimum-certification", "certifiers", "node-keys"];

impl TrustConfig {
    /// Reads `[trust]` from `MISSION_HOME/config.toml` (empty when there is no file).
    pub fn load() -> Result<TrustConfig> {
        let path = home::mission_home()?.join("config.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        TrustConfig::parse(&text, &path)
    }

    /// The level an install must reach, when it asks for more than `community` (which
    /// every published version has, so it needs no check).
    pub fn required(&self) -> Option<CertificationLevel> {
        self.minimum
            .filter(|level| *level > CertificationLevel::Community)
    }

    /// Parses the `[trust]` table (and the `node-key`s of `[registries]`) of the config
    /// text read from `path`.
    pub fn parse(text: &str, path: &std::path::Path) -> Result<TrustConfig> {
        let file = path.display();
        let table: toml::Table = toml::from_str(text).with_context(|| format!("reading {file}"))?;
        let mut config = TrustConfig {
            path: path.to_owned(),
            ..TrustConfig::default()
        };
        // The node keys `[registries.NAME] node-key` pins (the older spelling).
        let mut from_registries = BTreeMap::new();
        if let Some(registries) = table.get("registries").and_then(|r| r.as_table()) {
            for (name, entry) in registries {
                if let Some(key) = entry.get("node-key") {
                    let key = key.as_str().ok_or_else(|| {
                        anyhow!("{file}: [registries.{name}] node-key must be a string \"RW...\"")
                    })?;
                    from_registries.insert(name.clone(), key.trim().to_owned());
                }
            }
        }
        let trust = match table.get("trust") {
            None => None,
            Some(toml::Value::Table(t)) => Some(t),
            Some(_) => bail!("{file}: `trust` must be a table: [trust]"),
        };
        for (key, value) in trust.into_iter().flatten() {
            match key.as_str() {
                "minimum-certification" => {
                    let name = value.as_str().ok_or_else(|| {
                        anyhow!(
                            "{file}: [trust] minimum-certification must be a string, one of {}",
                            levels()
                        )
                    })?;
                    let level = name.parse::<CertificationLevel>().map_err(|_| {
                        anyhow!(
                            "{file}: [trust] minimum-certification = {name:?} is not a certification level; use one of {}",
                            levels()
                        )
                    })?;
                    config.minimum = Some(level);
                }
                "certifiers" => {
                    let list = value.as_array().ok_or_else(|| {
                        anyhow!("{file}: [trust] certifiers must be a list of minisign public keys: certifiers = [\"RW...\"]")
                    })?;
                    for (i, item) in list.iter().enumerate() {
                        let text = item.as_str().ok_or_else(|| {
                            anyhow!("{file}: [trust] certifiers[{i}] must be a string \"RW...\"")
                        })?;
                        let key = PublicKey::parse(text.trim()).map_err(|e| {
                            anyhow!("{file}: [trust] certifiers[{i}] ({text:?}) is not a minisign public key: {e}")
                        })?;
                        config.certifiers.push(key);
                    }
                }
                "node-keys" => {
                    let keys = value.as_table().ok_or_else(|| {
                        anyhow!("{file}: [trust] node-keys must be a table: [trust.node-keys] NAME = \"RW...\"")
                    })?;
                    for (name, key) in keys {
                        let text = key.as_str().ok_or_else(|| {
                            anyhow!("{file}: [trust.node-keys] {name} must be a string \"RW...\"")
                        })?;
                        let text = text.trim();
                        PublicKey::parse(text).map_err(|e| {
                            anyhow!("{file}: [trust.node-keys] {name} ({text:?}) is not a minisign public key: {e}")
                        })?;
                        if let Some(other) = from_registries.get(name).filter(|k| *k != text) {
                            bail!(
                                "{file}: two different node keys for the registry `{name}`: [trust.node-keys] {name} = {text:?} and [registries.{name}] node-key = {other:?}; keep one"
                            );
                        }
                        config.node_keys.insert(name.clone(), text.to_owned());
                    }
                }
                // An error, where other unknown keys are warnings: a misspelt trust
                // setting ignored would silently weaken the checks it was meant to add.
                other => bail!(
                    "{file}: unknown key `{other}` in [trust]; the known keys are {} (an unknown [trust] key is an error, not a warning: ignoring a misspelt one would quietly drop the check it asks for)",
                    TRUST_KEYS.join(", ")
                ),
            }
        }
        for (name, key) in from_registries {
            config.node_keys.entry(name).or_insert(key);
        }
        Ok(config)
    }
}

/// The certification levels, for messages: `community, verified, professional, enterprise`.
pub fn levels() -> String {
    CertificationLevel::ALL
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the registry's index holds a chain of rotation statements, each signed by the
/// key it retires, from the pinned key `old` to `new` for `name` (ARCHITECTURE section 3;
/// the node serves them at `/index/keys/<layout>/NAME`). A statement that does not verify
/// is an error, not a "no": it means the index was tampered with.
/// How a version's author key stands to the key pinned for its mission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRelation {
    /// Rotation statements hand over from the pinned key to it: the pin moves on to it.
    Successor,
    /// Rotation statements hand over from it to the pinned key, and the version was
    /// published before its key handed over: accepted, and the pin stays.
    Predecessor,
    /// Neither: refused.
    Unrelated,
}

/// How `key` stands to `pinned` for mission `name`, from the rotation statements the index
/// serves for it ([`KeyRelation`]). Call only when the two differ.
pub fn key_relation(
    index: &SparseIndex,
    pinned: &str,
    entry: &mission_index::entry::IndexEntry,
) -> Result<KeyRelation> {
    use mission_index::rotation;
    let (name, key) = (entry.name.as_str(), entry.key.as_str());
    let statements = rotation_statements(index, name)?;
    let context = || format!("checking the key rotations of `{name}`");
    let chain = |from: &str, to: &str| rotation::key_chain_allows(&statements, name, from, to);
    Ok(if chain(pinned, key).with_context(context)? {
        KeyRelation::Successor
    } else if chain(key, pinned).with_context(context)?
        // Not what the old key signed after it handed over (a leaked key would).
        && rotation::published_before_handover(&statements, name, key, &entry.pubtime)
            .with_context(context)?
    {
        KeyRelation::Predecessor
    } else {
        KeyRelation::Unrelated
    })
}

/// The rotation statements the index serves for `name` (none when it has no keys file).
fn rotation_statements(
    index: &SparseIndex,
    name: &str,
) -> Result<Vec<mission_index::rotation::RotationStatement>> {
    let path = mission_index::rotation::keys_path(name)
        .with_context(|| format!("the key rotation file of `{name}`"))?;
    let Some(bytes) = index
        .fetch(&path)
        .with_context(|| format!("fetching the key rotations of `{name}`"))?
    else {
        return Ok(Vec::new());
    };
    let text = String::from_utf8(bytes)
        .with_context(|| format!("the key rotation file of `{name}` is not UTF-8"))?;
    mission_index::rotation::parse_file(&text)
        .with_context(|| format!("reading the key rotations of `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn key() -> String {
        let g = mission_index::signing::generate_keypair(None).unwrap();
        PublicKey::parse(&g.public_key_text).unwrap().to_base64()
    }

    fn parse(text: &str) -> Result<TrustConfig> {
        TrustConfig::parse(text, Path::new("/home/u/config.toml"))
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    #[test]
    fn a_full_trust_table_is_read() {
        let (certifier, node) = (key(), key());
        let config = parse(&format!(
            "[registries.local]\nindex = \"http://x\"\nnode-key = \"{node}\"\n\n[trust]\nminimum-certification = \"verified\"\ncertifiers = [\"{certifier}\"]\n[trust.node-keys]\nlocal = \"{node}\"\nother = \"{certifier}\"\n"
        ))
        .unwrap();
        assert_eq!(config.minimum, Some(CertificationLevel::Verified));
        assert_eq!(config.required(), Some(CertificationLevel::Verified));
        assert_eq!(config.certifiers.len(), 1);
        assert_eq!(config.certifiers[0].to_base64(), certifier);
        assert_eq!(config.node_keys["local"], node);
        assert_eq!(config.node_keys["other"], certifier);
    }

    #[test]
    fn no_trust_table_asks_for_nothing_and_keeps_registries_node_keys() {
        let node = key();
        let config = parse(&format!(
            "[registries.local]\nindex = \"http://x\"\nnode-key = \" {node} \"\n"
        ))
        .unwrap();
        assert_eq!(config.minimum, None);
        assert_eq!(config.required(), None);
        assert!(config.certifiers.is_empty());
        assert_eq!(config.node_keys["local"], node, "trimmed, as before");
        let community = parse("[trust]\nminimum-certification = \"community\"\n").unwrap();
        assert_eq!(community.required(), None, "community needs no check");
        assert_eq!(parse("").unwrap().required(), None);
    }

    #[test]
    fn an_unknown_key_is_named_with_the_file_and_the_known_keys() {
        let err = error("[trust]\nminimum-level = \"verified\"\n");
        assert!(
            err.contains("/home/u/config.toml")
                && err.contains("`minimum-level`")
                && err.contains("minimum-certification, certifiers, node-keys"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_level_lists_the_levels() {
        let err = error("[trust]\nminimum-certification = \"gold\"\n");
        assert!(
            err.contains("\"gold\"")
                && err.contains("community, verified, professional, enterprise"),
            "{err}"
        );
        let err = error("[trust]\nminimum-certification = 2\n");
        assert!(err.contains("must be a string"), "{err}");
    }

    #[test]
    fn a_bad_key_names_its_entry() {
        let good = key();
        let err = error(&format!(
            "[trust]\ncertifiers = [\"{good}\", \"RWnotakey\"]\n"
        ));
        assert!(
            err.contains("certifiers[1]") && err.contains("RWnotakey"),
            "{err}"
        );
        let err = error("[trust]\ncertifiers = \"RW...\"\n");
        assert!(err.contains("must be a list"), "{err}");
        let err = error("[trust.node-keys]\nlocal = \"RWbroken\"\n");
        assert!(
            err.contains("[trust.node-keys] local") && err.contains("RWbroken"),
            "{err}"
        );
    }

    #[test]
    fn two_different_node_keys_for_one_registry_are_refused() {
        let (a, b) = (key(), key());
        let err = error(&format!(
            "[registries.local]\nindex = \"http://x\"\nnode-key = \"{a}\"\n[trust.node-keys]\nlocal = \"{b}\"\n"
        ));
        assert!(
            err.contains("`local`") && err.contains(&a) && err.contains(&b),
            "{err}"
        );
        // The same key twice is fine.
        parse(&format!(
            "[registries.local]\nindex = \"http://x\"\nnode-key = \"{a}\"\n[trust.node-keys]\nlocal = \"{a}\"\n"
        ))
        .unwrap();
    }
}
