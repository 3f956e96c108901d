//! The wire side of the load tool: sessions over TCP, frames through the jute crate, and the
//! pipelined driver that keeps `outstanding` requests in flight on one session.

use jute::data::{Acl, Id};
use jute::proto::{
    ConnectRequest, CreateRequest, DeleteRequest, ExistsRequest, GetChildrenRequest,
    GetDataRequest, ReplyHeader, SetDataRequest,
};
use jute::{frame, Connect, ConnectReply, Decode, Encode, Reader, Request};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const ERR_NODE_EXISTS: i32 = -110;

/// Buffered frame reader over the read side of a socket.
pub struct Frames {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for Frames {
    fn default() -> Self {
        Frames {
            buf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        }
    }
}

impl Frames {
    /// The next whole frame's payload as a range into the buffer, if one is buffered.
    pub fn next(&mut self) -> io::Result<Option<(usize, usize)>> {
        let avail = &self.buf[self.start..self.end];
        match frame::check(avail, usize::MAX >> 1) {
            Ok(Some(len)) => {
                let s = self.start + frame::LEN_BYTES;
                self.start = s + len;
                Ok(Some((s, s + len)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
    }

    pub fn payload(&self, r: (usize, usize)) -> &[u8] {
        &self.buf[r.0..r.1]
    }

    /// Reads more bytes; Err(UnexpectedEof) when the peer closed.
    pub async fn fill(&mut self, s: &mut TcpStream) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buf.len() - self.end < 16 * 1024 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // A frame larger than the buffer: grow to hold it.
        if let Ok(Some(len)) =
            frame::announced_len(&self.buf[self.start..self.end], usize::MAX >> 1)
        {
            let need = self.start + frame::LEN_BYTES + len;
            if need > self.buf.len() {
                self.buf.resize(need, 0);
            }
        }
        if self.end == self.buf.len() {
            let n = self.buf.len();
            self.buf.resize(n * 2, 0);
        }
        let n = s.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// Waits for one whole frame and returns a copy of its payload.
    pub async fn read_one(&mut self, s: &mut TcpStream) -> io::Result<Vec<u8>> {
        loop {
            if let Some(r) = self.next()? {
                return Ok(self.payload(r).to_vec());
            }
            self.fill(s).await?;
        }
    }
}

/// One ZooKeeper session on its own connection.
pub struct Session {
    pub stream: TcpStream,
    pub id: i64,
    pub timeout_ms: i32,
    pub frames: Frames,
    pub xid: i32,
}

fn reply_header(payload: &[u8]) -> io::Result<ReplyHeader> {
    ReplyHeader::decode(&mut Reader::new(payload))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

impl Session {
    /// Opens a new session (TCP connect + ConnectRequest + ConnectResponse).
    pub async fn open(addr: SocketAddr, timeout_ms: i32) -> io::Result<Session> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let c = Connect {
            request: ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                time_out: timeout_ms,
                session_id: 0,
                passwd: Some(vec![0; 16]),
            },
            read_only: Some(false),
        };
        let mut out = Vec::with_capacity(64);
        frame::write(&mut out, |o| c.encode(o));
        stream.write_all(&out).await?;
        let mut frames = Frames::default();
        let payload = frames.read_one(&mut stream).await?;
        let reply = ConnectReply::from_bytes(&payload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if reply.response.session_id == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "session refused",
            ));
        }
        Ok(Session {
            stream,
            id: reply.response.session_id,
            timeout_ms: reply.response.time_out,
            frames,
            xid: 0,
        })
    }

    /// Opens with retries (a server under a connection storm may reset a few).
    pub async fn open_retry(addr: SocketAddr, timeout_ms: i32) -> io::Result<Session> {
        let mut last = None;
        for attempt in 0..5u64 {
            match tokio::time::timeout(Duration::from_secs(30), Session::open(addr, timeout_ms))
                .await
            {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(io::ErrorKind::TimedOut.into()),
            }
            tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::Other.into()))
    }

    pub fn next_xid(&mut self) -> i32 {
        self.xid = self.xid.wrapping_add(1).max(1);
        self.xid
    }

    /// One synchronous request: its header and payload (notifications are skipped).
    pub async fn call(&mut self, req: &Request) -> io::Result<(ReplyHeader, Vec<u8>)> {
        let xid = match req {
            Request::Ping => jute::xid::PING,
            _ => self.next_xid(),
        };
        let mut out = Vec::with_capacity(128);
        req.encode_frame(xid, &mut out);
        self.stream.write_all(&out).await?;
        loop {
            let payload = self.frames.read_one(&mut self.stream).await?;
            let h = reply_header(&payload)?;
            if h.xid == jute::xid::NOTIFICATION {
                continue;
            }
            if h.xid != xid {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("reply xid {} for request xid {xid}", h.xid),
                ));
            }
            return Ok((h, payload));
        }
    }

    /// Ends the session (closeSession, then the reply).
    pub async fn close(mut self) -> io::Result<()> {
        let (h, _) = self.call(&Request::CloseSession).await?;
        if h.err != 0 {
            return Err(io::Error::other(format!("closeSession: err {}", h.err)));
        }
        Ok(())
    }
}

// Request builders.

pub fn open_acl() -> Option<Vec<Acl>> {
    Some(vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }])
}

pub fn create(path: String, data: &[u8]) -> Request {
    Request::Create(CreateRequest {
        path,
        data: Some(data.to_vec()),
        acl: open_acl(),
        flags: 0,
    })
}

pub fn set_data(path: String, data: &[u8]) -> Request {
    Request::SetData(SetDataRequest {
        path,
        data: Some(data.to_vec()),
        version: -1,
    })
}

pub fn delete(path: String) -> Request {
    Request::Delete(DeleteRequest { path, version: -1 })
}

pub fn get_data(path: String, watch: bool) -> Request {
    Request::GetData(GetDataRequest { path, watch })
}

pub fn get_children(path: String) -> Request {
    Request::GetChildren(GetChildrenRequest { path, watch: false })
}

pub fn exists(path: String) -> Request {
    Request::Exists(ExistsRequest { path, watch: false })
}

/// A source of requests for one pipelined session.
pub trait Work: Send + 'static {
    /// Appends request number `seq` (0, 1, ...) as a frame with `xid`; false: no more work.
    fn encode(&mut self, seq: u64, xid: i32, out: &mut Vec<u8>) -> bool;
    /// The answer to request `seq` came back with error code `err`.
    fn done(&mut self, _seq: u64, _err: i32) {}
}

/// What one driven session did.
#[derive(Default)]
pub struct Driven {
    pub ops: u64,
    pub errors: u64,
    /// Latency of every answered request, in nanoseconds.
    pub lat_ns: Vec<u64>,
    pub first_error: Option<String>,
}

/// Keeps up to `outstanding` requests of `work` in flight on `stream` until `quota` requests
/// are answered, `work` runs dry, or `deadline` passes (then the ones in flight are awaited).
/// `echo`: the peer is the echo floor server, which returns each frame as it came.
pub async fn drive<W: Work>(
    stream: &mut TcpStream,
    frames: &mut Frames,
    work: &mut W,
    outstanding: usize,
    quota: u64,
    deadline: Instant,
    echo: bool,
) -> Driven {
    let mut d = Driven {
        lat_ns: Vec::with_capacity(quota.min(1 << 20) as usize),
        ..Driven::default()
    };
    let mut inflight: VecDeque<(i32, u64, Instant)> = VecDeque::with_capacity(outstanding);
    let mut out = Vec::with_capacity(outstanding * 160);
    let mut issued = 0u64;
    let mut xid = 0i32;
    let mut dry = false;
    loop {
        if !dry && issued < quota && inflight.len() < outstanding {
            let now = Instant::now();
            if now >= deadline {
                dry = true;
            } else {
                out.clear();
                while inflight.len() < outstanding && issued < quota {
                    xid = xid.wrapping_add(1).max(1);
                    if !work.encode(issued, xid, &mut out) {
                        dry = true;
                        break;
                    }
                    inflight.push_back((xid, issued, now));
                    issued += 1;
                }
                if !out.is_empty() {
                    if let Err(e) = stream.write_all(&out).await {
                        d.first_error = Some(format!("write: {e}"));
                        return d;
                    }
                }
            }
        }
        if inflight.is_empty() {
            return d;
        }
        if let Err(e) = frames.fill(stream).await {
            d.first_error = Some(format!("read: {e}"));
            return d;
        }
        let now = Instant::now();
        loop {
            let r = match frames.next() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    d.first_error = Some(format!("frame: {e}"));
                    return d;
                }
            };
            let p = frames.payload(r);
            if p.len() < 4 {
                d.first_error = Some("short frame".into());
                return d;
            }
            let rxid = i32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            let err = if echo || p.len() < 16 {
                0
            } else {
                i32::from_be_bytes([p[12], p[13], p[14], p[15]])
            };
            if rxid == jute::xid::NOTIFICATION || rxid == jute::xid::PING {
                continue;
            }
            let Some((exid, seq, t)) = inflight.pop_front() else {
                d.first_error = Some(format!("unexpected reply xid {rxid}"));
                return d;
            };
            if exid != rxid {
                d.first_error = Some(format!("reply xid {rxid}, expected {exid}"));
                return d;
            }
            d.ops += 1;
            if err != 0 {
                d.errors += 1;
                if d.first_error.is_none() {
                    d.first_error = Some(format!("server error {err}"));
                }
            }
            d.lat_ns.push(now.duration_since(t).as_nanos() as u64);
            work.done(seq, err);
        }
    }
}

/// A small fast PRNG (xorshift64*), so the tool needs no rand crate.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
}
