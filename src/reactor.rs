//! The plain client port on one thread: a poll (epoll) over the listener and every plain
//! connection's socket. It accepts, reads, frames and decodes requests for the core, and
//! writes what the core queued and its socket did not take at once ([`Outbound`]).
//!
//! Why not a task per connection: an idle connection then costs its entry here (a socket, a
//! read buffer that is empty between requests, its framing state) and its [`Outbound`],
//! about 200 bytes, where a task and the runtime's registration of its socket took 640 more.
//! TLS connections keep a task each (see [`crate::net::serve_tls`]).

use crate::core::CoreMsg;
use crate::net::{Framing, Next, Outbound};
use crate::server::CnxnLimit;
use crate::watches::ConnId;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::VecDeque;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);
/// Room made in a connection's buffer before each read.
const READ_ROOM: usize = 4096;
/// The most one read takes.
const MAX_READ_ROOM: usize = 64 << 10;
/// A connection whose socket no longer knows its peer (reset meanwhile).
const UNKNOWN_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);
/// After a failed accept (out of descriptors, say), the next try.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// What the reactor needs besides its listener.
pub(crate) struct Setup {
    pub core: mpsc::Sender<CoreMsg>,
    pub limit: Arc<CnxnLimit>,
    /// Connection ids, shared with the TLS port.
    pub next_conn: Arc<AtomicU64>,
    /// `jute.maxbuffer`.
    pub max_buffer: usize,
    /// How long a connection may take to send its handshake.
    pub handshake_timeout: Duration,
    /// Where four-letter words are answered (they wait on the core, then write and close).
    pub runtime: tokio::runtime::Handle,
}

/// The running reactor thread; [`Reactor::stop`] ends it.
pub(crate) struct Reactor {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reactor {
    /// Serves `listener` (non-blocking) on a thread of its own.
    pub(crate) fn start(listener: TcpListener, setup: Setup) -> std::io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        listener.set_nonblocking(true)?;
        poll.registry().register(
            &mut SourceFd(&listener.as_raw_fd()),
            LISTENER,
            Interest::READABLE,
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut lp = Loop {
            poll,
            listener,
            setup,
            conns: Vec::new(),
            free: Vec::new(),
            deadlines: VecDeque::new(),
            again: Vec::new(),
            accept_retry: None,
        };
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("zkrs-net".into())
            .spawn(move || crate::server::essential("client reactor", || lp.run(&stopping)))?;
        Ok(Reactor {
            waker,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting, shuts every connection, and waits for the thread to end.
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One plain connection as the reactor knows it.
struct Cnxn {
    out: Arc<Outbound>,
    /// Bytes read and not yet framed; empty (no allocation) between requests.
    buf: Vec<u8>,
    framing: Framing,
}

impl Cnxn {
    fn socket(&self) -> Option<&TcpStream> {
        self.out.socket()
    }
}

/// What a read of a connection came to.
enum Reading {
    Done,
    /// The peer closed, the socket failed, or the input was bad.
    End,
    /// The connection is a four-letter word.
    Word(&'static str),
}

struct Loop {
    poll: Poll,
    listener: TcpListener,
    setup: Setup,
    /// Indexed by token; boxed, so the table of an idle server stays small.
    conns: Vec<Option<Box<Cnxn>>>,
    free: Vec<usize>,
    /// Handshake deadlines in accept order (one timeout for all, so in time order too).
    deadlines: VecDeque<(Instant, usize, ConnId)>,
    /// Connections whose last read filled the room it had: read again before waiting.
    again: Vec<usize>,
    accept_retry: Option<Instant>,
}

impl Loop {
    fn run(&mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!("client poll: {e}");
                break;
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    Token(i) => {
                        if ev.is_writable() {
                            if let Some(c) = self.conn(i) {
                                c.out.flush();
                            }
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.read(i);
                        }
                        // The peer's end (or an error) is signalled once: read on until the
                        // read that sees it, or the connection would wait for its session
                        // to expire.
                        if ev.is_read_closed() || ev.is_error() {
                            self.again.push(i);
                        }
                    }
                }
            }
            for i in std::mem::take(&mut self.again) {
                self.read(i);
            }
            let now = Instant::now();
            if self.accept_retry.is_some_and(|t| t <= now) {
                self.accept_retry = None;
                self.accept_all();
            }
            self.expire_handshakes(now);
        }
        for i in 0..self.conns.len() {
            self.end(i);
        }
    }

    /// How long the poll may wait: not at all with reads pending, else until the next
    /// handshake deadline or accept retry.
    fn timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = match (self.deadlines.front().map(|d| d.0), self.accept_retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map(|t| t.saturating_duration_since(Instant::now()))
    }

    fn conn(&self, i: usize) -> Option<&Cnxn> {
        self.conns.get(i).and_then(|c| c.as_deref())
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors, say: what waits in the backlog is tried again soon.
                    tracing::warn!("accept: {e}");
                    self.accept_retry = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        let Some(guard) = self.setup.limit.acquire(peer.ip()) else {
            return;
        };
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let i = self.free.pop().unwrap_or(self.conns.len());
        let registered = self.poll.registry().register(
            &mut SourceFd(&stream.as_raw_fd()),
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        );
        if let Err(e) = registered {
            tracing::warn!("registering {peer}: {e}");
            self.free.push(i);
            return;
        }
        let conn = self.setup.next_conn.fetch_add(1, Ordering::Relaxed);
        let c = Box::new(Cnxn {
            out: Arc::new(Outbound::new(guard, Some(stream))),
            buf: Vec::new(),
            framing: Framing::new(conn),
        });
        if i == self.conns.len() {
            self.conns.push(Some(c));
        } else {
            self.conns[i] = Some(c);
        }
        let deadline = Instant::now() + self.setup.handshake_timeout;
        self.deadlines.push_back((deadline, i, conn));
    }

    /// Ends connections whose handshake is late, and forgets the deadlines of those that
    /// are past it (from the front: a connection storm leaves no long queue behind).
    fn expire_handshakes(&mut self, now: Instant) {
        while let Some(&(t, i, conn)) = self.deadlines.front() {
            let waiting = self
                .conn(i)
                .is_some_and(|c| c.framing.conn == conn && !c.framing.handshake_done);
            if waiting && t > now {
                break;
            }
            self.deadlines.pop_front();
            if waiting {
                self.end(i);
            }
        }
        if self.deadlines.is_empty() && self.deadlines.capacity() > 1024 {
            self.deadlines = VecDeque::new();
        }
    }

    /// Reads what the socket has (one read), and hands the core every whole frame.
    fn read(&mut self, i: usize) {
        match self.read_frames(i) {
            Reading::Done => {}
            Reading::End => self.end(i),
            Reading::Word(word) => self.hand_off_word(i, word),
        }
    }

    fn read_frames(&mut self, i: usize) -> Reading {
        let Some(c) = self.conns.get_mut(i).and_then(|c| c.as_deref_mut()) else {
            return Reading::Done;
        };
        let Some(stream) = c.out.socket() else {
            return Reading::Done;
        };
        let len = c.buf.len();
        // The room is zeroed before each read (no unsafe code here): at most 64 KiB of it, so
        // a big frame arriving in small pieces is not zeroed over and over.
        c.buf.resize(
            len + READ_ROOM.max((c.buf.capacity() - len).min(MAX_READ_ROOM)),
            0,
        );
        let room = c.buf.len() - len;
        let n = loop {
            match (&*stream).read(&mut c.buf[len..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        let n = match n {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Readiness was stale: wait again without holding an empty buffer.
                c.buf.truncate(len);
                if c.buf.is_empty() {
                    c.buf = Vec::new();
                }
                return Reading::Done;
            }
            Err(_) => 0,
        };
        c.buf.truncate(len + n);
        if n == 0 {
            return Reading::End;
        }
        if n == room {
            self.again.push(i);
        }
        if let Some(word) = c.framing.four_letter_word(&c.buf) {
            return Reading::Word(word);
        }
        let peer = || stream.peer_addr().unwrap_or(UNKNOWN_PEER);
        let mut start = 0;
        loop {
            match c
                .framing
                .next(&c.buf, &mut start, self.setup.max_buffer, &c.out, &peer)
            {
                Next::Msg(msg) => {
                    if !send(&self.setup.core, msg) {
                        return Reading::End;
                    }
                }
                Next::More => break,
                Next::Close => return Reading::End,
            }
        }
        crate::net::consumed(&mut c.buf, start);
        Reading::Done
    }

    /// A four-letter word: the connection leaves the poll and a task answers it.
    fn hand_off_word(&mut self, i: usize, word: &'static str) {
        let Some(c) = self.take(i) else {
            return;
        };
        // Before a handshake nobody else holds the connection's outbound side.
        let Ok(out) = Arc::try_unwrap(c.out) else {
            return;
        };
        let (Some(stream), guard) = out.into_parts() else {
            return;
        };
        let peer = stream.peer_addr().unwrap_or(UNKNOWN_PEER);
        let core = self.setup.core.clone();
        let buf = c.buf;
        self.setup.runtime.spawn(crate::net::answer_plain_word(
            word, buf, stream, guard, peer, core,
        ));
    }

    /// Takes a connection out of the poll and the table.
    fn take(&mut self, i: usize) -> Option<Box<Cnxn>> {
        let c = self.conns.get_mut(i)?.take()?;
        self.free.push(i);
        if let Some(stream) = c.socket() {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&stream.as_raw_fd()));
        }
        Some(c)
    }

    /// The connection is over: shut its socket (the core may still hold it) and tell the
    /// core.
    fn end(&mut self, i: usize) {
        let Some(c) = self.take(i) else {
            return;
        };
        if let Some(stream) = c.socket() {
            let _ = crate::net::shut(stream);
        }
        if c.framing.connected_sent {
            send(
                &self.setup.core,
                CoreMsg::Closed {
                    conn: c.framing.conn,
                },
            );
        }
    }
}

/// Hands the core a message; when its queue is full this thread waits, and so every plain
/// connection stops being read (backpressure: the core is the bottleneck). False once the
/// core is gone.
fn send(core: &mpsc::Sender<CoreMsg>, msg: CoreMsg) -> bool {
    match core.try_send(msg) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(msg)) => core.blocking_send(msg).is_ok(),
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}
