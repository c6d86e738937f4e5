//! Dependency prefetch hints on the sparse index (docs/sparse-index.md; ARCHITECTURE
//! section 4 does not have them yet).
//!
//! A client resolving `app` learns that it needs `b` only once `app`'s index file has
//! arrived, and that `b` needs `c` only once `b`'s has: a chain of twenty dependencies costs
//! twenty round trips one after the other, however many requests the client may have in
//! flight. The node knows the whole graph, so a client that asks with
//! `Prefer: mission-closure` (RFC 7240) on an index file request gets, beside the file, a
//! `Link` header (RFC 8288) naming the index files of every mission the file's versions may
//! need, directly or not:
//!
//! ```text
//! Link: <../../be/nc/bench_dep_01>; rel="prefetch", <../../be/nc/bench_dep_02>; rel="prefetch"
//! Preference-Applied: mission-closure
//! ```
//!
//! Targets are relative to the request's URL, so the hint stays right behind a proxy that
//! serves the index under another prefix. The closure follows the dependencies of every
//! unyanked version (yanked ones are chosen only when a lockfile names them, and a client
//! fetches locked names anyway), nearest first, at most [`MAX_HINTED`] names and
//! [`MAX_HINT_BYTES`] bytes.
//!
//! A hint is only advice about what to fetch early: a client still reads and checks every
//! file it uses as it would without one, and a wrong or hostile hint costs it at most
//! [`MAX_HINTED`] extra requests per hint, never a wrong answer. The same hint is sent on `304 Not
//! Modified`, so a warm client revalidates its whole tree at once too.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use axum::http::{header, HeaderMap, HeaderValue};
use mission_index::layout::{self, MAX_HINTED, PREFETCH_PREFERENCE as PREFERENCE};
use serde::Deserialize;

use crate::server::SharedState;
use crate::sparse::read_head;

/// At most this many bytes of `Link` value (the nearest names first): proxies in front of
/// a node often refuse a response whose headers exceed one 4 KiB page (nginx's default
/// `proxy_buffer_size`), and the hint must never cost the file itself. About 60 names
/// of 20 characters.
const MAX_HINT_BYTES: usize = 3 * 1024;

/// Whether the request's `Prefer` headers ask for the closure: any preference (of a
/// comma-separated list, parameters after `;` or `=` ignored) whose token is
/// [`PREFERENCE`], compared without case as RFC 7240 says.
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|pref| pref.split([';', '=']).next())
        .any(|token| token.trim().eq_ignore_ascii_case(PREFERENCE))
}

/// The `Link` header value for the index file at `path` (of mission `name`) at the current
/// head, or `None` when its versions need nothing. Computed once per name and head.
pub async fn link_header(state: &SharedState, name: &str, path: &str) -> Option<HeaderValue> {
    let head = state.writer.head()?;
    let key = name.to_ascii_lowercase();
    if let Some(known) = LINKS.read().ok().and_then(|c| {
        c.as_ref()
            .filter(|c| c.head == head)?
            .links
            .get(&key)
            .cloned()
    }) {
        return known;
    }
    // One computation per name and head, however many requests ask at once (right after
    // a publish, every client installing a popular mission would otherwise walk its
    // closure at the same moment).
    let flight = (head.clone(), key.clone());
    IN_FLIGHT
        .run(flight, || async {
            let names = closure(state, &key).await;
            let value = link_value(path, &names);
            remember(state, head, key, &value);
            value
        })
        .await
}

/// Keeps `value` as the hint of `key` at `head`.
fn remember(state: &SharedState, head: String, key: String, value: &Option<HeaderValue>) {
    let Ok(mut guard) = LINKS.write() else {
        return;
    };
    // Kept only if no publish moved the head meanwhile (the files read may then mix two
    // heads, and a newer head's cache must not be replaced by this one's); the next request
    // computes it again. Checked under the lock, so no newer cache can come in between.
    if state.writer.head().as_deref() != Some(head.as_str()) {
        return;
    }
    if guard
        .as_ref()
        .is_none_or(|c| c.head != head || c.links.len() >= MAX_CACHED)
    {
        *guard = Some(LinkCache {
            head,
            links: HashMap::new(),
        });
    }
    if let Some(cache) = guard.as_mut() {
        cache.links.insert(key, value.clone());
    }
}

/// The hints being computed, by head and name.
static IN_FLIGHT: LazyLock<SingleFlight<(String, String), Option<HeaderValue>>> =
    LazyLock::new(SingleFlight::default);

/// One computation per key at a time: a caller asking for a key while it is being
/// computed waits for that result instead of computing it again. A computation whose
/// caller goes away (a client that hung up) is taken over by one of those waiting.
struct SingleFlight<K, V> {
    flights: Mutex<HashMap<K, Arc<tokio::sync::OnceCell<V>>>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            flights: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + std::hash::Hash, V: Clone> SingleFlight<K, V> {
    async fn run<F, Fut>(&self, key: K, compute: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = V>,
    {
        let cell = match self.flights.lock() {
            Ok(mut flights) => {
                // A flight nobody holds any more is over (done, or its callers gone): the
                // map keeps only those under way.
                flights.retain(|_, cell| Arc::strong_count(cell) > 1);
                flights.entry(key).or_default().clone()
            }
            Err(_) => Arc::default(),
        };
        cell.get_or_init(compute).await.clone()
    }

    #[cfg(test)]
    fn under_way(&self) -> usize {
        self.flights.lock().map_or(0, |f| {
            f.values().filter(|c| Arc::strong_count(c) > 1).count()
        })
    }
}

/// Adds the hint to an index file `response` (200 or 304) when the request asked for it,
/// and `Vary: Prefer` in any case, so that a shared cache keeps the two answers apart.
pub async fn add_to(
    state: &SharedState,
    request: &HeaderMap,
    name: &str,
    path: &str,
    response: &mut axum::response::Response,
) {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("Prefer"));
    if !wanted(request) {
        return;
    }
    // Applied even when there is nothing to name: the client learns that none is needed.
    let link = link_header(state, name, path).await;
    let headers = response.headers_mut();
    headers.insert("preference-applied", HeaderValue::from_static(PREFERENCE));
    if let Some(link) = link {
        headers.insert(header::LINK, link);
    }
}

/// Hints computed at one head, dropped whole when a publish moves it.
struct LinkCache {
    head: String,
    links: HashMap<String, Option<HeaderValue>>,
}

static LINKS: RwLock<Option<LinkCache>> = RwLock::new(None);

/// Bounds the cache's memory (at most [`MAX_HINT_BYTES`] a name, about 60 MiB): past this
/// many names it starts again empty.
const MAX_CACHED: usize = 20_000;

/// The lowercase names `root`'s unyanked versions need, directly or not, nearest first,
/// `root` itself left out; at most [`MAX_HINTED`]. Files that cannot be read or lines that
/// cannot be parsed are passed over: the hint is advice, and the client reports such
/// files itself when it reads them.
async fn closure(state: &SharedState, root: &str) -> Vec<String> {
    let mut walk = Closure::new(root);
    while let Some(name) = walk.next_to_expand() {
        let deps = direct_deps(state, &name).await;
        walk.expand(&deps);
    }
    walk.names
}

/// A breadth-first walk of the dependency graph from one root, bounded by [`MAX_HINTED`]:
/// [`Closure::next_to_expand`] names the next mission whose dependencies are wanted,
/// [`Closure::expand`] takes them.
struct Closure {
    seen: BTreeSet<String>,
    queue: VecDeque<String>,
    /// The names found, nearest first.
    names: Vec<String>,
}

impl Closure {
    fn new(root: &str) -> Closure {
        Closure {
            seen: BTreeSet::from([root.to_owned()]),
            queue: VecDeque::from([root.to_owned()]),
            names: Vec::new(),
        }
    }

    fn next_to_expand(&mut self) -> Option<String> {
        if self.names.len() >= MAX_HINTED {
            return None;
        }
        self.queue.pop_front()
    }

    fn expand(&mut self, deps: &[String]) {
        for dep in deps {
            if self.names.len() >= MAX_HINTED {
                return;
            }
            if self.seen.insert(dep.clone()) {
                self.names.push(dep.clone());
                self.queue.push_back(dep.clone());
            }
        }
    }
}

/// The lowercase names of the dependencies of `name`'s unyanked versions, in file order.
/// Kept by the file's blob id, so a publish elsewhere in the index costs no new parse.
async fn direct_deps(state: &SharedState, name: &str) -> Arc<[String]> {
    let Ok(path) = layout::entry_path(name) else {
        return Arc::from([]);
    };
    let Ok(Some(file)) = read_head(state, path).await else {
        return Arc::from([]);
    };
    if let Some(known) = DEPS
        .read()
        .ok()
        .and_then(|deps| deps.get(&file.etag).cloned())
    {
        return known;
    }
    let deps: Arc<[String]> = Arc::from(parse_deps(&file.bytes));
    if let Ok(mut cache) = DEPS.write() {
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(file.etag, deps.clone());
    }
    deps
}

/// Direct dependencies by index file blob id (its ETag).
static DEPS: LazyLock<RwLock<HashMap<String, Arc<[String]>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// The lowercase dependency names of the unyanked lines of an index file, in order, each
/// once, at most [`MAX_HINTED`] (a closure never uses more); lines that are not entries,
/// and names the layout refuses, are passed over.
fn parse_deps(file: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Line {
        #[serde(default)]
        deps: Vec<Dep>,
        #[serde(default)]
        yanked: bool,
    }
    #[derive(Deserialize)]
    struct Dep {
        name: String,
    }
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for line in file.split(|&b| b == b'\n') {
        let Ok(line) = serde_json::from_slice::<Line>(line) else {
            continue;
        };
        if line.yanked {
            continue;
        }
        for dep in line.deps {
            let dep = dep.name.to_ascii_lowercase();
            if layout::entry_path(&dep).is_ok() && seen.insert(dep.clone()) {
                out.push(dep);
                if out.len() >= MAX_HINTED {
                    return out;
                }
            }
        }
    }
    out
}

/// `names` as a `Link` value of prefetch targets relative to the file at `path`.
fn link_value(path: &str, names: &[String]) -> Option<HeaderValue> {
    // From `ab/cd/abcd` (two folders deep) back to the index root is `../../`.
    let up = "../".repeat(path.matches('/').count());
    let mut value = String::new();
    for target in names
        .iter()
        .filter_map(|name| layout::entry_path(name).ok())
    {
        let link = format!("<{up}{target}>; rel=\"prefetch\"");
        if value.len() + 2 + link.len() > MAX_HINT_BYTES {
            break;
        }
        if !value.is_empty() {
            value.push_str(", ");
        }
        value.push_str(&link);
    }
    if value.is_empty() {
        return None;
    }
    HeaderValue::from_str(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefer(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("prefer", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn the_preference_is_found_among_others() {
        assert!(wanted(&prefer(&["mission-closure"])));
        assert!(wanted(&prefer(&["respond-async, Mission-Closure"])));
        assert!(wanted(&prefer(&["wait=5", "mission-closure; x=1"])));
        assert!(wanted(&prefer(&["mission-closure=yes"])));
        assert!(!wanted(&prefer(&[])));
        assert!(!wanted(&prefer(&[
            "mission-closures",
            "closure",
            "return=minimal"
        ])));
    }

    /// Walks `graph` (name -> direct dependencies) from `root` as `closure` does.
    fn walk(graph: &[(&str, &[&str])], root: &str) -> Vec<String> {
        let mut walk = Closure::new(root);
        while let Some(name) = walk.next_to_expand() {
            let deps: Vec<String> = graph
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| d.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default();
            walk.expand(&deps);
        }
        walk.names
    }

    #[test]
    fn the_closure_is_breadth_first_without_repeats_or_the_root() {
        let graph: &[(&str, &[&str])] = &[
            ("app", &["b", "c"]),
            ("b", &["d", "c"]),
            ("c", &["e", "app"]),
            ("d", &["f"]),
            ("e", &["d"]),
        ];
        assert_eq!(walk(graph, "app"), ["b", "c", "d", "e", "f"]);
        assert_eq!(walk(graph, "d"), ["f"]);
        assert!(walk(graph, "f").is_empty());
    }

    #[test]
    fn the_closure_stops_at_the_bound() {
        // A chain longer than the bound, and a wide fan-out.
        let names: Vec<String> = (0..MAX_HINTED + 10).map(|i| format!("m{i}")).collect();
        let chain: Vec<(&str, Vec<&str>)> = names
            .windows(2)
            .map(|w| (w[0].as_str(), vec![w[1].as_str()]))
            .collect();
        let graph: Vec<(&str, &[&str])> = chain.iter().map(|(n, d)| (*n, &d[..])).collect();
        let found = walk(&graph, "m0");
        assert_eq!(found.len(), MAX_HINTED);
        assert_eq!(found[0], "m1");
        let wide: Vec<&str> = names.iter().skip(1).map(String::as_str).collect();
        let found = walk(&[("m0", &wide[..])], "m0");
        assert_eq!(found.len(), MAX_HINTED);
        assert_eq!(found[MAX_HINTED - 1], format!("m{MAX_HINTED}"));
    }

    #[test]
    fn dependencies_come_from_unyanked_entries_only() {
        let file = concat!(
            r#"{"name":"app","vers":"0.9.0","deps":[{"name":"Old_Dep","req":"^1"}],"yanked":true}"#,
            "\n",
            r#"{"name":"app","vers":"1.0.0","deps":[{"name":"Shared","req":"^1"},{"name":"b","req":"^1"}]}"#,
            "\n",
            "not json\n",
            r#"{"name":"app","vers":"1.1.0","deps":[{"name":"shared","req":"^2"},{"name":"../x","req":"*"},{"name":"c","req":"*"}]}"#,
            "\n",
        );
        assert_eq!(parse_deps(file.as_bytes()), ["shared", "b", "c"]);
        assert!(parse_deps(b"").is_empty());
        // A version with more dependencies than a hint can name: cut at the bound.
        let many: Vec<String> = (0..MAX_HINTED + 10)
            .map(|i| format!(r#"{{"name":"d{i:04}","req":"*"}}"#))
            .collect();
        let line = format!(
            r#"{{"name":"big","vers":"1.0.0","deps":[{}]}}"#,
            many.join(",")
        );
        let deps = parse_deps(line.as_bytes());
        assert_eq!(deps.len(), MAX_HINTED);
        assert_eq!(deps[0], "d0000");
    }

    /// Waits for `cond`, failing the test after 10 s rather than hanging it.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "never saw {what}");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_for_one_hint_compute_it_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let flights: Arc<SingleFlight<&str, usize>> = Arc::default();
        let computed = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let ask = |key: &'static str| {
            let (flights, computed, mut released) =
                (flights.clone(), computed.clone(), released.clone());
            tokio::spawn(async move {
                flights
                    .run(key, || async move {
                        let n = computed.fetch_add(1, Ordering::SeqCst) + 1;
                        let _ = released.wait_for(|go| *go).await;
                        n
                    })
                    .await
            })
        };
        let same: Vec<_> = (0..8).map(|_| ask("app")).collect();
        let other = ask("lib");
        // Every caller is in before the first computation ends.
        until("both keys under way", || {
            flights.under_way() >= 2 && computed.load(Ordering::SeqCst) >= 2
        })
        .await;
        let _ = release.send(true);
        let mut answers = Vec::new();
        for task in same {
            answers.push(task.await.unwrap());
        }
        let other = other.await.unwrap();
        assert_eq!(computed.load(Ordering::SeqCst), 2, "once per key");
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        assert_ne!(answers[0], other);
        assert_eq!(flights.under_way(), 0, "nothing kept once done");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_computation_whose_caller_hangs_up_is_taken_over() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;
        let flights: Arc<SingleFlight<&str, usize>> = Arc::default();
        let computed = Arc::new(AtomicUsize::new(0));
        let run = |hang: bool| {
            let (flights, computed) = (flights.clone(), computed.clone());
            tokio::spawn(async move {
                flights
                    .run("app", || async move {
                        let n = computed.fetch_add(1, Ordering::SeqCst) + 1;
                        if hang {
                            std::future::pending::<()>().await;
                        }
                        n
                    })
                    .await
            })
        };
        let first = run(true);
        until("the first computation", || {
            computed.load(Ordering::SeqCst) >= 1
        })
        .await;
        let waiting = run(false);
        until("the flight under way", || flights.under_way() >= 1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "the second caller waits for the first"
        );
        first.abort();
        assert_eq!(waiting.await.unwrap(), 2, "the waiting caller computes it");
        assert_eq!(flights.under_way(), 0);
    }

    #[test]
    fn links_are_relative_to_the_requested_file() {
        let names = vec!["b".to_owned(), "abcd".to_owned()];
        let deep = link_value("ap/p_/app_x", &names).unwrap();
        assert_eq!(
            deep.to_str().unwrap(),
            "<../../1/b>; rel=\"prefetch\", <../../ab/cd/abcd>; rel=\"prefetch\""
        );
        let shallow = link_value("1/a", &names).unwrap();
        assert_eq!(
            shallow.to_str().unwrap(),
            "<../1/b>; rel=\"prefetch\", <../ab/cd/abcd>; rel=\"prefetch\""
        );
        assert!(link_value("1/a", &[]).is_none());
    }

    #[test]
    fn a_link_value_stays_within_its_bytes_nearest_first() {
        let names: Vec<String> = (0..MAX_HINTED)
            .map(|i| format!("dependency_{i:03}"))
            .collect();
        let value = link_value("de/pe/dependency_root", &names).unwrap();
        let value = value.to_str().unwrap();
        assert!(value.len() <= MAX_HINT_BYTES, "{}", value.len());
        assert!(value.len() > MAX_HINT_BYTES - 60, "{}", value.len());
        assert!(value.starts_with("<../../de/pe/dependency_000>; rel=\"prefetch\", "));
        assert!(value.ends_with("; rel=\"prefetch\""));
    }
}
