//! Minisign keys and signatures, byte-compatible with the `minisign` command-line tool.
//!
//! ## The pieces
//!
//! A minisign *key pair* is an Ed25519 key plus an 8-byte *key id* chosen at random when the
//! pair is made. minisign prints the id as 16 uppercase hex digits (little-endian), and so do
//! we ([`PublicKey::key_id`]). Two files hold a pair, in exactly minisign's formats:
//!
//! ```text
//! NAME.pub   untrusted comment: minisign public key 832BDD0A02F0C696
//!            RWSWxvACCt0rg36NYXcIJT6P4pOo24rVuD7D3KCoMR+62orQNX++kaLY
//! NAME.key   untrusted comment: minisign encrypted secret key
//!            RWRTY0Iy...   (scrypt-encrypted with a password, or not encrypted at all)
//! ```
//!
//! The second line of the `.pub` file (`RW...`) is what the index stores in an entry's `key`
//! field and what `minisign -P` takes.
//!
//! A *signature* (`.minisig` file) has four lines: an untrusted comment (anyone can change
//! it), the signature over the data, a *trusted comment*, and a second signature that covers
//! the first signature plus the trusted comment. So the trusted comment cannot be changed
//! without the secret key, and we use it to bind a signature to *what* was signed: for a
//! mission archive it is exactly `mission=NAME version=VERSION sha256=CKSUM`
//! ([`archive_trusted_comment`]), so a valid signature for one archive can never be replayed
//! as the signature of another name or version.
//!
//! ## Prehashed only (the legacy policy)
//!
//! minisign signs the BLAKE2b-512 hash of the data (algorithm `ED`, its default since 0.8);
//! its older "legacy" format (`Ed`, `minisign -S -l`) signs the raw bytes. Every signature we
//! make is prehashed, and **we refuse legacy signatures** ([`SignError::LegacySignature`]):
//! the registry has no old signatures to stay compatible with, and accepting two algorithms
//! only widens what an attacker may present. An author whose tool makes legacy signatures
//! re-signs with a plain `minisign -S`.
//!
//! Secret keys are never printed: [`SecretKey`]'s `Debug` shows the key id only.

use std::fmt;
use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ct_codecs::{Base64, Decoder};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The untrusted comment minisign itself writes on signatures; we write the same so our
/// `.minisig` files look like any other.
const SIGNATURE_UNTRUSTED_COMMENT: &str = "signature from minisign secret key";
/// minisign writes this comment on every secret key file, encrypted or not.
const SECRET_KEY_COMMENT: &str = "minisign encrypted secret key";
const COMMENT_PREFIX: &str = "untrusted comment:";

/// Decoded sizes of minisign's binary key layouts.
const PUBLIC_KEY_BYTES: usize = 2 + 8 + 32;
const SECRET_KEY_BYTES: usize = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32;
/// Algorithm, key id and Ed25519 signature: the second line of a `.minisig`.
pub(crate) const SIGNATURE_LINE_BYTES: usize = 2 + 8 + 64;
const SIG_ALG: &[u8; 2] = b"Ed";
const CHK_ALG: &[u8; 2] = b"B2";
const KDF_NONE: [u8; 2] = [0, 0];
const KDF_SCRYPT: &[u8; 2] = b"Sc";

/// Everything that can go wrong with keys and signatures. Each variant names what was being
/// read (a file, a key id, the expected trusted comment) so the message alone is actionable.
#[derive(Debug, Error)]
pub enum SignError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} already exists; refusing to overwrite a key (move it away or pick another name)", path.display())]
    KeyExists { path: PathBuf },
    #[error("{what} is not a minisign public key: {reason}")]
    NotAPublicKey { what: String, reason: String },
    #[error("{what} is not a minisign secret key file: {reason}")]
    NotASecretKey { what: String, reason: String },
    #[error("{what} is encrypted with a password, but no password was given")]
    PasswordRequired { what: String },
    #[error("wrong password for the secret key {what}")]
    WrongPassword { what: String },
    #[error("the secret key {what} is corrupted (its checksum does not match)")]
    CorruptedKey { what: String },
    #[error("the secret key (id {secret_key_id}) and the public key (id {public_key_id}) are not one key pair")]
    KeyPairMismatch {
        secret_key_id: String,
        public_key_id: String,
    },
    #[error("a trusted comment must be one line without leading or trailing spaces: {comment:?}")]
    InvalidTrustedComment { comment: String },
    #[error("malformed minisign signature: {reason}")]
    MalformedSignature { reason: String },
    #[error("the signature was made by key {signature_key_id}, not by the expected key {expected_key_id}")]
    KeyIdMismatch {
        signature_key_id: String,
        expected_key_id: String,
    },
    #[error("legacy (non-prehashed) minisign signature by key {key_id} refused; re-sign with a current minisign (`minisign -S` without -l)")]
    LegacySignature { key_id: String },
    #[error("bad signature: the signed data or its trusted comment was altered ({detail})")]
    BadSignature { detail: String },
    #[error("the signature's trusted comment is {found:?}, expected {expected:?}")]
    TrustedCommentMismatch { expected: String, found: String },
    #[error("minisign failed: {0}")]
    Minisign(#[source] minisign::PError),
}

/// Formats a minisign key id as minisign prints it: 16 uppercase hex digits of the
/// little-endian 64-bit number.
fn key_id_hex(keynum: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    for (dst, src) in bytes.iter_mut().zip(keynum) {
        *dst = *src;
    }
    format!("{:016X}", u64::from_le_bytes(bytes))
}

/// The SHA-256 of `data`, lowercase hex: the `cksum` of an archive.
fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A minisign public key.
#[derive(Clone)]
pub struct PublicKey {
    inner: minisign::PublicKey,
}

impl PublicKey {
    /// Parses either the text of a `.pub` file (comment line + base64 line) or the bare
    /// base64 `RW...` string (as stored in the index `key` field or given to `minisign -P`).
    pub fn parse(text: &str) -> Result<PublicKey, SignError> {
        Self::parse_named(text, "the given text")
    }

    /// Reads a `.pub` file (or a file holding only the `RW...` line).
    pub fn from_file(path: &Path) -> Result<PublicKey, SignError> {
        let text = fs::read_to_string(path).map_err(|source| SignError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_named(&text, &path.display().to_string())
    }

    fn parse_named(text: &str, what: &str) -> Result<PublicKey, SignError> {
        let bad = |reason: &str| SignError::NotAPublicKey {
            what: what.to_string(),
            reason: reason.to_string(),
        };
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next().ok_or_else(|| bad("it is empty"))?;
        let encoded = if first.starts_with(COMMENT_PREFIX) {
            lines
                .next()
                .ok_or_else(|| bad("the base64 key line after the comment is missing"))?
        } else {
            first
        };
        if lines.next().is_some() {
            return Err(bad("unexpected extra lines after the key"));
        }
        let decoded =
            Base64::decode_to_vec(encoded, None).map_err(|_| bad("the key line is not base64"))?;
        if decoded.len() != PUBLIC_KEY_BYTES {
            return Err(bad(&format!(
                "the key decodes to {} bytes, a minisign public key has {PUBLIC_KEY_BYTES}",
                decoded.len()
            )));
        }
        if &decoded[..2] != SIG_ALG {
            return Err(bad(
                "the key is not an Ed25519 minisign key (it must start with RW)",
            ));
        }
        let inner = minisign::PublicKey::from_bytes(&decoded)
            .map_err(|e| bad(&format!("cannot decode the key: {e}")))?;
        Ok(PublicKey { inner })
    }

    /// The base64 form (`RW...`), as stored in the index `key` field.
    pub fn to_base64(&self) -> String {
        self.inner.to_base64()
    }

    /// The raw Ed25519 public key (the last 32 of minisign's 42 bytes).
    pub(crate) fn ed25519_bytes(&self) -> [u8; 32] {
        let mut key = [0u8; 32];
        key.copy_from_slice(&self.inner.to_bytes()[PUBLIC_KEY_BYTES - 32..]);
        key
    }

    /// The key id as minisign prints it (16 uppercase hex digits).
    pub fn key_id(&self) -> String {
        key_id_hex(self.inner.keynum())
    }

    /// The text of a `.pub` file, exactly as `minisign -G` writes it.
    pub fn to_file_text(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.key_id(),
            self.to_base64()
        )
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner.to_bytes() == other.inner.to_bytes()
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.key_id(), self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    /// The `RW...` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = SignError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PublicKey::parse(s)
    }
}

/// A decrypted minisign secret key, ready to sign.
#[derive(Clone)]
pub struct SecretKey {
    inner: minisign::SecretKey,
}

impl SecretKey {
    /// Loads a secret key file written by `minisign -G` (with or without `-W`) or by
    /// [`write_keypair`]. `password` is needed for encrypted keys; it is ignored (with a
    /// warning in the log) for an unencrypted key.
    pub fn load(path: &Path, password: Option<&str>) -> Result<SecretKey, SignError> {
        let text = fs::read_to_string(path).map_err(|source| SignError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_named(&text, password, &path.display().to_string())
    }

    /// Same as [`SecretKey::load`] for the text of a key file.
    pub fn parse(text: &str, password: Option<&str>) -> Result<SecretKey, SignError> {
        Self::parse_named(text, password, "the given secret key text")
    }

    fn parse_named(text: &str, password: Option<&str>, what: &str) -> Result<SecretKey, SignError> {
        let bad = |reason: &str| SignError::NotASecretKey {
            what: what.to_string(),
            reason: reason.to_string(),
        };
        let mut lines = text.lines();
        let comment = lines.next().unwrap_or_default();
        if !comment.starts_with(COMMENT_PREFIX) {
            return Err(bad("the first line is not `untrusted comment: ...`"));
        }
        let encoded = lines
            .next()
            .map(str::trim)
            .ok_or_else(|| bad("the base64 key line after the comment is missing"))?;
        let decoded = Base64::decode_to_vec(encoded, None)
            .map_err(|_| bad("the second line is not base64"))?;
        if decoded.len() != SECRET_KEY_BYTES {
            return Err(bad(&format!(
                "the key decodes to {} bytes, a minisign secret key has {SECRET_KEY_BYTES}",
                decoded.len()
            )));
        }
        if &decoded[..2] != SIG_ALG || &decoded[4..6] != CHK_ALG {
            return Err(bad("unknown signature or checksum algorithm"));
        }
        // Rebuild the box from the two lines we checked, so the crate sees exactly them.
        let sk_box = minisign::SecretKeyBox::from_string(&format!("{comment}\n{encoded}\n"))
            .map_err(|e| bad(&e.to_string()))?;
        let kdf = [decoded[2], decoded[3]];
        let inner = if kdf == KDF_NONE {
            if password.is_some() {
                tracing::warn!("{what} is not encrypted; the given password is not needed");
            }
            let corrupted = || SignError::CorruptedKey {
                what: what.to_string(),
            };
            // minisign 0.11 (`-G -W`) writes unencrypted keys with an all-zero checksum and
            // never checks it; the crate insists on a real one. Check it when present; in
            // every case the self-test below proves the key material is whole.
            let checksum = &decoded[SECRET_KEY_BYTES - 32..];
            if checksum.iter().any(|b| *b != 0) {
                minisign::SecretKey::from_unencrypted_box(sk_box).map_err(|_| corrupted())?;
            }
            let sk = minisign::SecretKey::from_bytes(&decoded).map_err(|_| corrupted())?;
            let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|_| corrupted())?;
            // The crate checks a fresh signature against `pk` (the public half stored in
            // the secret key): a damaged seed or public half fails here, not at first use.
            minisign::sign(
                Some(&pk),
                &sk,
                Cursor::new(b"self-test"),
                Some("self-test"),
                Some("self-test"),
            )
            .map_err(|_| corrupted())?;
            sk
        } else if &kdf == KDF_SCRYPT {
            // Never pass None to the crate here: it would prompt on the terminal.
            let password = password.ok_or_else(|| SignError::PasswordRequired {
                what: what.to_string(),
            })?;
            minisign::SecretKey::from_box(sk_box, Some(password.to_string())).map_err(
                |e| match e.kind() {
                    minisign::ErrorKind::Verify => SignError::WrongPassword {
                        what: what.to_string(),
                    },
                    _ => bad(&e.to_string()),
                },
            )?
        } else {
            return Err(bad("unknown key encryption algorithm"));
        };
        Ok(SecretKey { inner })
    }

    /// The key id as minisign prints it.
    pub fn key_id(&self) -> String {
        key_id_hex(self.inner.keynum())
    }

    /// The public half of this key pair.
    pub fn public_key(&self) -> Result<PublicKey, SignError> {
        minisign::PublicKey::from_secret_key(&self.inner)
            .map(|inner| PublicKey { inner })
            .map_err(SignError::Minisign)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material.
        write!(f, "SecretKey({})", self.key_id())
    }
}

/// A freshly made key pair, as the texts of its two files.
#[derive(Clone)]
pub struct GeneratedKey {
    /// The `.pub` file (`untrusted comment: minisign public key ID` + `RW...`).
    pub public_key_text: String,
    /// The `.key` file, encrypted when a password was given.
    pub secret_key_text: String,
    /// The key id, 16 uppercase hex digits as minisign prints it.
    pub key_id: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("key_id", &self.key_id)
            .field("public_key_text", &self.public_key_text)
            .finish_non_exhaustive()
    }
}

/// Makes a new key pair. With `Some(password)` the secret key is encrypted as minisign does
/// (scrypt); with `None` it is stored unencrypted, like `minisign -G -W`.
pub fn generate_keypair(password: Option<&str>) -> Result<GeneratedKey, SignError> {
    let pair = match password {
        Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p.to_string())),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(SignError::Minisign)?;
    let public = PublicKey { inner: pair.pk };
    let secret_key_text = pair
        .sk
        .to_box(Some(SECRET_KEY_COMMENT))
        .map_err(SignError::Minisign)?
        .into_string();
    Ok(GeneratedKey {
        public_key_text: public.to_file_text(),
        secret_key_text,
        key_id: public.key_id(),
    })
}

/// Makes a new key pair and writes `DIR/NAME.pub` and `DIR/NAME.key`. The secret key is
/// created exclusively (never overwriting an existing file) with mode 0600 on unix; if either
/// file already exists nothing is written and the error names it.
pub fn write_keypair(
    dir: &Path,
    name: &str,
    password: Option<&str>,
) -> Result<GeneratedKey, SignError> {
    let pub_path = dir.join(format!("{name}.pub"));
    let key_path = dir.join(format!("{name}.key"));
    for path in [&key_path, &pub_path] {
        if path.exists() {
            return Err(SignError::KeyExists { path: path.clone() });
        }
    }
    let generated = generate_keypair(password)?;
    write_new_file(&key_path, generated.secret_key_text.as_bytes(), 0o600)?;
    if let Err(e) = write_new_file(&pub_path, generated.public_key_text.as_bytes(), 0o644) {
        // Leave no half pair behind: a secret key without its public key is useless.
        let _ = fs::remove_file(&key_path);
        return Err(e);
    }
    Ok(generated)
}

fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SignError> {
    let mut options = fs::OpenOptions::new();
    // create_new is O_CREAT|O_EXCL: it fails rather than follow or replace anything.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            SignError::KeyExists {
                path: path.to_path_buf(),
            }
        } else {
            SignError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|source| SignError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// The trusted comment of an archive signature: `mission=NAME version=VERSION sha256=CKSUM`.
pub fn archive_trusted_comment(name: &str, version: &str, cksum: &str) -> String {
    format!("mission={name} version={version} sha256={cksum}")
}

/// Signs `data` (prehashed, as minisign does by default) with `trusted_comment`, and returns
/// the whole `.minisig` text. `pk` must be the public half of `sk`; the new signature is
/// checked against it before it is returned.
pub fn sign_bytes(
    sk: &SecretKey,
    pk: &PublicKey,
    data: &[u8],
    trusted_comment: &str,
) -> Result<String, SignError> {
    if trusted_comment.contains(['\n', '\r']) || trusted_comment.trim() != trusted_comment {
        // minisign's format is line-based and readers trim the comment: anything else would
        // make a signature that no verifier accepts.
        return Err(SignError::InvalidTrustedComment {
            comment: trusted_comment.to_string(),
        });
    }
    let mismatch = || SignError::KeyPairMismatch {
        secret_key_id: sk.key_id(),
        public_key_id: pk.key_id(),
    };
    if sk.key_id() != pk.key_id() {
        return Err(mismatch());
    }
    let sig = minisign::sign(
        Some(&pk.inner),
        &sk.inner,
        Cursor::new(data),
        Some(trusted_comment),
        Some(SIGNATURE_UNTRUSTED_COMMENT),
    )
    .map_err(|e| match e.kind() {
        // The crate verifies the fresh signature with `pk`: a failure means another key.
        minisign::ErrorKind::Verify => mismatch(),
        _ => SignError::Minisign(e),
    })?;
    Ok(sig.into_string())
}

/// Verifies a `.minisig` text over `data` with `pk` and returns its trusted comment.
/// Refuses legacy (non-prehashed) signatures, see the module documentation.
pub fn verify_bytes(pk: &PublicKey, sig_text: &str, data: &[u8]) -> Result<String, SignError> {
    let sig_box = parse_signature(sig_text)?;
    check_signer(&sig_box, pk)?;
    minisign::verify(&pk.inner, &sig_box, Cursor::new(data), true, false, false).map_err(|e| {
        SignError::BadSignature {
            detail: e.to_string(),
        }
    })?;
    trusted_comment(&sig_box)
}

/// Checks, before any equation, that a signature was made by `pk`'s key id and is
/// prehashed (legacy signatures are refused, see the module documentation).
pub(crate) fn check_signer(
    sig_box: &minisign::SignatureBox,
    pk: &PublicKey,
) -> Result<(), SignError> {
    let signature_key_id = key_id_hex(sig_box.keynum());
    if signature_key_id != pk.key_id() {
        return Err(SignError::KeyIdMismatch {
            signature_key_id,
            expected_key_id: pk.key_id(),
        });
    }
    if !sig_box.is_prehashed() {
        return Err(SignError::LegacySignature {
            key_id: signature_key_id,
        });
    }
    Ok(())
}

/// The trusted comment of a parsed signature (not yet verified).
pub(crate) fn trusted_comment(sig_box: &minisign::SignatureBox) -> Result<String, SignError> {
    sig_box
        .trusted_comment()
        .map_err(|e| SignError::MalformedSignature {
            reason: format!("unreadable trusted comment: {e}"),
        })
}

/// The key id that made a signature, without verifying anything (to pick the key to check
/// it with among several trusted ones).
pub fn signature_key_id(sig_text: &str) -> Result<String, SignError> {
    Ok(key_id_hex(parse_signature(sig_text)?.keynum()))
}

/// Parses a `.minisig` text, checking the sizes the crate would otherwise trust (it slices
/// a short global signature without checking, which would panic).
fn parse_signature(sig_text: &str) -> Result<minisign::SignatureBox, SignError> {
    Ok(parse_signature_parts(sig_text)?.sig_box)
}

/// A parsed `.minisig`: the crate's view, and the two decoded binary lines.
pub(crate) struct SignatureParts {
    pub(crate) sig_box: minisign::SignatureBox,
    /// Algorithm (2 bytes), key id (8), Ed25519 signature (64).
    pub(crate) signature_line: [u8; SIGNATURE_LINE_BYTES],
    /// The Ed25519 signature over the signature and the trusted comment.
    pub(crate) global_signature: [u8; 64],
}

/// [`parse_signature`], keeping the decoded signature lines.
pub(crate) fn parse_signature_parts(sig_text: &str) -> Result<SignatureParts, SignError> {
    let malformed = |reason: String| SignError::MalformedSignature { reason };
    let sig_box =
        minisign::SignatureBox::from_string(sig_text).map_err(|e| malformed(e.to_string()))?;
    let lines: Vec<&str> = sig_text.lines().map(str::trim).collect();
    let decode = |index: usize, what: &str, len: usize| {
        let decoded = lines
            .get(index)
            .and_then(|l| Base64::decode_to_vec(l, None).ok())
            .ok_or_else(|| malformed(format!("line {} ({what}) is not base64", index + 1)))?;
        if decoded.len() != len {
            return Err(malformed(format!(
                "line {} ({what}) decodes to {} bytes, expected {len}",
                index + 1,
                decoded.len()
            )));
        }
        Ok(decoded)
    };
    let mut signature_line = [0u8; SIGNATURE_LINE_BYTES];
    signature_line.copy_from_slice(&decode(1, "signature", SIGNATURE_LINE_BYTES)?);
    let mut global_signature = [0u8; 64];
    global_signature.copy_from_slice(&decode(3, "global signature", 64)?);
    Ok(SignatureParts {
        sig_box,
        signature_line,
        global_signature,
    })
}

/// Signs a mission archive: computes its SHA-256 and signs it with the trusted comment
/// [`archive_trusted_comment`]. The result is the whole `.minisig` text; `minisign -Vm
/// ARCHIVE -x SIG -p KEY.pub` accepts it.
pub fn sign_archive(
    sk: &SecretKey,
    pk: &PublicKey,
    archive: &[u8],
    name: &str,
    version: &str,
) -> Result<String, SignError> {
    let comment = archive_trusted_comment(name, version, &sha256_hex(archive));
    sign_bytes(sk, pk, archive, &comment)
}

/// Verifies an archive signature: made by `pk`, over these bytes, and with exactly the
/// trusted comment `mission=NAME version=VERSION sha256=<SHA-256 of archive>`.
pub fn verify_archive(
    pk: &PublicKey,
    sig_text: &str,
    archive: &[u8],
    name: &str,
    version: &str,
) -> Result<(), SignError> {
    verify_hashed_archive(pk, sig_text, archive, &sha256_hex(archive), name, version)
}

/// [`verify_archive`] for a caller that has just hashed `archive` itself (an installer
/// checks the index checksum first): `sha256` must be the lowercase hex SHA-256 of
/// `archive`, computed from these very bytes, never a value taken from the index.
pub fn verify_hashed_archive(
    pk: &PublicKey,
    sig_text: &str,
    archive: &[u8],
    sha256: &str,
    name: &str,
    version: &str,
) -> Result<(), SignError> {
    crate::archive_signature::ArchiveSignature::prepare(
        pk, sig_text, archive, sha256, name, version,
    )?
    .verify()
}

/// A fresh unencrypted key pair, parsed back from its files, for the crate's tests.
#[cfg(test)]
pub(crate) fn new_test_keys() -> (SecretKey, PublicKey) {
    let g = generate_keypair(None).unwrap();
    (
        SecretKey::parse(&g.secret_key_text, None).unwrap(),
        PublicKey::parse(&g.public_key_text).unwrap(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// One unencrypted pair shared by the tests (generation is cheap, but parsing it back
    /// also proves our own file format round-trips).
    fn pair() -> &'static (SecretKey, PublicKey) {
        static PAIR: OnceLock<(SecretKey, PublicKey)> = OnceLock::new();
        PAIR.get_or_init(new_test_keys)
    }

    fn other_pair() -> (SecretKey, PublicKey) {
        new_test_keys()
    }

    #[test]
    fn generated_files_have_minisign_layout() {
        let g = generate_keypair(None).unwrap();
        let lines: Vec<&str> = g.public_key_text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            format!("untrusted comment: minisign public key {}", g.key_id)
        );
        assert!(lines[1].starts_with("RW") && lines[1].len() == 56);
        assert_eq!(g.key_id.len(), 16);
        assert!(g
            .key_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert!(g
            .secret_key_text
            .starts_with("untrusted comment: minisign encrypted secret key\nRWQAAEIy"));
        let pk = PublicKey::parse(lines[1]).unwrap();
        assert_eq!(pk.key_id(), g.key_id);
        assert_eq!(pk.to_file_text(), g.public_key_text);
        let sk = SecretKey::parse(&g.secret_key_text, None).unwrap();
        assert_eq!(sk.public_key().unwrap(), pk);
        assert!(!format!("{sk:?}").contains(&g.secret_key_text[60..80]));
    }

    #[test]
    fn encrypted_key_needs_the_right_password() {
        let g = generate_keypair(Some("correct horse")).unwrap();
        // Encrypted keys carry the scrypt algorithm id after "Ed".
        assert!(g
            .secret_key_text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("RWRTY0Iy"));
        let sk = SecretKey::parse(&g.secret_key_text, Some("correct horse")).unwrap();
        assert_eq!(sk.key_id(), g.key_id);
        match SecretKey::parse(&g.secret_key_text, Some("wrong")) {
            Err(SignError::WrongPassword { .. }) => {}
            other => panic!("expected WrongPassword, got {other:?}"),
        }
        let err = SecretKey::parse(&g.secret_key_text, None).unwrap_err();
        assert!(matches!(err, SignError::PasswordRequired { .. }), "{err:?}");
        assert!(err.to_string().contains("no password was given"));
    }

    #[test]
    fn not_a_key_file_is_refused_clearly() {
        for text in ["", "hello\nworld\n", "untrusted comment: x\n!!!notbase64\n"] {
            let err = SecretKey::parse(text, None).unwrap_err();
            assert!(
                matches!(err, SignError::NotASecretKey { .. }),
                "{text:?}: {err:?}"
            );
        }
        // A public key file is not a secret key file.
        let g = generate_keypair(None).unwrap();
        let err = SecretKey::parse(&g.public_key_text, None).unwrap_err();
        assert!(
            err.to_string().contains("not a minisign secret key"),
            "{err}"
        );
        // A flipped byte in an unencrypted key breaks its checksum.
        let damaged = edit_secret(&g.secret_key_text, |raw| raw[100] ^= 1);
        let err = SecretKey::parse(&damaged, None).unwrap_err();
        assert!(matches!(err, SignError::CorruptedKey { .. }), "{err:?}");
    }

    /// Re-encodes the base64 line of a secret key text after `edit` changed its bytes.
    fn edit_secret(text: &str, edit: impl Fn(&mut Vec<u8>)) -> String {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let mut raw = Base64::decode_to_vec(&lines[1], None).unwrap();
        edit(&mut raw);
        lines[1] = <Base64 as ct_codecs::Encoder>::encode_to_string(&raw).unwrap();
        lines.join("\n")
    }

    #[test]
    fn unencrypted_key_without_checksum_loads_like_minisign_0_11() {
        let g = generate_keypair(None).unwrap();
        // minisign 0.11 `-G -W` leaves the checksum zeroed.
        let zeroed = edit_secret(&g.secret_key_text, |raw| {
            let n = raw.len();
            raw[n - 32..].fill(0)
        });
        let sk = SecretKey::parse(&zeroed, None).unwrap();
        assert_eq!(sk.key_id(), g.key_id);
        // Without a checksum, damage to the key material is still caught.
        for at in [70, 120] {
            let damaged = edit_secret(&zeroed, |raw| raw[at] ^= 1);
            let err = SecretKey::parse(&damaged, None).unwrap_err();
            assert!(
                matches!(err, SignError::CorruptedKey { .. }),
                "byte {at}: {err:?}"
            );
        }
    }

    #[test]
    fn unreadable_key_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.key");
        let err = SecretKey::load(&path, None).unwrap_err();
        assert!(matches!(err, SignError::Io { .. }));
        assert!(err.to_string().contains("missing.key"), "{err}");
        let err = PublicKey::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("missing.key"), "{err}");
    }

    #[test]
    fn public_key_parse_refuses_garbage() {
        for text in ["", "RWnope", "untrusted comment: x\n", "abc def"] {
            assert!(
                matches!(PublicKey::parse(text), Err(SignError::NotAPublicKey { .. })),
                "{text:?}"
            );
        }
        // Right length, wrong algorithm: base64 of 42 bytes not starting with "Ed".
        let fake = <Base64 as ct_codecs::Encoder>::encode_to_string([0u8; 42]).unwrap();
        let err = PublicKey::parse(&fake).unwrap_err();
        assert!(err.to_string().contains("RW"), "{err}");
    }

    #[test]
    fn write_keypair_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let g = write_keypair(dir.path(), "node", None).unwrap();
        let key_path = dir.path().join("node.key");
        assert_eq!(fs::read_to_string(&key_path).unwrap(), g.secret_key_text);
        assert_eq!(
            fs::read_to_string(dir.path().join("node.pub")).unwrap(),
            g.public_key_text
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = write_keypair(dir.path(), "node", None).unwrap_err();
        assert!(matches!(err, SignError::KeyExists { .. }));
        assert!(err.to_string().contains("node.key"), "{err}");
        // The first key is untouched.
        assert_eq!(fs::read_to_string(&key_path).unwrap(), g.secret_key_text);
        // A lone public key file also blocks, and nothing is written.
        fs::write(dir.path().join("other.pub"), "x").unwrap();
        let err = write_keypair(dir.path(), "other", None).unwrap_err();
        assert!(err.to_string().contains("other.pub"), "{err}");
        assert!(!dir.path().join("other.key").exists());
    }

    #[test]
    fn archive_round_trip() {
        let (sk, pk) = pair();
        let archive = b"not really a tarball";
        let sig = sign_archive(sk, pk, archive, "fix_it", "1.2.0").unwrap();
        let lines: Vec<&str> = sig.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            "untrusted comment: signature from minisign secret key"
        );
        assert!(lines[1].starts_with("RUS") || lines[1].starts_with("RU"));
        assert_eq!(
            lines[2],
            format!(
                "trusted comment: mission=fix_it version=1.2.0 sha256={}",
                sha256_hex(archive)
            )
        );
        verify_archive(pk, &sig, archive, "fix_it", "1.2.0").unwrap();
    }

    #[test]
    fn altered_archive_is_a_bad_signature() {
        let (sk, pk) = pair();
        let sig = sign_archive(sk, pk, b"original", "m", "1.0.0").unwrap();
        let err = verify_archive(pk, &sig, b"0riginal", "m", "1.0.0").unwrap_err();
        assert!(matches!(err, SignError::BadSignature { .. }), "{err:?}");
    }

    #[test]
    fn other_name_or_version_is_a_comment_mismatch() {
        let (sk, pk) = pair();
        let sig = sign_archive(sk, pk, b"data", "m", "1.0.0").unwrap();
        match verify_archive(pk, &sig, b"data", "m", "1.0.1") {
            Err(SignError::TrustedCommentMismatch { expected, found }) => {
                assert!(expected.contains("version=1.0.1"));
                assert!(found.contains("version=1.0.0"));
            }
            other => panic!("expected TrustedCommentMismatch, got {other:?}"),
        }
        let err = verify_archive(pk, &sig, b"data", "n", "1.0.0").unwrap_err();
        assert!(matches!(err, SignError::TrustedCommentMismatch { .. }));
    }

    #[test]
    fn edited_trusted_comment_is_a_bad_signature() {
        let (sk, pk) = pair();
        let sig = sign_bytes(sk, pk, b"data", "seq=1").unwrap();
        let forged = sig.replace("trusted comment: seq=1", "trusted comment: seq=2");
        let err = verify_bytes(pk, &forged, b"data").unwrap_err();
        assert!(matches!(err, SignError::BadSignature { .. }), "{err:?}");
        assert_eq!(verify_bytes(pk, &sig, b"data").unwrap(), "seq=1");
    }

    #[test]
    fn signature_by_another_key_names_both_ids() {
        let (sk, pk) = pair();
        let (_, other_pk) = other_pair();
        let sig = sign_bytes(sk, pk, b"data", "x").unwrap();
        match verify_bytes(&other_pk, &sig, b"data") {
            Err(SignError::KeyIdMismatch {
                signature_key_id,
                expected_key_id,
            }) => {
                assert_eq!(signature_key_id, pk.key_id());
                assert_eq!(expected_key_id, other_pk.key_id());
            }
            other => panic!("expected KeyIdMismatch, got {other:?}"),
        }
        assert_eq!(signature_key_id(&sig).unwrap(), pk.key_id());
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let (sk, pk) = pair();
        let sig = sign_bytes(sk, pk, b"data", "x").unwrap();
        let no_prefix = sig.replacen("untrusted comment: ", "", 1);
        let truncated: String = sig.lines().take(2).collect::<Vec<_>>().join("\n");
        let bad_b64 = {
            let mut l: Vec<&str> = sig.lines().collect();
            l[1] = "@@@@";
            l.join("\n")
        };
        // A short global signature (4th line) or signature line: refused, never a panic.
        let short_global = {
            let mut l: Vec<&str> = sig.lines().collect();
            l[3] = "AAAA";
            l.join("\n")
        };
        let short_sig = {
            let mut l: Vec<String> = sig.lines().map(String::from).collect();
            l[1] = l[1][..l[1].len() - 8].to_string() + "AAAA";
            l.join("\n")
        };
        for text in [
            "",
            "garbage",
            &no_prefix,
            &truncated,
            &bad_b64,
            &short_global,
            &short_sig,
        ] {
            let err = verify_bytes(pk, text, b"data").unwrap_err();
            assert!(
                matches!(err, SignError::MalformedSignature { .. }),
                "{text:?}: {err:?}"
            );
        }
    }

    #[test]
    fn legacy_signature_is_refused() {
        let (sk, pk) = pair();
        let sig = sign_bytes(sk, pk, b"data", "x").unwrap();
        // Re-label the algorithm as legacy "Ed": the parser now reports a non-prehashed
        // signature, which we refuse before any cryptography.
        let mut lines: Vec<String> = sig.lines().map(String::from).collect();
        let mut raw = Base64::decode_to_vec(&lines[1], None).unwrap();
        raw[1] = b'd';
        lines[1] = <Base64 as ct_codecs::Encoder>::encode_to_string(&raw).unwrap();
        let err = verify_bytes(pk, &lines.join("\n"), b"data").unwrap_err();
        assert!(matches!(err, SignError::LegacySignature { .. }), "{err:?}");
    }

    #[test]
    fn signing_checks_its_inputs() {
        let (sk, pk) = pair();
        let (_, other_pk) = other_pair();
        let err = sign_bytes(sk, &other_pk, b"d", "x").unwrap_err();
        assert!(matches!(err, SignError::KeyPairMismatch { .. }), "{err:?}");
        for bad in ["two\nlines", "cr\r", " leading", "trailing "] {
            let err = sign_bytes(sk, pk, b"d", bad).unwrap_err();
            assert!(
                matches!(err, SignError::InvalidTrustedComment { .. }),
                "{bad:?}"
            );
        }
    }
}
