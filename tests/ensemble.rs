#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Real processes on loopback: 3- and 5-member ensembles. kill -9 the leader under a stream
//! of writes, restart it, lose a minority, restart everything: every acknowledged write is
//! present afterwards on every member, and sessions (with their ephemerals) survive a
//! leader change.

mod common;
use common::*;
use jute::{OpCode, Request, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Member {
    client: SocketAddr,
    /// The AdminServer's port.
    admin: u16,
    cfg: std::path::PathBuf,
    child: Option<Child>,
}

impl Member {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cfg.with_file_name("zkrs.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_zkrs"))
            .arg("--config")
            .arg(&self.cfg)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    fn four_letter(&self, word: &str) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.client, Duration::from_millis(300)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(word.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// The body of an AdminServer command.
    fn admin_command(&self, name: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.admin)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET /commands/{name} HTTP/1.1\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out.split_once("\r\n\r\n")?.1.to_string())
    }

    fn mode(&self) -> Option<String> {
        self.four_letter("srvr")?
            .lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
    }

    /// The `hash` digest log: zxid -> tree digest.
    fn digests(&self) -> std::collections::BTreeMap<i64, i64> {
        let text = self.four_letter("hash").unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (z, d) = l.split_once(": ")?;
                Some((i64::from_str_radix(z, 16).ok()?, d.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `snapshot` (GET) or `restore` (POST of `body`) with digest credentials: the status
/// code and the body.
fn backup_command(admin: u16, name: &str, body: Option<&[u8]>) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", admin)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let (method, len) = match body {
        Some(b) => ("POST", format!("Content-Length: {}\r\n", b.len())),
        None => ("GET", String::new()),
    };
    write!(
        s,
        "{method} /commands/{name} HTTP/1.1\r\nAuthorization: digest a:b\r\n{len}\r\n"
    )
    .ok()?;
    s.write_all(body.unwrap_or_default()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let at = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = String::from_utf8_lossy(&out[..at])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, out[at + 4..].to_vec()))
}

fn ensemble(n: usize, dir: &std::path::Path) -> Vec<Member> {
    ensemble_with_observers(n, 0, dir)
}

/// `voters` participants then `observers` observers (the last ids).
fn ensemble_with_observers(voters: usize, observers: usize, dir: &std::path::Path) -> Vec<Member> {
    ensemble_configured(voters, observers, dir, "")
}

/// As `ensemble_with_observers`, with `extra` lines in every member's zoo.cfg.
fn ensemble_configured(
    voters: usize,
    observers: usize,
    dir: &std::path::Path,
    extra: &str,
) -> Vec<Member> {
    ensemble_each(voters, observers, dir, |_| extra.to_string())
}

/// As `ensemble_with_observers`, with the lines `extra(i)` in member `i`'s zoo.cfg (its
/// index, from 0).
fn ensemble_each(
    voters: usize,
    observers: usize,
    dir: &std::path::Path,
    extra: impl Fn(usize) -> String,
) -> Vec<Member> {
    let n = voters + observers;
    let ports: Vec<(u16, u16, u16)> = (0..n)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, (_, q, e))| {
            let role = if i >= voters { ":observer" } else { "" };
            format!("server.{}=127.0.0.1:{q}:{e}{role}\n", i + 1)
        })
        .collect();
    (0..n)
        .map(|i| start_member(dir, i, ports[i].0, &format!("{servers}{}", extra(i))))
        .collect()
}

/// Writes member `i`'s myid and zoo.cfg (tickTime 500 ms, syncLimit 4) and starts it.
fn start_member(dir: &std::path::Path, i: usize, client_port: u16, servers: &str) -> Member {
    let d = dir.join(format!("m{}", i + 1));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("myid"), format!("{}\n", i + 1)).unwrap();
    let cfg = d.join("zoo.cfg");
    let admin = free_port();
    std::fs::write(
        &cfg,
        format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=4\ndataDir={}\nclientPort={client_port}\n\
             clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n\
             admin.serverAddress=127.0.0.1\nadmin.serverPort={admin}\n{servers}",
            d.display(),
        ),
    )
    .unwrap();
    let mut m = Member {
        admin,
        client: format!("127.0.0.1:{client_port}").parse().unwrap(),
        cfg,
        child: None,
    };
    m.start();
    m
}

/// Waits until every running member serves, returns the leader's index.
fn wait_serving(members: &[Member], timeout: Duration) -> usize {
    let t0 = Instant::now();
    loop {
        let modes: Vec<Option<String>> = members
            .iter()
            .map(|m| {
                if m.child.is_some() {
                    m.mode()
                } else {
                    Some("down".into())
                }
            })
            .collect();
        let all = modes.iter().all(|m| {
            matches!(
                m.as_deref(),
                Some("leader" | "follower" | "observer" | "down")
            )
        });
        let leaders = modes
            .iter()
            .filter(|m| m.as_deref() == Some("leader"))
            .count();
        if all && leaders == 1 {
            // Stable for a moment: a deposed leader may not have noticed yet.
            std::thread::sleep(Duration::from_millis(300));
            let again: Vec<Option<String>> = members
                .iter()
                .map(|m| {
                    if m.child.is_some() {
                        m.mode()
                    } else {
                        Some("down".into())
                    }
                })
                .collect();
            if again == modes {
                if let Some(i) = modes.iter().position(|m| m.as_deref() == Some("leader")) {
                    return i;
                }
            }
        }
        if t0.elapsed() > timeout {
            for m in members {
                let log =
                    std::fs::read_to_string(m.cfg.with_file_name("zkrs.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                eprintln!(
                    "--- {}:\n{}",
                    m.cfg.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            panic!("ensemble not serving after {timeout:?}: {modes:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client that follows its session from member to member.
struct Roaming {
    addrs: Vec<SocketAddr>,
    client: Client,
    at: usize,
}

impl Roaming {
    fn new(addrs: Vec<SocketAddr>, start: usize) -> Self {
        for _ in 0..100 {
            for k in 0..addrs.len() {
                let at = (start + k) % addrs.len();
                if let Some(client) = Client::connect_with(addrs[at], 0, vec![0; 16], 10000) {
                    return Roaming { addrs, client, at };
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no member accepted a session");
    }

    /// One request; on a broken connection, re-attach to the next member and retry.
    fn call(&mut self, req: Request) -> Reply {
        self.call_tracked(req).0
    }

    /// The reply, and whether the request had to be sent again (its first attempt may or may
    /// not have taken effect).
    fn call_tracked(&mut self, req: Request) -> (Reply, bool) {
        // Long enough for an election after the whole ensemble restarted.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut attempt = 0;
        while Instant::now() < deadline {
            attempt += 1;
            let op = req.op();
            let xid = self.client.send_checked(&req);
            if let Some(xid) = xid {
                if let Some(r) = self.client.recv(xid, op) {
                    return (r, attempt > 1);
                }
            }
            self.at = (self.at + 1) % self.addrs.len();
            let (id, pw) = (self.client.session_id, self.client.passwd.clone());
            if let Some(c) = Client::connect_with(self.addrs[self.at], id, pw, 10000) {
                // A member that stopped serving must not hold the test for long.
                let _ = c.stream.set_read_timeout(Some(Duration::from_secs(3)));
                self.client = c;
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("no member answered");
    }
}

fn sync_and_check(addr: SocketAddr, paths: &[String]) {
    let mut c = (0..100)
        .find_map(|_| {
            let c = Client::connect_with(addr, 0, vec![0; 16], 30000);
            if c.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            c
        })
        .expect("a session");
    assert_eq!(
        c.call(Request::Sync(jute::proto::SyncRequest { path: "/".into() }))
            .err(),
        0
    );
    for p in paths {
        assert_eq!(
            c.call(exists(p, false)).err(),
            0,
            "acknowledged {p} missing on {addr}"
        );
    }
}

#[test]
fn three_members_survive_the_leader_being_killed_under_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = ensemble(3, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();

    // A session on a follower holding an ephemeral.
    let mut holder = Roaming::new(addrs.clone(), followers[0]);
    assert_eq!(holder.call(create("/held", b"", 1)).err(), 0);
    let holder_session = holder.client.session_id;

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acked, stop, addrs) = (acked.clone(), stop.clone(), addrs.clone());
        let start = followers[1];
        std::thread::spawn(move || {
            let mut c = Roaming::new(addrs, start);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let p = format!("/w{i}");
                let r = c.call(create(&p, b"x", 0));
                // NODEEXISTS: a retried create that had committed before the connection broke.
                if r.err() == 0 || r.err() == -110 {
                    acked.lock().unwrap().push(p);
                }
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    let t0 = Instant::now();
    members[leader].kill();
    let new_leader = wait_serving(&members, Duration::from_secs(30));
    let election = t0.elapsed();
    eprintln!(
        "leader {} killed; member {} leads after {election:?}",
        leader + 1,
        new_leader + 1
    );
    assert_ne!(new_leader, leader);
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());

    // The session moved along with its ephemeral.
    let r = holder.call(exists("/held", false));
    assert_eq!(r.err(), 0);
    assert_eq!(holder.client.session_id, holder_session);

    for i in (0..3).filter(|i| *i != leader) {
        sync_and_check(addrs[i], &acked);
    }
    // The old leader comes back and catches up.
    members[leader].start();
    wait_serving(&members, Duration::from_secs(30));
    sync_and_check(addrs[leader], &acked);
    assert!(
        election < Duration::from_secs(10),
        "election took {election:?}"
    );
}

#[test]
fn five_members_lose_a_minority_then_restart_together() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = ensemble(5, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    let mut written = Vec::new();
    let mut c = Roaming::new(addrs.clone(), (leader + 1) % 5);
    for i in 0..20 {
        let p = format!("/a{i}");
        assert_eq!(c.call(create(&p, b"1", 0)).err(), 0);
        written.push(p);
    }
    // Lose the leader and one follower: three of five still form a quorum.
    let other = (leader + 2) % 5;
    members[leader].kill();
    members[other].kill();
    wait_serving(&members, Duration::from_secs(30));
    for i in 0..20 {
        let p = format!("/b{i}");
        let r = c.call(create(&p, b"2", 0));
        assert!(r.err() == 0 || r.err() == -110);
        written.push(p);
    }
    // Everyone down, everyone up: nothing acknowledged is lost.
    for m in members.iter_mut() {
        m.kill();
    }
    for m in members.iter_mut() {
        m.start();
    }
    wait_serving(&members, Duration::from_secs(30));
    for a in &addrs {
        sync_and_check(*a, &written);
    }
    let mut check = Client::connect(addrs[0]);
    let r = check.call(Request::Multi(jute::MultiRequest { ops: vec![] }));
    assert_eq!(r.err(), 0, "the restarted ensemble takes writes");
    let _ = OpCode::Ping;
}

/// One recorded operation of the history check.
#[derive(Debug, Clone)]
struct Op {
    session: usize,
    key: usize,
    write: bool,
    invoke: Instant,
    complete: Instant,
    /// The mzxid the operation wrote or observed; -1 for a write whose outcome is unknown
    /// (its connection broke; it may or may not have happened).
    mzxid: i64,
}

/// Writes must be linearizable: a write that completed before another began has the smaller
/// zxid. Reads must be sequentially consistent: within a session, never older than what the
/// session saw or wrote before, and never a value nobody had started writing.
fn check_history(ops: &[Op]) {
    let writes: Vec<&Op> = ops.iter().filter(|o| o.write).collect();
    let done: Vec<&&Op> = writes.iter().filter(|w| w.mzxid > 0).collect();
    for a in &done {
        for b in &done {
            if a.complete < b.invoke {
                assert!(
                    a.mzxid < b.mzxid,
                    "write {a:?} finished before {b:?} began but has a later zxid"
                );
            }
        }
    }
    let sessions: std::collections::BTreeSet<usize> = ops.iter().map(|o| o.session).collect();
    for s in sessions {
        let mut seen: std::collections::HashMap<usize, i64> = Default::default();
        let mut mine: Vec<&Op> = ops.iter().filter(|o| o.session == s).collect();
        mine.sort_by_key(|o| o.invoke);
        for o in mine.into_iter().filter(|o| o.mzxid > 0) {
            let last = seen.entry(o.key).or_insert(0);
            assert!(
                o.mzxid >= *last,
                "session {s} went back in time on key {}: {o:?} after {last:#x}",
                o.key
            );
            *last = o.mzxid;
            if !o.write && o.mzxid != 0 {
                let known = writes.iter().any(|w| {
                    w.key == o.key && (w.mzxid == o.mzxid || w.mzxid == -1) && w.invoke < o.complete
                });
                // Values written before the history started (setup) have no record: allow them
                // only if they are older than every recorded write.
                let before_all = writes
                    .iter()
                    .filter(|w| w.key == o.key && w.mzxid > 0)
                    .all(|w| o.mzxid < w.mzxid);
                assert!(known || before_all, "read {o:?} saw a value nobody wrote");
            }
        }
    }
}

/// A read (getData) or a write (setData of a value naming session `s` and step `n`) of the
/// register `/reg<key>`, through `c`: the history records it makes. A write retried after a
/// broken connection may have happened twice; both are real writes, so besides the one seen
/// it is recorded as one of unknown outcome.
fn register_op(c: &mut Roaming, s: usize, key: usize, write: bool, n: u64) -> Vec<Op> {
    let path = format!("/reg{key}");
    let invoke = Instant::now();
    let req = if write {
        set_data(&path, format!("{s}-{n}").as_bytes(), -1)
    } else {
        get_data(&path, false)
    };
    let (r, retried) = c.call_tracked(req);
    let complete = Instant::now();
    let op = |mzxid| Op {
        session: s,
        key,
        write,
        invoke,
        complete,
        mzxid,
    };
    let mut ops = Vec::new();
    if write && retried {
        ops.push(op(-1));
    }
    if let Some(st) = r.body.as_ref().and_then(|b| b.stat()) {
        ops.push(op(st.mzxid));
    }
    ops
}

#[test]
fn client_history_is_linearizable_for_writes_across_a_leader_change() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = ensemble(3, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    let keys = 3;
    {
        let mut c = Roaming::new(addrs.clone(), 0);
        for k in 0..keys {
            assert_eq!(c.call(create(&format!("/reg{k}"), b"0", 0)).err(), 0);
        }
    }
    let history = Arc::new(Mutex::new(Vec::<Op>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|s| {
            let (history, stop, addrs) = (history.clone(), stop.clone(), addrs.clone());
            std::thread::spawn(move || {
                let mut c = Roaming::new(addrs, s % 3);
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let key = (n as usize * 7 + s) % keys;
                    let ops = register_op(&mut c, s, key, n.is_multiple_of(3), n);
                    history.lock().unwrap().extend(ops);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(800));
    members[leader].kill();
    wait_serving(&members, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let ops = history.lock().unwrap().clone();
    assert!(ops.len() > 100, "only {} operations recorded", ops.len());
    assert!(ops.iter().any(|o| o.write) && ops.iter().any(|o| !o.write));
    check_history(&ops);
}

#[test]
fn a_frozen_leader_is_replaced_and_rejoins_without_forking_history() {
    let tmp = tempfile::tempdir().unwrap();
    let members = ensemble(3, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    let follower = (leader + 1) % 3;
    let mut c = Roaming::new(addrs.clone(), follower);
    assert_eq!(c.call(create("/before", b"", 0)).err(), 0);
    // SIGSTOP: the leader is cut off from everyone, as by a partition, but keeps its state.
    let pid = members[leader].child.as_ref().unwrap().id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    eprintln!("froze leader {}", leader + 1);
    let t0 = Instant::now();
    loop {
        let modes: Vec<Option<String>> = (0..3)
            .filter(|i| *i != leader)
            .map(|i| members[i].mode())
            .collect();
        if modes.iter().any(|m| m.as_deref() == Some("leader")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no new leader: {modes:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut written = vec!["/before".to_string()];
    for i in 0..10 {
        let p = format!("/during{i}");
        let r = c.call(create(&p, b"", 0));
        assert!(r.err() == 0 || r.err() == -110);
        written.push(p);
    }
    eprintln!("wrote {} during the freeze", written.len());
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    wait_serving(&members, Duration::from_secs(30));
    for a in &addrs {
        sync_and_check(*a, &written);
    }
    let modes: Vec<Option<String>> = members.iter().map(Member::mode).collect();
    assert_eq!(
        modes
            .iter()
            .filter(|m| m.as_deref() == Some("leader"))
            .count(),
        1,
        "{modes:?}"
    );
}

#[test]
fn members_read_their_membership_from_a_dynamic_config_file() {
    // ZooKeeper 3.5+'s split config: zoo.cfg names the file holding the server lines, and
    // that file's name carries the membership's version.
    let tmp = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16, u16)> = (0..3)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, (c, q, e))| {
            format!(
                "server.{}=127.0.0.1:{q}:{e}:participant;127.0.0.1:{c}\n",
                i + 1
            )
        })
        .collect();
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let dynamic = tmp
                .path()
                .join(format!("zoo.cfg{}.dynamic.100000000", i + 1));
            std::fs::write(&dynamic, &servers).unwrap();
            let line = format!("dynamicConfigFile={}\n", dynamic.display());
            start_member(tmp.path(), i, ports[i].0, &line)
        })
        .collect();
    let leader = wait_serving(&members, Duration::from_secs(30));
    let follower = (leader + 1) % 3;
    let mut c = Client::connect(members[leader].client);
    let written: Vec<String> = (0..10).map(|i| format!("/dyn{i}")).collect();
    for p in &written {
        assert_eq!(c.call(create(p, b"v", 0)).err(), 0);
    }
    sync_and_check(members[follower].client, &written);
    let mut f = Client::connect(members[follower].client);
    let Some(Response::GetData(d)) = f.call(get_data("/zookeeper/config", false)).body else {
        panic!("no /zookeeper/config")
    };
    let text = String::from_utf8(d.data.unwrap_or_default()).unwrap();
    assert!(text.ends_with("\nversion=100000000"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("server.")).count(),
        3,
        "{text}"
    );
}

#[test]
fn an_observer_serves_reads_and_forwards_writes_without_voting() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = ensemble_with_observers(3, 1, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    // The AdminServer's view of the ensemble, in ZooKeeper's shapes.
    let zab = members[leader].admin_command("zabstate").unwrap();
    assert!(zab.contains("\n  \"is_leader\" : true,\n"), "{zab}");
    assert!(zab.contains("\n  \"voting\" : true,\n"), "{zab}");
    assert!(zab.contains("\n  \"zabstate\" : \"broadcast\",\n"), "{zab}");
    let zab = members[3].admin_command("zabstate").unwrap();
    assert!(zab.contains("\n  \"voting\" : false,\n"), "{zab}");
    let view = members[3].admin_command("voting_view").unwrap();
    for id in ["1", "2", "3"] {
        assert!(view.contains(&format!("\n    \"{id}\" : {{\n")), "{view}");
    }
    assert!(!view.contains("\"4\""), "observers do not vote: {view}");
    let lead = members[3].admin_command("leader").unwrap();
    assert!(
        lead.contains(&format!("\"leader_id\" : {},", leader + 1)),
        "{lead}"
    );
    assert_eq!(members[3].mode().as_deref(), Some("observer"));
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    // Writes through the observer, read back on it and on a voter.
    let mut c = Client::connect(addrs[3]);
    let mut written = Vec::new();
    for i in 0..20 {
        let p = format!("/o{i}");
        assert_eq!(c.call(create(&p, b"v", 0)).err(), 0);
        assert_eq!(
            c.call(exists(&p, false)).err(),
            0,
            "read-your-write on the observer"
        );
        written.push(p);
    }
    sync_and_check(addrs[(leader + 1) % 3], &written);
    // The snapshot command on the observer: ZooKeeper's file of its tree. A restore would
    // replace one member's tree only: it is refused on every member.
    let (status, snap) = backup_command(members[3].admin, "snapshot", None).unwrap();
    assert_eq!(status, 200);
    assert!(snap.starts_with(b"ZKSN"));
    assert!(snap.windows(4).any(|w| w == b"/o19"));
    let (status, refused) = backup_command(members[leader].admin, "restore", Some(&snap)).unwrap();
    assert_eq!(status, 500);
    assert!(
        String::from_utf8_lossy(&refused).contains("an ensemble member's comes from its leader"),
        "{}",
        String::from_utf8_lossy(&refused)
    );
    // The observer does not count toward a quorum: with one voter left of three, nothing serves.
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    members[others[0]].kill();
    members[others[1]].kill();
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(
        members[3].mode().as_deref(),
        Some("observer"),
        "an observer cannot keep a quorum"
    );
}

/// A top-level field of an AdminServer command's JSON: a number, or a string unquoted.
fn admin_value(body: &str, key: &str) -> Option<String> {
    let rest = body.split(&format!("\n  \"{key}\" : ")).nth(1)?;
    let end = rest.find([',', '\n'])?;
    Some(rest[..end].trim_matches('"').to_string())
}

#[test]
fn the_admin_server_shows_observers_on_the_leader_and_last_snapshots_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = ensemble_with_observers(3, 1, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    // A write through the observer: it forwards it to the leader (a REQUEST).
    let mut via = Client::connect(members[3].client);
    let r = via.call(create2("/via-observer", b"v", 0));
    let Some(Response::Create2(made)) = r.body else {
        panic!("{r:?}")
    };
    sync_and_check(members[3].client, &["/via-observer".to_string()]);
    // SyncedObserverConsCommand on the leader: its observer, with LearnerHandler's fields.
    let obsr = members[leader].admin_command("observers").unwrap();
    let observer = |body: &str, key: &str| -> i64 {
        let rest = body
            .split(&format!("\n    \"{key}\" : "))
            .nth(1)
            .unwrap_or("");
        let end = rest.find([',', '\n']).unwrap_or(rest.len());
        rest[..end]
            .parse()
            .unwrap_or_else(|_| panic!("{key} in {body}"))
    };
    assert!(
        obsr.contains("\"remote_socket_address\" : \"/127.0.0.1:"),
        "{obsr}"
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let established = observer(&obsr, "established");
    assert!((now_ms - 120_000..=now_ms).contains(&established), "{obsr}");
    assert!(observer(&obsr, "packets_received") > 0, "{obsr}");
    // Its sessions' creation, the create and the sync at least.
    assert!(observer(&obsr, "requests") >= 2, "{obsr}");
    // The observer was sent the write (INFORM) at least: the last zxid is it or later.
    assert!(observer(&obsr, "last_zxid") >= made.stat.czxid, "{obsr}");
    let sent = observer(&obsr, "packets_sent");
    assert!(sent > 2, "{obsr}");
    assert!(
        obsr.starts_with(
            "{\n  \"synced_observers\" : 1,\n  \"observers\" : [ {\n    \
             \"remote_socket_address\" : \""
        ),
        "{obsr}"
    );
    for want in [
        "\",\n    \"sid\" : 4,\n    \"established\" : ",
        ",\n    \"queued_packets\" : ",
        ",\n    \"queued_packets_size\" : ",
        ",\n    \"packets_received\" : ",
        ",\n    \"packets_sent\" : ",
        ",\n    \"requests\" : ",
        ",\n    \"last_zxid\" : ",
    ] {
        assert!(obsr.contains(want), "{want} in {obsr}");
    }
    assert!(
        obsr.ends_with("\n  } ],\n  \"command\" : \"observers\",\n  \"error\" : null\n}"),
        "{obsr}"
    );
    // Followers (without an observer master) and the observer list none.
    let none = "{\n  \"synced_observers\" : 0,\n  \"observers\" : [ ],\n  \
                \"command\" : \"observers\",\n  \"error\" : null\n}";
    for (i, m) in members.iter().enumerate().filter(|(i, _)| *i != leader) {
        assert_eq!(m.admin_command("obsr").unwrap(), none, "member {}", i + 1);
    }
    // ObserverCnxnStatResetCommand answers alike on every member.
    let reset = "{\n  \"command\" : \"observer_connection_stat_reset\",\n  \"error\" : null\n}";
    for m in &members {
        assert_eq!(m.admin_command("orst").unwrap(), reset);
    }
    // On the leader it starts the counters again (pings go on meanwhile).
    let obsr = members[leader].admin_command("observers").unwrap();
    assert_eq!(observer(&obsr, "requests"), 0, "{obsr}");
    assert!(observer(&obsr, "packets_sent") < sent, "{obsr}");
    assert_eq!(observer(&obsr, "established"), established, "{obsr}");

    // last_snapshot: every member's stored tree holds the write.
    let mut c = Client::connect(members[leader].client);
    assert_eq!(c.call(create("/lsnp", b"v", 0)).err(), 0);
    let written = ["/lsnp".to_string()];
    for m in &members {
        sync_and_check(m.client, &written);
    }
    for (i, m) in members.iter().enumerate() {
        // Against zabstate's last_zxid, read before and after it (sessions come and go).
        let steady = (0..50).find_map(|_| {
            let before = admin_value(&m.admin_command("zabstate")?, "last_zxid")?;
            let lsnp = m.admin_command("last_snapshot")?;
            let after = admin_value(&m.admin_command("zabstate")?, "last_zxid")?;
            if before == after {
                return Some((before, lsnp));
            }
            std::thread::sleep(Duration::from_millis(100));
            None
        });
        let (zxid, lsnp) = steady.unwrap_or_else(|| panic!("member {}: no steady zxid", i + 1));
        assert_eq!(
            admin_value(&lsnp, "zxid").as_deref(),
            zxid.strip_prefix("0x"),
            "member {}: {lsnp}",
            i + 1
        );
        let secs: i64 = admin_value(&lsnp, "timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{lsnp}"));
        assert!(secs > 1_600_000_000, "seconds since 1970: {lsnp}");
        assert!(
            lsnp.ends_with("\n  \"command\" : \"last_snapshot\",\n  \"error\" : null\n}"),
            "{lsnp}"
        );
    }

    // An observer gone is no longer listed.
    members[3].kill();
    let t0 = Instant::now();
    loop {
        let obsr = members[leader].admin_command("obsr").unwrap_or_default();
        if obsr == none {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "still listed: {obsr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_leader_expires_sessions_kept_alive_through_followers() {
    let tmp = tempfile::tempdir().unwrap();
    let members = ensemble(3, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    let follower = (leader + 1) % 3;
    let mut c = Client::connect_with(addrs[follower], 0, vec![0; 16], 1500).unwrap();
    assert_eq!(c.timeout_ms, 1500);
    assert_eq!(c.call(create("/alive", b"", 1)).err(), 0);
    // Pings to the follower keep the session alive at the leader, well past its timeout.
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(c.call(Request::Ping).err(), 0);
    }
    let mut other = Client::connect(addrs[leader]);
    assert_eq!(
        other.call(exists("/alive", false)).err(),
        0,
        "expired while pinging"
    );
    // Silence: the leader expires it and every member loses the ephemeral.
    let t0 = Instant::now();
    loop {
        if other.call(exists("/alive", false)).err() == -101 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "session never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(t0.elapsed() >= Duration::from_millis(1000));
    sync_and_check(addrs[follower], &[]);
    let mut f = Client::connect(addrs[follower]);
    f.call(Request::Sync(jute::proto::SyncRequest { path: "/".into() }));
    assert_eq!(f.call(exists("/alive", false)).err(), -101);
}

#[test]
fn sessions_move_between_members_as_the_leader_revalidates_them() {
    let tmp = tempfile::tempdir().unwrap();
    let members = ensemble(3, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
    let mut c = Client::connect_with(addrs[f1], 0, vec![0; 16], 4000).unwrap();
    assert_eq!(c.call(create("/moving", b"", 1)).err(), 0);
    let (id, pw) = (c.session_id, c.passwd.clone());
    drop(c);
    // The other follower asks the leader (REVALIDATE) and hands the same session over.
    let mut c = Client::connect_with(addrs[f2], id, pw.clone(), 4000).expect("moved to f2");
    assert_eq!(c.session_id, id);
    assert_eq!(c.call(exists("/moving", false)).err(), 0);
    drop(c);
    let c = Client::connect_with(addrs[leader], id, pw.clone(), 4000).expect("moved to leader");
    assert_eq!(c.session_id, id);
    drop(c);
    // A session nobody created, with the password its id implies: the leader says invalid.
    let bogus = id ^ 0x5a5a;
    assert!(Client::connect_with(addrs[f1], bogus, zkrs::session::password(bogus), 4000).is_none());
    // A wrong password never reaches the leader, and is refused as well.
    assert!(Client::connect_with(addrs[f2], id, vec![7; 16], 4000).is_none());
    // Closed: every member refuses it afterwards.
    let mut c = Client::connect_with(addrs[f2], id, pw.clone(), 4000).unwrap();
    assert_eq!(c.call(Request::CloseSession).err(), 0);
    drop(c);
    for m in [f1, f2, leader] {
        assert!(
            Client::connect_with(addrs[m], id, pw.clone(), 4000).is_none(),
            "member {m} revived a closed session"
        );
    }
}

#[test]
fn every_member_logs_the_same_tree_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let members = ensemble(3, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    // Writes through every member: creates, updates, deletes, an ephemeral, a multi-free mix.
    let mut clients: Vec<Client> = addrs.iter().map(|a| Client::connect(*a)).collect();
    for i in 0..300 {
        let c = &mut clients[i % 3];
        let p = format!("/d{}", i % 50);
        match i % 4 {
            0 | 1 => {
                c.call(create(&p, format!("v{i}").as_bytes(), (i % 2) as i32));
            }
            2 => {
                c.call(set_data(&p, b"changed", -1));
            }
            _ => {
                c.call(delete(&p, -1));
            }
        }
    }
    let mut logs = Vec::new();
    for (i, m) in members.iter().enumerate() {
        sync_and_check(addrs[i], &[]);
        logs.push(m.digests());
    }
    assert!(!logs[leader].is_empty(), "no digest logged after 300+ txns");
    // The leader's own mntr keys, as ZooKeeper's leader reports them.
    let mntr = members[leader].four_letter("mntr").unwrap_or_default();
    let key = |k: &str| -> i64 {
        mntr.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}\t")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} missing in mntr:\n{mntr}"))
    };
    assert_eq!(key("zk_learners"), 2);
    assert_eq!(key("zk_synced_followers"), 2);
    assert_eq!(key("zk_synced_non_voting_followers"), 0);
    assert_eq!(key("zk_synced_observers"), 0);
    assert_eq!(key("zk_quorum_size"), 3);
    assert_eq!(key("zk_pending_syncs"), 0);
    assert!(key("zk_leader_uptime") > 0);
    assert!(
        mntr.contains("\nzk_peer_state\tleading - broadcast\n"),
        "{mntr}"
    );
    assert!(
        !mntr.contains("zk_followers"),
        "not a key of ZooKeeper 3.8's: {mntr}"
    );
    let follower = members[(leader + 1) % members.len()]
        .four_letter("mntr")
        .unwrap();
    assert!(
        follower.contains("\nzk_peer_state\tfollowing - broadcast\n"),
        "{follower}"
    );
    assert!(
        !follower.contains("zk_synced_observers"),
        "a follower without observerMasterPort has no observers: {follower}"
    );
    // Each follower's queue summaries (ZooKeeper's LearnerHandler's), by its id: every
    // packet sent to it (300+ proposals and their commits), and the wait of every 1,000th.
    let ids: Vec<String> = (1..=members.len())
        .filter(|i| i - 1 != leader)
        .map(|i| i.to_string())
        .collect();
    for id in &ids {
        assert!(
            key(&format!("zk_cnt_{id}_learner_handler_qp_size")) >= 600,
            "{mntr}"
        );
        assert!(key(&format!("zk_min_{id}_learner_handler_qp_size")) >= 0);
        assert!(key(&format!("zk_cnt_{id}_learner_handler_qp_time_ms")) >= 1);
        key(&format!("zk_p999_{id}_learner_handler_qp_time_ms"));
    }
    assert!(
        !follower.contains("learner_handler"),
        "a follower serves no learners: {follower}"
    );
    assert!(key("zk_last_proposal_size") > 0);
    assert!(key("zk_min_proposal_size") <= key("zk_last_proposal_size"));
    assert!(key("zk_max_proposal_size") >= key("zk_last_proposal_size"));
    for (i, log) in logs.iter().enumerate() {
        let common: Vec<_> = log
            .keys()
            .filter(|z| logs[leader].contains_key(z))
            .collect();
        assert!(
            !common.is_empty(),
            "member {i} shares no logged zxid with the leader"
        );
        for z in common {
            assert_eq!(log[z], logs[leader][z], "member {i} differs at zxid {z:#x}");
        }
    }
    // The leader's txns carry the tree's digest after them (TxnDigest), which every member
    // checks as it applies them: none counts a mismatch, and each member's log holds the
    // digests, each the one a tree that applies the log from the start has after the txn.
    for (i, m) in members.iter().enumerate() {
        assert_eq!(mntr_value(m, "zk_digest_mismatches_count"), 0, "member {i}");
    }
    let dirs: Vec<std::path::PathBuf> = members
        .iter()
        .map(|m| m.cfg.parent().unwrap().to_path_buf())
        .collect();
    drop(clients);
    drop(members);
    for (i, d) in dirs.iter().enumerate() {
        let store =
            zkrs::store::Store::open(&d.join("zkrs-db"), &d.join("zkrs-log"), false).unwrap();
        let txns = store.txns_after(0).unwrap();
        assert!(txns.len() >= 300, "member {i} logged {}", txns.len());
        let mut tree = zkrs::tree::DataTree::new(false);
        for t in &txns {
            tree.apply(t);
            let d = t.digest.as_ref();
            assert_eq!(
                d.map(|d| (d.version, d.tree_digest)),
                Some((zkrs::tree::DIGEST_VERSION, tree.digest())),
                "member {i}, txn {:#x}",
                t.header.zxid
            );
        }
    }
}

/// The body of `GET /metrics` on a Prometheus provider's port.
fn metrics_text(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// ZooKeeper's PrometheusMetricsProvider on a leader has a summary per learner of its queue
/// (LearnerHandler's `learner_handler_qp_size` and `learner_handler_qp_time_ms`, labelled by
/// the learner's id as `key`); a follower serves no learners, so has none.
#[test]
fn the_leaders_metrics_summarize_each_learners_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let members = ensemble_each(3, 0, tmp.path(), |i| {
        format!(
            "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.\
             PrometheusMetricsProvider\nmetricsProvider.httpHost=127.0.0.1\n\
             metricsProvider.httpPort={}\n",
            ports[i]
        )
    });
    let leader = wait_serving(&members, Duration::from_secs(30));
    let mut c = Client::connect(members[leader].client);
    for i in 0..300 {
        assert_eq!(c.call(create(&format!("/q{i}"), b"x", 0)).err(), 0);
    }
    let text = metrics_text(ports[leader]);
    let value = |sample: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {sample} in:\n{text}"))
            .parse()
            .unwrap()
    };
    assert!(text.contains("# TYPE learner_handler_qp_size summary\n"));
    assert!(text.contains("# TYPE learner_handler_qp_time_ms summary\n"));
    for id in (1..=3).filter(|i| i - 1 != leader) {
        let key = format!("{{key=\"{id}\",}}");
        // Each of the 300 proposals and its commit went out to the learner.
        assert!(value(&format!("learner_handler_qp_size_count{key}")) >= 600.0);
        assert!(value(&format!("learner_handler_qp_size_sum{key}")) >= 0.0);
        // The wait of every 1,000th packet: at least the first.
        assert!(value(&format!("learner_handler_qp_time_ms_count{key}")) >= 1.0);
        value(&format!("learner_handler_qp_time_ms_sum{key}"));
        let quantile = format!("learner_handler_qp_time_ms{{key=\"{id}\",quantile=\"0.99\",}}");
        assert!(value(&quantile).is_nan());
    }
    let leaders_own = format!("{{key=\"{}\",}}", leader + 1);
    assert!(!text.contains(&format!("learner_handler_qp_size_count{leaders_own}")));
    let follower = metrics_text(ports[(leader + 1) % 3]);
    assert!(
        !follower.contains("learner_handler_qp_size_count"),
        "a follower serves no learners: {follower}"
    );
}

/// A TCP relay for one direction of one link (member `from` dialing member `to`): while cut,
/// it is a black hole (connections are accepted, bytes vanish, nothing is closed), as a real
/// partition; healing closes what was relayed, so both sides reconnect to a clean stream.
struct Link {
    port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Link {
    fn new(target: SocketAddr) -> Link {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c2, conns2) = (cut.clone(), conns.clone());
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                let mut kept = conns2.lock().unwrap();
                if c2.load(Ordering::SeqCst) {
                    kept.push(inbound); // cut: held open, silent
                    continue;
                }
                // Not listening yet: refused, as a direct connection would be.
                let Ok(outbound) = TcpStream::connect(target) else {
                    continue;
                };
                kept.push(inbound.try_clone().unwrap());
                kept.push(outbound.try_clone().unwrap());
                for (mut a, mut b) in [
                    (inbound.try_clone().unwrap(), outbound.try_clone().unwrap()),
                    (outbound, inbound.try_clone().unwrap()),
                ] {
                    let cut = c2.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = a.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            if !cut.load(Ordering::SeqCst) && b.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = b.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Link { port, cut, conns }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
        if !cut {
            for s in self.conns.lock().unwrap().drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Three members whose quorum and election connections all go through [`Link`]s:
/// `links[(from, to)]` carries what `from` dials at `to` (both ports).
/// The links of [`ensemble_behind_links`]: (from, to) -> the quorum and election relays.
type Links = std::collections::BTreeMap<(usize, usize), Vec<Link>>;

fn ensemble_behind_links(dir: &std::path::Path) -> (Vec<Member>, Links) {
    ensemble_behind_links_of(dir, 3, 0)
}

/// As [`ensemble_behind_links`], with `voters` participants then `observers` observers.
fn ensemble_behind_links_of(
    dir: &std::path::Path,
    voters: usize,
    observers: usize,
) -> (Vec<Member>, Links) {
    let n = voters + observers;
    let role = |j: usize| if j >= voters { ":observer" } else { "" };
    let ports: Vec<(u16, u16, u16)> = (0..n)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let mut links = std::collections::BTreeMap::new();
    let mut members = Vec::new();
    for i in 0..n {
        let mut servers = String::new();
        for (j, (_, q, e)) in ports.iter().enumerate() {
            if i == j {
                servers += &format!("server.{}=127.0.0.1:{q}:{e}{}\n", j + 1, role(j));
            } else {
                let lq = Link::new(format!("127.0.0.1:{q}").parse().unwrap());
                let le = Link::new(format!("127.0.0.1:{e}").parse().unwrap());
                servers += &format!(
                    "server.{}=127.0.0.1:{}:{}{}\n",
                    j + 1,
                    lq.port,
                    le.port,
                    role(j)
                );
                links.insert((i, j), vec![lq, le]);
            }
        }
        let m = start_member(dir, i, ports[i].0, &servers);
        members.push(m);
    }
    (members, links)
}

fn isolate(links: &Links, who: usize, cut: bool) {
    for ((from, to), pair) in links {
        if *from == who || *to == who {
            for l in pair {
                l.set_cut(cut);
            }
        }
    }
}

/// Cuts (or restores) what `a` and `b` send each other, and nothing else.
fn cut_pair(links: &Links, a: usize, b: usize, cut: bool) {
    for key in [(a, b), (b, a)] {
        for l in links.get(&key).into_iter().flatten() {
            l.set_cut(cut);
        }
    }
}

/// Waits until `member` no longer serves (srvr gives no leader/follower Mode).
fn wait_not_serving(m: &Member, timeout: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if !matches!(m.mode().as_deref(), Some("leader" | "follower")) {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < timeout, "a cut-off member kept serving");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_through(addr: SocketAddr, paths: &[String]) {
    let mut c = Client::connect(addr);
    for p in paths {
        assert_eq!(c.call(create(p, b"x", 0)).err(), 0, "write {p} refused");
    }
}

#[test]
fn partitioned_follower_and_leader_stop_serving_and_rejoin_with_every_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (members, links) = ensemble_behind_links(tmp.path());
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    let leader = wait_serving(&members, Duration::from_secs(30));
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut acked: Vec<String> = (0..5).map(|i| format!("/before{i}")).collect();
    write_through(addrs[leader], &acked);

    // A follower cut off from both others: it stops serving (syncLimit); the majority writes on.
    isolate(&links, follower, true);
    let took = wait_not_serving(&members[follower], Duration::from_secs(20));
    eprintln!("isolated follower stopped serving after {took:?}");
    assert_eq!(
        members[follower].four_letter("isro").as_deref(),
        Some("null")
    );
    let during: Vec<String> = (0..5).map(|i| format!("/without-follower{i}")).collect();
    write_through(addrs[other], &during);
    acked.extend(during);
    isolate(&links, follower, false);
    wait_serving(&members, Duration::from_secs(30));
    for a in &addrs {
        sync_and_check(*a, &acked);
    }

    // The leader cut off: the two others elect one of themselves; the old leader stops serving.
    let leader = wait_serving(&members, Duration::from_secs(30));
    isolate(&links, leader, true);
    let took = wait_not_serving(&members[leader], Duration::from_secs(20));
    eprintln!("isolated leader stopped serving after {took:?}");
    let rest: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let t0 = Instant::now();
    let new_leader = loop {
        if let Some(&l) = rest
            .iter()
            .find(|&&i| members[i].mode().as_deref() == Some("leader"))
        {
            if rest.iter().all(|&i| members[i].mode().is_some()) {
                break l;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "no new leader");
        std::thread::sleep(Duration::from_millis(50));
    };
    let during: Vec<String> = (0..5).map(|i| format!("/without-leader{i}")).collect();
    write_through(addrs[new_leader], &during);
    acked.extend(during);
    isolate(&links, leader, false);
    let back = wait_serving(&members, Duration::from_secs(30));
    assert_eq!(back, new_leader, "the rejoining old leader took over again");
    for a in &addrs {
        sync_and_check(*a, &acked);
    }
}

/// `readonlymode.enabled`: a member cut off from its quorum serves reads, after a grace period,
/// to clients that allow it (ZooKeeper's ReadOnlyZooKeeperServer), and turns everything else
/// away; when the quorum is back it drops those clients and serves as before.
#[test]
fn a_member_without_quorum_serves_reads_read_only_when_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let mut members = ensemble_configured(3, 0, tmp.path(), "readonlymode.enabled=true\n");
    let leader = wait_serving(&members, Duration::from_secs(30));
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    let mut c = Client::connect(addrs[leader]);
    assert_eq!(c.call(create("/ro", b"before", 0)).err(), 0);
    let (global, global_pw) = (c.session_id, c.passwd.clone());
    drop(c);
    let me = (leader + 1) % 3;
    assert_eq!(members[me].four_letter("isro").as_deref(), Some("rw"));
    for (i, m) in members.iter_mut().enumerate() {
        if i != me {
            m.kill();
        }
    }
    // Not serving at first, then read-only after max(2 s, tickTime).
    let t0 = Instant::now();
    while members[me].four_letter("isro").as_deref() != Some("ro") {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never became read-only"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(members[me].mode().as_deref(), Some("read-only"));
    let mntr = members[me].four_letter("mntr").unwrap();
    assert!(mntr.contains("zk_server_state\tread-only"), "{mntr}");
    // A client that does not allow read-only is dropped without an answer.
    let mut s = raw_connect(addrs[me]);
    s.write_all(&connect_frame(0, vec![0; 16], 4000, 0, Some(false)))
        .unwrap();
    assert!(
        read_frame(&mut s).is_none(),
        "a read-write client was answered"
    );
    // So is a session of the quorum's, even from a read-only client.
    assert!(Client::connect_flagged(addrs[me], global, global_pw, 4000, true).is_none());
    // A read-only client gets a session here, flagged read-only; reads are served.
    let (mut ro, flag) = Client::connect_flagged(addrs[me], 0, vec![0; 16], 4000, true).unwrap();
    assert_eq!(flag, Some(true));
    let r = ro.call(get_data("/ro", true));
    assert_eq!(r.err(), 0);
    assert!(r.raw.windows(6).any(|w| w == b"before"));
    assert_eq!(ro.call(exists("/nope", false)).err(), -101);
    assert_eq!(ro.call(children2("/", false)).err(), 0);
    // Every change, and sync, is NOTREADONLY (-119); nothing is written.
    assert_eq!(ro.call(create("/ro2", b"", 0)).err(), -119);
    assert_eq!(ro.call(set_data("/ro", b"x", -1)).err(), -119);
    assert_eq!(ro.call(delete("/ro", -1)).err(), -119);
    assert_eq!(
        ro.call(Request::Multi(jute::MultiRequest { ops: vec![] }))
            .err(),
        -119
    );
    let sync = Request::Sync(jute::proto::SyncRequest { path: "/".into() });
    assert_eq!(ro.call(sync).err(), -119);
    assert_eq!(ro.call(Request::Ping).err(), 0);
    // The read-only session can be resumed here (it lives nowhere else).
    let (id, pw) = (ro.session_id, ro.passwd.clone());
    drop(ro);
    let (mut ro, _) = Client::connect_flagged(addrs[me], id, pw.clone(), 4000, true).unwrap();
    assert_eq!(ro.session_id, id);
    assert_eq!(ro.call(get_data("/ro", false)).err(), 0);
    // The quorum comes back: the read-only client is dropped, and the member serves writes.
    for (i, m) in members.iter_mut().enumerate() {
        if i != me {
            m.start();
        }
    }
    wait_serving(&members, Duration::from_secs(30));
    assert!(
        is_closed(&mut ro.stream),
        "the read-only connection was kept"
    );
    assert_eq!(members[me].four_letter("isro").as_deref(), Some("rw"));
    assert!(Client::connect_flagged(addrs[me], id, pw, 4000, true).is_none());
    let (mut rw, flag) = Client::connect_flagged(addrs[me], 0, vec![0; 16], 4000, true).unwrap();
    assert_eq!(flag, Some(false));
    assert_eq!(rw.call(set_data("/ro", b"after", -1)).err(), 0);
}

fn reconfig(joining: &str, leaving: &str, new_members: &str, from: i64) -> Request {
    Request::Reconfig(jute::proto::ReconfigRequest {
        joining_servers: joining.into(),
        leaving_servers: leaving.into(),
        new_members: new_members.into(),
        cur_config_id: from,
    })
}

/// The `server.N` ids and the version of a config text.
fn config_of(text: &[u8]) -> (Vec<u64>, i64) {
    let text = std::str::from_utf8(text).unwrap();
    let ids = text
        .lines()
        .filter_map(|l| l.strip_prefix("server.")?.split_once('=')?.0.parse().ok())
        .collect();
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .map(|v| i64::from_str_radix(v, 16).unwrap())
        .unwrap();
    (ids, version)
}

/// A member's `/zookeeper/config` after a sync (waiting while the ensemble elects a leader).
fn config_on(addr: SocketAddr) -> (Vec<u64>, i64) {
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{addr} never served"
        );
        let Some(mut c) = Client::connect_with(addr, 0, vec![0; 16], 30000) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let sync = Request::Sync(jute::proto::SyncRequest { path: "/".into() });
        if c.send_checked(&sync)
            .and_then(|x| c.recv(x, OpCode::Sync))
            .map(|r| r.err())
            != Some(0)
        {
            continue;
        }
        let get = get_data("/zookeeper/config", false);
        let r = c
            .send_checked(&get)
            .and_then(|x| c.recv(x, OpCode::GetData));
        if let Some(Response::GetData(d)) = r.and_then(|r| r.body) {
            return config_of(&d.data.unwrap_or_default());
        }
    }
}

fn wait_mode(m: &Member, want: &str, timeout: Duration) {
    let t0 = Instant::now();
    while m.mode().as_deref() != Some(want) {
        assert!(t0.elapsed() < timeout, "{:?} never became {want}", m.cfg);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (up to 15 s) until `m`'s zoo.cfg points at `zoo.cfg.dynamic.<version>`, and checks
/// that file leaves out `absent`.
fn wait_dynamic_config(m: &Member, version: i64, absent: &str) {
    let dynamic = m.cfg.with_extension(format!("cfg.dynamic.{version:x}"));
    let t0 = Instant::now();
    loop {
        let written = std::fs::read_to_string(&m.cfg).is_ok_and(|t| {
            t.lines().any(|l| {
                l.strip_prefix("dynamicConfigFile=")
                    .is_some_and(|p| std::fs::canonicalize(p).ok() == dynamic.canonicalize().ok())
            })
        });
        if written {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{} never pointed at {}",
            m.cfg.display(),
            dynamic.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&dynamic).unwrap();
    assert!(
        text.starts_with("server.") && !text.contains(absent),
        "{text}"
    );
}

#[test]
fn reconfig_removes_and_adds_voters_and_the_new_membership_holds_a_quorum() {
    let tmp = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16, u16)> = (0..4)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let line = |i: usize| {
        let (c, q, e) = ports[i];
        format!(
            "server.{}=127.0.0.1:{q}:{e}:participant;127.0.0.1:{c}",
            i + 1
        )
    };
    let extra = "reconfigEnabled=true\n\
                 DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n";
    let three: String = (0..3).map(|i| line(i) + "\n").collect();
    let mut members: Vec<Member> = (0..3)
        .map(|i| start_member(tmp.path(), i, ports[i].0, &format!("{three}{extra}")))
        .collect();
    let leader = wait_serving(&members, Duration::from_secs(30));
    // As ZooKeeper's, zoo.cfg's membership takes the first epoch's zxid as its version.
    let (ids, v0) = config_on(members[leader].client);
    assert_eq!(
        (ids, v0 >> 32 > 0, v0 & 0xffff_ffff),
        (vec![1, 2, 3], true, 0)
    );
    for m in &members {
        assert_eq!(config_on(m.client), (vec![1, 2, 3], v0));
    }

    // The config node is world-readable only: a reconfig needs the super user.
    let mut c = Client::connect(members[(leader + 1) % 3].client);
    assert_eq!(c.call(reconfig("", "3", "", -1)).err(), -102);
    assert_eq!(c.add_digest("super:test"), 0);
    // Refused as ZooKeeper refuses them.
    assert_eq!(
        c.call(reconfig("", "3", "", 0x1234)).err(),
        -103,
        "stale version"
    );
    assert_eq!(c.call(reconfig("", "1,2,3", "", -1)).err(), -8, "no voters");
    let absent: String = (5..8)
        .map(|i| {
            format!(
                "server.{i}=127.0.0.1:{}:{};{},",
                free_port(),
                free_port(),
                free_port()
            )
        })
        .collect();
    assert_eq!(
        c.call(reconfig(&absent, "", "", -1)).err(),
        -13,
        "no synced quorum"
    );

    // Remove server 3 (through a follower: forwarded to the leader).
    let r = c.call(reconfig("", "3", "", -1));
    assert_eq!(r.err(), 0);
    let Some(Response::Reconfig(d)) = r.body else {
        panic!("{:?}", r.body)
    };
    let (ids, v1) = config_of(d.data.as_deref().unwrap());
    assert_eq!(ids, [1, 2]);
    assert!(v1 > 0, "the version is the reconfig's zxid");
    assert_eq!(d.stat.mzxid, v1);
    // A removed leader steps down, and 1 and 2 elect one of them.
    let leader = wait_serving(&members[..2], Duration::from_secs(30));
    for m in &members[..2] {
        assert_eq!(config_on(m.client), (vec![1, 2], v1));
    }
    // 3 saw the commit too: as ZooKeeper's, every member writes the new membership to
    // zoo.cfg.dynamic.<version> and points its zoo.cfg at it.
    for m in &members {
        wait_dynamic_config(m, v1, "server.3=");
    }
    // 3 is out: stopping it leaves a quorum of the new membership.
    members[2].kill();
    let written: Vec<String> = (0..5).map(|i| format!("/after-remove{i}")).collect();
    let mut w = Client::connect(members[leader].client);
    assert_eq!(w.add_digest("super:test"), 0);
    for p in &written {
        assert_eq!(w.call(create(p, b"v", 0)).err(), 0);
    }

    // Server 4 starts with a config naming the ensemble and itself, syncs as a non-voting
    // follower, then is added.
    let four = format!("{}\n{}\n{}\n{extra}", line(0), line(1), line(3));
    members.push(start_member(tmp.path(), 3, ports[3].0, &four));
    wait_mode(&members[3], "follower", Duration::from_secs(30));
    let added = line(3).replace(":participant", "");
    let r = w.call(reconfig(&added, "", "", v1));
    assert_eq!(r.err(), 0, "add server 4");
    let Some(Response::Reconfig(d)) = r.body else {
        panic!("{:?}", r.body)
    };
    let (ids, v2) = config_of(d.data.as_deref().unwrap());
    assert_eq!(ids, [1, 2, 4]);
    assert!(v2 > v1);
    assert_eq!(config_on(members[3].client), (vec![1, 2, 4], v2));
    sync_and_check(members[3].client, &written);

    // 4 votes: with server 1 gone, 2 and 4 are a quorum and elect a leader.
    members[0].kill();
    let t0 = Instant::now();
    let more: Vec<String> = (0..5).map(|i| format!("/after-add{i}")).collect();
    'retry: for attempt in 0.. {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "2 and 4 never served"
        );
        std::thread::sleep(Duration::from_millis(200));
        // Through 2 and 4 in turn.
        let addr = members[[1, 3][attempt % 2]].client;
        let Some(mut x) = Client::connect_with(addr, 0, vec![0; 16], 30000) else {
            continue;
        };
        for p in &more {
            // NodeExists: a create an earlier attempt made.
            if ![0, -110].contains(&x.call(create(p, b"v", 0)).err()) {
                continue 'retry;
            }
        }
        break;
    }
    sync_and_check(members[3].client, &more);
    sync_and_check(members[1].client, &more);

    // A restarted member keeps the membership of the last reconfig, not its zoo.cfg's.
    members[1].kill();
    members[1].start();
    let t0 = Instant::now();
    loop {
        let mode = members[1].mode();
        if matches!(mode.as_deref(), Some("leader" | "follower")) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "2 did not rejoin: {mode:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(config_on(members[1].client).0, [1, 2, 4]);
    let static_cfg = std::fs::read_to_string(&members[1].cfg).unwrap();
    assert!(
        static_cfg.contains(&format!(".dynamic.{v2:x}\n")) && !static_cfg.contains("server."),
        "{static_cfg}"
    );
    sync_and_check(members[1].client, &more);
    // `conf` shows the membership in effect, as ZooKeeper's members do.
    let conf = members[1].four_letter("conf").unwrap();
    assert!(
        conf.contains("\npeerType=0\nmembership: \nserver.1="),
        "{conf}"
    );
    assert!(conf.ends_with(&format!("\nversion={v2:x}")), "{conf}");
    assert!(!conf.contains("server.3="), "{conf}");
    // Server 3's zoo.cfg names a membership without it: it will not start from it (ZooKeeper:
    // "My id 3 not in the peer list").
    let out = Command::new(env!("CARGO_BIN_EXE_zkrs"))
        .arg("--config")
        .arg(&members[2].cfg)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("myid 3 has no server.3 line"),
        "{said}"
    );
    // Put back as it was (zoo.cfg.bak), it knows only an old membership, whose other voters
    // are down or out: it learns the new one from the notifications of 2 and 4 and follows,
    // without a vote.
    std::fs::copy(members[2].cfg.with_extension("cfg.bak"), &members[2].cfg).unwrap();
    members[2].start();
    wait_mode(&members[2], "follower", Duration::from_secs(30));
    assert_eq!(config_on(members[2].client), (vec![1, 2, 4], v2));
}

#[test]
fn a_joiner_with_the_smallest_id_reaches_members_that_do_not_know_it() {
    // Members dial smaller ids; a joiner smaller than every member knocks, and they dial back
    // at the address its InitialMessage names.
    let tmp = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16, u16)> = (0..3)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let line = |i: usize| {
        let (c, q, e) = ports[i];
        format!(
            "server.{}=127.0.0.1:{q}:{e}:participant;127.0.0.1:{c}\n",
            i + 1
        )
    };
    let extra = "reconfigEnabled=true\nskipACL=yes\n";
    let members: Vec<Member> = [1, 2]
        .iter()
        .map(|&i| start_member(tmp.path(), i, ports[i].0, &(line(1) + &line(2) + extra)))
        .collect();
    wait_serving(&members, Duration::from_secs(30));
    let joiner = start_member(
        tmp.path(),
        0,
        ports[0].0,
        &(line(0) + &line(1) + &line(2) + extra),
    );
    wait_mode(&joiner, "follower", Duration::from_secs(30));
    let mut c = Client::connect(members[0].client);
    let r = c.call(reconfig(line(0).trim(), "", "", -1));
    assert_eq!(r.err(), 0);
    let (ids, version) = config_on(joiner.client);
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(config_on(members[1].client), (vec![1, 2, 3], version));
}

/// A CA and a certificate it signs for `names` (`IP:127.0.0.1`, `DNS:...`), made with the
/// openssl command: returns (key store, trust store), PEM files in `dir`.
fn certificate(dir: &std::path::Path, who: &str, names: &str) -> (String, String) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let (ca_key, ca) = (format!("{who}-ca.key"), format!("{who}-ca.pem"));
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={who}-ca"),
        "-keyout",
        &ca_key,
        "-out",
        &ca,
    ]);
    let (key, csr, crt) = (
        format!("{who}.key"),
        format!("{who}.csr"),
        format!("{who}.crt"),
    );
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &format!("/CN={who}"),
        "-keyout",
        &key,
        "-out",
        &csr,
    ]);
    let ext = dir.join(format!("{who}.ext"));
    let san = if names.is_empty() {
        String::new()
    } else {
        format!("subjectAltName={names}\n")
    };
    std::fs::write(
        &ext,
        format!("{san}extendedKeyUsage=serverAuth,clientAuth\n"),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        &crt,
    ]);
    let p8 = format!("{who}.p8");
    run(&["pkcs8", "-topk8", "-nocrypt", "-in", &key, "-out", &p8]);
    let store = dir.join(format!("{who}.pem"));
    let text = std::fs::read_to_string(dir.join(&p8)).unwrap()
        + &std::fs::read_to_string(dir.join(&crt)).unwrap();
    std::fs::write(&store, text).unwrap();
    (
        store.display().to_string(),
        dir.join(ca).display().to_string(),
    )
}

fn quorum_tls_lines(key_store: &str, trust_store: &str) -> String {
    format!(
        "sslQuorum=true\nssl.quorum.keyStore.location={key_store}\n\
         ssl.quorum.trustStore.location={trust_store}\n"
    )
}

/// The beginnings of the zoo.cfg lines about TLS between members.
const QUORUM_TLS_KEYS: &[&str] = &["ssl.quorum.", "sslQuorum", "portUnification"];

/// Rewrites the member's `ssl.quorum`/`sslQuorum`/`portUnification` lines.
fn set_quorum_tls(m: &Member, lines: &str) {
    replace_lines(m, QUORUM_TLS_KEYS, lines);
}

/// Stops the member, then starts it with each `(what, lines)` in turn, `lines` replacing
/// its lines that begin with one of `keys`, and checks that it does not join the others.
/// It is left stopped.
fn stays_out(m: &mut Member, keys: &[&str], cases: &[(&str, String)]) {
    m.kill();
    for (what, lines) in cases {
        replace_lines(m, keys, lines);
        m.start();
        assert_eq!(
            serving_within(m, Duration::from_secs(4)),
            None,
            "a member with {what} joined"
        );
        m.kill();
    }
}

/// Waits for the three members to serve; writes the first 10 of 20 paths `/<name>-<i>`
/// through a follower and checks them on the other. Returns (leader, that follower, the
/// other, the paths).
fn formed_and_written(members: &[Member], name: &str) -> (usize, usize, usize, Vec<String>) {
    let leader = wait_serving(members, Duration::from_secs(30));
    let (f, other) = ((leader + 1) % 3, (leader + 2) % 3);
    let paths: Vec<String> = (0..20).map(|i| format!("/{name}-{i}")).collect();
    write_through(members[f].client, &paths[..10]);
    sync_and_check(members[other].client, &paths[..10]);
    (leader, f, other, paths)
}

/// Waits for every member to serve, writes the last 5 paths through `writer`, and checks
/// that every member has all of them.
fn all_serve_with_every_write(members: &[Member], writer: usize, paths: &[String]) {
    wait_serving(members, Duration::from_secs(30));
    write_through(members[writer].client, &paths[15..]);
    for m in members {
        sync_and_check(m.client, paths);
    }
}

/// Replaces the member's zoo.cfg lines that begin with one of `prefixes` by `lines`.
fn replace_lines(m: &Member, prefixes: &[&str], lines: &str) {
    let text = std::fs::read_to_string(&m.cfg).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !prefixes.iter().any(|p| l.starts_with(p)))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&m.cfg, kept + lines).unwrap();
}

/// Waits until the member serves (Some(mode)), or gives up after `within`.
fn serving_within(m: &Member, within: Duration) -> Option<String> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if let Some(mode) = m.mode().filter(|m| m == "leader" || m == "follower") {
            return Some(mode);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn with_ssl_quorum_members_speak_tls_and_turn_away_strangers_and_plain_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (ks, ts) = certificate(&certs, "member", "IP:127.0.0.1,DNS:localhost");
    let (rogue_ks, rogue_ts) = certificate(&certs, "rogue", "IP:127.0.0.1");
    let mut members = ensemble_configured(3, 0, tmp.path(), &quorum_tls_lines(&ks, &ts));
    let (leader, f, other, paths) = formed_and_written(&members, "tls");

    // A member whose certificate another CA signed, and one speaking plain TCP, cannot join:
    // the other two go on writing.
    stays_out(
        &mut members[other],
        QUORUM_TLS_KEYS,
        &[
            (
                "a certificate from another CA",
                quorum_tls_lines(&rogue_ks, &rogue_ts),
            ),
            ("plain TCP", String::new()),
        ],
    );
    write_through(members[leader].client, &paths[10..15]);

    // Port unification: a member that still dials in the clear joins members that accept both.
    set_quorum_tls(
        &members[other],
        &format!(
            "{}portUnification=true\nsslQuorum=false\n",
            quorum_tls_lines(&ks, &ts)
        ),
    );
    for i in [leader, f] {
        members[i].kill();
        set_quorum_tls(
            &members[i],
            &format!("{}portUnification=true\n", quorum_tls_lines(&ks, &ts)),
        );
        members[i].start();
    }
    members[other].start();
    all_serve_with_every_write(&members, other, &paths);
}

#[test]
fn quorum_tls_checks_the_dialed_host_unless_told_not_to() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    // Signed by the trusted CA, but for another host: refused while names are verified.
    let (ks, ts) = certificate(&certs, "elsewhere", "DNS:zk.example.com");
    let lines = quorum_tls_lines(&ks, &ts);
    let mut members = ensemble_configured(3, 0, tmp.path(), &lines);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        members
            .iter()
            .all(|m| serving_within(m, Duration::from_millis(100)).is_none()),
        "members whose certificates name another host formed a quorum"
    );
    for m in &mut members {
        m.kill();
        set_quorum_tls(
            m,
            &format!("{lines}ssl.quorum.hostnameVerification=false\n"),
        );
        m.start();
    }
    wait_serving(&members, Duration::from_secs(30));
    write_through(members[0].client, &["/unverified".to_string()]);
}

#[test]
fn hierarchical_quorums_need_a_majority_of_group_majorities() {
    // Groups {1,2} {3,4} {5}. Without 1 and 3 the rest are a majority of the five, but hold
    // a majority of one group only ({5}): no quorum. Without 1 and 2 the rest hold two groups.
    let tmp = tempfile::tempdir().unwrap();
    let groups = "group.1=1:2\ngroup.2=3:4\ngroup.3=5\n";
    let mut members = ensemble_configured(5, 0, tmp.path(), groups);
    wait_serving(&members, Duration::from_secs(30));
    let conf = members[4].four_letter("conf").unwrap();
    assert!(
        conf.contains("group.1=1:2\ngroup.2=3:4\ngroup.3=5\nweight.1=1"),
        "{conf}"
    );
    write_through(members[4].client, &["/h-all".to_string()]);

    members[0].kill();
    members[2].kill();
    for i in [1, 3, 4] {
        wait_not_serving(&members[i], Duration::from_secs(15));
    }
    std::thread::sleep(Duration::from_secs(3));
    for i in [1, 3, 4] {
        assert_eq!(
            members[i]
                .mode()
                .filter(|m| m == "leader" || m == "follower"),
            None,
            "member {} serves without a hierarchical quorum",
            i + 1
        );
    }

    members[0].start();
    members[2].start();
    wait_serving(&members, Duration::from_secs(30));
    members[0].kill();
    members[1].kill();
    wait_serving(&members, Duration::from_secs(30));
    write_through(members[2].client, &["/h-two-groups".to_string()]);
    for i in [2, 3, 4] {
        sync_and_check(
            members[i].client,
            &["/h-all".to_string(), "/h-two-groups".to_string()],
        );
    }
}

/// A JAAS file for SASL between members: the QuorumServer section knows `test` (password
/// `secret`); the QuorumLearner section logs in as `test` with `password`.
fn quorum_jaas(dir: &std::path::Path, name: &str, password: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "QuorumServer {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
             user_test=\"secret\";\n}};\nQuorumLearner {{\n  \
             org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
             username=\"test\"\n  password=\"{password}\";\n}};\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// zoo.cfg lines for quorum SASL with `jaas`: whether this member logs in (`learner`) and
/// whether it requires others to (`server`).
fn quorum_sasl_lines(jaas: &str, learner: bool, server: bool) -> String {
    format!(
        "quorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl={learner}\n\
         quorum.auth.serverRequireSasl={server}\njava.security.auth.login.config={jaas}\n"
    )
}

/// The beginnings of the zoo.cfg lines about SASL between members.
const QUORUM_SASL_KEYS: &[&str] = &["quorum.auth.", "java.security.auth.login.config"];

fn set_quorum_sasl(m: &Member, lines: &str) {
    replace_lines(m, QUORUM_SASL_KEYS, lines);
}

#[test]
fn with_quorum_sasl_members_log_in_and_turn_away_wrong_passwords_and_silent_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let good = quorum_jaas(tmp.path(), "good.jaas", "secret");
    let wrong = quorum_jaas(tmp.path(), "wrong.jaas", "guess");
    let mut members = ensemble_configured(3, 0, tmp.path(), &quorum_sasl_lines(&good, true, true));
    let (leader, f, other, paths) = formed_and_written(&members, "sasl");
    let log = std::fs::read_to_string(members[leader].cfg.with_file_name("zkrs.log")).unwrap();
    assert!(
        log.contains("logged in as test"),
        "the leader logged no login"
    );

    // A member with the wrong password, and one that does not log in (though it takes the
    // others' logins), cannot join members that require it: the other two go on writing.
    stays_out(
        &mut members[other],
        QUORUM_SASL_KEYS,
        &[
            ("the wrong password", quorum_sasl_lines(&wrong, true, true)),
            ("no login", quorum_sasl_lines(&good, false, false)),
        ],
    );
    write_through(members[leader].client, &paths[10..15]);

    // A rolling upgrade, as ZooKeeper's guide has it: members that log in but require it
    // of no one (its second step) take in one that does not log in yet (its first step),
    // and log in to it.
    for i in [leader, f] {
        members[i].kill();
        set_quorum_sasl(&members[i], &quorum_sasl_lines(&good, true, false));
        members[i].start();
    }
    set_quorum_sasl(&members[other], &quorum_sasl_lines(&good, false, false));
    members[other].start();
    all_serve_with_every_write(&members, other, &paths);
}

#[test]
fn an_apache_members_data_dir_is_taken_over_and_synced_to_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    // Member 3 starts on the data dir Apache ZooKeeper's server 3 left (epoch 2, zxid
    // 0x200000009); members 1 and 2 on empty ones.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/zookeeper-member/version-2");
    let dst = tmp.path().join("m3/version-2");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let members = ensemble(3, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    assert_eq!(leader, 2, "the member with ZooKeeper's history leads");
    let mine = vec!["/q".to_string(), "/q/after".to_string()];
    for m in &members {
        sync_and_check(m.client, &mine);
        let mut c = Client::connect(m.client);
        let r = c.call(get_data("/q/after", false));
        let Some(Response::GetData(d)) = r.body else {
            panic!("{r:?}")
        };
        assert_eq!(d.data.as_deref(), Some(&b"2"[..]));
        assert_eq!(d.stat.czxid, 0x2_0000_0002);
    }
    // The history goes on in a later epoch.
    write_through(members[0].client, &["/new".to_string()]);
    let mut c = Client::connect(members[1].client);
    let r = c.call(exists("/new", false));
    let Some(Response::Exists(e)) = r.body else {
        panic!("{r:?}")
    };
    assert!(e.stat.czxid > 0x3_0000_0000, "{:#x}", e.stat.czxid);
}

/// `key`'s value in a member's `mntr`.
fn mntr_value(m: &Member, key: &str) -> i64 {
    let mntr = m.four_letter("mntr").unwrap_or_default();
    mntr.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}\t")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} missing in mntr:\n{mntr}"))
}

#[test]
fn a_member_far_behind_syncs_from_a_snapshot_sent_in_pieces_while_writes_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    // The leader keeps 500 committed txns for DIFF: a member missing more takes a snapshot.
    let mut members = ensemble_configured(3, 0, tmp.path(), "commitLogCount=500\n");
    let leader = wait_serving(&members, Duration::from_secs(30));
    let behind = (leader + 1) % 3;
    members[behind].kill();
    // 800 txns and some 3 MB of data: more than the leader keeps, several pieces' worth.
    let data = vec![b'x'; 4000];
    let mut paths: Vec<String> = (0..800).map(|i| format!("/far{i}")).collect();
    let mut c = Client::connect(members[leader].client);
    for p in &paths {
        assert_eq!(c.call(create(p, &data, 0)).err(), 0);
    }
    // Restarted while a client writes through the leader all along.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, addr) = (stop.clone(), members[leader].client);
        std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            let mut written = Vec::new();
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let p = format!("/during{i}");
                if c.call(create(&p, b"d", 0)).err() == 0 {
                    written.push(p);
                }
            }
            written
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    members[behind].start();
    wait_serving(&members, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let during = writer.join().unwrap();
    assert!(!during.is_empty());
    paths.extend(during);
    // More txns after it, so that every member logs digests at the same zxids.
    for i in 0..300 {
        assert_eq!(
            c.call(set_data("/far0", format!("{i}").as_bytes(), -1))
                .err(),
            0
        );
    }
    for m in &members {
        sync_and_check(m.client, &paths);
    }
    let log = |i: usize| {
        std::fs::read_to_string(members[i].cfg.with_file_name("zkrs.log")).unwrap_or_default()
    };
    assert!(
        log(behind).contains("installed a snapshot"),
        "no snapshot:\n{}",
        log(behind)
    );
    // Sent in zkrs's format, in pieces.
    let sent = log(leader);
    let line = sent
        .lines()
        .find(|l| l.contains("a snapshot at") && l.contains("zkrs's format"))
        .unwrap_or_else(|| panic!("no snapshot sent:\n{sent}"));
    let pieces: usize = line
        .rsplit(" in ")
        .next()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(pieces >= 3, "{line}");
    // The same tree everywhere: counts, sizes and the digests at every zxid in common.
    for key in ["zk_znode_count", "zk_approximate_data_size"] {
        let values: Vec<i64> = members.iter().map(|m| mntr_value(m, key)).collect();
        assert!(values.iter().all(|v| *v == values[0]), "{key}: {values:?}");
    }
    let mut d = Client::connect(members[behind].client);
    let r = d.call(get_data("/far799", false));
    let Some(Response::GetData(got)) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(got.data.as_deref(), Some(&data[..]));
    let logs: Vec<_> = members.iter().map(|m| m.digests()).collect();
    let common: Vec<_> = logs[behind]
        .keys()
        .filter(|z| logs[leader].contains_key(z))
        .collect();
    assert!(!common.is_empty(), "no digest in common");
    for z in common {
        assert_eq!(logs[behind][z], logs[leader][z], "differs at {z:#x}");
    }
    // A snapshot file a crash left behind goes at the next start, even when the member then
    // syncs by DIFF and never takes a snapshot.
    assert!(!members[behind]
        .cfg
        .with_file_name("zkrs-snapshot.incoming")
        .exists());
    members[behind].kill();
    let left = members[behind].cfg.with_file_name("zkrs-snapshot.incoming");
    std::fs::write(&left, vec![7u8; 100_000]).unwrap();
    members[behind].start();
    wait_serving(&members, Duration::from_secs(30));
    sync_and_check(members[behind].client, &paths);
    assert!(!left.exists(), "{} still there", left.display());
}

#[test]
fn a_follower_answers_undecodable_writes_and_multi_results_as_the_leader_prepared_them() {
    let tmp = tempfile::tempdir().unwrap();
    let members = ensemble(3, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    let follower = members[(leader + 1) % 3].client;
    let mut c = Client::connect(follower);
    // A multi with a read op among its writes cannot be decoded: the leader logs a
    // MarshallingError txn and the follower answers it (ZooKeeper's answer; it used to
    // go unanswered).
    use jute::Encode;
    let zxid = c.call(exists("/", false)).header.zxid;
    let mut body = Vec::new();
    jute::proto::MultiHeader {
        type_: 5,
        done: false,
        err: -1,
    }
    .encode(&mut body);
    jute::proto::SetDataRequest {
        path: "/".into(),
        data: None,
        version: -1,
    }
    .encode(&mut body);
    jute::proto::MultiHeader {
        type_: 4,
        done: false,
        err: -1,
    }
    .encode(&mut body);
    jute::proto::GetDataRequest {
        path: "/".into(),
        watch: false,
    }
    .encode(&mut body);
    jute::proto::MultiHeader {
        type_: -1,
        done: true,
        err: -1,
    }
    .encode(&mut body);
    let mut frame = Vec::new();
    jute::frame::write(&mut frame, |out| {
        jute::proto::RequestHeader { xid: 77, type_: 14 }.encode(out);
        out.extend_from_slice(&body);
    });
    c.send_raw(&frame);
    let r = c.recv(77, jute::OpCode::Multi).expect("an answer");
    assert_eq!((r.err(), r.header.zxid), (-5, zxid + 1));
    // A multi's create with container flags makes a container: the follower's answer has
    // the leader's result type (create2, with a stat).
    let r = c.call(Request::Multi(jute::MultiRequest {
        ops: vec![jute::MultiOp::Create(jute::proto::CreateRequest {
            path: "/box".into(),
            data: None,
            acl: open_acl(),
            flags: 4,
        })],
    }));
    let Some(Response::Multi(m)) = r.body else {
        panic!("{r:?}")
    };
    assert!(
        matches!(&m.results[0], jute::MultiResult::Create2(c) if c.path == "/box"),
        "{m:?}"
    );
}

#[test]
fn a_followers_sync_is_answered_after_the_writes_sent_before_it() {
    // The leader may answer a forwarded sync before the writes the same connection forwarded
    // ahead of it commit, or commit those and the writes after the sync at once;
    // ZooKeeper answers a session's requests in order all the same.
    let tmp = tempfile::tempdir().unwrap();
    let members = ensemble(3, tmp.path());
    let leader = wait_serving(&members, Duration::from_secs(30));
    let mut c = Client::connect(members[(leader + 1) % 3].client);
    for round in 0..40 {
        let mut sent = Vec::new();
        for i in 0..4 {
            let req = create(&format!("/s{round}-{i}"), b"", 0);
            sent.push((c.send(&req), OpCode::Create));
        }
        let sync = Request::Sync(jute::proto::SyncRequest { path: "/".into() });
        sent.push((c.send(&sync), OpCode::Sync));
        for i in 4..8 {
            let req = create(&format!("/s{round}-{i}"), b"", 0);
            sent.push((c.send(&req), OpCode::Create));
        }
        // `recv` asserts that each answer is the next one asked for.
        for (xid, op) in sent {
            assert_eq!(c.recv(xid, op).expect("an answer").err(), 0);
        }
    }
}

/// A standalone server's `snapshot` admin file of `paths`, written into `dir/m1/version-2`
/// under the name the command gave it.
fn snapshot_into_member_1(dir: &std::path::Path, paths: &[String]) {
    let admin = free_port();
    let source = TestServer::start(&format!(
        "admin.serverPort={admin}\nadmin.serverAddress=127.0.0.1\n"
    ));
    write_through(source.addr, paths);
    let (status, snap) = backup_command(admin, "snapshot", None).unwrap();
    assert_eq!(status, 200);
    let zxid = {
        let mut c = Client::connect(source.addr);
        c.call(exists(&paths[paths.len() - 1], false)).header.zxid
    };
    let dst = dir.join("m1/version-2");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::write(dst.join(format!("snapshot.{zxid:x}")), &snap).unwrap();
}

/// Three members' ports and their `server.N` lines.
fn member_ports() -> (Vec<u16>, String) {
    let ports: Vec<(u16, u16, u16)> = (0..3)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let servers = ports
        .iter()
        .enumerate()
        .map(|(i, (_, q, e))| format!("server.{}=127.0.0.1:{q}:{e}\n", i + 1))
        .collect();
    (ports.iter().map(|p| p.0).collect(), servers)
}

#[test]
fn an_ensemble_is_restored_from_a_snapshot_file_put_into_one_members_empty_data_dir() {
    // The snapshot admin command's file, put into member 1's empty data dir as ZooKeeper's
    // snapshot: member 1 imports it as it would ZooKeeper's data, and, started first, leads
    // with that history; the others take it from it.
    let paths: Vec<String> = (0..30).map(|i| format!("/backup{i}")).collect();
    let tmp = tempfile::tempdir().unwrap();
    snapshot_into_member_1(tmp.path(), &paths);
    let (ports, servers) = member_ports();
    let first = start_member(tmp.path(), 0, ports[0], &servers);
    // Its client port is bound once the import is done.
    let t0 = Instant::now();
    while first.four_letter("ruok").as_deref() != Some("imok") {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "member 1 did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut members = vec![first];
    for (i, port) in ports.iter().enumerate().skip(1) {
        members.push(start_member(tmp.path(), i, *port, &servers));
    }
    let leader = wait_serving(&members, Duration::from_secs(30));
    assert_eq!(leader, 0, "the member with the snapshot leads");
    for m in &members {
        sync_and_check(m.client, &paths);
    }
    write_through(members[2].client, &["/after".to_string()]);
    sync_and_check(members[1].client, &["/after".to_string()]);
}

#[test]
fn a_member_whose_data_is_ahead_of_the_elected_leaders_stops_and_says_why() {
    // Members 2 and 3 elect a leader on empty data dirs; member 1 then comes with a snapshot
    // it imports (zxids the leader's history lacks). The leader tells it to truncate below
    // what it applied: it stops with the reason, as ZooKeeper's learner does, and never
    // panics; the others serve on.
    let paths: Vec<String> = (0..30).map(|i| format!("/ahead{i}")).collect();
    let tmp = tempfile::tempdir().unwrap();
    snapshot_into_member_1(tmp.path(), &paths);
    let (ports, servers) = member_ports();
    let others: Vec<Member> = (1..3)
        .map(|i| start_member(tmp.path(), i, ports[i], &servers))
        .collect();
    wait_serving(&others, Duration::from_secs(30));
    let mut late = start_member(tmp.path(), 0, ports[0], &servers);
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = late.child.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "member 1 went on");
        std::thread::sleep(Duration::from_millis(50));
    };
    late.child = None;
    assert_eq!(status.code(), Some(2));
    let log = std::fs::read_to_string(late.cfg.with_file_name("zkrs.log")).unwrap();
    assert!(log.contains("data is ahead of the ensemble's"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    write_through(others[0].client, &["/still".to_string()]);
    sync_and_check(others[1].client, &["/still".to_string()]);
}

/// What the nemesis test's clients saw acknowledged.
#[derive(Default)]
struct Acked {
    /// Paths created (plain and sequential, single and in pairs by multi).
    paths: Vec<String>,
    /// Sequential names handed out, each with the session that got it.
    sequential: Vec<(String, usize)>,
    /// Register reads and writes, for the history check.
    history: Vec<Op>,
}

/// One client of the nemesis test: writes and reads until `stop`, through whichever member
/// answers. Unique creates, sequential creates, two-node multis, and register reads and
/// writes; what was acknowledged goes into `acked`.
fn nemesis_client(
    s: usize,
    addrs: Vec<SocketAddr>,
    acked: Arc<Mutex<Acked>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Roaming {
    let at = s % addrs.len();
    let mut c = Roaming::new(addrs, at);
    // The session's ephemeral, which must outlive every fault the session outlives.
    let (r, retried) = c.call_tracked(create(&format!("/e/{s}"), b"", 1));
    assert!(
        r.err() == 0 || (retried && r.err() == -110),
        "/e/{s}: {}",
        r.err()
    );
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        match n % 5 {
            0 => {
                let p = format!("/c/{s}-{n}");
                let (r, retried) = c.call_tracked(create(&p, b"c", 0));
                // NodeExists is an acknowledgement only for a create sent again after its
                // connection broke: its first attempt committed.
                assert!(
                    r.err() == 0 || (retried && r.err() == -110),
                    "create {p}: {}",
                    r.err()
                );
                acked.lock().unwrap().paths.push(p);
            }
            1 => {
                let (r, _) = c.call_tracked(create2("/seq/n-", b"s", 2));
                assert_eq!(r.err(), 0, "sequential create");
                let Some(Response::Create2(cr)) = r.body else {
                    panic!("{r:?}")
                };
                let mut a = acked.lock().unwrap();
                a.paths.push(cr.path.clone());
                a.sequential.push((cr.path, s));
            }
            2 => {
                let (a, b) = (format!("/m/{s}-{n}-a"), format!("/m/{s}-{n}-b"));
                let op = |p: &str| {
                    let Request::Create(cr) = create(p, b"m", 0) else {
                        unreachable!()
                    };
                    jute::MultiOp::Create(cr)
                };
                let req = Request::Multi(jute::MultiRequest {
                    ops: vec![op(&a), op(&b)],
                });
                let (r, retried) = c.call_tracked(req);
                let Some(Response::Multi(m)) = r.body else {
                    panic!("multi: {r:?}")
                };
                let ok = m
                    .results
                    .iter()
                    .all(|x| !matches!(x, jute::MultiResult::Error(_)));
                let exists_already = m
                    .results
                    .first()
                    .is_some_and(|x| matches!(x, jute::MultiResult::Error(-110)));
                assert!(ok || (retried && exists_already), "multi {a}: {m:?}");
                acked.lock().unwrap().paths.extend([a, b]);
            }
            _ => {
                let key = (n as usize * 7 + s) % 3;
                let ops = register_op(&mut c, s, key, n % 5 == 3, n);
                assert!(!ops.is_empty(), "/reg{key} not answered with a stat");
                acked.lock().unwrap().history.extend(ops);
            }
        }
    }
    c
}

/// Everything a member holds under the nemesis test's paths: each child list, and each
/// register's data and stat.
fn nemesis_tree(addr: SocketAddr) -> Vec<String> {
    let mut c = Client::connect(addr);
    assert_eq!(
        c.call(Request::Sync(jute::proto::SyncRequest { path: "/".into() }))
            .err(),
        0
    );
    let mut out = Vec::new();
    for dir in ["/c", "/seq", "/m", "/e"] {
        let r = c.call(children2(dir, false));
        let Some(Response::GetChildren2(ch)) = r.body else {
            panic!("{dir}: {r:?}")
        };
        let mut names = ch.children.unwrap_or_default();
        names.sort();
        out.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
    }
    for k in 0..3 {
        let r = c.call(get_data(&format!("/reg{k}"), false));
        let Some(Response::GetData(d)) = r.body else {
            panic!("{r:?}")
        };
        out.push(format!(
            "/reg{k} {:?} {:?}",
            String::from_utf8_lossy(&d.data.unwrap_or_default()),
            d.stat
        ));
    }
    out
}

/// A seeded nemesis against real members (three by default) whose quorum and election
/// traffic goes through relays: kill -9 of a member, of the leader, of several, of all;
/// SIGSTOP; a member cut off from the others; the leader and one other member cut apart.
/// Four clients write and read all the while, each following its session from member to
/// member. Afterwards, on every member: every
/// acknowledged create is there (single, sequential, and both nodes of each multi), no
/// sequential name was handed out twice, no multi is half applied, the members hold the
/// same tree, their digests agree at every zxid they share, and the register history is
/// linearizable for writes; each client session's ephemeral outlived the faults, and those
/// of sessions abandoned along the way (2 s, never heard from again) expired on every
/// member, whatever leader they had. `ZKRS_NEMESIS_SEED` and `ZKRS_NEMESIS_ROUNDS` (default 6) pick
/// the run, `ZKRS_NEMESIS_VOTERS` and `ZKRS_NEMESIS_OBSERVERS` (3 and 0) the ensemble; a
/// failure prints its seed; `ZKRS_NEMESIS_KEEP=1` keeps the members' logs.
#[test]
fn a_seeded_nemesis_loses_no_acknowledged_write_and_forks_nothing() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("ZKRS_NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    // ZKRS_NEMESIS_ROUNDS (default 6), ZKRS_NEMESIS_VOTERS (3), ZKRS_NEMESIS_OBSERVERS (0).
    let var = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let rounds = var("ZKRS_NEMESIS_ROUNDS", 6);
    let (voters, observers) = (
        var("ZKRS_NEMESIS_VOTERS", 3),
        var("ZKRS_NEMESIS_OBSERVERS", 0),
    );
    eprintln!(
        "nemesis: ZKRS_NEMESIS_SEED={seed} ZKRS_NEMESIS_ROUNDS={rounds} \
         ZKRS_NEMESIS_VOTERS={voters} ZKRS_NEMESIS_OBSERVERS={observers}"
    );
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    // ZKRS_NEMESIS_KEEP=1 leaves the members' data dirs and logs behind.
    let dir = if std::env::var_os("ZKRS_NEMESIS_KEEP").is_some() {
        let kept = tmp.keep();
        eprintln!("nemesis: members in {}", kept.display());
        kept
    } else {
        tmp.path().to_path_buf()
    };
    let (mut members, links) = ensemble_behind_links_of(&dir, voters, observers);
    let n = members.len();
    let addrs: Vec<SocketAddr> = members.iter().map(|m| m.client).collect();
    wait_serving(&members, Duration::from_secs(30));
    {
        let mut c = Roaming::new(addrs.clone(), 0);
        for p in ["/c", "/seq", "/m", "/e", "/reg0", "/reg1", "/reg2"] {
            assert_eq!(c.call(create(p, b"0", 0)).err(), 0);
        }
    }
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|s| {
            let (acked, stop, addrs) = (acked.clone(), stop.clone(), addrs.clone());
            std::thread::spawn(move || nemesis_client(s, addrs, acked, stop))
        })
        .collect();
    let mut abandoned = Vec::new();
    let pause = |rng: &mut rand::rngs::SmallRng| {
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..2000)))
    };
    for round in 0..rounds {
        pause(&mut rng);
        // Now and then the next fault comes before the ensemble has recovered from the last
        // (an election, a sync still under way).
        let settled = rng.gen_bool(0.6);
        let any = rng.gen_range(0..n);
        let fault = rng.gen_range(0..7);
        let leader = if settled {
            wait_serving(&members, Duration::from_secs(30))
        } else {
            (0..n)
                .find(|&i| members[i].mode().as_deref() == Some("leader"))
                .unwrap_or(any)
        };
        eprintln!(
            "nemesis round {round}: fault {fault}, member {}, leader {}{}",
            any + 1,
            leader + 1,
            if settled { "" } else { " (not waiting)" }
        );
        match fault {
            0 | 1 => {
                let who = if fault == 0 { any } else { leader };
                members[who].kill();
                pause(&mut rng);
                members[who].start();
            }
            2 => {
                // Two or more, at most all but one.
                let k = rng.gen_range(2..n.max(3));
                let some: Vec<usize> = (0..k).map(|j| (any + j) % n).collect();
                for &i in &some {
                    members[i].kill();
                }
                pause(&mut rng);
                for &i in &some {
                    members[i].start();
                }
            }
            3 => {
                for m in members.iter_mut() {
                    m.kill();
                }
                pause(&mut rng);
                for m in members.iter_mut() {
                    m.start();
                }
            }
            4 => {
                let pid = members[any].child.as_ref().unwrap().id().to_string();
                Command::new("kill").args(["-STOP", &pid]).status().unwrap();
                pause(&mut rng);
                Command::new("kill").args(["-CONT", &pid]).status().unwrap();
            }
            5 => {
                isolate(&links, any, true);
                pause(&mut rng);
                isolate(&links, any, false);
            }
            _ => {
                // A partial partition: the leader and one other member lose each other,
                // and both still reach the rest.
                let other = (leader + 1 + any % (n - 1)) % n;
                eprintln!(
                    "nemesis: members {} and {} cut apart",
                    leader + 1,
                    other + 1
                );
                cut_pair(&links, leader, other, true);
                pause(&mut rng);
                cut_pair(&links, leader, other, false);
            }
        }
        // A session of 2 s that makes an ephemeral and is never heard from again: whatever
        // the leader is by then, it expires and takes its ephemeral with it.
        if rng.gen_bool(0.5) {
            let p = format!("/e/gone{round}");
            let at = addrs[rng.gen_range(0..n)];
            if let Some(mut c) = Client::connect_with(at, 0, vec![0; 16], 2000) {
                let _ = c.stream.set_read_timeout(Some(Duration::from_secs(3)));
                if let Some(xid) = c.send_checked(&create(&p, b"", 1)) {
                    let _ = c.recv(xid, OpCode::Create);
                }
                abandoned.push(p);
            }
        }
    }
    wait_serving(&members, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sessions: Vec<Roaming> = clients
        .into_iter()
        .map(|c| {
            c.join()
                .unwrap_or_else(|_| panic!("a client failed: ZKRS_NEMESIS_SEED={seed}"))
        })
        .collect();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    eprintln!(
        "nemesis: {} creates, {} register operations acknowledged",
        acked.paths.len(),
        acked.history.len()
    );
    assert!(acked.paths.len() > 50, "only {} creates", acked.paths.len());
    eprintln!("nemesis: {} sessions abandoned", abandoned.len());

    let mut names = std::collections::HashMap::new();
    for (name, s) in &acked.sequential {
        if let Some(other) = names.insert(name.clone(), *s) {
            panic!("{name} handed out twice (sessions {other} and {s}): seed {seed}");
        }
    }
    // The abandoned sessions expire (their 2 s, and at most as long again for the leader's
    // sweep), from the last fault on.
    let t0 = Instant::now();
    loop {
        let left: Vec<(usize, String)> = addrs
            .iter()
            .enumerate()
            .flat_map(|(i, a)| {
                let tree = nemesis_tree(*a);
                abandoned
                    .iter()
                    .filter(|p| tree.contains(p))
                    .map(|p| (i + 1, p.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "abandoned sessions' ephemerals still there (member, path): {left:?}: seed {seed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let trees: Vec<Vec<String>> = addrs.iter().map(|a| nemesis_tree(*a)).collect();
    for (i, tree) in trees.iter().enumerate() {
        let held: std::collections::HashSet<&str> = tree.iter().map(String::as_str).collect();
        for p in &acked.paths {
            assert!(
                held.contains(p.as_str()),
                "acknowledged {p} missing on member {}: seed {seed}",
                i + 1
            );
        }
        for m in tree.iter().filter(|p| p.starts_with("/m/")) {
            let pair = match m.strip_suffix("-a") {
                Some(stem) => format!("{stem}-b"),
                None => format!("{}-a", m.strip_suffix("-b").unwrap()),
            };
            assert!(
                held.contains(pair.as_str()),
                "{m} without {pair}: seed {seed}"
            );
        }
        assert_eq!(
            tree,
            &trees[0],
            "members 1 and {} hold different trees: seed {seed}",
            i + 1
        );
    }
    let digests: Vec<_> = members.iter().map(Member::digests).collect();
    for (zxid, d) in &digests[0] {
        for (i, other) in digests.iter().enumerate().skip(1) {
            if let Some(o) = other.get(zxid) {
                assert_eq!(
                    o,
                    d,
                    "member {} digests {zxid:#x} otherwise: seed {seed}",
                    i + 1
                );
            }
        }
    }
    check_history(&acked.history);

    // Each session outlived the faults with its ephemeral; two of them close, and their
    // ephemerals go on every member, the others' stay.
    for (s, c) in sessions.iter_mut().enumerate() {
        let r = c.call(exists(&format!("/e/{s}"), false));
        let owner = r
            .body
            .as_ref()
            .and_then(|b| b.stat())
            .map(|st| st.ephemeral_owner);
        assert_eq!(owner, Some(c.client.session_id), "/e/{s}: seed {seed}");
    }
    for c in &mut sessions[..2] {
        assert_eq!(c.call(Request::CloseSession).err(), 0);
    }
    for (i, a) in addrs.iter().enumerate() {
        let tree = nemesis_tree(*a);
        let left: Vec<&String> = tree.iter().filter(|p| p.starts_with("/e/")).collect();
        assert_eq!(left, ["/e/2", "/e/3"], "member {}: seed {seed}", i + 1);
    }
}
