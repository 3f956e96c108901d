//! Reads: answered from the committed tree, in order behind the connection's own pending
//! writes (the core queues them), or, answered early, from the state pending txns leave a
//! node in (`Core::pending_node`). Watches are registered here, so a read's reply always
//! precedes the notification of a later change.

use crate::acl::{self, AuthIds};
use crate::core::{reply_frame, Core, PendingNode};
use crate::watches::{ConnId, Kind, Target};
use jute::data::{ClientInfo, Stat};
use jute::proto::*;
use jute::{perms, Encode, EventType, MultiOp, MultiResponse, MultiResult};
use jute::{Request, Response, WatcherType, ZkError};

impl Core {
    /// Answers a read; `None` when the reply was already sent.
    pub(crate) fn read(
        &mut self,
        conn: ConnId,
        sid: i64,
        req: Request,
        xid: i32,
    ) -> Option<Result<Response, ZkError>> {
        let ext = self.cfg.extended_types;
        let op = req.op();
        let auth = self
            .conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        let can = |acl: &[jute::data::Acl], perm| acl::check(acl, perm, &auth);
        // Answered early, of a node pending txns change: from the state they leave it in.
        if let Some(pending) = self.early_pending(conn, &req) {
            return Some(match (req, pending) {
                (_, None) => Err(ZkError::NoNode),
                (Request::Exists(_), Some(n)) => can(&n.view.acl, perms::READ)
                    .map(|()| Response::Exists(ExistsResponse { stat: n.stat(ext) })),
                (_, Some(n)) => can(&n.view.acl, perms::READ).map(|()| {
                    Response::GetData(GetDataResponse {
                        stat: n.stat(ext),
                        data: n.data.map(<[u8]>::to_vec),
                    })
                }),
            });
        }
        Some(match req {
            Request::Exists(r) => {
                if r.path.contains('\0') {
                    return Some(Err(ZkError::BadArguments));
                }
                // An existing node's Stat only to those who may read it, as ZooKeeper
                // 3.8.4 and 3.9.2 on (ZOOKEEPER-2590); refused, it sets no watch either.
                let found = match self.tree.get(node_key(&r.path)) {
                    Some(n) => match can(&n.acl, perms::READ) {
                        Ok(()) => Ok(Response::Exists(ExistsResponse {
                            stat: n.client_stat(ext),
                        })),
                        Err(e) => return Some(Err(e)),
                    },
                    None => Err(ZkError::NoNode),
                };
                if found.is_ok() {
                    // statNode: the path alone.
                    self.reads.add(&r.path, crate::metrics::STAT_OVERHEAD_BYTES);
                }
                if r.watch {
                    self.watches.add(Kind::Data, &r.path, conn);
                }
                found
            }
            // The hot reads are encoded straight from the tree, without copying the data or
            // the child names into a Response first.
            Request::GetData(r) => {
                let watch = r.watch.then_some(Kind::Data);
                self.reply_from_node(conn, xid, &auth, &r.path, watch, |_, n, s, out| {
                    jute::codec::write_buffer(out, n.data.as_deref());
                    s.encode(out);
                    n.data.as_ref().map_or(0, Vec::len)
                })?
            }
            Request::GetChildren(GetChildrenRequest { path, watch })
            | Request::GetChildren2(GetChildren2Request { path, watch }) => {
                let with_stat = matches!(op, jute::OpCode::GetChildren2);
                let watch = watch.then_some(Kind::Child);
                self.reply_from_node(conn, xid, &auth, &path, watch, |tree, _, s, out| {
                    let names = tree.children(node_key(&path));
                    out.extend_from_slice(&(names.len() as i32).to_be_bytes());
                    let start = out.len();
                    let mut bytes = 0;
                    for c in names.iter() {
                        jute::codec::write_ustring(out, c);
                        bytes += c.len();
                    }
                    // The names' length as Java counts it: their bytes unless one is not
                    // ASCII (one pass over what was written, not one per name).
                    if !out[start..].is_ascii() {
                        bytes = names.iter().map(|c| crate::metrics::java_len(c)).sum();
                    }
                    if with_stat {
                        s.encode(out);
                    }
                    bytes
                })?
            }
            Request::GetAcl(r) => match self.tree.get(node_key(&r.path)) {
                None => Err(ZkError::NoNode),
                Some(n) => {
                    if can(&n.acl, perms::READ | perms::ADMIN).is_err() {
                        Err(ZkError::NoAuth)
                    } else {
                        let acl = if can(&n.acl, perms::ADMIN).is_ok() {
                            n.acl.to_vec()
                        } else {
                            acl::mask_digests(&n.acl)
                        };
                        Ok(Response::GetAcl(GetACLResponse {
                            acl: Some(acl),
                            stat: n.client_stat(ext),
                        }))
                    }
                }
            },
            Request::GetAllChildrenNumber(r) => match self.tree.get(node_key(&r.path)) {
                None => Err(ZkError::NoNode),
                Some(n) => can(&n.acl, perms::READ).map(|()| {
                    Response::GetAllChildrenNumber(GetAllChildrenNumberResponse {
                        // ZooKeeper counts the keys under `path + "/"`: for "", every
                        // node but the root's second key, one more than for "/".
                        total_number: i32::try_from(
                            self.tree.descendants(node_key(&r.path))
                                + usize::from(r.path.is_empty()),
                        )
                        .unwrap_or(i32::MAX),
                    })
                }),
            },
            Request::GetEphemerals(r) => {
                let prefix = r.prefix_path.trim();
                let all = prefix.is_empty() || prefix == "/";
                let list = crate::core::ephemerals_as_zookeeper(&self.tree, sid)
                    .into_iter()
                    .filter(|p| all || p.starts_with(prefix))
                    .collect();
                Ok(Response::GetEphemerals(GetEphemeralsResponse {
                    ephemerals: Some(list),
                }))
            }
            Request::Sync(r) => Ok(Response::Sync(SyncResponse { path: r.path })),
            Request::MultiRead(m) => {
                let mut results = Vec::new();
                for op in m.ops {
                    results.push(match op {
                        MultiOp::GetData(r) => match self.get_data(conn, &auth, &r.path, false) {
                            Ok(d) => MultiResult::GetData(d),
                            Err(e) => MultiResult::Error(e.code()),
                        },
                        MultiOp::GetChildren(r) => match self
                            .get_children(conn, &auth, &r.path, false)
                        {
                            Ok((children, _)) => MultiResult::GetChildren(GetChildrenResponse {
                                children: Some(children),
                            }),
                            Err(e) => MultiResult::Error(e.code()),
                        },
                        _ => MultiResult::Error(ZkError::MarshallingError.code()),
                    });
                }
                Ok(Response::Multi(MultiResponse { results }))
            }
            Request::WhoAmI => {
                let info = auth
                    .ids
                    .iter()
                    .map(|id| ClientInfo {
                        auth_scheme: id.scheme.clone(),
                        user: match id.scheme.as_str() {
                            "digest" => id.id.split(':').next().unwrap_or("").to_string(),
                            _ => id.id.clone(),
                        },
                    })
                    .collect();
                Ok(Response::WhoAmI(WhoAmIResponse {
                    client_info: Some(info),
                }))
            }
            Request::AddWatch(r) => {
                let recursive = match jute::AddWatchMode::try_from(r.mode) {
                    Ok(jute::AddWatchMode::Persistent) => false,
                    Ok(jute::AddWatchMode::PersistentRecursive) => true,
                    // ZooKeeper's WatcherMode.fromZooDef throws, answered as any exception.
                    Err(_) => return Some(Err(ZkError::MarshallingError)),
                };
                self.watches.add_persistent(&r.path, conn, recursive);
                Ok(Response::AddWatch(ErrorResponse { err: 0 }))
            }
            Request::CheckWatches(r) => {
                let Some(target) = watch_target(r.type_) else {
                    return Some(Err(ZkError::MarshallingError));
                };
                if self.watches.has(&r.path, conn, target) {
                    Ok(Response::Empty)
                } else {
                    Err(ZkError::NoWatcher)
                }
            }
            Request::RemoveWatches(r) => {
                let Some(target) = watch_target(r.type_) else {
                    return Some(Err(ZkError::MarshallingError));
                };
                if self.watches.remove(&r.path, conn, target) {
                    Ok(Response::Empty)
                } else {
                    Err(ZkError::NoWatcher)
                }
            }
            Request::SetWatches(w) => {
                self.set_watches(
                    conn,
                    w.relative_zxid,
                    [w.data_watches, w.exist_watches, w.child_watches, None, None],
                );
                Ok(Response::Empty)
            }
            Request::SetWatches2(w) => {
                self.set_watches(
                    conn,
                    w.relative_zxid,
                    [
                        w.data_watches,
                        w.exist_watches,
                        w.child_watches,
                        w.persistent_watches,
                        w.persistent_recursive_watches,
                    ],
                );
                Ok(Response::Empty)
            }
            _ => Err(ZkError::Unimplemented),
        })
    }

    /// For an exists or getData without a watch answered early ([`Core::may_answer_early`])
    /// of a node pending txns change: that node as they leave it (None: deleted).
    fn early_pending(&self, conn: ConnId, req: &Request) -> Option<Option<PendingNode<'_>>> {
        if self.holding.is_none_or(|(held, _)| held != conn) {
            return None;
        }
        let path = match req {
            Request::Exists(r) if !r.watch => &r.path,
            Request::GetData(r) if !r.watch => &r.path,
            _ => return None,
        };
        self.pending_node(conn, path)
    }

    /// A read answered straight from the tree: `body` encodes the reply from the node and its
    /// Stat, without copying the data or the child names into a Response first. `None` when
    /// the reply was sent; otherwise the error to answer. `watch`: the watch to set on success.
    fn reply_from_node(
        &mut self,
        conn: ConnId,
        xid: i32,
        auth: &AuthIds,
        p: &str,
        watch: Option<Kind>,
        body: impl Fn(&crate::tree::DataTree, &crate::tree::Node, &Stat, &mut Vec<u8>) -> usize,
    ) -> Option<Result<Response, ZkError>> {
        let zxid = self.tree.last_zxid;
        let Some(n) = self.tree.get(node_key(p)) else {
            return Some(Err(ZkError::NoNode));
        };
        if let Err(e) = acl::check(&n.acl, perms::READ, auth) {
            return Some(Err(e));
        }
        let stat = n.client_stat(self.cfg.extended_types);
        let tree = &self.tree;
        let read = std::cell::Cell::new(0);
        let frame = reply_frame(
            xid,
            zxid,
            0,
            Some(&|out: &mut Vec<u8>| read.set(body(tree, &n, &stat, out))),
        );
        drop(n);
        let bytes = read.get() as u64 + crate::metrics::STAT_OVERHEAD_BYTES;
        self.reads.add(p, bytes);
        if let Some(kind) = watch {
            self.watches.add(kind, p, conn);
        }
        self.send_reply(conn, xid, zxid, frame);
        None
    }

    fn get_data(
        &mut self,
        conn: ConnId,
        auth: &AuthIds,
        p: &str,
        watch: bool,
    ) -> Result<GetDataResponse, ZkError> {
        let n = self.tree.get(node_key(p)).ok_or(ZkError::NoNode)?;
        acl::check(&n.acl, perms::READ, auth)?;
        let resp = GetDataResponse {
            data: n.data.clone(),
            stat: n.client_stat(self.cfg.extended_types),
        };
        drop(n);
        if watch {
            self.watches.add(Kind::Data, p, conn);
        }
        let bytes = resp.data.as_ref().map_or(0, Vec::len) as u64;
        self.reads
            .add(p, bytes + crate::metrics::STAT_OVERHEAD_BYTES);
        Ok(resp)
    }

    fn get_children(
        &mut self,
        conn: ConnId,
        auth: &AuthIds,
        p: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), ZkError> {
        let n = self.tree.get(node_key(p)).ok_or(ZkError::NoNode)?;
        acl::check(&n.acl, perms::READ, auth)?;
        let children: Vec<String> = self
            .tree
            .children(node_key(p))
            .iter()
            .map(|c| c.to_string())
            .collect();
        let stat = n.client_stat(self.cfg.extended_types);
        drop(n);
        if watch {
            self.watches.add(Kind::Child, p, conn);
        }
        let bytes: usize = children.iter().map(|c| crate::metrics::java_len(c)).sum();
        self.reads
            .add(p, bytes as u64 + crate::metrics::STAT_OVERHEAD_BYTES);
        Ok((children, stat))
    }

    /// Re-arms watches after a reconnect, firing what changed since `relative_zxid`.
    fn set_watches(&mut self, conn: ConnId, rel: i64, lists: [Option<Vec<String>>; 5]) {
        let [data, exist, child, persistent, recursive] = lists.map(Option::unwrap_or_default);
        let mut events = Vec::new();
        for p in data {
            match self.tree.get(node_key(&p)) {
                None => events.push((EventType::NodeDeleted, p)),
                Some(n) if n.stat.mzxid > rel => events.push((EventType::NodeDataChanged, p)),
                Some(_) => self.watches.add(Kind::Data, &p, conn),
            }
        }
        for p in exist {
            if self.tree.get(node_key(&p)).is_some() {
                events.push((EventType::NodeCreated, p));
            } else {
                self.watches.add(Kind::Data, &p, conn);
            }
        }
        for p in child {
            match self.tree.get(node_key(&p)) {
                None => events.push((EventType::NodeDeleted, p)),
                Some(n) if n.stat.pzxid > rel => events.push((EventType::NodeChildrenChanged, p)),
                Some(_) => self.watches.add(Kind::Child, &p, conn),
            }
        }
        for p in persistent {
            self.watches.add_persistent(&p, conn, false);
        }
        for p in recursive {
            self.watches.add_persistent(&p, conn, true);
        }
        for (kind, p) in events {
            self.send(conn, crate::core::notification(kind.code(), &p, -1));
        }
    }
}

/// The tree's key for a path a read names. ZooKeeper keeps its root under both "/" and "", and
/// reads look paths up as given (clients check them; the server does not): "" is the root.
/// Watches stay on the path as named.
fn node_key(p: &str) -> &str {
    if p.is_empty() {
        "/"
    } else {
        p
    }
}

/// The watches a checkWatches or removeWatches names; `None` for a type ZooKeeper does not
/// know (its `WatcherType.fromInt` throws: MarshallingError).
fn watch_target(t: i32) -> Option<Target> {
    Some(match WatcherType::try_from(t).ok()? {
        WatcherType::Children => Target::Child,
        WatcherType::Data => Target::Data,
        WatcherType::Any => Target::Any,
        WatcherType::Persistent => Target::Persistent,
        WatcherType::PersistentRecursive => Target::Recursive,
    })
}
