//! Golden vectors captured from Apache ZooKeeper 3.8.0 (`tests/data/`, copied from
//! `shared/protocol/vectors/`): every client request and response frame is decoded and
//! re-encoded byte for byte; frames ZooKeeper refused to decode (its reply was MARSHALLINGERROR
//! or UNIMPLEMENTED) must be refused by us too. Quorum packets, txns inside proposals and
//! election messages get the same treatment.

use jute::proto::{ReplyHeader, RequestHeader, WatcherEvent};
use jute::quorum::{InitialMessage, Notification, QuorumPacket};
use jute::{Connect, ConnectReply, Decode, Encode, OpCode, Reader, Request, Response, TxnEntry};
use std::collections::{HashMap, HashSet};
use std::path::Path;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

struct Line {
    dir: String,
    conn: String,
    bytes: Vec<u8>,
}

fn read_lines(path: &Path) -> (String, Vec<Line>) {
    let text = std::fs::read_to_string(path).expect("read vector");
    let mut lines = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.split_whitespace();
        let dir = parts.next().expect("dir").to_string();
        let second = parts.next().expect("conn or hex");
        // Client files name the connection; quorum files only the sender.
        let (conn, hex_text) = match parts.next() {
            Some(h) => (second.to_string(), h),
            None => (dir.clone(), second),
        };
        lines.push(Line {
            dir,
            conn,
            bytes: hex(hex_text),
        });
    }
    (text, lines)
}

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir);
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("vectors dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    out.sort();
    out
}

fn payload(frame: &[u8]) -> &[u8] {
    let len = jute::frame::check(frame, usize::MAX >> 1)
        .expect("length")
        .expect("whole frame");
    assert_eq!(frame.len(), 4 + len, "one frame per line");
    &frame[4..]
}

#[test]
fn client_frames_reencode_byte_for_byte() {
    let mut checked = 0;
    for path in files("client") {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let (text, lines) = read_lines(&path);
        if text.contains("raw bytes") {
            continue; // not well-formed frames by design; see the server's bad-input tests
        }
        let connecting: HashSet<String> = lines
            .iter()
            .filter(|l| text.contains(&format!("C2S {}: ConnectRequest", l.conn)))
            .map(|l| l.conn.clone())
            .collect();
        let mut handshake_done: HashSet<(String, String)> = HashSet::new();
        // (conn, xid) -> opcode, or None when we refused to decode the request.
        let mut pending: HashMap<(String, i32), Option<OpCode>> = HashMap::new();
        for line in &lines {
            let body = payload(&line.bytes);
            let key = (line.dir.clone(), line.conn.clone());
            if connecting.contains(&line.conn) && handshake_done.insert(key) {
                let re = if line.dir == "C2S" {
                    Connect::from_bytes(body).expect("connect").to_bytes()
                } else {
                    ConnectReply::from_bytes(body)
                        .expect("connect reply")
                        .to_bytes()
                };
                assert_eq!(re, body, "{name}: handshake frame re-encodes");
                checked += 1;
                continue;
            }
            let mut r = Reader::new(body);
            if line.dir == "C2S" {
                let header = RequestHeader::decode(&mut r).expect("request header");
                let decoded = OpCode::try_from(header.type_)
                    .ok()
                    .filter(|op| op.is_valid_request())
                    .and_then(|op| Request::decode(op, &mut r).ok().map(|req| (op, req)));
                let op = decoded.as_ref().map(|(op, _)| *op);
                if let Some((op, req)) = decoded {
                    let mut re = header.to_bytes();
                    req.encode(&mut re);
                    if body.iter().any(|&b| b >= 0xF0) {
                        // A 4-byte UTF-8 character: we write it as Java does (CESU-8), so the
                        // bytes differ but the meaning must not.
                        let mut r2 = Reader::new(&re[8..]);
                        assert_eq!(Request::decode(op, &mut r2).expect("re-decode"), req);
                    } else {
                        assert_eq!(re, body, "{name}: request {:?} re-encodes", req.op());
                    }
                    checked += 1;
                }
                pending.insert((line.conn.clone(), header.xid), op);
            } else {
                let header = ReplyHeader::decode(&mut r).expect("reply header");
                let mut re = header.to_bytes();
                if header.xid == jute::xid::NOTIFICATION {
                    WatcherEvent::decode(&mut r).expect("event").encode(&mut re);
                } else {
                    let op = pending
                        .get(&(line.conn.clone(), header.xid))
                        .copied()
                        .unwrap_or(Some(OpCode::Ping));
                    match op {
                        None => {
                            // We refused the request: so did ZooKeeper.
                            assert!(
                                [-5, -6].contains(&header.err),
                                "{name}: ZooKeeper accepted a request we refused (err {})",
                                header.err
                            );
                        }
                        Some(op) if header.err == 0 => {
                            Response::decode(op, &mut r)
                                .expect("response")
                                .encode(&mut re);
                        }
                        Some(_) => {}
                    }
                }
                assert_eq!(re, body, "{name}: reply re-encodes");
                checked += 1;
            }
        }
    }
    assert!(checked > 250, "only {checked} frames checked");
}

#[test]
fn refused_requests_match_zookeeper() {
    // Each of these is a request ZooKeeper could not decode; we must not decode it either.
    for (file, index, want_err) in [
        ("getData-truncated-body.hex", 0, -5),
        ("multi-mixed-read-write.hex", 0, -5),
        ("unknown-opcode.hex", 1, -6),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/client")
            .join(file);
        let (_, lines) = read_lines(&path);
        let reply = lines
            .iter()
            .filter(|l| l.dir == "S2C")
            .nth(index)
            .expect("reply");
        let header = ReplyHeader::from_bytes(payload(&reply.bytes)).expect("header");
        assert_eq!(header.err, want_err, "{file}");
        let request = lines
            .iter()
            .filter(|l| l.dir == "C2S")
            .nth(index)
            .expect("request");
        let mut r = Reader::new(payload(&request.bytes));
        let h = RequestHeader::decode(&mut r).expect("header");
        let refused = match OpCode::try_from(h.type_) {
            Ok(op) if op.is_valid_request() => Request::decode(op, &mut r).is_err(),
            _ => true,
        };
        assert!(refused, "{file}: decoded what ZooKeeper refused");
    }
}

#[test]
fn quorum_packets_and_txns_reencode_byte_for_byte() {
    let mut packets = 0;
    let mut txns = 0;
    for path in files("quorum") {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let (_, lines) = read_lines(&path);
        if name.starts_with("learner") {
            let mut after_snap = false;
            for line in &lines {
                if after_snap {
                    after_snap = false; // the raw snapshot stream
                    continue;
                }
                let mut r = Reader::new(&line.bytes);
                let p = QuorumPacket::decode(&mut r).expect("packet");
                assert!(r.is_empty(), "{name}: one packet per line");
                assert_eq!(p.to_bytes(), line.bytes, "{name}: packet re-encodes");
                packets += 1;
                after_snap = p.type_ == 15;
                if [2, 8].contains(&p.type_) {
                    let data = p.data.as_deref().expect("proposal data");
                    let txn = TxnEntry::from_bytes(data).expect("txn");
                    assert_eq!(txn.to_bytes(), data, "{name}: txn re-encodes");
                    assert_eq!(txn.header.zxid, p.zxid);
                    txns += 1;
                }
            }
        } else {
            let mut seen_initial = HashSet::new();
            for line in &lines {
                let mut r = Reader::new(&line.bytes);
                let is_initial = line
                    .bytes
                    .starts_with(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);
                if is_initial && seen_initial.insert(line.dir.clone()) {
                    let m = InitialMessage::decode(&mut r).expect("initial message");
                    assert_eq!(
                        m.to_bytes(),
                        line.bytes,
                        "{name}: initial message re-encodes"
                    );
                } else {
                    let n = Notification::from_bytes(payload(&line.bytes)).expect("notification");
                    assert_eq!(n.to_bytes(), payload(&line.bytes), "{name}: notification");
                }
                packets += 1;
            }
        }
    }
    assert!(packets > 100 && txns > 5, "{packets} packets, {txns} txns");
}
