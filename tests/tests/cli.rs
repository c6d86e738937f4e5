//! The first `mission` commands, as a user runs them: validate, new, keygen, package.

use std::fs;
use std::path::Path;

use mission_e2e::{mission, require_program, run, workspace};
use sha2::{Digest, Sha256};

const PLAIN_MISSION: &str = "version: 1.0\nname: hello\nsteps:\n  - id: say\n    name: Say hello\n    step_type: command\n    parameters: { command: echo, args: [hi] }\n";

#[test]
fn validate_prints_one_line_per_input_and_fails_when_any_is_invalid() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    fs::write(&good, PLAIN_MISSION).unwrap();
    let bad = dir.path().join("bad.yaml");
    // The second step has no `name`.
    fs::write(
        &bad,
        "version: '1.0'\nname: x\nsteps:\n  - id: a\n    name: A\n    step_type: noop\n    parameters: {}\n  - id: b\n    step_type: noop\n    parameters: {}\n",
    )
    .unwrap();

    let ran = run(mission(home.path()).arg("validate").arg(&good));
    assert!(ran.success, "{ran:?}");
    assert_eq!(ran.stdout, format!("{}: ok\n", good.display()));

    let ran = run(mission(home.path()).arg("validate").arg(&good).arg(&bad));
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", ran.stdout);
    assert_eq!(lines[0], format!("{}: ok", good.display()));
    let prefix = format!("{}:", bad.display());
    assert!(lines[1].starts_with(&prefix), "{}", lines[1]);
    assert!(lines[1].contains(": error: "), "{}", lines[1]);
    assert!(lines[1].contains("steps[1].name"), "{}", lines[1]);
}

#[test]
fn validate_reads_json_and_package_folders_and_names_a_missing_file() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("m.json");
    fs::write(
        &json,
        r#"{"version":"1.0","name":"j","steps":[{"id":"a","name":"A","step_type":"noop","parameters":{}}]}"#,
    )
    .unwrap();
    let ran = run(mission(home.path()).arg("validate").arg(&json));
    assert!(ran.success, "{ran:?}");

    let missing = dir.path().join("nope.yaml");
    let ran = run(mission(home.path()).arg("validate").arg(&missing));
    assert!(!ran.success);
    assert!(ran.stdout.contains("nope.yaml"), "{ran:?}");

    let empty_folder = dir.path().join("empty");
    fs::create_dir(&empty_folder).unwrap();
    let ran = run(mission(home.path()).arg("validate").arg(&empty_folder));
    assert!(!ran.success);
    assert!(ran.stdout.contains("mission.yaml"), "{ran:?}");
}

#[test]
fn new_makes_a_valid_git_initialised_package_and_refuses_bad_names() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ran = run(mission(home.path())
        .current_dir(dir.path())
        .args(["new", "fresh_mission"]));
    assert!(ran.success, "{ran:?}");
    let pkg = dir.path().join("fresh_mission");
    assert!(pkg.join("mission.yaml").is_file());
    assert!(pkg.join("README.md").is_file());
    assert!(pkg.join(".git").is_dir(), "mission new initialises git");
    let text = fs::read_to_string(pkg.join("mission.yaml")).unwrap();
    assert!(
        text.contains("name: fresh_mission") && !text.contains("{{"),
        "{text}"
    );

    let ran = run(mission(home.path()).arg("validate").arg(&pkg));
    assert!(ran.success, "{ran:?}");

    let ran = run(mission(home.path())
        .current_dir(dir.path())
        .args(["new", "fresh_mission"]));
    assert!(!ran.success);
    assert!(ran.stderr.contains("already exists"), "{ran:?}");

    for bad in ["9lives", "bad name", "con"] {
        let ran = run(mission(home.path())
            .current_dir(dir.path())
            .args(["new", bad]));
        assert!(!ran.success, "{bad}");
        assert!(ran.stderr.contains(bad), "{bad}: {ran:?}");
        assert!(!dir.path().join(bad).exists());
    }
}

#[test]
fn keygen_writes_minisign_files_and_never_overwrites() {
    let home = tempfile::tempdir().unwrap();
    let ran = run(mission(home.path()).args(["keygen", "--unencrypted"]));
    assert!(ran.success, "{ran:?}");
    let keys = home.path().join("keys");
    let public = fs::read_to_string(keys.join("default.pub")).unwrap();
    assert!(
        public.starts_with("untrusted comment: minisign public key "),
        "{public}"
    );
    assert!(public.lines().nth(1).unwrap().starts_with("RW"), "{public}");
    let secret = fs::read_to_string(keys.join("default.key")).unwrap();
    assert!(secret.starts_with("untrusted comment: "), "{secret}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(keys.join("default.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let ran = run(mission(home.path()).args(["keygen", "--unencrypted"]));
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("default.key") || ran.stderr.contains("default.pub"),
        "{ran:?}"
    );
    assert_eq!(
        fs::read_to_string(keys.join("default.pub")).unwrap(),
        public
    );

    // An encrypted key needs a password: with no terminal and no variable, a clear refusal.
    let ran = run(mission(home.path()).args(["keygen", "--name", "enc"]));
    assert!(!ran.success);
    assert!(ran.stderr.contains("MISSION_KEY_PASSWORD"), "{ran:?}");
    assert!(!keys.join("enc.key").exists());
}

/// A package folder made by `mission new`, with a key to sign it.
fn new_package(home: &Path, parent: &Path, name: &str) -> std::path::PathBuf {
    let ran = run(mission(home)
        .current_dir(parent)
        .args(["new", name, "--vcs", "none"]));
    assert!(ran.success, "{ran:?}");
    parent.join(name)
}

#[test]
fn package_writes_a_signed_archive_that_minisign_accepts() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = new_package(home.path(), dir.path(), "signed_one");
    assert!(run(mission(home.path()).args(["keygen", "--unencrypted"])).success);

    let out = dir.path().join("dist");
    let ran = run(mission(home.path())
        .arg("package")
        .arg(&pkg)
        .arg("--out")
        .arg(&out));
    assert!(ran.success, "{ran:?}");
    let archive = out.join("signed_one-0.1.0.mission");
    let sig = out.join("signed_one-0.1.0.mission.minisig");
    let bytes = fs::read(&archive).unwrap();
    let cksum = hex::encode(Sha256::digest(&bytes));
    assert_eq!(
        ran.stdout.trim(),
        cksum,
        "package prints the archive's SHA-256"
    );
    let sig_text = fs::read_to_string(&sig).unwrap();
    assert!(
        sig_text.contains(&format!(
            "trusted comment: mission=signed_one version=0.1.0 sha256={cksum}"
        )),
        "{sig_text}"
    );

    if require_program("minisign", "minisign") {
        let ran = run(std::process::Command::new("minisign")
            .arg("-Vm")
            .arg(&archive)
            .arg("-p")
            .arg(home.path().join("keys/default.pub")));
        assert!(ran.success, "minisign refused our signature: {ran:?}");
        assert!(ran.stdout.contains("mission=signed_one"), "{ran:?}");
    }
}

#[test]
fn package_with_an_encrypted_key_needs_the_right_password() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = new_package(home.path(), dir.path(), "secret_one");
    let ran = run(mission(home.path())
        .args(["keygen"])
        .env("MISSION_KEY_PASSWORD", "correct horse"));
    assert!(ran.success, "{ran:?}");
    let out = dir.path().join("dist");

    let ran = run(mission(home.path())
        .arg("package")
        .arg(&pkg)
        .arg("--out")
        .arg(&out)
        .env("MISSION_KEY_PASSWORD", "wrong"));
    assert!(!ran.success);
    assert!(ran.stderr.to_lowercase().contains("password"), "{ran:?}");
    assert!(!out.join("secret_one-0.1.0.mission").exists());

    let ran = run(mission(home.path())
        .arg("package")
        .arg(&pkg)
        .arg("--out")
        .arg(&out)
        .env("MISSION_KEY_PASSWORD", "correct horse"));
    assert!(ran.success, "{ran:?}");
    assert!(out.join("secret_one-0.1.0.mission").is_file());
}

#[cfg(unix)]
#[test]
fn two_checkouts_with_different_mtimes_and_modes_give_identical_archives() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(run(mission(home.path()).args(["keygen", "--unencrypted"])).success);
    let first = new_package(home.path(), dir.path(), "same_tree");
    fs::create_dir(first.join("scripts")).unwrap();
    fs::write(first.join("scripts/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(
        first.join("scripts/run.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    // The second checkout: files written in another order, other modes, old mtimes.
    let second = dir.path().join("checkout2");
    fs::create_dir_all(second.join("scripts")).unwrap();
    fs::write(second.join("scripts/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(
        second.join("scripts/run.sh"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    for file in ["README.md", "mission.yaml", ".gitignore"] {
        fs::copy(first.join(file), second.join(file)).unwrap();
        fs::set_permissions(second.join(file), fs::Permissions::from_mode(0o600)).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        fs::File::options()
            .write(true)
            .open(second.join(file))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    let cksum = |pkg: &Path, out: &str| {
        let ran = run(mission(home.path())
            .arg("package")
            .arg(pkg)
            .arg("--out")
            .arg(dir.path().join(out)));
        assert!(ran.success, "{ran:?}");
        (
            ran.stdout.trim().to_owned(),
            fs::read(dir.path().join(out).join("same_tree-0.1.0.mission")).unwrap(),
        )
    };
    let (a, bytes_a) = cksum(&first, "out1");
    let (b, bytes_b) = cksum(&second, "out2");
    assert_eq!(a, b);
    assert_eq!(bytes_a, bytes_b);
}

#[test]
fn package_refuses_a_package_whose_permissions_miss_a_command() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(run(mission(home.path()).args(["keygen", "--unencrypted"])).success);
    let pkg = new_package(home.path(), dir.path(), "sneaky");
    let text = fs::read_to_string(pkg.join("mission.yaml")).unwrap();
    fs::write(
        pkg.join("mission.yaml"),
        text.replace("command: echo", "command: curl"),
    )
    .unwrap();
    let ran = run(mission(home.path())
        .arg("package")
        .arg(&pkg)
        .arg("--out")
        .arg(dir.path().join("o")));
    assert!(!ran.success);
    assert!(ran.stderr.contains("curl"), "{ran:?}");
    assert!(
        ran.stderr.contains("steps[1].parameters.command"),
        "{ran:?}"
    );
    assert!(!dir.path().join("o").exists());
}

#[test]
fn every_library_package_validates_and_packages() {
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    assert!(run(mission(home.path()).args(["keygen", "--unencrypted"])).success);
    let library = workspace().join("library");
    let mut count = 0;
    for entry in fs::read_dir(&library).unwrap() {
        let pkg = entry.unwrap().path();
        if !pkg.is_dir() {
            continue;
        }
        count += 1;
        let ran = run(mission(home.path()).arg("validate").arg(&pkg));
        assert!(ran.success, "{}: {ran:?}", pkg.display());
        let ran = run(mission(home.path())
            .arg("package")
            .arg(&pkg)
            .arg("--out")
            .arg(out.path()));
        assert!(ran.success, "{}: {ran:?}", pkg.display());
    }
    assert!(count >= 12, "the library has {count} packages");
}

#[test]
fn package_refuses_an_output_folder_inside_the_package_and_a_file_path() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(run(mission(home.path()).args(["keygen", "--unencrypted"])).success);
    let pkg = new_package(home.path(), dir.path(), "nested_out");

    let ran = run(mission(home.path())
        .arg("package")
        .arg(&pkg)
        .arg("--out")
        .arg(pkg.join("dist")));
    assert!(!ran.success);
    assert!(ran.stderr.contains("inside the package folder"), "{ran:?}");
    assert!(!pkg.join("dist").exists());

    // Under target/ is fine (the default), and packing twice gives the same archive:
    // the first archive is not packed into the second.
    let first = run(mission(home.path()).arg("package").arg(&pkg));
    assert!(first.success, "{first:?}");
    let second = run(mission(home.path()).arg("package").arg(&pkg));
    assert_eq!(first.stdout, second.stdout);
    let archive = pkg.join("target/mission/nested_out-0.1.0.mission");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&archive).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "archives are public files");
    }

    let ran = run(mission(home.path())
        .arg("package")
        .arg(pkg.join("mission.yaml")));
    assert!(!ran.success);
    assert!(ran.stderr.contains("is a file"), "{ran:?}");
    assert!(!ran.stderr.contains("error: error"), "{ran:?}");
}

/// A reader that stops early (`mission ... | head -1`) ends `mission` quietly, as it ends
/// any command-line tool: no panic, no "failed printing to stdout".
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    fs::write(&good, PLAIN_MISSION).unwrap();
    // Far more output than a pipe holds, so writes go on after the reader has gone.
    let mut child = mission(home.path())
        .arg("validate")
        .args(std::iter::repeat_n(&good, 20_000))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.ends_with(": ok\n"), "{first}");
    // The reader is dropped here, closing the pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("failed printing"),
        "{stderr}"
    );
    // Ended by SIGPIPE (13 on Linux and the BSDs), as `yes | head -1` ends `yes`.
    assert_eq!(out.status.signal(), Some(13), "{:?}", out.status);
}
