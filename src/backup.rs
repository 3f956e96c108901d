//! ZooKeeper 3.9's `snapshot` and `restore` admin commands: a snapshot file of the tree,
//! written to the data dir and streamed out over HTTP, and a snapshot file POSTed back to
//! replace the tree. Both ask for credentials in the `Authorization` header (`digest
//! user:password`, or `ip`) that may do everything (ALL) on `/`, as ZooKeeper's
//! `AuthRequest(ALL, "/")`, and both are rate limited as ZooKeeper's are.
//!
//! The snapshot is taken where a learner's SNAP is, at the end of a turn once its changes are
//! saved: a thread writes the tree from a point-in-time view of the store, so the core goes on
//! serving. The HTTP task writes those pieces into `version-2/snapshot.<zxid>` in ZooKeeper's
//! format ([`crate::import::SnapshotFile`]), then streams the file.
//!
//! A restore replaces the stored tree and sessions with the snapshot's, at the end of a turn
//! with nothing in flight, and closes every client connection: the sessions the snapshot
//! holds reconnect (their watches set again against the restored tree), the others are
//! told they expired. The zxid never goes back (a client that has seen a zxid must be let
//! back in), so the restored tree takes the later of the server's and the snapshot's.

use crate::acl::{self, AuthIds};
use crate::core::Core;
use crate::session::Session;
use crate::snapshot::{SnapChunks, SnapFormat};
use jute::data::Id;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What the core answers an admin command.
pub enum AdminReply {
    /// A JSON body with its HTTP status.
    Json { status: u16, body: String },
    /// `snapshot`: the serialized tree at `zxid` as a thread writes it, for the HTTP task to
    /// write into `dir` and stream out (`streaming`) or only describe.
    Snapshot(TakenSnapshot),
    /// `restore` may go on: the HTTP task reads the body and sends it as
    /// [`crate::core::CoreMsg::Restore`].
    RestoreGo,
}

pub struct TakenSnapshot {
    pub zxid: i64,
    pub digest: i64,
    /// The file ends with the last processed zxid.
    pub last_processed: bool,
    pub pieces: SnapChunks,
    /// ZooKeeper's snapshot dir (`dataDir/version-2`).
    pub dir: PathBuf,
    pub streaming: bool,
}

/// ZooKeeper's `RateLimiter` with a rate of 1: once per interval, the first at once.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    last_reset: Instant,
    left: bool,
}

impl RateLimiter {
    pub fn new(interval: Duration) -> Self {
        RateLimiter {
            interval,
            last_reset: Instant::now(),
            left: true,
        }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        if now > self.last_reset + self.interval {
            self.left = true;
            self.last_reset = now;
        }
        std::mem::replace(&mut self.left, false)
    }
}

/// The admin commands' state on the core.
pub struct Backup {
    snapshot_limit: RateLimiter,
    restore_limit: RateLimiter,
    /// Snapshots asked for this turn: taken once its changes are saved.
    snapshots: Vec<(oneshot::Sender<AdminReply>, bool)>,
    /// Restores waiting for a turn with nothing in flight: the body and who waits.
    restores: Vec<(Vec<u8>, oneshot::Sender<AdminReply>)>,
}

impl Backup {
    pub fn new(cfg: &crate::config::Config) -> Self {
        let ms = cfg.admin_rate_limit_ms;
        Backup {
            // ZooKeeper's SnapshotCommand reads the interval as microseconds.
            snapshot_limit: RateLimiter::new(Duration::from_micros(ms)),
            restore_limit: RateLimiter::new(Duration::from_millis(ms)),
            snapshots: Vec::new(),
            restores: Vec::new(),
        }
    }
}

/// A JSON reply: `fields`, then the command and the error, as ZooKeeper's `CommandResponse`.
pub fn json(
    status: u16,
    command: &str,
    error: Option<&str>,
    fields: Vec<(String, crate::admin_http::Json)>,
) -> AdminReply {
    use crate::admin_http::Json;
    let mut fields = fields;
    fields.push(("command".into(), Json::str(command)));
    fields.push((
        "error".into(),
        error.map_or(Json::Null, |e| Json::str(e.to_string())),
    ));
    AdminReply::Json {
        status,
        body: Json::Obj(fields).pretty(),
    }
}

/// Who an `Authorization` header names (`Commands.handleAuthentication`): the scheme, and
/// for `digest` the `user:password` after one space. None when it authenticates nobody.
fn authenticate(
    core: &Core,
    header: &str,
    peer: IpAddr,
    forwarded: Option<&str>,
) -> Option<Vec<Id>> {
    // Java's split(" "): empty strings at the end dropped.
    let mut parts: Vec<&str> = header.split(' ').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    match parts.as_slice() {
        ["digest", auth] => {
            let digest = acl::digest(auth);
            let mut ids = Vec::new();
            if core.cfg.super_digest.as_deref() == Some(digest.as_str()) {
                ids.push(Id {
                    scheme: "super".into(),
                    id: String::new(),
                });
            }
            ids.push(Id {
                scheme: "digest".into(),
                id: digest,
            });
            Some(ids)
        }
        // IPAuthenticationProvider: the first address X-Forwarded-For names, else the peer's.
        ["ip"] | ["ip", _] => {
            let ip = match forwarded.and_then(|f| f.split(',').next()) {
                Some(first) => first.trim().to_string(),
                None => peer.to_canonical().to_string(),
            };
            Some(vec![Id {
                scheme: "ip".into(),
                id: ip,
            }])
        }
        _ => None,
    }
}

/// An admin request's credentials.
pub struct Credentials {
    pub authorization: Option<String>,
    pub peer: IpAddr,
    pub forwarded: Option<String>,
}

impl Core {
    /// `snapshot` (GET) or `restore` (POST), named as asked (`name`) and by primary name.
    /// Checked as ZooKeeper's `Commands.runCommand` checks: serving, credentials, rights on
    /// `/`, then the command's own checks.
    pub(crate) fn backup_command(
        &mut self,
        name: &str,
        primary: &str,
        args: &[(String, String)],
        creds: &Credentials,
        reply: oneshot::Sender<AdminReply>,
    ) {
        if !self.serving() && !self.read_only() {
            let _ = reply.send(json(
                200,
                name,
                Some("This ZooKeeper instance is not currently serving requests"),
                vec![],
            ));
            return;
        }
        let Some(header) = creds.authorization.as_deref() else {
            let _ = reply.send(json(
                401,
                name,
                Some("Auth info is missing for the command"),
                vec![],
            ));
            return;
        };
        let Some(ids) = authenticate(self, header, creds.peer, creds.forwarded.as_deref()) else {
            let _ = reply.send(json(401, name, Some("Not authenticated"), vec![]));
            return;
        };
        let held = AuthIds {
            ids,
            policy: self.acl_policy.clone(),
        };
        let root_acl = self
            .tree
            .get("/")
            .map(|n| n.acl.clone())
            .unwrap_or_default();
        if acl::check(&root_acl, jute::perms::ALL, &held).is_err() {
            let _ = reply.send(json(403, name, Some("Not authorized"), vec![]));
            return;
        }
        let snapshot = primary == "snapshot";
        let (enabled, limit) = match snapshot {
            true => (
                self.cfg.admin_snapshot_enabled,
                &mut self.backup.snapshot_limit,
            ),
            false => (
                self.cfg.admin_restore_enabled,
                &mut self.backup.restore_limit,
            ),
        };
        if !enabled {
            tracing::warn!("the {primary} command is disabled");
            let _ = reply.send(json(503, primary, None, vec![]));
        } else if !self.cfg.serialize_last_processed_zxid {
            tracing::warn!("the {primary} command needs serializeLastProcessedZxid.enabled=true");
            let _ = reply.send(json(500, primary, None, vec![]));
        } else if !snapshot && self.replica.is_some() {
            let _ = reply.send(json(
                500,
                primary,
                Some("restore replaces a standalone server's tree; an ensemble member's comes from its leader"),
                vec![],
            ));
        } else if !limit.allow(Instant::now()) {
            tracing::warn!("a {primary} request was rate limited");
            let _ = reply.send(json(429, primary, None, vec![]));
        } else if snapshot {
            let streaming = args
                .iter()
                .find(|(k, _)| k == "streaming")
                .is_none_or(|(_, v)| v.eq_ignore_ascii_case("true"));
            self.backup.snapshots.push((reply, streaming));
        } else {
            let _ = reply.send(AdminReply::RestoreGo);
        }
    }

    /// A restore's snapshot arrived: it waits for the end of a turn with nothing in flight.
    pub(crate) fn restore_arrived(
        &mut self,
        snapshot: Vec<u8>,
        reply: oneshot::Sender<AdminReply>,
    ) {
        self.backup.restores.push((snapshot, reply));
    }

    /// At the end of a turn, its changes saved: takes the snapshots asked for and, when
    /// nothing is in flight, carries out the restores.
    pub(crate) fn finish_backups(&mut self) {
        if !self.backup.snapshots.is_empty() {
            self.take_snapshots();
        }
        if !self.backup.restores.is_empty() && self.inflight.is_empty() {
            for (snapshot, reply) in std::mem::take(&mut self.backup.restores) {
                let answer = match self.restore(&snapshot) {
                    Ok(zxid) => json(
                        200,
                        "restore",
                        None,
                        vec![("last_zxid".into(), crate::admin_http::Json::int(zxid))],
                    ),
                    Err(e) => {
                        tracing::warn!("restoring a snapshot failed: {e}");
                        json(500, "restore", Some(&e), vec![])
                    }
                };
                let _ = reply.send(answer);
            }
        }
    }

    fn take_snapshots(&mut self) {
        let sessions: Vec<(i64, i32)> = self.tree.sessions.iter().map(|(i, t)| (*i, *t)).collect();
        let zxid = self.tree.last_zxid;
        let digest = self.tree.digest();
        let (dir, _) =
            crate::import::zookeeper_dirs(&self.cfg.data_dir, self.cfg.data_log_dir.as_deref());
        for (reply, streaming) in std::mem::take(&mut self.backup.snapshots) {
            let pieces = match self.tree.is_paged() {
                true => {
                    self.store
                        .stream_snapshot(SnapFormat::ZooKeeperTree, zxid, sessions.clone())
                }
                false => crate::snapshot::from_tree(&self.tree, SnapFormat::ZooKeeperTree),
            };
            let _ = reply.send(AdminReply::Snapshot(TakenSnapshot {
                zxid,
                digest,
                last_processed: self.cfg.serialize_last_processed_zxid,
                pieces,
                dir: dir.clone(),
                streaming,
            }));
        }
    }

    /// Replaces the tree and the sessions with the snapshot's; every client connection is
    /// closed. The snapshot's zxid.
    fn restore(&mut self, snapshot: &[u8]) -> Result<i64, String> {
        let (data, zxid) = crate::import::snap_from_snapshot_file(snapshot, self.tree.last_zxid)
            .map_err(|e| format!("not a snapshot: {e}"))?;
        // Written beside the store first (an error there leaves everything as it was); a
        // crash during the install then finishes it at the next start.
        self.store
            .stage_restore(&data)
            .map_err(|e| format!("cannot stage the snapshot: {e}"))?;
        drop(data);
        let installed = self.store.install_staged_restore();
        let tree = installed.and_then(|_| self.store.open_tree(self.cfg.extended_types));
        match tree {
            Ok(tree) => self.tree = tree,
            // The store may be half replaced: a restart finishes the install from the
            // staged file.
            Err(e) => {
                tracing::error!("restoring a snapshot failed, stopping: {e}");
                std::process::exit(2);
            }
        }
        self.overlay.clear();
        let now = Instant::now();
        self.sessions.clear();
        for (&id, &timeout) in &self.tree.sessions {
            self.sessions
                .insert(id, Session::new(id, timeout, now, self.cfg.tick_time_ms));
        }
        let max_id = self.tree.sessions.keys().copied().max().unwrap_or(0);
        self.next_session_id = self.next_session_id.max(max_id + 1);
        self.next_zxid = self.next_zxid.max(self.tree.last_zxid + 1);
        // Closed now, not at the next turn: nothing more of theirs is taken.
        for (conn, c) in self.conns.iter_mut() {
            c.session = None;
            c.refused = true;
            c.tx.close();
            self.watches.remove_conn(*conn);
        }
        tracing::info!(
            "restored a snapshot at {zxid:#x}: {} znodes, {} sessions, serving at {:#x}",
            self.tree.len(),
            self.tree.sessions.len(),
            self.tree.last_zxid
        );
        Ok(zxid)
    }
}
