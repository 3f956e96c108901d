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

/// One znode.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub stat: StatPersisted,
    pub data: Option<Vec<u8>>,
    pub acl: Arc<Vec<Acl>>,
    pub children: Children,
    /// This node's part of the tree digest ([`node_digest`]), as last counted.
    pub digest: u32,
}

/// A node's part of ZooKeeper's tree digest (`DigestCalculator`, version 2): CRC32 of the path
/// (`/` as the empty string), the data, then czxid, mzxid, pzxid, ctime, mtime, version,
/// cversion, aversion and ephemeralOwner big-endian. Nodes under `/zookeeper/` count 0.
pub fn node_digest(p: &str, n: &Node) -> u32 {
    if p.starts_with("/zookeeper/") {
        return 0;
    }
    let mut crc = crc32fast::Hasher::new();
    if p != "/" {
        crc.update(p.as_bytes());
    }
    if let Some(d) = &n.data {
        crc.update(d);
    }
    let s = &n.stat;
    let mut stat = [0u8; 60];
    let fields8 = [s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime];
    for (i, v) in fields8.iter().enumerate() {
        stat[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
    }
    stat[40..44].copy_from_slice(&s.version.to_be_bytes());
    stat[44..48].copy_from_slice(&s.cversion.to_be_bytes());
    stat[48..52].copy_from_slice(&s.aversion.to_be_bytes());
    stat[52..60].copy_from_slice(&s.ephemeral_owner.to_be_bytes());
    crc.update(&stat);
    crc.finalize()
}

/// Recounts a changed node's part of the tree digest `digest`.
fn redigest(digest: &mut i64, p: &str, n: &mut Node) {
    let new = node_digest(p, n);
    *digest = digest
        .wrapping_sub(i64::from(n.digest))
        .wrapping_add(i64::from(new));
    n.digest = new;
}

/// How often (in zxids) and how many tree digests the digest log keeps, as ZooKeeper does.
const DIGEST_LOG_INTERVAL: i64 = 128;
const DIGEST_LOG_LIMIT: usize = 1024;

/// An interned ACL list, shared by the nodes that have it.
pub type SharedAcl = Arc<Vec<Acl>>;

/// Loads stored nodes in key order: a parent's child set is filled once per run of its
/// children (not looked up again for each), and a run of nodes sharing one decoded ACL is
/// interned once. What is pending goes in when the loader is dropped.
pub struct Loader<'a> {
    tree: &'a mut DataTree,
    /// The parent of the nodes being loaded, and their names so far.
    run: Option<(String, Vec<Box<str>>)>,
    /// The last ACL seen, as loaded and as interned.
    acl: Option<(SharedAcl, SharedAcl)>,
}

impl Loader<'_> {
    pub fn add(&mut self, p: String, mut node: Node) {
        node.acl = match &self.acl {
            Some((seen, interned)) if Arc::ptr_eq(seen, &node.acl) => interned.clone(),
            _ => {
                let interned = self.tree.intern_loaded_acl(&node.acl);
                self.acl = Some((node.acl.clone(), interned.clone()));
                interned
            }
        };
        if let Some(parent) = path::parent(&p) {
            let name: Box<str> = path::name(&p).into();
            match &mut self.run {
                Some((run_parent, names)) if run_parent == parent => names.push(name),
                _ => {
                    self.adopt();
                    self.run = Some((parent.to_string(), vec![name]));
                }
            }
        }
        self.tree.insert_unlinked(p, node);
    }

    fn adopt(&mut self) {
        if let Some((parent, names)) = self.run.take() {
            if let Some(n) = self.tree.nodes.get_mut(&parent) {
                n.children.extend(names);
            }
        }
    }
}

impl Drop for Loader<'_> {
    fn drop(&mut self) {
        self.adopt();
    }
}

/// A node's child names. A leaf (most nodes) holds no set at all: one pointer, not an empty
/// hash table and its hasher keys.
#[derive(Debug, Clone, Default)]
pub struct Children(Option<Box<ChildSet>>);

/// A parent with more than this many children keeps them in [`CHILD_SHARDS`] tables.
const SPLIT_AT: usize = 8192;
const CHILD_SHARDS: usize = 64;

/// The names, in one table, or in [`CHILD_SHARDS`] tables by hash once there are more than
/// [`SPLIT_AT`]. A table grows by rehashing every name it holds at once, reading each from
/// memory: with a million children under one parent (a queue's, a lock's), the doubling of one
/// table stalled the core for 80 ms, and every request in flight with it. Split, a table holds
/// a 64th of the names and its growth pauses the core for a 64th of the time.
#[derive(Debug, Clone)]
struct ChildSet {
    len: usize,
    shards: Vec<crate::FastSet<Box<str>>>,
    inserts: u32,
}

/// Chooses a name's table in a split set (its own keys: the tables' hashers are per table).
fn child_shard(name: &str) -> usize {
    static HASH: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
    let h = HASH.get_or_init(ahash::RandomState::new).hash_one(name);
    (h >> (64 - CHILD_SHARDS.trailing_zeros())) as usize
}

impl ChildSet {
    fn shard(&self, name: &str) -> usize {
        if self.shards.len() == 1 {
            0
        } else {
            child_shard(name)
        }
    }

    /// Moves the names into [`CHILD_SHARDS`] tables, with room for `more`.
    fn split(&mut self, more: usize) {
        let per = (self.len + more) / CHILD_SHARDS + 1;
        let mut shards: Vec<crate::FastSet<Box<str>>> = (0..CHILD_SHARDS)
            .map(|_| crate::FastSet::with_capacity_and_hasher(per, Default::default()))
            .collect();
        for name in self.shards.drain(..).flatten() {
            shards[child_shard(&name)].insert(name);
        }
        self.shards = shards;
    }

    fn insert(&mut self, name: Box<str>) -> bool {
        let i = self.shard(&name);
        if !self.shards[i].insert(name) {
            return false;
        }
        self.len += 1;
        if self.shards.len() == 1 {
            if self.len > SPLIT_AT {
                self.split(0);
            }
        } else {
            grow_ahead(&mut self.inserts, &mut self.shards);
        }
        true
    }
}

impl Children {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .flat_map(|s| s.shards.iter().flatten().map(|c| &**c))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0
            .as_ref()
            .is_some_and(|s| s.shards[s.shard(name)].contains(name))
    }

    fn set(&mut self) -> &mut ChildSet {
        self.0.get_or_insert_with(|| {
            Box::new(ChildSet {
                len: 0,
                shards: vec![Default::default()],
                inserts: 0,
            })
        })
    }

    /// False if the name was there already.
    pub fn insert(&mut self, name: Box<str>) -> bool {
        self.set().insert(name)
    }

    /// Adds names known to be new (a load).
    pub fn extend(&mut self, names: Vec<Box<str>>) {
        let set = self.set();
        if set.shards.len() == 1 {
            if set.len + names.len() > SPLIT_AT {
                set.split(names.len());
            } else {
                set.shards[0].reserve(names.len());
            }
        }
        for name in names {
            set.insert(name);
        }
    }

    pub fn remove(&mut self, name: &str) -> bool {
        let Some(set) = self.0.as_mut() else {
            return false;
        };
        let i = set.shard(name);
        if !set.shards[i].remove(name) {
            return false;
        }
        set.len -= 1;
        if set.len == 0 {
            self.0 = None;
        }
        true
    }
}

/// The same names, however they are laid out.
impl PartialEq for Children {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|c| other.contains(c))
    }
}

impl Node {
    pub fn new(stat: StatPersisted, data: Option<Vec<u8>>, acl: Arc<Vec<Acl>>) -> Self {
        Node {
            stat,
            data,
            acl,
            children: Children::default(),
            digest: 0,
        }
    }

    /// The Stat a client sees (`DataNode.copyStat`).
    pub fn client_stat(&self, extended_types: bool) -> Stat {
        let s = &self.stat;
        let num_children = i32::try_from(self.children.len()).unwrap_or(i32::MAX);
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
            data_length: self
                .data
                .as_ref()
                .map_or(0, |d| i32::try_from(d.len()).unwrap_or(i32::MAX)),
            num_children,
            pzxid: s.pzxid,
        }
    }
}

/// A watch event produced by applying a txn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub path: String,
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

/// The znodes by path, in shards. A hash table that grows moves all its entries at once, on
/// the core thread: at a million znodes that was a pause of about 100 ms every client saw
/// (and it doubles with the tree); in 64 shards each growth moves a 64th of them.
#[derive(Debug)]
struct NodeMap {
    /// Boxed nodes: a table has up to twice as many buckets as nodes, and a bucket is then a
    /// key and a pointer, not a whole node.
    /// Keys are boxed strings: a bucket is then 24 bytes, not 32 (a million znodes fill
    /// about two million buckets).
    shards: Vec<HashMap<Box<str>, Box<Node>, ahash::RandomState>>,
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

    fn get(&self, p: &str) -> Option<&Node> {
        self.shards[self.shard(p)].get(p).map(|n| &**n)
    }

    fn get_mut(&mut self, p: &str) -> Option<&mut Box<Node>> {
        let i = self.shard(p);
        self.shards[i].get_mut(p)
    }

    fn insert(&mut self, p: String, node: Box<Node>) -> Option<Box<Node>> {
        grow_ahead(&mut self.inserts, &mut self.shards);
        let i = self.shard(&p);
        self.shards[i].insert(p.into_boxed_str(), node)
    }

    fn remove(&mut self, p: &str) -> Option<Box<Node>> {
        let i = self.shard(p);
        self.shards[i].remove(p)
    }

    fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    fn is_empty(&self) -> bool {
        self.shards.iter().all(HashMap::is_empty)
    }

    fn reserve(&mut self, n: usize) {
        for s in &mut self.shards {
            s.reserve(n / SHARDS + 1);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(p, n)| (&**p, &**n)))
    }
}

/// The data tree.
#[derive(Debug)]
pub struct DataTree {
    nodes: NodeMap,
    /// Ephemeral paths by owning session.
    ephemerals: HashMap<i64, BTreeSet<String>>,
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
    pub extended_types: bool,
    /// Paths changed since the last `take_dirty`.
    dirty: crate::FastSet<String>,
    /// ZooKeeper's tree digest: the wrapping sum of every node's [`node_digest`].
    digest: i64,
    /// (zxid, tree digest) at every zxid that is a multiple of 128, oldest first (`hash`).
    digest_log: VecDeque<(i64, i64)>,
}

impl DataTree {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`.
    pub fn new(extended_types: bool) -> Self {
        let mut t = DataTree::empty(extended_types);
        let open = Arc::new(crate::acl::open_acl_unsafe());
        t.insert_loaded(
            "/".into(),
            Node::new(StatPersisted::default(), Some(vec![]), open.clone()),
        );
        t.insert_loaded(
            "/zookeeper".into(),
            Node::new(StatPersisted::default(), Some(vec![]), open.clone()),
        );
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
            nodes: NodeMap::new(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            sessions: Default::default(),
            dirty_sessions: Vec::new(),
            acls: crate::FastSet::default(),
            quota_paths: BTreeSet::new(),
            last_zxid: 0,
            extended_types,
            dirty: crate::FastSet::default(),
            digest: 0,
            digest_log: VecDeque::new(),
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

    /// Room for `n` more nodes (a restart knows roughly how many it loads).
    pub fn reserve(&mut self, n: usize) {
        self.nodes.reserve(n);
    }

    /// Inserts a node read from storage; its parent must already be present.
    pub fn insert_loaded(&mut self, p: String, node: Node) {
        self.loader().add(p, node);
    }

    /// A loader for stored nodes in key order (parents before children, siblings together).
    pub fn loader(&mut self) -> Loader<'_> {
        Loader {
            tree: self,
            run: None,
            acl: None,
        }
    }

    fn intern_loaded_acl(&mut self, acl: &Arc<Vec<Acl>>) -> Arc<Vec<Acl>> {
        match self.acls.get(acl.as_ref()) {
            Some(a) => a.clone(),
            None => {
                self.acls.insert(acl.clone());
                acl.clone()
            }
        }
    }

    /// Indexes and counts a loaded node; its parent's child set is the caller's business.
    fn insert_unlinked(&mut self, p: String, mut node: Node) {
        self.index_kind(&p, node.stat.ephemeral_owner);
        if let Some(target) = quota_target(&p, QUOTA_LIMITS) {
            self.quota_paths.insert(target.to_string());
        }
        node.digest = node_digest(&p, &node);
        self.digest = self.digest.wrapping_add(i64::from(node.digest));
        if let Some(old) = self.nodes.insert(p, Box::new(node)) {
            self.digest = self.digest.wrapping_sub(i64::from(old.digest));
        }
    }

    fn index_kind(&mut self, p: &str, owner: i64) {
        match node_kind(owner, self.extended_types) {
            NodeKind::Normal => {}
            NodeKind::Ephemeral(s) => {
                self.ephemerals.entry(s).or_default().insert(p.to_string());
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

    pub fn get(&self, p: &str) -> Option<&Node> {
        self.nodes.get(p)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn ephemerals_of(&self, session: i64) -> Vec<String> {
        self.ephemerals
            .get(&session)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    pub fn all_ephemerals(&self) -> &HashMap<i64, BTreeSet<String>> {
        &self.ephemerals
    }

    /// Number of descendants of `p` (`getAllChildrenNumber`).
    pub fn descendants(&self, p: &str) -> usize {
        let Some(node) = self.nodes.get(p) else {
            return 0;
        };
        node.children
            .iter()
            .map(|c| 1 + self.descendants(&path::join(p, c)))
            .sum()
    }

    /// Approximate bytes of data held (for mntr's zk_approximate_data_size).
    pub fn approximate_data_size(&self) -> usize {
        self.nodes
            .iter()
            .map(|(p, n)| p.len() + n.data.as_ref().map_or(0, Vec::len))
            .sum()
    }

    /// Paths changed since the last call, to persist.
    pub fn take_dirty(&mut self) -> crate::FastSet<String> {
        std::mem::take(&mut self.dirty)
    }

    /// Hands back a set [`take_dirty`](Self::take_dirty) gave, persisted: emptied, its table
    /// serves the next turn's changes (a fresh set regrew through every size each turn).
    /// A table grown by a burst past 64k paths is let go.
    pub fn recycle_dirty(&mut self, mut dirty: crate::FastSet<String>) {
        if self.dirty.is_empty() && dirty.capacity() <= 1 << 16 {
            dirty.clear();
            self.dirty = dirty;
        }
    }

    /// An ensemble member shows its membership in `/zookeeper/config` (getConfig), with
    /// version -1 as ZooKeeper sets it; derived at start-up, not a txn.
    pub fn set_config(&mut self, text: &[u8]) {
        if let Some(n) = self.nodes.get_mut("/zookeeper/config") {
            n.data = Some(text.to_vec());
            n.stat.version = -1;
        }
    }

    /// Session changes since the last call, to persist.
    pub fn take_dirty_sessions(&mut self) -> Vec<(i64, Option<i32>)> {
        std::mem::take(&mut self.dirty_sessions)
    }

    /// A session read from storage.
    pub fn insert_session(&mut self, id: i64, timeout: i32) {
        self.sessions.insert(id, timeout);
    }

    /// Iterates all nodes (order unspecified).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter()
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
    pub fn digest(&self) -> i64 {
        self.digest
    }

    /// The digest log (`hash`): (zxid, digest), oldest first.
    pub fn digest_log(&self) -> impl Iterator<Item = &(i64, i64)> {
        self.digest_log.iter()
    }

    /// Applies one record (a whole txn, or one op of a multi) under header `h`.
    pub fn apply_record(&mut self, h: &TxnHeader, rec: &TxnRecord, out: &mut Applied) {
        match rec {
            TxnRecord::Create(t) | TxnRecord::Create2(t) => {
                let owner = if t.ephemeral { h.client_id } else { 0 };
                self.create(h, t, owner, out);
            }
            TxnRecord::CreateContainer(t) => {
                let c = CreateTxn {
                    path: t.path.clone(),
                    data: t.data.clone(),
                    acl: t.acl.clone(),
                    ephemeral: false,
                    parent_c_version: t.parent_c_version,
                };
                self.create(h, &c, CONTAINER_OWNER, out);
            }
            TxnRecord::CreateTtl(t) => {
                let c = CreateTxn {
                    path: t.path.clone(),
                    data: t.data.clone(),
                    acl: t.acl.clone(),
                    ephemeral: false,
                    parent_c_version: t.parent_c_version,
                };
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
                    node.stat.version = t.version;
                    node.stat.mzxid = h.zxid;
                    node.stat.mtime = h.time;
                    redigest(&mut self.digest, &t.path, node);
                    self.dirty.insert(t.path.clone());
                    out.events.push(Event {
                        kind: EventType::NodeDataChanged,
                        path: t.path.clone(),
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
                let mut paths = self.ephemerals_of(h.client_id);
                if let Some(t) = t {
                    paths.extend(t.paths2_delete.iter().flatten().cloned());
                }
                paths.sort();
                paths.dedup();
                // Deepest first, though ephemerals cannot have children.
                for p in paths.iter().rev() {
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
            if self.sessions.remove(&h.client_id).is_some() {
                self.dirty_sessions.push((h.client_id, None));
            }
        }
        if let Some(p) = record_path(rec) {
            let stat = self.get(p).map(|n| n.client_stat(self.extended_types));
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
        let Some(parent) = self.nodes.get_mut(parent_path) else {
            return;
        };
        let name = path::name(&t.path);
        if !parent.children.insert(name.into()) {
            return; // already there: replaying a txn that is already reflected
        }
        parent.stat.cversion = t.parent_c_version;
        parent.stat.pzxid = h.zxid;
        redigest(&mut self.digest, parent_path, parent);
        let parent_path = parent_path.to_string();
        let stat = StatPersisted {
            czxid: h.zxid,
            mzxid: h.zxid,
            ctime: h.time,
            mtime: h.time,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: owner,
            pzxid: h.zxid,
        };
        let acl = self.intern_txn_acl(t.acl.as_ref());
        let mut node = Box::new(Node::new(stat, t.data.clone(), acl));
        // Counted as 0 so far: this adds its digest.
        redigest(&mut self.digest, &t.path, &mut node);
        self.index_kind(&t.path, owner);
        if let Some(old) = self.nodes.insert(t.path.clone(), node) {
            self.digest = self.digest.wrapping_sub(i64::from(old.digest));
        }
        self.dirty.insert(t.path.clone());
        self.dirty.insert(parent_path.clone());
        out.events.push(Event {
            kind: EventType::NodeCreated,
            path: t.path.clone(),
        });
        out.events.push(Event {
            kind: EventType::NodeChildrenChanged,
            path: parent_path,
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
            stack.extend(n.children.iter().map(|c| path::join(&p, c)));
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
        self.digest = self.digest.wrapping_sub(i64::from(node.digest));
        self.unindex_kind(p, node.stat.ephemeral_owner);
        self.dirty.insert(p.to_string());
        let parent_path = path::parent(p).unwrap_or("/").to_string();
        if let Some(parent) = self.nodes.get_mut(&parent_path) {
            parent.children.remove(path::name(p));
            parent.stat.pzxid = zxid;
            redigest(&mut self.digest, &parent_path, parent);
            self.dirty.insert(parent_path.clone());
        }
        out.events.push(Event {
            kind: EventType::NodeDeleted,
            path: p.to_string(),
        });
        out.events.push(Event {
            kind: EventType::NodeChildrenChanged,
            path: parent_path,
        });
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

/// `count=N,bytes=M[,...]` -> (N, M).
fn parse_stats(text: &str) -> (i64, i64) {
    let mut count = 0;
    let mut bytes = 0;
    for kv in text.split(',') {
        match kv.split_once('=') {
            Some(("count", v)) => count = v.trim().parse().unwrap_or(0),
            Some(("bytes", v)) => bytes = v.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    (count, bytes)
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
            m.insert(
                p,
                Box::new(Node::new(Default::default(), None, acl.clone())),
            );
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
    fn child_sets_split_past_their_threshold_and_stay_one_set_of_names() {
        // Checked against a plain set through inserts, repeats and removals on both sides of
        // the split, and against a set loaded in one go.
        let mut c = Children::default();
        let mut model = std::collections::BTreeSet::new();
        let name = |i: usize| format!("n{:07}", i * 7919 % 100_003).into_boxed_str();
        for i in 0..SPLIT_AT + 500 {
            assert_eq!(c.insert(name(i)), model.insert(name(i)));
        }
        assert!(c.0.as_ref().unwrap().shards.len() == CHILD_SHARDS);
        assert!(!c.insert(name(3)), "a name is in the set once");
        for i in (0..SPLIT_AT + 500).step_by(3) {
            assert_eq!(c.remove(&name(i)), model.remove(&name(i)));
        }
        assert!(!c.remove("absent"));
        assert_eq!(c.len(), model.len());
        let got: std::collections::BTreeSet<Box<str>> = c.iter().map(Box::from).collect();
        assert_eq!(got, model);
        assert!(model.iter().all(|n| c.contains(n)));
        let mut loaded = Children::default();
        loaded.extend(model.iter().cloned().collect());
        assert_eq!(loaded, c);
        let mut small = Children::default();
        small.extend(vec!["a".into(), "b".into()]);
        assert_eq!(small.0.as_ref().unwrap().shards.len(), 1);
        assert_ne!(small, loaded);
        for n in model {
            assert!(c.remove(&n));
        }
        assert!(c.is_empty() && c.0.is_none(), "an emptied set is dropped");
    }

    #[test]
    fn the_sharded_node_map_finds_every_path_and_spreads_siblings() {
        let mut m = NodeMap::new();
        let acl = Arc::new(crate::acl::open_acl_unsafe());
        let node = || Box::new(Node::new(StatPersisted::default(), None, acl.clone()));
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
        assert!(!m.is_empty());
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
        t.iter().fold(0i64, |d, (p, n)| {
            d.wrapping_add(i64::from(node_digest(p, n)))
        })
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
        // A tree loaded from its nodes has the same digest.
        let mut loaded = DataTree::empty(false);
        let mut nodes: Vec<(String, Node)> =
            t.iter().map(|(p, n)| (p.to_string(), n.clone())).collect();
        nodes.sort_by_key(|(p, _)| (path::depth(p), p.clone()));
        let mut one_by_one = DataTree::empty(false);
        {
            let mut loader = loaded.loader();
            for (p, n) in nodes.clone() {
                loader.add(p, n);
            }
        }
        for (p, n) in nodes {
            one_by_one.insert_loaded(p, n);
        }
        assert_eq!(loaded.digest(), t.digest());
        // The loader links every child to its parent, as loading one by one does.
        for (p, n) in one_by_one.iter() {
            let mut want: Vec<&str> = n.children.iter().collect();
            let mut got: Vec<&str> = loaded.get(p).unwrap().children.iter().collect();
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, want, "children of {p}");
        }
        assert_eq!(loaded.len(), one_by_one.len());
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
    }
}
