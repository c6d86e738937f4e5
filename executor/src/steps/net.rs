//! Network steps: `http`, `service_health`, `ping_host`, and the guard all network access
//! of a step goes through.
//!
//! The executor makes `http` requests itself (not a process), so it can hold them to the
//! grant exactly:
//!
//! 1. the URL must be `http` or `https` and its host one the grant allows;
//! 2. the host is resolved once, here, and *every* address checked: a loopback, private,
//!    link-local, CGNAT, multicast or unspecified address is refused unless the policy
//!    lists the host in `private_hosts` (an allowed public name must not become a way to
//!    reach the user's own machine or network);
//! 3. the request then connects to exactly the addresses checked (reqwest's
//!    `resolve_to_addrs`), so a DNS answer that changes between check and connect
//!    (rebinding) does not matter;
//! 4. no proxy from the environment, no redirects (a redirect would lead to a host not
//!    checked; the 3xx response is reported as is), the step's timeout, and a cap on the
//!    body read.
//!
//! `service_health` connects to `localhost:PORT` (RustChain's meaning), so it needs
//! `localhost` allowed, as a private host too. `ping_host` runs `ping -c COUNT HOST` in the
//! sandbox with network access to that host only.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Once;
use std::time::Duration;

use mission_index::mission::StepType;
use reqwest::blocking::Client;
use serde_json::{json, Map, Value};

use super::process::{outcome_output, run_program};
use super::{opt_str, str_param, StepCall, StepContext, StepError, StepOutput};
use crate::policy::Grant;
use crate::sandbox::NetworkAccess;

/// The largest response body read, in bytes.
pub const MAX_BODY_BYTES: u64 = 8 << 20;

pub(crate) fn execute(ctx: &StepContext, call: &StepCall<'_>) -> Result<StepOutput, StepError> {
    let p = call.params;
    match call.step_type {
        StepType::Http => {
            let url = str_param(p, "url")?;
            let method = opt_str(p, "method").unwrap_or("GET");
            let headers = p.get("headers").and_then(Value::as_object);
            http(&ctx.grant, call, url, method, headers, p.get("body"))
        }
        StepType::ServiceHealth => {
            let service = str_param(p, "service")?;
            let port = p.get("port").and_then(Value::as_u64).unwrap_or(80);
            let port = u16::try_from(port).map_err(|_| StepError::BadParameter {
                name: "port",
                reason: format!("{port} is not a port number"),
            })?;
            let addrs = checked_addresses(&ctx.grant, "localhost", port)?;
            let wait = call.timeout.min(Duration::from_secs(5));
            let healthy = addrs
                .iter()
                .any(|a| TcpStream::connect_timeout(a, wait).is_ok());
            // As in RustChain, the step reports the health; it does not fail on it.
            Ok(StepOutput::ok(
                json!({"service": service, "port": port, "healthy": healthy}),
            ))
        }
        StepType::PingHost => {
            let host = str_param(p, "host")?;
            let count = p.get("count").and_then(Value::as_u64).unwrap_or(4);
            if host.starts_with('-') {
                return Err(StepError::BadParameter {
                    name: "host",
                    reason: format!("`{host}` starts with `-`, which ping reads as an option"),
                });
            }
            checked_addresses(&ctx.grant, host, 0)?;
            let args = vec!["-c".to_owned(), count.to_string(), host.to_owned()];
            let outcome = run_program(
                ctx,
                call,
                "ping",
                &args,
                None,
                NetworkAccess::Hosts(vec![host.to_owned()]),
            )?;
            let success = outcome.success();
            let mut out = outcome_output(&outcome, "ping failed");
            out.output = json!({
                "host": host,
                "count": count,
                "success": success,
                "output": String::from_utf8_lossy(&outcome.stdout),
            });
            Ok(out)
        }
        other => Ok(super::unsupported(other)),
    }
}

/// Whether an address is one a mission must not reach without the policy's say-so: the
/// machine itself, private networks, link-local (cloud metadata), CGNAT, multicast,
/// broadcast, unspecified, documentation and benchmarking ranges.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10, CGNAT
                || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15, benchmarking
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // fc00::/7, unique local
                || (first & 0xffc0) == 0xfe80 // fe80::/10, link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
        }
    }
}

/// Checks `host` against the grant, resolves it and checks every address (module docs).
/// Returns the addresses to connect to.
pub fn checked_addresses(
    grant: &Grant,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, StepError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if !grant.allows_host(bare) {
        return Err(StepError::Denied(format!(
            "host `{bare}` is not allowed for this run (the mission's permissions and the policy must both allow it)"
        )));
    }
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (bare, port)
            .to_socket_addrs()
            .map_err(|e| StepError::Failed(format!("cannot resolve `{bare}`: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(StepError::Failed(format!("`{bare}` has no address")));
    }
    if !grant.allows_private(bare) {
        if let Some(private) = addrs.iter().find(|a| is_private(a.ip())) {
            return Err(StepError::Denied(format!(
                "host `{bare}` resolves to {}, a loopback or private address, which this run may not reach",
                private.ip()
            )));
        }
    }
    Ok(addrs)
}

/// Installs rustls' `ring` provider once (reqwest is built without a default provider).
fn tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client with no proxy and no redirects; `pin` connects a host to fixed addresses.
pub(crate) fn client(
    timeout: Duration,
    pin: Option<(&str, &[SocketAddr])>,
) -> Result<Client, StepError> {
    tls_provider();
    let mut builder = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(30)));
    if let Some((host, addrs)) = pin {
        builder = builder.resolve_to_addrs(host, addrs);
    }
    builder
        .build()
        .map_err(|e| StepError::Failed(format!("cannot set up the HTTP client: {e}")))
}

/// Reads at most [`MAX_BODY_BYTES`] of a response body as text.
pub(crate) fn body_text(
    response: reqwest::blocking::Response,
) -> Result<(String, bool), StepError> {
    let mut bytes = Vec::new();
    response
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StepError::Failed(format!("reading the response: {e}")))?;
    let truncated = bytes.len() as u64 > MAX_BODY_BYTES;
    bytes.truncate(MAX_BODY_BYTES as usize);
    Ok((String::from_utf8_lossy(&bytes).into_owned(), truncated))
}

/// RustChain's `http` step, behind the guard. Output `{url, method, status, response}`;
/// the response is the JSON body, or `{"text": ...}`. A status outside 2xx fails the step.
pub(crate) fn http(
    grant: &Grant,
    call: &StepCall<'_>,
    url: &str,
    method: &str,
    headers: Option<&Map<String, Value>>,
    body: Option<&Value>,
) -> Result<StepOutput, StepError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| StepError::BadParameter {
        name: "url",
        reason: format!("`{url}` is not a URL: {e}"),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(StepError::BadParameter {
            name: "url",
            reason: format!("`{url}`: only http and https URLs are supported"),
        });
    }
    let host = parsed.host_str().ok_or_else(|| StepError::BadParameter {
        name: "url",
        reason: format!("`{url}` has no host"),
    })?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs = checked_addresses(grant, host, port)?;
    let is_name = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_err();
    let client = client(call.timeout, is_name.then_some((host, addrs.as_slice())))?;
    let method_upper = method.to_ascii_uppercase();
    let mut request = match method_upper.as_str() {
        "GET" => client.get(parsed.clone()),
        "POST" => client.post(parsed.clone()),
        "PUT" => client.put(parsed.clone()),
        "DELETE" => client.delete(parsed.clone()),
        "PATCH" => client.patch(parsed.clone()),
        _ => {
            return Err(StepError::BadParameter {
                name: "method",
                reason: format!("unsupported HTTP method `{method}`"),
            })
        }
    };
    for (key, value) in headers.into_iter().flatten() {
        if let Some(value) = value.as_str() {
            request = request.header(key.as_str(), value);
        }
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .map_err(|e| StepError::Failed(format!("HTTP {method_upper} {url}: {e}")))?;
    let status = response.status();
    let (text, truncated) = body_text(response)?;
    let response_body =
        serde_json::from_str::<Value>(&text).unwrap_or_else(|_| json!({"text": text}));
    let output = json!({
        "url": url,
        "method": method,
        "status": status.as_u16(),
        "response": response_body,
        "body_truncated": truncated,
    });
    Ok(if status.is_success() {
        StepOutput::ok(output)
    } else {
        StepOutput::failed(output, format!("HTTP {method_upper} returned {status}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_guard_checks_the_grant_then_every_address() {
        let grant = Grant::new(&[], &["localhost", "127.0.0.1"], &[], false, 600);
        let err = checked_addresses(&grant, "example.org", 80).unwrap_err();
        assert!(err.to_string().contains("not allowed"), "{err}");
        let err = checked_addresses(&grant, "localhost", 80).unwrap_err();
        assert!(err.to_string().contains("loopback or private"), "{err}");
        let err = checked_addresses(&grant, "127.0.0.1", 80).unwrap_err();
        assert!(err.to_string().contains("127.0.0.1"), "{err}");

        let trusting = Grant::new(&[], &["localhost"], &["localhost"], false, 600);
        let addrs = checked_addresses(&trusting, "localhost", 8080).unwrap();
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8080));
    }
}
