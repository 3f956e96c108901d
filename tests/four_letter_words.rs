#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Four-letter words against a real server: each word goes over its own raw TCP connection
//! (the 4 bytes, then read to EOF) and its output is checked line by line against the shapes
//! Apache ZooKeeper 3.8 prints (standalone), plus the whitelist refusal and the default
//! whitelist.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

const ALL_WORDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// Sends `bytes` on a fresh connection and reads the answer to EOF; also returns the local
/// address of that connection.
fn send_word(addr: SocketAddr, bytes: &[u8]) -> (String, SocketAddr) {
    let mut s: TcpStream = raw_connect(addr);
    let local = s.local_addr().expect("local addr");
    s.write_all(bytes).expect("write word");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // Bytes the server did not read (stmk's argument) may turn its close into a reset.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    (String::from_utf8(out).expect("utf-8 answer"), local)
}

fn word(addr: SocketAddr, w: &str) -> String {
    send_word(addr, w.as_bytes()).0
}

/// The lines of a text that must end with a newline (a final empty line stays visible).
fn lines(text: &str) -> Vec<&str> {
    text.strip_suffix('\n')
        .unwrap_or_else(|| panic!("no final newline in {text:?}"))
        .split('\n')
        .collect()
}

/// A tiny pattern matcher: literal text, `{n}` digits, `{x}` lower-case hex digits, `{d}` a
/// Java double (digits with a dot), `{*}` any non-empty text.
fn matches(pat: &str, s: &str) -> bool {
    if pat.is_empty() {
        return s.is_empty();
    }
    if let Some(rest) = pat.strip_prefix('{') {
        let (tok, rest) = rest.split_once('}').expect("pattern token");
        let class: fn(char) -> bool = match tok {
            "n" => |c| c.is_ascii_digit(),
            "x" => |c| c.is_ascii_digit() || ('a'..='f').contains(&c),
            "d" => |c| c.is_ascii_digit() || c == '.',
            "*" => |_| true,
            _ => panic!("unknown token {tok}"),
        };
        let mut ends: Vec<usize> = Vec::new();
        for (i, c) in s.char_indices() {
            if !class(c) {
                break;
            }
            ends.push(i + c.len_utf8());
        }
        return ends.into_iter().rev().any(|end| {
            let taken = &s[..end];
            (tok != "d"
                || (taken.contains('.') && !taken.starts_with('.') && !taken.ends_with('.')))
                && matches(rest, &s[end..])
        });
    }
    let mut pc = pat.chars();
    let mut sc = s.chars();
    match (pc.next(), sc.next()) {
        (Some(a), Some(b)) if a == b => matches(pc.as_str(), sc.as_str()),
        _ => false,
    }
}

#[track_caller]
fn assert_match(pat: &str, s: &str) {
    assert!(matches(pat, s), "{s:?} does not match {pat:?}");
}

#[track_caller]
fn assert_lines(text: &str, pats: &[&str]) {
    let got = lines(text);
    assert_eq!(got.len(), pats.len(), "line count of {text:?}");
    for (l, p) in got.iter().zip(pats) {
        assert_match(p, l);
    }
}

/// `Thu Nov 26 06:03:56 UTC 2026`.
#[track_caller]
fn assert_java_date(s: &str) {
    let f: Vec<&str> = s.split(' ').collect();
    assert_eq!(f.len(), 6, "date {s:?}");
    assert!(
        ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].contains(&f[0]),
        "{s:?}"
    );
    assert!(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            .contains(&f[1]),
        "{s:?}"
    );
    assert!(f[2].len() == 2 && matches("{n}", f[2]), "{s:?}");
    assert_match("{n}:{n}:{n}", f[3]);
    assert_eq!(f[3].len(), 8, "{s:?}");
    assert_eq!(f[4], "UTC");
    assert!(f[5].len() == 4 && matches("{n}", f[5]), "{s:?}");
}

fn refusal(w: &str) -> String {
    format!("{w} is not executed because it is not in the whitelist.\n")
}

const SRVR_STATS: &[&str] = &[
    "Latency min/avg/max: {n}/{d}/{n}",
    "Received: {n}",
    "Sent: {n}",
    "Connections: {n}",
    "Outstanding: 0",
    "Zxid: 0x{x}",
    "Mode: standalone",
    "Node count: {n}",
];

/// A server with two sessions: `a` owns an ephemeral, a data watch on /t, an exists watch on
/// the missing /t/missing and a child watch on /t; `b` only read /t.
struct Setup {
    s: TestServer,
    a: Client,
    b: Client,
}

fn setup() -> Setup {
    let s = TestServer::start("4lw.commands.whitelist=*");
    let mut a = Client::connect(s.addr);
    assert_eq!(a.call(create("/t", b"x", 0)).err(), 0);
    assert_eq!(a.call(create("/t/eph", b"", 1)).err(), 0);
    assert_eq!(a.call(get_data("/t", true)).err(), 0);
    assert_ne!(a.call(exists("/t/missing", true)).err(), 0);
    assert_eq!(a.call(children2("/t", true)).err(), 0);
    let mut b = Client::connect(s.addr);
    assert_eq!(b.call(exists("/t", false)).err(), 0);
    Setup { s, a, b }
}

fn port(c: &Client) -> u16 {
    c.stream.local_addr().expect("local addr").port()
}

#[test]
fn simple_words_answer_exactly_as_zookeeper() {
    let Setup { s, .. } = setup();
    assert_eq!(word(s.addr, "ruok"), "imok");
    assert_eq!(word(s.addr, "isro"), "rw");
    // ZooTrace's default mask, no newline; stmk answers the mask it was sent.
    assert_eq!(word(s.addr, "gtmk"), "306");
    let stmk = |mask: i64| {
        let mut w = b"stmk".to_vec();
        w.extend_from_slice(&mask.to_be_bytes());
        send_word(s.addr, &w).0
    };
    assert_eq!(stmk(1023), "1023");
    assert_eq!(word(s.addr, "gtmk"), "1023");
    assert_eq!(stmk(306), "306");
    assert_eq!(word(s.addr, "gtmk"), "306");
    assert_lines(
        &word(s.addr, "dirs"),
        &["datadir_size: {n}", "logdir_size: {n}"],
    );
    // Not a ZooKeeper word: a frame length to ZooKeeper, closed without a byte.
    assert_eq!(word(s.addr, "lsnp"), "");
}

#[test]
fn srvr_stat_and_cons_list_every_connection_including_their_own() {
    let Setup { s, a, b } = setup();
    let srvr = word(s.addr, "srvr");
    let mut pats = vec!["Zookeeper version: 3.9.{*}, built on {*}"];
    pats.extend_from_slice(SRVR_STATS);
    assert_lines(&srvr, &pats);
    // a, b and the 4lw connection itself.
    assert!(srvr.contains("\nConnections: 3\n"), "{srvr}");

    let (stat, me) = send_word(s.addr, b"stat");
    let l = lines(&stat);
    assert_match("Zookeeper version: 3.9.{*}, built on {*}", l[0]);
    assert_eq!(l[1], "Clients:");
    let clients: BTreeSet<&str> = l[2..5].iter().copied().collect();
    let expected: BTreeSet<String> = [
        format!(" /127.0.0.1:{}[1](queued=0,recved=6,sent=6)", port(&a)),
        format!(" /127.0.0.1:{}[1](queued=0,recved=2,sent=2)", port(&b)),
        format!(" /127.0.0.1:{}[0](queued=0,recved=1,sent=0)", me.port()),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        clients,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    assert_eq!(l[5], "");
    assert_eq!(l.len(), 6 + SRVR_STATS.len());
    for (line, pat) in l[6..].iter().zip(SRVR_STATS) {
        assert_match(pat, line);
    }
    assert_eq!(l[9], "Connections: 3");

    let (cons, me) = send_word(s.addr, b"cons");
    let l = lines(&cons);
    assert_eq!(l.len(), 4, "{cons}");
    assert_eq!(l[3], "", "cons ends with an empty line");
    let long = |c: &Client, recved: u32, lop: &str| {
        format!(
            " /127.0.0.1:{}[1](queued=0,recved={recved},sent={recved},sid=0x{:x},lop={lop},est={{n}},to=30000,lcxid=0x{:x},lzxid=0x{{x}},lresp={{n}},llat={{n}},minlat={{n}},avglat={{n}},maxlat={{n}})",
            port(c),
            c.session_id,
            c.xid
        )
    };
    let pats = [
        long(&a, 6, "GETC"),
        long(&b, 2, "EXIS"),
        format!(" /127.0.0.1:{}[0](queued=0,recved=1,sent=0)", me.port()),
    ];
    for pat in &pats {
        assert_eq!(
            l[..3].iter().filter(|line| matches(pat, line)).count(),
            1,
            "{pat} in {cons}"
        );
    }
    // The last response time is a real wall-clock time for sessions that were answered.
    for line in l[..3].iter().filter(|line| line.contains(",sid=")) {
        let lresp: i64 = line
            .split(",lresp=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(lresp > 1_700_000_000_000, "{line}");
    }
}

#[test]
fn crst_and_srst_reset_the_counters() {
    let Setup { s, a, .. } = setup();
    assert_eq!(word(s.addr, "crst"), "Connection stats reset.\n");
    let cons = word(s.addr, "cons");
    let pat = format!(
        " /127.0.0.1:{}[1](queued=0,recved=0,sent=0,sid=0x{:x},lop=NA,est={{n}},to=30000,lcxid=0x{{x}},lzxid=0xffffffffffffffff,lresp={{n}},llat={{n}},minlat={{n}},avglat={{n}},maxlat={{n}})",
        port(&a),
        a.session_id
    );
    assert!(lines(&cons).iter().any(|l| matches(&pat, l)), "{cons}");

    assert_eq!(word(s.addr, "srst"), "Server stats reset.\n");
    // Only the srvr itself was received since.
    let srvr = word(s.addr, "srvr");
    assert!(srvr.contains("\nReceived: 1\nSent: 0\n"), "{srvr}");
}

#[test]
fn conf_envi_and_hash_have_zookeepers_keys() {
    let Setup { s, .. } = setup();
    let conf = word(s.addr, "conf");
    let db = format!("{}/zkrs-db", s.dir.display());
    let log = format!("{}/zkrs-log", s.dir.display());
    assert_lines(
        &conf,
        &[
            "clientPort={n}",
            "secureClientPort=-1",
            &format!("dataDir={db}"),
            "dataDirSize={n}",
            &format!("dataLogDir={log}"),
            "dataLogSize={n}",
            "tickTime=2000",
            "maxClientCnxns=60",
            "minSessionTimeout=4000",
            "maxSessionTimeout=40000",
            "clientPortListenBacklog=-1",
            "serverId=0",
        ],
    );

    let envi = word(s.addr, "envi");
    let l = lines(&envi);
    assert_eq!(l[0], "Environment:");
    let keys: Vec<&str> = l[1..]
        .iter()
        .map(|l| l.split_once('=').expect("key=value").0)
        .collect();
    assert_eq!(
        keys,
        [
            "zookeeper.version",
            "host.name",
            "java.version",
            "java.vendor",
            "java.home",
            "java.class.path",
            "java.library.path",
            "java.io.tmpdir",
            "java.compiler",
            "os.name",
            "os.arch",
            "os.version",
            "user.name",
            "user.home",
            "user.dir",
            "os.memory.free",
            "os.memory.max",
            "os.memory.total",
        ]
    );
    assert_match("zookeeper.version=3.9.{*}, built on {*}", l[1]);
    assert_eq!(l[3], "java.version=n/a");
    for mem in &l[16..] {
        assert_match("os.memory.{*}={n}MB", mem);
    }

    // The digest log holds the tree digest of every 128th zxid: none yet.
    assert_eq!(word(s.addr, "hash"), "");
    let mut c = Client::connect(s.addr);
    while c.call(create("/h", b"", 2)).header.zxid < 0x80 {}
    let hash = word(s.addr, "hash");
    assert_lines(&hash, &["80: {n}"]);
    // Unchanged by reads and by the next writes until zxid 0x100.
    assert_eq!(c.call(exists("/h0000000001", false)).err(), 0);
    c.call(create("/h", b"", 2));
    assert_eq!(word(s.addr, "hash"), hash);
}

/// Parses `ExpiryQueue.dump` output starting at `l[0]` (`<prefix>Sets (b)/(n):`); returns
/// the elements and the index after them.
fn expiry_sets(l: &[&str], prefix: &str) -> (Vec<String>, usize) {
    let head = l[0]
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{:?} does not start with {prefix:?}", l[0]));
    assert_match("Sets ({n})/({n}):", head);
    let nums: Vec<usize> = head
        .trim_start_matches("Sets (")
        .trim_end_matches("):")
        .split(")/(")
        .map(|n| n.parse().expect("count"))
        .collect();
    let mut i = 1;
    let mut elems = Vec::new();
    for _ in 0..nums[0] {
        let (count, date) = l[i]
            .strip_suffix(':')
            .and_then(|x| x.split_once(" expire at "))
            .unwrap_or_else(|| panic!("bucket line {:?}", l[i]));
        assert_java_date(date);
        let count: usize = count.parse().expect("bucket count");
        for e in &l[i + 1..i + 1 + count] {
            elems.push(
                e.strip_prefix('\t')
                    .expect("tab-indented element")
                    .to_string(),
            );
        }
        i += 1 + count;
    }
    assert_eq!(elems.len(), nums[1], "element count of {prefix}Sets");
    (elems, i)
}

#[test]
fn dump_groups_sessions_ephemerals_and_connections_as_zookeeper() {
    let Setup { s, a, b } = setup();
    let (dump, me) = send_word(s.addr, b"dump");
    let l = lines(&dump);
    assert_eq!(l[0], "SessionTracker dump:");
    let (sessions, mut i) = expiry_sets(&l[1..], "Session ");
    i += 1;
    let sessions: BTreeSet<String> = sessions.into_iter().collect();
    let want: BTreeSet<String> = [a.session_id, b.session_id]
        .iter()
        .map(|s| format!("0x{s:x}"))
        .collect();
    assert_eq!(sessions, want);
    assert_eq!(
        &l[i..i + 5],
        [
            "ephemeral nodes dump:",
            "Sessions with Ephemerals (1):",
            &format!("0x{:x}:", a.session_id),
            "\t/t/eph",
            "Connections dump:",
        ]
    );
    i += 5;
    let (conns, used) = expiry_sets(&l[i..], "Connections ");
    assert_eq!(i + used, l.len(), "nothing after the connections: {dump}");
    let conns: BTreeSet<String> = conns.into_iter().collect();
    let want: BTreeSet<String> = [
        format!(
            "ip: /127.0.0.1:{} sessionId: 0x{:x}",
            port(&a),
            a.session_id
        ),
        format!(
            "ip: /127.0.0.1:{} sessionId: 0x{:x}",
            port(&b),
            b.session_id
        ),
        format!("ip: /127.0.0.1:{} sessionId: 0x0", me.port()),
    ]
    .into_iter()
    .collect();
    assert_eq!(conns, want);
}

#[test]
fn watch_words_list_the_data_watches_only() {
    let Setup { s, a, .. } = setup();
    let sid = format!("0x{:x}", a.session_id);
    // /t (getData), /t/missing (exists); the child watch on /t is not in the data table.
    assert_eq!(
        word(s.addr, "wchs"),
        "1 connections watching 2 paths\nTotal watches:2\n"
    );

    let wchc = word(s.addr, "wchc");
    let l = lines(&wchc);
    assert_eq!(l.len(), 4, "{wchc}");
    assert_eq!(l[0], sid);
    let paths: BTreeSet<&str> = l[1..3]
        .iter()
        .map(|p| p.strip_prefix('\t').expect("tab"))
        .collect();
    assert_eq!(paths, ["/t", "/t/missing"].into_iter().collect());
    assert_eq!(l[3], "");

    let wchp = word(s.addr, "wchp");
    let l = lines(&wchp);
    assert_eq!(l.len(), 5, "{wchp}");
    let mut by_path = BTreeMap::new();
    for pair in l[..4].chunks(2) {
        assert!(pair[0].starts_with('/'), "{wchp}");
        by_path.insert(pair[0], pair[1].strip_prefix('\t').expect("tab"));
    }
    assert_eq!(
        by_path,
        [("/t", sid.as_str()), ("/t/missing", sid.as_str())]
            .into_iter()
            .collect()
    );
    assert_eq!(l[4], "");
}

#[test]
fn mntr_has_zookeepers_keys_in_its_order_tab_separated() {
    // The clients stay connected: their connections and sessions are counted.
    let Setup { s, a: _a, b: _b } = setup();
    let mntr = word(s.addr, "mntr");
    let rows: Vec<(&str, &str)> = lines(&mntr)
        .into_iter()
        .map(|l| l.split_once('\t').expect("tab separated"))
        .collect();
    let keys: Vec<&str> = rows.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        &keys[..12],
        [
            "zk_version",
            "zk_server_state",
            "zk_ephemerals_count",
            "zk_num_alive_connections",
            "zk_avg_latency",
            "zk_outstanding_requests",
            "zk_znode_count",
            "zk_global_sessions",
            "zk_non_mtls_remote_conn_count",
            "zk_last_client_response_size",
            "zk_packets_sent",
            "zk_packets_received",
        ]
    );
    let unique: BTreeSet<&str> = keys.iter().copied().collect();
    assert_eq!(unique.len(), keys.len(), "duplicate keys");
    // 2 text lines, 71 gauges and counters, 41 basic summaries (5 keys each), 23 advanced
    // ones (9 keys each), and the namespace `t`'s writes and reads (5 keys each).
    assert_eq!(keys.len(), 2 + 71 + 41 * 5 + 23 * 9 + 2 * 5);
    for k in [
        "zk_max_file_descriptor_count",
        "zk_open_file_descriptor_count",
        "zk_uptime",
        "zk_approximate_data_size",
        "zk_watch_bytes",
        "zk_revalidate_count",
        "zk_avg_fsynctime",
        "zk_sum_socket_closing_time",
        "zk_p999_write_commitproc_time_ms",
    ] {
        assert!(unique.contains(k), "{k} missing");
    }
    let row: BTreeMap<&str, &str> = rows.iter().copied().collect();
    assert_match("3.9.{*}, built on {*}", row["zk_version"]);
    assert_eq!(row["zk_server_state"], "standalone");
    assert_eq!(row["zk_ephemerals_count"], "1");
    assert_eq!(row["zk_global_sessions"], "2");
    assert_eq!(row["zk_num_alive_connections"], "3");
    assert_eq!(row["zk_watch_count"], "3");
    assert_eq!(row["zk_connection_drop_probability"], "0.0");
    let srvr = word(s.addr, "srvr");
    let nodes = lines(&srvr)
        .into_iter()
        .find_map(|l| l.strip_prefix("Node count: "))
        .expect("node count")
        .to_string();
    assert_eq!(row["zk_znode_count"], nodes);
    for (k, v) in &rows[2..] {
        let doubles = *k == "zk_avg_latency"
            || *k == "zk_connection_drop_probability"
            || k.starts_with("zk_avg_");
        assert_match(if doubles { "{d}" } else { "{n}" }, v);
    }
}

#[test]
fn mntr_counts_reads_and_writes_by_namespace_as_zookeeper() {
    let s = TestServer::start("4lw.commands.whitelist=*");
    let mut c = Client::connect(s.addr);
    assert_eq!(c.call(create("/app", b"12345", 0)).err(), 0);
    assert_eq!(c.call(create("/app/child-1", b"", 0)).err(), 0);
    assert_eq!(c.call(create("/app/ch\u{e9}", b"x", 0)).err(), 0);
    assert_eq!(c.call(set_data("/app", b"123", -1)).err(), 0);
    assert_eq!(c.call(get_data("/app", false)).err(), 0);
    assert_eq!(c.call(exists("/app", false)).err(), 0);
    assert_eq!(c.call(children2("/app", false)).err(), 0);
    assert_ne!(c.call(exists("/nothere", false)).err(), 0);
    assert_eq!(c.call(children2("/", false)).err(), 0);
    assert_eq!(c.call(delete("/app/child-1", -1)).err(), 0);
    let mntr = word(s.addr, "mntr");
    let got: Vec<&str> = lines(&mntr)
        .into_iter()
        .filter(|l| l.contains("per_namespace"))
        .collect();
    // Apache ZooKeeper 3.8.0's lines after the same requests (kazoo): a path's length in
    // UTF-16 units plus the data (writes), plus the data, the child names or nothing and 68
    // bytes of stat (reads); "/" and a missing node count nothing.
    assert_eq!(
        got,
        [
            "zk_avg_app_write_per_namespace\t9.8",
            "zk_min_app_write_per_namespace\t7",
            "zk_max_app_write_per_namespace\t12",
            "zk_cnt_app_write_per_namespace\t5",
            "zk_sum_app_write_per_namespace\t49",
            "zk_avg_app_read_per_namespace\t76.3333",
            "zk_min_app_read_per_namespace\t72",
            "zk_max_app_read_per_namespace\t82",
            "zk_cnt_app_read_per_namespace\t3",
            "zk_sum_app_read_per_namespace\t229",
        ]
    );
}

#[test]
fn words_outside_the_whitelist_are_refused() {
    let s = TestServer::start("4lw.commands.whitelist=ruok, mntr");
    assert_eq!(word(s.addr, "ruok"), "imok");
    assert!(word(s.addr, "mntr").starts_with("zk_version\t"));
    // srvr is always enabled, as in ZooKeeper.
    let mut pats = vec!["Zookeeper version: 3.9.{*}, built on {*}"];
    pats.extend_from_slice(SRVR_STATS);
    assert_lines(&word(s.addr, "srvr"), &pats);
    for w in ALL_WORDS {
        if !["ruok", "mntr", "srvr"].contains(w) {
            assert_eq!(word(s.addr, w), refusal(w), "{w}");
        }
    }
    assert_eq!(word(s.addr, "lsnp"), "");
}

#[test]
fn default_whitelist_is_the_informational_words() {
    let s = TestServer::start("");
    let enabled = [
        "ruok", "stat", "srvr", "conf", "cons", "envi", "mntr", "wchs", "isro", "dirs",
    ];
    for w in ALL_WORDS {
        let out = word(s.addr, w);
        if enabled.contains(w) {
            assert_ne!(out, refusal(w), "{w} should be enabled");
            assert!(!out.is_empty(), "{w} answered nothing");
        } else {
            assert_eq!(out, refusal(w), "{w} should be refused");
        }
    }
}

/// `GET path` on the admin port: (status line, body).
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))?
        .parse()
        .ok()?;
    assert_eq!(body.len(), length, "{head}");
    Some((status, body.to_string()))
}

#[test]
fn the_admin_server_answers_zookeepers_json_commands() {
    let port = free_port();
    let s = TestServer::start(&format!(
        "admin.serverPort={port}\nadmin.serverAddress=127.0.0.1\n"
    ));
    let mut c = Client::connect(s.addr);
    assert_eq!(c.call(create("/adm", b"x", 0)).err(), 0);
    assert_eq!(c.call(create("/eph", b"x", 1)).err(), 0);
    // The digest log takes every 128th zxid.
    for i in 0..126 {
        assert_eq!(c.call(set_data("/adm", b"y", i)).err(), 0);
    }
    assert_eq!(c.call(get_data("/adm", true)).err(), 0);
    let json = |path: &str| {
        let (status, body) = http_get(port, path).unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK", "{path}");
        body
    };
    assert_eq!(
        json("/commands/ruok"),
        "{\n  \"command\" : \"ruok\",\n  \"error\" : null\n}"
    );
    // Aliases answer with the primary name; numbers stay numbers.
    let wanted = [
        ("/commands/mntr", "\n  \"server_state\" : \"standalone\",\n"),
        // The six nodes, and the root once more, as ZooKeeper counts it.
        ("/commands/mntr", "\n  \"znode_count\" : 7,\n"),
        ("/commands/mntr", "\n  \"num_alive_connections\" : 1,\n"),
        (
            "/commands/mntr",
            "\n  \"command\" : \"monitor\",\n  \"error\" : null\n}",
        ),
        ("/commands/srvr?x=1", "\"server_state\" : \"standalone\""),
        (
            "/commands/srvr",
            "\n  \"node_count\" : 7,\n  \"command\" : \"server_stats\",",
        ),
        (
            "/commands/stat",
            "\n  \"connections\" : [ {\n    \"remote_socket_address\" : \"127.0.0.1:",
        ),
        ("/commands/cons", "\"last_operation\" : \"GETD\""),
        (
            "/commands/dump",
            "\"session_id_to_ephemeral_paths\" : {\n    \"",
        ),
        ("/commands/dump", "\" : [ \"/eph\" ]"),
        ("/commands/configuration", "\n  \"tick_time\" : 2000,\n"),
        ("/commands/isro", "\"read_only\" : false"),
        ("/commands/dirs", "\"datadir_size\" : "),
        ("/commands/envi", "\"os.name\" : \"Linux\""),
        ("/commands/gtmk", "\"tracemask\" : 306"),
        // The mask is the process's: set to what it is, so that other tests see no change.
        ("/commands/stmk?traceMask=306", "\"tracemask\" : 306"),
        (
            "/commands/set_trace_mask",
            "\"error\" : \"setTraceMask requires long traceMask argument\"",
        ),
        ("/commands/stmk?traceMask=x", "argument, got x\""),
        ("/commands/icfg", "\"command\" : \"initial_configuration\""),
        (
            "/commands/hash",
            "\"digests\" : [ {\n    \"zxid\" : 128,\n    \"digest_version\" : 2,\n",
        ),
        ("/commands", "<a href=\"/commands/monitor\">monitor</a>"),
        (
            "/commands/wchp",
            "\"path_to_session_ids\" : {\n    \"/adm\" : [ ",
        ),
        ("/commands/wchc", "\" : [ \"/adm\" ]\n  },"),
    ];
    for (path, want) in wanted {
        let body = json(path);
        assert!(body.contains(want), "{path}: {body}");
    }
    assert_eq!(
        json("/commands/wchs"),
        "{\n  \"num_connections\" : 1,\n  \"num_paths\" : 1,\n  \"num_total_watches\" : 1,\n  \
         \"command\" : \"watch_summary\",\n  \"error\" : null\n}"
    );
    assert_eq!(
        json("/commands/nosuch"),
        "{\n  \"command\" : \"nosuch\",\n  \"error\" : \"Unknown command: nosuch\"\n}"
    );
    assert_eq!(
        json("/commands/lead"),
        "{\n  \"error\" : \"server is not initialized\",\n  \"command\" : \"leader\"\n}"
    );
    let (status, _) = http_get(port, "/elsewhere").unwrap();
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    drop(s);
    // admin.enableServer=false: nothing listens.
    let port = free_port();
    let _s = TestServer::start(&format!(
        "admin.enableServer=false\nadmin.serverPort={port}\n"
    ));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// The value of `key` in a command's JSON (a top-level number, or a string without its
/// quotes).
fn json_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let at = body.find(&format!("\n  \"{key}\" : "))? + key.len() + 8;
    let rest = &body[at..];
    let end = rest.find(['\n', ','])?;
    Some(rest[..end].trim_matches('"'))
}

fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `last_snapshot`'s (zxid, timestamp), checked against LastSnapshotCommand's layout.
fn last_snapshot(port: u16) -> (i64, i64) {
    let (status, body) = http_get(port, "/commands/lsnp").unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let hex = json_value(&body, "zxid").unwrap().to_string();
    let secs: i64 = json_value(&body, "timestamp").unwrap().parse().unwrap();
    assert_eq!(
        body,
        format!(
            "{{\n  \"zxid\" : \"{hex}\",\n  \"timestamp\" : {secs},\n  \
             \"command\" : \"last_snapshot\",\n  \"error\" : null\n}}"
        )
    );
    // Long.toHexString: two's complement, so a u64 in hex.
    (u64::from_str_radix(&hex, 16).unwrap() as i64, secs)
}

/// `server_stats`' last processed zxid.
fn last_processed_zxid(port: u16) -> i64 {
    let (_, body) = http_get(port, "/commands/srvr").unwrap();
    let rest = body.split("\"last_processed_zxid\" : ").nth(1).unwrap();
    rest.split(',').next().unwrap().parse().unwrap()
}

#[test]
fn the_admin_server_answers_observers_system_properties_and_last_snapshot() {
    let port = free_port();
    let cfg = format!(
        "admin.serverPort={port}\nadmin.serverAddress=127.0.0.1\n4lw.commands.whitelist=*\n\
         jute.maxbuffer=2000000\n"
    );
    let before = unix_secs();
    let s = TestServer::start(&cfg);
    // The admin port is bound as the server starts serving: this waits for it.
    http_get_typed(port, "/commands/ruok");
    let json = |path: &str| {
        let (status, body) = http_get(port, path).unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK", "{path}");
        body
    };
    // A standalone server has no observers and nothing to reset, as ZooKeeper's
    // SyncedObserverConsCommand and ObserverCnxnStatResetCommand answer on one.
    let none = "{\n  \"synced_observers\" : 0,\n  \"observers\" : [ ],\n  \
                \"command\" : \"observers\",\n  \"error\" : null\n}";
    assert_eq!(json("/commands/observers"), none);
    assert_eq!(json("/commands/obsr"), none);
    let reset = "{\n  \"command\" : \"observer_connection_stat_reset\",\n  \"error\" : null\n}";
    assert_eq!(json("/commands/observer_connection_stat_reset"), reset);
    assert_eq!(json("/commands/orst"), reset);

    // last_snapshot: the tree saved, at its zxid, since a time after the start.
    let mut c = Client::connect(s.addr);
    assert_eq!(c.call(create("/snap", b"x", 0)).err(), 0);
    assert_eq!(c.call(set_data("/snap", b"y", 0)).err(), 0);
    let (zxid, secs) = last_snapshot(port);
    assert_eq!(zxid, last_processed_zxid(port));
    assert!(zxid > 0);
    assert!((before..=unix_secs()).contains(&secs), "{secs}");
    // srst resets the server's counters, not the last save.
    assert!(json("/commands/srst").contains("\"command\" : \"stat_reset\""));
    assert_eq!(last_snapshot(port), (zxid, secs));
    drop(c);

    // system_properties: sorted by name, every value a string; the platform's and
    // ZooKeeper's properties zkrs has, none of the JVM's own.
    let sysp = json("/commands/sysp");
    assert!(
        sysp.starts_with("{\n  \"file.separator\" : \"/\",\n"),
        "{sysp}"
    );
    for want in [
        "\n  \"jute.maxbuffer\" : \"2000000\",\n",
        "\n  \"line.separator\" : \"\\n\",\n",
        "\n  \"os.name\" : \"Linux\",\n",
        "\n  \"path.separator\" : \":\",\n",
        "\n  \"zookeeper.4lw.commands.whitelist\" : \"*\",\n",
        "\n  \"zookeeper.admin.enableServer\" : \"true\",\n",
        "\n  \"zookeeper.forceSync\" : \"yes\",\n",
    ] {
        assert!(sysp.contains(want), "{want} in {sysp}");
    }
    assert!(
        sysp.ends_with("\n  \"command\" : \"system_properties\",\n  \"error\" : null\n}"),
        "{sysp}"
    );
    assert!(!sysp.contains("java.version"), "{sysp}");
    let keys: Vec<&str> = sysp
        .lines()
        .filter_map(|l| l.strip_prefix("  \"")?.split_once("\" : "))
        .filter(|(k, _)| !["command", "error"].contains(k))
        .map(|(k, v)| {
            assert!(v.starts_with('"'), "{k} is not a string: {v}");
            k
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(keys, sorted, "sorted, once each");
    assert_eq!(json("/commands/system_properties"), sysp);

    // In 3.8 these are AdminServer commands only: no four-letter word answers.
    for w in ["obsr", "orst", "sysp", "lsnp"] {
        assert_eq!(word(s.addr, w), "", "{w}");
    }

    // A restart recovers the saved tree, as ZooKeeper snapshots what it loads at start.
    let dir = s.dir.clone();
    let tmp = s.stop();
    let restarted = unix_secs();
    let s = TestServer::start_in(&dir, &cfg);
    http_get_typed(port, "/commands/ruok");
    let (again, secs) = last_snapshot(port);
    assert!(again >= zxid, "{again:x} < {zxid:x}");
    assert_eq!(again, last_processed_zxid(port));
    assert!(secs >= restarted, "{secs} < {restarted}");
    drop(s);
    drop(tmp);
}

#[test]
fn a_fresh_server_counts_five_nodes_as_zookeeper_does() {
    // ZooKeeper's node map holds the root twice ("" and "/") beside /zookeeper,
    // /zookeeper/quota and /zookeeper/config: `srvr` says 5 on a fresh 3.8 server.
    let s = TestServer::start("4lw.commands.whitelist=*");
    assert!(word(s.addr, "srvr").contains("\nNode count: 5\n"));
    assert!(word(s.addr, "mntr").contains("\nzk_znode_count\t5\n"));
}

/// `GET path` on `port`: (status line, Content-Type, body).
fn http_get_typed(port: u16, path: &str) -> (String, String, String) {
    // The server binds its HTTP ports as it starts serving: give it a moment.
    let t0 = std::time::Instant::now();
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if t0.elapsed() > std::time::Duration::from_secs(10) => panic!("{port}: {e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    };
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let kind = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or_default();
    let status = head.lines().next().unwrap_or_default();
    (status.to_string(), kind.to_string(), body.to_string())
}

/// The value of the sample `name` (with its labels) in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

#[test]
fn prometheus_metrics_are_served_as_zookeepers_provider_serves_them() {
    let port = free_port();
    let s = TestServer::start(&format!(
        "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
         metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort={port}\n\
         4lw.commands.whitelist=*\n"
    ));
    let mut c = Client::connect(s.addr);
    for i in 0..3 {
        assert_eq!(c.call(create(&format!("/m{i}"), b"x", 0)).err(), 0);
    }
    assert_eq!(c.call(create("/eph", b"x", 1)).err(), 0);
    let (status, kind, text) = http_get_typed(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    // Gauges and counters by mntr's names, typed as ZooKeeper registers them.
    assert!(text.contains("# HELP znode_count znode_count\n# TYPE znode_count gauge\n"));
    assert_eq!(metric(&text, "znode_count"), Some(9.0), "5 + 4 created");
    assert_eq!(metric(&text, "ephemerals_count"), Some(1.0));
    assert!(metric(&text, "num_alive_connections").unwrap() >= 1.0);
    assert!(text.contains("# TYPE commit_count counter\ncommit_count 0.0\n"));
    // mntr and /metrics agree.
    let mntr = word(s.addr, "mntr");
    assert!(mntr.contains("\nzk_znode_count\t9\n"), "{mntr}");
    // Summaries: quantiles (not kept: NaN), count and sum; fsynctime counts group commits.
    assert!(text
        .contains("# TYPE fsynctime summary\nfsynctime{quantile=\"0.5\",} NaN\nfsynctime_count "));
    assert!(metric(&text, "fsynctime_count").unwrap() >= 1.0);
    assert!(text.contains("readlatency{quantile=\"0.99\",} NaN\n"));
    assert!(!text.lines().any(|l| l.starts_with("zk_")) && !text.contains("avg_fsynctime"));
    // Text values are not metrics.
    assert!(!text.contains("\nversion ") && !text.contains("server_state"));
    // The process metrics (exportJvmInfo defaults to true).
    assert!(metric(&text, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(metric(&text, "process_open_fds").unwrap() > 0.0);
    // Every sample line belongs to a family declared before it, and each family once.
    let mut declared = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(declared.insert(name.to_string()), "{name} twice");
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
                .unwrap_or(name);
            assert!(declared.contains(family), "{line} undeclared");
        }
    }
    // Only /metrics is served there.
    assert_eq!(http_get_typed(port, "/other").0, "HTTP/1.1 404 Not Found");
    drop(s);

    // exportJvmInfo=false: no process metrics.
    let port = free_port();
    let _s = TestServer::start(&format!(
        "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
         metricsProvider.httpPort={port}\nmetricsProvider.exportJvmInfo=false\n"
    ));
    let (_, _, text) = http_get_typed(port, "/metrics");
    assert!(text.contains("\nznode_count 5.0\n"), "{text}");
    assert!(!text.lines().any(|l| l.contains(" process_")), "{text}");
    // A provider class ZooKeeper would not find stops the config, as it stops ZooKeeper.
    let err = zkrs::config::Config::parse("metricsProvider.className=com.example.Missing\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("metrics provider class was not found"),
        "{err}"
    );
}
