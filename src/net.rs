//! Client connections: framing, the four-letter-word check on the first 4 bytes, the
//! handshake, decoding, and writing what the core sends back.

use crate::core::CoreMsg;
use crate::watches::ConnId;
use jute::proto::RequestHeader;
use jute::{frame, Connect, Decode, OpCode, Reader, Request};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

/// What the core has for a connection's socket: the frames, appended to one buffer (so a burst
/// of replies is one write), and whether to close after them. Shared by the core, which
/// appends, and the connection's task, which takes the buffer and writes it. Light on purpose:
/// an idle connection holds an empty buffer and a wake-up, nothing else.
#[derive(Debug, Default)]
pub struct Outbound {
    pending: Mutex<Pending>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    close: bool,
}

impl Outbound {
    /// Queues one frame.
    pub fn frame(&self, frame: &[u8]) {
        let was_empty = {
            let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let was_empty = p.bytes.is_empty() && !p.close;
            p.bytes.extend_from_slice(frame);
            was_empty
        };
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// Closes the socket once the frames queued before are written.
    pub fn close(&self) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .close = true;
        self.wake.notify_one();
    }

    /// Takes what is queued: the bytes to write, and whether to close after them.
    fn take(&self) -> (Vec<u8>, bool) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        (std::mem::take(&mut p.bytes), p.close)
    }
}

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

type TlsRead = tokio::io::ReadHalf<tokio_rustls::server::TlsStream<TcpStream>>;
type TlsWrite = tokio::io::WriteHalf<tokio_rustls::server::TlsStream<TcpStream>>;

/// The reading side of a connection.
trait Reading: Send {
    /// Reads more bytes into `buf`; 0 at the end of the stream.
    fn read_more(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> impl std::future::Future<Output = std::io::Result<usize>> + Send;
}

/// The writing side of a connection.
trait Writing: Send {
    fn send_all(
        &mut self,
        bytes: &[u8],
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
    fn close(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

impl Reading for OwnedReadHalf {
    async fn read_more(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        read_more(self, buf).await
    }
}

impl Reading for TlsRead {
    // TLS records are read whole, so the connection holds a buffer while it waits.
    async fn read_more(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(4096);
        }
        self.read_buf(buf).await
    }
}

impl Writing for OwnedWriteHalf {
    async fn send_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes).await
    }
    async fn close(&mut self) -> std::io::Result<()> {
        self.shutdown().await
    }
}

impl Writing for TlsWrite {
    async fn send_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes).await?;
        self.flush().await
    }
    async fn close(&mut self) -> std::io::Result<()> {
        self.shutdown().await
    }
}

/// Serves a plain client connection until either side closes it. Not an `async fn`: the
/// task is exactly the connection loop's future, with nothing around it.
pub fn serve_plain(stream: TcpStream, link: Link) -> impl std::future::Future<Output = ()> + Send {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    serve_on(rd, wr, link)
}

/// Serves a client connection on the secure port until either side closes it.
pub fn serve_tls(
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    link: Link,
) -> impl std::future::Future<Output = ()> + Send {
    let _ = stream.get_ref().0.set_nodelay(true);
    let (rd, wr) = tokio::io::split(stream);
    serve_on(rd, wr, link)
}

/// What a connection's task knows besides its socket.
pub struct Link {
    pub peer: SocketAddr,
    pub conn: ConnId,
    pub core: mpsc::Sender<CoreMsg>,
    /// `jute.maxbuffer`.
    pub max_buffer: usize,
    /// How long the connection may take to send its handshake.
    pub handshake_timeout: Duration,
}

async fn serve_on(mut rd: impl Reading, mut wr: impl Writing, link: Link) {
    let Link {
        peer,
        conn,
        core,
        max_buffer,
        handshake_timeout,
    } = link;
    let out = Arc::new(Outbound::default());
    // Empty between requests: an idle connection holds no read buffer.
    let mut buf: Vec<u8> = Vec::new();
    let mut handshake_done = false;
    let mut connected_sent = false;
    // Boxed, and dropped once the handshake is read: the task of an established connection
    // stays small.
    let mut deadline = Some(Box::pin(tokio::time::sleep(handshake_timeout)));
    'outer: loop {
        tokio::select! {
            biased;
            () = out.wake.notified() => {
                let (bytes, close) = out.take();
                if !bytes.is_empty() && wr.send_all(&bytes).await.is_err() {
                    break;
                }
                if close {
                    break;
                }
            }
            () = async { deadline.as_mut().expect("guarded").await }, if deadline.is_some() => break,
            n = rd.read_more(&mut buf) => {
                match n {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                // Before the first frame, 4 bytes spelling a known word make this a 4lw.
                if !handshake_done && buf.len() >= 4 {
                    if let Ok(word) = std::str::from_utf8(&buf[..4]) {
                        if FOUR_LETTER_WORDS.contains(&word) {
                            let word = word.to_string();
                            // Boxed: its state is not carried by every connection's task.
                            Box::pin(four_letter_word(word, buf, rd, wr, peer, core)).await;
                            return;
                        }
                    }
                }
                let mut start = 0;
                loop {
                    let len = match frame::check(&buf[start..], max_buffer) {
                        Ok(Some(len)) => len,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!("closing {peer}: {e}");
                            break 'outer;
                        }
                    };
                    // A full core queue stops us reading this socket: backpressure. The slot
                    // is taken before the request is decoded, so the waiting task does not
                    // carry the decoded request.
                    let Ok(slot) = core.reserve().await else {
                        break 'outer;
                    };
                    let payload = &buf[start + frame::LEN_BYTES..start + frame::LEN_BYTES + len];
                    start += frame::LEN_BYTES + len;
                    let msg = if !handshake_done {
                        handshake_done = true;
                        deadline = None;
                        match Connect::from_bytes(payload) {
                            Ok(connect) => {
                                connected_sent = true;
                                CoreMsg::Connect { conn, connect, peer, tx: out.clone() }
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
                    slot.send(msg);
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

/// Answers a four-letter word and closes the connection.
async fn four_letter_word(
    word: String,
    mut buf: Vec<u8>,
    mut rd: impl Reading,
    mut wr: impl Writing,
    peer: SocketAddr,
    core: mpsc::Sender<CoreMsg>,
) {
    // stmk carries an 8-byte mask after the word (ZooKeeper reads it with one more read of
    // the socket).
    let arg = if word == "stmk" {
        if buf.len() < 12 {
            let wait = Duration::from_secs(1);
            let _ = tokio::time::timeout(wait, rd.read_more(&mut buf)).await;
        }
        buf.get(4..12)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(i64::from_be_bytes)
    } else {
        None
    };
    let (tx, rx) = oneshot::channel();
    if core
        .send(CoreMsg::FourLetter {
            word,
            arg,
            peer,
            reply: tx,
        })
        .await
        .is_ok()
    {
        if let Ok(text) = rx.await {
            let _ = wr.send_all(text.as_bytes()).await;
        }
    }
    let _ = wr.close().await;
}

/// Waits until the socket is readable, and only then makes room in `buf` (at least 4 KiB) and
/// reads: an idle connection waits holding no buffer.
async fn read_more(rd: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> std::io::Result<usize> {
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
