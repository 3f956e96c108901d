//! A leader's snapshot for a learner's SNAP, written by a thread of its own from a
//! point-in-time view of the store and handed to the learner's connection in pieces as they
//! are written. The leader's core goes on serving clients meanwhile (encoding a million
//! znodes on it took about a second), the tree never sits in memory whole on the leader, and
//! no packet has to hold it (a packet's data is at most 2 GiB).
//!
//! Two formats: zkrs's own for learners that announce [`crate::zab::CHUNKED_SNAP_VERSION`]
//! (sent in length-prefixed frames after a SNAP tagged [`crate::zab::CHUNKED_SNAP_TAG`]), and
//! ZooKeeper's serialized tree for the others (written on the stream after a SNAP without
//! data, as ZooKeeper's leader does, [`crate::import::write_snap_for_zookeeper`]).

use crate::store::StoreError;
use crate::tree::{DataTree, Node};
use jute::Encode;

/// Which encoding a learner takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapFormat {
    /// zkrs's SNAP data ([`crate::store::Store::install_snapshot`]), its node count -1.
    Zkrs,
    /// ZooKeeper's serialized tree, then a SNAP's signature.
    ZooKeeper,
    /// ZooKeeper's serialized tree alone: a snapshot file's body
    /// ([`crate::import::SnapshotFile`]).
    ZooKeeperTree,
}

/// The pieces of a snapshot as they are written: `Some(bytes)` each, then `None` once it is
/// whole. A stream that ends without `None` broke off (the store could not be read): the
/// learner's connection is then closed, and the learner syncs again.
pub type SnapChunks = tokio::sync::mpsc::Receiver<Option<Vec<u8>>>;

/// About how many bytes a piece holds (a record is never split).
pub const PIECE: usize = 1 << 20;
/// Pieces written ahead of the connection: what the leader holds of a snapshot at most.
const PIECES_AHEAD: usize = 4;

/// Every node of a snapshot, parents first, each given to the callback, which answers
/// false to stop (nobody takes the snapshot any more). Ok(false) when stopped.
pub type Walk<'a> = dyn FnMut(&mut dyn FnMut(&str, &Node) -> bool) -> Result<bool, StoreError> + 'a;

/// A [`Walk`] of a tree's nodes (in the store's order, as [`DataTree::for_each_ordered`]).
pub fn walk_tree(
    tree: &DataTree,
    f: &mut dyn FnMut(&str, &Node) -> bool,
) -> Result<bool, StoreError> {
    let mut going = true;
    tree.for_each_ordered(|p, n| going = going && f(p, n));
    Ok(going)
}

/// Where a snapshot is written: `out`, handed on a piece at a time.
pub struct Sink<'a> {
    pub out: Vec<u8>,
    emit: &'a mut dyn FnMut(Vec<u8>) -> bool,
}

impl<'a> Sink<'a> {
    /// `emit` takes each piece; it answers false when nobody takes them any more.
    pub fn new(emit: &'a mut dyn FnMut(Vec<u8>) -> bool) -> Self {
        Sink {
            out: Vec::with_capacity(PIECE + PIECE / 4),
            emit,
        }
    }

    /// Called after each record: hands `out` on once it holds a piece's worth. False once
    /// nobody takes the pieces.
    pub fn record_done(&mut self) -> bool {
        if self.out.len() < PIECE {
            return true;
        }
        let piece = std::mem::replace(&mut self.out, Vec::with_capacity(PIECE + PIECE / 4));
        (self.emit)(piece)
    }

    /// Hands on what is left.
    pub fn finish(self) -> bool {
        self.out.is_empty() || (self.emit)(self.out)
    }
}

/// zkrs's SNAP data: last zxid, sessions, node count -1 (not known before the nodes are
/// written), each node's path and record, then the end mark and the count.
pub fn write_zkrs(
    zxid: i64,
    sessions: &[(i64, i32)],
    walk: &mut Walk,
    sink: &mut Sink,
) -> Result<bool, StoreError> {
    crate::store::write_snapshot_head(&mut sink.out, zxid, sessions, -1);
    let mut record = Vec::new();
    let mut count: i32 = 0;
    let whole = walk(&mut |p, node| {
        crate::store::write_snapshot_record(&mut sink.out, p, node, &mut record);
        count += 1;
        sink.record_done()
    })?;
    sink.out.extend_from_slice(&crate::store::END_MARK);
    count.encode(&mut sink.out);
    Ok(whole)
}

/// Writes `format` from `walk` into pieces handed to `emit`; false when stopped.
pub fn write(
    format: SnapFormat,
    zxid: i64,
    sessions: &[(i64, i32)],
    walk: &mut Walk,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<bool, StoreError> {
    let mut sink = Sink::new(emit);
    let whole = match format {
        SnapFormat::Zkrs => write_zkrs(zxid, sessions, walk, &mut sink)?,
        SnapFormat::ZooKeeper => {
            let whole = crate::import::write_snap_for_zookeeper(sessions, walk, &mut sink)?;
            crate::import::write_snap_signature(&mut sink.out);
            whole
        }
        SnapFormat::ZooKeeperTree => {
            crate::import::write_snap_for_zookeeper(sessions, walk, &mut sink)?
        }
    };
    Ok(whole && sink.finish())
}

/// A channel for a snapshot's pieces, as the learner's connection takes them.
pub fn channel() -> (tokio::sync::mpsc::Sender<Option<Vec<u8>>>, SnapChunks) {
    tokio::sync::mpsc::channel(PIECES_AHEAD)
}

/// A tree held in memory only (no store under it), written at once: its pieces wait in the
/// channel, which is made to hold them all.
pub fn from_tree(tree: &DataTree, format: SnapFormat) -> SnapChunks {
    let sessions: Vec<(i64, i32)> = tree.sessions.iter().map(|(i, t)| (*i, *t)).collect();
    let mut pieces = Vec::new();
    let mut walk = |f: &mut dyn FnMut(&str, &Node) -> bool| walk_tree(tree, f);
    let written = write(format, tree.last_zxid, &sessions, &mut walk, &mut |piece| {
        pieces.push(piece);
        true
    });
    let (tx, rx) = tokio::sync::mpsc::channel(pieces.len() + 1);
    for piece in pieces {
        let _ = tx.try_send(Some(piece));
    }
    if let Ok(true) = written {
        let _ = tx.try_send(None);
    }
    rx
}
