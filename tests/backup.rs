#![allow(clippy::unwrap_used, clippy::expect_used)]
//! ZooKeeper 3.9's `snapshot` and `restore` admin commands over real HTTP: a snapshot file
//! of a live server, restored into another, which then serves that tree (and keeps it across
//! a restart); the credentials, rights, rate limits and switches ZooKeeper checks; damaged
//! snapshots turned away with the tree left as it was.

mod common;
use common::*;
use jute::data::{Acl, Id};
use jute::proto::*;
use jute::{Request, Response};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An HTTP answer: status code, headers (names lowercased), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A connection to the admin port, which is bound a moment after the client port.
fn connect_admin(port: u16) -> TcpStream {
    let t0 = std::time::Instant::now();
    let s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if t0.elapsed() > Duration::from_secs(10) => panic!("{port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// One request on the admin port; `body` makes it a POST.
fn http(port: u16, path: &str, auth: Option<&str>, body: Option<&[u8]>) -> Answer {
    let mut s = connect_admin(port);
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/octet-stream\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    if let Some(b) = body {
        s.write_all(b).unwrap();
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let body = out[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let a = Answer {
        status: status.parse().unwrap(),
        headers,
        body,
    };
    let length: usize = a.header("content-length").unwrap().parse().unwrap();
    assert_eq!(a.body.len(), length);
    a
}

fn admin_server(extra: &str) -> (TestServer, u16) {
    let port = free_port();
    let s = TestServer::start(&format!(
        "admin.serverPort={port}\nadmin.serverAddress=127.0.0.1\n{extra}"
    ));
    (s, port)
}

fn digest_acl(user_password: &str, perms: i32) -> Acl {
    Acl {
        perms,
        id: Id {
            scheme: "digest".into(),
            id: zkrs::acl::digest(user_password),
        },
    }
}

/// Every node under `path` (itself included): path, data, stat, ACL, children sorted.
fn tree_of(c: &mut Client, path: &str, out: &mut Vec<String>) {
    let r = c.call(get_data(path, false));
    let Some(Response::GetData(d)) = r.body else {
        panic!("getData {path}: {}", r.err())
    };
    let r = c.call(Request::GetAcl(GetACLRequest { path: path.into() }));
    let Some(Response::GetAcl(a)) = r.body else {
        panic!("getACL {path}: {}", r.err())
    };
    let r = c.call(Request::GetChildren(GetChildrenRequest {
        path: path.into(),
        watch: false,
    }));
    let Some(Response::GetChildren(ch)) = r.body else {
        panic!("getChildren {path}: {}", r.err())
    };
    let mut children = ch.children.unwrap_or_default();
    children.sort();
    out.push(format!("{path} {:?} {:?} {:?}", d.data, d.stat, a.acl));
    for child in children {
        let p = if path == "/" {
            format!("/{child}")
        } else {
            format!("{path}/{child}")
        };
        tree_of(c, &p, out);
    }
}

fn whole_tree(addr: std::net::SocketAddr) -> Vec<String> {
    let mut c = Client::connect(addr);
    assert_eq!(c.add_digest("owner:pw"), 0);
    let mut out = Vec::new();
    tree_of(&mut c, "/", &mut out);
    out
}

fn last_zxid_of(answer: &Answer) -> i64 {
    let text = answer.text();
    let line = text
        .lines()
        .find(|l| l.contains("\"last_zxid\""))
        .unwrap_or_else(|| panic!("{text}"));
    line.split(':')
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap()
}

#[test]
fn a_snapshot_restored_into_another_server_is_served_and_kept() {
    let (a, a_port) = admin_server("");
    let mut c = Client::connect(a.addr);
    assert_eq!(c.add_digest("owner:pw"), 0);
    assert_eq!(c.call(create("/app", b"top", 0)).err(), 0);
    assert_eq!(c.call(create("/app/bin", &[0, 1, 2, 255], 0)).err(), 0);
    assert_eq!(c.call(create("/app/seq-", b"", 2)).err(), 0);
    assert_eq!(c.call(create("/app/eph", b"e", 1)).err(), 0);
    let r = c.call(Request::Create(CreateRequest {
        path: "/app/secret".into(),
        data: Some(b"s".to_vec()),
        acl: Some(vec![digest_acl("owner:pw", 31)]),
        flags: 0,
    }));
    assert_eq!(r.err(), 0);
    for v in 0..3 {
        assert_eq!(c.call(set_data("/app", b"again", v)).err(), 0);
    }
    let expected = whole_tree(a.addr);
    let snap = http(a_port, "/commands/snapshot", Some("digest any:one"), None);
    assert_eq!(snap.status, 200, "{}", snap.text());
    assert_eq!(
        snap.header("content-type"),
        Some("application/octet-stream")
    );
    let zxid_hex = snap.header("last_zxid").unwrap().to_string();
    assert!(zxid_hex.starts_with("0x"), "{zxid_hex}");
    let zxid = i64::from_str_radix(&zxid_hex[2..], 16).unwrap();
    assert_eq!(
        snap.header("snapshot_size"),
        Some(snap.body.len().to_string().as_str())
    );
    // ZooKeeper's file: header ZKSN, version 2, dbid -1; it ends with a seal's path "/".
    assert_eq!(
        &snap.body[..16],
        b"ZKSN\0\0\0\x02\xff\xff\xff\xff\xff\xff\xff\xff"
    );
    assert_eq!(&snap.body[snap.body.len() - 5..], b"\0\0\0\x01/");
    // The file stays in the data dir, as ZooKeeper's does.
    let file = a.dir.join("version-2").join(format!("snapshot.{:x}", zxid));
    assert_eq!(std::fs::read(&file).unwrap(), snap.body);
    // streaming=false: only the headers and ZooKeeper's JSON.
    std::thread::sleep(Duration::from_millis(400));
    let quiet = http(
        a_port,
        "/commands/snap?streaming=false",
        Some("digest any:one"),
        None,
    );
    assert_eq!(quiet.status, 200);
    assert_eq!(quiet.header("last_zxid"), Some(zxid_hex.as_str()));
    assert_eq!(
        quiet.text(),
        "{\n  \"command\" : \"snapshot\",\n  \"error\" : null\n}"
    );

    // Server B has done more writes than A: its zxids must not go back.
    let (b, b_port) = admin_server("");
    let mut bc = Client::connect(b.addr);
    assert_eq!(bc.call(create("/other", b"", 0)).err(), 0);
    for v in 0..40 {
        assert_eq!(bc.call(set_data("/other", b"x", v)).err(), 0);
    }
    let b_zxid_before = bc.call(exists("/other", false)).header.zxid;
    assert!(b_zxid_before > zxid);
    let restored = http(
        b_port,
        "/commands/restore",
        Some("digest any:one"),
        Some(&snap.body),
    );
    assert_eq!(restored.status, 200, "{}", restored.text());
    assert_eq!(last_zxid_of(&restored), zxid);
    // B's clients were let go, to come back to the restored tree.
    assert!(is_closed(&mut bc.stream));
    // B's own session is not in the snapshot: expired. A's, which is, comes back on B.
    assert!(Client::connect_with(b.addr, bc.session_id, bc.passwd.clone(), 30000).is_none());
    let back = Client::connect_with(b.addr, c.session_id, c.passwd.clone(), 30000);
    assert!(back.is_some(), "the snapshot's session is let back in");
    drop(back);
    assert_eq!(whole_tree(b.addr), expected);
    // The ephemeral's session came with the snapshot.
    let mut nc = Client::connect(b.addr);
    let r = nc.call(exists("/app/eph", false));
    let Some(Response::Exists(e)) = r.body else {
        panic!()
    };
    assert_eq!(e.stat.ephemeral_owner, c.session_id);
    // New writes on B get zxids after everything B and A had.
    let r = nc.call(create("/after", b"", 0));
    assert_eq!(r.err(), 0);
    assert!(r.header.zxid > b_zxid_before);
    let mut expected_after = expected.clone();
    let after = whole_tree(b.addr);
    expected_after.retain(|l| !l.starts_with("/ "));
    assert!(after.iter().any(|l| l.starts_with("/after ")));
    // The restore is in B's store: a restart serves it.
    drop(nc);
    let dir = b.stop().unwrap();
    let b2_port = free_port();
    let b2 = TestServer::start_in(
        dir.path(),
        &format!("admin.serverPort={b2_port}\nadmin.serverAddress=127.0.0.1\n"),
    );
    let again = whole_tree(b2.addr);
    assert_eq!(again, after);
    for line in expected_after {
        assert!(again.contains(&line), "{line} lost at the restart");
    }
    // A restarted server's tree is read from the store: its snapshot is written from a
    // view of the store, and restores to the same tree.
    let snap2 = http(b2_port, "/commands/snapshot", Some("digest any:one"), None);
    assert_eq!(snap2.status, 200, "{}", snap2.text());
    let (c2, c2_port) = admin_server("");
    let r = http(
        c2_port,
        "/commands/restore",
        Some("digest any:one"),
        Some(&snap2.body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(whole_tree(c2.addr), again);
}

#[test]
fn snapshot_and_restore_ask_for_credentials_with_every_right_on_the_root() {
    let (s, port) = admin_server(
        "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n",
    );
    let cases = [
        (None, 401, "Auth info is missing for the command"),
        (Some("Basic eDp5"), 401, "Not authenticated"),
        (Some("digest"), 401, "Not authenticated"),
        (Some("digest a:b c"), 401, "Not authenticated"),
    ];
    for (auth, status, error) in cases {
        let a = http(port, "/commands/snapshot", auth, None);
        assert_eq!(a.status, status, "{auth:?}");
        assert_eq!(
            a.text(),
            format!("{{\n  \"command\" : \"snapshot\",\n  \"error\" : \"{error}\"\n}}"),
            "{auth:?}"
        );
    }
    // The name asked for is the one answered when credentials fail.
    let a = http(port, "/commands/rest", None, Some(b"x"));
    assert_eq!(a.status, 401);
    assert!(a.text().contains("\"command\" : \"rest\""), "{}", a.text());
    // A large body turned away unread: the answer still arrives whole (the rest is read
    // and dropped, not reset).
    let a = http(port, "/commands/restore", None, Some(&vec![7u8; 32 << 20]));
    assert_eq!(a.status, 401);
    // Only owner may do anything on the root now.
    let mut c = Client::connect(s.addr);
    let r = c.call(Request::SetAcl(SetACLRequest {
        path: "/".into(),
        acl: Some(vec![digest_acl("owner:pw", 31)]),
        version: -1,
    }));
    assert_eq!(r.err(), 0);
    let a = http(port, "/commands/snapshot", Some("digest other:pw"), None);
    assert_eq!(a.status, 403);
    assert!(a.text().contains("\"error\" : \"Not authorized\""));
    let a = http(port, "/commands/snapshot", Some("ip"), None);
    assert_eq!(a.status, 403);
    let a = http(port, "/commands/snapshot", Some("digest owner:pw"), None);
    assert_eq!(a.status, 200, "{}", a.text());
    std::thread::sleep(Duration::from_millis(400));
    // superDigest's user may do everything (super:test).
    let a = http(
        port,
        "/commands/snapshot?streaming=false",
        Some("digest super:test"),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    // Wrong methods.
    let a = http(port, "/commands/restore", Some("digest owner:pw"), None);
    assert_eq!(a.status, 405);
    let a = http(
        port,
        "/commands/snapshot",
        Some("digest owner:pw"),
        Some(b"x"),
    );
    assert_eq!(a.status, 405);
    // Both are listed.
    let a = http(port, "/commands", None, None);
    assert!(
        a.text().contains("/commands/snapshot\">snapshot<"),
        "{}",
        a.text()
    );
    assert!(a.text().contains("/commands/restore\">restore<"));
}

#[test]
fn snapshot_and_restore_are_rate_limited_and_may_be_switched_off() {
    // 60 s for restore; snapshot's interval is read in microseconds (60 ms) as ZooKeeper does.
    let (_s, port) = admin_server("admin.rateLimiterIntervalInMS=60000\n");
    let auth = Some("digest a:b");
    let first = http(port, "/commands/snapshot", auth, None);
    assert_eq!(first.status, 200);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(http(port, "/commands/snapshot", auth, None).status, 200);
    // A damaged snapshot still counts against the restore's limit.
    let a = http(port, "/commands/restore", auth, Some(b"not a snapshot"));
    assert_eq!(a.status, 500, "{}", a.text());
    let a = http(port, "/commands/restore", auth, Some(&first.body));
    assert_eq!(a.status, 429, "{}", a.text());
    assert_eq!(
        a.text(),
        "{\n  \"command\" : \"restore\",\n  \"error\" : null\n}"
    );

    let (_off, port) = admin_server("admin.snapshot.enabled=false\nadmin.restore.enabled=false\n");
    assert_eq!(http(port, "/commands/snapshot", auth, None).status, 503);
    assert_eq!(
        http(port, "/commands/restore", auth, Some(&first.body)).status,
        503
    );
    let (_no_zxid, port) = admin_server("serializeLastProcessedZxid.enabled=false\n");
    assert_eq!(http(port, "/commands/snapshot", auth, None).status, 500);
}

#[test]
fn a_damaged_snapshot_is_turned_away_and_the_tree_stays() {
    let (a, a_port) = admin_server("admin.rateLimiterIntervalInMS=0\n");
    let mut c = Client::connect(a.addr);
    for i in 0..20 {
        assert_eq!(c.call(create(&format!("/n{i}"), b"data", 0)).err(), 0);
    }
    let snap = http(a_port, "/commands/snapshot", Some("digest a:b"), None);
    assert_eq!(snap.status, 200);
    // Snapshots taken at once (no rate limit) are each whole.
    let together: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || http(a_port, "/commands/snapshot", Some("digest a:b"), None))
        })
        .collect();
    for t in together {
        let again = t.join().unwrap();
        assert_eq!(again.status, 200);
        assert_eq!(again.body, snap.body);
    }
    let (b, b_port) = admin_server("admin.rateLimiterIntervalInMS=0\n");
    let mut bc = Client::connect(b.addr);
    assert_eq!(bc.call(create("/mine", b"kept", 0)).err(), 0);
    let before = whole_tree(b.addr);
    let body = &snap.body;
    let mut flipped = body.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let mut bad_seal = body.clone();
    let last = bad_seal.len() - 6;
    bad_seal[last] ^= 1;
    let mut trailing = body.clone();
    trailing.extend_from_slice(b"more");
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("cut short", body[..body.len() - 30].to_vec()),
        ("a byte flipped", flipped),
        ("a seal changed", bad_seal),
        ("bytes after it", trailing),
        ("empty", Vec::new()),
        ("not a snapshot", b"ZKLG\0\0\0\x02".to_vec()),
    ];
    for (what, bytes) in damaged {
        let r = http(
            b_port,
            "/commands/restore",
            Some("digest a:b"),
            Some(&bytes),
        );
        assert_eq!(r.status, 500, "{what}: {}", r.text());
        assert!(r.text().contains("not a snapshot"), "{what}: {}", r.text());
        assert_eq!(whole_tree(b.addr), before, "{what}");
    }
    // The connection was left alone.
    assert_eq!(bc.call(exists("/mine", false)).err(), 0);
    let r = http(b_port, "/commands/restore", Some("digest a:b"), Some(body));
    assert_eq!(r.status, 200, "{}", r.text());
    let after = whole_tree(b.addr);
    assert!(after.iter().any(|l| l.starts_with("/n19 ")));
    assert!(!after.iter().any(|l| l.starts_with("/mine ")));
}

/// Sends `raw` as the whole request; the answer's status code and body.
fn raw_http(port: u16, raw: &[u8]) -> (u16, String) {
    let mut s = connect_admin(port);
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[test]
fn restore_bodies_are_read_with_a_length_or_in_chunks_and_bounded() {
    let (a, a_port) = admin_server("admin.rateLimiterIntervalInMS=0\n");
    let mut c = Client::connect(a.addr);
    assert_eq!(c.call(create("/chunked", b"c", 0)).err(), 0);
    let snap = http(a_port, "/commands/snapshot", Some("digest a:b"), None);
    let (b, b_port) = admin_server("admin.rateLimiterIntervalInMS=0\n");
    let head = "POST /commands/restore HTTP/1.1\r\nAuthorization: digest a:b\r\n";
    let bad: Vec<(&str, Vec<u8>)> = vec![
        (
            "a length past the bound",
            format!("{head}Content-Length: 1000000000000000\r\n\r\n").into_bytes(),
        ),
        ("no length", format!("{head}\r\n").into_bytes()),
        (
            "a chunk size that is not hex",
            format!("{head}Transfer-Encoding: chunked\r\n\r\nzz\r\n").into_bytes(),
        ),
        (
            "a chunk past the bound",
            format!("{head}Transfer-Encoding: chunked\r\n\r\nffffffffffffff\r\n").into_bytes(),
        ),
        (
            "a chunk size line that never ends",
            format!(
                "{head}Transfer-Encoding: chunked\r\n\r\n{}",
                "1".repeat(5000)
            )
            .into_bytes(),
        ),
    ];
    for (what, raw) in bad {
        let (status, body) = raw_http(b_port, &raw);
        assert_eq!(status, 400, "{what}: {body}");
        assert!(body.contains("\"command\" : \"restore\""), "{what}: {body}");
    }
    // The snapshot in uneven chunks, after `Expect: 100-continue`.
    let mut raw =
        format!("{head}Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n").into_bytes();
    for piece in snap.body.chunks(777) {
        raw.extend_from_slice(format!("{:x};ext=1\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw_http(b_port, &raw);
    assert_eq!(status, 100, "{body}");
    assert!(body.contains("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("\"last_zxid\""), "{body}");
    let mut bc = Client::connect(b.addr);
    assert_eq!(bc.call(exists("/chunked", false)).err(), 0);
}

/// `autopurge.purgeInterval` above 0: at start, as ZooKeeper's purge task, the newest
/// `autopurge.snapRetainCount` (at least 3) of the `snapshot` command's files stay in
/// `version-2` and the older ones go; the tree, kept in zkrs's store, is untouched.
#[test]
fn autopurge_keeps_the_newest_snapshot_files() {
    let (a, port) = admin_server("admin.rateLimiterIntervalInMS=0\n");
    let mut c = Client::connect(a.addr);
    let mut zxids = Vec::new();
    for i in 0..5 {
        assert_eq!(c.call(create(&format!("/n{i}"), b"x", 0)).err(), 0);
        let snap = http(port, "/commands/snapshot", Some("digest a:b"), None);
        assert_eq!(snap.status, 200, "{}", snap.text());
        let hex = snap.header("last_zxid").unwrap();
        zxids.push(i64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap());
    }
    drop(c);
    let tree = whole_tree(a.addr);
    let snapshots = |dir: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("version-2"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snapshot."))
            .collect();
        v.sort_by_key(|n| i64::from_str_radix(&n["snapshot.".len()..], 16).unwrap());
        v
    };
    let all: Vec<String> = zxids.iter().map(|z| format!("snapshot.{z:x}")).collect();
    assert_eq!(snapshots(&a.dir), all);
    let dir = a.stop().unwrap();
    // A count below 3 keeps 3, as ZooKeeper.
    let b = TestServer::start_in(
        dir.path(),
        "autopurge.purgeInterval=1\nautopurge.snapRetainCount=1\n",
    );
    let t0 = std::time::Instant::now();
    while snapshots(dir.path()).len() > 3 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(snapshots(dir.path()), all[2..]);
    assert_eq!(whole_tree(b.addr), tree);
}

/// A real server process killed (SIGKILL) at several points of a restore of 100,000 znodes:
/// at the next start it serves either its old tree or the snapshot's whole, never a part
/// or the empty initial tree. A kill during the install (as soon as the server logs that it
/// began) is finished at the next start from the staged file, which then goes.
#[test]
fn a_restore_killed_at_any_point_leaves_the_old_tree_or_the_new_one() {
    use std::process::Command;
    // The snapshot: 100,000 znodes under /big, created pipelined.
    let (a, a_port) = admin_server("admin.rateLimiterIntervalInMS=0\n");
    let mut c = Client::connect(a.addr);
    assert_eq!(c.call(create("/big", b"", 0)).err(), 0);
    for chunk in 0..100 {
        let xids: Vec<i32> = (0..1000)
            .map(|i| c.send(&create(&format!("/big/n{}", chunk * 1000 + i), b"v", 0)))
            .collect();
        for xid in xids {
            assert_eq!(c.recv(xid, jute::OpCode::Create).unwrap().err(), 0);
        }
    }
    let snap = http(a_port, "/commands/snapshot", Some("digest a:b"), None);
    assert_eq!(snap.status, 200);
    let snapshot = snap.body;
    let new_count = node_count(a.addr);

    let mut outcomes = Vec::new();
    // None: killed as soon as the server logs that the install began (its crash mark set).
    for delay_ms in [Some(0u64), Some(100), None, Some(300), None, Some(1000)] {
        let tmp = tempfile::tempdir().unwrap();
        let (port, admin) = (free_port(), free_port());
        let cfg = tmp.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 admin.serverPort={admin}\nadmin.serverAddress=127.0.0.1\n",
                tmp.path().display()
            ),
        )
        .unwrap();
        let log = tmp.path().join("server.log");
        let spawn = || {
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            Command::new(env!("CARGO_BIN_EXE_zkrs"))
                .arg("--config")
                .arg(&cfg)
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap()
        };
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let wait_up = || {
            let t0 = std::time::Instant::now();
            while TcpStream::connect(addr).is_err() {
                assert!(t0.elapsed() < Duration::from_secs(60), "not up");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        let mut child = spawn();
        wait_up();
        let mut b = Client::connect(addr);
        assert_eq!(b.call(create("/old", b"", 0)).err(), 0);
        drop(b);
        let old_count = node_count(addr);
        let body = snapshot.clone();
        let poster = std::thread::spawn(move || {
            // The answer, if any: the kill may come first.
            let mut s = connect_admin(admin);
            let head = format!(
                "POST /commands/restore HTTP/1.1\r\nHost: x\r\nAuthorization: digest a:b\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
        });
        let staged = tmp.path().join("zkrs-restore.pending");
        let t0 = std::time::Instant::now();
        while !staged.exists() && t0.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(1));
        }
        match delay_ms {
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            None => {
                while !std::fs::read_to_string(&log)
                    .unwrap()
                    .contains("installing a snapshot")
                {
                    assert!(t0.elapsed() < Duration::from_secs(60), "no install");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        poster.join().unwrap();
        let mut child = spawn();
        wait_up();
        let count = node_count(addr);
        let mut b = Client::connect(addr);
        let has_old = b.call(exists("/old", false)).err() == 0;
        let has_new = b.call(exists("/big/n99999", false)).err() == 0;
        let outcome = match (has_old, has_new, count) {
            (true, false, n) if n == old_count => "old",
            (false, true, n) if n == new_count => "new",
            other => panic!("after a kill {delay_ms:?} ms into the restore: {other:?}"),
        };
        let text = std::fs::read_to_string(&log).unwrap();
        let finished = text.contains("a restore's install did not finish");
        outcomes.push((delay_ms, outcome, finished));
        assert!(!staged.exists(), "the staged file goes at the start");
        child.kill().unwrap();
        child.wait().unwrap();
    }
    println!("kill delay, tree served after, install finished at the start: {outcomes:?}");
    // Killed as the install began: finished at the next start.
    for (delay, outcome, finished) in &outcomes {
        if delay.is_none() {
            assert_eq!((*outcome, *finished), ("new", true), "{outcomes:?}");
        }
    }
}

/// The server's znode count, as `mntr` gives it.
fn node_count(addr: std::net::SocketAddr) -> u64 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"mntr").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix("zk_znode_count\t"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
