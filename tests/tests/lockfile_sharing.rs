//! `mission` finds the project's `missions.lock` from any folder below it, as cargo finds
//! Cargo.toml. A real `mission-node serve` process, missions published to it over HTTP, and
//! the real `mission` binary.

use std::path::{Path, PathBuf};

use mission_e2e::{
    author, package_with_deps, publish_body_signed, publish_raw, text, versions, Author, Client,
    Node,
};

const NODE_TOML: &str = "name = \"testnode\"\nseed_library = false\n";

/// A node with one publishing user, alice; returns the node and her token.
fn start_node() -> (Node, String) {
    let (node, mut tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish")]);
    (node, tokens.remove(0))
}

fn publish(
    node: &Node,
    token: &str,
    who: &Author,
    name: &str,
    version: &str,
    deps: &[(&str, &str)],
) {
    let archive = package_with_deps(name, version, deps, "A test mission.");
    let body = publish_body_signed(who, who, name, version, archive);
    publish_raw(node, Some(token), body).expect(200);
}

/// `top` 1.0.0 needs `base` (any 1.x or later), which has 1.0.0.
fn top_and_base(node: &Node, token: &str, alice: &Author) {
    publish(node, token, alice, "base", "1.0.0", &[]);
    publish(node, token, alice, "top", "1.0.0", &[("base", ">=1")]);
}

fn stderr_of(out: &std::process::Output) -> String {
    text(&out.stderr)
}

fn text_of(out: &std::process::Output) -> String {
    text(&out.stdout)
}

// ---- 3. the project is found from a subfolder ----

/// The canonical form of `path`, as the current folder reads.
fn real(path: &Path) -> PathBuf {
    path.canonicalize().unwrap()
}

#[test]
fn every_command_finds_the_project_from_a_subfolder() {
    let (node, token) = start_node();
    let alice = author();
    top_and_base(&node, &token, &alice);
    publish(&node, &token, &alice, "extra", "1.0.0", &[]);
    let user = Client::new(&node.url);
    user.ok(&["install", "top"]);
    let sub = user.project.join("sub").join("deeper");
    std::fs::create_dir_all(&sub).unwrap();
    let note = format!(
        "note: using the project at {} (missions.lock)",
        real(&user.project).display()
    );

    let check = |args: &[&str]| -> String {
        let out = user.run_in(&sub, args);
        let err = stderr_of(&out);
        assert!(out.status.success(), "{args:?}: {err}");
        assert_eq!(err.matches(&note).count(), 1, "{args:?}: said once: {err}");
        text_of(&out)
    };
    let out = check(&["install", "extra"]);
    assert!(
        out.contains(
            &real(&user.project)
                .join("missions.lock")
                .display()
                .to_string()
        ),
        "{out}"
    );
    assert_eq!(
        versions(&user.lock()),
        ["base 1.0.0", "extra 1.0.0", "top 1.0.0"]
    );
    assert!(user.project.join("missions/extra/mission.yaml").is_file());
    let listed = check(&["list"]);
    assert!(listed.contains("extra 1.0.0"), "{listed}");
    publish(&node, &token, &alice, "base", "1.1.0", &[]);
    let out = check(&["update", "base"]);
    assert!(out.contains("Updated base 1.0.0 -> 1.1.0"), "{out}");
    check(&["remove", "extra"]);
    assert_eq!(versions(&user.lock()), ["base 1.1.0", "top 1.0.0"]);
    check(&["install", "--locked"]);
    // Nothing was made in the subfolders.
    for folder in [&sub, &user.project.join("sub")] {
        let entries: Vec<_> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            entries.is_empty() || entries == ["deeper"],
            "{}: {entries:?}",
            folder.display()
        );
    }

    // In the project folder itself, nothing is said.
    let out = user.run(&["list"]);
    assert!(
        !stderr_of(&out).contains("note: using"),
        "{}",
        stderr_of(&out)
    );

    // A folder with no missions.lock above it is a project of its own, as before.
    let alone = Client::new(&node.url);
    let out = alone.run(&["install", "extra"]);
    assert!(out.status.success() && !stderr_of(&out).contains("note: using"));
    assert!(alone.project.join("missions.lock").is_file());
}

/// The search stops below a folder that belongs to someone else (checked only where the
/// test may give a folder away: as root).
#[cfg(unix)]
#[test]
fn the_search_stops_at_a_folder_of_another_owner() {
    use std::os::unix::fs::MetadataExt;
    let (node, token) = start_node();
    let alice = author();
    publish(&node, &token, &alice, "extra", "1.0.0", &[]);
    let user = Client::new(&node.url);
    user.ok(&["install", "extra"]);
    let sub = user.project.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let me = std::fs::metadata(&sub).unwrap().uid();
    let other = if me == 65534 { 65533 } else { 65534 };
    if std::os::unix::fs::chown(&user.project, Some(other), None).is_err() {
        eprintln!("SKIPPED: giving a folder to another user needs root");
        return;
    }
    let out = user.run_in(&sub, &["list"]);
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        text_of(&out).contains("No missions installed here"),
        "{}",
        text_of(&out)
    );
    assert!(
        err.contains(&format!(
            "not using {}: that folder belongs to another user",
            real(&user.project).join("missions.lock").display()
        )),
        "{err}"
    );
    std::os::unix::fs::chown(&user.project, Some(me), None).unwrap();
}
