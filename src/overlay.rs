//! The state prep sees: the committed tree plus the changes of txns proposed but not yet
//! committed (ZooKeeper's `outstandingChanges`). Only what prep reads is kept per node: the
//! stat, the ACL and the child count; never the data or the child names.

use crate::path;
use crate::tree::{DataTree, CONTAINER_OWNER, TTL_MARK};
use jute::data::{Acl, StatPersisted};
use jute::txn::TxnHeader;
use jute::TxnRecord;
use std::collections::VecDeque;
use std::sync::Arc;

/// What prep needs to know about a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub stat: StatPersisted,
    pub acl: Arc<Vec<Acl>>,
    pub num_children: usize,
    /// Bytes of data (a setData's quota check weighs the change).
    pub data_len: usize,
    /// The node's part of the tree digest ([`crate::tree::node_digest`]).
    pub digest: u32,
}

/// A readable state: the tree, or pending changes over it.
pub trait View {
    fn view(&self, p: &str) -> Option<NodeView>;
    /// Ephemeral paths of `session` in this state.
    fn ephemerals(&self, session: i64) -> Vec<String>;
    /// The most ephemerals `session` held at once, as far as the committed tree knows.
    fn ephemeral_peak(&self, session: i64) -> usize;
    /// `checkQuota`: whether `count` more nodes and `bytes` more bytes under `p` stay within
    /// the hard quota covering it, by the committed tree's limits and stats (as ZooKeeper
    /// checks them, not counting what pending txns add).
    fn check_quota(&self, p: &str, bytes: i64, count: i64) -> Result<(), jute::ZkError>;
}

impl View for DataTree {
    fn view(&self, p: &str) -> Option<NodeView> {
        self.peek(p).map(|n| NodeView {
            stat: n.stat.clone(),
            acl: n.acl.clone(),
            num_children: n.num_children as usize,
            data_len: n.data.as_ref().map_or(0, Vec::len),
            digest: n.digest,
        })
    }

    fn ephemerals(&self, session: i64) -> Vec<String> {
        self.ephemerals_of(session)
    }

    fn ephemeral_peak(&self, session: i64) -> usize {
        DataTree::ephemeral_peak(self, session)
    }

    fn check_quota(&self, p: &str, bytes: i64, count: i64) -> Result<(), jute::ZkError> {
        DataTree::check_quota(self, p, bytes, count)
    }
}

/// A changed path, shared by the change and its txn's list.
pub type Path = Arc<str>;

/// Pending changes: path -> the node as the last pending txn left it (None: deleted), and
/// the zxid of that txn.
#[derive(Debug, Default, Clone)]
pub struct Overlay {
    changes: crate::FastMap<Path, (Option<NodeView>, i64)>,
    /// The paths each pending txn touched, oldest first: committing forgets them in order
    /// instead of scanning every change per txn.
    by_zxid: VecDeque<(i64, Vec<Path>)>,
    /// The zxid of the last pending txn that changed a node, and the tree digest after it
    /// (ZooKeeper's last outstanding change's precalculated digest).
    tail: Option<(i64, i64)>,
}

/// What a prepared txn changes: the node states it leaves, in order (a path may come more
/// than once: its last state counts), and how far it moves the tree digest.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub nodes: Vec<(Path, Option<NodeView>)>,
    pub digest_delta: i64,
}

impl Changes {
    /// The node at `p` as the changes so far leave it, else as `view` has it.
    fn get(&self, view: &dyn View, p: &str) -> Option<NodeView> {
        self.nodes
            .iter()
            .rev()
            .find(|(q, _)| **q == *p)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| view.view(p))
    }

    /// `p` becomes `node`; its digest was `before` (None: no node).
    fn push(&mut self, p: &str, before: Option<u32>, node: Option<NodeView>) {
        let new = node.as_ref().map_or(0, |n| n.digest);
        self.digest_delta = self
            .digest_delta
            .wrapping_sub(i64::from(before.unwrap_or(0)))
            .wrapping_add(i64::from(new));
        self.nodes.push((p.into(), node));
    }
}

/// An overlay over another view.
pub struct Layered<'a> {
    pub top: &'a Overlay,
    pub below: &'a dyn View,
}

impl View for Layered<'_> {
    fn view(&self, p: &str) -> Option<NodeView> {
        match self.top.changes.get(p) {
            Some((node, _)) => node.clone(),
            None => self.below.view(p),
        }
    }

    fn ephemeral_peak(&self, session: i64) -> usize {
        self.below.ephemeral_peak(session)
    }

    fn ephemerals(&self, session: i64) -> Vec<String> {
        let mut out: Vec<String> = self
            .below
            .ephemerals(session)
            .into_iter()
            .filter(|p| !matches!(self.top.changes.get(p.as_str()), Some((None, _))))
            .collect();
        for (p, (node, _)) in &self.top.changes {
            if let Some(n) = node {
                if n.stat.ephemeral_owner == session && !out.iter().any(|o| **o == **p) {
                    out.push(p.to_string());
                }
            }
        }
        out.sort();
        out
    }

    fn check_quota(&self, p: &str, bytes: i64, count: i64) -> Result<(), jute::ZkError> {
        self.below.check_quota(p, bytes, count)
    }
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Does a pending txn change the node at `p` (for a parent: its children)?
    pub fn touches(&self, p: &str) -> bool {
        self.changes.contains_key(p)
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// The tree digest after every pending txn, given the committed tree's.
    pub fn digest(&self, committed: i64) -> i64 {
        self.tail.map_or(committed, |(_, d)| d)
    }

    /// Adds changes computed by [`Overlay::changes_of`], tagged with their txn's zxid, over a
    /// committed tree whose digest is `committed_digest`; returns the tree digest after them.
    pub fn apply(&mut self, changes: Changes, zxid: i64, committed_digest: i64) -> i64 {
        let digest = self
            .digest(committed_digest)
            .wrapping_add(changes.digest_delta);
        let mut paths = Vec::with_capacity(changes.nodes.len());
        for (p, n) in changes.nodes {
            paths.push(p.clone());
            self.changes.insert(p, (n, zxid));
        }
        if !paths.is_empty() {
            self.by_zxid.push_back((zxid, paths));
            self.tail = Some((zxid, digest));
        }
        digest
    }

    /// The node states a prepared txn leaves behind, as seen through `view`, and the digests
    /// ZooKeeper's PrepRequestProcessor precalculates for them.
    pub fn changes_of(view: &dyn View, h: &TxnHeader, rec: &TxnRecord) -> Changes {
        use crate::tree::{digest_of, restat_digest};
        let mut out = Changes::default();
        // A parent, a set ACL: the stat changes, the data stays.
        let restat = |out: &mut Changes, p: &str, mut n: NodeView, f: &dyn Fn(&mut NodeView)| {
            let (before, old) = (n.digest, n.stat.clone());
            f(&mut n);
            n.digest = restat_digest(p, before, &old, &n.stat);
            out.push(p, Some(before), Some(n));
        };
        let create = |p: &str,
                      data: &Option<Vec<u8>>,
                      acl: &Option<Vec<Acl>>,
                      owner: i64,
                      parent_c_version: i32,
                      out: &mut Changes| {
            // A child usually has its parent's ACL: share the parent's list then.
            let mut parent_acl = None;
            if let Some(parent) = path::parent(p) {
                if let Some(pv) = out.get(view, parent) {
                    parent_acl = Some(pv.acl.clone());
                    restat(out, parent, pv, &|pv| {
                        pv.stat.cversion = parent_c_version;
                        pv.stat.pzxid = h.zxid;
                        pv.num_children += 1;
                    });
                }
            }
            let stat = crate::tree::created_stat(h, owner);
            let new = acl.as_deref().unwrap_or_default();
            let acl = match parent_acl {
                Some(a) if a.as_slice() == new => a,
                _ => Arc::new(new.to_vec()),
            };
            let digest = digest_of(p, data.as_deref(), &stat);
            let node = NodeView {
                stat,
                acl,
                num_children: 0,
                data_len: data.as_ref().map_or(0, Vec::len),
                digest,
            };
            out.push(p, None, Some(node));
        };
        let delete = |p: &str, out: &mut Changes| {
            if let Some(parent) = path::parent(p) {
                if let Some(pv) = out.get(view, parent) {
                    restat(out, parent, pv, &|pv| {
                        pv.stat.pzxid = h.zxid;
                        pv.num_children = pv.num_children.saturating_sub(1);
                    });
                }
            }
            let before = out.get(view, p).map(|n| n.digest);
            out.push(p, before, None);
        };
        let one = |rec: &TxnRecord, out: &mut Changes| match rec {
            TxnRecord::Create(t) | TxnRecord::Create2(t) => {
                let owner = if t.ephemeral { h.client_id } else { 0 };
                create(&t.path, &t.data, &t.acl, owner, t.parent_c_version, out)
            }
            TxnRecord::CreateContainer(t) => create(
                &t.path,
                &t.data,
                &t.acl,
                CONTAINER_OWNER,
                t.parent_c_version,
                out,
            ),
            TxnRecord::CreateTtl(t) => create(
                &t.path,
                &t.data,
                &t.acl,
                (TTL_MARK | t.ttl as u64) as i64,
                t.parent_c_version,
                out,
            ),
            TxnRecord::Delete(t) | TxnRecord::DeleteContainer(t) => delete(&t.path, out),
            TxnRecord::SetData(t) | TxnRecord::Reconfig(t) => {
                if let Some(mut n) = out.get(view, &t.path) {
                    let before = n.digest;
                    n.stat.version = t.version;
                    n.stat.mzxid = h.zxid;
                    n.stat.mtime = h.time;
                    n.data_len = t.data.as_ref().map_or(0, Vec::len);
                    n.digest = digest_of(&t.path, t.data.as_deref(), &n.stat);
                    out.push(&t.path, Some(before), Some(n));
                }
            }
            TxnRecord::SetAcl(t) => {
                if let Some(n) = out.get(view, &t.path) {
                    restat(out, &t.path, n, &|n| {
                        n.acl = Arc::new(t.acl.clone().unwrap_or_default());
                        n.stat.aversion = t.version;
                    });
                }
            }
            TxnRecord::CloseSession(Some(t)) => {
                for p in t.paths2_delete.iter().flatten() {
                    delete(p, out);
                }
            }
            _ => {}
        };
        match rec {
            TxnRecord::Multi(m) => {
                let subs: Vec<TxnRecord> = m
                    .txns
                    .iter()
                    .flatten()
                    .filter_map(|t| {
                        let data = t.data.as_deref().unwrap_or_default();
                        TxnRecord::decode_for(t.type_, &mut jute::Reader::new(data)).ok()
                    })
                    .collect();
                if !subs.iter().any(|r| matches!(r, TxnRecord::Error(_))) {
                    for r in &subs {
                        one(r, &mut out);
                    }
                }
            }
            other => one(other, &mut out),
        }
        out
    }

    /// The node at `p` as the last pending txn that changes it leaves it (None: deleted),
    /// and that txn's zxid; None when no pending txn changes `p`.
    pub fn pending(&self, p: &str) -> Option<(Option<&NodeView>, i64)> {
        self.changes.get(p).map(|(n, z)| (n.as_ref(), *z))
    }

    /// Forgets changes that txns up to `zxid` made, now that they are in the tree.
    pub fn committed(&mut self, zxid: i64) {
        if self.tail.is_some_and(|(z, _)| z <= zxid) {
            self.tail = None;
        }
        while self.by_zxid.front().is_some_and(|(z, _)| *z <= zxid) {
            let Some((_, paths)) = self.by_zxid.pop_front() else {
                break;
            };
            for p in paths {
                // A later pending txn may have changed the path again: keep its change.
                if self.changes.get(&p).is_some_and(|(_, z)| *z <= zxid) {
                    self.changes.remove(&p);
                }
            }
        }
    }

    /// Drops everything (a leader that steps down).
    pub fn clear(&mut self) {
        self.changes.clear();
        self.by_zxid.clear();
        self.tail = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(version: i32) -> Option<NodeView> {
        Some(NodeView {
            stat: StatPersisted {
                version,
                ..Default::default()
            },
            acl: Arc::new(Vec::new()),
            num_children: 0,
            data_len: 0,
            digest: 0,
        })
    }

    #[test]
    fn a_created_node_shares_its_parents_acl_list_when_equal() {
        let tree = DataTree::new(false);
        let create = |p: &str, acl: Vec<Acl>| {
            let h = TxnHeader {
                client_id: 1,
                cxid: 0,
                zxid: 5,
                time: 0,
                type_: 1,
            };
            let rec = TxnRecord::Create(jute::txn::CreateTxn {
                path: p.into(),
                data: None,
                acl: Some(acl),
                ephemeral: false,
                parent_c_version: 1,
            });
            Overlay::changes_of(&tree, &h, &rec).nodes
        };
        let root = tree.view("/").unwrap();
        let same = create("/a", crate::acl::open_acl_unsafe());
        assert_eq!(&*same[0].0, "/");
        assert_eq!(&*same[1].0, "/a");
        let acl = &same[1].1.as_ref().unwrap().acl;
        assert!(Arc::ptr_eq(acl, &root.acl), "the parent's list, shared");
        let other = create("/b", crate::acl::read_acl_unsafe());
        let acl = &other[1].1.as_ref().unwrap().acl;
        assert_eq!(**acl, crate::acl::read_acl_unsafe());
        assert!(!Arc::ptr_eq(acl, &root.acl));
    }

    #[test]
    fn committing_forgets_only_what_later_txns_did_not_change_again() {
        let mut o = Overlay::default();
        let changes = |nodes: Vec<(Path, Option<NodeView>)>| Changes {
            nodes,
            digest_delta: 1,
        };
        o.apply(
            changes(vec![("/a".into(), node(1)), ("/b".into(), node(1))]),
            10,
            0,
        );
        o.apply(changes(vec![("/a".into(), node(2))]), 11, 0);
        o.apply(changes(vec![("/c".into(), None)]), 12, 0);
        o.committed(10);
        // /b is in the tree now; /a still shows txn 11's change.
        assert_eq!(o.len(), 2);
        assert_eq!(
            o.changes.get("/a").map(|(n, z)| (n.clone(), *z)),
            Some((node(2), 11))
        );
        o.committed(12);
        assert!(o.is_empty());
        assert!(o.by_zxid.is_empty());
    }

    /// Proposes txns over a tree, several pending at once, as a leader does: the digest
    /// the overlay predicts for each is the tree's once it is applied, for every kind of txn
    /// (creates of every mode, data, ACLs, deletes, a session's ephemerals, multis that hold
    /// and that fail, /zookeeper's nodes that do not count).
    #[test]
    fn each_predicted_digest_is_the_trees_after_the_txn() {
        use crate::tree::node_digest;
        use jute::txn::*;
        use jute::TxnEntry;
        let mut tree = DataTree::new(true);
        let mut o = Overlay::default();
        let mut pending: VecDeque<(TxnEntry, i64)> = VecDeque::new();
        let open = crate::acl::open_acl_unsafe();
        let commit = |tree: &mut DataTree, o: &mut Overlay, (e, predicted): (TxnEntry, i64)| {
            tree.apply(&e);
            o.committed(e.header.zxid);
            let mut scratch = 0i64;
            tree.for_each(|p, n| scratch = scratch.wrapping_add(i64::from(node_digest(p, n))));
            assert_eq!(tree.digest(), scratch, "the tree's own count");
            assert_eq!(
                tree.digest(),
                predicted,
                "txn {:#x} {:?}",
                e.header.zxid,
                e.record
            );
        };
        // Each step makes its record from the state the txns before it leave.
        type Step = Box<dyn Fn(&dyn View) -> TxnRecord>;
        let cv = |v: &dyn View, p: &str| v.view(p).map_or(0, |n| n.stat.cversion) + 1;
        let create = |p: &'static str, data: &'static [u8], ephemeral: bool| -> Step {
            let acl = open.clone();
            Box::new(move |v: &dyn View| {
                TxnRecord::Create(CreateTxn {
                    path: p.into(),
                    data: Some(data.to_vec()),
                    acl: Some(acl.clone()),
                    ephemeral,
                    parent_c_version: cv(v, path::parent(p).unwrap_or("/")),
                })
            })
        };
        let set = |p: &'static str, data: &'static [u8]| -> Step {
            Box::new(move |v: &dyn View| {
                TxnRecord::SetData(SetDataTxn {
                    path: p.into(),
                    data: Some(data.to_vec()),
                    version: v.view(p).map_or(0, |n| n.stat.version) + 1,
                })
            })
        };
        let delete = |p: &'static str| -> Step {
            Box::new(move |_: &dyn View| TxnRecord::Delete(DeleteTxn { path: p.into() }))
        };
        let multi = |subs: Vec<TxnRecord>| TxnRecord::multi(&subs);
        let steps: Vec<Step> = vec![
            Box::new(|_: &dyn View| {
                TxnRecord::CreateSession(CreateSessionTxn { time_out: 30_000 })
            }),
            create("/a", b"alpha", false),
            create("/a/b", b"", false),
            create("/a/b/c", b"data of c", false),
            set("/a/b", b"new data for b"),
            set("/a/b", &[0xff; 300]),
            create("/e1", b"ephemeral", true),
            create("/a/e2", b"", true),
            Box::new(move |v: &dyn View| {
                TxnRecord::CreateContainer(CreateContainerTxn {
                    path: "/box".into(),
                    data: Some(b"c".to_vec()),
                    acl: Some(crate::acl::open_acl_unsafe()),
                    parent_c_version: cv(v, "/"),
                })
            }),
            Box::new(move |v: &dyn View| {
                TxnRecord::CreateTtl(CreateTTLTxn {
                    path: "/box/ttl".into(),
                    data: None,
                    acl: Some(crate::acl::read_acl_unsafe()),
                    parent_c_version: cv(v, "/box"),
                    ttl: 5_000,
                })
            }),
            Box::new(|v: &dyn View| {
                TxnRecord::SetAcl(SetACLTxn {
                    path: "/a".into(),
                    acl: Some(crate::acl::read_acl_unsafe()),
                    version: v.view("/a").map_or(0, |n| n.stat.aversion) + 1,
                })
            }),
            delete("/a/b/c"),
            // A multi: each op over the ones before it.
            Box::new(move |v: &dyn View| {
                multi(vec![
                    TxnRecord::Create(CreateTxn {
                        path: "/m".into(),
                        data: Some(b"m".to_vec()),
                        acl: Some(crate::acl::open_acl_unsafe()),
                        ephemeral: false,
                        parent_c_version: cv(v, "/"),
                    }),
                    TxnRecord::Create(CreateTxn {
                        path: "/m/n".into(),
                        data: None,
                        acl: Some(crate::acl::open_acl_unsafe()),
                        ephemeral: false,
                        parent_c_version: 1,
                    }),
                    TxnRecord::SetData(SetDataTxn {
                        path: "/m".into(),
                        data: Some(b"mm".to_vec()),
                        version: 1,
                    }),
                    TxnRecord::Check(CheckVersionTxn {
                        path: "/a".into(),
                        version: 0,
                    }),
                    TxnRecord::Delete(DeleteTxn {
                        path: "/m/n".into(),
                    }),
                ])
            }),
            // A failed multi changes nothing.
            Box::new(move |_: &dyn View| {
                multi(vec![
                    TxnRecord::SetData(SetDataTxn {
                        path: "/m".into(),
                        data: Some(b"lost".to_vec()),
                        version: 2,
                    }),
                    TxnRecord::Error(ErrorTxn { err: -101 }),
                ])
            }),
            // /zookeeper's nodes: a quota, the config.
            create("/zookeeper/quota/a", b"", false),
            Box::new(|_: &dyn View| {
                TxnRecord::Reconfig(SetDataTxn {
                    path: "/zookeeper/config".into(),
                    data: Some(b"server.1=localhost:2888:3888:participant;2181".to_vec()),
                    version: -1,
                })
            }),
            // The session ends: its ephemerals go.
            Box::new(|_: &dyn View| {
                TxnRecord::CloseSession(Some(CloseSessionTxn {
                    paths2_delete: Some(vec!["/e1".into(), "/a/e2".into()]),
                }))
            }),
            delete("/box/ttl"),
            Box::new(|_: &dyn View| {
                TxnRecord::DeleteContainer(DeleteTxn {
                    path: "/box".into(),
                })
            }),
            set("/", b"root data"),
            delete("/a/b"),
        ];
        for (zxid, (i, step)) in (0x5_0000_0000_i64..).zip(steps.iter().enumerate()) {
            let (h, changes, rec) = {
                let view = Layered {
                    top: &o,
                    below: &tree,
                };
                let rec = step(&view);
                let h = TxnHeader {
                    client_id: 0x0100_0000_0000_0001,
                    cxid: i as i32,
                    zxid,
                    time: 1_700_000_000_000 + i as i64,
                    type_: rec.op().code(),
                };
                (h.clone(), Overlay::changes_of(&view, &h, &rec), rec)
            };
            let predicted = o.apply(changes, zxid, tree.digest());
            let entry = TxnEntry {
                header: h,
                record: rec,
                digest: None,
            };
            pending.push_back((entry, predicted));
            // Up to four txns pending at once.
            if pending.len() > 3 {
                let next = pending.pop_front().unwrap();
                commit(&mut tree, &mut o, next);
            }
        }
        while let Some(next) = pending.pop_front() {
            commit(&mut tree, &mut o, next);
        }
        assert!(o.is_empty());
        assert_eq!(o.digest(tree.digest()), tree.digest());
        assert!(tree.peek("/a/b").is_none() && tree.peek("/m").is_some());
    }
}
