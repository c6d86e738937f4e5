//! Where archives come from: the `dl` URL template of the registry's `config.json`, read as
//! cargo reads it.
//!
//! The markers `{name}`, `{version}`, `{prefix}`, `{lowerprefix}` and `{sha256-checksum}`
//! are replaced by the mission's name, its version, the folder prefix of the name in the
//! index layout (`1`, `2`, `3/a`, `ab/cd`: `{prefix}` keeps the name's case,
//! `{lowerprefix}` lowercases it) and the archive's SHA-256 from the index. A template with
//! none of them gets `/{name}/{version}/download` appended, as cargo does. A mission node
//! writes `BASE/api/v1/missions/{name}/{version}/download`; an operator may point `dl` at a
//! mirror or a CDN instead. Whatever serves the bytes, they are verified against the index
//! (checksum, signature, pinned author key) before anything is installed.
//!
//! The registry's token goes along only to the registry's own origin (scheme, host and
//! port), or anywhere when the registry says `auth-required` (as cargo does): a token is not
//! handed to a third party just because `config.json` names it.

use anyhow::{bail, Result};
use mission_index::repo::IndexConfig;

use crate::registry::Registry;

/// The markers a `dl` template may hold.
const MARKERS: [&str; 5] = [
    "{name}",
    "{version}",
    "{prefix}",
    "{lowerprefix}",
    "{sha256-checksum}",
];

/// A checked `dl` template of one registry.
#[derive(Debug, Clone)]
pub struct DownloadTemplate {
    template: String,
    send_token: bool,
}

impl DownloadTemplate {
    /// The template of `config` (fetched from `registry`), checked to be an http(s) URL.
    pub fn new(config: &IndexConfig, registry: &Registry) -> Result<DownloadTemplate> {
        let raw = config.dl.trim();
        let Some(origin) = origin(raw) else {
            bail!(
                "{}/index/config.json: `dl` is `{raw}`, which is not an http:// or https:// URL template (such as `https://host/api/v1/missions/{{name}}/{{version}}/download`); tell the node's operator",
                registry.base_url
            );
        };
        let template = if MARKERS.iter().any(|m| raw.contains(m)) {
            raw.to_owned()
        } else {
            format!(
                "{}/{{name}}/{{version}}/download",
                raw.trim_end_matches('/')
            )
        };
        let same_origin =
            self::origin(&registry.base_url).is_some_and(|own| own.eq_ignore_ascii_case(&origin));
        Ok(DownloadTemplate {
            template,
            send_token: same_origin || config.auth_required,
        })
    }

    /// The URL of the archive of `name` `version` whose SHA-256 is `cksum`.
    pub fn url(&self, name: &str, version: &str, cksum: &str) -> String {
        self.template
            .replace("{name}", name)
            .replace("{version}", version)
            .replace("{prefix}", &prefix(name))
            .replace("{lowerprefix}", &prefix(name).to_lowercase())
            .replace("{sha256-checksum}", cksum)
    }

    /// Whether requests to this template's URLs may carry the registry's token.
    pub fn send_token(&self) -> bool {
        self.send_token
    }
}

/// `scheme://host[:port]` of an http(s) URL, or `None` when it is not one.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return None;
    }
    Some(format!("{}://{authority}", scheme.to_ascii_lowercase()))
}

/// Cargo's `{prefix}`: `1`, `2`, `3/{first letter}`, or `{first two}/{next two}`.
fn prefix(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "1".to_owned(),
        2 => "2".to_owned(),
        3 => format!("3/{}", chars[0]),
        _ => format!(
            "{}/{}",
            chars[..2].iter().collect::<String>(),
            chars[2..4].iter().collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dl: &str, auth_required: bool) -> IndexConfig {
        serde_json::from_value(serde_json::json!({
            "dl": dl,
            "api": "http://node.example:7878",
            "auth-required": auth_required,
            "node": {"name": "n", "key": "RWQ"},
        }))
        .unwrap()
    }

    fn registry() -> Registry {
        Registry::sparse(Some("test".into()), "http://node.example:7878")
    }

    #[test]
    fn markers_are_replaced() {
        let t = DownloadTemplate::new(
            &config(
                "https://cdn.example/m/{lowerprefix}/{name}/{version}/{sha256-checksum}.mission?p={prefix}",
                false,
            ),
            &registry(),
        )
        .unwrap();
        assert_eq!(
            t.url("Fix_Build", "1.2.0-rc.1", "ab12"),
            "https://cdn.example/m/fi/x_/Fix_Build/1.2.0-rc.1/ab12.mission?p=Fi/x_"
        );
        assert_eq!(
            t.url("abc", "1.0.0", "c"),
            "https://cdn.example/m/3/a/abc/1.0.0/c.mission?p=3/a"
        );
        assert_eq!(
            t.url("ab", "1.0.0", "c"),
            "https://cdn.example/m/2/ab/1.0.0/c.mission?p=2"
        );
        assert_eq!(
            t.url("a", "1.0.0", "c"),
            "https://cdn.example/m/1/a/1.0.0/c.mission?p=1"
        );
    }

    #[test]
    fn a_template_without_markers_gets_cargos_suffix() {
        for dl in [
            "http://mirror.example/archives",
            "http://mirror.example/archives/",
        ] {
            let t = DownloadTemplate::new(&config(dl, false), &registry()).unwrap();
            assert_eq!(
                t.url("fix_build", "1.0.0", "x"),
                "http://mirror.example/archives/fix_build/1.0.0/download"
            );
        }
    }

    #[test]
    fn the_token_goes_only_to_the_registry_unless_auth_is_required() {
        let own = DownloadTemplate::new(
            &config(
                "HTTP://Node.Example:7878/api/v1/missions/{name}/{version}/download",
                false,
            ),
            &registry(),
        )
        .unwrap();
        assert!(own.send_token());
        for other in [
            "http://node.example:7879/{name}",
            "https://node.example:7878/{name}",
            "http://node.example.evil:7878/{name}",
        ] {
            let t = DownloadTemplate::new(&config(other, false), &registry()).unwrap();
            assert!(!t.send_token(), "{other}");
        }
        let t =
            DownloadTemplate::new(&config("http://cdn.example/{name}", true), &registry()).unwrap();
        assert!(t.send_token());
    }

    #[test]
    fn a_dl_that_is_not_an_http_url_is_refused() {
        for dl in [
            "",
            "/api/v1/missions/{name}",
            "ftp://x/{name}",
            "http:///{name}",
        ] {
            let err = DownloadTemplate::new(&config(dl, false), &registry())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("config.json") && err.contains("`dl`"),
                "{dl}: {err}"
            );
        }
    }
}
