//! Certifications: signed statements that one exact archive reached a quality level
//! (ARCHITECTURE §7).
//!
//! ## Levels
//!
//! [`CertificationLevel`] is ordered: `community` < `verified` < `professional` <
//! `enterprise`, so a client that requires "at least verified" compares with `>=`.
//! `community` means the version passed validation at publish; `verified` that the node's
//! automated pipeline passed; `professional` and `enterprise` that a reviewer the node has
//! authorized attested it.
//!
//! ## What is signed
//!
//! A certification names the archive by `name`, `vers` **and** `cksum`, so it can never be
//! moved to other bytes. `by` is the **key id** (16 uppercase hex digits, as minisign prints
//! it) of the key that signed it: a node's key id names the node, and a reviewer has a key of
//! their own. Using the key id rather than a free-form name lets a reader find the key among
//! its trusted ones and check that the line's `by` is the signer, not a claim.
//!
//! ## The certs file
//!
//! `certs/<index layout>/NAME` holds one certification per line, appended, never rewritten.
//! A line is one JSON object: the certification's fields, the schema version `v`, and `sig`,
//! the whole `.minisig` text:
//!
//! ```json
//! {"by":"832BDD0A02F0C696","cksum":"<sha256 hex>","evidence":{"pipeline":"..."},
//!  "issued":"2026-11-25T14:00:00Z","level":"verified","name":"fix_it","v":1,"vers":"1.2.0",
//!  "sig":"untrusted comment: ...\n...\ntrusted comment: certification name=fix_it ...\n...\n"}
//! ```
//!
//! The signed bytes are the **canonical JSON of the line without `sig`**: every field
//! (including `v` and any field a newer version added, which this code keeps in
//! [`SignedCertification::extra`]), object keys sorted at every depth, no whitespace, as
//! serde_json writes values. Sorting makes the bytes independent of the order a tool wrote
//! the keys in. The trusted comment, `certification name=N vers=V level=L sha256=CKSUM`,
//! repeats the essentials so `minisign -V` shows them, and must match the fields.
//!
//! Lines whose `v` is above [`CERT_SCHEMA_VERSION`] are skipped by [`parse_certs_file`], as
//! cargo does with index lines it does not understand.

use std::fmt;
use std::str::FromStr;

use chrono::DateTime;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::entry::IndexEntry;
use crate::signing::{self, PublicKey, SecretKey, SignError};

/// The highest certification line schema version this code understands.
pub const CERT_SCHEMA_VERSION: u32 = 1;

/// How far a mission version has been checked. Ordered from least to most assurance.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CertificationLevel {
    /// Passed validation when it was published.
    Community,
    /// Passed the node's automated pipeline (schema, permission lint, safety rules, secret
    /// scan, sandboxed run of the package's tests).
    Verified,
    /// Attested by a reviewer the node authorized.
    Professional,
    /// Attested by a reviewer the node authorized, at the enterprise level.
    Enterprise,
}

impl CertificationLevel {
    /// Every level, from least to most assurance.
    pub const ALL: [CertificationLevel; 4] = [
        CertificationLevel::Community,
        CertificationLevel::Verified,
        CertificationLevel::Professional,
        CertificationLevel::Enterprise,
    ];

    /// The lowercase name used in JSON, on the command line and in trusted comments.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificationLevel::Community => "community",
            CertificationLevel::Verified => "verified",
            CertificationLevel::Professional => "professional",
            CertificationLevel::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for CertificationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown certification level name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown certification level {0:?}; expected one of community, verified, professional, enterprise")]
pub struct UnknownLevel(pub String);

impl FromStr for CertificationLevel {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CertificationLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownLevel(s.to_string()))
    }
}

/// The statement "archive `cksum` of `name` `vers` reached `level`", by the key `by`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Certification {
    /// The mission name, as in its index entry.
    pub name: String,
    /// The semver version.
    pub vers: String,
    /// SHA-256 of the certified archive, lowercase hex (the entry's `cksum`).
    pub cksum: String,
    /// The level reached.
    pub level: CertificationLevel,
    /// Key id of the signing key: 16 uppercase hex digits, as minisign prints it. For
    /// `verified` this is the node's key (whose id names the node); for `professional` and
    /// `enterprise` the reviewer's.
    pub by: String,
    /// When it was issued (RFC 3339, UTC).
    pub issued: String,
    /// What the level rests on: a JSON object (for `verified`, the checks run and their
    /// results; for a reviewer, a report reference). Shown to users, not interpreted.
    pub evidence: Value,
}

const CERT_FIELDS: [&str; 7] = ["name", "vers", "cksum", "level", "by", "issued", "evidence"];

impl Certification {
    /// The trusted comment of this certification's signature.
    pub fn trusted_comment(&self) -> String {
        format!(
            "certification name={} vers={} level={} sha256={}",
            self.name, self.vers, self.level, self.cksum
        )
    }

    /// Whether this certification is about exactly this index entry (same name, version
    /// and archive checksum).
    pub fn matches_entry(&self, entry: &IndexEntry) -> bool {
        self.name == entry.name && self.vers == entry.vers && self.cksum == entry.cksum
    }

    /// Checks each field's form; returns the field and what is wrong with it.
    fn check(&self) -> Result<(), (&'static str, String)> {
        crate::name::validate_name(&self.name).map_err(|e| ("name", e.to_string()))?;
        semver::Version::parse(&self.vers).map_err(|e| ("vers", e.to_string()))?;
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        };
        if !lower_hex(&self.cksum, 64) {
            return Err(("cksum", "must be 64 lowercase hex digits (SHA-256)".into()));
        }
        let upper_hex = self.by.len() == 16
            && self
                .by
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c));
        if !upper_hex {
            return Err((
                "by",
                "must be a minisign key id (16 uppercase hex digits)".into(),
            ));
        }
        DateTime::parse_from_rfc3339(&self.issued)
            .map_err(|e| ("issued", format!("is not an RFC 3339 timestamp: {e}")))?;
        if !self.evidence.is_object() {
            return Err(("evidence", "must be a JSON object".into()));
        }
        Ok(())
    }
}

/// One line of a certs file: a certification and its signature.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedCertification {
    /// Schema version of the line.
    pub v: u32,
    pub certification: Certification,
    /// Fields written by a newer version of the software; kept, and covered by the signature.
    pub extra: Map<String, Value>,
    /// The whole `.minisig` text over [`SignedCertification::signed_bytes`].
    pub sig: String,
}

/// Where something in a certs file is: `line N: ` or nothing for a single certification.
fn at(line: &Option<usize>) -> String {
    match line {
        Some(n) => format!("line {n}: "),
        None => String::new(),
    }
}

/// Why a certification could not be read, signed or trusted.
#[derive(Debug, Error)]
pub enum CertError {
    #[error("{}not valid JSON: {source}", at(line))]
    Json {
        line: Option<usize>,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}not a certification: {reason}", at(line))]
    Shape { line: Option<usize>, reason: String },
    #[error("{}field `{field}` {reason}", at(line))]
    Invalid {
        line: Option<usize>,
        field: &'static str,
        reason: String,
    },
    #[error("{}certification schema version {v} is newer than this software understands ({CERT_SCHEMA_VERSION})", at(line))]
    UnsupportedVersion { line: Option<usize>, v: u64 },
    #[error("certification of {name} {vers} is signed by key {key_id}, which is not among the trusted certifier keys [{}]", trusted.join(", "))]
    UntrustedCertifier {
        name: String,
        vers: String,
        key_id: String,
        trusted: Vec<String>,
    },
    #[error(
        "certification says `by` = {by}, but its signature was made by key {signature_key_id}"
    )]
    ByMismatch {
        by: String,
        signature_key_id: String,
    },
    #[error("certification of {name} {vers}: {source}")]
    Signature {
        name: String,
        vers: String,
        #[source]
        source: SignError,
    },
    #[error(
        "certification signature's trusted comment is {found:?}, but the fields say {expected:?}"
    )]
    CommentMismatch { expected: String, found: String },
}

/// Rebuilds `value` with object keys sorted at every depth.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

impl SignedCertification {
    /// The line without `sig`, as a canonical JSON object.
    fn body(&self) -> Map<String, Value> {
        let mut body = self.extra.clone();
        body.insert("v".into(), Value::from(self.v));
        let c = &self.certification;
        body.insert("name".into(), Value::from(c.name.clone()));
        body.insert("vers".into(), Value::from(c.vers.clone()));
        body.insert("cksum".into(), Value::from(c.cksum.clone()));
        body.insert("level".into(), Value::from(c.level.as_str()));
        body.insert("by".into(), Value::from(c.by.clone()));
        body.insert("issued".into(), Value::from(c.issued.clone()));
        body.insert("evidence".into(), c.evidence.clone());
        match canonical(&Value::Object(body)) {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// The exact bytes the signature covers: the canonical JSON of the line without `sig`.
    pub fn signed_bytes(&self) -> String {
        Value::Object(self.body()).to_string()
    }

    /// The line as written to the certs file (no trailing newline): the canonical body with
    /// `sig` last.
    pub fn to_line(&self) -> String {
        let mut line = self.body();
        line.insert("sig".into(), Value::from(self.sig.clone()));
        Value::Object(line).to_string()
    }

    /// Parses one line. `Ok(None)` means a newer schema version, to be skipped. `line` is
    /// 1-based and only used in errors.
    pub fn parse_line(text: &str, line: usize) -> Result<Option<SignedCertification>, CertError> {
        Self::parse_at(text, Some(line))
    }

    fn parse_at(text: &str, line: Option<usize>) -> Result<Option<SignedCertification>, CertError> {
        let value: Value =
            serde_json::from_str(text).map_err(|source| CertError::Json { line, source })?;
        let Value::Object(mut map) = value else {
            return Err(CertError::Shape {
                line,
                reason: "a line must be a JSON object".into(),
            });
        };
        let v = match map.remove("v") {
            Some(v) => v.as_u64().ok_or_else(|| CertError::Invalid {
                line,
                field: "v",
                reason: "must be a positive integer".into(),
            })?,
            None => {
                return Err(CertError::Invalid {
                    line,
                    field: "v",
                    reason: "is missing".into(),
                })
            }
        };
        if v > u64::from(CERT_SCHEMA_VERSION) {
            return Ok(None);
        }
        let sig = match map.remove("sig") {
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(CertError::Invalid {
                    line,
                    field: "sig",
                    reason: "must be the .minisig text as a string".into(),
                })
            }
            None => {
                return Err(CertError::Invalid {
                    line,
                    field: "sig",
                    reason: "is missing".into(),
                })
            }
        };
        let mut known = Map::new();
        let mut extra = Map::new();
        for (k, val) in map {
            if CERT_FIELDS.contains(&k.as_str()) {
                known.insert(k, val);
            } else {
                extra.insert(k, val);
            }
        }
        let certification: Certification =
            serde_json::from_value(Value::Object(known)).map_err(|e| CertError::Shape {
                line,
                reason: e.to_string(),
            })?;
        certification
            .check()
            .map_err(|(field, reason)| CertError::Invalid {
                line,
                field,
                reason,
            })?;
        Ok(Some(SignedCertification {
            // v <= CERT_SCHEMA_VERSION here, so it fits.
            v: v as u32,
            certification,
            extra,
            sig,
        }))
    }

    /// Checks the signature: made by a key in `trusted_keys` whose id is `by`, over
    /// [`SignedCertification::signed_bytes`], with the trusted comment matching the fields.
    pub fn verify(&self, trusted_keys: &[PublicKey]) -> Result<&Certification, CertError> {
        let c = &self.certification;
        let sig_err = |source| CertError::Signature {
            name: c.name.clone(),
            vers: c.vers.clone(),
            source,
        };
        let key_id = signing::signature_key_id(&self.sig).map_err(sig_err)?;
        if key_id != c.by {
            return Err(CertError::ByMismatch {
                by: c.by.clone(),
                signature_key_id: key_id,
            });
        }
        let key = trusted_keys
            .iter()
            .find(|k| k.key_id() == key_id)
            .ok_or_else(|| CertError::UntrustedCertifier {
                name: c.name.clone(),
                vers: c.vers.clone(),
                key_id: key_id.clone(),
                trusted: trusted_keys.iter().map(PublicKey::key_id).collect(),
            })?;
        let found = signing::verify_bytes(key, &self.sig, self.signed_bytes().as_bytes())
            .map_err(sig_err)?;
        let expected = c.trusted_comment();
        if found != expected {
            return Err(CertError::CommentMismatch { expected, found });
        }
        Ok(c)
    }
}

/// Signs a certification with the certifier's key pair. `cert.by` must be `pk`'s key id.
pub fn sign_certification(
    cert: &Certification,
    sk: &SecretKey,
    pk: &PublicKey,
) -> Result<SignedCertification, CertError> {
    if cert.by != pk.key_id() {
        return Err(CertError::ByMismatch {
            by: cert.by.clone(),
            signature_key_id: pk.key_id(),
        });
    }
    cert.check().map_err(|(field, reason)| CertError::Invalid {
        line: None,
        field,
        reason,
    })?;
    let mut signed = SignedCertification {
        v: CERT_SCHEMA_VERSION,
        certification: cert.clone(),
        extra: Map::new(),
        sig: String::new(),
    };
    signed.sig = signing::sign_bytes(
        sk,
        pk,
        signed.signed_bytes().as_bytes(),
        &cert.trusted_comment(),
    )
    .map_err(|source| CertError::Signature {
        name: cert.name.clone(),
        vers: cert.vers.clone(),
        source,
    })?;
    Ok(signed)
}

/// Parses and verifies one certs-file line against the trusted certifier keys.
pub fn verify_certification(
    line: &str,
    trusted_keys: &[PublicKey],
) -> Result<Certification, CertError> {
    let signed = match SignedCertification::parse_at(line, None)? {
        Some(s) => s,
        None => {
            // parse_at only skips lines whose v is newer; report which.
            let v = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.get("v").and_then(Value::as_u64))
                .unwrap_or_default();
            return Err(CertError::UnsupportedVersion { line: None, v });
        }
    };
    signed.verify(trusted_keys).cloned()
}

/// Parses a whole certs file (one line per certification; blank lines ignored; lines of a
/// newer schema skipped). Signatures are not checked here: see [`SignedCertification::verify`].
pub fn parse_certs_file(text: &str) -> Result<Vec<SignedCertification>, CertError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(c) = SignedCertification::parse_line(line, i + 1)? {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn new_keys() -> (SecretKey, PublicKey) {
        crate::signing::new_test_keys()
    }

    fn keys() -> &'static (SecretKey, PublicKey) {
        static KEYS: OnceLock<(SecretKey, PublicKey)> = OnceLock::new();
        KEYS.get_or_init(new_keys)
    }

    fn cert() -> Certification {
        Certification {
            name: "fix_compilation_errors".into(),
            vers: "1.2.0".into(),
            cksum: "ab".repeat(32),
            level: CertificationLevel::Verified,
            by: keys().1.key_id(),
            issued: "2026-11-25T14:00:00Z".into(),
            evidence: serde_json::json!({"pipeline": "verified-v1", "checks": ["schema", "lint"]}),
        }
    }

    fn line() -> String {
        let (sk, pk) = keys();
        sign_certification(&cert(), sk, pk).unwrap().to_line()
    }

    #[test]
    fn levels_are_ordered_and_round_trip() {
        use CertificationLevel::*;
        assert!(Community < Verified && Verified < Professional && Professional < Enterprise);
        for level in CertificationLevel::ALL {
            assert_eq!(
                level.to_string().parse::<CertificationLevel>().unwrap(),
                level
            );
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, format!("\"{level}\""));
        }
        let err = "Gold".parse::<CertificationLevel>().unwrap_err();
        assert!(err.to_string().contains("\"Gold\""));
        assert!("Verified".parse::<CertificationLevel>().is_err());
    }

    #[test]
    fn sign_then_verify() {
        let line = line();
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(line.starts_with("{\"by\":"), "keys sorted: {line}");
        assert!(line.contains("\"v\":1"));
        let got = verify_certification(&line, &[keys().1.clone()]).unwrap();
        assert_eq!(got, cert());
        let parsed = SignedCertification::parse_line(&line, 1).unwrap().unwrap();
        assert!(parsed.sig.contains(
            "trusted comment: certification name=fix_compilation_errors vers=1.2.0 level=verified sha256="
        ));
        // Re-writing a parsed line gives the same bytes.
        assert_eq!(parsed.to_line(), line);
    }

    #[test]
    fn key_order_does_not_matter_but_content_does() {
        let line = line();
        let mut value: Map<String, Value> = serde_json::from_str(&line).unwrap();
        // Reverse the key order, as another tool might write it.
        let reversed: Map<String, Value> = value.clone().into_iter().rev().collect();
        let reordered = Value::Object(reversed).to_string();
        assert_ne!(reordered, line);
        verify_certification(&reordered, &[keys().1.clone()]).unwrap();
        // Raising the level is caught.
        value.insert("level".into(), "enterprise".into());
        let forged = Value::Object(value).to_string();
        let err = verify_certification(&forged, &[keys().1.clone()]).unwrap_err();
        assert!(
            matches!(
                err,
                CertError::Signature {
                    source: SignError::BadSignature { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_fields_are_kept_and_signed() {
        let (sk, pk) = keys();
        let mut signed = SignedCertification {
            v: 1,
            certification: cert(),
            extra: Map::new(),
            sig: String::new(),
        };
        signed
            .extra
            .insert("expires".into(), "2027-01-01T00:00:00Z".into());
        signed.sig = signing::sign_bytes(
            sk,
            pk,
            signed.signed_bytes().as_bytes(),
            &signed.certification.trusted_comment(),
        )
        .unwrap();
        let line = signed.to_line();
        let parsed = SignedCertification::parse_line(&line, 1).unwrap().unwrap();
        assert_eq!(parsed.extra.get("expires").unwrap(), "2027-01-01T00:00:00Z");
        parsed.verify(std::slice::from_ref(pk)).unwrap();
        // Dropping the unknown field breaks the signature: it was covered.
        let stripped = line.replace("\"expires\":\"2027-01-01T00:00:00Z\",", "");
        assert_ne!(stripped, line);
        assert!(verify_certification(&stripped, std::slice::from_ref(pk)).is_err());
    }

    #[test]
    fn untrusted_certifier_is_refused() {
        let (_, other) = new_keys();
        let err = verify_certification(&line(), std::slice::from_ref(&other)).unwrap_err();
        match &err {
            CertError::UntrustedCertifier {
                key_id, trusted, ..
            } => {
                assert_eq!(key_id, &keys().1.key_id());
                assert_eq!(trusted, &vec![other.key_id()]);
            }
            other => panic!("expected UntrustedCertifier, got {other:?}"),
        }
        assert!(verify_certification(&line(), &[]).is_err());
    }

    #[test]
    fn by_must_be_the_signer() {
        let (sk, pk) = keys();
        let (_, other) = new_keys();
        let mut c = cert();
        c.by = other.key_id();
        let err = sign_certification(&c, sk, pk).unwrap_err();
        assert!(matches!(err, CertError::ByMismatch { .. }), "{err:?}");
        // A line whose `by` names another (trusted) key than the signer's is refused too.
        let mut value: Map<String, Value> = serde_json::from_str(&line()).unwrap();
        value.insert("by".into(), other.key_id().into());
        let err = verify_certification(&Value::Object(value).to_string(), &[pk.clone(), other])
            .unwrap_err();
        assert!(matches!(err, CertError::ByMismatch { .. }), "{err:?}");
    }

    #[test]
    fn trusted_comment_must_match_fields() {
        let (sk, pk) = keys();
        let mut signed = SignedCertification {
            v: 1,
            certification: cert(),
            extra: Map::new(),
            sig: String::new(),
        };
        let lying =
            "certification name=fix_compilation_errors vers=1.2.0 level=enterprise sha256=x";
        signed.sig = signing::sign_bytes(sk, pk, signed.signed_bytes().as_bytes(), lying).unwrap();
        let err = verify_certification(&signed.to_line(), std::slice::from_ref(pk)).unwrap_err();
        assert!(matches!(err, CertError::CommentMismatch { .. }), "{err:?}");
    }

    #[test]
    fn sign_refuses_malformed_fields() {
        let (sk, pk) = keys();
        type Mutation = fn(&mut Certification);
        let cases: [(&str, Mutation); 5] = [
            ("name", |c| c.name = "1bad".into()),
            ("vers", |c| c.vers = "1.2".into()),
            ("cksum", |c| c.cksum = "AB".repeat(32)),
            ("issued", |c| c.issued = "today".into()),
            ("evidence", |c| c.evidence = Value::Null),
        ];
        for (field, mutate) in cases {
            let mut c = cert();
            mutate(&mut c);
            match sign_certification(&c, sk, pk) {
                Err(CertError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn certs_file_errors_name_the_line() {
        let good = line();
        let mut bad_cksum: Map<String, Value> = serde_json::from_str(&good).unwrap();
        bad_cksum.insert("cksum".into(), "nope".into());
        let mut no_level: Map<String, Value> = serde_json::from_str(&good).unwrap();
        no_level.remove("level");
        let mut no_sig: Map<String, Value> = serde_json::from_str(&good).unwrap();
        no_sig.remove("sig");
        let cases = [
            ("{oops".to_string(), "not valid JSON"),
            ("[1,2]".to_string(), "must be a JSON object"),
            (Value::Object(bad_cksum).to_string(), "field `cksum`"),
            (Value::Object(no_level).to_string(), "missing field `level`"),
            (Value::Object(no_sig).to_string(), "field `sig` is missing"),
        ];
        for (bad, message) in cases {
            let text = format!("{good}\n\n{bad}\n");
            let err = parse_certs_file(&text).unwrap_err();
            let shown = err.to_string();
            assert!(shown.starts_with("line 3: "), "{shown}");
            assert!(shown.contains(message), "{shown}");
        }
    }

    #[test]
    fn certs_file_skips_newer_schema_lines() {
        let good = line();
        let newer = good.replace("\"v\":1", "\"v\":2");
        let text = format!("{good}\n{newer}\n{good}\n");
        assert_eq!(parse_certs_file(&text).unwrap().len(), 2);
        let err = verify_certification(&newer, &[keys().1.clone()]).unwrap_err();
        assert!(
            matches!(err, CertError::UnsupportedVersion { v: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn matches_entry_compares_name_version_and_checksum() {
        let c = cert();
        let line = format!(
            r#"{{"v":1,"name":"{}","vers":"{}","cksum":"{}","sig":"s","key":"k","pubtime":"t","origin":"o"}}"#,
            c.name, c.vers, c.cksum
        );
        let mut entry = IndexEntry::parse_line(&line, 1).unwrap().unwrap();
        assert!(c.matches_entry(&entry));
        entry.cksum = "cd".repeat(32);
        assert!(!c.matches_entry(&entry));
    }
}
