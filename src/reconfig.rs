//! reconfig: the membership a ReconfigRequest asks for, checked in the order of ZooKeeper's
//! `PrepRequestProcessor`, and the txn that carries it: a setData of `/zookeeper/config` with
//! the new config text, whose version is the txn's zxid. The leader's ZAB commits it with a
//! quorum of both memberships; every member switches to it when it commits.

use crate::acl;
use crate::ensemble::{parse_config, Ensemble, Member, ParsedConfig};
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
    /// `isQuorumSynced`: do the leader and its followers in broadcast hold a quorum of
    /// these voters?
    pub quorum_synced: &'a dyn Fn(&crate::zab::Voters) -> bool,
}

/// The reconfig txn, or the error the client gets.
pub fn prep(ctx: &Ctx<'_>, req: &ReconfigRequest, l: &Leader<'_>) -> Result<TxnRecord, ZkError> {
    if l.pending {
        return Err(ZkError::ReconfigInProgress);
    }
    if req.cur_config_id != -1 && req.cur_config_id != l.version {
        return Err(ZkError::BadVersion);
    }
    let ParsedConfig {
        members, groups, ..
    } = next_members(req, l.ensemble)?;
    let voters = crate::zab::Voters {
        ids: members
            .values()
            .filter(|m| !m.observer)
            .map(|m| m.id)
            .collect(),
        groups: groups.clone(),
    };
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
    let next = l.ensemble.with_members(members, groups, l.zxid as u64);
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
/// Non-incremental, the lines may define hierarchical quorums (`group.`/`weight.`); an
/// incremental one is refused where the membership has them, as ZooKeeper refuses it for a
/// non-majority quorum system.
fn next_members(req: &ReconfigRequest, current: &Ensemble) -> Result<ParsedConfig, ZkError> {
    let (members, groups) = if !req.new_members.trim().is_empty() {
        // Commas or newlines separate the lines.
        let text = req.new_members.replace(',', "\n");
        let c = parse_config(text.as_bytes()).map_err(|_| ZkError::BadArguments)?;
        (c.members, c.groups)
    } else {
        if current.groups.is_some() {
            return Err(ZkError::BadArguments);
        }
        let mut next = current.members.clone();
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
        (next, None)
    };
    check_addresses(&members)?;
    Ok(ParsedConfig {
        members,
        groups,
        version: None,
    })
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

    fn ensemble(lines: &str) -> Ensemble {
        let cfg =
            crate::config::Config::parse(&format!("{}\n", lines.replace("version=0", ""))).unwrap();
        Ensemble::from_config(&cfg).unwrap().unwrap()
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
        let cur = ensemble(THREE);
        let next = next_members(
            &req("server.4=127.0.0.1:2891:3891;2184", " 3 , 2", ""),
            &cur,
        )
        .unwrap()
        .members;
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
        .unwrap()
        .members;
        assert!(next[&3].observer);
    }

    #[test]
    fn non_incremental_replaces_all() {
        let cur = ensemble(THREE);
        let next = next_members(
            &req(
                "ignored",
                "",
                "server.1=127.0.0.1:2888:3888;2181,server.5=127.0.0.1:2895:3895;2185",
            ),
            &cur,
        )
        .unwrap()
        .members;
        assert_eq!(next.keys().copied().collect::<Vec<_>>(), [1, 5]);
    }

    #[test]
    fn bad_requests_get_zookeepers_codes() {
        let cur = ensemble(THREE);
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
        // Groups that leave a voter out, or name no server.
        assert_eq!(err(req("", "", "group.1=1:2")), ZkError::BadArguments);
        assert_eq!(
            err(req("", "", "server.1=127.0.0.1:2888:3888;2181,group.1=1:2")),
            ZkError::BadArguments
        );
        assert_eq!(err(req("", "", "server.1=nonsense")), ZkError::BadArguments);
    }

    #[test]
    fn hierarchical_memberships_change_only_as_a_whole() {
        let cur = ensemble(&format!("{THREE}\ngroup.1=1:2\ngroup.2=3\nweight.3=2"));
        let groups = cur.groups.clone().expect("groups");
        assert_eq!(groups.weight(3), 2);
        assert_eq!(groups.weight(1), 1);
        assert_eq!(
            next_members(&req("server.4=127.0.0.1:2891:3891;2184", "", ""), &cur).unwrap_err(),
            ZkError::BadArguments,
            "incremental, with groups"
        );
        let ParsedConfig {
            members: next,
            groups,
            ..
        } = next_members(
            &req(
                "",
                "",
                "server.1=127.0.0.1:2888:3888;2181,server.2=127.0.0.1:2889:3889;2182,\
                 group.7=1,group.8=2",
            ),
            &cur,
        )
        .unwrap();
        assert_eq!(next.len(), 2);
        let text = cur.with_members(next, groups, 0x500000000).config_text();
        assert!(
            text.ends_with("group.7=1\ngroup.8=2\nweight.1=1\nweight.2=1\nversion=500000000"),
            "{text}"
        );
    }
}
