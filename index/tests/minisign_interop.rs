//! Our keys and signatures against the real `minisign` program, in both directions.
//!
//! These tests need the `minisign` command (Debian/Ubuntu: `apt-get install minisign`).
//! When it is missing they FAIL under CI (`CI` set; CI installs it), so a skipped interop
//! test can never hide the incompatibility it exists to catch. On a developer machine
//! without it they say loudly that they are skipped, so `cargo test` works with only Rust
//! and git installed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mission_index::signing::{
    self, archive_trusted_comment, sign_archive, verify_archive, write_keypair, PublicKey,
    SecretKey, SignError,
};
use sha2::{Digest, Sha256};

const ARCHIVE: &[u8] = b"pretend this is a canonical .mission gzip'd tar\x00\x01\x02";

/// Whether the tests can run: `true` when minisign is installed; when it is not, a failure
/// under CI and a loud skip elsewhere.
fn minisign_available() -> bool {
    if find_minisign().is_some() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        minisign();
    }
    eprintln!("SKIPPED: the `minisign` program is not installed (apt-get install minisign); CI runs these tests");
    false
}

fn find_minisign() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("minisign"))
        .chain([PathBuf::from("/usr/bin/minisign")])
        .find(|path| path.is_file())
}

/// The minisign program: on PATH, else /usr/bin/minisign; a clear failure if absent.
fn minisign() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("minisign"))
        .chain([PathBuf::from("/usr/bin/minisign")]);
    for path in candidates {
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "the `minisign` program is not installed, and these interoperability tests need it: \
         install it (Debian/Ubuntu: `apt-get install minisign`; CI installs it)"
    );
}

/// Runs minisign with `stdin` fed in (closed afterwards; never a terminal).
fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(minisign())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start minisign");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn cksum(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[test]
fn minisign_verifies_our_archive_signature_and_public_key() {
    if !minisign_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let generated = write_keypair(dir.path(), "author", None).unwrap();
    let sk = SecretKey::load(&dir.path().join("author.key"), None).unwrap();
    let pk = PublicKey::from_file(&dir.path().join("author.pub")).unwrap();
    let file = dir.path().join("pkg.mission");
    let sig_path = dir.path().join("pkg.mission.minisig");
    std::fs::write(&file, ARCHIVE).unwrap();
    std::fs::write(
        &sig_path,
        sign_archive(&sk, &pk, ARCHIVE, "fix_it", "1.2.0").unwrap(),
    )
    .unwrap();
    let pub_path = dir.path().join("author.pub");

    // Our .pub file, and -H: minisign must see a prehashed signature.
    let out = run(
        &[
            "-Vm",
            s(&file),
            "-x",
            s(&sig_path),
            "-p",
            s(&pub_path),
            "-H",
        ],
        "",
    );
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected_comment = archive_trusted_comment("fix_it", "1.2.0", &cksum(ARCHIVE));
    assert!(
        stdout.contains(&format!("Trusted comment: {expected_comment}")),
        "{}",
        show(&out)
    );

    // The bare RW... key (the index `key` field) given with -P.
    let out = run(
        &["-Vm", s(&file), "-x", s(&sig_path), "-P", &pk.to_base64()],
        "",
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(pk.key_id(), generated.key_id);

    // minisign signs with our (unencrypted) secret key file; we verify.
    let by_minisign = dir.path().join("by-minisign.minisig");
    let comment = archive_trusted_comment("fix_it", "1.2.0", &cksum(ARCHIVE));
    let key_path = dir.path().join("author.key");
    let out = run(
        &[
            "-S",
            "-s",
            s(&key_path),
            "-m",
            s(&file),
            "-x",
            s(&by_minisign),
            "-t",
            &comment,
        ],
        "",
    );
    assert!(out.status.success(), "{}", show(&out));
    let sig = std::fs::read_to_string(&by_minisign).unwrap();
    verify_archive(&pk, &sig, ARCHIVE, "fix_it", "1.2.0").unwrap();

    // One flipped byte in the archive: minisign refuses.
    let mut tampered = ARCHIVE.to_vec();
    tampered[3] ^= 0x20;
    std::fs::write(&file, &tampered).unwrap();
    let out = run(
        &["-Vm", s(&file), "-x", s(&sig_path), "-p", s(&pub_path)],
        "",
    );
    assert!(
        !out.status.success(),
        "tampered file accepted: {}",
        show(&out)
    );
}

#[test]
fn we_use_minisign_keys_and_verify_its_signatures() {
    if !minisign_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.pub");
    let k = dir.path().join("m.key");
    let out = run(&["-G", "-W", "-p", s(&p), "-s", s(&k)], "");
    assert!(out.status.success(), "{}", show(&out));

    let pk = PublicKey::from_file(&p).unwrap();
    let sk = SecretKey::load(&k, None).unwrap();
    // The id we compute is the one minisign printed in the .pub comment. minisign prints it
    // with `%llX`, without leading zeros (a key id 0A0E... shows as A0E...); ours always has
    // 16 digits, so compare the numbers.
    let pub_text = std::fs::read_to_string(&p).unwrap();
    let printed = pub_text
        .lines()
        .next()
        .unwrap()
        .strip_prefix("untrusted comment: minisign public key ")
        .unwrap();
    assert_eq!(
        u64::from_str_radix(printed, 16).unwrap(),
        u64::from_str_radix(&pk.key_id(), 16).unwrap(),
        "minisign printed {printed}, we computed {}",
        pk.key_id()
    );
    assert_eq!(sk.key_id(), pk.key_id());
    assert_eq!(sk.public_key().unwrap(), pk);

    let file = dir.path().join("pkg.mission");
    std::fs::write(&file, ARCHIVE).unwrap();
    let comment = archive_trusted_comment("fix_it", "1.2.0", &cksum(ARCHIVE));

    // minisign signs, we verify.
    let sig_path = dir.path().join("by-minisign.minisig");
    let out = run(
        &[
            "-S",
            "-s",
            s(&k),
            "-m",
            s(&file),
            "-x",
            s(&sig_path),
            "-t",
            &comment,
        ],
        "",
    );
    assert!(out.status.success(), "{}", show(&out));
    let sig = std::fs::read_to_string(&sig_path).unwrap();
    verify_archive(&pk, &sig, ARCHIVE, "fix_it", "1.2.0").unwrap();
    // ...and still refuse it for another version or altered bytes.
    assert!(matches!(
        verify_archive(&pk, &sig, ARCHIVE, "fix_it", "1.2.1"),
        Err(SignError::TrustedCommentMismatch { .. })
    ));
    assert!(matches!(
        verify_archive(&pk, &sig, b"other bytes", "fix_it", "1.2.0"),
        Err(SignError::BadSignature { .. })
    ));

    // minisign's default trusted comment (timestamp, file name) is not an archive comment.
    let plain = dir.path().join("plain.minisig");
    let out = run(&["-S", "-s", s(&k), "-m", s(&file), "-x", s(&plain)], "");
    assert!(out.status.success(), "{}", show(&out));
    let err = verify_archive(
        &pk,
        &std::fs::read_to_string(&plain).unwrap(),
        ARCHIVE,
        "fix_it",
        "1.2.0",
    )
    .unwrap_err();
    match err {
        SignError::TrustedCommentMismatch { found, .. } => {
            assert!(found.starts_with("timestamp:"), "{found}")
        }
        other => panic!("expected TrustedCommentMismatch, got {other:?}"),
    }

    // Legacy (-l, not prehashed) signatures are refused by policy.
    let legacy = dir.path().join("legacy.minisig");
    let out = run(
        &[
            "-S",
            "-l",
            "-s",
            s(&k),
            "-m",
            s(&file),
            "-x",
            s(&legacy),
            "-t",
            &comment,
        ],
        "",
    );
    assert!(out.status.success(), "{}", show(&out));
    let err = verify_archive(
        &pk,
        &std::fs::read_to_string(&legacy).unwrap(),
        ARCHIVE,
        "fix_it",
        "1.2.0",
    )
    .unwrap_err();
    assert!(matches!(err, SignError::LegacySignature { .. }), "{err:?}");

    // We sign with minisign's own secret key file; minisign verifies.
    let ours = dir.path().join("by-us.minisig");
    std::fs::write(
        &ours,
        sign_archive(&sk, &pk, ARCHIVE, "fix_it", "1.2.0").unwrap(),
    )
    .unwrap();
    let out = run(&["-Vm", s(&file), "-x", s(&ours), "-p", s(&p)], "");
    assert!(out.status.success(), "{}", show(&out));

    // A signature by this minisign key checked against another key names both ids.
    let other = signing::generate_keypair(None).unwrap();
    let other_pk = PublicKey::parse(&other.public_key_text).unwrap();
    match verify_archive(&other_pk, &sig, ARCHIVE, "fix_it", "1.2.0") {
        Err(SignError::KeyIdMismatch {
            signature_key_id,
            expected_key_id,
        }) => {
            assert_eq!(signature_key_id, pk.key_id());
            assert_eq!(expected_key_id, other.key_id);
        }
        other => panic!("expected KeyIdMismatch, got {other:?}"),
    }
}

/// minisign reads the password from standard input when it is not a terminal, so our
/// encrypted key files are tested with the real program without a pseudo-terminal.
#[test]
fn minisign_signs_with_our_encrypted_key() {
    if !minisign_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_keypair(dir.path(), "enc", Some("s3cret pass")).unwrap();
    let k = dir.path().join("enc.key");
    let p = dir.path().join("enc.pub");
    let pk = PublicKey::from_file(&p).unwrap();
    let file = dir.path().join("pkg.mission");
    std::fs::write(&file, ARCHIVE).unwrap();
    let comment = archive_trusted_comment("enc_test", "0.1.0", &cksum(ARCHIVE));
    let sig_path = dir.path().join("sig.minisig");

    let out = run(
        &[
            "-S",
            "-s",
            s(&k),
            "-m",
            s(&file),
            "-x",
            s(&sig_path),
            "-t",
            &comment,
        ],
        "s3cret pass\n",
    );
    assert!(out.status.success(), "{}", show(&out));
    let sig = std::fs::read_to_string(&sig_path).unwrap();
    verify_archive(&pk, &sig, ARCHIVE, "enc_test", "0.1.0").unwrap();

    // The wrong password: minisign refuses, and so do we.
    let wrong = dir.path().join("wrong.minisig");
    let out = run(
        &[
            "-S",
            "-s",
            s(&k),
            "-m",
            s(&file),
            "-x",
            s(&wrong),
            "-t",
            &comment,
        ],
        "not it\n",
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(matches!(
        SecretKey::load(&k, Some("not it")),
        Err(SignError::WrongPassword { .. })
    ));
}

#[test]
fn we_load_minisign_encrypted_keys() {
    if !minisign_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.pub");
    let k = dir.path().join("m.key");
    // Password, then its confirmation, on stdin.
    let out = run(&["-G", "-p", s(&p), "-s", s(&k)], "pw one\npw one\n");
    assert!(out.status.success(), "{}", show(&out));

    let pk = PublicKey::from_file(&p).unwrap();
    let sk = SecretKey::load(&k, Some("pw one")).unwrap();
    assert_eq!(sk.public_key().unwrap(), pk);
    let err = SecretKey::load(&k, None).unwrap_err();
    assert!(matches!(err, SignError::PasswordRequired { .. }), "{err:?}");
    assert!(err.to_string().contains("m.key"), "{err}");
    let err = SecretKey::load(&k, Some("pw two")).unwrap_err();
    assert!(matches!(err, SignError::WrongPassword { .. }), "{err:?}");

    // What we sign with it, minisign accepts.
    let file = dir.path().join("pkg.mission");
    std::fs::write(&file, ARCHIVE).unwrap();
    let sig_path = dir.path().join("sig.minisig");
    std::fs::write(
        &sig_path,
        sign_archive(&sk, &pk, ARCHIVE, "m", "3.0.0").unwrap(),
    )
    .unwrap();
    let out = run(&["-Vm", s(&file), "-x", s(&sig_path), "-p", s(&p)], "");
    assert!(out.status.success(), "{}", show(&out));
}
