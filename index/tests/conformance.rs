//! The registry's mission validator must reach the verdict of the reference RustChain
//! v0.1.0 (`rustchain mission validate FILE`) on every real mission file in
//! `../shared/conformance/rustchain/` (see its README), and for each refused file print an
//! error that names the file and the field or the line.
//!
//! The folder is found through `MISSION_CONFORMANCE_DIR`, else next to the workspace at
//! `CARGO_MANIFEST_DIR/../../shared/conformance/rustchain`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mission_index::mission::load_mission_file;

fn conformance_dir() -> PathBuf {
    let dir = match std::env::var_os("MISSION_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/rustchain")
        }
    };
    assert!(
        dir.join("verdicts.tsv").is_file(),
        "conformance data not found: {} has no verdicts.tsv; set MISSION_CONFORMANCE_DIR to \
         the folder holding the RustChain mission files and verdicts.tsv",
        dir.display()
    );
    dir
}

/// `file -> valid?` from verdicts.tsv (comment lines start with `#`).
fn expected_verdicts(dir: &std::path::Path) -> BTreeMap<String, bool> {
    let text = std::fs::read_to_string(dir.join("verdicts.tsv")).unwrap();
    let mut verdicts = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, verdict) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("verdicts.tsv:{}: no tab in {line:?}", n + 1));
        let valid = match verdict.trim() {
            "valid" => true,
            "invalid" => false,
            other => panic!("verdicts.tsv:{}: unknown verdict {other:?}", n + 1),
        };
        assert!(
            verdicts.insert(file.to_owned(), valid).is_none(),
            "verdicts.tsv:{}: {file} listed twice",
            n + 1
        );
    }
    verdicts
}

#[test]
fn every_rustchain_verdict_agrees() {
    let dir = conformance_dir();
    let expected = expected_verdicts(&dir);

    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "verdicts.tsv")
        .collect();
    files.sort();

    let mut problems = Vec::new();
    let mut table = Vec::new();
    for name in &files {
        let path = dir.join(name);
        let result = load_mission_file(&path);
        let ours = result.is_ok();
        let detail = match &result {
            Ok(m) => format!("{} steps", m.steps.len()),
            Err(e) => e.to_string(),
        };
        table.push(format!(
            "{name}\t{}\t{detail}",
            if ours { "valid" } else { "invalid" }
        ));
        match expected.get(name) {
            None => problems.push(format!("{name}: not listed in verdicts.tsv")),
            Some(&valid) if valid != ours => problems.push(format!(
                "{name}: RustChain says {}, we say {}: {detail}",
                if valid { "valid" } else { "invalid" },
                if ours { "valid" } else { "invalid" },
            )),
            Some(_) => {}
        }
        if let Err(e) = &result {
            let printed = e.to_string();
            if !printed.starts_with(&path.display().to_string()) {
                problems.push(format!(
                    "{name}: the error does not name the file: {printed}"
                ));
            }
            if e.field.is_none() && e.line.is_none() {
                problems.push(format!(
                    "{name}: the error names neither a field nor a line: {printed}"
                ));
            }
        }
    }
    for name in expected.keys() {
        if !files.contains(name) {
            problems.push(format!("{name}: in verdicts.tsv but not in the folder"));
        }
    }
    println!("{}", table.join("\n"));
    assert!(
        problems.is_empty(),
        "{} disagreement(s) with RustChain v0.1.0 over {} files:\n{}",
        problems.len(),
        files.len(),
        problems.join("\n")
    );
    assert_eq!(
        files.len(),
        48,
        "the conformance folder should hold 48 mission files"
    );
}
