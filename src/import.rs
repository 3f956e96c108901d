//! Taking over an Apache ZooKeeper data directory. At the first start on a `dataDir` (and
//! `dataLogDir`) where ZooKeeper ran, zkrs reads what ZooKeeper's own restart reads
//! (`FileTxnSnapLog.restore`): the newest valid snapshot in `dataDir/version-2`, then every
//! txn of the logs in `dataLogDir/version-2` after it, and the ZAB epochs. The tree, its
//! sessions and those txns are saved in zkrs's store; ZooKeeper's files are left as they are
//! (a later start reads zkrs's store, not them).
//!
//! The formats (`QUORUM-PROTOCOL.md`; ZooKeeper's FileSnap and FileTxnLog):
//!
//! * `snapshot.<zxid hex>`: FileHeader (`ZKSN`, version 2, dbid), the sessions (count, then
//!   id and timeout each), the ACL cache (count, then id and ACL list each), the nodes in
//!   pre-order (path, data, ACL id, StatPersisted; the root's path is empty) ended by the path
//!   `/`, then a seal: the Adler-32 of everything before it and the path `/`. From 3.6 a
//!   ZxidDigest and a second seal may follow; the import checks the tree against it, and
//!   against each later txn's digest, as ZooKeeper's restart does (`DigestCheck`).
//!   `snapshot.<zxid hex>.gz` and `.snappy` hold that stream gzipped or in snappy-java's
//!   framing.
//! * `log.<first zxid hex>`: FileHeader (`ZKLG`, version 2, dbid), then records: the Adler-32
//!   of the txn, its length, the txn (TxnHeader, record, optional TxnDigest) and the byte `B`;
//!   zeros (a length of 0) after the last record.
//!
//! A member's SNAP carries the same serialized tree (`SerializeUtils.serializeSnapshot`,
//! no file header or seal) on the quorum stream after the packet, ended by the signature
//! `BenWasHere`: [`SnapScan`] finds its end as it arrives and [`snap_from_zookeeper`] turns
//! it into zkrs's SNAP data, and [`snap_for_zookeeper`] writes one for a ZooKeeper learner.

use crate::store::{Store, StoreError};
use crate::tree::{DataTree, Node};
use jute::data::{Acl, StatPersisted};
use jute::{Decode, TxnEntry, TxnRecord};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SNAP_MAGIC: i32 = 0x5a4b_534e; // "ZKSN"
const LOG_MAGIC: i32 = 0x5a4b_4c47; // "ZKLG"
const VERSION: i32 = 2;
/// The ACL id ZooKeeper's ACL cache gives OPEN_ACL_UNSAFE.
const OPEN_ACL_ID: i64 = -1;
/// The end-of-record byte after each logged txn.
const EOR: u8 = b'B';
/// Nodes per write of an import.
const IMPORT_BATCH: usize = 20_000;
/// How many snapshots are tried, newest first, before giving up (as ZooKeeper's 100).
const SNAPSHOTS_TRIED: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{file} at byte {offset}: {reason}")]
    Format {
        file: String,
        offset: usize,
        reason: String,
    },
    #[error("{dir}: no snapshot could be read ({reasons})")]
    NoValidSnapshot { dir: String, reasons: String },
    #[error(
        "{dir}: no snapshot found, but there are log entries (ZooKeeper refuses such a data dir too, unless zookeeper.snapshot.trust.empty is true)"
    )]
    LogsWithoutSnapshot { dir: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import took over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// None: logs without a snapshot, replayed over the initial tree.
    pub snapshot: Option<PathBuf>,
    pub snapshot_zxid: i64,
    /// Txns of the logs applied after the snapshot.
    pub txns: usize,
    pub last_zxid: i64,
    pub nodes: usize,
    pub sessions: usize,
    /// Digests compared with the tree's, as ZooKeeper's restart compares them: the
    /// snapshot's and the replayed txns' (`DataTree.compareDigest`).
    pub digests_compared: u64,
    /// Of those, the ones that were not the tree's, and the first: (zxid, the recorded
    /// digest, the tree's).
    pub digest_mismatches: u64,
    pub first_digest_mismatch: Option<(i64, i64, i64)>,
}

/// Where ZooKeeper keeps its files under `dataDir` and `dataLogDir`.
pub fn zookeeper_dirs(data_dir: &Path, data_log_dir: Option<&Path>) -> (PathBuf, PathBuf) {
    (
        data_dir.join("version-2"),
        data_log_dir.unwrap_or(data_dir).join("version-2"),
    )
}

/// How an import reads ZooKeeper's files, from the settings ZooKeeper's restart reads them
/// with.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// `extendedTypesEnabled` (TTL nodes).
    pub extended_types: bool,
    /// ZooKeeper's `zookeeper.snapshot.trust.empty`: logs without a snapshot (a data dir of
    /// ZooKeeper 3.4 before 3.5.3, which wrote no first snapshot) are replayed over the
    /// initial tree, as ZooKeeper does with that property; without it they are refused.
    pub trust_empty: bool,
    /// `zookeeper.digest.enabled`: a snapshot's ZxidDigest is read (and its seal must hold,
    /// else the snapshot is not valid), and the digests are checked (`DigestCheck`).
    pub digest_enabled: bool,
}

impl ImportOptions {
    pub fn of(cfg: &crate::config::Config) -> Self {
        ImportOptions {
            extended_types: cfg.extended_types,
            trust_empty: cfg.snapshot_trust_empty,
            digest_enabled: cfg.digest_enabled,
        }
    }
}

/// Imports ZooKeeper's data into `store` when the store has never been written and there is
/// ZooKeeper data to take (`snap_dir`, `log_dir`: the `version-2` directories).
pub fn import_if_fresh(
    store: &Store,
    snap_dir: &Path,
    log_dir: &Path,
    opts: ImportOptions,
) -> Result<Option<Imported>, ImportError> {
    let ImportOptions {
        extended_types,
        trust_empty,
        digest_enabled,
    } = opts;
    if !store.is_fresh()? {
        return Ok(None);
    }
    let snaps = numbered_files(snap_dir, "snapshot.")?;
    let logs = numbered_files(log_dir, "log.")?;
    if snaps.is_empty() {
        if logs.is_empty() {
            return Ok(None);
        }
        if !trust_empty {
            return Err(ImportError::LogsWithoutSnapshot {
                dir: log_dir.display().to_string(),
            });
        }
        tracing::warn!(
            "No snapshot found, but there are log entries. This should only be allowed during \
             upgrading (zookeeper.snapshot.trust.empty): replaying {} over the initial tree",
            log_dir.display()
        );
        let txns = read_logs(&logs, 0)?;
        let epochs = read_epochs(snap_dir)?;
        store.begin_import()?;
        store.replace_all(&DataTree::new(extended_types))?;
        return replay_logged(store, opts, None, 0, None, txns, epochs).map(Some);
    }
    let (snapshot, snapshot_zxid, bytes, snap) =
        newest_valid_snapshot(snap_dir, &snaps, digest_enabled)?;
    let txns = read_logs(&logs, snapshot_zxid)?;
    let epochs = read_epochs(snap_dir)?;
    store.begin_import()?;
    // The snapshot's nodes go to the store in batches (a second walk of the file, which
    // the first one checked whole), never all in memory.
    store.begin_replace()?;
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut failed = None;
    let walked = walk_nodes(&bytes, &snap, |path, node| {
        batch.push((path, node));
        if batch.len() >= IMPORT_BATCH && failed.is_none() {
            failed = store.put_nodes(&std::mem::take(&mut batch)).err();
        }
    });
    drop(bytes);
    walked.map_err(|(offset, reason)| ImportError::Format {
        file: snapshot.display().to_string(),
        offset,
        reason,
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    store.put_nodes(&batch)?;
    store.finish_replace(&snap.sessions, snapshot_zxid)?;
    replay_logged(
        store,
        opts,
        Some(snapshot),
        snapshot_zxid,
        snap.digest,
        txns,
        epochs,
    )
    .map(Some)
}

/// ZooKeeper's restart's digest checks (`FileSnap.deserialize`, `DataTree.compareDigest`
/// and `compareSnapshotDigests`): a snapshot is fuzzy until the txn of its ZxidDigest is
/// applied again; the tree's digest is then compared with the snapshot's, and after each
/// txn from then on with the txn's own. A snapshot whose ZxidDigest is older than the
/// snapshot, or at zxid 0, has none to wait for.
struct DigestCheck {
    fuzzy: Option<ZxidDigest>,
    compared: u64,
    mismatches: u64,
    first: Option<(i64, i64, i64)>,
}

impl DigestCheck {
    fn new(digest: Option<ZxidDigest>, snapshot_zxid: i64, tree: &DataTree) -> Self {
        let fuzzy = digest.filter(|d| d.zxid > 0 && d.zxid >= snapshot_zxid);
        let mut check = DigestCheck {
            fuzzy,
            compared: 0,
            mismatches: 0,
            first: None,
        };
        // Not fuzzy at all: compared at once.
        check.snapshot_at(snapshot_zxid, tree);
        check
    }

    fn snapshot_at(&mut self, zxid: i64, tree: &DataTree) {
        let Some(d) = self.fuzzy.filter(|d| d.zxid == zxid) else {
            return;
        };
        self.fuzzy = None;
        if d.version == crate::tree::DIGEST_VERSION {
            self.compare(zxid, d.digest, tree.digest());
        }
    }

    /// After `txn` is applied.
    fn txn(&mut self, txn: &TxnEntry, tree: &DataTree) {
        self.snapshot_at(txn.header.zxid, tree);
        if self.fuzzy.is_some() {
            return;
        }
        if let Some(d) = &txn.digest {
            if d.version == crate::tree::DIGEST_VERSION {
                self.compare(txn.header.zxid, d.tree_digest, tree.digest());
            }
        }
    }

    fn compare(&mut self, zxid: i64, recorded: i64, tree: i64) {
        self.compared += 1;
        if recorded != tree {
            self.mismatches += 1;
            self.first.get_or_insert((zxid, recorded, tree));
        }
    }
}

/// The end of an import, its snapshot's tree stored: the txns after it, logged first (as
/// every txn is), applied over the stored tree and saved as they go, as a restart replays
/// its log; then the epochs.
fn replay_logged(
    store: &Store,
    opts: ImportOptions,
    snapshot: Option<PathBuf>,
    snapshot_zxid: i64,
    snapshot_digest: Option<ZxidDigest>,
    txns: Vec<TxnEntry>,
    epochs: Option<crate::zab::HardState>,
) -> Result<Imported, ImportError> {
    store.append_log(&txns)?;
    let mut tree = store.open_tree(opts.extended_types)?;
    let mut digests = DigestCheck::new(snapshot_digest, snapshot_zxid, &tree);
    for chunk in txns.chunks(4096) {
        for txn in chunk {
            replay(&mut tree, txn);
            if opts.digest_enabled {
                digests.txn(txn, &tree);
            }
        }
        let (dirty, sessions) = (tree.take_dirty(), tree.take_dirty_sessions());
        store.save_applied(&tree, &dirty, &sessions)?;
        tree.recycle_dirty(dirty);
    }
    store.flush()?;
    if let Some(hs) = epochs {
        store.save_hard_state(hs)?;
    }
    store.finish_import()?;
    Ok(Imported {
        snapshot,
        snapshot_zxid,
        txns: txns.len(),
        last_zxid: tree.last_zxid,
        nodes: tree.len(),
        sessions: tree.sessions.len(),
        digests_compared: digests.compared,
        digest_mismatches: digests.mismatches,
        first_digest_mismatch: digests.first,
    })
}

/// Applies one logged txn as ZooKeeper's restart does: a snapshot is fuzzy (written while
/// the tree changed), so it may hold a node whose create comes after it. Such a create
/// changes nothing but its parent's cversion and pzxid, raised to the txn's
/// (`DataTree.setCversionPzxid`).
fn replay(tree: &mut DataTree, txn: &TxnEntry) {
    if let TxnRecord::Create(t) = &txn.record {
        if tree.get(&t.path).is_some() {
            if let Some(parent) = crate::path::parent(&t.path) {
                tree.raise_cversion_pzxid(parent, t.parent_c_version, txn.header.zxid);
            }
        }
    }
    // The snapshot may hold what this txn did: with the txn's zxid as the last applied one,
    // its creates look for their nodes in the store too, not only among those in memory.
    tree.last_zxid = tree.last_zxid.max(txn.header.zxid);
    tree.apply(txn);
}

/// The files of `dir` named `<prefix><hex zxid>`, oldest first, whatever follows the zxid
/// after a dot (ZooKeeper's `getZxidFromName`: `snapshot.14.gz` is the snapshot at 0x14).
/// A name that holds no zxid is left out.
fn numbered_files(dir: &Path, prefix: &str) -> Result<Vec<(i64, PathBuf)>, ImportError> {
    let mut files = zookeeper_files(dir, prefix).map_err(|e| io_error(dir, e))?;
    files.retain(|(zxid, _)| *zxid >= 0);
    Ok(files)
}

/// The files of `dir` whose names start with `prefix`, with the zxid the rest names as
/// ZooKeeper's `Util.getZxidFromName` reads it (the hex up to the next dot; -1 when it is
/// not one), lowest first. A dir that is not there has none.
pub(crate) fn zookeeper_files(dir: &Path, prefix: &str) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let hex = rest.split('.').next().unwrap_or(rest);
        out.push((i64::from_str_radix(hex, 16).unwrap_or(-1), entry.path()));
    }
    out.sort();
    Ok(out)
}

fn io_error(path: &Path, source: std::io::Error) -> ImportError {
    ImportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The newest snapshot that reads whole and whose seal checks: its path, zxid, bytes and
/// what its first walk found.
fn newest_valid_snapshot(
    dir: &Path,
    snaps: &[(i64, PathBuf)],
    digest_enabled: bool,
) -> Result<(PathBuf, i64, Vec<u8>, Snapshot), ImportError> {
    let mut reasons = Vec::new();
    for (zxid, path) in snaps.iter().rev().take(SNAPSHOTS_TRIED) {
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        let read = uncompressed(path, bytes).and_then(|bytes| {
            let snap = read_snapshot(&bytes, digest_enabled)?;
            Ok((bytes, snap))
        });
        match read {
            Ok((bytes, snap)) => return Ok((path.clone(), *zxid, bytes, snap)),
            Err((offset, reason)) => {
                let name = path.display();
                tracing::warn!("{name}: not readable at byte {offset}: {reason}");
                reasons.push(format!("{name} at byte {offset}: {reason}"));
            }
        }
    }
    Err(ImportError::NoValidSnapshot {
        dir: dir.display().to_string(),
        reasons: reasons.join("; "),
    })
}

/// A snapshot file's stream as ZooKeeper wrote it before compressing it
/// (`zookeeper.snapshot.compression.method`): by the name's ending, `.gz` is gzip and
/// `.snappy` snappy-java's stream; any other is the stream itself (`SnapStream`). The seal
/// is over the uncompressed stream.
fn uncompressed(path: &Path, bytes: Vec<u8>) -> At<Vec<u8>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => {
            let mut out = Vec::with_capacity(bytes.len() * 4);
            std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
                &mut out,
            )
            .map_err(|e| (0, format!("gzip: {e}")))?;
            Ok(out)
        }
        Some("snappy") => snappy_java(&bytes),
        _ => Ok(bytes),
    }
}

/// snappy-java's `SnappyOutputStream`: an 8-byte magic (`\x82SNAPPY\0`) and two version
/// ints, then blocks of a big-endian length and that many bytes of raw snappy. A stream
/// appended to another starts again with the header.
fn snappy_java(bytes: &[u8]) -> At<Vec<u8>> {
    const MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    const HEADER: usize = MAGIC.len() + 8;
    if !bytes.starts_with(&MAGIC) {
        return Err((0, "not a snappy-java stream (no magic header)".into()));
    }
    let mut decoder = snap::raw::Decoder::new();
    let mut out = Vec::with_capacity(bytes.len() * 4);
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at..].starts_with(&MAGIC) {
            if bytes.len() - at < HEADER {
                return Err((at, "snappy: a header cut short".into()));
            }
            at += HEADER;
            continue;
        }
        let len = bytes
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| (at, "snappy: a block length cut short".to_string()))?;
        let block = usize::try_from(len)
            .ok()
            .and_then(|len| bytes.get(at + 4..at + 4 + len))
            .ok_or_else(|| (at, format!("snappy: a block of {len} bytes past the end")))?;
        let plain = decoder
            .decompress_vec(block)
            .map_err(|e| (at + 4, format!("snappy: {e}")))?;
        out.extend_from_slice(&plain);
        at += 4 + block.len();
    }
    Ok(out)
}

/// Adler-32 (RFC 1950), as `java.util.zip.Adler32`.
fn adler32(bytes: &[u8]) -> u32 {
    let mut sum = Adler32::default();
    sum.update(bytes);
    sum.value()
}

/// Adler-32 fed in pieces, as a `CheckedOutputStream` sums what goes through it.
#[derive(Debug, Clone, Copy)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 { a: 1, b: 0 }
    }
}

impl Adler32 {
    pub fn update(&mut self, bytes: &[u8]) {
        const MOD: u32 = 65521;
        // 5552 bytes is the most that can be summed before the u32 sums could overflow.
        for chunk in bytes.chunks(5552) {
            for &x in chunk {
                self.a += u32::from(x);
                self.b += self.a;
            }
            self.a %= MOD;
            self.b %= MOD;
        }
    }

    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }
}

/// ZooKeeper 3.9's snapshot file (`FileSnap.serialize`), as its `snapshot` admin command
/// writes it: the file header, the serialized tree (given to [`SnapshotFile::write`] in
/// pieces, without a SNAP's signature), a seal, the ZxidDigest (zxid, digest version, tree
/// digest) and a seal, the last processed zxid and a seal. A seal is the Adler-32 of
/// everything before it, then the path `/`.
pub struct SnapshotFile<W: std::io::Write> {
    out: W,
    sum: Adler32,
    len: u64,
}

impl<W: std::io::Write> SnapshotFile<W> {
    /// Writes the file header (dbid -1, as ZooKeeper's FileSnap).
    pub fn new(out: W) -> std::io::Result<Self> {
        let mut file = SnapshotFile {
            out,
            sum: Adler32::default(),
            len: 0,
        };
        let mut head = Vec::with_capacity(16);
        head.extend_from_slice(&SNAP_MAGIC.to_be_bytes());
        head.extend_from_slice(&VERSION.to_be_bytes());
        head.extend_from_slice(&(-1i64).to_be_bytes());
        file.write(&head)?;
        Ok(file)
    }

    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sum.update(bytes);
        self.len += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn seal(&mut self) -> std::io::Result<()> {
        let mut seal = Vec::with_capacity(13);
        seal.extend_from_slice(&i64::from(self.sum.value()).to_be_bytes());
        seal.extend_from_slice(&1i32.to_be_bytes());
        seal.push(b'/');
        self.write(&seal)
    }

    /// Seals the tree, then writes the digest of the tree at `zxid` and the last processed
    /// zxid (`serializeLastProcessedZxid.enabled`), each sealed. The writer and the file's
    /// length.
    pub fn finish(
        mut self,
        zxid: i64,
        digest: i64,
        last_processed: bool,
    ) -> std::io::Result<(W, u64)> {
        self.seal()?;
        let mut zxid_digest = Vec::with_capacity(20);
        zxid_digest.extend_from_slice(&zxid.to_be_bytes());
        zxid_digest.extend_from_slice(&crate::tree::DIGEST_VERSION.to_be_bytes());
        zxid_digest.extend_from_slice(&digest.to_be_bytes());
        self.write(&zxid_digest)?;
        self.seal()?;
        if last_processed {
            self.write(&zxid.to_be_bytes())?;
            self.seal()?;
        }
        self.out.flush()?;
        Ok((self.out, self.len))
    }
}

/// A snapshot file as the `restore` admin command takes it (ZooKeeper's, not compressed:
/// [`SnapshotFile`]'s format, or 3.8's without the last processed zxid, or older ones
/// without a digest), checked whole (every record and every seal), turned into zkrs's SNAP
/// data. The data's zxid is the later of `at_least` and the snapshot's; the snapshot's is
/// returned with it: its last processed zxid, or else the latest zxid its nodes name.
pub fn snap_from_snapshot_file(bytes: &[u8], at_least: i64) -> Result<(Vec<u8>, i64), String> {
    let at = |(offset, reason): (usize, String)| format!("byte {offset}: {reason}");
    let mut r = jute::Reader::with_limit(bytes, usize::MAX >> 2);
    file_header(&mut r, SNAP_MAGIC).map_err(at)?;
    let (snap, sealed) = read_tree(bytes, r.position()).map_err(at)?;
    // Each seal sums everything before it; what may follow the first is ZooKeeper's
    // `deserializeZxidDigest` and `deserializeLastProcessedZxid`, each sealed.
    let check_seal = |pos: usize| -> At<usize> {
        let mut r = jute::Reader::with_limit(&bytes[pos..], usize::MAX >> 2);
        let seal = field(&mut r, "checksum", |r| r.read_i64())?;
        let computed = adler32(&bytes[..pos]);
        if seal != i64::from(computed) {
            return Err((pos, format!("checksum {seal:#x}, computed {computed:#x}")));
        }
        field(&mut r, "seal path", String::decode)?;
        Ok(pos + r.position())
    };
    let mut pos = check_seal(sealed).map_err(at)?;
    const SEAL: usize = 8 + 4 + 1;
    let mut last_processed = None;
    let rest = bytes.len() - pos;
    if rest == 20 + SEAL || rest == 20 + SEAL + 8 + SEAL {
        // ZxidDigest: zxid, digest version, digest (zkrs counts its own).
        pos = check_seal(pos + 20).map_err(at)?;
    }
    if bytes.len() - pos == 8 + SEAL {
        let mut r = jute::Reader::with_limit(&bytes[pos..], usize::MAX >> 2);
        last_processed = Some(field(&mut r, "last processed zxid", |r| r.read_i64()).map_err(at)?);
        pos = check_seal(pos + 8).map_err(at)?;
    }
    if pos != bytes.len() {
        return Err(format!(
            "byte {pos}: {} bytes after the snapshot",
            bytes.len() - pos
        ));
    }
    let zxid = match last_processed {
        Some(z) => z,
        None => {
            let mut latest = 0i64;
            walk_nodes(bytes, &snap, |_, node| {
                let s = &node.stat;
                latest = latest.max(s.czxid).max(s.mzxid).max(s.pzxid);
            })
            .map_err(at)?;
            latest
        }
    };
    let mut out =
        crate::store::SnapshotEncoder::new(zxid.max(at_least), &snap.sessions, bytes.len());
    walk_nodes(bytes, &snap, |p, node| out.push(&p, &node)).map_err(at)?;
    Ok((out.finish(), zxid))
}

type At<T> = Result<T, (usize, String)>;

/// Reads the field `what` at the reader's position, naming it on failure.
fn field<T>(
    r: &mut jute::Reader<'_>,
    what: &str,
    read: impl FnOnce(&mut jute::Reader<'_>) -> Result<T, jute::DecodeError>,
) -> At<T> {
    let at = r.position();
    read(r).map_err(|e| (at, format!("{what}: {e}")))
}

fn file_header(r: &mut jute::Reader<'_>, magic: i32) -> At<()> {
    let m = field(r, "magic", |r| r.read_i32())?;
    if m != magic {
        return Err((0, format!("magic {m:#x}, not {magic:#x}")));
    }
    let v = field(r, "version", |r| r.read_i32())?;
    if v != VERSION {
        return Err((4, format!("version {v}, not {VERSION}")));
    }
    field(r, "dbid", |r| r.read_i64())?;
    Ok(())
}

/// What the first walk of a snapshot finds: everything but the nodes, where they begin,
/// and how many children each node has.
#[derive(Debug)]
struct Snapshot {
    sessions: Vec<(i64, i32)>,
    acls: HashMap<i64, Arc<Vec<Acl>>>,
    nodes_at: usize,
    children: HashMap<String, u32>,
    /// The ZxidDigest after the seal (ZooKeeper 3.6 on), when its own seal checks.
    digest: Option<ZxidDigest>,
}

/// A snapshot's ZxidDigest: the tree's digest after txn `zxid` (the last one applied when
/// the snapshot ended; a snapshot is written while the tree changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ZxidDigest {
    zxid: i64,
    version: i32,
    digest: i64,
}

/// Reads a snapshot through, checking every record and the seal, and with
/// `digest_enabled` the ZxidDigest after it.
fn read_snapshot(bytes: &[u8], digest_enabled: bool) -> At<Snapshot> {
    let mut r = jute::Reader::with_limit(bytes, usize::MAX >> 2);
    file_header(&mut r, SNAP_MAGIC)?;
    let (snap, sealed) = read_tree(bytes, r.position())?;
    let mut r = jute::Reader::with_limit(&bytes[sealed..], usize::MAX >> 2);
    let seal = field(&mut r, "checksum", |r| r.read_i64())?;
    let mut sum = Adler32::default();
    sum.update(&bytes[..sealed]);
    let computed = sum.value();
    if seal != i64::from(computed) {
        return Err((
            sealed,
            format!("checksum {seal:#x}, computed {computed:#x}"),
        ));
    }
    let end = field(&mut r, "seal", String::decode)?;
    if end != "/" {
        return Err((sealed + 8, format!("seal path {end:?}, not \"/\"")));
    }
    let mut snap = snap;
    if digest_enabled {
        // The second seal sums the whole stream again: the first one's sum goes on.
        let at = sealed + r.position();
        sum.update(&bytes[sealed..at]);
        snap.digest = zxid_digest(bytes, at, sum)?;
    }
    Ok(snap)
}

/// The ZxidDigest at `bytes[at..]`, if the file goes on there, and the seal after it
/// (`DataTree.deserializeZxidDigest`, then `SnapStream.checkSealIntegrity`): a snapshot
/// that ends before a whole ZxidDigest has none (one written before 3.6); one whose seal
/// after it is missing or does not hold is not valid. `sum`: the Adler-32 of `bytes[..at]`.
fn zxid_digest(bytes: &[u8], at: usize, mut sum: Adler32) -> At<Option<ZxidDigest>> {
    const LEN: usize = 8 + 4 + 8;
    if bytes.len().saturating_sub(at) < LEN {
        return Ok(None);
    }
    let mut r = jute::Reader::with_limit(bytes, usize::MAX >> 2);
    r.take(at).map_err(|e| (0, e.to_string()))?;
    let digest = ZxidDigest {
        zxid: field(&mut r, "ZxidDigest zxid", |r| r.read_i64())?,
        version: field(&mut r, "ZxidDigest version", |r| r.read_i32())?,
        digest: field(&mut r, "ZxidDigest digest", |r| r.read_i64())?,
    };
    let seal = field(&mut r, "ZxidDigest checksum", |r| r.read_i64())?;
    field(&mut r, "ZxidDigest seal", String::decode)?;
    sum.update(&bytes[at..at + LEN]);
    let computed = sum.value();
    if seal != i64::from(computed) {
        return Err((
            at + LEN,
            format!("ZxidDigest checksum {seal:#x}, computed {computed:#x}"),
        ));
    }
    Ok(Some(digest))
}

/// Reads ZooKeeper's serialized tree at `bytes[at..]` (`SerializeUtils.serializeSnapshot`:
/// the sessions, the ACL cache, the nodes through the path `/`), checking every record:
/// what it holds, its children counted, and where the nodes end.
fn read_tree(bytes: &[u8], at: usize) -> At<(Snapshot, usize)> {
    let mut r = jute::Reader::with_limit(bytes, usize::MAX >> 2);
    r.take(at).map_err(|e| (0, e.to_string()))?;
    let count = field(&mut r, "session count", |r| r.read_i32())?;
    let mut sessions = Vec::new();
    for _ in 0..count.max(0) {
        let id = field(&mut r, "session id", |r| r.read_i64())?;
        let timeout = field(&mut r, "session timeout", |r| r.read_i32())?;
        sessions.push((id, timeout));
    }
    let mut acls: HashMap<i64, Arc<Vec<Acl>>> = HashMap::new();
    acls.insert(OPEN_ACL_ID, Arc::new(crate::acl::open_acl_unsafe()));
    let count = field(&mut r, "ACL cache size", |r| r.read_i32())?;
    for _ in 0..count.max(0) {
        let id = field(&mut r, "ACL id", |r| r.read_i64())?;
        let list: Vec<Acl> = field(&mut r, "ACL list", |r| r.read_vector())?.unwrap_or_default();
        acls.insert(id, Arc::new(list));
    }
    let mut snap = Snapshot {
        sessions,
        acls,
        nodes_at: r.position(),
        children: HashMap::new(),
        digest: None,
    };
    let mut root = false;
    let mut children: HashMap<String, u32> = HashMap::new();
    let sealed = walk_nodes(bytes, &snap, |p, _| {
        root |= p == "/";
        if let Some(parent) = crate::path::parent(&p) {
            match children.get_mut(parent) {
                Some(n) => *n += 1,
                None => {
                    children.insert(parent.to_string(), 1);
                }
            }
        }
    })?;
    if !root {
        return Err((sealed, "no root node".into()));
    }
    snap.children = children;
    Ok((snap, sealed))
}

/// The signature that ends a SNAP's snapshot on a quorum connection (`LearnerHandler`).
const SNAP_SIGNATURE: &str = "BenWasHere";

/// A snapshot as ZooKeeper's leader sends it after SNAP (the serialized tree, then the
/// signature) turned into zkrs's SNAP data ([`Store::encode_snapshot`]'s format) at `zxid`.
pub fn snap_from_zookeeper(zxid: i64, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let at = |(offset, reason): (usize, String)| format!("byte {offset}: {reason}");
    let (snap, end) = read_tree(bytes, 0).map_err(at)?;
    let mut r = jute::Reader::with_limit(&bytes[end..], usize::MAX >> 2);
    let signature = field(&mut r, "signature", String::decode).map_err(at)?;
    if signature != SNAP_SIGNATURE {
        return Err(format!("signature {signature:?}, not {SNAP_SIGNATURE:?}"));
    }
    if !r.is_empty() {
        return Err(format!("{} bytes after the signature", r.remaining()));
    }
    let mut out = crate::store::SnapshotEncoder::new(zxid, &snap.sessions, bytes.len());
    walk_nodes(bytes, &snap, |p, node| out.push(&p, &node)).map_err(at)?;
    Ok(out.finish())
}

/// The applied state as ZooKeeper's leader sends it after SNAP, for a ZooKeeper learner,
/// in one buffer ([`write_snap_for_zookeeper`]).
pub fn snap_for_zookeeper(tree: &DataTree) -> Vec<u8> {
    let sessions: Vec<(i64, i32)> = tree.sessions.iter().map(|(i, t)| (*i, *t)).collect();
    let mut walk = |f: &mut dyn FnMut(&str, &Node) -> bool| crate::snapshot::walk_tree(tree, f);
    let mut out = Vec::with_capacity(tree.approximate_data_size() + tree.len() * 100);
    let mut emit = |piece: Vec<u8>| {
        out.extend_from_slice(&piece);
        true
    };
    let mut sink = crate::snapshot::Sink::new(&mut emit);
    // A tree's walk cannot fail, and the pieces are always taken.
    let _ = write_snap_for_zookeeper(&sessions, &mut walk, &mut sink);
    write_snap_signature(&mut sink.out);
    sink.finish();
    out
}

/// ZooKeeper's serialized tree, as its leader writes it after SNAP: the sessions, the ACL
/// cache, every node parents first (the root's path empty) ended by the path `/` (the
/// signature is the caller's, [`write_snap_signature`]). The ACL cache goes before the nodes, so a first walk numbers the distinct ACLs
/// and a second writes the nodes. Ok(false) when the walk was stopped.
pub fn write_snap_for_zookeeper(
    sessions: &[(i64, i32)],
    walk: &mut crate::snapshot::Walk,
    sink: &mut crate::snapshot::Sink,
) -> Result<bool, crate::store::StoreError> {
    use jute::Encode;
    let mut ids: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut acl = Vec::new();
    let mut acls = Vec::new();
    walk(&mut |_, node| {
        acl.clear();
        jute::codec::write_vector(&mut acl, Some(node.acl.as_slice()));
        if !ids.contains_key(&acl) {
            ids.insert(acl.clone(), ids.len() as i64 + 1);
            acls.push(node.acl.clone());
        }
        true
    })?;
    let out = &mut sink.out;
    (sessions.len() as i32).encode(out);
    for (id, timeout) in sessions {
        id.encode(out);
        timeout.encode(out);
    }
    (acls.len() as i32).encode(out);
    for (n, list) in acls.iter().enumerate() {
        (n as i64 + 1).encode(out);
        jute::codec::write_vector(out, Some(list.as_slice()));
    }
    let whole = walk(&mut |p, node| {
        acl.clear();
        jute::codec::write_vector(&mut acl, Some(node.acl.as_slice()));
        let out = &mut sink.out;
        let path = if p == "/" { "" } else { p };
        path.encode(out);
        jute::codec::write_buffer(out, node.data.as_deref());
        ids.get(&acl).copied().unwrap_or(OPEN_ACL_ID).encode(out);
        node.stat.encode(out);
        sink.record_done()
    })?;
    "/".encode(&mut sink.out);
    Ok(whole)
}

/// Ends a SNAP's serialized tree: the signature.
pub fn write_snap_signature(out: &mut Vec<u8>) {
    use jute::Encode;
    SNAP_SIGNATURE.encode(out);
}

/// How far a SNAP's snapshot from ZooKeeper's leader has arrived: the stream has no length,
/// so it is followed record by record as reads bring it ([`SnapScan::scan`]).
#[derive(Debug, Default)]
pub struct SnapScan {
    /// Where the next record begins.
    at: usize,
    stage: ScanStage,
}

#[derive(Debug, Default, Clone, Copy)]
enum ScanStage {
    #[default]
    SessionCount,
    Sessions(i32),
    AclCount,
    Acls(i32),
    Nodes,
    Signature,
    Done,
}

impl SnapScan {
    /// Follows the snapshot at the start of `bytes` (all of it so far) from where the last
    /// call stopped: its length once it is whole, `None` while it is not; an error for a
    /// record that cannot be one.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<Option<usize>, jute::DecodeError> {
        loop {
            if let ScanStage::Done = self.stage {
                return Ok(Some(self.at));
            }
            let mut r = jute::Reader::with_limit(&bytes[self.at..], usize::MAX >> 2);
            let next = match self.step(&mut r) {
                Ok(next) => next,
                Err(jute::DecodeError::Incomplete { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            self.at += r.position();
            self.stage = next;
        }
    }

    /// Reads the record the stage is at; the stage after it.
    fn step(&self, r: &mut jute::Reader<'_>) -> Result<ScanStage, jute::DecodeError> {
        Ok(match self.stage {
            ScanStage::SessionCount => ScanStage::Sessions(r.read_i32()?),
            ScanStage::Sessions(n) if n <= 0 => ScanStage::AclCount,
            ScanStage::Sessions(n) => {
                r.take(12)?; // id, timeout
                ScanStage::Sessions(n - 1)
            }
            ScanStage::AclCount => ScanStage::Acls(r.read_i32()?),
            ScanStage::Acls(n) if n <= 0 => ScanStage::Nodes,
            ScanStage::Acls(n) => {
                r.read_i64()?;
                let _: Option<Vec<Acl>> = r.read_vector()?;
                ScanStage::Acls(n - 1)
            }
            ScanStage::Nodes => {
                if String::decode(r)? == "/" {
                    ScanStage::Signature
                } else {
                    r.read_buffer_ref()?; // data
                    r.read_i64()?; // ACL id
                    StatPersisted::decode(r)?;
                    ScanStage::Nodes
                }
            }
            ScanStage::Signature => {
                String::decode(r)?;
                ScanStage::Done
            }
            ScanStage::Done => ScanStage::Done,
        })
    }
}

/// Walks the snapshot's nodes in the file's order (each with its number of children once
/// `snap.children` is counted); returns where the nodes end and the seal begins.
fn walk_nodes(bytes: &[u8], snap: &Snapshot, mut f: impl FnMut(String, Node)) -> At<usize> {
    let mut r = jute::Reader::with_limit(bytes, usize::MAX >> 2);
    r.take(snap.nodes_at).map_err(|e| (0, e.to_string()))?;
    loop {
        let at = r.position();
        let path = field(&mut r, "node path", String::decode)?;
        if path == "/" {
            return Ok(r.position()); // the end of the nodes
        }
        let data = field(&mut r, "node data", |r| r.read_buffer())?;
        let acl_id = field(&mut r, "node ACL id", |r| r.read_i64())?;
        let stat = field(&mut r, "node stat", StatPersisted::decode)?;
        let acl = snap.acls.get(&acl_id).cloned().ok_or_else(|| {
            (
                at,
                format!("{path}: ACL id {acl_id} is not in the ACL cache"),
            )
        })?;
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        if !path.starts_with('/') {
            return Err((at, format!("node path {path:?} is not absolute")));
        }
        let mut node = Node::new(stat, data, acl);
        node.num_children = snap.children.get(&path).copied().unwrap_or(0);
        f(path, node);
    }
}

/// The txns after `after` in the logs (oldest log first): from the newest log that begins at
/// or before `after`, as ZooKeeper reads them. A log ends at a length of 0 or at its end; a
/// record cut short ends it too (a torn write). A checksum that does not match, or a record
/// that does not decode, stops the import.
fn read_logs(logs: &[(i64, PathBuf)], after: i64) -> Result<Vec<TxnEntry>, ImportError> {
    let first = logs
        .iter()
        .rposition(|(start, _)| *start <= after)
        .unwrap_or(0);
    let mut txns: Vec<TxnEntry> = Vec::new();
    for (_, path) in &logs[first..] {
        let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
        let bad = |(offset, reason): (usize, String)| ImportError::Format {
            file: path.display().to_string(),
            offset,
            reason,
        };
        let mut r = jute::Reader::with_limit(&bytes, usize::MAX >> 2);
        file_header(&mut r, LOG_MAGIC).map_err(bad)?;
        while let Some(txn) = next_logged(&mut r, &bytes).map_err(bad)? {
            let zxid = txn.header.zxid;
            if zxid <= after {
                continue;
            }
            // A txn logged again (a ZooKeeper follower whose sync broke off and began
            // again logs the leader's txns a second time): ZooKeeper's restart applies it
            // again, over its own effects, and logs an error; the same txn is taken once.
            if let Some(prev) = txns.last().map(|t| t.header.zxid) {
                if zxid <= prev {
                    tracing::warn!(
                        "{} at byte {}: zxid {zxid:#x} after {prev:#x}, logged before: skipped",
                        path.display(),
                        r.position()
                    );
                    continue;
                }
            }
            txns.push(txn);
        }
    }
    Ok(txns)
}

/// The next logged txn, or None at the end of the log.
fn next_logged(r: &mut jute::Reader<'_>, bytes: &[u8]) -> At<Option<TxnEntry>> {
    let at = r.position();
    if r.remaining() < 12 {
        return Ok(None);
    }
    let crc = field(r, "checksum", |r| r.read_i64())?;
    let len = field(r, "length", |r| r.read_i32())?;
    let Ok(len) = usize::try_from(len) else {
        return Err((at + 8, format!("length {len}")));
    };
    if len == 0 || r.remaining() < len + 1 {
        return Ok(None); // the zeros after the end, or a record cut short
    }
    let start = r.position();
    let txn = &bytes[start..start + len];
    let computed = adler32(txn);
    if crc != i64::from(computed) {
        return Err((at, format!("checksum {crc:#x}, computed {computed:#x}")));
    }
    r.take(len).map_err(|e| (start, e.to_string()))?;
    let eor = r
        .take(1)
        .map_err(|e| (start + len, format!("end of record: {e}")))?;
    if eor != [EOR] {
        return Err((start + len, format!("end of record {eor:?}, not 'B'")));
    }
    let entry = TxnEntry::from_bytes(txn).map_err(|e| (start, format!("txn: {e}")))?;
    if let TxnRecord::Multi(m) = &entry.record {
        for sub in m.txns.as_deref().unwrap_or_default() {
            let data = sub.data.as_deref().unwrap_or_default();
            TxnRecord::decode_for(sub.type_, &mut jute::Reader::new(data))
                .map_err(|e| (start, format!("multi sub-txn of type {}: {e}", sub.type_)))?;
        }
    }
    Ok(Some(entry))
}

/// ZooKeeper's `currentEpoch` and `acceptedEpoch` files (ASCII numbers), if it kept them
/// (an ensemble member's data dir).
fn read_epochs(dir: &Path) -> Result<Option<crate::zab::HardState>, ImportError> {
    let read = |name: &str| -> Result<Option<i64>, ImportError> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ImportError::Format {
                    file: path.display().to_string(),
                    offset: 0,
                    reason: format!("{text:?} is not a number"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    };
    let (Some(current), accepted) = (read("currentEpoch")?, read("acceptedEpoch")?) else {
        return Ok(None);
    };
    Ok(Some(crate::zab::HardState {
        current_epoch: current,
        accepted_epoch: accepted.unwrap_or(current),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(dir: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(dir)
            .join("version-2")
    }

    /// Import options, digests on (the default).
    fn opts(extended_types: bool, trust_empty: bool) -> ImportOptions {
        ImportOptions {
            extended_types,
            trust_empty,
            digest_enabled: true,
        }
    }

    /// A store that imported ZooKeeper's files `(name, named as)` of the standalone data dir.
    fn imported(files: &[(&str, &str)]) -> (tempfile::TempDir, Store, Imported) {
        imported_from("zookeeper-datadir", files)
    }

    /// A store that imported files `(name, named as)` of the data dir `from` in tests/data.
    fn imported_from(from: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, Store, Imported) {
        let dir = tempfile::tempdir().unwrap();
        let zk = dir.path().join("version-2");
        std::fs::create_dir_all(&zk).unwrap();
        for (name, as_name) in files {
            std::fs::copy(data(from).join(name), zk.join(as_name)).unwrap();
        }
        let store = Store::open(&dir.path().join("db"), &dir.path().join("log"), false).unwrap();
        let done = import_if_fresh(&store, &zk, &zk, opts(true, false))
            .unwrap()
            .unwrap();
        (dir, store, done)
    }

    /// Every node (stat, data, ACL, children, digest) by path.
    fn listing(tree: &DataTree) -> Vec<(String, Node)> {
        let mut out = Vec::new();
        tree.for_each(|p, n| out.push((p.to_string(), n.clone())));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn adler32_is_javas() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        let long = vec![0xffu8; 100_000];
        // Checked against zlib.adler32 of the same bytes.
        assert_eq!(adler32(&long), 0x149a_302c);
    }

    /// ZooKeeper's snapshot file as its leader sends the same tree after SNAP: without the
    /// file header and the seal, ended by the signature.
    fn as_snap_stream(file: &[u8]) -> Vec<u8> {
        use jute::Encode;
        let (_, sealed) = read_tree(file, 16).unwrap();
        let mut out = file[16..sealed].to_vec();
        SNAP_SIGNATURE.encode(&mut out);
        out
    }

    /// A fresh store that installed SNAP data.
    fn installed(data: &[u8]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), &dir.path().join("log"), true).unwrap();
        store.install_snapshot(data).unwrap();
        (dir, store)
    }

    #[test]
    fn a_snap_stream_from_zookeeper_is_found_whole_and_installs_as_its_file_imports() {
        let file = std::fs::read(data("zookeeper-datadir").join("snapshot.14")).unwrap();
        let stream = as_snap_stream(&file);
        // The packets after it come on the same stream.
        let mut more = stream.clone();
        more.extend_from_slice(&[0, 0, 0, 12, 0xff, 0xff]);
        // However the reads cut it, its end is found once all of it has come, not before.
        for piece in [1, 2, 7, 64, 1000, more.len()] {
            let mut scan = SnapScan::default();
            let mut found = None;
            let mut have = 0;
            while found.is_none() && have < more.len() {
                have = (have + piece).min(more.len());
                found = scan.scan(&more[..have]).unwrap();
                assert!(found.is_none() || have >= stream.len(), "piece {piece}");
            }
            assert_eq!(found, Some(stream.len()), "piece {piece}");
        }
        let ours = snap_from_zookeeper(0x14, &stream).unwrap();
        let (_dir, store) = installed(&ours);
        let tree = store.open_tree(true).unwrap();
        let (_dir2, imported_store, _) = imported(&[("snapshot.14", "snapshot.14")]);
        let imported_tree = imported_store.open_tree(true).unwrap();
        assert_eq!(tree.last_zxid, 0x14);
        assert_eq!(tree.sessions, imported_tree.sessions);
        assert_eq!(listing(&tree), listing(&imported_tree));
        assert_eq!(tree.digest(), imported_tree.digest());
    }

    #[test]
    fn a_snap_stream_for_zookeeper_reads_back_as_the_same_tree() {
        let (_dir, store, _) = imported(&[("snapshot.0", "snapshot.0"), ("log.1", "log.1")]);
        let tree = store.open_tree(true).unwrap();
        let stream = snap_for_zookeeper(&tree);
        assert_eq!(
            SnapScan::default().scan(&stream).unwrap(),
            Some(stream.len())
        );
        // The root's path is empty, as ZooKeeper writes it (a `/` would end the nodes).
        let (snap, _) = read_tree(&stream, 0).unwrap();
        let mut r = jute::Reader::new(&stream[snap.nodes_at..]);
        assert_eq!(String::decode(&mut r).unwrap(), "");
        // Nodes sharing an ACL share its id: the cache holds each distinct ACL once.
        let distinct: std::collections::HashSet<Vec<u8>> = listing(&tree)
            .iter()
            .map(|(_, n)| {
                let mut b = Vec::new();
                jute::codec::write_vector(&mut b, Some(n.acl.as_slice()));
                b
            })
            .collect();
        assert_eq!(snap.acls.len(), distinct.len() + 1); // and OPEN_ACL_UNSAFE's -1
        let (_dir2, again) = installed(&snap_from_zookeeper(tree.last_zxid, &stream).unwrap());
        let again = again.open_tree(true).unwrap();
        assert_eq!(listing(&again), listing(&tree));
        assert_eq!(again.sessions, tree.sessions);
        assert_eq!(again.digest(), tree.digest());
    }

    #[test]
    fn a_snap_stream_that_is_not_one_is_refused() {
        use jute::Encode;
        let file = std::fs::read(data("zookeeper-datadir").join("snapshot.14")).unwrap();
        let stream = as_snap_stream(&file);
        let (_, end) = read_tree(&stream, 0).unwrap();
        let mut signed = stream[..end].to_vec();
        "BenWasThere".encode(&mut signed);
        let e = snap_from_zookeeper(0x14, &signed).unwrap_err();
        assert!(e.contains("BenWasThere"), "{e}");
        let mut longer = stream.clone();
        longer.push(0);
        let e = snap_from_zookeeper(0x14, &longer).unwrap_err();
        assert!(e.contains("1 bytes after the signature"), "{e}");
        assert!(snap_from_zookeeper(0x14, &stream[..stream.len() - 3]).is_err());
        // A node naming an ACL the cache does not hold.
        let mut r = jute::Reader::new(&stream);
        let (snap, _) = read_tree(&stream, 0).unwrap();
        r.take(snap.nodes_at).unwrap();
        String::decode(&mut r).unwrap();
        r.read_buffer().unwrap();
        let at = r.position();
        let mut foreign = stream.clone();
        foreign[at..at + 8].copy_from_slice(&77i64.to_be_bytes());
        let e = snap_from_zookeeper(0x14, &foreign).unwrap_err();
        assert!(e.contains("ACL id 77"), "{e}");
        // A record that cannot be one (a path of negative length) stops the scan.
        let mut scan = SnapScan::default();
        let e = scan.scan(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0]);
        assert!(matches!(e, Err(jute::DecodeError::Invalid { .. })), "{e:?}");
    }

    #[test]
    fn a_snapshot_reads_as_zookeeper_wrote_it() {
        let (_dir, store, done) = imported(&[("snapshot.14", "snapshot.14")]);
        assert_eq!((done.snapshot_zxid, done.txns, done.nodes), (0x14, 0, 14));
        let tree = store.open_tree(true).unwrap();
        assert_eq!(tree.last_zxid, 0x14);
        assert_eq!(tree.sessions.get(&0x100000ddd700000), Some(&30000));
        assert_eq!(tree.sessions.len(), 1);
        let get = |p: &str| tree.get(p).unwrap_or_else(|| panic!("{p} missing"));
        let app = get("/app");
        assert_eq!(app.data.as_deref(), Some(&b"v2"[..]));
        assert_eq!((app.stat.cversion, app.num_children), (10, 8));
        // As a client sees it: 10 creations and 2 deletions under it.
        assert_eq!(app.client_stat(true).cversion, 12);
        assert_eq!(get("/app/eph").stat.ephemeral_owner, 0x100000ddd700000);
        assert_eq!(
            get("/app/box").stat.ephemeral_owner as u64,
            0x8000_0000_0000_0000
        );
        assert_eq!(
            get("/app/ttl").stat.ephemeral_owner as u64,
            0xff00_0000_0036_ee80
        );
        let secret = get("/app/secret");
        assert_eq!(secret.acl.len(), 2);
        assert_eq!(secret.acl[0].id.scheme, "digest");
        assert_eq!(secret.acl[0].id.id, "vec:XxsQ3xTNtXlmlncnyR4aJg/SLWI=");
        assert_eq!(get("/app/config").stat.aversion, 1);
        assert_eq!(get("/zookeeper/config").stat.aversion, -1);
        assert_eq!(tree.len(), 14);
    }

    /// Logs without a snapshot (as ZooKeeper 3.4 before 3.5.3 left a data dir): refused, as
    /// by ZooKeeper; with `zookeeper.snapshot.trust.empty`, replayed over the initial tree,
    /// to the tree snapshot.0 (the initial one) and the same log give.
    #[test]
    fn logs_without_a_snapshot_are_replayed_only_when_trusted() {
        let (_e, expected, _) = imported(&[("snapshot.0", "snapshot.0"), ("log.1", "log.1")]);
        let expected = expected.open_tree(true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let zk = dir.path().join("version-2");
        std::fs::create_dir_all(&zk).unwrap();
        std::fs::copy(data("zookeeper-datadir").join("log.1"), zk.join("log.1")).unwrap();
        let store = Store::open(&dir.path().join("db"), &dir.path().join("log"), false).unwrap();
        let refused = import_if_fresh(&store, &zk, &zk, opts(true, false));
        assert!(
            matches!(refused, Err(ImportError::LogsWithoutSnapshot { .. })),
            "{refused:?}"
        );
        assert!(store.is_fresh().unwrap());
        let done = import_if_fresh(&store, &zk, &zk, opts(true, true))
            .unwrap()
            .unwrap();
        assert_eq!((done.snapshot, done.snapshot_zxid), (None, 0));
        assert_eq!(done.last_zxid, 0x14);
        let tree = store.open_tree(true).unwrap();
        assert_eq!(tree.sessions, expected.sessions);
        assert_eq!(listing(&tree), listing(&expected));
        assert_eq!(tree.digest(), expected.digest());
        // Taken over once: the next start finds the store written.
        assert_eq!(
            import_if_fresh(&store, &zk, &zk, opts(true, true)).unwrap(),
            None
        );
    }

    /// ZooKeeper's restart from its first snapshot and log ends where its own second
    /// snapshot says: every node, stat by stat, and the sessions. And a fuzzy snapshot (the
    /// state at 0x14 taken as the snapshot at 0xa, so that the creates of 0xb, 0xe and 0x11
    /// meet their nodes and the delete of 0xd finds none) replays to the same.
    #[test]
    fn snapshots_and_logs_replay_to_zookeepers_next_snapshot() {
        let (_e, expected, _) = imported(&[("snapshot.14", "snapshot.14")]);
        let expected = expected.open_tree(true).unwrap();
        for files in [
            [("snapshot.0", "snapshot.0"), ("log.1", "log.1")],
            [("snapshot.14", "snapshot.a"), ("log.1", "log.1")],
        ] {
            let (_d, store, done) = imported(&files);
            assert_eq!(done.last_zxid, 0x14, "{files:?}");
            let tree = store.open_tree(true).unwrap();
            assert_eq!(tree.last_zxid, 0x14);
            assert_eq!(tree.sessions, expected.sessions, "{files:?}");
            assert_eq!(listing(&tree), listing(&expected), "{files:?}");
            assert_eq!(tree.digest(), expected.digest(), "{files:?}");
            assert_eq!(tree.len(), expected.len(), "{files:?}");
        }
    }

    /// An import checks the digests ZooKeeper recorded as its restart does: every replayed
    /// txn's, and a fuzzy snapshot's once the txn it names is applied again. A digest
    /// changed in the files (its seal or checksum made to hold) is counted.
    #[test]
    fn zookeepers_digests_are_checked_as_its_restart_checks_them() {
        let digests = |done: &Imported| {
            (
                done.digests_compared,
                done.digest_mismatches,
                done.first_digest_mismatch.map(|m| m.0),
            )
        };
        // An import of ZooKeeper's files in `dir` into a store there.
        let import_here = |dir: &Path| {
            let store = Store::open(&dir.join("db"), &dir.join("log"), false).unwrap();
            import_if_fresh(&store, dir, dir, opts(true, false))
                .unwrap()
                .unwrap()
        };
        // Every txn of log.1 with a digest (19 of its 20) is compared; snapshot.0's
        // ZxidDigest is empty.
        let logs = numbered_files(&data("zookeeper-datadir"), "log.").unwrap();
        let txns = read_logs(&logs, 0).unwrap();
        let with_digest = txns.iter().filter(|t| t.digest.is_some()).count() as u64;
        assert_eq!((txns.len(), with_digest), (20, 19));
        let (_d, _, done) = imported(&[("snapshot.0", "snapshot.0"), ("log.1", "log.1")]);
        assert_eq!(digests(&done), (19, 0, None));
        // snapshot.14's ZxidDigest is at 0x14: alone, compared at once; named as a snapshot
        // taken at 0xa, fuzzy until txn 0x14, then compared with the tree's, as is that
        // txn's own digest.
        let (_d, _, done) = imported(&[("snapshot.14", "snapshot.14")]);
        assert_eq!(digests(&done), (1, 0, None));
        let (_d, _, done) = imported(&[("snapshot.14", "snapshot.a"), ("log.1", "log.1")]);
        assert_eq!(digests(&done), (2, 0, None));

        // The digest of log.1's txn 0x7 (its record's last 8 bytes) changed, the record's
        // checksum made to hold.
        let mut log = std::fs::read(data("zookeeper-datadir").join("log.1")).unwrap();
        let mut at = 16;
        for _ in 1..7 {
            let len = i32::from_be_bytes(log[at + 8..at + 12].try_into().unwrap()) as usize;
            at += 12 + len + 1;
        }
        let len = i32::from_be_bytes(log[at + 8..at + 12].try_into().unwrap()) as usize;
        let txn = at + 12..at + 12 + len;
        assert_eq!(
            TxnEntry::from_bytes(&log[txn.clone()]).unwrap().header.zxid,
            7
        );
        log[txn.end - 1] ^= 0x01;
        let sum = i64::from(adler32(&log[txn]));
        log[at..at + 8].copy_from_slice(&sum.to_be_bytes());
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            data("zookeeper-datadir").join("snapshot.0"),
            dir.path().join("snapshot.0"),
        )
        .unwrap();
        std::fs::write(dir.path().join("log.1"), &log).unwrap();
        assert_eq!(digests(&import_here(dir.path())), (19, 1, Some(7)));
        // With digests off (`digest.enabled=false`) nothing is compared, as in ZooKeeper.
        let off = tempfile::tempdir().unwrap();
        let store = Store::open(&off.path().join("db"), &off.path().join("log"), false).unwrap();
        let no_digests = ImportOptions {
            digest_enabled: false,
            ..opts(true, false)
        };
        let done = import_if_fresh(&store, dir.path(), dir.path(), no_digests)
            .unwrap()
            .unwrap();
        assert_eq!((done.last_zxid, digests(&done)), (0x14, (0, 0, None)));

        // snapshot.14's ZxidDigest changed, its seal made to hold.
        let mut snap = std::fs::read(data("zookeeper-datadir").join("snapshot.14")).unwrap();
        let (_, sealed) = read_tree(&snap, 16).unwrap();
        let at = sealed + 8 + 4 + 1;
        // The Adler-32 of what comes before the ZxidDigest (which the changes below keep).
        let upto = {
            let mut sum = Adler32::default();
            sum.update(&snap[..at]);
            sum
        };
        let whole = snap.clone();
        let before = zxid_digest(&snap, at, upto).unwrap().unwrap();
        assert_eq!(before.zxid, 0x14);
        snap[at + 19] ^= 0x01;
        let sum = i64::from(adler32(&snap[..at + 20]));
        snap[at + 20..at + 28].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            zxid_digest(&snap, at, upto).unwrap().unwrap().digest,
            before.digest ^ 1
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snapshot.14"), &snap).unwrap();
        assert_eq!(digests(&import_here(dir.path())), (1, 1, Some(0x14)));

        // Changed without its seal made to hold: with digests on, the snapshot is not valid
        // and the one before it is taken, as ZooKeeper's FileSnap does; with them off, its
        // ZxidDigest is not read.
        let mut unsealed = whole.clone();
        unsealed[at + 19] ^= 0x01;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snapshot.14"), &unsealed).unwrap();
        for f in ["snapshot.0", "log.1"] {
            std::fs::copy(data("zookeeper-datadir").join(f), dir.path().join(f)).unwrap();
        }
        let done = import_here(dir.path());
        assert_eq!(
            (done.snapshot_zxid, done.last_zxid, digests(&done)),
            (0, 0x14, (19, 0, None))
        );
        let snaps = numbered_files(dir.path(), "snapshot.").unwrap();
        let (_, zxid, _, snap) = newest_valid_snapshot(dir.path(), &snaps, false).unwrap();
        assert_eq!((zxid, snap.digest), (0x14, None));
        // A snapshot that ends at its first seal (ZooKeeper before 3.6) has no ZxidDigest;
        // one cut inside the seal after its ZxidDigest is not valid.
        assert_eq!(read_snapshot(&whole[..at], true).unwrap().digest, None);
        assert!(read_snapshot(&whole[..at + 24], true).is_err());
        assert_eq!(read_snapshot(&whole, true).unwrap().digest, Some(before));
    }

    /// ZooKeeper 3.8 with `zookeeper.snapshot.compression.method` gz, then snappy, wrote the
    /// tree of snapshot.0 + log.1 as its start-up snapshot: each reads as that tree, and its
    /// seal (over the uncompressed stream) holds.
    #[test]
    fn compressed_snapshots_read_as_zookeeper_wrote_them() {
        let (_e, expected, _) = imported(&[("snapshot.0", "snapshot.0"), ("log.1", "log.1")]);
        let expected = expected.open_tree(true).unwrap();
        for name in ["snapshot.14.gz", "snapshot.14.snappy"] {
            let (_d, store, done) = imported_from("zookeeper-compressed", &[(name, name)]);
            assert!(done.snapshot.as_ref().unwrap().ends_with(name));
            assert_eq!((done.snapshot_zxid, done.txns), (0x14, 0), "{name}");
            let tree = store.open_tree(true).unwrap();
            assert_eq!(tree.last_zxid, 0x14, "{name}");
            assert_eq!(listing(&tree), listing(&expected), "{name}");
            assert_eq!(tree.sessions, expected.sessions, "{name}");
            assert_eq!(tree.digest(), expected.digest(), "{name}");
        }
        // A damaged compressed snapshot gives way to an older one; with none, the reasons.
        let dir = tempfile::tempdir().unwrap();
        for name in ["snapshot.14.gz", "snapshot.14.snappy"] {
            let mut bytes = std::fs::read(data("zookeeper-compressed").join(name)).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x55;
            std::fs::write(dir.path().join(name.replace(".14.", ".15.")), &bytes).unwrap();
            bytes.truncate(mid);
            std::fs::write(dir.path().join(name.replace(".14.", ".16.")), &bytes).unwrap();
        }
        std::fs::copy(
            data("zookeeper-datadir").join("snapshot.0"),
            dir.path().join("snapshot.0"),
        )
        .unwrap();
        let snaps = numbered_files(dir.path(), "snapshot.").unwrap();
        assert_eq!(snaps.len(), 5);
        let (path, zxid, _, _) = newest_valid_snapshot(dir.path(), &snaps, true).unwrap();
        assert_eq!(
            (path.file_name().unwrap().to_str(), zxid),
            (Some("snapshot.0"), 0)
        );
        std::fs::remove_file(dir.path().join("snapshot.0")).unwrap();
        let snaps = numbered_files(dir.path(), "snapshot.").unwrap();
        let err = newest_valid_snapshot(dir.path(), &snaps, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gzip") && err.contains("snappy"), "{err}");
        // Not snappy-java's stream at all.
        assert!(snappy_java(b"plain").unwrap_err().1.contains("magic"));
    }

    #[test]
    fn a_create_that_finds_its_node_raises_the_parents_cversion() {
        // A parent written to the snapshot before its child's create: the create that
        // finds the child raises the parent's cversion and pzxid to its own.
        let mut tree = DataTree::new(false);
        let open = Arc::new(crate::acl::open_acl_unsafe());
        let stat = |cversion| StatPersisted {
            cversion,
            ..Default::default()
        };
        let mut app = Node::new(stat(6), None, open.clone());
        app.num_children = 1;
        tree.insert_loaded("/app".into(), app);
        tree.insert_loaded("/app/secret".into(), Node::new(stat(0), None, open));
        let logs = numbered_files(&data("zookeeper-datadir"), "log.").unwrap();
        let txns = read_logs(&logs, 0xa).unwrap();
        let secret = txns.iter().find(|t| t.header.zxid == 0xb).unwrap();
        replay(&mut tree, secret);
        let app = tree.get("/app").unwrap();
        assert_eq!(
            (app.stat.cversion, app.stat.pzxid, app.num_children),
            (7, 0xb, 1)
        );
        tree.raise_cversion_pzxid("/app", 5, 0xc); // only ever up
        assert_eq!(tree.get("/app").unwrap().stat.cversion, 7);
    }

    #[test]
    fn a_damaged_snapshot_gives_way_to_an_older_one_and_a_damaged_log_stops_the_import() {
        let dir = tempfile::tempdir().unwrap();
        let src = data("zookeeper-datadir");
        for f in ["snapshot.0", "snapshot.14", "log.1"] {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        let mut snap = std::fs::read(dir.path().join("snapshot.14")).unwrap();
        let i = snap.len() / 2;
        snap[i] ^= 0x01;
        std::fs::write(dir.path().join("snapshot.14"), snap).unwrap();
        let snaps = numbered_files(dir.path(), "snapshot.").unwrap();
        let (path, zxid, _, _) = newest_valid_snapshot(dir.path(), &snaps, true).unwrap();
        assert_eq!(
            (path.file_name().unwrap().to_str(), zxid),
            (Some("snapshot.0"), 0)
        );
        // Cut short (ZooKeeper stopped while writing it): the same.
        let whole = std::fs::read(src.join("snapshot.14")).unwrap();
        std::fs::write(dir.path().join("snapshot.14"), &whole[..whole.len() / 2]).unwrap();
        let (path, _, _, _) = newest_valid_snapshot(dir.path(), &snaps, true).unwrap();
        assert_eq!(path.file_name().unwrap().to_str(), Some("snapshot.0"));

        let mut log = std::fs::read(dir.path().join("log.1")).unwrap();
        log[100] ^= 0x01; // inside the second record's txn
        std::fs::write(dir.path().join("log.1"), log).unwrap();
        let logs = numbered_files(dir.path(), "log.").unwrap();
        match read_logs(&logs, 0) {
            Err(ImportError::Format { offset, reason, .. }) => {
                assert_eq!(offset, 77, "the second record starts at byte 77");
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // A log cut inside a record ends there (a torn write).
        let bytes = std::fs::read(src.join("log.1")).unwrap();
        std::fs::write(dir.path().join("log.1"), &bytes[..200]).unwrap();
        assert_eq!(read_logs(&logs, 0).unwrap().len(), 2);
        // Not ZooKeeper's files at all.
        std::fs::write(dir.path().join("snapshot.0"), b"not a snapshot").unwrap();
        std::fs::remove_file(dir.path().join("snapshot.14")).unwrap();
        let snaps = numbered_files(dir.path(), "snapshot.").unwrap();
        assert!(matches!(
            newest_valid_snapshot(dir.path(), &snaps, true),
            Err(ImportError::NoValidSnapshot { .. })
        ));
    }

    #[test]
    fn a_members_data_dir_brings_its_epochs_and_its_log_after_the_snapshot() {
        let dir = data("zookeeper-member");
        let store_dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &store_dir.path().join("db"),
            &store_dir.path().join("log"),
            false,
        )
        .unwrap();
        let imported = import_if_fresh(&store, &dir, &dir, opts(false, false))
            .unwrap()
            .unwrap();
        assert_eq!(imported.snapshot_zxid, 0x1_0000_0006);
        assert_eq!(imported.txns, 9);
        assert_eq!(imported.last_zxid, 0x2_0000_0009);
        // The member's digests hold too: its snapshot's, and those of its txns after it
        // that carry one.
        let after = store.txns_after(0x1_0000_0006).unwrap();
        let with_digest = after.iter().filter(|t| t.digest.is_some()).count() as u64;
        assert_eq!(
            (imported.digests_compared, imported.digest_mismatches),
            (1 + with_digest, 0),
            "{:?}",
            after
                .iter()
                .map(|t| (t.header.zxid, t.header.type_, t.digest.is_some()))
                .collect::<Vec<_>>()
        );
        let hs = store.load_hard_state(imported.last_zxid).unwrap();
        assert_eq!((hs.current_epoch, hs.accepted_epoch), (2, 2));
        let tree = store.open_tree(false).unwrap();
        assert_eq!(tree.last_zxid, 0x2_0000_0009);
        assert!(tree.get("/q/after").is_some());
        assert_eq!(store.txns_after(0x1_0000_0006).unwrap().len(), 9);
        // Imported once: the store is no longer fresh.
        assert_eq!(
            import_if_fresh(&store, &dir, &dir, opts(false, false)).unwrap(),
            None
        );
    }
}
