//! The data tree: znodes in memory, and `apply`, which turns a committed txn into changes.
//!
//! `apply` is deterministic and total for txns that `prep` produced: everything
//! nondeterministic (zxid, time, sequence suffix, owner) is already in the txn. It returns the
//! watch events to fire and records which paths changed, so the caller can persist them.

use crate::path;
use jute::data::{Acl, Stat, StatPersisted};
use jute::txn::{CreateTxn, TxnHeader};
use jute::{EventType, TxnEntry, TxnRecord, ZkError};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// `ephemeralOwner` of a container node.
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// High byte of `ephemeralOwner` marking a TTL node (its low bits hold the TTL).
pub const TTL_MARK: u64 = 0xFF00_0000_0000_0000;

/// What kind of node an `ephemeralOwner` value denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Normal,
    Ephemeral(i64),
    Container,
    Ttl(i64),
}

pub fn node_kind(owner: i64, extended_types: bool) -> NodeKind {
    if owner == 0 {
        NodeKind::Normal
    } else if owner == CONTAINER_OWNER {
        NodeKind::Container
    } else if extended_types && (owner as u64) & TTL_MARK == TTL_MARK {
        NodeKind::Ttl((owner as u64 & !TTL_MARK) as i64)
    } else {
        NodeKind::Ephemeral(owner)
    }
}

/// One znode. Its children are not held here: the store lists them ([`DataTree::children`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub stat: StatPersisted,
    pub data: Option<Vec<u8>>,
    pub acl: Arc<Vec<Acl>>,
    /// How many children it has.
    pub num_children: u32,
    /// This node's part of the tree digest ([`node_digest`]), as last counted.
    pub digest: u32,
}

/// The Stat a client sees of a node with stat `s`, `num_children` children and `data_len`
/// bytes of data (`DataNode.copyStat`).
pub fn client_stat(
    s: &StatPersisted,
    num_children: u32,
    data_len: usize,
    extended_types: bool,
) -> Stat {
    let num_children = i32::try_from(num_children).unwrap_or(i32::MAX);
    let owner = match node_kind(s.ephemeral_owner, extended_types) {
        NodeKind::Ephemeral(o) => o,
        _ => 0,
    };
    Stat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion.wrapping_mul(2).wrapping_sub(num_children),
        aversion: s.aversion,
        ephemeral_owner: owner,
        data_length: i32::try_from(data_len).unwrap_or(i32::MAX),
        num_children,
        pzxid: s.pzxid,
    }
}

/// Where a tree's nodes live beyond the ones it holds in memory: the store. A tree without
/// pages holds every node in memory (a snapshot being installed, unit tests).
///
/// A store that cannot be read stops the server (as one that cannot be written does): a
/// tree that answered from part of its nodes would answer wrongly.
pub trait Pages: Send {
    /// The stored node at `p`.
    fn load(&self, p: &str) -> Option<Node>;
    /// The names of the stored children of `p`.
    fn children(&self, p: &str, f: &mut dyn FnMut(&str));
    /// Every stored node, parents before children.
    fn scan(&self, f: &mut dyn FnMut(&str, &Node));
    /// How many stored nodes are below `p`.
    fn count_under(&self, p: &str) -> usize;
}

/// A node's part of ZooKeeper's tree digest (`DigestCalculator`, version 2): CRC32 of the path
/// (`/` as the empty string), the data, then czxid, mzxid, pzxid, ctime, mtime, version,
/// cversion, aversion and ephemeralOwner big-endian. Nodes under `/zookeeper/` count 0.
pub fn node_digest(p: &str, n: &Node) -> u32 {
    digest_of(p, n.data.as_deref(), &n.stat)
}

/// [`node_digest`] of a node at `p` with `data` and `stat`.
pub fn digest_of(p: &str, data: Option<&[u8]>, stat: &StatPersisted) -> u32 {
    if p.starts_with("/zookeeper/") {
        return 0;
    }
    let mut crc = crc32fast::Hasher::new();
    if p != "/" {
        crc.update(p.as_bytes());
    }
    if let Some(d) = data {
        crc.update(d);
    }
    crc.update(&digest_stat(stat));
    crc.finalize()
}

/// The stat fields a node's digest covers, in its order.
fn digest_stat(s: &StatPersisted) -> [u8; 60] {
    let mut stat = [0u8; 60];
    let fields8 = [s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime];
    for (i, v) in fields8.iter().enumerate() {
        stat[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
    }
    stat[40..44].copy_from_slice(&s.version.to_be_bytes());
    stat[44..48].copy_from_slice(&s.cversion.to_be_bytes());
    stat[48..52].copy_from_slice(&s.aversion.to_be_bytes());
    stat[52..60].copy_from_slice(&s.ephemeral_owner.to_be_bytes());
    stat
}

/// The digest of a node at `p` whose stat went from `old` to `new`, its path and data kept,
/// from its digest `digest` before, without its data: the stat ends the digested bytes, and
/// CRC32 is affine, so for two messages of one length crc(a) ^ crc(b) = crc(a ^ b) ^
/// crc(zeros), where the bytes before the stat cancel out.
pub fn restat_digest(p: &str, digest: u32, old: &StatPersisted, new: &StatPersisted) -> u32 {
    if p.starts_with("/zookeeper/") {
        return 0;
    }
    let (a, b) = (digest_stat(old), digest_stat(new));
    let mut x = [0u8; 60];
    for (i, v) in x.iter_mut().enumerate() {
        *v = a[i] ^ b[i];
    }
    digest ^ crc32fast::hash(&x) ^ ZEROS_CRC
}

/// CRC32 of the 60 zero bytes of a zero stat.
const ZEROS_CRC: u32 = 68_323_592;

/// Recounts a changed node's part of the tree digest `digest`.
fn redigest(digest: &mut i64, p: &str, n: &mut Node) {
    let new = node_digest(p, n);
    *digest = digest
        .wrapping_sub(i64::from(n.digest))
        .wrapping_add(i64::from(new));
    n.digest = new;
}

/// How often (in zxids) and how many tree digests the digest log keeps, as ZooKeeper does.
/// The version of ZooKeeper's digest this tree keeps (`DigestCalculator`'s 2).
pub const DIGEST_VERSION: i32 = 2;
const DIGEST_LOG_INTERVAL: i64 = 128;
const DIGEST_LOG_LIMIT: usize = 1024;

/// An interned ACL list, shared by the nodes that have it.
pub type SharedAcl = Arc<Vec<Acl>>;

impl Node {
    pub fn new(stat: StatPersisted, data: Option<Vec<u8>>, acl: Arc<Vec<Acl>>) -> Self {
        Node {
            stat,
            data,
            acl,
            num_children: 0,
            digest: 0,
        }
    }

    /// The node as a txn that changes it finds it, for an ensemble's learners: its stat, ACL,
    /// number of children, data length and digest, not its data (the txn replaces or deletes
    /// it). See [`DataTree::prime`].
    pub fn encode_prior(&self, out: &mut Vec<u8>) {
        use jute::Encode;
        self.stat.encode(out);
        jute::codec::write_vector(out, Some(self.acl.as_slice()));
        (i32::try_from(self.num_children).unwrap_or(i32::MAX)).encode(out);
        let len = self.data.as_ref().map_or(-1, |d| d.len() as i32);
        len.encode(out);
        (self.digest as i32).encode(out);
    }

    /// Decodes [`encode_prior`](Self::encode_prior): the data is `data length` zero bytes, a
    /// stand-in that only counts in the tree's data size, never seen (the txn replaces it).
    fn decode_prior(bytes: &[u8]) -> Result<Node, jute::DecodeError> {
        use jute::Decode;
        let mut r = jute::Reader::new(bytes);
        let stat = StatPersisted::decode(&mut r)?;
        let acl: Vec<Acl> = r.read_vector()?.unwrap_or_default();
        let num_children = u32::try_from(r.read_i32()?).unwrap_or(0);
        let len = r.read_i32()?;
        // No more than the largest node a client may write (jute.maxbuffer's ceiling).
        if len > 1 << 30 {
            return Err(jute::DecodeError::TooLarge {
                len: len as usize,
                max: 1 << 30,
            });
        }
        let digest = r.read_i32()? as u32;
        let data = usize::try_from(len).ok().map(|n| vec![0; n]);
        let mut node = Node::new(stat, data, Arc::new(acl));
        node.num_children = num_children;
        node.digest = digest;
        Ok(node)
    }

    /// The Stat a client sees (`DataNode.copyStat`).
    pub fn client_stat(&self, extended_types: bool) -> Stat {
        let data_len = self.data.as_ref().map_or(0, Vec::len);
        client_stat(&self.stat, self.num_children, data_len, extended_types)
    }
}

/// A watch event produced by applying a txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub path: String,
    /// The ACL of the node the event names as the change left it (a deleted node's last
    /// one): only connections that may read it are told (ZooKeeper 3.8.4 and 3.9.2 on,
    /// CVE-2024-23944).
    pub acl: Arc<Vec<Acl>>,
}

/// What one record did, for the reply: the path and the node's Stat right after it.
#[derive(Debug, Clone)]
pub struct OpResult {
    pub path: String,
    pub stat: Option<Stat>,
}

/// What applying one txn did.
#[derive(Debug, Default)]
pub struct Applied {
    pub events: Vec<Event>,
    /// The error of a failed multi's ops, or of an error txn.
    pub err: Option<ZkError>,
    /// One per record applied (per op of a multi), in order.
    pub results: Vec<OpResult>,
}

/// Shards of the node map.
const SHARDS: usize = 64;

/// Every this many inserts, a sharded table grows its fullest shard ahead of time.
const GROW_EVERY: u32 = 256;

/// A shard of a sharded table, as [`grow_ahead`] sees it.
trait Shard {
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
    fn reserve(&mut self, n: usize);
}

impl<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher> Shard for HashMap<K, V, S> {
    fn len(&self) -> usize {
        HashMap::len(self)
    }
    fn capacity(&self) -> usize {
        HashMap::capacity(self)
    }
    fn reserve(&mut self, n: usize) {
        HashMap::reserve(self, n)
    }
}

impl<T: Eq + std::hash::Hash, S: std::hash::BuildHasher> Shard for std::collections::HashSet<T, S> {
    fn len(&self) -> usize {
        std::collections::HashSet::len(self)
    }
    fn capacity(&self) -> usize {
        std::collections::HashSet::capacity(self)
    }
    fn reserve(&mut self, n: usize) {
        std::collections::HashSet::reserve(self, n)
    }
}

/// Counts an insert into `shards`; every [`GROW_EVERY`] inserts, doubles the fullest shard once
/// it is past 70% of what it holds before it must grow. Shards filled evenly by a hash reach
/// their limit together and, left alone, would all grow (each rehashing everything it holds)
/// within a few turns: at 917,504 znodes (64 x 16,384 x 7/8), turns of 20-34 ms where others
/// took 13. Grown one at a time, early, that work spreads out.
fn grow_ahead<T: Shard>(inserts: &mut u32, shards: &mut [T]) {
    *inserts = inserts.wrapping_add(1);
    if !inserts.is_multiple_of(GROW_EVERY) {
        return;
    }
    let mut fullest = None;
    let mut most = 0.7;
    for (i, s) in shards.iter().enumerate() {
        let load = s.len() as f64 / s.capacity().max(1) as f64;
        if load > most {
            (fullest, most) = (Some(i), load);
        }
    }
    if let Some(s) = fullest.map(|i| &mut shards[i]) {
        let cap = s.capacity();
        s.reserve(cap);
    }
}

/// A node held in memory: the node (`None`: deleted since the last save, which the store
/// still has), and whether it was read since the last sweep.
#[derive(Debug)]
struct Slot {
    node: Option<Arc<Node>>,
    /// Its children's names, once listed; dropped when one is created or deleted.
    children: Option<Names>,
    hot: bool,
}

/// A node's children's names, as [`DataTree::children`] lists them.
pub type Names = Arc<Vec<Box<str>>>;

/// The nodes held in memory by path, in shards. A hash table that grows moves all its entries
/// at once, on the core thread: at a million znodes that was a pause of about 100 ms every
/// client saw (and it doubles with the tree); in 64 shards each growth moves a 64th of them.
#[derive(Debug)]
struct NodeMap {
    /// Keys are boxed strings: a bucket is then 32 bytes, not 40.
    shards: Vec<HashMap<Box<str>, Slot, ahash::RandomState>>,
    inserts: u32,
}

impl NodeMap {
    fn new() -> Self {
        NodeMap {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            inserts: 0,
        }
    }

    /// The shard: a multiplicative hash of the path's last 8 bytes (siblings differ at the
    /// end), not a second pass of the tables' keyed hash. Paths made to share a shard only
    /// make that shard grow as one table would; each shard's table keeps its keyed hash.
    fn shard(&self, p: &str) -> usize {
        let b = p.as_bytes();
        let mut tail = [0u8; 8];
        let n = b.len().min(8);
        tail[8 - n..].copy_from_slice(&b[b.len() - n..]);
        let h = u64::from_le_bytes(tail).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> (64 - SHARDS.trailing_zeros())) as usize
    }

    fn get(&self, p: &str) -> Option<&Slot> {
        self.shards[self.shard(p)].get(p)
    }

    fn get_mut(&mut self, p: &str) -> Option<&mut Slot> {
        let i = self.shard(p);
        self.shards[i].get_mut(p)
    }

    fn insert(&mut self, p: String, slot: Slot) -> Option<Slot> {
        grow_ahead(&mut self.inserts, &mut self.shards);
        let i = self.shard(&p);
        self.shards[i].insert(p.into_boxed_str(), slot)
    }

    fn remove(&mut self, p: &str) -> Option<Slot> {
        let i = self.shard(p);
        self.shards[i].remove(p)
    }

    fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &Slot)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(p, n)| (&**p, n)))
    }

    fn retain(&mut self, mut keep: impl FnMut(&str, &mut Slot) -> bool) {
        for s in &mut self.shards {
            s.retain(|p, slot| keep(p, slot));
        }
    }
}

/// What a node held in memory costs, roughly: its slot, key and bucket, the node with its
/// stat, its path and its data.
fn weight(p: &str, n: Option<&Node>) -> usize {
    const FIXED: usize = 200;
    FIXED + p.len() + n.and_then(|n| n.data.as_ref()).map_or(0, Vec::len)
}

/// What a list of children held in memory costs, roughly.
fn names_weight(names: &[Box<str>]) -> usize {
    32 + names.iter().map(|n| 24 + n.len()).sum::<usize>()
}

/// The persisted stat of a node the create txn `h` makes, owned by `owner` (0, a session, or
/// the container and TTL marks).
pub(crate) fn created_stat(h: &TxnHeader, owner: i64) -> StatPersisted {
    StatPersisted {
        czxid: h.zxid,
        mzxid: h.zxid,
        ctime: h.time,
        mtime: h.time,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: owner,
        pzxid: h.zxid,
    }
}

/// The plain create a container or TTL create txn applies as (its owner marks its kind).
fn persistent_create(
    path: &str,
    data: &Option<Vec<u8>>,
    acl: &Option<Vec<Acl>>,
    parent_c_version: i32,
) -> CreateTxn {
    CreateTxn {
        path: path.to_string(),
        data: data.clone(),
        acl: acl.clone(),
        ephemeral: false,
        parent_c_version,
    }
}

/// How much memory the nodes held in memory may take by default (`znodeCacheSizeMB`).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// The nodes held in memory, over the store's pages: every node changed since the last
/// save (the store does not have it yet), and the nodes read lately, up to a budget.
struct Nodes {
    /// A cell: a read that finds a node in the store keeps it here.
    map: std::cell::RefCell<NodeMap>,
    pages: Option<Box<dyn Pages>>,
    /// Bytes held (see [`weight`]), counted as nodes come in and recounted by a sweep.
    held: std::cell::Cell<usize>,
    budget: usize,
    /// Paths looked up this turn that are neither here nor in the store, so that a second
    /// look costs no store lookup. Forgotten at every save.
    absent: std::cell::RefCell<crate::FastSet<Box<str>>>,
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nodes")
            .field("held", &self.held.get())
            .field("budget", &self.budget)
            .field("paged", &self.pages.is_some())
            .finish()
    }
}

impl Nodes {
    /// A client's read: the node is held, as read lately (see [`saved`](Self::saved)).
    fn get(&self, p: &str) -> Option<Arc<Node>> {
        self.fetch(p, true)
    }

    /// A write's look at a node (its check, its apply, its save): a node loaded for it is let
    /// go once the change is saved, as a created one is, unless a client reads it meanwhile.
    fn fetch_for_write(&self, p: &str) -> Option<Arc<Node>> {
        self.fetch(p, false)
    }

    fn fetch(&self, p: &str, read: bool) -> Option<Arc<Node>> {
        let mut map = self.map.borrow_mut();
        if let Some(slot) = map.get_mut(p) {
            slot.hot |= read;
            return slot.node.clone();
        }
        let pages = self.pages.as_ref()?;
        let mut absent = self.absent.borrow_mut();
        if absent.contains(p) {
            return None;
        }
        let Some(mut node) = pages.load(p) else {
            absent.insert(p.into());
            return None;
        };
        node.digest = node_digest(p, &node);
        self.held.set(self.held.get() + weight(p, Some(&node)));
        let node = Arc::new(node);
        map.insert(
            p.to_string(),
            Slot {
                node: Some(node.clone()),
                children: None,
                hot: read,
            },
        );
        Some(node)
    }

    /// Whether `p` is a live node among those held (not whether it exists).
    fn holds_live(&self, p: &str) -> bool {
        self.map.borrow().get(p).is_some_and(|s| s.node.is_some())
    }

    fn get_mut(&mut self, p: &str) -> Option<&mut Node> {
        self.fetch_for_write(p)?;
        self.map
            .get_mut()
            .get_mut(p)?
            .node
            .as_mut()
            .map(Arc::make_mut)
    }

    /// Forgets the listed children of `p` (one was created or deleted).
    fn forget_children(&mut self, p: &str) {
        if let Some(slot) = self.map.get_mut().get_mut(p) {
            slot.children = None;
        }
    }

    fn insert(&mut self, p: String, node: Node) {
        self.held.set(self.held.get() + weight(&p, Some(&node)));
        // Not read yet: a node only written is let go once saved.
        let slot = Slot {
            node: Some(Arc::new(node)),
            children: None,
            hot: false,
        };
        self.map.get_mut().insert(p, slot);
    }

    /// Holds `node` as `p`'s stored state, unless `p` is held or known absent: what a load of
    /// `p` would have found. Not a read: let go once saved.
    fn prime(&mut self, p: &str, node: Node) -> bool {
        if self.pages.is_none() || self.absent.get_mut().contains(p) {
            return false;
        }
        let map = self.map.get_mut();
        if map.get(p).is_some() {
            return false;
        }
        self.held.set(self.held.get() + weight(p, Some(&node)));
        let slot = Slot {
            node: Some(Arc::new(node)),
            children: None,
            hot: false,
        };
        map.insert(p.to_string(), slot);
        true
    }

    /// Takes `p` out. With pages, its slot stays, empty, until the deletion is saved.
    fn remove(&mut self, p: &str) -> Option<Arc<Node>> {
        self.fetch_for_write(p)?;
        let map = self.map.get_mut();
        if self.pages.is_some() {
            let slot = map.get_mut(p)?;
            slot.children = None;
            slot.node.take()
        } else {
            map.remove(p)?.node
        }
    }

    /// After `saved` were written to the store (everything changed so far): forgets the
    /// deletions among them and, past the budget, keeps the nodes read since the last sweep,
    /// up to three quarters of it.
    fn saved(&mut self, saved: &crate::FastSet<String>) {
        if self.pages.is_none() {
            return;
        }
        self.absent.get_mut().clear();
        let map = self.map.get_mut();
        // Deletions, and nodes created and not read since: a bulk of creates does not
        // push out the nodes being read.
        let mut held = self.held.get();
        for p in saved {
            if map.get(p).is_some_and(|s| s.node.is_none() || !s.hot) {
                if let Some(slot) = map.remove(p) {
                    held = held.saturating_sub(weight(p, slot.node.as_deref()));
                }
            }
        }
        self.held.set(held);
        if self.held.get() <= self.budget {
            return;
        }
        let keep = self.budget / 4 * 3;
        let mut held = 0;
        map.retain(|p, slot| {
            let w = weight(p, slot.node.as_deref())
                + slot.children.as_deref().map_or(0, |c| names_weight(c));
            let stay = slot.hot && held + w <= keep;
            slot.hot = false;
            if stay {
                held += w;
            }
            stay
        });
        self.held.set(held);
    }
}

/// The data tree.
#[derive(Debug)]
pub struct DataTree {
    nodes: Nodes,
    /// How many nodes there are, and the bytes of their paths and data.
    count: usize,
    data_size: i64,
    /// Ephemeral paths by owning session.
    ephemerals: HashMap<i64, BTreeSet<String>>,
    /// The most ephemerals each session held at once since it was loaded: the size
    /// ZooKeeper's `HashSet` of them grew to, which sets the order it iterates them in.
    ephemeral_peak: HashMap<i64, usize>,
    pub containers: BTreeSet<String>,
    pub ttls: BTreeSet<String>,
    /// Live sessions and their timeouts, as the txns created and closed them.
    pub sessions: std::collections::BTreeMap<i64, i32>,
    /// Session changes since the last `take_dirty_sessions`: (id, Some(timeout) | None).
    dirty_sessions: Vec<(i64, Option<i32>)>,
    /// Interned ACL lists.
    acls: crate::FastSet<Arc<Vec<Acl>>>,
    /// Paths with a quota (`/zookeeper/quota/<path>/zookeeper_limits` exists).
    quota_paths: BTreeSet<String>,
    pub last_zxid: i64,
    /// The newest zxid a stored node's stat names. Past `last_zxid` only after a snapshot
    /// written while its tree changed (a ZooKeeper leader's SNAP is such a fuzzy one): the
    /// txns up to it may be in the tree already, so until they are applied a create looks
    /// for its node in the store too (and finding it changes nothing, as in ZooKeeper).
    fuzzy_until: i64,
    pub extended_types: bool,
    /// Paths changed since the last `take_dirty`.
    dirty: crate::FastSet<String>,
    /// ZooKeeper's tree digest: the wrapping sum of every node's [`node_digest`].
    digest: i64,
    /// (zxid, tree digest) at every zxid that is a multiple of 128, oldest first (`hash`).
    digest_log: VecDeque<(i64, i64)>,
    /// The creates, setDatas and deletes applied, by namespace (`write_per_namespace`).
    pub writes: crate::metrics::PerNamespace,
}

impl DataTree {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`.
    pub fn new(extended_types: bool) -> Self {
        let mut t = DataTree::empty(extended_types);
        let open = Arc::new(crate::acl::open_acl_unsafe());
        let mut root = Node::new(StatPersisted::default(), Some(vec![]), open.clone());
        root.num_children = 1;
        t.insert_loaded("/".into(), root);
        let mut zk = Node::new(StatPersisted::default(), Some(vec![]), open.clone());
        zk.num_children = 2;
        t.insert_loaded("/zookeeper".into(), zk);
        t.insert_loaded(
            "/zookeeper/quota".into(),
            Node::new(StatPersisted::default(), Some(vec![]), open),
        );
        let config_stat = StatPersisted {
            aversion: -1,
            ..Default::default()
        };
        let read = Arc::new(crate::acl::read_acl_unsafe());
        t.insert_loaded(
            "/zookeeper/config".into(),
            Node::new(config_stat, Some(vec![]), read),
        );
        for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            t.dirty.insert(p.to_string());
        }
        t
    }

    /// An empty tree to load stored nodes into (parents first).
    pub fn empty(extended_types: bool) -> Self {
        DataTree {
            nodes: Nodes {
                map: std::cell::RefCell::new(NodeMap::new()),
                pages: None,
                held: std::cell::Cell::new(0),
                budget: usize::MAX,
                absent: Default::default(),
            },
            count: 0,
            data_size: 0,
            ephemerals: HashMap::new(),
            ephemeral_peak: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            sessions: Default::default(),
            dirty_sessions: Vec::new(),
            acls: crate::FastSet::default(),
            quota_paths: BTreeSet::new(),
            last_zxid: 0,
            fuzzy_until: 0,
            extended_types,
            dirty: crate::FastSet::default(),
            digest: 0,
            digest_log: VecDeque::new(),
            writes: Default::default(),
        }
    }

    /// One shared copy of each distinct ACL list (ZooKeeper's ACL cache): most nodes of a
    /// tree share a handful of lists. A txn's ACL (none is the empty list) is copied only
    /// when it is new.
    fn intern_txn_acl(&mut self, acl: Option<&Vec<Acl>>) -> Arc<Vec<Acl>> {
        static NONE: Vec<Acl> = Vec::new();
        let acl = acl.unwrap_or(&NONE);
        match self.acls.get(acl) {
            Some(a) => a.clone(),
            None => {
                let a = Arc::new(acl.clone());
                self.acls.insert(a.clone());
                a
            }
        }
    }

    /// The tree over `pages` (the store), holding at most about `budget` bytes of nodes in
    /// memory beyond those changed and not saved yet.
    pub fn with_pages(mut self, pages: Box<dyn Pages>, budget: usize) -> Self {
        self.nodes.pages = Some(pages);
        self.nodes.budget = budget;
        self
    }

    /// Inserts a node read from a snapshot, in memory.
    pub fn insert_loaded(&mut self, p: String, mut node: Node) {
        node.digest = self.index_stored(&p, &node);
        self.nodes.insert(p, node);
    }

    /// Counts and indexes a stored node (a restart reads them all once, and keeps none).
    /// Returns the node's digest.
    pub fn index_stored(&mut self, p: &str, node: &Node) -> u32 {
        self.index_kind(p, node.stat.ephemeral_owner);
        let st = &node.stat;
        self.fuzzy_until = self.fuzzy_until.max(st.czxid).max(st.mzxid).max(st.pzxid);
        if let Some(target) = quota_target(p, QUOTA_LIMITS) {
            self.quota_paths.insert(target.to_string());
        }
        let digest = node_digest(p, node);
        self.digest = self.digest.wrapping_add(i64::from(digest));
        self.count += 1;
        self.data_size += size_of_node(p, node.data.as_deref());
        digest
    }

    fn index_kind(&mut self, p: &str, owner: i64) {
        match node_kind(owner, self.extended_types) {
            NodeKind::Normal => {}
            NodeKind::Ephemeral(s) => {
                let set = self.ephemerals.entry(s).or_default();
                set.insert(p.to_string());
                let peak = self.ephemeral_peak.entry(s).or_default();
                *peak = (*peak).max(set.len());
            }
            NodeKind::Container => {
                self.containers.insert(p.to_string());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(p.to_string());
            }
        }
    }

    fn unindex_kind(&mut self, p: &str, owner: i64) {
        match node_kind(owner, self.extended_types) {
            NodeKind::Normal => {}
            NodeKind::Ephemeral(s) => {
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(p);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
            NodeKind::Container => {
                self.containers.remove(p);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(p);
            }
        }
    }

    pub fn get(&self, p: &str) -> Option<Arc<Node>> {
        self.nodes.get(p)
    }

    /// Before a learner applies `txn`: the node it changes as the leader found it
    /// ([`Node::encode_prior`]), so that a node not held in memory is not read from the store.
    /// The leader sends it only when no txn before this one was pending on that path, so it is
    /// this tree's state of the node once every txn before `txn` is applied. Ignored when the
    /// node is held (the tree's own state wins) or undecodable (the node is then loaded).
    pub fn prime(&mut self, txn: &TxnEntry, prior: &[u8]) -> bool {
        let Some(p) = prior_path(&txn.record) else {
            return false;
        };
        let Ok(mut node) = Node::decode_prior(prior) else {
            tracing::warn!("undecodable prior state of {p} at {:#x}", txn.header.zxid);
            return false;
        };
        node.acl = self.intern_txn_acl(Some(&node.acl));
        self.nodes.prime(p, node)
    }

    /// [`get`](Self::get) for a write (its check, its save), which is not a client's read: a
    /// node only written is let go once saved.
    pub fn peek(&self, p: &str) -> Option<Arc<Node>> {
        self.nodes.fetch_for_write(p)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Is the tree over a store (its nodes read from it when not held), or held whole?
    pub fn is_paged(&self) -> bool {
        self.nodes.pages.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many nodes are held in memory (changed and not saved yet, or read lately).
    pub fn held_in_memory(&self) -> usize {
        self.nodes.map.borrow().len()
    }

    /// The names of the children of `p` (none if there is no such node), in no set order.
    /// Listed from the store once, then held with the node while it is held, up to a size.
    pub fn children(&self, p: &str) -> Names {
        let mut names: Vec<Box<str>> = Vec::new();
        let Some(pages) = &self.nodes.pages else {
            let map = self.nodes.map.borrow();
            for (c, slot) in map.iter() {
                if slot.node.is_some() && c != "/" && path::parent(c) == Some(p) {
                    names.push(path::name(c).into());
                }
            }
            return Arc::new(names);
        };
        if let Some(slot) = self.nodes.map.borrow_mut().get_mut(p) {
            if let Some(names) = &slot.children {
                slot.hot = true;
                return names.clone();
            }
        }
        pages.children(p, &mut |c| names.push(c.into()));
        // The store has what was saved; what changed since is in memory.
        let changed: Vec<&str> = self
            .dirty
            .iter()
            .filter(|d| d.as_str() != "/" && path::parent(d) == Some(p))
            .map(String::as_str)
            .collect();
        if !changed.is_empty() {
            let gone: crate::FastSet<&str> = changed.iter().map(|d| path::name(d)).collect();
            names.retain(|n| !gone.contains(&**n));
            for d in changed {
                if self.nodes.holds_live(d) {
                    names.push(path::name(d).into());
                }
            }
        }
        let names = Arc::new(names);
        let w = names_weight(&names);
        if w <= self.nodes.budget / 8 && self.get(p).is_some() {
            if let Some(slot) = self.nodes.map.borrow_mut().get_mut(p) {
                slot.children = Some(names.clone());
                self.nodes.held.set(self.nodes.held.get() + w);
            }
        }
        names
    }

    pub fn ephemerals_of(&self, session: i64) -> Vec<String> {
        self.ephemerals
            .get(&session)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The most ephemerals `session` held at once (see the field).
    pub fn ephemeral_peak(&self, session: i64) -> usize {
        self.ephemeral_peak.get(&session).copied().unwrap_or(0)
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    pub fn all_ephemerals(&self) -> &HashMap<i64, BTreeSet<String>> {
        &self.ephemerals
    }

    /// Number of descendants of `p` (`getAllChildrenNumber`).
    /// Counted in the store (one range per level below `p`), then corrected by what changed
    /// since the last save.
    pub fn descendants(&self, p: &str) -> usize {
        let Some(pages) = &self.nodes.pages else {
            return self
                .children(p)
                .iter()
                .map(|c| 1 + self.descendants(&path::join(p, c)))
                .sum();
        };
        let mut n = pages.count_under(p) as i64;
        let under = if p == "/" {
            "/".to_string()
        } else {
            format!("{p}/")
        };
        for d in &self.dirty {
            if d != "/" && d.starts_with(&under) {
                n += i64::from(self.nodes.holds_live(d)) - i64::from(pages.load(d).is_some());
            }
        }
        usize::try_from(n).unwrap_or(0)
    }

    /// Approximate bytes of data held (for mntr's zk_approximate_data_size): paths and data.
    pub fn approximate_data_size(&self) -> usize {
        usize::try_from(self.data_size).unwrap_or(0)
    }

    /// Paths changed since the last call, to persist.
    pub fn take_dirty(&mut self) -> crate::FastSet<String> {
        std::mem::take(&mut self.dirty)
    }

    /// Hands back a set [`take_dirty`](Self::take_dirty) gave, persisted: emptied, its table
    /// serves the next turn's changes (a fresh set regrew through every size each turn).
    /// A table grown by a burst past 64k paths is let go.
    pub fn recycle_dirty(&mut self, mut dirty: crate::FastSet<String>) {
        self.nodes.saved(&dirty);
        if self.dirty.is_empty() && dirty.capacity() <= 1 << 16 {
            dirty.clear();
            self.dirty = dirty;
        }
    }

    /// An ensemble member shows its membership in `/zookeeper/config` (getConfig), with
    /// version -1 as ZooKeeper sets it; derived at start-up, not a txn, and saved like any
    /// change (its digest counts 0, as every node's under `/zookeeper/`).
    pub fn set_config(&mut self, text: &[u8]) {
        let p = "/zookeeper/config";
        if let Some(n) = self.nodes.get_mut(p) {
            let old = size_of_node(p, n.data.as_deref());
            n.data = Some(text.to_vec());
            n.stat.version = -1;
            self.data_size += size_of_node(p, Some(text)) - old;
            self.dirty.insert(p.to_string());
            // ZooKeeper's initConfigInZKDatabase is a setData of the node.
            self.writes.add(p, text.len() as u64);
        }
    }

    /// Session changes since the last call, to persist.
    pub fn take_dirty_sessions(&mut self) -> Vec<(i64, Option<i32>)> {
        std::mem::take(&mut self.dirty_sessions)
    }

    /// A session read from storage.
    /// A parent's cversion and pzxid raised to those of a create that found its node there
    /// already (a fuzzy snapshot's, replayed; ZooKeeper's `setCversionPzxid`): only ever up.
    pub fn raise_cversion_pzxid(&mut self, p: &str, cversion: i32, zxid: i64) {
        let Some(node) = self.nodes.get_mut(p) else {
            return;
        };
        let cversion = if cversion == -1 {
            node.stat.cversion.wrapping_add(1)
        } else {
            cversion
        };
        if cversion > node.stat.cversion {
            node.stat.cversion = cversion;
            node.stat.pzxid = zxid;
            redigest(&mut self.digest, p, node);
            self.dirty.insert(p.to_string());
        }
    }

    pub fn insert_session(&mut self, id: i64, timeout: i32) {
        self.sessions.insert(id, timeout);
    }

    /// Visits every node (order unspecified), from the store and from memory.
    pub fn for_each(&self, mut f: impl FnMut(&str, &Node)) {
        let Some(pages) = &self.nodes.pages else {
            let map = self.nodes.map.borrow();
            for (p, slot) in map.iter() {
                if let Some(n) = &slot.node {
                    f(p, n);
                }
            }
            return;
        };
        // Held nodes that are not dirty are as stored.
        pages.scan(&mut |p, n| {
            if !self.dirty.contains(p) {
                f(p, n);
            }
        });
        for p in &self.dirty {
            if let Some(n) = self.peek(p) {
                f(p, &n);
            }
        }
    }

    /// Every node in the store's key order (depth, then path bytes; parents before
    /// children), as [`DataTree::for_each`] finds them. A paged tree merges its changed
    /// nodes, sorted, into the store's scan, so that the whole tree is never listed at once;
    /// a tree held in memory only is sorted whole.
    pub fn for_each_ordered(&self, mut f: impl FnMut(&str, &Node)) {
        fn key(p: &str) -> (usize, &str) {
            (crate::path::depth(p), p)
        }
        let Some(pages) = &self.nodes.pages else {
            let map = self.nodes.map.borrow();
            let mut all: Vec<(&str, &Node)> = map
                .iter()
                .filter_map(|(p, slot)| Some((p, slot.node.as_deref()?)))
                .collect();
            all.sort_unstable_by(|a, b| key(a.0).cmp(&key(b.0)));
            for (p, n) in all {
                f(p, n);
            }
            return;
        };
        let mut changed: Vec<(&str, Arc<Node>)> = self
            .dirty
            .iter()
            .filter_map(|p| Some((p.as_str(), self.peek(p)?)))
            .collect();
        changed.sort_unstable_by(|a, b| key(a.0).cmp(&key(b.0)));
        let mut changed = changed.into_iter().peekable();
        pages.scan(&mut |p, n| {
            if self.dirty.contains(p) {
                return;
            }
            while let Some((cp, cn)) = changed.next_if(|(cp, _)| key(cp) < key(p)) {
                f(cp, &cn);
            }
            f(p, n);
        });
        for (cp, cn) in changed {
            f(cp, &cn);
        }
    }

    /// Applies a committed txn.
    pub fn apply(&mut self, txn: &TxnEntry) -> Applied {
        let mut applied = Applied::default();
        let h = &txn.header;
        match &txn.record {
            TxnRecord::Multi(multi) => {
                let subs = multi.txns.as_deref().unwrap_or_default();
                let mut decoded = Vec::with_capacity(subs.len());
                for sub in subs {
                    let data = sub.data.as_deref().unwrap_or_default();
                    let Ok(rec) = TxnRecord::decode_for(sub.type_, &mut jute::Reader::new(data))
                    else {
                        panic!(
                            "undecodable sub-txn of type {} in multi at zxid {:#x}",
                            sub.type_, h.zxid
                        );
                    };
                    decoded.push(rec);
                }
                if let Some(err) = decoded.iter().find_map(|r| match r {
                    TxnRecord::Error(e) if e.err != 0 => Some(e.err),
                    _ => None,
                }) {
                    applied.err = ZkError::try_from(err).ok();
                } else {
                    for rec in &decoded {
                        self.apply_record(h, rec, &mut applied);
                    }
                }
            }
            rec => self.apply_record(h, rec, &mut applied),
        }
        self.last_zxid = self.last_zxid.max(h.zxid);
        if h.zxid % DIGEST_LOG_INTERVAL == 0 {
            self.digest_log.push_back((h.zxid, self.digest));
            if self.digest_log.len() > DIGEST_LOG_LIMIT {
                self.digest_log.pop_front();
            }
        }
        applied
    }

    /// Marks a path the txn being applied changed, once its node is in its new state: saved
    /// with the batch, and its digest recounted now (a deleted node's was taken out already).
    fn mark(&mut self, p: String) {
        if let Some(n) = self.nodes.get_mut(&p) {
            redigest(&mut self.digest, &p, n);
        }
        self.dirty.insert(p);
    }

    /// ZooKeeper's tree digest of the current state.
    /// Whether the tree's digest after txn `zxid` is the one the txn's leader computed:
    /// not while txns a fuzzy snapshot may already hold are applied again.
    pub fn digest_comparable(&self, zxid: i64) -> bool {
        zxid > self.fuzzy_until
    }

    pub fn digest(&self) -> i64 {
        self.digest
    }

    /// ZooKeeper's DataTree.compareDigest, once `txn` is applied: the digest the txn carries
    /// when it is not this tree's. Not compared: a txn without one, another digest version,
    /// a txn a fuzzy snapshot may already hold.
    pub fn digest_mismatch(&self, txn: &TxnEntry) -> Option<i64> {
        let d = txn.digest.as_ref()?;
        if d.version != DIGEST_VERSION || !self.digest_comparable(txn.header.zxid) {
            return None;
        }
        (d.tree_digest != self.digest).then_some(d.tree_digest)
    }

    /// The digest log (`hash`): (zxid, digest), oldest first.
    pub fn digest_log(&self) -> impl Iterator<Item = &(i64, i64)> {
        self.digest_log.iter()
    }

    /// Applies one record (a whole txn, or one op of a multi) under header `h`.
    pub fn apply_record(&mut self, h: &TxnHeader, rec: &TxnRecord, out: &mut Applied) {
        let events = out.events.len();
        self.apply_change(h, rec, out);
        // A node created, changed or deleted (each fires its event): counted by namespace
        // with its data's size, as ZooKeeper's updateWriteStat.
        if out.events.len() > events {
            let write = match rec {
                TxnRecord::Create(t) | TxnRecord::Create2(t) => Some((&t.path, &t.data)),
                TxnRecord::CreateContainer(t) => Some((&t.path, &t.data)),
                TxnRecord::CreateTtl(t) => Some((&t.path, &t.data)),
                TxnRecord::SetData(t) | TxnRecord::Reconfig(t) => Some((&t.path, &t.data)),
                // Deletes count in `delete`, a closed session's ephemerals too.
                _ => None,
            };
            if let Some((path, data)) = write {
                let bytes = data.as_ref().map_or(0, Vec::len) as u64;
                self.writes.add(path, bytes);
            }
        }
    }

    fn apply_change(&mut self, h: &TxnHeader, rec: &TxnRecord, out: &mut Applied) {
        match rec {
            TxnRecord::Create(t) | TxnRecord::Create2(t) => {
                let owner = if t.ephemeral { h.client_id } else { 0 };
                self.create(h, t, owner, out);
            }
            TxnRecord::CreateContainer(t) => {
                let c = persistent_create(&t.path, &t.data, &t.acl, t.parent_c_version);
                self.create(h, &c, CONTAINER_OWNER, out);
            }
            TxnRecord::CreateTtl(t) => {
                let c = persistent_create(&t.path, &t.data, &t.acl, t.parent_c_version);
                self.create(h, &c, (TTL_MARK | t.ttl as u64) as i64, out);
            }
            TxnRecord::Delete(t) | TxnRecord::DeleteContainer(t) => {
                self.delete(h.zxid, &t.path, out)
            }
            TxnRecord::SetData(t) | TxnRecord::Reconfig(t) => {
                if let Some(node) = self.nodes.get_mut(&t.path) {
                    let old = node.data.as_ref().map_or(0, Vec::len) as i64;
                    let new = t.data.as_ref().map_or(0, Vec::len) as i64;
                    node.data = t.data.clone();
                    self.data_size += new - old;
                    node.stat.version = t.version;
                    node.stat.mzxid = h.zxid;
                    node.stat.mtime = h.time;
                    redigest(&mut self.digest, &t.path, node);
                    self.dirty.insert(t.path.clone());
                    out.events.push(Event {
                        kind: EventType::NodeDataChanged,
                        path: t.path.clone(),
                        acl: node.acl.clone(),
                    });
                    if quota_target(&t.path, QUOTA_STATS).is_none() {
                        self.update_quota(&t.path, 0, new - old);
                    }
                }
            }
            TxnRecord::SetAcl(t) => {
                let acl = self.intern_txn_acl(t.acl.as_ref());
                if let Some(node) = self.nodes.get_mut(&t.path) {
                    node.acl = acl;
                    node.stat.aversion = t.version;
                    self.mark(t.path.clone());
                }
            }
            TxnRecord::CloseSession(t) => {
                // In the txn's order (ZooKeeper's `killSession`), then any other ephemeral of
                // the session (none, unless the txn predates it).
                let mut paths: Vec<String> = t
                    .as_ref()
                    .and_then(|t| t.paths2_delete.clone())
                    .unwrap_or_default();
                for p in self.ephemerals_of(h.client_id) {
                    if !paths.contains(&p) {
                        paths.push(p);
                    }
                }
                for p in &paths {
                    self.delete(h.zxid, p, out);
                }
            }
            TxnRecord::Error(e) => out.err = ZkError::try_from(e.err).ok(),
            TxnRecord::CreateSession(t) => {
                self.sessions.insert(h.client_id, t.time_out);
                self.dirty_sessions.push((h.client_id, Some(t.time_out)));
            }
            TxnRecord::Check(_) => {}
            TxnRecord::Multi(_) => panic!("nested multi at zxid {:#x}", h.zxid),
        }
        if let TxnRecord::CloseSession(_) = rec {
            self.ephemeral_peak.remove(&h.client_id);
            if self.sessions.remove(&h.client_id).is_some() {
                self.dirty_sessions.push((h.client_id, None));
            }
        }
        if let Some(p) = record_path(rec) {
            let stat = self
                .nodes
                .fetch_for_write(p)
                .map(|n| n.client_stat(self.extended_types));
            out.results.push(OpResult {
                path: p.to_string(),
                stat,
            });
        }
    }

    fn create(&mut self, h: &TxnHeader, t: &CreateTxn, owner: i64, out: &mut Applied) {
        let Some(parent_path) = path::parent(&t.path) else {
            return;
        };
        // A txn past the last applied zxid cannot find its node stored (a valid create never
        // meets an existing node, and the store holds only txns up to that zxid): only the
        // nodes held in memory need a look, which spares a follower a store lookup per create.
        let there = if h.zxid > self.last_zxid.max(self.fuzzy_until) {
            debug_assert!(
                self.nodes.holds_live(&t.path) || self.nodes.fetch_for_write(&t.path).is_none(),
                "a create of the existing {} logged at {:#x}",
                t.path,
                h.zxid
            );
            self.nodes.holds_live(&t.path)
        } else {
            self.nodes.fetch_for_write(&t.path).is_some()
        };
        if there {
            return; // already there: replaying a txn that is already reflected
        }
        self.nodes.forget_children(parent_path);
        let Some(parent) = self.nodes.get_mut(parent_path) else {
            return;
        };
        parent.num_children += 1;
        parent.stat.cversion = t.parent_c_version;
        parent.stat.pzxid = h.zxid;
        redigest(&mut self.digest, parent_path, parent);
        let parent_acl = parent.acl.clone();
        let parent_path = parent_path.to_string();
        let stat = created_stat(h, owner);
        let acl = self.intern_txn_acl(t.acl.as_ref());
        let node_acl = acl.clone();
        let mut node = Node::new(stat, t.data.clone(), acl);
        // Counted as 0 so far: this adds its digest.
        redigest(&mut self.digest, &t.path, &mut node);
        self.index_kind(&t.path, owner);
        self.count += 1;
        self.data_size += size_of_node(&t.path, t.data.as_deref());
        self.nodes.insert(t.path.clone(), node);
        self.dirty.insert(t.path.clone());
        self.dirty.insert(parent_path.clone());
        out.events.push(Event {
            kind: EventType::NodeCreated,
            path: t.path.clone(),
            acl: node_acl,
        });
        out.events.push(Event {
            kind: EventType::NodeChildrenChanged,
            path: parent_path,
            acl: parent_acl,
        });
        if let Some(target) = quota_target(&t.path, QUOTA_LIMITS) {
            self.quota_paths.insert(target.to_string());
        } else if let Some(target) = quota_target(&t.path, QUOTA_STATS) {
            let target = target.to_string();
            self.recount_quota(&target);
        } else {
            let len = t.data.as_ref().map_or(0, Vec::len) as i64;
            self.update_quota(&t.path, 1, len);
        }
    }

    /// The longest quota'd path that is `p` or an ancestor of it (`getMaxPrefixWithQuota`).
    fn quota_prefix(&self, p: &str) -> Option<String> {
        if self.quota_paths.is_empty() {
            return None;
        }
        let mut cur = Some(p);
        while let Some(c) = cur {
            if self.quota_paths.contains(c) {
                return Some(c.to_string());
            }
            cur = path::parent(c);
        }
        None
    }

    /// ZooKeeper's `checkQuota` (with `enforceQuota`): whether adding `count` nodes and `bytes`
    /// bytes under `p` keeps the quota covering it within its hard limits, as this (committed)
    /// tree has its limits and stats. Past a soft limit only, the change goes ahead (logged).
    pub fn check_quota(&self, p: &str, bytes: i64, count: i64) -> Result<(), ZkError> {
        let Some(prefix) = self.quota_prefix(p).filter(|q| q != "/zookeeper") else {
            return Ok(());
        };
        let track = |leaf: &str| {
            self.peek(&format!("{QUOTA_ROOT}{prefix}/{leaf}"))
                .map(|n| Track::parse(n.data.as_deref().unwrap_or_default()))
        };
        let Some(limits) = track(QUOTA_LIMITS) else {
            return Ok(());
        };
        let v = |x: Option<i64>| x.unwrap_or(-1);
        let (count_soft, count_hard) = (v(limits.count), v(limits.count_hard));
        let (bytes_soft, bytes_hard) = (v(limits.bytes), v(limits.byte_hard));
        let check_count = count != 0 && (count_soft > -1 || count_hard > -1);
        let check_bytes = bytes != 0 && (bytes_soft > -1 || bytes_hard > -1);
        if !check_count && !check_bytes {
            return Ok(());
        }
        let Some(current) = track(QUOTA_STATS) else {
            return Ok(());
        };
        let over = |what: &str, now: i64, soft: i64, hard: i64| {
            let (limit, kind) = if hard > -1 {
                (hard, "hard")
            } else {
                (soft, "soft")
            };
            if now <= limit {
                return Ok(());
            }
            tracing::warn!("Quota exceeded: {prefix} [current {what}={now}, {kind} limit={limit}]");
            if hard > -1 {
                Err(ZkError::QuotaExceeded)
            } else {
                Ok(())
            }
        };
        if check_count {
            over("count", v(current.count) + count, count_soft, count_hard)?;
        }
        if check_bytes {
            over("bytes", v(current.bytes) + bytes, bytes_soft, bytes_hard)?;
        }
        Ok(())
    }

    /// Adjusts the server-maintained `zookeeper_stats` of the quota covering `p`. Like
    /// ZooKeeper, it changes the stats node's data only, not its version.
    fn update_quota(&mut self, p: &str, count: i64, bytes: i64) {
        let Some(prefix) = self.quota_prefix(p) else {
            return;
        };
        let stats_path = format!("{QUOTA_ROOT}{prefix}/{QUOTA_STATS}");
        let Some(node) = self.nodes.get_mut(&stats_path) else {
            return;
        };
        let text = String::from_utf8_lossy(node.data.as_deref().unwrap_or_default()).to_string();
        let (c, b) = parse_stats(&text);
        node.data = Some(format_stats(&text, c + count, b + bytes).into_bytes());
        self.mark(stats_path);
    }

    /// Sets the stats of a quota to the subtree's real count and bytes (`updateQuotaForPath`).
    fn recount_quota(&mut self, target: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        let mut stack = vec![target.to_string()];
        while let Some(p) = stack.pop() {
            let Some(n) = self.nodes.get(&p) else {
                continue;
            };
            count += 1;
            bytes += n.data.as_ref().map_or(0, Vec::len) as i64;
            stack.extend(self.children(&p).iter().map(|c| path::join(&p, c)));
        }
        let stats_path = format!("{QUOTA_ROOT}{target}/{QUOTA_STATS}");
        if let Some(node) = self.nodes.get_mut(&stats_path) {
            let text =
                String::from_utf8_lossy(node.data.as_deref().unwrap_or_default()).to_string();
            node.data = Some(format_stats(&text, count, bytes).into_bytes());
            self.mark(stats_path);
        }
    }

    fn delete(&mut self, zxid: i64, p: &str, out: &mut Applied) {
        let Some(node) = self.nodes.remove(p) else {
            return;
        };
        self.writes.add(p, 0);
        self.digest = self.digest.wrapping_sub(i64::from(node.digest));
        self.unindex_kind(p, node.stat.ephemeral_owner);
        self.count -= 1;
        self.data_size -= size_of_node(p, node.data.as_deref());
        self.dirty.insert(p.to_string());
        // As ZooKeeper's deleteNode: a quota's limits node takes the quota away; any other
        // node leaves the stats of the quota covering it.
        if let Some(target) = quota_target(p, QUOTA_LIMITS) {
            self.quota_paths.remove(target);
        } else {
            let len = node.data.as_ref().map_or(0, Vec::len) as i64;
            self.update_quota(p, -1, -len);
        }
        let parent_path = path::parent(p).unwrap_or("/").to_string();
        self.nodes.forget_children(&parent_path);
        let mut parent_acl = Arc::default();
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.num_children = parent.num_children.saturating_sub(1);
            parent.stat.pzxid = zxid;
            redigest(&mut self.digest, &parent_path, parent);
            self.dirty.insert(parent_path.clone());
            parent_acl = parent.acl.clone();
        }
        out.events.push(Event {
            kind: EventType::NodeDeleted,
            path: p.to_string(),
            acl: node.acl.clone(),
        });
        out.events.push(Event {
            kind: EventType::NodeChildrenChanged,
            path: parent_path,
            acl: parent_acl,
        });
    }
}

/// What a node counts in `approximate_data_size`: its path and its data.
fn size_of_node(p: &str, data: Option<&[u8]>) -> i64 {
    (p.len() + data.map_or(0, <[u8]>::len)) as i64
}

/// The node whose prior state a leader sends with a txn ([`DataTree::prime`]): a setData's or
/// a delete's.
pub fn prior_path(rec: &TxnRecord) -> Option<&str> {
    match rec {
        TxnRecord::SetData(t) => Some(&t.path),
        TxnRecord::Delete(t) => Some(&t.path),
        _ => None,
    }
}

/// The path a txn record names, if it names one.
pub fn record_path(rec: &TxnRecord) -> Option<&str> {
    Some(match rec {
        TxnRecord::Create(t) | TxnRecord::Create2(t) => &t.path,
        TxnRecord::CreateContainer(t) => &t.path,
        TxnRecord::CreateTtl(t) => &t.path,
        TxnRecord::Delete(t) | TxnRecord::DeleteContainer(t) => &t.path,
        TxnRecord::SetData(t) | TxnRecord::Reconfig(t) => &t.path,
        TxnRecord::SetAcl(t) => &t.path,
        TxnRecord::Check(t) => &t.path,
        _ => return None,
    })
}

const QUOTA_ROOT: &str = "/zookeeper/quota";
const QUOTA_LIMITS: &str = "zookeeper_limits";
const QUOTA_STATS: &str = "zookeeper_stats";

/// For `/zookeeper/quota/<target>/<leaf>`, the quota'd path `<target>`.
fn quota_target<'a>(p: &'a str, leaf: &str) -> Option<&'a str> {
    let rest = p.strip_prefix(QUOTA_ROOT)?;
    let target = rest.strip_suffix(leaf)?.strip_suffix('/')?;
    (!target.is_empty()).then_some(target)
}

/// A quota's limits or stats as ZooKeeper's `StatsTrack` reads them: `key=value` pairs split
/// by `,` or `;`, an empty or unreadable value read as -1. zkCli writes limits such as
/// `count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2`. None: the key is not there
/// (`StatsTrack` answers -1 for it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Track {
    count: Option<i64>,
    bytes: Option<i64>,
    count_hard: Option<i64>,
    byte_hard: Option<i64>,
}

impl Track {
    fn parse(text: &[u8]) -> Track {
        let mut t = Track::default();
        for kv in String::from_utf8_lossy(text).split([',', ';']) {
            let mut parts = kv.split('=');
            let (Some(k), Some(v)) = (parts.next(), parts.next()) else {
                continue;
            };
            let v = Some(v.trim().parse().unwrap_or(-1));
            match k.trim() {
                "count" => t.count = v,
                "bytes" => t.bytes = v,
                "countHardLimit" => t.count_hard = v,
                "byteHardLimit" => t.byte_hard = v,
                _ => {}
            }
        }
        t
    }
}

/// `count=N,bytes=M[,...]` -> (N, M), 0 for a key not there.
fn parse_stats(text: &str) -> (i64, i64) {
    let t = Track::parse(text.as_bytes());
    (t.count.unwrap_or(0), t.bytes.unwrap_or(0))
}

/// Rewrites count and bytes, keeping any other keys (`StatsTrack.toString`).
fn format_stats(old: &str, count: i64, bytes: i64) -> String {
    let mut out = format!("count={count},bytes={bytes}");
    for kv in old.split(',') {
        if let Some((k, _)) = kv.split_once('=') {
            if k != "count" && k != "bytes" && !k.is_empty() {
                out.push(',');
                out.push_str(kv);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jute::txn::{DeleteTxn, SetDataTxn, TxnHeader};

    fn slot(n: Node) -> Slot {
        Slot {
            node: Some(Arc::new(n)),
            children: None,
            hot: false,
        }
    }

    #[test]
    fn a_prior_node_decodes_to_its_stat_acl_children_digest_and_data_length() {
        let stat = StatPersisted {
            czxid: 5,
            mzxid: 9,
            version: 3,
            ephemeral_owner: 0x77,
            ..StatPersisted::default()
        };
        let mut n = Node::new(
            stat,
            Some(b"hello".to_vec()),
            Arc::new(crate::acl::open_acl_unsafe()),
        );
        n.num_children = 4;
        n.digest = 0xDEAD_BEEF;
        let mut bytes = Vec::new();
        n.encode_prior(&mut bytes);
        let back = Node::decode_prior(&bytes).unwrap();
        assert_eq!(
            (back.stat.clone(), back.acl.clone()),
            (n.stat.clone(), n.acl.clone())
        );
        assert_eq!((back.num_children, back.digest), (4, 0xDEAD_BEEF));
        assert_eq!(back.data.map(|d| d.len()), Some(5));
        // No data at all stays none.
        n.data = None;
        bytes.clear();
        n.encode_prior(&mut bytes);
        assert_eq!(Node::decode_prior(&bytes).unwrap().data, None);
        // Cut short, or claiming more data than any node holds: refused, never a panic.
        for cut in 0..bytes.len() {
            assert!(Node::decode_prior(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let at = bytes.len() - 8;
        bytes[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(Node::decode_prior(&bytes).is_err());
    }

    #[test]
    fn an_undecodable_prior_primes_nothing() {
        let mut t = DataTree::new(false);
        let h = TxnHeader {
            client_id: 1,
            cxid: 1,
            zxid: 1,
            time: 1,
            type_: jute::OpCode::Delete.code(),
        };
        let txn = TxnEntry {
            header: h,
            record: TxnRecord::Delete(DeleteTxn { path: "/x".into() }),
            digest: None,
        };
        assert!(!t.prime(&txn, b"\x00\x01"));
    }

    #[test]
    fn shards_filled_evenly_grow_one_at_a_time_ahead_of_their_limit() {
        // Growths of the shard being inserted into because it was full, by size: with the
        // growth ahead of time, the big shards never get there.
        let mut m = NodeMap::new();
        let acl = Arc::new(crate::acl::open_acl_unsafe());
        let mut caps: Vec<usize> = m.shards.iter().map(|s| s.capacity()).collect();
        let mut forced_big = 0;
        let mut ahead = 0;
        for i in 0..120_000 {
            let p = format!("/q/n{i:010}");
            let shard = m.shard(&p);
            let before = m.shards[shard].capacity();
            let full = m.shards[shard].len() == before;
            m.insert(p, slot(Node::new(Default::default(), None, acl.clone())));
            for (k, s) in m.shards.iter().enumerate() {
                if s.capacity() != caps[k] {
                    if k == shard && full {
                        if before >= 1792 {
                            forced_big += 1;
                        }
                    } else {
                        ahead += 1;
                    }
                    caps[k] = s.capacity();
                }
            }
        }
        assert_eq!(m.len(), 120_000);
        assert_eq!(forced_big, 0, "a big shard grew only because it was full");
        assert!(ahead >= 64, "{ahead} growths ahead of time");
    }

    #[test]
    fn the_sharded_node_map_finds_every_path_and_spreads_siblings() {
        let mut m = NodeMap::new();
        let acl = Arc::new(crate::acl::open_acl_unsafe());
        let node = || slot(Node::new(StatPersisted::default(), None, acl.clone()));
        let paths: Vec<String> = (0..10_000).map(|i| format!("/dir/n{i:07}")).collect();
        for p in &paths {
            assert!(m.insert(p.clone(), node()).is_none());
        }
        assert_eq!(m.len(), paths.len());
        assert!(m.insert(paths[0].clone(), node()).is_some());
        assert!(paths.iter().all(|p| m.get(p).is_some()));
        assert!(m.get_mut("/dir/n9999999").is_none());
        assert_eq!(m.iter().count(), paths.len());
        // Siblings spread: no shard holds more than twice its share.
        let most = m.shards.iter().map(HashMap::len).max().unwrap();
        assert!(most <= 2 * paths.len() / SHARDS, "{most}");
        for p in &paths[..5_000] {
            assert!(m.remove(p).is_some());
        }
        assert_eq!(m.len(), 5_000);
        assert!(m.get(&paths[0]).is_none() && m.get(&paths[9_999]).is_some());
    }

    fn create(t: &mut DataTree, zxid: i64, p: &str, data: &[u8]) {
        let parent = path::parent(p)
            .and_then(|pp| t.get(pp))
            .map_or(0, |n| n.stat.cversion)
            + 1;
        let h = TxnHeader {
            client_id: 1,
            cxid: 0,
            zxid,
            time: 0,
            type_: 1,
        };
        let rec = TxnRecord::Create(CreateTxn {
            path: p.into(),
            data: Some(data.to_vec()),
            acl: Some(crate::acl::open_acl_unsafe()),
            ephemeral: false,
            parent_c_version: parent,
        });
        t.apply(&TxnEntry {
            header: h,
            record: rec,
            digest: None,
        });
    }

    fn txn(zxid: i64, type_: i32, record: TxnRecord) -> TxnEntry {
        TxnEntry {
            header: TxnHeader {
                client_id: 1,
                cxid: 0,
                zxid,
                time: zxid * 10,
                type_,
            },
            record,
            digest: None,
        }
    }

    fn digest_from_scratch(t: &DataTree) -> i64 {
        let mut d = 0i64;
        t.for_each(|p, n| d = d.wrapping_add(i64::from(node_digest(p, n))));
        d
    }

    #[test]
    fn node_digests_are_zookeepers_crc32() {
        // Expected values from an independent CRC32 (Python's zlib.crc32) of the same bytes.
        let stat = StatPersisted {
            czxid: 1,
            mzxid: 2,
            pzxid: 3,
            ctime: 4,
            mtime: 5,
            version: 6,
            cversion: 7,
            aversion: 8,
            ephemeral_owner: 9,
        };
        let acl = Arc::new(Vec::new());
        let n = Node::new(stat, Some(b"hello".to_vec()), acl.clone());
        assert_eq!(node_digest("/a", &n), 2652921390);
        let empty = Node::new(StatPersisted::default(), None, acl);
        assert_eq!(node_digest("/", &empty), 68323592);
        assert_eq!(node_digest("/zookeeper", &empty), 1303661912);
        assert_eq!(node_digest("/zookeeper/quota", &empty), 0);
        // A fresh tree: the root and /zookeeper count, /zookeeper/quota and config do not.
        assert_eq!(DataTree::new(false).digest(), 68323592 + 1303661912);
    }

    #[test]
    fn a_restat_digest_is_the_digest_counted_afresh() {
        assert_eq!(ZEROS_CRC, crc32fast::hash(&[0u8; 60]));
        let old = StatPersisted {
            czxid: 0x1_0000_0001,
            mzxid: 0x1_0000_0002,
            pzxid: 0x1_0000_0003,
            ctime: 1_700_000_000_000,
            mtime: 1_700_000_000_001,
            version: 3,
            cversion: 9,
            aversion: 1,
            ephemeral_owner: 0x0100_0000_0000_0007,
        };
        let mut new = old.clone();
        new.pzxid = 0x2_0000_0001;
        new.cversion = 10;
        new.aversion = -1;
        for (p, data) in [
            ("/", None),
            ("/a", Some(&b""[..])),
            ("/a/b", Some(&[7u8; 1000][..])),
            ("/zookeeper", Some(&b"x"[..])),
            ("/zookeeper/quota", None),
        ] {
            let before = digest_of(p, data, &old);
            assert_eq!(
                restat_digest(p, before, &old, &new),
                digest_of(p, data, &new),
                "{p}"
            );
        }
    }

    #[test]
    fn the_tree_digest_follows_every_change_and_is_logged_every_128_zxids() {
        let mut t = DataTree::new(false);
        for z in 1..=300 {
            create(&mut t, z, &format!("/n{}", z % 7), b"x");
            let p = format!("/n{}", z % 5);
            if z % 3 == 0 {
                t.apply(&txn(
                    z,
                    5,
                    TxnRecord::SetData(SetDataTxn {
                        path: p.clone(),
                        data: Some(vec![z as u8]),
                        version: 1,
                    }),
                ));
            }
            if z % 11 == 0 {
                t.apply(&txn(z, 2, TxnRecord::Delete(DeleteTxn { path: p })));
            }
            assert_eq!(t.digest(), digest_from_scratch(&t), "after zxid {z}");
        }
        let log: Vec<i64> = t.digest_log().map(|(z, _)| *z).collect();
        assert_eq!(log, vec![128, 256]);
        // A tree loaded from its nodes has the same digest, count and size.
        let mut loaded = DataTree::empty(false);
        t.for_each(|p, n| loaded.insert_loaded(p.to_string(), n.clone()));
        assert_eq!(loaded.digest(), t.digest());
        assert_eq!(loaded.len(), t.len());
        assert_eq!(loaded.approximate_data_size(), t.approximate_data_size());
        // Each node's number of children is the number of nodes listed under it.
        t.for_each(|p, n| {
            assert_eq!(n.num_children as usize, t.children(p).len(), "{p}");
        });
    }

    #[test]
    fn quota_texts_read_as_zookeepers_stats_track_reads_them() {
        // What zkCli's setquota -N 2 writes, and a stats node.
        let t = Track::parse(b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2");
        assert_eq!(
            t,
            Track {
                count: Some(-1),
                bytes: Some(-1),
                count_hard: Some(2),
                byte_hard: Some(-1),
            }
        );
        let t = Track::parse(b"count=3,bytes=5");
        assert_eq!((t.count, t.bytes, t.count_hard), (Some(3), Some(5), None));
        // Empty or unreadable values are -1; pairs without '=' and empty text are skipped.
        let t = Track::parse(b"count=,bytes=x;;junk,countHardLimit= 7 ");
        assert_eq!(
            (t.count, t.bytes, t.count_hard, t.byte_hard),
            (Some(-1), Some(-1), Some(7), None)
        );
        assert_eq!(Track::parse(b""), Track::default());
        assert_eq!(parse_stats("bytes=9"), (0, 9), "a stats key not there is 0");
    }

    #[test]
    fn quota_stats_follow_the_subtree() {
        let mut t = DataTree::new(false);
        create(&mut t, 1, "/q", b"");
        create(&mut t, 2, "/zookeeper/quota/q", b"");
        create(
            &mut t,
            3,
            "/zookeeper/quota/q/zookeeper_limits",
            b"count=10,bytes=-1",
        );
        create(
            &mut t,
            4,
            "/zookeeper/quota/q/zookeeper_stats",
            b"count=0,bytes=0",
        );
        let stats = |t: &DataTree| {
            t.get("/zookeeper/quota/q/zookeeper_stats")
                .unwrap()
                .data
                .clone()
                .unwrap()
        };
        assert_eq!(stats(&t), b"count=1,bytes=0");
        create(&mut t, 5, "/q/a", b"abc");
        create(&mut t, 6, "/q/a/b", b"de");
        assert_eq!(stats(&t), b"count=3,bytes=5");
        let delete = |t: &mut DataTree, zxid: i64, p: &str| {
            t.apply(&txn(
                zxid,
                2,
                TxnRecord::Delete(DeleteTxn { path: p.into() }),
            ));
        };
        // A delete leaves the stats too (a hard count limit would refuse creates forever).
        delete(&mut t, 7, "/q/a/b");
        assert_eq!(stats(&t), b"count=2,bytes=3");
        assert_eq!(t.check_quota("/q/x", 0, 1), Ok(()));
        // Without its limits node, the path has no quota: its stats no longer move.
        delete(&mut t, 8, "/zookeeper/quota/q/zookeeper_limits");
        create(&mut t, 9, "/q/c", b"fgh");
        assert_eq!(stats(&t), b"count=2,bytes=3");
    }
}
