#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hostile and malformed input: ZooKeeper's own answer (an error code, or the connection closed
//! as ZooKeeper closes it), never a panic, and the server keeps serving everyone else.

mod common;
use common::*;
use jute::proto::*;
use jute::{OpCode, Request, Response};
use std::io::Write;
use std::time::Duration;

fn still_serving(s: &TestServer) {
    let mut c = Client::connect(s.addr);
    assert_eq!(c.call(exists("/", false)).err(), 0);
}

#[test]
fn frame_longer_than_jute_maxbuffer_closes_the_connection() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    c.send_raw(&0x10_0000i32.to_be_bytes());
    c.send_raw(&[0u8; 16]);
    assert!(read_frame(&mut c.stream).is_none());
    still_serving(&s);
}

#[test]
fn a_frame_at_the_limit_is_accepted_and_the_limit_is_configurable() {
    let s = TestServer::start("jute.maxbuffer=2000");
    let mut c = Client::connect(s.addr);
    let r = c.call(create("/big", &[7u8; 1900], 0));
    assert_eq!(r.err(), 0);
    c.send(&create("/bigger", &[7u8; 2100], 0));
    assert!(
        read_frame(&mut c.stream).is_none(),
        "over the limit: closed"
    );
    still_serving(&s);
}

#[test]
fn negative_and_absurd_lengths_close_the_connection() {
    let s = TestServer::start("");
    for len in [-1i32, -100, i32::MAX] {
        let mut c = Client::connect(s.addr);
        c.send_raw(&len.to_be_bytes());
        assert!(read_frame(&mut c.stream).is_none(), "{len}");
    }
    // Before the handshake too.
    let mut st = raw_connect(s.addr);
    st.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(read_frame(&mut st).is_none());
    still_serving(&s);
}

#[test]
fn truncated_body_is_marshalling_error_and_the_connection_stays() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    // getData whose path announces 100 bytes but the frame ends after 3 (getData-truncated-body.hex).
    c.send_raw(&[
        0, 0, 0, 0x0f, 0, 0, 0, 0x1e, 0, 0, 0, 4, 0, 0, 0, 0x64, b'/', b'v', b'e',
    ]);
    let r = c.recv(0x1e, OpCode::GetData).unwrap();
    assert_eq!(r.err(), -5);
    assert_eq!(c.call(exists("/", false)).err(), 0);
    // A truncated write consumes a zxid, as ZooKeeper logs an error txn for it.
    let z = c.call(exists("/", false)).header.zxid;
    c.send_raw(&[0, 0, 0, 0x0c, 0, 0, 0, 0x50, 0, 0, 0, 1, 0, 0, 0, 9]);
    let r = c.recv(0x50, OpCode::Create).unwrap();
    assert_eq!((r.err(), r.header.zxid), (-5, z + 1));
}

#[test]
fn header_shorter_than_a_request_header_closes() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    c.send_raw(&[0, 0, 0, 3, 1, 2, 3]);
    assert!(read_frame(&mut c.stream).is_none());
}

#[test]
fn unknown_opcode_is_unimplemented_then_closed() {
    let s = TestServer::start("");
    for op in [200i32, 0, -1, 10] {
        let mut c = Client::connect(s.addr);
        c.send_raw(&[0, 0, 0, 8, 0, 0, 0, 1]);
        c.send_raw(&op.to_be_bytes());
        let f = read_frame(&mut c.stream).unwrap();
        assert_eq!(
            f,
            [0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa],
            "op {op}"
        );
        assert!(read_frame(&mut c.stream).is_none());
    }
    still_serving(&s);
}

#[test]
fn a_request_before_the_handshake_is_closed_without_reply() {
    let s = TestServer::start("");
    // request-before-connect.hex: a getData frame read as a ConnectRequest claims a zxid ahead.
    let mut st = raw_connect(s.addr);
    let mut frame = Vec::new();
    Request::GetData(GetDataRequest {
        path: "/vectors/p1".into(),
        watch: false,
    })
    .encode_frame(1, &mut frame);
    st.write_all(&frame).unwrap();
    assert!(read_frame(&mut st).is_none());
    // ping-before-connect.hex: too short for a ConnectRequest.
    let mut st = raw_connect(s.addr);
    st.write_all(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11])
        .unwrap();
    assert!(read_frame(&mut st).is_none());
    still_serving(&s);
}

#[test]
fn a_client_that_never_speaks_is_dropped() {
    let s = TestServer::start("nio.sessionlessCnxnTimeout=300");
    let mut st = raw_connect(s.addr);
    std::thread::sleep(Duration::from_millis(600));
    assert!(read_frame(&mut st).is_none());
    still_serving(&s);
}

#[test]
fn connections_beyond_max_client_cnxns_are_refused() {
    let s = TestServer::start("maxClientCnxns=5");
    let mut held: Vec<Client> = (0..5).map(|_| Client::connect(s.addr)).collect();
    for _ in 0..5 {
        let mut st = raw_connect(s.addr);
        let _ = st.write_all(&connect_frame(0, vec![0; 16], 30000, 0, Some(false)));
        assert!(
            read_frame(&mut st).is_none(),
            "the sixth connection is closed"
        );
    }
    for c in held.iter_mut() {
        assert_eq!(c.call(exists("/", false)).err(), 0);
    }
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    still_serving(&s);
}

#[test]
fn connections_beyond_max_cnxns_are_refused_until_one_closes() {
    // maxCnxns counts every connection of the port; maxClientCnxns=0 lifts the per-IP one.
    let s = TestServer::start("maxClientCnxns=0\nmaxCnxns=3");
    let mut held: Vec<Client> = (0..3).map(|_| Client::connect(s.addr)).collect();
    let mut st = raw_connect(s.addr);
    let _ = st.write_all(&connect_frame(0, vec![0; 16], 30000, 0, Some(false)));
    assert!(
        read_frame(&mut st).is_none(),
        "the fourth connection is closed"
    );
    for c in held.iter_mut() {
        assert_eq!(c.call(exists("/", false)).err(), 0);
    }
    // A place comes free once a connection is gone.
    drop(held.pop());
    let served = (0..50).any(|_| {
        let mut st = raw_connect(s.addr);
        let _ = st.write_all(&connect_frame(0, vec![0; 16], 30000, 0, Some(false)));
        if read_frame(&mut st).is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    assert!(served, "a new connection is taken after one closed");
}

#[test]
fn garbage_in_multi_and_vectors_is_marshalling_error() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    // multi-mixed-read-write.hex body: a create op then a getData op.
    let ops = jute::MultiRequest {
        ops: vec![
            jute::MultiOp::Create(CreateRequest {
                path: "/mx".into(),
                data: Some(vec![]),
                acl: open_acl(),
                flags: 0,
            }),
            jute::MultiOp::GetData(GetDataRequest {
                path: "/".into(),
                watch: false,
            }),
        ],
    };
    let mut f = Vec::new();
    Request::Multi(ops).encode_frame(9, &mut f);
    c.send_raw(&f);
    assert_eq!(c.recv(9, OpCode::Multi).unwrap().err(), -5);
    // A vector claiming 2^31-1 ACLs in 20 bytes.
    let mut body = vec![0, 0, 0, 10, 0, 0, 0, 1];
    body.extend_from_slice(&[0, 0, 0, 2, b'/', b'v', 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    c.send_raw(&f);
    assert_eq!(c.recv(10, OpCode::Create).unwrap().err(), -5);
    assert_eq!(c.call(exists("/mx", false)).err(), -101);
}

#[test]
fn data_over_the_limit_is_refused_and_nothing_is_stored() {
    let s = TestServer::start("jute.maxbuffer=1000");
    let mut c = Client::connect(s.addr);
    assert_eq!(c.call(create("/d", b"", 0)).err(), 0);
    c.send(&set_data("/d", &[1u8; 1200], -1));
    assert!(read_frame(&mut c.stream).is_none());
    let mut c = Client::connect(s.addr);
    let r = c.call(get_data("/d", false));
    assert!(matches!(r.body, Some(Response::GetData(ref d)) if d.data.as_deref() == Some(&[][..])));
}

#[test]
fn a_client_that_half_closes_mid_frame_is_closed_at_once() {
    // After the handshake, part of a frame and then the client's end of the stream: the
    // server sees the end and closes the connection (not when the session expires).
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    c.stream.write_all(&[0, 0, 0, 50, 1, 2, 3]).unwrap();
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let t0 = std::time::Instant::now();
    assert!(is_closed(&mut c.stream), "the server kept the connection");
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    still_serving(&s);
}
