#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A zkrs leader syncing and then leading a ZooKeeper 3.8 learner, modelled on the rules of
//! ZooKeeper's `Learner.syncWithLeader` and `FollowerZooKeeperServer.commit`: between
//! NEWLEADER and UPTODATE a COMMIT must name a proposal received since NEWLEADER (ZooKeeper
//! 3.8 dereferences a missing one, ZOOKEEPER-4394), and in broadcast each COMMIT must name
//! the oldest pending txn (anything else makes ZooKeeper exit). The leader commits while
//! the learner syncs and several txns at a time afterwards; the learner must end up having
//! committed every txn, in order, with no broken rule.

mod sim;
use jute::quorum::{LearnerInfo, QuorumPacket};
use jute::Encode;
use sim::Sim;
use std::collections::VecDeque;
use zkrs::zab::{make_zxid, packet, Msg, Sid};

/// The learner's id: outside the three voters, a non-voting follower.
const ME: Sid = 4;

#[derive(Default)]
struct ZooKeeperLearner {
    new_epoch: i64,
    /// Sync: proposals not committed yet, commits seen after NEWLEADER.
    not_committed: VecDeque<i64>,
    committed_in_sync: Vec<i64>,
    write_to_log: bool,
    broadcast: bool,
    /// Logged, waiting for their COMMIT (`pendingTxns`).
    pending: VecDeque<i64>,
    applied: Vec<i64>,
    snapshot_type: Option<i32>,
    broken: Vec<String>,
}

fn qp(type_: i32, zxid: i64, data: Option<Vec<u8>>) -> Msg {
    Msg::Packet(QuorumPacket {
        type_,
        zxid,
        data,
        authinfo: None,
    })
}

impl ZooKeeperLearner {
    /// `FollowerZooKeeperServer.commit`.
    fn commit(&mut self, z: i64) {
        match self.pending.front() {
            None => self
                .broken
                .push(format!("COMMIT {z:#x} without seeing txn")),
            Some(&first) if first != z => self.broken.push(format!(
                "COMMIT {z:#x} but next pending txn {first:#x} (ZooKeeper exits)"
            )),
            Some(_) => {
                self.pending.pop_front();
                self.applied.push(z);
            }
        }
    }

    /// Takes one packet from the leader; what it answers.
    fn step(&mut self, p: QuorumPacket) -> Vec<Msg> {
        let mut out = Vec::new();
        match p.type_ {
            packet::LEADERINFO => {
                self.new_epoch = p.zxid >> 32;
                out.push(qp(packet::ACKEPOCH, 0, Some(0i32.to_bytes())));
            }
            packet::SNAP | packet::SNAP_STREAMED | packet::DIFF => {
                self.snapshot_type = Some(p.type_);
                if p.type_ != packet::DIFF {
                    // The snapshot holds everything through its zxid.
                    self.applied.push(p.zxid);
                }
            }
            packet::PROPOSAL if self.broadcast => {
                self.pending.push_back(p.zxid);
                out.push(qp(packet::ACK, p.zxid, None));
            }
            packet::PROPOSAL => self.not_committed.push_back(p.zxid),
            packet::COMMIT if self.broadcast => self.commit(p.zxid),
            packet::COMMIT => match self.not_committed.front() {
                None => self.broken.push(format!(
                    "COMMIT {:#x} during sync with no proposal since NEWLEADER (ZOOKEEPER-4394)",
                    p.zxid
                )),
                Some(&first) if !self.write_to_log => {
                    if first == p.zxid {
                        self.not_committed.pop_front();
                        self.applied.push(p.zxid);
                    }
                }
                Some(_) => self.committed_in_sync.push(p.zxid),
            },
            packet::NEWLEADER => {
                self.pending.extend(self.not_committed.drain(..));
                self.write_to_log = true;
                out.push(qp(packet::ACK, p.zxid, None));
            }
            packet::UPTODATE => {
                self.broadcast = true;
                self.pending.extend(self.not_committed.drain(..));
                for z in std::mem::take(&mut self.committed_in_sync) {
                    self.commit(z);
                }
                out.push(qp(packet::ACK, make_zxid(self.new_epoch, 0), None));
            }
            packet::PING => out.push(qp(packet::PING, p.zxid, Some(Vec::new()))),
            other => self
                .broken
                .push(format!("packet type {other} it does not know")),
        }
        out
    }
}

/// Hands the learner what the leader sent it; returns whether there was anything.
fn exchange(sim: &mut Sim, leader: Sid, learner: &mut ZooKeeperLearner) -> bool {
    let inbox = sim.inbox(leader, ME);
    let any = !inbox.is_empty();
    for msg in inbox {
        let Msg::Packet(p) = msg else { continue };
        for reply in learner.step(p) {
            sim.send_from_outside(ME, leader, reply);
        }
    }
    any
}

#[test]
fn a_zookeeper_learner_syncs_and_follows_a_zkrs_leader_under_load() {
    for seed in 0..20 {
        let mut sim = Sim::new(seed, 3, 0);
        assert!(sim.stabilize());
        let leader = *sim.leaders.values().last().unwrap();
        // More txns than the leader keeps for DIFFs: the learner gets a snapshot.
        for _ in 0..30 {
            sim.propose();
        }
        sim.drain_batched();
        let info = LearnerInfo {
            serverid: ME as i64,
            protocol_version: 0x10000, // ZooKeeper's
            config_version: 0,
        };
        sim.send_from_outside(
            ME,
            leader,
            qp(packet::FOLLOWERINFO, 0, Some(info.to_bytes())),
        );
        let mut learner = ZooKeeperLearner::default();
        // The leader proposes and commits between each of the learner's reads: during its
        // sync, between NEWLEADER and UPTODATE, and after, several txns per round.
        for round in 0..40 {
            for _ in 0..(1 + (seed + round) % 4) {
                sim.propose();
            }
            sim.drain_batched();
            exchange(&mut sim, leader, &mut learner);
        }
        sim.drain_batched();
        while exchange(&mut sim, leader, &mut learner) {
            sim.drain_batched();
        }
        assert!(
            learner.broken.is_empty(),
            "seed {seed}: {:?}",
            learner.broken
        );
        assert_eq!(
            learner.snapshot_type,
            Some(packet::SNAP_STREAMED),
            "seed {seed}: ZooKeeper's snapshot stream"
        );
        assert!(learner.broadcast, "seed {seed}: never UPTODATE");
        // Everything committed after the snapshot, in order, once each.
        let committed: Vec<i64> = sim.committed.keys().copied().collect();
        let after: Vec<i64> = committed
            .iter()
            .copied()
            .filter(|z| *z > learner.applied[0])
            .collect();
        assert_eq!(learner.applied[1..], after[..], "seed {seed}");
        assert!(learner.pending.is_empty(), "seed {seed}");
    }
}
