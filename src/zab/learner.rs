//! A follower or observer: registers with the leader, accepts its epoch, syncs (DIFF, TRUNC,
//! SNAP), then logs and ACKs proposals and applies commits (observers get INFORMs).

use super::*;
use jute::quorum::LearnerInfo;
use jute::{Decode, Encode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    AwaitLeaderInfo,
    Syncing,
    AwaitUpToDate,
    Broadcast,
}

#[derive(Debug)]
pub(super) struct LearnerState {
    phase: Phase,
    observer: bool,
    /// Ticks since the leader was heard.
    silent: u32,
    /// ACKs are sent for logged proposals above this.
    acked: i64,
    new_epoch: i64,
    /// Highest COMMIT received during sync.
    sync_commit: i64,
    /// The leader takes an ACK for every proposal up to its zxid (it announced
    /// `CUMULATIVE_ACK_VERSION`): ACK only the newest logged one.
    cumulative_acks: bool,
}

impl Zab {
    pub(super) fn become_learner(&mut self, leader: Sid, observer: bool) {
        self.set_role(if observer {
            Role::Observing(leader)
        } else {
            Role::Following(leader)
        });
        self.learner = Some(LearnerState {
            phase: Phase::AwaitLeaderInfo,
            observer,
            silent: 0,
            acked: self.last_logged,
            new_epoch: 0,
            sync_commit: self.last_committed,
            cumulative_acks: false,
        });
        let info = LearnerInfo {
            serverid: self.cfg.me as i64,
            protocol_version: CHUNKED_SNAP_VERSION,
            config_version: 0,
        };
        let kind = if observer {
            packet::OBSERVERINFO
        } else {
            packet::FOLLOWERINFO
        };
        let p = qp(
            kind,
            make_zxid(self.hs.accepted_epoch, 0),
            Some(info.to_bytes()),
        );
        self.send(leader, Msg::Packet(p));
    }

    fn learner_mut(&mut self) -> Option<&mut LearnerState> {
        self.learner.as_mut()
    }

    /// Learner: hands a client write (or sync) to the leader. False when not established.
    pub fn forward(&mut self, f: Forwarded) -> bool {
        let Some(leader) = self.leader_id() else {
            return false;
        };
        if !self.established || leader == self.cfg.me {
            return false;
        }
        if f.type_ == jute::OpCode::Sync.code() {
            self.own_sync_forwarded();
        }
        self.send(leader, Msg::Packet(f.to_packet()));
        true
    }

    /// Learner: asks the leader whether `session` (a client reconnecting here) is still valid
    /// (REVALIDATE: session id, timeout). False when not established.
    pub fn revalidate(&mut self, session: i64, timeout: i32) -> bool {
        let Some(leader) = self.leader_id() else {
            return false;
        };
        if !self.established || leader == self.cfg.me {
            return false;
        }
        let mut data = Vec::with_capacity(12);
        data.extend_from_slice(&session.to_be_bytes());
        data.extend_from_slice(&timeout.to_be_bytes());
        self.send(leader, Msg::Packet(qp(packet::REVALIDATE, -1, Some(data))));
        true
    }

    pub(super) fn learner_step(&mut self, p: QuorumPacket) {
        let Some(leader) = self.leader_id() else {
            return;
        };
        let Some(st) = self.learner_mut() else { return };
        st.silent = 0;
        let phase = st.phase;
        match p.type_ {
            packet::LEADERINFO if phase == Phase::AwaitLeaderInfo => {
                let epoch = epoch_of(p.zxid);
                let current = if epoch > self.hs.accepted_epoch {
                    self.set_hard_state(HardState {
                        accepted_epoch: epoch,
                        ..self.hs
                    });
                    self.hs.current_epoch as i32
                } else if epoch == self.hs.accepted_epoch {
                    -1
                } else {
                    return self.start_election();
                };
                let version = p.data.as_deref().and_then(|d| i32::from_bytes(d).ok());
                if let Some(st) = self.learner_mut() {
                    st.new_epoch = epoch;
                    st.phase = Phase::Syncing;
                    st.cumulative_acks = version.is_some_and(|v| v >= CUMULATIVE_ACK_VERSION);
                }
                let p = qp(packet::ACKEPOCH, self.last_logged, Some(current.to_bytes()));
                self.send(leader, Msg::Packet(p));
            }
            packet::DIFF if phase == Phase::Syncing => {}
            packet::TRUNC if phase == Phase::Syncing => {
                let z = p.zxid;
                if z < self.last_committed {
                    // This member applied txns the leader's history does not hold (data
                    // from an old setup, or a snapshot it imported while the others elected
                    // a leader without it). Dropping them could lose writes clients were told
                    // of: it stops, as ZooKeeper's learner does when it cannot truncate.
                    self.ready.fatal = Some(format!(
                        "the leader asks to truncate to {z:#x}, below the applied {:#x}: this \
                         member's data is ahead of the ensemble's (an old setup's, or an \
                         imported snapshot the others elected a leader without); start this \
                         member first so that it leads, or empty its data dir",
                        self.last_committed
                    ));
                    return;
                }
                self.log.retain(|e| e.header.zxid <= z);
                self.last_logged = z;
                self.persisted = self.persisted.min(z);
                self.ready.truncate = Some(z);
                if let Some(st) = self.learner_mut() {
                    st.acked = st.acked.min(z);
                }
            }
            packet::SNAP if phase == Phase::Syncing => {
                let z = p.zxid;
                self.log.clear();
                self.last_logged = z;
                self.last_committed = z;
                self.persisted = z;
                self.ready.append.clear();
                self.ready.committed.clear();
                self.ready.install_snapshot = Some((z, p.data.unwrap_or_default()));
                if let Some(st) = self.learner_mut() {
                    st.acked = z;
                    st.sync_commit = z;
                }
            }
            packet::PROPOSAL | packet::PROPOSAL_WITH_PRIOR => {
                // Logged as received: the payload is the log record (the prior node, when
                // one came, rides along with it unlogged).
                let entry = match p.type_ {
                    packet::PROPOSAL => p.data.and_then(|d| Txn::decode(d).ok()),
                    _ => p.data.and_then(split_prior),
                };
                let Some(entry) = entry else {
                    return;
                };
                let z = entry.header.zxid;
                if z <= self.last_logged {
                    return; // already have it
                }
                // In broadcast, proposals of an epoch come with consecutive counters; a gap
                // means the stream lost something: sync again.
                if phase == Phase::Broadcast
                    && epoch_of(z) == epoch_of(self.last_logged)
                    && z != self.last_logged + 1
                {
                    return self.start_election();
                }
                self.append(std::sync::Arc::new(entry));
            }
            // ZooKeeper's leader commits a reconfig so; its membership takes effect at the
            // commit here in any case (the suggested leader is left to the election).
            packet::COMMIT | packet::COMMITANDACTIVATE => {
                if phase == Phase::Broadcast {
                    if p.zxid > self.last_logged {
                        return self.start_election();
                    }
                    self.commit_through(p.zxid);
                } else if let Some(st) = self.learner_mut() {
                    st.sync_commit = st.sync_commit.max(p.zxid);
                }
            }
            packet::INFORM | packet::INFORMANDACTIVATE => {
                let data = match p.type_ {
                    packet::INFORM => p.data,
                    _ => p.data.and_then(|d| d.get(8..).map(<[u8]>::to_vec)),
                };
                let Some(entry) = data.and_then(|d| Txn::decode(d).ok()) else {
                    return;
                };
                let z = entry.header.zxid;
                if z > self.last_logged {
                    self.append(std::sync::Arc::new(entry));
                }
                if phase == Phase::Broadcast {
                    self.commit_through(z);
                } else if let Some(st) = self.learner_mut() {
                    st.sync_commit = st.sync_commit.max(z);
                }
            }
            packet::NEWLEADER if phase == Phase::Syncing => {
                // The leader's membership: newer than ours after a SNAP past a reconfig, or
                // versioned by an epoch we missed.
                if let Some(m) = p.data.as_deref().and_then(Membership::from_text) {
                    self.adopt(m);
                }
                let epoch = epoch_of(p.zxid);
                self.set_hard_state(HardState {
                    current_epoch: epoch,
                    ..self.hs
                });
                let observer = self.learner.as_ref().is_some_and(|s| s.observer);
                if let Some(st) = self.learner_mut() {
                    st.phase = Phase::AwaitUpToDate;
                }
                if !observer {
                    // In the same Ready as the appended sync txns and the epoch: persisted first.
                    self.send(leader, Msg::Packet(qp(packet::ACK, p.zxid, None)));
                } else {
                    self.send(leader, Msg::Packet(qp(packet::ACK, p.zxid, None)));
                }
            }
            packet::UPTODATE if phase == Phase::AwaitUpToDate => {
                // Commit what the leader told us is committed; later COMMITs do the rest.
                let upto = self
                    .learner
                    .as_ref()
                    .map_or(self.last_committed, |s| s.sync_commit);
                self.commit_through(upto);
                let epoch = self.learner.as_ref().map_or(0, |s| s.new_epoch);
                if let Some(st) = self.learner_mut() {
                    st.phase = Phase::Broadcast;
                }
                self.established = true;
                self.ready.role_changed = true;
                self.version_initial_membership(epoch);
                self.send(
                    leader,
                    Msg::Packet(qp(packet::ACK, make_zxid(epoch, 0), None)),
                );
                self.learner_persisted();
            }
            packet::PING => {
                let mut data = Vec::with_capacity(self.touched.len() * 12);
                for (id, to) in self.touched.drain(..) {
                    data.extend_from_slice(&id.to_be_bytes());
                    data.extend_from_slice(&to.to_be_bytes());
                }
                self.send(leader, Msg::Packet(qp(packet::PING, p.zxid, Some(data))));
            }
            // Answered after the txns committed before it, before those after it.
            packet::SYNC if self.observer_sync_answered() => {}
            packet::SYNC => self.ready.syncs_done.push(self.ready.committed.len()),
            // The leader's answer: session id, then a boolean (an observer's goes on to it).
            packet::REVALIDATE if self.observer_revalidated(&p) => {}
            packet::REVALIDATE => {
                let data = p.data.unwrap_or_default();
                if let (Some(id), Some(&valid)) = (data.get(..8), data.get(8)) {
                    let id = i64::from_be_bytes(id.try_into().unwrap_or_default());
                    self.ready.revalidated.push((id, valid != 0));
                }
            }
            _ => {}
        }
    }

    /// ACKs logged proposals (broadcast phase only: during sync NEWLEADER's ACK covers them).
    pub(super) fn learner_persisted(&mut self) {
        let persisted = self.persisted;
        let Some(leader) = self.leader_id() else {
            return;
        };
        let Some(st) = self.learner.as_ref() else {
            return;
        };
        if st.phase != Phase::Broadcast || st.observer {
            return;
        }
        let (from, cumulative) = (st.acked, st.cumulative_acks);
        // The log is in zxid order and holds up to `max_log` committed txns: bisect to the
        // first unacked one rather than scan the window per fsync.
        let start = self.log.partition_point(|e| e.header.zxid <= from);
        let end = self.log.partition_point(|e| e.header.zxid <= persisted);
        if end <= start {
            return;
        }
        // A cumulative ACK: the newest one only.
        let first = if cumulative { end - 1 } else { start };
        let zxids: Vec<i64> = self.log.range(first..end).map(|e| e.header.zxid).collect();
        for z in &zxids {
            self.send(leader, Msg::Packet(qp(packet::ACK, *z, None)));
        }
        if let (Some(last), Some(st)) = (zxids.last(), self.learner.as_mut()) {
            st.acked = *last;
        }
    }

    pub(super) fn learner_tick(&mut self) {
        let (init_limit, sync_limit) = (self.cfg.init_limit, self.cfg.sync_limit);
        let Some(st) = self.learner_mut() else { return };
        st.silent += 1;
        let limit = if st.phase == Phase::Broadcast {
            sync_limit
        } else {
            init_limit
        };
        if st.silent > limit {
            self.start_election();
        }
    }
}

/// A PROPOSAL_WITH_PRIOR's data: the txn's length (i32), the txn, the prior node.
fn split_prior(mut data: Vec<u8>) -> Option<Txn> {
    let len = data.get(..4)?;
    let len = usize::try_from(i32::from_be_bytes(len.try_into().ok()?)).ok()?;
    if 4 + len > data.len() {
        return None;
    }
    let prior = data.split_off(4 + len);
    data.drain(..4);
    Some(Txn::decode(data).ok()?.with_prior(Some(prior)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jute::txn::{CreateSessionTxn, TxnHeader};
    use jute::TxnRecord;

    fn txn_bytes() -> Vec<u8> {
        let entry = TxnEntry {
            header: TxnHeader {
                client_id: 7,
                cxid: 1,
                zxid: 0x1_0000_0001,
                time: 5,
                type_: -10,
            },
            record: TxnRecord::CreateSession(CreateSessionTxn { time_out: 4000 }),
            digest: None,
        };
        entry.to_bytes()
    }

    fn with_len(len: i32, txn: &[u8], prior: &[u8]) -> Vec<u8> {
        let mut d = len.to_be_bytes().to_vec();
        d.extend_from_slice(txn);
        d.extend_from_slice(prior);
        d
    }

    #[test]
    fn a_proposal_with_prior_splits_into_the_logged_txn_and_the_prior() {
        let txn = txn_bytes();
        let t = split_prior(with_len(txn.len() as i32, &txn, b"prior")).unwrap();
        assert_eq!(t.bytes(), &txn[..], "the log record is the txn alone");
        assert_eq!(t.prior(), Some(&b"prior"[..]));
        assert_eq!(t.header.zxid, 0x1_0000_0001);
    }

    #[test]
    fn a_proposal_with_prior_whose_length_lies_is_refused() {
        let txn = txn_bytes();
        let n = txn.len() as i32;
        for len in [-1, i32::MIN, n + 6, i32::MAX, n - 1] {
            assert!(
                split_prior(with_len(len, &txn, b"prior")).is_none(),
                "{len}"
            );
        }
        assert!(split_prior(vec![0, 0]).is_none());
    }
}
