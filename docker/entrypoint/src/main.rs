//! Entrypoint of the zkrs Docker image (a `FROM scratch` image: no shell).
//!
//! * `docker-entrypoint` (no arguments): what the official `zookeeper` image's
//!   docker-entrypoint.sh does, then runs zkrs:
//!   1. if `$ZOO_CONF_DIR/zoo.cfg` does not exist, generate it from the `ZOO_*` variables
//!      (a mounted zoo.cfg is used as is);
//!   2. if `$ZOO_DATA_DIR/myid` does not exist, write `$ZOO_MY_ID` (default 1) there;
//!   3. exec `/zkrs --config $ZOO_CONF_DIR/zoo.cfg`.
//! * `docker-entrypoint -x ...` (first argument starts with `-`): the same, with the arguments
//!   appended to zkrs' command line (`docker run zkrs --port 2182`).
//! * `docker-entrypoint zkServer.sh [start-foreground]`: the official image's CMD; the same as
//!   no arguments, so compose files that spell the command out keep working.
//! * `docker-entrypoint healthcheck`: sends `ruok` to the client port found in zoo.cfg
//!   (clientPort, else this server's `server.N=...;port`, else 2181) on 127.0.0.1 (or on
//!   clientPortAddress) and exits 0 iff the answer is `imok` (the image's HEALTHCHECK).
//! * `docker-entrypoint PROGRAM ARGS...`: steps 1 and 2, then exec PROGRAM (the official
//!   entrypoint's `exec "$@"`).

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

/// The official image's defaults (its Dockerfile's ENV), used when a variable is unset or empty.
const DEFAULTS: &[(&str, &str)] = &[
    ("ZOO_CONF_DIR", "/conf"),
    ("ZOO_DATA_DIR", "/data"),
    ("ZOO_DATA_LOG_DIR", "/datalog"),
    ("ZOO_TICK_TIME", "2000"),
    ("ZOO_INIT_LIMIT", "5"),
    ("ZOO_SYNC_LIMIT", "2"),
    ("ZOO_AUTOPURGE_PURGEINTERVAL", "0"),
    ("ZOO_AUTOPURGE_SNAPRETAINCOUNT", "3"),
    ("ZOO_MAX_CLIENT_CNXNS", "60"),
    ("ZOO_STANDALONE_ENABLED", "true"),
    ("ZOO_ADMINSERVER_ENABLED", "true"),
    ("ZOO_SERVERS", "server.1=localhost:2888:3888;2181"),
];

const ZKRS: &str = "/zkrs";

fn var(name: &str) -> String {
    match env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => DEFAULTS
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default(),
    }
}

fn conf_file() -> PathBuf {
    Path::new(&var("ZOO_CONF_DIR")).join("zoo.cfg")
}

/// zoo.cfg as the official docker-entrypoint.sh writes it.
fn generate_config() -> String {
    let mut lines = vec![
        format!("dataDir={}", var("ZOO_DATA_DIR")),
        format!("dataLogDir={}", var("ZOO_DATA_LOG_DIR")),
        format!("tickTime={}", var("ZOO_TICK_TIME")),
        format!("initLimit={}", var("ZOO_INIT_LIMIT")),
        format!("syncLimit={}", var("ZOO_SYNC_LIMIT")),
        format!(
            "autopurge.snapRetainCount={}",
            var("ZOO_AUTOPURGE_SNAPRETAINCOUNT")
        ),
        format!(
            "autopurge.purgeInterval={}",
            var("ZOO_AUTOPURGE_PURGEINTERVAL")
        ),
        format!("maxClientCnxns={}", var("ZOO_MAX_CLIENT_CNXNS")),
        format!("standaloneEnabled={}", var("ZOO_STANDALONE_ENABLED")),
        format!("admin.enableServer={}", var("ZOO_ADMINSERVER_ENABLED")),
    ];
    // `for server in $ZOO_SERVERS; do echo "$server"; done`: split on whitespace.
    lines.extend(var("ZOO_SERVERS").split_whitespace().map(str::to_string));
    let whitelist = var("ZOO_4LW_COMMANDS_WHITELIST");
    if !whitelist.is_empty() {
        lines.push(format!("4lw.commands.whitelist={whitelist}"));
    }
    lines.extend(var("ZOO_CFG_EXTRA").split_whitespace().map(str::to_string));
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn write_new(path: &Path, contents: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    // Written aside then renamed: a container killed mid-write never leaves a partial file
    // that the next start would take for a mounted one.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents)?;
    fs::rename(&tmp, path)
}

/// Steps 1 and 2: zoo.cfg and myid, each only when absent.
fn prepare() -> Result<PathBuf, String> {
    let conf = conf_file();
    if conf.exists() {
        println!("docker-entrypoint: using {}", conf.display());
    } else {
        write_new(&conf, &generate_config()).map_err(|e| {
            format!(
                "cannot write {}: {e} (mount a zoo.cfg there, or make the directory writable by uid {})",
                conf.display(),
                uid()
            )
        })?;
        println!("docker-entrypoint: generated {}", conf.display());
    }
    let myid = Path::new(&var("ZOO_DATA_DIR")).join("myid");
    if !myid.exists() {
        let id = env::var("ZOO_MY_ID")
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "1".into());
        write_new(&myid, &format!("{id}\n")).map_err(|e| {
            format!(
                "cannot write {}: {e} (the data volume must be writable by uid {})",
                myid.display(),
                uid()
            )
        })?;
    }
    Ok(conf)
}

fn uid() -> String {
    // No libc call needed: /proc/self/status has "Uid:\treal\teffective...".
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

/// key=value pairs of a zoo.cfg (the `zookeeper.` prefix removed, as zkrs does).
fn parse_cfg(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let k = k.trim();
            (
                k.strip_prefix("zookeeper.").unwrap_or(k).to_string(),
                v.trim().to_string(),
            )
        })
        .collect()
}

/// Where the healthcheck sends `ruok`.
fn client_address(cfg: &[(String, String)], myid: Option<u32>) -> SocketAddr {
    let get = |key: &str| {
        cfg.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let usable = |ip: IpAddr| if ip.is_unspecified() { loopback } else { ip };
    let mut ip = get("clientPortAddress")
        .and_then(|a| a.parse().ok())
        .map(usable)
        .unwrap_or(loopback);
    let mut port = get("clientPort").and_then(|p| p.parse().ok());
    if port.is_none() {
        // server.N=host:2888:3888[:role];[address:]clientPort
        let key = format!("server.{}", myid.unwrap_or(1));
        if let Some((_, client)) = get(&key).and_then(|v| v.split_once(';')) {
            match client.rsplit_once(':') {
                Some((addr, p)) => {
                    port = p.trim().parse().ok();
                    if let Ok(a) = addr.trim_matches(|c| c == '[' || c == ']').parse() {
                        ip = usable(a);
                    }
                }
                None => port = client.trim().parse().ok(),
            }
        }
    }
    SocketAddr::new(ip, port.unwrap_or(2181))
}

fn healthcheck() -> ExitCode {
    let text = fs::read_to_string(conf_file()).unwrap_or_default();
    let cfg = parse_cfg(&text);
    let data_dir = cfg
        .iter()
        .rev()
        .find(|(k, _)| k == "dataDir")
        .map(|(_, v)| PathBuf::from(v))
        .unwrap_or_else(|| PathBuf::from(var("ZOO_DATA_DIR")));
    let myid = fs::read_to_string(data_dir.join("myid"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let addr = client_address(&cfg, myid);
    match ruok(addr) {
        Ok(answer) if answer == "imok" => {
            println!("{addr}: imok");
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            println!("{addr}: answered {answer:?} to ruok");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("{addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ruok(addr: SocketAddr) -> io::Result<String> {
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"ruok")?;
    let mut answer = Vec::new();
    s.take(64).read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn main() -> ExitCode {
    let args: Vec<OsString> = env::args_os().skip(1).collect();
    let first = args.first().and_then(|a| a.to_str()).unwrap_or("");
    if first == "healthcheck" {
        return healthcheck();
    }
    let conf = match prepare() {
        Ok(conf) => conf,
        Err(e) => {
            eprintln!("docker-entrypoint: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cmd = if args.is_empty() || first.starts_with('-') || first == "zkServer.sh" {
        let mut cmd = Command::new(ZKRS);
        cmd.arg("--config").arg(&conf);
        if first != "zkServer.sh" {
            cmd.args(&args);
        }
        cmd
    } else {
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..]);
        cmd
    };
    let err = cmd.exec();
    eprintln!(
        "docker-entrypoint: cannot run {:?}: {err}",
        cmd.get_program()
    );
    ExitCode::from(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Vec<(String, String)> {
        parse_cfg(text)
    }

    #[test]
    fn healthcheck_address() {
        let a = |t: &str, id| client_address(&cfg(t), id).to_string();
        assert_eq!(a("", None), "127.0.0.1:2181");
        assert_eq!(a("clientPort=2999\n", None), "127.0.0.1:2999");
        assert_eq!(
            a("clientPort=2999\nclientPortAddress=0.0.0.0\n", None),
            "127.0.0.1:2999"
        );
        assert_eq!(
            a("zookeeper.clientPort=1\nclientPortAddress=10.0.0.5", None),
            "10.0.0.5:1"
        );
        let servers = "server.1=zk1:2888:3888;2181\nserver.2=zk2:2888:3888;0.0.0.0:2182\n\
                       server.3=zk3:2888:3888:participant;[::1]:2183\n";
        assert_eq!(a(servers, Some(1)), "127.0.0.1:2181");
        assert_eq!(a(servers, Some(2)), "127.0.0.1:2182");
        assert_eq!(a(servers, Some(3)), "[::1]:2183");
        assert_eq!(a("server.1=zk1:2888:3888\n", Some(1)), "127.0.0.1:2181");
    }

    #[test]
    fn generated_config_follows_the_official_entrypoint() {
        // Single test touching the environment (tests run in parallel threads).
        env::set_var(
            "ZOO_SERVERS",
            "server.1=zk1:2888:3888;2181  server.2=zk2:2888:3888;2181",
        );
        env::set_var("ZOO_CFG_EXTRA", "metricsProvider.httpPort=7000 foo=bar");
        env::set_var("ZOO_4LW_COMMANDS_WHITELIST", "ruok,srvr");
        env::set_var("ZOO_TICK_TIME", "");
        env::set_var("ZOO_INIT_LIMIT", "10");
        assert_eq!(
            generate_config(),
            "dataDir=/data\ndataLogDir=/datalog\ntickTime=2000\ninitLimit=10\nsyncLimit=2\n\
             autopurge.snapRetainCount=3\nautopurge.purgeInterval=0\nmaxClientCnxns=60\n\
             standaloneEnabled=true\nadmin.enableServer=true\n\
             server.1=zk1:2888:3888;2181\nserver.2=zk2:2888:3888;2181\n\
             4lw.commands.whitelist=ruok,srvr\nmetricsProvider.httpPort=7000\nfoo=bar\n"
        );
        env::remove_var("ZOO_SERVERS");
        env::remove_var("ZOO_CFG_EXTRA");
        env::remove_var("ZOO_4LW_COMMANDS_WHITELIST");
        assert!(generate_config().contains("\nserver.1=localhost:2888:3888;2181\n"));
        assert!(!generate_config().contains("4lw"));
    }
}
