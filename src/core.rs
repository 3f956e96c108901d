//! THE event loop: one task owns the tree, sessions, connections' state and watches, so none of
//! them needs a lock.
//!
//! Each turn takes every message waiting (a batch), handles them in order, then persists the
//! batch's txns and changed nodes in one synced RocksDB write (group commit), and only then
//! releases the batch's outgoing frames. So nothing not yet durable is ever visible to a
//! client, replies leave in request order, and a watch event always precedes the reply that
//! follows the change.

use crate::acl::{self, AuthIds};
use crate::config::Config;
use crate::prep::{self, Ctx};
use crate::session::{self, Session};
use crate::store::Store;
use crate::tree::{Applied, DataTree, Event};
use crate::watches::{ConnId, Kind, Watches};
use jute::data::{ClientInfo, Id, Stat};
use jute::proto::*;
use jute::txn::*;
use jute::{
    frame, perms, xid, Connect, ConnectReply, Encode, EventType, KeeperState, MultiOp,
    MultiResponse, MultiResult, OpCode, Request, Response, TxnEntry, TxnRecord, WatcherType,
    ZkError,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// What a connection's writer is told.
#[derive(Debug)]
pub enum Out {
    Frame(Vec<u8>),
    /// Close the socket (after the frames before it).
    Close,
}

pub type OutTx = mpsc::UnboundedSender<Out>;

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
        peer: SocketAddr,
        reply: oneshot::Sender<String>,
    },
    /// Stop the loop (graceful shutdown); the store is flushed.
    Shutdown,
}

/// A client connection as the core knows it.
pub struct Conn {
    pub tx: OutTx,
    pub session: Option<i64>,
    pub auth: AuthIds,
    pub peer: SocketAddr,
    pub received: u64,
    pub sent: u64,
    pub established_ms: i64,
    pub last_zxid: i64,
    pub last_op: &'static str,
}

/// Counters for `stat`, `mntr`, `srst`.
#[derive(Default, Debug, Clone)]
pub struct Stats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub latency_min_us: u64,
    pub latency_max_us: u64,
    pub latency_total_us: u64,
    pub latency_count: u64,
    pub outstanding: usize,
    pub commits: u64,
    pub fsync_total_us: u64,
}

pub struct Core {
    pub cfg: Arc<Config>,
    pub tree: DataTree,
    store: Store,
    pub sessions: HashMap<i64, Session>,
    pub conns: HashMap<ConnId, Conn>,
    pub watches: Watches,
    next_session_id: i64,
    pub stats: Stats,
    pub started: Instant,
    // The current batch.
    txns: Vec<TxnEntry>,
    opened: Vec<(i64, i32)>,
    closed: Vec<i64>,
    outbox: Vec<(ConnId, Out)>,
    batch_start: Instant,
    next_container_check: Instant,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn reply_frame(xid: i32, zxid: i64, err: i32, body: Option<&dyn Fn(&mut Vec<u8>)>) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write(&mut out, |out| {
        ReplyHeader { xid, zxid, err }.encode(out);
        if let Some(body) = body {
            body(out);
        }
    });
    out
}

impl Core {
    pub fn new(cfg: Arc<Config>, store: Store) -> Result<Self, crate::store::StoreError> {
        let recovered = store.recover(cfg.extended_types)?;
        let now = Instant::now();
        let mut sessions = HashMap::new();
        let mut max_id = 0;
        for (id, timeout) in recovered.sessions {
            // Recovered sessions get a fresh timeout, as in ZooKeeper.
            sessions.insert(id, Session::new(id, timeout, now, cfg.tick_time_ms));
            max_id = max_id.max(id);
        }
        let next_session_id = session::initial_session_id(cfg.server_id, now_ms()).max(max_id + 1);
        Ok(Core {
            next_container_check: now + Duration::from_millis(cfg.container_check_interval_ms),
            cfg,
            tree: recovered.tree,
            store,
            sessions,
            conns: HashMap::new(),
            watches: Watches::default(),
            next_session_id,
            stats: Stats::default(),
            started: now,
            txns: Vec::new(),
            opened: Vec::new(),
            closed: Vec::new(),
            outbox: Vec::new(),
            batch_start: now,
        })
    }

    /// Runs until every sender is gone; then flushes the store.
    pub async fn run(mut self, mut rx: mpsc::Receiver<CoreMsg>) {
        let tick = Duration::from_millis((self.cfg.tick_time_ms / 2).clamp(10, 1000));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The fresh tree (or recovered state) is made durable before anyone is answered.
        self.finish_batch();
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    if matches!(msg, CoreMsg::Shutdown) {
                        break;
                    }
                    self.batch_start = Instant::now();
                    self.handle(msg);
                    // Take everything already waiting: one fsync for all of it.
                    let mut n = 0;
                    while n < 4096 {
                        match rx.try_recv() {
                            Ok(CoreMsg::Shutdown) => {
                                self.finish_batch();
                                return self.flush();
                            }
                            Ok(msg) => self.handle(msg),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                    self.finish_batch();
                }
                _ = ticker.tick() => {
                    self.batch_start = Instant::now();
                    self.expire_sessions();
                    self.check_containers();
                    self.finish_batch();
                }
            }
        }
        self.finish_batch();
        self.flush();
    }

    fn flush(&self) {
        if let Err(e) = self.store.flush() {
            tracing::error!("flushing the store at shutdown: {e}");
        }
    }

    /// Persists the batch, then releases its frames.
    fn finish_batch(&mut self) {
        let dirty = self.tree.take_dirty();
        if !self.txns.is_empty()
            || !dirty.is_empty()
            || !self.opened.is_empty()
            || !self.closed.is_empty()
        {
            let t0 = Instant::now();
            if let Err(e) =
                self.store
                    .commit(&self.txns, &self.tree, &dirty, &self.opened, &self.closed)
            {
                // The tree in memory is ahead of the disk: the only safe move is to stop before
                // anyone sees it.
                tracing::error!("commit failed, stopping: {e}");
                std::process::exit(2);
            }
            self.stats.commits += 1;
            self.stats.fsync_total_us += t0.elapsed().as_micros() as u64;
            self.txns.clear();
            self.opened.clear();
            self.closed.clear();
        }
        let elapsed = self.batch_start.elapsed().as_micros() as u64;
        for (conn, out) in self.outbox.drain(..) {
            if let Some(c) = self.conns.get_mut(&conn) {
                if let Out::Frame(_) = out {
                    c.sent += 1;
                    self.stats.packets_sent += 1;
                }
                let _ = c.tx.send(out);
            }
        }
        if self.stats.latency_count == 0 || elapsed < self.stats.latency_min_us {
            self.stats.latency_min_us = elapsed;
        }
        self.stats.latency_max_us = self.stats.latency_max_us.max(elapsed);
        self.stats.latency_total_us += elapsed;
        self.stats.latency_count += 1;
    }

    fn send(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.outbox.push((conn, Out::Frame(frame)));
    }

    fn close(&mut self, conn: ConnId) {
        self.outbox.push((conn, Out::Close));
    }

    fn reply(&mut self, conn: ConnId, xid: i32, result: Result<Response, ZkError>) {
        let zxid = self.tree.last_zxid;
        let frame = match result {
            Ok(resp) => reply_frame(xid, zxid, 0, Some(&|out: &mut Vec<u8>| resp.encode(out))),
            Err(e) => reply_frame(xid, zxid, e.code(), None),
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_zxid = zxid;
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
                    c.last_op = op_name(req.op());
                }
                self.request(conn, xid, req)
            }
            CoreMsg::Undecodable { conn, xid, op } => {
                self.stats.packets_received += 1;
                match op {
                    None => {
                        let frame = reply_frame(xid, -1, ZkError::Unimplemented.code(), None);
                        self.send(conn, frame);
                        self.close(conn);
                    }
                    Some(op) => {
                        if is_write_op(op) {
                            if let Some(session) = self.session_of(conn) {
                                self.log_txn(
                                    session,
                                    xid,
                                    TxnRecord::Error(ErrorTxn {
                                        err: ZkError::MarshallingError.code(),
                                    }),
                                );
                            }
                        }
                        self.reply(conn, xid, Err(ZkError::MarshallingError));
                    }
                }
            }
            CoreMsg::Closed { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    if let Some(s) = c.session.and_then(|id| self.sessions.get_mut(&id)) {
                        if s.conn == Some(conn) {
                            s.conn = None;
                        }
                    }
                }
                self.watches.remove_conn(conn);
            }
            CoreMsg::Shutdown => {}
            CoreMsg::FourLetter { word, peer, reply } => {
                let text = crate::admin::run(&word, self, peer);
                let _ = reply.send(text);
            }
        }
    }

    fn session_of(&self, conn: ConnId) -> Option<i64> {
        self.conns.get(&conn).and_then(|c| c.session)
    }

    fn connect(&mut self, conn: ConnId, connect: Connect, peer: SocketAddr, tx: OutTx) {
        let req = &connect.request;
        if req.last_zxid_seen > self.tree.last_zxid {
            // The client has seen more than we have: it must try another server.
            let _ = tx.send(Out::Close);
            return;
        }
        let mut auth = AuthIds::default();
        auth.add(Id {
            scheme: "ip".into(),
            id: peer.ip().to_canonical().to_string(),
        });
        self.conns.insert(
            conn,
            Conn {
                tx,
                session: None,
                auth,
                peer,
                received: 1,
                sent: 0,
                established_ms: now_ms(),
                last_zxid: 0,
                last_op: "NA",
            },
        );
        self.stats.packets_received += 1;
        let timeout = req.time_out.clamp(
            self.cfg.min_session_timeout_ms(),
            self.cfg.max_session_timeout_ms(),
        );
        let read_only = connect.read_only.map(|_| false);
        let invalid = |read_only| ConnectReply {
            response: ConnectResponse {
                protocol_version: 0,
                time_out: 0,
                session_id: 0,
                passwd: Some(vec![0; 16]),
            },
            read_only,
        };
        let reply = if req.session_id == 0 {
            let id = self.next_session_id;
            self.next_session_id += 1;
            if self.next_session_id == i64::MIN {
                self.next_session_id += 1;
            }
            self.log_txn(
                id,
                0,
                TxnRecord::CreateSession(CreateSessionTxn { time_out: timeout }),
            );
            let mut s = Session::new(id, timeout, Instant::now(), self.cfg.tick_time_ms);
            s.conn = Some(conn);
            self.sessions.insert(id, s);
            self.opened.push((id, timeout));
            if let Some(c) = self.conns.get_mut(&conn) {
                c.session = Some(id);
            }
            ConnectReply {
                response: ConnectResponse {
                    protocol_version: 0,
                    time_out: timeout,
                    session_id: id,
                    passwd: Some(session::password(id)),
                },
                read_only,
            }
        } else {
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
            match self.sessions.get_mut(&id) {
                Some(s) if password_ok && !s.closing => {
                    s.conn = Some(conn);
                    s.timeout_ms = timeout;
                    s.touch(Instant::now(), self.cfg.tick_time_ms);
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.session = Some(id);
                    }
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
                _ => {
                    let mut out = Vec::new();
                    frame::write(&mut out, |o| invalid(read_only).encode(o));
                    self.send(conn, out);
                    self.close(conn);
                    return;
                }
            }
        };
        let mut out = Vec::new();
        frame::write(&mut out, |o| reply.encode(o));
        self.send(conn, out);
    }

    fn request(&mut self, conn: ConnId, xid: i32, req: Request) {
        let Some(sid) = self.session_of(conn) else {
            return;
        };
        let tick = self.cfg.tick_time_ms;
        match self.sessions.get_mut(&sid) {
            Some(s) if !s.closing => s.touch(Instant::now(), tick),
            _ => {
                self.reply(conn, xid, Err(ZkError::SessionExpired));
                self.close(conn);
                return;
            }
        }
        match req {
            Request::Ping => {
                let frame = reply_frame(xid::PING, self.tree.last_zxid, 0, None);
                self.send(conn, frame);
            }
            Request::Auth(p) => self.auth(conn, xid, p),
            Request::Sasl(_) => {
                let frame = reply_frame(xid, 0, ZkError::AuthFailed.code(), None);
                self.send(conn, frame);
            }
            Request::CloseSession => {
                self.close_session(sid, xid);
                self.reply(conn, xid, Ok(Response::Empty));
                self.close(conn);
            }
            Request::Check(c) => {
                // Outside a multi ZooKeeper consumes a zxid and sends no reply at all.
                let rec = {
                    let ctx = self.ctx(conn, sid);
                    prep::check(&ctx, &c.path, c.version)
                };
                let rec = rec.unwrap_or_else(|e| TxnRecord::Error(ErrorTxn { err: e.code() }));
                self.log_txn(sid, xid, rec);
            }
            Request::Create(_)
            | Request::Create2(_)
            | Request::CreateContainer(_)
            | Request::CreateTtl(_)
            | Request::Delete(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Reconfig(_)
            | Request::DeleteContainer(_) => self.write(conn, sid, xid, req),
            Request::Multi(m) => self.multi(conn, sid, xid, m.ops),
            Request::CreateSession(_) => self.reply(conn, xid, Err(ZkError::Unimplemented)),
            other => {
                let result = self.read(conn, sid, other, xid);
                if let Some(result) = result {
                    self.reply(conn, xid, result);
                }
            }
        }
    }

    fn auth(&mut self, conn: ConnId, xid: i32, p: AuthPacket) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let ok = match p.scheme.as_str() {
            "digest" => {
                let text =
                    String::from_utf8_lossy(p.auth.as_deref().unwrap_or_default()).to_string();
                let id = acl::digest(&text);
                if self.cfg.super_digest.as_deref() == Some(id.as_str()) {
                    c.auth.add(Id {
                        scheme: "super".into(),
                        id: "".into(),
                    });
                }
                c.auth.add(Id {
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

    fn ctx(&self, conn: ConnId, session: i64) -> Ctx<'_> {
        static NO_AUTH: std::sync::OnceLock<AuthIds> = std::sync::OnceLock::new();
        let auth = self
            .conns
            .get(&conn)
            .map(|c| &c.auth)
            .unwrap_or_else(|| NO_AUTH.get_or_init(AuthIds::default));
        Ctx {
            tree: &self.tree,
            session,
            auth,
            extended_types: self.cfg.extended_types,
        }
    }

    fn header(&self, session: i64, xid: i32, op: OpCode) -> TxnHeader {
        TxnHeader {
            client_id: session,
            cxid: xid,
            zxid: self.tree.last_zxid + 1,
            time: now_ms(),
            type_: op.code(),
        }
    }

    /// Logs and applies a txn, firing its watches. Returns what applying did.
    fn log_txn(&mut self, session: i64, xid: i32, record: TxnRecord) -> Applied {
        let header = self.header(session, xid, record.op());
        let entry = TxnEntry {
            header,
            record,
            digest: None,
        };
        let applied = self.tree.apply(&entry);
        self.fire(&applied.events);
        self.txns.push(entry);
        applied
    }

    fn fire(&mut self, events: &[Event]) {
        for ev in events {
            let conns = self.watches.trigger(ev);
            if conns.is_empty() {
                continue;
            }
            let mut out = Vec::new();
            frame::write(&mut out, |o| {
                ReplyHeader {
                    xid: xid::NOTIFICATION,
                    zxid: -1,
                    err: 0,
                }
                .encode(o);
                WatcherEvent {
                    type_: ev.kind.code(),
                    state: KeeperState::SyncConnected.code(),
                    path: ev.path.clone(),
                }
                .encode(o);
            });
            for c in conns {
                self.send(c, out.clone());
            }
        }
    }

    fn write(&mut self, conn: ConnId, sid: i64, xid: i32, req: Request) {
        let op = req.op();
        let rec = {
            let ctx = self.ctx(conn, sid);
            match &req {
                Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => {
                    prep::create(&ctx, op, &r.path, &r.data, r.acl.as_deref(), r.flags, -1)
                }
                Request::CreateTtl(r) => {
                    prep::create(&ctx, op, &r.path, &r.data, r.acl.as_deref(), r.flags, r.ttl)
                }
                Request::Delete(r) => prep::delete(&ctx, &r.path, r.version),
                Request::SetData(r) => prep::set_data(&ctx, &r.path, &r.data, r.version),
                Request::SetAcl(r) => prep::set_acl(&ctx, &r.path, r.acl.as_deref(), r.version),
                Request::Reconfig(_) if !self.cfg.reconfig_enabled => {
                    Err(ZkError::ReconfigDisabled)
                }
                Request::Reconfig(_) => Err(ZkError::Unimplemented),
                _ => Err(ZkError::Unimplemented),
            }
        };
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => {
                self.log_txn(sid, xid, TxnRecord::Error(ErrorTxn { err: e.code() }));
                self.reply(conn, xid, Err(e));
                return;
            }
        };
        let p = prep::record_path(&rec).unwrap_or("/").to_string();
        self.log_txn(sid, xid, rec);
        let stat = || {
            self.tree
                .get(&p)
                .map(|n| n.client_stat(self.cfg.extended_types))
                .unwrap_or_default()
        };
        let resp = match op {
            OpCode::Create => Response::Create(CreateResponse { path: p.clone() }),
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
                Response::Create2(Create2Response {
                    path: p.clone(),
                    stat: stat(),
                })
            }
            OpCode::SetData => Response::SetData(SetDataResponse { stat: stat() }),
            OpCode::SetAcl => Response::SetAcl(SetACLResponse { stat: stat() }),
            _ => Response::Empty,
        };
        self.reply(conn, xid, Ok(resp));
    }

    fn multi(&mut self, conn: ConnId, sid: i64, xid: i32, ops: Vec<MultiOp>) {
        let header = self.header(sid, xid, OpCode::Multi);
        let mut undo: Vec<(String, Option<crate::tree::Node>)> = Vec::new();
        let mut subs: Vec<TxnRecord> = Vec::new();
        let mut results = Vec::new();
        let mut events = Vec::new();
        let mut failure = None;
        for (i, op) in ops.iter().enumerate() {
            let rec = {
                let ctx = self.ctx(conn, sid);
                prep::multi_op(&ctx, op)
            };
            let rec = match rec {
                Ok(rec) => rec,
                Err(e) => {
                    failure = Some((i, e));
                    break;
                }
            };
            let p = prep::record_path(&rec).unwrap_or("/").to_string();
            for q in [Some(p.as_str()), crate::path::parent(&p)]
                .into_iter()
                .flatten()
            {
                undo.push((q.to_string(), self.tree.snapshot_node(q)));
            }
            let mut applied = Applied::default();
            self.tree.apply_record(&header, &rec, &mut applied);
            events.extend(applied.events);
            let stat = || {
                self.tree
                    .get(&p)
                    .map(|n| n.client_stat(self.cfg.extended_types))
                    .unwrap_or_default()
            };
            results.push(match op {
                MultiOp::Create(_) | MultiOp::Create2(_) => {
                    MultiResult::Create(CreateResponse { path: p.clone() })
                }
                MultiOp::CreateContainer(_) | MultiOp::CreateTtl(_) => {
                    MultiResult::Create2(Create2Response {
                        path: p.clone(),
                        stat: stat(),
                    })
                }
                MultiOp::Delete(_) => MultiResult::Delete,
                MultiOp::SetData(_) => MultiResult::SetData(SetDataResponse { stat: stat() }),
                _ => MultiResult::Check,
            });
            subs.push(rec);
        }
        if let Some((failed_at, err)) = failure {
            for (p, node) in undo.into_iter().rev() {
                self.tree.restore(&p, node);
            }
            subs.push(TxnRecord::Error(ErrorTxn { err: err.code() }));
            results = (0..ops.len())
                .map(|i| match i.cmp(&failed_at) {
                    std::cmp::Ordering::Less => MultiResult::Error(0),
                    std::cmp::Ordering::Equal => MultiResult::Error(err.code()),
                    std::cmp::Ordering::Greater => {
                        MultiResult::Error(ZkError::RuntimeInconsistency.code())
                    }
                })
                .collect();
        } else {
            self.fire(&events);
        }
        let txns = subs
            .iter()
            .map(|r| Txn {
                type_: r.op().code(),
                data: Some(r.to_bytes()),
            })
            .collect();
        let entry = TxnEntry {
            header,
            record: TxnRecord::Multi(MultiTxn { txns: Some(txns) }),
            digest: None,
        };
        self.tree.last_zxid = entry.header.zxid;
        self.txns.push(entry);
        self.reply(conn, xid, Ok(Response::Multi(MultiResponse { results })));
    }

    /// Answers a read; `None` when the reply was already sent.
    fn read(
        &mut self,
        conn: ConnId,
        sid: i64,
        req: Request,
        _xid: i32,
    ) -> Option<Result<Response, ZkError>> {
        let ext = self.cfg.extended_types;
        let auth = self
            .conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        let can = |acl: &[jute::data::Acl], perm| acl::check(acl, perm, &auth);
        Some(match req {
            Request::Exists(r) => {
                if r.path.contains('\0') {
                    return Some(Err(ZkError::BadArguments));
                }
                if r.watch {
                    self.watches.add(Kind::Data, &r.path, conn);
                }
                match self.tree.get(&r.path) {
                    Some(n) => Ok(Response::Exists(ExistsResponse {
                        stat: n.client_stat(ext),
                    })),
                    None => Err(ZkError::NoNode),
                }
            }
            Request::GetData(r) => self
                .get_data(conn, &auth, &r.path, r.watch)
                .map(Response::GetData),
            Request::GetChildren(r) => {
                self.get_children(conn, &auth, &r.path, r.watch)
                    .map(|(children, _)| {
                        Response::GetChildren(GetChildrenResponse {
                            children: Some(children),
                        })
                    })
            }
            Request::GetChildren2(r) => {
                self.get_children(conn, &auth, &r.path, r.watch)
                    .map(|(children, stat)| {
                        Response::GetChildren2(GetChildren2Response {
                            children: Some(children),
                            stat,
                        })
                    })
            }
            Request::GetAcl(r) => match self.tree.get(&r.path) {
                None => Err(ZkError::NoNode),
                Some(n) => {
                    if can(&n.acl, perms::READ | perms::ADMIN).is_err() {
                        Err(ZkError::NoAuth)
                    } else {
                        let acl = if can(&n.acl, perms::ADMIN).is_ok() {
                            n.acl.to_vec()
                        } else {
                            acl::mask_digests(&n.acl)
                        };
                        Ok(Response::GetAcl(GetACLResponse {
                            acl: Some(acl),
                            stat: n.client_stat(ext),
                        }))
                    }
                }
            },
            Request::GetAllChildrenNumber(r) => match self.tree.get(&r.path) {
                None => Err(ZkError::NoNode),
                Some(n) => can(&n.acl, perms::READ).map(|()| {
                    Response::GetAllChildrenNumber(GetAllChildrenNumberResponse {
                        total_number: i32::try_from(self.tree.descendants(&r.path))
                            .unwrap_or(i32::MAX),
                    })
                }),
            },
            Request::GetEphemerals(r) => {
                let prefix = r.prefix_path.trim();
                let all = prefix.is_empty() || prefix == "/";
                let list = self
                    .tree
                    .ephemerals_of(sid)
                    .into_iter()
                    .filter(|p| all || p.starts_with(prefix))
                    .collect();
                Ok(Response::GetEphemerals(GetEphemeralsResponse {
                    ephemerals: Some(list),
                }))
            }
            Request::Sync(r) => Ok(Response::Sync(SyncResponse { path: r.path })),
            Request::MultiRead(m) => {
                let mut results = Vec::new();
                for op in m.ops {
                    results.push(match op {
                        MultiOp::GetData(r) => match self.get_data(conn, &auth, &r.path, false) {
                            Ok(d) => MultiResult::GetData(d),
                            Err(e) => MultiResult::Error(e.code()),
                        },
                        MultiOp::GetChildren(r) => match self
                            .get_children(conn, &auth, &r.path, false)
                        {
                            Ok((children, _)) => MultiResult::GetChildren(GetChildrenResponse {
                                children: Some(children),
                            }),
                            Err(e) => MultiResult::Error(e.code()),
                        },
                        _ => MultiResult::Error(ZkError::MarshallingError.code()),
                    });
                }
                Ok(Response::Multi(MultiResponse { results }))
            }
            Request::WhoAmI => {
                let info = auth
                    .ids
                    .iter()
                    .map(|id| ClientInfo {
                        auth_scheme: id.scheme.clone(),
                        user: match id.scheme.as_str() {
                            "digest" => id.id.split(':').next().unwrap_or("").to_string(),
                            _ => id.id.clone(),
                        },
                    })
                    .collect();
                Ok(Response::WhoAmI(WhoAmIResponse {
                    client_info: Some(info),
                }))
            }
            Request::AddWatch(r) => {
                let recursive = match jute::AddWatchMode::try_from(r.mode) {
                    Ok(jute::AddWatchMode::Persistent) => false,
                    Ok(jute::AddWatchMode::PersistentRecursive) => true,
                    Err(_) => return Some(Err(ZkError::BadArguments)),
                };
                self.watches.add_persistent(&r.path, conn, recursive);
                Ok(Response::AddWatch(ErrorResponse { err: 0 }))
            }
            Request::CheckWatches(r) => {
                let kind = watcher_kind(r.type_);
                if self.watches.has(&r.path, conn, kind) {
                    Ok(Response::Empty)
                } else {
                    Err(ZkError::NoWatcher)
                }
            }
            Request::RemoveWatches(r) => {
                let kind = watcher_kind(r.type_);
                if self.watches.remove(&r.path, conn, kind) {
                    Ok(Response::Empty)
                } else {
                    Err(ZkError::NoWatcher)
                }
            }
            Request::SetWatches(w) => {
                self.set_watches(
                    conn,
                    w.relative_zxid,
                    [w.data_watches, w.exist_watches, w.child_watches, None, None],
                );
                Ok(Response::Empty)
            }
            Request::SetWatches2(w) => {
                self.set_watches(
                    conn,
                    w.relative_zxid,
                    [
                        w.data_watches,
                        w.exist_watches,
                        w.child_watches,
                        w.persistent_watches,
                        w.persistent_recursive_watches,
                    ],
                );
                Ok(Response::Empty)
            }
            _ => Err(ZkError::Unimplemented),
        })
    }

    fn get_data(
        &mut self,
        conn: ConnId,
        auth: &AuthIds,
        p: &str,
        watch: bool,
    ) -> Result<GetDataResponse, ZkError> {
        let n = self.tree.get(p).ok_or(ZkError::NoNode)?;
        acl::check(&n.acl, perms::READ, auth)?;
        let resp = GetDataResponse {
            data: n.data.clone(),
            stat: n.client_stat(self.cfg.extended_types),
        };
        if watch {
            self.watches.add(Kind::Data, p, conn);
        }
        Ok(resp)
    }

    fn get_children(
        &mut self,
        conn: ConnId,
        auth: &AuthIds,
        p: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), ZkError> {
        let n = self.tree.get(p).ok_or(ZkError::NoNode)?;
        acl::check(&n.acl, perms::READ, auth)?;
        let children = n.children.iter().map(|c| c.to_string()).collect();
        let stat = n.client_stat(self.cfg.extended_types);
        if watch {
            self.watches.add(Kind::Child, p, conn);
        }
        Ok((children, stat))
    }

    /// Re-arms watches after a reconnect, firing what changed since `relative_zxid`.
    fn set_watches(&mut self, conn: ConnId, rel: i64, lists: [Option<Vec<String>>; 5]) {
        let [data, exist, child, persistent, recursive] = lists.map(Option::unwrap_or_default);
        let mut events = Vec::new();
        for p in data {
            match self.tree.get(&p) {
                None => events.push((EventType::NodeDeleted, p)),
                Some(n) if n.stat.mzxid > rel => events.push((EventType::NodeDataChanged, p)),
                Some(_) => self.watches.add(Kind::Data, &p, conn),
            }
        }
        for p in exist {
            if self.tree.get(&p).is_some() {
                events.push((EventType::NodeCreated, p));
            } else {
                self.watches.add(Kind::Data, &p, conn);
            }
        }
        for p in child {
            match self.tree.get(&p) {
                None => events.push((EventType::NodeDeleted, p)),
                Some(n) if n.stat.pzxid > rel => events.push((EventType::NodeChildrenChanged, p)),
                Some(_) => self.watches.add(Kind::Child, &p, conn),
            }
        }
        for p in persistent {
            self.watches.add_persistent(&p, conn, false);
        }
        for p in recursive {
            self.watches.add_persistent(&p, conn, true);
        }
        for (kind, p) in events {
            let mut out = Vec::new();
            frame::write(&mut out, |o| {
                ReplyHeader {
                    xid: xid::NOTIFICATION,
                    zxid: -1,
                    err: 0,
                }
                .encode(o);
                WatcherEvent {
                    type_: kind.code(),
                    state: KeeperState::SyncConnected.code(),
                    path: p,
                }
                .encode(o);
            });
            self.send(conn, out);
        }
    }

    fn close_session(&mut self, sid: i64, xid: i32) {
        let paths = self.tree.ephemerals_of(sid);
        self.log_txn(
            sid,
            xid,
            TxnRecord::CloseSession(Some(CloseSessionTxn {
                paths2_delete: Some(paths),
            })),
        );
        if let Some(s) = self.sessions.remove(&sid) {
            if let Some(c) = s.conn {
                self.watches.remove_conn(c);
            }
        }
        self.closed.push(sid);
    }

    fn expire_sessions(&mut self) {
        let now = Instant::now();
        let expired: Vec<(i64, Option<ConnId>)> = self
            .sessions
            .values()
            .filter(|s| s.deadline <= now)
            .map(|s| (s.id, s.conn))
            .collect();
        for (sid, conn) in expired {
            tracing::info!("expiring session {sid:#x}");
            self.close_session(sid, 0);
            if let Some(c) = conn {
                // Expiry closes the socket without a frame.
                self.close(c);
            }
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
                if n.children.is_empty() && n.stat.cversion > 0 {
                    doomed.push(p.clone());
                }
            }
        }
        for p in self.tree.ttls.iter() {
            if let Some(n) = self.tree.get(p) {
                if let crate::tree::NodeKind::Ttl(ttl) =
                    crate::tree::node_kind(n.stat.ephemeral_owner, true)
                {
                    if n.children.is_empty() && wall > n.stat.mtime.saturating_add(ttl) {
                        doomed.push(p.clone());
                    }
                }
            }
        }
        for p in doomed {
            self.log_txn(0, 0, TxnRecord::DeleteContainer(DeleteTxn { path: p }));
        }
    }
}

fn watcher_kind(t: i32) -> Option<Kind> {
    match WatcherType::try_from(t) {
        Ok(WatcherType::Children) => Some(Kind::Child),
        Ok(WatcherType::Data) => Some(Kind::Data),
        _ => None,
    }
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
        OpCode::Create => "CREA",
        OpCode::Create2 => "CREA",
        OpCode::CreateContainer => "CREA",
        OpCode::CreateTtl => "CREA",
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
