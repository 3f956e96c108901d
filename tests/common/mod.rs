//! A real server on a real socket (port 0, a temp dir), and a small blocking client that speaks
//! the wire protocol through the jute crate, so tests can check bytes as well as meanings.
#![allow(dead_code)]

use jute::proto::{ReplyHeader, WatcherEvent};
use jute::{frame, Connect, ConnectReply, Decode, Encode, OpCode, Reader, Request, Response};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// A server on a fresh data dir with extra zoo.cfg lines.
    pub fn start(cfg: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir, cfg);
        s._tmp = Some(tmp);
        s
    }

    /// A server on `dir` (which may hold an earlier server's data).
    pub fn start_in(dir: &Path, cfg: &str) -> Self {
        let text = format!(
            "tickTime=2000\ndataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\n{cfg}",
            dir.display()
        );
        let cfg = zkrs::config::Config::parse(&text).expect("config");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shut_tx, shut_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let listeners = zkrs::server::bind(&cfg).await.expect("bind");
                let plain = listeners.plain.as_ref().expect("a plain client port");
                addr_tx
                    .send(plain.local_addr().expect("addr"))
                    .expect("send addr");
                zkrs::server::run(listeners, cfg, async {
                    let _ = shut_rx.await;
                })
                .await
                .expect("server");
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server started");
        TestServer {
            addr,
            dir: dir.to_path_buf(),
            _tmp: None,
            shutdown: Some(shut_tx),
            thread: Some(thread),
        }
    }

    /// Graceful stop; returns the data dir's owner so it can be restarted.
    pub fn stop(mut self) -> Option<tempfile::TempDir> {
        self.halt();
        self._tmp.take()
    }

    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What came back for a request.
#[derive(Debug)]
pub struct Reply {
    pub header: ReplyHeader,
    pub body: Option<Response>,
    pub raw: Vec<u8>,
}

impl Reply {
    pub fn err(&self) -> i32 {
        self.header.err
    }
}

pub struct Client {
    pub stream: TcpStream,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub timeout_ms: i32,
    pub xid: i32,
    /// Notifications received while waiting for replies.
    pub events: VecDeque<WatcherEvent>,
    /// Every frame in arrival order (notifications and replies), as (xid, raw).
    pub log: Vec<(i32, Vec<u8>)>,
}

pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Reads one frame's payload; None on EOF.
pub fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let len = i32::from_be_bytes(len);
    let mut buf = vec![0u8; usize::try_from(len).ok()?];
    stream.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// True when the server closed the socket (EOF) with nothing more to read.
pub fn is_closed(stream: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(stream.read(&mut b), Ok(0))
        || matches!(stream.read(&mut b), Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

pub fn connect_frame(
    session_id: i64,
    passwd: Vec<u8>,
    timeout: i32,
    last_zxid: i64,
    read_only: Option<bool>,
) -> Vec<u8> {
    let c = Connect {
        request: jute::proto::ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: last_zxid,
            time_out: timeout,
            session_id,
            passwd: Some(passwd),
        },
        read_only,
    };
    let mut out = Vec::new();
    frame::write(&mut out, |o| c.encode(o));
    out
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, 0, vec![0; 16], 30000).expect("session")
    }

    /// Attaches to a session (0 = new); None if the server refused it.
    pub fn connect_with(
        addr: SocketAddr,
        session_id: i64,
        passwd: Vec<u8>,
        timeout: i32,
    ) -> Option<Self> {
        Self::connect_flagged(addr, session_id, passwd, timeout, false).map(|(c, _)| c)
    }

    /// Attaches with the ConnectRequest's read-only flag (`canBeReadOnly`) set as given;
    /// returns the client and the ConnectResponse's read-only flag.
    pub fn connect_flagged(
        addr: SocketAddr,
        session_id: i64,
        passwd: Vec<u8>,
        timeout: i32,
        can_be_read_only: bool,
    ) -> Option<(Self, Option<bool>)> {
        let mut stream = TcpStream::connect(addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        stream.set_nodelay(true).ok()?;
        stream
            .write_all(&connect_frame(
                session_id,
                passwd,
                timeout,
                0,
                Some(can_be_read_only),
            ))
            .ok()?;
        let reply = ConnectReply::from_bytes(&read_frame(&mut stream)?).ok()?;
        if reply.response.session_id == 0 {
            return None;
        }
        let client = Client {
            stream,
            session_id: reply.response.session_id,
            passwd: reply.response.passwd.unwrap_or_default(),
            timeout_ms: reply.response.time_out,
            xid: 0,
            events: VecDeque::new(),
            log: Vec::new(),
        };
        Some((client, reply.read_only))
    }

    pub fn send(&mut self, req: &Request) -> i32 {
        self.xid += 1;
        let xid = if req.op() == OpCode::Ping {
            jute::xid::PING
        } else {
            self.xid
        };
        let mut out = Vec::new();
        req.encode_frame(xid, &mut out);
        self.stream.write_all(&out).expect("write");
        xid
    }

    /// Like `send`, but None when the connection is broken.
    pub fn send_checked(&mut self, req: &Request) -> Option<i32> {
        self.xid += 1;
        let xid = if req.op() == OpCode::Ping {
            jute::xid::PING
        } else {
            self.xid
        };
        let mut out = Vec::new();
        req.encode_frame(xid, &mut out);
        self.stream.write_all(&out).ok()?;
        Some(xid)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads frames until the reply to `xid` (of a request of type `op`).
    pub fn recv(&mut self, xid: i32, op: OpCode) -> Option<Reply> {
        loop {
            let raw = read_frame(&mut self.stream)?;
            let mut r = Reader::new(&raw);
            let header = ReplyHeader::decode(&mut r).expect("reply header");
            self.log.push((header.xid, raw.clone()));
            if header.xid == jute::xid::NOTIFICATION {
                self.events
                    .push_back(WatcherEvent::decode(&mut r).expect("event"));
                continue;
            }
            assert_eq!(header.xid, xid, "replies must come in request order");
            let body = if header.err == 0 {
                Some(Response::decode(op, &mut r).expect("body"))
            } else {
                None
            };
            return Some(Reply { header, body, raw });
        }
    }

    pub fn call(&mut self, req: Request) -> Reply {
        let op = req.op();
        let xid = self.send(&req);
        self.recv(xid, op).expect("reply")
    }

    /// `addauth digest <user:password>`: the error code of its answer.
    pub fn add_digest(&mut self, user_password: &str) -> i32 {
        let xid = self.send(&Request::Auth(jute::proto::AuthPacket {
            type_: 0,
            scheme: "digest".into(),
            auth: Some(user_password.as_bytes().to_vec()),
        }));
        self.recv(xid, OpCode::Auth).expect("auth reply").err()
    }

    /// Waits for the next notification.
    pub fn next_event(&mut self) -> Option<WatcherEvent> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        let raw = read_frame(&mut self.stream)?;
        let mut r = Reader::new(&raw);
        let header = ReplyHeader::decode(&mut r).ok()?;
        assert_eq!(
            header.xid,
            jute::xid::NOTIFICATION,
            "expected a notification"
        );
        WatcherEvent::decode(&mut r).ok()
    }
}

// Request builders.
use jute::data::{Acl, Id};
use jute::proto::*;

pub fn open_acl() -> Option<Vec<Acl>> {
    Some(vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }])
}

pub fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: open_acl(),
        flags,
    })
}

pub fn create2(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create2(CreateRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: open_acl(),
        flags,
    })
}

pub fn get_data(path: &str, watch: bool) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch,
    })
}

pub fn set_data(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        version,
    })
}

pub fn delete(path: &str, version: i32) -> Request {
    Request::Delete(DeleteRequest {
        path: path.into(),
        version,
    })
}

pub fn exists(path: &str, watch: bool) -> Request {
    Request::Exists(ExistsRequest {
        path: path.into(),
        watch,
    })
}

pub fn children2(path: &str, watch: bool) -> Request {
    Request::GetChildren2(GetChildren2Request {
        path: path.into(),
        watch,
    })
}

/// A port for a server a test starts as a separate process. From below the kernel's ephemeral
/// range (32768 and up), one counter per test process: a port found by binding port 0 and
/// letting go can be taken, before the server binds it, by another test's outgoing connection
/// (tests run in parallel), and the server then exits with "address in use".
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Processes that run one after another start at different places.
    let start = 20_000 + (std::process::id() % 400) as u16 * 30;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let p = NEXT.fetch_add(1, Ordering::SeqCst);
        if p >= 32_000 {
            let _ = NEXT.compare_exchange(p + 1, 20_000, Ordering::SeqCst, Ordering::SeqCst);
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}
