//! The git index end to end: a real bare repository, read back by the real `git` program.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};

use mission_index::entry::IndexEntry;
use mission_index::repo::{IndexConfig, IndexError, IndexRepo, NodeInfo, YankOutcome, MAIN_REF};
use mission_index::resolve::IndexReader;

fn config() -> IndexConfig {
    serde_json::from_value(serde_json::json!({
        "dl": "https://node.example/api/v1/missions/{name}/{version}/download",
        "api": "https://node.example",
        "auth-required": false,
        "node": {"name": "alpha", "key": "RWQtestkey"},
    }))
    .unwrap()
}

fn entry(name: &str, vers: &str) -> IndexEntry {
    serde_json::from_value(serde_json::json!({
        "name": name,
        "vers": vers,
        "cksum": "ab".repeat(32),
        "sig": "untrusted comment: test\nRW...\n",
        "key": "RWQauthor",
        "pubtime": "2026-11-25T14:00:00Z",
        "origin": "alpha",
    }))
    .unwrap()
}

fn new_index(dir: &Path) -> IndexRepo {
    IndexRepo::init(
        dir.join("index.git"),
        &config(),
        "Alpha Node",
        "alpha@node.example",
    )
    .unwrap()
}

/// Runs the real git and returns its stdout; fails the test on a non-zero exit.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn clone(repo: &IndexRepo, into: &Path) {
    let out = Command::new("git")
        .arg("clone")
        .arg("--quiet")
        .arg(repo.path())
        .arg(into)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn init_writes_a_config_a_real_git_clone_reads() {
    let dir = tempfile::tempdir().unwrap();
    let index = new_index(dir.path());
    assert!(index.path().join("HEAD").is_file(), "a bare repository");
    assert_eq!(index.config().unwrap(), config());

    let work = dir.path().join("clone");
    clone(&index, &work);
    let text = std::fs::read_to_string(work.join("config.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["auth-required"], false);
    assert_eq!(parsed["node"]["name"], "alpha");
    assert_eq!(
        git(&work, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "main"
    );
    assert_eq!(
        git(&work, &["rev-parse", "HEAD"]).trim(),
        index.head().unwrap().unwrap().to_string()
    );
    let log = git(&work, &["log", "--format=%an <%ae>|%s"]);
    assert_eq!(
        log.trim(),
        "Alpha Node <alpha@node.example>|Create the index of node alpha"
    );
    // The repository is sound by git's own checker.
    git(index.path(), &["fsck", "--strict"]);
}

#[test]
fn init_refuses_a_folder_that_is_not_an_index_and_reopens_one_that_is() {
    let dir = tempfile::tempdir().unwrap();
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let err = IndexRepo::init(&busy, &config(), "n", "e@x").unwrap_err();
    assert!(matches!(err, IndexError::NotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("busy"), "{err}");
    assert_eq!(
        std::fs::read_to_string(busy.join("notes.txt")).unwrap(),
        "mine"
    );

    let index = new_index(dir.path());
    index.append(&entry("keepme", "1.0.0")).unwrap();
    // Same config: init is idempotent and keeps what is there.
    let again = IndexRepo::init(index.path(), &config(), "n", "e@x").unwrap();
    assert_eq!(again.read("keepme").unwrap().unwrap().len(), 1);
    // A different config is not silently ignored.
    let mut other = config();
    other.node = NodeInfo {
        name: "beta".into(),
        key: "RWQother".into(),
        extra: Default::default(),
    };
    let err = IndexRepo::init(index.path(), &other, "n", "e@x").unwrap_err();
    assert!(matches!(err, IndexError::ConfigMismatch { .. }), "{err}");

    let err = IndexRepo::open(&busy).unwrap_err();
    assert!(matches!(err, IndexError::NotAnIndex { .. }), "{err}");
}

#[test]
fn config_keeps_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.extra
        .insert("future".into(), serde_json::json!({"x": [1, 2]}));
    cfg.node.extra.insert("region".into(), "eu".into());
    let index = IndexRepo::init(dir.path().join("i"), &cfg, "n", "e@x").unwrap();
    let back = IndexRepo::open(index.path()).unwrap().config().unwrap();
    assert_eq!(back, cfg);
    assert_eq!(back.extra["future"]["x"][1], 2);
}

#[test]
fn append_read_yank_unyank_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let index = new_index(dir.path());
    let first = index.append(&entry("Fix_Build", "1.0.0")).unwrap();
    let second = index.append(&entry("Fix_Build", "1.1.0")).unwrap();
    assert_ne!(first, second);
    assert_eq!(index.head().unwrap(), Some(second));

    // Case-insensitive lookup, spelling kept in the entries.
    let got = index.read("fix_build").unwrap().unwrap();
    assert_eq!(
        got,
        vec![entry("Fix_Build", "1.0.0"), entry("Fix_Build", "1.1.0")]
    );
    assert_eq!(index.entries("FIX_BUILD").unwrap().unwrap().len(), 2);
    assert_eq!(index.read("nothing_here").unwrap(), None);
    assert_eq!(index.read_file_raw("nothing_here").unwrap(), None);

    let raw = String::from_utf8(index.read_file_raw("Fix_Build").unwrap().unwrap()).unwrap();
    assert_eq!(
        raw,
        format!(
            "{}\n{}\n",
            entry("Fix_Build", "1.0.0").to_line(),
            entry("Fix_Build", "1.1.0").to_line()
        )
    );

    let yank = index.set_yanked("Fix_Build", "1.0.0", true).unwrap();
    let YankOutcome::Committed(yank_id) = yank else {
        panic!("expected a commit, got {yank:?}");
    };
    let got = index.read("fix_build").unwrap().unwrap();
    assert!(got[0].yanked && !got[1].yanked);
    // Yanking again changes nothing and commits nothing.
    assert_eq!(
        index.set_yanked("Fix_Build", "1.0.0", true).unwrap(),
        YankOutcome::Unchanged
    );
    assert_eq!(index.head().unwrap(), Some(yank_id));
    assert!(matches!(
        index.set_yanked("fix_build", "1.0.0", false).unwrap(),
        YankOutcome::Committed(_)
    ));
    assert!(!index.read("fix_build").unwrap().unwrap()[0].yanked);
    // Only the yanked field moved: the file is back to its bytes before the yank.
    assert_eq!(
        String::from_utf8(index.read_file_raw("Fix_Build").unwrap().unwrap()).unwrap(),
        raw
    );

    let err = index.set_yanked("Fix_Build", "9.9.9", true).unwrap_err();
    assert!(matches!(err, IndexError::UnknownVersion { .. }), "{err}");
    assert!(err.to_string().contains("9.9.9") && err.to_string().contains("Fix_Build"));
    let err = index.set_yanked("ghost", "1.0.0", true).unwrap_err();
    assert!(matches!(err, IndexError::UnknownName { .. }), "{err}");
    let err = index.set_yanked("Fix_Build", "one", true).unwrap_err();
    assert!(matches!(err, IndexError::Version { .. }), "{err}");

    // The real git sees the path, the content and one commit per change.
    let work = dir.path().join("clone");
    clone(&index, &work);
    assert_eq!(
        std::fs::read_to_string(work.join("fi/x_/fix_build")).unwrap(),
        raw
    );
    let log = git(&work, &["log", "--format=%s"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "Unyank Fix_Build 1.0.0",
            "Yank Fix_Build 1.0.0",
            "Publish Fix_Build 1.1.0",
            "Publish Fix_Build 1.0.0",
            "Create the index of node alpha"
        ]
    );
    git(index.path(), &["fsck", "--strict"]);
}

#[test]
fn short_names_use_the_short_layout() {
    let dir = tempfile::tempdir().unwrap();
    let index = new_index(dir.path());
    for name in ["a", "Ab", "xyz"] {
        index.append(&entry(name, "0.1.0")).unwrap();
    }
    let work = dir.path().join("clone");
    clone(&index, &work);
    for path in ["1/a", "2/ab", "3/x/xyz"] {
        assert!(work.join(path).is_file(), "{path}");
    }
    assert_eq!(index.read("AB").unwrap().unwrap()[0].name, "Ab");
}

/// Rewrites one file directly with the real git, as a newer node would have written it.
fn write_with_git(index: &IndexRepo, dir: &Path, path: &str, body: &str) {
    let work = dir.join("edit");
    if !work.exists() {
        clone(index, &work);
    } else {
        git(&work, &["pull", "--quiet", "--ff-only"]);
    }
    let file = work.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, body).unwrap();
    git(&work, &["add", "-A"]);
    git(
        &work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@x",
            "commit",
            "-q",
            "-m",
            "newer node",
        ],
    );
    git(&work, &["push", "--quiet", "origin", "main"]);
}

#[test]
fn unknown_fields_survive_a_yank_and_newer_schema_lines_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let index = new_index(dir.path());
    index.append(&entry("future_proof", "1.0.0")).unwrap();
    let known = entry("future_proof", "1.0.0").to_line();
    let with_extra = known.replacen('{', "{\"zeta\":{\"deep\":[1,2]},", 1);
    let newer = r#"{"v":2,"name":"future_proof","vers":"2.0.0","shape":"unknown to v1"}"#;
    let body = format!("{with_extra}\n{newer}\n");
    write_with_git(&index, dir.path(), "fu/tu/future_proof", &body);

    // v2 line skipped, v1 line read with its unknown field kept.
    let got = index.read("future_proof").unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].vers, "1.0.0");
    assert_eq!(got[0].extra["zeta"]["deep"][1], 2);

    // Yank rewrites only that field: unknown field, its position and the v2 line stay.
    index.set_yanked("future_proof", "1.0.0", true).unwrap();
    let raw = String::from_utf8(index.read_file_raw("future_proof").unwrap().unwrap()).unwrap();
    let expected_first = with_extra.replace("\"yanked\":false", "\"yanked\":true");
    assert_eq!(raw, format!("{expected_first}\n{newer}\n"));

    // A version that exists only in a newer-schema line still exists.
    let err = index.append(&entry("future_proof", "2.0.0")).unwrap_err();
    assert!(matches!(err, IndexError::VersionExists { .. }), "{err}");
    // ... and this software leaves that line alone.
    let err = index.set_yanked("future_proof", "2.0.0", true).unwrap_err();
    assert!(matches!(err, IndexError::NewerSchema { v: 2, .. }), "{err}");
}

#[test]
fn a_corrupt_line_names_the_file_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let index = new_index(dir.path());
    index.append(&entry("broken", "1.0.0")).unwrap();
    let good = entry("broken", "1.0.0").to_line();
    write_with_git(
        &index,
        dir.path(),
        "br/ok/broken",
        &format!("{good}\n{{not json\n"),
    );
    for err in [
        index.read("broken").unwrap_err(),
        index.append(&entry("broken", "1.1.0")).unwrap_err(),
        index.set_yanked("broken", "1.1.0", true).unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, IndexError::Entry { .. }), "{text}");
        assert!(
            text.contains("br/ok/broken") && text.contains("line 2"),
            "{text}"
        );
    }
}

#[test]
fn duplicate_versions_are_refused_build_metadata_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let index = new_index(dir.path());
    index.append(&entry("dup_check", "1.0.0")).unwrap();
    let head = index.head().unwrap();
    for again in ["1.0.0", "1.0.0+build.7"] {
        let err = index.append(&entry("dup_check", again)).unwrap_err();
        assert!(matches!(err, IndexError::VersionExists { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("dup_check") && text.contains(again), "{text}");
    }
    assert_eq!(index.head().unwrap(), head, "a refusal commits nothing");
    // A pre-release is a different version.
    index.append(&entry("dup_check", "1.0.1-rc.1")).unwrap();
    let err = index.append(&entry("dup_check", "not-semver")).unwrap_err();
    assert!(matches!(err, IndexError::Version { .. }), "{err}");
    assert_eq!(index.read("dup_check").unwrap().unwrap().len(), 2);
}

#[test]
fn case_and_dash_underscore_collisions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = new_index(dir.path());
    index.append(&entry("fix-build", "1.0.0")).unwrap();
    let head = index.head().unwrap();

    // Same file, other spelling.
    let err = index.append(&entry("Fix-Build", "2.0.0")).unwrap_err();
    assert!(matches!(err, IndexError::NameSpelling { .. }), "{err}");
    assert!(err.to_string().contains("`fix-build`"), "{err}");
    // Different file, same collision key.
    for other in ["fix_build", "Fix_Build", "FIX_build"] {
        let err = index.append(&entry(other, "2.0.0")).unwrap_err();
        assert!(
            matches!(err, IndexError::NameCollision { .. }),
            "{other}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains(other) && text.contains("fix-build"), "{text}");
    }
    assert_eq!(index.head().unwrap(), head);
    assert_eq!(index.read("fix_build").unwrap(), None);
    // Names that merely look alike are fine, and the owner can keep publishing.
    index.append(&entry("fixbuild", "1.0.0")).unwrap();
    index.append(&entry("fix-build", "1.1.0")).unwrap();
    // Bad names never reach a path.
    let err = index.append(&entry("../escape", "1.0.0")).unwrap_err();
    assert!(matches!(err, IndexError::Layout(_)), "{err}");
    assert!(index.read("a/b").is_err());
}

#[test]
fn list_names_walks_the_layout_only() {
    let dir = tempfile::tempdir().unwrap();
    let index = new_index(dir.path());
    assert!(index.list_names().unwrap().is_empty());
    for name in [
        "Zeta_Tool",
        "a",
        "ab",
        "abc",
        "alpha_mission",
        "alpha-mission2",
    ] {
        index.append(&entry(name, "1.0.0")).unwrap();
    }
    index.append(&entry("ab", "1.0.1")).unwrap();
    index.put_certification("ab", "{\"cert\":1}").unwrap();
    index
        .commit_files(
            &[("keys/rotation.json", Some(b"{}"))],
            "Add a key rotation statement",
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        index.list_names().unwrap(),
        [
            "a",
            "ab",
            "abc",
            "alpha-mission2",
            "alpha_mission",
            "zeta_tool"
        ]
    );
}

#[test]
fn certifications_are_appended_and_read_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let index = new_index(dir.path());
    index.append(&entry("certified", "1.0.0")).unwrap();
    assert!(index.read_certifications("certified").unwrap().is_empty());
    let one = r#"{"name":"certified","vers":"1.0.0","level":"verified","sig":"x"}"#;
    let two = r#"{"name":"certified","vers":"1.0.0","level":"professional","sig":"y"}"#;
    assert!(index.put_certification("certified", one).unwrap().is_some());
    assert!(index.put_certification("Certified", two).unwrap().is_some());
    // Importing the same line again is a no-op.
    let head = index.head().unwrap();
    assert_eq!(index.put_certification("certified", one).unwrap(), None);
    assert_eq!(index.head().unwrap(), head);
    assert_eq!(index.read_certifications("CERTIFIED").unwrap(), [one, two]);

    for bad in ["", "two\nlines"] {
        let err = index.put_certification("certified", bad).unwrap_err();
        assert!(matches!(err, IndexError::BadCertification { .. }), "{err}");
    }
    let err = index.put_certification("uncertified", one).unwrap_err();
    assert!(matches!(err, IndexError::UnknownName { .. }), "{err}");

    let work = dir.path().join("clone");
    clone(&index, &work);
    assert_eq!(
        std::fs::read_to_string(work.join("certs/ce/rt/certified")).unwrap(),
        format!("{one}\n{two}\n")
    );
}

#[test]
fn commit_files_writes_and_deletes_and_refuses_escaping_paths() {
    let dir = tempfile::tempdir().unwrap();
    let index = new_index(dir.path());
    let id = index
        .commit_files(&[("keys/a/stmt.json", Some(b"one"))], "Add statement")
        .unwrap();
    assert!(id.is_some());
    assert_eq!(
        index
            .commit_files(&[("keys/a/stmt.json", Some(b"one"))], "Same again")
            .unwrap(),
        None,
        "no empty commits"
    );
    index
        .commit_files(&[("keys/a/stmt.json", None)], "Remove statement")
        .unwrap()
        .unwrap();
    let work = dir.path().join("clone");
    clone(&index, &work);
    assert!(!work.join("keys").exists(), "empty folders disappear");
    for bad in ["../out", "/abs", ".git/hooks/x", "a//b"] {
        let err = index.commit_files(&[(bad, Some(b"x"))], "bad").unwrap_err();
        assert!(matches!(err, IndexError::BadPath { .. }), "{bad}: {err}");
    }
}

#[test]
fn a_writer_on_a_stale_head_cannot_lose_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let first = new_index(dir.path());
    let second = IndexRepo::open(first.path()).unwrap();
    let base = second.head().unwrap().unwrap();

    // The first handle moves the branch...
    let published = first.append(&entry("racer_one", "1.0.0")).unwrap();
    // ...so the second, still building on `base`, is refused by the compare-and-swap.
    let err = second
        .commit_files_on(base, &[("keys/x.json", Some(b"{}"))], "stale")
        .unwrap_err();
    assert!(matches!(err, IndexError::HeadMoved { .. }), "{err}");
    assert!(err.to_string().contains(&published.to_string()), "{err}");
    assert_eq!(second.head().unwrap(), Some(published));
    // append re-reads the head, so it lands on top of the first writer's commit.
    second.append(&entry("racer_two", "1.0.0")).unwrap();
    assert!(second.read("racer_one").unwrap().is_some());
}

#[test]
fn concurrent_writers_both_land_on_a_linear_history() {
    const PER_WRITER: usize = 15;
    let dir = tempfile::tempdir().unwrap();
    let path = new_index(dir.path()).path().to_path_buf();
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = ["left", "right"]
        .into_iter()
        .map(|side| {
            let path = path.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let index = IndexRepo::open(&path).unwrap();
                barrier.wait();
                for i in 0..PER_WRITER {
                    // Both sides also add versions to one shared name, so they touch the
                    // same file as well as different ones.
                    index
                        .append(&entry(&format!("{side}_{i}"), "1.0.0"))
                        .unwrap();
                    index
                        .append(&entry("shared_name", &format!("{i}.0.0-{side}")))
                        .unwrap();
                }
                index.conflicts_retried()
            })
        })
        .collect();
    let retries: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    eprintln!("compare-and-swap conflicts retried: {retries}");

    let index = IndexRepo::open(&path).unwrap();
    assert_eq!(
        index.read("shared_name").unwrap().unwrap().len(),
        2 * PER_WRITER
    );
    assert_eq!(index.list_names().unwrap().len(), 2 * PER_WRITER + 1);
    // Linear: every commit has one parent (but the root), and none was lost.
    let merges = git(&path, &["rev-list", "--min-parents=2", MAIN_REF]);
    assert!(merges.is_empty(), "{merges}");
    let count = git(&path, &["rev-list", "--count", MAIN_REF]);
    assert_eq!(count.trim(), (4 * PER_WRITER + 1).to_string());
    git(&path, &["fsck", "--strict"]);
}
