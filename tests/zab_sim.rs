#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A seeded simulator running whole ensembles of the pure ZAB state machine, with delayed
//! messages, broken connections, partitions, crashes and lost unsynced writes. Each seed
//! picks its own fault mix (swarm testing). It checks: at most one established leader per
//! epoch; every member's applied history is a prefix of every other's; every txn a leader
//! committed is applied everywhere once the ensemble is healed and quiet. A failure prints
//! its seed: `ZAB_SEED=<seed> cargo test --test zab_sim one_seed`.

mod sim;
use sim::Sim;
use zkrs::zab::Sid;

/// Runs one seed; returns (txns committed, epochs with a leader).
fn run(seed: u64, voters: usize, observers: usize, steps: usize) -> (usize, usize) {
    run_sim(Sim::new(seed, voters, observers), seed, steps)
}

fn run_sim(mut sim: Sim, seed: u64, steps: usize) -> (usize, usize) {
    for _ in 0..steps {
        sim.step(true);
    }
    assert!(
        sim.stabilize(),
        "seed {seed}: the ensemble did not stabilize"
    );
    // After healing, the ensemble must still take writes.
    for _ in 0..5 {
        sim.propose();
        sim.drain();
    }
    assert!(sim.stabilize(), "seed {seed}: no progress after healing");
    let applied: Vec<i64> = sim
        .nodes
        .values()
        .next()
        .unwrap()
        .applied
        .iter()
        .map(|e| e.header.zxid)
        .collect();
    for z in sim.committed.keys() {
        assert!(applied.contains(z), "seed {seed}: committed {z:#x} lost");
    }
    for (id, n) in &sim.nodes {
        assert_eq!(n.applied.len(), applied.len(), "seed {seed}: member {id}");
    }
    (sim.committed.len(), sim.leaders.len())
}

fn run_seeds(seeds: impl Iterator<Item = u64>, voters: usize, observers: usize) {
    run_seeds_of(seeds, |seed| Sim::new(seed, voters, observers))
}

fn run_seeds_of(
    seeds: impl Iterator<Item = u64>,
    sim: impl Fn(u64) -> Sim + std::panic::RefUnwindSafe,
) {
    let (mut txns, mut epochs, mut n) = (0, 0, 0);
    for seed in seeds {
        n += 1;
        let r = std::panic::catch_unwind(|| run_sim(sim(seed), seed, 3000));
        match r {
            Ok((t, e)) => {
                txns += t;
                epochs += e;
            }
            Err(_) => panic!("zab simulation failed: ZAB_SEED={seed}"),
        }
    }
    eprintln!("{txns} txns committed over {epochs} epochs");
    assert!(
        txns >= 10 * n && epochs > n,
        "the faults left too little to check: {txns} txns, {epochs} epochs"
    );
}

#[test]
fn fixed_seeds_three_voters() {
    run_seeds(0..400, 3, 0);
}

#[test]
fn fixed_seeds_five_voters_and_an_observer() {
    run_seeds(100..200, 5, 1);
}

#[test]
fn fixed_seeds_observers_served_by_followers() {
    run_seeds_of(300..400, |seed| Sim::with_observer_masters(seed, 3, 2));
}

#[test]
fn fresh_seeds() {
    let base: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    run_seeds((0..10).map(|i| base.wrapping_mul(31).wrapping_add(i)), 3, 0);
}

#[test]
fn one_seed() {
    if let Ok(seed) = std::env::var("ZAB_SEED") {
        let (txns, epochs) = run(seed.parse().unwrap(), 3, 0, 3000);
        eprintln!("{txns} txns committed over {epochs} epochs");
    }
}

#[test]
fn a_single_member_leads_alone() {
    let mut sim = Sim::new(7, 1, 0);
    assert!(sim.stabilize());
    for _ in 0..50 {
        sim.propose();
        sim.fsync(1);
    }
    assert!(sim.stabilize());
    assert!(sim.committed.len() >= 50);
}

#[test]
fn proposals_bring_learners_the_prior_node_and_observers_none() {
    let mut sim = Sim::new(11, 3, 1);
    assert!(sim.stabilize());
    for _ in 0..20 {
        sim.propose();
        sim.drain();
    }
    assert!(sim.stabilize());
    assert!(sim.committed.len() >= 20);
    assert!(
        sim.delivered
            .get(&zkrs::zab::packet::PROPOSAL_WITH_PRIOR)
            .is_some_and(|&n| n >= 20),
        "{:?}",
        sim.delivered
    );
    // Half the proposals had a prior node: every voter applied those with it (the checks in
    // `take` hold it to the leader's bytes, and the log to the txn alone); the observer,
    // told by INFORM, never has one.
    for (id, n) in &sim.nodes {
        if *id == 4 {
            assert_eq!(n.primed, 0, "observer");
        } else {
            assert!(n.primed >= 10, "member {id}: {} primed", n.primed);
        }
    }
}

#[test]
fn a_reconfig_commits_only_with_a_quorum_of_both_memberships() {
    use zkrs::zab::Role;
    let mut sim = Sim::new(5, 5, 0);
    assert!(sim.stabilize());
    // 4 and 5 down; the leader is one of 1, 2, 3.
    sim.crash(4);
    sim.crash(5);
    for _ in 0..200 {
        sim.drain();
        let serving = sim
            .nodes
            .values()
            .filter_map(|n| n.zab.as_ref())
            .any(|z| z.is_leader() && z.established);
        if serving {
            break;
        }
        for id in 1..=3 {
            if let Some(z) = sim.nodes.get_mut(&id).unwrap().zab.as_mut() {
                z.tick();
            }
            sim.take(id);
        }
    }
    // {1, 4, 5}: 1, 2 and 3 are a quorum of the old membership, not of the new one.
    let zxid = sim
        .propose_record(|zxid| {
            jute::TxnRecord::Reconfig(jute::txn::SetDataTxn {
                path: "/zookeeper/config".into(),
                data: Some(
                    format!(
                        "server.1=h:1001:2001:participant\nserver.4=h:1004:2004:participant\n\
                         server.5=h:1005:2005:participant\nversion={zxid:x}"
                    )
                    .into_bytes(),
                ),
                version: -1,
            })
        })
        .expect("an established leader");
    sim.drain();
    for id in 1..=3 {
        let z = sim.nodes[&id].zab.as_ref().unwrap();
        assert!(
            z.last_committed < zxid,
            "member {id} committed without the new quorum"
        );
        assert!(z.membership().1, "member {id}: the reconfig is pending");
    }
    // A later write waits behind it.
    sim.propose();
    sim.drain();
    assert!(!sim.committed.contains_key(&zxid));
    // 4 comes back, syncs and acknowledges: {1, 4} is a quorum of {1, 4, 5}.
    sim.restart(4);
    for _ in 0..500 {
        sim.drain();
        if sim.committed.contains_key(&zxid) {
            break;
        }
        for id in 1..=4 {
            if let Some(z) = sim.nodes.get_mut(&id).unwrap().zab.as_mut() {
                z.tick();
            }
            sim.take(id);
        }
    }
    assert!(
        sim.committed.contains_key(&zxid),
        "the reconfig never committed"
    );
    // Every member that applied it runs the new membership; 2 and 3 no longer vote, and a
    // leader among them steps down: the leader that serves is 1 or 4.
    for _ in 0..500 {
        sim.drain();
        let leader = sim.nodes.iter().find(|(_, n)| {
            n.zab
                .as_ref()
                .is_some_and(|z| z.is_leader() && z.established)
        });
        if leader.is_some_and(|(id, _)| [1, 4].contains(id)) {
            break;
        }
        for id in 1..=4 {
            if let Some(z) = sim.nodes.get_mut(&id).unwrap().zab.as_mut() {
                z.tick();
            }
            sim.take(id);
        }
    }
    for id in 1..=4 {
        let z = sim.nodes[&id].zab.as_ref().unwrap();
        if z.last_committed >= zxid {
            assert_eq!(z.membership(), (zxid, false), "member {id}");
            assert!(
                *z.cfg.voters == std::collections::BTreeSet::from([1, 4, 5]),
                "member {id}: {:?}",
                z.cfg.voters
            );
        }
        if z.is_leader() && z.established {
            assert!(
                [1, 4].contains(&id),
                "member {id} leads outside the membership"
            );
            assert_ne!(z.role, Role::Looking);
        }
    }
    // The new membership takes writes.
    let before = sim.committed.len();
    sim.propose();
    sim.drain();
    for _ in 0..50 {
        if sim.committed.len() > before {
            break;
        }
        sim.propose();
        sim.drain();
    }
    assert!(
        sim.committed.len() > before,
        "no write committed under the new membership"
    );
}

#[test]
fn a_follower_serves_an_observer_its_commits_and_a_late_one_its_history() {
    use zkrs::zab::Role;
    // Member 4 observes, registering with the voting members in turn (observerMasterPort).
    let mut sim = Sim::with_observer_masters(21, 3, 1);
    assert!(sim.stabilize());
    let leader = *sim.leaders.values().last().unwrap();
    // Until it registers with a follower: each member that is not one closes the
    // connection, and the observer tries the next.
    let mut master = None;
    for _ in 0..6 {
        match sim.nodes[&4].zab.as_ref().unwrap().role {
            Role::Observing(m) if m != leader => {
                master = Some(m);
                break;
            }
            _ => {
                sim.drop_connection(leader, 4);
                assert!(sim.stabilize());
            }
        }
    }
    let master = master.expect("the observer registered with a follower");
    let follower = sim.nodes[&master].zab.as_ref().unwrap();
    assert_eq!(follower.role, Role::Following(leader));
    assert_eq!(follower.observing_learners(), vec![4]);
    assert!(sim.nodes[&leader]
        .zab
        .as_ref()
        .unwrap()
        .observing_learners()
        .is_empty());
    for _ in 0..30 {
        sim.propose();
        sim.drain();
    }
    assert!(sim.stabilize());
    assert!(sim.committed.len() >= 30);
    assert_eq!(
        sim.nodes[&4].applied.len(),
        sim.nodes[&leader].applied.len()
    );
    // Past the follower's window of committed txns (20 here), a restarted observer takes
    // its snapshot; a crash of the follower sends it to another member.
    sim.crash(4);
    for _ in 0..40 {
        sim.propose();
        sim.drain();
    }
    sim.crash(master);
    assert!(sim.stabilize());
    for _ in 0..5 {
        sim.propose();
        sim.drain();
    }
    assert!(sim.stabilize());
    let applied = |id: Sid| -> Vec<i64> {
        sim.nodes[&id]
            .applied
            .iter()
            .map(|e| e.header.zxid)
            .collect()
    };
    assert_eq!(applied(4), applied(leader));
    assert!(
        sim.events
            .iter()
            .any(|e| e.starts_with("4: installs a snapshot")),
        "{:?}",
        sim.events
    );
}
