//! Four-letter words, with ZooKeeper's output shapes (`FourLetterCommands`, `*Command.java`).
//! Run inside the core, which owns the state they report.

use crate::core::Core;
use std::fmt::Write;

/// The version string: 3.9-compatible, naming zkrs.
pub fn version() -> String {
    format!("3.9.2-zkrs-{}, built on zkrs", env!("CARGO_PKG_VERSION"))
}

/// The text a four-letter word answers.
pub fn run(word: &str, core: &mut Core, peer: std::net::SocketAddr) -> String {
    let _ = peer;
    if !core.cfg.four_letter_enabled(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    match word {
        "ruok" => "imok".to_string(),
        "srvr" => server_stats(core, false),
        "stat" => server_stats(core, true),
        "mntr" => mntr(core),
        "conf" => conf(core),
        "envi" => envi(),
        "cons" => cons(core),
        "crst" => {
            for c in core.conns.values_mut() {
                c.received = 0;
                c.sent = 0;
            }
            "Connection stats reset.\n".to_string()
        }
        "srst" => {
            core.stats = Default::default();
            "Server stats reset.\n".to_string()
        }
        "isro" => "rw".to_string(),
        "dump" => dump(core),
        "wchs" => {
            let (paths, total) = core.watches.summary();
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                core.watches.connections(),
                paths,
                total
            )
        }
        "wchp" => {
            let mut out = String::new();
            for (p, conns) in core.watches.by_path() {
                let _ = writeln!(out, "{p}");
                for c in conns {
                    let sid = core.conns.get(&c).and_then(|c| c.session).unwrap_or(0);
                    let _ = writeln!(out, "\t0x{sid:x}");
                }
            }
            out
        }
        "wchc" => {
            let mut by_session: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
            for (p, conns) in core.watches.by_path() {
                for c in conns {
                    let sid = core.conns.get(&c).and_then(|c| c.session).unwrap_or(0);
                    by_session.entry(sid).or_default().push(p.clone());
                }
            }
            let mut out = String::new();
            for (sid, paths) in by_session {
                let _ = writeln!(out, "0x{sid:x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out
        }
        "dirs" => {
            let dir = core
                .cfg
                .data_log_dir
                .clone()
                .unwrap_or_else(|| core.cfg.data_dir.clone());
            let size = crate::store::Store::size_on_disk(&dir.join("zkrs-db"));
            format!("datadir_size: {size}\nlogdir_size: {size}\n")
        }
        "gtmk" => "0\n".to_string(),
        "stmk" => "0\n".to_string(),
        "hash" => format!("{:x}: 0\n", core.tree.last_zxid),
        _ => String::new(),
    }
}

fn latency(core: &Core) -> (u64, f64, u64) {
    let s = &core.stats;
    let avg = if s.latency_count == 0 {
        0.0
    } else {
        s.latency_total_us as f64 / s.latency_count as f64 / 1000.0
    };
    (s.latency_min_us / 1000, avg, s.latency_max_us / 1000)
}

fn server_stats(core: &Core, clients: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {}", version());
    if clients {
        let _ = writeln!(out, "Clients:");
        for c in core.conns.values() {
            let _ = writeln!(
                out,
                " /{}[1](queued=0,recved={},sent={})",
                c.peer, c.received, c.sent
            );
        }
        let _ = writeln!(out);
    }
    let (min, avg, max) = latency(core);
    let _ = writeln!(out, "Latency min/avg/max: {min}/{avg:.3}/{max}");
    let _ = writeln!(out, "Received: {}", core.stats.packets_received);
    let _ = writeln!(out, "Sent: {}", core.stats.packets_sent);
    let _ = writeln!(out, "Connections: {}", core.conns.len());
    let _ = writeln!(out, "Outstanding: {}", core.stats.outstanding);
    let _ = writeln!(out, "Zxid: 0x{:x}", core.tree.last_zxid);
    let _ = writeln!(out, "Mode: standalone");
    let _ = writeln!(out, "Node count: {}", core.tree.len());
    out
}

fn mntr(core: &Core) -> String {
    let (min, avg, max) = latency(core);
    let (_, watches) = core.watches.summary();
    let dir = core
        .cfg
        .data_log_dir
        .clone()
        .unwrap_or_else(|| core.cfg.data_dir.clone());
    let rows: Vec<(&str, String)> = vec![
        ("zk_version", version()),
        ("zk_server_state", "standalone".into()),
        (
            "zk_ephemerals_count",
            core.tree.ephemeral_count().to_string(),
        ),
        ("zk_num_alive_connections", core.conns.len().to_string()),
        ("zk_avg_latency", format!("{avg:.3}")),
        (
            "zk_outstanding_requests",
            core.stats.outstanding.to_string(),
        ),
        ("zk_znode_count", core.tree.len().to_string()),
        ("zk_global_sessions", core.sessions.len().to_string()),
        ("zk_packets_sent", core.stats.packets_sent.to_string()),
        (
            "zk_packets_received",
            core.stats.packets_received.to_string(),
        ),
        ("zk_watch_count", watches.to_string()),
        ("zk_min_latency", min.to_string()),
        ("zk_max_latency", max.to_string()),
        (
            "zk_approximate_data_size",
            core.tree.approximate_data_size().to_string(),
        ),
        ("zk_local_sessions", "0".into()),
        ("zk_uptime", core.started.elapsed().as_millis().to_string()),
        (
            "zk_data_dir_size",
            crate::store::Store::size_on_disk(&dir.join("zkrs-db")).to_string(),
        ),
        ("zk_fsync_count", core.stats.commits.to_string()),
    ];
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k}\t{v}");
    }
    out
}

fn conf(core: &Core) -> String {
    let c = &core.cfg;
    let dir = c.data_dir.display();
    let log = c
        .data_log_dir
        .as_ref()
        .unwrap_or(&c.data_dir)
        .display()
        .to_string();
    format!(
        "clientPort={}\nsecureClientPort=-1\ndataDir={dir}\ndataLogDir={log}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId={}\n",
        c.client_port,
        c.tick_time_ms,
        c.max_client_cnxns,
        c.min_session_timeout_ms(),
        c.max_session_timeout_ms(),
        if c.servers.is_empty() { 0 } else { c.server_id },
    )
}

fn envi() -> String {
    let mut out = String::from("Environment:\n");
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let rows = [
        ("zookeeper.version", version()),
        ("host.name", host.trim().to_string()),
        ("os.name", std::env::consts::OS.to_string()),
        ("os.arch", std::env::consts::ARCH.to_string()),
        (
            "user.dir",
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k}={v}");
    }
    out
}

fn cons(core: &Core) -> String {
    let mut out = String::new();
    for c in core.conns.values() {
        let sid = c.session.unwrap_or(0);
        let _ = writeln!(
            out,
            " /{}[1](queued=0,recved={},sent={},sid=0x{:x},lop={},est={},lzxid=0x{:x})",
            c.peer, c.received, c.sent, sid, c.last_op, c.established_ms, c.last_zxid
        );
    }
    let _ = writeln!(out);
    out
}

fn dump(core: &Core) -> String {
    let mut out = String::from("SessionTracker dump:\n");
    let _ = writeln!(out, "Global Sessions({}):", core.sessions.len());
    let mut sessions: Vec<_> = core.sessions.values().collect();
    sessions.sort_by_key(|s| s.id);
    for s in sessions {
        let _ = writeln!(out, "0x{:x}\t{}ms", s.id, s.timeout_ms);
    }
    let _ = writeln!(out, "ephemeral nodes dump:");
    let eph = core.tree.all_ephemerals();
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", eph.len());
    for (sid, paths) in eph {
        let _ = writeln!(out, "0x{sid:x}:");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    let _ = writeln!(out, "Connections dump:");
    let _ = writeln!(out, "Connections Sets ({}/{}):", 0, 0);
    out
}
