#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Sessions and persistence: expiry removes ephemerals and fires watches, state survives a
//! restart (sessions included), and a kill -9 under load loses no acknowledged write.

mod common;
use common::*;
use jute::{Request, Response};
use std::time::{Duration, Instant};

#[test]
fn expiry_deletes_ephemerals_fires_watches_and_closes_silently() {
    let s = TestServer::start("tickTime=100");
    let mut a = Client::connect_with(s.addr, 0, vec![0; 16], 400).unwrap();
    assert_eq!(a.timeout_ms, 400);
    assert_eq!(a.call(create("/eph", b"", 1)).err(), 0);
    let mut b = Client::connect(s.addr);
    assert_eq!(b.call(exists("/eph", true)).err(), 0);
    let t0 = Instant::now();
    // a goes silent; b keeps pinging.
    let e = loop {
        b.call(Request::Ping);
        if let Some(e) = b.events.pop_front() {
            break e;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "session never expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((e.type_, e.path.as_str()), (2, "/eph"));
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert!(read_frame(&mut a.stream).is_none(), "expiry sends no frame");
    assert!(Client::connect_with(s.addr, a.session_id, a.passwd.clone(), 400).is_none());
}

#[test]
fn pings_keep_a_session_alive() {
    let s = TestServer::start("tickTime=100");
    let mut a = Client::connect_with(s.addr, 0, vec![0; 16], 400).unwrap();
    a.call(create("/keep", b"", 1));
    for _ in 0..12 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(a.call(Request::Ping).err(), 0);
    }
    assert_eq!(a.call(exists("/keep", false)).err(), 0);
}

#[test]
fn state_and_sessions_survive_a_restart() {
    let s = TestServer::start("");
    let dir = s.dir.clone();
    let (sid, pw, zxid) = {
        let mut c = Client::connect(s.addr);
        c.call(create("/p", b"persist", 0));
        c.call(create("/p/e", b"", 1));
        c.call(create("/p/s-", b"", 2));
        c.call(set_data("/p", b"v2", -1));
        let z = c.call(exists("/p", false)).header.zxid;
        (c.session_id, c.passwd.clone(), z)
    };
    let tmp = s.stop();
    let s = TestServer::start_in(&dir, "");
    let mut c = Client::connect_with(s.addr, sid, pw, 30000).expect("session recovered");
    let r = c.call(get_data("/p", false));
    let Some(Response::GetData(d)) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(d.data.as_deref(), Some(&b"v2"[..]));
    assert_eq!(d.stat.version, 1);
    assert_eq!(d.stat.num_children, 2);
    assert!(r.header.zxid >= zxid);
    assert_eq!(
        c.call(exists("/p/e", false)).err(),
        0,
        "the ephemeral of a live session stays"
    );
    let r = c.call(create("/p/s-", b"", 2));
    assert!(
        matches!(r.body, Some(Response::Create(ref cr)) if cr.path == "/p/s-0000000002"),
        "{r:?}"
    );
    drop(c);
    drop(s);
    drop(tmp);
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_write() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = tmp.path().join("zoo.cfg");
    let mut f = std::fs::File::create(&cfg).unwrap();
    writeln!(
        f,
        "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1",
        tmp.path().display()
    )
    .unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_zkrs"))
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let wait_up = || {
        let t0 = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut child = spawn();
    wait_up();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let Some(mut c) = Client::connect_with(addr, 0, vec![0; 16], 30000) else {
                    return;
                };
                for i in 0.. {
                    let p = format!("/w{w}-{i}");
                    let xid = c.send(&create(&p, b"payload", 0));
                    match c.recv(xid, jute::OpCode::Create) {
                        Some(r) if r.err() == 0 => acked.lock().unwrap().push(p),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "only {} writes acknowledged", acked.len());
    let mut child = spawn();
    wait_up();
    let mut c = Client::connect(addr);
    for p in &acked {
        assert_eq!(c.call(exists(p, false)).err(), 0, "acknowledged {p} lost");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
