//! Ensemble membership from zoo.cfg: `server.N=host:quorumPort:electionPort[:participant|:observer]
//! [;[clientHost:]clientPort]` lines, the `myid` file, and the config text ZooKeeper shows in
//! `/zookeeper/config` and sends in notifications.

use crate::config::Config;
use crate::zab::Sid;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::net::ToSocketAddrs;

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
        Ok(Some(Ensemble {
            me,
            members,
            version: cfg.config_version,
            own,
        }))
    }

    /// The membership a config text names (`/zookeeper/config`, a reconfig's txn: `server.N=`
    /// lines and `version=` in hex), for this same server.
    pub fn with_text(&self, text: &[u8]) -> Result<Self, String> {
        let (members, version) = parse_members(text)?;
        Ok(self.with_members(members, version.unwrap_or(0)))
    }

    /// Another membership of this same server.
    pub fn with_members(&self, members: BTreeMap<Sid, Member>, version: u64) -> Self {
        Ensemble {
            me: self.me,
            members,
            version,
            own: self.own.clone(),
        }
    }

    /// Is this server a voter or an observer of the membership?
    pub fn is_member(&self) -> bool {
        self.members.contains_key(&self.me)
    }

    pub fn voters(&self) -> BTreeSet<Sid> {
        self.members
            .values()
            .filter(|m| !m.observer)
            .map(|m| m.id)
            .collect()
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
        lines.push(format!("version={:x}", self.version));
        lines.join("\n")
    }
}

/// The `server.N=` lines and the hex `version=` of a config text. Other keys (`group.`,
/// `weight.`: hierarchical quorums, which zkrs does not have) are refused.
pub fn parse_members(text: &[u8]) -> Result<(BTreeMap<Sid, Member>, Option<u64>), String> {
    let text = std::str::from_utf8(text).map_err(|_| "config is not UTF-8".to_string())?;
    let mut members = BTreeMap::new();
    let mut version = None;
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
    Ok((members, version))
}

#[cfg(test)]
mod tests {
    use super::*;

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
