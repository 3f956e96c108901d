//! Wires the listener, the core loop and storage together.

use crate::config::Config;
use crate::core::Core;
use crate::store::Store;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("secure client port: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("importing Apache ZooKeeper's data: {0}")]
    Import(#[from] crate::import::ImportError),
}

/// The client ports: plain (`clientPort`) and TLS (`secureClientPort`), either or both.
pub struct Listeners {
    pub plain: Option<TcpListener>,
    pub secure: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
}

/// The server side of a TLS handshake, within the handshake timeout.
async fn tls_handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    timeout: std::time::Duration,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::info!("TLS handshake with {peer} failed: {e}");
            None
        }
        Err(_) => {
            tracing::info!("TLS handshake with {peer} timed out");
            None
        }
    }
}

/// Runs the body of a thread the server cannot serve without (the core, the client reactor):
/// if it panics, the process stops (status 2, as when the log cannot be written) instead of
/// running on without it, its clients cut off while it still looks alive.
pub(crate) fn essential(what: &'static str, body: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
        tracing::error!("the {what} thread panicked: stopping");
        std::process::exit(2);
    }
}

/// Bounded queue into the core: when it is full, connections stop reading.
const CORE_QUEUE: usize = 8192;

/// Counts one client port's connections, per client IP (`maxClientCnxns`) and in all
/// (`maxCnxns`), as each of ZooKeeper's connection factories counts its own.
pub(crate) struct CnxnLimit {
    max: usize,
    max_total: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

impl CnxnLimit {
    /// `maxClientCnxns` and `maxCnxns` (0: no limit).
    pub(crate) fn new(max: usize, max_total: usize) -> Arc<Self> {
        Arc::new(CnxnLimit {
            max,
            max_total,
            counts: Mutex::default(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more connection from `ip`; none (and a warning) at either limit.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<CnxnGuard> {
        let mut c = self.counts();
        if self.max_total > 0 && c.total >= self.max_total {
            tracing::warn!(
                "too many connections {} (maxCnxns={})",
                c.total,
                self.max_total
            );
            return None;
        }
        let n = c.per_ip.entry(ip).or_default();
        if self.max > 0 && *n >= self.max {
            tracing::warn!(
                "too many connections from {ip} (maxClientCnxns={})",
                self.max
            );
            return None;
        }
        *n += 1;
        c.total += 1;
        Some(CnxnGuard {
            limit: self.clone(),
            ip,
        })
    }
}

/// A connection counted against its port's limits, until dropped.
pub struct CnxnGuard {
    limit: Arc<CnxnLimit>,
    ip: IpAddr,
}

impl Drop for CnxnGuard {
    fn drop(&mut self) {
        let mut c = self.limit.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Binds the client ports from the config: the plain one unless the config names only a
/// secure one (as ZooKeeper), and the secure one with its TLS settings checked.
pub async fn bind(cfg: &Config) -> Result<Listeners, ServerError> {
    let any = IpAddr::from([0, 0, 0, 0]);
    let plain = match cfg.secure_client_port.is_none() || cfg.client_port_set {
        true => {
            let ip = cfg.client_port_address.unwrap_or(any);
            Some(TcpListener::bind(SocketAddr::new(ip, cfg.client_port)).await?)
        }
        false => None,
    };
    let secure = match cfg.secure_client_port {
        Some(port) => {
            let acceptor = crate::tls::acceptor(&cfg.tls)?;
            let ip = cfg
                .secure_client_port_address
                .or(cfg.client_port_address)
                .unwrap_or(any);
            Some((
                TcpListener::bind(SocketAddr::new(ip, port)).await?,
                acceptor,
            ))
        }
        None => None,
    };
    Ok(Listeners { plain, secure })
}

/// Serves clients on `listener` until `shutdown` completes.
pub async fn run(
    listeners: Listeners,
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let ensemble = crate::ensemble::Ensemble::from_config(&cfg).map_err(ServerError::Config)?;
    let data_dir = cfg
        .data_log_dir
        .clone()
        .unwrap_or_else(|| cfg.data_dir.clone());
    std::fs::create_dir_all(&data_dir)?;
    let mut store = Store::open(
        &data_dir.join("zkrs-db"),
        &data_dir.join("zkrs-log"),
        cfg.force_sync,
    )?;
    store.set_node_cache(cfg.znode_cache_bytes);
    let imported = if cfg.import_zookeeper_data {
        let (snaps, logs) =
            crate::import::zookeeper_dirs(&cfg.data_dir, cfg.data_log_dir.as_deref());
        let imported = crate::import::import_if_fresh(
            &store,
            &snaps,
            &logs,
            crate::import::ImportOptions::of(&cfg),
        )?;
        if let Some(i) = &imported {
            let snapshot = i.snapshot.as_ref().map_or_else(
                || "no snapshot (the initial tree)".to_string(),
                |p| p.display().to_string(),
            );
            tracing::info!(
                "imported Apache ZooKeeper's data: {snapshot} ({} znodes, {} sessions at {:#x}) \
                 and {} logged txns after it, to zxid {:#x}; ZooKeeper's files are left as \
                 they are",
                i.nodes,
                i.sessions,
                i.snapshot_zxid,
                i.txns,
                i.last_zxid
            );
        }
        imported
    } else {
        None
    };
    let cfg = Arc::new(cfg);
    let mut core = Core::new(cfg.clone(), store, ensemble.is_none())?;
    if let Some(i) = imported.filter(|_| cfg.digest_enabled) {
        // ZooKeeper's restart compares the digests of the snapshot and the txns it loads
        // (none with digests off).
        match i.first_digest_mismatch {
            Some((zxid, theirs, ours)) => tracing::error!(
                "{} of {} digests in ZooKeeper's files are not the tree's, the first at \
                 {zxid:#x}: the file's digest is {theirs:#x}, the tree's {ours:#x}",
                i.digest_mismatches,
                i.digests_compared
            ),
            None => tracing::info!(
                "{} digests in ZooKeeper's files checked against the tree",
                i.digests_compared
            ),
        }
        core.stats.digest_mismatches += i.digest_mismatches;
    }
    let (core_tx, core_rx) = mpsc::channel(CORE_QUEUE);
    if let Some(mut ensemble) = ensemble {
        // ZooKeeper's backupOldConfig: a member that may rewrite a zoo.cfg holding the
        // membership keeps a copy of it first.
        if let (true, None, Some(path)) = (
            cfg.reconfig_enabled,
            cfg.dynamic_config_file.as_ref(),
            cfg.config_path.as_deref(),
        ) {
            match crate::config_files::back_up(path) {
                Ok(bak) => tracing::info!("{} copied to {}", path.display(), bak.display()),
                Err(e) => tracing::warn!("copying {} to .bak failed: {e}", path.display()),
            }
        }
        // The membership of the last reconfig this member saw commit outranks zoo.cfg's
        // (ZooKeeper keeps it in the dynamic config file it rewrites).
        let saved = match cfg.reconfig_enabled {
            true => core.store.load_membership()?,
            false => None,
        };
        let saved = saved.and_then(|text| ensemble.with_text(&text).ok());
        if let Some(saved) = saved.filter(|s| s.version > ensemble.version) {
            tracing::info!(
                "membership {:#x} from the data dir (reconfig changes it; zoo.cfg's server lines \
                 are not read again)",
                saved.version
            );
            ensemble = saved;
        }
        let ensemble = Arc::new(ensemble);
        let wire =
            crate::quorum::Wire::new(crate::tls::QuorumTls::of(&cfg)?, cfg.quorum_sasl.clone());
        // A leader's snapshot in frames is written here as it arrives, then installed.
        let store_dir = cfg.data_log_dir.as_ref().unwrap_or(&cfg.data_dir);
        let incoming = crate::quorum::Incoming::new(store_dir.join("zkrs-snapshot.incoming"));
        let peers = crate::quorum::Peers::start(
            ensemble.clone(),
            core_tx.clone(),
            cfg.quorum_listen_on_all_ips,
            wire,
            incoming,
            cfg.observer_master_port,
        )
        .await?;
        let applied = core.tree.last_zxid;
        // The log's newest txns: the committed window for DIFFs, then the unapplied tail.
        let tail = core.store.member_tail(applied, cfg.commit_log_count)?;
        let last_logged = tail.last().map_or(applied, |e| e.header.zxid.max(applied));
        let hs = core.store.load_hard_state(last_logged)?;
        tracing::info!(
            "member {} of {} (epochs {hs:?}, applied {applied:#x}, logged {last_logged:#x})",
            ensemble.me,
            ensemble.members.len()
        );
        core.tree.set_config(ensemble.config_text().as_bytes());
        core.replica = Some(crate::replica::Replica::new(
            ensemble, peers, &cfg, hs, tail, applied,
        ));
    }
    {
        let (snaps, logs) =
            crate::import::zookeeper_dirs(&cfg.data_dir, cfg.data_log_dir.as_deref());
        tracing::info!(
            "autopurge.snapRetainCount set to {}, autopurge.purgeInterval set to {}",
            cfg.autopurge_snap_retain_count,
            cfg.autopurge_purge_interval
        );
        crate::purge::schedule(
            snaps,
            logs,
            cfg.autopurge_snap_retain_count,
            cfg.autopurge_purge_interval,
        );
    }
    tracing::info!(
        "recovered {} znodes and {} sessions, last zxid {:#x}",
        core.tree.len(),
        core.sessions.len(),
        core.tree.last_zxid
    );
    // The core gets a thread of its own: its fsyncs block it, and nothing else.
    let core_thread = std::thread::Builder::new()
        .name("zkrs-core".into())
        .spawn(move || {
            essential("core", || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => rt.block_on(core.run(core_rx)),
                    Err(e) => tracing::error!("core runtime: {e}"),
                }
            })
        })?;
    // Each port counts its own, as each of ZooKeeper's connection factories does.
    let limit = CnxnLimit::new(cfg.max_client_cnxns, cfg.max_cnxns);
    let secure_limit = CnxnLimit::new(cfg.max_client_cnxns, cfg.max_cnxns);
    let next_conn = Arc::new(AtomicU64::new(1));
    let handshake = std::time::Duration::from_millis(cfg.sessionless_cnxn_timeout_ms);
    let reactor = match listeners.plain {
        Some(l) => {
            tracing::info!("serving clients on {}", l.local_addr()?);
            let setup = crate::reactor::Setup {
                core: core_tx.clone(),
                limit: limit.clone(),
                next_conn: next_conn.clone(),
                max_buffer: cfg.jute_max_buffer,
                handshake_timeout: handshake,
                runtime: tokio::runtime::Handle::current(),
            };
            Some(crate::reactor::Reactor::start(l.into_std()?, setup)?)
        }
        None => None,
    };
    if let Some((l, _)) = &listeners.secure {
        tracing::info!("serving TLS clients on {}", l.local_addr()?);
    }
    // The AdminServer: a port it cannot bind is logged and the server goes on, as ZooKeeper's
    // does when its AdminServer fails to start.
    if cfg.admin_enabled {
        let addr = std::net::SocketAddr::new(cfg.admin_address, cfg.admin_port);
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!("admin server on http://{addr}{}", cfg.admin_url);
                let site = crate::admin_http::Site::Admin {
                    url: cfg.admin_url.clone(),
                };
                tokio::spawn(crate::admin_http::serve(l, site, core_tx.clone()));
            }
            Err(e) => tracing::warn!("admin server not started on {addr}: {e}"),
        }
    }
    // Prometheus's /metrics: ZooKeeper fails to start when its provider cannot bind.
    if cfg.prometheus {
        let host = cfg
            .prometheus_host
            .trim_start_matches('[')
            .trim_end_matches(']');
        let at = format!("{}:{}", cfg.prometheus_host, cfg.prometheus_port);
        let l = tokio::net::TcpListener::bind((host, cfg.prometheus_port))
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("metrics on {at}: {e}")))?;
        let addr = l.local_addr()?;
        tracing::info!("Prometheus metrics on http://{addr}/metrics");
        let site = crate::admin_http::Site::Metrics {
            process: cfg.prometheus_process,
        };
        tokio::spawn(crate::admin_http::serve(l, site, core_tx.clone()));
    }
    tokio::pin!(shutdown);
    // The TLS port: a task per connection (the plain port is the reactor's).
    if let Some((secure, acceptor)) = &listeners.secure {
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = secure.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(guard) = secure_limit.acquire(peer.ip()) else {
                drop(stream);
                continue;
            };
            let link = crate::net::Link {
                peer,
                conn: next_conn.fetch_add(1, Ordering::Relaxed),
                core: core_tx.clone(),
                max_buffer: cfg.jute_max_buffer,
                handshake_timeout: handshake,
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Some(s) = tls_handshake(acceptor, stream, peer, handshake).await {
                    crate::net::serve_tls(s, link, guard).await;
                }
            });
        }
    } else {
        shutdown.await;
    }
    if let Some(r) = reactor {
        let _ = tokio::task::spawn_blocking(move || r.stop()).await;
    }
    tracing::info!("shutting down");
    let _ = core_tx.send(crate::core::CoreMsg::Shutdown).await;
    drop(core_tx);
    // Connections hold senders too; give them a moment, then the core flushes and ends.
    let _ = tokio::task::spawn_blocking(move || core_thread.join()).await;
    Ok(())
}
