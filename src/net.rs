//! Client connections: framing, the four-letter-word check on the first 4 bytes, the
//! handshake, decoding, and writing what the core sends back.

use crate::core::CoreMsg;
use crate::watches::ConnId;
use jute::proto::RequestHeader;
use jute::{frame, Connect, Decode, OpCode, Reader, Request};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// What the core has for a connection's socket: the frames, appended to one buffer (so a burst
/// of replies is one write), and whether to close after them. Shared by the core, which
/// appends, and the connection's reader. At the end of its turn the core writes a plain
/// connection's frames itself when the socket takes them (no wake-up, no second thread); what
/// the socket does not take, the [`crate::reactor`] writes when the socket is writable again.
/// A TLS connection's frames are all written by its task. Light on purpose: an idle
/// connection holds an empty buffer, nothing else.
pub struct Outbound {
    pending: Mutex<Pending>,
    /// A plain connection's socket (non-blocking), written by whoever flushes: the core, or
    /// the reactor once the socket takes more.
    direct: Option<std::net::TcpStream>,
    /// The connection's place under `maxClientCnxns`, given back when both the reader and
    /// the core are done with the connection.
    guard: crate::server::CnxnGuard,
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    close: bool,
    /// The task holds bytes it took and has not finished writing: nobody else writes before
    /// them (TLS connections).
    busy: bool,
    /// The socket is shut: what is queued after this is dropped (plain connections).
    shut: bool,
    /// The connection's task, while it waits for something to write (TLS connections).
    waker: Option<Waker>,
}

impl Outbound {
    pub(crate) fn new(
        guard: crate::server::CnxnGuard,
        direct: Option<std::net::TcpStream>,
    ) -> Self {
        Outbound {
            pending: Mutex::default(),
            direct,
            guard,
        }
    }

    /// A plain connection's socket.
    pub(crate) fn socket(&self) -> Option<&std::net::TcpStream> {
        self.direct.as_ref()
    }

    /// A plain connection's socket and place under `maxClientCnxns`, once nobody else holds
    /// the connection (a four-letter word, handed to a task before any handshake).
    pub(crate) fn into_parts(self) -> (Option<std::net::TcpStream>, crate::server::CnxnGuard) {
        (self.direct, self.guard)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one frame; [`Outbound::flush`] sends what is queued. True if the queue was
    /// empty (the caller flushes this connection once, at the end of its turn).
    pub fn frame(&self, frame: &[u8]) -> bool {
        let mut p = self.lock();
        let was_empty = p.bytes.is_empty();
        p.bytes.extend_from_slice(frame);
        was_empty
    }

    /// Sends what is queued: written here when the socket takes all of it, else handed to
    /// the connection's task (woken) together with whatever is left.
    pub fn flush(&self) {
        let waiting = {
            let mut p = self.lock();
            if let Some(stream) = &self.direct {
                write_out(stream, &mut p);
                return;
            }
            if p.bytes.is_empty() || p.busy {
                // Nothing to send, or the task is writing and takes the rest after.
                return;
            }
            p.waker.take()
        };
        if let Some(w) = waiting {
            w.wake();
        }
    }

    /// Closes the socket once the frames queued before are written.
    pub fn close(&self) {
        let waiting = {
            let mut p = self.lock();
            p.close = true;
            if let Some(stream) = &self.direct {
                // Frames queued this turn go first: the core flushes them at its end.
                if p.bytes.is_empty() {
                    write_out(stream, &mut p);
                }
                return;
            }
            p.waker.take()
        };
        if let Some(w) = waiting {
            w.wake();
        }
    }

    /// What is queued: the bytes to write, and whether to close after them; pending (the
    /// task to be woken) while there is neither. The task owns the bytes until
    /// [`Outbound::written`].
    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<(Vec<u8>, bool)> {
        let mut p = self.lock();
        if p.bytes.is_empty() && !p.close {
            if !p.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                p.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        p.busy = true;
        Poll::Ready((std::mem::take(&mut p.bytes), p.close))
    }

    /// The task has written what it took.
    fn written(&self) {
        self.lock().busy = false;
    }
}

/// Writes what a plain connection has queued, as much as its socket takes; the reactor writes
/// the rest when the socket is writable again. Once everything is out after a close, or on a
/// write error, the socket is shut: the reactor sees it end and tells the core.
fn write_out(stream: &std::net::TcpStream, p: &mut Pending) {
    use std::io::Write;
    if p.shut {
        p.bytes = Vec::new();
        return;
    }
    let mut sent = 0;
    let mut failed = false;
    while sent < p.bytes.len() {
        match (&*stream).write(&p.bytes[sent..]) {
            Ok(0) => failed = true,
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => failed = true,
        }
        if failed {
            break;
        }
    }
    if failed || sent == p.bytes.len() {
        // Not kept: an idle connection holds no buffer.
        p.bytes = Vec::new();
    } else {
        p.bytes.drain(..sent);
    }
    if failed || (p.close && p.bytes.is_empty()) {
        p.shut = true;
        let _ = shut(stream);
    }
}

/// Shuts both directions of a plain connection's socket, whoever else still holds it (the
/// core, the reactor, the other half): the client sees the close at once.
pub(crate) fn shut(stream: &impl std::os::fd::AsFd) -> std::io::Result<()> {
    socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both)
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

/// The reading side of a connection. Polled, not async: the connection's task polls its
/// socket, its outbound queue and its handshake deadline in one `poll_fn`, so an idle
/// connection's future holds no read future and no waiter.
trait Reading: Send + Unpin {
    /// Reads more bytes into `buf`; ready with 0 at the end of the stream.
    fn poll_read_more(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
    ) -> Poll<std::io::Result<usize>>;
}

/// The writing side of a connection: plain or TLS.
trait Writing: AsyncWrite + Unpin + Send {}
impl<W: AsyncWrite + Unpin + Send> Writing for W {}

/// Writes `bytes[*sent..]`, advancing `sent`, then flushes; ready once all of it is out.
/// Polled, for the reason [`Reading`] is.
fn poll_send(
    wr: &mut impl Writing,
    cx: &mut Context<'_>,
    bytes: &[u8],
    sent: &mut usize,
) -> Poll<std::io::Result<()>> {
    while *sent < bytes.len() {
        match std::task::ready!(std::pin::Pin::new(&mut *wr).poll_write(cx, &bytes[*sent..])) {
            Ok(0) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => *sent += n,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    std::pin::Pin::new(wr).poll_flush(cx)
}

impl Reading for Arc<TcpStream> {
    /// Waits until the socket is readable, and only then makes room in `buf` (at least 4 KiB)
    /// and reads: an idle connection waits holding no buffer.
    fn poll_read_more(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            if let Err(e) = std::task::ready!(self.poll_read_ready(cx)) {
                return Poll::Ready(Err(e));
            }
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(4096);
            }
            match self.try_read_buf(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Readiness was stale: wait again without holding an empty buffer.
                    if buf.is_empty() {
                        *buf = Vec::new();
                    }
                }
                other => return Poll::Ready(other),
            }
        }
    }
}

impl Reading for TlsRead {
    // TLS records are read whole, so the connection holds a buffer while it waits.
    fn poll_read_more(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<u8>,
    ) -> Poll<std::io::Result<usize>> {
        let len = buf.len();
        buf.resize(len + 4096, 0);
        let mut room = tokio::io::ReadBuf::new(&mut buf[len..]);
        let polled = std::pin::Pin::new(&mut *self).poll_read(cx, &mut room);
        let n = room.filled().len();
        buf.truncate(len + n);
        polled.map_ok(|()| n)
    }
}

/// The writing side of a plain connection: the socket the task shares with its
/// [`Outbound`] (a split half could not be shared).
struct PlainWriter(Arc<TcpStream>);

impl AsyncWrite for PlainWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(bytes) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Both directions: the reading half holds the socket too.
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(shut(&self.0))
    }
}

/// What woke a connection's task.
enum Woken {
    /// The core queued frames (and perhaps a close).
    Write(Vec<u8>, bool),
    /// The handshake did not arrive in time.
    Deadline,
    /// The socket had bytes, or ended.
    Read(std::io::Result<usize>),
}

/// Answers a four-letter word that arrived on a plain connection (handed over by the
/// reactor, which reads nothing more of it), then closes the connection.
pub(crate) async fn answer_plain_word(
    word: &'static str,
    buf: Vec<u8>,
    stream: std::net::TcpStream,
    guard: crate::server::CnxnGuard,
    peer: SocketAddr,
    core: mpsc::Sender<CoreMsg>,
) {
    let _guard = guard;
    let Ok(stream) = TcpStream::from_std(stream) else {
        return;
    };
    let stream = Arc::new(stream);
    four_letter_word(word, buf, stream.clone(), PlainWriter(stream), peer, core).await;
}

/// Serves a client connection on the secure port until either side closes it.
pub fn serve_tls(
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    link: Link,
    guard: crate::server::CnxnGuard,
) -> impl std::future::Future<Output = ()> + Send {
    let _ = stream.get_ref().0.set_nodelay(true);
    let (rd, wr) = tokio::io::split(stream);
    let out = Arc::new(Outbound::new(guard, None));
    serve_on(rd, wr, out, link)
}

/// A connection's framing state: before or after its handshake. The same for the reactor's
/// plain connections and the TLS connections' tasks.
pub(crate) struct Framing {
    pub conn: ConnId,
    /// The ConnectRequest was read: what follows are requests.
    pub handshake_done: bool,
    /// The core was told of the connection, and must be told when it ends.
    pub connected_sent: bool,
}

/// What [`Framing::next`] found.
pub(crate) enum Next {
    /// A message for the core.
    Msg(CoreMsg),
    /// No whole frame yet.
    More,
    /// Bad input: the connection is closed, as ZooKeeper closes it.
    Close,
}

impl Framing {
    pub(crate) fn new(conn: ConnId) -> Self {
        Framing {
            conn,
            handshake_done: false,
            connected_sent: false,
        }
    }

    /// Before the first frame, 4 bytes spelling a known word make the connection a 4lw.
    pub(crate) fn four_letter_word(&self, buf: &[u8]) -> Option<&'static str> {
        if self.handshake_done {
            return None;
        }
        let word = std::str::from_utf8(buf.get(..4)?).ok()?;
        FOUR_LETTER_WORDS.iter().copied().find(|w| *w == word)
    }

    /// The next frame of `buf[*start..]` as a message for the core, `start` moved past it.
    /// `peer` is asked for only by the handshake and by what is logged (a connection of the
    /// reactor does not keep its address: the socket has it).
    pub(crate) fn next(
        &mut self,
        buf: &[u8],
        start: &mut usize,
        max_buffer: usize,
        out: &Arc<Outbound>,
        peer: &dyn Fn() -> SocketAddr,
    ) -> Next {
        let len = match frame::check(&buf[*start..], max_buffer) {
            Ok(Some(len)) => len,
            Ok(None) => return Next::More,
            Err(e) => {
                tracing::debug!("closing {}: {e}", peer());
                return Next::Close;
            }
        };
        let payload = &buf[*start + frame::LEN_BYTES..*start + frame::LEN_BYTES + len];
        *start += frame::LEN_BYTES + len;
        if self.handshake_done {
            return decode_request(self.conn, payload).map_or(Next::Close, Next::Msg);
        }
        self.handshake_done = true;
        match Connect::from_bytes(payload) {
            Ok(connect) => {
                self.connected_sent = true;
                Next::Msg(CoreMsg::Connect {
                    conn: self.conn,
                    connect,
                    peer: peer(),
                    tx: out.clone(),
                })
            }
            Err(e) => {
                tracing::debug!("closing {}: bad ConnectRequest: {e}", peer());
                Next::Close
            }
        }
    }
}

/// Drops the first `start` bytes of `buf`, which were frames: an idle connection holds no
/// buffer, and a big one shrinks back once drained.
pub(crate) fn consumed(buf: &mut Vec<u8>, start: usize) {
    if start == buf.len() {
        *buf = Vec::new();
    } else {
        buf.drain(..start);
        if buf.capacity() > 256 * 1024 && buf.len() < 4096 {
            buf.shrink_to(4096);
        }
    }
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

/// Not an `async fn`, and `link` is used in place, never taken apart: the arguments of an
/// async fn, and anything moved out of them, take room in the future twice (rust-lang/rust
/// #62958), and every idle connection carries this future.
fn serve_on(
    mut rd: impl Reading,
    mut wr: impl Writing,
    out: Arc<Outbound>,
    link: Link,
) -> impl std::future::Future<Output = ()> + Send {
    // Boxed, and dropped once the handshake is read: the task of an established connection
    // stays small.
    let mut deadline = Some(Box::pin(tokio::time::sleep(link.handshake_timeout)));
    async move {
        // Empty between requests: an idle connection holds no read buffer.
        let mut buf: Vec<u8> = Vec::new();
        let mut framing = Framing::new(link.conn);
        let peer = || link.peer;
        'outer: loop {
            let woken = std::future::poll_fn(|cx| {
                if let Poll::Ready((bytes, close)) = out.poll_take(cx) {
                    return Poll::Ready(Woken::Write(bytes, close));
                }
                if let Some(d) = deadline.as_mut() {
                    if std::future::Future::poll(d.as_mut(), cx).is_ready() {
                        return Poll::Ready(Woken::Deadline);
                    }
                }
                rd.poll_read_more(cx, &mut buf).map(Woken::Read)
            })
            .await;
            match woken {
                Woken::Write(bytes, close) => {
                    let mut sent = 0;
                    let send = std::future::poll_fn(|cx| poll_send(&mut wr, cx, &bytes, &mut sent));
                    if send.await.is_err() {
                        break;
                    }
                    out.written();
                    if close {
                        break;
                    }
                }
                Woken::Deadline => break,
                Woken::Read(n) => {
                    match n {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if let Some(word) = framing.four_letter_word(&buf) {
                        // Boxed: its state is not carried by every connection's task.
                        Box::pin(four_letter_word(word, buf, rd, wr, link.peer, link.core)).await;
                        return;
                    }
                    let mut start = 0;
                    loop {
                        let msg = match framing.next(&buf, &mut start, link.max_buffer, &out, &peer)
                        {
                            Next::Msg(msg) => msg,
                            Next::More => break,
                            Next::Close => break 'outer,
                        };
                        if framing.handshake_done {
                            deadline = None;
                        }
                        // A full core queue stops us reading this socket: backpressure.
                        match link.core.try_send(msg) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(msg)) => {
                                // Boxed: the wait is rare, and its state would otherwise be
                                // carried by every connection's task.
                                if Box::pin(link.core.send(msg)).await.is_err() {
                                    break 'outer;
                                }
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => break 'outer,
                        }
                    }
                    consumed(&mut buf, start);
                }
            }
        }
        if framing.connected_sent {
            // Boxed for the same reason as the send above.
            let _ = Box::pin(link.core.send(CoreMsg::Closed { conn: link.conn })).await;
        }
    }
}

/// Answers a four-letter word and closes the connection.
async fn four_letter_word(
    word: &'static str,
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
            let more = std::future::poll_fn(|cx| rd.poll_read_more(cx, &mut buf));
            let _ = tokio::time::timeout(wait, more).await;
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
            word: word.to_string(),
            arg,
            peer,
            reply: tx,
        })
        .await
        .is_ok()
    {
        if let Ok(text) = rx.await {
            let mut sent = 0;
            let _ =
                std::future::poll_fn(|cx| poll_send(&mut wr, cx, text.as_bytes(), &mut sent)).await;
        }
    }
    let _ = wr.shutdown().await;
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
