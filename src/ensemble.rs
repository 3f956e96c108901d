//! Ensemble membership from zoo.cfg: `server.N=host:quorumPort:electionPort[:participant|:observer]
//! [;[clientHost:]clientPort]` lines, the `myid` file, and the config text ZooKeeper shows in
//! `/zookeeper/config` and sends in notifications.

use crate::config::Config;
use crate::zab::Sid;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::net::ToSocketAddrs;
use std::sync::Arc;

/// Hierarchical quorums (`group.G=a:b:c`, `weight.S=w`), as ZooKeeper's QuorumHierarchical:
/// a quorum holds more than half the weight of more than half of the groups (groups of
/// weight 0 not counted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Groups {
    /// Each server's group.
    group_of: BTreeMap<Sid, u64>,
    /// Each grouped server's weight (default 1).
    weight: BTreeMap<Sid, u64>,
    /// Each group's weight, and how many groups weigh more than 0 (counted once, at parse:
    /// every acknowledgement is checked against them).
    group_weight: BTreeMap<u64, u64>,
    counted: usize,
}

impl Groups {
    /// From `group.`/`weight.` lines (key, value) and the members they group: every voter
    /// must be in exactly one group. None without `group.` lines.
    pub fn parse<'a>(
        lines: impl IntoIterator<Item = (&'a str, &'a str)>,
        members: &BTreeMap<Sid, Member>,
    ) -> Result<Option<Groups>, String> {
        let mut g = Groups::default();
        let mut any = false;
        let mut weights = Vec::new();
        for (key, value) in lines {
            let id = |prefix: &str| -> Result<u64, String> {
                key[prefix.len()..]
                    .parse()
                    .map_err(|_| format!("bad id in {key:?}"))
            };
            if key.starts_with("group.") {
                let gid = id("group.")?;
                any = true;
                for sid in value.split(':') {
                    let sid: Sid = sid
                        .trim()
                        .parse()
                        .map_err(|_| format!("bad server id in {key}={value}"))?;
                    if g.group_of.insert(sid, gid).is_some() {
                        return Err(format!("server {sid} is in multiple groups"));
                    }
                }
            } else if key.starts_with("weight.") {
                let sid = id("weight.")?;
                let w: u64 = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad weight in {key}={value}"))?;
                weights.push((sid, w));
            }
        }
        if !any {
            return Ok(None);
        }
        g.weight.extend(weights);
        if let Some(sid) = g.group_of.keys().find(|sid| !members.contains_key(sid)) {
            return Err(format!("server {sid} is in a group but has no server line"));
        }
        for m in members.values().filter(|m| !m.observer) {
            if !g.group_of.contains_key(&m.id) {
                return Err(format!("server {} is not in a group", m.id));
            }
            g.weight.entry(m.id).or_insert(1);
        }
        for (&sid, &gid) in &g.group_of {
            *g.group_weight.entry(gid).or_default() += g.weight.get(&sid).copied().unwrap_or(0);
        }
        g.counted = g.group_weight.values().filter(|&&w| w > 0).count();
        Ok(Some(g))
    }

    pub fn weight(&self, sid: Sid) -> u64 {
        self.weight.get(&sid).copied().unwrap_or(0)
    }

    /// `containsQuorum`.
    pub fn contains_quorum(&self, ids: &BTreeSet<Sid>) -> bool {
        let mut held: BTreeMap<u64, u64> = BTreeMap::new();
        for sid in ids {
            if let Some(gid) = self.group_of.get(sid) {
                *held.entry(*gid).or_default() += self.weight(*sid);
            }
        }
        let majorities = held
            .iter()
            .filter(|(gid, &w)| w > self.group_weight.get(gid).copied().unwrap_or(0) / 2)
            .count();
        !ids.is_empty() && majorities > self.counted / 2
    }

    /// The `group.` and `weight.` lines of the config text.
    fn lines(&self) -> Vec<String> {
        let mut by_group: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for (sid, gid) in &self.group_of {
            by_group.entry(*gid).or_default().push(sid.to_string());
        }
        let groups = by_group
            .into_iter()
            .map(|(gid, sids)| format!("group.{gid}={}", sids.join(":")));
        let weights = self
            .weight
            .iter()
            .map(|(sid, w)| format!("weight.{sid}={w}"));
        groups.chain(weights).collect()
    }
}

/// One `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: Sid,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    /// `;clientHost:clientPort` as written.
    pub client: Option<String>,
}

impl Member {
    pub fn parse(id: Sid, spec: &str) -> Result<Self, String> {
        let (addrs, client) = match spec.split_once(';') {
            Some((a, c)) => (a, Some(c.trim().to_string())),
            None => (spec, None),
        };
        let parts: Vec<&str> = addrs.trim().split(':').collect();
        if parts.len() < 3 {
            return Err(format!(
                "server.{id}: expected host:quorumPort:electionPort, got {spec:?}"
            ));
        }
        let port = |s: &str| {
            s.parse::<u16>()
                .map_err(|_| format!("server.{id}: bad port {s:?}"))
        };
        let observer = match parts.get(3) {
            None | Some(&"participant") => false,
            Some(&"observer") => true,
            Some(other) => return Err(format!("server.{id}: unknown role {other:?}")),
        };
        Ok(Member {
            id,
            host: parts[0].to_string(),
            quorum_port: port(parts[1])?,
            election_port: port(parts[2])?,
            observer,
            client,
        })
    }

    fn resolve(&self, port: u16) -> Option<SocketAddr> {
        (self.host.as_str(), port).to_socket_addrs().ok()?.next()
    }

    pub fn quorum_addr(&self) -> Option<SocketAddr> {
        self.resolve(self.quorum_port)
    }

    pub fn election_addr(&self) -> Option<SocketAddr> {
        self.resolve(self.election_port)
    }

    /// `host:quorumPort:electionPort:role[;client]`, as ZooKeeper prints it.
    pub fn config_line(&self) -> String {
        let role = if self.observer {
            "observer"
        } else {
            "participant"
        };
        let mut s = format!(
            "server.{}={}:{}:{}:{role}",
            self.id, self.host, self.quorum_port, self.election_port
        );
        if let Some(c) = self.client_address() {
            s.push(';');
            s.push_str(&c);
        }
        s
    }

    /// The `;client` part as ZooKeeper shows it: a port alone is on the wildcard address.
    pub fn client_address(&self) -> Option<String> {
        let c = self.client.as_deref()?;
        Some(match c.contains(':') {
            true => c.to_string(),
            false => format!("0.0.0.0:{c}"),
        })
    }

    /// `host:electionPort`, unresolved (dialed as is; sent in our InitialMessage).
    pub fn election_target(&self) -> String {
        format!("{}:{}", self.host, self.election_port)
    }
}

/// The ensemble this server belongs to.
#[derive(Debug, Clone)]
pub struct Ensemble {
    pub me: Sid,
    pub members: BTreeMap<Sid, Member>,
    /// The membership's version (from the dynamic config file's name, or the zxid of the
    /// reconfig that made it; 0 without either).
    pub version: u64,
    /// This server's own line from its zoo.cfg: its addresses even when a reconfig left it
    /// out of the membership.
    own: Member,
    /// Hierarchical quorums, when `group.` lines define them.
    pub groups: Option<Arc<Groups>>,
}

impl Ensemble {
    /// `None` when the configuration is standalone (no server lines, or a single one with
    /// standaloneEnabled).
    pub fn from_config(cfg: &Config) -> Result<Option<Self>, String> {
        if cfg.servers.is_empty() || (cfg.servers.len() == 1 && cfg.standalone_enabled) {
            return Ok(None);
        }
        let mut members = BTreeMap::new();
        for (id, spec) in &cfg.servers {
            let m = Member::parse(u64::from(*id), spec)?;
            members.insert(m.id, m);
        }
        let me = u64::from(cfg.server_id);
        let Some(own) = members.get(&me).cloned() else {
            return Err(format!("myid {me} has no server.{me} line"));
        };
        let lines = cfg
            .quorum_groups
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()));
        let groups = Groups::parse(lines, &members)?.map(Arc::new);
        Ok(Some(Ensemble {
            me,
            members,
            version: cfg.config_version,
            own,
            groups,
        }))
    }

    /// The membership a config text names (`/zookeeper/config`, a reconfig's txn: `server.N=`
    /// lines and `version=` in hex), for this same server.
    pub fn with_text(&self, text: &[u8]) -> Result<Self, String> {
        let c = parse_config(text)?;
        Ok(self.with_members(c.members, c.groups, c.version.unwrap_or(0)))
    }

    /// Another membership of this same server.
    pub fn with_members(
        &self,
        members: BTreeMap<Sid, Member>,
        groups: Option<Arc<Groups>>,
        version: u64,
    ) -> Self {
        Ensemble {
            me: self.me,
            members,
            version,
            own: self.own.clone(),
            groups,
        }
    }

    /// Is this server a voter or an observer of the membership?
    pub fn is_member(&self) -> bool {
        self.members.contains_key(&self.me)
    }

    /// The voting members, and what counts as a quorum of them.
    pub fn voters(&self) -> crate::zab::Voters {
        crate::zab::Voters {
            ids: self
                .members
                .values()
                .filter(|m| !m.observer)
                .map(|m| m.id)
                .collect(),
            groups: self.groups.clone(),
        }
    }

    pub fn observers(&self) -> BTreeSet<Sid> {
        self.members
            .values()
            .filter(|m| m.observer)
            .map(|m| m.id)
            .collect()
    }

    pub fn me(&self) -> &Member {
        self.members.get(&self.me).unwrap_or(&self.own)
    }

    /// The config text of `/zookeeper/config`: the members, then the membership's version in
    /// hex (no dynamic reconfig changes it).
    pub fn config_text(&self) -> String {
        let mut lines: Vec<String> = self.members.values().map(Member::config_line).collect();
        lines.extend(self.groups.iter().flat_map(|g| g.lines()));
        lines.push(format!("version={:x}", self.version));
        lines.join("\n")
    }
}

/// A config text: its members, their groups, its version.
#[derive(Debug)]
pub struct ParsedConfig {
    pub members: BTreeMap<Sid, Member>,
    pub groups: Option<Arc<Groups>>,
    pub version: Option<u64>,
}

/// The `server.N=`, `group.`, `weight.` lines and the hex `version=` of a config text.
pub fn parse_config(text: &[u8]) -> Result<ParsedConfig, String> {
    let text = std::str::from_utf8(text).map_err(|_| "config is not UTF-8".to_string())?;
    let mut members = BTreeMap::new();
    let mut version = None;
    let mut quorum = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("not key=value: {line:?}"));
        };
        let (key, value) = (key.trim(), value.trim());
        if let Some(id) = key.strip_prefix("server.") {
            let id: Sid = id
                .parse()
                .map_err(|_| format!("bad server id in {key:?}"))?;
            members.insert(id, Member::parse(id, value)?);
        } else if key.starts_with("group.") || key.starts_with("weight.") {
            quorum.push((key, value));
        } else if key == "version" {
            version =
                Some(u64::from_str_radix(value, 16).map_err(|_| format!("bad version {value:?}"))?);
        } else {
            return Err(format!("unsupported config key {key:?}"));
        }
    }
    if members.is_empty() {
        return Err("no server lines".to_string());
    }
    let groups = Groups::parse(quorum, &members)?.map(Arc::new);
    Ok(ParsedConfig {
        members,
        groups,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(lines: &[(&str, &str)], voters: &[Sid]) -> Result<Option<Groups>, String> {
        let members = voters
            .iter()
            .map(|&id| (id, Member::parse(id, &format!("h{id}:1:2")).unwrap()))
            .collect();
        Groups::parse(lines.iter().copied(), &members)
    }

    fn set(ids: &[Sid]) -> BTreeSet<Sid> {
        ids.iter().copied().collect()
    }

    #[test]
    fn hierarchical_quorums_are_majorities_of_group_majorities() {
        let g = groups(
            &[
                ("group.1", "1:2:3"),
                ("group.2", "4:5:6"),
                ("group.3", "7:8:9"),
            ],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9],
        )
        .unwrap()
        .unwrap();
        assert!(g.contains_quorum(&set(&[1, 2, 4, 5])));
        assert!(
            !g.contains_quorum(&set(&[1, 2, 3, 4, 7])),
            "one group's majority"
        );
        assert!(!g.contains_quorum(&set(&[])));
        // Weights: 3 outweighs 1 and 2 together in its group.
        let g = groups(
            &[("group.1", "1:2:3"), ("group.2", "4:5"), ("weight.3", "3")],
            &[1, 2, 3, 4, 5],
        )
        .unwrap()
        .unwrap();
        assert!(!g.contains_quorum(&set(&[1, 2, 4, 5])));
        assert!(g.contains_quorum(&set(&[3, 4, 5])));
        // A group of weight 0 is not counted.
        let g = groups(
            &[
                ("group.1", "1:2"),
                ("group.2", "3:4"),
                ("group.3", "5"),
                ("weight.5", "0"),
            ],
            &[1, 2, 3, 4, 5],
        )
        .unwrap()
        .unwrap();
        assert!(!g.contains_quorum(&set(&[1, 2, 5])));
        assert!(g.contains_quorum(&set(&[1, 2, 3, 4])));
        assert_eq!(
            g.lines(),
            [
                "group.1=1:2",
                "group.2=3:4",
                "group.3=5",
                "weight.1=1",
                "weight.2=1",
                "weight.3=1",
                "weight.4=1",
                "weight.5=0"
            ]
        );
    }

    #[test]
    fn groups_must_cover_every_voter_once() {
        assert_eq!(groups(&[], &[1, 2, 3]), Ok(None));
        let twice = groups(&[("group.1", "1:2"), ("group.2", "2:3")], &[1, 2, 3]).unwrap_err();
        assert!(twice.contains("multiple groups"), "{twice}");
        let left = groups(&[("group.1", "1:2")], &[1, 2, 3]).unwrap_err();
        assert!(left.contains("server 3 is not in a group"), "{left}");
        assert!(groups(&[("group.x", "1")], &[1]).is_err());
        let stranger = groups(&[("group.1", "1:9")], &[1]).unwrap_err();
        assert!(stranger.contains("server 9"), "{stranger}");
        assert!(groups(&[("group.1", "1"), ("weight.1", "heavy")], &[1]).is_err());
    }

    #[test]
    fn parses_zookeeper_server_lines() {
        let m = Member::parse(2, "zk2:2888:3888;2181").unwrap();
        assert_eq!(
            (m.host.as_str(), m.quorum_port, m.election_port, m.observer),
            ("zk2", 2888, 3888, false)
        );
        assert_eq!(
            m.config_line(),
            "server.2=zk2:2888:3888:participant;0.0.0.0:2181"
        );
        let o = Member::parse(4, "127.0.0.1:2891:3891:observer").unwrap();
        assert!(o.observer);
        assert!(Member::parse(1, "host:1").is_err());
        assert!(Member::parse(1, "host:1:2:leader").is_err());
    }
}
