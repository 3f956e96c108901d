//! The tokio shell around the pure ZAB state machine: election connections (one per pair,
//! the one initiated by the larger id survives, an InitialMessage then length-prefixed
//! notifications, as Apache ZooKeeper's QuorumCnxManager) and quorum connections (learners
//! dial the leader's quorum port; a continuous stream of QuorumPacket records, no framing).
//! Inbound messages go to the core as [`CoreMsg::Peer`] (votes, the first packet of a
//! connection) and [`CoreMsg::Packets`] (each read's packets); the core sends through [`Peers`].
//! With `sslQuorum`, both kinds of connection are TLS ([`Wire`]); with `quorum.auth.enableSasl`,
//! the member that connects logs in first (DIGEST-MD5 in `QuorumAuthPacket`s).

use crate::core::CoreMsg;
use crate::ensemble::Ensemble;
use crate::zab::{packet, Msg, Sid};
use jute::quorum::{InitialMessage, Notification, QuorumPacket};
use jute::{Decode, DecodeError, Encode, Reader};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// `QuorumCnxManager.PROTOCOL_VERSION_V1`.
const PROTOCOL_V1: i64 = -65536;
/// Largest election message (`PACKETMAXSIZE`).
const MAX_ELECTION_MSG: usize = 512 * 1024;

/// The halves of a connection to a member, plain TCP or TLS.
type Rd = Box<dyn AsyncRead + Send + Unpin>;
type Wr = Box<dyn AsyncWrite + Send + Unpin>;

/// How long a TLS handshake between members may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A TLS record's first byte (a handshake): how a unified port tells TLS from plain.
const TLS_HANDSHAKE: u8 = 0x16;

/// `QuorumAuth.QUORUM_AUTH_MAGIC_NUMBER` (`-0xa0dbcafecafe1234L` in Java, where the
/// literal is itself negative): the first field of every quorum SASL packet.
const AUTH_MAGIC: i64 = (0xa0db_cafe_cafe_1234_u64 as i64).wrapping_neg();
/// `QuorumAuth.Status`.
const AUTH_IN_PROGRESS: i32 = 0;
const AUTH_SUCCESS: i32 = 1;
const AUTH_ERROR: i32 = -1;
/// The largest SASL token taken from a member (DIGEST-MD5's are a few hundred bytes).
const MAX_AUTH_TOKEN: usize = 64 * 1024;
/// How long a member that need not log in may stay silent before its connection is taken
/// as one that does not (its own traffic may only come later: an election connection
/// carries nothing until there is a vote to send).
const LOGIN_OPTIONAL_WAIT: Duration = Duration::from_secs(1);

/// How connections between members are made: plain TCP, or TLS (`sslQuorum`, with
/// `portUnification` accepting both, as ZooKeeper's UnifiedServerSocket does); and, with
/// `quorum.auth.enableSasl`, how members log in to one another.
#[derive(Clone, Default)]
pub struct Wire {
    tls: Option<Arc<crate::tls::QuorumTls>>,
    sasl: Option<Arc<crate::sasl::QuorumSasl>>,
}

impl Wire {
    pub fn new(
        tls: Option<Arc<crate::tls::QuorumTls>>,
        sasl: Option<Arc<crate::sasl::QuorumSasl>>,
    ) -> Wire {
        Wire { tls, sasl }
    }

    /// Logs in to the member at the other end of a connection this member made (on `host`),
    /// when it requires that of itself (`quorum.auth.learnerRequireSasl`), as ZooKeeper's
    /// SaslQuorumAuthLearner does. DIGEST-MD5: an empty first token, the server's challenge
    /// answered, then its `rspauth` checked. GSSAPI: the context's tokens, then the server's
    /// layer offer answered. Any failure fails the connection.
    async fn log_in(&self, rd: &mut Rd, wr: &mut Wr, to: &str, host: &str) -> std::io::Result<()> {
        let Some(sasl) = self.sasl.as_ref().filter(|s| s.learner_required) else {
            return Ok(());
        };
        let exchange = async {
            match &sasl.learner {
                crate::sasl::QuorumLearner::Digest(client) => log_in_digest(rd, wr, client).await,
                crate::sasl::QuorumLearner::Kerberos(client) => {
                    log_in_gssapi(rd, wr, client, host).await
                }
            }
        };
        let done = within(exchange, "quorum SASL").await;
        match &done {
            Ok(()) => tracing::debug!("quorum SASL: logged in to {to} as {}", sasl.learner.name()),
            Err(e) => tracing::warn!("quorum SASL: logging in to {to} failed: {e}"),
        }
        done
    }

    /// Checks the login of a member that connected (ZooKeeper's SaslQuorumAuthServer), when
    /// quorum SASL is on. A member that does not log in is turned away if
    /// `quorum.auth.serverRequireSasl`, else let through, as is one whose login fails (it
    /// is told ERROR). Returns the read half to go on with: it still holds what was read
    /// to see whether the member logs in.
    async fn check_login(&self, mut rd: Rd, wr: &mut Wr, from: &str) -> std::io::Result<Rd> {
        let Some(sasl) = &self.sasl else {
            return Ok(rd);
        };
        let required = sasl.server_required;
        let mut first = [0u8; 8];
        let wait = if required {
            HANDSHAKE_TIMEOUT
        } else {
            LOGIN_OPTIONAL_WAIT
        };
        let n = match tokio::time::timeout(wait, rd.read(&mut first)).await {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
            Err(_) if !required => return Ok(rd),
            Err(_) => return Err(std::io::Error::other("quorum SASL: no login")),
        };
        if n < first.len() {
            within(rd.read_exact(&mut first[n..]), "quorum SASL").await?;
        }
        if i64::from_be_bytes(first) != AUTH_MAGIC {
            if required {
                tracing::warn!(
                    "quorum SASL: {from} did not log in, and quorum.auth.serverRequireSasl is set"
                );
                return Err(std::io::Error::other("quorum SASL: no login"));
            }
            return Ok(Box::new(std::io::Cursor::new(first).chain(rd)));
        }
        let exchange = async {
            let (_, mut token) = read_auth_body(&mut rd).await?;
            let mut mechanism = crate::sasl::Exchange::new(&sasl.server);
            loop {
                let step = mechanism
                    .evaluate(&token, &sasl.server)
                    .map_err(std::io::Error::other)?;
                match step {
                    crate::sasl::Step::Challenge(c) => {
                        send(wr, &auth_packet(AUTH_IN_PROGRESS, c)).await?;
                        token = read_auth(&mut rd).await?.1;
                    }
                    // A member asks to act as itself; any other id is refused, as is a
                    // Kerberos principal of a host outside the membership, as
                    // SaslQuorumServerCallbackHandler refuses them.
                    crate::sasl::Step::Done { token, id, authzid } => {
                        sasl.authorized(&id, authzid.as_deref())
                            .map_err(std::io::Error::other)?;
                        // GSSAPI's last answer has no token (null, as Java's server sends it).
                        send(wr, &auth_packet(AUTH_SUCCESS, token)).await?;
                        return Ok(id);
                    }
                }
            }
        };
        match within(exchange, "quorum SASL").await {
            Ok(id) => {
                tracing::info!("quorum SASL: {from} logged in as {id}");
                Ok(rd)
            }
            Err(e) => {
                let _ = send(wr, &auth_packet(AUTH_ERROR, Vec::new())).await;
                tracing::warn!("quorum SASL: the login of {from} failed: {e}");
                if required {
                    Err(e)
                } else {
                    Ok(rd)
                }
            }
        }
    }

    /// Connects to `addr` (`host` names it, for the certificate check).
    async fn connect(&self, addr: SocketAddr, host: &str) -> std::io::Result<(Rd, Wr)> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            Some(tls) if tls.dial => {
                let name = rustls_name(host)?;
                let tls = within(tls.connector.connect(name, stream), "TLS handshake").await?;
                Ok(halves(tls))
            }
            _ => Ok(plain(stream)),
        }
    }

    /// Connects to `host:port`.
    async fn dial(&self, target: &str) -> std::io::Result<(Rd, Wr)> {
        let host = host_of(target);
        // Each address the name resolves to in turn, as `TcpStream::connect` tries them.
        let mut last = std::io::Error::other(format!("cannot resolve {target}"));
        for addr in tokio::net::lookup_host(target).await? {
            match self.connect(addr, host).await {
                Ok(link) => return Ok(link),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Takes an accepted connection: TLS when TLS is on (or, on a unified port, when it
    /// begins with a TLS handshake); a plain one on a TLS port fails its handshake.
    async fn accept(&self, stream: TcpStream) -> std::io::Result<(Rd, Wr)> {
        let _ = stream.set_nodelay(true);
        let tls = match &self.tls {
            Some(tls) if !tls.unify => Some(tls),
            Some(tls) => {
                let mut first = [0u8; 1];
                let n = within(stream.peek(&mut first), "the first byte").await?;
                (n == 1 && first[0] == TLS_HANDSHAKE).then_some(tls)
            }
            None => None,
        };
        match tls {
            Some(tls) => Ok(halves(
                within(tls.acceptor.accept(stream), "TLS handshake").await?,
            )),
            None => Ok(plain(stream)),
        }
    }
}

/// A DIGEST-MD5 login to another member.
async fn log_in_digest(
    rd: &mut Rd,
    wr: &mut Wr,
    client: &crate::sasl::DigestClient,
) -> std::io::Result<()> {
    send(wr, &auth_packet(AUTH_IN_PROGRESS, Vec::new())).await?;
    let mut expected = None;
    loop {
        let (status, token) = read_auth(rd).await?;
        match (status, &expected) {
            (AUTH_IN_PROGRESS, None) => {
                let (response, rspauth) = client.respond(&token).map_err(std::io::Error::other)?;
                send(wr, &auth_packet(AUTH_IN_PROGRESS, response)).await?;
                expected = Some(rspauth);
            }
            (AUTH_SUCCESS, Some(rspauth)) => {
                return crate::sasl::DigestClient::check_rspauth(&token, rspauth)
                    .map_err(std::io::Error::other);
            }
            (AUTH_ERROR, _) => return Err(std::io::Error::other("login refused")),
            (s, _) => return Err(std::io::Error::other(format!("unexpected status {s}"))),
        }
    }
}

/// A Kerberos (GSSAPI) login to the member on `host`.
async fn log_in_gssapi(
    rd: &mut Rd,
    wr: &mut Wr,
    client: &crate::kerberos::KerberosClient,
    host: &str,
) -> std::io::Result<()> {
    // Asking the KDC for tickets blocks: off the runtime's threads.
    let (c, h) = (client.clone(), host.to_string());
    let (mut ctx, first) = tokio::task::spawn_blocking(move || c.start(&h))
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    send(wr, &auth_packet(AUTH_IN_PROGRESS, first)).await?;
    loop {
        let (status, token) = read_auth(rd).await?;
        match status {
            AUTH_IN_PROGRESS if !ctx.complete => {
                let response = ctx.respond(&token).map_err(std::io::Error::other)?;
                send(wr, &auth_packet(AUTH_IN_PROGRESS, response)).await?;
            }
            AUTH_SUCCESS if ctx.complete => return Ok(()),
            AUTH_ERROR => return Err(std::io::Error::other("login refused")),
            s => return Err(std::io::Error::other(format!("unexpected status {s}"))),
        }
    }
}

/// The host of a `host:port` target (`[v6]:port` too).
fn host_of(target: &str) -> &str {
    match target.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => target,
    }
}

/// A `QuorumAuthPacket`.
fn auth_packet(status: i32, token: impl Into<Option<Vec<u8>>>) -> Vec<u8> {
    jute::quorum::QuorumAuthPacket {
        magic: AUTH_MAGIC,
        status,
        token: token.into(),
    }
    .to_bytes()
}

/// The status and token of the next `QuorumAuthPacket`.
async fn read_auth(rd: &mut Rd) -> std::io::Result<(i32, Vec<u8>)> {
    if rd.read_i64().await? != AUTH_MAGIC {
        return Err(std::io::Error::other("not a quorum SASL packet"));
    }
    read_auth_body(rd).await
}

/// A `QuorumAuthPacket` after its magic.
async fn read_auth_body(rd: &mut Rd) -> std::io::Result<(i32, Vec<u8>)> {
    let status = rd.read_i32().await?;
    let len = rd.read_i32().await?;
    let len = usize::try_from(len).unwrap_or(0); // -1: a null token
    if len > MAX_AUTH_TOKEN {
        return Err(std::io::Error::other("quorum SASL token too long"));
    }
    let mut token = vec![0u8; len];
    rd.read_exact(&mut token).await?;
    Ok((status, token))
}

/// The halves of a plain connection (each its own, no lock between them).
fn plain(stream: TcpStream) -> (Rd, Wr) {
    let (rd, wr) = stream.into_split();
    (Box::new(rd), Box::new(wr))
}

/// The read and write halves of a TLS connection.
fn halves<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> (Rd, Wr) {
    let (rd, wr) = tokio::io::split(stream);
    (Box::new(rd), Box::new(wr))
}

/// `step`, given [`HANDSHAKE_TIMEOUT`].
async fn within<T>(
    step: impl std::future::Future<Output = std::io::Result<T>>,
    what: &str,
) -> std::io::Result<T> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, step)
        .await
        .map_err(|_| std::io::Error::other(format!("{what}: timed out")))?
}

/// The name a dialed member's certificate is checked against: its host, or its IP address.
fn rustls_name(
    host: &str,
) -> std::io::Result<tokio_rustls::rustls::pki_types::ServerName<'static>> {
    tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::other(format!("{host}: {e}")))
}

/// What goes out on a quorum connection, in order.
pub enum Outgoing {
    Packet(QuorumPacket),
    /// A SNAP (`head`: SNAP for zkrs's snapshot in frames, SNAP_STREAMED for ZooKeeper's on
    /// the stream) and its snapshot, written as its pieces come.
    Snapshot {
        head: QuorumPacket,
        pieces: crate::snapshot::SnapChunks,
    },
}

type Senders<T> = Arc<Mutex<HashMap<Sid, (u64, mpsc::UnboundedSender<T>)>>>;
/// Quorum connections by member: generation, what goes out, and the connection's counters.
type QuorumLinks = Arc<Mutex<HashMap<Sid, (u64, mpsc::UnboundedSender<Outgoing>, Arc<LinkStats>)>>>;

/// A quorum connection's counters, as ZooKeeper's LearnerHandler keeps them (the AdminServer's
/// `observers` shows a leader's observers by them).
#[derive(Debug)]
pub struct LinkStats {
    /// The learner's address, on a connection it made to us.
    pub remote: Option<SocketAddr>,
    /// When the connection was made (ms since the epoch).
    pub established_ms: i64,
    /// Packets waiting to go out, and their size as ZooKeeper counts it.
    pub queued: AtomicI64,
    pub queued_bytes: AtomicI64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    /// REQUESTs received (writes and syncs a follower forwards).
    pub requests: AtomicU64,
    /// The zxid of the last packet sent that carried one (-1: none since the last reset).
    pub last_zxid: AtomicI64,
    /// On a learner's connection to us (a LearnerHandler's in ZooKeeper), the learner's
    /// queue summaries, and the packets queued and sent so far with the times at which
    /// every 1,000th was queued (ZooKeeper's marker packets).
    learner: std::sync::OnceLock<Arc<LearnerQueue>>,
    queued_seq: AtomicU64,
    sent_seq: AtomicU64,
    marks: Mutex<std::collections::VecDeque<(u64, std::time::Instant)>>,
    /// The packet the first of `marks` follows (`u64::MAX`: none), read without the lock.
    next_mark: AtomicU64,
}

/// ZooKeeper's per-learner queue summaries, kept by learner id for the server's life:
/// `learner_handler_qp_size` (the packets left in the queue as each goes out) and
/// `learner_handler_qp_time_ms` (how long every 1,000th packet waited in it).
#[derive(Debug)]
pub struct LearnerQueue {
    size: [AtomicU64; 4],
    pub time: Mutex<crate::metrics::Sampled>,
}

impl Default for LearnerQueue {
    fn default() -> Self {
        LearnerQueue {
            size: [
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(u64::MAX),
                AtomicU64::new(0),
            ],
            time: Mutex::default(),
        }
    }
}

impl LearnerQueue {
    /// A queue length, counted without a lock (a learner's every packet counts).
    fn add_size(&self, v: u64) {
        let [cnt, sum, min, max] = &self.size;
        cnt.fetch_add(1, Ordering::Relaxed);
        sum.fetch_add(v, Ordering::Relaxed);
        min.fetch_min(v, Ordering::Relaxed);
        max.fetch_max(v, Ordering::Relaxed);
    }

    /// `learner_handler_qp_size` so far (None before the first packet).
    pub fn size(&self) -> Option<crate::metrics::Basic> {
        let [cnt, sum, min, max] = &self.size;
        let cnt = cnt.load(Ordering::Relaxed);
        (cnt > 0).then(|| crate::metrics::Basic {
            cnt,
            sum: sum.load(Ordering::Relaxed),
            min: min.load(Ordering::Relaxed),
            max: max.load(Ordering::Relaxed),
        })
    }
}

/// ZooKeeper's `markerPacketInterval`.
const MARKER_INTERVAL: u64 = 1000;

impl LinkStats {
    pub fn new(remote: Option<SocketAddr>) -> Arc<Self> {
        Arc::new(LinkStats {
            remote,
            established_ms: crate::core::now_ms(),
            queued: AtomicI64::new(0),
            queued_bytes: AtomicI64::new(0),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            last_zxid: AtomicI64::new(-1),
            learner: std::sync::OnceLock::new(),
            queued_seq: AtomicU64::new(0),
            sent_seq: AtomicU64::new(0),
            marks: Mutex::new(std::collections::VecDeque::new()),
            next_mark: AtomicU64::new(u64::MAX),
        })
    }

    /// The connection is a learner's: its queue counts in the learner's summaries.
    fn attach(&self, queue: Arc<LearnerQueue>) {
        let _ = self.learner.set(queue);
    }

    /// A packet's size as ZooKeeper's LearnerHandler counts its queue: type, zxid, two
    /// references, and the data.
    fn size(p: &QuorumPacket) -> i64 {
        28 + p.data.as_ref().map_or(0, |d| d.len() as i64)
    }

    fn queued(&self, p: &QuorumPacket) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.queued_bytes
            .fetch_add(Self::size(p), Ordering::Relaxed);
        if self.learner.get().is_some() {
            let n = self.queued_seq.fetch_add(1, Ordering::Relaxed);
            if n.is_multiple_of(MARKER_INTERVAL) {
                let mut marks = lock(&self.marks);
                marks.push_back((n, std::time::Instant::now()));
                if marks.len() == 1 {
                    self.next_mark.store(n, Ordering::Relaxed);
                }
            }
        }
    }

    /// `p` left the queue and was written.
    fn sent(&self, p: &QuorumPacket) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.queued_bytes
            .fetch_sub(Self::size(p), Ordering::Relaxed);
        self.sent.fetch_add(1, Ordering::Relaxed);
        if p.zxid > 0 {
            self.last_zxid.store(p.zxid, Ordering::Relaxed);
        }
        let Some(queue) = self.learner.get() else {
            return;
        };
        let left = self.queued.load(Ordering::Relaxed).max(0) as u64;
        queue.add_size(left);
        let n = self.sent_seq.fetch_add(1, Ordering::Relaxed);
        if self.next_mark.load(Ordering::Relaxed) != n {
            return;
        }
        let mut marks = lock(&self.marks);
        if let Some((_, at)) = marks.pop_front() {
            // The marker behind this packet leaves the queue too (and counts as a poll).
            queue.add_size(left);
            lock(&queue.time).add(at.elapsed().as_millis() as u64);
        }
        let next = marks.front().map_or(u64::MAX, |(m, _)| *m);
        self.next_mark.store(next, Ordering::Relaxed);
    }

    /// `observer_connection_stat_reset`: ZooKeeper's resetObserverConnectionStats.
    pub fn reset(&self) {
        self.received.store(0, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
        self.last_zxid.store(-1, Ordering::Relaxed);
    }
}
/// The membership in effect: a reconfig replaces it.
type Membership = Arc<Mutex<Arc<Ensemble>>>;

/// A lock, taken even if a thread panicked holding it (the data are counters and queues).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Connections to the other members.
pub struct Peers {
    wire: Wire,
    ensemble: Membership,
    election: Senders<Notification>,
    quorum: QuorumLinks,
    core: mpsc::Sender<CoreMsg>,
    rt: tokio::runtime::Handle,
    generation: Arc<AtomicU64>,
    incoming: Arc<Incoming>,
    learner_queues: LearnerQueues,
    /// `observerMasterPort` (0: none).
    observer_master_port: u16,
}

impl Peers {
    /// Binds the election and quorum ports (and `observerMasterPort`, given one) and starts
    /// dialing the other members.
    pub async fn start(
        ensemble: Arc<Ensemble>,
        core: mpsc::Sender<CoreMsg>,
        listen_all: bool,
        wire: Wire,
        incoming: Arc<Incoming>,
        observer_master_port: u16,
    ) -> std::io::Result<Self> {
        let me = ensemble.me().clone();
        let bind = |port: u16| -> std::io::Result<SocketAddr> {
            if listen_all {
                return Ok(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port));
            }
            let addr = if port == me.election_port {
                me.election_addr()
            } else {
                me.quorum_addr()
            };
            addr.ok_or_else(|| std::io::Error::other(format!("cannot resolve {}", me.host)))
        };
        let election_listener = bind_retry(bind(me.election_port)?).await?;
        let quorum_listener = bind_retry(bind(me.quorum_port)?).await?;
        // Observers register here with a follower as with the leader on its quorum port
        // (ZooKeeper's ObserverMaster, on the quorum address's host).
        let master_listener = match observer_master_port {
            0 => None,
            port => {
                let mut addr = bind(me.quorum_port)?;
                addr.set_port(port);
                Some(bind_retry(addr).await?)
            }
        };
        let peers = Peers {
            wire,
            ensemble: Arc::new(Mutex::new(ensemble.clone())),
            election: Arc::default(),
            quorum: Arc::default(),
            core,
            rt: tokio::runtime::Handle::current(),
            generation: Arc::default(),
            incoming,
            learner_queues: Arc::default(),
            observer_master_port,
        };
        tokio::spawn(accept_election(election_listener, peers.clone_parts()));
        tokio::spawn(accept_quorum(quorum_listener, peers.clone_parts()));
        if let Some(listener) = master_listener {
            tokio::spawn(accept_quorum(listener, peers.clone_parts()));
        }
        for m in ensemble.members.values().filter(|m| m.id != ensemble.me) {
            tokio::spawn(reach(m.id, ensemble.me, peers.clone_parts()));
        }
        Ok(peers)
    }

    fn clone_parts(&self) -> Parts {
        Parts {
            wire: self.wire.clone(),
            ensemble: self.ensemble.clone(),
            election: self.election.clone(),
            quorum: self.quorum.clone(),
            core: self.core.clone(),
            generation: self.generation.clone(),
            incoming: self.incoming.clone(),
            learner_queues: self.learner_queues.clone(),
        }
    }

    /// The queue summaries of the learners that connected to this member, by id.
    pub fn learner_queues(&self) -> Vec<(Sid, Arc<LearnerQueue>)> {
        lock(&self.learner_queues)
            .iter()
            .map(|(sid, q)| (*sid, q.clone()))
            .collect()
    }

    /// A reconfig changed the membership: reach the new members (see [`reach`]); the tasks
    /// of members that left stop.
    pub fn set_ensemble(&self, new: Arc<Ensemble>) {
        let old = std::mem::replace(&mut *lock(&self.ensemble), new.clone());
        for m in new.members.values() {
            if m.id != new.me && !old.members.contains_key(&m.id) {
                self.rt.spawn(reach(m.id, new.me, self.clone_parts()));
            }
        }
    }

    /// Sends a message; dropped when there is no connection (elections resend, and a
    /// broken quorum connection is reported by its task).
    pub fn send(&self, to: Sid, msg: Msg) {
        match msg {
            Msg::Vote(n) => {
                if let Some((_, tx)) = lock(&self.election).get(&to) {
                    let _ = tx.send(n);
                }
            }
            Msg::Packet(p) => {
                if let Some((_, tx, stats)) = lock(&self.quorum).get(&to) {
                    stats.queued(&p);
                    let _ = tx.send(Outgoing::Packet(p));
                }
            }
        }
    }

    /// Sends a SNAP (see [`Outgoing::Snapshot`]); the packets sent after it wait for its
    /// last piece.
    pub fn send_snapshot(&self, to: Sid, head: QuorumPacket, pieces: crate::snapshot::SnapChunks) {
        if let Some((_, tx, stats)) = lock(&self.quorum).get(&to) {
            stats.queued(&head);
            let _ = tx.send(Outgoing::Snapshot { head, pieces });
        }
    }

    /// The file a SNAP's data stands for ([`Incoming`]), if it does.
    pub fn incoming_file(&self, data: &[u8]) -> Option<&Path> {
        self.incoming.file_of(data)
    }

    /// The counters of the quorum connection with `sid`, if there is one.
    pub fn link_stats(&self, sid: Sid) -> Option<Arc<LinkStats>> {
        lock(&self.quorum).get(&sid).map(|(_, _, s)| s.clone())
    }

    /// Is there a quorum connection (or one being made) to `sid`?
    pub fn connected_to(&self, sid: Sid) -> bool {
        lock(&self.quorum).contains_key(&sid)
    }

    /// Closes the quorum connection to `sid`, discarding what was queued on it.
    pub fn disconnect(&self, sid: Sid) {
        lock(&self.quorum).remove(&sid);
    }

    /// Connects to `leader`'s quorum port (an observer with `observerMasterPort`: that port
    /// on the member's host, the learner master it registers with). Messages sent meanwhile
    /// wait for the connection.
    pub fn follow(&self, leader: Sid) {
        let ensemble = lock(&self.ensemble).clone();
        let Some(m) = ensemble.members.get(&leader) else {
            return;
        };
        let observer = ensemble
            .members
            .get(&ensemble.me)
            .is_some_and(|m| m.observer);
        let addr = match (observer, self.observer_master_port) {
            (true, port) if port > 0 => m.quorum_addr().map(|mut a| {
                a.set_port(port);
                a
            }),
            _ => m.quorum_addr(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let gen = self.generation.fetch_add(1, Ordering::Relaxed);
        let stats = LinkStats::new(None);
        lock(&self.quorum).insert(leader, (gen, tx, stats.clone()));
        let parts = self.clone_parts();
        let host = m.host.clone();
        self.rt.spawn(async move {
            let mut link = None;
            for _ in 0..20 {
                if let Some(addr) = addr {
                    if let Ok((mut rd, mut wr)) = parts.wire.connect(addr, &host).await {
                        let to = format!("leader {leader}");
                        if parts
                            .wire
                            .log_in(&mut rd, &mut wr, &to, &host)
                            .await
                            .is_ok()
                        {
                            link = Some((rd, wr));
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match link {
                Some((rd, wr)) => {
                    let link = Link {
                        sid: leader,
                        gen,
                        stats,
                    };
                    pump(link, rd, wr, Vec::new(), rx, parts).await
                }
                None => parts.quorum_closed(leader, gen).await,
            }
        });
    }
}

#[derive(Clone)]
struct Parts {
    wire: Wire,
    ensemble: Membership,
    election: Senders<Notification>,
    quorum: QuorumLinks,
    core: mpsc::Sender<CoreMsg>,
    generation: Arc<AtomicU64>,
    incoming: Arc<Incoming>,
    learner_queues: LearnerQueues,
}

/// The queue summaries of the learners that connected to this member, by id.
type LearnerQueues = Arc<Mutex<std::collections::BTreeMap<Sid, Arc<LearnerQueue>>>>;

impl Parts {
    fn ensemble(&self) -> Arc<Ensemble> {
        lock(&self.ensemble).clone()
    }
    /// Hands a peer's message to the core; false once the core is gone (the server stops).
    async fn deliver(&self, from: Sid, msg: Msg) -> bool {
        self.core.send(CoreMsg::Peer { from, msg }).await.is_ok()
    }

    async fn quorum_closed(&self, sid: Sid, gen: u64) {
        let ours = {
            let mut map = lock(&self.quorum);
            match map.get(&sid) {
                Some((g, _, _)) if *g == gen => {
                    map.remove(&sid);
                    true
                }
                _ => false,
            }
        };
        if ours {
            let _ = self.core.send(CoreMsg::PeerDisconnected { sid }).await;
        }
    }
}

async fn bind_retry(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..10 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")))
}

async fn accept_election(listener: TcpListener, parts: Parts) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let parts = parts.clone();
        tokio::spawn(async move {
            let Ok((mut rd, mut wr)) = parts.wire.accept(stream).await else {
                return;
            };
            let Ok((sid, addr)) = read_initial(&mut rd).await else {
                return;
            };
            let from = format!("server {sid}");
            let Ok(rd) = parts.wire.check_login(rd, &mut wr, &from).await else {
                return;
            };
            // Only the connection started by the larger id survives; we dial smaller ids.
            // Servers outside the membership (one joining through a reconfig) are answered
            // too: a smaller one is dialed back at the address it gave, as ZooKeeper's
            // QuorumCnxManager does.
            let ensemble = parts.ensemble();
            if sid == ensemble.me {
                return;
            }
            if sid < ensemble.me {
                let connected = lock(&parts.election).contains_key(&sid);
                if !ensemble.members.contains_key(&sid) && !connected {
                    if let Some(addr) = addr {
                        drop((rd, wr));
                        dial_once(sid, &addr, &parts).await;
                    }
                }
                return;
            }
            election_connection(sid, rd, wr, parts).await;
        });
    }
}

/// The sid of an InitialMessage and, from 3.5's protocol, the election address it gives
/// (`host:port`, the first of several separated by `|`).
async fn read_initial(rd: &mut Rd) -> std::io::Result<(Sid, Option<String>)> {
    let first = rd.read_i64().await?;
    if first >= 0 {
        return Ok((first as Sid, None)); // pre-3.5: the sid alone
    }
    let sid = rd.read_i64().await?;
    let len = rd.read_i32().await?;
    if !(0..=2048).contains(&len) {
        return Err(std::io::Error::other("bad initial message"));
    }
    let mut addr = vec![0u8; len as usize];
    rd.read_exact(&mut addr).await?;
    let addr = String::from_utf8(addr)
        .ok()
        .and_then(|a| a.split('|').next().map(str::to_string))
        .filter(|a| !a.is_empty());
    Ok((sid as Sid, addr))
}

/// Connects to `sid`'s election port at `addr`, says who we are, and runs the connection.
async fn dial_once(sid: Sid, addr: &str, parts: &Parts) {
    let me = parts.ensemble().me().clone();
    if let Ok((mut rd, mut wr)) = parts.wire.dial(addr).await {
        if send(&mut wr, &initial_message(&me)).await.is_ok()
            && parts
                .wire
                .log_in(&mut rd, &mut wr, &format!("server {sid}"), host_of(addr))
                .await
                .is_ok()
        {
            election_connection(sid, rd, wr, parts.clone()).await;
        }
    }
}

/// Keeps in touch with member `sid` while it is one: we dial a smaller id; a larger one dials
/// us, and we knock while it has not (it may not know us: a server joining through a
/// reconfig, or one a reconfig removed).
async fn reach(sid: Sid, me: Sid, parts: Parts) {
    if sid < me {
        return dial_election(sid, parts).await;
    }
    loop {
        let ensemble = parts.ensemble();
        let Some(m) = ensemble.members.get(&sid) else {
            return;
        };
        if !lock(&parts.election).contains_key(&sid) {
            let addr = m.election_target();
            knock(&parts.wire, &addr, ensemble.me()).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Our InitialMessage on a connection we close at once: a larger id that does not know us
/// dials back at the address it names.
async fn knock(wire: &Wire, addr: &str, me: &crate::ensemble::Member) {
    if let Ok((mut rd, mut wr)) = wire.dial(addr).await {
        if send(&mut wr, &initial_message(me)).await.is_ok() {
            let _ = wire.log_in(&mut rd, &mut wr, addr, host_of(addr)).await;
        }
        let _ = wr.shutdown().await;
    }
}

/// The data length of a packet at the start of `b` that carries at least [`WRITE_DIRECT`]
/// bytes of data, read from its header (type, zxid, data length).
fn large_data_len(b: &[u8]) -> Option<usize> {
    let len = i32::from_be_bytes(b.get(12..16)?.try_into().ok()?);
    usize::try_from(len).ok().filter(|&l| l >= WRITE_DIRECT)
}

/// A large packet (a SNAP's snapshot) at `start` of `buf`, once whole, taken with its data
/// left where it was read: `buf`'s own allocation becomes the data, and `buf` what follows
/// it. Decoding would copy it (a million znodes: some 200 MB twice). Only a packet without
/// authinfo, as members send them; others decode as usual.
fn take_large(buf: &mut Vec<u8>, start: usize) -> Option<QuorumPacket> {
    let b = buf.get(start..)?;
    let len = large_data_len(b)?;
    let end = 16 + len;
    if b.get(end..end + 4)? != (-1i32).to_be_bytes() {
        return None;
    }
    let type_ = i32::from_be_bytes(b[0..4].try_into().ok()?);
    let zxid = i64::from_be_bytes(b[4..12].try_into().ok()?);
    let rest = buf.split_off(start + end + 4);
    buf.truncate(start + end);
    buf.drain(..start + 16);
    let data = std::mem::replace(buf, rest);
    Some(QuorumPacket {
        type_,
        zxid,
        data: Some(data),
        authinfo: None,
    })
}

/// After a read's whole packets left `buf`: room for all of a large packet whose start it
/// holds, in one allocation (growing by doubling would hold two copies while it moves);
/// else, once done with one, no more than a read's worth kept.
fn size_read_buffer(buf: &mut Vec<u8>) {
    const KEEP: usize = 1 << 20;
    match large_data_len(buf) {
        Some(len) => {
            let whole = 16 + len + 4;
            if buf.capacity() < whole {
                buf.reserve_exact(whole - buf.len());
            }
        }
        None if buf.capacity() > KEEP && buf.len() <= KEEP => buf.shrink_to(KEEP),
        None => {}
    }
}

/// A packet carrying at least this much data (a SNAP's snapshot) is written from its own
/// buffer rather than copied into the batch's.
const WRITE_DIRECT: usize = 1 << 20;

/// Writes the batch so far, then `p` with its data written from where it is (a snapshot
/// of a million znodes is some 200 MB: copying it would double what the leader holds);
/// `batch` is left holding the packet's tail, for the packets after it.
async fn send_large(wr: &mut Wr, batch: &mut Vec<u8>, p: QuorumPacket) -> std::io::Result<()> {
    let data = p.data.as_deref().unwrap_or_default();
    p.type_.encode(batch);
    p.zxid.encode(batch);
    i32::try_from(data.len())
        .map_err(|_| std::io::Error::other("a packet of 2 GiB or more"))?
        .encode(batch);
    wr.write_all(batch).await?;
    wr.write_all(data).await?;
    batch.clear();
    jute::codec::write_vector(batch, p.authinfo.as_deref());
    Ok(())
}

/// Writes the batch so far, then a SNAP and its snapshot as its pieces come: for a zkrs
/// learner (`head` a SNAP) the packet tagged [`crate::zab::CHUNKED_SNAP_TAG`], then each
/// piece as a frame (its length, then it), then a frame of length 0; for a ZooKeeper one
/// (SNAP_STREAMED), as ZooKeeper's leader writes it: the packet without data, then the
/// snapshot on the stream. An error when the snapshot broke off before its end.
async fn send_snapshot(
    wr: &mut Wr,
    batch: &mut Vec<u8>,
    head: QuorumPacket,
    mut pieces: crate::snapshot::SnapChunks,
) -> std::io::Result<(usize, usize)> {
    let framed = head.type_ == packet::SNAP;
    QuorumPacket {
        type_: packet::SNAP,
        zxid: head.zxid,
        // The tag, then the leader's estimate of the snapshot's size (the head's data).
        data: framed.then(|| {
            let mut tag = crate::zab::CHUNKED_SNAP_TAG.to_vec();
            tag.extend_from_slice(head.data.as_deref().unwrap_or_default());
            tag
        }),
        authinfo: None,
    }
    .encode(batch);
    wr.write_all(batch).await?;
    batch.clear();
    let (mut bytes, mut count) = (0, 0);
    loop {
        match pieces.recv().await {
            Some(Some(piece)) => {
                bytes += piece.len();
                count += 1;
                if framed {
                    let len = i32::try_from(piece.len())
                        .map_err(|_| std::io::Error::other("a snapshot piece of 2 GiB"))?;
                    wr.write_all(&len.to_be_bytes()).await?;
                }
                wr.write_all(&piece).await?;
            }
            Some(None) => break,
            None => return Err(std::io::Error::other("the snapshot broke off")),
        }
    }
    if framed {
        wr.write_all(&0i32.to_be_bytes()).await?;
    }
    Ok((bytes, count))
}

/// Largest frame of a snapshot in pieces a learner takes (the leader's are about
/// [`crate::snapshot::PIECE`]).
const MAX_SNAP_FRAME: usize = 64 << 20;

/// Where a learner writes a zkrs leader's snapshot in frames as it arrives (the learner
/// never holds it whole), and the token its SNAP then goes to the core with: the core
/// installs from the file only a SNAP whose data is the token, which no peer knows.
pub struct Incoming {
    path: PathBuf,
    token: [u8; 16],
}

impl Incoming {
    /// At start: a file left there is a transfer or an install that a crash cut short (the
    /// store's own mark covers the install), so it goes; it may be as large as a snapshot.
    pub fn new(path: PathBuf) -> Arc<Self> {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!("removed {}, left by a snapshot cut short", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
        }
        let mut token = [0u8; 16];
        if getrandom::getrandom(&mut token).is_err() {
            // No OS randomness: the clock's nanoseconds, which a peer does not see either.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            token = nanos.to_le_bytes();
        }
        Arc::new(Incoming { path, token })
    }

    /// The file a SNAP's data stands for, if it is the token.
    pub fn file_of(&self, data: &[u8]) -> Option<&Path> {
        (data == self.token).then_some(self.path.as_path())
    }
}

/// A zkrs leader's snapshot arriving in frames after its SNAP ([`send_snapshot`]): their
/// bytes written to the [`Incoming`] file; a snapshot cut short is removed.
struct Frames {
    zxid: i64,
    file: std::fs::File,
    incoming: Arc<Incoming>,
    whole: bool,
}

impl Frames {
    /// Is `p` (a SNAP) a zkrs leader's, its snapshot in frames? (Its data: the tag, then the
    /// size the leader expects, which a learner writing to a file has no use for.)
    fn tagged(p: &QuorumPacket) -> bool {
        p.data
            .as_deref()
            .is_some_and(|d| d.starts_with(crate::zab::CHUNKED_SNAP_TAG))
    }

    /// Ready for the frames after `p`, in a fresh file.
    fn new(p: &QuorumPacket, incoming: &Arc<Incoming>) -> Result<Self, String> {
        let file = std::fs::File::create(&incoming.path)
            .map_err(|e| format!("{}: {e}", incoming.path.display()))?;
        Ok(Frames {
            zxid: p.zxid,
            file,
            incoming: incoming.clone(),
            whole: false,
        })
    }

    /// Takes the whole frames at the start of `bytes`: how many bytes they took, and the
    /// SNAP once the frame of length 0 ended it.
    fn take(&mut self, bytes: &[u8]) -> Result<(usize, Option<QuorumPacket>), String> {
        let mut at = 0;
        loop {
            let Some(len) = bytes.get(at..at + 4) else {
                return Ok((at, None));
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            if len == 0 {
                self.whole = true;
                let snap = QuorumPacket {
                    type_: packet::SNAP,
                    zxid: self.zxid,
                    data: Some(self.incoming.token.to_vec()),
                    authinfo: None,
                };
                return Ok((at + 4, Some(snap)));
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= MAX_SNAP_FRAME)
                .ok_or_else(|| format!("a snapshot frame of length {len}"))?;
            let Some(piece) = bytes.get(at + 4..at + 4 + len) else {
                return Ok((at, None));
            };
            std::io::Write::write_all(&mut self.file, piece)
                .map_err(|e| format!("{}: {e}", self.incoming.path.display()))?;
            at += 4 + len;
        }
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        if !self.whole {
            let _ = std::fs::remove_file(&self.incoming.path);
        }
    }
}

/// A ZooKeeper leader's snapshot at the start of `bytes`, once whole: the SNAP packet the
/// core takes (zkrs's encoding as data) and how many bytes it took on the stream.
fn streamed_snapshot(
    bytes: &[u8],
    zxid: i64,
    scan: &mut crate::import::SnapScan,
) -> Result<Option<(QuorumPacket, usize)>, String> {
    let Some(len) = scan.scan(bytes).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let data = crate::import::snap_from_zookeeper(zxid, &bytes[..len])?;
    Ok(Some((
        QuorumPacket {
            type_: packet::SNAP,
            zxid,
            data: Some(data),
            authinfo: None,
        },
        len,
    )))
}

/// Writes `bytes` and flushes them (TLS holds what is written until flushed).
async fn send(wr: &mut Wr, bytes: &[u8]) -> std::io::Result<()> {
    wr.write_all(bytes).await?;
    wr.flush().await
}

fn initial_message(me: &crate::ensemble::Member) -> Vec<u8> {
    InitialMessage {
        protocol_version: PROTOCOL_V1,
        sid: me.id as i64,
        election_address: Some(me.election_target().into_bytes()),
    }
    .to_bytes()
}

/// Keeps a connection to member `sid` while it is one.
async fn dial_election(sid: Sid, parts: Parts) {
    loop {
        let ensemble = parts.ensemble();
        let Some(m) = ensemble.members.get(&sid) else {
            return; // a reconfig removed it
        };
        let addr = m.election_target();
        dial_once(sid, &addr, &parts).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Reads length-prefixed notifications from `sid` and writes ours, until the connection breaks.
async fn election_connection(sid: Sid, mut rd: Rd, mut wr: Wr, parts: Parts) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Notification>();
    let gen = parts.generation.fetch_add(1, Ordering::Relaxed);
    lock(&parts.election).insert(sid, (gen, tx));
    let writer = tokio::spawn(async move {
        while let Some(n) = rx.recv().await {
            let mut out = Vec::new();
            jute::frame::write(&mut out, |o| n.encode(o));
            if send(&mut wr, &out).await.is_err() {
                break;
            }
        }
    });
    while let Ok(len) = rd.read_i32().await {
        let Ok(len) = usize::try_from(len) else { break };
        if len == 0 || len > MAX_ELECTION_MSG {
            break;
        }
        let mut buf = vec![0u8; len];
        if rd.read_exact(&mut buf).await.is_err() {
            break;
        }
        // Shorter, older notification forms are ignored rather than guessed at.
        let Ok(n) = Notification::from_bytes(&buf) else {
            continue;
        };
        if !parts.deliver(sid, Msg::Vote(n)).await {
            break;
        }
    }
    writer.abort();
    let mut map = lock(&parts.election);
    if map.get(&sid).is_some_and(|(g, _)| *g == gen) {
        map.remove(&sid);
    }
}

async fn accept_quorum(listener: TcpListener, parts: Parts) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let parts = parts.clone();
        tokio::spawn(async move {
            let Ok((rd, mut wr)) = parts.wire.accept(stream).await else {
                return;
            };
            let from = format!("learner {peer}");
            let Ok(rd) = parts.wire.check_login(rd, &mut wr, &from).await else {
                return;
            };
            let (tx, rx) = mpsc::unbounded_channel();
            // The learner's id comes with its first packet (FOLLOWERINFO / OBSERVERINFO).
            learner_connection(rd, wr, tx, rx, LinkStats::new(Some(peer)), parts).await;
        });
    }
}

/// Reads the whole QuorumPacket record at `buf[*start..]`, if there is one, and moves `start`
/// past it. The caller drops the consumed bytes once per read: dropping them per packet moved
/// the rest of the buffer each time, quadratic in the packets one read brings (a busy
/// leader's stream of proposals spent a seventh of an ensemble's CPU in that memmove).
fn next_packet(buf: &[u8], start: &mut usize) -> Result<Option<QuorumPacket>, DecodeError> {
    let mut r = Reader::with_limit(&buf[*start..], usize::MAX >> 2);
    match QuorumPacket::decode(&mut r) {
        Ok(p) => {
            *start += r.position();
            Ok(Some(p))
        }
        Err(DecodeError::Incomplete { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn learner_connection(
    mut rd: Rd,
    wr: Wr,
    tx: mpsc::UnboundedSender<Outgoing>,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    stats: Arc<LinkStats>,
    parts: Parts,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // The first packet names the learner.
    let first = loop {
        let mut start = 0;
        match next_packet(&buf, &mut start) {
            Ok(Some(p)) => {
                buf.drain(..start);
                break p;
            }
            Ok(None) => {}
            Err(_) => return,
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let sid = first
        .data
        .as_deref()
        .and_then(|d| jute::quorum::LearnerInfo::from_bytes(d).ok())
        .map(|i| i.serverid as Sid);
    // Any server may follow: one outside the membership is a non-voting follower (a server
    // joining through a reconfig syncs so before it is added; one removed goes on so).
    let Some(sid) = sid.filter(|s| *s != parts.ensemble().me) else {
        return;
    };
    let gen = parts.generation.fetch_add(1, Ordering::Relaxed);
    stats.received.fetch_add(1, Ordering::Relaxed);
    stats.attach(lock(&parts.learner_queues).entry(sid).or_default().clone());
    lock(&parts.quorum).insert(sid, (gen, tx, stats.clone()));
    if !parts.deliver(sid, Msg::Packet(first)).await {
        return;
    }
    pump(Link { sid, gen, stats }, rd, wr, buf, rx, parts).await;
}

/// Which quorum connection a [`pump`] moves: the member, the connection's generation (see
/// [`Parts::quorum_closed`]) and its counters.
struct Link {
    sid: Sid,
    gen: u64,
    stats: Arc<LinkStats>,
}

/// Moves packets both ways on a quorum connection until it breaks or is dropped.
async fn pump(
    link: Link,
    mut rd: Rd,
    mut wr: Wr,
    mut buf: Vec<u8>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    parts: Parts,
) {
    let Link { sid, gen, stats } = link;
    let mut chunk = vec![0u8; 256 * 1024];
    // One buffer for every batch of outgoing packets (grown once, not per batch).
    let mut bytes = Vec::new();
    // A ZooKeeper leader's snapshot being read: the SNAP's zxid, and how far it has come.
    let mut streamed: Option<(i64, crate::import::SnapScan)> = None;
    // A zkrs leader's snapshot being read in frames.
    let mut framed: Option<Frames> = None;
    'conn: loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(p) = out else { break };
                bytes.clear();
                let mut next = Some(p);
                while let Some(out) = next.take() {
                    let p = match out {
                        Outgoing::Packet(p) => p,
                        Outgoing::Snapshot { head, pieces } => {
                            stats.sent(&head);
                            let (zxid, kind) = match head.type_ == packet::SNAP {
                                true => (head.zxid, "zkrs's"),
                                false => (head.zxid, "ZooKeeper's"),
                            };
                            match send_snapshot(&mut wr, &mut bytes, head, pieces).await {
                                Ok((size, count)) => tracing::info!(
                                    "sent member {sid} a snapshot at {zxid:#x} in {kind} format: \
                                     {size} bytes in {count} pieces"
                                ),
                                Err(e) => {
                                    tracing::warn!("sending member {sid} a snapshot: {e}");
                                    break 'conn;
                                }
                            }
                            next = rx.try_recv().ok();
                            continue;
                        }
                    };
                    stats.sent(&p);
                    if p.data.as_ref().is_some_and(|d| d.len() >= WRITE_DIRECT) {
                        if send_large(&mut wr, &mut bytes, p).await.is_err() {
                            break 'conn;
                        }
                    } else {
                        p.encode(&mut bytes);
                    }
                    next = rx.try_recv().ok();
                }
                if send(&mut wr, &bytes).await.is_err() {
                    break;
                }
                if bytes.capacity() > 4 << 20 {
                    bytes = Vec::new();
                }
            }
            n = rd.read(&mut chunk) => {
                let n = match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                // Every whole packet of this read goes to the core in one message.
                let mut start = 0;
                let mut packets = Vec::new();
                let broken = loop {
                    if let Some(frames) = framed.as_mut() {
                        match frames.take(&buf[start..]) {
                            Ok((len, snap)) => {
                                start += len;
                                let Some(snap) = snap else { break false };
                                packets.push(snap);
                                framed = None;
                            }
                            Err(e) => {
                                tracing::warn!("member {sid}'s snapshot: {e}");
                                break true;
                            }
                        }
                    }
                    if let Some((zxid, scan)) = streamed.as_mut() {
                        match streamed_snapshot(&buf[start..], *zxid, scan) {
                            Ok(Some((p, len))) => {
                                packets.push(p);
                                start += len;
                                streamed = None;
                            }
                            Ok(None) => break false,
                            Err(e) => {
                                tracing::warn!("member {sid}'s snapshot: {e}");
                                break true;
                            }
                        }
                    }
                    if let Some(p) = take_large(&mut buf, start) {
                        packets.push(p);
                        start = 0;
                        continue;
                    }
                    match next_packet(&buf, &mut start) {
                        // ZooKeeper's leader: its snapshot follows on the stream.
                        Ok(Some(p)) if p.type_ == packet::SNAP && p.data.is_none() => {
                            streamed = Some((p.zxid, crate::import::SnapScan::default()));
                        }
                        // A zkrs leader's: its snapshot follows in frames.
                        Ok(Some(p)) if p.type_ == packet::SNAP && Frames::tagged(&p) => {
                            match Frames::new(&p, &parts.incoming) {
                                Ok(frames) => framed = Some(frames),
                                Err(e) => {
                                    tracing::warn!("member {sid}'s snapshot: {e}");
                                    break true;
                                }
                            }
                        }
                        Ok(Some(p)) => packets.push(p),
                        Ok(None) => break false,
                        Err(_) => break true,
                    }
                };
                stats.received.fetch_add(packets.len() as u64, Ordering::Relaxed);
                let requests = packets.iter().filter(|p| p.type_ == packet::REQUEST).count();
                stats.requests.fetch_add(requests as u64, Ordering::Relaxed);
                if !packets.is_empty()
                    && parts.core.send(CoreMsg::Packets { from: sid, packets }).await.is_err()
                {
                    break 'conn;
                }
                if broken {
                    break 'conn;
                }
                buf.drain(..start);
                if streamed.is_none() && framed.is_none() {
                    size_read_buffer(&mut buf);
                }
            }
        }
    }
    parts.quorum_closed(sid, gen).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(type_: i32, zxid: i64, data: Option<Vec<u8>>) -> QuorumPacket {
        QuorumPacket {
            type_,
            zxid,
            data,
            authinfo: None,
        }
    }

    /// What the read loop does with the bytes it has: the whole packets, in order.
    fn read_all(buf: &mut Vec<u8>) -> Vec<QuorumPacket> {
        let mut start = 0;
        let mut out = Vec::new();
        loop {
            if let Some(p) = take_large(buf, start) {
                out.push(p);
                start = 0;
                continue;
            }
            match next_packet(buf, &mut start) {
                Ok(Some(p)) => out.push(p),
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
        buf.drain(..start);
        size_read_buffer(buf);
        out
    }

    #[test]
    fn a_large_packet_is_taken_whole_without_a_copy_and_the_stream_goes_on() {
        let big: Vec<u8> = (0..WRITE_DIRECT + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        let sent = [
            packet(3, 7, Some(b"small".to_vec())),
            packet(15, 0x1_0000_0002, Some(big.clone())),
            packet(5, 8, None),
            packet(2, 9, Some(vec![1; 10])),
        ];
        let mut wire = Vec::new();
        for p in &sent {
            p.encode(&mut wire);
        }
        // Arriving in pieces of every size around the packets' edges.
        for piece in [1, 7, 4096, 65_536, 1 << 20, wire.len()] {
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(piece) {
                buf.extend_from_slice(chunk);
                got.extend(read_all(&mut buf));
            }
            assert!(buf.is_empty(), "piece {piece}");
            assert_eq!(got, sent, "piece {piece}");
            // Done with the large one, the buffer lets its room go.
            assert!(buf.capacity() <= 1 << 20, "piece {piece}");
        }
        // With the large packet's start read, there is room for all of it at once.
        let mut buf = wire[..25 + 16].to_vec();
        assert_eq!(read_all(&mut buf).len(), 1);
        assert!(buf.capacity() >= 16 + big.len() + 4);
        // A large packet with authinfo decodes as any other.
        let mut with_auth = packet(15, 1, Some(big));
        with_auth.authinfo = Some(vec![jute::data::Id {
            scheme: "digest".into(),
            id: "a".into(),
        }]);
        let mut buf = Vec::new();
        with_auth.encode(&mut buf);
        assert_eq!(read_all(&mut buf), vec![with_auth]);
    }

    #[test]
    fn a_snapshot_in_frames_is_written_to_its_file_from_every_cut_and_the_stream_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let incoming = Incoming::new(dir.path().join("incoming"));
        let snapshot: Vec<u8> = (0..300_000).map(|i| (i % 253) as u8).collect();
        let mut hint = crate::zab::CHUNKED_SNAP_TAG.to_vec();
        hint.extend_from_slice(&(snapshot.len() as u64).to_be_bytes());
        let head = packet(packet::SNAP, 0x2_0000_0007, Some(hint));
        assert!(Frames::tagged(&head));
        assert!(!Frames::tagged(&packet(packet::SNAP, 1, Some(vec![0; 40]))));
        // Frames of uneven sizes, the end frame, then a packet.
        let mut wire = Vec::new();
        for piece in snapshot.chunks(70_001) {
            wire.extend_from_slice(&(piece.len() as i32).to_be_bytes());
            wire.extend_from_slice(piece);
        }
        wire.extend_from_slice(&0i32.to_be_bytes());
        let after = packet(packet::PROPOSAL, 0x2_0000_0008, Some(b"txn".to_vec()));
        after.encode(&mut wire);
        for cut in [1, 3, 4, 5, 1000, 70_005, wire.len()] {
            let mut frames = Frames::new(&head, &incoming).unwrap();
            let mut buf = Vec::new();
            let mut got = None;
            for piece in wire.chunks(cut) {
                buf.extend_from_slice(piece);
                if got.is_none() {
                    let (took, snap) = frames.take(&buf).unwrap();
                    buf.drain(..took);
                    got = snap;
                }
            }
            drop(frames);
            let got = got.expect("whole");
            assert_eq!(got.zxid, 0x2_0000_0007);
            // The SNAP stands for the file, which holds the snapshot; nothing else does.
            let data = got.data.unwrap();
            let path = incoming.file_of(&data).expect("the token");
            assert_eq!(std::fs::read(path).unwrap(), snapshot, "cut {cut}");
            assert!(incoming.file_of(&snapshot[..16]).is_none());
            assert!(incoming.file_of(b"").is_none());
            assert_eq!(read_all(&mut buf), vec![after.clone()]);
        }
        // Cut short (the connection broke): its file goes.
        let mut frames = Frames::new(&head, &incoming).unwrap();
        frames.take(&wire[..100_000]).unwrap();
        drop(frames);
        assert!(!incoming.path.exists());
        // A frame longer than any leader writes, or negative: the connection is broken.
        for bad in [(MAX_SNAP_FRAME as i32) + 1, -5] {
            let mut frames = Frames::new(&head, &incoming).unwrap();
            assert!(frames.take(&bad.to_be_bytes()).is_err());
        }
    }
}
