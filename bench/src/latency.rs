//! A TCP relay that adds network latency between a client and a node on this machine.
//!
//! Every byte crosses the relay `rtt / 2` later than it arrived, in each direction, and a
//! new connection carries nothing for one `rtt` (the TCP handshake a real network would
//! cost). Bandwidth is not limited, and neither TLS (another round trip or two per
//! connection) nor TCP slow start is modelled: both would favour a client that opens
//! fewer connections. The kernel's `netem` would do this, but it is not available on
//! every machine the benchmarks run on; a relay works anywhere. It lives as long as the
//! process.
//!
//! Each connection costs four threads (a reader and a writer each way), so the relay adds
//! some CPU of its own; it is the same for every client measured through it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::Error;

/// A running relay: clients connect to [`LatencyRelay::url`], which forwards to the address
/// given to [`LatencyRelay::forward_to`].
pub struct LatencyRelay {
    pub url: String,
    upstream: Arc<OnceLock<SocketAddr>>,
}

impl LatencyRelay {
    /// Listens on a free local port; connections wait for [`LatencyRelay::forward_to`].
    pub fn start(rtt: Duration) -> Result<LatencyRelay, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let upstream: Arc<OnceLock<SocketAddr>> = Arc::new(OnceLock::new());
        let target = upstream.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Some(addr) = target.get().copied() else {
                    // Not forwarding yet: refuse by closing.
                    continue;
                };
                std::thread::spawn(move || {
                    if let Err(e) = relay(client, addr, rtt) {
                        eprintln!("latency relay: {e}");
                    }
                });
            }
        });
        Ok(LatencyRelay { url, upstream })
    }

    /// Forwards connections to the node at `url` (`http://HOST:PORT`).
    pub fn forward_to(&self, url: &str) -> Result<(), Error> {
        let addr: SocketAddr = url
            .strip_prefix("http://")
            .ok_or(format!("not an http:// URL: {url}"))?
            .parse()?;
        self.upstream
            .set(addr)
            .map_err(|_| "the relay already forwards")?;
        Ok(())
    }
}

/// Relays one connection both ways with the delays.
fn relay(client: TcpStream, upstream: SocketAddr, rtt: Duration) -> Result<(), Error> {
    let opened = Instant::now();
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    // The handshake: nothing is delivered before one round trip has passed.
    let ready = opened + rtt;
    let one_way = rtt / 2;
    let up = (client.try_clone()?, server.try_clone()?);
    let down = (server, client);
    let a = std::thread::spawn(move || pipe(up.0, up.1, one_way, ready));
    pipe(down.0, down.1, one_way, ready);
    let _ = a.join();
    Ok(())
}

/// Copies `from` to `to`, each chunk `delay` after it was read (or, if read before
/// `ready`, `delay` after `ready`), then shuts `to` for writing.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration, ready: Instant) {
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        for (at, bytes) in due {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // Bytes sent before the handshake is over leave once it is.
                let at = Instant::now().max(ready) + delay;
                if chunks.send((at, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(chunks);
    let _ = writer.join();
}
