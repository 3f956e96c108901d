//! The simulated ensemble shared by the seeded simulator and the scenario tests: members of
//! the pure ZAB state machine, a model of their disks (log, epochs, applied history), FIFO
//! channels per pair, and faults (crashes, partitions, lost unsynced writes).
#![allow(dead_code)]

use jute::txn::{CreateSessionTxn, TxnHeader};
use jute::{Decode, Encode, TxnEntry, TxnRecord};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use zkrs::zab::{HardState, Msg, Ready, Role, Sid, Zab, ZabConfig};

pub struct Node {
    pub zab: Option<Zab>,
    /// Durable state.
    pub hs: HardState,
    pub log: Vec<TxnEntry>,
    /// Applied history (what the core would have applied), and its durable prefix length.
    pub applied: Vec<TxnEntry>,
    /// Readies taken but not yet persisted ("fsync" pending): lost on a crash.
    pub pending: VecDeque<Ready>,
    /// Committed txns that came with the node they change as it was before (`Txn::prior`).
    pub primed: usize,
}

pub struct Sim {
    rng: SmallRng,
    cfgs: Vec<ZabConfig>,
    pub nodes: BTreeMap<Sid, Node>,
    /// Per-channel FIFO queues (from, to).
    channels: BTreeMap<(Sid, Sid), VecDeque<Msg>>,
    pub cut: BTreeSet<(Sid, Sid)>,
    pub leaders: BTreeMap<i64, Sid>,
    pub committed: BTreeMap<i64, TxnEntry>,
    /// Syncs that rewrote a member's disk, for the scenario traces.
    pub events: Vec<String>,
    /// Sessions the leader's shell holds (it answers REVALIDATE from these).
    pub sessions: BTreeSet<i64>,
    /// Quorum packets delivered, by type (the scenario traces count them).
    pub delivered: BTreeMap<i32, usize>,
    next_payload: i32,
    faults: [u32; 4],
}

/// The prior node the simulated leader sends with proposal `payload`.
pub fn prior_of(payload: i32) -> Vec<u8> {
    format!("prior of {payload}").into_bytes()
}

fn encode_history(h: &[TxnEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    (h.len() as i32).encode(&mut out);
    for e in h {
        jute::codec::write_buffer(&mut out, Some(&e.to_bytes()));
    }
    out
}

fn decode_history(b: &[u8]) -> Vec<TxnEntry> {
    let mut r = jute::Reader::new(b);
    let n = i32::decode(&mut r).unwrap();
    (0..n)
        .map(|_| TxnEntry::from_bytes(&r.read_buffer().unwrap().unwrap()).unwrap())
        .collect()
}

impl Sim {
    pub fn new(seed: u64, voters: usize, observers: usize) -> Self {
        Self::build(seed, voters, observers, false)
    }

    /// Observers register with the voting members in turn, and followers serve them
    /// (`observerMasterPort`).
    pub fn with_observer_masters(seed: u64, voters: usize, observers: usize) -> Self {
        Self::build(seed, voters, observers, true)
    }

    fn build(seed: u64, voters: usize, observers: usize, observer_master: bool) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let all: Vec<Sid> = (1..=(voters + observers) as Sid).collect();
        let voter_set: BTreeSet<Sid> = all[..voters].iter().copied().collect();
        let observer_set: BTreeSet<Sid> = all[voters..].iter().copied().collect();
        let mut cfgs = Vec::new();
        let mut nodes = BTreeMap::new();
        for &me in &all {
            let cfg = ZabConfig {
                me,
                voters: voter_set.clone().into(),
                observers: observer_set.clone(),
                init_limit: 10,
                sync_limit: 5,
                finalize_ticks: 1,
                ping_ticks: 1,
                config_text: b"version=0".to_vec(),
                version: 0,
                next: None,
                max_log: 20,
                reconfig_enabled: true,
                observer_master,
            };
            cfgs.push(cfg.clone());
            nodes.insert(
                me,
                Node {
                    zab: Some(Zab::new(cfg, HardState::default(), vec![], 0)),
                    hs: HardState::default(),
                    log: vec![],
                    applied: vec![],
                    pending: VecDeque::new(),
                    primed: 0,
                },
            );
        }
        // Swarm testing: each seed weighs its faults differently.
        let faults = [
            rng.gen_range(0..6),
            rng.gen_range(2..10),
            rng.gen_range(0..6),
            rng.gen_range(2..20),
        ];
        let mut sim = Sim {
            rng,
            cfgs,
            nodes,
            channels: BTreeMap::new(),
            cut: BTreeSet::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            events: Vec::new(),
            sessions: BTreeSet::new(),
            delivered: BTreeMap::new(),
            next_payload: 1,
            faults,
        };
        for id in all {
            sim.take(id);
        }
        sim
    }

    pub fn take(&mut self, id: Sid) {
        let node = self.nodes.get_mut(&id).unwrap();
        if let Some(z) = node.zab.as_mut() {
            let mut r = z.take_ready();
            let gone = std::mem::take(&mut r.disconnect);
            if !r.is_empty() {
                node.pending.push_back(r);
            }
            for peer in gone {
                self.drop_connection(id, peer);
            }
        }
    }

    /// `id` closed its connection to `peer`: queued messages both ways are gone and `peer`
    /// notices.
    pub fn drop_connection(&mut self, id: Sid, peer: Sid) {
        self.channels.remove(&(id, peer));
        self.channels.remove(&(peer, id));
        self.purge(id, peer);
        self.purge(peer, id);
        if let Some(z) = self.nodes.get_mut(&peer).and_then(|n| n.zab.as_mut()) {
            z.disconnected(id);
            self.take(peer);
        }
    }

    /// Persists the oldest pending Ready of `id`, then sends and applies it.
    pub fn fsync(&mut self, id: Sid) {
        let node = self.nodes.get_mut(&id).unwrap();
        let Some(r) = node.pending.pop_front() else {
            return;
        };
        assert!(r.fatal.is_none(), "{id} cannot go on: {:?}", r.fatal);
        if let Some(hs) = r.hard_state {
            node.hs = hs;
        }
        if let Some((z, _)) = &r.install_snapshot {
            self.events
                .push(format!("{id}: installs a snapshot at {z:#x}"));
        }
        if let Some(z) = r.truncate {
            self.events
                .push(format!("{id}: truncates its log after {z:#x}"));
        }
        let node = self.nodes.get_mut(&id).unwrap();
        if let Some((_, bytes)) = &r.install_snapshot {
            node.applied = decode_history(bytes);
            node.log.clear();
        }
        if let Some(z) = r.truncate {
            node.log.retain(|e| e.header.zxid <= z);
        }
        for e in &r.append {
            // What is logged is the txn alone, whichever packet brought it.
            assert_eq!(
                e.bytes(),
                &e.to_bytes()[..],
                "logged bytes of {:#x}",
                e.header.zxid
            );
        }
        node.log.extend(r.append.iter().map(|e| (**e).clone()));
        let last = node.log.last().map(|e| e.header.zxid);
        for e in &r.committed {
            if let Some(prior) = e.prior() {
                assert_eq!(
                    prior,
                    prior_of(e.header.cxid),
                    "prior of {:#x}",
                    e.header.zxid
                );
                node.primed += 1;
            }
            node.applied.push((**e).clone());
        }
        let zab = node.zab.as_mut().unwrap();
        for (learner, session, _) in &r.revalidate {
            let valid = self.sessions.contains(session);
            self.events.push(format!(
                "{id}: member {learner} asks about session {session:#x}: {}",
                if valid { "valid" } else { "unknown" }
            ));
            zab.answer_revalidate(*learner, *session, valid);
        }
        for (session, valid) in &r.revalidated {
            self.events.push(format!(
                "{id}: the leader says session {session:#x} is {}",
                if *valid { "valid" } else { "invalid" }
            ));
        }
        for sid in &r.snapshot_for {
            let bytes = encode_history(&node.applied);
            let z = node.applied.last().map_or(0, |e| e.header.zxid);
            zab.snapshot_ready(*sid, z, bytes);
        }
        if let Some(z) = last {
            zab.persisted(z);
        }
        if zab.is_leader() {
            for e in &r.committed {
                self.committed.insert(e.header.zxid, (**e).clone());
            }
        }
        if zab.is_leader() && zab.established {
            let epoch = zab.hs.current_epoch;
            let prev = self.leaders.insert(epoch, id);
            assert!(
                prev.is_none() || prev == Some(id),
                "two leaders in epoch {epoch}: {prev:?} and {id}"
            );
        }
        for (to, msg) in r.messages {
            if !self.cut.contains(&(id, to)) {
                self.channels.entry((id, to)).or_default().push_back(msg);
            }
        }
        self.take(id);
    }

    /// A broken connection discards what was queued on it.
    pub fn purge(&mut self, from: Sid, to: Sid) {
        if let Some(n) = self.nodes.get_mut(&from) {
            for r in n.pending.iter_mut() {
                r.messages.retain(|(t, _)| *t != to);
            }
        }
    }

    pub fn crash(&mut self, id: Sid) {
        let others: Vec<Sid> = self.nodes.keys().copied().filter(|o| *o != id).collect();
        for o in others {
            self.purge(o, id);
        }
        let node = self.nodes.get_mut(&id).unwrap();
        node.zab = None;
        node.pending.clear();
        self.channels.retain(|(f, t), _| *f != id && *t != id);
        for (&other, n) in self.nodes.iter_mut() {
            if let Some(z) = n.zab.as_mut() {
                if other != id {
                    z.disconnected(id);
                }
            }
        }
        let ids: Vec<Sid> = self.nodes.keys().copied().collect();
        for o in ids {
            self.take(o);
        }
    }

    pub fn restart(&mut self, id: Sid) {
        let cfg = self.cfgs[(id - 1) as usize].clone();
        let node = self.nodes.get_mut(&id).unwrap();
        let applied_z = node.applied.last().map_or(0, |e| e.header.zxid);
        let tail: Vec<TxnEntry> = node
            .log
            .iter()
            .filter(|e| e.header.zxid > applied_z)
            .cloned()
            .collect();
        node.zab = Some(Zab::new(cfg, node.hs, tail, applied_z));
        self.take(id);
    }

    pub fn partition(&mut self, a: Sid, b: Sid) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
        self.channels.remove(&(a, b));
        self.channels.remove(&(b, a));
        self.purge(a, b);
        self.purge(b, a);
        for (x, y) in [(a, b), (b, a)] {
            if let Some(z) = self.nodes.get_mut(&x).unwrap().zab.as_mut() {
                z.disconnected(y);
            }
            self.take(x);
        }
    }

    pub fn deliver(&mut self, key: (Sid, Sid)) {
        let Some(msg) = self.channels.get_mut(&key).and_then(VecDeque::pop_front) else {
            return;
        };
        self.hand(key, msg);
        self.take(key.1);
    }

    /// Takes what members sent to `to`, a peer outside the simulation (a ZooKeeper
    /// learner modelled by a test), from `from`.
    pub fn inbox(&mut self, from: Sid, to: Sid) -> Vec<Msg> {
        self.channels
            .get_mut(&(from, to))
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// `msg` from a peer outside the simulation stepped into member `to`.
    pub fn send_from_outside(&mut self, from: Sid, to: Sid, msg: Msg) {
        self.hand((from, to), msg);
        self.take(to);
    }

    /// `msg` from `key.0` stepped into `key.1` (counted if a quorum packet); its Ready not
    /// taken yet.
    fn hand(&mut self, (from, to): (Sid, Sid), msg: Msg) {
        if let Msg::Packet(p) = &msg {
            *self.delivered.entry(p.type_).or_default() += 1;
        }
        if let Some(z) = self.nodes.get_mut(&to).unwrap().zab.as_mut() {
            z.step(from, msg);
        }
    }

    /// As `drain`, in the server core's rhythm: a member persists everything it has pending
    /// (one fsync), then takes every message waiting for it in one turn, and so on.
    pub fn drain_batched(&mut self) {
        for _ in 0..10_000 {
            let ids: Vec<Sid> = self.nodes.keys().copied().collect();
            let mut progressed = false;
            for id in &ids {
                while !self.nodes[id].pending.is_empty() {
                    self.fsync(*id);
                    progressed = true;
                }
            }
            for to in &ids {
                let keys: Vec<(Sid, Sid)> = self
                    .channels
                    .iter()
                    .filter(|(k, q)| k.1 == *to && !q.is_empty())
                    .map(|(k, _)| *k)
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                progressed = true;
                for key in keys {
                    while let Some(msg) = self.channels.get_mut(&key).and_then(VecDeque::pop_front)
                    {
                        self.hand(key, msg);
                    }
                }
                self.take(*to);
            }
            self.check_prefixes();
            if !progressed {
                return;
            }
        }
    }

    pub fn propose(&mut self) {
        let payload = self.next_payload;
        for (id, node) in self.nodes.iter_mut() {
            let Some(z) = node.zab.as_mut() else { continue };
            if let Some(zxid) = z.next_zxid() {
                let entry = TxnEntry {
                    header: TxnHeader {
                        client_id: *id as i64,
                        cxid: payload,
                        zxid,
                        time: 0,
                        type_: -10,
                    },
                    record: TxnRecord::CreateSession(CreateSessionTxn { time_out: payload }),
                    digest: None,
                };
                // Every other one with a prior node, as a leader's setData and delete have.
                let prior = (payload % 2 == 0).then(|| prior_of(payload));
                z.propose(std::sync::Arc::new(
                    zkrs::zab::Txn::new(entry).with_prior(prior),
                ));
                self.next_payload += 1;
                let id = *id;
                self.take(id);
                return;
            }
        }
    }

    /// The leader proposes the txn `record(zxid)`; its zxid, if there is an established leader.
    pub fn propose_record(&mut self, record: impl FnOnce(i64) -> TxnRecord) -> Option<i64> {
        let (&id, z) = self
            .nodes
            .iter_mut()
            .find_map(|(id, n)| Some((id, n.zab.as_mut()?)).filter(|(_, z)| z.is_leader()))?;
        let zxid = z.next_zxid()?;
        let entry = TxnEntry {
            header: TxnHeader {
                client_id: id as i64,
                cxid: 0,
                zxid,
                time: 0,
                type_: 16,
            },
            record: record(zxid),
            digest: None,
        };
        z.propose(std::sync::Arc::new(zkrs::zab::Txn::new(entry)));
        self.take(id);
        Some(zxid)
    }

    pub fn step(&mut self, faults: bool) {
        let ids: Vec<Sid> = self.nodes.keys().copied().collect();
        let roll = self.rng.gen_range(0..1000u32);
        let [crash, restart, part, heal] = self.faults;
        if faults && roll < crash {
            let id = ids[self.rng.gen_range(0..ids.len())];
            if self.nodes[&id].zab.is_some() {
                self.crash(id);
            }
        } else if (10..10 + restart).contains(&roll) {
            let id = ids[self.rng.gen_range(0..ids.len())];
            if self.nodes[&id].zab.is_none() {
                self.restart(id);
            }
        } else if faults && (35..35 + part).contains(&roll) {
            let a = ids[self.rng.gen_range(0..ids.len())];
            let b = ids[self.rng.gen_range(0..ids.len())];
            if a != b {
                self.partition(a, b);
            }
        } else if (60..60 + heal).contains(&roll) {
            if let Some(&c) = self.cut.iter().next() {
                self.cut.remove(&c);
                self.cut.remove(&(c.1, c.0));
            }
        } else if (140..143).contains(&roll) {
            // Time passes slowly next to messages, as a tick (1 s) next to a round trip.
            for id in ids {
                if let Some(z) = self.nodes.get_mut(&id).unwrap().zab.as_mut() {
                    z.tick();
                }
                self.take(id);
            }
        } else if (150..250).contains(&roll) {
            self.propose();
        } else if roll < 550 {
            let id = ids[self.rng.gen_range(0..ids.len())];
            self.fsync(id);
        } else {
            let keys: Vec<(Sid, Sid)> = self
                .channels
                .iter()
                .filter(|(_, q)| !q.is_empty())
                .map(|(k, _)| *k)
                .collect();
            if !keys.is_empty() {
                let k = keys[self.rng.gen_range(0..keys.len())];
                self.deliver(k);
            }
        }
        self.check_prefixes();
    }

    pub fn check_prefixes(&self) {
        let hist: Vec<(&Sid, &Vec<TxnEntry>)> =
            self.nodes.iter().map(|(i, n)| (i, &n.applied)).collect();
        for (a, ha) in &hist {
            for (b, hb) in &hist {
                let n = ha.len().min(hb.len());
                for i in 0..n {
                    assert_eq!(ha[i], hb[i], "members {a} and {b} disagree at position {i}");
                }
            }
        }
    }

    /// Delivers and persists everything outstanding, without faults.
    pub fn drain(&mut self) {
        for _ in 0..10_000 {
            let ids: Vec<Sid> = self.nodes.keys().copied().collect();
            let mut progressed = false;
            for id in &ids {
                if !self.nodes[id].pending.is_empty() {
                    self.fsync(*id);
                    progressed = true;
                }
            }
            let keys: Vec<(Sid, Sid)> = self
                .channels
                .iter()
                .filter(|(_, q)| !q.is_empty())
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                self.deliver(k);
                progressed = true;
            }
            self.check_prefixes();
            if !progressed {
                return;
            }
        }
    }

    /// Heals everything and runs without faults until every member serves at the same zxid.
    pub fn stabilize(&mut self) -> bool {
        self.cut.clear();
        let ids: Vec<Sid> = self.nodes.keys().copied().collect();
        for id in &ids {
            if self.nodes[id].zab.is_none() {
                self.restart(*id);
            }
        }
        for _ in 0..500 {
            self.drain();
            let all_up = self.nodes.values().all(|n| {
                n.zab
                    .as_ref()
                    .is_some_and(|z| z.established && z.role != Role::Looking)
            });
            let same = self
                .nodes
                .values()
                .map(|n| n.applied.len())
                .collect::<BTreeSet<_>>()
                .len()
                == 1;
            let leader_done = self.nodes.values().all(|n| {
                n.zab
                    .as_ref()
                    .is_none_or(|z| !z.is_leader() || z.last_committed == z.last_logged)
            });
            if all_up && same && leader_done {
                return true;
            }
            for id in &ids {
                if let Some(z) = self.nodes.get_mut(id).unwrap().zab.as_mut() {
                    z.tick();
                }
                self.take(*id);
            }
        }
        for (id, n) in &self.nodes {
            match &n.zab {
                Some(z) => eprintln!(
                    "member {id}: {:?} established={} logged={:#x} committed={:#x} {:?} pending={} applied={}",
                    z.role, z.established, z.last_logged, z.last_committed, z.hs, n.pending.len(), n.applied.len()
                ),
                None => eprintln!("member {id}: down"),
            }
        }
        false
    }
}
