//! The node's metadata store in redb: users, hashed API tokens, mission owners and download
//! counts (ARCHITECTURE section 11). The index (git) and the blobs (disk) are the other two
//! sources of truth; nothing here is derivable from them, so every write is one ACID redb
//! transaction.
//!
//! Every write is durable when it returns, except download counts: they are statistics,
//! not one of the records section 11 promises never to lose, and a commit per download
//! would serialize every download on redb's single writer (and an fsync would cap a node
//! at a few hundred downloads a second). Counts are added up in memory and written in one
//! durable transaction by [`Store::flush`], which the server calls every
//! [`DOWNLOAD_FLUSH_INTERVAL`] and at shutdown; reads add what is still in memory. A crash
//! loses at most the counts of that last interval.
//!
//! Tokens are 32 random bytes shown once (`mrt_` + base64url). Only their SHA-256 is
//! stored: the tokens are high-entropy, so a fast hash is enough and a leaked database
//! reveals no usable token.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// user name -> [`User`] (JSON)
const USERS: TableDefinition<&str, &str> = TableDefinition::new("users");
/// SHA-256 hex of the token -> [`TokenRecord`] (JSON)
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
/// collision key of a mission name -> [`Owners`] (JSON)
const OWNERS: TableDefinition<&str, &str> = TableDefinition::new("owners");
/// collision key -> [`Claim`] (JSON): a first publish of a name between the claim and the
/// index commit. See [`Store::begin_claim`].
const CLAIMS: TableDefinition<&str, &str> = TableDefinition::new("claims");
/// `name@version` (name as published) -> downloads
const DOWNLOADS: TableDefinition<&str, u64> = TableDefinition::new("downloads");

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Publish new missions and new versions of owned ones.
    Publish,
    /// Yank and unyank versions of owned missions.
    Yank,
    /// Add and remove owners of owned missions.
    Owners,
    /// Run missions on the node.
    Execute,
    /// Administer the node (users, tokens).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Publish,
        Scope::Yank,
        Scope::Owners,
        Scope::Execute,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Publish => "publish",
            Scope::Yank => "yank",
            Scope::Owners => "owners",
            Scope::Execute => "execute",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Scope, StoreError> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| StoreError::UnknownScope {
                scope: s.to_owned(),
            })
    }

    /// Parses `publish,yank,...`.
    pub fn parse_list(s: &str) -> Result<BTreeSet<Scope>, StoreError> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Scope::parse)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// A short public id (the first 8 hex digits of the hash) to name the token in lists
    /// and revocations without showing it.
    pub id: String,
    pub user: String,
    pub scopes: BTreeSet<Scope>,
    pub created: String,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Owners {
    /// The mission name as first published.
    pub name: String,
    pub users: BTreeSet<String>,
}

/// A first publish in flight: who claims which name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub name: String,
    pub user: String,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the metadata store {path} is in use by another process (is `mission-node serve` running on this data folder?)")]
    Busy { path: String },
    #[error("metadata store: {0}")]
    Redb(String),
    #[error("a stored record is corrupt ({table} `{key}`): {reason}")]
    Corrupt {
        table: &'static str,
        key: String,
        reason: String,
    },
    #[error("unknown scope `{scope}`; scopes are publish, yank, owners, execute, admin")]
    UnknownScope { scope: String },
    #[error("a user needs at least one scope")]
    NoScopes,
    #[error("the user `{user}` already exists")]
    UserExists { user: String },
    #[error("no user `{user}`")]
    UnknownUser { user: String },
    #[error("no token matches `{token}`")]
    UnknownToken { token: String },
    #[error("a user name is 1-64 ASCII letters, digits, `-` and `_`; `{user}` is not")]
    BadUserName { user: String },
    #[error("`{user}` is not an owner of `{mission}`")]
    NotAnOwner { user: String, mission: String },
    #[error("`{user}` is the last owner of `{mission}`; add another owner first")]
    LastOwner { user: String, mission: String },
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(e.to_string())
            }
        }
    )*};
}
redb_errors!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Builds a [`StoreError::Corrupt`] (for the modules with their own tables).
pub(crate) fn corrupt(table: &'static str, key: &str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

/// The redb database of one node.
pub struct Store {
    db: Database,
    /// Downloads counted since the last [`Store::flush`], by `name@version`.
    pending_downloads: Mutex<BTreeMap<String, u64>>,
    /// Held for writing while a flush moves counts from memory to redb, for reading while
    /// the counts are read from both.
    flushing: RwLock<()>,
}

/// How often the server makes the download counts durable (see the module docs).
pub const DOWNLOAD_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A freshly made token: shown once, never stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token: String,
    pub record: TokenRecord,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn parse<T: for<'de> Deserialize<'de>>(
    table: &'static str,
    key: &str,
    json: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        table,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn valid_user_name(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Store {
    /// The database, for the modules that keep their own tables in it (audit, executions).
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// Opens (creating if needed) the store at `path`. Fails with [`StoreError::Busy`] when
    /// another process has it open.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Busy {
                path: path.display().to_string(),
            },
            other => StoreError::Redb(other.to_string()),
        })?;
        // Create every table, so readers never meet a missing one.
        let txn = db.begin_write()?;
        txn.open_table(USERS)?;
        txn.open_table(TOKENS)?;
        txn.open_table(OWNERS)?;
        txn.open_table(DOWNLOADS)?;
        txn.open_table(CLAIMS)?;
        txn.commit()?;
        Ok(Store {
            db,
            pending_downloads: Mutex::new(BTreeMap::new()),
            flushing: RwLock::new(()),
        })
    }

    /// Writes the download counts kept in memory, in one durable transaction. On failure
    /// they are kept for the next try. Downloads are counted meanwhile without waiting;
    /// readers of the counts wait for the write, so they never see a batch twice (in memory
    /// and stored) or not at all.
    pub fn flush(&self) -> Result<(), StoreError> {
        let _gate = self.flushing.write().map_err(|_| poisoned())?;
        let batch = std::mem::take(&mut *self.pending_downloads.lock().map_err(|_| poisoned())?);
        if batch.is_empty() {
            return Ok(());
        }
        let written = (|| -> Result<(), StoreError> {
            let txn = self.db.begin_write()?;
            {
                let mut table = txn.open_table(DOWNLOADS)?;
                for (key, count) in &batch {
                    let current = table.get(key.as_str())?.map(|v| v.value()).unwrap_or(0);
                    table.insert(key.as_str(), current + count)?;
                }
            }
            txn.commit()?;
            Ok(())
        })();
        if written.is_err() {
            let mut pending = self.pending_downloads.lock().map_err(|_| poisoned())?;
            for (key, count) in batch {
                *pending.entry(key).or_insert(0) += count;
            }
        }
        written
    }

    /// Adds a user with one token holding `scopes`; returns the token (shown once).
    pub fn add_user(&self, user: &str, scopes: BTreeSet<Scope>) -> Result<NewToken, StoreError> {
        if !valid_user_name(user) {
            return Err(StoreError::BadUserName {
                user: user.to_owned(),
            });
        }
        if scopes.is_empty() {
            return Err(StoreError::NoScopes);
        }
        let txn = self.db.begin_write()?;
        let new = {
            let mut users = txn.open_table(USERS)?;
            if users.get(user)?.is_some() {
                return Err(StoreError::UserExists {
                    user: user.to_owned(),
                });
            }
            let record = User {
                name: user.to_owned(),
                created: now(),
            };
            users.insert(user, to_json(&record).as_str())?;
            let mut tokens = txn.open_table(TOKENS)?;
            insert_token(&mut tokens, user, scopes)?
        };
        txn.commit()?;
        Ok(new)
    }

    /// Creates `user` without any token if it does not exist (the owner of what the node
    /// publishes itself, such as the seeded library).
    pub fn ensure_user(&self, user: &str) -> Result<(), StoreError> {
        if !valid_user_name(user) {
            return Err(StoreError::BadUserName {
                user: user.to_owned(),
            });
        }
        let txn = self.db.begin_write()?;
        {
            let mut users = txn.open_table(USERS)?;
            if users.get(user)?.is_none() {
                let record = User {
                    name: user.to_owned(),
                    created: now(),
                };
                users.insert(user, to_json(&record).as_str())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Makes another token for an existing user.
    pub fn add_token(&self, user: &str, scopes: BTreeSet<Scope>) -> Result<NewToken, StoreError> {
        if scopes.is_empty() {
            return Err(StoreError::NoScopes);
        }
        let txn = self.db.begin_write()?;
        let new = {
            let users = txn.open_table(USERS)?;
            if users.get(user)?.is_none() {
                return Err(StoreError::UnknownUser {
                    user: user.to_owned(),
                });
            }
            let mut tokens = txn.open_table(TOKENS)?;
            insert_token(&mut tokens, user, scopes)?
        };
        txn.commit()?;
        Ok(new)
    }

    /// The record of a presented token, if it exists and is not revoked.
    pub fn authenticate(&self, token: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = hash_token(token);
        let txn = self.db.begin_read()?;
        let tokens = txn.open_table(TOKENS)?;
        let Some(json) = tokens.get(hash.as_str())? else {
            return Ok(None);
        };
        let record: TokenRecord = parse("tokens", &hash[..8], json.value())?;
        Ok((!record.revoked).then_some(record))
    }

    /// Revokes a token given as the token itself or as its public id; returns its record.
    pub fn revoke_token(&self, token_or_id: &str) -> Result<TokenRecord, StoreError> {
        let txn = self.db.begin_write()?;
        let record = {
            let mut tokens = txn.open_table(TOKENS)?;
            let direct = hash_token(token_or_id);
            let key = if tokens.get(direct.as_str())?.is_some() {
                Some(direct)
            } else {
                let mut found = None;
                for row in tokens.iter()? {
                    let (k, _) = row?;
                    if k.value().starts_with(token_or_id) && token_or_id.len() >= 8 {
                        found = Some(k.value().to_owned());
                        break;
                    }
                }
                found
            };
            let Some(key) = key else {
                return Err(StoreError::UnknownToken {
                    token: token_or_id.to_owned(),
                });
            };
            let json = tokens
                .get(key.as_str())?
                .map(|v| v.value().to_owned())
                .unwrap_or_default();
            let mut record: TokenRecord = parse("tokens", &key[..8], &json)?;
            record.revoked = true;
            tokens.insert(key.as_str(), to_json(&record).as_str())?;
            record
        };
        txn.commit()?;
        Ok(record)
    }

    /// All users' tokens (revoked included), for admin listings.
    pub fn tokens_of(&self, user: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let tokens = txn.open_table(TOKENS)?;
        let mut out = Vec::new();
        for row in tokens.iter()? {
            let (k, v) = row?;
            let record: TokenRecord = parse("tokens", &k.value()[..8], v.value())?;
            if record.user == user {
                out.push(record);
            }
        }
        Ok(out)
    }

    pub fn user_exists(&self, user: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(USERS)?.get(user)?.is_some())
    }

    /// The owners of the mission whose collision key is `key`, if it has any.
    pub fn owners(&self, key: &str) -> Result<Option<Owners>, StoreError> {
        let txn = self.db.begin_read()?;
        let owners = txn.open_table(OWNERS)?;
        let Some(json) = owners.get(key)? else {
            return Ok(None);
        };
        Ok(Some(parse("owners", key, json.value())?))
    }

    /// Every owners record, keyed by collision key (for fsck).
    pub fn all_owners(&self) -> Result<Vec<(String, Owners)>, StoreError> {
        let txn = self.db.begin_read()?;
        let owners = txn.open_table(OWNERS)?;
        let mut out = Vec::new();
        for row in owners.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_owned(), parse("owners", k.value(), v.value())?));
        }
        Ok(out)
    }

    /// Records `user` as an owner of `name` (creating the record on first publish).
    pub fn add_owner(&self, key: &str, name: &str, user: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            if txn.open_table(USERS)?.get(user)?.is_none() {
                return Err(StoreError::UnknownUser {
                    user: user.to_owned(),
                });
            }
            let mut table = txn.open_table(OWNERS)?;
            let mut owners: Owners = match table.get(key)? {
                Some(json) => parse("owners", key, json.value())?,
                None => Owners {
                    name: name.to_owned(),
                    users: BTreeSet::new(),
                },
            };
            owners.users.insert(user.to_owned());
            table.insert(key, to_json(&owners).as_str())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes `user` from the owners of `key`; the last owner cannot be removed.
    pub fn remove_owner(&self, key: &str, user: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(OWNERS)?;
            let Some(mut owners) = table
                .get(key)?
                .map(|json| parse::<Owners>("owners", key, json.value()))
                .transpose()?
            else {
                return Err(StoreError::NotAnOwner {
                    user: user.to_owned(),
                    mission: key.to_owned(),
                });
            };
            if !owners.users.contains(user) {
                return Err(StoreError::NotAnOwner {
                    user: user.to_owned(),
                    mission: owners.name,
                });
            }
            if owners.users.len() == 1 {
                return Err(StoreError::LastOwner {
                    user: user.to_owned(),
                    mission: owners.name,
                });
            }
            owners.users.remove(user);
            table.insert(key, to_json(&owners).as_str())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Records that `user` is publishing the free name `name`, before its index commit.
    ///
    /// The index commit and the owners record live in two stores (git and redb), so they
    /// cannot change in one transaction. The claim makes the pair recoverable: a crash after
    /// the commit leaves a claim whose name is in the index, which start-up turns into the
    /// owners record ([`Store::finish_claim`]); a crash before it leaves a claim for a name
    /// the index lacks, which start-up drops.
    pub fn begin_claim(&self, key: &str, name: &str, user: &str) -> Result<(), StoreError> {
        let claim = Claim {
            name: name.to_owned(),
            user: user.to_owned(),
        };
        let txn = self.db.begin_write()?;
        txn.open_table(CLAIMS)?
            .insert(key, to_json(&claim).as_str())?;
        txn.commit()?;
        Ok(())
    }

    /// Turns the claim on `key` into the owners record, in one transaction.
    pub fn finish_claim(&self, key: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut claims = txn.open_table(CLAIMS)?;
            let Some(claim) = claims
                .get(key)?
                .map(|json| parse::<Claim>("claims", key, json.value()))
                .transpose()?
            else {
                return Ok(());
            };
            claims.remove(key)?;
            let mut table = txn.open_table(OWNERS)?;
            let mut owners: Owners = match table.get(key)? {
                Some(json) => parse("owners", key, json.value())?,
                None => Owners {
                    name: claim.name.clone(),
                    users: BTreeSet::new(),
                },
            };
            owners.users.insert(claim.user);
            table.insert(key, to_json(&owners).as_str())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Forgets the claim on `key` (its publish failed before the index commit).
    pub fn drop_claim(&self, key: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(CLAIMS)?.remove(key)?;
        txn.commit()?;
        Ok(())
    }

    /// Claims left by a crash: `(collision key, claim)`.
    pub fn pending_claims(&self) -> Result<Vec<(String, Claim)>, StoreError> {
        let txn = self.db.begin_read()?;
        let claims = txn.open_table(CLAIMS)?;
        let mut out = Vec::new();
        for row in claims.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_owned(), parse("claims", k.value(), v.value())?));
        }
        Ok(out)
    }

    /// Counts one download of `name@version` (in memory until the next [`Store::flush`]).
    pub fn count_download(&self, name: &str, version: &str) -> Result<(), StoreError> {
        let mut pending = self.pending_downloads.lock().map_err(|_| poisoned())?;
        *pending.entry(format!("{name}@{version}")).or_insert(0) += 1;
        Ok(())
    }

    /// Downloads of `name@version`: those stored and those still in memory.
    pub fn downloads(&self, name: &str, version: &str) -> Result<u64, StoreError> {
        let key = format!("{name}@{version}");
        // No flush between the two reads (see `flush`).
        let _gate = self.flushing.read().map_err(|_| poisoned())?;
        let pending = self
            .pending_downloads
            .lock()
            .map_err(|_| poisoned())?
            .get(&key)
            .copied()
            .unwrap_or(0);
        let txn = self.db.begin_read()?;
        let stored = txn
            .open_table(DOWNLOADS)?
            .get(key.as_str())?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok(stored + pending)
    }
}

fn poisoned() -> StoreError {
    StoreError::Redb("the download counter lock is poisoned".into())
}

fn insert_token(
    tokens: &mut redb::Table<&str, &str>,
    user: &str,
    scopes: BTreeSet<Scope>,
) -> Result<NewToken, StoreError> {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = format!(
        "mrt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_token(&token);
    let record = TokenRecord {
        id: hash[..8].to_owned(),
        user: user.to_owned(),
        scopes,
        created: now(),
        revoked: false,
    };
    tokens.insert(hash.as_str(), to_json(&record).as_str())?;
    Ok(NewToken { token, record })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn tokens_authenticate_until_revoked_and_are_stored_hashed() {
        let (dir, store) = store();
        let new = store
            .add_user("alice", Scope::parse_list("publish,yank").unwrap())
            .unwrap();
        assert!(new.token.starts_with("mrt_"));
        let record = store.authenticate(&new.token).unwrap().unwrap();
        assert_eq!(record.user, "alice");
        assert!(record.scopes.contains(&Scope::Publish));
        assert!(store.authenticate("mrt_forged").unwrap().is_none());
        drop(store);
        // The token itself is nowhere in the database file.
        let raw = std::fs::read(dir.path().join("store.redb")).unwrap();
        assert!(!raw
            .windows(new.token.len())
            .any(|w| w == new.token.as_bytes()));
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        store.revoke_token(&new.record.id).unwrap();
        assert!(store.authenticate(&new.token).unwrap().is_none());
    }

    #[test]
    fn bad_users_scopes_and_duplicates_are_refused() {
        let (_dir, store) = store();
        assert!(matches!(
            Scope::parse_list("publish,fly"),
            Err(StoreError::UnknownScope { scope }) if scope == "fly"
        ));
        assert!(matches!(
            store.add_user("bob", BTreeSet::new()),
            Err(StoreError::NoScopes)
        ));
        assert!(matches!(
            store.add_user("bad name", Scope::parse_list("publish").unwrap()),
            Err(StoreError::BadUserName { .. })
        ));
        store
            .add_user("bob", Scope::parse_list("publish").unwrap())
            .unwrap();
        assert!(matches!(
            store.add_user("bob", Scope::parse_list("publish").unwrap()),
            Err(StoreError::UserExists { .. })
        ));
        assert!(matches!(
            store.revoke_token("short"),
            Err(StoreError::UnknownToken { .. })
        ));
    }

    #[test]
    fn owners_are_kept_and_the_last_cannot_leave() {
        let (_dir, store) = store();
        for u in ["alice", "bob"] {
            store
                .add_user(u, Scope::parse_list("publish").unwrap())
                .unwrap();
        }
        store.add_owner("fix_build", "Fix-Build", "alice").unwrap();
        store.add_owner("fix_build", "Fix-Build", "bob").unwrap();
        let owners = store.owners("fix_build").unwrap().unwrap();
        assert_eq!(owners.name, "Fix-Build");
        assert_eq!(owners.users.len(), 2);
        store.remove_owner("fix_build", "bob").unwrap();
        assert!(matches!(
            store.remove_owner("fix_build", "alice"),
            Err(StoreError::LastOwner { .. })
        ));
        assert!(matches!(
            store.add_owner("fix_build", "Fix-Build", "nobody"),
            Err(StoreError::UnknownUser { .. })
        ));
    }

    #[test]
    fn a_second_process_is_told_the_store_is_busy() {
        let (dir, _store) = store();
        let again = Store::open(&dir.path().join("store.redb"));
        assert!(
            matches!(again, Err(StoreError::Busy { .. })),
            "{:?}",
            again.err()
        );
    }

    #[test]
    fn a_finished_claim_becomes_the_owner_and_a_dropped_one_leaves_nothing() {
        let (_dir, store) = store();
        store
            .add_user("alice", Scope::parse_list("publish").unwrap())
            .unwrap();
        store
            .begin_claim("fix_build", "Fix-Build", "alice")
            .unwrap();
        assert_eq!(store.pending_claims().unwrap().len(), 1);
        assert!(store.owners("fix_build").unwrap().is_none());
        store.finish_claim("fix_build").unwrap();
        let owners = store.owners("fix_build").unwrap().unwrap();
        assert_eq!(owners.name, "Fix-Build");
        assert!(owners.users.contains("alice"));
        assert!(store.pending_claims().unwrap().is_empty());

        store.begin_claim("other", "other", "alice").unwrap();
        store.drop_claim("other").unwrap();
        assert!(store.pending_claims().unwrap().is_empty());
        assert!(store.owners("other").unwrap().is_none());
    }

    #[test]
    fn downloads_count() {
        let (_dir, store) = store();
        store.count_download("a", "1.0.0").unwrap();
        store.count_download("a", "1.0.0").unwrap();
        assert_eq!(store.downloads("a", "1.0.0").unwrap(), 2);
        assert_eq!(store.downloads("a", "2.0.0").unwrap(), 0);
    }

    #[test]
    fn counts_of_a_burst_are_kept_by_flush() {
        let (dir, store) = store();
        for _ in 0..50 {
            store.count_download("a", "1.0.0").unwrap();
        }
        assert_eq!(store.downloads("a", "1.0.0").unwrap(), 50);
        store.flush().unwrap();
        assert_eq!(
            store.downloads("a", "1.0.0").unwrap(),
            50,
            "not counted twice"
        );
        for _ in 0..3 {
            store.count_download("a", "1.0.0").unwrap();
        }
        store.count_download("b", "0.1.0").unwrap();
        assert_eq!(store.downloads("a", "1.0.0").unwrap(), 53);
        store.flush().unwrap();
        store.flush().unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        assert_eq!(store.downloads("a", "1.0.0").unwrap(), 53);
        assert_eq!(store.downloads("b", "0.1.0").unwrap(), 1);
        // Counts not flushed are the ones a crash may lose.
        store.count_download("a", "1.0.0").unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        assert_eq!(store.downloads("a", "1.0.0").unwrap(), 53);
    }
}
