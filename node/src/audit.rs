//! The audit log of missions executed on the node, and their per-version run statistics,
//! both in the node's redb database.
//!
//! ## The log
//!
//! Every execution appends a record when it is queued and another when it finishes:
//! `{seq, time, user, mission, version, cksum, execution_id, status, duration_ms,
//! prev_hash, hash}`, where `seq` counts from 1, `prev_hash` is the previous record's
//! `hash` (64 zeros for the first) and
//!
//! ```text
//! hash = sha256(prev_hash || canonical JSON of the record without `hash`)
//! ```
//!
//! with the canonical JSON being the record's fields in sorted key order, no spaces. A
//! changed, removed or reordered record breaks the chain at that point, which
//! `mission-node admin audit verify` ([`verify`]) reports. (A chain only proves that it was
//! not edited without rewriting every later hash: whoever can rewrite the whole table can
//! forge a new chain. Copying the last hash elsewhere now and then closes that.)
//!
//! ## Statistics
//!
//! Per `name@version`: runs, successes, failures, and the durations of the last
//! [`KEPT_DURATIONS`] runs, from which [`stats`] computes p50 and p95 when read. The
//! finished record and the statistics change in one transaction.

use std::collections::{BTreeMap, VecDeque};

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::store::{corrupt, Store, StoreError};

/// seq -> [`AuditRecord`] (JSON)
const AUDIT: TableDefinition<u64, &str> = TableDefinition::new("audit_log");
/// `name@version` -> [`VersionStats`] (JSON)
const RUN_STATS: TableDefinition<&str, &str> = TableDefinition::new("run_stats");

/// Durations kept per version for the percentiles.
pub const KEPT_DURATIONS: usize = 1000;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub time: String,
    pub user: String,
    pub mission: String,
    pub version: String,
    pub cksum: String,
    pub execution_id: String,
    /// `queued`, `succeeded` or `failed`.
    pub status: String,
    /// Set on the finished record.
    pub duration_ms: Option<u64>,
    pub prev_hash: String,
    pub hash: String,
}

/// What an execution event says; [`append`] numbers, times and chains it.
#[derive(Debug, Clone)]
pub struct Event {
    pub user: String,
    pub mission: String,
    pub version: String,
    pub cksum: String,
    pub execution_id: String,
    pub status: String,
    pub duration_ms: Option<u64>,
}

impl AuditRecord {
    /// sha256(prev_hash || canonical JSON of every field but `hash`), hex.
    pub fn compute_hash(&self) -> String {
        let mut fields: BTreeMap<&str, Value> = BTreeMap::new();
        fields.insert("seq", json!(self.seq));
        fields.insert("time", json!(self.time));
        fields.insert("user", json!(self.user));
        fields.insert("mission", json!(self.mission));
        fields.insert("version", json!(self.version));
        fields.insert("cksum", json!(self.cksum));
        fields.insert("execution_id", json!(self.execution_id));
        fields.insert("status", json!(self.status));
        fields.insert("duration_ms", json!(self.duration_ms));
        fields.insert("prev_hash", json!(self.prev_hash));
        // A BTreeMap of plain values always serializes.
        let canonical = serde_json::to_string(&fields).unwrap_or_default();
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(canonical.as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// Counts and recent durations of one `name@version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionStats {
    pub runs: u64,
    pub successes: u64,
    pub failures: u64,
    /// The last [`KEPT_DURATIONS`] durations, oldest first, in milliseconds.
    pub durations_ms: VecDeque<u64>,
}

impl VersionStats {
    /// The `stats` object of the details endpoint.
    pub fn to_json(&self) -> Value {
        let mut sorted: Vec<u64> = self.durations_ms.iter().copied().collect();
        sorted.sort_unstable();
        json!({
            "runs": self.runs,
            "successes": self.successes,
            "failures": self.failures,
            "p50_ms": percentile(&sorted, 50),
            "p95_ms": percentile(&sorted, 95),
        })
    }
}

/// The nearest-rank percentile of sorted values; `None` when there are none.
pub fn percentile(sorted: &[u64], p: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Appends `event` to the chain; when `finished` is set (`(success, duration_ms)`), counts
/// the run in its version's statistics in the same transaction. Returns the new record.
pub fn append(
    store: &Store,
    event: Event,
    finished: Option<(bool, u64)>,
) -> Result<AuditRecord, StoreError> {
    let txn = store.db().begin_write()?;
    let record = {
        let mut log = txn.open_table(AUDIT)?;
        let (seq, prev_hash) = match log.last()? {
            Some((k, v)) => {
                let key = k.value();
                let last: AuditRecord = serde_json::from_str(v.value())
                    .map_err(|e| corrupt("audit_log", &key.to_string(), e))?;
                (key + 1, last.hash)
            }
            None => (1, GENESIS.to_owned()),
        };
        let mut record = AuditRecord {
            seq,
            time: now(),
            user: event.user,
            mission: event.mission,
            version: event.version,
            cksum: event.cksum,
            execution_id: event.execution_id,
            status: event.status,
            duration_ms: event.duration_ms,
            prev_hash,
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        let text = serde_json::to_string(&record).unwrap_or_default();
        log.insert(seq, text.as_str())?;
        if let Some((success, duration_ms)) = finished {
            let key = format!("{}@{}", record.mission, record.version);
            let mut table = txn.open_table(RUN_STATS)?;
            let mut stats: VersionStats = match table.get(key.as_str())? {
                Some(v) => {
                    serde_json::from_str(v.value()).map_err(|e| corrupt("run_stats", &key, e))?
                }
                None => VersionStats::default(),
            };
            stats.runs += 1;
            if success {
                stats.successes += 1;
            } else {
                stats.failures += 1;
            }
            stats.durations_ms.push_back(duration_ms);
            while stats.durations_ms.len() > KEPT_DURATIONS {
                stats.durations_ms.pop_front();
            }
            let text = serde_json::to_string(&stats).unwrap_or_default();
            table.insert(key.as_str(), text.as_str())?;
        }
        record
    };
    txn.commit()?;
    Ok(record)
}

/// The statistics of `name@version` (zeros when it never ran here).
pub fn stats(store: &Store, name: &str, version: &str) -> Result<VersionStats, StoreError> {
    let key = format!("{name}@{version}");
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(RUN_STATS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(VersionStats::default()),
        Err(e) => return Err(e.into()),
    };
    match table.get(key.as_str())? {
        Some(v) => serde_json::from_str(v.value()).map_err(|e| corrupt("run_stats", &key, e)),
        None => Ok(VersionStats::default()),
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every link holds.
    Ok { records: u64 },
    /// The first broken link.
    Broken { seq: u64, why: String },
}

impl Verdict {
    pub fn render(&self) -> String {
        match self {
            Verdict::Ok { records } => format!("ok: {records} records"),
            Verdict::Broken { seq, why } => {
                format!("broken: the audit log's chain breaks at seq {seq}: {why}")
            }
        }
    }
}

/// Walks the chain from the first record and reports the first broken link.
pub fn verify(store: &Store) -> Result<Verdict, StoreError> {
    let txn = store.db().begin_read()?;
    let log = match txn.open_table(AUDIT) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Verdict::Ok { records: 0 }),
        Err(e) => return Err(e.into()),
    };
    let mut prev_hash = GENESIS.to_owned();
    let mut count = 0u64;
    for (expected_seq, row) in (1u64..).zip(log.iter()?) {
        let (k, v) = row?;
        let key = k.value();
        let broken = |why: String| Ok(Verdict::Broken { seq: key, why });
        if key != expected_seq {
            return broken(format!(
                "the record after seq {} is seq {key}: records {expected_seq}..{} are missing",
                expected_seq - 1,
                key - 1
            ));
        }
        let record: AuditRecord = match serde_json::from_str(v.value()) {
            Ok(r) => r,
            Err(e) => return broken(format!("the record is not a valid audit record: {e}")),
        };
        if record.seq != key {
            return broken(format!(
                "the record stored under seq {key} says seq {}",
                record.seq
            ));
        }
        if record.prev_hash != prev_hash {
            return broken(format!(
                "its prev_hash {} is not the hash of the record before ({prev_hash}): a \
                 record before it was changed, removed or rehashed",
                record.prev_hash
            ));
        }
        let actual = record.compute_hash();
        if actual != record.hash {
            return broken(format!(
                "its content hashes to {actual}, not to its stored hash {}: the record was \
                 changed after it was written",
                record.hash
            ));
        }
        prev_hash = record.hash;
        count = expected_seq;
    }
    Ok(Verdict::Ok { records: count })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, status: &str, duration_ms: Option<u64>) -> Event {
        Event {
            user: "alice".into(),
            mission: "greet".into(),
            version: "1.0.0".into(),
            cksum: "ab".repeat(32),
            execution_id: id.into(),
            status: status.into(),
            duration_ms,
        }
    }

    fn store_with_records(n: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        for i in 0..n {
            append(&store, event(&format!("e{i}"), "queued", None), None).unwrap();
        }
        (dir, store)
    }

    /// Rewrites record `seq` with `change` applied (as someone editing the database would).
    fn tamper(store: &Store, seq: u64, change: impl FnOnce(&mut AuditRecord)) {
        let txn = store.db().begin_write().unwrap();
        {
            let mut log = txn.open_table(AUDIT).unwrap();
            let mut record: AuditRecord =
                serde_json::from_str(log.get(seq).unwrap().unwrap().value()).unwrap();
            change(&mut record);
            let text = serde_json::to_string(&record).unwrap();
            log.insert(seq, text.as_str()).unwrap();
        }
        txn.commit().unwrap();
    }

    #[test]
    fn an_empty_log_and_an_intact_chain_verify() {
        let (_dir, store) = store_with_records(0);
        assert_eq!(verify(&store).unwrap(), Verdict::Ok { records: 0 });
        let (_dir, store) = store_with_records(3);
        assert_eq!(verify(&store).unwrap(), Verdict::Ok { records: 3 });
        assert_eq!(verify(&store).unwrap().render(), "ok: 3 records");
    }

    #[test]
    fn records_chain_to_the_one_before() {
        let (_dir, store) = store_with_records(2);
        let third = append(&store, event("e2", "succeeded", Some(5)), Some((true, 5))).unwrap();
        assert_eq!(third.seq, 3);
        assert_eq!(third.hash, third.compute_hash());
        let txn = store.db().begin_read().unwrap();
        let log = txn.open_table(AUDIT).unwrap();
        let first: AuditRecord =
            serde_json::from_str(log.get(1).unwrap().unwrap().value()).unwrap();
        let second: AuditRecord =
            serde_json::from_str(log.get(2).unwrap().unwrap().value()).unwrap();
        assert_eq!(first.prev_hash, GENESIS);
        assert_eq!(second.prev_hash, first.hash);
        assert_eq!(third.prev_hash, second.hash);
    }

    #[test]
    fn a_changed_record_is_reported_with_its_seq() {
        let (_dir, store) = store_with_records(4);
        tamper(&store, 2, |r| r.status = "succeeded".into());
        match verify(&store).unwrap() {
            Verdict::Broken { seq, why } => {
                assert_eq!(seq, 2);
                assert!(why.contains("changed after it was written"), "{why}");
            }
            other => panic!("tampering went unnoticed: {other:?}"),
        }
    }

    #[test]
    fn a_changed_and_rehashed_record_breaks_the_next_link() {
        let (_dir, store) = store_with_records(4);
        tamper(&store, 2, |r| {
            r.user = "mallory".into();
            r.hash = r.compute_hash();
        });
        match verify(&store).unwrap() {
            Verdict::Broken { seq, why } => {
                assert_eq!(seq, 3);
                assert!(why.contains("prev_hash"), "{why}");
            }
            other => panic!("tampering went unnoticed: {other:?}"),
        }
    }

    #[test]
    fn a_removed_record_is_reported() {
        let (_dir, store) = store_with_records(4);
        let txn = store.db().begin_write().unwrap();
        txn.open_table(AUDIT).unwrap().remove(2).unwrap();
        txn.commit().unwrap();
        match verify(&store).unwrap() {
            Verdict::Broken { seq, why } => {
                assert_eq!(seq, 3);
                assert!(why.contains("missing"), "{why}");
            }
            other => panic!("a removed record went unnoticed: {other:?}"),
        }
    }

    #[test]
    fn stats_count_runs_and_keep_the_last_durations() {
        let (_dir, store) = store_with_records(0);
        assert_eq!(
            stats(&store, "greet", "1.0.0").unwrap(),
            VersionStats::default()
        );
        for d in 1..=20u64 {
            let ok = d % 5 != 0;
            let status = if ok { "succeeded" } else { "failed" };
            append(&store, event("e", status, Some(d)), Some((ok, d))).unwrap();
        }
        let s = stats(&store, "greet", "1.0.0").unwrap();
        assert_eq!((s.runs, s.successes, s.failures), (20, 16, 4));
        let json = s.to_json();
        assert_eq!(json["p50_ms"], 10);
        assert_eq!(json["p95_ms"], 19);
        assert_eq!(stats(&store, "greet", "2.0.0").unwrap().runs, 0);
        assert_eq!(verify(&store).unwrap(), Verdict::Ok { records: 20 });
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 95), Some(7));
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(50));
        assert_eq!(percentile(&values, 95), Some(95));
    }

    #[test]
    fn only_the_last_durations_are_kept() {
        let mut s = VersionStats::default();
        let (_dir, store) = store_with_records(0);
        for d in 0..(KEPT_DURATIONS as u64 + 5) {
            append(&store, event("e", "succeeded", Some(d)), Some((true, d))).unwrap();
        }
        s.runs = stats(&store, "greet", "1.0.0").unwrap().runs;
        let kept = stats(&store, "greet", "1.0.0").unwrap().durations_ms;
        assert_eq!(s.runs, KEPT_DURATIONS as u64 + 5);
        assert_eq!(kept.len(), KEPT_DURATIONS);
        assert_eq!(kept.front(), Some(&5));
    }
}
