//! Resolution scenarios over an in-memory index (the `IndexReader` contract: a map from
//! lowercase name to the entries of that name), and the lockfile made from a resolution.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use mission_index::entry::IndexEntry;
use mission_index::lockfile::Lockfile;
use mission_index::resolve::{
    resolve, resolve_with_limit, IndexReader, Requirement, Resolution, ResolveError,
};
use semver::VersionReq;
use sha2::{Digest, Sha256};

#[derive(Default)]
struct Index {
    files: BTreeMap<String, Vec<IndexEntry>>,
}

impl IndexReader for Index {
    type Error = std::convert::Infallible;
    fn entries(&self, name: &str) -> Result<Option<Vec<IndexEntry>>, Self::Error> {
        Ok(self.files.get(&name.to_ascii_lowercase()).cloned())
    }
}

fn author_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        minisign::KeyPair::generate_unencrypted_keypair()
            .unwrap()
            .pk
            .to_base64()
    })
}

fn cksum_of(name: &str, vers: &str) -> String {
    hex::encode(Sha256::digest(format!("{name} {vers}")))
}

fn entry(name: &str, vers: &str, deps: &[(&str, &str)]) -> IndexEntry {
    let deps: Vec<_> = deps
        .iter()
        .map(|(n, r)| serde_json::json!({"name": n, "req": r}))
        .collect();
    let line = serde_json::json!({
        "v": 1, "name": name, "vers": vers, "deps": deps,
        "cksum": cksum_of(name, vers), "sig": "untrusted comment: test\n",
        "key": author_key(), "yanked": false, "pubtime": "2026-01-01T00:00:00Z",
        "origin": "test-node",
    });
    IndexEntry::parse_line(&line.to_string(), 1)
        .unwrap()
        .unwrap()
}

impl Index {
    fn add(&mut self, name: &str, vers: &str, deps: &[(&str, &str)]) -> &mut Self {
        self.push(entry(name, vers, deps))
    }
    fn yanked(&mut self, name: &str, vers: &str, deps: &[(&str, &str)]) -> &mut Self {
        let mut e = entry(name, vers, deps);
        e.yanked = true;
        self.push(e)
    }
    fn push(&mut self, e: IndexEntry) -> &mut Self {
        self.files
            .entry(e.name.to_ascii_lowercase())
            .or_default()
            .push(e);
        self
    }
}

fn roots(specs: &[&str]) -> Vec<Requirement> {
    specs
        .iter()
        .map(|s| Requirement::parse(s).unwrap())
        .collect()
}

fn versions(res: &Resolution) -> Vec<String> {
    res.packages
        .values()
        .map(|p| format!("{} {}", p.entry.name, p.version))
        .collect()
}

fn req(s: &str) -> VersionReq {
    VersionReq::parse(s).unwrap()
}

/// A lockfile pinning `pins` ("name version"), with the index's checksums.
fn lock(pins: &[&str]) -> Lockfile {
    let key = author_key();
    let mut text = String::from("version = 1\n");
    for pin in pins {
        let (name, vers) = pin.split_once(' ').unwrap();
        text.push_str(&format!(
            "[[mission]]\nname = \"{name}\"\nversion = \"{vers}\"\ncksum = \"{}\"\nregistry = \"test\"\nkey = \"{key}\"\n",
            cksum_of(name, vers)
        ));
    }
    Lockfile::parse(&text).unwrap()
}

#[test]
fn highest_compatible_version_is_picked() {
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[])
        .add("a", "1.2.0", &[])
        .add("a", "1.10.1", &[])
        .add("a", "2.0.0", &[]);
    let res = resolve(&index, &roots(&["a@^1"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.10.1"]);
    let res = resolve(&index, &roots(&["a"]), None).unwrap();
    assert_eq!(versions(&res), ["a 2.0.0"]);
    let res = resolve(&index, &roots(&["a@~1.2"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.2.0"]);
    // Two root requirements on one name are both met by the one version.
    let res = resolve(&index, &roots(&["a@>=1.1", "a@<1.5"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.2.0"]);
    let pkg = res.get("a").unwrap();
    assert_eq!(
        pkg.required_by,
        [
            ("<root>".to_owned(), req(">=1.1")),
            ("<root>".to_owned(), req("<1.5"))
        ]
    );
}

#[test]
fn yanked_versions_are_skipped() {
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[])
        .yanked("a", "1.1.0", &[])
        .yanked("a", "2.0.0", &[]);
    let res = resolve(&index, &roots(&["a"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.0.0"]);

    let err = resolve(&index, &roots(&["a@^2"]), None).unwrap_err();
    match &err {
        ResolveError::OnlyYanked {
            name,
            req: r,
            required_by,
            yanked,
        } => {
            assert_eq!((name.as_str(), required_by.as_str()), ("a", "<root>"));
            assert_eq!(r, &req("^2"));
            assert_eq!(yanked, &["2.0.0"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("is yanked: 2.0.0"), "{err}");
    // Asked for on the command line: how to move on.
    assert!(
        err.to_string()
            .contains("ask for another version (`mission install a@REQ`)"),
        "{err}"
    );
}

#[test]
fn a_yanked_version_is_chosen_when_the_lock_pins_it() {
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[])
        .yanked("a", "1.1.0", &[])
        .add("a", "1.2.0", &[]);
    let pinned = lock(&["a 1.1.0"]);
    let res = resolve(&index, &roots(&["a@^1"]), Some(&pinned)).unwrap();
    assert_eq!(versions(&res), ["a 1.1.0"]);
    // Once the requirement excludes it, the yanked version is not chosen again.
    let res = resolve(&index, &roots(&["a@=1.0.0"]), Some(&pinned)).unwrap();
    assert_eq!(versions(&res), ["a 1.0.0"]);
    let res = resolve(&index, &roots(&["a@>=1.2"]), Some(&pinned)).unwrap();
    assert_eq!(versions(&res), ["a 1.2.0"]);
    // Pinning one yanked version allows no other.
    let res = resolve(&index, &roots(&["a@^1"]), Some(&lock(&["a 1.0.0"]))).unwrap();
    assert_eq!(versions(&res), ["a 1.0.0"]);
}

#[test]
fn locked_versions_are_kept_when_newer_ones_exist() {
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[("b", "^1")])
        .add("a", "1.5.0", &[("b", "^1")])
        .add("b", "1.0.0", &[])
        .add("b", "1.3.0", &[]);
    let res = resolve(&index, &roots(&["a"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.5.0", "b 1.3.0"]);
    let pinned = lock(&["a 1.0.0", "b 1.0.0"]);
    let res = resolve(&index, &roots(&["a"]), Some(&pinned)).unwrap();
    assert_eq!(versions(&res), ["a 1.0.0", "b 1.0.0"]);
}

#[test]
fn a_changed_requirement_unlocks_only_that_name() {
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[])
        .add("a", "2.0.0", &[])
        .add("a", "2.1.0", &[])
        .add("b", "1.0.0", &[])
        .add("b", "1.1.0", &[]);
    let pinned = lock(&["a 1.0.0", "b 1.0.0"]);
    let res = resolve(&index, &roots(&["a@^2", "b"]), Some(&pinned)).unwrap();
    assert_eq!(versions(&res), ["a 2.1.0", "b 1.0.0"]);
    // A name that is not locked at all gets the highest version.
    let res = resolve(&index, &roots(&["b"]), Some(&lock(&["a 1.0.0"]))).unwrap();
    assert_eq!(versions(&res), ["b 1.1.0"]);
}

#[test]
fn a_locked_version_whose_checksum_changed_is_refused() {
    let mut index = Index::default();
    index.add("a", "1.0.0", &[]);
    let text = lock(&["a 1.0.0"])
        .to_string()
        .replace(&cksum_of("a", "1.0.0"), &"0".repeat(64));
    let pinned = Lockfile::parse(&text).unwrap();
    let err = resolve(&index, &roots(&["a"]), Some(&pinned)).unwrap_err();
    assert!(
        matches!(&err, ResolveError::LockedChecksumChanged { name, version, .. }
            if name == "a" && version == "1.0.0"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("the published archive changed"),
        "{err}"
    );
}

#[test]
fn a_locked_version_whose_key_changed_is_refused() {
    let mut index = Index::default();
    let mut swapped = entry("a", "1.0.0", &[]);
    let other_key = minisign::KeyPair::generate_unencrypted_keypair()
        .unwrap()
        .pk
        .to_base64();
    swapped.key = other_key.clone();
    index.push(swapped);
    index.add("a", "1.1.0", &[]);
    // The lock pins 1.0.0 with the original key: the index now claims another key for it.
    let err = resolve(&index, &roots(&["a"]), Some(&lock(&["a 1.0.0"]))).unwrap_err();
    assert!(
        matches!(&err, ResolveError::LockedKeyChanged { name, version, index_key, .. }
            if name == "a" && version == "1.0.0" && *index_key == other_key),
        "{err:?}"
    );
    assert!(err.to_string().contains("the index was altered"), "{err}");
    // A new version under another key is the installer's call (pinned key and rotation
    // statements), not the resolver's: moving to it resolves.
    let mut index = Index::default();
    index.add("a", "1.0.0", &[]);
    let mut newer = entry("a", "1.1.0", &[]);
    newer.key = other_key;
    index.push(newer);
    let res = resolve(&index, &roots(&["a@^1.1"]), Some(&lock(&["a 1.0.0"]))).unwrap();
    assert_eq!(versions(&res), ["a 1.1.0"]);
}

#[test]
fn transitive_dependencies_are_resolved_and_installed_first() {
    let mut index = Index::default();
    index
        .add("app", "1.0.0", &[("lib", "^1")])
        .add("lib", "1.0.0", &[("base", "~1.2")])
        .add("lib", "1.4.0", &[("base", "~1.2")])
        .add("lib", "2.0.0", &[])
        .add("base", "1.2.0", &[])
        .add("base", "1.2.7", &[])
        .add("base", "1.3.0", &[]);
    let res = resolve(&index, &roots(&["app"]), None).unwrap();
    assert_eq!(versions(&res), ["app 1.0.0", "base 1.2.7", "lib 1.4.0"]);
    assert_eq!(res.packages["app"].dependencies, ["lib"]);
    assert_eq!(res.packages["lib"].dependencies, ["base"]);
    assert_eq!(
        res.packages["base"].required_by,
        [("lib".to_owned(), req("~1.2"))]
    );
    let order: Vec<&str> = res
        .install_order()
        .iter()
        .map(|p| p.entry.name.as_str())
        .collect();
    assert_eq!(order, ["base", "lib", "app"]);
}

#[test]
fn a_diamond_with_compatible_requirements_shares_one_version() {
    let mut index = Index::default();
    index
        .add("top", "1.0.0", &[("left", "^1"), ("right", "^1")])
        .add("left", "1.0.0", &[("shared", "^1.1")])
        .add("right", "1.0.0", &[("shared", ">=1.0, <1.3")])
        .add("shared", "1.0.0", &[])
        .add("shared", "1.1.0", &[])
        .add("shared", "1.2.5", &[])
        .add("shared", "1.3.0", &[]);
    let res = resolve(&index, &roots(&["top"]), None).unwrap();
    assert_eq!(
        versions(&res),
        ["left 1.0.0", "right 1.0.0", "shared 1.2.5", "top 1.0.0"]
    );
    let mut by: Vec<String> = res.packages["shared"]
        .required_by
        .iter()
        .map(|(who, r)| format!("{who} {r}"))
        .collect();
    by.sort();
    assert_eq!(by, ["left ^1.1", "right >=1.0, <1.3"]);
    let order: Vec<&str> = res
        .install_order()
        .iter()
        .map(|p| p.entry.name.as_str())
        .collect();
    assert_eq!(order, ["shared", "left", "right", "top"]);
}

#[test]
fn a_conflict_names_both_requesters_and_requirements() {
    let mut index = Index::default();
    index
        .add("b", "1.0.0", &[("d", "^1")])
        .add("c", "1.0.0", &[("d", "^2")])
        .add("d", "1.0.0", &[])
        .add("d", "2.0.0", &[]);
    let err = resolve(&index, &roots(&["b", "c"]), None).unwrap_err();
    match &err {
        ResolveError::Conflict {
            name,
            requirements,
            selected,
            available,
        } => {
            assert_eq!(name, "d");
            assert_eq!(
                requirements,
                &[
                    ("b 1.0.0".to_owned(), req("^1")),
                    ("c 1.0.0".to_owned(), req("^2"))
                ]
            );
            assert_eq!(selected, &None);
            assert_eq!(available, &["2.0.0", "1.0.0"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "no single version of `d` meets every requirement on it: b 1.0.0 needs `^1`, \
         c 1.0.0 needs `^2`; available: 2.0.0, 1.0.0"
    );
}

#[test]
fn what_the_user_asked_for_is_named_you_in_messages() {
    let mut index = Index::default();
    index
        .add("b", "1.0.0", &[("d", "^1")])
        .add("d", "1.0.0", &[])
        .add("d", "2.0.0", &[]);
    let err = resolve(&index, &roots(&["b", "d@^2"]), None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("b 1.0.0 needs `^1`") && text.contains("you asked for `^2`"),
        "{text}"
    );
    assert!(!text.contains("<root>"), "{text}");
    let err = resolve(&index, &roots(&["d@^3"]), None).unwrap_err();
    assert!(
        err.to_string()
            .contains("no version of `d` matches `^3` (required by you)"),
        "{err}"
    );
    let err = resolve(&index, &roots(&["nothing"]), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no mission named `nothing` in the index (required by you)"
    );
}

#[test]
fn backtracking_takes_an_older_version_when_the_newest_conflicts() {
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[("b", "^1"), ("c", "^1")])
        .add("a", "2.0.0", &[("b", "^1"), ("c", "^2")])
        .add("b", "1.0.0", &[("c", "^1")])
        .add("c", "1.0.0", &[])
        .add("c", "2.0.0", &[]);
    let res = resolve(&index, &roots(&["a"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.0.0", "b 1.0.0", "c 1.0.0"]);

    // The same through a clash with a version chosen earlier: `b` is decided first
    // (one candidate), so `a 2.0.0` meets a `c` already chosen and `a 1.0.0` is taken.
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[("c", "^1")])
        .add("a", "2.0.0", &[("c", "^2")])
        .add("b", "1.0.0", &[("c", "^1")])
        .add("c", "1.0.0", &[])
        .add("c", "2.0.0", &[]);
    let res = resolve(&index, &roots(&["a", "b"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.0.0", "b 1.0.0", "c 1.0.0"]);
}

#[test]
fn an_abandoned_version_leaves_no_requirement_behind() {
    // `b` is decided first (one candidate); `a 2.0.0` then asks for `extra` before its
    // clash on `b`. Once it is abandoned, `extra` (whose only version needs a mission that
    // does not exist) must not be resolved at all, nor appear in `b`'s requirers.
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[])
        .add("a", "2.0.0", &[("extra", "^1"), ("b", "^2")])
        .add("b", "1.0.0", &[])
        .add("b", "2.0.0", &[])
        .add("extra", "1.0.0", &[("missing", "^1")]);
    let res = resolve(&index, &roots(&["a", "b@^1"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.0.0", "b 1.0.0"]);
    let b = res.get("b").unwrap();
    assert_eq!(b.required_by.len(), 1, "{:?}", b.required_by);
}

#[test]
fn when_every_path_fails_an_error_that_always_holds_is_preferred() {
    // `s` is decided first (fewer candidates) as 2.0.0; then `y 3.0.0` and `y 1.0.0` clash
    // with that choice only (s 1.0.0 would do), while `y 2.0.0` needs a mission that does
    // not exist, whatever else is chosen. With `s 1.0.0` every `y` fails too.
    let mut index = Index::default();
    index
        .add("s", "1.0.0", &[])
        .add("s", "2.0.0", &[])
        .add("y", "1.0.0", &[("s", "^1"), ("ghost", "*")])
        .add("y", "2.0.0", &[("ghost", "^1")])
        .add("y", "3.0.0", &[("s", "^1"), ("z", "^2")])
        .add("z", "1.0.0", &[]);
    let err = resolve(&index, &roots(&["s", "y"]), None).unwrap_err();
    assert!(
        matches!(&err, ResolveError::NotFound { name, required_by }
            if name == "ghost" && required_by == &["y 2.0.0"]),
        "{err:?}"
    );
}

#[test]
fn missing_missions_are_reported_with_who_asked() {
    let mut index = Index::default();
    index.add("a", "1.0.0", &[("ghost", "^1")]);
    let err = resolve(&index, &roots(&["nothing"]), None).unwrap_err();
    assert!(
        matches!(&err, ResolveError::NotFound { name, required_by }
            if name == "nothing" && required_by == &["<root>"]),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no mission named `nothing` in the index (required by you)"
    );
    let err = resolve(&index, &roots(&["a"]), None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no mission named `ghost` in the index (required by a 1.0.0)"
    );
}

#[test]
fn no_matching_version_lists_what_exists() {
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[])
        .yanked("a", "1.1.0", &[])
        .add("top", "1.0.0", &[("a", "^3")]);
    let err = resolve(&index, &roots(&["top"]), None).unwrap_err();
    match &err {
        ResolveError::NoMatchingVersion {
            name,
            req: r,
            required_by,
            available,
        } => {
            assert_eq!((name.as_str(), required_by.as_str()), ("a", "top 1.0.0"));
            assert_eq!(r, &req("^3"));
            assert_eq!(available, &["1.1.0 (yanked)", "1.0.0"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "no version of `a` matches `^3` (required by top 1.0.0); available: 1.1.0 (yanked), 1.0.0"
    );
}

#[test]
fn prereleases_are_chosen_only_when_asked_for() {
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[])
        .add("a", "1.1.0-beta.1", &[])
        .add("a", "1.1.0-beta.2", &[])
        .add("b", "2.0.0-rc.1", &[]);
    let res = resolve(&index, &roots(&["a"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.0.0"]);
    let res = resolve(&index, &roots(&["a@^1"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.0.0"]);
    let res = resolve(&index, &roots(&["a@^1.1.0-beta.1"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.1.0-beta.2"]);
    let res = resolve(&index, &roots(&["a@=1.1.0-beta.1"]), None).unwrap();
    assert_eq!(versions(&res), ["a 1.1.0-beta.1"]);

    let err = resolve(&index, &roots(&["b"]), None).unwrap_err();
    assert!(
        matches!(err, ResolveError::NoMatchingVersion { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("a prerelease is only chosen when the requirement names one"),
        "{err}"
    );
    let res = resolve(&index, &roots(&["b@^2.0.0-rc.1"]), None).unwrap();
    assert_eq!(versions(&res), ["b 2.0.0-rc.1"]);
}

#[test]
fn dependency_cycles_are_refused_with_their_path() {
    let mut index = Index::default();
    index
        .add("a", "1.0.0", &[("b", "^1")])
        .add("b", "1.0.0", &[("c", "^1")])
        .add("c", "1.0.0", &[("a", "^1")]);
    let err = resolve(&index, &roots(&["b"]), None).unwrap_err();
    assert!(
        matches!(&err, ResolveError::Cycle { path } if path == &["a", "b", "c", "a"]),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "missions may not depend on each other in a cycle: a -> b -> c -> a"
    );

    let mut index = Index::default();
    index.add("selfish", "1.0.0", &[("selfish", "*")]);
    let err = resolve(&index, &roots(&["selfish"]), None).unwrap_err();
    assert!(
        matches!(&err, ResolveError::Cycle { path } if path == &["selfish", "selfish"]),
        "{err:?}"
    );
}

#[test]
fn the_search_is_capped() {
    // Every `a` needs a `c` that `b` rules out: the search tries each `a` before giving up.
    let mut index = Index::default();
    index.add("b", "1.0.0", &[("c", "=1.0.0")]);
    index.add("c", "1.0.0", &[]).add("c", "2.0.0", &[]);
    for minor in 0..20 {
        index.add("a", &format!("1.{minor}.0"), &[("c", "^2")]);
    }
    let err = resolve_with_limit(&index, &roots(&["a", "b"]), None, 10).unwrap_err();
    assert!(
        matches!(err, ResolveError::TooManySteps { limit: 10 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("gave up after trying 10"), "{err}");
    // With the default cap the same search ends in the real explanation.
    let err = resolve(&index, &roots(&["a", "b"]), None).unwrap_err();
    assert!(matches!(err, ResolveError::Conflict { .. }), "{err:?}");
}

#[test]
fn broken_index_entries_are_named() {
    let mut index = Index::default();
    let mut bad = entry("a", "1.0.0", &[]);
    bad.vers = "one".to_owned();
    index.add("a", "0.9.0", &[]).push(bad);
    let err = resolve(&index, &roots(&["a"]), None).unwrap_err();
    assert!(
        matches!(&err, ResolveError::BadEntry { name, vers, .. } if name == "a" && vers == "one"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("`vers` is not a semver version"),
        "{err}"
    );

    let mut index = Index::default();
    index.add("a", "1.0.0", &[("b", "one point oh")]);
    let err = resolve(&index, &roots(&["a"]), None).unwrap_err();
    assert!(
        err.to_string()
            .contains("dependency `b` has requirement `one point oh`"),
        "{err}"
    );

    let mut index = Index::default();
    index.add("a", "1.0.0", &[]).add("a", "1.0.0", &[]);
    let err = resolve(&index, &roots(&["a"]), None).unwrap_err();
    assert!(
        err.to_string().contains("lists this version twice"),
        "{err}"
    );
}

#[test]
fn reader_errors_are_wrapped_with_the_name() {
    struct Broken;
    impl IndexReader for Broken {
        type Error = std::io::Error;
        fn entries(&self, _: &str) -> Result<Option<Vec<IndexEntry>>, Self::Error> {
            Err(std::io::Error::other("connection reset"))
        }
    }
    let err = resolve(&Broken, &roots(&["a"]), None).unwrap_err();
    assert!(matches!(&err, ResolveError::Reader { name, .. } if name == "a"));
    assert_eq!(
        err.to_string(),
        "reading `a` from the index: connection reset"
    );
}

#[test]
fn a_root_spelled_as_published_resolves_and_names_the_published_spelling() {
    let mut index = Index::default();
    index
        .add("Fix_Build", "1.0.0", &[])
        .add("top", "1.0.0", &[("Fix_Build", "^1")]);
    let res = resolve(&index, &roots(&["top", "Fix_Build"]), None).unwrap();
    assert_eq!(versions(&res), ["Fix_Build 1.0.0", "top 1.0.0"]);
    assert_eq!(res.packages["top"].dependencies, ["Fix_Build"]);
    // Looked up by collision key, as `missions/NAME/` folders are.
    assert_eq!(
        res.get("fix_build").map(|p| p.entry.name.as_str()),
        Some("Fix_Build")
    );
}

/// Index paths are lowercase: a requirement in another case reads the published file and
/// is met, whichever requirement comes first.
#[test]
fn names_differing_in_case_are_one_mission() {
    let mut index = Index::default();
    index
        .add("Fix_Build", "1.0.0", &[])
        .add("top", "1.0.0", &[("FIX_BUILD", "^1")]);
    for roots_given in [&["top"][..], &["top", "fix_build"], &["fix_build", "top"]] {
        let res = resolve(&index, &roots(roots_given), None).unwrap();
        assert_eq!(
            versions(&res),
            ["Fix_Build 1.0.0", "top 1.0.0"],
            "{roots_given:?}"
        );
        assert_eq!(res.packages["top"].dependencies, ["Fix_Build"]);
    }
}

/// `-` for `_` names another index file: such a requirement is refused, naming the
/// published spelling when any requirement found it, and never accepted beside one that
/// did (before, it was accepted when a root spelled the name right, refused otherwise).
#[test]
fn a_requirement_with_dash_for_underscore_is_refused_whatever_the_order() {
    let mut index = Index::default();
    index
        .add("fix_build", "1.0.0", &[])
        .add("top", "1.0.0", &[("fix-build", "^1")]);
    let alone = resolve(&index, &roots(&["top"]), None).unwrap_err();
    assert!(
        matches!(&alone, ResolveError::NotFound { name, .. } if name == "fix-build"),
        "{alone}"
    );
    for roots_given in [
        &["top", "fix_build"][..],
        &["fix_build", "top"],
        &["top", "FIX_BUILD"],
    ] {
        let err = resolve(&index, &roots(roots_given), None).unwrap_err();
        match &err {
            ResolveError::SpelledOtherwise {
                name,
                published,
                required_by,
            } => {
                assert_eq!(name, "fix-build", "roots {roots_given:?}");
                assert_eq!(published, "fix_build");
                assert_eq!(required_by, "top 1.0.0");
            }
            other => panic!("roots {roots_given:?}: {other}"),
        }
        assert!(
            err.to_string().contains(
                "top 1.0.0 depends on `fix-build`, but the mission is published as `fix_build`"
            ) && err
                .to_string()
                .contains("the author of top 1.0.0 must fix it"),
            "{err}"
        );
    }

    // A root spelled so, beside a dependency spelled right: refused too (not found, as
    // it is decided first; the CLI then finds the published spelling and translates it).
    let mut index = Index::default();
    index
        .add("fix_build", "1.0.0", &[])
        .add("top", "1.0.0", &[("fix_build", "^1")]);
    let err = resolve(&index, &roots(&["top", "fix-build"]), None).unwrap_err();
    assert!(
        matches!(&err, ResolveError::NotFound { name, required_by } if name == "fix-build" && required_by == &["<root>"]),
        "{err}"
    );
    // The words for the command line.
    let said =
        mission_index::resolve::spelled_otherwise_message("fix-build", "fix_build", "<root>");
    assert!(
        said.contains("no mission named `fix-build` in the index: it is published as `fix_build`"),
        "{said}"
    );
}

#[test]
fn no_roots_resolve_to_nothing() {
    let res = resolve(&Index::default(), &[], None).unwrap();
    assert!(res.packages.is_empty());
    assert!(res.install_order().is_empty());
}

#[test]
fn a_resolution_locks_and_resolves_again_to_the_same_versions() {
    let mut index = Index::default();
    index
        .add("app", "1.0.0", &[("lib", "^1"), ("util", "^0.3")])
        .add("lib", "1.0.0", &[("util", "^0.3")])
        .add("util", "0.3.1", &[]);
    let res = resolve(&index, &roots(&["app"]), None).unwrap();
    let locked = Lockfile::from_resolution(&res, "https://reg.example/");
    let text = locked.to_string();
    assert_eq!(
        text,
        format!(
            "# This file is generated by mission install. Do not edit it by hand.
version = 2
roots = [
    \"app\",
]

[[mission]]
name = \"app\"
version = \"1.0.0\"
cksum = \"{}\"
registry = \"https://reg.example/\"
key = \"{key}\"
dependencies = [
    \"lib 1.0.0\",
    \"util 0.3.1\",
]

[[mission]]
name = \"lib\"
version = \"1.0.0\"
cksum = \"{}\"
registry = \"https://reg.example/\"
key = \"{key}\"
dependencies = [
    \"util 0.3.1\",
]

[[mission]]
name = \"util\"
version = \"0.3.1\"
cksum = \"{}\"
registry = \"https://reg.example/\"
key = \"{key}\"
",
            cksum_of("app", "1.0.0"),
            cksum_of("lib", "1.0.0"),
            cksum_of("util", "0.3.1"),
            key = author_key(),
        )
    );
    let parsed = Lockfile::parse(&text).unwrap();
    assert_eq!(parsed, locked);
    assert_eq!(parsed.to_string(), text);

    // Newer versions appear; the lock keeps the install where it was.
    index
        .add("lib", "1.1.0", &[("util", "^0.3")])
        .add("util", "0.3.2", &[]);
    let again = resolve(&index, &roots(&["app"]), Some(&parsed)).unwrap();
    assert_eq!(versions(&again), versions(&res));
    assert_eq!(
        Lockfile::from_resolution(&again, "https://reg.example/"),
        parsed
    );
    let fresh = resolve(&index, &roots(&["app"]), None).unwrap();
    assert_eq!(versions(&fresh), ["app 1.0.0", "lib 1.1.0", "util 0.3.2"]);
}
