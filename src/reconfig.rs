//! reconfig: the membership a ReconfigRequest asks for, checked in the order of ZooKeeper's
//! `PrepRequestProcessor`, and the txn that carries it: a setData of `/zookeeper/config` with
//! the new config text, whose version is the txn's zxid. The leader's ZAB commits it with a
//! quorum of both memberships; every member switches to it when it commits.

use crate::acl;
use crate::ensemble::{parse_members, Ensemble, Member};
use crate::prep::Ctx;
use crate::zab::Sid;
use jute::proto::ReconfigRequest;
use jute::txn::SetDataTxn;
use jute::{perms, TxnRecord, ZkError};
use std::collections::{BTreeMap, BTreeSet};

pub const CONFIG_NODE: &str = "/zookeeper/config";

/// What the leader knows when it prepares a reconfig.
pub struct Leader<'a> {
    pub ensemble: &'a Ensemble,
    /// The membership's version, and whether a reconfig is still to commit.
    pub version: i64,
    pub pending: bool,
    /// The zxid the txn will get: the new membership's version.
    pub zxid: i64,
    pub standalone_enabled: bool,
    /// `isQuorumSynced`: do the leader and its followers in broadcast hold a majority of
    /// these voters?
    pub quorum_synced: &'a dyn Fn(&BTreeSet<Sid>) -> bool,
}

/// The reconfig txn, or the error the client gets.
pub fn prep(ctx: &Ctx<'_>, req: &ReconfigRequest, l: &Leader<'_>) -> Result<TxnRecord, ZkError> {
    if l.pending {
        return Err(ZkError::ReconfigInProgress);
    }
    if req.cur_config_id != -1 && req.cur_config_id != l.version {
        return Err(ZkError::BadVersion);
    }
    let members = next_members(req, &l.ensemble.members)?;
    let voters: BTreeSet<Sid> = members
        .values()
        .filter(|m| !m.observer)
        .map(|m| m.id)
        .collect();
    // "new configuration must include at least 2 followers" (1 without standaloneEnabled).
    let least = if l.standalone_enabled { 2 } else { 1 };
    if voters.len() < least {
        return Err(ZkError::BadArguments);
    }
    if !(l.quorum_synced)(&voters) {
        return Err(ZkError::NewConfigNoQuorum);
    }
    let node = ctx.tree.view(CONFIG_NODE).ok_or(ZkError::NoNode)?;
    acl::check(&node.acl, perms::WRITE, ctx.auth)?;
    let next = l.ensemble.with_members(members, l.zxid as u64);
    Ok(TxnRecord::Reconfig(SetDataTxn {
        path: CONFIG_NODE.to_string(),
        data: Some(next.config_text().into_bytes()),
        version: -1,
    }))
}

/// `StringUtils.split`: trimmed, empty pieces left out.
fn split(s: &str, sep: char) -> impl Iterator<Item = &str> {
    s.split(sep).map(str::trim).filter(|p| !p.is_empty())
}

/// The members after the request: `newMembers` replaces them all; otherwise `leavingServers`
/// (ids) go and `joiningServers` (`server.N=host:port:port[:role];[host:]port`) come, a
/// joiner with a member's id replacing that member.
fn next_members(
    req: &ReconfigRequest,
    current: &BTreeMap<Sid, Member>,
) -> Result<BTreeMap<Sid, Member>, ZkError> {
    let members = if !req.new_members.trim().is_empty() {
        // Commas or newlines separate the lines.
        let text = req.new_members.replace(',', "\n");
        let (members, _) = parse_members(text.as_bytes()).map_err(|_| ZkError::BadArguments)?;
        members
    } else {
        let mut next = current.clone();
        for leaving in split(&req.leaving_servers, ',') {
            // Long.parseLong's NumberFormatException: ZooKeeper's catch-all answer.
            let sid: Sid = leaving.parse().map_err(|_| ZkError::MarshallingError)?;
            next.remove(&sid);
        }
        for joiner in split(&req.joining_servers, ',') {
            let parts: Vec<&str> = split(joiner, '=').collect();
            let [key, spec] = parts[..] else {
                return Err(ZkError::BadArguments);
            };
            let sid: Sid = key[key.rfind('.').map_or(0, |i| i + 1)..]
                .parse()
                .map_err(|_| ZkError::MarshallingError)?;
            let m = Member::parse(sid, spec).map_err(|_| ZkError::BadArguments)?;
            // "each server should have at least 3 ports specified"
            if m.client.is_none() {
                return Err(ZkError::BadArguments);
            }
            next.insert(sid, m);
        }
        next
    };
    check_addresses(&members)?;
    Ok(members)
}

/// `checkAddressDuplicate`: no two servers share a quorum or election address.
fn check_addresses(members: &BTreeMap<Sid, Member>) -> Result<(), ZkError> {
    let mut seen = BTreeSet::new();
    for m in members.values() {
        for port in [m.quorum_port, m.election_port] {
            if !seen.insert((m.host.as_str(), port)) {
                return Err(ZkError::BadArguments);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(lines: &str) -> BTreeMap<Sid, Member> {
        parse_members(lines.as_bytes()).unwrap().0
    }

    fn req(joining: &str, leaving: &str, new_members: &str) -> ReconfigRequest {
        ReconfigRequest {
            joining_servers: joining.into(),
            leaving_servers: leaving.into(),
            new_members: new_members.into(),
            cur_config_id: -1,
        }
    }

    const THREE: &str = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                         server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n\
                         server.3=127.0.0.1:2890:3890:participant;0.0.0.0:2183\nversion=0";

    #[test]
    fn incremental_removes_then_adds() {
        let cur = members(THREE);
        let next = next_members(
            &req("server.4=127.0.0.1:2891:3891;2184", " 3 , 2", ""),
            &cur,
        )
        .unwrap();
        assert_eq!(next.keys().copied().collect::<Vec<_>>(), [1, 4]);
        assert_eq!(
            next[&4].config_line(),
            "server.4=127.0.0.1:2891:3891:participant;0.0.0.0:2184"
        );
        // A joiner with a member's id replaces it (here: makes it an observer).
        let next = next_members(
            &req("server.3=127.0.0.1:2890:3890:observer;2183", "", ""),
            &cur,
        )
        .unwrap();
        assert!(next[&3].observer);
    }

    #[test]
    fn non_incremental_replaces_all() {
        let cur = members(THREE);
        let next = next_members(
            &req(
                "ignored",
                "",
                "server.1=127.0.0.1:2888:3888;2181,server.5=127.0.0.1:2895:3895;2185",
            ),
            &cur,
        )
        .unwrap();
        assert_eq!(next.keys().copied().collect::<Vec<_>>(), [1, 5]);
    }

    #[test]
    fn bad_requests_get_zookeepers_codes() {
        let cur = members(THREE);
        let err = |r: ReconfigRequest| next_members(&r, &cur).unwrap_err();
        assert_eq!(err(req("", "x", "")), ZkError::MarshallingError);
        assert_eq!(
            err(req("server.x=h:1:2;3", "", "")),
            ZkError::MarshallingError
        );
        assert_eq!(err(req("server.4", "", "")), ZkError::BadArguments);
        // No client port.
        assert_eq!(err(req("server.4=h:1:2", "", "")), ZkError::BadArguments);
        assert_eq!(err(req("server.4=h:1", "", "")), ZkError::BadArguments);
        // Another server's election address.
        assert_eq!(
            err(req("server.4=127.0.0.1:2999:3888;2184", "", "")),
            ZkError::BadArguments
        );
        assert_eq!(err(req("", "", "group.1=1:2")), ZkError::BadArguments);
        assert_eq!(err(req("", "", "server.1=nonsense")), ZkError::BadArguments);
    }
}
