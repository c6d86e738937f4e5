//! Author key rotation (ARCHITECTURE section 3): "a new author key for a known mission is
//! accepted only with a rotation statement signed by the old key".
//!
//! ## The statement
//!
//! A [`RotationStatement`] says "for mission `name`, key `old_key` hands over to `new_key`".
//! It is signed by the **old** key: only whoever holds the key that clients have pinned can
//! name its successor. Both keys are in their `RW...` base64 form, as the index `key` field.
//!
//! ```json
//! {"issued":"2026-11-25T14:00:00Z","name":"fix_it","new_key":"RW...","old_key":"RW...","v":1,
//!  "sig":"untrusted comment: ...\n...\ntrusted comment: rotate mission=fix_it old=ID new=ID\n...\n"}
//! ```
//!
//! The signed bytes are the canonical JSON of the line without `sig` (keys sorted, no
//! whitespace); the trusted comment, `rotate mission=NAME old=OLDID new=NEWID` (key ids as
//! minisign prints them), repeats the essentials so `minisign -V` shows them, and must match.
//!
//! ## The keys file
//!
//! `keys/<index layout>/NAME` ([`keys_path`]) holds one statement per line, appended, never
//! rewritten. Lines with a `v` above [`ROTATION_SCHEMA_VERSION`] are skipped by
//! [`parse_file`]. (`.keys/`, with a dot, is the node's private collision index: another
//! thing.)
//!
//! ## Deciding
//!
//! A client that pinned key P for a mission accepts a version signed by key C when
//! [`key_chain_allows`] finds P = C, or a chain P → K1 → ... → C of valid statements for
//! that mission.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::layout::{self, LayoutError};
use crate::name::collision_key;
use crate::signing::{self, PublicKey, SecretKey, SignError};

/// The highest rotation statement schema version this code understands.
pub const ROTATION_SCHEMA_VERSION: u32 = 1;

/// The folder under which rotation statements live, mirroring the entry layout.
pub const ROTATION_DIR: &str = "keys";

/// The longest chain of rotations [`key_chain_allows`] follows.
pub const MAX_CHAIN: usize = 64;

/// "For mission `name`, `old_key` hands over to `new_key`", signed by `old_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationStatement {
    /// The schema version, 1.
    pub v: u32,
    /// The mission name, as in its index entries.
    pub name: String,
    /// The key that signed the published versions so far (`RW...` base64).
    pub old_key: String,
    /// The key that signs the versions from now on (`RW...` base64).
    pub new_key: String,
    /// When the statement was made (RFC 3339).
    pub issued: String,
    /// The whole `.minisig` text, by `old_key`, over the canonical JSON of the statement
    /// without `sig`; trusted comment `rotate mission=NAME old=OLDID new=NEWID`.
    pub sig: String,
}

/// Where something in a keys file is: `line N: ` or nothing for a single statement.
fn at(line: &Option<usize>) -> String {
    match line {
        Some(n) => format!("line {n}: "),
        None => String::new(),
    }
}

/// Why a rotation statement could not be read, signed or trusted.
#[derive(Debug, Error)]
pub enum RotationError {
    #[error("{}not a rotation statement: {source}", at(line))]
    Json {
        line: Option<usize>,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}rotation statement field `{field}` {reason}", at(line))]
    Invalid {
        line: Option<usize>,
        field: &'static str,
        reason: String,
    },
    #[error("rotation statement for `{name}` ({old} -> {new}): {source}")]
    Signature {
        name: String,
        old: String,
        new: String,
        #[source]
        source: Box<SignError>,
    },
    #[error("rotation statement for `{name}`: the signature's trusted comment is {found:?}, but the fields say {expected:?}")]
    CommentMismatch {
        name: String,
        expected: String,
        found: String,
    },
    #[error("the secret key {secret} is not the old key {old} of the rotation; sign with the key that signed the published versions")]
    NotOldKey { secret: String, old: String },
    #[error("`{what}` is not a minisign public key: {source}")]
    BadKey {
        what: String,
        #[source]
        source: Box<SignError>,
    },
    #[error("a rotation statement for `{name}` in the keys file does not verify ({source}); the index may have been tampered with, refusing to trust any key change for it")]
    Tampered {
        name: String,
        #[source]
        source: Box<RotationError>,
    },
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// `keys/<layout>/NAME`, e.g. `keys/fi/x_/fix_build`.
pub fn keys_path(name: &str) -> Result<String, LayoutError> {
    Ok(format!("{ROTATION_DIR}/{}", layout::entry_path(name)?))
}

/// The inverse of [`keys_path`]: the (lowercase) name whose keys file `path` is.
pub fn name_from_keys_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix(ROTATION_DIR)?.strip_prefix('/')?;
    layout::name_from_path(rest)
}

/// The trusted comment of a rotation signature.
pub fn rotation_trusted_comment(name: &str, old_id: &str, new_id: &str) -> String {
    format!("rotate mission={name} old={old_id} new={new_id}")
}

fn parse_key(what: &str, text: &str) -> Result<PublicKey, RotationError> {
    PublicKey::parse(text).map_err(|source| RotationError::BadKey {
        what: what.to_owned(),
        source: Box::new(source),
    })
}

impl RotationStatement {
    /// The exact bytes the signature covers: the canonical JSON of the fields but `sig`.
    pub fn signed_bytes(&self) -> String {
        let mut body: BTreeMap<&str, Value> = BTreeMap::new();
        body.insert("v", Value::from(self.v));
        body.insert("name", Value::from(self.name.clone()));
        body.insert("old_key", Value::from(self.old_key.clone()));
        body.insert("new_key", Value::from(self.new_key.clone()));
        body.insert("issued", Value::from(self.issued.clone()));
        // A map of strings and numbers always serializes.
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// The line as written to the keys file (no trailing newline): the fields sorted, `sig`
    /// last.
    pub fn to_line(&self) -> String {
        let mut line = self.signed_bytes();
        line.pop(); // the closing brace
        line.push_str(",\"sig\":");
        line.push_str(&Value::from(self.sig.clone()).to_string());
        line.push('}');
        line
    }

    /// Parses one statement (a keys file line, or an API request body).
    pub fn parse(text: &str) -> Result<RotationStatement, RotationError> {
        Self::parse_at(text, None)
    }

    fn parse_at(text: &str, line: Option<usize>) -> Result<RotationStatement, RotationError> {
        let s: RotationStatement =
            serde_json::from_str(text).map_err(|source| RotationError::Json { line, source })?;
        s.check(line)?;
        Ok(s)
    }

    /// Field rules that need no signature check.
    fn check(&self, line: Option<usize>) -> Result<(), RotationError> {
        let invalid = |field, reason: String| RotationError::Invalid {
            line,
            field,
            reason,
        };
        if self.v != ROTATION_SCHEMA_VERSION {
            return Err(invalid(
                "v",
                format!(
                    "is {}, this software understands {ROTATION_SCHEMA_VERSION}",
                    self.v
                ),
            ));
        }
        crate::name::validate_name(&self.name)
            .or_else(|e| match e {
                crate::name::NameError::Reserved { .. } => Ok(()),
                e => Err(e),
            })
            .map_err(|e| invalid("name", e.to_string()))?;
        let old = PublicKey::parse(&self.old_key).map_err(|e| invalid("old_key", e.to_string()))?;
        let new = PublicKey::parse(&self.new_key).map_err(|e| invalid("new_key", e.to_string()))?;
        if old == new {
            return Err(invalid(
                "new_key",
                "is the old key; a rotation must name a different key".into(),
            ));
        }
        DateTime::parse_from_rfc3339(&self.issued)
            .map_err(|e| invalid("issued", format!("is not an RFC 3339 time: {e}")))?;
        Ok(())
    }

    /// Checks the fields and the signature: made by `old_key`, over
    /// [`RotationStatement::signed_bytes`], trusted comment matching the fields.
    pub fn verify(&self) -> Result<(), RotationError> {
        self.check(None)?;
        let old = parse_key("old_key", &self.old_key)?;
        let new = parse_key("new_key", &self.new_key)?;
        let found = signing::verify_bytes(&old, &self.sig, self.signed_bytes().as_bytes())
            .map_err(|source| RotationError::Signature {
                name: self.name.clone(),
                old: old.key_id(),
                new: new.key_id(),
                source: Box::new(source),
            })?;
        let expected = rotation_trusted_comment(&self.name, &old.key_id(), &new.key_id());
        if found != expected {
            return Err(RotationError::CommentMismatch {
                name: self.name.clone(),
                expected,
                found,
            });
        }
        Ok(())
    }
}

/// Signs "for `name`, `old_pk` hands over to `new_pk`" with the old key pair.
pub fn sign_rotation(
    name: &str,
    old_sk: &SecretKey,
    old_pk: &PublicKey,
    new_pk: &PublicKey,
    issued: SystemTime,
) -> Result<RotationStatement, RotationError> {
    if old_sk.key_id() != old_pk.key_id() {
        return Err(RotationError::NotOldKey {
            secret: old_sk.key_id(),
            old: old_pk.key_id(),
        });
    }
    let mut s = RotationStatement {
        v: ROTATION_SCHEMA_VERSION,
        name: name.to_owned(),
        old_key: old_pk.to_base64(),
        new_key: new_pk.to_base64(),
        issued: DateTime::<Utc>::from(issued).to_rfc3339_opts(SecondsFormat::Secs, true),
        sig: String::new(),
    };
    s.check(None)?;
    let comment = rotation_trusted_comment(name, &old_pk.key_id(), &new_pk.key_id());
    s.sig = signing::sign_bytes(old_sk, old_pk, s.signed_bytes().as_bytes(), &comment).map_err(
        |source| RotationError::Signature {
            name: name.to_owned(),
            old: old_pk.key_id(),
            new: new_pk.key_id(),
            source: Box::new(source),
        },
    )?;
    Ok(s)
}

/// Parses a whole keys file: one statement per line, blank lines ignored, lines of a newer
/// schema version skipped. Signatures are not checked here: see
/// [`RotationStatement::verify`] and [`key_chain_allows`].
pub fn parse_file(text: &str) -> Result<Vec<RotationStatement>, RotationError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let newer = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("v").and_then(Value::as_u64))
            .is_some_and(|v| v > u64::from(ROTATION_SCHEMA_VERSION));
        if newer {
            continue;
        }
        out.push(RotationStatement::parse_at(line, Some(i + 1))?);
    }
    Ok(out)
}

/// The statements for mission `name` (names compared as the index compares them), in
/// order, each verified: one that does not verify means tampering (the node verifies
/// every statement before storing it), and is an error.
fn verified_for<'s>(
    statements: &'s [RotationStatement],
    name: &str,
) -> Result<Vec<&'s RotationStatement>, RotationError> {
    let wanted = collision_key(name);
    statements
        .iter()
        .filter(|s| collision_key(&s.name) == wanted)
        .map(|s| {
            s.verify().map_err(|e| RotationError::Tampered {
                name: name.to_owned(),
                source: Box::new(e),
            })?;
            Ok(s)
        })
        .collect()
}

/// The key that signs mission `name` now: `first` (the key of its first published
/// version), moved along by each statement for `name`, in the order they were stored, that
/// hands over from the key current at that point. Only its holder may publish or rotate:
/// a key rotated away from must never sign again, even if versions it signed are higher.
/// Returned in canonical base64 form. A statement for `name` that does not verify is an
/// error, as in [`key_chain_allows`].
pub fn current_key(
    statements: &[RotationStatement],
    name: &str,
    first: &str,
) -> Result<String, RotationError> {
    let mut current = parse_key("the first version's key", first)?.to_base64();
    for s in verified_for(statements, name)? {
        if parse_key("old_key", &s.old_key)?.to_base64() == current {
            current = parse_key("new_key", &s.new_key)?.to_base64();
        }
    }
    Ok(current)
}

/// Whether a version of `name` signed by `key` and published at `pubtime` (RFC 3339, from
/// its index entry) came before `key` handed the mission over: a statement for `name` from
/// `key` was issued at or after it. A client pinned to a later key accepts such a version
/// (signed before the rotation), and not one the old key signed afterwards, which is what
/// a leaked old key would sign. The times are the node's and the author's clocks, so this
/// holds against a leaked key, not against a node that also backdates `pubtime`. An
/// unreadable time counts as after. Statements are verified as in [`key_chain_allows`].
pub fn published_before_handover(
    statements: &[RotationStatement],
    name: &str,
    key: &str,
    pubtime: &str,
) -> Result<bool, RotationError> {
    let Ok(published) = DateTime::parse_from_rfc3339(pubtime) else {
        return Ok(false);
    };
    let key = parse_key("the version's key", key)?.to_base64();
    for s in verified_for(statements, name)? {
        let from_key = parse_key("old_key", &s.old_key)?.to_base64() == key;
        let issued_after = DateTime::parse_from_rfc3339(&s.issued).is_ok_and(|t| t >= published);
        if from_key && issued_after {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a client that pinned `pinned` for mission `name` may accept `candidate` (both
/// `RW...` keys): true when they are the same key, or when a chain `pinned -> k1 -> ... ->
/// candidate` of statements for `name` exists, each signed by the key it hands over from,
/// at most [`MAX_CHAIN`] long. Cycles are harmless (each key is visited once). Statements
/// for other names are ignored; a statement for `name` that does not verify is an error
/// (the node verifies every statement before storing it, so it means tampering).
pub fn key_chain_allows(
    statements: &[RotationStatement],
    name: &str,
    pinned: &str,
    candidate: &str,
) -> Result<bool, RotationError> {
    let pinned_key = parse_key("the pinned key", pinned)?;
    let candidate_key = parse_key("the candidate key", candidate)?;
    if pinned_key == candidate_key {
        return Ok(true);
    }
    // Edges old -> [new], by canonical base64 form.
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in verified_for(statements, name)? {
        let old = parse_key("old_key", &s.old_key)?.to_base64();
        let new = parse_key("new_key", &s.new_key)?.to_base64();
        edges.entry(old).or_default().push(new);
    }
    let target = candidate_key.to_base64();
    let start = pinned_key.to_base64();
    let mut seen = BTreeSet::from([start.clone()]);
    let mut queue = VecDeque::from([(start, 0usize)]);
    while let Some((key, depth)) = queue.pop_front() {
        if depth >= MAX_CHAIN {
            continue;
        }
        for next in edges.get(&key).into_iter().flatten() {
            if *next == target {
                return Ok(true);
            }
            if seen.insert(next.clone()) {
                queue.push_back((next.clone(), depth + 1));
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::generate_keypair;

    struct Pair {
        pk: PublicKey,
        sk: SecretKey,
    }

    fn pair() -> Pair {
        let g = generate_keypair(None).unwrap();
        let pk = PublicKey::parse(&g.public_key_text).unwrap();
        let sk = SecretKey::parse(&g.secret_key_text, None).unwrap();
        Pair { pk, sk }
    }

    fn rotate(name: &str, old: &Pair, new: &Pair) -> RotationStatement {
        sign_rotation(name, &old.sk, &old.pk, &new.pk, SystemTime::now()).unwrap()
    }

    fn allows(s: &[RotationStatement], name: &str, a: &Pair, b: &Pair) -> bool {
        key_chain_allows(s, name, &a.pk.to_base64(), &b.pk.to_base64()).unwrap()
    }

    #[test]
    fn a_signed_statement_verifies_and_round_trips_through_a_line() {
        let (a, b) = (pair(), pair());
        let s = rotate("fix_it", &a, &b);
        s.verify().unwrap();
        let line = s.to_line();
        assert!(line.ends_with("}") && !line.contains('\n'), "{line}");
        let back = parse_file(&format!("{line}\n\n")).unwrap();
        assert_eq!(back, vec![s.clone()]);
        assert!(s.sig.contains(&format!(
            "trusted comment: rotate mission=fix_it old={} new={}",
            a.pk.key_id(),
            b.pk.key_id()
        )));
    }

    #[test]
    fn a_chain_of_valid_statements_allows_the_last_key() {
        let (a, b, c, d) = (pair(), pair(), pair(), pair());
        let s = vec![rotate("fix_it", &a, &b), rotate("fix_it", &b, &c)];
        assert!(allows(&s, "fix_it", &a, &a));
        assert!(allows(&s, "fix_it", &a, &b));
        assert!(allows(&s, "fix_it", &a, &c));
        assert!(
            allows(&s, "Fix-It", &a, &c),
            "names compare as the index does"
        );
        assert!(!allows(&s, "fix_it", &a, &d));
        assert!(!allows(&s, "fix_it", &c, &a), "rotation goes one way");
        assert!(!allows(&[], "fix_it", &a, &b));
    }

    #[test]
    fn the_current_key_follows_the_statements_in_order() {
        let (a, b, c, fork) = (pair(), pair(), pair(), pair());
        let current =
            |s: &[RotationStatement]| current_key(s, "fix_it", &a.pk.to_base64()).unwrap();
        assert_eq!(current(&[]), a.pk.to_base64());
        let mut s = vec![rotate("fix_it", &a, &b), rotate("fix_it", &b, &c)];
        assert_eq!(current(&s), c.pk.to_base64());
        // A statement from a key already handed over (the node refuses to store one; a
        // file holding it anyway) moves nothing; nor does one for another name.
        s.push(rotate("fix_it", &b, &fork));
        s.push(rotate("other_one", &c, &fork));
        assert_eq!(current(&s), c.pk.to_base64());
        // Handing back is the current key's choice.
        s.push(rotate("fix_it", &c, &a));
        assert_eq!(current(&s), a.pk.to_base64());
    }

    #[test]
    fn only_versions_published_before_the_handover_count_as_signed_before_it() {
        let (a, b) = (pair(), pair());
        let issued = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let s = vec![sign_rotation("fix_it", &a.sk, &a.pk, &b.pk, issued).unwrap()];
        let at = s[0].issued.clone();
        let before = |key: &Pair, pubtime: &str| {
            published_before_handover(&s, "fix_it", &key.pk.to_base64(), pubtime).unwrap()
        };
        assert!(before(&a, "2020-01-01T00:00:00Z"));
        assert!(before(&a, &at), "the same second counts as before");
        assert!(
            !before(&a, "2030-01-01T00:00:00Z"),
            "signed by A after it handed over"
        );
        assert!(!before(&b, "2020-01-01T00:00:00Z"), "B handed nothing over");
        assert!(
            !before(&a, "yesterday"),
            "an unreadable time counts as after"
        );
        assert!(!published_before_handover(
            &s,
            "other_one",
            &a.pk.to_base64(),
            "2020-01-01T00:00:00Z"
        )
        .unwrap());
    }

    #[test]
    fn a_forged_signature_is_refused_loudly() {
        let (a, b, mallory) = (pair(), pair(), pair());
        // Claims to be by A, signed by Mallory.
        let mut forged = rotate("fix_it", &mallory, &b);
        forged.old_key = a.pk.to_base64();
        assert!(matches!(
            forged.verify(),
            Err(RotationError::Signature { source, .. }) if matches!(*source, SignError::KeyIdMismatch { .. })
        ));
        let err = key_chain_allows(&[forged], "fix_it", &a.pk.to_base64(), &b.pk.to_base64())
            .unwrap_err();
        assert!(err.to_string().contains("tampered"), "{err}");
        // A changed field under a genuine signature.
        let mut altered = rotate("fix_it", &a, &b);
        altered.issued = "2030-01-01T00:00:00Z".into();
        assert!(matches!(
            altered.verify(),
            Err(RotationError::Signature { source, .. }) if matches!(*source, SignError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_statement_for_another_name_does_not_count() {
        let (a, b) = (pair(), pair());
        let s = vec![rotate("other_one", &a, &b)];
        assert!(!allows(&s, "fix_it", &a, &b));
        // Moving it to another name breaks its signature.
        let mut moved = s[0].clone();
        moved.name = "fix_it".into();
        assert!(moved.verify().is_err());
    }

    #[test]
    fn cycles_end_and_the_chain_is_bounded() {
        let (a, b, c, d) = (pair(), pair(), pair(), pair());
        let s = vec![
            rotate("fix_it", &a, &b),
            rotate("fix_it", &b, &a),
            rotate("fix_it", &b, &c),
            rotate("fix_it", &c, &a),
        ];
        assert!(allows(&s, "fix_it", &a, &c));
        assert!(!allows(&s, "fix_it", &a, &d));
        // A chain longer than MAX_CHAIN is not followed to its end.
        let keys: Vec<Pair> = (0..MAX_CHAIN + 2).map(|_| pair()).collect();
        let long: Vec<_> = keys
            .windows(2)
            .map(|w| rotate("fix_it", &w[0], &w[1]))
            .collect();
        assert!(allows(&long, "fix_it", &keys[0], &keys[MAX_CHAIN]));
        assert!(!allows(&long, "fix_it", &keys[0], &keys[MAX_CHAIN + 1]));
    }

    #[test]
    fn signing_with_a_key_other_than_the_old_one_is_refused() {
        let (a, b, c) = (pair(), pair(), pair());
        let err = sign_rotation("fix_it", &b.sk, &a.pk, &c.pk, SystemTime::now()).unwrap_err();
        assert!(matches!(err, RotationError::NotOldKey { .. }), "{err}");
        // B's statement about A's key does not let A's pin reach C.
        let s = vec![rotate("fix_it", &b, &c)];
        assert!(!allows(&s, "fix_it", &a, &c));
        let err = sign_rotation("fix_it", &a.sk, &a.pk, &a.pk, SystemTime::now()).unwrap_err();
        assert!(err.to_string().contains("different key"), "{err}");
    }

    #[test]
    fn bad_lines_are_named_by_number_and_newer_ones_skipped() {
        let (a, b) = (pair(), pair());
        let good = rotate("fix_it", &a, &b).to_line();
        let text = format!("{good}\n{{\"v\":2,\"future\":true}}\n{{\"v\":1}}\n");
        let err = parse_file(&text).unwrap_err();
        assert!(err.to_string().starts_with("line 3: "), "{err}");
        let text = format!("{good}\n{}\n", good.replace("\"v\":1", "\"v\":1,\"x\":2"));
        let err = parse_file(&text).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(
            parse_file(&format!("{good}\n{{\"v\":2}}\n")).unwrap().len(),
            1
        );
    }

    #[test]
    fn keys_paths_follow_the_layout() {
        assert_eq!(keys_path("Fix_Build").unwrap(), "keys/fi/x_/fix_build");
        assert_eq!(
            name_from_keys_path("keys/fi/x_/fix_build").as_deref(),
            Some("fix_build")
        );
        assert_eq!(name_from_keys_path("fi/x_/fix_build"), None);
        assert_eq!(name_from_keys_path(".keys/fi/x_/fix_build"), None);
        assert!(keys_path("../x").is_err());
    }
}
