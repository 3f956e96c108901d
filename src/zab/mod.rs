//! ZAB as a pure state machine: no sockets, no clock, no randomness. Inputs are `tick()`,
//! `step(from, msg)`, `propose(txn)` (leader), `forward(request)` (learner), `persisted(zxid)`
//! and `snapshot_ready(..)`; the output is a [`Ready`] the shell must carry out in order:
//! persist (hard state, snapshot, truncation, appends), then send the messages, then apply the
//! committed txns. Persist-before-send is the contract: an ACK or ACKEPOCH is only ever in a
//! Ready whose persistence comes first, and proposal ACKs are only produced by `persisted`.
//!
//! Phases follow Apache ZooKeeper: Fast Leader Election ([`election`]), discovery
//! (FOLLOWERINFO, LEADERINFO, ACKEPOCH), synchronization (DIFF / TRUNC / SNAP, NEWLEADER,
//! UPTODATE) and broadcast (PROPOSAL, ACK, COMMIT, INFORM for observers), with its quorum
//! packet and notification formats.

pub mod election;
mod leader;
mod learner;
mod master;

pub use crate::txlog::Txn;
use election::{Election, PeerState, Vote};
use jute::data::Id;
use jute::quorum::{Notification, QuorumPacket};
use jute::TxnEntry;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

pub type Sid = u64;

/// Quorum packet types (`Leader.java`).
pub mod packet {
    pub const REQUEST: i32 = 1;
    pub const PROPOSAL: i32 = 2;
    pub const ACK: i32 = 3;
    pub const COMMIT: i32 = 4;
    pub const PING: i32 = 5;
    pub const REVALIDATE: i32 = 6;
    pub const SYNC: i32 = 7;
    pub const INFORM: i32 = 8;
    /// A COMMIT of a reconfig, with the leader the new membership is to have (a long).
    pub const COMMITANDACTIVATE: i32 = 9;
    pub const NEWLEADER: i32 = 10;
    pub const FOLLOWERINFO: i32 = 11;
    pub const UPTODATE: i32 = 12;
    pub const DIFF: i32 = 13;
    pub const TRUNC: i32 = 14;
    pub const SNAP: i32 = 15;
    pub const OBSERVERINFO: i32 = 16;
    pub const LEADERINFO: i32 = 17;
    pub const ACKEPOCH: i32 = 18;
    /// An INFORM of a reconfig: the leader the new membership is to have (a long), then
    /// the txn.
    pub const INFORMANDACTIVATE: i32 = 19;
    /// zkrs's own, sent only to learners that announced [`super::PRIOR_VERSION`]: a PROPOSAL
    /// whose data is the txn's length (i32), the txn (the log record), then the node it changes
    /// as it was before ([`crate::txlog::Txn::prior`]).
    pub const PROPOSAL_WITH_PRIOR: i32 = 102;
    /// zkrs's own, between the core and the shell only: a SNAP for a learner that takes
    /// ZooKeeper's snapshot. It goes out as ZooKeeper's leader sends one, a SNAP without data
    /// followed by the snapshot on the stream ([`crate::import::write_snap_for_zookeeper`]).
    pub const SNAP_STREAMED: i32 = -15;
}

/// The protocol version a zkrs leader announces in LEADERINFO: ZooKeeper's (0x10000), plus "an ACK
/// acknowledges every proposal up to its zxid". A learner that sees it ACKs once per fsync
/// (the newest logged proposal) instead of once per proposal; from a leader announcing less it
/// ACKs each one, as ZooKeeper's learners do. Leaders take both kinds.
pub const CUMULATIVE_ACK_VERSION: i32 = 0x10001;
/// The protocol version a zkrs learner announces in FOLLOWERINFO: ZooKeeper's (0x10000), plus
/// "takes PROPOSAL_WITH_PRIOR". A leader sends a learner announcing less ZooKeeper's PROPOSAL.
pub const PRIOR_VERSION: i32 = 0x10001;
/// The protocol version a zkrs learner announces since it also takes its snapshot in pieces:
/// a SNAP whose data is [`CHUNKED_SNAP_TAG`], then frames on the stream, each a length (i32)
/// and that many bytes of zkrs's SNAP data, ended by a frame of length 0 (see
/// [`crate::snapshot`]). A leader sends a learner announcing less ZooKeeper's snapshot.
pub const CHUNKED_SNAP_VERSION: i32 = 0x10002;
/// How the data of a SNAP whose snapshot follows in frames begins ([`CHUNKED_SNAP_VERSION`]);
/// the leader's estimate of the snapshot's size (u64) follows. A snapshot in zkrs's format
/// begins with its zxid, which these bytes would make an epoch of some two billion.
pub const CHUNKED_SNAP_TAG: &[u8] = b"zkrs/frames";

pub fn epoch_of(zxid: i64) -> i64 {
    zxid >> 32
}

pub fn make_zxid(epoch: i64, counter: i64) -> i64 {
    (epoch << 32) | (counter & 0xffff_ffff)
}

/// Static settings of one member.
#[derive(Debug, Clone)]
pub struct ZabConfig {
    pub me: Sid,
    pub voters: Voters,
    pub observers: BTreeSet<Sid>,
    /// Ticks allowed for discovery and synchronization (`initLimit`, in ticks).
    pub init_limit: u32,
    /// Ticks a learner may stay silent in broadcast (`syncLimit`, in ticks).
    pub sync_limit: u32,
    /// Ticks to wait for a better vote once a quorum agrees (`finalizeWait`).
    pub finalize_ticks: u32,
    /// Ticks between the leader's PINGs (ZooKeeper: tickTime / 2).
    pub ping_ticks: u32,
    /// The membership text sent in notifications and NEWLEADER.
    pub config_text: Vec<u8>,
    /// The membership's version (the zxid of the reconfig that made it, or the dynamic config
    /// file's).
    pub version: i64,
    /// A logged reconfig not yet committed: until it is, a quorum must be a quorum of both
    /// memberships (ZooKeeper's lastSeenQuorumVerifier).
    pub next: Option<Membership>,
    /// Committed txns kept in memory for DIFF syncs; older learners get a SNAP.
    pub max_log: usize,
    /// `reconfigEnabled`: the membership is versioned once established and a newer one
    /// another member runs is taken up. Without it, as in ZooKeeper, the membership stays
    /// zoo.cfg's at version 0 (a ZooKeeper member with reconfig disabled that heard of a
    /// version it does not run would restart its election at each notification).
    pub reconfig_enabled: bool,
    /// `observerMasterPort` is set: a follower in broadcast serves observers (ZooKeeper's
    /// ObserverMaster), and an observer registers with a voting member in turn instead of
    /// the leader.
    pub observer_master: bool,
}

/// The voting members, and what counts as a quorum of them: a majority, or with `group.`
/// lines ZooKeeper's hierarchical rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Voters {
    pub ids: BTreeSet<Sid>,
    pub groups: Option<std::sync::Arc<crate::ensemble::Groups>>,
}

impl std::ops::Deref for Voters {
    type Target = BTreeSet<Sid>;
    fn deref(&self) -> &BTreeSet<Sid> {
        &self.ids
    }
}

impl From<BTreeSet<Sid>> for Voters {
    fn from(ids: BTreeSet<Sid>) -> Self {
        Voters { ids, groups: None }
    }
}

/// Do `ids` hold a quorum of `voters`?
pub fn majority(voters: &Voters, ids: &BTreeSet<Sid>) -> bool {
    match &voters.groups {
        Some(g) => g.contains_quorum(ids),
        None => ids.iter().filter(|s| voters.contains(s)).count() * 2 > voters.len(),
    }
}

/// A membership a reconfig names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub voters: Voters,
    pub observers: BTreeSet<Sid>,
    pub version: i64,
    /// Its config text, as `/zookeeper/config` holds it.
    pub text: Vec<u8>,
}

impl Membership {
    pub fn from_text(text: &[u8]) -> Option<Self> {
        let c = crate::ensemble::parse_config(text).ok()?;
        let role = |observer: bool| -> BTreeSet<Sid> {
            c.members
                .values()
                .filter(|m| m.observer == observer)
                .map(|m| m.id)
                .collect()
        };
        Some(Membership {
            voters: Voters {
                ids: role(false),
                groups: c.groups,
            },
            observers: role(true),
            version: c.version.unwrap_or(0) as i64,
            text: text.to_vec(),
        })
    }

    /// The membership a committed or logged reconfig txn names.
    pub fn of_txn(entry: &TxnEntry) -> Option<Self> {
        match &entry.record {
            jute::TxnRecord::Reconfig(t) => Self::from_text(t.data.as_deref()?),
            _ => None,
        }
    }
}

/// `text` with its `version=` line set to `version`.
fn membership_text(text: &[u8], version: i64) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("version="))
        .collect();
    let v = format!("version={version:x}");
    lines.push(&v);
    lines.join("\n").into_bytes()
}

impl ZabConfig {
    pub fn is_quorum(&self, acks: &BTreeSet<Sid>) -> bool {
        majority(&self.voters, acks) && self.next.as_ref().is_none_or(|n| majority(&n.voters, acks))
    }

    pub fn is_observer(&self) -> bool {
        self.observers.contains(&self.me)
    }
}

/// Epochs that must survive a crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardState {
    pub accepted_epoch: i64,
    pub current_epoch: i64,
}

/// What travels between members.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// On the election port.
    Vote(Notification),
    /// On the quorum port.
    Packet(QuorumPacket),
}

/// The member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Looking,
    Following(Sid),
    Observing(Sid),
    Leading,
}

/// A client write a learner hands to the leader (REQUEST).
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarded {
    pub session: i64,
    pub cxid: i32,
    pub type_: i32,
    /// The request record after the client's RequestHeader.
    pub body: Vec<u8>,
    pub auth: Vec<Id>,
}

impl Forwarded {
    pub fn to_packet(&self) -> QuorumPacket {
        let mut data = Vec::with_capacity(16 + self.body.len());
        data.extend_from_slice(&self.session.to_be_bytes());
        data.extend_from_slice(&self.cxid.to_be_bytes());
        data.extend_from_slice(&self.type_.to_be_bytes());
        data.extend_from_slice(&self.body);
        QuorumPacket {
            type_: packet::REQUEST,
            zxid: -1,
            data: Some(data),
            authinfo: Some(self.auth.clone()),
        }
    }

    pub fn from_packet(p: &QuorumPacket) -> Option<Self> {
        let data = p.data.as_deref()?;
        let session = i64::from_be_bytes(data.get(0..8)?.try_into().ok()?);
        let cxid = i32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
        let type_ = i32::from_be_bytes(data.get(12..16)?.try_into().ok()?);
        Some(Forwarded {
            session,
            cxid,
            type_,
            body: data[16..].to_vec(),
            auth: p.authinfo.clone().unwrap_or_default(),
        })
    }
}

/// What the shell must do, in this order.
#[derive(Debug, Default)]
pub struct Ready {
    /// 1. Persist these epochs.
    pub hard_state: Option<HardState>,
    /// 2. Replace the database with this snapshot (SNAP): (zxid, bytes). The log is emptied.
    pub install_snapshot: Option<(i64, Vec<u8>)>,
    /// 3. Drop logged txns after this zxid (TRUNC).
    pub truncate: Option<i64>,
    /// 4. Append these to the log (durably), then call `persisted`.
    pub append: Vec<Arc<Txn>>,
    /// 5. Send.
    pub messages: Vec<(Sid, Msg)>,
    /// 6. Apply, in order.
    pub committed: Vec<Arc<Txn>>,
    /// Leader: client writes forwarded by learners, to prepare and propose.
    pub requests: Vec<(Sid, Forwarded)>,
    /// Leader: sessions learners reported alive (id, timeout).
    pub touched: Vec<(i64, i32)>,
    /// Leader: a learner asks whether a session a client reconnects with is still valid
    /// (learner, session, timeout); answer with `answer_revalidate`.
    pub revalidate: Vec<(Sid, i64, i32)>,
    /// Learner: the leader's answers to `revalidate` (session, valid).
    pub revalidated: Vec<(i64, bool)>,
    /// Learner: the forwarded syncs the leader answered (oldest first), each as the number
    /// of `committed` txns it comes after.
    pub syncs_done: Vec<usize>,
    /// Leader: a learner needs a snapshot of the applied state (answer with `snapshot_ready`).
    pub snapshot_for: Vec<Sid>,
    /// The role changed (clients of this member should be dropped or admitted).
    pub role_changed: bool,
    /// Close the quorum connection to these members (what was queued on it is discarded).
    pub disconnect: Vec<Sid>,
    /// A new membership took effect (a reconfig committed, or a leader's NEWLEADER named a
    /// newer one): its config text, for the shell's addresses.
    pub reconfigured: Option<Vec<u8>>,
    /// This member cannot go on without losing what it applied: the reason, for the shell
    /// to log before it stops.
    pub fatal: Option<String>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.install_snapshot.is_none()
            && self.truncate.is_none()
            && self.append.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.requests.is_empty()
            && self.touched.is_empty()
            && self.revalidate.is_empty()
            && self.revalidated.is_empty()
            && self.syncs_done.is_empty()
            && self.snapshot_for.is_empty()
            && !self.role_changed
            && self.disconnect.is_empty()
            && self.reconfigured.is_none()
            && self.fatal.is_none()
    }
}

/// One member of an ensemble.
#[derive(Debug)]
pub struct Zab {
    pub cfg: ZabConfig,
    pub hs: HardState,
    pub role: Role,
    /// Leader: a quorum acknowledged NEWLEADER; learner: UPTODATE received. Clients are
    /// served only when established.
    pub established: bool,
    /// Logged txns still in memory: the committed window and everything uncommitted. Shared
    /// with the shell's append and apply lists, never copied.
    log: VecDeque<Arc<Txn>>,
    pub last_logged: i64,
    pub last_committed: i64,
    /// Durable through this zxid.
    persisted: i64,
    round: i64,
    election: Option<Election>,
    /// The vote that decided the last election (answered to LOOKING peers).
    election_vote: Option<Vote>,
    leader: Option<leader::LeaderState>,
    learner: Option<learner::LearnerState>,
    /// Follower: the observers it serves.
    master: master::MasterState,
    /// Observer with `observer_master`: how many voting members it registered with so far
    /// (the next one is tried in turn).
    masters_tried: usize,
    /// Learners that registered while we were still deciding (FOLLOWERINFO / OBSERVERINFO):
    /// handled if we become the leader.
    early_learners: std::collections::BTreeMap<Sid, QuorumPacket>,
    /// Sessions touched on this learner since the last PING.
    touched: Vec<(i64, i32)>,
    ready: Ready,
}

pub(crate) fn qp(type_: i32, zxid: i64, data: Option<Vec<u8>>) -> QuorumPacket {
    QuorumPacket {
        type_,
        zxid,
        data,
        authinfo: None,
    }
}

impl Zab {
    /// A member restarting with its epochs, the tail of its log (txns after `last_committed`
    /// are logged but not known to be committed) and what it has applied.
    pub fn new(
        cfg: ZabConfig,
        hs: HardState,
        log_tail: Vec<TxnEntry>,
        last_committed: i64,
    ) -> Self {
        let last_logged = log_tail
            .last()
            .map_or(last_committed, |e| e.header.zxid.max(last_committed));
        let mut z = Zab {
            cfg,
            hs,
            role: Role::Looking,
            established: false,
            log: log_tail
                .into_iter()
                .map(|e| Arc::new(Txn::new(e)))
                .collect(),
            last_logged,
            last_committed,
            persisted: last_logged,
            round: 0,
            election: None,
            election_vote: None,
            leader: None,
            learner: None,
            master: Default::default(),
            masters_tried: 0,
            touched: Vec::new(),
            early_learners: Default::default(),
            ready: Ready::default(),
        };
        // A reconfig logged but not known to be committed is pending again.
        let pending = z
            .log
            .iter()
            .filter(|e| e.header.zxid > last_committed)
            .filter_map(|e| Membership::of_txn(e))
            .next_back();
        if let Some(m) = pending.filter(|m| m.version > z.cfg.version) {
            z.cfg.next = Some(m);
        }
        z.start_election();
        z
    }

    /// Takes what the shell must do now.
    pub fn take_ready(&mut self) -> Ready {
        std::mem::take(&mut self.ready)
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leading
    }

    pub fn leader_id(&self) -> Option<Sid> {
        match self.role {
            Role::Leading => Some(self.cfg.me),
            Role::Following(l) | Role::Observing(l) => Some(l),
            Role::Looking => None,
        }
    }

    fn send(&mut self, to: Sid, msg: Msg) {
        self.ready.messages.push((to, msg));
    }

    fn set_hard_state(&mut self, hs: HardState) {
        self.hs = hs;
        self.ready.hard_state = Some(hs);
    }

    fn set_role(&mut self, role: Role) {
        if self.role != role {
            self.role = role;
            self.ready.role_changed = true;
        }
        self.established = false;
    }

    fn peer_state(&self) -> PeerState {
        match self.role {
            Role::Looking => PeerState::Looking,
            Role::Following(_) => PeerState::Following,
            Role::Observing(_) => PeerState::Observing,
            Role::Leading => PeerState::Leading,
        }
    }

    fn initial_vote(&self) -> Vote {
        if self.cfg.is_observer() {
            Vote {
                leader: self.cfg.me,
                zxid: i64::MIN,
                peer_epoch: i64::MIN,
            }
        } else {
            Vote {
                leader: self.cfg.me,
                zxid: self.last_logged,
                peer_epoch: self.hs.current_epoch,
            }
        }
    }

    /// Back to LOOKING: a new election round.
    pub fn start_election(&mut self) {
        match self.role {
            Role::Following(l) | Role::Observing(l) => self.ready.disconnect.push(l),
            Role::Leading => {
                let learners = self
                    .leader
                    .as_ref()
                    .map(|l| l.learner_ids())
                    .unwrap_or_default();
                self.ready.disconnect.extend(learners);
            }
            Role::Looking => {}
        }
        self.stop_serving_observers();
        self.leader = None;
        self.learner = None;
        self.set_role(Role::Looking);
        self.ready.role_changed = true;
        self.round += 1;
        let e = Election::start(
            self.cfg.me,
            self.cfg.voters.clone(),
            self.round,
            self.initial_vote(),
            self.cfg.finalize_ticks,
        )
        .with_next(self.cfg.next.as_ref().map(|n| n.voters.clone()));
        self.election = Some(e);
        self.broadcast_vote();
        if self.cfg.voters.len() == 1
            && self.cfg.voters.contains(&self.cfg.me)
            && self.cfg.next.is_none()
        {
            self.decided(self.cfg.me);
        }
    }

    fn broadcast_vote(&mut self) {
        let Some(e) = &self.election else { return };
        let n = election::notification(PeerState::Looking, &e.vote, e.round, &self.cfg.config_text);
        let peers: Vec<Sid> = self
            .cfg
            .voters
            .iter()
            .chain(self.cfg.observers.iter())
            .chain(self.cfg.next.iter().flat_map(|n| n.voters.iter()))
            .copied()
            .filter(|s| *s != self.cfg.me)
            .collect::<BTreeSet<Sid>>()
            .into_iter()
            .collect();
        for p in peers {
            self.send(p, Msg::Vote(n.clone()));
        }
    }

    fn current_vote(&self) -> Vote {
        match &self.election {
            Some(e) => e.vote,
            None => self.initial_vote(),
        }
    }

    fn decided(&mut self, leader: Sid) {
        let vote = self.current_vote();
        self.election = None;
        // Keep the decided vote for answering LOOKING peers.
        self.election_vote = Some(Vote { leader, ..vote });
        let early = std::mem::take(&mut self.early_learners);
        if leader == self.cfg.me {
            self.become_leader();
            for (sid, p) in early {
                self.leader_step(sid, p);
            }
        } else {
            // Registered with a member that does not lead: they try again elsewhere.
            self.ready.disconnect.extend(early.into_keys());
            if self.cfg.is_observer() {
                let master = self.learner_master(leader);
                self.become_learner(master, true);
            } else {
                self.become_learner(leader, false);
            }
        }
    }

    /// A membership takes effect (once, and only a newer one).
    pub(crate) fn activate(&mut self, m: Membership) {
        if m.version <= self.cfg.version {
            return;
        }
        tracing::info!(
            "membership {:#x}: voters {:?}, observers {:?}",
            m.version,
            m.voters,
            m.observers
        );
        if self
            .cfg
            .next
            .as_ref()
            .is_some_and(|n| n.version <= m.version)
        {
            self.cfg.next = None;
        }
        self.cfg.voters = m.voters;
        self.cfg.observers = m.observers;
        self.cfg.version = m.version;
        self.cfg.config_text = m.text.clone();
        self.ready.reconfigured = Some(m.text);
    }

    /// ZOOKEEPER-1783: a membership still at version 0 (zoo.cfg's, never established) takes
    /// the zxid of the first epoch established with it as its version, on the leader when a
    /// quorum acknowledged NEWLEADER and on each learner at UPTODATE, as ZooKeeper's does
    /// with reconfig enabled (without, its processReconfig changes nothing).
    fn version_initial_membership(&mut self, epoch: i64) {
        if !self.cfg.reconfig_enabled || self.cfg.version != 0 || self.cfg.next.is_some() {
            return;
        }
        let m = Membership {
            voters: self.cfg.voters.clone(),
            observers: self.cfg.observers.clone(),
            version: make_zxid(epoch, 0),
            text: Vec::new(),
        };
        let text = membership_text(&self.cfg.config_text, m.version);
        self.activate(Membership { text, ..m });
    }

    /// A membership another member runs (the leader's at NEWLEADER, a peer's in an election
    /// notification) takes effect here when it is newer. Of the same servers, our own lines
    /// stay: the addresses we reach them at are ours to configure (a member's own line may
    /// name 0.0.0.0, as in Docker setups).
    fn adopt(&mut self, mut m: Membership) -> bool {
        if !self.cfg.reconfig_enabled || m.version <= self.cfg.version {
            return false;
        }
        if (&m.voters, &m.observers) == (&self.cfg.voters, &self.cfg.observers) {
            m.text = membership_text(&self.cfg.config_text, m.version);
        }
        self.activate(m);
        true
    }

    /// Does our role no longer fit the membership (a leader a reconfig removed, a follower
    /// made an observer, an observer made a voter or removed)? A server left out of the
    /// membership goes on as a non-voting follower, as ZooKeeper's does.
    fn misplaced(&self) -> bool {
        match self.role {
            Role::Leading => !self.cfg.voters.contains(&self.cfg.me),
            Role::Following(_) => self.cfg.is_observer(),
            Role::Observing(_) => !self.cfg.is_observer(),
            Role::Looking => false,
        }
    }

    /// The membership in effect: its version and whether a reconfig is pending.
    pub fn membership(&self) -> (i64, bool) {
        (self.cfg.version, self.cfg.next.is_some())
    }

    /// One tick of time (the shell ticks every tickTime/2).
    pub fn tick(&mut self) {
        if self.misplaced() {
            tracing::info!(
                "role {:?} does not fit the new membership: looking",
                self.role
            );
            return self.start_election();
        }
        match self.role {
            Role::Looking => {
                let Some(e) = self.election.as_mut() else {
                    return;
                };
                let (resend, decision) = e.tick();
                if let Some(d) = decision {
                    self.decided(d.leader);
                } else if resend {
                    self.broadcast_vote();
                }
            }
            Role::Leading => self.leader_tick(),
            Role::Following(_) | Role::Observing(_) => {
                self.master_tick();
                self.learner_tick();
            }
        }
    }

    /// A message from another member.
    pub fn step(&mut self, from: Sid, msg: Msg) {
        match msg {
            Msg::Vote(n) => self.step_vote(from, n),
            Msg::Packet(p) => match self.role {
                Role::Leading => self.leader_step(from, p),
                Role::Following(l) | Role::Observing(l) if l == from => self.learner_step(p),
                Role::Following(_) if self.cfg.observer_master => self.master_step(from, p),
                Role::Looking
                    if p.type_ == packet::FOLLOWERINFO || p.type_ == packet::OBSERVERINFO =>
                {
                    self.early_learners.insert(from, p);
                }
                _ => {}
            },
        }
    }

    fn step_vote(&mut self, from: Sid, n: Notification) {
        // A LOOKING member that missed a reconfig learns the membership from a peer's
        // notification and elects again under it, as ZooKeeper's FastLeaderElection does.
        if self.role == Role::Looking {
            let newer = n.config.as_deref().and_then(Membership::from_text);
            if newer.is_some_and(|m| self.adopt(m)) {
                tracing::info!("a newer membership from member {from}: electing again");
                return self.start_election();
            }
        }
        if self.role == Role::Looking {
            let Some(e) = self.election.as_mut() else {
                return;
            };
            let (changed, decision) = e.receive(from, &n);
            if let Some(d) = decision {
                self.decided(d.leader);
            } else if changed {
                self.broadcast_vote();
            } else if n.state == PeerState::Looking as i32 && n.election_epoch < e.round {
                // A peer behind our round: tell it our vote.
                let reply = election::notification(
                    PeerState::Looking,
                    &e.vote,
                    e.round,
                    &self.cfg.config_text,
                );
                self.send(from, Msg::Vote(reply));
            }
        } else if n.state == PeerState::Looking as i32 {
            // Settled: answer a LOOKING peer with who leads, in the epoch we are in with it. The
            // peer counts settled members that name the same leader and epoch; the vote each of
            // us decided by may be from different elections (a member that followed the leader
            // since an earlier one), and a quorum of those never looked alike: the peer stayed
            // LOOKING beside a serving ensemble.
            let mut vote = self.election_vote.unwrap_or_else(|| self.initial_vote());
            if let Some(leader) = self.leader_id() {
                vote.leader = leader;
                vote.peer_epoch = self.hs.current_epoch;
            }
            let reply =
                election::notification(self.peer_state(), &vote, self.round, &self.cfg.config_text);
            self.send(from, Msg::Vote(reply));
        }
    }

    /// The connection to `peer` broke (quorum port). A learner that lost its leader looks for
    /// a new one; a leader forgets the learner, which must sync again.
    pub fn disconnected(&mut self, peer: Sid) {
        match self.role {
            Role::Following(l) | Role::Observing(l) if l == peer => self.start_election(),
            Role::Following(_) => self.forget_observer(peer),
            Role::Leading => self.forget_learner(peer),
            _ => {}
        }
    }

    /// Learner: a session was heard from (reported in the next PING answer).
    pub fn touch(&mut self, session: i64, timeout: i32) {
        if matches!(self.role, Role::Following(_) | Role::Observing(_)) {
            self.touched.push((session, timeout));
        }
    }

    /// Leader: answers a learner's REVALIDATE (session id, then a boolean).
    pub fn answer_revalidate(&mut self, to: Sid, session: i64, valid: bool) {
        if !self.is_leader() {
            return;
        }
        let mut data = Vec::with_capacity(9);
        data.extend_from_slice(&session.to_be_bytes());
        data.push(u8::from(valid));
        self.send(to, Msg::Packet(qp(packet::REVALIDATE, -1, Some(data))));
    }

    /// The shell made the log durable through `zxid`.
    pub fn persisted(&mut self, zxid: i64) {
        if zxid <= self.persisted {
            return;
        }
        self.persisted = zxid;
        match self.role {
            Role::Leading => self.leader_persisted(),
            Role::Following(_) => self.learner_persisted(),
            _ => {}
        }
    }

    /// Starts the sync of learner `sid`, behind this member (its last logged zxid `peer`,
    /// below our `top`), from our log: DIFF when we hold `peer`; when `peer` is in our window
    /// but not in our history, TRUNC to the last txn we share. Returns the zxid the txns to
    /// send come after; None (nothing sent) when it needs a snapshot.
    fn start_catch_up(&mut self, sid: Sid, peer: i64, top: i64) -> Option<i64> {
        if peer >= self.log_start() && self.log_contains(peer) {
            self.send(sid, Msg::Packet(qp(packet::DIFF, top, None)));
            return Some(peer);
        }
        let base = self
            .log
            .iter()
            .map(|e| e.header.zxid)
            .filter(|z| *z < peer)
            .max()
            .filter(|_| peer >= self.log_start())?;
        self.send(sid, Msg::Packet(qp(packet::TRUNC, base, None)));
        Some(base)
    }

    fn log_after(&self, zxid: i64) -> impl Iterator<Item = &Arc<Txn>> {
        self.log.iter().filter(move |e| e.header.zxid > zxid)
    }

    fn log_contains(&self, zxid: i64) -> bool {
        zxid == 0 && self.log.front().is_none_or(|e| e.header.zxid > 0)
            || self.log.iter().any(|e| e.header.zxid == zxid)
    }

    fn log_start(&self) -> i64 {
        self.log
            .front()
            .map_or(self.last_committed, |e| e.header.zxid)
    }

    /// Marks txns through `zxid` committed and hands them to the shell.
    fn commit_through(&mut self, zxid: i64) {
        let from = self.last_committed;
        // The log is in zxid order: find the first uncommitted entry by bisection (a scan of
        // the whole retained window per commit was most of a busy leader's CPU).
        let start = self.log.partition_point(|e| e.header.zxid <= from);
        let entries: Vec<Arc<Txn>> = self
            .log
            .range(start..)
            .take_while(|e| e.header.zxid <= zxid)
            .cloned()
            .collect();
        if let Some(last) = entries.last() {
            self.last_committed = last.header.zxid;
        }
        for m in entries.iter().filter_map(|e| Membership::of_txn(e)) {
            self.activate(m);
        }
        if !self.master.is_empty() {
            self.inform_observers(&entries);
        }
        self.ready.committed.extend(entries);
        // Keep a bounded window of committed txns.
        while self.log.len() > self.cfg.max_log
            && self
                .log
                .front()
                .is_some_and(|e| e.header.zxid <= self.last_committed)
        {
            self.log.pop_front();
        }
    }

    fn append(&mut self, entry: Arc<Txn>) {
        if let Some(m) = Membership::of_txn(&entry).filter(|m| m.version > self.cfg.version) {
            self.cfg.next = Some(m);
        }
        self.last_logged = self.last_logged.max(entry.header.zxid);
        self.ready.append.push(entry.clone());
        self.log.push_back(entry);
    }
}
