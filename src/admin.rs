//! Four-letter words, with ZooKeeper's output shapes (`FourLetterCommands`, `*Command.java`,
//! `ServerStats.toString`, `ServerCnxn.dumpConnectionInfo`, `ExpiryQueue.dump`,
//! `WatchManager.dumpWatches`, `MonitorCommand`), standalone mode, as Apache ZooKeeper 3.8
//! prints them. Run inside the core, which owns the state they report.
//!
//! Where ZooKeeper prints a value zkrs does not track, the value is 0 (never invented); the
//! key and the line layout stay, so tools that parse the output find what they look for.

use crate::admin_http::Json;
use crate::core::{now_ms, Core};
use crate::watches::ConnId;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// The version string: 3.9-compatible, naming zkrs.
pub fn version() -> String {
    format!("3.9.2-zkrs-{}, built on zkrs", env!("CARGO_PKG_VERSION"))
}

/// The words ZooKeeper 3.8 knows (`FourLetterCommands`), but "telnet close", which is not
/// 4 printable bytes and has no handler anyway. Anything else is a frame length to ZooKeeper:
/// no output, whatever the whitelist says.
const KNOWN: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// The trace mask (`ZooTrace.traceMask`): like ZooKeeper's, one per process. Its default is
/// CLIENT_REQUEST | SERVER_PACKET | SESSION | WARNING = 306.
static TRACE_MASK: AtomicI64 = AtomicI64::new(306);

/// `stmk` with its 8-byte big-endian argument: sets the trace mask and answers the new value
/// (no newline). The connection reads the long after the word and hands it to [`run`].
/// The node count ZooKeeper reports (`srvr`, `mntr`): the size of its node map, which holds
/// the root twice, as `""` and as `"/"` (a fresh tree counts 5).
fn node_count(core: &Core) -> usize {
    core.tree.len() + 1
}

fn set_trace_mask(mask: i64) -> String {
    TRACE_MASK.store(mask, Ordering::Relaxed);
    mask.to_string()
}

/// The text a four-letter word answers. `peer` is the 4lw connection itself, which ZooKeeper
/// counts and lists like any other connection.
pub fn run(word: &str, arg: Option<i64>, core: &mut Core, peer: SocketAddr) -> String {
    if !KNOWN.contains(&word) {
        return String::new();
    }
    // NIOServerCnxn.checkFourLetterWord: packetReceived(4) comes before anything else.
    core.stats.packets_received += 1;
    // `srvr` is always enabled (zkServer.sh status relies on it).
    if word != "srvr" && !core.cfg.four_letter_enabled(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    // A member that is electing or syncing serves nothing: ZooKeeper's commands then answer
    // with this line (ruok and the configuration words still work).
    let needs_server = matches!(
        word,
        "srvr" | "stat" | "mntr" | "cons" | "dump" | "wchs" | "wchc" | "wchp"
    );
    if needs_server && !core.serving() && !core.read_only() {
        return "This ZooKeeper instance is not currently serving requests\n".to_string();
    }
    match word {
        "ruok" => "imok".to_string(),
        "srvr" => server_stats(core, None),
        "stat" => server_stats(core, Some(peer)),
        "mntr" => mntr(core),
        "conf" => conf(core),
        "envi" => envi(),
        "cons" => cons(core, peer),
        "crst" => {
            reset_connection_stats(core);
            "Connection stats reset.\n".to_string()
        }
        "srst" => {
            reset_server_stats(core);
            "Server stats reset.\n".to_string()
        }
        // IsReadOnlyCommand: "ro" from the read-only server, "null" while not serving.
        "isro" if core.read_only() => "ro".to_string(),
        "isro" if !core.serving() => "null".to_string(),
        "isro" => "rw".to_string(),
        "dump" => dump(core, peer),
        "wchs" => wchs(core),
        "wchp" => wchp(core),
        "wchc" => wchc(core),
        "dirs" => {
            let (data, log) = (store_size(core, DB_DIR), store_size(core, LOG_DIR));
            format!("datadir_size: {data}\nlogdir_size: {log}\n")
        }
        "gtmk" => TRACE_MASK.load(Ordering::Relaxed).to_string(),
        // Without its 8-byte argument the mask is left as it is.
        "stmk" => match arg {
            Some(mask) => set_trace_mask(mask),
            None => TRACE_MASK.load(Ordering::Relaxed).to_string(),
        },
        // The digest log: every 128th zxid's tree digest, oldest first (DigestCommand).
        "hash" => core
            .tree
            .digest_log()
            .map(|(zxid, digest)| format!("{zxid:x}: {digest}\n"))
            .collect(),
        _ => String::new(),
    }
}

/// Connections ZooKeeper counts: the sessions' connections and this 4lw one.
fn alive_connections(core: &Core) -> usize {
    core.conns.len() + 1
}

const DB_DIR: &str = "zkrs-db";
const LOG_DIR: &str = "zkrs-log";

/// Where the data lives: `<dataLogDir or dataDir>/zkrs-db` (the tree) and `.../zkrs-log` (the
/// transaction log), absolute (ZooKeeper prints its `version-2` directories).
fn store_dir(core: &Core, name: &str) -> PathBuf {
    let dir = core
        .cfg
        .data_log_dir
        .clone()
        .unwrap_or_else(|| core.cfg.data_dir.clone())
        .join(name);
    std::path::absolute(&dir).unwrap_or(dir)
}

fn store_size(core: &Core, name: &str) -> u64 {
    crate::store::Store::size_on_disk(&store_dir(core, name))
}

/// Java's `Double.toString`.
pub(crate) fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let a = v.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        let s = format!("{v:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        if m.contains('.') {
            format!("{m}E{e}")
        } else {
            format!("{m}.0E{e}")
        }
    }
}

/// `AvgMinMaxCounter.getAvg`: rounded half-up to 4 decimals.
fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// Server latency in ms: (min, avg, max).
fn latency(core: &Core) -> (u64, f64, u64) {
    let s = &core.stats;
    if s.latency_count == 0 {
        return (0, 0.0, 0);
    }
    let avg = s.latency_total_ms as f64 / s.latency_count as f64;
    (
        s.latency_min_us / 1000,
        round4(avg),
        s.latency_max_us / 1000,
    )
}

/// `InetSocketAddress.toString` of an unresolved peer: `/ip:port`, IPv6 in brackets, in
/// Java's uncompressed form.
fn java_addr(addr: SocketAddr) -> String {
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) => format!("/{ip}:{}", addr.port()),
        IpAddr::V6(ip) => {
            let segs: Vec<String> = ip.segments().iter().map(|s| format!("{s:x}")).collect();
            let scope = match addr {
                SocketAddr::V6(a) if a.scope_id() != 0 => format!("%{}", a.scope_id()),
                _ => String::new(),
            };
            format!("/[{}{scope}]:{}", segs.join(":"), addr.port())
        }
    }
}

/// `ServerStats.toString` and the node count, after the version line; with `Clients:` when
/// `clients` names the 4lw connection (`stat`).
fn server_stats(core: &Core, clients: Option<SocketAddr>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Zookeeper version: {}", version());
    if let Some(peer) = clients {
        let _ = writeln!(out, "Clients:");
        for (_, c) in sorted_conns(core) {
            let _ = writeln!(
                out,
                " {}[1](queued=0,recved={},sent={})",
                java_addr(c.peer),
                c.received,
                c.sent
            );
        }
        let _ = writeln!(out, "{}", own_conn(peer));
        let _ = writeln!(out);
    }
    let (min, avg, max) = latency(core);
    let _ = writeln!(out, "Latency min/avg/max: {min}/{}/{max}", java_double(avg));
    let _ = writeln!(out, "Received: {}", core.stats.packets_received);
    let _ = writeln!(out, "Sent: {}", core.stats.packets_sent);
    let _ = writeln!(out, "Connections: {}", alive_connections(core));
    let _ = writeln!(out, "Outstanding: {}", core.stats.outstanding);
    let _ = writeln!(out, "Zxid: 0x{:x}", core.tree.last_zxid);
    let _ = writeln!(out, "Mode: {}", core.mode());
    let _ = writeln!(out, "Node count: {}", node_count(core));
    out
}

/// The 4lw connection as `dumpConnectionInfo` shows it: no interest ops (its selection key
/// is cancelled), its one packet received, nothing sent yet, no session.
fn own_conn(peer: SocketAddr) -> String {
    format!(" {}[0](queued=0,recved=1,sent=0)", java_addr(peer))
}

fn sorted_conns(core: &Core) -> Vec<(ConnId, &crate::core::Conn)> {
    let mut v: Vec<_> = core.conns.iter().map(|(id, c)| (*id, &**c)).collect();
    v.sort_by_key(|(id, _)| *id);
    v
}

/// `cons`: `dumpConnectionInfo(pw, false)` for every connection, then an empty line.
fn cons(core: &Core, peer: SocketAddr) -> String {
    let mut out = String::new();
    for (_, c) in sorted_conns(core) {
        let _ = write!(
            out,
            " {}[1](queued=0,recved={},sent={}",
            java_addr(c.peer),
            c.received,
            c.sent
        );
        if let Some(sid) = c.session.filter(|&s| s != 0) {
            let timeout = core.sessions.get(&sid).map_or(0, |s| s.timeout_ms);
            let r = &c.resp;
            let (min, avg, max) = r.min_avg_max();
            let _ = write!(
                out,
                ",sid=0x{sid:x},lop={},est={},to={timeout},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat={},minlat={min},avglat={avg},maxlat={max}",
                c.last_op.map_or("NA", crate::core::op_name), c.established_ms, i64::from(r.last_cxid), c.last_zxid, r.last_response_ms, r.last_latency_ms
            );
        }
        let _ = writeln!(out, ")");
    }
    let _ = writeln!(out, "{}", own_conn(peer));
    let _ = writeln!(out);
    out
}

/// `conf` (`ZooKeeperServer.dumpConf`), standalone.
fn conf(core: &Core) -> String {
    let c = &core.cfg;
    let (data, log) = (store_dir(core, DB_DIR), store_dir(core, LOG_DIR));
    let mut out = String::new();
    let _ = writeln!(out, "clientPort={}", c.client_port);
    let _ = writeln!(out, "secureClientPort=-1");
    let _ = writeln!(out, "dataDir={}", data.display());
    let _ = writeln!(out, "dataDirSize={}", store_size(core, DB_DIR));
    let _ = writeln!(out, "dataLogDir={}", log.display());
    let _ = writeln!(out, "dataLogSize={}", store_size(core, LOG_DIR));
    let _ = writeln!(out, "tickTime={}", c.tick_time_ms);
    let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
    let _ = writeln!(out, "minSessionTimeout={}", c.min_session_timeout_ms());
    let _ = writeln!(out, "maxSessionTimeout={}", c.max_session_timeout_ms());
    let _ = writeln!(out, "clientPortListenBacklog=-1");
    let _ = writeln!(
        out,
        "serverId={}",
        if c.servers.is_empty() { 0 } else { c.server_id }
    );
    // A member adds its quorum settings and the membership in effect
    // (QuorumZooKeeperServer.dumpConf).
    if let Some(r) = core.replica.as_ref() {
        let me = r.ensemble.me();
        let _ = writeln!(out, "initLimit={}", c.init_limit);
        let _ = writeln!(out, "syncLimit={}", c.sync_limit);
        let _ = writeln!(out, "electionAlg=3");
        let _ = writeln!(out, "electionPort={}", me.election_port);
        let _ = writeln!(out, "quorumPort={}", me.quorum_port);
        let _ = writeln!(out, "peerType={}", u8::from(me.observer));
        let _ = writeln!(out, "membership: ");
        out.push_str(&r.ensemble.config_text());
    }
    out
}

/// `crst`: ServerCnxn.resetStats of every connection.
fn reset_connection_stats(core: &mut Core) {
    for c in core.conns.values_mut() {
        c.received = 0;
        c.sent = 0;
        c.last_op = None;
        c.last_zxid = -1;
        c.resp = crate::core::ConnLatency::default();
    }
}

/// `srst`: ServerStats.reset.
fn reset_server_stats(core: &mut Core) {
    // ServerStats.reset: latency and packet counters; gauges stay, and so does the last
    // save of the tree (`last_snapshot`), which ZooKeeper keeps outside its ServerStats.
    core.stats = crate::core::Stats {
        outstanding: core.stats.outstanding,
        last_saved: core.stats.last_saved,
        ..Default::default()
    };
}

/// An admin command's fields (the HTTP AdminServer's JSON), or its error. `command` is a
/// primary name of [`crate::admin_http::COMMANDS`].
pub fn json_command(
    command: &str,
    args: &[(String, String)],
    core: &mut Core,
) -> Result<Vec<(String, Json)>, String> {
    let needs_server = !matches!(
        command,
        "ruok"
            | "environment"
            | "get_trace_mask"
            | "is_read_only"
            | "configuration"
            | "zabstate"
            | "voting_view"
            | "set_trace_mask"
            | "system_properties"
    );
    if needs_server && !core.serving() && !core.read_only() {
        return Err("This ZooKeeper instance is not currently serving requests".into());
    }
    let field = |k: &str, v: Json| (k.to_string(), v);
    Ok(match command {
        "ruok" => vec![],
        "monitor" => {
            // No four-letter connection of its own to count, as ZooKeeper's HTTP command has
            // none.
            let alive = Json::int(core.conns.len() as i64);
            mntr(core)
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(k, v)| match k.strip_prefix("zk_").unwrap_or(k) {
                    "num_alive_connections" => field("num_alive_connections", alive.clone()),
                    k => field(k, Json::from_text(v)),
                })
                .collect()
        }
        "stats" | "server_stats" => {
            let (min, avg, max) = latency(core);
            let response = || {
                Json::Obj(vec![
                    field("last_buffer_size", Json::int(-1)),
                    field("min_buffer_size", Json::int(-1)),
                    field("max_buffer_size", Json::int(-1)),
                ])
            };
            let uptime = core.started.elapsed().as_millis() as i64;
            let server_stats = Json::Obj(vec![
                field("packets_sent", Json::int(core.stats.packets_sent as i64)),
                field(
                    "packets_received",
                    Json::int(core.stats.packets_received as i64),
                ),
                field("fsync_threshold_exceed_count", Json::int(0)),
                field("client_response_stats", response()),
                field("data_dir_size", Json::int(store_size(core, DB_DIR) as i64)),
                field("log_dir_size", Json::int(store_size(core, LOG_DIR) as i64)),
                field("provider_null", Json::Bool(false)),
                field("server_state", Json::str(core.mode())),
                field("last_processed_zxid", Json::int(core.tree.last_zxid)),
                field(
                    "outstanding_requests",
                    Json::int(core.stats.outstanding as i64),
                ),
                field("avg_latency", Json::Num(java_double(avg))),
                field("max_latency", Json::int(max as i64)),
                field("min_latency", Json::int(min as i64)),
                field(
                    "num_alive_client_connections",
                    Json::int(core.conns.len() as i64),
                ),
                field("uptime", Json::int(uptime)),
                field("auth_failed_count", Json::int(0)),
                field("non_mtlsremote_conn_count", Json::int(0)),
                field("non_mtlslocal_conn_count", Json::int(0)),
            ]);
            let mut fields = vec![
                field("version", Json::str(version())),
                field("read_only", Json::Bool(core.read_only())),
                field("server_stats", server_stats),
                field("client_response", response()),
                field("node_count", Json::int(node_count(core) as i64)),
            ];
            // `stats` (`stat`) lists the connections too; `server_stats` (`srvr`) does not.
            if command == "stats" {
                fields.extend(connections(core));
            }
            fields
        }
        "connections" => connections(core),
        "dump" => {
            let (now, now_wall) = (Instant::now(), now_ms());
            let mut expiry: BTreeMap<i64, Vec<Json>> = BTreeMap::new();
            let mut sessions: Vec<_> = core.sessions.values().collect();
            sessions.sort_by_key(|s| s.id);
            for s in sessions {
                let at = bucket(wall_ms(s.deadline, now, now_wall), core.cfg.tick_time_ms);
                expiry.entry(at).or_default().push(Json::int(s.id));
            }
            let expiry = expiry
                .into_iter()
                .map(|(at, ids)| (at.to_string(), Json::Arr(ids)))
                .collect();
            let eph: BTreeMap<_, _> = core.tree.all_ephemerals().iter().collect();
            let eph = eph
                .into_iter()
                .map(|(sid, paths)| {
                    let paths = paths.iter().map(|p| Json::str(p.as_str())).collect();
                    (sid.to_string(), Json::Arr(paths))
                })
                .collect();
            vec![
                field("expiry_time_to_session_ids", Json::Obj(expiry)),
                field("session_id_to_ephemeral_paths", Json::Obj(eph)),
            ]
        }
        "configuration" => {
            let c = &core.cfg;
            let (data, log) = (store_dir(core, DB_DIR), store_dir(core, LOG_DIR));
            vec![
                field("client_port", Json::int(i64::from(c.client_port))),
                field("data_dir", Json::str(data.display().to_string())),
                field("data_log_dir", Json::str(log.display().to_string())),
                field("tick_time", Json::int(c.tick_time_ms as i64)),
                field("max_client_cnxns", Json::int(c.max_client_cnxns as i64)),
                field(
                    "min_session_timeout",
                    Json::int(c.min_session_timeout_ms() as i64),
                ),
                field(
                    "max_session_timeout",
                    Json::int(c.max_session_timeout_ms() as i64),
                ),
                field(
                    "server_id",
                    Json::int(if c.servers.is_empty() {
                        0
                    } else {
                        i64::from(c.server_id)
                    }),
                ),
                field("client_port_listen_backlog", Json::int(-1)),
            ]
        }
        "is_read_only" => vec![field("read_only", Json::Bool(core.read_only()))],
        "environment" => environment()
            .into_iter()
            .map(|(k, v)| field(k, Json::Str(v)))
            .collect(),
        "system_properties" => system_properties(core),
        "observers" => observers(core),
        "observer_connection_stat_reset" => {
            reset_observer_stats(core);
            vec![]
        }
        // LastSnapshotCommand: the zxid in hex (Long.toHexString, no 0x) and the time in
        // seconds. See `Stats::last_saved` for what stands for ZooKeeper's snapshot here.
        "last_snapshot" => {
            let (zxid, secs) = core.stats.last_saved;
            vec![
                field("zxid", Json::str(format!("{zxid:x}"))),
                field("timestamp", Json::int(secs)),
            ]
        }
        "dirs" => vec![
            field("datadir_size", Json::int(store_size(core, DB_DIR) as i64)),
            field("logdir_size", Json::int(store_size(core, LOG_DIR) as i64)),
        ],
        "watch_summary" => {
            let (connections, paths, total) = watch_summary(core);
            vec![
                field("num_connections", Json::int(connections as i64)),
                field("num_paths", Json::int(paths as i64)),
                field("num_total_watches", Json::int(total as i64)),
            ]
        }
        // Maps with numeric keys print them as strings, as Jackson does.
        "watches" => {
            let map = watches_by_session(core)
                .into_iter()
                .map(|(sid, paths)| {
                    (
                        sid.to_string(),
                        Json::Arr(paths.into_iter().map(Json::Str).collect()),
                    )
                })
                .collect();
            vec![field("session_id_to_watched_paths", Json::Obj(map))]
        }
        "watches_by_path" => {
            let map = data_watches(core)
                .into_iter()
                .map(|(p, sids)| (p, Json::Arr(sids.into_iter().map(Json::int).collect())))
                .collect();
            vec![field("path_to_session_ids", Json::Obj(map))]
        }
        "zabstate" => match core.replica.as_ref() {
            None => vec![
                field("voting", Json::Bool(false)),
                field("zabstate", Json::str("")),
            ],
            Some(r) => {
                let me = r.ensemble.me();
                let z = core.tree.last_zxid;
                let state = zab_phase(r);
                let voting = r.zab.cfg.voters.contains(&r.ensemble.me);
                vec![
                    field("myid", Json::int(r.ensemble.me as i64)),
                    field("is_leader", Json::Bool(r.zab.is_leader())),
                    field(
                        "quorum_address",
                        multiple_addresses(&me.host, me.quorum_port),
                    ),
                    field(
                        "election_address",
                        multiple_addresses(&me.host, me.election_port),
                    ),
                    field("client_address", Json::str(own_client_address(core))),
                    field("voting", Json::Bool(voting)),
                    field("last_zxid", Json::str(format!("0x{z:x}"))),
                    field("zab_epoch", Json::int(z >> 32)),
                    field("zab_counter", Json::int(z & 0xffff_ffff)),
                    field("zabstate", Json::str(state)),
                ]
            }
        },
        "voting_view" => {
            let mut view = Vec::new();
            if let Some(r) = core.replica.as_ref() {
                for m in r.ensemble.members.values().filter(|m| !m.observer) {
                    let client = if m.id == r.ensemble.me {
                        own_client_address(core)
                    } else {
                        m.client_address().unwrap_or_default()
                    };
                    let info = Json::Obj(vec![
                        field(
                            "server_addresses",
                            Json::Arr(vec![Json::str(format!("{}:{}", m.host, m.quorum_port))]),
                        ),
                        field(
                            "election_addresses",
                            Json::Arr(vec![Json::str(format!("{}:{}", m.host, m.election_port))]),
                        ),
                        field("client_address", Json::str(client)),
                        field("learner_type", Json::str("participant")),
                    ]);
                    view.push((m.id.to_string(), info));
                }
            }
            vec![field("current_config", Json::Obj(view))]
        }
        // DataTree.getDigestLog's ZxidDigest beans (digest version 2).
        "hash" => {
            let digests = core
                .tree
                .digest_log()
                .map(|(zxid, digest)| {
                    Json::Obj(vec![
                        field("zxid", Json::int(*zxid)),
                        field(
                            "digest_version",
                            Json::int(i64::from(crate::tree::DIGEST_VERSION)),
                        ),
                        field("digest", Json::int(*digest)),
                    ])
                })
                .collect();
            vec![field("digests", Json::Arr(digests))]
        }
        "initial_configuration" => vec![field(
            "initial_configuration",
            Json::str(core.cfg.initial_config.as_str()),
        )],
        "set_trace_mask" => {
            let arg = args.iter().find(|(k, _)| k == "traceMask").map(|(_, v)| v);
            let Some(arg) = arg else {
                return Err("setTraceMask requires long traceMask argument".into());
            };
            let mask: i64 = arg
                .parse()
                .map_err(|_| format!("setTraceMask requires long traceMask argument, got {arg}"))?;
            set_trace_mask(mask);
            vec![field("tracemask", Json::int(mask))]
        }
        "get_trace_mask" => vec![field(
            "tracemask",
            Json::int(TRACE_MASK.load(Ordering::Relaxed)),
        )],
        "stat_reset" => {
            reset_server_stats(core);
            vec![]
        }
        "connection_stat_reset" => {
            reset_connection_stats(core);
            vec![]
        }
        "leader" => {
            let r = core.replica.as_ref().ok_or("server is not initialized")?;
            let leader = r.zab.leader_id().ok_or("server is not initialized")?;
            let ip = r
                .ensemble
                .members
                .get(&leader)
                .map_or(String::new(), |m| m.host.clone());
            vec![
                field("is_leader", Json::Bool(r.zab.is_leader())),
                field("leader_id", Json::int(leader as i64)),
                field("leader_ip", Json::str(ip)),
            ]
        }
        other => return Err(format!("Unknown command: {other}")),
    })
}

/// A member address as Jackson shows ZooKeeper's `MultipleAddresses` bean (one address).
fn multiple_addresses(host: &str, port: u16) -> Json {
    let one = Json::str(format!("{host}:{port}"));
    let all = || Json::Arr(vec![one.clone()]);
    Json::Obj(vec![
        ("empty".into(), Json::Bool(false)),
        ("all_addresses".into(), all()),
        ("all_reachable_addresses".into(), all()),
        ("one".into(), one.clone()),
        ("reachable_address".into(), one.clone()),
        (
            "wildcard_addresses".into(),
            Json::Arr(vec![Json::str(format!("0.0.0.0:{port}"))]),
        ),
        (
            "all_ports".into(),
            Json::Arr(vec![Json::int(i64::from(port))]),
        ),
        ("all_host_strings".into(), Json::Arr(vec![Json::str(host)])),
        ("all_reachable_addresses_or_all".into(), all()),
        ("reachable_or_one".into(), one.clone()),
    ])
}

/// This server's client address (`clientPortAddress`, else the wildcard).
fn own_client_address(core: &Core) -> String {
    let ip = core
        .cfg
        .client_port_address
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    format!("{ip}:{}", core.cfg.client_port)
}

/// `observers` (`obsr`, SyncedObserverConsCommand): the observers a leader forwards to (from
/// the start of their sync), each as ZooKeeper's LearnerHandler shows itself, from the
/// counters of its quorum connection; a follower lists those it serves as an observer
/// master (`observerMasterPort`), as ZooKeeper's does. Any other server answers none.
fn observers(core: &Core) -> Vec<(String, Json)> {
    let infos: Vec<Json> = match core.replica.as_ref() {
        Some(r) => r
            .zab
            .observing_learners()
            .into_iter()
            .filter_map(|sid| Some(observer_info(sid, &*r.peers.link_stats(sid)?)))
            .collect(),
        None => Vec::new(),
    };
    vec![
        (
            "synced_observers".to_string(),
            Json::int(infos.len() as i64),
        ),
        ("observers".to_string(), Json::Arr(infos)),
    ]
}

/// `observer_connection_stat_reset` (`orst`): the counters of the observers a leader (or an
/// observer master) serves start again.
fn reset_observer_stats(core: &Core) {
    if let Some(r) = core.replica.as_ref() {
        for sid in r.zab.observing_learners() {
            if let Some(stats) = r.peers.link_stats(sid) {
                stats.reset();
            }
        }
    }
}

/// One observer as `LearnerHandler.getLearnerHandlerInfo` shows it, in its order.
fn observer_info(sid: crate::zab::Sid, s: &crate::quorum::LinkStats) -> Json {
    use std::sync::atomic::Ordering::Relaxed;
    let field = |k: &str, v: Json| (k.to_string(), v);
    let remote = s.remote.map_or_else(|| "<null>".to_string(), java_addr);
    let count = |n: u64| Json::int(i64::try_from(n).unwrap_or(i64::MAX));
    Json::Obj(vec![
        field("remote_socket_address", Json::str(remote)),
        field("sid", Json::int(sid as i64)),
        field("established", Json::int(s.established_ms)),
        field("queued_packets", Json::int(s.queued.load(Relaxed).max(0))),
        field(
            "queued_packets_size",
            Json::int(s.queued_bytes.load(Relaxed).max(0)),
        ),
        field("packets_received", count(s.received.load(Relaxed))),
        field("packets_sent", count(s.sent.load(Relaxed))),
        field("requests", count(s.requests.load(Relaxed))),
        field("last_zxid", Json::int(s.last_zxid.load(Relaxed))),
    ])
}

/// The platform's separators, as a JVM's `file.separator`, `line.separator` and
/// `path.separator` give them.
const SEPARATORS: [(&str, &str); 3] = [
    ("file.separator", std::path::MAIN_SEPARATOR_STR),
    ("line.separator", if cfg!(windows) { "\r\n" } else { "\n" }),
    ("path.separator", if cfg!(windows) { ";" } else { ":" }),
];

/// The [`environment`] rows that are JVM system properties with a meaning here.
const OS_PROPERTIES: &[&str] = &[
    "os.arch",
    "os.name",
    "os.version",
    "user.dir",
    "user.home",
    "user.name",
];

/// `system_properties` (`sysp`, SystemPropertiesCommand): ZooKeeper lists every system
/// property of its JVM, sorted by name, each a string. zkrs is no JVM, so it lists those
/// that mean something here: the process's OS and user (as `environment` reports them) with
/// the platform's separators, and the ZooKeeper properties zkrs honours
/// ([`zookeeper_properties`]). The JVM's own (`java.version`, `java.home`,
/// `java.class.path`, ...) are left out rather than invented.
fn system_properties(core: &Core) -> Vec<(String, Json)> {
    let mut props: BTreeMap<String, String> = environment()
        .into_iter()
        .filter(|(k, _)| OS_PROPERTIES.contains(k))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for (k, v) in SEPARATORS {
        props.insert(k.to_string(), v.to_string());
    }
    for (k, v) in zookeeper_properties(&core.cfg) {
        props.insert(k.to_string(), v);
    }
    props.into_iter().map(|(k, v)| (k, Json::Str(v))).collect()
}

/// The system properties ZooKeeper 3.8 reads whose settings zkrs honours, under
/// ZooKeeper's names, with the values in effect. A JVM lists only the properties it was
/// given; zkrs does not record which settings were given (zoo.cfg, TOML, `ZKRS_*`,
/// `SERVER_JVMFLAGS`), so its defaults are listed too. Secrets ZooKeeper would list
/// (`DigestAuthenticationProvider.superDigest`, `SASLAuthenticationProvider.superPassword`,
/// key store passwords) are not.
fn zookeeper_properties(cfg: &crate::config::Config) -> Vec<(&'static str, String)> {
    // The `yes`/`no` ZooKeeper reads forceSync and skipACL as (other booleans: `true`/`false`).
    let yes_no = |b: bool| String::from(if b { "yes" } else { "no" });
    // The words `4lw.commands.whitelist` lets through (without one, the default set).
    let whitelist = match &cfg.four_letter_whitelist {
        Some(words) => words.join(","),
        None => KNOWN
            .iter()
            .filter(|w| cfg.four_letter_enabled(w))
            .copied()
            .collect::<Vec<_>>()
            .join(","),
    };
    let mut props = vec![
        ("jute.maxbuffer", cfg.jute_max_buffer.to_string()),
        ("readonlymode.enabled", cfg.read_only_mode.to_string()),
        (
            "znode.container.checkIntervalMs",
            cfg.container_check_interval_ms.to_string(),
        ),
        ("zookeeper.4lw.commands.whitelist", whitelist),
        ("zookeeper.admin.commandURL", cfg.admin_url.clone()),
        (
            "zookeeper.admin.enableServer",
            cfg.admin_enabled.to_string(),
        ),
        (
            "zookeeper.admin.serverAddress",
            cfg.admin_address.to_string(),
        ),
        ("zookeeper.admin.serverPort", cfg.admin_port.to_string()),
        (
            "zookeeper.allowSaslFailedClients",
            cfg.allow_sasl_failed_clients.to_string(),
        ),
        ("zookeeper.digest.enabled", cfg.digest_enabled.to_string()),
        ("zookeeper.enforceQuota", cfg.enforce_quota.to_string()),
        (
            "zookeeper.extendedTypesEnabled",
            cfg.extended_types.to_string(),
        ),
        ("zookeeper.forceSync", yes_no(cfg.force_sync)),
        ("zookeeper.commitLogCount", cfg.commit_log_count.to_string()),
        (
            "zookeeper.globalOutstandingLimit",
            cfg.global_outstanding_limit.to_string(),
        ),
        (
            "zookeeper.nio.sessionlessCnxnTimeout",
            cfg.sessionless_cnxn_timeout_ms.to_string(),
        ),
        ("zookeeper.sasl.serverconfig", cfg.sasl_section.clone()),
        ("zookeeper.skipACL", yes_no(cfg.skip_acl)),
        (
            "zookeeper.snapshot.trust.empty",
            cfg.snapshot_trust_empty.to_string(),
        ),
    ];
    // Only when given: without it there is no such property (and SASL is off).
    if let Some(jaas) = &cfg.jaas_file {
        props.push((
            "java.security.auth.login.config",
            jaas.display().to_string(),
        ));
    }
    if let Some(conf) = &cfg.krb5_conf {
        props.push(("java.security.krb5.conf", conf.display().to_string()));
    }
    // The Kerberos name settings, where the server logs in with Kerberos.
    if cfg
        .sasl_login
        .as_ref()
        .is_some_and(|l| l.kerberos.is_some())
    {
        props.push((
            "zookeeper.kerberos.removeHostFromPrincipal",
            cfg.kerberos_remove_host.to_string(),
        ));
        props.push((
            "zookeeper.kerberos.removeRealmFromPrincipal",
            cfg.kerberos_remove_realm.to_string(),
        ));
        props.push((
            "zookeeper.security.auth_to_local",
            cfg.auth_to_local.clone(),
        ));
    }
    props
}

/// `connections` and `secure_connections`: each connection's `getConnectionInfo(false)`.
fn connections(core: &Core) -> Vec<(String, Json)> {
    let field = |k: &str, v: Json| (k.to_string(), v);
    let infos = sorted_conns(core)
        .into_iter()
        .map(|(_, c)| {
            let sid = c.session.unwrap_or(0);
            let timeout = core.sessions.get(&sid).map_or(0, |s| s.timeout_ms);
            let r = &c.resp;
            let (min, avg, max) = r.min_avg_max();
            Json::Obj(vec![
                field(
                    "remote_socket_address",
                    Json::str(format!("{}:{}", c.peer.ip(), c.peer.port())),
                ),
                field("interest_ops", Json::int(1)),
                field("outstanding_requests", Json::int(0)),
                field("packets_received", Json::int(c.received as i64)),
                field("packets_sent", Json::int(c.sent as i64)),
                field("session_id", Json::int(sid)),
                field(
                    "last_operation",
                    Json::str(c.last_op.map_or("NA", crate::core::op_name)),
                ),
                field("established", Json::int(c.established_ms)),
                field("session_timeout", Json::int(i64::from(timeout))),
                field("last_cxid", Json::int(r.last_cxid)),
                field("last_zxid", Json::int(c.last_zxid)),
                field("last_response_time", Json::int(r.last_response_ms)),
                field("last_latency", Json::int(r.last_latency_ms as i64)),
                field("min_latency", Json::int(min as i64)),
                field("avg_latency", Json::int(avg as i64)),
                field("max_latency", Json::int(max as i64)),
            ])
        })
        .collect();
    vec![
        field("connections", Json::Arr(infos)),
        field("secure_connections", Json::Arr(vec![])),
    ]
}

/// A `/proc`-style `Key:   value kB` line's value in bytes.
fn proc_kb(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// (user name, home) of the process's user, from `/etc/passwd`, else the environment.
fn user() -> (String, String) {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        });
    let from_passwd = uid.and_then(|uid| {
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2] == uid).then(|| (f[0].to_string(), f[5].to_string()))
        })
    });
    from_passwd.unwrap_or_else(|| {
        let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "<NA>".into());
        (env("USER"), env("HOME"))
    })
}

/// `envi` (`Environment.list`): every key ZooKeeper prints, in its order. zkrs is no JVM:
/// the JVM-only keys say `n/a`; `java.io.tmpdir` is the temp dir the process would use; the
/// `os.memory.*` lines are the process's resident memory (`total`), the machine's available
/// memory (`free`) and its total memory (`max`). Shared by `envi`, `environment` and
/// `system_properties`.
fn environment() -> Vec<(&'static str, String)> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let host = read("/proc/sys/kernel/hostname")
        .or_else(|| read("/etc/hostname"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "<NA>".into());
    let os_name = match std::env::consts::OS {
        "linux" => "Linux".to_string(),
        "macos" => "Mac OS X".to_string(),
        "windows" => "Windows".to_string(),
        "freebsd" => "FreeBSD".to_string(),
        other => other.to_string(),
    };
    let os_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        other => other,
    };
    let os_version = read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "<NA>".into());
    let (user_name, user_home) = user();
    let user_dir = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "<NA>".into());
    let meminfo = read("/proc/meminfo").unwrap_or_default();
    let status = read("/proc/self/status").unwrap_or_default();
    let mb = |b: Option<u64>| format!("{}MB", b.unwrap_or(0) / (1024 * 1024));
    let na = || "n/a".to_string();
    vec![
        ("zookeeper.version", version()),
        ("host.name", host),
        ("java.version", na()),
        ("java.vendor", na()),
        ("java.home", na()),
        ("java.class.path", na()),
        ("java.library.path", na()),
        ("java.io.tmpdir", std::env::temp_dir().display().to_string()),
        ("java.compiler", na()),
        ("os.name", os_name),
        ("os.arch", os_arch.to_string()),
        ("os.version", os_version),
        ("user.name", user_name),
        ("user.home", user_home),
        ("user.dir", user_dir),
        ("os.memory.free", mb(proc_kb(&meminfo, "MemAvailable"))),
        ("os.memory.max", mb(proc_kb(&meminfo, "MemTotal"))),
        ("os.memory.total", mb(proc_kb(&status, "VmRSS"))),
    ]
}

/// `envi`: [`environment`] as `key=value` lines after a title.
fn envi() -> String {
    let mut out = String::from("Environment:\n");
    for (k, v) in environment() {
        let _ = writeln!(out, "{k}={v}");
    }
    out
}

/// `Date.toString` in UTC: `Thu Nov 26 06:03:56 UTC 2026`.
fn java_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // 1970-01-01 was a Thursday.
    let wd = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
    let mon = MONTHS[(month - 1) as usize];
    format!(
        "{wd} {mon} {day:02} {:02}:{:02}:{:02} UTC {year}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Wall-clock ms of a monotonic instant, given one (instant, wall ms) pair.
fn wall_ms(at: Instant, now: Instant, now_wall: i64) -> i64 {
    match at.checked_duration_since(now) {
        Some(d) => now_wall + d.as_millis() as i64,
        None => now_wall - now.duration_since(at).as_millis() as i64,
    }
}

/// `ExpiryQueue.roundToNextInterval`.
fn bucket(ms: i64, interval: u64) -> i64 {
    let interval = i64::try_from(interval.max(1)).unwrap_or(i64::MAX);
    (ms / interval + 1) * interval
}

/// `ExpiryQueue.dump` (after its caller's `Session ` / `Connections ` prefix).
fn dump_expiry(out: &mut String, buckets: &BTreeMap<i64, Vec<String>>) {
    let n: usize = buckets.values().map(Vec::len).sum();
    let _ = writeln!(out, "Sets ({})/({n}):", buckets.len());
    for (time, elems) in buckets {
        let _ = writeln!(out, "{} expire at {}:", elems.len(), java_date(*time));
        for e in elems {
            let _ = writeln!(out, "\t{e}");
        }
    }
}

/// `dump`: the session expiry buckets, the ephemerals, the connection expiry buckets.
fn dump(core: &Core, peer: SocketAddr) -> String {
    let now = Instant::now();
    let now_wall = now_ms();
    let mut out = String::from("SessionTracker dump:\n");
    // Sessions expire in tickTime buckets.
    let mut sessions: Vec<_> = core.sessions.values().collect();
    sessions.sort_by_key(|s| s.id);
    let mut buckets: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for s in sessions {
        let at = bucket(wall_ms(s.deadline, now, now_wall), core.cfg.tick_time_ms);
        buckets.entry(at).or_default().push(format!("0x{:x}", s.id));
    }
    out.push_str("Session ");
    dump_expiry(&mut out, &buckets);

    let _ = writeln!(out, "ephemeral nodes dump:");
    let eph: BTreeMap<_, _> = core.tree.all_ephemerals().iter().collect();
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", eph.len());
    for (sid, paths) in eph {
        let _ = writeln!(out, "0x{sid:x}:");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }

    // Connections expire in sessionlessCnxnTimeout buckets: a session's connection when its
    // session would, one without a session (this one) a sessionless timeout from now.
    let _ = writeln!(out, "Connections dump:");
    let interval = core.cfg.sessionless_cnxn_timeout_ms;
    let sessionless = wall_ms(now + Duration::from_millis(interval), now, now_wall);
    let mut buckets: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (_, c) in sorted_conns(core) {
        let sid = c.session.unwrap_or(0);
        let at = core
            .sessions
            .get(&sid)
            .map_or(sessionless, |s| wall_ms(s.deadline, now, now_wall));
        buckets
            .entry(bucket(at, interval))
            .or_default()
            .push(format!("ip: {} sessionId: 0x{sid:x}", java_addr(c.peer)));
    }
    buckets
        .entry(bucket(sessionless, interval))
        .or_default()
        .push(format!("ip: {} sessionId: 0x0", java_addr(peer)));
    out.push_str("Connections ");
    dump_expiry(&mut out, &buckets);
    out
}

/// The data-watch table (`DataTree.dataWatches`: data, exists and persistent watches; the
/// 4lw never show child watches), as path -> session ids.
fn data_watches(core: &Core) -> BTreeMap<String, Vec<i64>> {
    let mut out = BTreeMap::new();
    for (p, conns) in core.watches.by_path() {
        let mut sids: Vec<i64> = conns
            .into_iter()
            .filter(|c| core.watches.in_data_table(&p, *c))
            .map(|c| core.conns.get(&c).and_then(|c| c.session).unwrap_or(0))
            .collect();
        if !sids.is_empty() {
            sids.sort_unstable();
            out.insert(p, sids);
        }
    }
    out
}

/// `wchs`: `WatchManager.toString` of the data watches, then a newline.
fn wchs(core: &Core) -> String {
    let (connections, paths, total) = watch_summary(core);
    format!("{connections} connections watching {paths} paths\nTotal watches:{total}\n")
}

/// (connections watching, paths watched, watches) of data watches.
fn watch_summary(core: &Core) -> (usize, usize, usize) {
    let by_path = data_watches(core);
    let mut watchers = std::collections::HashSet::new();
    let mut total = 0;
    // One watcher per connection, as ZooKeeper's watchers are its connections.
    for (p, conns) in core.watches.by_path() {
        for c in conns {
            if core.watches.in_data_table(&p, c) {
                watchers.insert(c);
                total += 1;
            }
        }
    }
    (watchers.len(), by_path.len(), total)
}

/// `wchp`: each path, then its watchers' session ids; an empty line at the end.
fn wchp(core: &Core) -> String {
    let mut out = String::new();
    for (p, sids) in data_watches(core) {
        let _ = writeln!(out, "{p}");
        for sid in sids {
            let _ = writeln!(out, "\t0x{sid:x}");
        }
    }
    let _ = writeln!(out);
    out
}

/// `wchc`: each watcher's session id, then its paths; an empty line at the end.
/// Session id -> the paths it watches (data watches).
fn watches_by_session(core: &Core) -> BTreeMap<i64, Vec<String>> {
    let mut by_session: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (p, sids) in data_watches(core) {
        for sid in sids {
            by_session.entry(sid).or_default().push(p.clone());
        }
    }
    by_session
}

fn wchc(core: &Core) -> String {
    let mut out = String::new();
    for (sid, paths) in watches_by_session(core) {
        let _ = writeln!(out, "0x{sid:x}");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    let _ = writeln!(out);
    out
}

/// Gauges and counters of ZooKeeper 3.8's standalone `mntr`, in its order, after
/// `zk_version` and `zk_server_state`.
const MNTR_METRICS: &[&str] = &[
    "ephemerals_count",
    "num_alive_connections",
    "avg_latency",
    "outstanding_requests",
    "znode_count",
    "global_sessions",
    "non_mtls_remote_conn_count",
    "last_client_response_size",
    "packets_sent",
    "packets_received",
    "max_client_response_size",
    "connection_drop_probability",
    "watch_count",
    "auth_failed_count",
    "min_latency",
    "max_file_descriptor_count",
    "approximate_data_size",
    "open_file_descriptor_count",
    "local_sessions",
    "uptime",
    "max_latency",
    "outstanding_tls_handshake",
    "min_client_response_size",
    "non_mtls_local_conn_count",
    "proposal_count",
    "watch_bytes",
    "outstanding_changes_removed",
    "throttled_ops",
    "stale_requests_dropped",
    "large_requests_rejected",
    "insecure_admin_count",
    "connection_rejected",
    "cnxn_closed_without_zk_server_running",
    "sessionless_connections_expired",
    "looking_count",
    "dead_watchers_queued",
    "stale_requests",
    "connection_drop_count",
    "learner_proposal_received_count",
    "digest_mismatches_count",
    "dead_watchers_cleared",
    "response_packet_cache_hits",
    "bytes_received_count",
    "add_dead_watcher_stall_time",
    "request_throttle_wait_count",
    "requests_not_forwarded_to_commit_processor",
    "response_packet_cache_misses",
    "ensemble_auth_success",
    "prep_processor_request_queued",
    "learner_commit_received_count",
    "stale_replies",
    "connection_request_count",
    "response_bytes",
    "ensemble_auth_fail",
    "diff_count",
    "response_packet_get_children_cache_misses",
    "connection_revalidate_count",
    "quit_leading_due_to_disloyal_voter",
    "snap_count",
    "unrecoverable_error_count",
    "unsuccessful_handshake",
    "commit_count",
    "stale_sessions_expired",
    "response_packet_get_children_cache_hits",
    "sync_processor_request_queued",
    "outstanding_changes_queued",
    "request_commit_queued",
    "ensemble_auth_skip",
    "skip_learner_request_to_next_processor_count",
    "tls_handshake_exceeded",
    "revalidate_count",
];

/// Summaries of ZooKeeper 3.8's standalone `mntr`, in its order: (name, ADVANCED). BASIC ones
/// expand to avg/min/max/cnt/sum, ADVANCED ones add p50/p95/p99/p999. (The per-namespace
/// summary sets, which depend on the paths requests used, are not tracked.)
pub(crate) const MNTR_SUMMARIES: &[(&str, bool)] = &[
    ("socket_closing_time", false),
    ("proposal_process_time", false),
    ("leader_unavailable_time", false),
    ("node_created_watch_count", false),
    ("session_queues_drained", false),
    ("write_commit_proc_req_queued", false),
    ("connection_token_deficit", false),
    ("read_commit_proc_req_queued", false),
    ("node_deleted_watch_count", false),
    ("startup_txns_load_time", false),
    ("sync_processor_queue_size", false),
    ("follower_sync_time", false),
    ("prep_processor_queue_size", false),
    ("fsynctime", false),
    ("inflight_snap_count", false),
    ("reads_issued_from_session_queue", false),
    ("learner_request_processor_queue_size", false),
    ("snapshottime", false),
    ("unavailable_time", false),
    ("startup_txns_loaded", false),
    ("reads_after_write_in_session_queue", false),
    ("requests_in_session_queue", false),
    ("write_commit_proc_issued", false),
    ("prep_process_time", false),
    ("pending_session_queue_size", false),
    ("time_waiting_empty_pool_in_commit_processor_read_ms", false),
    ("commit_process_time", false),
    ("dbinittime", false),
    ("inflight_diff_count", false),
    ("netty_queued_buffer_capacity", false),
    ("election_time", false),
    ("commit_commit_proc_req_queued", false),
    ("sync_processor_batch_size", false),
    ("node_children_watch_count", false),
    ("write_batch_time_in_commit_processor", false),
    ("read_commit_proc_issued", false),
    ("concurrent_request_processing_in_commit_processor", false),
    ("observer_sync_time", false),
    ("node_changed_watch_count", false),
    ("sync_process_time", false),
    ("startup_snap_load_time", false),
    ("prep_processor_queue_time_ms", true),
    ("jvm_pause_time_ms", true),
    ("close_session_prep_time", true),
    ("read_commitproc_time_ms", true),
    ("updatelatency", true),
    ("local_write_committed_time_ms", true),
    ("request_throttle_queue_time_ms", true),
    ("readlatency", true),
    ("quorum_ack_latency", true),
    ("om_commit_process_time_ms", true),
    ("read_final_proc_time_ms", true),
    ("commit_propagation_latency", true),
    ("dead_watchers_cleaner_latency", true),
    ("write_final_proc_time_ms", true),
    ("proposal_ack_creation_latency", true),
    ("proposal_latency", true),
    ("om_proposal_process_time_ms", true),
    ("sync_processor_queue_and_flush_time_ms", true),
    ("propagation_latency", true),
    ("server_write_committed_time_ms", true),
    ("sync_processor_queue_time_ms", true),
    ("sync_processor_queue_flush_time_ms", true),
    ("write_commitproc_time_ms", true),
];

/// A summary's values: (min, max, cnt, sum); avg is derived.
#[derive(Default)]
struct Summary {
    min: u64,
    max: u64,
    cnt: u64,
    sum: u64,
    /// A finer sum for the average, when known.
    avg: Option<f64>,
}

/// (max open files, open files) of the process, from `/proc`; 0 where unknown.
pub(crate) fn file_descriptors() -> (u64, u64) {
    let max = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l["Max open files".len()..].split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    (max, open)
}

/// ZooKeeper's ZabState of a member, as `zabstate` and `mntr`'s `zk_peer_state` name it.
fn zab_phase(r: &crate::replica::Replica) -> &'static str {
    match (r.zab.role, r.zab.established) {
        (_, true) => "broadcast",
        (crate::zab::Role::Looking, _) => "election",
        _ => "synchronization",
    }
}

/// `mntr`: `zk_<key>\t<value>` lines.
pub(crate) fn mntr(core: &Core) -> String {
    let (min, avg, max) = latency(core);
    let (_, watches) = core.watches.summary();
    let (max_fds, open_fds) = file_descriptors();
    let mut out = String::new();
    let _ = writeln!(out, "zk_version\t{}", version());
    let _ = writeln!(out, "zk_server_state\t{}", core.mode());
    if let Some(r) = core.replica.as_ref() {
        use crate::zab::Role;
        // QuorumZooKeeperServer's peer state ("following - broadcast"; ZooKeeper's election
        // phase adds nothing to the role), and an observer's learner master.
        let state = match r.zab.role {
            Role::Looking => "looking".to_string(),
            Role::Leading => format!("leading - {}", zab_phase(r)),
            Role::Following(_) => format!("following - {}", zab_phase(r)),
            Role::Observing(_) => format!("observing - {}", zab_phase(r)),
        };
        let _ = writeln!(out, "zk_peer_state\t{state}");
        if let Role::Observing(master) = r.zab.role {
            let _ = writeln!(out, "zk_observer_master_id\t{master}");
        }
        let _ = writeln!(out, "zk_quorum_size\t{}", r.zab.cfg.voters.len());
        // The leader's gauges (LeaderZooKeeperServer's); a follower's with
        // observerMasterPort (FollowerZooKeeperServer's).
        let synced_observers = r.zab.observing_learners().len();
        if r.zab.is_leader() {
            let _ = writeln!(out, "zk_learners\t{}", r.zab.learner_count());
            let _ = writeln!(out, "zk_synced_followers\t{}", r.zab.synced_followers());
            let non_voting = r.zab.synced_non_voting_followers();
            let _ = writeln!(out, "zk_synced_non_voting_followers\t{non_voting}");
            let _ = writeln!(out, "zk_synced_observers\t{synced_observers}");
            let _ = writeln!(out, "zk_pending_syncs\t{}", r.zab.pending_syncs());
            let uptime = r.leading_since.map_or(0, |t| t.elapsed().as_millis());
            let _ = writeln!(out, "zk_leader_uptime\t{uptime}");
            let (last, min, max) = r.zab.proposal_sizes();
            let _ = writeln!(out, "zk_last_proposal_size\t{last}");
            let _ = writeln!(out, "zk_max_proposal_size\t{max}");
            let _ = writeln!(out, "zk_min_proposal_size\t{min}");
        } else if matches!(r.zab.role, Role::Following(_)) && core.cfg.observer_master_port > 0 {
            let _ = writeln!(out, "zk_synced_observers\t{synced_observers}");
        }
    }
    for key in MNTR_METRICS {
        let value = match *key {
            "ephemerals_count" => core.tree.ephemeral_count().to_string(),
            "num_alive_connections" => alive_connections(core).to_string(),
            "avg_latency" => java_double(avg),
            "outstanding_requests" => core.stats.outstanding.to_string(),
            "znode_count" => node_count(core).to_string(),
            "global_sessions" => core.sessions.len().to_string(),
            "packets_sent" => core.stats.packets_sent.to_string(),
            "packets_received" => core.stats.packets_received.to_string(),
            "connection_drop_probability" => java_double(0.0),
            "watch_count" => watches.to_string(),
            "min_latency" => min.to_string(),
            "max_file_descriptor_count" => max_fds.to_string(),
            "approximate_data_size" => core.tree.approximate_data_size().to_string(),
            "open_file_descriptor_count" => open_fds.to_string(),
            "uptime" => core.started.elapsed().as_millis().to_string(),
            "max_latency" => max.to_string(),
            "digest_mismatches_count" => core.stats.digest_mismatches.to_string(),
            _ => "0".to_string(),
        };
        let _ = writeln!(out, "zk_{key}\t{value}");
    }
    for (name, advanced) in MNTR_SUMMARIES {
        let s = match *name {
            // One fsync per group commit; only count and total are tracked.
            "fsynctime" if core.stats.commits > 0 => Summary {
                cnt: core.stats.commits,
                sum: core.stats.fsync_total_us / 1000,
                avg: Some(core.stats.fsync_total_us as f64 / 1000.0 / core.stats.commits as f64),
                ..Default::default()
            },
            _ => Summary::default(),
        };
        let avg = match (s.avg, s.cnt) {
            (Some(a), _) => a,
            (None, 0) => 0.0,
            (None, n) => s.sum as f64 / n as f64,
        };
        let _ = writeln!(out, "zk_avg_{name}\t{}", java_double(round4(avg)));
        let _ = writeln!(out, "zk_min_{name}\t{}", s.min);
        let _ = writeln!(out, "zk_max_{name}\t{}", s.max);
        let _ = writeln!(out, "zk_cnt_{name}\t{}", s.cnt);
        let _ = writeln!(out, "zk_sum_{name}\t{}", s.sum);
        if *advanced {
            // Percentiles are not tracked.
            for p in ["p50", "p95", "p99", "p999"] {
                let _ = writeln!(out, "zk_{p}_{name}\t0");
            }
        }
    }
    // The learners' queue summaries (a leader's, or an observer master's), by learner id.
    let queues = core
        .replica
        .as_ref()
        .map(|r| r.peers.learner_queues())
        .unwrap_or_default();
    for (sid, q) in &queues {
        if let Some(b) = q.size() {
            basic_lines(
                &mut out,
                &format!("{sid}_{}", crate::metrics::LEARNER_SETS[0]),
                &b,
            );
        }
    }
    for (sid, q) in &queues {
        let time = crate::quorum::lock(&q.time).clone();
        if let Some(b) = time.basic {
            let name = format!("{sid}_{}", crate::metrics::LEARNER_SETS[1]);
            basic_lines(&mut out, &name, &b);
            for (p, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)] {
                let _ = writeln!(out, "zk_{p}_{name}\t{}", time.percentile(q));
            }
        }
    }
    // The per-namespace summary sets, each key as ZooKeeper's AvgMinMaxCounterSet names it.
    let [writes, reads] = crate::metrics::NAMESPACE_SETS;
    for (set, stats) in [(writes, &core.tree.writes), (reads, &core.reads)] {
        for (ns, b) in stats.iter() {
            basic_lines(&mut out, &format!("{ns}_{set}"), b);
        }
    }
    out
}

/// A BASIC summary's five `mntr` lines (a summary set's member is named `<key>_<set>`).
fn basic_lines(out: &mut String, name: &str, b: &crate::metrics::Basic) {
    let avg = b.sum as f64 / b.cnt.max(1) as f64;
    let _ = writeln!(out, "zk_avg_{name}\t{}", java_double(round4(avg)));
    let _ = writeln!(out, "zk_min_{name}\t{}", b.min);
    let _ = writeln!(out, "zk_max_{name}\t{}", b.max);
    let _ = writeln!(out, "zk_cnt_{name}\t{}", b.cnt);
    let _ = writeln!(out, "zk_sum_{name}\t{}", b.sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(2.165), "2.165");
        assert_eq!(java_double(round4(47.166_666)), "47.1667");
        assert_eq!(java_double(3.0), "3.0");
        assert_eq!(java_double(1.0e7), "1.0E7");
        assert_eq!(java_double(1.5e-4), "1.5E-4");
    }

    #[test]
    fn dates_print_as_java_does() {
        // The dump capture: Thu Nov 26 06:03:56 UTC 2026.
        assert_eq!(java_date(1_795_673_036_000), "Thu Nov 26 06:03:56 UTC 2026");
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn addresses_print_as_java_does() {
        let v4: SocketAddr = "127.0.0.1:56636".parse().expect("address");
        assert_eq!(java_addr(v4), "/127.0.0.1:56636");
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:7".parse().expect("address");
        assert_eq!(java_addr(mapped), "/10.0.0.1:7");
        let v6: SocketAddr = "[::1]:2181".parse().expect("address");
        assert_eq!(java_addr(v6), "/[0:0:0:0:0:0:0:1]:2181");
    }

    #[test]
    fn an_observer_shows_the_learner_handlers_fields_in_its_order() {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = crate::quorum::LinkStats::new(Some("127.0.0.1:40123".parse().unwrap()));
        stats.last_zxid.store(0x1_0000_0003, Relaxed);
        stats.requests.fetch_add(2, Relaxed);
        let Json::Obj(fields) = observer_info(4, &stats) else {
            panic!("not an object");
        };
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "remote_socket_address",
                "sid",
                "established",
                "queued_packets",
                "queued_packets_size",
                "packets_received",
                "packets_sent",
                "requests",
                "last_zxid"
            ]
        );
        // The address as Java's InetSocketAddress.toString() gives an accepted socket's.
        assert_eq!(fields[0].1, Json::str("/127.0.0.1:40123"));
        assert_eq!(fields[1].1, Json::int(4));
        assert_eq!(fields[2].1, Json::int(stats.established_ms));
        assert_eq!(fields[7].1, Json::int(2));
        assert_eq!(fields[8].1, Json::int(0x1_0000_0003_i64));
        // observer_connection_stat_reset: counters and last zxid start again.
        stats.reset();
        let Json::Obj(fields) = observer_info(4, &stats) else {
            panic!("not an object");
        };
        assert_eq!(fields[7].1, Json::int(0));
        assert_eq!(fields[8].1, Json::int(-1));
    }

    #[test]
    fn system_properties_are_the_ones_with_a_meaning_here() {
        let mut cfg = crate::config::Config::default();
        cfg.force_sync = false;
        let props: BTreeMap<&str, String> = zookeeper_properties(&cfg).into_iter().collect();
        assert_eq!(
            props.get("jute.maxbuffer"),
            Some(&jute::DEFAULT_MAX_BUFFER.to_string())
        );
        assert_eq!(
            props.get("zookeeper.forceSync").map(String::as_str),
            Some("no")
        );
        assert_eq!(
            props.get("zookeeper.skipACL").map(String::as_str),
            Some("no")
        );
        // The default whitelist, as the words it lets through.
        let whitelist = props
            .get("zookeeper.4lw.commands.whitelist")
            .expect("whitelist");
        assert!(whitelist.split(',').any(|w| w == "srvr"), "{whitelist}");
        assert!(!props.contains_key("java.security.auth.login.config"));
        assert!(props
            .keys()
            .all(|k| !k.starts_with("java.") || k.contains("auth")));
        // Every OS property comes from the environment rows, none invented.
        let env: Vec<&str> = environment().into_iter().map(|(k, _)| k).collect();
        for k in OS_PROPERTIES {
            assert!(env.contains(k), "{k}");
        }
        let seps: BTreeMap<&str, &str> = SEPARATORS.into_iter().collect();
        if cfg!(unix) {
            assert_eq!(seps["file.separator"], "/");
            assert_eq!(seps["line.separator"], "\n");
            assert_eq!(seps["path.separator"], ":");
        }
    }
}
