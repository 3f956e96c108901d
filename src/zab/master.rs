//! A follower serving observers: ZooKeeper's ObserverMaster (`observerMasterPort`). An
//! observer registers with a voting member instead of the leader; a follower that is in
//! broadcast syncs it from its own committed history (DIFF, TRUNC or SNAP, then NEWLEADER and
//! UPTODATE, in the epoch it follows), INFORMs it of each txn the leader commits, passes its
//! REQUESTs and REVALIDATEs on to the leader (and the answers back), reports its sessions in
//! its own PINGs, and PINGs it. A leader takes observers on that port as its own.

use super::leader::Phase;
use super::*;
use jute::quorum::LearnerInfo;
use jute::Decode;
use std::collections::BTreeMap;

#[derive(Debug)]
pub(super) struct Served {
    phase: Phase,
    /// Ticks since we heard from it.
    silent: u32,
    /// Its last logged zxid (from ACKEPOCH).
    last_zxid: i64,
    /// A zkrs observer (see the leader's `Learner`): plain INFORMs, zkrs's snapshot.
    takes_prior: bool,
    takes_chunks: bool,
}

#[derive(Debug, Default)]
pub(super) struct MasterState {
    observers: BTreeMap<Sid, Served>,
    /// The syncs this member forwarded to the leader, oldest first. The leader answers a
    /// learner's syncs in the order they came.
    sync_owners: VecDeque<Asker>,
    /// Observers' REVALIDATEs forwarded to the leader, oldest first: (session, timeout,
    /// observer).
    revalidations: VecDeque<(i64, i32, Asker)>,
    ticks: u32,
}

/// Whose forwarded request the leader is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    /// This member's own clients.
    Own,
    Observer(Sid),
    /// An observer whose connection closed since: its answer goes nowhere (a new connection
    /// from it must not take it).
    Gone,
}

impl MasterState {
    pub(super) fn is_empty(&self) -> bool {
        self.observers.is_empty()
    }
}

impl Zab {
    /// Is this member a follower in broadcast that serves observers?
    fn serves_observers(&self) -> bool {
        self.cfg.observer_master && matches!(self.role, Role::Following(_)) && self.established
    }

    /// Drops every observer served (the role changed): their connections close, and each
    /// registers again where it can.
    pub(super) fn stop_serving_observers(&mut self) {
        let master = std::mem::take(&mut self.master);
        self.ready.disconnect.extend(master.observers.into_keys());
    }

    /// A packet on a follower from a member other than its leader.
    pub(super) fn master_step(&mut self, from: Sid, p: QuorumPacket) {
        if p.type_ == packet::OBSERVERINFO {
            return self.observer_registers(from, p);
        }
        let Some(x) = self.master.observers.get_mut(&from) else {
            return;
        };
        x.silent = 0;
        let phase = x.phase;
        match p.type_ {
            packet::ACKEPOCH if phase == Phase::EpochSent => {
                x.last_zxid = p.zxid;
                x.phase = Phase::EpochAcked;
                self.sync_observer(from);
            }
            // NEWLEADER's; an observer ACKs nothing else that counts.
            packet::ACK if phase == Phase::NewLeaderSent && p.zxid & 0xffff_ffff == 0 => {
                x.phase = Phase::UpToDate;
                self.send(from, Msg::Packet(qp(packet::UPTODATE, -1, None)));
            }
            packet::REQUEST => {
                let Some(leader) = self.leader_id() else {
                    return;
                };
                let sync = Forwarded::from_packet(&p)
                    .is_some_and(|f| f.type_ == jute::OpCode::Sync.code());
                if sync {
                    self.master.sync_owners.push_back(Asker::Observer(from));
                }
                self.send(leader, Msg::Packet(p));
            }
            packet::REVALIDATE => {
                let Some(leader) = self.leader_id() else {
                    return;
                };
                let data = p.data.as_deref().unwrap_or_default();
                let (Some(id), Some(to)) = (data.get(..8), data.get(8..12)) else {
                    return;
                };
                let id = i64::from_be_bytes(id.try_into().unwrap_or_default());
                let to = i32::from_be_bytes(to.try_into().unwrap_or_default());
                self.master
                    .revalidations
                    .push_back((id, to, Asker::Observer(from)));
                self.send(leader, Msg::Packet(p));
            }
            // The observer's sessions: reported to the leader in our next PING answer.
            packet::PING => {
                let data = p.data.unwrap_or_default();
                for chunk in data.chunks_exact(12) {
                    let id = i64::from_be_bytes(chunk[..8].try_into().unwrap_or_default());
                    let to = i32::from_be_bytes(chunk[8..].try_into().unwrap_or_default());
                    self.touched.push((id, to));
                }
            }
            _ => {}
        }
    }

    /// OBSERVERINFO: LEADERINFO in the epoch we follow (ZooKeeper's ObserverMaster proposes
    /// its current epoch and waits for no one). A member that is not a follower in broadcast
    /// closes the connection, and the observer tries another.
    fn observer_registers(&mut self, from: Sid, p: QuorumPacket) {
        let info = p
            .data
            .as_deref()
            .and_then(|d| LearnerInfo::from_bytes(d).ok());
        let (Some(info), true) = (info, self.serves_observers()) else {
            self.ready.disconnect.push(from);
            return;
        };
        self.master.observers.insert(
            from,
            Served {
                phase: Phase::EpochSent,
                silent: 0,
                last_zxid: 0,
                takes_prior: info.protocol_version >= PRIOR_VERSION,
                takes_chunks: info.protocol_version >= CHUNKED_SNAP_VERSION,
            },
        );
        let data = CUMULATIVE_ACK_VERSION.to_be_bytes().to_vec();
        let epoch = make_zxid(self.hs.current_epoch, 0);
        self.send(from, Msg::Packet(qp(packet::LEADERINFO, epoch, Some(data))));
    }

    /// DIFF, TRUNC or SNAP from what this member committed, then NEWLEADER.
    fn sync_observer(&mut self, sid: Sid) {
        let Some(peer_zxid) = self.master.observers.get(&sid).map(|x| x.last_zxid) else {
            return;
        };
        let top = self.last_committed;
        let from = if peer_zxid > top {
            // It holds txns this member has not committed yet (it synced with a member
            // further along). ZooKeeper's would TRUNC it; a zkrs observer cannot undo what it
            // applied. It tries again, by when we have them.
            self.master.observers.remove(&sid);
            self.ready.disconnect.push(sid);
            return;
        } else if peer_zxid == top {
            self.send(sid, Msg::Packet(qp(packet::DIFF, top, None)));
            top
        } else {
            match self.start_catch_up(sid, peer_zxid, top) {
                Some(from) => from,
                None => {
                    if let Some(x) = self.master.observers.get_mut(&sid) {
                        x.phase = Phase::AwaitingSnapshot;
                    }
                    self.ready.snapshot_for.push(sid);
                    return;
                }
            }
        };
        self.observer_history_and_newleader(sid, from);
    }

    /// The committed txns after `from`, then NEWLEADER with our membership.
    fn observer_history_and_newleader(&mut self, sid: Sid, from: i64) {
        let top = self.last_committed;
        let zkrs = self
            .master
            .observers
            .get(&sid)
            .is_some_and(|x| x.takes_prior);
        self.send_history(sid, from, top, zkrs);
        let config = self.cfg.config_text.clone();
        let newleader = qp(
            packet::NEWLEADER,
            make_zxid(self.hs.current_epoch, 0),
            Some(config),
        );
        self.send(sid, Msg::Packet(newleader));
        if let Some(x) = self.master.observers.get_mut(&sid) {
            x.phase = Phase::NewLeaderSent;
            x.silent = 0;
        }
    }

    pub(super) fn observer_awaits_snapshot(&self, sid: Sid) -> bool {
        self.master
            .observers
            .get(&sid)
            .is_some_and(|x| x.phase == Phase::AwaitingSnapshot)
    }

    pub(super) fn observer_takes_chunks(&self, sid: Sid) -> bool {
        self.master
            .observers
            .get(&sid)
            .is_some_and(|x| x.takes_chunks)
    }

    /// The shell's snapshot for observer `sid`, of the applied state at `zxid`.
    pub(super) fn observer_snapshot_ready(&mut self, sid: Sid, zxid: i64, bytes: Vec<u8>) {
        if self.send_snap(sid, zxid, bytes) {
            self.observer_history_and_newleader(sid, zxid);
        }
    }

    /// Txns this member just committed: an INFORM of each to the observers it serves, from
    /// the start of their sync on (an observer in sync logs them as it does the sync's).
    pub(super) fn inform_observers(&mut self, entries: &[Arc<Txn>]) {
        let to: Vec<(Sid, bool)> = self
            .master
            .observers
            .iter()
            .filter(|(_, x)| x.phase >= Phase::NewLeaderSent)
            .map(|(s, x)| (*s, x.takes_prior))
            .collect();
        for (sid, zkrs) in to {
            for e in entries {
                let p = match zkrs {
                    true => qp(packet::INFORM, e.header.zxid, Some(e.bytes().to_vec())),
                    false => self.inform_for_zookeeper(e),
                };
                self.send(sid, Msg::Packet(p));
            }
        }
    }

    /// A SYNC from the leader: its oldest forwarded sync is answered. An observer's goes on
    /// to it (after the INFORMs of what committed before it); true if it was an observer's.
    pub(super) fn observer_sync_answered(&mut self) -> bool {
        match self.master.sync_owners.pop_front() {
            Some(Asker::Observer(sid)) => {
                self.send(sid, Msg::Packet(qp(packet::SYNC, 0, None)));
                true
            }
            Some(Asker::Gone) => true,
            Some(Asker::Own) | None => false,
        }
    }

    /// This member forwarded a sync of its own clients.
    pub(super) fn own_sync_forwarded(&mut self) {
        if self.cfg.observer_master {
            self.master.sync_owners.push_back(Asker::Own);
        }
    }

    /// The leader's answer to a REVALIDATE: true if it was an observer's (passed on to it;
    /// a valid session counts as heard from).
    pub(super) fn observer_revalidated(&mut self, p: &QuorumPacket) -> bool {
        let data = p.data.as_deref().unwrap_or_default();
        let Some(id) = data.get(..8) else {
            return false;
        };
        let id = i64::from_be_bytes(id.try_into().unwrap_or_default());
        let valid = data.get(8).is_some_and(|b| *b != 0);
        match self.master.revalidations.front() {
            Some(&(session, timeout, asker)) if session == id => {
                self.master.revalidations.pop_front();
                if let Asker::Observer(sid) = asker {
                    if valid {
                        self.touched.push((session, timeout));
                    }
                    self.send(sid, Msg::Packet(p.clone()));
                }
                true
            }
            _ => false,
        }
    }

    pub(super) fn forget_observer(&mut self, sid: Sid) {
        self.master.observers.remove(&sid);
        let gone = |a: &mut Asker| {
            if *a == Asker::Observer(sid) {
                *a = Asker::Gone;
            }
        };
        self.master.sync_owners.iter_mut().for_each(gone);
        self.master
            .revalidations
            .iter_mut()
            .for_each(|(_, _, a)| gone(a));
    }

    /// The member an observer registers with: the leader, or with `observer_master` the
    /// followers in turn (in id order from one that depends on this member's id, so that
    /// observers spread), then the leader (a zkrs leader takes observers on that port too),
    /// and round again. ZooKeeper's observer goes through a shuffled list of the voting
    /// members, its leader among them.
    pub(super) fn learner_master(&mut self, leader: Sid) -> Sid {
        if !self.cfg.observer_master {
            return leader;
        }
        let me = self.cfg.me;
        let followers: Vec<Sid> = self
            .cfg
            .voters
            .iter()
            .copied()
            .filter(|s| *s != me && *s != leader)
            .collect();
        let k = followers.len();
        let turn = self.masters_tried % (k + 1);
        self.masters_tried = self.masters_tried.wrapping_add(1);
        match turn < k {
            true => followers[(me as usize).wrapping_add(turn) % k],
            false => leader,
        }
    }

    /// Observers this member serves, from the start of their sync on.
    pub(super) fn served_observers(&self) -> impl Iterator<Item = Sid> + '_ {
        self.master
            .observers
            .iter()
            .filter(|(_, x)| x.phase >= Phase::AwaitingSnapshot)
            .map(|(s, _)| *s)
    }

    /// One tick: PINGs (every `ping_ticks`) to observers in broadcast; an observer silent
    /// too long is dropped.
    pub(super) fn master_tick(&mut self) {
        if self.master.observers.is_empty() {
            return;
        }
        let (init_limit, sync_limit) = (self.cfg.init_limit, self.cfg.sync_limit);
        let last = self.last_committed;
        self.master.ticks += 1;
        let ping_now = self.master.ticks.is_multiple_of(self.cfg.ping_ticks.max(1));
        let mut dropped = Vec::new();
        let mut ping = Vec::new();
        for (sid, x) in self.master.observers.iter_mut() {
            x.silent += 1;
            let limit = match x.phase {
                Phase::UpToDate => sync_limit,
                _ => init_limit,
            };
            if x.silent > limit {
                dropped.push(*sid);
            } else if x.phase == Phase::UpToDate && ping_now {
                ping.push(*sid);
            }
        }
        for sid in dropped {
            self.master.observers.remove(&sid);
            self.ready.disconnect.push(sid);
        }
        for sid in ping {
            self.send(sid, Msg::Packet(qp(packet::PING, last, None)));
        }
    }
}
