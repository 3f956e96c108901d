//! ACLs: schemes, the permission check (`ZooKeeperServer.checkACL`), the fix-up of ACLs sent
//! with create/setACL (`PrepRequestProcessor.fixupACL`), digests and ip matching.

use crate::java;
use base64::Engine;
use jute::data::{Acl, Id};
use jute::{perms, ZkError};
use sha1::{Digest, Sha1};
use std::net::IpAddr;
use std::sync::Arc;

/// `[{31, world:anyone}]`.
pub fn open_acl_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// `[{1, world:anyone}]`.
pub fn read_acl_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: perms::READ,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// `user:base64(sha1("user:password"))` for the auth string `user:password`.
pub fn digest(auth: &str) -> String {
    let user = auth.split(':').next().unwrap_or("");
    let hash = Sha1::digest(auth.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// What a connection has authenticated as.
#[derive(Debug, Clone, Default)]
pub struct AuthIds {
    /// In the order ZooKeeper iterates its connection's ids (a `ConcurrentHashMap` set): the
    /// order `whoAmI` lists them and an `auth` ACL expands to them.
    pub ids: Vec<Id>,
    /// The server's ACL settings, shared by every connection.
    pub policy: Arc<Policy>,
}

/// The server-wide settings ACL checks depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// `skipACL=yes`: every ACL check passes.
    pub skip_acl: bool,
    /// The `sasl` scheme is known (an `authProvider.N` names SASLAuthenticationProvider): its
    /// ids may be set in ACLs, and `auth` takes them.
    pub sasl: bool,
    /// `zookeeper.letAnySaslUserDoX`: the `sasl` ACL id every SASL-authenticated client matches.
    pub sasl_any_user: Option<String>,
}

impl Policy {
    pub fn of(cfg: &crate::config::Config) -> Policy {
        Policy {
            skip_acl: cfg.skip_acl,
            sasl: cfg.sasl_provider,
            sasl_any_user: cfg.sasl_any_user.clone(),
        }
    }
}

impl AuthIds {
    pub fn is_super(&self) -> bool {
        self.ids.iter().any(|id| id.scheme == "super")
    }

    pub fn add(&mut self, id: Id) {
        if !self.ids.contains(&id) {
            // Exactly as many as held: every connection holds its ip id, and a doubling
            // Vec would give each of them room for four.
            self.ids.reserve_exact(1);
            self.ids.push(id);
            let table = java::concurrent_table(self.ids.len());
            self.ids.sort_by_key(|id| java_bucket(id, table));
        }
    }
}

/// The bucket of a jute `Id` (hashCode `37 * (37 * 17 + scheme) + id`) in a
/// `ConcurrentHashMap` of `table` buckets: iteration goes bucket by bucket, and within a
/// bucket in the order of insertion (a stable sort by bucket gives that order).
fn java_bucket(id: &Id, table: u32) -> u32 {
    let h = 37i32
        .wrapping_mul(
            37i32
                .wrapping_mul(17)
                .wrapping_add(java::string_hash(&id.scheme)),
        )
        .wrapping_add(java::string_hash(&id.id));
    java::bucket(h, table)
}

/// Does the ACL grant `perm` to a connection holding `ids`?
pub fn check(acl: &[Acl], perm: i32, ids: &AuthIds) -> Result<(), ZkError> {
    if acl.is_empty() || ids.policy.skip_acl || ids.is_super() {
        return Ok(());
    }
    for entry in acl.iter().filter(|a| a.perms & perm != 0) {
        let id = &entry.id;
        if id.scheme == "world" && id.id == "anyone" {
            return Ok(());
        }
        for held in ids.ids.iter().filter(|h| h.scheme == id.scheme) {
            let matches = match id.scheme.as_str() {
                "ip" => ip_matches(&held.id, &id.id),
                "digest" => held.id == id.id,
                // SASLAuthenticationProvider.matches: the id itself, the SASL id `super`, or
                // any SASL id for the ACL id `letAnySaslUserDoX` names.
                "sasl" => {
                    held.id == id.id
                        || held.id == "super"
                        || ids.policy.sasl_any_user.as_deref() == Some(id.id.as_str())
                }
                _ => false,
            };
            if matches {
                return Ok(());
            }
        }
    }
    Err(ZkError::NoAuth)
}

/// Parses `addr` or `addr/bits`.
fn parse_cidr(spec: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match spec.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
        None => (spec, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((addr, bits))
}

/// Is the ACL id a valid ip spec?
pub fn ip_valid(spec: &str) -> bool {
    parse_cidr(spec).is_some()
}

/// Does the connection address `client` fall inside the ACL's `spec`?
pub fn ip_matches(client: &str, spec: &str) -> bool {
    let Some((net, bits)) = parse_cidr(spec) else {
        return false;
    };
    let Ok(client) = client.parse::<IpAddr>() else {
        return false;
    };
    let client = match (client, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        (c, _) => c,
    };
    match (client, net) {
        (IpAddr::V4(c), IpAddr::V4(n)) => prefix_eq(&c.octets(), &n.octets(), bits),
        (IpAddr::V6(c), IpAddr::V6(n)) => prefix_eq(&c.octets(), &n.octets(), bits),
        _ => false,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u32) -> bool {
    let full = (bits / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xFFu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

/// Validates and expands an ACL list sent with create/setACL: duplicates removed, `auth`
/// replaced by the connection's authenticated ids (digest, and sasl where that scheme is
/// known; never its ip id), unknown schemes and malformed ids refused.
pub fn fixup(acl: Option<&[Acl]>, ids: &AuthIds) -> Result<Vec<Acl>, ZkError> {
    let acl = acl.unwrap_or_default();
    if acl.is_empty() {
        return Err(ZkError::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut push = |a: Acl| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for a in acl {
        match a.id.scheme.as_str() {
            "world" if a.id.id == "anyone" => push(a.clone()),
            "auth" => {
                let mut any = false;
                let authenticated =
                    |h: &&Id| h.scheme == "digest" || (h.scheme == "sasl" && ids.policy.sasl);
                for held in ids.ids.iter().filter(authenticated) {
                    push(Acl {
                        perms: a.perms,
                        id: held.clone(),
                    });
                    any = true;
                }
                if !any {
                    return Err(ZkError::InvalidAcl);
                }
            }
            "digest" if a.id.id.split(':').count() == 2 => push(a.clone()),
            "ip" if ip_valid(&a.id.id) => push(a.clone()),
            "sasl" if ids.policy.sasl && crate::sasl::id_valid(&a.id.id) => push(a.clone()),
            _ => return Err(ZkError::InvalidAcl),
        }
    }
    Ok(out)
}

/// getACL for a caller without ADMIN: digest ids masked after the first `:`.
pub fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            let mut a = a.clone();
            if a.id.scheme == "digest" {
                if let Some((user, _)) = a.id.id.split_once(':') {
                    a.id.id = format!("{user}:x");
                }
            }
            a
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[(&str, &str)]) -> AuthIds {
        AuthIds {
            ids: list
                .iter()
                .map(|(s, i)| Id {
                    scheme: (*s).into(),
                    id: (*i).into(),
                })
                .collect(),
            policy: Arc::default(),
        }
    }

    #[test]
    fn ids_keep_zookeepers_iteration_order() {
        // Apache ZooKeeper 3.8 answers whoAmI on a connection from 127.0.0.1 that added
        // digest u1 with the digest first; a second add changes nothing.
        let mut mine = ids(&[]);
        let id = |s: &str, i: &str| Id {
            scheme: s.into(),
            id: i.into(),
        };
        mine.add(id("ip", "127.0.0.1"));
        let u1 = id("digest", "u1:fpT/y03U+EjItKZOSLGvjnJlyng=");
        mine.add(u1.clone());
        mine.add(u1.clone());
        assert_eq!(mine.ids, vec![u1, id("ip", "127.0.0.1")]);
    }

    #[test]
    fn skip_acl_passes_every_check() {
        let none = &[Acl {
            perms: perms::READ,
            id: Id {
                scheme: "digest".into(),
                id: "someone:else".into(),
            },
        }];
        let mut mine = ids(&[("ip", "127.0.0.1")]);
        assert_eq!(check(none, perms::WRITE, &mine), Err(ZkError::NoAuth));
        mine.policy = Arc::new(Policy {
            skip_acl: true,
            ..Policy::default()
        });
        assert_eq!(check(none, perms::WRITE, &mine), Ok(()));
    }

    #[test]
    fn digest_matches_zookeeper() {
        assert_eq!(digest("vec:secret"), "vec:XxsQ3xTNtXlmlncnyR4aJg/SLWI=");
    }

    #[test]
    fn ip_prefixes() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1/32"));
        assert!(ip_matches("127.0.0.1", "127.0.0.0/8"));
        assert!(!ip_matches("127.0.0.1", "10.0.0.0/8"));
        assert!(ip_matches("::1", "::1"));
        assert!(ip_matches("2001:db8::5", "2001:db8::/32"));
        assert!(!ip_valid("1.2.3.4/33"));
        assert!(!ip_valid("nonsense"));
    }

    #[test]
    fn auth_expands_to_digest_ids_only() {
        let auth = [Acl {
            perms: 31,
            id: Id {
                scheme: "auth".into(),
                id: "".into(),
            },
        }];
        assert_eq!(
            fixup(Some(&auth), &ids(&[("ip", "127.0.0.1")])),
            Err(ZkError::InvalidAcl)
        );
        let got = fixup(
            Some(&auth),
            &ids(&[("ip", "127.0.0.1"), ("digest", "vec:h")]),
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id.id, "vec:h");
        assert_eq!(fixup(Some(&[]), &ids(&[])), Err(ZkError::InvalidAcl));
        let world_foo = [Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "foo".into(),
            },
        }];
        assert_eq!(fixup(Some(&world_foo), &ids(&[])), Err(ZkError::InvalidAcl));
    }

    fn acl(scheme: &str, id: &str) -> Acl {
        Acl {
            perms: perms::ALL,
            id: Id {
                scheme: scheme.into(),
                id: id.into(),
            },
        }
    }

    #[test]
    fn sasl_ids_need_the_sasl_provider() {
        let bob = [acl("sasl", "bob")];
        let mut held = ids(&[("ip", "127.0.0.1"), ("sasl", "bob"), ("digest", "d:h")]);
        assert_eq!(fixup(Some(&bob), &held), Err(ZkError::InvalidAcl));
        let auth_only = fixup(Some(&[acl("auth", "")]), &held).unwrap();
        assert_eq!(auth_only, vec![acl("digest", "d:h")]);
        held.policy = Arc::new(Policy {
            sasl: true,
            ..Policy::default()
        });
        assert_eq!(fixup(Some(&bob), &held).unwrap(), bob.to_vec());
        assert_eq!(
            fixup(Some(&[acl("sasl", "a@b@c")]), &held),
            Err(ZkError::InvalidAcl)
        );
        let both = fixup(Some(&[acl("auth", "")]), &held).unwrap();
        assert_eq!(both, vec![acl("sasl", "bob"), acl("digest", "d:h")]);
    }

    #[test]
    fn sasl_matches_the_id_super_and_any_user() {
        let alice = [acl("sasl", "alice")];
        let mut bob = ids(&[("sasl", "bob")]);
        assert_eq!(check(&alice, perms::READ, &bob), Err(ZkError::NoAuth));
        assert_eq!(
            check(&alice, perms::READ, &ids(&[("sasl", "alice")])),
            Ok(())
        );
        assert_eq!(
            check(&alice, perms::READ, &ids(&[("sasl", "super")])),
            Ok(())
        );
        assert_eq!(
            check(&alice, perms::READ, &ids(&[("digest", "alice")])),
            Err(ZkError::NoAuth)
        );
        bob.policy = Arc::new(Policy {
            sasl_any_user: Some("alice".into()),
            ..Policy::default()
        });
        assert_eq!(check(&alice, perms::READ, &bob), Ok(()));
        assert_eq!(
            check(&alice, perms::READ, &ids(&[("ip", "127.0.0.1")])),
            Err(ZkError::NoAuth)
        );
    }

    #[test]
    fn super_and_world() {
        let digest_only = [Acl {
            perms: 31,
            id: Id {
                scheme: "digest".into(),
                id: "a:b".into(),
            },
        }];
        assert_eq!(
            check(&digest_only, perms::READ, &ids(&[])),
            Err(ZkError::NoAuth)
        );
        assert_eq!(
            check(&digest_only, perms::READ, &ids(&[("super", "")])),
            Ok(())
        );
        assert_eq!(
            check(&digest_only, perms::READ, &ids(&[("digest", "a:b")])),
            Ok(())
        );
        assert_eq!(check(&open_acl_unsafe(), perms::ADMIN, &ids(&[])), Ok(()));
        assert_eq!(
            check(&read_acl_unsafe(), perms::WRITE, &ids(&[])),
            Err(ZkError::NoAuth)
        );
    }
}
