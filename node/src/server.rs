//! `mission-node serve`: opens the data folder, starts the index writer, seeds the library
//! into an empty index, and serves HTTP (the API, the sparse index, git) plus the local
//! socket that admin commands and git hooks use.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use mission_index::signing::{PublicKey, SecretKey};
use tokio::net::TcpListener;

use crate::blobs::BlobStore;
use crate::config::NodeConfig;
use crate::data_dir::DataDir;
use crate::index_writer::{IndexWriter, WriterParts};
use crate::store::Store;

/// What every handler can reach.
pub struct AppState {
    pub config: NodeConfig,
    pub data: DataDir,
    pub store: Arc<Store>,
    pub blobs: BlobStore,
    pub writer: IndexWriter,
    pub public_key: PublicKey,
    /// The node key's secret half: signs the index files the sparse index serves (the
    /// writer has its own copy for snapshots).
    pub secret_key: SecretKey,
    /// The URL clients use to reach this node.
    pub base_url: String,
    /// The execution queue and quotas.
    pub executions: crate::execute::Executions,
}

pub type SharedState = Arc<AppState>;

/// The whole HTTP surface.
pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(crate::sparse::routes())
        .merge(crate::api::routes())
        .merge(crate::search::routes())
        .merge(crate::execute::routes())
        .merge(crate::rotation::routes())
        .merge(crate::git_http::routes())
        .merge(crate::metrics::routes())
        .fallback(|| async {
            crate::error::ApiError::not_found("no such page or route on this node")
        })
        .with_state(state)
}

/// Opens everything in `data` and serves on `listen` until SIGINT or SIGTERM.
pub async fn serve(data: DataDir, listen: &str) -> Result<()> {
    let (config, public_key, secret) = data.prepare()?;
    let store = Arc::new(Store::open(&data.store_file()).context("opening the metadata store")?);
    // The store's lock proves no other node uses this folder: clear what a crash left.
    crate::fsck::repair_on_start(&data).context("repairing what a crash left")?;
    crate::metrics::install().context("starting the metrics recorder")?;
    let blobs = BlobStore::open(&data.blobs_dir()).context("opening the blob store")?;

    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr: SocketAddr = listener
        .local_addr()
        .context("reading the listen address")?;
    // The pre-receive hook calls back on the local address, whatever public_url says.
    crate::git_http::set_local_addr(addr);
    let base_url = config.base_url(&addr.to_string());

    let wanted = DataDir::index_config(&config, &public_key, &base_url);
    let repo = data.open_index(&wanted)?;
    finish_pending_claims(&store, &repo)
        .context("finishing first publishes a crash interrupted")?;
    let index_was_empty = repo.list_names().context("listing the index")?.is_empty();
    let writer = IndexWriter::start(WriterParts {
        repo,
        store: store.clone(),
        data: data.clone(),
        node_name: config.name.clone(),
        public: public_key.clone(),
        secret: secret.clone(),
        validity: chrono::Duration::hours(config.snapshot.validity_hours as i64),
    })
    .context("starting the index writer")?;

    let config_execution = config.execution.clone();
    let state = Arc::new(AppState {
        config,
        data,
        store,
        blobs,
        writer,
        public_key,
        secret_key: secret.clone(),
        base_url: base_url.clone(),
        executions: crate::execute::Executions::new(&config_execution),
    });
    if index_was_empty && state.config.seed_library {
        let seeded = crate::seed::seed_library(&state, &secret)
            .await
            .context("seeding the community library")?;
        tracing::info!(missions = seeded, "seeded the community library");
    }
    crate::admin::start_socket(state.clone()).context("starting the admin socket")?;
    // Download counts are kept in memory and made durable once a second (see `store`).
    let flusher = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(crate::store::DOWNLOAD_FLUSH_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let state = state.clone();
                let flushed = tokio::task::spawn_blocking(move || state.store.flush()).await;
                match flushed {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "making download counts durable"),
                    Err(e) => tracing::warn!(error = %e, "the download count flush failed"),
                }
            }
        })
    };
    crate::execute::start(&state).context("starting the execution runners")?;

    // The address it listens on first, which is what scripts (and the tests) connect to;
    // then the public URL, when it differs (a proxy's, say).
    let listen_url = format!("http://{addr}");
    println!("mission-node listening on {listen_url}");
    if base_url != listen_url {
        println!("mission-node public URL {base_url}");
    }
    tracing::info!(%addr, %base_url, "serving");
    // Responses streamed after their headers (archives, git packs) are written in several
    // pieces; with Nagle's algorithm on, a piece that follows another on a kept-alive
    // connection waits for the client's delayed ACK, about 40 ms per archive.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY on a connection");
        }
    });
    let served = axum::serve(listener, crate::metrics::layer(router(state.clone())))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP");
    // However serving ended, the counts still in memory are written.
    flusher.abort();
    if let Err(e) = state.store.flush() {
        tracing::warn!(error = %e, "making the last download counts durable");
    }
    crate::admin::stop_socket(&state.data);
    served
}

/// A claim left by a crash becomes the owners record when its name reached the index, and
/// is dropped when it did not (see `Store::begin_claim`).
fn finish_pending_claims(store: &Store, repo: &mission_index::repo::IndexRepo) -> Result<()> {
    for (key, claim) in store.pending_claims()? {
        let published = repo
            .read(&claim.name)?
            .is_some_and(|entries| entries.iter().any(|e| e.name == claim.name));
        if published {
            store.finish_claim(&key)?;
            tracing::info!(name = %claim.name, user = %claim.user, "finished an interrupted first publish");
        } else {
            store.drop_claim(&key)?;
            tracing::info!(name = %claim.name, "dropped the claim of a publish that never reached the index");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mission_index::entry::IndexEntry;
    use mission_index::repo::{IndexConfig, IndexRepo, NodeInfo};

    #[test]
    fn claims_left_by_a_crash_are_finished_or_dropped_by_what_the_index_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store.redb")).unwrap();
        store.ensure_user("alice").unwrap();
        let config = IndexConfig {
            dl: "http://x/{name}".into(),
            api: "http://x".into(),
            auth_required: false,
            node: NodeInfo {
                name: "t".into(),
                key: "RWk".into(),
                extra: Default::default(),
            },
            extra: Default::default(),
        };
        let repo = IndexRepo::init(dir.path().join("index.git"), &config, "t", "t@t").unwrap();
        let line = r#"{"v":1,"name":"landed","vers":"1.0.0","cksum":"ab","sig":"s","key":"RWk","pubtime":"2026-01-01T00:00:00Z","origin":"t"}"#;
        repo.append(&IndexEntry::parse_line(line, 1).unwrap().unwrap())
            .unwrap();
        // A crash after the commit of `landed`, and one before the commit of `lost`.
        store.begin_claim("landed", "landed", "alice").unwrap();
        store.begin_claim("lost", "lost", "alice").unwrap();

        finish_pending_claims(&store, &repo).unwrap();

        assert!(store.pending_claims().unwrap().is_empty());
        let owners = store.owners("landed").unwrap().unwrap();
        assert!(owners.users.contains("alice"));
        assert!(store.owners("lost").unwrap().is_none());
    }
}
