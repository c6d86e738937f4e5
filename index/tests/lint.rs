//! The permission lint over the real RustChain missions of the conformance set
//! (`../shared/conformance/rustchain`, or `$MISSION_CONFORMANCE_DIR`): for every mission RustChain
//! accepts, the permissions `required_permissions` computes must leave nothing undeclared
//! that could be declared, and the findings must match what the files do.

use std::path::PathBuf;

use mission_index::lint::{lint_permissions, required_permissions, FindingKind};
use mission_index::manifest::{Network, Permissions};
use mission_index::mission::Mission;

fn conformance_dir() -> PathBuf {
    let dir = std::env::var_os("MISSION_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/rustchain")
        });
    assert!(
        dir.join("verdicts.tsv").is_file(),
        "conformance data not found at {}; set MISSION_CONFORMANCE_DIR",
        dir.display()
    );
    dir
}

fn load(path: &std::path::Path) -> Mission {
    mission_index::mission::load_mission_file(path).unwrap()
}

fn valid_missions() -> Vec<(String, Mission)> {
    let dir = conformance_dir();
    let verdicts = std::fs::read_to_string(dir.join("verdicts.tsv")).unwrap();
    verdicts
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, verdict)| *verdict == "valid")
        .map(|(file, _)| (file.to_owned(), load(&dir.join(file))))
        .collect()
}

#[test]
fn required_permissions_cover_every_valid_mission() {
    let missions = valid_missions();
    assert!(
        missions.len() >= 30,
        "only {} valid missions read",
        missions.len()
    );
    for (file, mission) in &missions {
        let required = required_permissions(mission);
        for finding in lint_permissions(mission, &required) {
            // A program started by path can never be declared; everything else can.
            assert!(
                finding.kind == FindingKind::Unverifiable
                    || finding.message.contains("by its path"),
                "{file}: {finding}"
            );
        }
    }
}

#[test]
fn findings_match_what_the_files_do() {
    let missions = valid_missions();
    let get = |name: &str| {
        &missions
            .iter()
            .find(|(f, _)| f == name)
            .unwrap_or_else(|| panic!("{name} not among the valid missions"))
            .1
    };

    // Plain commands, started directly.
    let hello = get("hello_world_fixed.yaml");
    assert_eq!(required_permissions(hello).commands, ["date", "echo"]);
    let findings = lint_permissions(hello, &Permissions::default());
    assert!(!findings.is_empty());
    assert!(findings
        .iter()
        .all(|f| f.kind == FindingKind::Undeclared && f.field.ends_with(".parameters.command")));

    // Scripts through bash: the shell is the program, and the lint says it cannot see more.
    let shimmy = get("shimmy_practical_fixes.yaml");
    let required = required_permissions(shimmy);
    assert_eq!(required.commands, ["bash"]);
    assert!(lint_permissions(shimmy, &required)
        .iter()
        .all(|f| f.kind == FindingKind::Unverifiable && f.message.contains("shell `bash`")));

    // HTTP to a literal host.
    let http = get("test_http_fixed.yaml");
    assert_eq!(
        required_permissions(http).network,
        Network::Hosts(vec!["httpbin.org".into()])
    );

    // LLM and agent steps.
    assert!(required_permissions(get("llm_demo.yaml")).llm);
    assert!(required_permissions(get("agent_demo.yaml")).llm);

    // The toolchain, git and process steps of the step-type tour.
    let tour = required_permissions(get("test_step_types_validation.yaml"));
    for program in ["cargo", "git", "ping"] {
        assert!(
            tour.commands.iter().any(|c| c == program),
            "{program} in {tour:?}"
        );
    }
}
