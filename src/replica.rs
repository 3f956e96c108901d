//! What an ensemble member adds to the core: it carries out the ZAB state machine's
//! [`Ready`](crate::zab::Ready) (persist, send, apply), forwards client writes and syncs to
//! the leader and answers them when their txns commit, prepares the writes learners forward
//! (on the leader), snapshots for SNAP syncs, and drops clients when the ensemble stops
//! serving, as ZooKeeper does.

use crate::acl::AuthIds;
use crate::core::{Core, Origin};
use crate::ensemble::Ensemble;
use crate::quorum::Peers;
use crate::snapshot::SnapFormat;
use crate::watches::ConnId;
use crate::zab::{packet, Forwarded, HardState, Msg, Ready, Role, Sid, Zab, ZabConfig};
use jute::proto::SyncRequest;
use jute::txn::{CreateSessionTxn, ErrorTxn};
use jute::{Encode, OpCode, Reader, Request, TxnRecord, ZkError};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// The core's tick while in an ensemble: ZAB counts time in these.
pub const TICK_MS: u64 = 100;

/// A reconnect waiting for REVALIDATE: (session, negotiated timeout, the request's read-only
/// flag).
pub(crate) type Reconnect = (i64, i32, Option<bool>);

pub struct Replica {
    pub zab: Zab,
    pub peers: Peers,
    pub ensemble: Arc<Ensemble>,
    /// Writes this member forwarded, by (session, xid): who waits for their commit.
    remote: HashMap<(i64, i32), Origin>,
    /// Syncs forwarded to the leader, oldest first: (connection, xid, path).
    /// Syncs sent to the leader: connection, xid, path, and how many writes the connection
    /// had sent before it.
    syncs: VecDeque<(ConnId, i32, String, u64)>,
    /// Reconnects waiting for the leader's REVALIDATE answer: connection -> (session,
    /// negotiated timeout, read-only flag of the request).
    pub(crate) revalidating: HashMap<ConnId, Reconnect>,
    was_serving: bool,
    /// Since when this member has not served (its start, or its quorum's loss): read-only
    /// mode begins a grace period after it.
    pub(crate) not_serving_since: Instant,
    /// Learners that asked for a snapshot this turn: written once the turn's changes are
    /// saved (see [`Core::start_snapshots`]).
    snapshots_wanted: Vec<Sid>,
    /// Snapshots being written, by learner, until their SNAP goes out.
    snapshot_pieces: HashMap<Sid, crate::snapshot::SnapChunks>,
    /// Since when this member leads (`zk_leader_uptime`), while it does.
    pub(crate) leading_since: Option<Instant>,
}

impl Replica {
    /// The state machine of a member restarting with its epochs, its log tail (logged after
    /// the applied zxid) and the applied zxid.
    pub fn new(
        ensemble: Arc<Ensemble>,
        peers: Peers,
        cfg: &crate::config::Config,
        hs: HardState,
        tail: Vec<jute::TxnEntry>,
        applied: i64,
    ) -> Self {
        let per_tick = (cfg.tick_time_ms / TICK_MS).max(1) as u32;
        let zcfg = ZabConfig {
            me: ensemble.me,
            voters: ensemble.voters(),
            observers: ensemble.observers(),
            init_limit: cfg.init_limit * per_tick,
            sync_limit: cfg.sync_limit * per_tick,
            finalize_ticks: 2,
            ping_ticks: (per_tick / 2).max(1),
            config_text: ensemble.config_text().into_bytes(),
            version: ensemble.version as i64,
            next: None,
            max_log: cfg.commit_log_count,
            reconfig_enabled: cfg.reconfig_enabled,
            observer_master: cfg.observer_master_port > 0,
        };
        Replica {
            zab: Zab::new(zcfg, hs, tail, applied),
            peers,
            ensemble,
            remote: HashMap::new(),
            syncs: VecDeque::new(),
            revalidating: HashMap::new(),
            was_serving: false,
            not_serving_since: Instant::now(),
            snapshots_wanted: Vec::new(),
            snapshot_pieces: HashMap::new(),
            leading_since: None,
        }
    }
}

impl Core {
    /// Carries out everything the state machine asked for, until it asks for nothing.
    pub(crate) fn run_ready(&mut self) {
        for _ in 0..1000 {
            let Some(r) = self.replica.as_mut() else {
                return;
            };
            let ready = r.zab.take_ready();
            if ready.is_empty() {
                return;
            }
            self.carry_out(ready);
        }
    }

    fn carry_out(&mut self, ready: Ready) {
        let Ready {
            hard_state,
            install_snapshot,
            truncate,
            append,
            messages,
            committed,
            requests,
            touched,
            revalidate,
            revalidated,
            syncs_done,
            snapshot_for,
            role_changed,
            disconnect,
            reconfigured,
            fatal: cannot_go_on,
        } = ready;
        let fatal = |what: &str, e: crate::store::StoreError| -> ! {
            tracing::error!("{what} failed, stopping: {e}");
            std::process::exit(2);
        };
        if let Some(reason) = cannot_go_on {
            tracing::error!("stopping: {reason}");
            std::process::exit(2);
        }
        tracing::debug!(
            "ready: hs={hard_state:?} snap={} trunc={truncate:?} append={} msgs={} committed={} requests={}",
            install_snapshot.is_some(),
            append.len(),
            messages.len(),
            committed.len(),
            requests.len()
        );
        // 1. Persist, before anything is sent.
        if let Some(hs) = hard_state {
            if let Err(e) = self.store.save_hard_state(hs) {
                fatal("saving the epochs", e);
            }
        }
        if let Some((zxid, bytes)) = install_snapshot {
            // A zkrs leader's snapshot in frames waits in a file; others come as the data.
            let file = self
                .replica
                .as_ref()
                .and_then(|r| r.peers.incoming_file(&bytes))
                .map(std::path::Path::to_path_buf);
            let installed = match &file {
                Some(path) => {
                    let installed = self.store.install_snapshot_file(path);
                    let _ = std::fs::remove_file(path);
                    installed
                }
                None => self.store.install_snapshot(&bytes),
            };
            match installed {
                Ok((_, nodes)) => {
                    tracing::info!("installed a snapshot at {zxid:#x} ({nodes} znodes)");
                    drop(bytes);
                    // Served from the store like any tree: only recent nodes stay in memory.
                    match self.store.open_tree(self.cfg.extended_types) {
                        Ok(tree) => self.tree = tree,
                        Err(e) => fatal("opening an installed snapshot", e),
                    }
                    self.overlay.clear();
                    self.sessions
                        .retain(|id, _| self.tree.sessions.contains_key(id));
                }
                Err(e) => fatal("installing a snapshot", e),
            }
        }
        if let Some(z) = truncate {
            if let Err(e) = self.store.truncate_log(z) {
                fatal("truncating the log", e);
            }
        }
        if let Some(last) = append.last().map(|e| e.header.zxid) {
            if let Err(e) = self.store.append_log(append.iter().map(|e| &**e)) {
                fatal("appending to the log", e);
            }
            self.stats.commits += 1;
            if let Some(r) = self.replica.as_mut() {
                r.zab.persisted(last);
            }
        }
        // 2. Connections.
        if let Some(text) = reconfigured {
            self.reconfigured(&text);
        }
        for sid in disconnect {
            if let Some(r) = self.replica.as_ref() {
                r.peers.disconnect(sid);
            }
        }
        if role_changed {
            self.role_changed();
        }
        if let Some(r) = self.replica.as_mut() {
            for (to, msg) in messages {
                match msg {
                    Msg::Packet(p)
                        if p.type_ == packet::SNAP || p.type_ == packet::SNAP_STREAMED =>
                    {
                        match r.snapshot_pieces.remove(&to) {
                            Some(pieces) => r.peers.send_snapshot(to, p, pieces),
                            None => {
                                // Never without its pieces; the learner syncs again.
                                tracing::error!("a SNAP for member {to} without its snapshot");
                                r.peers.disconnect(to);
                            }
                        }
                    }
                    msg => r.peers.send(to, msg),
                }
            }
        }
        // 3. Apply; each sync answered at its place among the commits.
        let mut syncs = syncs_done.into_iter().peekable();
        for (i, entry) in committed.into_iter().enumerate() {
            while syncs.next_if(|&at| at <= i).is_some() {
                self.leader_answered_sync();
            }
            let local = self
                .inflight
                .front()
                .is_some_and(|i| i.entry.header.zxid == entry.header.zxid);
            let origin = if local {
                self.inflight.pop_front().and_then(|i| i.origin)
            } else {
                self.replica.as_mut().and_then(|r| {
                    r.remote
                        .remove(&(entry.header.client_id, entry.header.cxid))
                })
            };
            // The leader's own proposal: its tree is where the prior came from.
            if let Some(prior) = entry.prior().filter(|_| !local) {
                self.tree.prime(&entry, prior);
            }
            self.commit_entry(&entry, origin);
        }
        for _ in syncs {
            self.leader_answered_sync();
        }
        // Leader work.
        // Learners' pings touch the sessions they heard from. Only sessions the leader holds
        // and is not closing (ZooKeeper's `touchSession`): a ping that left a learner before a
        // closeSession committed must not bring the session back.
        for (id, _timeout) in touched {
            let tick = self.cfg.tick_time_ms;
            if let Some(s) = self.sessions.get_mut(&id).filter(|s| !s.closing) {
                s.touch(Instant::now(), tick);
            }
        }
        for (_, f) in requests {
            self.forwarded(f);
        }
        // A session is valid while the leader holds it and no closeSession is on its way;
        // revalidating it counts as hearing from it.
        for (learner, id, _timeout) in revalidate {
            let valid = match self.sessions.get_mut(&id) {
                Some(s) if !s.closing => {
                    s.touch(Instant::now(), self.cfg.tick_time_ms);
                    true
                }
                _ => false,
            };
            tracing::debug!("revalidate {id:#x} for member {learner}: {valid}");
            if let Some(r) = self.replica.as_mut() {
                r.zab.answer_revalidate(learner, id, valid);
            }
        }
        // Learner: finish the reconnects the leader answered.
        for (id, valid) in revalidated {
            let waiting: Vec<(ConnId, Reconnect)> = match self.replica.as_mut() {
                Some(r) => r
                    .revalidating
                    .extract_if(|_, (sid, _, _)| *sid == id)
                    .collect(),
                None => Vec::new(),
            };
            for (conn, (_, timeout, read_only)) in waiting {
                self.finish_reconnect(conn, id, timeout, read_only, valid);
            }
        }
        if let Some(r) = self.replica.as_mut() {
            r.snapshots_wanted.extend(snapshot_for);
        }
    }

    /// The leader answered the oldest forwarded sync.
    fn leader_answered_sync(&mut self) {
        if let Some((conn, xid, path, after)) =
            self.replica.as_mut().and_then(|r| r.syncs.pop_front())
        {
            self.sync_done(conn, xid, path, after);
        }
    }

    /// Starts the snapshots learners asked for, at the end of a turn, its changes saved: each
    /// is written by a thread of its own from a view of the store taken now
    /// ([`crate::store::Store::stream_snapshot`]), and its SNAP, the txns after it and
    /// NEWLEADER go out at once, the snapshot's pieces following the SNAP as they come.
    pub(crate) fn start_snapshots(&mut self) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        if r.snapshots_wanted.is_empty() {
            return;
        }
        let sessions: Vec<(i64, i32)> = self.tree.sessions.iter().map(|(i, t)| (*i, *t)).collect();
        let zxid = self.tree.last_zxid;
        for sid in std::mem::take(&mut r.snapshots_wanted) {
            let (format, hint) = match r.zab.learner_takes_chunks(sid) {
                true => {
                    // About the size zkrs's encoding will have, for the learner to know
                    // (it writes the frames to a file as they come, and needs no room).
                    let size = self.tree.approximate_data_size()
                        + self.tree.len() * crate::store::SNAPSHOT_NODE_OVERHEAD;
                    (SnapFormat::Zkrs, (size as u64).to_be_bytes().to_vec())
                }
                false => (SnapFormat::ZooKeeper, Vec::new()),
            };
            let pieces = match self.tree.is_paged() {
                true => self.store.stream_snapshot(format, zxid, sessions.clone()),
                false => crate::snapshot::from_tree(&self.tree, format),
            };
            r.snapshot_pieces.insert(sid, pieces);
            r.zab.snapshot_ready(sid, zxid, hint);
        }
        self.run_ready();
        // A snapshot the state machine did not send (the learner left meanwhile) stops.
        if let Some(r) = self.replica.as_mut() {
            r.snapshot_pieces.clear();
        }
    }

    /// A new membership took effect: the members' addresses follow it.
    fn reconfigured(&mut self, text: &[u8]) {
        let Some(next) = self.replica.as_ref().map(|r| r.ensemble.with_text(text)) else {
            return;
        };
        match next {
            Ok(e) => {
                // With reconfig enabled the membership is the ensemble's to change, and it
                // outlives a restart (ZooKeeper's dynamic config file); without, zoo.cfg's
                // server lines stay the membership at every start.
                if self.cfg.reconfig_enabled {
                    if let Err(err) = self.store.save_membership(text) {
                        tracing::error!("saving the membership failed, stopping: {err}");
                        std::process::exit(2);
                    }
                    self.rewrite_config_files(text, &e);
                }
                // A reconfig's txn sets the node as it applies; a membership taken from the
                // leader (NEWLEADER, or the initial one's version) is shown here.
                self.tree.set_config(text);
                let e = Arc::new(e);
                if let Some(r) = self.replica.as_mut() {
                    r.peers.set_ensemble(e.clone());
                    r.ensemble = e;
                }
            }
            Err(e) => tracing::error!("a reconfig named an unreadable membership: {e}"),
        }
    }

    /// ZooKeeper's `zoo.cfg.dynamic.<version>` for a membership that took effect, and zoo.cfg
    /// pointed at it. A file that cannot be written is logged, as ZooKeeper logs it: the data
    /// dir holds the membership all the same.
    fn rewrite_config_files(&self, text: &[u8], next: &Ensemble) {
        let Some(path) = self.cfg.config_path.as_deref() else {
            return;
        };
        let written = crate::config_files::rewrite(
            path,
            &String::from_utf8_lossy(text),
            next.version,
            next.me,
        );
        match written {
            Ok(dynamic) => tracing::info!(
                "membership {:#x} written to {} ({} points at it)",
                next.version,
                dynamic.display(),
                path.display()
            ),
            Err(err) => tracing::error!(
                "writing the dynamic config file of membership {:#x} beside {} failed: {err}",
                next.version,
                path.display()
            ),
        }
    }

    /// The role or the serving state changed.
    fn role_changed(&mut self) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let role = r.zab.role;
        r.leading_since = match role {
            Role::Leading => r.leading_since.or_else(|| Some(Instant::now())),
            _ => None,
        };
        let serving = r.zab.established;
        let was = r.was_serving;
        if let Role::Following(l) | Role::Observing(l) = role {
            if !r.peers.connected_to(l) {
                r.peers.follow(l);
            }
        }
        tracing::info!("role {role:?}, serving clients: {serving}");
        if !was && serving {
            // The read-only server stops: ZooKeeper closes all its connections, and its
            // sessions were never anyone else's.
            self.drop_local_sessions(|_| true);
        }
        if was && !serving {
            if let Some(r) = self.replica.as_mut() {
                r.not_serving_since = Instant::now();
            }
            // ZooKeeper drops its clients when it stops serving; they reconnect elsewhere.
            let conns: Vec<ConnId> = self.conns.keys().copied().collect();
            for c in conns {
                self.close(c);
            }
            self.inflight.clear();
            self.overlay.clear();
            if let Some(r) = self.replica.as_mut() {
                r.revalidating.clear();
                r.remote.clear();
                r.syncs.clear();
            }
        }
        if serving && role == Role::Leading {
            // The leader now expires sessions for the whole ensemble: fresh deadlines for all.
            let tick = self.cfg.tick_time_ms;
            let now = Instant::now();
            for (&id, &timeout) in &self.tree.sessions {
                self.sessions
                    .entry(id)
                    .or_insert_with(|| crate::session::Session::new(id, timeout, now, tick));
            }
            for s in self.sessions.values_mut() {
                s.touch(now, tick);
            }
        }
        if let Some(r) = self.replica.as_mut() {
            r.was_serving = serving;
        }
    }

    /// Learner: hands a write to the leader; `origin` waits for its commit.
    pub(crate) fn forward(
        &mut self,
        session: i64,
        xid: i32,
        op: OpCode,
        body: Vec<u8>,
        auth: AuthIds,
        origin: Origin,
    ) {
        // A new session's connection already counts its handshake as pending.
        let (conn, counts) = match &origin {
            Origin::Client { conn, .. } => (*conn, true),
            Origin::Connect { conn, .. } => (*conn, false),
        };
        let f = Forwarded {
            session,
            cxid: xid,
            type_: op.code(),
            body,
            auth: auth.ids,
        };
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        if !r.zab.forward(f) {
            self.close(conn);
            return;
        }
        r.remote.insert((session, xid), origin);
        if let Some(c) = self.conns.get_mut(&conn).filter(|_| counts) {
            c.pending_writes_inc();
        }
    }

    /// Learner: a client's write goes to the leader.
    pub(crate) fn forward_client(&mut self, conn: ConnId, sid: i64, xid: i32, req: Request) {
        let op = req.op();
        let ops = match &req {
            // The kinds of op the leader's prep takes them for (its answer's result types).
            Request::Multi(m) => crate::prep::multi_ops_as_zookeeper(&m.ops)
                .iter()
                .map(jute::MultiOp::op)
                .collect(),
            _ => vec![],
        };
        let auth = self
            .conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        self.forward(
            sid,
            xid,
            op,
            req.to_bytes(),
            (*auth).clone(),
            Origin::Client { conn, xid, op, ops },
        );
    }

    /// Learner: a write the client sent undecodable goes to the leader too, with no body:
    /// the leader logs the MarshallingError txn ZooKeeper's does, and this member answers it
    /// at its commit.
    pub(crate) fn forward_undecodable(&mut self, conn: ConnId, sid: i64, xid: i32, op: OpCode) {
        let auth = self
            .conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        let origin = Origin::Client {
            conn,
            xid,
            op,
            ops: vec![],
        };
        self.forward(sid, xid, op, Vec::new(), (*auth).clone(), origin);
    }

    /// Learner: sync goes to the leader and is answered when its SYNC comes back.
    pub(crate) fn forward_sync(&mut self, conn: ConnId, sid: i64, xid: i32, r: SyncRequest) {
        let f = Forwarded {
            session: sid,
            cxid: xid,
            type_: OpCode::Sync.code(),
            body: r.to_bytes(),
            auth: vec![],
        };
        let Some(rep) = self.replica.as_mut() else {
            return;
        };
        if !rep.zab.forward(f) {
            self.close(conn);
            return;
        }
        let after = self.conns.get(&conn).map_or(0, |c| c.writes_sent());
        if let Some(rep) = self.replica.as_mut() {
            rep.syncs.push_back((conn, xid, r.path, after));
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.pending_writes_inc();
        }
    }

    /// Leader: a write a learner forwarded, prepared and proposed like a local one.
    fn forwarded(&mut self, f: Forwarded) {
        let Ok(op) = OpCode::try_from(f.type_) else {
            return;
        };
        let record = match op {
            OpCode::CreateSession => {
                let timeout = f
                    .body
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, i32::from_be_bytes);
                let tick = self.cfg.tick_time_ms;
                self.sessions.entry(f.session).or_insert_with(|| {
                    crate::session::Session::new(f.session, timeout, Instant::now(), tick)
                });
                TxnRecord::CreateSession(CreateSessionTxn { time_out: timeout })
            }
            OpCode::CloseSession => {
                if let Some(s) = self.sessions.get_mut(&f.session) {
                    s.closing = true;
                }
                self.close_session_txn(f.session)
            }
            _ => match Request::decode(op, &mut Reader::new(&f.body)) {
                Ok(req) => {
                    self.prep_write(
                        f.session,
                        &req,
                        &AuthIds {
                            ids: f.auth.clone(),
                            policy: self.acl_policy.clone(),
                        },
                    )
                    .0
                }
                Err(_) => TxnRecord::Error(ErrorTxn {
                    err: ZkError::MarshallingError.code(),
                }),
            },
        };
        self.propose(f.session, f.cxid, record, None);
    }
}

/// The member ids of the ensemble, for 4lw.
pub fn learners(r: &Replica) -> Vec<Sid> {
    r.ensemble
        .members
        .keys()
        .copied()
        .filter(|s| *s != r.ensemble.me)
        .collect()
}
