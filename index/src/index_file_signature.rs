//! Index files bound to the node's signed snapshot (ARCHITECTURE section 4).
//!
//! The snapshot ([`crate::snapshot`]) vouches for one index head. A client reading the index
//! over git checks that the files it read come from that commit. A client reading the sparse
//! index over HTTP fetches single files and has no commit to compare them with: a proxy or
//! mirror could serve the real, current snapshot beside edited or old files, to un-yank a
//! version, add one signed by another author key, or hide new ones.
//!
//! So the node signs every index file it serves, for the head it serves it at, and sends the
//! signature in the [`HEADER`] header of the answer (a `304 Not Modified` too): the base64
//! of a minisign signature of the file's bytes by the node key, whose trusted comment is
//! `index-file node=NODE head=HEAD path=PATH` ([`trusted_comment`]). A client accepts a file
//! only when that signature verifies with the pinned node key and names the node, the head
//! of the snapshot it accepted, and the path it asked for. A file signed for another head
//! ([`IndexFileError::OtherHead`]) is what a client sees when the node published between
//! two of its requests, or when an old file is replayed: it fetches again, and refuses if
//! that persists.
//!
//! By hand: `echo "$HEADER" | base64 -d > FILE.minisig; minisign -Vm FILE -x FILE.minisig
//! -P NODE_KEY` checks a file and prints its trusted comment.

use ct_codecs::{Base64, Decoder, Encoder};
use thiserror::Error;

use crate::archive_signature::{self, ArchiveSignature};
use crate::signing::{self, PublicKey, SecretKey, SignError};

/// The response header carrying an index file's signature.
pub const HEADER: &str = "mission-index-signature";

/// The trusted comment of the signature of index file `path` served by `node` at `head`.
pub fn trusted_comment(node: &str, head: &str, path: &str) -> String {
    format!("index-file node={node} head={head} path={path}")
}

/// Signs `bytes`, the index file `path` at `head`, as node `node`; returns the [`HEADER`]
/// value.
pub fn sign(
    sk: &SecretKey,
    pk: &PublicKey,
    node: &str,
    head: &str,
    path: &str,
    bytes: &[u8],
) -> Result<String, SignError> {
    let sig = signing::sign_bytes(sk, pk, bytes, &trusted_comment(node, head, path))?;
    Base64::encode_to_string(sig.as_bytes()).map_err(|e| SignError::MalformedSignature {
        reason: format!("encoding the signature: {e}"),
    })
}

/// Why an index file's signature was refused.
#[derive(Debug, Error)]
pub enum IndexFileError {
    #[error("the node sent no `{HEADER}` header with it, so nothing vouches that it is the file the node's signed snapshot covers")]
    Missing,
    #[error("its `{HEADER}` header is not a minisign signature: {reason}")]
    Malformed { reason: String },
    #[error(
        "it is signed for index head {signed}, but the snapshot accepted names head {expected}"
    )]
    OtherHead { signed: String, expected: String },
    #[error("its signature by the node key does not hold: {0}")]
    Signature(#[source] SignError),
}

/// One index file's signature, parsed and hashed: ready to verify alone or in a batch.
pub struct IndexFileSignature {
    prepared: ArchiveSignature,
}

impl IndexFileSignature {
    /// Parses `header` (the [`HEADER`] value, `None` when absent) as the signature of
    /// `bytes`, the file `path` that node `node`, whose key is `pk`, serves at `head`.
    /// Fails at once on a missing or malformed signature, another key, or a trusted comment
    /// that names another head for this node and path; the equations (and any other
    /// comment) are checked by [`IndexFileSignature::verify`] or [`verify_batch`].
    pub fn prepare(
        pk: &PublicKey,
        header: Option<&str>,
        bytes: &[u8],
        node: &str,
        head: &str,
        path: &str,
    ) -> Result<IndexFileSignature, IndexFileError> {
        let header = header.ok_or(IndexFileError::Missing)?;
        let malformed = |reason: String| IndexFileError::Malformed { reason };
        let text = Base64::decode_to_vec(header.trim(), None)
            .map_err(|_| malformed("not base64".into()))?;
        let text = String::from_utf8(text).map_err(|_| malformed("not UTF-8 text".into()))?;
        let prepared = ArchiveSignature::prepare_with_comment(
            pk,
            &text,
            bytes,
            trusted_comment(node, head, path),
        )
        .map_err(IndexFileError::Signature)?;
        let before_head = format!("index-file node={node} head=");
        let after_head = format!(" path={path}");
        if let Some(signed) = prepared
            .found_comment()
            .strip_prefix(&before_head)
            .and_then(|rest| rest.strip_suffix(&after_head))
            .filter(|signed| *signed != head)
        {
            return Err(IndexFileError::OtherHead {
                signed: signed.to_owned(),
                expected: head.to_owned(),
            });
        }
        Ok(IndexFileSignature { prepared })
    }

    /// Checks the signature alone (strictly), then its trusted comment.
    pub fn verify(&self) -> Result<(), IndexFileError> {
        self.prepared.verify().map_err(IndexFileError::Signature)
    }
}

/// Checks every signature of `batch` at once; an `Err` does not say which failed (check
/// each with [`IndexFileSignature::verify`] to find out).
pub fn verify_batch(batch: &[&IndexFileSignature]) -> Result<(), IndexFileError> {
    let prepared: Vec<&ArchiveSignature> = batch.iter().map(|s| &s.prepared).collect();
    archive_signature::verify_batch(&prepared).map_err(IndexFileError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "0123456789abcdef0123456789abcdef01234567";
    const OTHER: &str = "89abcdef0123456789abcdef0123456789abcdef";
    const PATH: &str = "fi/x_/fix_build";
    const FILE: &[u8] = b"{\"name\":\"fix_build\",\"vers\":\"1.0.0\",\"yanked\":false}\n";

    fn keys() -> (SecretKey, PublicKey) {
        crate::signing::new_test_keys()
    }

    fn check(
        pk: &PublicKey,
        header: Option<&str>,
        bytes: &[u8],
        head: &str,
        path: &str,
    ) -> Result<(), IndexFileError> {
        IndexFileSignature::prepare(pk, header, bytes, "central", head, path)?.verify()
    }

    #[test]
    fn a_signed_file_verifies_alone_and_in_a_batch() {
        let (sk, pk) = keys();
        let header = sign(&sk, &pk, "central", HEAD, PATH, FILE).unwrap();
        assert!(!header.contains('\n'), "one header line: {header}");
        check(&pk, Some(&header), FILE, HEAD, PATH).unwrap();
        let other_path = "1/a";
        let second = sign(&sk, &pk, "central", HEAD, other_path, b"x\n").unwrap();
        let a =
            IndexFileSignature::prepare(&pk, Some(&header), FILE, "central", HEAD, PATH).unwrap();
        let b =
            IndexFileSignature::prepare(&pk, Some(&second), b"x\n", "central", HEAD, other_path)
                .unwrap();
        verify_batch(&[&a, &b]).unwrap();
    }

    #[test]
    fn every_change_is_refused_with_its_own_reason() {
        let (sk, pk) = keys();
        let header = sign(&sk, &pk, "central", HEAD, PATH, FILE).unwrap();

        // An edited file (an un-yank, say).
        let edited = String::from_utf8_lossy(FILE).replace("false", "true ");
        let err = check(&pk, Some(&header), edited.as_bytes(), HEAD, PATH).unwrap_err();
        assert!(matches!(err, IndexFileError::Signature(_)), "{err}");

        // An old file, signed for another head.
        let old = sign(&sk, &pk, "central", OTHER, PATH, FILE).unwrap();
        let err = check(&pk, Some(&old), FILE, HEAD, PATH).unwrap_err();
        assert!(
            matches!(&err, IndexFileError::OtherHead { signed, expected } if signed == OTHER && expected == HEAD),
            "{err}"
        );

        // Another file's signature, passed off as this one's.
        let err = check(&pk, Some(&header), FILE, HEAD, "1/a").unwrap_err();
        assert!(matches!(err, IndexFileError::Signature(_)), "{err}");

        // Signed by another key.
        let (other_sk, other_pk) = keys();
        let forged = sign(&other_sk, &other_pk, "central", HEAD, PATH, FILE).unwrap();
        let err = check(&pk, Some(&forged), FILE, HEAD, PATH).unwrap_err();
        assert!(matches!(err, IndexFileError::Signature(_)), "{err}");

        // None at all, or not a signature.
        assert!(matches!(
            check(&pk, None, FILE, HEAD, PATH),
            Err(IndexFileError::Missing)
        ));
        for bad in ["%%%", "aGVsbG8=", ""] {
            let err = check(&pk, Some(bad), FILE, HEAD, PATH).unwrap_err();
            assert!(
                matches!(
                    err,
                    IndexFileError::Malformed { .. } | IndexFileError::Signature(_)
                ),
                "{bad}: {err}"
            );
        }

        // A batch with one bad signature fails.
        let good =
            IndexFileSignature::prepare(&pk, Some(&header), FILE, "central", HEAD, PATH).unwrap();
        let bad = IndexFileSignature::prepare(
            &pk,
            Some(&header),
            edited.as_bytes(),
            "central",
            HEAD,
            PATH,
        )
        .unwrap();
        assert!(verify_batch(&[&good, &bad]).is_err());
    }
}
