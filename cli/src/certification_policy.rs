//! The minimum certification an install asks for (`[trust] minimum-certification` in
//! `config.toml`, see [`crate::trust`]), checked for every archive it puts in place.
//!
//! For each resolved entry the certs file (`/index/certs/<layout>/NAME`, one signed line per
//! certification, ARCHITECTURE section 7) is read through the sparse index, so it is cached
//! with its ETag like the entry files and `--offline` / `--locked` read it from the cache. A
//! line counts when it is about exactly this archive (name, version **and** checksum) and its
//! signature verifies with a trusted key: the registry's node key (the one this install
//! verified the snapshot with, or the pinned one offline) or one of `[trust] certifiers`.
//! The highest level that counts must reach the minimum, or nothing is installed.
//!
//! With no minimum (or `community`, which every published version has) nothing is checked
//! and no request is made.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use mission_index::certification::{CertError, CertificationLevel, SignedCertification};
use mission_index::entry::IndexEntry;
use mission_index::layout;
use mission_index::signing::PublicKey;

use crate::sparse_client::{self, SparseError, SparseIndex};
use crate::trust::{self, TrustConfig, TrustStore};

/// The keys whose certifications count.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// The registry's node key, when known.
    pub node: Option<PublicKey>,
    /// `[trust] certifiers`.
    pub certifiers: Vec<PublicKey>,
}

impl Keys {
    fn all(&self) -> Vec<PublicKey> {
        self.node
            .iter()
            .chain(self.certifiers.iter())
            .cloned()
            .collect()
    }

    fn is_node(&self, key_id: &str) -> bool {
        self.node.as_ref().is_some_and(|k| k.key_id() == key_id)
    }
}

/// What one line of a certs file says about one archive. Lines about other versions are
/// left out: they are normal, not findings.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// About these bytes, signed by a trusted key: it counts.
    Trusted {
        level: CertificationLevel,
        by: String,
        node: bool,
    },
    /// About these bytes, well formed, but signed by a key that is neither the node's nor
    /// among the certifiers.
    Untrusted {
        level: CertificationLevel,
        by: String,
    },
    /// About these bytes, but its signature does not hold (an altered or forged line).
    BadSignature {
        level: CertificationLevel,
        by: String,
        reason: String,
    },
    /// About this name and version, but other bytes (another checksum).
    OtherBytes {
        level: CertificationLevel,
        by: String,
        cksum: String,
    },
    /// A line that cannot be read at all.
    Unreadable { line: usize, reason: String },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Trusted { level, by, node } => {
                let whose = if *node { "the node's key" } else { "certifier key" };
                write!(f, "`{level}` by {whose} {by}")
            }
            Finding::Untrusted { level, by } => write!(
                f,
                "`{level}` by key {by}, which is not the node's key nor in [trust] certifiers"
            ),
            Finding::BadSignature { level, by, reason } => write!(
                f,
                "`{level}` claimed by key {by}, whose signature does not verify (the line was altered or forged: {reason})"
            ),
            Finding::OtherBytes { level, by, cksum } => write!(
                f,
                "`{level}` by key {by} for other bytes (sha256 {}..., not this archive)",
                &cksum[..cksum.len().min(12)]
            ),
            Finding::Unreadable { line, reason } => {
                write!(f, "an unreadable line {line} ({reason})")
            }
        }
    }
}

/// The findings of the certs file `text` about the archive `cksum` of `name` `vers`.
pub fn review(name: &str, vers: &str, cksum: &str, text: &str, keys: &Keys) -> Vec<Finding> {
    let trusted = keys.all();
    let mut findings = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let signed = match SignedCertification::parse_line(line, i + 1) {
            Ok(Some(signed)) => signed,
            // A newer schema: skipped, as index lines are.
            Ok(None) => continue,
            Err(e) => {
                findings.push(Finding::Unreadable {
                    line: i + 1,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let c = &signed.certification;
        if c.name != name || c.vers != vers {
            continue;
        }
        let (level, by) = (c.level, c.by.clone());
        if c.cksum != cksum {
            findings.push(Finding::OtherBytes {
                level,
                by,
                cksum: c.cksum.clone(),
            });
            continue;
        }
        findings.push(match signed.verify(&trusted) {
            Ok(_) => Finding::Trusted {
                node: keys.is_node(&by),
                level,
                by,
            },
            Err(CertError::UntrustedCertifier { .. }) => Finding::Untrusted { level, by },
            Err(e) => Finding::BadSignature {
                level,
                by,
                reason: e.to_string(),
            },
        });
    }
    findings
}

/// The highest level that counts among `findings`.
pub fn best(findings: &[Finding]) -> Option<CertificationLevel> {
    findings
        .iter()
        .filter_map(|f| match f {
            Finding::Trusted { level, .. } => Some(*level),
            _ => None,
        })
        .max()
}

/// A certs file as read for one entry.
enum Certs {
    /// The file's bytes; `None` when the index has none (no certifications).
    Read(Option<Vec<u8>>),
    /// Offline, and not in the cache.
    NotCached,
}

/// Why `entry` does not reach `minimum` (`None`: it does).
fn failure(
    entry: &IndexEntry,
    certs: &Certs,
    keys: &Keys,
    minimum: CertificationLevel,
    config: &TrustConfig,
) -> Option<String> {
    let found = match certs {
        Certs::NotCached => {
            "its certifications are not in the index cache (offline); run once without --offline to fetch them".to_owned()
        }
        Certs::Read(None) => "found: no certification at all".to_owned(),
        Certs::Read(Some(bytes)) => {
            let findings = match std::str::from_utf8(bytes) {
                Ok(text) => review(&entry.name, &entry.vers, &entry.cksum, text, keys),
                Err(e) => vec![Finding::Unreadable {
                    line: 1,
                    reason: format!("the file is not UTF-8: {e}"),
                }],
            };
            if best(&findings).is_some_and(|level| level >= minimum) {
                return None;
            }
            if findings.is_empty() {
                "found: no certification of this version".to_owned()
            } else {
                let listed: Vec<String> = findings.iter().map(ToString::to_string).collect();
                format!("found: {}", listed.join("; "))
            }
        }
    };
    Some(format!(
        "certification check failed for `{}` {}: {} [trust] asks for at least `{minimum}`, and it has no such certification by a trusted key ({found})",
        entry.name,
        entry.vers,
        config.path.display(),
    ))
}

/// Checks that every entry meets `[trust] minimum-certification`; does nothing (and makes
/// no request) when none is set. `node_key` is the key the node's snapshot verified with
/// in this install; offline it is `None` and the key pinned in `trust` (or configured) is
/// used.
pub fn enforce<'a>(
    entries: impl IntoIterator<Item = &'a IndexEntry>,
    index: &SparseIndex,
    node_key: Option<&PublicKey>,
    trust: &TrustStore,
) -> Result<()> {
    let config = TrustConfig::load()?;
    let Some(minimum) = config.required() else {
        return Ok(());
    };
    let node = match node_key {
        Some(key) => Some(key.clone()),
        None => match trust.node_key(index.registry())? {
            Some(text) => Some(PublicKey::parse(&text).with_context(|| {
                format!(
                    "the node key pinned for `{}` ({text}) is not a minisign public key; fix it in {} or config.toml",
                    index.registry().display(),
                    trust::path().map(|p| p.display().to_string()).unwrap_or_default()
                )
            })?),
            None => None,
        },
    };
    let keys = Keys {
        node,
        certifiers: config.certifiers.clone(),
    };
    let entries: Vec<&IndexEntry> = entries.into_iter().collect();
    let certs = fetch_all(index, &entries)?;
    let failures: Vec<(&str, String)> = entries
        .iter()
        .zip(&certs)
        .filter_map(|(entry, certs)| {
            failure(entry, certs, &keys, minimum, &config).map(|why| (entry.name.as_str(), why))
        })
        .collect();
    let Some((first, _)) = failures.first() else {
        tracing::debug!(%minimum, missions = entries.len(), "certification policy holds");
        return Ok(());
    };
    let listed: Vec<&str> = failures.iter().map(|(_, why)| why.as_str()).collect();
    bail!(
        "{}\nNothing was installed. Install a version that is certified (see `mission info {first}`), add the certifier's key to [trust] certifiers in {} if you trust it, or lower minimum-certification.",
        listed.join("\n"),
        config.path.display()
    )
}

/// Whether the certs files of `names` are all in the cache `index` reads (an offline
/// reader), as a `--locked` install without requests needs when a minimum is set. True
/// when no minimum is set; false when `[trust]` cannot be read (the online install then
/// reports why).
pub fn cached<'a>(index: &SparseIndex, mut names: impl Iterator<Item = &'a str>) -> bool {
    match TrustConfig::load() {
        Ok(config) if config.required().is_none() => true,
        Ok(_) => names.all(|name| {
            layout::cert_path(name).is_ok_and(|path| matches!(index.fetch(&path), Ok(Some(_))))
        }),
        Err(_) => false,
    }
}

/// Reads the certs file of each entry, a few at a time, in the order of `entries`.
fn fetch_all(index: &SparseIndex, entries: &[&IndexEntry]) -> Result<Vec<Certs>> {
    let next = AtomicUsize::new(0);
    let workers = sparse_client::PARALLEL_REQUESTS.min(entries.len());
    let fetch_one = |entry: &IndexEntry| -> Result<Certs> {
        let path = layout::cert_path(&entry.name)
            .with_context(|| format!("the certs file of `{}`", entry.name))?;
        match index.fetch(&path) {
            Ok(bytes) => Ok(Certs::Read(bytes)),
            Err(SparseError::NotCached { .. }) => Ok(Certs::NotCached),
            Err(e) => {
                Err(e).with_context(|| format!("fetching the certifications of `{}`", entry.name))
            }
        }
    };
    let mut done: Vec<(usize, Result<Certs>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(entry) = entries.get(i) else { break };
                        got.push((i, fetch_one(entry)));
                    }
                    got
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![(
                        usize::MAX,
                        Err(anyhow!("fetching certifications: a worker thread failed")),
                    )]
                })
            })
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    if done.len() != entries.len() {
        // Only a panicked worker leaves gaps; its error is among the results.
        if let Some((_, Err(e))) = done.into_iter().find(|(_, r)| r.is_err()) {
            return Err(e);
        }
        bail!("fetching certifications: some were not read");
    }
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mission_index::certification::{sign_certification, Certification};
    use mission_index::signing::{self, SecretKey};

    fn keypair() -> (SecretKey, PublicKey) {
        let g = signing::generate_keypair(None).unwrap();
        (
            SecretKey::parse(&g.secret_key_text, None).unwrap(),
            PublicKey::parse(&g.public_key_text).unwrap(),
        )
    }

    const CKSUM: &str = "abababababababababababababababababababababababababababababababab";

    fn line(
        keys: &(SecretKey, PublicKey),
        vers: &str,
        cksum: &str,
        level: CertificationLevel,
    ) -> String {
        let cert = Certification {
            name: "fix_it".into(),
            vers: vers.into(),
            cksum: cksum.into(),
            level,
            by: keys.1.key_id(),
            issued: "2026-11-25T14:00:00Z".into(),
            evidence: serde_json::json!({"pipeline": "test"}),
        };
        sign_certification(&cert, &keys.0, &keys.1)
            .unwrap()
            .to_line()
    }

    fn review_of(text: &str, keys: &Keys) -> Vec<Finding> {
        review("fix_it", "1.2.0", CKSUM, text, keys)
    }

    #[test]
    fn the_highest_trusted_level_for_these_bytes_counts() {
        let (node, reviewer) = (keypair(), keypair());
        let keys = Keys {
            node: Some(node.1.clone()),
            certifiers: vec![reviewer.1.clone()],
        };
        let text = [
            line(&node, "1.2.0", CKSUM, CertificationLevel::Community),
            line(&node, "1.2.0", CKSUM, CertificationLevel::Verified),
            line(&reviewer, "1.2.0", CKSUM, CertificationLevel::Professional),
            // Another version's certification is no finding at all.
            line(&node, "1.1.0", CKSUM, CertificationLevel::Enterprise),
        ]
        .join("\n");
        let findings = review_of(&text, &keys);
        assert_eq!(findings.len(), 3, "{findings:?}");
        assert_eq!(best(&findings), Some(CertificationLevel::Professional));
        assert!(findings[1].to_string().contains("the node's key"));
        assert!(findings[2].to_string().contains("certifier key"));
    }

    #[test]
    fn an_unknown_key_counts_only_once_it_is_a_certifier() {
        let (node, reviewer) = (keypair(), keypair());
        let text = line(&reviewer, "1.2.0", CKSUM, CertificationLevel::Verified);
        let mut keys = Keys {
            node: Some(node.1.clone()),
            certifiers: Vec::new(),
        };
        let findings = review_of(&text, &keys);
        assert_eq!(best(&findings), None);
        assert!(
            matches!(&findings[..], [Finding::Untrusted { by, .. }] if *by == reviewer.1.key_id())
        );
        assert!(findings[0]
            .to_string()
            .contains("not the node's key nor in [trust] certifiers"));
        keys.certifiers.push(reviewer.1.clone());
        assert_eq!(
            best(&review_of(&text, &keys)),
            Some(CertificationLevel::Verified)
        );
    }

    #[test]
    fn other_bytes_a_raised_level_and_garbage_do_not_count() {
        let node = keypair();
        let keys = Keys {
            node: Some(node.1.clone()),
            certifiers: Vec::new(),
        };
        let other = "cd".repeat(32);
        let for_other_bytes = line(&node, "1.2.0", &other, CertificationLevel::Verified);
        let raised = line(&node, "1.2.0", CKSUM, CertificationLevel::Community)
            .replace("\"level\":\"community\"", "\"level\":\"enterprise\"");
        let text = format!("{for_other_bytes}\n{raised}\nnot json\n");
        let findings = review_of(&text, &keys);
        assert_eq!(best(&findings), None, "{findings:?}");
        assert!(matches!(&findings[0], Finding::OtherBytes { cksum, .. } if *cksum == other));
        assert!(findings[0].to_string().contains("for other bytes"));
        assert!(matches!(
            &findings[1],
            Finding::BadSignature {
                level: CertificationLevel::Enterprise,
                ..
            }
        ));
        assert!(findings[1].to_string().contains("does not verify"));
        assert!(matches!(&findings[2], Finding::Unreadable { line: 3, .. }));
    }

    fn entry() -> IndexEntry {
        serde_json::from_value(serde_json::json!({
            "name": "fix_it", "vers": "1.2.0", "cksum": CKSUM, "sig": "", "key": "RW",
            "pubtime": "2026-11-25T14:00:00Z", "origin": "test"
        }))
        .unwrap()
    }

    #[test]
    fn the_decision_names_the_mission_the_minimum_and_what_was_found() {
        let node = keypair();
        let keys = Keys {
            node: Some(node.1.clone()),
            certifiers: Vec::new(),
        };
        let config = TrustConfig {
            path: "/home/u/config.toml".into(),
            ..TrustConfig::default()
        };
        let verified = CertificationLevel::Verified;
        let community = line(&node, "1.2.0", CKSUM, CertificationLevel::Community);
        let certs = Certs::Read(Some(community.clone().into_bytes()));
        let why = failure(&entry(), &certs, &keys, verified, &config).unwrap();
        assert!(
            why.starts_with("certification check failed for `fix_it` 1.2.0: /home/u/config.toml [trust] asks for at least `verified`")
                && why.contains("found: `community` by the node's key"),
            "{why}"
        );
        assert_eq!(
            failure(
                &entry(),
                &certs,
                &keys,
                CertificationLevel::Community,
                &config
            ),
            None
        );
        let why = failure(&entry(), &Certs::Read(None), &keys, verified, &config).unwrap();
        assert!(why.contains("no certification at all"), "{why}");
        let why = failure(&entry(), &Certs::NotCached, &keys, verified, &config).unwrap();
        assert!(why.contains("not in the index cache (offline)"), "{why}");
        let good = line(&node, "1.2.0", CKSUM, verified);
        let certs = Certs::Read(Some(format!("{community}\n{good}\n").into_bytes()));
        assert_eq!(failure(&entry(), &certs, &keys, verified, &config), None);
    }
}
