//! Persistence in RocksDB, the source of truth. The only module that imports `rocksdb`.
//!
//! Proposals go to the transaction log (`txlog`, files of zeros written beforehand, one
//! write and one fdatasync per batch: group commit). Column families: `nodes` (depth u16 BE ‖
//! path -> StatPersisted ‖ ACL vector ‖ data ‖ number of children i32; the depth prefix makes
//! a scan see parents first, and puts a node's children next to each other, so that they are
//! listed by one seek; and the applied state's own keys, FF FF 00 ‖ `z` -> last applied zxid,
//! FF FF 00 ‖ `s` ‖ id -> session timeout, FF FF 00 ‖ `f` -> format), `meta` (the ZAB
//! epochs), and `log`, where earlier versions kept the log (moved to the txlog at open).
//!
//! The tree reads its nodes from here ([`Pages`]) and holds in memory only those changed and
//! not saved yet, and those read lately (`znodeCacheSizeMB`).
//!
//! What applying committed txns changed is saved after the log write, with the last applied
//! zxid, in one batch to the `nodes` family that skips RocksDB's write-ahead log: the txlog
//! already holds those txns, so a second log of their effects (checksummed byte by byte) only
//! cost CPU and disk. A crash loses the batches not yet flushed to a table file, all together
//! (they are one family's memtable), and restart loads the nodes and replays the txlog after
//! the last applied zxid that survived. Log segments are removed only after a flush has made
//! the applied state they lead to durable.

use crate::filter::{PathFilter, Rebuild};
use crate::tree::{DataTree, Node, Pages};
use crate::txlog::TxLog;
use jute::data::{Acl, StatPersisted};
use jute::{Decode, Encode, Reader, TxnEntry};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("transaction log: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt {what} in the data directory: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

const CF_LOG: &str = "log";
const CF_NODES: &str = "nodes";
const CF_META: &str = "meta";
/// Where earlier versions kept the last applied zxid (and sessions, under `s`), in `meta`.
const OLD_LAST_ZXID: &[u8] = b"last_zxid";
/// The applied state's keys in `nodes`: no node key starts so (a node key's third byte is
/// the `/` its path starts with), and they never load as nodes.
const APPLIED: [u8; 3] = [0xFF, 0xFF, 0x00];
const LAST_ZXID: &[u8] = &[0xFF, 0xFF, 0x00, b'z'];
const SESSION: &[u8] = &[0xFF, 0xFF, 0x00, b's'];
/// The format of the node records: absent in those of earlier versions, which did not keep
/// a node's number of children.
const FORMAT: &[u8] = &[0xFF, 0xFF, 0x00, b'f'];
const FORMAT_COUNTS: &[u8] = &[2];

fn session_key(id: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(SESSION.len() + 8);
    key.extend_from_slice(SESSION);
    key.extend_from_slice(&id.to_be_bytes());
    key
}
const ACCEPTED_EPOCH: &[u8] = b"accepted_epoch";
const CURRENT_EPOCH: &[u8] = b"current_epoch";
const MEMBERSHIP: &[u8] = b"membership";
/// Present while ZooKeeper's data is being imported (see `crate::import`).
const IMPORTING: &[u8] = b"importing";
/// In the meta family while a snapshot is being installed in batches.
const INSTALLING: &[u8] = b"installing";
/// Node records per write batch of a snapshot's install.
const INSTALL_BATCH: usize = 20_000;

/// A restore's snapshot, beside the database while it is installed.
const RESTORE_FILE: &str = "zkrs-restore.pending";

/// How many txns the log keeps behind the newest (for DIFF syncs of learners).
const LOG_RETAIN: i64 = 100_000;

pub struct Store {
    db: Arc<DB>,
    sync: bool,
    log: Mutex<TxLog>,
    /// The last applied zxid saved in `meta` (synced or not).
    applied: AtomicI64,
    /// How many txns the log keeps behind the newest (LOG_RETAIN; tests lower it).
    retain: i64,
    /// The thread deleting log segments (after syncing the applied state they lead to).
    trimmer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Bytes of nodes a tree over this store holds in memory (beyond unsaved ones).
    node_cache: usize,
    /// The keys the `nodes` family may hold (see [`crate::filter`]).
    filter: Arc<PathFilter>,
    /// The thread rebuilding the filter, if one ran.
    rebuilder: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Where a restore's snapshot waits, beside the database, while it is installed
    /// ([`Store::stage_restore`]).
    restore_file: PathBuf,
}

/// What a restart recovers.
pub struct Recovered {
    /// The tree (with its sessions) as of its last applied zxid.
    pub tree: DataTree,
    /// The newest zxid in the log (at least the tree's).
    pub last_logged: i64,
    /// Replayed txns whose TxnDigest is not the tree's after them (ZooKeeper compares them
    /// when it replays its log too), and the first of them: (zxid, the txn's digest, the
    /// tree's).
    pub digest_mismatches: u64,
    pub first_digest_mismatch: Option<(i64, i64, i64)>,
}

fn node_key(path: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + path.len());
    write_node_key(path, &mut key);
    key
}

/// [`node_key`] into `key` (cleared first).
fn write_node_key(path: &str, key: &mut Vec<u8>) {
    let depth = u16::try_from(crate::path::depth(path)).unwrap_or(u16::MAX);
    key.clear();
    key.extend_from_slice(&depth.to_be_bytes());
    key.extend_from_slice(path.as_bytes());
}

/// A SNAP record's bytes besides its path and data: the path's and the record's lengths
/// (8), the stat (60), a one-entry ACL such as world:anyone (23), the data's length and the
/// child count (8).
pub const SNAPSHOT_NODE_OVERHEAD: usize = 8 + 60 + 23 + 8;

fn encode_node(node: &Node, out: &mut Vec<u8>) {
    node.stat.encode(out);
    jute::codec::write_vector(out, Some(node.acl.as_slice()));
    jute::codec::write_buffer(out, node.data.as_deref());
    (node.num_children as i32).encode(out);
}

/// The start of a snapshot as SNAP carries it between zkrs members: last zxid, sessions, the
/// number of nodes (-1: not known before they are written, see [`END_MARK`]).
pub fn write_snapshot_head(out: &mut Vec<u8>, last_zxid: i64, sessions: &[(i64, i32)], count: i32) {
    last_zxid.encode(out);
    (sessions.len() as i32).encode(out);
    for (id, timeout) in sessions {
        id.encode(out);
        timeout.encode(out);
    }
    count.encode(out);
}

/// After the last node of a snapshot written as it streamed (its count -1): a path of
/// length -1, then the number of nodes.
pub const END_MARK: [u8; 4] = (-1i32).to_be_bytes();

/// A node of such a snapshot: its path, then its stored record (`record` is scratch room).
pub fn write_snapshot_record(out: &mut Vec<u8>, path: &str, node: &Node, record: &mut Vec<u8>) {
    record.clear();
    encode_node(node, record);
    path.encode(out);
    jute::codec::write_buffer(out, Some(record));
}

/// Writes a snapshot as SNAP carries it between zkrs members: last zxid, sessions, the
/// number of nodes, then each node (path, then its stored record), parents first.
pub struct SnapshotEncoder {
    out: Vec<u8>,
    count_at: usize,
    count: i32,
    record: Vec<u8>,
}

impl SnapshotEncoder {
    /// `room`: about how many bytes the nodes will take (reserved up front).
    pub fn new(last_zxid: i64, sessions: &[(i64, i32)], room: usize) -> Self {
        let mut out = Vec::with_capacity(room + 16 * sessions.len() + 16);
        // The count goes before the records: written once they are.
        write_snapshot_head(&mut out, last_zxid, sessions, 0);
        let count_at = out.len() - 4;
        SnapshotEncoder {
            out,
            count_at,
            count: 0,
            record: Vec::new(),
        }
    }

    /// The next node, after its parent.
    pub fn push(&mut self, path: &str, node: &Node) {
        write_snapshot_record(&mut self.out, path, node, &mut self.record);
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        let at = self.count_at;
        self.out[at..at + 4].copy_from_slice(&self.count.to_be_bytes());
        self.out
    }
}

/// Decoded ACLs by their encoding: most nodes share a handful of ACLs.
type AclCache = crate::FastMap<Vec<u8>, Arc<Vec<Acl>>>;

/// A stored node; its ACL is decoded once per distinct encoding (`acls`, shared by a load).
/// A record of an earlier version has no number of children: 0 then (see `count_children`).
fn decode_node(bytes: &[u8], acls: &mut AclCache) -> Result<Node, jute::DecodeError> {
    let mut r = Reader::with_limit(bytes, usize::MAX >> 1);
    let stat = StatPersisted::decode(&mut r)?;
    // Find the ACL vector's bytes without decoding it: count, then (perms, scheme, id) each.
    let start = r.position();
    for _ in 0..r.read_i32()?.max(0) {
        r.read_i32()?;
        for _ in 0..2 {
            let len = r.read_i32()?;
            r.take(usize::try_from(len).unwrap_or(0))?;
        }
    }
    let encoded = bytes.get(start..r.position()).unwrap_or_default();
    let acl = match acls.get(encoded) {
        Some(acl) => acl.clone(),
        None => {
            let acl: Vec<Acl> = Reader::new(encoded).read_vector()?.unwrap_or_default();
            let acl = Arc::new(acl);
            acls.insert(encoded.to_vec(), acl.clone());
            acl
        }
    };
    let data = r.read_buffer()?;
    let mut node = Node::new(stat, data, acl);
    if !r.is_empty() {
        node.num_children = u32::try_from(r.read_i32()?).unwrap_or(0);
    }
    Ok(node)
}

/// A column family of `db`. The three families are created at open; a missing one is a broken
/// invariant.
fn family<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} missing"))
}

/// The tree's view of the `nodes` family. Called on the core thread only.
struct StoredNodes {
    db: Arc<DB>,
    acls: std::cell::RefCell<AclCache>,
    filter: Arc<PathFilter>,
}

/// A store that cannot be read or holds what cannot be decoded: the server stops (status 2,
/// as when the log cannot be written) rather than answer from part of its nodes.
fn unreadable(what: &str, e: impl std::fmt::Display) -> ! {
    tracing::error!("reading {what} from the store failed, stopping: {e}");
    std::process::exit(2);
}

impl StoredNodes {
    fn cf(&self) -> &rocksdb::ColumnFamily {
        family(&self.db, CF_NODES)
    }

    fn decode(&self, p: &str, value: &[u8]) -> Node {
        decode_node(value, &mut self.acls.borrow_mut()).unwrap_or_else(|e| unreadable(p, e))
    }
}

impl Pages for StoredNodes {
    fn load(&self, p: &str) -> Option<Node> {
        let key = node_key(p);
        if !self.filter.may_hold(&key) {
            return None;
        }
        match self.db.get_pinned_cf(self.cf(), key) {
            Ok(Some(value)) => Some(self.decode(p, &value)),
            Ok(None) => None,
            Err(e) => unreadable(p, e),
        }
    }

    fn children(&self, p: &str, f: &mut dyn FnMut(&str)) {
        let prefix = child_prefix(p);
        let mut it = self.db.raw_iterator_cf(self.cf());
        it.seek(&prefix);
        while let Some(key) = it.key() {
            let Some(name) = key.strip_prefix(prefix.as_slice()) else {
                break;
            };
            match std::str::from_utf8(name) {
                Ok(name) => f(name),
                Err(e) => unreadable(p, e),
            }
            it.next();
        }
        if let Err(e) = it.status() {
            unreadable(p, e);
        }
    }

    fn count_under(&self, p: &str) -> usize {
        // Level by level: a level with none below `p` has none deeper either.
        let mut total = 0;
        for depth in crate::path::depth(p) + 1.. {
            let prefix = level_prefix(p, depth);
            let mut it = self.db.raw_iterator_cf(self.cf());
            it.seek(&prefix);
            let mut n = 0;
            while it.key().is_some_and(|k| k.starts_with(&prefix)) {
                n += 1;
                it.next();
            }
            if let Err(e) = it.status() {
                unreadable(p, e);
            }
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    }

    fn scan(&self, f: &mut dyn FnMut(&str, &Node)) {
        // Its own ACL cache: `f` may load nodes meanwhile.
        let mut acls = AclCache::default();
        if let Err(e) = scan_nodes(&self.db, self.cf(), &mut acls, |p, n| {
            f(p, &n);
            Ok(())
        }) {
            unreadable("the nodes", e);
        }
    }
}

/// The key prefix of the children of `p`: their depth, then `p/`.
fn child_prefix(p: &str) -> Vec<u8> {
    level_prefix(p, crate::path::depth(p) + 1)
}

/// The key prefix of the nodes below `p` at `depth`: the depth, then `p/`.
fn level_prefix(p: &str, depth: usize) -> Vec<u8> {
    let depth = u16::try_from(depth).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(3 + p.len());
    key.extend_from_slice(&depth.to_be_bytes());
    key.extend_from_slice(p.as_bytes());
    if p != "/" {
        key.push(b'/');
    }
    key
}

/// An iterator at the start of `cf`, for one pass over all of it: large reads, and no block
/// cache churn.
fn whole_family<'a>(db: &'a DB, cf: &rocksdb::ColumnFamily) -> rocksdb::DBRawIterator<'a> {
    let mut read = rocksdb::ReadOptions::default();
    read.fill_cache(false);
    read.set_readahead_size(2 << 20);
    let mut it = db.raw_iterator_cf_opt(cf, read);
    it.seek_to_first();
    it
}

/// Every node of the point-in-time `view`, as [`scan_nodes`]; stops (Ok(false)) when `f`
/// answers false.
fn scan_view(
    db: &DB,
    view: &rocksdb::Snapshot,
    f: &mut dyn FnMut(&str, &Node) -> bool,
) -> Result<bool, StoreError> {
    let mut read = rocksdb::ReadOptions::default();
    read.fill_cache(false);
    read.set_readahead_size(2 << 20);
    let mut it = view.raw_iterator_cf_opt(family(db, CF_NODES), read);
    it.seek_to_first();
    let mut acls = AclCache::default();
    while let (Some(key), Some(value)) = (it.key(), it.value()) {
        if !key.starts_with(&APPLIED) {
            let (path, node) = decode_entry(key, value, &mut acls)?;
            if !f(path, &node) {
                return Ok(false);
            }
        }
        it.next();
    }
    it.status()?;
    Ok(true)
}

/// A stored node's path (its key less the depth) and node.
fn decode_entry<'k>(
    key: &'k [u8],
    value: &[u8],
    acls: &mut AclCache,
) -> Result<(&'k str, Node), StoreError> {
    let path =
        std::str::from_utf8(key.get(2..).unwrap_or_default()).map_err(|e| StoreError::Corrupt {
            what: "node key",
            detail: e.to_string(),
        })?;
    let node = decode_node(value, acls).map_err(|e| StoreError::Corrupt {
        what: "node",
        detail: format!("{path}: {e}"),
    })?;
    Ok((path, node))
}

/// Reads every node in key order (parents first) with one raw iterator (no boxed copy of
/// each key and value), ACLs decoded once per distinct encoding; the applied state's keys
/// are skipped.
fn scan_nodes(
    db: &DB,
    cf: &rocksdb::ColumnFamily,
    acls: &mut AclCache,
    mut f: impl FnMut(&str, Node) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut it = whole_family(db, cf);
    while let (Some(key), Some(value)) = (it.key(), it.value()) {
        if key.starts_with(&APPLIED) {
            it.next();
            continue;
        }
        let (path, node) = decode_entry(key, value, acls)?;
        f(path, node)?;
        it.next();
    }
    it.status()?;
    Ok(())
}

/// A snapshot as SNAP carries it between zkrs members ([`write_snapshot_head`]), read one
/// record at a time from any reader: last zxid, sessions, the node count (or -1: records up
/// to [`END_MARK`] and the count after it), each node's path and record, and nothing after.
struct SnapRecords<'a> {
    rd: Box<dyn std::io::Read + 'a>,
    zxid: i64,
    sessions: Vec<(i64, i32)>,
    /// The node count the head gives (-1: see [`END_MARK`]).
    expected: i32,
    count: usize,
    path: String,
    record: Vec<u8>,
}

fn snapshot_corrupt(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "snapshot",
        detail: detail.to_string(),
    }
}

impl<'a> SnapRecords<'a> {
    fn open(mut rd: Box<dyn std::io::Read + 'a>) -> Result<Self, StoreError> {
        let zxid = i64::from_be_bytes(read_array(&mut rd)?);
        let n = i32::from_be_bytes(read_array(&mut rd)?);
        let mut sessions = Vec::new();
        for _ in 0..n.max(0) {
            let id = i64::from_be_bytes(read_array(&mut rd)?);
            let timeout = i32::from_be_bytes(read_array(&mut rd)?);
            sessions.push((id, timeout));
        }
        let expected = i32::from_be_bytes(read_array(&mut rd)?);
        Ok(SnapRecords {
            rd,
            zxid,
            sessions,
            expected,
            count: 0,
            path: String::new(),
            record: Vec::new(),
        })
    }

    /// The next node's path and record; None after the last, once nothing follows it.
    fn next_record(&mut self) -> Result<Option<(&str, &[u8])>, StoreError> {
        if self.expected != -1 && self.count == self.expected.max(0) as usize {
            return self.end();
        }
        let len = i32::from_be_bytes(read_array(&mut self.rd)?);
        // Written as it streamed: an end mark (a path of length -1), then the count.
        if self.expected == -1 && len == -1 {
            let written = i32::from_be_bytes(read_array(&mut self.rd)?);
            if usize::try_from(written).ok() != Some(self.count) {
                return Err(snapshot_corrupt(format!(
                    "{} nodes, its end says {written}",
                    self.count
                )));
            }
            return self.end();
        }
        let mut path = std::mem::take(&mut self.path).into_bytes();
        read_len_bytes(&mut self.rd, len, &mut path)?;
        self.path = String::from_utf8(path).map_err(snapshot_corrupt)?;
        let len = i32::from_be_bytes(read_array(&mut self.rd)?);
        read_len_bytes(&mut self.rd, len, &mut self.record)?;
        self.count += 1;
        Ok(Some((&self.path, &self.record)))
    }

    /// Past the last node: nothing may follow.
    fn end(&mut self) -> Result<Option<(&str, &[u8])>, StoreError> {
        let mut rest = Vec::new();
        let extra =
            std::io::Read::read_to_end(&mut self.rd, &mut rest).map_err(snapshot_corrupt)?;
        if extra > 0 {
            return Err(snapshot_corrupt(format!(
                "{extra} bytes after its last node"
            )));
        }
        Ok(None)
    }
}

fn read_array<const N: usize>(rd: &mut dyn std::io::Read) -> Result<[u8; N], StoreError> {
    let mut b = [0u8; N];
    rd.read_exact(&mut b).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => snapshot_corrupt("cut short"),
        _ => snapshot_corrupt(e),
    })?;
    Ok(b)
}

/// `len` bytes into `out` (cleared first); a negative length or fewer bytes than it says
/// are an error. Read as they come: a wrong length never allocates what it claims.
fn read_len_bytes(
    rd: &mut dyn std::io::Read,
    len: i32,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let len = u64::try_from(len).map_err(|_| snapshot_corrupt(format!("a length of {len}")))?;
    out.clear();
    let got = std::io::Read::read_to_end(&mut std::io::Read::take(rd, len), out)
        .map_err(snapshot_corrupt)?;
    if got as u64 != len {
        return Err(snapshot_corrupt("cut short"));
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the database under `dir` and the transaction log under `log_dir`.
    /// `sync`: fsync each commit (`forceSync`).
    pub fn open(dir: &Path, log_dir: &Path, sync: bool) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Memtables are bounded (defaults would allow 64 MiB x 2 per family): they count in
        // the server's memory (measured, 1M znodes created at 16x64: RSS 100 MB with 32 MiB
        // here, 76 MB with 16, at the same create rate).
        opts.set_db_write_buffer_size(16 << 20);
        // The meta family's memtable (a few keys rewritten per batch) never fills, so without
        // a bound every WAL file would be kept (and replayed after a crash): past 64 MiB of
        // WAL, RocksDB flushes the families that pin the oldest file.
        opts.set_max_total_wal_size(64 << 20);
        let cf_opts = || {
            let mut o = Options::default();
            // Each family may take the whole 16 MiB budget, and eight level-0 files wait for a
            // compaction: fewer flushes and rewrites of node records under writes (measured:
            // a fifth less server CPU per create at 16x64 than 8 MiB and the default 4).
            o.set_write_buffer_size(16 << 20);
            o.set_level_zero_file_num_compaction_trigger(8);
            o.set_max_write_buffer_number(2);
            // LZ4: about half snappy's CPU in flushes and compactions, on the server's core.
            // Flushes write level 0 uncompressed: its files are merged into level 1 soon
            // anyway, and compressing them first cost a twentieth of a write's instructions.
            use rocksdb::DBCompressionType::{Lz4, None as Plain};
            o.set_compression_per_level(&[Plain, Lz4, Lz4, Lz4, Lz4, Lz4, Lz4]);
            // No compactions until `recover` has loaded the tree: they would take the CPU a
            // restart needs (measured: a third of it with 1M znodes).
            o.set_disable_auto_compactions(true);
            o
        };
        // The tree reads the nodes it does not hold from the nodes family: a bloom filter
        // per table file answers most lookups of a path that is not there (every create
        // asks) without reading a block, and one block cache serves the families.
        let cache = rocksdb::Cache::new_lru_cache(8 << 20);
        let cfs = [CF_LOG, CF_NODES, CF_META].into_iter().map(|name| {
            let mut o = cf_opts();
            if name == CF_NODES {
                let mut table = rocksdb::BlockBasedOptions::default();
                table.set_block_cache(&cache);
                table.set_bloom_filter(10.0, false);
                o.set_block_based_table_factory(&table);
                // And one per memtable: 1% of it (about 12 bits per record) is as quick for
                // creates as 5% and touches 0.6 MiB less on a fresh server (measured: 1M
                // creates at 3.9 us of server CPU each either way; without one, 4.5-5.0).
                o.set_memtable_prefix_bloom_ratio(0.01);
                o.set_memtable_whole_key_filtering(true);
            }
            ColumnFamilyDescriptor::new(name, o)
        });
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        let log = Mutex::new(TxLog::open(log_dir, sync)?);
        let store = Store {
            db: Arc::new(db),
            sync,
            log,
            applied: AtomicI64::new(-1),
            retain: LOG_RETAIN,
            trimmer: Mutex::new(None),
            node_cache: crate::tree::DEFAULT_CACHE_BYTES,
            filter: PathFilter::new(),
            rebuilder: Mutex::new(None),
            restore_file: dir.parent().unwrap_or(dir).join(RESTORE_FILE),
        };
        store.move_old_log()?;
        store.move_old_applied_state()?;
        store.finish_broken_install()?;
        Ok(store)
    }

    /// Moves txns an earlier version kept in the `log` family into the txlog (durably, then
    /// deletes them there).
    fn move_old_log(&self) -> Result<(), StoreError> {
        let cf = self.cf(CF_LOG);
        let mut txns = Vec::new();
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (_, value) = item?;
            txns.push(crate::txlog::decode(&value)?);
        }
        if txns.is_empty() {
            return Ok(());
        }
        self.txlog().append(&txns)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, [0u8; 8], [0xffu8; 8]);
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync);
        self.db.write_opt(batch, &opts)?;
        tracing::info!("moved {} txns to the transaction log", txns.len());
        Ok(())
    }

    /// Moves the last applied zxid and the sessions an earlier version kept in `meta` next to
    /// the nodes they describe (one synced batch, through the write-ahead log like every
    /// write of that version).
    fn move_old_applied_state(&self) -> Result<(), StoreError> {
        let meta = self.cf(CF_META);
        let Some(last) = self.db.get_cf(meta, OLD_LAST_ZXID)? else {
            return Ok(());
        };
        let nodes = self.cf(CF_NODES);
        let mut batch = WriteBatch::default();
        let mut sessions = 0;
        for item in self.db.prefix_iterator_cf(meta, b"s") {
            let (key, value) = item?;
            if key.first() != Some(&b's') {
                break;
            }
            let mut moved = APPLIED.to_vec();
            moved.extend_from_slice(&key);
            batch.put_cf(nodes, moved, value);
            sessions += 1;
        }
        batch.put_cf(nodes, LAST_ZXID, last);
        batch.delete_range_cf(meta, b"s".as_slice(), b"t".as_slice());
        batch.delete_cf(meta, OLD_LAST_ZXID);
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)?;
        tracing::info!("moved the applied state ({sessions} sessions) next to the nodes");
        Ok(())
    }

    fn txlog(&self) -> MutexGuard<'_, TxLog> {
        // Only the core thread uses the store; a poisoned lock means it panicked already.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        family(&self.db, name)
    }

    /// How many bytes of nodes a tree over this store holds in memory, beyond those changed
    /// and not saved yet (`znodeCacheSizeMB`).
    pub fn set_node_cache(&mut self, bytes: usize) {
        self.node_cache = bytes;
    }

    /// The applied tree and its sessions; a fresh database gets the initial tree. With
    /// `replay`, the logged txns after the last applied one are applied too (a standalone
    /// server's log holds only committed txns; a learner's tail waits for its leader).
    pub fn recover(&self, extended_types: bool, replay: bool) -> Result<Recovered, StoreError> {
        let mut tree = self.open_tree(extended_types)?;
        let last_logged = self.last_logged()?.unwrap_or(tree.last_zxid);
        let (mut digest_mismatches, mut first_digest_mismatch) = (0, None);
        if replay {
            // Saved as it goes: until saved, what the txns changed is held in memory.
            for txns in self.txns_after(tree.last_zxid)?.chunks(4096) {
                for txn in txns {
                    tree.apply(txn);
                    if let Some(theirs) = tree.digest_mismatch(txn) {
                        digest_mismatches += 1;
                        first_digest_mismatch.get_or_insert((
                            txn.header.zxid,
                            theirs,
                            tree.digest(),
                        ));
                    }
                }
                let (dirty, sessions) = (tree.take_dirty(), tree.take_dirty_sessions());
                self.save_applied(&tree, &dirty, &sessions)?;
                tree.recycle_dirty(dirty);
            }
        }
        for cf in [CF_LOG, CF_NODES, CF_META] {
            self.db
                .set_options_cf(self.cf(cf), &[("disable_auto_compactions", "false")])?;
        }
        Ok(Recovered {
            tree,
            last_logged,
            digest_mismatches,
            first_digest_mismatch,
        })
    }

    /// The applied tree over the `nodes` family. Every node is read once, to count and index
    /// them (ephemerals, containers, TTL nodes, quotas, the digest), and none is kept in
    /// memory. A fresh database gets the initial tree, saved with the first changes.
    pub fn open_tree(&self, extended_types: bool) -> Result<DataTree, StoreError> {
        let pages = Box::new(StoredNodes {
            db: self.db.clone(),
            acls: Default::default(),
            filter: Arc::clone(&self.filter),
        });
        let nodes = self.cf(CF_NODES);
        let expected = self
            .db
            .property_int_value_cf(nodes, "rocksdb.estimate-num-keys")?
            .unwrap_or(0);
        let mut filter = self
            .filter
            .reset(usize::try_from(expected).unwrap_or(usize::MAX));
        let Some(last) = self.db.get_cf(nodes, LAST_ZXID)? else {
            self.db.put_cf(nodes, FORMAT, FORMAT_COUNTS)?;
            filter.finish();
            return Ok(DataTree::new(extended_types).with_pages(pages, self.node_cache));
        };
        let last = <[u8; 8]>::try_from(last.as_slice())
            .map(i64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                what: "last zxid",
                detail: format!("{last:?}"),
            })?;
        if self.db.get_cf(nodes, FORMAT)?.is_none() {
            self.count_children()?;
        }
        let mut tree = DataTree::empty(extended_types).with_pages(pages, self.node_cache);
        let mut acls = AclCache::default();
        let mut key = Vec::new();
        scan_nodes(&self.db, nodes, &mut acls, |p, n| {
            write_node_key(p, &mut key);
            filter.add(&key);
            tree.index_stored(p, &n);
            Ok(())
        })?;
        filter.finish();
        for item in self.db.prefix_iterator_cf(nodes, SESSION) {
            let (key, value) = item?;
            let Some(id) = key.strip_prefix(SESSION) else {
                break;
            };
            let (Ok(id), Ok(timeout)) = (<[u8; 8]>::try_from(id), <[u8; 4]>::try_from(&*value))
            else {
                return Err(StoreError::Corrupt {
                    what: "session",
                    detail: format!("{key:?}"),
                });
            };
            tree.insert_session(i64::from_be_bytes(id), i32::from_be_bytes(timeout));
        }
        tree.last_zxid = last;
        self.applied.store(last, Ordering::Relaxed);
        Ok(tree)
    }

    /// Node records of an earlier version lack their number of children: counts them and
    /// rewrites every record (once, synced), then marks the format.
    fn count_children(&self) -> Result<(), StoreError> {
        let nodes = self.cf(CF_NODES);
        let mut acls = AclCache::default();
        let mut counts: crate::FastMap<String, u32> = Default::default();
        scan_nodes(&self.db, nodes, &mut acls, |p, _| {
            if let Some(parent) = crate::path::parent(p) {
                *counts.entry(parent.to_string()).or_default() += 1;
            }
            Ok(())
        })?;
        let mut batch = WriteBatch::default();
        let mut buf = Vec::new();
        let mut rewritten = 0usize;
        scan_nodes(&self.db, nodes, &mut acls, |p, mut node| {
            node.num_children = counts.get(p).copied().unwrap_or(0);
            buf.clear();
            encode_node(&node, &mut buf);
            batch.put_cf(nodes, node_key(p), &buf);
            rewritten += 1;
            if batch.len() >= 10_000 {
                self.db.write(std::mem::take(&mut batch))?;
            }
            Ok(())
        })?;
        batch.put_cf(nodes, FORMAT, FORMAT_COUNTS);
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)?;
        tracing::info!("recorded the number of children of {rewritten} stored znodes");
        Ok(())
    }

    /// What a restarting ensemble member hands ZAB: the `window` newest committed txns (for
    /// DIFFs) and, however many they are, every txn logged after `applied`. The applied state
    /// is saved without a sync, so after a power loss it may be far behind the log; a tail
    /// of only the newest txns would leave a gap no sync fills.
    pub fn member_tail(&self, applied: i64, window: usize) -> Result<Vec<TxnEntry>, StoreError> {
        self.txlog().tail(applied, window)
    }

    /// The newest zxid in the log.
    pub fn last_logged(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.txlog().last())
    }

    /// Appends txns to the log; with `sync` (forceSync) they are on disk when this returns.
    /// One call per batch of proposals: group commit. When a new log segment starts, the
    /// segments no longer needed go: those whose txns are all applied and older than the
    /// newest LOG_RETAIN (kept for DIFF syncs of learners). A thread of its own syncs the
    /// applied state first and then deletes them (measured: 5-20 ms per roll, which the
    /// core thread spent waiting).
    pub fn append_log<'a, T: crate::txlog::Record + 'a>(
        &self,
        txns: impl IntoIterator<Item = &'a T>,
    ) -> Result<(), StoreError> {
        let mut log = self.txlog();
        if log.append(txns)? {
            let last = log.last().unwrap_or(0);
            let upto = (last - self.retain).min(self.applied.load(Ordering::Relaxed));
            let mut trimmer = self.trimmer.lock().unwrap_or_else(|e| e.into_inner());
            let idle = trimmer.as_ref().is_none_or(|t| t.is_finished());
            if upto > 0 && idle {
                let doomed = log.detach(upto);
                if !doomed.is_empty() {
                    let db = Arc::clone(&self.db);
                    *trimmer = Some(std::thread::spawn(move || trim(&db, doomed)));
                }
            }
        }
        Ok(())
    }

    /// Removes logged txns after `zxid` (TRUNC).
    pub fn truncate_log(&self, zxid: i64) -> Result<(), StoreError> {
        self.txlog().truncate(zxid)
    }

    /// Saves what applying committed txns changed: the nodes, sessions and the last applied
    /// zxid, atomically, without RocksDB's write-ahead log (see the module's comment): the
    /// txlog already holds those txns, and recovery replays what this write did not reach.
    pub fn save_applied(
        &self,
        tree: &DataTree,
        dirty: &crate::FastSet<String>,
        sessions: &[(i64, Option<i32>)],
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let (mut buf, mut key) = (Vec::new(), Vec::new());
        let nodes = self.cf(CF_NODES);
        // In key order: the memtable's skip list then inserts each next to the last, not
        // searching from the top (a sixth of a setData's CPU, unsorted).
        let mut rebuild = None;
        let mut paths: Vec<(usize, &str)> = dirty
            .iter()
            .map(|p| (crate::path::depth(p), p.as_str()))
            .collect();
        paths.sort_unstable();
        for (_, path) in paths {
            write_node_key(path, &mut key);
            match tree.peek(path) {
                Some(node) => {
                    buf.clear();
                    encode_node(&node, &mut buf);
                    // Before the write: a rebuild that begins meanwhile gets the key.
                    rebuild = rebuild.or(self.filter.add(&key, tree.len()));
                    batch.put_cf(nodes, &key, &buf);
                }
                None => batch.delete_cf(nodes, &key),
            }
        }
        for (id, timeout) in sessions {
            match timeout {
                Some(t) => batch.put_cf(nodes, session_key(*id), t.to_be_bytes()),
                None => batch.delete_cf(nodes, session_key(*id)),
            }
        }
        batch.put_cf(nodes, LAST_ZXID, tree.last_zxid.to_be_bytes());
        let mut opts = WriteOptions::default();
        opts.disable_wal(true);
        self.db.write_opt(batch, &opts)?;
        self.start_filter_rebuild(rebuild);
        self.applied.store(tree.last_zxid, Ordering::Relaxed);
        Ok(())
    }

    /// Rebuilds the filter of stored keys on a thread of its own; called once the batch
    /// whose keys began the rebuild is written, so that the scan sees them.
    fn start_filter_rebuild(&self, job: Option<Rebuild>) {
        let Some(job) = job else { return };
        let mut slot = self.rebuilder.lock().unwrap_or_else(|e| e.into_inner());
        // The last rebuild ended (the filter begins one at a time): reap its thread.
        if let Some(done) = slot.take() {
            let _ = done.join();
        }
        let db = Arc::clone(&self.db);
        match std::thread::Builder::new()
            .name("zkrs-filter".into())
            .spawn(move || rebuild_filter(&db, job))
        {
            Ok(t) => *slot = Some(t),
            // The rebuild, dropped with the closure, is abandoned: the filter stays.
            Err(e) => tracing::warn!("cannot start rebuilding the path filter: {e}"),
        }
    }

    /// Nothing applied and nothing logged yet (a data dir zkrs has not served from), or an
    /// import that did not finish.
    pub fn is_fresh(&self) -> Result<bool, StoreError> {
        let never = self.db.get_cf(self.cf(CF_NODES), LAST_ZXID)?.is_none()
            && self.last_logged()?.is_none();
        Ok(never || self.db.get_cf(self.cf(CF_META), IMPORTING)?.is_some())
    }

    /// Marks an import begun (synced): until [`Store::finish_import`], the store counts as
    /// fresh, so a crash in between redoes the import.
    pub fn begin_import(&self) -> Result<(), StoreError> {
        self.mark(IMPORTING, true)
    }

    pub fn finish_import(&self) -> Result<(), StoreError> {
        self.mark(IMPORTING, false)
    }

    /// Persists the ZAB epochs (synced: they are acted on right after).
    pub fn save_hard_state(&self, hs: crate::zab::HardState) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let meta = self.cf(CF_META);
        batch.put_cf(meta, ACCEPTED_EPOCH, hs.accepted_epoch.to_be_bytes());
        batch.put_cf(meta, CURRENT_EPOCH, hs.current_epoch.to_be_bytes());
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// The membership a committed reconfig made (its config text), kept as ZooKeeper keeps
    /// its dynamic config file: a restart takes it over zoo.cfg's.
    pub fn save_membership(&self, text: &[u8]) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.sync);
        self.db
            .put_cf_opt(self.cf(CF_META), MEMBERSHIP, text, &opts)?;
        Ok(())
    }

    pub fn load_membership(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_META), MEMBERSHIP)?)
    }

    /// The ZAB epochs (zero for a fresh member; a missing current epoch defaults to the
    /// epoch of the last logged zxid, as ZooKeeper does).
    pub fn load_hard_state(&self, last_logged: i64) -> Result<crate::zab::HardState, StoreError> {
        let read = |key: &[u8]| -> Result<Option<i64>, StoreError> {
            match self.db.get_cf(self.cf(CF_META), key)? {
                None => Ok(None),
                Some(v) => <[u8; 8]>::try_from(v.as_slice())
                    .map(|b| Some(i64::from_be_bytes(b)))
                    .map_err(|_| StoreError::Corrupt {
                        what: "epoch",
                        detail: format!("{v:?}"),
                    }),
            }
        };
        let current = read(CURRENT_EPOCH)?.unwrap_or(last_logged >> 32);
        let accepted = read(ACCEPTED_EPOCH)?.unwrap_or(current);
        Ok(crate::zab::HardState {
            accepted_epoch: accepted,
            current_epoch: current,
        })
    }

    /// The applied state as SNAP sends it: last zxid, sessions, then every node, parents first.
    /// Records are written as the store's scan yields them (the changed nodes merged in),
    /// into one buffer sized up front: a million znodes never sit in memory twice.
    pub fn encode_snapshot(tree: &DataTree) -> Vec<u8> {
        // Sized up front, so that growing it does not hold two copies at once: paths and
        // data, and each node's lengths, stat, a one-entry ACL and child count.
        let estimate = tree.approximate_data_size() + tree.len() * SNAPSHOT_NODE_OVERHEAD;
        let sessions: Vec<(i64, i32)> = tree.sessions.iter().map(|(i, t)| (*i, *t)).collect();
        let mut out = SnapshotEncoder::new(tree.last_zxid, &sessions, estimate);
        // In the store's key order (parents first), each record written as it comes.
        tree.for_each_ordered(|p, node| out.push(p, node));
        out.finish()
    }

    /// The applied state as it is now, for a learner's SNAP in `format`, written by a
    /// thread of its own from a point-in-time view of the store taken before this returns:
    /// the caller's tree must be saved whole (nothing changed and not saved), and `zxid` and
    /// `sessions` are its own. The pieces wait for the connection (a few at most), so the
    /// snapshot is never held whole; dropping the receiver stops the thread.
    pub fn stream_snapshot(
        &self,
        format: crate::snapshot::SnapFormat,
        zxid: i64,
        sessions: Vec<(i64, i32)>,
    ) -> crate::snapshot::SnapChunks {
        let (tx, rx) = crate::snapshot::channel();
        let (taken, view_taken) = std::sync::mpsc::sync_channel(0);
        let db = self.db.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let view = db.snapshot();
                let _ = taken.send(());
                let mut walk = |f: &mut dyn FnMut(&str, &Node) -> bool| scan_view(&db, &view, f);
                let mut emit = |piece| tx.blocking_send(Some(piece)).is_ok();
                match crate::snapshot::write(format, zxid, &sessions, &mut walk, &mut emit) {
                    Ok(true) => {
                        let _ = tx.blocking_send(None);
                    }
                    // The learner's connection is gone.
                    Ok(false) => {}
                    // Dropping `tx` without the end breaks the learner's connection off.
                    Err(e) => tracing::error!("writing a snapshot at {zxid:#x} failed: {e}"),
                }
            });
        match spawned {
            // The view is taken before the caller's tree moves on.
            Ok(_) => {
                let _ = view_taken.recv();
            }
            Err(e) => tracing::error!("cannot start a thread for a snapshot: {e}"),
        }
        rx
    }

    /// Replaces everything with `tree`, a small one (the initial tree after an install a
    /// crash cut short): the log emptied, the nodes written, the sessions and last zxid
    /// saved, all flushed. The caller's mark covers a crash in between.
    pub fn replace_all(&self, tree: &DataTree) -> Result<(), StoreError> {
        self.begin_replace()?;
        let mut nodes = Vec::new();
        tree.for_each(|p, node| nodes.push((p.to_string(), node.clone())));
        self.put_nodes(&nodes)?;
        let sessions: Vec<(i64, i32)> = tree.sessions.iter().map(|(i, t)| (*i, *t)).collect();
        self.finish_replace(&sessions, tree.last_zxid)
    }

    /// Installs a snapshot as SNAP carries it ([`Store::encode_snapshot`]) as
    /// [`Store::replace_all`] would, straight from its bytes, never built into a tree (a
    /// million znodes built into one took a follower to 1.2 GiB). Every record is checked
    /// first: a snapshot that does not decode leaves the store as it was. Then the nodes are
    /// written in batches (one batch of a million took as much memory again, in it and in
    /// the memtable it filled), under a mark: a crash before the end leaves the initial tree
    /// at zxid 0 at the next start ([`Store::open`]), as a new member's, and the leader sends
    /// a snapshot again. Returns the snapshot's zxid and number of nodes.
    pub fn install_snapshot(&self, bytes: &[u8]) -> Result<(i64, usize), StoreError> {
        self.install_from(&mut || Ok(Box::new(bytes)))
    }

    /// [`Store::install_snapshot`] from a file that holds the snapshot's bytes (a leader's
    /// snapshot in frames, written there as it arrived): read twice, never held whole.
    pub fn install_snapshot_file(&self, path: &Path) -> Result<(i64, usize), StoreError> {
        self.install_from(&mut || {
            let file = std::fs::File::open(path).map_err(|e| StoreError::Corrupt {
                what: "snapshot file",
                detail: format!("{}: {e}", path.display()),
            })?;
            Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
        })
    }

    /// Installs the snapshot `open` reads (each call from its start): checked whole, then
    /// written in batches under the `INSTALLING` mark.
    fn install_from<'a>(
        &self,
        open: &mut dyn FnMut() -> Result<Box<dyn std::io::Read + 'a>, StoreError>,
    ) -> Result<(i64, usize), StoreError> {
        let mut acls = AclCache::default();
        // The records, each checked (`put` false) or written (true), in batches.
        let mut walk = |put: bool| -> Result<SnapRecords<'a>, StoreError> {
            let mut snap = SnapRecords::open(open()?)?;
            let nodes = self.cf(CF_NODES);
            let mut batch = WriteBatch::default();
            let mut key = Vec::new();
            while let Some((p, node)) = snap.next_record()? {
                if !put {
                    decode_node(node, &mut acls).map_err(|e| StoreError::Corrupt {
                        what: "snapshot",
                        detail: format!("{p}: {e}"),
                    })?;
                    continue;
                }
                write_node_key(p, &mut key);
                batch.put_cf(nodes, &key, node);
                if batch.len() >= INSTALL_BATCH {
                    self.db.write(std::mem::take(&mut batch))?;
                }
            }
            self.db.write(batch)?;
            Ok(snap)
        };
        let checked = walk(false)?;
        self.mark(INSTALLING, true)?;
        tracing::info!(
            "installing a snapshot at {:#x}: {} znodes",
            checked.zxid,
            checked.count
        );
        self.begin_replace()?;
        let snap = walk(true)?;
        self.finish_replace(&snap.sessions, snap.zxid)?;
        self.mark(INSTALLING, false)?;
        Ok((snap.zxid, snap.count))
    }

    /// Sets or clears a mark in the meta family, synced.
    fn mark(&self, mark: &[u8], on: bool) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        match on {
            true => self.db.put_cf_opt(self.cf(CF_META), mark, [1u8], &opts)?,
            false => self.db.delete_cf_opt(self.cf(CF_META), mark, &opts)?,
        }
        Ok(())
    }

    /// Writes a restore's snapshot (as [`Store::install_snapshot`] takes it) to a file beside
    /// the database, synced, before [`Store::install_staged_restore`] installs it: a crash
    /// during that install then finishes it from the file at the next start, where a
    /// learner's would start over from the initial tree (its leader sends a snapshot again,
    /// but a restore has no one to). An error here leaves the store as it was.
    pub fn stage_restore(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let io = |e: std::io::Error| StoreError::Corrupt {
            what: "restore file",
            detail: format!("{}: {e}", self.restore_file.display()),
        };
        let partial = self.restore_file.with_extension("partial");
        let mut f = std::fs::File::create(&partial).map_err(io)?;
        std::io::Write::write_all(&mut f, bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&partial, &self.restore_file).map_err(io)?;
        if let Some(dir) = self.restore_file.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }

    /// Installs the snapshot [`Store::stage_restore`] wrote, then removes its file. Returns
    /// the snapshot's zxid and number of nodes.
    pub fn install_staged_restore(&self) -> Result<(i64, usize), StoreError> {
        let installed = self.install_snapshot_file(&self.restore_file)?;
        self.remove_restore_file();
        Ok(installed)
    }

    fn remove_restore_file(&self) {
        for f in [
            self.restore_file.clone(),
            self.restore_file.with_extension("partial"),
        ] {
            match std::fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot remove {}: {e}", f.display()),
            }
        }
    }

    /// A snapshot's install that did not finish (a crash). A restore's is finished from its
    /// file. Otherwise (a learner's) its nodes are partial, so the store starts over from
    /// the initial tree at zxid 0, with an empty log, as a member that never served; its
    /// epochs stay. The leader sends it a snapshot again.
    fn finish_broken_install(&self) -> Result<(), StoreError> {
        if self.db.get_cf(self.cf(CF_META), INSTALLING)?.is_none() {
            // A restore not begun, or done: its file, if left, is not needed.
            self.remove_restore_file();
            return Ok(());
        }
        if self.restore_file.exists() {
            tracing::warn!(
                "a restore's install did not finish: finishing it from {}",
                self.restore_file.display()
            );
            // An error stops the start, the mark and the file kept for the next one.
            let (zxid, nodes) = self.install_staged_restore()?;
            tracing::info!("restore finished: {nodes} znodes at {zxid:#x}");
            return Ok(());
        }
        tracing::warn!("a snapshot's install did not finish: starting over from the initial tree");
        self.replace_all(&DataTree::new(false))?;
        self.mark(INSTALLING, false)
    }

    /// Begins replacing everything in batches (an import or a snapshot's install, whose
    /// crash safety is a mark: [`Store::begin_import`], `INSTALLING`): empties the log and
    /// the nodes.
    pub fn begin_replace(&self) -> Result<(), StoreError> {
        self.txlog().reset()?;
        let mut batch = WriteBatch::default();
        let nodes = self.cf(CF_NODES);
        batch.delete_range_cf(nodes, [0u8; 1].as_slice(), [0xffu8; 8].as_slice());
        self.db.write(batch)?;
        // Every key changes: the filter holds all until `open_tree` scans the new ones.
        self.filter.forget();
        Ok(())
    }

    /// Writes one batch of nodes of a replacement.
    pub fn put_nodes(&self, batch_nodes: &[(String, Node)]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let nodes = self.cf(CF_NODES);
        let mut buf = Vec::new();
        for (p, node) in batch_nodes {
            buf.clear();
            encode_node(node, &mut buf);
            batch.put_cf(nodes, node_key(p), &buf);
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// Ends a replacement: the sessions and the last applied zxid, then everything flushed
    /// to disk.
    pub fn finish_replace(
        &self,
        sessions: &[(i64, i32)],
        last_zxid: i64,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let nodes = self.cf(CF_NODES);
        batch.put_cf(nodes, FORMAT, FORMAT_COUNTS);
        for (id, timeout) in sessions {
            batch.put_cf(nodes, session_key(*id), timeout.to_be_bytes());
        }
        batch.put_cf(nodes, LAST_ZXID, last_zxid.to_be_bytes());
        self.db.write(batch)?;
        self.applied.store(last_zxid, Ordering::Relaxed);
        self.flush()
    }

    /// Flushes memtables (graceful shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        for cf in [CF_LOG, CF_NODES, CF_META] {
            self.db.flush_cf(self.cf(cf))?;
        }
        Ok(())
    }

    /// The txns logged after `zxid`, in order (for learners' DIFF and for tests).
    pub fn txns_after(&self, zxid: i64) -> Result<Vec<TxnEntry>, StoreError> {
        self.txlog().after(zxid)
    }

    /// Size of the database files in bytes (`dirs`).
    pub fn size_on_disk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|it| {
                it.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for Store {
    /// The trimming and filter threads hold the database too: they end before the database
    /// closes, so that a store reopened right after finds it closed.
    fn drop(&mut self) {
        for slot in [&mut self.trimmer, &mut self.rebuilder] {
            if let Some(t) = slot.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = t.join();
            }
        }
    }
}

/// Feeds every key of the `nodes` family to `job` (see [`crate::filter`]).
fn rebuild_filter(db: &DB, mut job: Rebuild) {
    let mut it = whole_family(db, family(db, CF_NODES));
    while let Some(key) = it.key() {
        job.add(key);
        it.next();
    }
    match it.status() {
        Ok(()) => job.finish(),
        // Dropped unfinished: abandoned.
        Err(e) => tracing::warn!("rebuilding the path filter: {e}"),
    }
}

/// Deletes log segments once the applied state they lead to is flushed (until then a crash
/// would replay them). On failure they stay on disk: the next start finds them again.
fn trim(db: &DB, doomed: Vec<std::path::PathBuf>) {
    // The applied state skips the write-ahead log: only a flush makes it durable.
    let flushed = match db.cf_handle(CF_NODES) {
        Some(nodes) => db.flush_cf(nodes),
        None => return,
    };
    if let Err(e) = flushed {
        tracing::warn!("flushing the applied state before trimming the log: {e}");
        return;
    }
    for path in doomed {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!("removing log segment {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jute::txn::{CreateTxn, TxnHeader};
    use jute::TxnRecord;

    fn create(zxid: i64, path: &str) -> TxnEntry {
        let record = TxnRecord::Create(CreateTxn {
            path: path.into(),
            data: Some(b"d".to_vec()),
            acl: Some(crate::acl::open_acl_unsafe()),
            ephemeral: false,
            parent_c_version: 1,
        });
        entry(zxid, record)
    }

    /// `record` as a txn of session 1 at `zxid`.
    fn entry(zxid: i64, record: TxnRecord) -> TxnEntry {
        TxnEntry {
            header: TxnHeader {
                client_id: 1,
                cxid: 1,
                zxid,
                time: 1,
                type_: record.op().code(),
            },
            record,
            digest: None,
        }
    }

    #[test]
    fn the_log_is_trimmed_behind_the_saved_applied_state_never_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let (db, log) = (dir.path().join("db"), dir.path().join("log"));
        let mut store = Store::open(&db, &log, false).unwrap();
        store.retain = 10;
        let mut tree = DataTree::new(false);
        // 64 KiB per txn: a 16 MiB segment holds about 250 of them; 1,000 make four segments.
        let data = vec![b'x'; 64 << 10];
        let txn = |z: i64| {
            let mut t = create(z, &format!("/n{z}"));
            if let TxnRecord::Create(c) = &mut t.record {
                c.data = Some(data.clone());
            }
            t
        };
        for start in (1..=1000).step_by(10) {
            let batch: Vec<TxnEntry> = (start..start + 10).map(txn).collect();
            store.append_log(&batch).unwrap();
            for t in &batch {
                tree.apply(t);
            }
            // The applied state is saved up to 500 only (a member whose saves lag behind).
            if start + 9 <= 500 {
                let (dirty, sessions) = (tree.take_dirty(), tree.take_dirty_sessions());
                store.save_applied(&tree, &dirty, &sessions).unwrap();
            }
        }
        let kept = store.txns_after(0).unwrap();
        let first = kept.first().map(|t| t.header.zxid).unwrap();
        assert!(first > 1, "nothing was trimmed");
        assert!(
            first <= 501,
            "trimmed past the saved applied state: {first}"
        );
        drop(store);
        // A restart loads the state saved at 500 and replays the rest from the log.
        let store = Store::open(&db, &log, false).unwrap();
        let rec = store.recover(false, true).unwrap();
        assert_eq!(rec.tree.last_zxid, 1000);
        assert_eq!(rec.last_logged, 1000);
        assert!((1..=1000).all(|z| rec.tree.get(&format!("/n{z}")).is_some()));
    }

    /// A restart checks the digests of the txns it replays, as ZooKeeper's does: a txn
    /// whose digest is not the tree's after it is counted, and the first one named.
    #[test]
    fn replayed_txns_have_their_digests_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (db, log) = (dir.path().join("db"), dir.path().join("log"));
        let store = Store::open(&db, &log, false).unwrap();
        // Each txn with the digest a fresh tree has after it; 4 and 6 with wrong ones, 7 with
        // another digest version (not compared).
        let mut tree = DataTree::new(false);
        let mut batch = Vec::new();
        for z in 1..=8 {
            let mut t = create(z, &format!("/n{z}"));
            tree.apply(&t);
            let wrong = matches!(z, 4 | 6);
            t.digest = Some(jute::txn::TxnDigest {
                version: if z == 7 {
                    1
                } else {
                    crate::tree::DIGEST_VERSION
                },
                tree_digest: tree.digest() + i64::from(wrong),
            });
            batch.push(t);
        }
        store.append_log(&batch).unwrap();
        drop(store);
        let store = Store::open(&db, &log, false).unwrap();
        let rec = store.recover(false, true).unwrap();
        assert_eq!(rec.tree.last_zxid, 8);
        assert_eq!(rec.digest_mismatches, 2);
        let (zxid, theirs, ours) = rec.first_digest_mismatch.unwrap();
        assert_eq!((zxid, theirs), (4, ours + 1));
        assert_eq!(rec.tree.digest(), tree.digest());
    }

    #[test]
    fn a_members_tail_holds_every_unapplied_txn_and_the_window_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), &dir.path().join("log"), false).unwrap();
        let txns: Vec<TxnEntry> = (1..=3000).map(|z| create(z, &format!("/n{z}"))).collect();
        store.append_log(&txns).unwrap();
        let zxids = |t: Vec<TxnEntry>| t.iter().map(|e| e.header.zxid).collect::<Vec<_>>();
        // Applied far behind the log (its save lost with the power): all of it after 500.
        let tail = zxids(store.member_tail(500, 100).unwrap());
        assert_eq!(tail, (401..=3000).collect::<Vec<_>>());
        // Applied near the end: the window of committed txns, then the unapplied ones.
        let tail = zxids(store.member_tail(2990, 100).unwrap());
        assert_eq!(tail, (2891..=3000).collect::<Vec<_>>());
        // Fewer txns than the window: all of them.
        let tail = zxids(store.member_tail(3000, 10_000).unwrap());
        assert_eq!(tail.len(), 3000);
    }

    /// A store under `dir` (db, log) that logged the create of `path` at `zxid`, and a tree
    /// that applied it (its changes not saved yet).
    fn one_node_logged(
        dir: &Path,
        zxid: i64,
        path: &str,
    ) -> (Store, DataTree, std::path::PathBuf, std::path::PathBuf) {
        let (db, log) = (dir.join("db"), dir.join("log"));
        let store = Store::open(&db, &log, true).unwrap();
        let mut tree = DataTree::new(false);
        let t = create(zxid, path);
        store.append_log([&t]).unwrap();
        tree.apply(&t);
        (store, tree, db, log)
    }

    #[test]
    fn the_applied_state_an_earlier_version_kept_in_meta_moves_next_to_the_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut tree, db, log) = one_node_logged(dir.path(), 7, "/kept");
        let dirty = tree.take_dirty();
        store.save_applied(&tree, &dirty, &[]).unwrap();
        // As that version left it: the last applied zxid and a session in `meta` only.
        store.db.delete_cf(store.cf(CF_NODES), LAST_ZXID).unwrap();
        let meta = store.cf(CF_META);
        store
            .db
            .put_cf(meta, OLD_LAST_ZXID, 7i64.to_be_bytes())
            .unwrap();
        let mut old_session = vec![b's'];
        old_session.extend_from_slice(&0x55i64.to_be_bytes());
        store
            .db
            .put_cf(meta, &old_session, 4000i32.to_be_bytes())
            .unwrap();
        drop(store);

        let store = Store::open(&db, &log, true).unwrap();
        let rec = store.recover(false, true).unwrap();
        assert_eq!(rec.tree.last_zxid, 7);
        assert!(rec.tree.get("/kept").is_some());
        assert_eq!(rec.tree.sessions.get(&0x55), Some(&4000));
        let meta = store.cf(CF_META);
        assert_eq!(store.db.get_cf(meta, OLD_LAST_ZXID).unwrap(), None);
        assert_eq!(store.db.get_cf(meta, &old_session).unwrap(), None);
    }

    #[test]
    fn sessions_and_the_last_applied_zxid_load_with_the_nodes_and_never_as_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut tree, db, log) = one_node_logged(dir.path(), 3, "/a");
        tree.insert_session(0x1234, 6000);
        let dirty = tree.take_dirty();
        let sessions = [(0x1234, Some(6000)), (0x99, Some(9000)), (0x77, None)];
        store.save_applied(&tree, &dirty, &sessions).unwrap();
        store.save_applied(&tree, &dirty, &[(0x99, None)]).unwrap();
        let nodes = tree.len();
        drop(store);

        let store = Store::open(&db, &log, true).unwrap();
        let rec = store.recover(false, false).unwrap();
        assert_eq!(rec.tree.last_zxid, 3);
        assert_eq!(rec.tree.len(), nodes, "only the nodes load as nodes");
        rec.tree.for_each(|p, _| assert!(p.starts_with('/')));
        let sessions: Vec<(i64, i32)> = rec.tree.sessions.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(sessions, vec![(0x1234, 6000)]);
    }

    #[test]
    fn txns_an_earlier_version_logged_in_rocksdb_move_to_the_txlog() {
        let dir = tempfile::tempdir().unwrap();
        let (db, log) = (dir.path().join("db"), dir.path().join("log"));
        let store = Store::open(&db, &log, true).unwrap();
        let mut buf = Vec::new();
        for z in 1..=3 {
            buf.clear();
            create(z, &format!("/n{z}")).encode(&mut buf);
            store
                .db
                .put_cf(store.cf(CF_LOG), z.to_be_bytes(), &buf)
                .unwrap();
        }
        drop(store);
        let store = Store::open(&db, &log, true).unwrap();
        assert_eq!(store.last_logged().unwrap(), Some(3));
        let moved: Vec<i64> = store
            .txns_after(0)
            .unwrap()
            .iter()
            .map(|t| t.header.zxid)
            .collect();
        assert_eq!(moved, vec![1, 2, 3]);
        let left = store
            .db
            .iterator_cf(store.cf(CF_LOG), rocksdb::IteratorMode::Start)
            .count();
        assert_eq!(left, 0);
        // Recovery replays them onto the initial tree.
        let rec = store.recover(false, true).unwrap();
        assert!(rec.tree.get("/n3").is_some());
        assert_eq!(rec.last_logged, 3);
    }

    /// Applies `txn` to both trees.
    fn apply_both(a: &mut DataTree, b: &mut DataTree, txn: TxnEntry) {
        a.apply(&txn);
        b.apply(&txn);
    }

    fn txn(zxid: i64, client_id: i64, record: TxnRecord) -> TxnEntry {
        TxnEntry {
            header: TxnHeader {
                client_id,
                cxid: 1,
                zxid,
                time: zxid,
                type_: record.op().code(),
            },
            record,
            digest: None,
        }
    }

    /// Everything a client can see of `p` in `t`: its node and its children's names.
    fn seen(t: &DataTree, p: &str) -> Option<(Node, Vec<String>)> {
        let n = t.get(p)?;
        let mut children: Vec<String> = t.children(p).iter().map(|c| c.to_string()).collect();
        children.sort();
        Some(((*n).clone(), children))
    }

    #[test]
    fn a_tree_over_the_store_with_no_memory_to_spare_answers_as_one_held_in_memory() {
        // No budget: every node not changed since the last save is read from the store.
        paged_tree_answers_as_one_held_in_memory(0);
    }

    #[test]
    fn a_tree_over_the_store_that_keeps_some_nodes_answers_as_one_held_in_memory() {
        // Room for some nodes and lists of children, swept now and then.
        paged_tree_answers_as_one_held_in_memory(40 << 10);
    }

    #[test]
    fn a_learner_given_the_leaders_prior_nodes_answers_as_one_held_in_memory() {
        // No budget, and before each setData or delete the node as the leader has it: the
        // learner applies it without reading the node from its store, to the same state.
        paged_tree_answers_as_one_held_in_memory_primed(0, true);
    }

    /// Random creates (some ephemeral), setData, deletes and session closes, applied to a tree
    /// over a store holding `budget` bytes of nodes and to one holding all in memory, saved
    /// now and then; both answer the same after each txn, and after a restart.
    fn paged_tree_answers_as_one_held_in_memory(budget: usize) {
        paged_tree_answers_as_one_held_in_memory_primed(budget, false);
    }

    fn paged_tree_answers_as_one_held_in_memory_primed(budget: usize, primed: bool) {
        use jute::txn::{CreateSessionTxn, DeleteTxn, SetDataTxn};
        let dir = tempfile::tempdir().unwrap();
        let (db, log) = (dir.path().join("db"), dir.path().join("log"));
        let mut store = Store::open(&db, &log, false).unwrap();
        store.set_node_cache(budget);
        let mut paged = store.recover(false, false).unwrap().tree;
        let mut held = DataTree::new(false);
        let mut live: Vec<String> = vec!["/".into()];
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as usize
        };
        let mut last_session = 0;
        let mut primes = 0;
        for zxid in 1..=3000i64 {
            let mut pick = live[next(live.len())].clone();
            let record = match next(10) {
                0..=4 => {
                    // Ephemerals have no children (prep refuses them).
                    if held.get(&pick).is_some_and(|n| n.stat.ephemeral_owner != 0) {
                        pick = "/".into();
                    }
                    let cversion = held.get(&pick).map_or(0, |n| n.stat.cversion);
                    let session = [0, 0, 0x11, 0x22][next(4)];
                    let path = crate::path::join(&pick, &format!("n{}", next(40)));
                    if held.get(&path).is_some() {
                        // Never logged: prep answers NodeExists.
                        continue;
                    }
                    TxnRecord::Create(CreateTxn {
                        path,
                        data: Some(vec![b'd'; next(300)]),
                        acl: Some(crate::acl::open_acl_unsafe()),
                        ephemeral: session != 0,
                        parent_c_version: cversion + 1,
                    })
                }
                5..=6 => TxnRecord::SetData(SetDataTxn {
                    path: pick.clone(),
                    data: Some(vec![b's'; next(200)]),
                    version: 1,
                }),
                7..=8 if pick != "/" && held.get(&pick).is_some_and(|n| n.num_children == 0) => {
                    TxnRecord::Delete(DeleteTxn { path: pick.clone() })
                }
                9 => {
                    last_session = [0x11, 0x22][next(2)];
                    TxnRecord::CloseSession(None)
                }
                _ => TxnRecord::CreateSession(CreateSessionTxn { time_out: 4000 }),
            };
            let client = match record {
                TxnRecord::CloseSession(_) => last_session,
                TxnRecord::Create(ref c) if c.ephemeral => [0x11, 0x22][next(2)],
                _ => 0x33,
            };
            let t = txn(zxid, client, record);
            if primed {
                if let Some(n) = crate::tree::record_path(&t.record).and_then(|p| held.get(p)) {
                    let mut prior = Vec::new();
                    n.encode_prior(&mut prior);
                    primes += usize::from(paged.prime(&t, &prior));
                }
            }
            apply_both(&mut paged, &mut held, t);
            live.clear();
            held.for_each(|p, _| {
                if !p.starts_with("/zookeeper") {
                    live.push(p.to_string())
                }
            });
            live.sort();
            // Reads now, with changes held in memory, and after a save let them go.
            for p in live.iter().take(5).chain(live.iter().rev().take(5)) {
                assert_eq!(seen(&paged, p), seen(&held, p), "{p} at {zxid}");
            }
            if zxid % 10 == 0 {
                for p in ["/", pick.as_str()] {
                    assert_eq!(paged.descendants(p), held.descendants(p), "{p} at {zxid}");
                }
                // SNAP's encoding merges the changed nodes into the store's scan: the same
                // bytes as the tree held whole, sorted.
                assert_eq!(
                    Store::encode_snapshot(&paged),
                    Store::encode_snapshot(&held),
                    "at {zxid}"
                );
            }
            if next(3) == 0 {
                let (dirty, sessions) = (paged.take_dirty(), paged.take_dirty_sessions());
                store.save_applied(&paged, &dirty, &sessions).unwrap();
                paged.recycle_dirty(dirty);
                if budget == 0 {
                    assert!(paged.held_in_memory() <= 1, "all let go");
                }
            }
            assert_eq!(paged.len(), held.len());
            assert_eq!(paged.digest(), held.digest());
            assert_eq!(paged.approximate_data_size(), held.approximate_data_size());
            assert_eq!(paged.all_ephemerals(), held.all_ephemerals());
        }
        assert!(live.len() > 100, "{} nodes", live.len());
        if primed {
            assert!(primes > 300, "{primes} nodes primed");
        }
        for p in &live {
            assert_eq!(seen(&paged, p), seen(&held, p), "{p}");
        }
        assert_eq!(paged.descendants("/"), held.descendants("/"));
        // The snapshot of either is the same, and so is a restart's tree.
        assert_eq!(
            Store::encode_snapshot(&paged),
            Store::encode_snapshot(&held)
        );
        let (dirty, sessions) = (paged.take_dirty(), paged.take_dirty_sessions());
        store.save_applied(&paged, &dirty, &sessions).unwrap();
        drop((paged, store));
        let store = Store::open(&db, &log, false).unwrap();
        let again = store.recover(false, false).unwrap().tree;
        assert_eq!(again.len(), held.len());
        assert_eq!(again.digest(), held.digest());
        assert_eq!(again.all_ephemerals(), held.all_ephemerals());
        assert_eq!(again.sessions, held.sessions);
        for p in &live {
            assert_eq!(seen(&again, p), seen(&held, p), "{p} after a restart");
        }
    }

    #[test]
    fn nodes_only_written_are_let_go_once_saved_and_nodes_read_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), &dir.path().join("log"), false).unwrap();
        let mut tree = store.recover(false, false).unwrap().tree;
        let save = |tree: &mut DataTree| {
            let (dirty, sessions) = (tree.take_dirty(), tree.take_dirty_sessions());
            store.save_applied(tree, &dirty, &sessions).unwrap();
            tree.recycle_dirty(dirty);
        };
        save(&mut tree);
        let before = tree.held_in_memory();
        for z in 1..=500 {
            tree.apply(&create(z, &format!("/n{z}")));
        }
        // The new nodes, unsaved, and the root, which the creates changed.
        assert_eq!(tree.held_in_memory(), before + 501);
        save(&mut tree);
        // Only written: all go, the root too.
        assert_eq!(tree.held_in_memory(), before);
        assert!(tree.get("/n7").is_some(), "read back from the store");
        assert_eq!(tree.held_in_memory(), before + 1);
        // A write loads the node it changes; once saved, it goes unless a client read it.
        let set = |z: i64, p: &str| {
            txn(
                z,
                1,
                TxnRecord::SetData(jute::txn::SetDataTxn {
                    path: p.into(),
                    data: Some(b"x".to_vec()),
                    version: 1,
                }),
            )
        };
        tree.apply(&set(501, "/n7"));
        tree.apply(&set(502, "/n8"));
        assert_eq!(tree.held_in_memory(), before + 2);
        save(&mut tree);
        assert_eq!(tree.held_in_memory(), before + 1, "a node read stays");
        assert_eq!(tree.get("/n7").unwrap().data.as_deref(), Some(&b"x"[..]));
        assert_eq!(tree.get("/n8").unwrap().data.as_deref(), Some(&b"x"[..]));
        assert_eq!(tree.children("/").len(), 501);
    }

    /// A store holding no nodes in memory, and its tree.
    fn unbudgeted(dir: &Path) -> (Store, DataTree) {
        let mut store = Store::open(&dir.join("db"), &dir.join("log"), false).unwrap();
        store.set_node_cache(0);
        let tree = store.recover(false, false).unwrap().tree;
        (store, tree)
    }

    fn save_all(store: &Store, tree: &mut DataTree) {
        let (dirty, sessions) = (tree.take_dirty(), tree.take_dirty_sessions());
        store.save_applied(tree, &dirty, &sessions).unwrap();
        tree.recycle_dirty(dirty);
    }

    /// [`unbudgeted`], with `/n1` to `/n<n>` created at zxids 1 to n, saved and let go.
    fn stored(dir: &Path, n: i64) -> (Store, DataTree) {
        let (store, mut tree) = unbudgeted(dir);
        for z in 1..=n {
            tree.apply(&create(z, &format!("/n{z}")));
        }
        save_all(&store, &mut tree);
        assert_eq!(tree.held_in_memory(), 0, "the nodes are in the store only");
        (store, tree)
    }

    #[test]
    fn a_path_found_missing_then_created_and_saved_is_read_back_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut tree) = unbudgeted(dir.path());
        save_all(&store, &mut tree);
        // Looked up and missing, across a save of other paths...
        assert!(tree.get("/a").is_none());
        tree.apply(&create(1, "/b"));
        save_all(&store, &mut tree);
        assert!(tree.get("/a").is_none());
        // ...then created: once saved, it is read from the store, not taken as missing.
        tree.apply(&create(2, "/a"));
        save_all(&store, &mut tree);
        assert_eq!(tree.held_in_memory(), 0, "nodes only written are let go");
        assert_eq!(tree.get("/a").unwrap().stat.czxid, 2);
        // And missing again once its deletion is saved.
        let delete = TxnRecord::Delete(jute::txn::DeleteTxn { path: "/a".into() });
        tree.apply(&txn(3, 1, delete));
        save_all(&store, &mut tree);
        assert!(tree.get("/a").is_none());
        assert!(tree.get("/b").is_some());
    }

    #[test]
    fn every_stored_node_is_found_through_the_path_filter_across_its_rebuilds_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut tree) = unbudgeted(dir.path());
        // More than a fresh filter is sized for: it is rebuilt by a thread while the saves go
        // on, and those saved meanwhile must not be lost by the rebuild.
        let n = 150_000i64;
        for chunk in (1..=n).collect::<Vec<_>>().chunks(5_000) {
            for z in chunk {
                tree.apply(&create(*z, &format!("/n{z}")));
            }
            save_all(&store, &mut tree);
        }
        let delete = TxnRecord::Delete(jute::txn::DeleteTxn { path: "/n7".into() });
        tree.apply(&txn(n + 1, 1, delete));
        save_all(&store, &mut tree);
        let check = |tree: &DataTree| {
            for z in (1..=n).filter(|z| *z != 7) {
                assert!(tree.get(&format!("/n{z}")).is_some(), "/n{z} lost");
            }
            assert!(tree.get("/n7").is_none());
            for z in n + 1..n + 1_000 {
                assert!(tree.get(&format!("/n{z}")).is_none());
            }
        };
        assert_eq!(tree.held_in_memory(), 0, "read from the store, not held");
        check(&tree);
        if let Some(t) = store.rebuilder.lock().unwrap().take() {
            t.join().unwrap();
        }
        check(&tree);
        // Far past the filter's first size: it was rebuilt larger.
        assert!(store.filter.bytes() * 8 >= (n as usize) * 4);
        drop(tree);
        let again = store.open_tree(false).unwrap();
        check(&again);
    }

    #[test]
    fn an_installed_snapshot_is_found_through_the_path_filter_before_and_after_the_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, tree) = stored(dir.path(), 3);
        let mut snapshot = DataTree::new(false);
        for z in 1..=3 {
            snapshot.apply(&create(z, &format!("/m{z}")));
        }
        store.replace_all(&snapshot).unwrap();
        // Between the install and the reopen, the filter must not answer from the old keys.
        assert!(
            tree.get("/m2").is_some(),
            "a new node looked up before the reopen"
        );
        let again = store.open_tree(false).unwrap();
        for z in 1..=3 {
            assert!(again.get(&format!("/m{z}")).is_some());
            assert!(again.get(&format!("/n{z}")).is_none());
        }
    }

    #[test]
    fn txns_a_fuzzy_snapshot_holds_already_change_nothing_when_applied_over_it() {
        // A ZooKeeper leader's snapshot is written while its tree changes: at zxid 10 it
        // may hold /b, created at 12. The txns after 10 come again after it.
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = stored(dir.path(), 3);
        let mut leader = DataTree::new(false);
        for (z, p) in [(9, "/a"), (12, "/b"), (13, "/b/c")] {
            leader.apply(&create(z, p));
        }
        let mut fuzzy = Store::encode_snapshot(&leader);
        fuzzy[..8].copy_from_slice(&10i64.to_be_bytes());
        store.install_snapshot(&fuzzy).unwrap();
        let mut tree = store.open_tree(false).unwrap();
        assert_eq!(tree.last_zxid, 10);
        let before = (
            tree.len(),
            tree.get("/").unwrap().num_children,
            tree.digest(),
        );
        for (z, p) in [(12, "/b"), (13, "/b/c")] {
            tree.apply(&create(z, p));
        }
        assert_eq!(
            (
                tree.len(),
                tree.get("/").unwrap().num_children,
                tree.digest()
            ),
            before
        );
        assert_eq!(tree.get("/b").unwrap().num_children, 1);
        // Past the newest zxid the snapshot holds, creates are new nodes again.
        tree.apply(&create(14, "/d"));
        assert_eq!(tree.len(), before.0 + 1);
        assert_eq!(tree.get("/").unwrap().num_children, before.1 + 1);
    }

    /// Whether the store holds the mark of an install under way.
    fn installing(store: &Store) -> bool {
        store
            .db
            .get_cf(store.cf(CF_META), INSTALLING)
            .unwrap()
            .is_some()
    }

    #[test]
    fn a_snapshot_installs_from_its_bytes_and_a_broken_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = stored(dir.path(), 3);
        let mut snapshot = DataTree::new(false);
        // More nodes than two write batches hold.
        let last = (2 * INSTALL_BATCH + 5) as i64;
        for z in 1..=last {
            snapshot.apply(&create(z, &format!("/m{z}")));
        }
        snapshot.insert_session(0x77, 4000);
        let bytes = Store::encode_snapshot(&snapshot);
        // Cut short (its last record), or announcing a node more than it holds: refused
        // before anything is written, the old tree stays.
        let count = last as i32 + 4;
        let mut more = bytes.clone();
        // After the zxid, the session count and the one session: the number of nodes.
        more[24..28].copy_from_slice(&(count + 1).to_be_bytes());
        // Or fewer than it holds: a record left over.
        let mut fewer = bytes.clone();
        fewer[24..28].copy_from_slice(&(count - 1).to_be_bytes());
        for broken in [&bytes[..bytes.len() - 10], &more[..], &fewer[..]] {
            assert!(store.install_snapshot(broken).is_err());
            let tree = store.open_tree(false).unwrap();
            assert!(tree.get("/n2").is_some() && tree.get("/m2").is_none());
        }
        assert_eq!(
            store.install_snapshot(&bytes).unwrap(),
            (last, last as usize + 4)
        );
        let tree = store.open_tree(false).unwrap();
        assert_eq!(tree.last_zxid, last);
        assert_eq!(tree.sessions.get(&0x77), Some(&4000));
        assert!(tree.get("/n2").is_none());
        // Every node as it was (the per-node digest is a cache, recounted when needed).
        let listing = |t: &DataTree| {
            let mut out = Vec::new();
            t.for_each(|p, n| {
                let mut n = n.clone();
                n.digest = 0;
                out.push((p.to_string(), n));
            });
            out
        };
        let (mut got, mut want) = (listing(&tree), listing(&snapshot));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want);
        assert_eq!(tree.digest(), snapshot.digest());
        assert!(!installing(&store));
    }

    #[test]
    fn a_restore_cut_by_a_crash_is_finished_from_its_staged_file_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = stored(dir.path(), 3);
        let mut snapshot = DataTree::new(false);
        for z in 1..=50 {
            snapshot.apply(&create(z, &format!("/r{z}")));
        }
        snapshot.insert_session(0x55, 6000);
        let bytes = Store::encode_snapshot(&snapshot);
        let staged = dir.path().join(RESTORE_FILE);
        // Staged, then what a crash midway through the install leaves.
        store.stage_restore(&bytes).unwrap();
        assert!(staged.exists());
        store.mark(INSTALLING, true).unwrap();
        store.begin_replace().unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("db"), &dir.path().join("log"), false).unwrap();
        let tree = store.recover(false, true).unwrap().tree;
        assert_eq!((tree.last_zxid, tree.len()), (50, snapshot.len()));
        assert!(tree.get("/r50").is_some() && tree.get("/n1").is_none());
        assert_eq!(tree.sessions.get(&0x55), Some(&6000));
        assert_eq!(tree.digest(), snapshot.digest());
        assert!(!staged.exists(), "the staged file goes once installed");
        assert!(!installing(&store));
        // A staged file whose install never began (a crash before the mark): the tree
        // stays, and the file goes.
        let mut other = DataTree::new(false);
        other.apply(&create(60, "/other"));
        store
            .stage_restore(&Store::encode_snapshot(&other))
            .unwrap();
        drop(tree);
        drop(store);
        let store = Store::open(&dir.path().join("db"), &dir.path().join("log"), false).unwrap();
        let tree = store.recover(false, true).unwrap().tree;
        assert!(tree.get("/r50").is_some() && tree.get("/other").is_none());
        assert!(!staged.exists());
        // Staged and installed whole: the file goes, the tree is the snapshot's.
        store
            .stage_restore(&Store::encode_snapshot(&other))
            .unwrap();
        assert_eq!(store.install_staged_restore().unwrap().0, 60);
        assert!(!staged.exists());
        assert!(store.open_tree(false).unwrap().get("/other").is_some());
    }

    #[test]
    fn an_install_cut_by_a_crash_starts_over_from_the_initial_tree() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = stored(dir.path(), 3);
        let hs = crate::zab::HardState {
            accepted_epoch: 4,
            current_epoch: 4,
        };
        store.save_hard_state(hs).unwrap();
        // What a crash midway leaves: the mark, the old nodes gone, some of the new ones.
        store.mark(INSTALLING, true).unwrap();
        store.begin_replace().unwrap();
        let mut part = DataTree::new(false);
        part.apply(&create(1, "/half"));
        let half: Vec<(String, Node)> =
            vec![("/half".into(), (*part.get("/half").unwrap()).clone())];
        store.put_nodes(&half).unwrap();
        drop(store);
        let db = dir.path().join("db");
        let store = Store::open(&db, &dir.path().join("log"), false).unwrap();
        let tree = store.recover(false, true).unwrap().tree;
        let fresh = DataTree::new(false);
        assert_eq!((tree.last_zxid, tree.len()), (0, fresh.len()));
        assert!(tree.get("/zookeeper/quota").is_some() && tree.get("/half").is_none());
        assert!(tree.get("/n1").is_none(), "the old tree is gone too");
        assert_eq!(store.txns_after(0).unwrap().len(), 0);
        assert_eq!(store.load_hard_state(0).unwrap(), hs, "the epochs stay");
        assert!(!installing(&store));
        assert!(
            !store.is_fresh().unwrap(),
            "not taken for a data dir to import"
        );
    }

    #[test]
    fn a_create_replayed_at_or_below_the_last_applied_zxid_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, mut tree) = stored(dir.path(), 3);
        let (len, digest) = (tree.len(), tree.digest());
        // Replayed (the store holds them): neither counted nor digested twice.
        for z in 1..=3 {
            tree.apply(&create(z, &format!("/n{z}")));
        }
        assert_eq!((tree.len(), tree.digest()), (len, digest));
        let root = tree.get("/").unwrap();
        assert_eq!(root.num_children, 4, "/zookeeper and three");
    }

    #[test]
    fn a_members_config_text_is_saved_like_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut tree) = unbudgeted(dir.path());
        let size = tree.approximate_data_size();
        tree.set_config(b"server.1=127.0.0.1:2888:3888:participant");
        save_all(&store, &mut tree);
        assert_eq!(tree.held_in_memory(), 0, "nothing held");
        let n = tree.get("/zookeeper/config").unwrap();
        assert_eq!(
            n.data.as_deref(),
            Some(&b"server.1=127.0.0.1:2888:3888:participant"[..])
        );
        assert_eq!(n.stat.version, -1);
        assert_eq!(tree.approximate_data_size(), size + 40);
        let digest = tree.digest();
        let again = store.open_tree(false).unwrap();
        assert_eq!(again.digest(), digest);
        assert_eq!(again.approximate_data_size(), tree.approximate_data_size());
    }

    #[test]
    fn node_records_of_an_earlier_version_get_their_number_of_children_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (db, log) = (dir.path().join("db"), dir.path().join("log"));
        let store = Store::open(&db, &log, true).unwrap();
        let acl = Arc::new(crate::acl::open_acl_unsafe());
        let nodes = store.cf(CF_NODES);
        let paths = [
            "/",
            "/zookeeper",
            "/zookeeper/quota",
            "/a",
            "/a/b",
            "/a/c",
            "/a/b/d",
        ];
        for p in paths {
            // As that version wrote them: stat, ACL and data, no count.
            let node = Node::new(StatPersisted::default(), Some(b"x".to_vec()), acl.clone());
            let mut old = Vec::new();
            node.stat.encode(&mut old);
            jute::codec::write_vector(&mut old, Some(node.acl.as_slice()));
            jute::codec::write_buffer(&mut old, node.data.as_deref());
            store.db.put_cf(nodes, node_key(p), &old).unwrap();
        }
        store
            .db
            .put_cf(nodes, LAST_ZXID, 9i64.to_be_bytes())
            .unwrap();
        drop(store);
        let store = Store::open(&db, &log, true).unwrap();
        let tree = store.recover(false, false).unwrap().tree;
        let counts: Vec<u32> = paths
            .iter()
            .map(|p| tree.get(p).unwrap().num_children)
            .collect();
        assert_eq!(counts, vec![2, 1, 0, 2, 1, 0, 0]);
        let mut under_a: Vec<String> = tree.children("/a").iter().map(|c| c.to_string()).collect();
        under_a.sort();
        assert_eq!(under_a, vec!["b", "c"]);
        assert_eq!(tree.len(), paths.len());
        let nodes = store.cf(CF_NODES);
        assert_eq!(
            store.db.get_cf(nodes, FORMAT).unwrap().as_deref(),
            Some(FORMAT_COUNTS)
        );
    }
    use crate::snapshot::{SnapChunks, SnapFormat, PIECE};

    fn delete(zxid: i64, path: &str) -> TxnEntry {
        entry(
            zxid,
            TxnRecord::Delete(jute::txn::DeleteTxn { path: path.into() }),
        )
    }

    /// The pieces until the end; None if the stream broke off.
    fn gather(mut rx: SnapChunks) -> Option<(Vec<u8>, usize)> {
        let (mut all, mut pieces) = (Vec::new(), 0);
        loop {
            match rx.blocking_recv()? {
                Some(piece) => {
                    assert!(
                        piece.len() < PIECE + PIECE / 4,
                        "a piece of {}",
                        piece.len()
                    );
                    all.extend_from_slice(&piece);
                    pieces += 1;
                }
                None => return Some((all, pieces)),
            }
        }
    }

    #[test]
    fn a_snapshot_streams_in_pieces_from_the_store_as_it_was_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        // Records of some 140 bytes: several pieces' worth.
        let (store, mut tree) = stored(dir.path(), 40_000);
        tree.insert_session(0x51, 6000);
        save_all(&store, &mut tree);
        let sessions: Vec<(i64, i32)> = tree.sessions.iter().map(|(i, t)| (*i, *t)).collect();
        let zxid = tree.last_zxid;
        // What SNAP carried whole, its count left open and given at the end; and
        // ZooKeeper's format.
        let mut whole = Store::encode_snapshot(&tree);
        whole[24..28].copy_from_slice(&(-1i32).to_be_bytes());
        whole.extend_from_slice(&END_MARK);
        whole.extend_from_slice(&(tree.len() as i32).to_be_bytes());
        let zookeeper = crate::import::snap_for_zookeeper(&tree);
        let zkrs = store.stream_snapshot(SnapFormat::Zkrs, zxid, sessions.clone());
        let zk = store.stream_snapshot(SnapFormat::ZooKeeper, zxid, sessions.clone());
        // The tree moves on (nodes added, one deleted, all saved) while they are written: the
        // snapshots keep the view taken when they were asked for.
        for z in zxid + 1..=zxid + 3000 {
            tree.apply(&create(z, &format!("/later{z}")));
        }
        tree.apply(&delete(zxid + 3001, "/n7"));
        save_all(&store, &mut tree);
        let (bytes, pieces) = gather(zkrs).expect("whole");
        assert!(pieces >= 3, "{pieces} pieces");
        assert_eq!(bytes, whole);
        assert_eq!(gather(zk).expect("whole").0, zookeeper);
        // Installed elsewhere from a file (as a learner keeps it), the node count read to
        // the end: the tree as it was.
        let other = tempfile::tempdir().unwrap();
        let (target, _) = unbudgeted(other.path());
        let file = other.path().join("incoming");
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(
            target.install_snapshot_file(&file).unwrap(),
            (zxid, 40_000 + 4)
        );
        let installed = target.open_tree(false).unwrap();
        assert_eq!(installed.len(), 40_000 + 4);
        assert!(installed.get("/n7").is_some() && installed.get("/later40001").is_none());
        assert_eq!(installed.sessions.get(&0x51), Some(&6000));
        // A stream nobody reads any more stops its thread (the sender sees it gone).
        drop(store.stream_snapshot(SnapFormat::Zkrs, zxid, sessions));
    }

    #[test]
    fn a_streamed_snapshot_cut_short_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, tree) = stored(dir.path(), 3000);
        let sessions: Vec<(i64, i32)> = Vec::new();
        let (bytes, _) =
            gather(store.stream_snapshot(SnapFormat::Zkrs, tree.last_zxid, sessions)).unwrap();
        let other = tempfile::tempdir().unwrap();
        let (target, _) = stored(other.path(), 5);
        // Cut anywhere (at the end mark, inside the last record, inside the first), or with
        // a wrong count at the end.
        let mut miscounted = bytes.clone();
        let at = miscounted.len() - 4;
        miscounted[at..].copy_from_slice(&2999i32.to_be_bytes());
        let broken = [
            &bytes[..bytes.len() - 8],
            &bytes[..bytes.len() - 1],
            &bytes[..bytes.len() - 40],
            &bytes[..30],
            &miscounted[..],
        ];
        let file = other.path().join("incoming");
        for cut in broken {
            assert!(target.install_snapshot(cut).is_err(), "{} bytes", cut.len());
            std::fs::write(&file, cut).unwrap();
            assert!(
                target.install_snapshot_file(&file).is_err(),
                "{} bytes",
                cut.len()
            );
            let t = target.open_tree(false).unwrap();
            assert!(t.get("/n5").is_some() && t.get("/n6").is_none());
        }
        assert!(target
            .install_snapshot_file(&other.path().join("none"))
            .is_err());
        assert_eq!(target.install_snapshot(&bytes).unwrap().1, 3000 + 4);
    }
}
