//! The AdminServer: ZooKeeper's HTTP admin commands. `GET <commandURL>/<name>` answers the
//! command's JSON (the names and aliases of ZooKeeper's `Commands`, its field names, Jackson's
//! pretty layout); `<commandURL>` itself lists the commands as links. An unknown name answers
//! `"error" : "Unknown command: <name>"`, with status 200, as ZooKeeper's does.

use crate::admin;
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
    ("ruok", &[]),
    ("server_stats", &["srvr"]),
    ("set_trace_mask", &["stmk"]),
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
    let text = String::from_utf8_lossy(&head);
    let target = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("/");
    let target = target.split('#').next().unwrap_or("/");
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
                ("200 OK", crate::metrics::CONTENT_TYPE, text)
            } else {
                ("404 Not Found", "text/plain", "Not Found\n".to_string())
            };
            return respond(&mut stream, status, kind, &body).await;
        }
    };
    let base = url.trim_end_matches('/');
    let (status, kind, body) = if path == base || path == format!("{base}/") {
        let mut links = String::new();
        for (name, _) in COMMANDS {
            let _ = write!(links, "<a href=\"{base}/{name}\">{name}</a>\n<br/>\n");
        }
        ("200 OK", "text/html", links)
    } else if let Some(name) = path
        .strip_prefix(base)
        .and_then(|p| p.strip_prefix('/'))
        .filter(|n| !n.is_empty() && !n.contains('/'))
    {
        let (tx, rx) = oneshot::channel();
        let msg = CoreMsg::Admin {
            command: name.to_string(),
            args,
            reply: tx,
        };
        if core.send(msg).await.is_err() {
            return Ok(());
        }
        let Ok(json) = rx.await else { return Ok(()) };
        ("200 OK", "application/json", json)
    } else {
        ("404 Not Found", "text/plain", "Not Found\n".to_string())
    };
    respond(&mut stream, status, kind, &body).await
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &str,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.push_str(body);
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
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
