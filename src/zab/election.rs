//! Fast Leader Election (`FastLeaderElection.lookForLeader`) as a pure state machine: votes
//! ordered by (peer epoch, zxid, server id), rounds (`logicalclock`), notifications in
//! Apache ZooKeeper's format, and the finalize wait before deciding.

use super::Sid;
use jute::quorum::Notification;
use std::collections::{BTreeMap, BTreeSet};

/// `QuorumPeer.ServerState` ordinals, as notifications carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Looking = 0,
    Following = 1,
    Leading = 2,
    Observing = 3,
}

impl PeerState {
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => PeerState::Looking,
            1 => PeerState::Following,
            2 => PeerState::Leading,
            3 => PeerState::Observing,
            _ => return None,
        })
    }
}

/// A vote for a leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub leader: Sid,
    pub zxid: i64,
    pub peer_epoch: i64,
}

impl Vote {
    /// `totalOrderPredicate`: does `self` beat `other`?
    pub fn beats(&self, other: &Vote) -> bool {
        (self.peer_epoch, self.zxid, self.leader) > (other.peer_epoch, other.zxid, other.leader)
    }
}

/// Notification format version of 3.8.
const NOTIFICATION_VERSION: i32 = 2;

pub fn notification(state: PeerState, vote: &Vote, round: i64, config: &[u8]) -> Notification {
    Notification {
        state: state as i32,
        leader: vote.leader as i64,
        zxid: vote.zxid,
        election_epoch: round,
        peer_epoch: vote.peer_epoch,
        version: NOTIFICATION_VERSION,
        config: Some(config.to_vec()),
    }
}

/// What the election decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub leader: Sid,
    pub round: i64,
}

/// One election in progress.
#[derive(Debug)]
pub struct Election {
    me: Sid,
    voters: super::Voters,
    /// The voters of a logged reconfig not known to be committed: a quorum must also be a
    /// quorum of them (ZooKeeper's last seen quorum verifier in `termPredicate`).
    next_voters: Option<super::Voters>,
    pub round: i64,
    pub vote: Vote,
    initial: Vote,
    /// Votes of this round from LOOKING peers (and ourselves).
    received: BTreeMap<Sid, Vote>,
    /// Votes of peers that already follow or lead: (vote, round, state).
    settled: BTreeMap<Sid, (Vote, i64, PeerState)>,
    /// Ticks left before deciding, once a quorum agrees.
    finalize_in: Option<u32>,
    finalize_ticks: u32,
    /// Ticks until notifications are sent again (doubling on silence).
    resend_in: u32,
    resend_every: u32,
}

impl Election {
    /// Starts a new round voting for ourselves.
    pub fn start(
        me: Sid,
        voters: super::Voters,
        round: i64,
        initial: Vote,
        finalize_ticks: u32,
    ) -> Self {
        let mut received = BTreeMap::new();
        if voters.contains(&me) {
            received.insert(me, initial);
        }
        Election {
            me,
            voters,
            next_voters: None,
            round,
            vote: initial,
            initial,
            received,
            settled: BTreeMap::new(),
            finalize_in: None,
            finalize_ticks,
            resend_in: 2,
            resend_every: 2,
        }
    }

    /// Counts the voters of a pending reconfig too.
    pub fn with_next(mut self, next_voters: Option<super::Voters>) -> Self {
        self.next_voters = next_voters;
        if self.is_voter(&self.me) {
            self.received.insert(self.me, self.vote);
        }
        self
    }

    /// `totalOrderPredicate`'s rule for hierarchical quorums: a server of weight 0 is never
    /// elected.
    fn electable(&self, s: Sid) -> bool {
        self.voters.groups.as_ref().is_none_or(|g| g.weight(s) > 0)
    }

    fn is_voter(&self, s: &Sid) -> bool {
        self.voters.contains(s) || self.next_voters.as_ref().is_some_and(|n| n.contains(s))
    }

    fn is_quorum(&self, ids: impl Iterator<Item = Sid>) -> bool {
        let ids: BTreeSet<Sid> = ids.collect();
        super::majority(&self.voters, &ids)
            && self
                .next_voters
                .as_ref()
                .is_none_or(|n| super::majority(n, &ids))
    }

    fn agreeing(&self, vote: &Vote) -> bool {
        self.is_quorum(
            self.received
                .iter()
                .filter(|(_, v)| *v == vote)
                .map(|(s, _)| *s),
        )
    }

    /// A notification from `from`. Returns whether our vote changed (so it must be sent again),
    /// and a decision if one was reached at once.
    pub fn receive(&mut self, from: Sid, n: &Notification) -> (bool, Option<Decision>) {
        let Some(state) = PeerState::from_i32(n.state) else {
            return (false, None);
        };
        let theirs = Vote {
            leader: n.leader as Sid,
            zxid: n.zxid,
            peer_epoch: n.peer_epoch,
        };
        if !self.is_voter(&from) {
            return (false, None);
        }
        match state {
            PeerState::Looking => {
                let mut changed = false;
                if n.election_epoch > self.round {
                    self.round = n.election_epoch;
                    self.received.clear();
                    self.vote = if self.electable(theirs.leader) && theirs.beats(&self.initial) {
                        theirs
                    } else {
                        self.initial
                    };
                    if self.is_voter(&self.me) {
                        self.received.insert(self.me, self.vote);
                    }
                    changed = true;
                } else if n.election_epoch < self.round {
                    return (false, None);
                } else if self.electable(theirs.leader) && theirs.beats(&self.vote) {
                    self.vote = theirs;
                    if self.is_voter(&self.me) {
                        self.received.insert(self.me, self.vote);
                    }
                    changed = true;
                }
                self.received.insert(from, theirs);
                if changed {
                    self.finalize_in = None;
                }
                if self.agreeing(&self.vote.clone()) && self.finalize_in.is_none() {
                    self.finalize_in = Some(self.finalize_ticks);
                }
                (changed, None)
            }
            PeerState::Following | PeerState::Leading | PeerState::Observing => {
                self.settled.insert(from, (theirs, n.election_epoch, state));
                if n.election_epoch == self.round {
                    self.received.insert(from, theirs);
                    if self.agreeing(&theirs) && self.leader_checks(&theirs) {
                        return (false, Some(self.decide(theirs, n.election_epoch)));
                    }
                }
                // Settled peers of any round agreeing on a leader that says it leads. As in
                // ZooKeeper (`Vote.equals` out of election), they agree when they name the same
                // leader and epoch: each decided by a vote of its own election.
                let agreeing = self
                    .settled
                    .iter()
                    .filter(|(_, (v, _, _))| {
                        v.leader == theirs.leader && v.peer_epoch == theirs.peer_epoch
                    })
                    .map(|(s, _)| *s);
                if self.is_quorum(agreeing) && self.leader_checks(&theirs) {
                    return (false, Some(self.decide(theirs, n.election_epoch)));
                }
                (false, None)
            }
        }
    }

    /// `checkLeader`: a leader other than us must have said it leads.
    fn leader_checks(&self, vote: &Vote) -> bool {
        vote.leader == self.me
            || self
                .settled
                .get(&vote.leader)
                .is_some_and(|(_, _, s)| *s == PeerState::Leading)
    }

    fn decide(&mut self, vote: Vote, round: i64) -> Decision {
        self.vote = vote;
        self.round = self.round.max(round);
        Decision {
            leader: vote.leader,
            round: self.round,
        }
    }

    /// One tick: (resend notifications?, decision after the finalize wait).
    pub fn tick(&mut self) -> (bool, Option<Decision>) {
        if let Some(left) = self.finalize_in {
            if left == 0 {
                self.finalize_in = None;
                if self.agreeing(&self.vote.clone()) {
                    let v = self.vote;
                    if v.leader == self.me || self.is_voter(&v.leader) {
                        return (false, Some(self.decide(v, self.round)));
                    }
                }
            } else {
                self.finalize_in = Some(left - 1);
            }
        }
        self.resend_in = self.resend_in.saturating_sub(1);
        if self.resend_in == 0 {
            self.resend_every = (self.resend_every * 2).min(64);
            self.resend_in = self.resend_every;
            return (true, None);
        }
        (false, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_order_by_epoch_then_zxid_then_id() {
        let v = |leader, zxid, peer_epoch| Vote {
            leader,
            zxid,
            peer_epoch,
        };
        assert!(v(1, 0, 2).beats(&v(3, 100, 1)));
        assert!(v(1, 5, 1).beats(&v(3, 4, 1)));
        assert!(v(3, 5, 1).beats(&v(2, 5, 1)));
        assert!(!v(2, 5, 1).beats(&v(2, 5, 1)));
    }

    #[test]
    fn a_looking_member_joins_a_leader_its_followers_name_with_the_same_epoch() {
        // Member 2 looks while 3 leads epoch 2 and 1 follows it; 1 decided by a vote of an
        // earlier election (other zxid), and both answer from other rounds than 2's.
        let voters: super::super::Voters = BTreeSet::from([1, 2, 3]).into();
        let mine = Vote {
            leader: 2,
            zxid: 0x2_0000_0008,
            peer_epoch: 2,
        };
        let settled = |state: PeerState, zxid: i64, epoch: i64| Notification {
            state: state as i32,
            leader: 3,
            zxid,
            election_epoch: 5,
            peer_epoch: epoch,
            version: NOTIFICATION_VERSION,
            config: None,
        };
        let mut e = Election::start(2, voters.clone(), 1, mine, 2);
        assert_eq!(
            e.receive(1, &settled(PeerState::Following, 0, 2)),
            (false, None)
        );
        let (_, decided) = e.receive(3, &settled(PeerState::Leading, 0x1_0000_0083, 2));
        assert_eq!(decided.map(|d| d.leader), Some(3));
        // Not when they name different epochs: one of them is not with that leader now.
        let mut e = Election::start(2, voters, 1, mine, 2);
        e.receive(1, &settled(PeerState::Following, 0, 1));
        let (_, decided) = e.receive(3, &settled(PeerState::Leading, 0x1_0000_0083, 2));
        assert_eq!(decided, None);
    }
}
