//! `zkrs-bench`: a lean ZooKeeper load tool, and the floors to compare a server with.
//!
//! It drives any ZooKeeper server at `--addr` with S sessions × O outstanding requests each
//! (pipelined on one connection per session, one current-thread runtime), up to `--count`
//! requests or `--duration` seconds, and prints one `RESULT key=value ...` line: ops/s and
//! p50/p99/p99.9 latency, and with `--server-pid` the server's CPU µs per op (utime+stime from
//! /proc around the measured phase only). `--record FILE --server NAME --label L` also appends
//! table rows to FILE; `zkrs-bench table FILE` prints them side by side (bench/run.sh does all
//! of this).

mod client;
mod stats;

use clap::{Args, Parser, Subcommand};
use client::{drive, Driven, Frames, Rng, Session, Work, ERR_NODE_EXISTS};
use jute::Request;
use stats::{cpu_us, summarize, Report};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
#[command(about = "ZooKeeper load tool: zkrs vs Apache ZooKeeper (see bench/run.sh)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Server address (only 127.0.0.1 is used by bench/run.sh).
    #[arg(long, default_value = "127.0.0.1:2181")]
    addr: SocketAddr,
    /// The server's pid: its CPU time is read around the measured phase.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Append table rows (label, metric, server, value) to this file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Server name for the record file (apache, zkrs, floor).
    #[arg(long, default_value = "server")]
    server: String,
    /// Workload label for the record file.
    #[arg(long, default_value = "")]
    label: String,
    /// Root znode under which the tool works.
    #[arg(long, default_value = "/zkrs-bench")]
    root: String,
    /// Session timeout asked for, ms.
    #[arg(long, default_value_t = 30000)]
    session_timeout: i32,
}

#[derive(Args, Clone)]
struct Load {
    #[command(flatten)]
    c: Common,
    /// Sessions (one TCP connection each).
    #[arg(long, short = 's', default_value_t = 1)]
    sessions: usize,
    /// Requests in flight per session.
    #[arg(long, short = 'o', default_value_t = 1)]
    outstanding: usize,
    /// Requests in all (the run also stops at --duration).
    #[arg(long, short = 'n', default_value_t = 10_000)]
    count: u64,
    /// Time bound in seconds: no request is sent after it.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    duration: f64,
    /// Bytes of data per znode written.
    #[arg(long, default_value_t = 100)]
    data_size: usize,
    /// Node list: `create` writes the paths it created here, `set`/`delete` read it.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Name of the sub-tree this run creates its nodes in (create).
    #[arg(long, default_value = "c")]
    tag: String,
    /// getData/getChildren/mixed tree: directories × leaves (100 × 100 = 10k znodes).
    #[arg(long, default_value_t = 100)]
    tree_dirs: usize,
    #[arg(long, default_value_t = 100)]
    tree_leaves: usize,
    /// mixed: percent of writes (setData).
    #[arg(long, default_value_t = 10)]
    write_pct: usize,
    /// echo: bytes per request frame.
    #[arg(long, default_value_t = 64)]
    echo_size: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// create: new znodes `<root>/<tag>/s<session>-<n>` with --data-size bytes.
    Create(Load),
    /// setData on the nodes of --manifest (or on 1,000 nodes it creates), random order.
    Set(Load),
    /// delete the nodes of --manifest.
    Delete(Load),
    /// getData of random leaves of a 10k-znode tree (created once, untimed).
    Get(Load),
    /// getChildren of random directories of the tree (100 children each).
    Children(Load),
    /// --write-pct % setData, the rest getData, over the tree's leaves.
    Mixed(Load),
    /// bulk create of --count znodes `<root>/bulk/b<k>/n<j>` (1,000 per directory).
    Bulk(Load),
    /// Watch fan-out: W sessions watch one znode, one setData; time until every event arrived.
    Watch {
        #[command(flatten)]
        c: Common,
        #[arg(long, default_value_t = 1000)]
        watchers: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Session storm: open and close --count sessions, --concurrency at a time.
    Storm {
        #[command(flatten)]
        c: Common,
        #[arg(long, short = 'n', default_value_t = 2000)]
        count: u64,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Hold --count idle sessions open (pinging) for --hold seconds; prints READY when all
    /// are open, so a script can sample the server's memory meanwhile.
    Idle {
        #[command(flatten)]
        c: Common,
        #[arg(long, short = 'n', default_value_t = 10_000)]
        count: usize,
        #[arg(long, default_value_t = 20.0)]
        hold: f64,
    },
    /// Floor: a bare TCP echo server (run it pinned where the ZooKeeper server would be).
    EchoServer {
        #[arg(long, default_value = "127.0.0.1:2999")]
        listen: SocketAddr,
    },
    /// Floor: the load grid against the echo server (frames of --echo-size bytes).
    Echo(Load),
    /// Floor: write + fdatasync of --block bytes, --count times, in --dir.
    Fsync {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, short = 'n', default_value_t = 2000)]
        count: u64,
        #[arg(long, default_value_t = 512)]
        block: usize,
        #[arg(long, short = 'd', default_value_t = 10.0)]
        duration: f64,
        /// Overwrite a file written (and synced) beforehand, as ZooKeeper's preallocated logs
        /// are, instead of appending (each append's fdatasync also commits the new size).
        #[arg(long)]
        prealloc: bool,
        /// Trials: the one with the lowest p50 is reported (the disk is shared).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        #[arg(long)]
        record: Option<PathBuf>,
        #[arg(long, default_value = "fsync floor")]
        label: String,
    },
    /// Restart probe: retries until a new session gets an answer to exists("/"); prints the
    /// time since --since-ns (ns since the epoch, taken just before the server was started).
    Probe {
        #[command(flatten)]
        c: Common,
        #[arg(long)]
        since_ns: u128,
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
    },
    /// Prints the markdown table of a record file.
    Table { file: PathBuf },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Cmd::Table { file } = &cli.cmd {
        return match std::fs::read_to_string(file) {
            Ok(text) => {
                print!("{}", stats::table(&text));
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("zkrs-bench: {}: {e}", file.display());
                std::process::ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zkrs-bench: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.cmd)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zkrs-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cmd: Cmd) -> io::Result<()> {
    match cmd {
        Cmd::Create(l) => create(l).await,
        Cmd::Set(l) => set(l).await,
        Cmd::Delete(l) => delete(l).await,
        Cmd::Get(l) => tree_reads(l, TreeOp::Get).await,
        Cmd::Children(l) => tree_reads(l, TreeOp::Children).await,
        Cmd::Mixed(l) => tree_reads(l, TreeOp::Mixed).await,
        Cmd::Bulk(l) => bulk(l).await,
        Cmd::Watch {
            c,
            watchers,
            rounds,
        } => watch(c, watchers, rounds).await,
        Cmd::Storm {
            c,
            count,
            concurrency,
        } => storm(c, count, concurrency).await,
        Cmd::Idle { c, count, hold } => idle(c, count, hold).await,
        Cmd::EchoServer { listen } => echo_server(listen).await,
        Cmd::Echo(l) => echo(l).await,
        Cmd::Fsync {
            dir,
            count,
            block,
            duration,
            prealloc,
            repeat,
            record,
            label,
        } => {
            let mut best: Option<(Vec<u64>, Duration)> = None;
            for _ in 0..repeat.max(1) {
                let (mut lat, el) = fsync(&dir, count, block, duration, prealloc)?;
                let p50 = summarize(&mut lat).p50;
                if best.as_mut().is_none_or(|(b, _)| summarize(b).p50 > p50) {
                    best = Some((lat, el));
                }
            }
            let (mut lat, elapsed) = best.unwrap_or_default();
            let ops = lat.len() as u64;
            let s = summarize(&mut lat);
            let mut rep = Report::new(&label, "fsync");
            rep.kv("block", block);
            rep.kv("prealloc", prealloc);
            rep.kv("repeat", repeat);
            rep.load(ops, 0, elapsed, &s, None, "fsyncs");
            rep.finish(record.as_deref(), "floor")
        }
        Cmd::Probe {
            c,
            since_ns,
            timeout,
        } => probe(c, since_ns, timeout).await,
        Cmd::Table { .. } => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Work sources.

fn data(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

/// create `<prefix>/s<session>-<seq>`; remembers which succeeded.
struct CreateWork {
    prefix: String,
    sess: usize,
    data: Vec<u8>,
    ok: Vec<u64>,
}

impl CreateWork {
    fn path(&self, seq: u64) -> String {
        format!("{}/s{}-{}", self.prefix, self.sess, seq)
    }
}

impl Work for CreateWork {
    fn encode(&mut self, seq: u64, xid: i32, out: &mut Vec<u8>) -> bool {
        client::create(self.path(seq), &self.data).encode_frame(xid, out);
        true
    }
    fn done(&mut self, seq: u64, err: i32) {
        if err == 0 {
            self.ok.push(seq);
        }
    }
}

/// create each path of a list (setup); NODEEXISTS is fine.
struct CreateList {
    paths: Vec<String>,
    data: Vec<u8>,
    failed: u64,
}

impl Work for CreateList {
    fn encode(&mut self, seq: u64, xid: i32, out: &mut Vec<u8>) -> bool {
        match self.paths.get(seq as usize) {
            Some(p) => {
                client::create(p.clone(), &self.data).encode_frame(xid, out);
                true
            }
            None => false,
        }
    }
    fn done(&mut self, _seq: u64, err: i32) {
        if err != 0 && err != ERR_NODE_EXISTS {
            self.failed += 1;
        }
    }
}

/// bulk create: global index `start + seq` → `<root>/bulk/b<i/1000>/n<i%1000>`.
struct BulkWork {
    root: String,
    start: u64,
    data: Vec<u8>,
}

impl Work for BulkWork {
    fn encode(&mut self, seq: u64, xid: i32, out: &mut Vec<u8>) -> bool {
        let i = self.start + seq;
        let p = format!("{}/bulk/b{}/n{}", self.root, i / 1000, i % 1000);
        client::create(p, &self.data).encode_frame(xid, out);
        true
    }
}

/// setData on random paths of a shared list.
struct SetWork {
    paths: Arc<Vec<String>>,
    rng: Rng,
    data: Vec<u8>,
}

impl Work for SetWork {
    fn encode(&mut self, _seq: u64, xid: i32, out: &mut Vec<u8>) -> bool {
        let p = self.paths[self.rng.below(self.paths.len())].clone();
        client::set_data(p, &self.data).encode_frame(xid, out);
        true
    }
}

/// delete each path of a list, in order.
struct DeleteWork {
    paths: Vec<String>,
}

impl Work for DeleteWork {
    fn encode(&mut self, seq: u64, xid: i32, out: &mut Vec<u8>) -> bool {
        match self.paths.get_mut(seq as usize) {
            Some(p) => {
                client::delete(std::mem::take(p)).encode_frame(xid, out);
                true
            }
            None => false,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum TreeOp {
    Get,
    Children,
    Mixed,
}

struct TreeWork {
    op: TreeOp,
    leaves: Arc<Vec<String>>,
    dirs: Arc<Vec<String>>,
    rng: Rng,
    write_pct: usize,
    data: Vec<u8>,
}

impl Work for TreeWork {
    fn encode(&mut self, _seq: u64, xid: i32, out: &mut Vec<u8>) -> bool {
        let req = match self.op {
            TreeOp::Get => client::get_data(
                self.leaves[self.rng.below(self.leaves.len())].clone(),
                false,
            ),
            TreeOp::Children => {
                client::get_children(self.dirs[self.rng.below(self.dirs.len())].clone())
            }
            TreeOp::Mixed => {
                let p = self.leaves[self.rng.below(self.leaves.len())].clone();
                if self.rng.below(100) < self.write_pct {
                    client::set_data(p, &self.data)
                } else {
                    client::get_data(p, false)
                }
            }
        };
        req.encode_frame(xid, out);
        true
    }
}

/// echo floor: a frame of `size` bytes whose payload starts with the xid.
struct EchoWork {
    size: usize,
}

impl Work for EchoWork {
    fn encode(&mut self, _seq: u64, xid: i32, out: &mut Vec<u8>) -> bool {
        let len = self.size.max(8) as i32 - 4;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&xid.to_be_bytes());
        out.resize(out.len() + len as usize - 4, 0x5a);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Running a load.

/// Opens `n` sessions, `concurrency` handshakes at a time.
async fn open_many(
    addr: SocketAddr,
    n: usize,
    concurrency: usize,
    timeout_ms: i32,
    echo: bool,
) -> io::Result<Vec<Session>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..concurrency.min(n).max(1) {
        let next = next.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while (next.fetch_add(1, Ordering::Relaxed) as usize) < n {
                let s = if echo {
                    let stream = TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    Session {
                        stream,
                        id: 0,
                        timeout_ms,
                        frames: Frames::default(),
                        xid: 0,
                    }
                } else {
                    Session::open_retry(addr, timeout_ms).await?
                };
                mine.push(s);
            }
            Ok::<_, io::Error>(mine)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for h in handles {
        all.extend(h.await.map_err(io::Error::other)??);
    }
    Ok(all)
}

async fn close_all(sessions: Vec<Session>) {
    let mut set = tokio::task::JoinSet::new();
    let mut it = sessions.into_iter();
    loop {
        while set.len() < 256 {
            match it.next() {
                Some(s) => {
                    set.spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_secs(10), s.close()).await;
                    });
                }
                None => break,
            }
        }
        if set.join_next().await.is_none() {
            break;
        }
    }
}

struct LoadResult<W> {
    works: Vec<W>,
    ops: u64,
    errors: u64,
    elapsed: Duration,
    cpu: Option<u64>,
    lat: Vec<u64>,
}

/// S sessions × O outstanding, `count` requests split evenly, bounded by `duration`.
async fn run_load<W: Work>(
    l: &Load,
    echo: bool,
    mut make: impl FnMut(usize) -> W,
) -> io::Result<LoadResult<W>> {
    let sessions = open_many(l.c.addr, l.sessions, 64, l.c.session_timeout, echo).await?;
    let s_n = sessions.len() as u64;
    let cpu0 = cpu_us(l.c.server_pid);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(l.duration);
    let mut handles = Vec::new();
    for (i, mut s) in sessions.into_iter().enumerate() {
        let quota = l.count / s_n + u64::from((i as u64) < l.count % s_n);
        let mut work = make(i);
        let outstanding = l.outstanding;
        handles.push(tokio::spawn(async move {
            let d = drive(
                &mut s.stream,
                &mut s.frames,
                &mut work,
                outstanding,
                quota,
                deadline,
                echo,
            )
            .await;
            (s, work, d)
        }));
    }
    let mut res = LoadResult {
        works: Vec::new(),
        ops: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        cpu: None,
        lat: Vec::new(),
    };
    let mut sessions = Vec::new();
    for h in handles {
        let (s, w, d): (Session, W, Driven) = h.await.map_err(io::Error::other)?;
        res.ops += d.ops;
        res.errors += d.errors;
        if let Some(e) = &d.first_error {
            eprintln!("zkrs-bench: session {:#x}: {e}", s.id);
        }
        res.lat.extend_from_slice(&d.lat_ns);
        res.works.push(w);
        sessions.push(s);
    }
    res.elapsed = start.elapsed();
    res.cpu = match (cpu0, cpu_us(l.c.server_pid)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    if !echo {
        close_all(sessions).await;
    }
    Ok(res)
}

fn report_load<W>(l: &Load, mode: &str, r: &mut LoadResult<W>) -> io::Result<()> {
    let s = summarize(&mut r.lat);
    let mut rep = Report::new(&l.c.label, mode);
    rep.kv("sessions", l.sessions);
    rep.kv("outstanding", l.outstanding);
    rep.load(r.ops, r.errors, r.elapsed, &s, r.cpu, "ops");
    rep.finish(l.c.record.as_deref(), &l.c.server)
}

/// One session for setup calls.
async fn setup_session(c: &Common) -> io::Result<Session> {
    Session::open_retry(c.addr, c.session_timeout).await
}

/// create, NODEEXISTS being fine.
async fn ensure(s: &mut Session, path: &str) -> io::Result<()> {
    let (h, _) = s.call(&client::create(path.to_string(), b"")).await?;
    if h.err != 0 && h.err != ERR_NODE_EXISTS {
        return Err(io::Error::other(format!("create {path}: err {}", h.err)));
    }
    Ok(())
}

/// Creates `paths` (parents first: callers pass one level at a time) over 8 sessions × 64.
async fn create_all(c: &Common, paths: Vec<String>, data_len: usize) -> io::Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let n = paths.len() as u64;
    let sessions = 8usize.min(paths.len());
    let mut chunks: Vec<Vec<String>> = vec![Vec::new(); sessions];
    for (i, p) in paths.into_iter().enumerate() {
        chunks[i % sessions].push(p);
    }
    let l = Load {
        c: Common {
            server_pid: None,
            ..c.clone()
        },
        sessions,
        outstanding: 64,
        count: n,
        duration: 3600.0,
        data_size: data_len,
        manifest: None,
        tag: String::new(),
        tree_dirs: 0,
        tree_leaves: 0,
        write_pct: 0,
        echo_size: 0,
    };
    let d = data(data_len);
    let r = run_load(&l, false, |i| CreateList {
        paths: std::mem::take(&mut chunks[i]),
        data: d.clone(),
        failed: 0,
    })
    .await?;
    let failed: u64 = r.works.iter().map(|w| w.failed).sum();
    if failed > 0 || r.ops < n {
        return Err(io::Error::other(format!(
            "setup: {failed} creates failed, {} of {n} answered",
            r.ops
        )));
    }
    Ok(())
}

async fn create(l: Load) -> io::Result<()> {
    let prefix = format!("{}/{}", l.c.root, l.tag);
    {
        let mut s = setup_session(&l.c).await?;
        ensure(&mut s, &l.c.root).await?;
        ensure(&mut s, &prefix).await?;
        s.close().await?;
    }
    let d = data(l.data_size);
    let mut r = run_load(&l, false, |i| CreateWork {
        prefix: prefix.clone(),
        sess: i,
        data: d.clone(),
        ok: Vec::new(),
    })
    .await?;
    if let Some(m) = &l.manifest {
        let mut f = io::BufWriter::new(std::fs::File::create(m)?);
        for w in &r.works {
            for &seq in &w.ok {
                writeln!(f, "{}", w.path(seq))?;
            }
        }
        f.flush()?;
    }
    report_load(&l, "create", &mut r)
}

fn read_manifest(l: &Load) -> io::Result<Vec<String>> {
    match &l.manifest {
        Some(m) => Ok(std::fs::read_to_string(m)?
            .lines()
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        None => Ok(Vec::new()),
    }
}

async fn set(l: Load) -> io::Result<()> {
    let mut paths = read_manifest(&l)?;
    if paths.is_empty() {
        let prefix = format!("{}/set", l.c.root);
        let mut s = setup_session(&l.c).await?;
        ensure(&mut s, &l.c.root).await?;
        ensure(&mut s, &prefix).await?;
        s.close().await?;
        paths = (0..1000).map(|i| format!("{prefix}/n{i}")).collect();
        create_all(&l.c, paths.clone(), l.data_size).await?;
    }
    let paths = Arc::new(paths);
    let d = data(l.data_size);
    let mut r = run_load(&l, false, |i| SetWork {
        paths: paths.clone(),
        rng: Rng::new(i as u64 + 1),
        data: d.clone(),
    })
    .await?;
    report_load(&l, "set", &mut r)
}

async fn delete(mut l: Load) -> io::Result<()> {
    let paths = read_manifest(&l)?;
    if paths.is_empty() {
        return Err(io::Error::other(
            "delete needs a --manifest written by create",
        ));
    }
    l.count = l.count.min(paths.len() as u64);
    let s_n = l.sessions.max(1);
    let mut chunks: Vec<Vec<String>> = vec![Vec::new(); s_n];
    for (i, p) in paths.into_iter().enumerate() {
        chunks[i % s_n].push(p);
    }
    let mut r = run_load(&l, false, |i| DeleteWork {
        paths: std::mem::take(&mut chunks[i]),
    })
    .await?;
    report_load(&l, "delete", &mut r)
}

/// The read tree: `<root>/tree/d<i>/n<j>`, created once (untimed) with --data-size bytes.
async fn ensure_tree(l: &Load) -> io::Result<(Vec<String>, Vec<String>)> {
    let base = format!("{}/tree", l.c.root);
    let dirs: Vec<String> = (0..l.tree_dirs).map(|i| format!("{base}/d{i}")).collect();
    let leaves: Vec<String> = dirs
        .iter()
        .flat_map(|d| (0..l.tree_leaves).map(move |j| format!("{d}/n{j}")))
        .collect();
    let mut s = setup_session(&l.c).await?;
    let last = leaves.last().cloned().unwrap_or_else(|| base.clone());
    let (h, _) = s.call(&client::exists(last)).await?;
    if h.err != 0 {
        ensure(&mut s, &l.c.root).await?;
        ensure(&mut s, &base).await?;
        create_all(&l.c, dirs.clone(), 0).await?;
        create_all(&l.c, leaves.clone(), l.data_size).await?;
    }
    s.close().await?;
    Ok((dirs, leaves))
}

async fn tree_reads(l: Load, op: TreeOp) -> io::Result<()> {
    let (dirs, leaves) = ensure_tree(&l).await?;
    let (dirs, leaves) = (Arc::new(dirs), Arc::new(leaves));
    let d = data(l.data_size);
    let mut r = run_load(&l, false, |i| TreeWork {
        op,
        leaves: leaves.clone(),
        dirs: dirs.clone(),
        rng: Rng::new(0x5eed + i as u64),
        write_pct: l.write_pct,
        data: d.clone(),
    })
    .await?;
    let mode = match op {
        TreeOp::Get => "get",
        TreeOp::Children => "children",
        TreeOp::Mixed => "mixed",
    };
    report_load(&l, mode, &mut r)
}

async fn bulk(l: Load) -> io::Result<()> {
    let base = format!("{}/bulk", l.c.root);
    {
        let mut s = setup_session(&l.c).await?;
        ensure(&mut s, &l.c.root).await?;
        ensure(&mut s, &base).await?;
        s.close().await?;
    }
    let dirs = l.count.div_ceil(1000);
    create_all(&l.c, (0..dirs).map(|k| format!("{base}/b{k}")).collect(), 0).await?;
    // Contiguous ranges per session, cut at directory boundaries where possible.
    let s_n = l.sessions.max(1) as u64;
    let d = data(l.data_size);
    let count = l.count;
    let mut r = run_load(&l, false, |i| {
        let i = i as u64;
        let start = count / s_n * i + i.min(count % s_n);
        BulkWork {
            root: l.c.root.clone(),
            start,
            data: d.clone(),
        }
    })
    .await?;
    let s = summarize(&mut r.lat);
    let mut rep = Report::new(&l.c.label, "bulk");
    rep.kv("sessions", l.sessions);
    rep.kv("outstanding", l.outstanding);
    rep.load(r.ops, r.errors, r.elapsed, &s, r.cpu, "creates");
    rep.finish(l.c.record.as_deref(), &l.c.server)
}

// ---------------------------------------------------------------------------------------------
// Watch fan-out, session storm, idle sessions.

async fn watch(c: Common, watchers: usize, rounds: usize) -> io::Result<()> {
    let path = format!("{}/watched", c.root);
    let mut ctl = setup_session(&c).await?;
    ensure(&mut ctl, &c.root).await?;
    ensure(&mut ctl, &path).await?;
    let mut sessions = open_many(c.addr, watchers, 64, c.session_timeout, false).await?;
    let d = data(100);
    let mut all_lat = Vec::new();
    let mut fan = Vec::new();
    let mut reply_ns = Vec::new();
    let mut cpu = 0u64;
    let mut total = Duration::ZERO;
    for _ in 0..rounds.max(1) {
        let (reg_tx, mut reg_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut handles = Vec::new();
        for mut s in sessions.drain(..) {
            let reg_tx = reg_tx.clone();
            let path = path.clone();
            handles.push(tokio::spawn(async move {
                let (h, _) = s.call(&client::get_data(path, true)).await?;
                if h.err != 0 {
                    return Err(io::Error::other(format!("getData watch: err {}", h.err)));
                }
                let _ = reg_tx.send(());
                loop {
                    let p = s.frames.read_one(&mut s.stream).await?;
                    if p.len() >= 4 && i32::from_be_bytes([p[0], p[1], p[2], p[3]]) == -1 {
                        return Ok((s, Instant::now()));
                    }
                }
            }));
        }
        drop(reg_tx);
        let mut registered = 0;
        while registered < watchers && reg_rx.recv().await.is_some() {
            registered += 1;
        }
        let cpu0 = cpu_us(c.server_pid);
        let t0 = Instant::now();
        let (h, _) = ctl.call(&client::set_data(path.clone(), &d)).await?;
        if h.err != 0 {
            return Err(io::Error::other(format!("setData: err {}", h.err)));
        }
        reply_ns.push(t0.elapsed().as_nanos() as u64);
        let mut last = t0;
        for h in handles {
            let (s, at) = h.await.map_err(io::Error::other)??;
            all_lat.push(at.duration_since(t0).as_nanos() as u64);
            last = last.max(at);
            sessions.push(s);
        }
        total += last.duration_since(t0);
        fan.push(last.duration_since(t0).as_nanos() as u64);
        if let (Some(a), Some(b)) = (cpu0, cpu_us(c.server_pid)) {
            cpu += b.saturating_sub(a);
        }
    }
    close_all(sessions).await;
    let _ = ctl.close().await;
    let events = all_lat.len();
    let s = summarize(&mut all_lat);
    let f = summarize(&mut fan);
    let r = summarize(&mut reply_ns);
    let mut rep = Report::new(&c.label, "watch");
    rep.kv("watchers", watchers);
    rep.kv("rounds", rounds);
    rep.metric(
        "all events arrived ms (median round) ↓",
        "fanout_ms",
        stats::ms(f.p50),
    );
    rep.kv("fanout_max_ms", stats::fmt_num(stats::ms(f.max)));
    rep.metric(
        "events/s ↑",
        "events_per_s",
        events as f64 / total.as_secs_f64().max(1e-9),
    );
    rep.metric("event p50 ms ↓", "event_p50_ms", stats::ms(s.p50));
    rep.kv("setdata_reply_ms", stats::fmt_num(stats::ms(r.p50)));
    if c.server_pid.is_some() && events > 0 {
        rep.metric(
            "server CPU µs/event ↓",
            "cpu_us_per_event",
            cpu as f64 / events as f64,
        );
    }
    rep.finish(c.record.as_deref(), &c.server)
}

async fn storm(c: Common, count: u64, concurrency: usize) -> io::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_us(c.server_pid);
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..concurrency.max(1) {
        let next = next.clone();
        let (addr, timeout) = (c.addr, c.session_timeout);
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let t = Instant::now();
                let ok = match Session::open(addr, timeout).await {
                    Ok(s) => s.close().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    lat.push(t.elapsed().as_nanos() as u64);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.await.map_err(io::Error::other)?;
        lat.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    let cpu = match (cpu0, cpu_us(c.server_pid)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let ops = lat.len() as u64;
    let s = summarize(&mut lat);
    let mut rep = Report::new(&c.label, "storm");
    rep.kv("concurrency", concurrency);
    rep.load(ops, errors, elapsed, &s, cpu, "sessions");
    rep.finish(c.record.as_deref(), &c.server)
}

async fn idle(c: Common, count: usize, hold: f64) -> io::Result<()> {
    let start = Instant::now();
    let sessions = open_many(c.addr, count, 64, c.session_timeout, false).await?;
    let open = start.elapsed();
    println!(
        "READY sessions={} open_secs={:.3}",
        sessions.len(),
        open.as_secs_f64()
    );
    let _ = io::stdout().flush();
    let cpu0 = cpu_us(c.server_pid);
    let until = Instant::now() + Duration::from_secs_f64(hold);
    let mut handles = Vec::new();
    for (i, mut s) in sessions.into_iter().enumerate() {
        // Pings every third of the timeout, as ZooKeeper clients do, spread over the interval.
        let every = Duration::from_millis((s.timeout_ms.max(300) / 3) as u64);
        let first = every.mul_f64((i % 1000) as f64 / 1000.0);
        handles.push(tokio::spawn(async move {
            let mut pings = 0u64;
            let mut at = Instant::now() + first;
            while at < until {
                tokio::time::sleep_until(at.into()).await;
                let (h, _) = s.call(&Request::Ping).await?;
                if h.err != 0 {
                    return Err(io::Error::other(format!("ping: err {}", h.err)));
                }
                pings += 1;
                at += every;
            }
            tokio::time::sleep_until(until.into()).await;
            Ok::<_, io::Error>((s, pings))
        }));
    }
    let mut sessions = Vec::new();
    let mut pings = 0;
    let mut failed = 0;
    for h in handles {
        match h.await.map_err(io::Error::other)? {
            Ok((s, p)) => {
                pings += p;
                sessions.push(s);
            }
            Err(_) => failed += 1,
        }
    }
    let cpu = match (cpu0, cpu_us(c.server_pid)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    close_all(sessions).await;
    let mut rep = Report::new(&c.label, "idle");
    rep.kv("sessions", count);
    rep.kv("pings", pings);
    rep.kv("failed", failed);
    rep.metric(
        "sessions opened/s ↑",
        "open_per_s",
        count as f64 / open.as_secs_f64().max(1e-9),
    );
    if let Some(cpu) = cpu {
        rep.metric(
            "server CPU % while idle ↓",
            "idle_cpu_pct",
            cpu as f64 / 1e4 / hold.max(1e-9),
        );
    }
    if failed > 0 {
        rep.metric("sessions lost", "failed_rows", failed as f64);
    }
    rep.finish(c.record.as_deref(), &c.server)
}

// ---------------------------------------------------------------------------------------------
// Floors and the restart probe.

async fn echo_server(listen: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("echo server on {}", listener.local_addr()?);
    let _ = io::stdout().flush();
    loop {
        let (mut s, _) = listener.accept().await?;
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

async fn echo(l: Load) -> io::Result<()> {
    let size = l.echo_size;
    let mut r = run_load(&l, true, |_| EchoWork { size }).await?;
    report_load(&l, "echo", &mut r)
}

/// One fsync trial: the latencies and the elapsed time.
fn fsync(
    dir: &std::path::Path,
    count: u64,
    block: usize,
    duration: f64,
    prealloc: bool,
) -> io::Result<(Vec<u64>, Duration)> {
    use std::io::{Seek, SeekFrom};
    let path = dir.join(format!("zkrs-bench-fsync-{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let buf = data(block);
    // Preallocated: up to 64 MiB of zeros written and synced first; then overwritten in
    // order, wrapping around.
    let area = (count * block as u64).clamp(block as u64, 64 << 20);
    if prealloc {
        let zeros = vec![0u8; 1 << 20];
        let mut left = area;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
        f.seek(SeekFrom::Start(0))?;
    }
    let mut pos = 0u64;
    let mut lat = Vec::with_capacity(count as usize);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(duration);
    for _ in 0..count {
        let t = Instant::now();
        if t >= deadline {
            break;
        }
        if prealloc && pos + block as u64 > area {
            f.seek(SeekFrom::Start(0))?;
            pos = 0;
        }
        f.write_all(&buf)?;
        pos += block as u64;
        f.sync_data()?;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    let elapsed = start.elapsed();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok((lat, elapsed))
}

async fn probe(c: Common, since_ns: u128, timeout: f64) -> io::Result<()> {
    let give_up = Instant::now() + Duration::from_secs_f64(timeout);
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let try_once = async {
            let mut s = Session::open(c.addr, c.session_timeout).await?;
            let (h, _) = s.call(&client::exists("/".into())).await?;
            if h.err != 0 {
                return Err(io::Error::other(format!("exists: err {}", h.err)));
            }
            Ok::<_, io::Error>(s)
        };
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(2), try_once).await {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let ms = now.saturating_sub(since_ns) as f64 / 1e6;
            let _ = s.close().await;
            let mut rep = Report::new(&c.label, "probe");
            rep.kv("attempts", attempts);
            rep.metric("start to first answer ms ↓", "first_answer_ms", ms);
            return rep.finish(c.record.as_deref(), &c.server);
        }
        if Instant::now() > give_up {
            return Err(io::Error::other("no answer before --timeout"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
