//! The transaction log: proposals in zxid order, in segment files filled with zeros before
//! they are written to (ZooKeeper preallocates its logs likewise), so that a commit's
//! fdatasync writes the records and nothing else. Appending to a growing file (RocksDB's WAL)
//! makes every fdatasync also write the inode for the new size: measured here, a second disk
//! write per commit and a p99.9 of tens of milliseconds.
//!
//! Segment files are `log.<first zxid, 16 hex digits>`; records lie back to back from offset
//! 0: `len u32 BE ‖ crc u32 BE ‖ payload (an encoded TxnEntry)`, where crc is the CRC-32 of the
//! previous record's crc (0 for a segment's first record) followed by the payload. The log
//! ends at the first record whose length is zero or does not fit, whose crc does not check,
//! or whose zxid is not above the one before: a torn write, or the zeros after the end.
//! Chaining the crc means that a record left over from before a rewrite (after a crash or a
//! TRUNC) never checks, since the record in front of it is no longer the one it was chained to.
//!
//! The next segment's zeros are written by a thread of its own once the current one is half
//! full (or at open, when there is no segment to append to), so an idle server keeps one spare
//! segment at most.

use crate::store::StoreError;
use jute::{Decode, Encode, TxnEntry};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// A txn as ZAB and the log hold it: the decoded entry and, once someone needs it, its
/// encoding (a PROPOSAL's payload and a log record are the same bytes). A leader encodes each
/// txn once, for its PROPOSALs and its log; a learner logs a PROPOSAL's payload as received.
#[derive(Debug)]
pub struct Txn {
    entry: TxnEntry,
    bytes: std::sync::OnceLock<Vec<u8>>,
    /// In an ensemble, the node this txn changes as it was before it
    /// ([`crate::tree::Node::encode_prior`]): sent along with the proposal, never logged.
    prior: Option<Vec<u8>>,
}

impl Txn {
    pub fn new(entry: TxnEntry) -> Self {
        Txn {
            entry,
            bytes: std::sync::OnceLock::new(),
            prior: None,
        }
    }

    pub fn with_prior(mut self, prior: Option<Vec<u8>>) -> Self {
        self.prior = prior;
        self
    }

    pub fn prior(&self) -> Option<&[u8]> {
        self.prior.as_deref()
    }

    /// Decodes a txn and keeps the bytes it was decoded from (a txn runs to the end of its
    /// bytes: its digest, when there is one, is what follows the record).
    pub fn decode(bytes: Vec<u8>) -> Result<Self, jute::DecodeError> {
        let entry = TxnEntry::from_bytes(&bytes)?;
        Ok(Txn {
            entry,
            bytes: std::sync::OnceLock::from(bytes),
            prior: None,
        })
    }

    /// The encoding, made (and kept) on first use.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.get_or_init(|| {
            // Room for a typical txn from the start: grown from empty, a 200-byte encoding
            // took five reallocations, a tenth of a leader's instructions per write.
            let mut out = Vec::with_capacity(256);
            self.entry.encode(&mut out);
            out
        })
    }
}

impl std::ops::Deref for Txn {
    type Target = TxnEntry;
    fn deref(&self) -> &TxnEntry {
        &self.entry
    }
}

/// What [`TxLog::append`] takes: a txn, encoded into the log's buffer, or copied there when
/// it is encoded already.
pub trait Record {
    fn zxid(&self) -> i64;
    fn encode_into(&self, out: &mut Vec<u8>);
}

impl Record for TxnEntry {
    fn zxid(&self) -> i64 {
        self.header.zxid
    }
    fn encode_into(&self, out: &mut Vec<u8>) {
        self.encode(out);
    }
}

impl Record for Txn {
    fn zxid(&self) -> i64 {
        self.entry.header.zxid
    }
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self.bytes.get() {
            Some(b) => out.extend_from_slice(b),
            None => self.entry.encode(out),
        }
    }
}

/// Bytes of zeros written into a segment before it is used. ZooKeeper preallocates 64 MiB,
/// but sparsely; these zeros are real writes, so segments are smaller: a roll costs only a
/// rename and a directory sync.
const SEGMENT_BYTES: u64 = 16 << 20;
const HEADER: usize = 8;
/// A record longer than this is not one (jute.maxbuffer is far below it).
const MAX_RECORD: u32 = 1 << 30;
const SPARE: &str = "log.spare";

struct Segment {
    first: i64,
    path: PathBuf,
}

/// The newest segment, open for appends.
struct Active {
    file: File,
    /// Where the next record goes.
    pos: u64,
    /// The crc of the record before `pos` (0 at a segment's start).
    crc: u32,
}

pub struct TxLog {
    dir: PathBuf,
    sync: bool,
    /// Oldest first; the last one is `active`.
    segments: Vec<Segment>,
    active: Option<Active>,
    last: Option<i64>,
    spare: Option<JoinHandle<std::io::Result<()>>>,
    buf: Vec<u8>,
}

fn chain(prev: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&prev.to_be_bytes());
    h.update(payload);
    h.finalize()
}

/// The zxid of an encoded TxnEntry (TxnHeader: clientId i64, cxid i32, zxid i64, ...).
fn zxid_of(payload: &[u8]) -> Option<i64> {
    let bytes = payload.get(12..20)?;
    <[u8; 8]>::try_from(bytes).ok().map(i64::from_be_bytes)
}

fn segment_name(first: i64) -> String {
    format!("log.{:016x}", first as u64)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a segment's worth of zeros to `path` and syncs it.
fn zero_fill(path: &Path) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = SEGMENT_BYTES;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        std::io::Write::write_all(&mut f, &zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

/// Reads a segment's valid records in order: (offset, crc after it, payload).
struct Records {
    reader: BufReader<File>,
    size: u64,
    pos: u64,
    crc: u32,
    last: Option<i64>,
    /// Whether the records ended cleanly: at zeros or at the end of the file. Otherwise
    /// something that is not a record follows them (a torn write, or corruption).
    clean_end: bool,
}

impl Records {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let file = File::open(path)?;
        Ok(Records {
            size: file.metadata()?.len(),
            reader: BufReader::with_capacity(1 << 20, file),
            pos: 0,
            crc: 0,
            last: None,
            clean_end: false,
        })
    }

    /// The next valid record's zxid and payload; None at the log's end in this segment.
    fn next_record(&mut self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        self.clean_end = false;
        let mut header = [0u8; HEADER];
        if !read_full(&mut self.reader, &mut header)? || header == [0u8; HEADER] {
            self.clean_end = true;
            return Ok(None);
        }
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let fits = self.pos + (HEADER as u64) + u64::from(len) <= self.size;
        if len == 0 || len > MAX_RECORD || !fits {
            return Ok(None);
        }
        let mut payload = vec![0u8; len as usize];
        if !read_full(&mut self.reader, &mut payload)? {
            return Ok(None);
        }
        if chain(self.crc, &payload) != crc {
            return Ok(None);
        }
        let Some(zxid) = zxid_of(&payload) else {
            return Ok(None);
        };
        if self.last.is_some_and(|l| zxid <= l) {
            return Ok(None);
        }
        self.pos += (HEADER + payload.len()) as u64;
        self.crc = crc;
        self.last = Some(zxid);
        Ok(Some((zxid, payload)))
    }
}

/// Fills `buf`; false if the file ended first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, StoreError> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Zeroes a segment from `from` to its end (only the pieces that are not zero already) and
/// syncs it: what followed the log's end there can never be read as records again.
fn scrub(file: &File, from: u64) -> Result<(), StoreError> {
    let size = file.metadata()?.len();
    let mut chunk = vec![0u8; 1 << 20];
    let mut at = from;
    let mut wrote = false;
    while at < size {
        let n = (size - at).min(chunk.len() as u64) as usize;
        file.read_exact_at(&mut chunk[..n], at)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            chunk[..n].fill(0);
            file.write_all_at(&chunk[..n], at)?;
            wrote = true;
        }
        at += n as u64;
    }
    if wrote {
        file.sync_data()?;
    }
    Ok(())
}

/// Reads a segment that is not the newest: its records must end cleanly, or txns after the
/// damage would silently be missing.
fn whole(seg: &Segment, records: &Records, newest: bool) -> Result<(), StoreError> {
    if newest || records.clean_end {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        what: "transaction log",
        detail: format!(
            "{}: unreadable record at offset {} (after zxid {:#x})",
            seg.path.display(),
            records.pos,
            records.last.unwrap_or(-1)
        ),
    })
}

pub(crate) fn decode(payload: &[u8]) -> Result<TxnEntry, StoreError> {
    TxnEntry::from_bytes(payload).map_err(|e| StoreError::Corrupt {
        what: "txn",
        detail: e.to_string(),
    })
}

impl TxLog {
    /// Opens the log in `dir` (created if missing) and finds its end. `sync`: fdatasync each
    /// append (forceSync).
    pub fn open(dir: &Path, sync: bool) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let _ = std::fs::remove_file(dir.join(SPARE));
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_prefix("log.")) else {
                continue;
            };
            if let Ok(first) = u64::from_str_radix(hex, 16) {
                segments.push(Segment {
                    first: first as i64,
                    path: entry.path(),
                });
            }
        }
        segments.sort_by_key(|s| s.first);
        let mut log = TxLog {
            dir: dir.to_path_buf(),
            sync,
            segments,
            active: None,
            last: None,
            spare: None,
            buf: Vec::new(),
        };
        log.resume()?;
        log.prepare_spare();
        Ok(log)
    }

    /// Opens the newest segment that holds a record for appends after its last one; newer
    /// segments without a record (a crash right after a roll) are removed.
    fn resume(&mut self) -> Result<(), StoreError> {
        while let Some(seg) = self.segments.last() {
            let mut records = Records::open(&seg.path)?;
            while records.next_record()?.is_some() {}
            if let Some(last) = records.last {
                let file = OpenOptions::new().read(true).write(true).open(&seg.path)?;
                if !records.clean_end {
                    tracing::warn!(
                        "{}: the log ends in a torn write at offset {}; cleared",
                        seg.path.display(),
                        records.pos
                    );
                    scrub(&file, records.pos)?;
                }
                self.active = Some(Active {
                    file,
                    pos: records.pos,
                    crc: records.crc,
                });
                self.last = Some(last);
                return Ok(());
            }
            std::fs::remove_file(&seg.path)?;
            self.segments.pop();
        }
        self.active = None;
        self.last = None;
        Ok(())
    }

    /// Starts writing the next segment's zeros when the current one is half full (or there
    /// is none) and no spare is on its way.
    fn prepare_spare(&mut self) {
        let due = self
            .active
            .as_ref()
            .is_none_or(|a| a.pos >= SEGMENT_BYTES / 2);
        if due && self.spare.is_none() {
            let path = self.dir.join(SPARE);
            self.spare = Some(std::thread::spawn(move || zero_fill(&path)));
        }
    }

    /// The newest logged zxid.
    pub fn last(&self) -> Option<i64> {
        self.last
    }

    /// Appends `txns` (zxids ascending) and, with sync, makes them durable: one write and one
    /// fdatasync for the lot (group commit). Txns at or below the last logged zxid are
    /// already logged and skipped. Returns whether a new segment was started.
    pub fn append<'a, T: Record + 'a>(
        &mut self,
        txns: impl IntoIterator<Item = &'a T>,
    ) -> Result<bool, StoreError> {
        self.buf.clear();
        let mut ends = Vec::new();
        let mut last = self.last;
        let mut first = None;
        for txn in txns {
            let z = txn.zxid();
            if last.is_some_and(|l| z <= l) {
                tracing::warn!("txn {z:#x} is logged already; not appended again");
                continue;
            }
            last = Some(z);
            first = first.or(Some(z));
            let start = self.buf.len();
            self.buf.extend_from_slice(&[0u8; HEADER]);
            txn.encode_into(&mut self.buf);
            ends.push((start, self.buf.len()));
        }
        let Some(first_zxid) = first else {
            return Ok(false);
        };
        let rolled = match &self.active {
            Some(a) => a.pos > 0 && a.pos + self.buf.len() as u64 > SEGMENT_BYTES,
            None => true,
        };
        if rolled {
            self.roll(first_zxid)?;
        }
        let Some(active) = self.active.as_mut() else {
            return Err(StoreError::Corrupt {
                what: "log",
                detail: "no segment to append to".into(),
            });
        };
        let mut crc = active.crc;
        for (start, end) in ends {
            let len = (end - start - HEADER) as u32;
            crc = chain(crc, &self.buf[start + HEADER..end]);
            self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
            self.buf[start + 4..start + HEADER].copy_from_slice(&crc.to_be_bytes());
        }
        active.file.write_all_at(&self.buf, active.pos)?;
        if self.sync {
            active.file.sync_data()?;
        }
        active.pos += self.buf.len() as u64;
        active.crc = crc;
        self.last = last;
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::new();
        }
        self.prepare_spare();
        Ok(rolled)
    }

    /// Starts segment `log.<first>` from the spare (made now if there is none yet or its
    /// thread failed).
    fn roll(&mut self, first: i64) -> Result<(), StoreError> {
        let ready = match self.spare.take().map(|h| h.join()) {
            Some(Ok(Ok(()))) => true,
            Some(Ok(Err(e))) => {
                tracing::warn!("preparing the next log segment: {e}");
                false
            }
            Some(Err(_)) | None => false,
        };
        let spare = self.dir.join(SPARE);
        if !ready {
            zero_fill(&spare)?;
        }
        let path = self.dir.join(segment_name(first));
        std::fs::rename(&spare, &path)?;
        sync_dir(&self.dir)?;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        self.active = Some(Active {
            file,
            pos: 0,
            crc: 0,
        });
        self.segments.push(Segment { first, path });
        Ok(())
    }

    /// Removes every record above `zxid` (TRUNC), durably.
    pub fn truncate(&mut self, zxid: i64) -> Result<(), StoreError> {
        if self.last.is_none_or(|l| l <= zxid) {
            return Ok(());
        }
        self.active = None;
        while let Some(seg) = self.segments.last() {
            if seg.first <= zxid {
                let mut records = Records::open(&seg.path)?;
                let (mut pos, mut crc, mut kept) = (0, 0, None);
                while let Some((z, _)) = records.next_record()? {
                    if z > zxid {
                        break;
                    }
                    (pos, crc, kept) = (records.pos, records.crc, Some(z));
                }
                if kept.is_some() {
                    let file = OpenOptions::new().read(true).write(true).open(&seg.path)?;
                    // Zeros from the cut on: the log ends there, and no record that was
                    // cut off is left behind the records appended next.
                    scrub(&file, pos)?;
                    self.last = kept;
                    self.active = Some(Active { file, pos, crc });
                    break;
                }
            }
            std::fs::remove_file(&seg.path)?;
            self.segments.pop();
        }
        if self.active.is_none() {
            self.last = None;
        }
        sync_dir(&self.dir)?;
        self.prepare_spare();
        Ok(())
    }

    /// Removes every record (an installed snapshot replaces the history).
    pub fn reset(&mut self) -> Result<(), StoreError> {
        self.active = None;
        for seg in self.segments.drain(..) {
            std::fs::remove_file(&seg.path)?;
        }
        sync_dir(&self.dir)?;
        self.last = None;
        self.prepare_spare();
        Ok(())
    }

    /// Takes the segments whose records are all at or below `zxid` (never the newest) out of
    /// the log and returns their files, for the caller to delete (reads no longer see them).
    pub fn detach(&mut self, zxid: i64) -> Vec<PathBuf> {
        let mut drop = 0;
        while drop + 1 < self.segments.len() && self.segments[drop + 1].first <= zxid + 1 {
            drop += 1;
        }
        self.segments.drain(..drop).map(|s| s.path).collect()
    }

    /// The logged txns above `zxid`, in order.
    pub fn after(&self, zxid: i64) -> Result<Vec<TxnEntry>, StoreError> {
        let mut out = Vec::new();
        if self.last.is_none_or(|l| l <= zxid) {
            return Ok(out);
        }
        // The segment holding zxid + 1 is the newest starting at or below it.
        let from = self
            .segments
            .iter()
            .rposition(|s| s.first <= zxid + 1)
            .unwrap_or(0);
        let newest = self.segments.len() - 1;
        for (i, seg) in self.segments.iter().enumerate().skip(from) {
            let mut records = Records::open(&seg.path)?;
            while let Some((z, payload)) = records.next_record()? {
                if z > zxid {
                    out.push(decode(&payload)?);
                }
            }
            whole(seg, &records, i == newest)?;
        }
        Ok(out)
    }

    /// The newest txns, oldest first: every one logged after `applied`, and up to `window`
    /// at or before it (`applied = i64::MAX`: the newest `window`). A restarting member's
    /// tail: the committed window its DIFFs serve, then what it has not applied.
    pub fn tail(&self, applied: i64, window: usize) -> Result<Vec<TxnEntry>, StoreError> {
        let mut kept: VecDeque<Vec<u8>> = VecDeque::new();
        // How many of those kept are at or before `applied`.
        let mut before = 0;
        for (i, seg) in self.segments.iter().enumerate().rev() {
            let mut these = Vec::new();
            let mut records = Records::open(&seg.path)?;
            while let Some((_, payload)) = records.next_record()? {
                these.push(payload);
            }
            whole(seg, &records, i + 1 == self.segments.len())?;
            for p in these.into_iter().rev() {
                // Unreadable zxids are kept: decoding reports them.
                if zxid_of(&p).is_none_or(|z| z > applied) {
                    kept.push_front(p);
                } else if before < window {
                    kept.push_front(p);
                    before += 1;
                } else {
                    break;
                }
            }
            if before >= window {
                break;
            }
        }
        kept.iter().map(|p| decode(p)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jute::txn::{SetDataTxn, TxnHeader};
    use jute::TxnRecord;

    fn txn(zxid: i64, data: &[u8]) -> TxnEntry {
        let record = TxnRecord::SetData(SetDataTxn {
            path: "/a".into(),
            data: Some(data.to_vec()),
            version: data.len() as i32,
        });
        TxnEntry {
            header: TxnHeader {
                client_id: 1,
                cxid: 2,
                zxid,
                time: 3,
                type_: record.op().code(),
            },
            record,
            digest: None,
        }
    }

    fn zxids(txns: &[TxnEntry]) -> Vec<i64> {
        txns.iter().map(|t| t.header.zxid).collect()
    }

    #[test]
    fn appends_survive_reopen_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(log.last(), None);
        // Nothing to append to: the first segment's zeros are on their way.
        assert!(log.spare.is_some());
        assert!(log.append(&[txn(1, b"a"), txn(2, b"b")]).unwrap());
        assert!(!log.append(&[txn(3, b"c")]).unwrap());
        // The next spare waits until the segment is half full: an idle log has no spare.
        assert!(log.spare.is_none());
        assert!(!dir.path().join(SPARE).exists());
        // Already logged: skipped, as a RocksDB put of the same key was idempotent.
        log.append(&[txn(3, b"c")]).unwrap();
        drop(log);
        let mut log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(log.last(), Some(3));
        assert_eq!(zxids(&log.after(0).unwrap()), vec![1, 2, 3]);
        assert_eq!(zxids(&log.after(2).unwrap()), vec![3]);
        assert_eq!(zxids(&log.tail(i64::MAX, 2).unwrap()), vec![2, 3]);
        log.append(&[txn(4, b"d")]).unwrap();
        assert_eq!(zxids(&log.after(0).unwrap()), vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_txn_received_encoded_is_logged_as_received() {
        // A PROPOSAL's payload: kept as it is, not encoded again.
        let payload = txn(1, b"received").to_bytes();
        let at = payload.as_ptr();
        let received = Txn::decode(payload).unwrap();
        assert_eq!(received.bytes().as_ptr(), at);
        assert_eq!(*received, txn(1, b"received"));
        // One encoded here on first use, kept: the same bytes each time.
        let proposed = Txn::new(txn(2, b"proposed"));
        assert_eq!(proposed.bytes(), &txn(2, b"proposed").to_bytes()[..]);
        assert!(std::ptr::eq(proposed.bytes(), proposed.bytes()));
        // And one never encoded: the log encodes it into its own buffer.
        let plain = Txn::new(txn(3, b"plain"));
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxLog::open(dir.path(), true).unwrap();
        log.append(&[received, proposed, plain]).unwrap();
        drop(log);
        let log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(
            log.after(0).unwrap(),
            vec![txn(1, b"received"), txn(2, b"proposed"), txn(3, b"plain")]
        );
        assert!(Txn::decode(vec![0, 0, 0]).is_err());
    }

    #[test]
    fn a_torn_tail_ends_the_log_and_is_overwritten_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxLog::open(dir.path(), true).unwrap();
        log.append(&[txn(1, b"a"), txn(2, b"b"), txn(3, b"c")])
            .unwrap();
        let end = log.active.as_ref().unwrap().pos;
        let path = log.segments[0].path.clone();
        drop(log);
        // Tear the last record: flip a byte of its payload.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xAA], end - 3).unwrap();
        let mut log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(log.last(), Some(2));
        // A shorter record where the torn one was: what is left of the old one never checks.
        log.append(&[txn(3, b"")]).unwrap();
        drop(log);
        let log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(zxids(&log.after(0).unwrap()), vec![1, 2, 3]);
    }

    #[test]
    fn damage_in_an_older_segment_is_an_error_not_a_silent_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxLog::open(dir.path(), true).unwrap();
        let big = vec![7u8; 1 << 20];
        let mut zxid = 0;
        while log.segments.len() < 2 {
            zxid += 1;
            log.append(&[txn(zxid, &big)]).unwrap();
        }
        let older = log.segments[0].path.clone();
        drop(log);
        // A flipped byte in the middle of the older segment.
        let f = OpenOptions::new().write(true).open(&older).unwrap();
        f.write_all_at(&[0xAA], 5 << 20).unwrap();
        let log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(log.last(), Some(zxid));
        assert!(matches!(
            log.after(0),
            Err(StoreError::Corrupt {
                what: "transaction log",
                ..
            })
        ));
        assert!(log.tail(i64::MAX, 1000).is_err());
        // The newest segment alone still reads.
        assert_eq!(zxids(&log.tail(i64::MAX, 1).unwrap()), vec![zxid]);
    }

    #[test]
    fn a_torn_tail_is_cleared_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxLog::open(dir.path(), true).unwrap();
        log.append(&[txn(1, b"a"), txn(2, &[9u8; 3000])]).unwrap();
        let path = log.segments[0].path.clone();
        drop(log);
        // Tear #2 near its start: its bytes stay behind the log's end.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        let first = (HEADER + txn(1, b"a").to_bytes().len()) as u64;
        f.write_all_at(&[0xAA], first + HEADER as u64 + 1).unwrap();
        let log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(log.last(), Some(1));
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes[first as usize..].iter().all(|&b| b == 0));
    }

    #[test]
    fn records_left_over_after_a_rewrite_do_not_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxLog::open(dir.path(), true).unwrap();
        log.append(&[txn(1, b"a"), txn(2, b"bb"), txn(3, b"c"), txn(4, b"d")])
            .unwrap();
        log.truncate(1).unwrap();
        assert_eq!(log.last(), Some(1));
        drop(log);
        // Reopened before anything new: the truncated records stay gone.
        let mut log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(zxids(&log.after(0).unwrap()), vec![1]);
        // A record of the same size as the old #2 at its place: the old #3 and #4 behind it
        // are intact bytes with higher zxids, but chained to the old #2, so they do not check.
        log.append(&[txn(2, b"xx")]).unwrap();
        drop(log);
        let log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(zxids(&log.after(0).unwrap()), vec![1, 2]);
        match &log.after(1).unwrap()[0].record {
            TxnRecord::SetData(t) => assert_eq!(t.data.as_deref(), Some(&b"xx"[..])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn segments_roll_trim_truncate_and_reset() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = TxLog::open(dir.path(), true).unwrap();
        // Records of ~1 MiB: a segment holds about 15 of them.
        let big = vec![7u8; 1 << 20];
        let mut zxid = 0;
        let mut rolls = 0;
        while rolls < 3 {
            zxid += 1;
            if log.append(&[txn(zxid, &big)]).unwrap() {
                rolls += 1;
            }
        }
        assert_eq!(log.segments.len(), 3);
        let second = log.segments[1].first;
        let third = log.segments[2].first;
        assert_eq!(
            zxids(&log.after(0).unwrap()),
            (1..=zxid).collect::<Vec<_>>()
        );
        assert_eq!(
            zxids(&log.after(second).unwrap()),
            (second + 1..=zxid).collect::<Vec<_>>()
        );
        assert_eq!(
            zxids(&log.tail(i64::MAX, 3).unwrap()),
            vec![zxid - 2, zxid - 1, zxid]
        );
        // Detaching keeps any segment holding a record above the point.
        for path in log.detach(second) {
            std::fs::remove_file(path).unwrap();
        }
        assert_eq!(log.segments.len(), 2);
        for path in log.detach(third - 1) {
            std::fs::remove_file(path).unwrap();
        }
        assert_eq!(log.segments.len(), 1);
        assert_eq!(log.segments[0].first, third);
        // Truncating into the middle of the newest segment, then appending, then reopening.
        log.truncate(third).unwrap();
        assert_eq!(log.last(), Some(third));
        log.append(&[txn(third + 1, b"new")]).unwrap();
        drop(log);
        let mut log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(zxids(&log.after(0).unwrap()), vec![third, third + 1]);
        // Truncating below every segment empties the log.
        log.truncate(third - 1).unwrap();
        assert_eq!(log.last(), None);
        assert!(log.after(-1).unwrap().is_empty());
        log.append(&[txn(third, b"again")]).unwrap();
        log.reset().unwrap();
        assert_eq!(log.last(), None);
        drop(log);
        let log = TxLog::open(dir.path(), true).unwrap();
        assert_eq!(log.last(), None);
    }
}
