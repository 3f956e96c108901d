#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Scenario tests of the ZAB state machine, readable as narrated traces with golden output
//! (in the style of etcd/raft's data-driven tests). Each file in `tests/zab_scenarios/` is a
//! list of blocks:
//!
//! ```text
//! command args
//! ----
//! expected output
//! ```
//!
//! Commands: `members V [O]`, `stabilize`, `propose N`, `burst N`, `tick N`, `crash ID`, `restart ID`,
//! `isolate ID`, `heal`, `status`, `session ID`, `revalidate MEMBER ID`. After each command the trace narrates every member whose
//! role changed. `ZAB_REWRITE=1 cargo test --test zab_scenarios` rewrites the expected output.

mod sim;
use sim::Sim;
use std::collections::BTreeMap;
use std::fmt::Write;
use zkrs::zab::Sid;

fn describe(sim: &Sim, id: Sid) -> String {
    match sim.nodes[&id].zab.as_ref() {
        None => "down".to_string(),
        Some(z) => {
            let serving = if z.established { "serving" } else { "syncing" };
            let role = format!("{:?}", z.role);
            if role == "Looking" {
                role
            } else {
                format!("{role} {serving}")
            }
        }
    }
}

fn leader(sim: &Sim) -> Option<&zkrs::zab::Zab> {
    sim.nodes
        .values()
        .filter_map(|n| n.zab.as_ref())
        .find(|z| z.is_leader())
}

fn roles(sim: &Sim) -> BTreeMap<Sid, String> {
    sim.nodes
        .keys()
        .map(|id| (*id, describe(sim, *id)))
        .collect()
}

fn run_command(sim: &mut Option<Sim>, line: &str) -> String {
    let mut out = String::new();
    let words: Vec<&str> = line.split_whitespace().collect();
    let arg = |i: usize| {
        words
            .get(i)
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = sim.as_ref().map(roles).unwrap_or_default();
    match words[0] {
        "members" => {
            let s = Sim::new(1, arg(1) as usize, arg(2) as usize);
            let ids: Vec<String> = s.nodes.keys().map(|i| i.to_string()).collect();
            let _ = writeln!(out, "members {}", ids.join(" "));
            *sim = Some(s);
        }
        _ => {
            let s = sim.as_mut().expect("members first");
            match words[0] {
                "stabilize" => {
                    let ok = s.stabilize();
                    let _ = writeln!(out, "{}", if ok { "stable" } else { "NOT STABLE" });
                }
                "propose" => {
                    for _ in 0..arg(1) {
                        s.propose();
                        s.drain();
                    }
                    match leader(s) {
                        Some(z) => {
                            let _ = writeln!(out, "committed through {:#x}", z.last_committed);
                        }
                        None => {
                            let _ = writeln!(out, "no leader: nothing proposed");
                        }
                    }
                }
                // `burst N`: N proposals at once, then the members run as the server's core
                // does (one fsync per turn, every waiting message per turn); counts the
                // quorum packets that took.
                "burst" => {
                    s.delivered.clear();
                    for _ in 0..arg(1) {
                        s.propose();
                    }
                    s.drain_batched();
                    if let Some(z) = leader(s) {
                        let _ = writeln!(out, "committed through {:#x}", z.last_committed);
                    }
                    let names = [
                        (zkrs::zab::packet::PROPOSAL, "PROPOSAL"),
                        (
                            zkrs::zab::packet::PROPOSAL_WITH_PRIOR,
                            "PROPOSAL_WITH_PRIOR",
                        ),
                        (zkrs::zab::packet::ACK, "ACK"),
                        (zkrs::zab::packet::COMMIT, "COMMIT"),
                        (zkrs::zab::packet::INFORM, "INFORM"),
                    ];
                    let counts: Vec<String> = names
                        .iter()
                        .map(|(t, name)| format!("{name} {}", s.delivered.get(t).unwrap_or(&0)))
                        .collect();
                    let _ = writeln!(out, "delivered: {}", counts.join(", "));
                }
                "tick" => {
                    for _ in 0..arg(1) {
                        let ids: Vec<Sid> = s.nodes.keys().copied().collect();
                        for id in ids {
                            if let Some(z) = s.nodes.get_mut(&id).unwrap().zab.as_mut() {
                                z.tick();
                            }
                            s.take(id);
                        }
                        s.drain();
                    }
                }
                "crash" => s.crash(arg(1)),
                "restart" => s.restart(arg(1)),
                "isolate" => {
                    let id = arg(1);
                    let others: Vec<Sid> = s.nodes.keys().copied().filter(|o| *o != id).collect();
                    for o in others {
                        s.partition(id, o);
                    }
                }
                "heal" => s.cut.clear(),
                // `session ID`: the leader's shell holds session ID.
                "session" => {
                    s.sessions.insert(arg(1) as i64);
                }
                // `revalidate MEMBER ID`: a client reconnects to MEMBER with session ID.
                "revalidate" => {
                    let id = arg(1);
                    let asked = s
                        .nodes
                        .get_mut(&id)
                        .and_then(|n| n.zab.as_mut())
                        .is_some_and(|z| z.revalidate(arg(2) as i64, 4000));
                    if asked {
                        s.take(id);
                        s.drain();
                    } else {
                        let _ = writeln!(out, "{id} cannot ask a leader");
                    }
                }
                "status" => {
                    for (id, n) in &s.nodes {
                        match &n.zab {
                            None => {
                                let _ = writeln!(out, "{id}: down, applied {}", n.applied.len());
                            }
                            Some(z) => {
                                let _ = writeln!(
                                    out,
                                    "{id}: {} epoch {}/{} logged {:#x} committed {:#x} applied {}",
                                    describe(s, *id),
                                    z.hs.accepted_epoch,
                                    z.hs.current_epoch,
                                    z.last_logged,
                                    z.last_committed,
                                    n.applied.len()
                                );
                            }
                        }
                    }
                }
                other => panic!("unknown command {other}"),
            }
        }
    }
    if let Some(s) = sim.as_mut() {
        let after = roles(s);
        let mut narration = String::new();
        for (id, now) in &after {
            if before.get(id).is_some_and(|b| b != now) {
                let _ = writeln!(narration, "  {id}: {} -> {now}", before[id]);
            }
        }
        for e in s.events.drain(..) {
            let _ = writeln!(narration, "  {e}");
        }
        out = narration + &out;
        s.check_prefixes();
    }
    out
}

#[test]
fn scenarios() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zab_scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let rewrite = std::env::var("ZAB_REWRITE").is_ok();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut sim = None;
        let mut rewritten = String::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if line.trim().is_empty() || line.starts_with('#') {
                rewritten.push_str(line);
                rewritten.push('\n');
                continue;
            }
            let command = line.trim();
            let mut expected = String::new();
            if lines.peek() == Some(&"----") {
                lines.next();
                while let Some(l) = lines.peek() {
                    if l.trim().is_empty() {
                        break;
                    }
                    expected.push_str(l);
                    expected.push('\n');
                    lines.next();
                }
            }
            let actual = run_command(&mut sim, command);
            if !rewrite {
                assert_eq!(actual, expected, "{}: `{command}`", file.display());
            }
            rewritten.push_str(command);
            rewritten.push_str("\n----\n");
            rewritten.push_str(&actual);
        }
        if rewrite {
            std::fs::write(&file, rewritten).unwrap();
        }
    }
}
