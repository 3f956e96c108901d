//! THE event loop: one task owns the tree, the pending-change overlay, sessions, connections'
//! state and watches, so none of them needs a lock.
//!
//! A write is prepared (`prep`, against the tree plus the overlay of txns proposed but not yet
//! committed), proposed, logged, and applied when committed; only then is it answered. Each
//! turn takes every message waiting, appends the turn's proposals to the log in one synced
//! RocksDB write (group commit), commits, applies, and only then releases the turn's frames.
//! So nothing that is not durable is ever visible; a connection's requests are answered in
//! order (reads wait behind the connection's pending writes); a watch event always precedes
//! the reply that follows the change. Standalone is a one-member ensemble: its proposals
//! commit as soon as they are on disk.

use crate::acl::{self, AuthIds};
use crate::config::Config;
use crate::overlay::{Layered, Overlay, View};
use crate::prep::{self, Ctx};
use crate::session::{self, Session};
use crate::store::Store;
use crate::tree::{Applied, DataTree, Event};
use crate::watches::{ConnId, Watches};
use jute::data::Id;
use jute::proto::*;
use jute::txn::*;
use jute::{frame, xid, Connect, ConnectReply, Encode, KeeperState, MultiOp, MultiResponse};
use jute::{perms, MultiResult, OpCode, Request, Response, TxnEntry, TxnRecord, ZkError};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// What the core queues for a connection until the batch's log write is durable.
#[derive(Debug)]
pub enum Out {
    Frame(Vec<u8>),
    /// Close the socket (after the frames before it).
    Close,
}

/// The core's handle on a connection's writer.
pub type OutTx = Arc<crate::net::Outbound>;

/// Messages to the core.
pub enum CoreMsg {
    Connect {
        conn: ConnId,
        connect: Connect,
        peer: SocketAddr,
        tx: OutTx,
    },
    Request {
        conn: ConnId,
        xid: i32,
        req: Request,
    },
    /// A request ZooKeeper cannot decode: `op` None = unknown opcode (UNIMPLEMENTED, then the
    /// connection closes); Some = undecodable body (MARSHALLINGERROR; writes consume a zxid).
    Undecodable {
        conn: ConnId,
        xid: i32,
        op: Option<OpCode>,
    },
    Closed {
        conn: ConnId,
    },
    FourLetter {
        word: String,
        /// `stmk`'s 8-byte argument, when it came.
        arg: Option<i64>,
        peer: SocketAddr,
        reply: oneshot::Sender<String>,
    },
    /// Prometheus's `/metrics` (HTTP): its text.
    Metrics {
        process: bool,
        reply: oneshot::Sender<String>,
    },
    /// An AdminServer command (HTTP): its JSON, or what `snapshot` and `restore` go on with.
    Admin {
        command: String,
        /// The query's `key=value` pairs.
        args: Vec<(String, String)>,
        /// POST (`restore`), not GET.
        post: bool,
        creds: crate::backup::Credentials,
        reply: oneshot::Sender<crate::backup::AdminReply>,
    },
    /// The snapshot file a `restore` POSTed.
    Restore {
        snapshot: Vec<u8>,
        reply: oneshot::Sender<crate::backup::AdminReply>,
    },
    /// A message from another ensemble member.
    Peer {
        from: crate::zab::Sid,
        msg: crate::zab::Msg,
    },
    /// Quorum packets from another ensemble member, in the order they came (one read's).
    Packets {
        from: crate::zab::Sid,
        packets: Vec<jute::quorum::QuorumPacket>,
    },
    /// The quorum connection to a member broke.
    PeerDisconnected {
        sid: crate::zab::Sid,
    },
    /// Stop the loop (graceful shutdown); the store is flushed.
    Shutdown,
}

/// A node as pending txns leave it ([`Core::pending_node`]), borrowed from the overlay and
/// the txn that gives its data.
pub(crate) struct PendingNode<'a> {
    pub view: &'a crate::overlay::NodeView,
    pub data: Option<&'a [u8]>,
}

impl PendingNode<'_> {
    pub(crate) fn stat(&self, extended_types: bool) -> jute::data::Stat {
        let v = self.view;
        let children = u32::try_from(v.num_children).unwrap_or(u32::MAX);
        let len = self.data.map_or(0, <[u8]>::len);
        crate::tree::client_stat(&v.stat, children, len, extended_types)
    }
}

/// The data a txn gives the node at `p`, when it gives it whole: a create or a setData of
/// `p` (Some(None): no data).
fn whole_data<'a>(rec: &'a TxnRecord, p: &str) -> Option<Option<&'a [u8]>> {
    let (path, data) = match rec {
        TxnRecord::Create(t) | TxnRecord::Create2(t) => (&t.path, &t.data),
        TxnRecord::CreateContainer(t) => (&t.path, &t.data),
        TxnRecord::CreateTtl(t) => (&t.path, &t.data),
        TxnRecord::SetData(t) => (&t.path, &t.data),
        _ => return None,
    };
    (path == p).then_some(data.as_deref())
}

/// A SASL answer (zxid 0): the error code and the server's token.
fn sasl_reply(xid: i32, err: i32, token: Option<Vec<u8>>) -> Vec<u8> {
    reply_frame(
        xid,
        0,
        err,
        Some(&move |out: &mut Vec<u8>| {
            jute::codec::write_buffer(out, token.as_deref());
        }),
    )
}

/// A GSSAPI step done on a blocking thread, for the core to answer.
struct GssStep {
    conn: ConnId,
    xid: i32,
    exchange: Box<crate::sasl::Exchange>,
    step: Result<crate::sasl::Step, crate::sasl::SaslError>,
}

/// A request waiting behind its connection's pending writes.
enum Queued {
    Req(i32, Request),
    Bad(i32, OpCode),
    /// A read answered early (see [`Core::may_answer_early`]): its reply frame, sent once
    /// the connection's `wait_for`th write is answered.
    Held {
        frame: Vec<u8>,
        wait_for: u64,
    },
}

impl Queued {
    /// Does this request become a txn (or, on a learner, a sync waiting for the leader)?
    fn is_write(&self, learner: bool) -> bool {
        match self {
            Queued::Req(_, req) => req.is_write() || (learner && matches!(req, Request::Sync(_))),
            Queued::Bad(_, op) => is_write_op(*op),
            Queued::Held { .. } => false,
        }
    }
}

/// A client connection as the core knows it.
pub struct Conn {
    pub tx: OutTx,
    pub session: Option<i64>,
    pub auth: Arc<AuthIds>,
    pub peer: SocketAddr,
    pub received: u64,
    pub sent: u64,
    pub established_ms: i64,
    pub last_zxid: i64,
    /// The last request's operation (`cons` prints its short name, or NA).
    pub last_op: Option<OpCode>,
    /// What `cons` reports of the last response and the latencies (`ServerCnxn`'s stats).
    pub resp: ConnLatency,
    /// Writes proposed and not yet answered.
    pending_writes: u32,
    /// Requests in `queue` other than held replies: while there are some, everything that
    /// arrives queues behind them.
    blocking: u32,
    /// Writes answered so far (held replies wait for a count of them).
    writes_answered: u64,
    /// Requests that arrived while writes were pending, answered in order after them.
    queue: VecDeque<Queued>,
    /// Refused for want of authentication (`enforce.auth`): closed, and what it sends after
    /// is not read.
    pub(crate) refused: bool,
    /// Its SASL exchange, once it has begun one.
    sasl: Option<Box<crate::sasl::Exchange>>,
    /// Some while a GSSAPI step runs off the core thread: what arrives meanwhile, taken in
    /// order once the step is answered.
    /// Boxed: 8 bytes in every connection rather than 32, allocated only for a step.
    #[allow(clippy::box_collection)]
    sasl_busy: Option<Box<VecDeque<Queued>>>,
    /// Learner: syncs the leader has answered ahead of this connection's writes before them
    /// (xid, path, how many of its writes must be answered first): answered in order.
    syncs_waiting: VecDeque<(i32, String, u64)>,
}

impl Conn {
    pub(crate) fn pending_writes_inc(&mut self) {
        self.pending_writes += 1;
    }

    /// How many writes this connection has sent so far (answered or pending).
    pub(crate) fn writes_sent(&self) -> u64 {
        self.writes_answered + u64::from(self.pending_writes)
    }
}

/// A connection's last response and its latency figures, in ms (`ServerCnxn`'s lastCxid,
/// lastResponseTime, lastLatency, min/avg/maxLatency). Compact: every connection has one.
#[derive(Debug, Clone, Copy)]
pub struct ConnLatency {
    pub last_cxid: i32,
    pub last_latency_ms: u32,
    pub last_response_ms: i64,
    pub min_ms: u32,
    pub max_ms: u32,
    pub total_ms: u64,
    pub count: u32,
}

impl Default for ConnLatency {
    /// As `ServerCnxn.resetStats` leaves them.
    fn default() -> Self {
        ConnLatency {
            last_cxid: -1,
            last_response_ms: 0,
            last_latency_ms: 0,
            min_ms: u32::MAX,
            max_ms: 0,
            total_ms: 0,
            count: 0,
        }
    }
}

impl ConnLatency {
    fn record(&mut self, cxid: i32, latency_ms: i64) {
        let latency_ms = u32::try_from(latency_ms.max(0)).unwrap_or(u32::MAX);
        self.last_cxid = cxid;
        self.last_response_ms = now_ms();
        self.last_latency_ms = latency_ms;
        self.min_ms = self.min_ms.min(latency_ms);
        self.max_ms = self.max_ms.max(latency_ms);
        self.total_ms += u64::from(latency_ms);
        self.count = self.count.saturating_add(1);
    }

    /// (min, avg, max) as `cons` prints them: 0 before the first response.
    pub fn min_avg_max(&self) -> (u64, u64, u64) {
        if self.count == 0 {
            return (0, 0, 0);
        }
        let (min, max) = (u64::from(self.min_ms), u64::from(self.max_ms));
        (min, self.total_ms / u64::from(self.count), max)
    }
}

/// Counters for `stat`, `mntr`, `srst`.
#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub latency_min_us: u64,
    pub latency_max_us: u64,
    /// Sum of the whole ms of each latency, as ZooKeeper's `AvgMinMaxCounter` sums them (so
    /// the average never exceeds the maximum).
    pub latency_total_ms: u64,
    pub latency_count: u64,
    pub outstanding: usize,
    pub commits: u64,
    pub fsync_total_us: u64,
    /// Committed txns whose TxnDigest (a ZooKeeper leader's) differs from the tree's digest
    /// after applying them (`digest_mismatches_count`).
    pub digest_mismatches: u64,
    /// What `last_snapshot` reports for ZooKeeper's last snapshot: (the zxid the tree in the
    /// store is up to date with, wall-clock seconds since when). zkrs takes no snapshots: it
    /// saves the applied tree (nodes, sessions, last applied zxid) at the end of every turn
    /// that changed it, recoverable with the fsynced log. Set at start to the tree recovered,
    /// as ZooKeeper snapshots what it loads at start.
    pub last_saved: (i64, i64),
}

/// Who is waiting for a txn, and for what answer.
pub(crate) enum Origin {
    /// A client request: reply to `xid` on `conn`.
    Client {
        conn: ConnId,
        xid: i32,
        op: OpCode,
        ops: Vec<OpCode>,
    },
    /// A new session: the ConnectResponse.
    Connect {
        conn: ConnId,
        read_only: Option<bool>,
    },
}

pub(crate) struct Inflight {
    /// Shared with ZAB's log on an ensemble member (never copied).
    pub(crate) entry: Arc<crate::txlog::Txn>,
    pub(crate) origin: Option<Origin>,
}

pub struct Core {
    pub cfg: Arc<Config>,
    pub tree: DataTree,
    pub(crate) store: Store,
    pub sessions: crate::FastMap<i64, Session>,
    /// Boxed: the table doubles as connections arrive, and a table of pointers is 16 bytes
    /// a slot where one of `Conn`s is 240.
    pub conns: crate::FastMap<ConnId, Box<Conn>>,
    /// The `ip` identity every connection from an address starts with, shared by those
    /// connections until one of them adds to its own (copy on write).
    ip_auth: crate::FastMap<std::net::IpAddr, Arc<AuthIds>>,
    /// `enforce.auth.schemes` when enforced (see [`Config::enforced_auth_schemes`]).
    enforce_auth: Vec<String>,
    /// The ACL settings every connection's ids carry.
    pub(crate) acl_policy: Arc<acl::Policy>,
    /// GSSAPI steps done on blocking threads come back here ([`Core::run`] takes the
    /// receiver).
    gss_tx: mpsc::UnboundedSender<GssStep>,
    gss_rx: Option<mpsc::UnboundedReceiver<GssStep>>,
    pub watches: Watches,
    pub(crate) overlay: Overlay,
    pub(crate) next_session_id: i64,
    /// The zxid the next proposal gets.
    pub(crate) next_zxid: i64,
    /// The `snapshot` and `restore` admin commands.
    pub(crate) backup: crate::backup::Backup,
    pub stats: Stats,
    /// The reads answered, by namespace (`read_per_namespace`; the tree counts writes).
    pub reads: crate::metrics::PerNamespace,
    pub started: Instant,
    /// Proposed and not yet committed, in zxid order.
    pub(crate) inflight: VecDeque<Inflight>,
    outbox: Vec<(ConnId, Out)>,
    /// While a read is answered early: its connection, and the count of its answered
    /// writes the reply waits for (what it sends is held in its queue).
    pub(crate) holding: Option<(ConnId, u64)>,
    /// The connections given frames this turn (kept for its capacity).
    touched: Vec<OutTx>,
    batch_start: Instant,
    next_container_check: Instant,
    /// Ensemble members only: the protocol, the connections, and what this member forwarded.
    pub(crate) replica: Option<crate::replica::Replica>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes a reply body.
pub(crate) type BodyWriter<'a> = &'a dyn Fn(&mut Vec<u8>);

pub(crate) fn reply_frame(xid: i32, zxid: i64, err: i32, body: Option<BodyWriter<'_>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    frame::write(&mut out, |out| {
        ReplyHeader { xid, zxid, err }.encode(out);
        if let Some(body) = body {
            body(out);
        }
    });
    out
}

impl Core {
    pub fn new(
        cfg: Arc<Config>,
        store: Store,
        standalone: bool,
    ) -> Result<Self, crate::store::StoreError> {
        // A standalone log holds only committed txns; a member's tail waits for its leader.
        let recovered = store.recover(cfg.extended_types, standalone)?;
        let mut digest_mismatches = 0;
        if let Some((zxid, theirs, ours)) = recovered.first_digest_mismatch {
            if cfg.digest_enabled {
                digest_mismatches = recovered.digest_mismatches;
                tracing::error!(
                    "{digest_mismatches} replayed txns have a digest that is not the tree's \
                     after them, the first {zxid:#x}: the txn's digest is {theirs:#x}, the \
                     tree's {ours:#x}"
                );
            }
        }
        let tree = recovered.tree;
        let now = Instant::now();
        let mut sessions = crate::FastMap::default();
        for (&id, &timeout) in &tree.sessions {
            // Recovered sessions get a fresh timeout, as in ZooKeeper.
            sessions.insert(id, Session::new(id, timeout, now, cfg.tick_time_ms));
        }
        let max_id = tree.sessions.keys().copied().max().unwrap_or(0);
        let next_session_id = session::initial_session_id(cfg.server_id, now_ms()).max(max_id + 1);
        let next_zxid = tree.last_zxid.max(recovered.last_logged) + 1;
        let enforce_auth = cfg.enforced_auth_schemes();
        let acl_policy = Arc::new(acl::Policy::of(&cfg));
        let last_saved = (tree.last_zxid, now_ms() / 1000);
        let (gss_tx, gss_rx) = mpsc::unbounded_channel();
        Ok(Core {
            backup: crate::backup::Backup::new(&cfg),
            next_container_check: now + Duration::from_millis(cfg.container_check_interval_ms),
            cfg,
            tree,
            store,
            sessions,
            conns: crate::FastMap::default(),
            ip_auth: crate::FastMap::default(),
            enforce_auth,
            acl_policy,
            watches: Watches::default(),
            overlay: Overlay::default(),
            next_session_id,
            next_zxid,
            stats: Stats {
                last_saved,
                digest_mismatches,
                ..Stats::default()
            },
            reads: Default::default(),
            started: now,
            inflight: VecDeque::new(),
            outbox: Vec::new(),
            holding: None,
            touched: Vec::new(),
            batch_start: now,
            replica: None,
            gss_tx,
            gss_rx: Some(gss_rx),
        })
    }

    /// Runs until shutdown or until every sender is gone; then flushes the store.
    pub async fn run(mut self, mut rx: mpsc::Receiver<CoreMsg>) {
        let tick = if self.replica.is_some() {
            Duration::from_millis(crate::replica::TICK_MS)
        } else {
            Duration::from_millis((self.cfg.tick_time_ms / 2).clamp(10, 1000))
        };
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A fresh tree (or a replayed log) is made durable before anyone is answered.
        self.finish_batch();
        let Some(mut gss_rx) = self.gss_rx.take() else {
            return;
        };
        'run: loop {
            tokio::select! {
                Some(done) = gss_rx.recv() => {
                    self.batch_start = Instant::now();
                    self.gss_done(done);
                    self.finish_batch();
                }
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.batch_start = Instant::now();
                    if matches!(msg, CoreMsg::Shutdown) {
                        break;
                    }
                    self.handle(msg);
                    if !self.handle_waiting(&mut rx) {
                        break 'run;
                    }
                    self.finish_batch();
                }
                // Proposals a commit let through (queued behind their session's writes) are
                // logged in a turn of their own, after the replies of the last one went out,
                // with whatever arrived meanwhile.
                () = std::future::ready(()), if self.unlogged() => {
                    self.batch_start = Instant::now();
                    if !self.handle_waiting(&mut rx) {
                        break 'run;
                    }
                    self.finish_batch();
                }
                _ = ticker.tick() => {
                    self.batch_start = Instant::now();
                    if let Some(r) = self.replica.as_mut() {
                        r.zab.tick();
                    }
                    if self.is_authority() {
                        self.expire_sessions();
                        self.check_containers();
                    }
                    // Read-only sessions exist only while a member serves read-only.
                    if self.cfg.read_only_mode && !self.serving() {
                        let now = Instant::now();
                        self.drop_local_sessions(|s| s.deadline <= now);
                    }
                    self.finish_batch();
                }
            }
        }
        self.finish_batch();
        while self.unlogged() {
            self.finish_batch();
        }
        if let Err(e) = self.store.flush() {
            tracing::error!("flushing the store at shutdown: {e}");
        }
    }

    /// Logs the turn's proposals, commits and applies them, saves the applied state, then
    /// releases the turn's frames.
    fn finish_batch(&mut self) {
        if self.replica.is_some() {
            self.run_ready();
        }
        // Standalone, every inflight proposal is this turn's and not logged yet. Committing
        // answers writes, which may let queued requests through, which may propose more:
        // those wait for the next turn, so that these answers go out now.
        if self.replica.is_none() {
            if let Some(last) = self.inflight.back().map(|i| i.entry.header.zxid) {
                let t0 = Instant::now();
                if let Err(e) = self
                    .store
                    .append_log(self.inflight.iter().map(|i| &*i.entry))
                {
                    // Proposals we cannot log must never be answered: stop here.
                    tracing::error!("appending to the log failed, stopping: {e}");
                    std::process::exit(2);
                }
                self.stats.commits += 1;
                self.stats.fsync_total_us += t0.elapsed().as_micros() as u64;
                // A standalone server is a quorum of one: logged means committed.
                self.commit_through(last);
            }
        }
        // Answers go out first: what they acknowledge is in the synced log already, and the
        // applied state below is only a shortcut for recovery (which replays the log).
        let elapsed = self.batch_start.elapsed().as_micros() as u64;
        let mut touched = std::mem::take(&mut self.touched);
        for (conn, out) in self.outbox.drain(..) {
            if let Some(c) = self.conns.get_mut(&conn) {
                match out {
                    Out::Frame(frame) => {
                        c.sent += 1;
                        self.stats.packets_sent += 1;
                        if c.tx.frame(&frame) {
                            touched.push(c.tx.clone());
                        }
                    }
                    Out::Close => c.tx.close(),
                }
            }
        }
        // One write per connection for all of its frames of the turn.
        for tx in touched.drain(..) {
            tx.flush();
        }
        self.touched = touched;
        let dirty = self.tree.take_dirty();
        let sessions = self.tree.take_dirty_sessions();
        if !dirty.is_empty() || !sessions.is_empty() {
            if let Err(e) = self.store.save_applied(&self.tree, &dirty, &sessions) {
                tracing::error!("saving applied state failed, stopping: {e}");
                std::process::exit(2);
            }
        }
        self.tree.recycle_dirty(dirty);
        // Snapshots read the store: only now does it hold the whole tree.
        self.start_snapshots();
        self.finish_backups();
        // `last_snapshot`: the stored tree now holds this zxid. Also when nothing was saved:
        // txns that change no node (error txns) leave the stored nodes those of this zxid,
        // and an installed snapshot was saved whole by the store.
        if self.stats.last_saved.0 != self.tree.last_zxid {
            self.stats.last_saved = (self.tree.last_zxid, now_ms() / 1000);
        }
        if self.stats.latency_count == 0 || elapsed < self.stats.latency_min_us {
            self.stats.latency_min_us = elapsed;
        }
        self.stats.latency_max_us = self.stats.latency_max_us.max(elapsed);
        self.stats.latency_total_ms += elapsed / 1000;
        self.stats.latency_count += 1;
    }

    /// Handles the messages already waiting (up to 4096), so that one fsync covers them all;
    /// false at shutdown.
    fn handle_waiting(&mut self, rx: &mut mpsc::Receiver<CoreMsg>) -> bool {
        for _ in 0..4096 {
            match rx.try_recv() {
                Ok(CoreMsg::Shutdown) => return false,
                Ok(msg) => self.handle(msg),
                Err(_) => break,
            }
        }
        true
    }

    /// Standalone: are there proposals not logged yet (let through by the last commits)?
    fn unlogged(&self) -> bool {
        self.replica.is_none() && !self.inflight.is_empty()
    }

    /// Does this server decide txns (standalone, or the established leader)?
    pub(crate) fn is_authority(&self) -> bool {
        self.replica
            .as_ref()
            .is_none_or(|r| r.zab.is_leader() && r.zab.established)
    }

    /// Are clients served (standalone, or a member in an established ensemble)?
    pub fn serving(&self) -> bool {
        self.replica.as_ref().is_none_or(|r| r.zab.established)
    }

    /// Is this member serving read-only (ZooKeeper's `ReadOnlyZooKeeperServer`)? With
    /// `readonlymode.enabled`, a member that has not served for max(2 s, tickTime) (cut off
    /// from its quorum, or still electing) serves reads to clients that allow it.
    pub fn read_only(&self) -> bool {
        let grace = Duration::from_millis(self.cfg.tick_time_ms.max(2000));
        self.cfg.read_only_mode
            && self
                .replica
                .as_ref()
                .is_some_and(|r| !r.zab.established && r.not_serving_since.elapsed() >= grace)
    }

    /// `Mode:` of srvr and stat.
    pub fn mode(&self) -> &'static str {
        if self.read_only() {
            return "read-only";
        }
        match self.replica.as_ref().map(|r| r.zab.role) {
            None => "standalone",
            Some(crate::zab::Role::Leading) => "leader",
            Some(crate::zab::Role::Following(_)) => "follower",
            Some(crate::zab::Role::Observing(_)) => "observer",
            Some(crate::zab::Role::Looking) => "looking",
        }
    }

    pub(crate) fn send(&mut self, conn: ConnId, frame: Vec<u8>) {
        if let Some((held, wait_for)) = self.holding {
            if held == conn {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.queue.push_back(Queued::Held { frame, wait_for });
                }
                return;
            }
        }
        self.outbox.push((conn, Out::Frame(frame)));
    }

    pub(crate) fn close(&mut self, conn: ConnId) {
        self.outbox.push((conn, Out::Close));
    }

    pub(crate) fn reply(&mut self, conn: ConnId, xid: i32, result: Result<Response, ZkError>) {
        let zxid = self.tree.last_zxid;
        let frame = match result {
            Ok(resp) => reply_frame(xid, zxid, 0, Some(&|out: &mut Vec<u8>| resp.encode(out))),
            Err(e) => reply_frame(xid, zxid, e.code(), None),
        };
        self.send_reply(conn, xid, zxid, frame);
    }

    /// Sends the reply to request `xid`, carrying `zxid` (remembered for `cons`, with the
    /// latency since its batch began).
    pub(crate) fn send_reply(&mut self, conn: ConnId, xid: i32, zxid: i64, frame: Vec<u8>) {
        // A held reply is accounted for when it is released.
        if self.holding.is_none_or(|(held, _)| held != conn) {
            let latency_ms = self.batch_start.elapsed().as_millis() as i64;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.last_zxid = zxid;
                c.resp.record(xid, latency_ms);
            }
        }
        self.send(conn, frame);
    }

    fn handle(&mut self, msg: CoreMsg) {
        match msg {
            CoreMsg::Connect {
                conn,
                connect,
                peer,
                tx,
            } => self.connect(conn, connect, peer, tx),
            CoreMsg::Request { conn, xid, req } => {
                self.stats.packets_received += 1;
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.received += 1;
                    c.last_op = Some(req.op());
                }
                self.enqueue(conn, Queued::Req(xid, req));
            }
            CoreMsg::Undecodable { conn, xid, op } => {
                self.stats.packets_received += 1;
                match op {
                    None => {
                        let frame = reply_frame(xid, -1, ZkError::Unimplemented.code(), None);
                        self.send(conn, frame);
                        self.close(conn);
                    }
                    Some(op) => self.enqueue(conn, Queued::Bad(xid, op)),
                }
            }
            CoreMsg::Closed { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    if let Some(s) = c.session.and_then(|id| self.sessions.get_mut(&id)) {
                        if s.conn == Some(conn) {
                            s.conn = None;
                        }
                    }
                    let ip = c.peer.ip().to_canonical();
                    drop(c);
                    if self
                        .ip_auth
                        .get(&ip)
                        .is_some_and(|a| Arc::strong_count(a) == 1)
                    {
                        self.ip_auth.remove(&ip);
                    }
                }
                self.watches.remove_conn(conn);
            }
            CoreMsg::Shutdown => {}
            CoreMsg::Peer { from, msg } => {
                tracing::trace!("from {from}: {msg:?}");
                if let Some(r) = self.replica.as_mut() {
                    r.zab.step(from, msg);
                }
            }
            CoreMsg::Packets { from, packets } => {
                if let Some(r) = self.replica.as_mut() {
                    for p in packets {
                        tracing::trace!("from {from}: {p:?}");
                        r.zab.step(from, crate::zab::Msg::Packet(p));
                    }
                }
            }
            CoreMsg::PeerDisconnected { sid } => {
                if let Some(r) = self.replica.as_mut() {
                    r.zab.disconnected(sid);
                }
            }
            CoreMsg::FourLetter {
                word,
                arg,
                peer,
                reply,
            } => {
                let text = crate::admin::run(&word, arg, self, peer);
                let _ = reply.send(text);
            }
            CoreMsg::Admin {
                command,
                args,
                post,
                creds,
                reply,
            } => crate::admin_http::run_request(self, &command, &args, post, &creds, reply),
            CoreMsg::Restore { snapshot, reply } => self.restore_arrived(snapshot, reply),
            CoreMsg::Metrics { process, reply } => {
                let _ = reply.send(crate::metrics::exposition(self, process));
            }
        }
    }

    pub(crate) fn session_of(&self, conn: ConnId) -> Option<i64> {
        self.conns.get(&conn).and_then(|c| c.session)
    }

    fn connect(&mut self, conn: ConnId, connect: Connect, peer: SocketAddr, tx: OutTx) {
        let req = &connect.request;
        let read_only = self.read_only();
        if (!self.serving() && !read_only) || req.last_zxid_seen > self.tree.last_zxid {
            // The client has seen more than we have: it must try another server.
            tx.close();
            return;
        }
        // A read-only member takes only clients that allow it, and no session that lives in
        // the quorum (ZooKeeper: NOT_READ_ONLY_CLIENT, RENEW_GLOBAL_SESSION_IN_RO_MODE).
        if read_only
            && (connect.read_only != Some(true) || self.tree.sessions.contains_key(&req.session_id))
        {
            tracing::info!("refusing {peer} while read-only");
            tx.close();
            return;
        }
        let ip = peer.ip().to_canonical();
        let auth = self
            .ip_auth
            .entry(ip)
            .or_insert_with(|| {
                let mut auth = AuthIds {
                    ids: Vec::new(),
                    policy: self.acl_policy.clone(),
                };
                auth.add(Id {
                    scheme: "ip".into(),
                    id: ip.to_string(),
                });
                Arc::new(auth)
            })
            .clone();
        self.conns.insert(
            conn,
            Box::new(Conn {
                tx,
                session: None,
                auth,
                peer,
                received: 1,
                sent: 0,
                established_ms: now_ms(),
                last_zxid: 0,
                last_op: None,
                resp: ConnLatency::default(),
                pending_writes: 0,
                blocking: 0,
                refused: false,
                sasl: None,
                sasl_busy: None,
                writes_answered: 0,
                queue: VecDeque::new(),
                syncs_waiting: VecDeque::new(),
            }),
        );
        self.stats.packets_received += 1;
        let timeout = req.time_out.clamp(
            self.cfg.min_session_timeout_ms(),
            self.cfg.max_session_timeout_ms(),
        );
        let read_only = connect.read_only.map(|_| read_only);
        if req.session_id == 0 && read_only == Some(true) {
            // A read-only session: known to this member only, never logged.
            let id = self.next_session_id;
            self.next_session_id += 1;
            let mut s = Session::new(id, timeout, Instant::now(), self.cfg.tick_time_ms);
            s.conn = Some(conn);
            s.local = true;
            self.sessions.insert(id, s);
            self.finish_reconnect(conn, id, timeout, read_only, true);
            return;
        }
        if req.session_id == 0 {
            let id = self.next_session_id;
            self.next_session_id += 1;
            if self.next_session_id == i64::MIN {
                self.next_session_id += 1;
            }
            let mut s = Session::new(id, timeout, Instant::now(), self.cfg.tick_time_ms);
            s.conn = Some(conn);
            self.sessions.insert(id, s);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.session = Some(id);
                c.pending_writes += 1;
            }
            let record = TxnRecord::CreateSession(CreateSessionTxn { time_out: timeout });
            let origin = Origin::Connect { conn, read_only };
            tracing::debug!(
                "new session {id:#x} on connection {conn}, authority {}",
                self.is_authority()
            );
            if self.is_authority() {
                self.propose(id, 0, record, Some(origin));
            } else {
                let body = timeout.to_be_bytes().to_vec();
                self.forward(
                    id,
                    0,
                    OpCode::CreateSession,
                    body,
                    AuthIds::default(),
                    origin,
                );
            }
            return;
        }
        let id = req.session_id;
        // The session's old connection goes first, before the password is checked.
        if let Some(old) = self.sessions.get(&id).and_then(|s| s.conn) {
            if old != conn {
                self.close(old);
                self.watches.remove_conn(old);
                if let Some(c) = self.conns.get_mut(&old) {
                    c.session = None;
                }
            }
        }
        let password_ok = req.passwd.as_deref() == Some(session::password(id).as_slice());
        if read_only == Some(true) {
            let valid = password_ok && self.sessions.get(&id).is_some_and(|s| s.local);
            self.finish_reconnect(conn, id, timeout, read_only, valid);
            return;
        }
        // A learner asks the leader, which owns sessions (REVALIDATE), as ZooKeeper's
        // followers do; the answer finishes the handshake (`finish_reconnect`).
        if password_ok && !self.is_authority() {
            if let Some(r) = self.replica.as_mut() {
                if r.zab.revalidate(id, timeout) {
                    r.revalidating.insert(conn, (id, timeout, read_only));
                    return;
                }
            }
        }
        let valid = password_ok && self.sessions.get(&id).is_some_and(|s| !s.closing);
        self.finish_reconnect(conn, id, timeout, read_only, valid);
    }

    /// Answers a reconnect: the session attached to `conn`, or the "expired" reply (an empty
    /// session) and the connection closed.
    pub(crate) fn finish_reconnect(
        &mut self,
        conn: ConnId,
        id: i64,
        timeout: i32,
        read_only: Option<bool>,
        valid: bool,
    ) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        let tick = self.cfg.tick_time_ms;
        let reply = match valid {
            true => {
                // The leader may know the session before this member applied its creation.
                let s = self
                    .sessions
                    .entry(id)
                    .or_insert_with(|| Session::new(id, timeout, Instant::now(), tick));
                s.conn = Some(conn);
                s.timeout_ms = timeout;
                s.touch(Instant::now(), tick);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.session = Some(id);
                }
                session_reply(id, timeout, read_only)
            }
            false => {
                let invalid = ConnectReply {
                    response: ConnectResponse {
                        protocol_version: 0,
                        time_out: 0,
                        session_id: 0,
                        passwd: Some(vec![0; 16]),
                    },
                    read_only,
                };
                let mut out = Vec::new();
                frame::write(&mut out, |o| invalid.encode(o));
                self.send(conn, out);
                self.close(conn);
                return;
            }
        };
        let mut out = Vec::new();
        frame::write(&mut out, |o| reply.encode(o));
        self.send(conn, out);
    }

    /// Takes a request in arrival order: processed now, or queued behind pending writes.
    fn enqueue(&mut self, conn: ConnId, q: Queued) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.refused {
            return;
        }
        if let Some(held) = c.sasl_busy.as_mut() {
            held.push_back(q);
            return;
        }
        // `enforce.auth` (ZooKeeper's AuthenticationHelper): before anything but auth, the
        // connection must hold an id of an enforced scheme; else it is told so and closed
        // (its session stays, to expire).
        let auth_or_sasl = matches!(q, Queued::Req(_, Request::Auth(_) | Request::Sasl(_)));
        if !self.enforce_auth.is_empty()
            && !auth_or_sasl
            && !c
                .auth
                .ids
                .iter()
                .any(|id| self.enforce_auth.contains(&id.scheme))
        {
            c.refused = true;
            let xid = match &q {
                Queued::Req(xid, _) | Queued::Bad(xid, _) => *xid,
                Queued::Held { .. } => 0,
            };
            tracing::warn!(
                "{}: not authenticated with any of {:?}, closing",
                c.peer,
                self.enforce_auth
            );
            let frame = reply_frame(xid, 0, ZkError::SessionClosedRequireSaslAuth.code(), None);
            self.send(conn, frame);
            self.close(conn);
            return;
        }
        // Auth and SASL are answered at once, as ZooKeeper answers them before its pipeline.
        match q {
            Queued::Req(xid, Request::Auth(p)) => return self.auth(conn, xid, p),
            Queued::Req(xid, Request::Sasl(r)) => return self.sasl(conn, xid, r.token),
            _ => {}
        }
        // Writes are proposed at once, behind each other (prep sees the pending ones through
        // the overlay): many writes of one session share an fsync. Reads wait for the
        // session's pending writes, so they see them; nothing overtakes a queued request.
        let learner = !self.is_authority();
        let write = q.is_write(learner);
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        // Nothing ahead of it (the common case): processed now, with no further look.
        if c.queue.is_empty() && (c.pending_writes == 0 || write) {
            self.process(conn, q);
            return;
        }
        // Only held replies ahead of it: it may go now, if answering it early is safe.
        let early = c.blocking == 0 && c.pending_writes > 0 && self.may_answer_early(conn, &q);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if early && !write {
            // Answered now, sent after the writes before it.
            let wait_for = c.writes_answered + u64::from(c.pending_writes);
            self.holding = Some((conn, wait_for));
            self.process(conn, q);
            self.holding = None;
        } else if early {
            // A write passes held replies: it is proposed, and answered after the writes
            // they wait for.
            self.process(conn, q);
        } else {
            c.blocking += 1;
            c.queue.push_back(q);
        }
    }

    /// May this request be processed before the connection's pending writes are answered?
    /// Standalone, a read of a node that no pending txn changes (for getChildren: none
    /// adds or removes a child) sees what it would see after them: it is answered now and
    /// its reply held until they are answered (ZooKeeper's order on the wire, and the
    /// session's later writes need not wait a turn for it). So is an exists or getData
    /// without a watch of a node they change, from the state they leave it in, when
    /// [`Core::pending_node`] knows that state. A write may pass held replies when its
    /// session is live (it will be proposed, and answered after them).
    fn may_answer_early(&self, conn: ConnId, q: &Queued) -> bool {
        if self.replica.is_some() {
            return false;
        }
        let live = self
            .session_of(conn)
            .and_then(|sid| self.sessions.get(&sid))
            .is_some_and(|s| !s.closing && !s.local);
        let Queued::Req(_, req) = q else {
            return false;
        };
        let (path, unwatched) = match req {
            Request::Exists(r) => (&r.path, !r.watch),
            Request::GetData(r) => (&r.path, !r.watch),
            Request::GetChildren(r) => (&r.path, false),
            Request::GetChildren2(r) => (&r.path, false),
            req => return live && req.is_write(),
        };
        live && (!self.overlay.touches(path)
            || unwatched && self.pending_node(conn, path).is_some())
    }

    /// A node that pending txns change, as they leave it, for a read of `conn` answered early
    /// (its data too: None when they delete it). Only when the txn that last changes it will
    /// be answered no later than the connection's last pending write (the read's reply waits
    /// for that one, so what it shows is durable before it is sent), and holds the node's
    /// whole data (a create or a setData of that very node). Reads that set a watch are not
    /// answered so: the watch would be set on a state that is not the tree's yet.
    pub(crate) fn pending_node(&self, conn: ConnId, p: &str) -> Option<Option<PendingNode<'_>>> {
        let (view, zxid) = self.overlay.pending(p)?;
        let mut covered = false;
        let mut data = None;
        for i in self.inflight.iter().rev() {
            let z = i.entry.header.zxid;
            if z < zxid {
                break;
            }
            covered |= match i.origin {
                Some(Origin::Client { conn: c, .. } | Origin::Connect { conn: c, .. }) => c == conn,
                None => false,
            };
            if z == zxid {
                data = whole_data(&i.entry.record, p);
            }
        }
        if !covered {
            return None;
        }
        match view {
            None => Some(None),
            Some(view) => Some(Some(PendingNode { view, data: data? })),
        }
    }

    /// Processes queued requests of `conn` in order, until a read meets a pending write.
    fn drain(&mut self, conn: ConnId) {
        let learner = !self.is_authority();
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let Some(front) = c.queue.front() else { return };
            match front {
                Queued::Held { wait_for, .. } => {
                    if c.writes_answered < *wait_for {
                        return;
                    }
                }
                front => {
                    if c.pending_writes > 0 && !front.is_write(learner) {
                        return;
                    }
                }
            }
            let Some(q) = c.queue.pop_front() else { return };
            match q {
                Queued::Held { frame, .. } => self.release(conn, frame),
                q => {
                    c.blocking = c.blocking.saturating_sub(1);
                    self.process(conn, q);
                }
            }
        }
    }

    /// Sends a held reply, carrying the zxid the server is at now (as if answered now).
    fn release(&mut self, conn: ConnId, mut frame: Vec<u8>) {
        let zxid = self.tree.last_zxid;
        let xid = match frame.get(4..8).map(<[u8; 4]>::try_from) {
            Some(Ok(b)) => i32::from_be_bytes(b),
            _ => return,
        };
        if let Some(z) = frame.get_mut(8..16) {
            z.copy_from_slice(&zxid.to_be_bytes());
        }
        self.send_reply(conn, xid, zxid, frame);
    }

    fn process(&mut self, conn: ConnId, q: Queued) {
        let Some(sid) = self.session_of(conn) else {
            return;
        };
        let tick = self.cfg.tick_time_ms;
        let (xid, req) = match q {
            Queued::Req(xid, req) => (xid, req),
            Queued::Held { frame, .. } => {
                self.release(conn, frame);
                return;
            }
            Queued::Bad(xid, op) => {
                if is_write_op(op) && self.sessions.get(&sid).is_some_and(|s| s.local) {
                    // The read-only server turns writes away by opcode, before decoding.
                    self.reply(conn, xid, Err(ZkError::NotReadOnly));
                } else if is_write_op(op) && !self.is_authority() {
                    self.forward_undecodable(conn, sid, xid, op);
                } else if is_write_op(op) {
                    // ZooKeeper logs an error txn for an undecodable write.
                    let rec = TxnRecord::Error(ErrorTxn {
                        err: ZkError::MarshallingError.code(),
                    });
                    self.propose_for(conn, sid, xid, op, vec![], rec);
                } else {
                    self.reply(conn, xid, Err(ZkError::MarshallingError));
                }
                return;
            }
        };
        // One lookup of the session per request: heard from (unless closing), its timeout for
        // the leader's liveness report, and whether it is a read-only one (never reported).
        let (timeout, local, live) = match self.sessions.get_mut(&sid) {
            Some(s) => {
                if !s.closing {
                    s.touch(Instant::now(), tick);
                }
                (s.timeout_ms, s.local, !s.closing)
            }
            None => (0, false, false),
        };
        if let Some(r) = self.replica.as_mut().filter(|_| !local) {
            r.zab.touch(sid, timeout);
        }
        if !live {
            self.reply(conn, xid, Err(ZkError::SessionExpired));
            self.close(conn);
            return;
        }
        if local {
            self.process_read_only(conn, sid, xid, req);
            return;
        }
        match req {
            Request::Ping => self.pong(conn),
            Request::Auth(p) => self.auth(conn, xid, p),
            Request::Sasl(r) => self.sasl(conn, xid, r.token),
            Request::CloseSession => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.closing = true;
                }
                if self.is_authority() {
                    let rec = self.close_session_txn(sid);
                    self.propose_for(conn, sid, xid, OpCode::CloseSession, vec![], rec);
                } else {
                    self.forward_client(conn, sid, xid, Request::CloseSession);
                }
            }
            Request::Sync(r) if !self.is_authority() => self.forward_sync(conn, sid, xid, r),
            req if req.is_write() && !self.is_authority() => {
                self.forward_client(conn, sid, xid, req)
            }
            Request::CreateSession(_) => self.reply(conn, xid, Err(ZkError::Unimplemented)),
            req if req.is_write() => self.write(conn, sid, xid, req),
            other => {
                if let Some(result) = self.read(conn, sid, other, xid) {
                    self.reply(conn, xid, result);
                }
            }
        }
    }

    fn pong(&mut self, conn: ConnId) {
        let zxid = self.tree.last_zxid;
        let frame = reply_frame(xid::PING, zxid, 0, None);
        self.send_reply(conn, xid::PING, zxid, frame);
    }

    /// A request of a read-only session (`ReadOnlyRequestProcessor`): what would change the
    /// tree, and sync, get NOTREADONLY; reads, watches and auth are served; closeSession
    /// ends the session here.
    fn process_read_only(&mut self, conn: ConnId, sid: i64, xid: i32, req: Request) {
        match req {
            Request::Ping => self.pong(conn),
            Request::Auth(p) => self.auth(conn, xid, p),
            Request::CloseSession => {
                self.sessions.remove(&sid);
                let zxid = self.tree.last_zxid;
                let frame = reply_frame(xid, zxid, 0, None);
                self.send_reply(conn, xid, zxid, frame);
                self.close(conn);
            }
            req if req.is_write() || matches!(req, Request::Sync(_)) => {
                self.reply(conn, xid, Err(ZkError::NotReadOnly))
            }
            other => {
                if let Some(result) = self.read(conn, sid, other, xid) {
                    self.reply(conn, xid, result);
                }
            }
        }
    }

    /// Ends read-only sessions for which `due` holds, with no txn (they own no ephemerals,
    /// and no other member knows them): expiry, or the quorum back.
    pub(crate) fn drop_local_sessions(&mut self, due: impl Fn(&Session) -> bool) {
        let ended: Vec<(i64, Option<ConnId>)> = self
            .sessions
            .values()
            .filter(|s| s.local && due(s))
            .map(|s| (s.id, s.conn))
            .collect();
        for (sid, conn) in ended {
            tracing::info!("ending read-only session {sid:#x}");
            self.sessions.remove(&sid);
            if let Some(c) = conn {
                self.close(c);
            }
        }
    }

    fn auth(&mut self, conn: ConnId, xid: i32, p: AuthPacket) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ok = match p.scheme.as_str() {
            "digest" => {
                let text = String::from_utf8_lossy(p.auth.as_deref().unwrap_or_default());
                let id = acl::digest(&text);
                if self.cfg.super_digest.as_deref() == Some(id.as_str()) {
                    Arc::make_mut(&mut c.auth).add(Id {
                        scheme: "super".into(),
                        id: "".into(),
                    });
                }
                Arc::make_mut(&mut c.auth).add(Id {
                    scheme: "digest".into(),
                    id,
                });
                true
            }
            "ip" => true,
            _ => false,
        };
        if ok {
            self.send(conn, reply_frame(xid, 0, 0, None));
        } else {
            self.send(conn, reply_frame(xid, 0, ZkError::AuthFailed.code(), None));
            self.close(conn);
        }
    }

    /// A SASL token (`ZooKeeperServer.processSasl`): the next step of the connection's
    /// DIGEST-MD5 exchange, answered with zxid 0. Once it completes, the connection holds
    /// `sasl:<user>` (and `super:` for a `zookeeper.superUser`). A failed exchange is answered
    /// AUTHFAILED (SESSIONCLOSEDREQUIRESASLAUTH when SASL is enforced) and the connection is
    /// closed, unless `allowSaslFailedClients`. Without a JAAS server section, ZooKeeper
    /// answers OK with no token, and so does zkrs.
    fn sasl(&mut self, conn: ConnId, xid: i32, token: Option<Vec<u8>>) {
        let Some(login) = self.cfg.sasl_login.clone() else {
            self.send(conn, sasl_reply(xid, 0, None));
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut exchange = c
            .sasl
            .take()
            .unwrap_or_else(|| Box::new(crate::sasl::Exchange::new(&login)));
        let token = token.unwrap_or_default();
        // A GSSAPI step reads the keytab and writes the replay cache (about half a
        // millisecond here): it runs on a blocking thread, and the connection's later
        // requests wait for its answer.
        if let (true, Ok(rt)) = (exchange.is_gssapi(), tokio::runtime::Handle::try_current()) {
            c.sasl_busy = Some(Box::default());
            let done = self.gss_tx.clone();
            rt.spawn_blocking(move || {
                let step = exchange.evaluate(&token, &login);
                let _ = done.send(GssStep {
                    conn,
                    xid,
                    exchange,
                    step,
                });
            });
            return;
        }
        let step = exchange.evaluate(&token, &login);
        c.sasl = Some(exchange);
        self.sasl_step(conn, xid, step, &login);
    }

    /// A GSSAPI step done off the core thread: answered, then what the connection sent
    /// meanwhile is taken in order.
    fn gss_done(&mut self, done: GssStep) {
        let Some(c) = self.conns.get_mut(&done.conn) else {
            return; // closed meanwhile
        };
        c.sasl = Some(done.exchange);
        let held = c.sasl_busy.take().map(|b| *b).unwrap_or_default();
        // Connection ids are never reused: this is the connection that sent the token.
        if let Some(login) = self.cfg.sasl_login.clone() {
            self.sasl_step(done.conn, done.xid, done.step, &login);
        }
        for q in held {
            self.enqueue(done.conn, q);
        }
    }

    /// Answers a SASL step; a completed exchange gives the connection its ids.
    fn sasl_step(
        &mut self,
        conn: ConnId,
        xid: i32,
        step: Result<crate::sasl::Step, crate::sasl::SaslError>,
        login: &crate::sasl::Login,
    ) {
        use crate::sasl::Step;
        let required = self.enforce_auth.iter().any(|s| s == "sasl");
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let session = c.session.unwrap_or(0);
        match step {
            Ok(Step::Challenge(t)) => self.send(conn, sasl_reply(xid, 0, Some(t))),
            // ZooKeeper authorizes any authzid and takes the authenticated name as the id.
            Ok(Step::Done { token, id, .. }) => {
                tracing::info!("session {session:#x}: adding SASL authorization for {id}");
                let ids = Arc::make_mut(&mut c.auth);
                let is_super = login.is_super(&id);
                ids.add(Id {
                    scheme: "sasl".into(),
                    id,
                });
                if is_super {
                    tracing::info!("session {session:#x}: authenticated as super user");
                    ids.add(Id {
                        scheme: "super".into(),
                        id: "".into(),
                    });
                }
                self.send(conn, sasl_reply(xid, 0, token));
            }
            Err(e) => {
                tracing::warn!("client {} failed to SASL authenticate: {e}", c.peer);
                if self.cfg.allow_sasl_failed_clients && !required {
                    self.send(conn, sasl_reply(xid, 0, None));
                } else {
                    self.send(conn, sasl_reply(xid, e.code(required).code(), None));
                    self.close(conn);
                }
            }
        }
    }

    /// Proposes a txn: the next zxid, the overlay updated, queued for the log.
    pub(crate) fn propose(
        &mut self,
        session: i64,
        xid: i32,
        record: TxnRecord,
        origin: Option<Origin>,
    ) {
        let zxid = match self.replica.as_ref() {
            Some(r) => match r.zab.next_zxid() {
                Some(z) => z,
                None => return, // not leading any more: the client is being disconnected
            },
            None => {
                self.next_zxid += 1;
                self.next_zxid - 1
            }
        };
        let header = TxnHeader {
            client_id: session,
            cxid: xid,
            zxid,
            time: now_ms(),
            type_: record.op().code(),
        };
        let changes = {
            let view = Layered {
                top: &self.overlay,
                below: &self.tree,
            };
            Overlay::changes_of(&view, &header, &record)
        };
        let prior = self.prior(&record);
        let tree_digest = self.overlay.apply(changes, header.zxid, self.tree.digest());
        // ZooKeeper's PrepRequestProcessor: the tree's digest after the txn goes with it, for
        // every member (this one too) to check once it has applied it.
        let digest = self.cfg.digest_enabled.then_some(TxnDigest {
            version: crate::tree::DIGEST_VERSION,
            tree_digest,
        });
        let entry = Arc::new(
            crate::txlog::Txn::new(TxnEntry {
                header,
                record,
                digest,
            })
            .with_prior(prior),
        );
        tracing::trace!("propose {:#x} {:?}", entry.header.zxid, entry.record.op());
        if let Some(r) = self.replica.as_mut() {
            r.zab.propose(entry.clone());
        }
        self.inflight.push_back(Inflight { entry, origin });
    }

    /// In an ensemble, the node a setData or delete changes, as the learners will find it when
    /// they apply it (no pending txn changes it: the tree's state is that state), so that they
    /// need not read it from their store ([`DataTree::prime`](crate::tree::DataTree::prime)).
    fn prior(&self, record: &TxnRecord) -> Option<Vec<u8>> {
        self.replica.as_ref()?;
        let p = crate::tree::prior_path(record)?;
        if self.overlay.touches(p) {
            return None;
        }
        let node = self.tree.peek(p)?;
        let mut out = Vec::with_capacity(128);
        node.encode_prior(&mut out);
        Some(out)
    }

    /// Proposes a client's write, holding its connection's later requests until it is answered.
    pub(crate) fn propose_for(
        &mut self,
        conn: ConnId,
        sid: i64,
        xid: i32,
        op: OpCode,
        ops: Vec<OpCode>,
        rec: TxnRecord,
    ) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.pending_writes += 1;
        }
        self.propose(sid, xid, rec, Some(Origin::Client { conn, xid, op, ops }));
    }

    fn write(&mut self, conn: ConnId, sid: i64, xid: i32, req: Request) {
        let op = req.op();
        let auth = self
            .conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        let (rec, ops) = self.prep_write(sid, &req, &auth);
        self.propose_for(conn, sid, xid, op, ops, rec);
    }

    /// Prepares a write of `sid` with the connection's `auth`: the txn (an error txn if it
    /// fails) and, for a multi, its op types.
    pub(crate) fn prep_write(
        &self,
        sid: i64,
        req: &Request,
        auth: &AuthIds,
    ) -> (TxnRecord, Vec<OpCode>) {
        let op = req.op();
        let view = Layered {
            top: &self.overlay,
            below: &self.tree,
        };
        let ctx = Ctx {
            tree: &view,
            session: sid,
            auth,
            extended_types: self.cfg.extended_types,
            enforce_quota: self.cfg.enforce_quota,
        };
        let (rec, ops) = match req {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => (
                prep::create(&ctx, op, &r.path, &r.data, r.acl.as_deref(), r.flags, -1),
                vec![],
            ),
            Request::CreateTtl(r) => (
                prep::create(&ctx, op, &r.path, &r.data, r.acl.as_deref(), r.flags, r.ttl),
                vec![],
            ),
            Request::Delete(r) => (prep::delete(&ctx, &r.path, r.version), vec![]),
            Request::SetData(r) => (prep::set_data(&ctx, &r.path, &r.data, r.version), vec![]),
            Request::SetAcl(r) => (
                prep::set_acl(&ctx, &r.path, r.acl.as_deref(), r.version),
                vec![],
            ),
            Request::Check(r) => (prep::check(&ctx, &r.path, r.version), vec![]),
            Request::Multi(m) => {
                let ops = prep::multi_ops_as_zookeeper(&m.ops);
                (
                    prep_multi(&ctx, &ops),
                    ops.iter().map(MultiOp::op).collect(),
                )
            }
            Request::Reconfig(_) if !self.cfg.reconfig_enabled => {
                (Err(ZkError::ReconfigDisabled), vec![])
            }
            Request::Reconfig(r) => (self.prep_reconfig(&ctx, r), vec![]),
            _ => (Err(ZkError::Unimplemented), vec![]),
        };
        (
            rec.unwrap_or_else(|e| TxnRecord::Error(ErrorTxn { err: e.code() })),
            ops,
        )
    }

    /// A reconfig, on the leader; a standalone server has none (UNIMPLEMENTED, as ZooKeeper's).
    #[cold]
    #[inline(never)]
    fn prep_reconfig(
        &self,
        ctx: &Ctx<'_>,
        r: &jute::proto::ReconfigRequest,
    ) -> Result<TxnRecord, ZkError> {
        let rep = self.replica.as_ref().ok_or(ZkError::Unimplemented)?;
        let (version, pending) = rep.zab.membership();
        let synced = |voters: &crate::zab::Voters| rep.zab.quorum_synced(voters);
        let leader = crate::reconfig::Leader {
            ensemble: &rep.ensemble,
            version,
            pending,
            zxid: rep.zab.next_zxid().unwrap_or(0),
            standalone_enabled: self.cfg.standalone_enabled,
            quorum_synced: &synced,
        };
        crate::reconfig::prep(ctx, r, &leader)
    }

    /// Commits every inflight proposal up to `zxid`, in order: apply, fire, answer.
    fn commit_through(&mut self, zxid: i64) {
        while self
            .inflight
            .front()
            .is_some_and(|i| i.entry.header.zxid <= zxid)
        {
            let Some(Inflight { entry, origin }) = self.inflight.pop_front() else {
                break;
            };
            self.commit_entry(&entry, origin);
        }
    }

    /// A txn from a leader (ZooKeeper's, or zkrs's) carries the tree's digest after it
    /// (TxnDigest): this tree must have the same, as ZooKeeper's DataTree.compareDigest
    /// checks. A mismatch is counted, and the first one logged.
    fn compare_digest(&mut self, entry: &TxnEntry) {
        if !self.cfg.digest_enabled {
            return;
        }
        if let Some(theirs) = self.tree.digest_mismatch(entry) {
            self.count_digest_mismatch(entry.header.zxid, theirs);
        }
    }

    fn count_digest_mismatch(&mut self, zxid: i64, theirs: i64) {
        self.stats.digest_mismatches += 1;
        if self.stats.digest_mismatches == 1 {
            tracing::error!(
                "first digest mismatch on txn {zxid:#x}: the txn's digest is {theirs:#x}, this \
                 tree's {:#x}",
                self.tree.digest()
            );
        }
    }

    /// Applies one committed txn, fires its watches and answers whoever waits for it.
    pub(crate) fn commit_entry(&mut self, entry: &TxnEntry, origin: Option<Origin>) {
        let applied = self.tree.apply(entry);
        self.compare_digest(entry);
        self.overlay.committed(entry.header.zxid);
        self.fire(&applied.events, entry.header.zxid);
        let sid = entry.header.client_id;
        match &entry.record {
            TxnRecord::CloseSession(_) => {
                if let Some(s) = self.sessions.remove(&sid) {
                    if let Some(c) = s.conn {
                        self.watches.remove_conn(c);
                        if !matches!(origin, Some(Origin::Client { conn, .. }) if conn == c) {
                            // Expiry closes the socket without a frame.
                            self.close(c);
                        }
                    }
                }
            }
            TxnRecord::CreateSession(t) => {
                // Sessions created through other members are tracked too (the leader expires
                // them; anyone may see them re-attach).
                let tick = self.cfg.tick_time_ms;
                self.sessions
                    .entry(sid)
                    .or_insert_with(|| Session::new(sid, t.time_out, Instant::now(), tick));
            }
            _ => {}
        }
        match origin {
            None => {}
            Some(Origin::Connect { conn, read_only }) => {
                let timeout = self.sessions.get(&sid).map_or(0, |s| s.timeout_ms);
                let reply = session_reply(sid, timeout, read_only);
                let mut out = Vec::new();
                frame::write(&mut out, |o| reply.encode(o));
                self.send(conn, out);
                self.answered(conn);
            }
            Some(Origin::Client { conn, xid, op, ops }) => {
                self.answer(conn, xid, op, &ops, entry, applied);
                self.answered(conn);
            }
        }
    }

    /// A pending write of `conn` was answered: let its queued requests through.
    pub(crate) fn answered(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.pending_writes > 0 {
                c.pending_writes -= 1;
                c.writes_answered += 1;
            }
            // A sync answered early waits for the writes sent before it.
            if c.syncs_waiting
                .front()
                .is_some_and(|(_, _, after)| c.writes_answered >= *after)
            {
                if let Some((xid, path, _)) = c.syncs_waiting.pop_front() {
                    self.reply(conn, xid, Ok(Response::Sync(SyncResponse { path })));
                    return self.answered(conn);
                }
            }
        }
        self.drain(conn);
    }

    /// Learner: the leader answered a sync. Its reply follows the replies to the writes the
    /// connection sent before it (ZooKeeper answers a session's requests in order; the
    /// leader may answer the sync before those writes commit).
    pub(crate) fn sync_done(&mut self, conn: ConnId, xid: i32, path: String, after: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.writes_answered >= after && c.syncs_waiting.is_empty() {
            self.reply(conn, xid, Ok(Response::Sync(SyncResponse { path })));
            self.answered(conn);
        } else {
            c.syncs_waiting.push_back((xid, path, after));
        }
    }

    /// The reply to a committed write.
    fn answer(
        &mut self,
        conn: ConnId,
        xid: i32,
        op: OpCode,
        ops: &[OpCode],
        entry: &TxnEntry,
        applied: Applied,
    ) {
        let first = applied.results.first();
        let path = first.map(|r| r.path.clone()).unwrap_or_default();
        let stat = first.and_then(|r| r.stat.clone()).unwrap_or_default();
        let result = match (&entry.record, op) {
            (TxnRecord::Error(e), _) => {
                Err(ZkError::try_from(e.err).unwrap_or(ZkError::SystemError))
            }
            // A bare check that passed: ZooKeeper consumes the zxid and sends nothing (its
            // answer would carry a Stat it does not have). A failed one gets its error.
            (_, OpCode::Check) => return,
            (TxnRecord::Multi(m), _) => Ok(Response::Multi(MultiResponse {
                results: multi_results(m, ops, &applied),
            })),
            (_, OpCode::Create) => Ok(Response::Create(CreateResponse { path })),
            (_, OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl) => {
                Ok(Response::Create2(Create2Response { path, stat }))
            }
            (_, OpCode::SetData) => Ok(Response::SetData(SetDataResponse { stat })),
            (_, OpCode::SetAcl) => Ok(Response::SetAcl(SetACLResponse { stat })),
            // The new config and the config node's stat.
            (TxnRecord::Reconfig(t), OpCode::Reconfig) => Ok(Response::Reconfig(GetDataResponse {
                data: t.data.clone(),
                stat,
            })),
            _ => Ok(Response::Empty),
        };
        self.reply(conn, xid, result);
        if op == OpCode::CloseSession {
            self.close(conn);
        }
    }

    /// Tells the watchers of `events`, which txn `zxid` caused (its zxid goes in each
    /// notification's header, as ZooKeeper 3.9's `WatchedEvent.getZxid()`).
    pub(crate) fn fire(&mut self, events: &[Event], zxid: i64) {
        for ev in events {
            let conns = self.watches.trigger(ev);
            if conns.is_empty() {
                continue;
            }
            let frame = notification(ev.kind.code(), &ev.path, zxid);
            for c in conns {
                // Only to connections that may read the node (ZooKeeper's
                // `ServerCnxn.process` since 3.8.4 / 3.9.2, CVE-2024-23944).
                let may_read = self
                    .conns
                    .get(&c)
                    .is_some_and(|conn| acl::check(&ev.acl, perms::READ, &conn.auth).is_ok());
                if may_read {
                    self.send(c, frame.clone());
                }
            }
        }
    }

    /// The closeSession txn of `sid`: its ephemerals as the pending state has them.
    pub(crate) fn close_session_txn(&self, sid: i64) -> TxnRecord {
        let view = Layered {
            top: &self.overlay,
            below: &self.tree,
        };
        TxnRecord::CloseSession(Some(CloseSessionTxn {
            paths2_delete: Some(ephemerals_as_zookeeper(&view, sid)),
        }))
    }

    fn expire_sessions(&mut self) {
        let now = Instant::now();
        let expired: Vec<i64> = self
            .sessions
            .values()
            .filter(|s| s.deadline <= now && !s.closing)
            .map(|s| s.id)
            .collect();
        for sid in expired {
            tracing::info!("expiring session {sid:#x}");
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.closing = true;
            }
            let rec = self.close_session_txn(sid);
            self.propose(sid, 0, rec, None);
        }
    }

    /// Deletes empty containers that once had children, and expired empty TTL nodes.
    fn check_containers(&mut self) {
        let now = Instant::now();
        if now < self.next_container_check {
            return;
        }
        self.next_container_check =
            now + Duration::from_millis(self.cfg.container_check_interval_ms);
        let wall = now_ms();
        let mut doomed = Vec::new();
        for p in self.tree.containers.iter() {
            if let Some(n) = self.tree.get(p) {
                if n.num_children == 0 && n.stat.cversion > 0 {
                    doomed.push(p.clone());
                }
            }
        }
        for p in self.tree.ttls.iter() {
            if let Some(n) = self.tree.get(p) {
                if let crate::tree::NodeKind::Ttl(ttl) =
                    crate::tree::node_kind(n.stat.ephemeral_owner, true)
                {
                    if n.num_children == 0 && wall > n.stat.mtime.saturating_add(ttl) {
                        doomed.push(p.clone());
                    }
                }
            }
        }
        for p in doomed {
            let still_empty = {
                let view = Layered {
                    top: &self.overlay,
                    below: &self.tree,
                };
                view.view(&p).is_some_and(|n| n.num_children == 0)
            };
            if still_empty {
                self.propose(
                    0,
                    0,
                    TxnRecord::DeleteContainer(DeleteTxn { path: p }),
                    None,
                );
            }
        }
    }
}

/// A session's ephemerals in the order a copy of ZooKeeper's `HashSet` of them iterates (the
/// order its closeSession deletes them in, so the order of the events, and getEphemerals'
/// order): the set's buckets in creation order, in a table grown for the most the session
/// held at once (ZooKeeper's tables never shrink; after a restart, for what it holds, as
/// ZooKeeper's loaded set), copied into a table sized for what it holds now.
pub(crate) fn ephemerals_as_zookeeper(view: &dyn View, sid: i64) -> Vec<String> {
    let mut paths = view.ephemerals(sid);
    paths.sort_by_cached_key(|p| view.view(p).map_or(i64::MAX, |n| n.stat.czxid));
    let held = view.ephemeral_peak(sid).max(paths.len());
    crate::java::cloned_hash_set_order(paths, held)
}

/// Prepares a multi: each op sees the ones before it; the first failure makes the whole txn
/// the prepared ops followed by an error sub-txn (nothing of it is applied). Err: the whole
/// multi fails ([`prep::fails_whole_multi`]).
fn prep_multi(ctx: &Ctx<'_>, ops: &[MultiOp]) -> Result<TxnRecord, ZkError> {
    let mut scratch = Overlay::default();
    let mut subs: Vec<TxnRecord> = Vec::new();
    let header_for = |zxid| TxnHeader {
        client_id: ctx.session,
        cxid: 0,
        zxid,
        time: now_ms(),
        type_: 0,
    };
    for op in ops {
        if prep::fails_whole_multi(op) {
            return Err(ZkError::MarshallingError);
        }
        let result = {
            let view = Layered {
                top: &scratch,
                below: ctx.tree,
            };
            let sub_ctx = Ctx {
                tree: &view,
                session: ctx.session,
                auth: ctx.auth,
                extended_types: ctx.extended_types,
                enforce_quota: ctx.enforce_quota,
            };
            prep::multi_op(&sub_ctx, op).map(|rec| {
                let changes = Overlay::changes_of(&view, &header_for(0), &rec);
                (rec, changes)
            })
        };
        match result {
            Ok((rec, changes)) => {
                scratch.apply(changes, 0, 0);
                subs.push(rec);
            }
            Err(e) => {
                subs.push(TxnRecord::Error(ErrorTxn { err: e.code() }));
                break;
            }
        }
    }
    Ok(TxnRecord::multi(&subs))
}

/// Per-op results of a committed multi.
fn multi_results(m: &MultiTxn, ops: &[OpCode], applied: &Applied) -> Vec<MultiResult> {
    let subs = m.txns.as_deref().unwrap_or_default();
    let failed = subs.iter().position(|t| t.type_ == OpCode::Error.code());
    if let Some(at) = failed {
        let err = subs[at]
            .data
            .as_deref()
            .and_then(|d| ErrorTxn::from_bytes(d).ok())
            .map_or(ZkError::SystemError.code(), |e| e.err);
        return (0..ops.len())
            .map(|i| match i.cmp(&at) {
                std::cmp::Ordering::Less => MultiResult::Error(0),
                std::cmp::Ordering::Equal => MultiResult::Error(err),
                std::cmp::Ordering::Greater => {
                    MultiResult::Error(ZkError::RuntimeInconsistency.code())
                }
            })
            .collect();
    }
    ops.iter()
        .zip(applied.results.iter())
        .map(|(op, r)| match op {
            OpCode::Create | OpCode::Create2 => MultiResult::Create(CreateResponse {
                path: r.path.clone(),
            }),
            OpCode::CreateContainer | OpCode::CreateTtl => MultiResult::Create2(Create2Response {
                path: r.path.clone(),
                stat: r.stat.clone().unwrap_or_default(),
            }),
            OpCode::Delete => MultiResult::Delete,
            OpCode::SetData => MultiResult::SetData(SetDataResponse {
                stat: r.stat.clone().unwrap_or_default(),
            }),
            _ => MultiResult::Check,
        })
        .collect()
}

use jute::Decode;

fn session_reply(id: i64, timeout: i32, read_only: Option<bool>) -> ConnectReply {
    ConnectReply {
        response: ConnectResponse {
            protocol_version: 0,
            time_out: timeout,
            session_id: id,
            passwd: Some(session::password(id)),
        },
        read_only,
    }
}

/// A notification frame: `ReplyHeader{-1, zxid, 0}` + WatcherEvent. `zxid` is the txn that
/// fired the watch, as ZooKeeper 3.9 sends it (ZOOKEEPER-4655), or -1 where no txn did (the
/// events `setWatches` finds at once), as 3.9 sends then; 3.8 always sends -1 and its
/// clients read no zxid from a notification.
pub(crate) fn notification(kind: i32, path: &str, zxid: i64) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write(&mut out, |o| {
        ReplyHeader {
            xid: xid::NOTIFICATION,
            zxid,
            err: 0,
        }
        .encode(o);
        WatcherEvent {
            type_: kind,
            state: KeeperState::SyncConnected.code(),
            path: path.to_string(),
        }
        .encode(o);
    });
    out
}

fn is_write_op(op: OpCode) -> bool {
    matches!(
        op,
        OpCode::Create
            | OpCode::Create2
            | OpCode::CreateContainer
            | OpCode::CreateTtl
            | OpCode::Delete
            | OpCode::SetData
            | OpCode::SetAcl
            | OpCode::Check
            | OpCode::Multi
            | OpCode::Reconfig
    )
}

/// ZooKeeper's short names for ops, as `cons` shows them.
pub fn op_name(op: OpCode) -> &'static str {
    match op {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => "CREA",
        OpCode::Delete => "DELE",
        OpCode::Exists => "EXIS",
        OpCode::GetData => "GETD",
        OpCode::SetData => "SETD",
        OpCode::GetAcl => "GETA",
        OpCode::SetAcl => "SETA",
        OpCode::GetChildren | OpCode::GetChildren2 => "GETC",
        OpCode::Sync => "SYNC",
        OpCode::Ping => "PING",
        OpCode::Multi | OpCode::MultiRead => "MULT",
        OpCode::CloseSession => "CLOS",
        OpCode::SetWatches | OpCode::SetWatches2 => "SETW",
        _ => "UNKNOWN",
    }
}
