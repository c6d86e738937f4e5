//! The node's data folder and what lives where:
//!
//! ```text
//! DATA/
//!   node.toml              settings (written with defaults on first start)
//!   keys/node.key, .pub    the node's minisign identity (signs snapshots, certifications)
//!   index.git/             the index, a bare git repository (source of truth)
//!   missions/NAME.git/     one bare repository per mission, pushed to by its owners
//!   blobs/sha256/..        archives, content-addressed (source of truth)
//!   store.redb             users, tokens, owners, stats (source of truth)
//!   snapshot.json(.minisig) the signed snapshot of the index head (derived)
//!   run/node.sock          the running node's socket for admin commands and git hooks
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mission_index::repo::{IndexConfig, IndexRepo, NodeInfo};
use mission_index::signing::{self, PublicKey, SecretKey};

use crate::config::{NodeConfig, DEFAULT_NODE_TOML};

#[derive(Debug, Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> DataDir {
        DataDir {
            root: root.to_owned(),
        }
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("node.toml")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn index_dir(&self) -> PathBuf {
        self.root.join("index.git")
    }
    pub fn missions_dir(&self) -> PathBuf {
        self.root.join("missions")
    }
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }
    pub fn store_file(&self) -> PathBuf {
        self.root.join("store.redb")
    }
    pub fn snapshot_file(&self) -> PathBuf {
        self.root.join("snapshot.json")
    }
    pub fn snapshot_sig_file(&self) -> PathBuf {
        self.root.join("snapshot.json.minisig")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    pub fn socket_path(&self) -> PathBuf {
        self.run_dir().join("node.sock")
    }

    /// Creates what is missing (folder, node.toml, node key) and loads the settings and
    /// the node key. Safe to call on every start.
    pub fn prepare(&self) -> Result<(NodeConfig, PublicKey, SecretKey)> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("creating the data folder {}", self.root.display()))?;
        for dir in [self.keys_dir(), self.missions_dir(), self.run_dir()] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let config_file = self.config_file();
        if !config_file.exists() {
            std::fs::write(&config_file, DEFAULT_NODE_TOML)
                .with_context(|| format!("writing {}", config_file.display()))?;
        }
        let config = NodeConfig::load(&config_file)?;
        let key_file = self.keys_dir().join("node.key");
        if !key_file.exists() {
            signing::write_keypair(&self.keys_dir(), "node", None)
                .context("creating the node key")?;
            tracing::info!(path = %key_file.display(), "created the node key");
        }
        let public = PublicKey::from_file(&self.keys_dir().join("node.pub"))
            .context("reading the node's public key")?;
        let secret = SecretKey::load(&key_file, None).context("reading the node key")?;
        Ok((config, public, secret))
    }

    /// The index's `config.json` for this node reached at `base_url`.
    pub fn index_config(config: &NodeConfig, key: &PublicKey, base_url: &str) -> IndexConfig {
        IndexConfig {
            dl: format!("{base_url}/api/v1/missions/{{name}}/{{version}}/download"),
            api: base_url.to_owned(),
            auth_required: config.auth_required,
            node: NodeInfo {
                name: config.name.clone(),
                key: key.to_base64(),
                extra: Default::default(),
            },
            extra: Default::default(),
        }
    }

    /// Opens the index, creating it on first start and updating `config.json` when the
    /// settings or the address changed.
    pub fn open_index(&self, wanted: &IndexConfig) -> Result<IndexRepo> {
        let path = self.index_dir();
        let repo = if path.exists() {
            IndexRepo::open(&path).context("opening the index")?
        } else {
            IndexRepo::init(&path, wanted, "mission-node", "mission-node@localhost")
                .context("creating the index")?
        };
        if &repo.config().context("reading the index config.json")? != wanted {
            repo.set_config(wanted)
                .context("updating the index config.json")?;
        }
        Ok(repo)
    }
}
