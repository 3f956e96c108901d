//! Client connections: framing, the four-letter-word check on the first 4 bytes, the
//! handshake, decoding, and writing what the core sends back.

use crate::core::{CoreMsg, Out};
use crate::watches::ConnId;
use jute::proto::RequestHeader;
use jute::{frame, Connect, Decode, OpCode, Reader, Request};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// All the four-letter words ZooKeeper knows.
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "ruok",
    "stat",
    "srvr",
    "conf",
    "cons",
    "crst",
    "dump",
    "envi",
    "mntr",
    "wchs",
    "wchc",
    "wchp",
    "isro",
    "srst",
    "dirs",
    "gtmk",
    "stmk",
    "hash",
    "lsnp",
    "telnetclose",
];

/// Serves one client connection until either side closes it.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    core: mpsc::Sender<CoreMsg>,
    max_buffer: usize,
    handshake_timeout: Duration,
) {
    let _ = stream.set_nodelay(true);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
    let (mut rd, mut wr) = stream.into_split();
    // Empty between requests: an idle connection holds no read buffer.
    let mut buf: Vec<u8> = Vec::new();
    let mut handshake_done = false;
    let mut connected_sent = false;
    let deadline = tokio::time::sleep(handshake_timeout);
    tokio::pin!(deadline);
    'outer: loop {
        tokio::select! {
            biased;
            out = out_rx.recv() => {
                match out {
                    Some(Out::Frame(bytes)) => {
                        // Coalesce whatever else is queued into one write.
                        let mut bytes = bytes;
                        while let Ok(more) = out_rx.try_recv() {
                            match more {
                                Out::Frame(b) => bytes.extend_from_slice(&b),
                                Out::Close => {
                                    let _ = wr.write_all(&bytes).await;
                                    break 'outer;
                                }
                            }
                        }
                        if wr.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    Some(Out::Close) | None => break,
                }
            }
            _ = &mut deadline, if !handshake_done => break,
            n = read_more(&mut rd, &mut buf) => {
                match n {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // Before the first frame, 4 bytes spelling a known word make this a 4lw.
                if !handshake_done && buf.len() >= 4 {
                    if let Ok(word) = std::str::from_utf8(&buf[..4]) {
                        if FOUR_LETTER_WORDS.contains(&word) {
                            let word = word.to_string();
                            // stmk carries an 8-byte mask after the word (ZooKeeper reads it
                            // with one more read of the socket).
                            let arg = if word == "stmk" {
                                if buf.len() < 12 {
                                    let wait = Duration::from_secs(1);
                                    let _ = tokio::time::timeout(wait, read_more(&mut rd, &mut buf)).await;
                                }
                                buf.get(4..12)
                                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                                    .map(i64::from_be_bytes)
                            } else {
                                None
                            };
                            let (tx, rx) = oneshot::channel();
                            if core.send(CoreMsg::FourLetter { word, arg, peer, reply: tx }).await.is_ok() {
                                if let Ok(text) = rx.await {
                                    let _ = wr.write_all(text.as_bytes()).await;
                                }
                            }
                            let _ = wr.shutdown().await;
                            return;
                        }
                    }
                }
                let mut start = 0;
                loop {
                    let avail = &buf[start..];
                    let len = match frame::check(avail, max_buffer) {
                        Ok(Some(len)) => len,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!("closing {peer}: {e}");
                            break 'outer;
                        }
                    };
                    let payload = &avail[frame::LEN_BYTES..frame::LEN_BYTES + len];
                    start += frame::LEN_BYTES + len;
                    let msg = if !handshake_done {
                        handshake_done = true;
                        match Connect::from_bytes(payload) {
                            Ok(connect) => {
                                connected_sent = true;
                                CoreMsg::Connect { conn, connect, peer, tx: out_tx.clone() }
                            }
                            Err(e) => {
                                tracing::debug!("closing {peer}: bad ConnectRequest: {e}");
                                break 'outer;
                            }
                        }
                    } else {
                        match decode_request(conn, payload) {
                            Some(msg) => msg,
                            None => break 'outer,
                        }
                    };
                    // A full core queue stops us reading this socket: backpressure.
                    if core.send(msg).await.is_err() {
                        break 'outer;
                    }
                }
                if start == buf.len() {
                    buf = Vec::new();
                } else {
                    buf.drain(..start);
                    if buf.capacity() > 256 * 1024 && buf.len() < 4096 {
                        buf.shrink_to(4096);
                    }
                }
            }
        }
    }
    if connected_sent {
        let _ = core.send(CoreMsg::Closed { conn }).await;
    }
}

/// Waits until the socket is readable, and only then makes room in `buf` (at least 4 KiB) and
/// reads: an idle connection waits holding no buffer.
async fn read_more(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        rd.readable().await?;
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(4096);
        }
        match rd.try_read_buf(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Readiness was stale: wait again without holding an empty buffer.
                if buf.is_empty() {
                    *buf = Vec::new();
                }
            }
            other => return other,
        }
    }
}

/// A request frame after the handshake. `None`: not even a header; the connection is closed.
fn decode_request(conn: ConnId, payload: &[u8]) -> Option<CoreMsg> {
    let mut r = Reader::new(payload);
    let header = RequestHeader::decode(&mut r).ok()?;
    let xid = header.xid;
    let op = match OpCode::try_from(header.type_) {
        Ok(op) if op.is_valid_request() => op,
        _ => {
            return Some(CoreMsg::Undecodable {
                conn,
                xid,
                op: None,
            })
        }
    };
    Some(match Request::decode(op, &mut r) {
        Ok(req) => CoreMsg::Request { conn, xid, req },
        Err(_) => CoreMsg::Undecodable {
            conn,
            xid,
            op: Some(op),
        },
    })
}
