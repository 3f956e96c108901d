//! The AdminServer: ZooKeeper's HTTP admin commands. `GET <commandURL>/<name>` answers the
//! command's JSON (the names and aliases of ZooKeeper's `Commands`, its field names, Jackson's
//! pretty layout); `<commandURL>` itself lists the commands as links. An unknown name answers
//! `"error" : "Unknown command: <name>"`, with status 200, as ZooKeeper's does.

use crate::admin;
use crate::backup::{AdminReply, Credentials};
use crate::core::{Core, CoreMsg};
use std::fmt::Write as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// A JSON value, printed as Jackson's `DefaultPrettyPrinter` prints it.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A number as Java printed it.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn int(v: impl Into<i64>) -> Json {
        Json::Num(v.into().to_string())
    }

    pub fn str(s: impl Into<String>) -> Json {
        Json::Str(s.into())
    }

    /// A value of ZooKeeper's text output: a number stays a number.
    pub fn from_text(v: &str) -> Json {
        let number = v.parse::<i64>().is_ok()
            || (v.contains('.') && v.parse::<f64>().is_ok_and(f64::is_finite));
        if number {
            Json::Num(v.to_string())
        } else {
            Json::Str(v.to_string())
        }
    }

    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(0, &mut out);
        out
    }

    fn write(&self, indent: usize, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => quote(s, out),
            Json::Arr(items) if items.is_empty() => out.push_str("[ ]"),
            Json::Obj(fields) if fields.is_empty() => out.push_str("{ }"),
            Json::Arr(items) => {
                out.push_str("[ ");
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write(indent, out);
                }
                out.push_str(" ]");
            }
            Json::Obj(fields) => {
                out.push_str("{\n");
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(",\n");
                    }
                    out.push_str(&"  ".repeat(indent + 1));
                    quote(k, out);
                    out.push_str(" : ");
                    v.write(indent + 1, out);
                }
                out.push('\n');
                out.push_str(&"  ".repeat(indent));
                out.push('}');
            }
        }
    }
}

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The commands served, by primary name, with their aliases (ZooKeeper's `Commands`).
pub const COMMANDS: &[(&str, &[&str])] = &[
    ("configuration", &["conf", "config"]),
    ("connection_stat_reset", &["crst"]),
    ("connections", &["cons"]),
    ("dirs", &[]),
    ("dump", &[]),
    ("environment", &["env", "envi"]),
    ("get_trace_mask", &["gtmk"]),
    ("hash", &[]),
    ("initial_configuration", &["icfg"]),
    ("is_read_only", &["isro"]),
    ("last_snapshot", &["lsnp"]),
    ("leader", &["lead"]),
    ("monitor", &["mntr"]),
    // ZooKeeper 3.8's alias is `orst` (ObserverCnxnStatResetCommand).
    ("observer_connection_stat_reset", &["orst"]),
    ("observers", &["obsr"]),
    ("restore", &["rest"]),
    ("ruok", &[]),
    ("server_stats", &["srvr"]),
    ("set_trace_mask", &["stmk"]),
    ("snapshot", &["snap"]),
    ("stat_reset", &["srst"]),
    ("stats", &["stat"]),
    ("system_properties", &["sysp"]),
    ("voting_view", &[]),
    ("watch_summary", &["wchs"]),
    ("watches", &["wchc"]),
    ("watches_by_path", &["wchp"]),
    ("zabstate", &[]),
];

/// The primary name of a command or alias.
pub fn primary(name: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|(n, aliases)| *n == name || aliases.contains(&name))
        .map(|(n, _)| *n)
}

/// Runs a command on the core's thread: its JSON. Kept out of the core's message loop.
#[cold]
#[inline(never)]
pub fn run(command: &str, args: &[(String, String)], core: &mut Core) -> String {
    let mut fields = match primary(command) {
        Some(c) => match admin::json_command(c, args, core) {
            Ok(fields) => {
                let mut f = fields;
                f.push(("command".into(), Json::str(c)));
                f.push(("error".into(), Json::Null));
                f
            }
            Err(e) => vec![
                ("error".into(), Json::str(e)),
                ("command".into(), Json::str(c)),
            ],
        },
        None => vec![
            ("command".into(), Json::str(command)),
            (
                "error".into(),
                Json::str(format!("Unknown command: {command}")),
            ),
        ],
    };
    if fields.is_empty() {
        fields.push(("error".into(), Json::Null));
    }
    Json::Obj(fields).pretty()
}

/// Runs a request on the core's thread: `snapshot` and `restore` go on in
/// [`crate::backup`], the others answer their JSON.
pub fn run_request(
    core: &mut Core,
    command: &str,
    args: &[(String, String)],
    post: bool,
    creds: &Credentials,
    reply: oneshot::Sender<AdminReply>,
) {
    match primary(command) {
        Some(p @ ("snapshot" | "restore")) if post == (p == "restore") => {
            core.backup_command(command, p, args, creds, reply)
        }
        Some(p) if post || p == "restore" => {
            let method = if post { "GET" } else { "POST" };
            let _ = reply.send(crate::backup::json(
                405,
                command,
                Some(&format!("{p} is run with {method}")),
                vec![],
            ));
        }
        _ => {
            let _ = reply.send(AdminReply::Json {
                status: 200,
                body: run(command, args, core),
            });
        }
    }
}

/// What an HTTP port serves.
#[derive(Clone, Debug)]
pub enum Site {
    /// The AdminServer's commands under its `admin.commandURL`.
    Admin { url: String },
    /// Prometheus's `/metrics` (`metricsProvider.className`), with the process metrics or not.
    Metrics { process: bool },
}

/// Serves the admin commands (or the metrics) until the server stops.
pub async fn serve(listener: TcpListener, site: Site, core: mpsc::Sender<CoreMsg>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (site, core) = (site.clone(), core.clone());
        tokio::spawn(async move {
            let _ = handle(stream, &site, &core).await;
        });
    }
}

/// Largest request head read.
const MAX_HEAD: usize = 16 * 1024;

/// A request's first line and the headers it is served by.
struct Head {
    post: bool,
    target: String,
    authorization: Option<String>,
    forwarded: Option<String>,
    content_length: Option<u64>,
    chunked: bool,
    expect_continue: bool,
}

fn parse_head(text: &str) -> Head {
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut words = first.split_whitespace();
    let post = words.next().is_some_and(|m| m.eq_ignore_ascii_case("POST"));
    let target = words.next().unwrap_or("/").to_string();
    let mut head = Head {
        post,
        target,
        authorization: None,
        forwarded: None,
        content_length: None,
        chunked: false,
        expect_continue: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "authorization" => head.authorization = Some(value.to_string()),
            "x-forwarded-for" => head.forwarded = Some(value.to_string()),
            "content-length" => head.content_length = value.parse().ok(),
            "transfer-encoding" => head.chunked = value.eq_ignore_ascii_case("chunked"),
            "expect" => head.expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    head
}

async fn handle(
    mut stream: TcpStream,
    site: &Site,
    core: &mpsc::Sender<CoreMsg>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .map_err(|_| std::io::Error::other("slow request"))??;
    // What came after the head is the body's beginning.
    let body_start = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(head.len(), |at| at + 4);
    let early_body = head.split_off(body_start);
    let request = parse_head(&String::from_utf8_lossy(&head));
    let target = request.target.split('#').next().unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let args: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let url = match site {
        Site::Admin { url } => url.as_str(),
        Site::Metrics { process } => {
            let (status, kind, body) = if path == "/metrics" {
                let (tx, rx) = oneshot::channel();
                let msg = CoreMsg::Metrics {
                    process: *process,
                    reply: tx,
                };
                if core.send(msg).await.is_err() {
                    return Ok(());
                }
                let Ok(text) = rx.await else { return Ok(()) };
                (200, crate::metrics::CONTENT_TYPE, text)
            } else {
                (404, "text/plain", "Not Found\n".to_string())
            };
            return respond(&mut stream, status, kind, &[], &body).await;
        }
    };
    let base = url.trim_end_matches('/');
    let name = match path
        .strip_prefix(base)
        .and_then(|p| p.strip_prefix('/'))
        .filter(|n| !n.is_empty() && !n.contains('/'))
    {
        Some(name) => name,
        None if path == base || path == format!("{base}/") => {
            let mut links = String::new();
            for (name, _) in COMMANDS {
                let _ = write!(links, "<a href=\"{base}/{name}\">{name}</a>\n<br/>\n");
            }
            return respond(&mut stream, 200, "text/html", &[], &links).await;
        }
        None => return respond(&mut stream, 404, "text/plain", &[], "Not Found\n").await,
    };
    let (tx, rx) = oneshot::channel();
    let msg = CoreMsg::Admin {
        command: name.to_string(),
        args,
        post: request.post,
        creds: Credentials {
            authorization: request.authorization.clone(),
            peer: stream.peer_addr()?.ip(),
            forwarded: request.forwarded.clone(),
        },
        reply: tx,
    };
    if core.send(msg).await.is_err() {
        return Ok(());
    }
    let Ok(reply) = rx.await else { return Ok(()) };
    match reply {
        AdminReply::Json { status, body } => {
            respond(&mut stream, status, "application/json", &[], &body).await
        }
        AdminReply::Snapshot(taken) => send_snapshot(&mut stream, taken).await,
        AdminReply::RestoreGo => {
            if request.expect_continue {
                stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            }
            // However large, a body that takes longer than this is given up on.
            let read = read_body(&mut stream, &request, early_body);
            let snapshot = match tokio::time::timeout(std::time::Duration::from_secs(600), read)
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("the body came too slowly")))
            {
                Ok(b) => b,
                Err(e) => {
                    let AdminReply::Json { status, body } =
                        crate::backup::json(400, "restore", Some(&e.to_string()), vec![])
                    else {
                        return Ok(());
                    };
                    return respond(&mut stream, status, "application/json", &[], &body).await;
                }
            };
            let (tx, rx) = oneshot::channel();
            if core
                .send(CoreMsg::Restore {
                    snapshot,
                    reply: tx,
                })
                .await
                .is_err()
            {
                return Ok(());
            }
            match rx.await {
                Ok(AdminReply::Json { status, body }) => {
                    respond(&mut stream, status, "application/json", &[], &body).await
                }
                _ => Ok(()),
            }
        }
    }
}

/// The largest body a POST may have (a restore's snapshot file).
const MAX_BODY: usize = 4 << 30;

/// The body of a POST: `Content-Length` bytes, or chunks (`Transfer-Encoding: chunked`), at
/// most [`MAX_BODY`].
async fn read_body(
    stream: &mut TcpStream,
    head: &Head,
    early: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut data = early;
    let mut buf = vec![0u8; 64 * 1024];
    if !head.chunked {
        let Some(len) = head.content_length else {
            return Err(bad(
                "a snapshot in the body, with Content-Length or chunked",
            ));
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_BODY)
            .ok_or_else(|| bad("body too large"))?;
        // Room for what is announced, up to a point: it must still come.
        data.reserve(len.saturating_sub(data.len()).min(64 << 20));
        while data.len() < len {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(bad("the body ended early"));
            }
            data.extend_from_slice(&buf[..n]);
        }
        data.truncate(len);
        return Ok(data);
    }
    // Chunks: a hex size line, the bytes, CRLF; a size of 0 ends them.
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = loop {
            if let Some(i) = data[at..].windows(2).position(|w| w == b"\r\n") {
                break at + i;
            }
            if data.len() - at > 1024 {
                return Err(bad("a chunk's size"));
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(bad("the body ended early"));
            }
            data.extend_from_slice(&buf[..n]);
        };
        let line = String::from_utf8_lossy(&data[at..line_end]);
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("a chunk's size"))?;
        at = line_end + 2;
        if size == 0 {
            return Ok(body);
        }
        if size > MAX_BODY - body.len() {
            return Err(bad("body too large"));
        }
        while data.len() < at + size + 2 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(bad("the body ended early"));
            }
            data.extend_from_slice(&buf[..n]);
        }
        body.extend_from_slice(&data[at..at + size]);
        at += size + 2;
        // What was read is dropped now and then, not held twice.
        if at > (1 << 20) {
            data.drain(..at);
            at = 0;
        }
    }
}

/// Writes the snapshot into ZooKeeper's snapshot dir as `snapshot.<zxid>` (a file of
/// another name until whole), then answers with its zxid and size in headers and the file
/// as the body (`streaming`) or ZooKeeper's JSON.
async fn send_snapshot(
    stream: &mut TcpStream,
    taken: crate::backup::TakenSnapshot,
) -> std::io::Result<()> {
    let crate::backup::TakenSnapshot {
        zxid,
        digest,
        last_processed,
        mut pieces,
        dir,
        streaming,
    } = taken;
    let file = dir.join(format!("snapshot.{zxid:x}"));
    // Two at once (no rate limit) each write a file of their own.
    static TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = dir.join(format!(".snapshot.{zxid:x}.{n}.partial"));
    let written = {
        let (file, partial) = (file.clone(), partial.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            std::fs::create_dir_all(&dir)?;
            let out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial)?);
            let mut snap = crate::import::SnapshotFile::new(out)?;
            loop {
                match pieces.blocking_recv() {
                    Some(Some(piece)) => snap.write(&piece)?,
                    Some(None) => break,
                    None => return Err(std::io::Error::other("the store could not be read")),
                }
            }
            let (out, len) = snap.finish(zxid, digest, last_processed)?;
            // On disk before it is named and answered for: a backup said to be taken
            // survives a power loss.
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&partial, &file)?;
            std::fs::File::open(&dir)?.sync_all()?;
            Ok(len)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    };
    let size = match written {
        Ok(size) => size,
        Err(e) => {
            tracing::warn!("taking a snapshot for the snapshot command failed: {e}");
            let _ = std::fs::remove_file(&partial);
            let AdminReply::Json { status, body } =
                crate::backup::json(500, "snapshot", None, vec![])
            else {
                return Ok(());
            };
            return respond(stream, status, "application/json", &[], &body).await;
        }
    };
    tracing::info!("snapshot command: wrote {} ({size} bytes)", file.display());
    let headers = [
        ("last_zxid", format!("0x{zxid:x}")),
        ("snapshot_size", size.to_string()),
    ];
    if !streaming {
        let AdminReply::Json { status, body } = crate::backup::json(200, "snapshot", None, vec![])
        else {
            return Ok(());
        };
        return respond(stream, status, "application/json", &headers, &body).await;
    }
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\nConnection: close\r\n"
    );
    for (k, v) in &headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await?;
    // Read by a thread of its own (file reads block), a piece at a time.
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = match std::fs::File::open(&file) {
            Ok(f) => f,
            Err(e) => return drop(tx.blocking_send(Err(e))),
        };
        loop {
            let mut piece = vec![0u8; 1 << 20];
            match f.read(&mut piece) {
                Ok(0) => return,
                Ok(n) => {
                    piece.truncate(n);
                    if tx.blocking_send(Ok(piece)).is_err() {
                        return;
                    }
                }
                Err(e) => return drop(tx.blocking_send(Err(e))),
            }
        }
    });
    while let Some(piece) = rx.recv().await {
        stream.write_all(&piece?).await?;
    }
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    kind: &str,
    headers: &[(&str, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await?;
    // What the client still sends (a body not read, turned away) is read and dropped until
    // it closes, for a little while: closing with it unread would reset the connection,
    // and the client could lose the answer.
    let mut sink = [0u8; 16 * 1024];
    let drain = async {
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_jackson_does() {
        let j = Json::Obj(vec![
            ("a".into(), Json::int(1)),
            ("b".into(), Json::Arr(vec![])),
            (
                "c".into(),
                Json::Obj(vec![("d".into(), Json::from_text("0.0"))]),
            ),
            ("e".into(), Json::str("x\"y")),
            ("f".into(), Json::Null),
        ]);
        assert_eq!(
            j.pretty(),
            "{\n  \"a\" : 1,\n  \"b\" : [ ],\n  \"c\" : {\n    \"d\" : 0.0\n  },\n  \"e\" : \"x\\\"y\",\n  \"f\" : null\n}"
        );
        assert_eq!(Json::from_text("standalone"), Json::str("standalone"));
        assert_eq!(Json::from_text("-1"), Json::Num("-1".into()));
    }

    #[test]
    fn aliases_name_their_command() {
        assert_eq!(primary("mntr"), Some("monitor"));
        assert_eq!(primary("stat"), Some("stats"));
        assert_eq!(primary("srvr"), Some("server_stats"));
        assert_eq!(primary("obsr"), Some("observers"));
        assert_eq!(primary("orst"), Some("observer_connection_stat_reset"));
        assert_eq!(primary("sysp"), Some("system_properties"));
        assert_eq!(primary("lsnp"), Some("last_snapshot"));
        assert_eq!(primary("nosuch"), None);
    }
}
