//! Signed snapshots of a node's index: rollback and freeze protection (ARCHITECTURE §4, §6).
//!
//! Git alone cannot tell a client that the index it fetched is *current*: a mirror or a
//! man in the middle could serve an old commit (rollback, e.g. to hide a yank) or keep
//! serving the same one forever (freeze, so fixes never arrive). As in TUF, the node
//! therefore signs a small **snapshot** of its index head and serves it at
//! `/index/snapshot.json` with `/index/snapshot.json.minisig`:
//!
//! ```json
//! {"node":"central","key":"RW...","seq":42,"head":"<index commit id>",
//!  "time":"2026-11-25T14:00:00Z","expires":"2026-11-26T14:00:00Z"}
//! ```
//!
//! The signature covers the exact JSON bytes, and its trusted comment
//! (`snapshot node=NAME seq=N head=H`) repeats the key facts so `minisign -V` shows them. A
//! reader ([`verify_snapshot`]) keeps the highest `seq` it has accepted and refuses:
//! a signature by any key but the pinned node key; a `key` field that is not that key; a
//! trusted comment that does not match the JSON; a lower `seq` (rollback); a snapshot whose
//! `expires` has passed (freeze); one dated in the future beyond [`MAX_CLOCK_SKEW_SECONDS`];
//! and malformed JSON, timestamps or commit ids.
//!
//! **Equal `seq`.** Fetching the same snapshot twice is normal (nothing changed since), so an
//! equal `seq` is accepted by [`verify_snapshot`], which only knows the last number. A node
//! that signs two *different* snapshots with one `seq` is equivocating; a reader that kept the
//! previous snapshot detects that with [`verify_snapshot_after`], which accepts an equal `seq`
//! only for an identical snapshot.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::signing::{self, PublicKey, SecretKey, SignError};

/// How far in the future a snapshot's `time` may be before it is refused, to allow for
/// clocks that are a little off.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

/// The signed statement "my index head is `head`, and this is my `seq`-th snapshot".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Snapshot {
    /// The node's name (as in its `config.json`).
    pub node: String,
    /// The node's minisign public key, base64 (`RW...`); must be the key that signed.
    pub key: String,
    /// Snapshot number; only ever grows. Readers refuse a lower one than they have seen.
    pub seq: u64,
    /// The index commit id this snapshot vouches for (40 or 64 hex digits).
    pub head: String,
    /// When the snapshot was made (RFC 3339, UTC).
    pub time: String,
    /// After this instant (RFC 3339, UTC) the snapshot must no longer be trusted.
    pub expires: String,
}

/// Why a snapshot was refused.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot signature: {0}")]
    Signature(#[source] SignError),
    #[error(
        "snapshot is signed by key {signature_key_id}, not by the pinned node key {pinned_key_id}"
    )]
    WrongKey {
        signature_key_id: String,
        pinned_key_id: String,
    },
    #[error("snapshot field `key` is {found}, not the pinned node key {pinned}")]
    KeyFieldMismatch { pinned: String, found: String },
    #[error("snapshot signature's trusted comment is {found:?}, but the JSON says {expected:?}")]
    CommentMismatch { expected: String, found: String },
    #[error("snapshot is not valid JSON of the expected shape: {0}")]
    Json(#[source] serde_json::Error),
    #[error("snapshot field `{field}` is not an RFC 3339 timestamp: {value:?}")]
    Timestamp { field: &'static str, value: String },
    #[error("snapshot field `head` is not a commit id (40 or 64 lowercase hex digits): {0:?}")]
    Head(String),
    #[error("snapshot field `node` must be a non-empty name without spaces: {0:?}")]
    Node(String),
    #[error("snapshot expires ({expires}) before or when it was made ({time})")]
    EmptyWindow { time: String, expires: String },
    #[error("rollback: snapshot seq {found} is lower than the last one seen, {last_seen}")]
    Rollback { last_seen: u64, found: u64 },
    #[error("snapshot seq {seq} was already seen with different contents (the node signed two different snapshots with one seq)")]
    Equivocation { seq: u64 },
    #[error("snapshot expired at {expires} (now {now}); the node or mirror serves a stale index")]
    Expired { expires: String, now: String },
    #[error("snapshot time {time} is in the future (now {now}, allowed skew {MAX_CLOCK_SKEW_SECONDS} s)")]
    FromFuture { time: String, now: String },
}

impl Snapshot {
    /// A snapshot of `head` made `now`, valid for `validity`, for the node whose key is `pk`.
    pub fn new(
        node: &str,
        pk: &PublicKey,
        seq: u64,
        head: &str,
        now: DateTime<Utc>,
        validity: Duration,
    ) -> Snapshot {
        Snapshot {
            node: node.to_string(),
            key: pk.to_base64(),
            seq,
            head: head.to_string(),
            time: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            expires: (now + validity).to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }

    /// The trusted comment that goes with this snapshot's signature.
    pub fn trusted_comment(&self) -> String {
        format!(
            "snapshot node={} seq={} head={}",
            self.node, self.seq, self.head
        )
    }

    /// `time` parsed.
    pub fn time(&self) -> Result<DateTime<Utc>, SnapshotError> {
        parse_time("time", &self.time)
    }

    /// `expires` parsed.
    pub fn expires(&self) -> Result<DateTime<Utc>, SnapshotError> {
        parse_time("expires", &self.expires)
    }

    /// Checks the shape of each field (not the signature, not the clock).
    fn check_fields(&self) -> Result<(DateTime<Utc>, DateTime<Utc>), SnapshotError> {
        if self.node.is_empty() || self.node.chars().any(char::is_whitespace) {
            return Err(SnapshotError::Node(self.node.clone()));
        }
        let hex = self
            .head
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !hex || !(self.head.len() == 40 || self.head.len() == 64) {
            return Err(SnapshotError::Head(self.head.clone()));
        }
        let time = self.time()?;
        let expires = self.expires()?;
        if expires <= time {
            return Err(SnapshotError::EmptyWindow {
                time: self.time.clone(),
                expires: self.expires.clone(),
            });
        }
        Ok((time, expires))
    }
}

fn parse_time(field: &'static str, value: &str) -> Result<DateTime<Utc>, SnapshotError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| SnapshotError::Timestamp {
            field,
            value: value.to_string(),
        })
}

/// Signs a snapshot; returns `(json, minisig)`, the two files to serve. Refuses a snapshot
/// whose `key` is not `pk` or whose fields are malformed, so a node never publishes one its
/// clients would refuse.
pub fn sign_snapshot(
    s: &Snapshot,
    sk: &SecretKey,
    pk: &PublicKey,
) -> Result<(String, String), SnapshotError> {
    if s.key != pk.to_base64() {
        return Err(SnapshotError::KeyFieldMismatch {
            pinned: pk.to_base64(),
            found: s.key.clone(),
        });
    }
    s.check_fields()?;
    let json = serde_json::to_string(s).map_err(SnapshotError::Json)?;
    let sig = signing::sign_bytes(sk, pk, json.as_bytes(), &s.trusted_comment())
        .map_err(SnapshotError::Signature)?;
    Ok((json, sig))
}

/// Verifies a fetched snapshot against the pinned node key, the last `seq` this reader
/// accepted (`None` on first contact) and the current time. See the module documentation
/// for what is refused; an equal `seq` is accepted.
pub fn verify_snapshot(
    json: &str,
    sig: &str,
    pinned: &PublicKey,
    last_seen_seq: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Snapshot, SnapshotError> {
    let snapshot = verify_signed(json, sig, pinned, now)?;
    if let Some(last_seen) = last_seen_seq {
        if snapshot.seq < last_seen {
            return Err(SnapshotError::Rollback {
                last_seen,
                found: snapshot.seq,
            });
        }
    }
    Ok(snapshot)
}

/// Like [`verify_snapshot`], for a reader that kept the previously accepted snapshot: an
/// equal `seq` is accepted only if the snapshot is identical to `previous`.
pub fn verify_snapshot_after(
    json: &str,
    sig: &str,
    pinned: &PublicKey,
    previous: Option<&Snapshot>,
    now: DateTime<Utc>,
) -> Result<Snapshot, SnapshotError> {
    let snapshot = verify_snapshot(json, sig, pinned, previous.map(|p| p.seq), now)?;
    if let Some(previous) = previous {
        if previous.seq == snapshot.seq && *previous != snapshot {
            return Err(SnapshotError::Equivocation { seq: snapshot.seq });
        }
    }
    Ok(snapshot)
}

fn verify_signed(
    json: &str,
    sig: &str,
    pinned: &PublicKey,
    now: DateTime<Utc>,
) -> Result<Snapshot, SnapshotError> {
    let comment = signing::verify_bytes(pinned, sig, json.as_bytes()).map_err(|e| match e {
        SignError::KeyIdMismatch {
            signature_key_id,
            expected_key_id,
        } => SnapshotError::WrongKey {
            signature_key_id,
            pinned_key_id: expected_key_id,
        },
        other => SnapshotError::Signature(other),
    })?;
    let snapshot: Snapshot = serde_json::from_str(json).map_err(SnapshotError::Json)?;
    if snapshot.key != pinned.to_base64() {
        return Err(SnapshotError::KeyFieldMismatch {
            pinned: pinned.to_base64(),
            found: snapshot.key,
        });
    }
    let expected = snapshot.trusted_comment();
    if comment != expected {
        return Err(SnapshotError::CommentMismatch {
            expected,
            found: comment,
        });
    }
    let (time, expires) = snapshot.check_fields()?;
    let now_text = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    if expires <= now {
        return Err(SnapshotError::Expired {
            expires: snapshot.expires,
            now: now_text,
        });
    }
    if time > now + Duration::seconds(MAX_CLOCK_SKEW_SECONDS) {
        return Err(SnapshotError::FromFuture {
            time: snapshot.time,
            now: now_text,
        });
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    const HEAD: &str = "0123456789abcdef0123456789abcdef01234567";

    fn keys() -> &'static (SecretKey, PublicKey) {
        static KEYS: OnceLock<(SecretKey, PublicKey)> = OnceLock::new();
        KEYS.get_or_init(new_keys)
    }

    fn new_keys() -> (SecretKey, PublicKey) {
        crate::signing::new_test_keys()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn snapshot(seq: u64) -> Snapshot {
        Snapshot::new("central", &keys().1, seq, HEAD, now(), Duration::hours(24))
    }

    fn signed(s: &Snapshot) -> (String, String) {
        let (sk, pk) = keys();
        sign_snapshot(s, sk, pk).unwrap()
    }

    #[test]
    fn round_trip() {
        let s = snapshot(7);
        let (json, sig) = signed(&s);
        assert_eq!(s.time, "2026-11-25T14:00:00Z");
        assert_eq!(s.expires, "2026-11-26T14:00:00Z");
        assert!(sig.contains(&format!(
            "trusted comment: snapshot node=central seq=7 head={HEAD}"
        )));
        let got = verify_snapshot(&json, &sig, &keys().1, Some(6), now()).unwrap();
        assert_eq!(got, s);
        // Same seq, same snapshot: fine both ways.
        verify_snapshot(&json, &sig, &keys().1, Some(7), now()).unwrap();
        verify_snapshot_after(&json, &sig, &keys().1, Some(&s), now()).unwrap();
    }

    #[test]
    fn rollback_is_refused() {
        let (json, sig) = signed(&snapshot(5));
        match verify_snapshot(&json, &sig, &keys().1, Some(6), now()) {
            Err(SnapshotError::Rollback { last_seen, found }) => {
                assert_eq!((last_seen, found), (6, 5))
            }
            other => panic!("expected Rollback, got {other:?}"),
        }
    }

    #[test]
    fn equal_seq_with_other_contents_is_equivocation() {
        let previous = snapshot(9);
        let mut other = snapshot(9);
        other.head = "f".repeat(40);
        let (json, sig) = signed(&other);
        let err =
            verify_snapshot_after(&json, &sig, &keys().1, Some(&previous), now()).unwrap_err();
        assert!(
            matches!(err, SnapshotError::Equivocation { seq: 9 }),
            "{err:?}"
        );
    }

    #[test]
    fn expired_is_refused() {
        let (json, sig) = signed(&snapshot(1));
        let at_expiry = now() + Duration::hours(24);
        let err = verify_snapshot(&json, &sig, &keys().1, None, at_expiry).unwrap_err();
        assert!(matches!(err, SnapshotError::Expired { .. }), "{err:?}");
        verify_snapshot(
            &json,
            &sig,
            &keys().1,
            None,
            at_expiry - Duration::seconds(1),
        )
        .unwrap();
    }

    #[test]
    fn future_time_beyond_skew_is_refused() {
        let (json, sig) = signed(&snapshot(1));
        let early = now() - Duration::seconds(MAX_CLOCK_SKEW_SECONDS + 1);
        let err = verify_snapshot(&json, &sig, &keys().1, None, early).unwrap_err();
        assert!(matches!(err, SnapshotError::FromFuture { .. }), "{err:?}");
        let within = now() - Duration::seconds(MAX_CLOCK_SKEW_SECONDS);
        verify_snapshot(&json, &sig, &keys().1, None, within).unwrap();
    }

    #[test]
    fn altered_json_is_a_bad_signature() {
        let (json, sig) = signed(&snapshot(3));
        let altered = json.replace("\"seq\":3", "\"seq\":30");
        assert_ne!(altered, json);
        let err = verify_snapshot(&altered, &sig, &keys().1, None, now()).unwrap_err();
        assert!(
            matches!(
                err,
                SnapshotError::Signature(SignError::BadSignature { .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn signed_by_another_key_is_refused() {
        let (other_sk, other_pk) = new_keys();
        let mut s = snapshot(1);
        s.key = other_pk.to_base64();
        let (json, sig) = sign_snapshot(&s, &other_sk, &other_pk).unwrap();
        let err = verify_snapshot(&json, &sig, &keys().1, None, now()).unwrap_err();
        assert!(matches!(err, SnapshotError::WrongKey { .. }), "{err:?}");
        assert!(err.to_string().contains(&other_pk.key_id()));
    }

    #[test]
    fn key_field_must_be_the_pinned_key() {
        let (sk, pk) = keys();
        let (_, other_pk) = new_keys();
        let mut s = snapshot(1);
        s.key = other_pk.to_base64();
        // The signer refuses to make such a snapshot...
        let err = sign_snapshot(&s, sk, pk).unwrap_err();
        assert!(
            matches!(err, SnapshotError::KeyFieldMismatch { .. }),
            "{err:?}"
        );
        // ...and a reader refuses one made by hand.
        let json = serde_json::to_string(&s).unwrap();
        let sig = signing::sign_bytes(sk, pk, json.as_bytes(), &s.trusted_comment()).unwrap();
        let err = verify_snapshot(&json, &sig, pk, None, now()).unwrap_err();
        assert!(
            matches!(err, SnapshotError::KeyFieldMismatch { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn trusted_comment_must_match_the_json() {
        let (sk, pk) = keys();
        let s = snapshot(4);
        let json = serde_json::to_string(&s).unwrap();
        let lying = format!("snapshot node=central seq=99 head={HEAD}");
        let sig = signing::sign_bytes(sk, pk, json.as_bytes(), &lying).unwrap();
        match verify_snapshot(&json, &sig, pk, None, now()) {
            Err(SnapshotError::CommentMismatch { expected, found }) => {
                assert!(expected.contains("seq=4"));
                assert_eq!(found, lying);
            }
            other => panic!("expected CommentMismatch, got {other:?}"),
        }
    }

    /// Signs arbitrary JSON text with a comment built from whatever could be read of it,
    /// to test the checks that come after the signature.
    fn sign_raw(json: &str, comment: &str) -> String {
        let (sk, pk) = keys();
        signing::sign_bytes(sk, pk, json.as_bytes(), comment).unwrap()
    }

    #[test]
    fn malformed_json_and_fields_are_refused() {
        let pk = &keys().1;
        let sig = sign_raw("{not json", "x");
        let err = verify_snapshot("{not json", &sig, pk, None, now()).unwrap_err();
        assert!(matches!(err, SnapshotError::Json(_)), "{err:?}");

        type Case = (fn(&mut Snapshot), fn(&SnapshotError) -> bool);
        let cases: [Case; 5] = [
            (
                |s| s.time = "yesterday".into(),
                |e| matches!(e, SnapshotError::Timestamp { field: "time", .. }),
            ),
            (
                |s| s.expires = "2026-13-01T00:00:00Z".into(),
                |e| {
                    matches!(
                        e,
                        SnapshotError::Timestamp {
                            field: "expires",
                            ..
                        }
                    )
                },
            ),
            (
                |s| s.head = "HEAD".into(),
                |e| matches!(e, SnapshotError::Head(_)),
            ),
            (
                |s| s.node = "two words".into(),
                |e| matches!(e, SnapshotError::Node(_)),
            ),
            (
                |s| s.expires = s.time.clone(),
                |e| matches!(e, SnapshotError::EmptyWindow { .. }),
            ),
        ];
        for (mutate, is_expected) in cases {
            let mut s = snapshot(1);
            mutate(&mut s);
            let json = serde_json::to_string(&s).unwrap();
            let sig = sign_raw(&json, &s.trusted_comment());
            let err = verify_snapshot(&json, &sig, pk, None, now()).unwrap_err();
            assert!(is_expected(&err), "{s:?}: {err:?}");
            // The signer refuses the same snapshot.
            assert!(sign_snapshot(&s, &keys().0, pk).is_err());
        }
    }
}
