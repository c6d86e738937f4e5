//! What crosses the wire on publish, shared by the client (`mission tag`, `mission publish`)
//! and the node, so neither defines the format alone.
//!
//! - [`TagMessage`]: the message of the annotated git tag `vVERSION` that `mission tag`
//!   makes; it carries the author's key and the whole minisign signature of the canonical
//!   archive, so `git push` of the tag is a complete publish.
//! - [`PublishBody`]: the body of `POST /api/v1/missions/publish`, laid out as cargo's
//!   publish: u32 little-endian length, JSON metadata, u32 little-endian length, archive.

use serde::{Deserialize, Serialize};
use thiserror::Error;

const SIG_BEGIN: &str = "-----BEGIN MISSION SIGNATURE-----";
const SIG_END: &str = "-----END MISSION SIGNATURE-----";

/// The message of a publish tag.
///
/// ```text
/// mission fix_build 1.2.0
///
/// key: RW...
/// sha256: 0f3c...
/// -----BEGIN MISSION SIGNATURE-----
/// untrusted comment: ...
/// RU...
/// trusted comment: mission=fix_build version=1.2.0 sha256=0f3c...
/// ...
/// -----END MISSION SIGNATURE-----
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMessage {
    pub name: String,
    pub version: String,
    /// The author's public key, `RW...`.
    pub key: String,
    /// SHA-256 of the canonical archive built from the tagged tree.
    pub cksum: String,
    /// The whole `.minisig` text.
    pub signature: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("the tag message does not start with `mission NAME VERSION`; make the tag with `mission tag`")]
    TagHeader,
    #[error("the tag message lacks the `{0}:` line; make the tag with `mission tag`")]
    TagField(&'static str),
    #[error("the tag message has no signature block; make the tag with `mission tag`")]
    TagSignature,
    #[error("the publish body is truncated: {0}")]
    Truncated(&'static str),
    #[error("the publish body's {part} is {size} bytes; the limit is {limit}")]
    TooLarge {
        part: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("the publish metadata is not valid JSON: {0}")]
    Metadata(String),
    #[error("the publish body has {0} bytes after the archive")]
    Trailing(usize),
}

impl TagMessage {
    /// The tag name for a version: `vVERSION`.
    pub fn tag_name(version: &str) -> String {
        format!("v{version}")
    }

    pub fn to_message(&self) -> String {
        let mut sig = self.signature.trim_end().to_owned();
        sig.push('\n');
        format!(
            "mission {} {}\n\nkey: {}\nsha256: {}\n{SIG_BEGIN}\n{sig}{SIG_END}\n",
            self.name, self.version, self.key, self.cksum
        )
    }

    pub fn parse(message: &str) -> Result<TagMessage, WireError> {
        let mut lines = message.lines();
        let header = lines.next().unwrap_or_default();
        let mut words = header.split_whitespace();
        let (Some("mission"), Some(name), Some(version), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(WireError::TagHeader);
        };
        let field = |label: &'static str| -> Result<String, WireError> {
            message
                .lines()
                .find_map(|l| l.strip_prefix(label).and_then(|r| r.strip_prefix(": ")))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or(WireError::TagField(label))
        };
        let key = field("key")?;
        let cksum = field("sha256")?;
        let start = message.find(SIG_BEGIN).ok_or(WireError::TagSignature)? + SIG_BEGIN.len();
        let end = message[start..]
            .find(SIG_END)
            .ok_or(WireError::TagSignature)?
            + start;
        let signature = message[start..end].trim_matches('\n').to_owned() + "\n";
        if signature.trim().is_empty() {
            return Err(WireError::TagSignature);
        }
        Ok(TagMessage {
            name: name.to_owned(),
            version: version.to_owned(),
            key,
            cksum,
            signature,
        })
    }
}

/// The JSON part of an HTTP publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishMetadata {
    pub name: String,
    pub vers: String,
    /// SHA-256 of the archive that follows.
    pub cksum: String,
    /// The author's public key, `RW...`.
    pub key: String,
    /// The whole `.minisig` text.
    pub sig: String,
}

/// An HTTP publish body, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishBody {
    pub metadata: PublishMetadata,
    pub archive: Vec<u8>,
}

/// Largest metadata JSON accepted: a signature and a few names.
pub const MAX_METADATA_BYTES: u64 = 64 * 1024;

impl PublishBody {
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(&self.metadata).unwrap_or_default();
        let mut out = Vec::with_capacity(8 + json.len() + self.archive.len());
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&(self.archive.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.archive);
        out
    }

    /// Splits `body`, refusing lengths past `max_archive` (checked before anything is read).
    pub fn decode(body: &[u8], max_archive: u64) -> Result<PublishBody, WireError> {
        let (json_len, rest) = read_u32(body, "the metadata length")?;
        if json_len > MAX_METADATA_BYTES {
            return Err(WireError::TooLarge {
                part: "metadata",
                size: json_len,
                limit: MAX_METADATA_BYTES,
            });
        }
        let json_len = json_len as usize;
        if rest.len() < json_len {
            return Err(WireError::Truncated("the metadata"));
        }
        let (json, rest) = rest.split_at(json_len);
        let metadata: PublishMetadata =
            serde_json::from_slice(json).map_err(|e| WireError::Metadata(e.to_string()))?;
        let (archive_len, rest) = read_u32(rest, "the archive length")?;
        if archive_len > max_archive {
            return Err(WireError::TooLarge {
                part: "archive",
                size: archive_len,
                limit: max_archive,
            });
        }
        let archive_len = archive_len as usize;
        if rest.len() < archive_len {
            return Err(WireError::Truncated("the archive"));
        }
        if rest.len() > archive_len {
            return Err(WireError::Trailing(rest.len() - archive_len));
        }
        Ok(PublishBody {
            metadata,
            archive: rest.to_vec(),
        })
    }
}

fn read_u32<'a>(bytes: &'a [u8], what: &'static str) -> Result<(u64, &'a [u8]), WireError> {
    if bytes.len() < 4 {
        return Err(WireError::Truncated(what));
    }
    let (head, rest) = bytes.split_at(4);
    let mut n = [0u8; 4];
    n.copy_from_slice(head);
    Ok((u32::from_le_bytes(n) as u64, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag() -> TagMessage {
        TagMessage {
            name: "fix_build".into(),
            version: "1.2.0".into(),
            key: "RWabc".into(),
            cksum: "ab".repeat(32),
            signature: "untrusted comment: x\nRUsig\ntrusted comment: mission=fix_build version=1.2.0 sha256=abab\nglobal\n".into(),
        }
    }

    #[test]
    fn tag_messages_round_trip() {
        let t = tag();
        assert_eq!(TagMessage::parse(&t.to_message()).unwrap(), t);
        assert_eq!(TagMessage::tag_name("1.2.0"), "v1.2.0");
    }

    #[test]
    fn bad_tag_messages_say_what_is_missing() {
        assert_eq!(TagMessage::parse("hello"), Err(WireError::TagHeader));
        let no_key = tag().to_message().replace("key: RWabc\n", "");
        assert_eq!(TagMessage::parse(&no_key), Err(WireError::TagField("key")));
        let no_sig = tag()
            .to_message()
            .replace(SIG_END, "")
            .replace(SIG_BEGIN, "");
        assert_eq!(TagMessage::parse(&no_sig), Err(WireError::TagSignature));
    }

    #[test]
    fn publish_bodies_round_trip_and_bad_ones_are_refused() {
        let body = PublishBody {
            metadata: PublishMetadata {
                name: "a".into(),
                vers: "1.0.0".into(),
                cksum: "c".into(),
                key: "RW".into(),
                sig: "s".into(),
            },
            archive: vec![1, 2, 3],
        };
        let bytes = body.encode();
        assert_eq!(PublishBody::decode(&bytes, 10).unwrap(), body);
        assert!(matches!(
            PublishBody::decode(&bytes, 2),
            Err(WireError::TooLarge {
                part: "archive",
                ..
            })
        ));
        assert!(matches!(
            PublishBody::decode(&bytes[..bytes.len() - 1], 10),
            Err(WireError::Truncated("the archive"))
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            PublishBody::decode(&longer, 10),
            Err(WireError::Trailing(1))
        );
        assert!(matches!(
            PublishBody::decode(&[1, 0], 10),
            Err(WireError::Truncated(_))
        ));
        let huge = (u32::MAX).to_le_bytes();
        assert!(matches!(
            PublishBody::decode(&huge, 10),
            Err(WireError::TooLarge {
                part: "metadata",
                ..
            })
        ));
        let mut bad_json = 3u32.to_le_bytes().to_vec();
        bad_json.extend_from_slice(b"{x}");
        assert!(matches!(
            PublishBody::decode(&bad_json, 10),
            Err(WireError::Metadata(_))
        ));
    }
}
