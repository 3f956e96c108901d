//! The leader: discovery (a new epoch from a quorum's accepted epochs), synchronization of
//! each learner (DIFF, TRUNC or SNAP, then NEWLEADER), and broadcast (PROPOSAL, ACK, COMMIT,
//! INFORM, PING, SYNC).

use super::*;
use jute::quorum::LearnerInfo;
use jute::{Decode, Encode};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Phase {
    /// Sent nothing yet; waiting for the epoch.
    Connected,
    /// LEADERINFO sent.
    EpochSent,
    /// ACKEPOCH received; waiting for a quorum of them before syncing.
    EpochAcked,
    /// A snapshot was asked of the shell.
    AwaitingSnapshot,
    /// Sync packets and NEWLEADER sent.
    NewLeaderSent,
    /// Acknowledged NEWLEADER; gets UPTODATE once the leader is established.
    NewLeaderAcked,
    /// UPTODATE sent: in broadcast.
    UpToDate,
}

#[derive(Debug)]
pub(super) struct Learner {
    accepted_epoch: i64,
    observer: bool,
    phase: Phase,
    /// Its last logged zxid (from ACKEPOCH).
    last_zxid: i64,
    /// Its current epoch (from ACKEPOCH; -1 if it had already accepted ours).
    current_epoch: i64,
    /// Ticks since we heard from it.
    silent: u32,
    /// It announced [`PRIOR_VERSION`] (a zkrs member): proposals go to it as
    /// PROPOSAL_WITH_PRIOR, and a snapshot in zkrs's encoding. A learner announcing less is
    /// taken for ZooKeeper's: PROPOSAL, and ZooKeeper's snapshot stream.
    takes_prior: bool,
    /// Announced [`CHUNKED_SNAP_VERSION`]: takes zkrs's snapshot in pieces (others get
    /// ZooKeeper's).
    takes_chunks: bool,
    /// COMMITs for a ZooKeeper learner between NEWLEADER and UPTODATE, sent after UPTODATE:
    /// its sync takes a COMMIT only for a proposal received since NEWLEADER (one for a
    /// proposal before it stops the sync, ZOOKEEPER-4394).
    held_commits: Vec<QuorumPacket>,
}

#[derive(Debug, Default)]
pub(super) struct LeaderState {
    new_epoch: Option<i64>,
    learners: BTreeMap<Sid, Learner>,
    /// The newest zxid each member (this one included) has logged and acknowledged: an ACK
    /// acknowledges every proposal up to its zxid, since members log in order.
    acked: BTreeMap<Sid, i64>,
    /// Learners' syncs waiting for everything proposed before them: (learner, zxid).
    pending_syncs: Vec<(Sid, i64)>,
    /// Sizes of the serialized proposals (last, min, max), for mntr.
    proposal_sizes: Option<(usize, usize, usize)>,
    ticks: u32,
    /// Counter of the next proposal in the new epoch.
    next_counter: i64,
}

impl LeaderState {
    pub(super) fn learner_ids(&self) -> Vec<Sid> {
        self.learners.keys().copied().collect()
    }
}

impl Zab {
    pub(super) fn become_leader(&mut self) {
        self.set_role(Role::Leading);
        self.leader = Some(LeaderState::default());
        self.maybe_new_epoch();
    }

    fn leader_state(&mut self) -> &mut LeaderState {
        self.leader.get_or_insert_with(LeaderState::default)
    }

    /// Once a quorum (us included) has connected, the new epoch is one past the largest
    /// accepted epoch among them (`getEpochToPropose`).
    fn maybe_new_epoch(&mut self) {
        let me = self.cfg.me;
        let own = self.hs.accepted_epoch;
        let Some(l) = self.leader.as_ref() else {
            return;
        };
        if l.new_epoch.is_some() {
            return;
        }
        let mut connected: BTreeSet<Sid> = l
            .learners
            .iter()
            .filter(|(_, x)| !x.observer)
            .map(|(s, _)| *s)
            .collect();
        connected.insert(me);
        if !self.cfg.is_quorum(&connected) {
            return;
        }
        let max = l
            .learners
            .values()
            .map(|x| x.accepted_epoch)
            .chain([own])
            .max()
            .unwrap_or(own);
        let epoch = max + 1;
        self.set_hard_state(HardState {
            accepted_epoch: epoch,
            ..self.hs
        });
        let l = self.leader_state();
        l.new_epoch = Some(epoch);
        l.next_counter = 1;
        let waiting: Vec<Sid> = l.learners.keys().copied().collect();
        for sid in waiting {
            self.send_leader_info(sid);
        }
        self.maybe_sync();
    }

    fn send_leader_info(&mut self, sid: Sid) {
        let Some(epoch) = self.leader.as_ref().and_then(|l| l.new_epoch) else {
            return;
        };
        if let Some(x) = self.leader_state().learners.get_mut(&sid) {
            x.phase = Phase::EpochSent;
        }
        let data = CUMULATIVE_ACK_VERSION.to_bytes();
        self.send(
            sid,
            Msg::Packet(qp(packet::LEADERINFO, make_zxid(epoch, 0), Some(data))),
        );
    }

    /// Syncs every learner that acknowledged the epoch, once a quorum has.
    fn maybe_sync(&mut self) {
        let me = self.cfg.me;
        let Some(l) = self.leader.as_ref() else {
            return;
        };
        let mut acked: BTreeSet<Sid> = l
            .learners
            .iter()
            .filter(|(_, x)| x.phase >= Phase::EpochAcked && x.current_epoch != -1 && !x.observer)
            .map(|(s, _)| *s)
            .collect();
        acked.insert(me);
        if !self.cfg.is_quorum(&acked) && !self.established {
            return;
        }
        let ready: Vec<Sid> = l
            .learners
            .iter()
            .filter(|(_, x)| x.phase == Phase::EpochAcked)
            .map(|(s, _)| *s)
            .collect();
        for sid in ready {
            self.sync_learner(sid);
        }
        self.maybe_establish();
    }

    /// DIFF, TRUNC or SNAP, then the missing txns, then NEWLEADER.
    fn sync_learner(&mut self, sid: Sid) {
        let Some(peer_zxid) = self
            .leader
            .as_ref()
            .and_then(|l| l.learners.get(&sid))
            .map(|x| x.last_zxid)
        else {
            return;
        };
        let from = if peer_zxid == self.last_logged {
            self.send(sid, Msg::Packet(qp(packet::DIFF, peer_zxid, None)));
            peer_zxid
        } else if peer_zxid > self.last_logged {
            self.send(sid, Msg::Packet(qp(packet::TRUNC, self.last_logged, None)));
            self.last_logged
        } else {
            // Its last txn may not be in our history: then it is cut back to the last one we
            // share.
            let last = self.last_logged;
            match self.start_catch_up(sid, peer_zxid, last) {
                Some(from) => from,
                None => return self.ask_snapshot(sid),
            }
        };
        self.send_txns_and_newleader(sid, from);
    }

    fn ask_snapshot(&mut self, sid: Sid) {
        if let Some(x) = self.leader_state().learners.get_mut(&sid) {
            x.phase = Phase::AwaitingSnapshot;
        }
        self.ready.snapshot_for.push(sid);
    }

    /// The leader a reconfig's membership is to have (ZooKeeper's designated leader): the
    /// current one while it stays a voter; else, as this one steps down, the lowest voter (the
    /// election that follows decides).
    fn designated_leader(&self, m: &Membership) -> i64 {
        // A follower passing a reconfig on to its observers names its leader.
        let me = self.leader_id().unwrap_or(self.cfg.me);
        let id = match m.voters.contains(&me) {
            true => me,
            false => m.voters.iter().next().copied().unwrap_or(me),
        };
        id as i64
    }

    /// A ZooKeeper follower's COMMIT of `e`: COMMITANDACTIVATE for a reconfig (its
    /// membership takes effect there only so).
    fn commit_for_zookeeper(&self, e: &Txn) -> QuorumPacket {
        let z = e.header.zxid;
        match Membership::of_txn(e) {
            Some(m) => qp(
                packet::COMMITANDACTIVATE,
                z,
                Some(self.designated_leader(&m).to_be_bytes().to_vec()),
            ),
            None => qp(packet::COMMIT, z, None),
        }
    }

    /// A ZooKeeper observer's INFORM of `e`: INFORMANDACTIVATE for a reconfig.
    pub(super) fn inform_for_zookeeper(&self, e: &Txn) -> QuorumPacket {
        let z = e.header.zxid;
        match Membership::of_txn(e) {
            Some(m) => {
                let mut data = self.designated_leader(&m).to_be_bytes().to_vec();
                data.extend_from_slice(e.bytes());
                qp(packet::INFORMANDACTIVATE, z, Some(data))
            }
            None => qp(packet::INFORM, z, Some(e.bytes().to_vec())),
        }
    }

    /// Whether `sid` is a zkrs learner (it takes PROPOSAL_WITH_PRIOR and one COMMIT per
    /// batch) rather than a ZooKeeper one.
    pub fn learner_is_zkrs(&self, sid: Sid) -> bool {
        self.leader
            .as_ref()
            .and_then(|l| l.learners.get(&sid))
            .is_some_and(|x| x.takes_prior)
    }

    /// The observers this member forwards to, in id order: from the start of their sync on,
    /// as ZooKeeper's leader adds an observer's handler to its observing learners (a
    /// follower's, with `observerMasterPort`, those it serves).
    pub fn observing_learners(&self) -> Vec<Sid> {
        let mut sids: Vec<Sid> = self
            .leader
            .iter()
            .flat_map(|l| l.learners.iter())
            .filter(|(_, x)| {
                x.observer
                    && matches!(
                        x.phase,
                        Phase::AwaitingSnapshot
                            | Phase::NewLeaderSent
                            | Phase::NewLeaderAcked
                            | Phase::UpToDate
                    )
            })
            .map(|(s, _)| *s)
            .chain(self.served_observers())
            .collect();
        sids.sort_unstable();
        sids
    }

    /// Does learner `sid` take zkrs's snapshot (in pieces), or ZooKeeper's?
    pub fn learner_takes_chunks(&self, sid: Sid) -> bool {
        self.leader
            .as_ref()
            .and_then(|l| l.learners.get(&sid))
            .is_some_and(|x| x.takes_chunks)
            || self.observer_takes_chunks(sid)
    }

    /// The shell's snapshot for `sid`, of the applied state at `zxid` (our last committed).
    pub fn snapshot_ready(&mut self, sid: Sid, zxid: i64, bytes: Vec<u8>) {
        if self.observer_awaits_snapshot(sid) {
            return self.observer_snapshot_ready(sid, zxid, bytes);
        }
        let awaiting = self
            .leader
            .as_ref()
            .and_then(|l| l.learners.get(&sid))
            .is_some_and(|x| x.phase == Phase::AwaitingSnapshot);
        if !awaiting {
            return;
        }
        if self.send_snap(sid, zxid, bytes) {
            self.send_txns_and_newleader(sid, zxid);
        }
    }

    /// A learner's SNAP of the applied state at `zxid` (our last committed, or behind it):
    /// false, and a newer snapshot asked for, when the txns after it left our window
    /// meanwhile.
    pub(super) fn send_snap(&mut self, sid: Sid, zxid: i64, bytes: Vec<u8>) -> bool {
        if zxid < self.last_committed && !self.log_contains(zxid + 1) && self.log_start() > zxid + 1
        {
            self.ready.snapshot_for.push(sid);
            return false;
        }
        let type_ = match self.learner_takes_chunks(sid) {
            true => packet::SNAP,
            false => packet::SNAP_STREAMED,
        };
        self.send(sid, Msg::Packet(qp(type_, zxid, Some(bytes))));
        true
    }

    fn send_txns_and_newleader(&mut self, sid: Sid, from: i64) {
        let zkrs = self.learner_is_zkrs(sid);
        let last = self.last_logged;
        self.send_history(sid, from, last, zkrs);
        let epoch = self
            .leader
            .as_ref()
            .and_then(|l| l.new_epoch)
            .unwrap_or(self.hs.accepted_epoch);
        let config = self.cfg.config_text.clone();
        self.send(
            sid,
            Msg::Packet(qp(packet::NEWLEADER, make_zxid(epoch, 0), Some(config))),
        );
        if let Some(x) = self.leader_state().learners.get_mut(&sid) {
            x.phase = Phase::NewLeaderSent;
            x.silent = 0;
        }
    }

    /// The logged txns in (`from`, `through`] to a learner in sync: each as a PROPOSAL, and a
    /// COMMIT for those committed.
    pub(super) fn send_history(&mut self, sid: Sid, from: i64, through: i64, zkrs: bool) {
        let committed = self.last_committed;
        let txns: Vec<std::sync::Arc<Txn>> = self
            .log_after(from)
            .take_while(|t| t.header.zxid <= through)
            .cloned()
            .collect();
        for t in txns {
            let z = t.header.zxid;
            self.send(
                sid,
                Msg::Packet(qp(packet::PROPOSAL, z, Some(t.bytes().to_vec()))),
            );
            if z <= committed {
                let p = match zkrs {
                    true => qp(packet::COMMIT, z, None),
                    false => self.commit_for_zookeeper(&t),
                };
                self.send(sid, Msg::Packet(p));
            }
        }
        // What the learner logged itself and we committed (a zkrs learner commits it at
        // UPTODATE). A ZooKeeper learner takes each COMMIT for the PROPOSAL before it (its
        // own log it applies as it loads it): a COMMIT without one stops its sync.
        if committed > 0 && zkrs {
            self.send(sid, Msg::Packet(qp(packet::COMMIT, committed, None)));
        }
    }

    /// A quorum acknowledged NEWLEADER: the epoch is ours, our whole log is committed.
    fn maybe_establish(&mut self) {
        let me = self.cfg.me;
        let Some(l) = self.leader.as_ref() else {
            return;
        };
        let Some(epoch) = l.new_epoch else { return };
        if self.established {
            return;
        }
        let mut acked: BTreeSet<Sid> = l
            .learners
            .iter()
            .filter(|(_, x)| x.phase >= Phase::NewLeaderAcked && !x.observer)
            .map(|(s, _)| *s)
            .collect();
        acked.insert(me);
        if !self.cfg.is_quorum(&acked) {
            return;
        }
        self.set_hard_state(HardState {
            current_epoch: epoch,
            ..self.hs
        });
        self.established = true;
        self.ready.role_changed = true;
        self.version_initial_membership(epoch);
        let last = self.last_logged;
        self.commit_and_announce(last);
        let ready: Vec<Sid> = self
            .leader_state()
            .learners
            .iter()
            .filter(|(_, x)| x.phase == Phase::NewLeaderAcked)
            .map(|(s, _)| *s)
            .collect();
        for sid in ready {
            self.send_uptodate(sid);
        }
    }

    fn send_uptodate(&mut self, sid: Sid) {
        let held = match self.leader_state().learners.get_mut(&sid) {
            Some(x) => {
                x.phase = Phase::UpToDate;
                std::mem::take(&mut x.held_commits)
            }
            None => Vec::new(),
        };
        self.send(sid, Msg::Packet(qp(packet::UPTODATE, -1, None)));
        for p in held {
            self.send(sid, Msg::Packet(p));
        }
    }

    /// Leader: the learners registered with it, of any kind and in any phase
    /// (`zk_learners`).
    pub fn learner_count(&self) -> usize {
        self.leader.as_ref().map_or(0, |l| l.learners.len())
    }

    /// Leader: followers in broadcast that are not voting members
    /// (`zk_synced_non_voting_followers`).
    pub fn synced_non_voting_followers(&self) -> usize {
        self.leader.as_ref().map_or(0, |l| {
            l.learners
                .iter()
                .filter(|(s, x)| {
                    !x.observer && x.phase == Phase::UpToDate && !self.cfg.voters.contains(s)
                })
                .count()
        })
    }

    /// Forwarded syncs waiting for what was proposed before them (`zk_pending_syncs`).
    pub fn pending_syncs(&self) -> usize {
        self.leader.as_ref().map_or(0, |l| l.pending_syncs.len())
    }

    /// Sizes in bytes of the serialized proposals: (last, min, max), zeros before the first.
    pub fn proposal_sizes(&self) -> (usize, usize, usize) {
        self.leader
            .as_ref()
            .and_then(|l| l.proposal_sizes)
            .unwrap_or((0, 0, 0))
    }

    /// Leader: followers in broadcast (`zk_synced_followers`).
    pub fn synced_followers(&self) -> usize {
        self.leader.as_ref().map_or(0, |l| {
            l.learners
                .values()
                .filter(|x| !x.observer && x.phase == Phase::UpToDate)
                .count()
        })
    }

    /// `isQuorumSynced`: do we and the followers in broadcast hold a majority of `voters`?
    pub fn quorum_synced(&self, voters: &super::Voters) -> bool {
        let Some(l) = self.leader.as_ref() else {
            return false;
        };
        let mut ids: BTreeSet<Sid> = l
            .learners
            .iter()
            .filter(|(_, x)| !x.observer && x.phase == Phase::UpToDate)
            .map(|(s, _)| *s)
            .collect();
        ids.insert(self.cfg.me);
        majority(voters, &ids)
    }

    /// The zxid the next proposal gets (None unless established).
    pub fn next_zxid(&self) -> Option<i64> {
        let l = self.leader.as_ref()?;
        (self.role == Role::Leading && self.established)
            .then(|| make_zxid(l.new_epoch.unwrap_or(0), l.next_counter))
    }

    /// Proposes a txn built with `next_zxid()`.
    pub fn propose(&mut self, entry: std::sync::Arc<Txn>) {
        let Some(expected) = self.next_zxid() else {
            return;
        };
        assert_eq!(
            entry.header.zxid, expected,
            "proposals must use next_zxid()"
        );
        let z = entry.header.zxid;
        self.append(entry.clone());
        // Encoded once: these bytes are the PROPOSALs' payload and, kept, the log record.
        let bytes = entry.bytes();
        let l = self.leader.get_or_insert_with(LeaderState::default);
        l.next_counter += 1;
        let n = bytes.len();
        l.proposal_sizes = Some(match l.proposal_sizes {
            None => (n, n, n),
            Some((_, lo, hi)) => (n, lo.min(n), hi.max(n)),
        });
        let voters: Vec<(Sid, bool)> = l
            .learners
            .iter()
            .filter(|(_, x)| !x.observer && x.phase >= Phase::NewLeaderSent)
            .map(|(s, x)| (*s, x.takes_prior))
            .collect();
        for (sid, takes_prior) in voters {
            let p = match entry.prior().filter(|_| takes_prior) {
                Some(prior) => {
                    let mut data = Vec::with_capacity(4 + bytes.len() + prior.len());
                    data.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                    data.extend_from_slice(bytes);
                    data.extend_from_slice(prior);
                    qp(packet::PROPOSAL_WITH_PRIOR, z, Some(data))
                }
                None => qp(packet::PROPOSAL, z, Some(bytes.to_vec())),
            };
            self.send(sid, Msg::Packet(p));
        }
    }

    pub(super) fn leader_persisted(&mut self) {
        let me = self.cfg.me;
        let upto = self.persisted;
        if let Some(l) = self.leader.as_mut() {
            l.acked.insert(me, upto);
        }
        self.try_commit();
    }

    /// Commits through the newest proposal a quorum has acknowledged, if that is news.
    fn try_commit(&mut self) {
        // Proposals exist only once established; the log past the committed zxid is then
        // exactly this leader's proposals.
        let (committed, proposed) = (self.last_committed, self.last_logged);
        if !self.established || proposed <= committed {
            return;
        }
        let Some(l) = self.leader.as_ref() else {
            return;
        };
        let mut marks: Vec<i64> = l
            .acked
            .values()
            .copied()
            .filter(|z| *z > committed)
            .collect();
        marks.sort_unstable_by(|a, b| b.cmp(a));
        marks.dedup();
        let upto = marks.into_iter().find(|&z| {
            let have: BTreeSet<Sid> = l
                .acked
                .iter()
                .filter(|(_, w)| **w >= z)
                .map(|(s, _)| *s)
                .collect();
            self.cfg.is_quorum(&have)
        });
        if let Some(z) = upto {
            self.commit_and_announce(z.min(proposed));
        }
    }

    /// Commits through `zxid`: COMMIT to followers, INFORM to observers, SYNCs now due. A
    /// SYNC goes right after the commit of the proposal it waited for and before later ones,
    /// as ZooKeeper's `tryToCommit` sends it: a learner answers its connection's requests in
    /// the order it hears of them, and a write sent after the sync must be answered after it.
    fn commit_and_announce(&mut self, zxid: i64) {
        while let Some(z) = self.leader.as_ref().and_then(|l| {
            l.pending_syncs
                .iter()
                .map(|(_, z)| *z)
                .filter(|z| *z < zxid)
                .min()
        }) {
            self.commit_and_announce_through(z);
        }
        self.commit_and_announce_through(zxid);
    }

    fn commit_and_announce_through(&mut self, zxid: i64) {
        let first_new = self.ready.committed.len();
        self.commit_through(zxid);
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        // Observers get the txns themselves (INFORM); followers only their zxids (COMMIT).
        let informs = l.learners.values().any(|x| x.observer);
        // The txns themselves only for ZooKeeper learners (a packet per txn, by its kind).
        let entries: Vec<Arc<Txn>> = match l.learners.values().any(|x| !x.takes_prior) {
            true => self.ready.committed[first_new..].to_vec(),
            false => Vec::new(),
        };
        let newly: Vec<(i64, Option<Vec<u8>>)> = self.ready.committed[first_new..]
            .iter()
            .map(|e| (e.header.zxid, informs.then(|| e.bytes().to_vec())))
            .collect();
        let learners: Vec<(Sid, bool, bool)> = l
            .learners
            .iter()
            .filter(|(_, x)| x.phase >= Phase::NewLeaderSent)
            .map(|(s, x)| (*s, x.observer, x.takes_prior))
            .collect();
        let due: Vec<Sid> = l
            .pending_syncs
            .iter()
            .filter(|(_, z)| *z <= zxid)
            .map(|(s, _)| *s)
            .collect();
        l.pending_syncs.retain(|(_, z)| *z > zxid);
        // A zkrs follower commits everything up to a COMMIT's zxid (it holds those
        // proposals, in order), so one COMMIT covers the whole run; a ZooKeeper follower
        // commits one pending txn per COMMIT, which must name it; observers need each txn.
        for &(sid, observer, zkrs) in &learners {
            if observer && zkrs {
                for (z, bytes) in &newly {
                    self.send(sid, Msg::Packet(qp(packet::INFORM, *z, bytes.clone())));
                }
            } else if observer {
                for e in &entries {
                    let p = self.inform_for_zookeeper(e);
                    self.send(sid, Msg::Packet(p));
                }
            } else if zkrs {
                if let Some((z, _)) = newly.last() {
                    self.send(sid, Msg::Packet(qp(packet::COMMIT, *z, None)));
                }
            } else {
                let commits: Vec<QuorumPacket> = entries
                    .iter()
                    .map(|e| self.commit_for_zookeeper(e))
                    .collect();
                match self
                    .leader_state()
                    .learners
                    .get_mut(&sid)
                    .filter(|x| x.phase < Phase::UpToDate)
                {
                    Some(x) => x.held_commits.extend(commits),
                    None => {
                        for p in commits {
                            self.send(sid, Msg::Packet(p));
                        }
                    }
                }
            }
        }
        for sid in due {
            self.send(sid, Msg::Packet(qp(packet::SYNC, 0, None)));
        }
    }

    pub(super) fn leader_step(&mut self, from: Sid, p: QuorumPacket) {
        if let Some(x) = self.leader_state().learners.get_mut(&from) {
            x.silent = 0;
        }
        match p.type_ {
            packet::FOLLOWERINFO | packet::OBSERVERINFO => {
                let observer = p.type_ == packet::OBSERVERINFO;
                let info = p
                    .data
                    .as_deref()
                    .and_then(|d| LearnerInfo::from_bytes(d).ok());
                let Some(info) = info else {
                    return;
                };
                let learner = Learner {
                    accepted_epoch: epoch_of(p.zxid),
                    observer,
                    phase: Phase::Connected,
                    last_zxid: 0,
                    current_epoch: 0,
                    silent: 0,
                    takes_prior: info.protocol_version >= PRIOR_VERSION,
                    takes_chunks: info.protocol_version >= CHUNKED_SNAP_VERSION,
                    held_commits: Vec::new(),
                };
                self.leader_state().learners.insert(from, learner);
                if self.leader.as_ref().is_some_and(|l| l.new_epoch.is_some()) {
                    self.send_leader_info(from);
                } else {
                    self.maybe_new_epoch();
                }
            }
            packet::ACKEPOCH => {
                let current = p
                    .data
                    .as_deref()
                    .and_then(|d| i32::from_bytes(d).ok())
                    .map_or(-1, i64::from);
                // A learner with a newer history than ours: we must not lead.
                if (current, p.zxid) > (self.hs.current_epoch, self.last_logged) && current != -1 {
                    return self.start_election();
                }
                let established = self.established;
                if let Some(x) = self.leader_state().learners.get_mut(&from) {
                    if x.phase != Phase::EpochSent {
                        return;
                    }
                    x.phase = Phase::EpochAcked;
                    x.last_zxid = p.zxid;
                    x.current_epoch = current;
                }
                if established {
                    self.sync_learner(from);
                } else {
                    self.maybe_sync();
                }
            }
            packet::ACK => {
                let epoch = self.leader.as_ref().and_then(|l| l.new_epoch).unwrap_or(-1);
                if p.zxid == make_zxid(epoch, 0) {
                    let established = self.established;
                    let mut uptodate = false;
                    if let Some(x) = self.leader_state().learners.get_mut(&from) {
                        if x.phase == Phase::NewLeaderSent {
                            x.phase = Phase::NewLeaderAcked;
                            uptodate = established;
                        }
                    }
                    if uptodate {
                        self.send_uptodate(from);
                    } else {
                        self.maybe_establish();
                    }
                    return;
                }
                // A learner logs proposals in order and ACKs only logged ones, so an ACK
                // acknowledges every outstanding proposal up to its zxid (ZooKeeper's learners
                // ACK each one; ours, told CUMULATIVE_ACK_VERSION, only the newest per fsync).
                let mark = self.leader_state().acked.entry(from).or_insert(p.zxid);
                *mark = (*mark).max(p.zxid);
                self.try_commit();
            }
            packet::REQUEST => {
                let Some(f) = Forwarded::from_packet(&p) else {
                    return;
                };
                if f.type_ == jute::OpCode::Sync.code() {
                    let proposed = self.last_logged;
                    if proposed <= self.last_committed {
                        self.send(from, Msg::Packet(qp(packet::SYNC, 0, None)));
                    } else {
                        self.leader_state().pending_syncs.push((from, proposed));
                    }
                } else {
                    self.ready.requests.push((from, f));
                }
            }
            packet::REVALIDATE => {
                let data = p.data.unwrap_or_default();
                if let (Some(id), Some(to)) = (data.get(..8), data.get(8..12)) {
                    let id = i64::from_be_bytes(id.try_into().unwrap_or_default());
                    let to = i32::from_be_bytes(to.try_into().unwrap_or_default());
                    self.ready.revalidate.push((from, id, to));
                }
            }
            packet::PING => {
                let data = p.data.unwrap_or_default();
                for chunk in data.chunks_exact(12) {
                    let id = i64::from_be_bytes(chunk[..8].try_into().unwrap_or_default());
                    let to = i32::from_be_bytes(chunk[8..].try_into().unwrap_or_default());
                    self.ready.touched.push((id, to));
                }
            }
            _ => {}
        }
    }

    pub(super) fn forget_learner(&mut self, sid: Sid) {
        if let Some(l) = self.leader.as_mut() {
            l.learners.remove(&sid);
            l.acked.remove(&sid);
            l.pending_syncs.retain(|(s, _)| *s != sid);
        }
    }

    pub(super) fn leader_tick(&mut self) {
        let me = self.cfg.me;
        let (init_limit, sync_limit) = (self.cfg.init_limit, self.cfg.sync_limit);
        let established = self.established;
        let last = self.last_logged;
        let Some(l) = self.leader.as_mut() else {
            return;
        };
        l.ticks += 1;
        if !established && l.ticks > init_limit {
            return self.start_election();
        }
        let mut alive: BTreeSet<Sid> = BTreeSet::from([me]);
        let mut dropped = Vec::new();
        let mut ping = Vec::new();
        for (sid, x) in l.learners.iter_mut() {
            x.silent += 1;
            let limit = if x.phase == Phase::UpToDate {
                sync_limit
            } else {
                init_limit
            };
            if x.silent > limit {
                dropped.push(*sid);
                continue;
            }
            if x.phase >= Phase::NewLeaderSent && !x.observer {
                alive.insert(*sid);
            }
            if x.phase == Phase::UpToDate {
                ping.push(*sid);
            }
        }
        for sid in dropped {
            l.learners.remove(&sid);
            l.acked.remove(&sid);
            l.pending_syncs.retain(|(s, _)| *s != sid);
            self.ready.disconnect.push(sid);
        }
        if l.ticks % self.cfg.ping_ticks.max(1) == 0 {
            for sid in ping {
                self.send(sid, Msg::Packet(qp(packet::PING, last, None)));
            }
        }
        if established && !self.cfg.is_quorum(&alive) {
            // Lost a quorum of synced followers: step down.
            self.start_election();
        }
    }
}
