//! What `mission` says, and prints for scripts, when something is off: versions and
//! requirements given to `info`, empty names, `--registry` values and default registries
//! that name nothing, a node refusing the token, errors under `--json`, what `install
//! --json` did to each mission, and `--registry` on `list` and `remove`. Real `mission`
//! and `mission-node` processes, missions published over HTTP with real keys.

use mission_e2e::{
    agent, author, package_with_deps as package, publish_body_signed, publish_raw, text, Author,
    Client, Node,
};

const NODE_TOML: &str = "name = \"testnode\"\nseed_library = false\n";

/// Publishes `name` `version` (no dependencies) signed by `author`; the node must accept it.
fn publish(node: &Node, token: &str, author: &Author, name: &str, version: &str) {
    let archive = package(
        name,
        version,
        &[],
        &format!("{name}, for the message tests"),
    );
    let body = publish_body_signed(author, author, name, version, archive);
    publish_raw(node, Some(token), body).expect(200);
}

/// Yanks `name` `version`; the node must accept it.
fn yank(node: &Node, token: &str, name: &str, version: &str) {
    let url = node.url(&format!("/api/v1/missions/{name}/{version}/yank"));
    let answer = agent()
        .delete(url)
        .header("Authorization", format!("Bearer {token}"))
        .call();
    assert_eq!(answer.unwrap().status(), 200, "yanking {name} {version}");
}

/// `info NAME@VERSION` of a version that does not exist lists the versions highest first,
/// yanked ones marked; `info NAME@REQ` shows the highest version matching REQ (a yanked
/// one only when nothing else matches) and says which requirement chose it.
#[test]
fn info_takes_a_version_or_a_requirement() {
    let (node, tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish,yank")]);
    let alice = author();
    // Published out of order, as a maintenance release of 1.x after 2.0.0 would be.
    for version in ["1.0.0", "1.1.0", "2.0.0", "1.2.0"] {
        publish(&node, &tokens[0], &alice, "zz_base", version);
    }
    yank(&node, &tokens[0], "zz_base", "1.2.0");
    yank(&node, &tokens[0], "zz_base", "1.0.0");
    let user = Client::new(&node.url);
    let listed = "2.0.0, 1.2.0 (yanked), 1.1.0, 1.0.0 (yanked)";

    let err = user.fails(&["info", "zz_base@9.9.9"]);
    assert!(
        err.contains(&format!("`zz_base` has no version 9.9.9; it has: {listed}")),
        "{err}"
    );

    // The highest match that is not yanked: 1.1.0, not the yanked 1.2.0.
    let out = user.ok(&["info", "zz_base@^1"]);
    assert_eq!(
        out.lines().next(),
        Some("zz_base 1.1.0 (the highest version matching ^1)"),
        "{out}"
    );
    assert!(out.contains(&format!("versions: {listed}")), "{out}");
    // Only a yanked version matches: it is shown, marked.
    let out = user.ok(&["info", "zz_base@<1.1"]);
    assert_eq!(
        out.lines().next(),
        Some("zz_base 1.0.0 (yanked; the only versions matching <1.1 are yanked)"),
        "{out}"
    );
    // An exact version is shown as it is, yanked or not.
    let out = user.ok(&["info", "zz_base@1.2.0"]);
    assert_eq!(out.lines().next(), Some("zz_base 1.2.0 (yanked)"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&user.ok(&["info", "zz_base@~1.1", "--json"])).unwrap();
    assert_eq!(json["version"]["vers"], "1.1.0", "{json}");
    assert_eq!(json["requirement"], "~1.1", "{json}");

    let err = user.fails(&["info", "zz_base@^3"]);
    assert!(
        err.contains(&format!(
            "no version of `zz_base` matches ^3; it has: {listed}"
        )),
        "{err}"
    );
    let err = user.fails(&["info", "zz_base@"]);
    assert!(err.contains("nothing after @"), "{err}");
    let err = user.fails(&["info", "zz_base@one"]);
    assert!(
        err.contains("`one` is neither a version nor a requirement"),
        "{err}"
    );
}

/// An empty or all-blank name is refused as such by every command taking a NAME, before
/// anything else is read or suggested.
#[test]
fn empty_names_are_refused_as_empty() {
    let user = Client::new("http://127.0.0.1:9");
    let lock = format!(
        "version = 2\nroots = [\n    \"fix_build\",\n]\n\n[[mission]]\nname = \"fix_build\"\nversion = \"1.0.0\"\ncksum = \"{}\"\nregistry = \"test\"\nkey = \"{}\"\n",
        "a".repeat(64),
        author().pk.to_base64()
    );
    std::fs::write(user.project.join("missions.lock"), lock).unwrap();
    for args in [
        &["remove", ""][..],
        &["remove", "  "],
        &["info", ""],
        &["info", " "],
        &["info", " @1.0.0"],
        &["owner", "", "--list"],
        &["yank", "@1.0.0"],
        &["install", ""],
        &["install", " @^1"],
        &["update", ""],
        &["new", " "],
        &["run", ""],
    ] {
        let err = user.fails(args);
        assert!(err.contains("empty mission name"), "{args:?}: {err}");
        assert!(!err.contains("did you mean"), "{args:?}: {err}");
    }
}

/// A `--registry` value that is a host without a scheme is told to take one; no variable
/// or table that could not exist is suggested; a misspelt default names where it was set.
#[test]
fn registry_values_are_read_as_names_or_urls() {
    let user = Client::with_config("[registries.local]\nindex = \"http://127.0.0.1:9\"\n");
    for given in ["localhost:17811", "127.0.0.1:7878/", "registry.example.org"] {
        let err = user.fails(&["search", "x", "--registry", given]);
        assert!(
            err.contains(&format!(
                "`{given}` is not a registry name or a URL: add http:// or https:// (e.g. --registry http://{given})"
            )),
            "{err}"
        );
        assert!(
            !err.contains("MISSION_REGISTRIES_") && !err.contains("[registries."),
            "{err}"
        );
    }
    let err = user.fails(&["search", "x", "--registry", "my reg"]);
    assert!(
        !err.contains("MISSION_REGISTRIES_") && !err.contains("[registries."),
        "{err}"
    );
    // A plain name that is not configured: the variable and table are valid ones.
    let err = user.fails(&["search", "x", "--registry", "locl"]);
    assert!(
        err.contains("MISSION_REGISTRIES_LOCL_INDEX") && err.contains("did you mean `local`?"),
        "{err}"
    );

    std::fs::write(
        user.home.join("config.toml"),
        "[registry]\ndefault = \"locl\"\n\n[registries.local]\nindex = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let config = user.home.join("config.toml");
    let err = user.fails(&["search", "x"]);
    assert!(
        err.contains(&format!(
            "`[registry] default = \"locl\"` in {}",
            config.display()
        )) && err.contains("no registry named `locl`"),
        "{err}"
    );
    let mut user = user;
    user.env = vec![("MISSION_REGISTRY_DEFAULT".into(), "lcal".into())];
    let err = user.fails(&["search", "x"]);
    assert!(
        err.contains("MISSION_REGISTRY_DEFAULT=lcal") && err.contains("no registry named `lcal`"),
        "{err}"
    );
}

/// A node refusing the request (401 without or with a bad token, 403 for a token that may
/// not do it) is answered with the full advice, naming the registry, on every command.
#[test]
fn refusals_say_which_registry_needs_which_token() {
    let (node, tokens) = Node::start_with_users(
        Some("name = \"private\"\nseed_library = false\nauth_required = true\n"),
        &[("alice", "publish,yank"), ("bob", "execute")],
    );
    let alice = author();
    publish(&node, &tokens[0], &alice, "pv_one", "1.0.0");
    let mut user = Client::new(&node.url);
    for args in [
        &["search", "pv"][..],
        &["info", "pv_one"],
        &["install", "pv_one"],
    ] {
        let err = user.fails(args);
        assert!(
            err.contains("no token is set for the registry `test`: run `mission login --registry test`, or set MISSION_TOKEN or MISSION_REGISTRIES_TEST_TOKEN"),
            "{args:?}: {err}"
        );
        assert_eq!(err.matches("mission login").count(), 1, "{args:?}: {err}");
    }
    user.env = vec![("MISSION_TOKEN".into(), "mrt_not_a_token".into())];
    for args in [
        &["search", "pv"][..],
        &["info", "pv_one"],
        &["install", "pv_one"],
        &["yank", "pv_one@1.0.0"],
        &["owner", "pv_one", "--list"],
    ] {
        let err = user.fails(args);
        assert!(
            err.contains("the token in the environment variable MISSION_TOKEN was refused")
                && err.contains("mission login --registry test"),
            "{args:?}: {err}"
        );
    }
    // Bob's token is valid but may not yank.
    user.env = vec![("MISSION_REGISTRIES_TEST_TOKEN".into(), tokens[1].clone())];
    let err = user.fails(&["yank", "pv_one@1.0.0"]);
    assert!(
        err.contains("lacks the `yank` scope")
            && err.contains("MISSION_REGISTRIES_TEST_TOKEN")
            && err.contains("registry `test`"),
        "{err}"
    );
}

/// With `--json`, a failure prints one JSON object on stdout (the error and its causes),
/// the human text on stderr as without it, and exits non-zero.
#[test]
fn json_failures_are_json_on_stdout() {
    let user = Client::new("http://127.0.0.1:9");
    for args in [
        &["info", "zz_base", "--json"][..],
        &["search", "zz", "--json"],
        &["install", "zz_base", "--json"],
        &["update", "--json"],
    ] {
        let out = user.run(args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: stdout is not JSON ({e}): {}", text(&out.stdout))
        });
        let message = json["error"]["message"].as_str().unwrap();
        assert_eq!(
            format!("error: {message}\n"),
            stderr.lines().last().map(|l| format!("{l}\n")).unwrap(),
            "{args:?}"
        );
        assert!(json["error"]["causes"].is_array(), "{json}");
    }
    // A broken missions.lock: the cause chain is there.
    std::fs::write(user.project.join("missions.lock"), "version = 99\n").unwrap();
    let out = user.run(&["list", "--json"]);
    assert!(!out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let causes = json["error"]["causes"].as_array().unwrap();
    assert!(!causes.is_empty(), "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missions.lock"),
        "{json}"
    );
    // Without --json, stdout stays empty.
    let out = user.run(&["list"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

/// The status of each mission in `install --json` (and `update --json`).
fn statuses(json: &str) -> Vec<(String, String)> {
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    json["installed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap_or("<none>").to_owned(),
            )
        })
        .collect()
}

/// `install --json` says of each mission what happened to it, as the summary does.
#[test]
fn install_json_gives_each_mission_a_status() {
    let (node, tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish")]);
    let alice = author();
    for version in ["1.0.0", "1.1.0"] {
        publish(&node, &tokens[0], &alice, "st_one", version);
    }
    publish(&node, &tokens[0], &alice, "st_two", "1.0.0");
    let user = Client::new(&node.url);
    let s = |name: &str, status: &str| (name.to_owned(), status.to_owned());

    let out = user.ok(&["install", "st_one@=1.0.0", "--json"]);
    assert_eq!(statuses(&out), [s("st_one", "added")], "{out}");
    let out = user.ok(&["install", "st_two", "--json"]);
    assert_eq!(
        statuses(&out),
        [s("st_one", "unchanged"), s("st_two", "added")],
        "{out}"
    );
    // The old fields stay.
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["installed"][0]["previous"], "1.0.0", "{json}");
    assert_eq!(json["installed"][0]["version"], "1.0.0", "{json}");

    std::fs::remove_dir_all(user.project.join("missions/st_two")).unwrap();
    let out = user.ok(&["install", "--json"]);
    assert_eq!(
        statuses(&out),
        [s("st_one", "unchanged"), s("st_two", "restored")],
        "{out}"
    );
    let out = user.ok(&["install", "st_one@^1.1", "--json"]);
    assert_eq!(
        statuses(&out),
        [s("st_one", "updated"), s("st_two", "unchanged")],
        "{out}"
    );
    let out = user.ok(&["install", "st_one@=1.0.0", "--json"]);
    assert_eq!(
        statuses(&out),
        [s("st_one", "downgraded"), s("st_two", "unchanged")],
        "{out}"
    );
    // The summary tells the same.
    let out = user.ok(&["install", "st_one@^1.1"]);
    assert!(out.contains("Updated st_one 1.0.0 -> 1.1.0"), "{out}");
    // The roots changed, so nothing is called unchanged.
    assert!(
        out.contains("Now asking for st_one@^1.1 (was st_one@=1.0.0)"),
        "{out}"
    );
    assert!(out.contains("(1 at the same version)"), "{out}");
}

/// `list --registry` shows the missions locked from that registry; `remove --registry`
/// refuses a mission locked from another one. A registry is the same given by its name or
/// its URL.
#[test]
fn list_and_remove_take_a_registry() {
    let (node, tokens) = Node::start_with_users(Some(NODE_TOML), &[("alice", "publish")]);
    let alice = author();
    publish(&node, &tokens[0], &alice, "rg_one", "1.0.0");
    publish(&node, &tokens[0], &alice, "rg_two", "1.0.0");
    let user = Client::new(&node.url);
    user.ok(&["install", "rg_one", "rg_two"]);
    let elsewhere = "http://127.0.0.1:9";

    for by in ["test", node.url.as_str()] {
        let out = user.ok(&["list", "--registry", by]);
        assert!(
            out.contains("rg_one 1.0.0") && out.contains("rg_two 1.0.0"),
            "{by}: {out}"
        );
    }
    let out = user.ok(&["list", "--registry", elsewhere]);
    assert!(!out.contains("rg_one"), "{out}");
    assert!(
        out.contains(&format!("No missions from {elsewhere}")),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&user.ok(&["list", "--registry", elsewhere, "--json"])).unwrap();
    assert_eq!(json["missions"], serde_json::json!([]), "{json}");
    let json: serde_json::Value =
        serde_json::from_str(&user.ok(&["list", "--registry", "test", "--json"])).unwrap();
    assert_eq!(json["missions"].as_array().unwrap().len(), 2, "{json}");

    let err = user.fails(&["remove", "rg_one", "--registry", elsewhere]);
    assert!(
        err.contains(&format!(
            "`rg_one` was installed from sparse+{}/index/, not from http://127.0.0.1:9",
            node.url
        )),
        "{err}"
    );
    assert!(user.project.join("missions/rg_one").is_dir());
    let out = user.ok(&["remove", "rg_one", "--registry", &node.url]);
    assert!(out.contains("Removed rg_one 1.0.0"), "{out}");
    let out = user.ok(&["remove", "rg_two", "--registry", "test"]);
    assert!(out.contains("Removed rg_two 1.0.0"), "{out}");
}
