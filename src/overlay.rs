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

    /// Adds changes computed by [`Overlay::changes_of`], tagged with their txn's zxid.
    pub fn apply(&mut self, changes: Vec<(Path, Option<NodeView>)>, zxid: i64) {
        let mut paths = Vec::with_capacity(changes.len());
        for (p, n) in changes {
            paths.push(p.clone());
            self.changes.insert(p, (n, zxid));
        }
        if !paths.is_empty() {
            self.by_zxid.push_back((zxid, paths));
        }
    }

    /// The node states a prepared txn leaves behind, as seen through `view`.
    pub fn changes_of(
        view: &dyn View,
        h: &TxnHeader,
        rec: &TxnRecord,
    ) -> Vec<(Path, Option<NodeView>)> {
        let mut pending: Vec<(Path, Option<NodeView>)> = Vec::new();
        let get = |p: &str, pending: &Vec<(Path, Option<NodeView>)>| {
            pending
                .iter()
                .rev()
                .find(|(q, _)| **q == *p)
                .map(|(_, n)| n.clone())
                .unwrap_or_else(|| view.view(p))
        };
        let create = |p: &str,
                      data: &Option<Vec<u8>>,
                      acl: &Option<Vec<Acl>>,
                      owner: i64,
                      parent_c_version: i32,
                      pending: &mut Vec<(Path, Option<NodeView>)>| {
            // A child usually has its parent's ACL: share the parent's list then.
            let mut parent_acl = None;
            if let Some(parent) = path::parent(p) {
                if let Some(mut pv) = get(parent, pending) {
                    pv.stat.cversion = parent_c_version;
                    pv.stat.pzxid = h.zxid;
                    pv.num_children += 1;
                    parent_acl = Some(pv.acl.clone());
                    pending.push((parent.into(), Some(pv)));
                }
            }
            let stat = crate::tree::created_stat(h, owner);
            let new = acl.as_deref().unwrap_or_default();
            let acl = match parent_acl {
                Some(a) if a.as_slice() == new => a,
                _ => Arc::new(new.to_vec()),
            };
            pending.push((
                p.into(),
                Some(NodeView {
                    stat,
                    acl,
                    num_children: 0,
                    data_len: data.as_ref().map_or(0, Vec::len),
                }),
            ));
        };
        let delete = |p: &str, pending: &mut Vec<(Path, Option<NodeView>)>| {
            if let Some(parent) = path::parent(p) {
                if let Some(mut pv) = get(parent, pending) {
                    pv.stat.pzxid = h.zxid;
                    pv.num_children = pv.num_children.saturating_sub(1);
                    pending.push((parent.into(), Some(pv)));
                }
            }
            pending.push((p.into(), None));
        };
        let one = |rec: &TxnRecord, pending: &mut Vec<(Path, Option<NodeView>)>| match rec {
            TxnRecord::Create(t) | TxnRecord::Create2(t) => {
                let owner = if t.ephemeral { h.client_id } else { 0 };
                create(&t.path, &t.data, &t.acl, owner, t.parent_c_version, pending)
            }
            TxnRecord::CreateContainer(t) => create(
                &t.path,
                &t.data,
                &t.acl,
                CONTAINER_OWNER,
                t.parent_c_version,
                pending,
            ),
            TxnRecord::CreateTtl(t) => create(
                &t.path,
                &t.data,
                &t.acl,
                (TTL_MARK | t.ttl as u64) as i64,
                t.parent_c_version,
                pending,
            ),
            TxnRecord::Delete(t) | TxnRecord::DeleteContainer(t) => delete(&t.path, pending),
            TxnRecord::SetData(t) | TxnRecord::Reconfig(t) => {
                if let Some(mut n) = get(&t.path, pending) {
                    n.stat.version = t.version;
                    n.stat.mzxid = h.zxid;
                    n.stat.mtime = h.time;
                    n.data_len = t.data.as_ref().map_or(0, Vec::len);
                    pending.push((t.path.as_str().into(), Some(n)));
                }
            }
            TxnRecord::SetAcl(t) => {
                if let Some(mut n) = get(&t.path, pending) {
                    n.acl = Arc::new(t.acl.clone().unwrap_or_default());
                    n.stat.aversion = t.version;
                    pending.push((t.path.as_str().into(), Some(n)));
                }
            }
            TxnRecord::CloseSession(Some(t)) => {
                for p in t.paths2_delete.iter().flatten() {
                    delete(p, pending);
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
                        one(r, &mut pending);
                    }
                }
            }
            other => one(other, &mut pending),
        }
        pending
    }

    /// The node at `p` as the last pending txn that changes it leaves it (None: deleted),
    /// and that txn's zxid; None when no pending txn changes `p`.
    pub fn pending(&self, p: &str) -> Option<(Option<&NodeView>, i64)> {
        self.changes.get(p).map(|(n, z)| (n.as_ref(), *z))
    }

    /// Forgets changes that txns up to `zxid` made, now that they are in the tree.
    pub fn committed(&mut self, zxid: i64) {
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
            Overlay::changes_of(&tree, &h, &rec)
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
        o.apply(vec![("/a".into(), node(1)), ("/b".into(), node(1))], 10);
        o.apply(vec![("/a".into(), node(2))], 11);
        o.apply(vec![("/c".into(), None)], 12);
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
}
