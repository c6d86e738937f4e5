//! `missions.lock` as something a project shares and a user keeps: it names each
//! mission's registry by where it is (its index URL), not by a name in one user's
//! config.toml, so a teammate can install from it; it keeps the requirement a mission was
//! asked for with, whatever the next command leaves out; and `mission` finds it from any
//! folder below it, as cargo finds Cargo.toml. A real `mission-node serve` process, missions
//! published to it over HTTP, and the real `mission` binary.

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

// ---- 1. the registry is recorded by its location ----

/// The lock's text in `project`.
fn lock_text(project: &Path) -> String {
    std::fs::read_to_string(project.join("missions.lock")).unwrap()
}

/// The `registry = "..."` values of a lock's text.
fn registries(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("registry = "))
        .map(|v| v.trim_matches('"').to_owned())
        .collect()
}

/// A user whose default registry is `alias`, at the node's sparse index.
fn user_with_alias(alias: &str, url: &str) -> Client {
    Client::with_config(&format!(
        "[registry]\ndefault = \"{alias}\"\n\n[registries.{alias}]\nindex = \"sparse+{url}/index/\"\n"
    ))
}

/// A user with no config.toml at all, and `lock` (text) as the project's missions.lock.
fn teammate_with(lock: &str) -> Client {
    let mate = Client::with_config("");
    std::fs::write(mate.project.join("missions.lock"), lock).unwrap();
    mate
}

#[test]
fn the_lock_names_the_registry_by_its_index_url_so_a_teammate_can_use_it() {
    let (mut node, token) = start_node();
    let alice = author();
    top_and_base(&node, &token, &alice);
    let sparse = format!("sparse+{}/index/", node.url);

    // Installed through the alias `local`, the lock names the index URL.
    let user = user_with_alias("local", &node.url);
    user.ok(&["install", "top"]);
    let lock = lock_text(&user.project);
    assert_eq!(
        registries(&lock),
        [sparse.clone(), sparse.clone()],
        "{lock}"
    );

    // A teammate with a fresh MISSION_HOME installs exactly that with --locked...
    let mate = teammate_with(&lock);
    mate.ok(&["install", "--locked"]);
    assert_eq!(versions(&mate.lock()), ["base 1.0.0", "top 1.0.0"]);
    assert_eq!(lock_text(&mate.project), lock);
    // ... and so does one naming the node by its base URL, or by another alias.
    let by_url = teammate_with(&lock);
    by_url.ok(&["install", "--locked", "--registry", &node.url]);
    let other = user_with_alias("other-name", &node.url);
    std::fs::write(other.project.join("missions.lock"), &lock).unwrap();
    other.ok(&["install", "--locked"]);
    // A plain install under another alias leaves the lock as it is.
    other.ok(&["install"]);
    assert_eq!(lock_text(&other.project), lock);

    // Two environment names for one node write the same lock.
    let mut env_user = Client::with_config("");
    let env = |name: &str| {
        vec![
            (format!("MISSION_REGISTRIES_{name}_INDEX"), sparse.clone()),
            ("MISSION_REGISTRY_DEFAULT".to_owned(), name.to_lowercase()),
        ]
    };
    env_user.env = env("FIRST");
    env_user.ok(&["install", "top"]);
    let first = lock_text(&env_user.project);
    assert_eq!(first, lock);
    env_user.env = env("SECOND");
    env_user.ok(&["install"]);
    env_user.ok(&["install", "--locked"]);
    assert_eq!(lock_text(&env_user.project), first);

    // An older lock naming the alias: still read where the alias exists, equal to the URL
    // it stands for (--locked leaves the file alone); the next install writes the URL.
    let old = lock.replace(&format!("registry = \"{sparse}\""), "registry = \"local\"");
    assert_ne!(old, lock);
    std::fs::write(user.project.join("missions.lock"), &old).unwrap();
    user.ok(&["install", "--locked"]);
    assert_eq!(
        lock_text(&user.project),
        old,
        "--locked leaves the file alone"
    );
    user.ok(&["install"]);
    assert_eq!(lock_text(&user.project), lock, "the URL is written");

    // Where the alias is unknown: said, with what to do.
    let stranger = teammate_with(&old);
    let err = stranger.fails(&["install", "--locked"]);
    assert!(
        err.contains("the registry `local` that missions.lock names")
            && err.contains("no registry named `local`")
            && err.contains("--registry"),
        "{err}"
    );
    // Given another registry, --locked says which field would change, from what to what.
    let err = stranger.fails(&["install", "--locked", "--registry", &node.url]);
    assert!(
        err.contains(&format!(
            "`base` 1.0.0 would change its registry from `local` to `{sparse}`"
        )),
        "{err}"
    );
    assert!(!err.contains("checksum, key"), "{err}");
    assert_eq!(lock_text(&stranger.project), old);

    // A lock naming a URL nobody configured, whose node is down: said, naming the URL.
    node.stop();
    let offline_mate = teammate_with(&lock);
    let err = offline_mate.fails(&["install", "--locked"]);
    assert!(
        err.contains(&format!("the registry `{sparse}` that missions.lock names"))
            && err.contains("did not answer"),
        "{err}"
    );
    assert!(!offline_mate.project.join("missions").exists());
}

/// A lock naming a URL uses the registry configured for that URL, with its token: here a
/// private node, named only in the environment.
#[test]
fn a_project_installs_from_the_registry_its_lock_names_whatever_the_default() {
    // The company node has `top` and `base`; the public node has another `base`, by
    // someone else.
    let (company, token) = start_node();
    let alice = author();
    top_and_base(&company, &token, &alice);
    let (public, public_token) = start_node();
    publish(&public, &public_token, &author(), "base", "1.0.0", &[]);

    let user = user_with_alias("company", &company.url);
    user.ok(&["install", "top"]);
    let lock = lock_text(&user.project);

    // A teammate whose default is the public node installs the project from the company
    // node, and is told so.
    let mate = user_with_alias("public", &public.url);
    std::fs::write(mate.project.join("missions.lock"), &lock).unwrap();
    let out = mate.run(&["install"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(&format!(
            "note: installing from sparse+{}/index/ (the registry missions.lock names), not from the default public; pass --registry to move this project",
            company.url
        )),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(lock_text(&mate.project), lock, "the lock is unchanged");
    assert_eq!(mate.tree(), user.tree());
    // A new name goes to the project's registry too.
    publish(&company, &token, &alice, "extra", "1.0.0", &[]);
    mate.ok(&["install", "extra"]);
    assert_eq!(
        registries(&lock_text(&mate.project)),
        vec![format!("sparse+{}/index/", company.url); 3]
    );

    // Moving the project takes --registry; the public node has no `top`, and nothing
    // changes.
    let err = mate.fails(&["install", "--registry", "public"]);
    assert!(err.contains("no mission named"), "{err}");
    assert_eq!(
        registries(&lock_text(&mate.project)),
        vec![format!("sparse+{}/index/", company.url); 3]
    );
}

#[test]
fn a_lock_url_uses_the_configured_registry_of_that_url_with_its_token() {
    let (node, tokens) = Node::start_with_users(
        Some("name = \"private\"\nseed_library = false\nauth_required = true\n"),
        &[("alice", "publish"), ("bob", "execute")],
    );
    let alice = author();
    top_and_base(&node, &tokens[0], &alice);
    let sparse = format!("sparse+{}/index/", node.url);

    let mut user = user_with_alias("corp", &node.url);
    user.env = vec![("MISSION_REGISTRIES_CORP_TOKEN".into(), tokens[1].clone())];
    user.ok(&["install", "top"]);
    let lock = lock_text(&user.project);
    assert_eq!(
        registries(&lock),
        [sparse.clone(), sparse.clone()],
        "{lock}"
    );

    // No default registry; the node is named `work` only in the environment, with a token.
    let mut mate = teammate_with(&lock);
    mate.env = vec![("MISSION_REGISTRIES_WORK_INDEX".into(), node.url.clone())];
    let err = mate.fails(&["install", "--locked"]);
    assert!(
        err.contains("HTTP 401") && err.contains("MISSION_REGISTRIES_WORK_TOKEN"),
        "{err}"
    );
    mate.env
        .push(("MISSION_REGISTRIES_WORK_TOKEN".into(), tokens[1].clone()));
    mate.ok(&["install", "--locked"]);
    assert_eq!(versions(&mate.lock()), ["base 1.0.0", "top 1.0.0"]);
    assert_eq!(lock_text(&mate.project), lock);
}

// ---- 2. what was asked for is kept ----

fn roots_line(text: &str) -> String {
    let start = text.find("roots = [").expect("a roots list");
    let end = text[start..].find(']').unwrap();
    text[start..start + end + 1].to_owned()
}

#[test]
fn a_bare_name_keeps_the_requirement_it_was_asked_with() {
    let (node, token) = start_node();
    let alice = author();
    top_and_base(&node, &token, &alice);
    let user = Client::new(&node.url);
    user.ok(&["install", "top"]);
    publish(&node, &token, &alice, "base", "1.1.0", &[]);
    publish(&node, &token, &alice, "base", "2.0.0", &[]);

    // A dependency now asked for with a requirement: said, never "unchanged".
    let out = user.ok(&["install", "base@>=1,<1.1"]);
    assert!(
        out.contains("Now asking for base@>=1, <1.1 (was only needed by others)"),
        "{out}"
    );
    assert!(!out.contains("unchanged"), "{out}");
    let text = lock_text(&user.project);
    assert!(text.contains("version = 3\n"), "{text}");
    assert!(text.contains("\"base@>=1, <1.1\""), "{text}");

    // The bare name keeps it, and says so.
    let out = user.run(&["install", "base"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains(
            "note: keeping the requirement `>=1, <1.1` missions.lock has for `base`; give `base@*` to drop it"
        ),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(lock_text(&user.project), text, "the lock is as it was");
    assert!(text_of(&out).contains("(2 unchanged)"), "{}", text_of(&out));
    user.ok(&["install", "base", "--locked"]);

    // `update` stays within it.
    publish(&node, &token, &alice, "base", "1.0.1", &[]);
    user.ok(&["update"]);
    assert_eq!(versions(&user.lock()), ["base 1.0.1", "top 1.0.0"]);

    // A new requirement replaces it, and the summary says how the roots changed.
    let out = user.ok(&["install", "base@^2"]);
    assert!(
        out.contains("Now asking for base@^2 (was base@>=1, <1.1)")
            && out.contains("Updated base 1.0.1 -> 2.0.0")
            && !out.contains("unchanged"),
        "{out}"
    );
    // `@*` drops it.
    let out = user.ok(&["install", "base@*"]);
    assert!(out.contains("Now asking for base (was base@^2)"), "{out}");
    assert!(!out.contains("unchanged"), "{out}");
    assert_eq!(
        roots_line(&lock_text(&user.project)),
        "roots = [\n    \"base\",\n    \"top\",\n]"
    );
    assert!(lock_text(&user.project).contains("version = 2\n"));
}

#[test]
fn a_name_given_twice_in_one_command_keeps_its_requirement() {
    let (node, token) = start_node();
    let alice = author();
    for v in ["1.0.0", "1.1.0", "2.0.0"] {
        publish(&node, &token, &alice, "base", v, &[]);
    }
    // The one with a requirement wins, whichever comes first.
    for args in [
        ["install", "base@=1.0.0", "base"],
        ["install", "base", "base@=1.0.0"],
    ] {
        let user = Client::new(&node.url);
        user.ok(&args);
        let lock = user.lock();
        assert_eq!(versions(&lock), ["base 1.0.0"], "{args:?}");
        assert_eq!(
            lock.root_requirement("base").map(ToString::to_string),
            Some("=1.0.0".to_owned()),
            "{args:?}"
        );
    }
    // Two requirements are both kept.
    let user = Client::new(&node.url);
    user.ok(&["install", "base@>=1", "base@<1.1"]);
    assert_eq!(
        user.lock()
            .root_requirement("base")
            .map(ToString::to_string),
        Some(">=1, <1.1".to_owned())
    );
    assert_eq!(versions(&user.lock()), ["base 1.0.0"]);
    // Two that no version can meet together are refused, before anything changes.
    let before = lock_text(&user.project);
    for (args, first, second) in [
        (["install", "base@=1.0.0", "base@^2"], "=1.0.0", "^2"),
        (["install", "base@<1", "base@>=1.1"], "<1", ">=1.1"),
    ] {
        let err = user.fails(&args);
        assert!(
            err.contains(&format!(
                "`base` is given twice with requirements no version meets together: `{first}` and `{second}`"
            )),
            "{args:?}: {err}"
        );
        assert_eq!(lock_text(&user.project), before);
    }
    let fresh = Client::new(&node.url);
    fresh.fails(&["install", "base@=1.0.0", "base@=1.1.0"]);
    assert!(!fresh.project.join("missions.lock").exists());
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
    // `run NAME` finds the mission where install put it (the work folder is elsewhere, so
    // that the subfolders stay empty).
    let work = tempfile::tempdir().unwrap();
    check(&["run", "extra", "--workdir", work.path().to_str().unwrap()]);
    let greeting = std::fs::read_to_string(work.path().join("hello.txt")).unwrap();
    assert!(greeting.contains("hello from extra 1.0.0"), "{greeting}");
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
