#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The client protocol against a real server on a real socket: the checklist of behaviours a
//! naive server gets wrong (CLIENT-PROTOCOL.md §15), each item its own test, decided by what
//! Apache ZooKeeper 3.8 does in the captured vectors.

mod common;
use common::*;
use jute::data::{Acl, Id};
use jute::proto::*;
use jute::{
    Decode, EventType, MultiOp, MultiRequest, MultiResult, OpCode, Reader, Request, Response,
};

fn ok_create(c: &mut Client, path: &str, data: &[u8], flags: i32) -> String {
    let r = c.call(create(path, data, flags));
    assert_eq!(r.err(), 0, "create {path}");
    match r.body {
        Some(Response::Create(CreateResponse { path })) => path,
        other => panic!("{other:?}"),
    }
}

fn stat_of(c: &mut Client, path: &str) -> Stat {
    match c.call(exists(path, false)).body {
        Some(Response::Exists(e)) => e.stat,
        other => panic!("{path}: {other:?}"),
    }
}

use jute::data::Stat;

#[test]
fn failed_multi_answers_err_0_with_per_op_results_and_consumes_a_zxid() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/p1", b"x", 0);
    let before = c.call(exists("/p1", false)).header.zxid;
    let ops = vec![
        MultiOp::Create(CreateRequest {
            path: "/m2".into(),
            data: Some(vec![]),
            acl: open_acl(),
            flags: 0,
        }),
        MultiOp::Check(CheckVersionRequest {
            path: "/p1".into(),
            version: 99,
        }),
        MultiOp::SetData(SetDataRequest {
            path: "/p1".into(),
            data: Some(b"never".to_vec()),
            version: -1,
        }),
    ];
    let r = c.call(Request::Multi(MultiRequest { ops }));
    assert_eq!(r.err(), 0);
    assert_eq!(r.header.zxid, before + 1, "a failed multi is a txn");
    let Some(Response::Multi(m)) = r.body else {
        panic!()
    };
    assert_eq!(
        m.results,
        vec![
            MultiResult::Error(0),
            MultiResult::Error(-103),
            MultiResult::Error(-2)
        ]
    );
    assert_eq!(c.call(exists("/m2", false)).err(), -101, "nothing applied");
    // The byte layout of the captured reply (multi-failure.hex), zxid aside.
    assert_eq!(
        hex(&r.raw[16..]),
        "ffffffff000000000000000000ffffffff00ffffff99ffffff99ffffffff00fffffffefffffffeffffffff01ffffffff"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn multi_result_types_follow_the_op_and_all_ops_share_one_zxid() {
    let s = TestServer::start("extendedTypesEnabled=true");
    let mut c = Client::connect(s.addr);
    let req = |p: &str| CreateRequest {
        path: p.into(),
        data: Some(vec![]),
        acl: open_acl(),
        flags: 0,
    };
    let ops = vec![
        MultiOp::Create(req("/a")),
        MultiOp::Create2(req("/b")),
        MultiOp::CreateContainer(CreateRequest {
            flags: 4,
            ..req("/c")
        }),
        MultiOp::CreateTtl(CreateTTLRequest {
            path: "/t".into(),
            data: Some(vec![]),
            acl: open_acl(),
            flags: 5,
            ttl: 60000,
        }),
        MultiOp::SetData(SetDataRequest {
            path: "/a".into(),
            data: Some(b"v".to_vec()),
            version: 0,
        }),
    ];
    let r = c.call(Request::Multi(MultiRequest { ops }));
    let Some(Response::Multi(m)) = r.body else {
        panic!("{r:?}")
    };
    assert!(matches!(m.results[0], MultiResult::Create(_)));
    assert!(
        matches!(m.results[1], MultiResult::Create(_)),
        "create2 op answered as create"
    );
    assert!(matches!(m.results[2], MultiResult::Create2(_)));
    assert!(matches!(m.results[3], MultiResult::Create2(_)));
    let zxid = r.header.zxid;
    for p in ["/a", "/b", "/c", "/t"] {
        assert_eq!(stat_of(&mut c, p).czxid, zxid);
    }
    assert_eq!(stat_of(&mut c, "/a").mzxid, zxid);
}

#[test]
fn empty_multi_consumes_a_zxid() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let z0 = c.call(exists("/", false)).header.zxid;
    let r = c.call(Request::Multi(MultiRequest { ops: vec![] }));
    assert_eq!(r.header.zxid, z0 + 1);
    assert_eq!(hex(&r.raw[16..]), "ffffffff01ffffffff");
}

#[test]
fn failed_writes_consume_zxids() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/x", b"", 0);
    let z = c.call(exists("/x", false)).header.zxid;
    let r = c.call(create("/x", b"", 0));
    assert_eq!((r.err(), r.header.zxid), (-110, z + 1));
    let r = c.call(set_data("/x", b"", 7));
    assert_eq!((r.err(), r.header.zxid), (-103, z + 2));
    let r = c.call(Request::Reconfig(ReconfigRequest::default()));
    assert_eq!((r.err(), r.header.zxid), (-123, z + 3));
    assert_eq!(r.raw.len(), 16, "error replies carry no body");
}

#[test]
fn read_only_byte_is_answered_iff_sent() {
    use std::io::Write;
    let s = TestServer::start("");
    for (ro, want_len) in [(Some(false), 37), (Some(true), 37), (None, 36)] {
        let mut st = raw_connect(s.addr);
        st.write_all(&connect_frame(0, vec![0; 16], 30000, 0, ro))
            .unwrap();
        let reply = read_frame(&mut st).unwrap();
        assert_eq!(reply.len(), want_len, "{ro:?}");
        if ro.is_some() {
            assert_eq!(reply[36], 0, "a read-write server answers readOnly=false");
        }
    }
}

#[test]
fn notification_precedes_the_reply_that_caused_it_on_the_same_connection() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/w", b"a", 0);
    assert_eq!(c.call(get_data("/w", true)).err(), 0);
    c.log.clear();
    let r = c.call(set_data("/w", b"b", -1));
    assert_eq!(r.err(), 0);
    assert_eq!(c.log.len(), 2);
    assert_eq!(c.log[0].0, -1, "notification first");
    // xid -1, the zxid of the setData that fired it (ZooKeeper 3.9), err 0.
    assert_eq!(
        hex(&c.log[0].1[..16]),
        format!("ffffffff{:016x}00000000", r.header.zxid),
    );
    let e = c.events.pop_front().unwrap();
    assert_eq!((e.type_, e.state, e.path.as_str()), (3, 3, "/w"));
}

/// ZooKeeper 3.9 (ZOOKEEPER-4655): a notification's header carries the zxid of the txn that
/// fired it: a create's, a delete's (both of its events), each op's of a multi (the
/// multi's), a closed session's ephemeral's (the closeSession's); the events `setWatches`
/// finds at once came from no txn and carry -1.
#[test]
fn notifications_carry_the_zxid_of_the_txn_that_fired_them() {
    let s = TestServer::start("");
    let mut w = Client::connect(s.addr);
    let mut c = Client::connect(s.addr);
    let notified = |w: &mut Client| -> (i64, i32, String) {
        let raw = read_frame(&mut w.stream).expect("a notification");
        let mut r = Reader::new(&raw);
        let h = ReplyHeader::decode(&mut r).unwrap();
        assert_eq!(h.xid, -1);
        let e = WatcherEvent::decode(&mut r).unwrap();
        (h.zxid, e.type_, e.path)
    };
    assert_eq!(w.call(exists("/a", true)).err(), -101);
    let created = c.call(create("/a", b"", 0));
    assert_eq!(created.err(), 0);
    assert_eq!(notified(&mut w), (created.header.zxid, 1, "/a".into()));

    assert_eq!(w.call(get_data("/a", true)).err(), 0);
    assert_eq!(w.call(children2("/", true)).err(), 0);
    let deleted = c.call(delete("/a", -1));
    assert_eq!(deleted.err(), 0);
    let mut got = vec![notified(&mut w), notified(&mut w)];
    got.sort();
    let z = deleted.header.zxid;
    assert_eq!(got, vec![(z, 2, "/a".into()), (z, 4, "/".into())]);

    assert_eq!(w.call(exists("/m1", true)).err(), -101);
    assert_eq!(w.call(exists("/m2", true)).err(), -101);
    let multi = c.call(Request::Multi(MultiRequest {
        ops: ["/m1", "/m2"]
            .map(|path| {
                MultiOp::Create(CreateRequest {
                    path: path.into(),
                    data: Some(vec![]),
                    acl: open_acl(),
                    flags: 0,
                })
            })
            .to_vec(),
    }));
    assert_eq!(multi.err(), 0);
    let z = multi.header.zxid;
    assert_eq!(notified(&mut w), (z, 1, "/m1".into()));
    assert_eq!(notified(&mut w), (z, 1, "/m2".into()));

    let mut owner = Client::connect(s.addr);
    ok_create(&mut owner, "/eph", b"", 1);
    assert_eq!(w.call(exists("/eph", true)).err(), 0);
    let closed = owner.call(Request::CloseSession);
    assert_eq!(closed.err(), 0);
    assert_eq!(notified(&mut w), (closed.header.zxid, 2, "/eph".into()));

    // setWatches naming a node changed since: the event it finds comes with -1.
    let xid = w.send(&Request::SetWatches(SetWatches {
        relative_zxid: 1,
        data_watches: Some(vec!["/m1".into()]),
        exist_watches: Some(vec![]),
        child_watches: Some(vec![]),
    }));
    assert_eq!(notified(&mut w), (-1, 3, "/m1".into()));
    assert_eq!(w.recv(xid, OpCode::SetWatches).unwrap().err(), 0);
}

#[test]
fn exists_watch_on_missing_node_fires_node_created_but_get_data_registers_none() {
    let s = TestServer::start("");
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    assert_eq!(a.call(exists("/later", true)).err(), -101);
    assert_eq!(a.call(get_data("/other", true)).err(), -101);
    ok_create(&mut b, "/later", b"", 0);
    ok_create(&mut b, "/other", b"", 0);
    let e = a.next_event().unwrap();
    assert_eq!(
        (e.type_, e.path.as_str()),
        (EventType::NodeCreated.code(), "/later")
    );
    // Only one event: a ping's reply comes next, not a second notification.
    let r = a.call(Request::Ping);
    assert_eq!(r.header.xid, -2);
    assert!(a.events.is_empty(), "{:?}", a.events);
}

#[test]
fn sequence_suffix_uses_stored_cversion_and_visible_cversion_is_derived() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/seq", b"", 0);
    assert_eq!(ok_create(&mut c, "/seq/n-", b"", 2), "/seq/n-0000000000");
    assert_eq!(ok_create(&mut c, "/seq/e-", b"", 3), "/seq/e-0000000001");
    assert_eq!(ok_create(&mut c, "/seq/n-", b"", 2), "/seq/n-0000000002");
    assert_eq!(c.call(delete("/seq/n-0000000002", -1)).err(), 0);
    assert_eq!(ok_create(&mut c, "/seq/n-", b"", 2), "/seq/n-0000000003");
    let st = stat_of(&mut c, "/seq");
    assert_eq!((st.cversion, st.num_children), (5, 3));
    // /zookeeper: stored 0, two children => -2.
    assert_eq!(stat_of(&mut c, "/zookeeper").cversion, -2);
}

#[test]
fn containers_and_ttl_nodes_report_ephemeral_owner_0() {
    let s = TestServer::start("extendedTypesEnabled=true");
    let mut c = Client::connect(s.addr);
    let r = c.call(Request::CreateContainer(CreateRequest {
        path: "/c".into(),
        data: Some(vec![]),
        acl: open_acl(),
        flags: 4,
    }));
    let Some(Response::Create2(cr)) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(cr.stat.ephemeral_owner, 0);
    let r = c.call(Request::CreateTtl(CreateTTLRequest {
        path: "/t".into(),
        data: Some(vec![]),
        acl: open_acl(),
        flags: 5,
        ttl: 60000,
    }));
    let Some(Response::Create2(cr)) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(cr.stat.ephemeral_owner, 0);
    let e = ok_create(&mut c, "/e", b"", 1);
    assert_eq!(stat_of(&mut c, &e).ephemeral_owner, c.session_id);
}

#[test]
fn ttl_create_rules() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let ttl = |flags, ttl| {
        Request::CreateTtl(CreateTTLRequest {
            path: "/t".into(),
            data: Some(vec![]),
            acl: open_acl(),
            flags,
            ttl,
        })
    };
    assert_eq!(c.call(ttl(5, 60000)).err(), -6, "extended types disabled");
    let s = TestServer::start("extendedTypesEnabled=true");
    let mut c = Client::connect(s.addr);
    assert_eq!(c.call(ttl(5, 0)).err(), -8);
    assert_eq!(c.call(ttl(0, 5000)).err(), -8, "non-TTL mode with a ttl");
    assert_eq!(
        c.call(create("/t", b"", 5)).err(),
        -8,
        "TTL mode via plain create"
    );
    assert_eq!(c.call(create("/t", b"", 7)).err(), -8, "no such mode");
    assert_eq!(c.call(ttl(6, 1000)).err(), 0);
}

#[test]
fn null_data_stays_null() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let r = c.call(Request::Create(CreateRequest {
        path: "/n".into(),
        data: None,
        acl: open_acl(),
        flags: 0,
    }));
    assert_eq!(r.err(), 0);
    let r = c.call(get_data("/n", false));
    let Some(Response::GetData(d)) = r.body else {
        panic!()
    };
    assert_eq!(d.data, None);
    assert_eq!(d.stat.data_length, 0);
    assert_eq!(&r.raw[16..20], &[0xff; 4]);
}

#[test]
fn ping_and_auth_replies() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/z", b"", 0);
    let r = c.call(Request::Ping);
    assert_eq!((r.header.xid, r.raw.len()), (-2, 16));
    assert!(r.header.zxid > 0);
    let xid = c.send(&Request::Auth(AuthPacket {
        type_: 0,
        scheme: "digest".into(),
        auth: Some(b"vec:secret".to_vec()),
    }));
    let r = c.recv(xid, OpCode::Auth).unwrap();
    assert_eq!(
        (r.header.zxid, r.err()),
        (0, 0),
        "auth replies carry zxid 0"
    );
}

#[test]
fn enforced_auth_closes_a_connection_that_asks_before_authenticating() {
    let s = TestServer::start("enforce.auth.enabled=true\nenforce.auth.schemes=digest");
    // Before any auth: the request gets SESSIONCLOSEDREQUIRESASLAUTH (zxid 0) and the
    // connection is closed; a request pipelined behind it is not answered.
    let mut c = Client::connect(s.addr);
    let first = c.send(&exists("/", false));
    c.send(&exists("/zookeeper", false));
    let r = c.recv(first, OpCode::Exists).expect("an answer");
    assert_eq!((r.header.zxid, r.err()), (0, -124));
    assert!(read_frame(&mut c.stream).is_none(), "closed, nothing else");
    // After `addauth digest`, everything is served.
    let mut c = Client::connect(s.addr);
    assert_eq!(c.add_digest("vec:secret"), 0);
    ok_create(&mut c, "/enforced", b"x", 0);
    assert_eq!(c.call(Request::Ping).err(), 0);
    // ip is a scheme every connection holds.
    let s = TestServer::start("enforce.auth.enabled=true\nenforce.auth.schemes=ip, digest");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/by-ip", b"x", 0);
}

#[test]
fn skip_acl_yes_serves_what_acls_would_refuse() {
    // ZooKeeper reads skipACL as exactly "yes".
    for (cfg, skipped) in [("skipACL=yes", true), ("skipACL=true", false)] {
        let s = TestServer::start(cfg);
        let mut owner = Client::connect(s.addr);
        assert_eq!(owner.add_digest("owner:pw"), 0);
        let only_owner = Some(vec![Acl {
            perms: jute::perms::ALL,
            id: Id {
                scheme: "auth".into(),
                id: "".into(),
            },
        }]);
        let r = owner.call(Request::Create(CreateRequest {
            path: "/private".into(),
            data: Some(b"x".to_vec()),
            acl: only_owner,
            flags: 0,
        }));
        assert_eq!(r.err(), 0);
        let mut other = Client::connect(s.addr);
        let want = if skipped { 0 } else { -102 };
        assert_eq!(other.call(get_data("/private", false)).err(), want, "{cfg}");
        assert_eq!(
            other.call(set_data("/private", b"y", -1)).err(),
            want,
            "{cfg}"
        );
        assert_eq!(
            other.call(create("/private/c", b"", 0)).err(),
            want,
            "{cfg}"
        );
    }
}

#[test]
fn add_watch_success_carries_an_error_response_body() {
    let s = TestServer::start("");
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    ok_create(&mut a, "/tree", b"", 0);
    let r = a.call(Request::AddWatch(AddWatchRequest {
        path: "/tree".into(),
        mode: 1,
    }));
    assert_eq!((r.err(), hex(&r.raw[16..])), (0, "00000000".to_string()));
    ok_create(&mut b, "/tree/a", b"", 0);
    assert_eq!(b.call(set_data("/tree/a", b"x", -1)).err(), 0);
    ok_create(&mut b, "/tree/a/b", b"", 0);
    assert_eq!(b.call(delete("/tree/a/b", -1)).err(), 0);
    let kinds: Vec<(i32, String)> = (0..4)
        .map(|_| a.next_event().unwrap())
        .map(|e| (e.type_, e.path))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, "/tree/a".into()),
            (3, "/tree/a".into()),
            (1, "/tree/a/b".into()),
            (2, "/tree/a/b".into())
        ],
        "recursive watches never see NodeChildrenChanged"
    );
    // A persistent (mode 0) watch sees child changes and data changes, and stays.
    let r = a.call(Request::AddWatch(AddWatchRequest {
        path: "/p".into(),
        mode: 0,
    }));
    assert_eq!(r.err(), 0);
    ok_create(&mut b, "/p", b"", 0);
    ok_create(&mut b, "/p/k", b"", 0);
    b.call(set_data("/p", b"1", -1));
    b.call(set_data("/p", b"2", -1));
    let kinds: Vec<i32> = (0..4).map(|_| a.next_event().unwrap().type_).collect();
    assert_eq!(kinds, vec![1, 4, 3, 3]);
}

#[test]
fn reattach_closes_the_old_connection_and_bad_passwords_get_zeros() {
    let s = TestServer::start("");
    let mut r1 = Client::connect(s.addr);
    ok_create(&mut r1, "/e", b"", 1);
    let r2 =
        Client::connect_with(s.addr, r1.session_id, r1.passwd.clone(), 30000).expect("reattach");
    assert_eq!(r2.session_id, r1.session_id);
    assert!(
        is_closed(&mut r1.stream),
        "old connection closed without a frame"
    );
    // Wrong password: zeros, then close; the legitimate connection is dropped too.
    use std::io::Write;
    let mut r3 = raw_connect(s.addr);
    r3.write_all(&connect_frame(
        r1.session_id,
        vec![1; 16],
        30000,
        0,
        Some(false),
    ))
    .unwrap();
    let reply = read_frame(&mut r3).unwrap();
    let zeros = format!(
        "{}{}{}{}{}00",
        "00000000",
        "00000000",
        "0000000000000000",
        "00000010",
        "00".repeat(16)
    );
    assert_eq!(hex(&reply), zeros);
    assert!(is_closed(&mut r3));
    let mut r2 = r2;
    assert!(is_closed(&mut r2.stream));
    // The session itself lives on.
    let mut r4 =
        Client::connect_with(s.addr, r1.session_id, r1.passwd.clone(), 30000).expect("still alive");
    assert_eq!(r4.call(exists("/e", false)).err(), 0);
}

#[test]
fn unknown_session_is_refused() {
    use std::io::Write;
    let s = TestServer::start("");
    let mut st = raw_connect(s.addr);
    let id = 0x0100_0000_0000_0042;
    st.write_all(&connect_frame(
        id,
        zkrs::session::password(id),
        30000,
        0,
        Some(false),
    ))
    .unwrap();
    let reply = ConnectReplyBytes(read_frame(&mut st).unwrap());
    assert!(reply.0[4..16].iter().all(|&b| b == 0));
    assert!(is_closed(&mut st));
}

struct ConnectReplyBytes(Vec<u8>);

#[test]
fn client_ahead_of_the_server_is_closed_without_reply() {
    use std::io::Write;
    let s = TestServer::start("");
    let mut st = raw_connect(s.addr);
    st.write_all(&connect_frame(
        0,
        vec![0; 16],
        30000,
        0x10_0000_0000,
        Some(false),
    ))
    .unwrap();
    assert!(read_frame(&mut st).is_none());
}

#[test]
fn exists_needs_read_and_get_acl_masks_digests() {
    let s = TestServer::start("");
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    let digest = zkrs::acl::digest("vec:secret");
    let acl = vec![
        Acl {
            perms: 1,
            id: Id {
                scheme: "digest".into(),
                id: digest.clone(),
            },
        },
        Acl {
            perms: 1,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        },
    ];
    let r = a.call(Request::Create(CreateRequest {
        path: "/s".into(),
        data: Some(b"d".to_vec()),
        acl: Some(acl),
        flags: 0,
    }));
    assert_eq!(r.err(), 0);
    assert_eq!(b.call(exists("/s", false)).err(), 0);
    let r = b.call(Request::GetAcl(GetACLRequest { path: "/s".into() }));
    let Some(Response::GetAcl(g)) = r.body else {
        panic!()
    };
    assert_eq!(g.acl.unwrap()[0].id.id, "vec:x");
    // Only-digest node: NOAUTH for getData, and for exists too, as ZooKeeper 3.8.4 and 3.9.2
    // on (ZOOKEEPER-2590; 3.8.0 answered its Stat). Refused, exists sets no watch.
    let acl = vec![Acl {
        perms: 31,
        id: Id {
            scheme: "digest".into(),
            id: digest,
        },
    }];
    a.call(Request::Create(CreateRequest {
        path: "/s2".into(),
        data: Some(vec![]),
        acl: Some(acl),
        flags: 0,
    }));
    assert_eq!(b.call(get_data("/s2", false)).err(), -102);
    assert_eq!(b.call(exists("/s2", false)).err(), -102);
    assert_eq!(b.call(exists("/s2", true)).err(), -102);
    let r = b.call(Request::CheckWatches(CheckWatchesRequest {
        path: "/s2".into(),
        type_: 2,
    }));
    assert_eq!(r.err(), -121, "no data watch was set");
    // A missing node is NoNode to anyone, and the watch is set.
    assert_eq!(b.call(exists("/s2/none", true)).err(), -101);
    assert_eq!(
        b.call(set_data("/s2", b"", 99)).err(),
        -102,
        "ACL is checked before the version"
    );
    let xid = b.send(&Request::Auth(AuthPacket {
        type_: 0,
        scheme: "digest".into(),
        auth: Some(b"vec:secret".to_vec()),
    }));
    b.recv(xid, OpCode::Auth).unwrap();
    assert_eq!(b.call(get_data("/s2", false)).err(), 0);
    assert_eq!(b.call(exists("/s2", false)).err(), 0);
    let r = b.call(Request::WhoAmI);
    let Some(Response::WhoAmI(w)) = r.body else {
        panic!()
    };
    let schemes: Vec<String> = w
        .client_info
        .unwrap()
        .into_iter()
        .map(|c| format!("{}:{}", c.auth_scheme, c.user))
        .collect();
    assert!(schemes.contains(&"digest:vec".to_string()), "{schemes:?}");
    assert!(schemes.contains(&"ip:127.0.0.1".to_string()), "{schemes:?}");
}

#[test]
fn auth_acl_expands_to_digest_ids_only_and_bad_acls_are_invalid() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let auth_acl = Some(vec![Acl {
        perms: 31,
        id: Id {
            scheme: "auth".into(),
            id: "".into(),
        },
    }]);
    let mk = |acl: Option<Vec<Acl>>| {
        Request::Create(CreateRequest {
            path: "/a".into(),
            data: Some(vec![]),
            acl,
            flags: 0,
        })
    };
    assert_eq!(c.call(mk(auth_acl.clone())).err(), -114);
    assert_eq!(c.call(mk(Some(vec![]))).err(), -114);
    assert_eq!(
        c.call(mk(Some(vec![Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "foo".into()
            }
        }])))
        .err(),
        -114
    );
    assert_eq!(
        c.call(mk(Some(vec![Acl {
            perms: 31,
            id: Id {
                scheme: "ip".into(),
                id: "1.2.3.4/40".into()
            }
        }])))
        .err(),
        -114
    );
    let xid = c.send(&Request::Auth(AuthPacket {
        type_: 0,
        scheme: "digest".into(),
        auth: Some(b"vec:secret".to_vec()),
    }));
    c.recv(xid, OpCode::Auth).unwrap();
    assert_eq!(c.call(mk(auth_acl)).err(), 0);
    let r = c.call(Request::GetAcl(GetACLRequest { path: "/a".into() }));
    let Some(Response::GetAcl(g)) = r.body else {
        panic!()
    };
    assert_eq!(
        g.acl.unwrap(),
        vec![Acl {
            perms: 31,
            id: Id {
                scheme: "digest".into(),
                id: "vec:XxsQ3xTNtXlmlncnyR4aJg/SLWI=".into()
            }
        }]
    );
}

#[test]
fn ip_acls_match_the_connection_address() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let mk = |p: &str, spec: &str| {
        Request::Create(CreateRequest {
            path: p.into(),
            data: Some(vec![]),
            acl: Some(vec![Acl {
                perms: 31,
                id: Id {
                    scheme: "ip".into(),
                    id: spec.into(),
                },
            }]),
            flags: 0,
        })
    };
    assert_eq!(c.call(mk("/mine", "127.0.0.1/32")).err(), 0);
    assert_eq!(c.call(mk("/theirs", "10.0.0.0/8")).err(), 0);
    assert_eq!(c.call(get_data("/mine", false)).err(), 0);
    assert_eq!(c.call(get_data("/theirs", false)).err(), -102);
}

#[test]
fn super_digest_bypasses_acls() {
    let s = TestServer::start(&format!(
        "DigestAuthenticationProvider.superDigest={}",
        zkrs::acl::digest("super:adminpw")
    ));
    let mut a = Client::connect(s.addr);
    let acl = vec![Acl {
        perms: 31,
        id: Id {
            scheme: "digest".into(),
            id: zkrs::acl::digest("x:y"),
        },
    }];
    a.call(Request::Create(CreateRequest {
        path: "/locked".into(),
        data: Some(vec![]),
        acl: Some(acl),
        flags: 0,
    }));
    assert_eq!(a.call(get_data("/locked", false)).err(), -102);
    let xid = a.send(&Request::Auth(AuthPacket {
        type_: 0,
        scheme: "digest".into(),
        auth: Some(b"super:adminpw".to_vec()),
    }));
    a.recv(xid, OpCode::Auth).unwrap();
    assert_eq!(a.call(get_data("/locked", false)).err(), 0);
}

#[test]
fn unknown_auth_scheme_fails_and_closes() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let xid = c.send(&Request::Auth(AuthPacket {
        type_: 0,
        scheme: "foo".into(),
        auth: Some(b"x".to_vec()),
    }));
    let r = c.recv(xid, OpCode::Auth).unwrap();
    assert_eq!((r.header.zxid, r.err()), (0, -115));
    assert!(is_closed(&mut c.stream));
}

#[test]
fn reads_do_not_validate_paths_but_exists_rejects_nul() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    assert_eq!(c.call(get_data("no-slash", false)).err(), -101);
    assert_eq!(c.call(get_data("/a//b", false)).err(), -101);
    assert_eq!(c.call(exists("/a\0b", false)).err(), -8);
    ok_create(&mut c, "/t", b"", 0);
    for bad in [
        "/t/",
        "//",
        "/t/.",
        "/t/..",
        "rel",
        "",
        "/a\u{1}",
        "/t/\u{7f}",
    ] {
        assert_eq!(c.call(create(bad, b"", 0)).err(), -8, "{bad:?}");
        assert_eq!(c.call(set_data(bad, b"", -1)).err(), -8, "{bad:?}");
    }
    // The parent is looked up before the whole path is validated, as in ZooKeeper.
    assert_eq!(c.call(create("/missing/", b"", 0)).err(), -101);
    assert_eq!(
        c.call(create("/\u{1F600}", b"", 0)).err(),
        -8,
        "non-BMP rejected"
    );
    assert_eq!(c.call(create("/é", b"", 0)).err(), 0);
    for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(c.call(delete(special, -1)).err(), -8, "{special}");
    }
}

#[test]
fn write_errors_in_zookeepers_order() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    assert_eq!(c.call(create("/missing/child", b"", 0)).err(), -101);
    ok_create(&mut c, "/d", b"", 0);
    ok_create(&mut c, "/d/k", b"", 0);
    assert_eq!(c.call(delete("/d", -1)).err(), -111);
    assert_eq!(c.call(delete("/d/k", 5)).err(), -103);
    assert_eq!(c.call(delete("/nope", -1)).err(), -101);
    assert_eq!(c.call(set_data("/nope", b"", -1)).err(), -101);
    let e = ok_create(&mut c, "/eph", b"", 1);
    assert_eq!(c.call(create(&format!("{e}/child"), b"", 0)).err(), -108);
    let r = c.call(set_data("/d", b"new", 0));
    let Some(Response::SetData(sd)) = r.body else {
        panic!()
    };
    assert_eq!((sd.stat.version, sd.stat.data_length), (1, 3));
    let r = c.call(Request::SetAcl(SetACLRequest {
        path: "/d".into(),
        acl: open_acl(),
        version: 3,
    }));
    assert_eq!(r.err(), -103);
    let r = c.call(Request::SetAcl(SetACLRequest {
        path: "/d".into(),
        acl: open_acl(),
        version: 0,
    }));
    let Some(Response::SetAcl(sa)) = r.body else {
        panic!()
    };
    assert_eq!(sa.stat.aversion, 1);
}

#[test]
fn stat_fields_follow_zookeeper() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let r = c.call(create2("/s", b"abc", 0));
    let Some(Response::Create2(cr)) = r.body else {
        panic!()
    };
    let z = r.header.zxid;
    let st = cr.stat;
    assert_eq!(
        (
            st.czxid,
            st.mzxid,
            st.pzxid,
            st.version,
            st.cversion,
            st.data_length
        ),
        (z, z, z, 0, 0, 3)
    );
    assert_eq!(st.ctime, st.mtime);
    ok_create(&mut c, "/s/c", b"", 0);
    let r = c.call(delete("/s/c", -1));
    let st = stat_of(&mut c, "/s");
    assert_eq!(
        (st.pzxid, st.mzxid, st.cversion, st.num_children),
        (r.header.zxid, z, 2, 0)
    );
    let root = stat_of(&mut c, "/zookeeper/config");
    assert_eq!(root.aversion, -1);
}

#[test]
fn children_all_children_number_and_ephemerals() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/g", b"", 0);
    ok_create(&mut c, "/g/a", b"", 0);
    ok_create(&mut c, "/g/a/b", b"", 0);
    ok_create(&mut c, "/g/e1", b"", 1);
    ok_create(&mut c, "/ge", b"", 1);
    let r = c.call(Request::GetChildren(GetChildrenRequest {
        path: "/g".into(),
        watch: false,
    }));
    let Some(Response::GetChildren(g)) = r.body else {
        panic!()
    };
    let mut kids = g.children.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["a", "e1"]);
    let r = c.call(Request::GetAllChildrenNumber(GetAllChildrenNumberRequest {
        path: "/g".into(),
    }));
    assert!(matches!(
        r.body,
        Some(Response::GetAllChildrenNumber(
            GetAllChildrenNumberResponse { total_number: 3 }
        ))
    ));
    let r = c.call(Request::GetAllChildrenNumber(GetAllChildrenNumberRequest {
        path: "/".into(),
    }));
    // Every node but / and /zookeeper... counted as ZooKeeper counts: nodes - 1.
    assert!(
        matches!(
            r.body,
            Some(Response::GetAllChildrenNumber(
                GetAllChildrenNumberResponse { total_number: 8 }
            ))
        ),
        "{r:?}"
    );
    let r = c.call(Request::GetEphemerals(GetEphemeralsRequest {
        prefix_path: "/g".into(),
    }));
    let Some(Response::GetEphemerals(e)) = r.body else {
        panic!()
    };
    let mut eph = e.ephemerals.unwrap();
    eph.sort();
    assert_eq!(
        eph,
        vec!["/g/e1", "/ge"],
        "plain prefix match, as ZooKeeper"
    );
    let r = c.call(Request::Sync(SyncRequest {
        path: "whatever".into(),
    }));
    assert!(
        matches!(r.body, Some(Response::Sync(SyncResponse { ref path })) if path == "whatever")
    );
}

#[test]
fn multi_read_is_not_atomic_and_consumes_no_zxid() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/r", b"data", 0);
    let z = c.call(exists("/r", false)).header.zxid;
    let ops = vec![
        MultiOp::GetData(GetDataRequest {
            path: "/r".into(),
            watch: false,
        }),
        MultiOp::GetData(GetDataRequest {
            path: "/missing".into(),
            watch: false,
        }),
        MultiOp::GetChildren(GetChildrenRequest {
            path: "/".into(),
            watch: false,
        }),
    ];
    let r = c.call(Request::MultiRead(MultiRequest { ops }));
    assert_eq!((r.err(), r.header.zxid), (0, z));
    let Some(Response::Multi(m)) = r.body else {
        panic!()
    };
    assert!(
        matches!(&m.results[0], MultiResult::GetData(d) if d.data.as_deref() == Some(&b"data"[..]))
    );
    assert_eq!(m.results[1], MultiResult::Error(-101));
    assert!(matches!(&m.results[2], MultiResult::GetChildren(_)));
}

#[test]
fn delete_fires_data_and_child_watchers_once_and_parent_child_watch() {
    let s = TestServer::start("");
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    ok_create(&mut b, "/dw", b"", 0);
    ok_create(&mut b, "/dw/x", b"", 0);
    a.call(get_data("/dw/x", true));
    a.call(Request::GetChildren(GetChildrenRequest {
        path: "/dw/x".into(),
        watch: true,
    }));
    a.call(Request::GetChildren(GetChildrenRequest {
        path: "/dw".into(),
        watch: true,
    }));
    b.call(delete("/dw/x", -1));
    let mut got: Vec<(i32, String)> = (0..2)
        .map(|_| a.next_event().unwrap())
        .map(|e| (e.type_, e.path))
        .collect();
    got.sort();
    assert_eq!(got, vec![(2, "/dw/x".to_string()), (4, "/dw".to_string())]);
    a.call(Request::Ping);
    assert!(a.events.is_empty());
}

#[test]
fn check_and_remove_watches() {
    let s = TestServer::start("");
    let mut a = Client::connect(s.addr);
    ok_create(&mut a, "/cw", b"", 0);
    a.call(get_data("/cw", true));
    let check = |t| {
        Request::CheckWatches(CheckWatchesRequest {
            path: "/cw".into(),
            type_: t,
        })
    };
    let remove = |t| {
        Request::RemoveWatches(RemoveWatchesRequest {
            path: "/cw".into(),
            type_: t,
        })
    };
    assert_eq!(a.call(check(1)).err(), -121);
    assert_eq!(a.call(check(2)).err(), 0);
    assert_eq!(a.call(remove(2)).err(), 0);
    assert_eq!(a.call(remove(2)).err(), -121);
    assert_eq!(a.call(check(3)).err(), -121);
}

#[test]
fn set_watches_fires_what_changed_while_away() {
    let s = TestServer::start("");
    let mut a = Client::connect(s.addr);
    ok_create(&mut a, "/sw1", b"", 0);
    ok_create(&mut a, "/sw2", b"", 0);
    let rel = a.call(exists("/sw2", false)).header.zxid;
    a.call(set_data("/sw1", b"changed", -1));
    a.call(delete("/sw2", -1));
    ok_create(&mut a, "/sw3", b"", 0);
    let r = a.call(Request::SetWatches(SetWatches {
        relative_zxid: rel,
        data_watches: Some(vec!["/sw1".into(), "/sw2".into()]),
        exist_watches: Some(vec!["/sw3".into(), "/sw4".into()]),
        child_watches: Some(vec!["/".into()]),
    }));
    assert_eq!(r.err(), 0);
    let got: Vec<(i32, String)> = a.events.drain(..).map(|e| (e.type_, e.path)).collect();
    assert_eq!(
        got,
        vec![
            (3, "/sw1".into()),
            (2, "/sw2".into()),
            (1, "/sw3".into()),
            (4, "/".into())
        ]
    );
    // /sw4's exist watch is armed.
    let mut b = Client::connect(s.addr);
    ok_create(&mut b, "/sw4", b"", 0);
    assert_eq!(a.next_event().unwrap().path, "/sw4");
}

#[test]
fn close_session_deletes_ephemerals_and_closes() {
    let s = TestServer::start("");
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    ok_create(&mut a, "/e1", b"", 1);
    b.call(exists("/e1", true));
    let r = a.call(Request::CloseSession);
    assert_eq!((r.err(), r.raw.len()), (0, 16));
    assert!(is_closed(&mut a.stream));
    let e = b.next_event().unwrap();
    assert_eq!((e.type_, e.path.as_str()), (2, "/e1"));
    // The session is gone for good.
    assert!(Client::connect_with(s.addr, a.session_id, a.passwd.clone(), 30000).is_none());
}

#[test]
fn bare_check_consumes_a_zxid_and_answers_only_a_failure() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let z = c.call(exists("/", false)).header.zxid;
    c.send(&Request::Check(CheckVersionRequest {
        path: "/".into(),
        version: -1,
    }));
    let r = c.call(exists("/", false));
    assert_eq!(r.header.zxid, z + 1);
    assert!(c.events.is_empty());
    // A failed one is answered with its error, as ZooKeeper's (and consumes a zxid too).
    for (path, version, err) in [("/", 7, -103), ("/nope", -1, -101), ("/a//b", -1, -8)] {
        let r = c.call(Request::Check(CheckVersionRequest {
            path: path.into(),
            version,
        }));
        assert_eq!(r.err(), err, "{path}");
    }
    assert_eq!(c.call(exists("/", false)).header.zxid, z + 4);
}

#[test]
fn session_timeouts_are_clamped_to_the_configured_range() {
    let s = TestServer::start("");
    let c = Client::connect_with(s.addr, 0, vec![0; 16], 100).unwrap();
    assert_eq!(c.timeout_ms, 4000);
    let c = Client::connect_with(s.addr, 0, vec![0; 16], 1_000_000).unwrap();
    assert_eq!(c.timeout_ms, 40000);
    let s = TestServer::start("minSessionTimeout=1000\nmaxSessionTimeout=9000");
    let c = Client::connect_with(s.addr, 0, vec![0; 16], 100).unwrap();
    assert_eq!(c.timeout_ms, 1000);
}

#[test]
fn session_ids_carry_server_id_1_and_passwords_are_derived() {
    let s = TestServer::start("");
    let a = Client::connect(s.addr);
    let b = Client::connect(s.addr);
    assert_eq!((a.session_id as u64) >> 56, 1);
    assert_eq!(b.session_id, a.session_id + 1);
    assert_eq!(a.passwd, zkrs::session::password(a.session_id));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let mut xids = Vec::new();
    for i in 0..200 {
        let req = if i % 3 == 0 {
            create(&format!("/pl{i}"), b"x", 0)
        } else {
            exists("/", false)
        };
        xids.push((c.send(&req), req.op()));
    }
    for (xid, op) in xids {
        let r = c.recv(xid, op).unwrap();
        assert_eq!(r.err(), 0);
    }
}

#[test]
fn quota_stats_are_maintained_by_the_server() {
    let s = TestServer::start(
        "extendedTypesEnabled=true\n4lw.commands.whitelist=*\nznode.container.checkIntervalMs=1000",
    );
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/q", b"", 0);
    ok_create(&mut c, "/zookeeper/quota/q", b"", 0);
    ok_create(
        &mut c,
        "/zookeeper/quota/q/zookeeper_limits",
        b"count=10,bytes=-1",
        0,
    );
    ok_create(
        &mut c,
        "/zookeeper/quota/q/zookeeper_stats",
        b"count=0,bytes=0",
        0,
    );
    ok_create(&mut c, "/q/a", b"abc", 0);
    ok_create(&mut c, "/q/b", b"de", 0);
    let r = c.call(get_data("/zookeeper/quota/q/zookeeper_stats", false));
    let Some(Response::GetData(d)) = r.body else {
        panic!()
    };
    assert_eq!(
        String::from_utf8(d.data.unwrap()).unwrap(),
        "count=3,bytes=5"
    );
    assert_eq!(
        d.stat.version, 0,
        "the server changes the data, not the version"
    );
}

/// A quota on `target` as zkCli's `setquota` leaves it: the limits in zkCli's own text, the
/// stats recounted by the server once the limits node is there.
fn set_quota(c: &mut Client, target: &str, limits: &str) {
    ok_create(c, &format!("/zookeeper/quota{target}"), b"", 0);
    ok_create(
        c,
        &format!("/zookeeper/quota{target}/zookeeper_limits"),
        limits.as_bytes(),
        0,
    );
    ok_create(
        c,
        &format!("/zookeeper/quota{target}/zookeeper_stats"),
        b"count=0,bytes=0",
        0,
    );
}

fn data_of(c: &mut Client, path: &str) -> Vec<u8> {
    match c.call(get_data(path, false)).body {
        Some(Response::GetData(d)) => d.data.unwrap_or_default(),
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn hard_quotas_refuse_creates_and_set_data_past_them_with_enforce_quota() {
    let s = TestServer::start("enforceQuota=true");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/q", b"", 0);
    // Hard limits of 3 nodes (the quota's root counts) and 10 bytes.
    set_quota(
        &mut c,
        "/q",
        "count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=3",
    );
    ok_create(&mut c, "/q/a", b"12345", 0);
    ok_create(&mut c, "/q/a/deeper", b"", 0);
    assert_eq!(
        c.call(create("/q/b", b"", 0)).err(),
        -125,
        "a fourth node: QUOTAEXCEEDED"
    );
    assert_eq!(c.call(exists("/q/b", false)).err(), -101, "not created");
    // Sequential: the check is on the full path, under the same quota.
    assert_eq!(c.call(create("/q/a/s-", b"", 2)).err(), -125);
    // Bytes: 5 now; 10 is the limit, 11 is past it.
    assert_eq!(c.call(set_data("/q/a", b"1234567890", -1)).err(), 0);
    assert_eq!(c.call(set_data("/q/a", b"12345678901", -1)).err(), -125);
    assert_eq!(data_of(&mut c, "/q/a"), b"1234567890", "unchanged");
    // The quota is checked before the version, as ZooKeeper does.
    assert_eq!(c.call(set_data("/q/a", b"12345678901", 7)).err(), -125);
    assert_eq!(c.call(set_data("/q/a", b"123", 7)).err(), -103);
    // Shrinking is always allowed; a delete frees a node for a create.
    assert_eq!(c.call(set_data("/q/a", b"1", -1)).err(), 0);
    assert_eq!(c.call(delete("/q/a/deeper", -1)).err(), 0);
    ok_create(&mut c, "/q/c", b"", 0);
    // In a multi, the op past the quota fails the whole transaction.
    let ops = vec![
        MultiOp::SetData(SetDataRequest {
            path: "/q/c".into(),
            data: Some(b"ab".to_vec()),
            version: -1,
        }),
        MultiOp::Create(CreateRequest {
            path: "/q/d".into(),
            data: Some(vec![]),
            acl: open_acl(),
            flags: 0,
        }),
    ];
    let r = c.call(Request::Multi(MultiRequest { ops }));
    let Some(Response::Multi(m)) = r.body else {
        panic!("{:?}", r.header)
    };
    assert_eq!(
        m.results,
        vec![MultiResult::Error(0), MultiResult::Error(-125)]
    );
    assert_eq!(data_of(&mut c, "/q/c"), b"", "the multi changed nothing");
    // Outside any quota, nothing is limited.
    ok_create(&mut c, "/free", &[b'x'; 100], 0);
}

#[test]
fn soft_quotas_and_servers_without_enforce_quota_let_changes_past_limits_through() {
    for (cfg, limits) in [
        ("enforceQuota=true", "count=2,bytes=4"),
        ("", "count=-1,bytes=-1;byteHardLimit=4;countHardLimit=2"),
    ] {
        let s = TestServer::start(cfg);
        let mut c = Client::connect(s.addr);
        ok_create(&mut c, "/q", b"", 0);
        set_quota(&mut c, "/q", limits);
        for i in 0..3 {
            ok_create(&mut c, &format!("/q/n{i}"), b"123456", 0);
        }
        assert_eq!(
            data_of(&mut c, "/zookeeper/quota/q/zookeeper_stats"),
            b"count=4,bytes=18",
            "{cfg:?} {limits}"
        );
    }
}

#[test]
fn pipelined_writes_then_a_read_see_every_write_in_order() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let mut xids = Vec::new();
    for i in 0..100 {
        xids.push((c.send(&create(&format!("/pw{i}"), b"x", 0)), OpCode::Create));
        if i % 10 == 9 {
            // A read right behind writes must see them.
            xids.push((c.send(&exists(&format!("/pw{i}"), false)), OpCode::Exists));
        }
    }
    xids.push((c.send(&Request::Ping), OpCode::Ping));
    for (xid, op) in xids {
        let r = c.recv(xid, op).unwrap();
        assert_eq!(r.err(), 0, "{op:?} xid {xid}");
    }
}

#[test]
fn added_identities_stay_with_the_connection_that_added_them() {
    // Connections from one address start with the same `ip` identity; a digest added by one
    // of them is its own, whether the others connected before or after it.
    let s = TestServer::start("");
    let mut before = Client::connect(s.addr);
    let mut alice = Client::connect(s.addr);
    let r = alice.call(Request::Auth(AuthPacket {
        type_: 0,
        scheme: "digest".into(),
        auth: Some(b"alice:secret".to_vec()),
    }));
    assert_eq!(r.err(), 0);
    let mut after = Client::connect(s.addr);
    let only = |scheme: &str, id: &str| {
        Some(vec![Acl {
            perms: 31,
            id: Id {
                scheme: scheme.into(),
                id: id.into(),
            },
        }])
    };
    let mk = |path: &str, acl| {
        Request::Create(CreateRequest {
            path: path.into(),
            data: Some(b"x".to_vec()),
            acl,
            flags: 0,
        })
    };
    assert_eq!(alice.call(mk("/alice", only("auth", ""))).err(), 0);
    assert_eq!(alice.call(mk("/local", only("ip", "127.0.0.1"))).err(), 0);
    assert_eq!(alice.call(get_data("/alice", false)).err(), 0);
    for c in [&mut before, &mut after] {
        assert_eq!(c.call(get_data("/alice", false)).err(), -102, "NOAUTH");
        assert_eq!(c.call(get_data("/local", false)).err(), 0);
    }
    // Once alice's connection is gone, a new one from the same address is a stranger too.
    drop(alice);
    let mut later = Client::connect(s.addr);
    assert_eq!(later.call(get_data("/alice", false)).err(), -102);
    assert_eq!(later.call(get_data("/local", false)).err(), 0);
}

#[test]
fn replies_that_overflow_the_socket_arrive_whole_and_in_order() {
    // The client stops reading while 20 MB of replies are due: the socket's buffers fill,
    // the rest waits in the server, replies to later requests queue behind it, and all of it
    // arrives once the client reads again.
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    ok_create(&mut c, "/big", &big, 0);
    let mut due = Vec::new();
    for i in 0..40 {
        if i % 2 == 0 {
            due.push((c.send(&get_data("/big", false)), OpCode::GetData));
        } else {
            due.push((c.send(&exists("/big", false)), OpCode::Exists));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (xid, op) in due {
        let r = c.recv(xid, op).expect("reply");
        assert_eq!(r.err(), 0);
        if let Some(Response::GetData(d)) = r.body {
            assert!(d.data.as_deref() == Some(&big[..]), "data intact");
        }
    }
    assert_eq!(c.call(exists("/big", false)).err(), 0);
}

#[test]
fn replies_the_socket_cannot_take_at_once_follow_whole_and_in_order() {
    // 40 replies of 900 KB, asked for without reading: the socket's buffers fill, the server
    // keeps the rest and writes it as the client reads. Meanwhile other clients are served.
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let data: Vec<u8> = (0..900_000u32).map(|i| (i % 251) as u8).collect();
    ok_create(&mut c, "/big", &data, 0);
    let xids: Vec<i32> = (0..40).map(|_| c.send(&get_data("/big", false))).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut other = Client::connect(s.addr);
    ok_create(&mut other, "/meanwhile", b"x", 0);
    assert_eq!(other.call(get_data("/meanwhile", false)).err(), 0);
    for xid in xids {
        let r = c.recv(xid, OpCode::GetData).expect("reply");
        match r.body {
            Some(Response::GetData(GetDataResponse { data: got, .. })) => {
                assert!(
                    got.as_deref() == Some(&data[..]),
                    "reply {xid} is not the node's data"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(c.call(exists("/meanwhile", false)).err(), 0);
}

#[test]
fn reads_pipelined_behind_writes_see_them_and_replies_keep_request_order() {
    // One session pipelines writes and reads. Reads of nodes the pending writes leave alone
    // may be answered early; every reply still comes in request order, with zxids that never
    // go back, and each read sees the session's writes before it.
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/other", b"o1", 0);
    let w1 = c.send(&create("/s", b"s1", 0));
    let r1 = c.send(&get_data("/other", false));
    let w2 = c.send(&set_data("/s", b"s2", 0));
    let r2 = c.send(&get_data("/s", false));
    let r3 = c.send(&children2("/", false));
    let r4 = c.send(&exists("/other", true));
    let w3 = c.send(&set_data("/other", b"o2", 0));
    let r5 = c.send(&get_data("/other", false));
    let mut zxids = Vec::new();
    let mut expect = |c: &mut Client, xid: i32, op: OpCode| {
        let r = c.recv(xid, op).expect("reply");
        assert_eq!(r.err(), 0, "{op:?}");
        zxids.push(r.header.zxid);
        r.body
    };
    expect(&mut c, w1, OpCode::Create);
    match expect(&mut c, r1, OpCode::GetData) {
        Some(Response::GetData(GetDataResponse { data, .. })) => {
            assert_eq!(data.as_deref(), Some(&b"o1"[..]))
        }
        other => panic!("{other:?}"),
    }
    expect(&mut c, w2, OpCode::SetData);
    match expect(&mut c, r2, OpCode::GetData) {
        Some(Response::GetData(GetDataResponse { data, stat })) => {
            assert_eq!(data.as_deref(), Some(&b"s2"[..]));
            assert_eq!(stat.version, 1);
        }
        other => panic!("{other:?}"),
    }
    match expect(&mut c, r3, OpCode::GetChildren2) {
        Some(Response::GetChildren2(GetChildren2Response { children, .. })) => {
            assert!(children.unwrap_or_default().contains(&"s".to_string()))
        }
        other => panic!("{other:?}"),
    }
    expect(&mut c, r4, OpCode::Exists);
    // The session's own setData fires the watch exists left: the event, then its reply.
    let w3_reply = c.recv(w3, OpCode::SetData).expect("reply");
    assert_eq!(w3_reply.err(), 0);
    let event = c
        .events
        .pop_front()
        .expect("the exists watch fired before the setData reply");
    assert_eq!(event.path, "/other");
    match expect(&mut c, r5, OpCode::GetData) {
        Some(Response::GetData(GetDataResponse { data, .. })) => {
            assert_eq!(data.as_deref(), Some(&b"o2"[..]))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        zxids.windows(2).all(|w| w[0] <= w[1]),
        "reply zxids went back: {zxids:?}"
    );
}

fn data_and_stat(r: Reply) -> (Option<Vec<u8>>, Stat) {
    match r.body {
        Some(Response::GetData(GetDataResponse { data, stat })) => (data, stat),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reads_of_nodes_the_sessions_pending_writes_change_see_what_those_writes_leave() {
    // Reads right behind writes of the same node (answered before those writes are logged)
    // show the node as the writes leave it: the same data and Stat a read after them gets.
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/other", b"o", 0);
    let w0 = c.send(&set_data("/other", b"o2", -1));
    let w1 = c.send(&create("/p", b"a", 0));
    let r1 = c.send(&get_data("/p", false));
    let w2 = c.send(&set_data("/p", b"bb", 0));
    let r2 = c.send(&get_data("/p", false));
    let r3 = c.send(&exists("/p", false));
    for (xid, op) in [(w0, OpCode::SetData), (w1, OpCode::Create)] {
        assert_eq!(c.recv(xid, op).expect("reply").err(), 0);
    }
    let (d1, s1) = data_and_stat(c.recv(r1, OpCode::GetData).expect("r1"));
    assert_eq!(d1.as_deref(), Some(&b"a"[..]));
    assert_eq!((s1.version, s1.data_length), (0, 1));
    let set = c.recv(w2, OpCode::SetData).expect("w2");
    let Some(Response::SetData(SetDataResponse { stat: set_stat })) = set.body else {
        panic!("{set:?}")
    };
    let (d2, s2) = data_and_stat(c.recv(r2, OpCode::GetData).expect("r2"));
    let r3 = c.recv(r3, OpCode::Exists).expect("r3");
    let Some(Response::Exists(ExistsResponse { stat: s3 })) = r3.body else {
        panic!("{r3:?}")
    };
    // Read again once everything is committed.
    let (d4, s4) = data_and_stat(c.call(get_data("/p", false)));
    assert_eq!(d2.as_deref(), Some(&b"bb"[..]));
    assert_eq!(d4, d2);
    assert_eq!(s2, s4, "the early read's Stat is the committed one");
    assert_eq!(s3, s4);
    assert_eq!(set_stat, s4);
    assert_eq!(s1.czxid, s4.czxid);
    assert_eq!(s1.ctime, s4.ctime);
    // A node the pending writes delete is gone for the reads behind them.
    let w3 = c.send(&set_data("/p", b"c", -1));
    let w4 = c.send(&delete("/p", -1));
    let r5 = c.send(&get_data("/p", false));
    let r6 = c.send(&exists("/p", false));
    assert_eq!(c.recv(w3, OpCode::SetData).expect("w3").err(), 0);
    assert_eq!(c.recv(w4, OpCode::Delete).expect("w4").err(), 0);
    assert_eq!(c.recv(r5, OpCode::GetData).expect("r5").err(), -101);
    assert_eq!(c.recv(r6, OpCode::Exists).expect("r6").err(), -101);
}

#[test]
fn an_early_read_of_a_changed_node_still_needs_its_read_right() {
    // A node anyone may write but nobody may read: its setData goes through, the getData
    // behind it is refused, and so is exists (READ, as ZooKeeper 3.8.4 and 3.9.2); with
    // the super user's id it answers the state the setData left.
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    let write_only = Some(vec![Acl {
        perms: 2,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]);
    let r = c.call(Request::Create(CreateRequest {
        path: "/wo".into(),
        data: Some(b"x".to_vec()),
        acl: write_only,
        flags: 0,
    }));
    assert_eq!(r.err(), 0);
    let w = c.send(&set_data("/wo", b"yy", -1));
    let g = c.send(&get_data("/wo", false));
    let e = c.send(&exists("/wo", false));
    assert_eq!(c.recv(w, OpCode::SetData).expect("w").err(), 0);
    assert_eq!(c.recv(g, OpCode::GetData).expect("g").err(), -102, "NOAUTH");
    assert_eq!(c.recv(e, OpCode::Exists).expect("e").err(), -102, "NOAUTH");
    drop(c);
    let tmp = s.stop().unwrap();
    let s = TestServer::start_in(
        tmp.path(),
        &format!(
            "DigestAuthenticationProvider.superDigest={}\n",
            zkrs::acl::digest("super:pw")
        ),
    );
    let mut c = Client::connect(s.addr);
    assert_eq!(c.add_digest("super:pw"), 0);
    let w = c.send(&set_data("/wo", b"zzz", -1));
    let e = c.send(&exists("/wo", false));
    assert_eq!(c.recv(w, OpCode::SetData).expect("w").err(), 0);
    let e = c.recv(e, OpCode::Exists).expect("e");
    let Some(Response::Exists(ExistsResponse { stat })) = e.body else {
        panic!("{e:?}")
    };
    assert_eq!((stat.version, stat.data_length), (2, 3));
}

#[test]
fn pipelined_reads_and_writes_of_shared_nodes_by_many_sessions_see_only_committed_states() {
    // Four sessions pipeline setData and getData of a few shared nodes. Every state a read
    // shows (data, version, mzxid) must be one a setData reply reported, each session's reads
    // of a node never go back, and a read behind the session's own setData sees it or later.
    let s = TestServer::start("");
    let mut setup = Client::connect(s.addr);
    let nodes: Vec<String> = (0..4).map(|i| format!("/shared{i}")).collect();
    for n in &nodes {
        ok_create(&mut setup, n, b"init", 0);
    }
    let addr = s.addr;
    let sessions: Vec<_> = (0..4u64)
        .map(|k| {
            let nodes = nodes.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut rng = k * 7919 + 17;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                // (path, data, version, mzxid) of each setData; (path, data, version, mzxid,
                // the mzxid of the session's last setData of that path before it) of each read.
                let mut writes = Vec::new();
                let mut reads = Vec::new();
                for round in 0..40 {
                    let mut due = Vec::new();
                    for i in 0..30 {
                        let path = nodes[(next() % 4) as usize].clone();
                        if next() % 3 == 0 {
                            let data = format!("{k}-{round}-{i}").into_bytes();
                            due.push((c.send(&set_data(&path, &data, -1)), path, Some(data)));
                        } else {
                            due.push((c.send(&get_data(&path, false)), path, None));
                        }
                    }
                    let mut own: std::collections::HashMap<String, i64> = Default::default();
                    for (xid, path, data) in due {
                        match data {
                            Some(data) => {
                                let r = c.recv(xid, OpCode::SetData).expect("setData");
                                let Some(Response::SetData(SetDataResponse { stat })) = r.body
                                else {
                                    panic!("{r:?}")
                                };
                                own.insert(path.clone(), stat.mzxid);
                                writes.push((path, data, stat.version, stat.mzxid));
                            }
                            None => {
                                let r = c.recv(xid, OpCode::GetData).expect("getData");
                                let (d, st) = data_and_stat(r);
                                let mine = own.get(&path).copied().unwrap_or(0);
                                reads.push((
                                    path,
                                    d.unwrap_or_default(),
                                    st.version,
                                    st.mzxid,
                                    mine,
                                ));
                            }
                        }
                    }
                }
                (writes, reads)
            })
        })
        .collect();
    let mut writes = std::collections::HashMap::new();
    let mut all_reads = Vec::new();
    for h in sessions {
        let (w, r) = h.join().expect("session thread");
        for (path, data, version, mzxid) in w {
            writes.insert(mzxid, (path, data, version));
        }
        all_reads.push(r);
    }
    for reads in all_reads {
        let mut last: std::collections::HashMap<String, i64> = Default::default();
        for (path, data, version, mzxid, mine) in reads {
            if data != b"init" {
                let w = writes.get(&mzxid).unwrap_or_else(|| {
                    panic!("{path}: read a state no setData made (mzxid {mzxid:#x})")
                });
                assert_eq!(
                    (&w.0, &w.1, w.2),
                    (&path, &data, version),
                    "{path} at {mzxid:#x}"
                );
            }
            assert!(
                mzxid >= mine,
                "{path}: a read missed the session's own setData"
            );
            let before = last.insert(path.clone(), mzxid).unwrap_or(0);
            assert!(mzxid >= before, "{path}: a session's reads went back");
        }
    }
}

#[test]
fn a_watch_set_by_an_early_read_fires_after_its_reply() {
    // The read registers its watch when answered early; another session's change to the node
    // must not reach the client before the read's reply.
    let s = TestServer::start("");
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    ok_create(&mut a, "/w", b"0", 0);
    for round in 0..50 {
        let new = format!("x{round}");
        let w = a.send(&create(&format!("/a{round}"), b"", 0));
        let r = a.send(&get_data("/w", true));
        assert_eq!(b.call(set_data("/w", new.as_bytes(), -1)).err(), 0);
        assert_eq!(a.recv(w, OpCode::Create).expect("create").err(), 0);
        // recv collects notifications that come before the reply: there must be none.
        let got = a.recv(r, OpCode::GetData).expect("getData");
        assert!(
            a.events.is_empty(),
            "round {round}: the event overtook the reply"
        );
        let Some(Response::GetData(GetDataResponse { data, .. })) = got.body else {
            panic!("round {round}: {got:?}");
        };
        // The read came before the other session's setData (then its watch fires), or after.
        if data.as_deref() != Some(new.as_bytes()) {
            let e = a.next_event().expect("the watch fires");
            assert_eq!(e.path, "/w");
        }
    }
}

#[test]
fn twenty_thousand_pipelined_requests_are_all_answered_in_order() {
    // More requests in flight on one connection than the core's queue holds (8,192), written
    // before any reply is read: the reader waits for the core when its queue is full, and
    // nothing is lost or reordered.
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/p", b"pipelined", 0);
    let mut frames = Vec::new();
    let first = c.xid + 1;
    for i in 0..20_000 {
        get_data("/p", false).encode_frame(first + i, &mut frames);
    }
    c.xid += 20_000;
    c.send_raw(&frames);
    for i in 0..20_000 {
        let r = c.recv(first + i, OpCode::GetData).expect("reply");
        assert_eq!(r.err(), 0);
    }
    assert_eq!(c.call(exists("/p", false)).err(), 0);
}

fn digest_only_acl() -> Option<Vec<Acl>> {
    Some(vec![Acl {
        perms: 31,
        id: Id {
            scheme: "digest".into(),
            // u1:p1
            id: "u1:fpT/y03U+EjItKZOSLGvjnJlyng=".into(),
        },
    }])
}

/// Nothing more has arrived for `c`: a round trip, then no event queued.
fn assert_no_events(c: &mut Client) {
    assert_eq!(c.call(exists("/", false)).err(), 0);
    assert!(c.events.is_empty(), "{:?}", c.events);
}

#[test]
fn watch_events_reach_only_connections_that_may_read_the_node() {
    // As Apache ZooKeeper since 3.8.4 / 3.9.2 (CVE-2024-23944), checked against Debian's
    // 3.8.0, which carries the fix: the event about a node goes to a watcher only if it may
    // read that node (a NodeChildrenChanged: the parent).
    let s = TestServer::start("");
    let (mut a, mut b, mut c) = (
        Client::connect(s.addr),
        Client::connect(s.addr),
        Client::connect(s.addr),
    );
    assert_eq!(b.add_digest("u1:p1"), 0);
    ok_create(&mut c, "/w", b"", 0);
    for w in [&mut a, &mut b] {
        let r = w.call(Request::AddWatch(AddWatchRequest {
            path: "/w".into(),
            mode: 0,
        }));
        assert_eq!(r.err(), 0);
    }
    assert_eq!(c.call(delete("/w", -1)).err(), 0);
    for w in [&mut a, &mut b] {
        let e = w.next_event().unwrap();
        assert_eq!((e.type_, e.path.as_str()), (2, "/w"));
    }
    let r = c.call(Request::Create(CreateRequest {
        path: "/w".into(),
        data: None,
        acl: digest_only_acl(),
        flags: 0,
    }));
    assert_eq!(r.err(), 0);
    ok_create(&mut b, "/w/k", b"", 0);
    let got: Vec<(i32, String)> = (0..2)
        .map(|_| b.next_event().unwrap())
        .map(|e| (e.type_, e.path))
        .collect();
    assert_eq!(got, vec![(1, "/w".into()), (4, "/w".into())]);
    assert_no_events(&mut a);
    // A one-shot watch on a node it may read still fires for the same connection.
    ok_create(&mut c, "/open", b"", 0);
    assert_eq!(a.call(exists("/open", true)).err(), 0);
    assert_eq!(c.call(set_data("/open", b"x", -1)).err(), 0);
    assert_eq!(a.next_event().unwrap().type_, 3);
}

#[test]
fn multi_creates_take_their_kind_from_the_flags_as_zookeeper_does() {
    // ZooKeeper rebuilds each create of a multi with `Op.create(flags)`: the C client sends
    // a container create as op 1 with flags 4, and gets a container.
    let s = TestServer::start("extendedTypesEnabled=true\nznode.container.checkIntervalMs=100");
    let mut c = Client::connect(s.addr);
    let op = |path: &str, flags| {
        MultiOp::Create(CreateRequest {
            path: path.into(),
            data: None,
            acl: open_acl(),
            flags,
        })
    };
    let r = c.call(Request::Multi(MultiRequest {
        ops: vec![
            op("/box", 4),
            MultiOp::CreateTtl(CreateTTLRequest {
                path: "/eph".into(),
                data: None,
                acl: open_acl(),
                flags: 1,
                ttl: 5,
            }),
        ],
    }));
    let Some(Response::Multi(m)) = r.body else {
        panic!("{r:?}")
    };
    assert!(matches!(&m.results[0], MultiResult::Create2(c) if c.path == "/box"));
    assert!(matches!(&m.results[1], MultiResult::Create(c) if c.path == "/eph"));
    let Some(Response::Exists(e)) = c.call(exists("/eph", false)).body else {
        panic!()
    };
    assert_eq!(e.stat.ephemeral_owner, c.session_id, "a plain ephemeral");
    ok_create(&mut c, "/box/k", b"", 0);
    assert_eq!(c.call(delete("/box/k", -1)).err(), 0);
    let gone = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        c.call(exists("/box", false)).err() == -101
    });
    assert!(gone, "an emptied container goes away");
    // TTL flags on a create op: ZooKeeper fails the whole multi (MarshallingError), and only
    // once its prep reaches that op.
    let zxid = c.call(exists("/", false)).header.zxid;
    let r = c.call(Request::Multi(MultiRequest {
        ops: vec![op("/t1", 0), op("/t2", 5)],
    }));
    assert_eq!((r.err(), r.header.zxid), (-5, zxid + 1));
    assert_eq!(c.call(exists("/t1", false)).err(), -101);
    let r = c.call(Request::Multi(MultiRequest {
        ops: vec![op("/nope/t1", 0), op("/t2", 5)],
    }));
    let Some(Response::Multi(m)) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(
        m.results,
        vec![MultiResult::Error(-101), MultiResult::Error(-2)]
    );
    // A createTTL of another mode is refused, whatever the TTL (ZooKeeper 3.8 stops on a
    // negative one).
    for ttl in [-5, 0, 1000] {
        let r = c.call(Request::CreateTtl(CreateTTLRequest {
            path: "/x".into(),
            data: None,
            acl: open_acl(),
            flags: 0,
            ttl,
        }));
        assert_eq!(r.err(), -8, "ttl {ttl}");
    }
}

#[test]
fn unknown_watch_types_and_modes_are_marshalling_errors() {
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    for type_ in [0, 6, -1] {
        let r = c.call(Request::CheckWatches(CheckWatchesRequest {
            path: "/".into(),
            type_,
        }));
        assert_eq!(r.err(), -5, "checkWatches type {type_}");
        let r = c.call(Request::RemoveWatches(RemoveWatchesRequest {
            path: "/".into(),
            type_,
        }));
        assert_eq!(r.err(), -5, "removeWatches type {type_}");
    }
    let r = c.call(Request::AddWatch(AddWatchRequest {
        path: "/".into(),
        mode: 2,
    }));
    assert_eq!(r.err(), -5);
    // 3.9's types: 4 names persistent watches, 5 recursive ones, 2 only one-shot data ones.
    let r = c.call(Request::AddWatch(AddWatchRequest {
        path: "/".into(),
        mode: 0,
    }));
    assert_eq!(r.err(), 0);
    let check = |c: &mut Client, type_| {
        c.call(Request::CheckWatches(CheckWatchesRequest {
            path: "/".into(),
            type_,
        }))
        .err()
    };
    assert_eq!(
        [1, 2, 3, 4, 5].map(|t| check(&mut c, t)),
        [-121, -121, 0, 0, -121]
    );
    let r = c.call(Request::RemoveWatches(RemoveWatchesRequest {
        path: "/".into(),
        type_: 4,
    }));
    assert_eq!(r.err(), 0);
    assert_eq!(check(&mut c, 3), -121);
}

#[test]
fn reads_of_the_empty_path_see_the_root_as_zookeepers_do() {
    // ZooKeeper keeps its root under "" as well as "/", and reads look paths up unchecked.
    let s = TestServer::start("");
    let mut c = Client::connect(s.addr);
    ok_create(&mut c, "/a", b"", 0);
    let root = c.call(exists("/", false)).body;
    assert!(root.is_some());
    assert_eq!(c.call(exists("", false)).body, root);
    let kids = |c: &mut Client, p: &str| c.call(children2(p, false)).body;
    assert_eq!(kids(&mut c, ""), kids(&mut c, "/"));
    let count = |c: &mut Client, p: &str| match c
        .call(Request::GetAllChildrenNumber(GetAllChildrenNumberRequest {
            path: p.into(),
        }))
        .body
    {
        Some(Response::GetAllChildrenNumber(n)) => n.total_number,
        other => panic!("{other:?}"),
    };
    assert_eq!(count(&mut c, ""), count(&mut c, "/") + 1);
    // Writes check their paths.
    assert_eq!(c.call(set_data("", b"x", -1)).err(), -8);
}

#[test]
fn a_closed_sessions_ephemerals_go_in_zookeepers_hash_set_order() {
    // ZooKeeper deletes them (and getEphemerals lists them) as a copy of its HashSet of them
    // iterates: "/a" and "/b" hash to buckets 2 and 3, "/BB" and "/Aa" collide in bucket 7
    // (of the copy's 8) and keep their creation order. Path order would be /Aa /BB /a /b.
    let s = TestServer::start("");
    let (mut owner, mut watcher) = (Client::connect(s.addr), Client::connect(s.addr));
    for p in ["/b", "/BB", "/a", "/Aa"] {
        ok_create(&mut owner, p, b"", 1);
        assert_eq!(watcher.call(exists(p, true)).err(), 0);
    }
    let Some(Response::GetEphemerals(e)) = owner
        .call(Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: "/".into(),
        }))
        .body
    else {
        panic!()
    };
    assert_eq!(e.ephemerals.unwrap(), ["/a", "/b", "/BB", "/Aa"]);
    assert_eq!(owner.call(Request::CloseSession).err(), 0);
    let deleted: Vec<String> = (0..4).map(|_| watcher.next_event().unwrap().path).collect();
    assert_eq!(deleted, ["/a", "/b", "/BB", "/Aa"]);
}
