//! SASL GSSAPI (RFC 4752: Kerberos V5) for clients, as ZooKeeper's server speaks it when the
//! JAAS `Server` section logs in with `Krb5LoginModule`:
//!
//! ```text
//! Server {
//!     com.sun.security.auth.module.Krb5LoginModule required
//!     useKeyTab=true
//!     keyTab="/etc/zookeeper/zk.keytab"
//!     storeKey=true
//!     principal="zookeeper/zk1.example.com@EXAMPLE.COM";
//! };
//! ```
//!
//! The Kerberos work is MIT's GSSAPI library's (`libgssapi_krb5`): the server takes its
//! acceptor credentials from the keytab (`KRB5_KTNAME`) for that principal, and the Kerberos
//! configuration from `java.security.krb5.conf` (`KRB5_CONFIG`) when given, else
//! `/etc/krb5.conf`. Over the established context the server offers the `auth` security layer
//! (no integrity or privacy) with a 64 KiB buffer, as Java's `GssKrb5Server`, and takes the
//! client's choice and authorization id. The authenticated principal becomes the id
//! `sasl:<name>`, mapped as ZooKeeper maps it: the `zookeeper.security.auth_to_local` rules
//! give the short name, then `/host` and `@REALM` are put back unless
//! `zookeeper.kerberos.removeHostFromPrincipal` / `removeRealmFromPrincipal`.

use crate::sasl::{SaslError, Step};
use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext, ServerCtx};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::name::Name;
use libgssapi::oid::{OidSet, GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE, GSS_NT_KRB5_PRINCIPAL};
use std::path::{Path, PathBuf};

/// The JAAS login module that makes a section log in with Kerberos.
pub const KRB5_LOGIN_MODULE: &str = "com.sun.security.auth.module.Krb5LoginModule";

/// Security layers, RFC 4752 section 3.3: the server offers `auth` only, as ZooKeeper's
/// (`javax.security.sasl.qop` unset).
const LAYER_NONE: u8 = 1;
/// The largest buffer the server says it receives (Java's default `maxbuffer`).
const MAX_BUFFER: u32 = 65536;

/// How authenticated principals become `sasl` ids.
#[derive(Debug, Clone)]
pub struct Names {
    rules: Vec<Rule>,
    /// The Kerberos configuration's `default_realm` ("" without one, as ZooKeeper).
    pub default_realm: String,
    /// `zookeeper.kerberos.removeHostFromPrincipal`.
    pub remove_host: bool,
    /// `zookeeper.kerberos.removeRealmFromPrincipal`.
    pub remove_realm: bool,
}

/// One `auth_to_local` rule (Hadoop's, as ZooKeeper's `KerberosName` keeps them).
#[derive(Debug, Clone)]
enum Rule {
    /// A name of the default realm maps to its first component.
    Default,
    /// `RULE:[n:format](match)s/from/to/g`.
    Map {
        components: usize,
        format: String,
        matches: Option<regex::Regex>,
        substitute: Option<(regex::Regex, String, bool)>,
    },
}

/// A Kerberos name: `service[/host]@REALM`, or a bare name.
#[derive(Debug, PartialEq, Eq)]
struct KerberosName<'a> {
    service: &'a str,
    host: Option<&'a str>,
    realm: Option<&'a str>,
}

impl<'a> KerberosName<'a> {
    /// `([^/@]*)(/([^/@]*))?@([^/@]*)`, or a name without `@` taken whole.
    fn parse(name: &'a str) -> Option<KerberosName<'a>> {
        let Some((principal, realm)) = name.split_once('@') else {
            return Some(KerberosName {
                service: name,
                host: None,
                realm: None,
            });
        };
        if realm.contains(['/', '@']) {
            return None;
        }
        let (service, host) = match principal.split_once('/') {
            Some((_, h)) if h.contains('/') => return None,
            Some((s, h)) => (s, Some(h)),
            None => (principal, None),
        };
        Some(KerberosName {
            service,
            host,
            realm: Some(realm),
        })
    }
}

impl Names {
    /// The rules of `zookeeper.security.auth_to_local` (`DEFAULT` when unset). A rule that
    /// does not parse is refused here, where ZooKeeper fails each Kerberos login on it.
    pub fn new(
        rules: &str,
        default_realm: String,
        remove_host: bool,
        remove_realm: bool,
    ) -> Result<Names, String> {
        Ok(Names {
            rules: parse_rules(rules)?,
            default_realm,
            remove_host,
            remove_realm,
        })
    }

    /// The short name the rules give `name` (`KerberosName.getShortName`); None when no rule
    /// applies or one gives a name with `/` or `@`.
    fn short_name(&self, name: &KerberosName) -> Option<String> {
        let (Some(realm), service) = (name.realm, name.service) else {
            return Some(name.service.to_string());
        };
        let params: Vec<&str> = match name.host {
            Some(host) => vec![realm, service, host],
            None => vec![realm, service],
        };
        for rule in &self.rules {
            let result = match rule {
                Rule::Default => (self.default_realm == params[0]).then(|| params[1].to_string()),
                Rule::Map {
                    components,
                    format,
                    matches,
                    substitute,
                } => {
                    if params.len() - 1 != *components {
                        None
                    } else {
                        let base = replace_parameters(format, &params)?;
                        if matches.as_ref().is_some_and(|m| !m.is_match(&base)) {
                            None
                        } else {
                            Some(match substitute {
                                None => base,
                                Some((from, to, true)) => from.replace_all(&base, to).into_owned(),
                                Some((from, to, false)) => from.replace(&base, to).into_owned(),
                            })
                        }
                    }
                }
            };
            if let Some(r) = result {
                return (!r.contains(['/', '@'])).then_some(r);
            }
        }
        None
    }

    /// The id a client that authenticated as `peer` and asked to act as `authzid` gets
    /// (`SaslServerCallbackHandler.handleAuthorizeCallback`): the short name, then the host
    /// and realm unless removed; where no rule maps the name, the authorization id.
    pub fn authorized_id(&self, peer: &str, authzid: &str) -> String {
        let Some(name) = KerberosName::parse(peer) else {
            return authzid.to_string();
        };
        let Some(mut id) = self.short_name(&name) else {
            tracing::warn!("Kerberos: no auth_to_local rule maps {peer}; its id is {authzid}");
            return authzid.to_string();
        };
        if let (false, Some(host)) = (self.remove_host, name.host) {
            id.push('/');
            id.push_str(host);
        }
        if let (false, Some(realm)) = (self.remove_realm, name.realm) {
            id.push('@');
            id.push_str(realm);
        }
        id
    }
}

/// A rule's format with `$0` (the realm), `$1`, `$2` (the components) put in.
fn replace_parameters(format: &str, params: &[&str]) -> Option<String> {
    let mut out = String::new();
    let mut rest = format;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits: String = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let n: usize = digits.parse().ok()?;
        out.push_str(params.get(n)?);
        rest = &rest[at + 1 + digits.len()..];
    }
    out.push_str(rest);
    Some(out)
}

/// `zookeeper.security.auth_to_local`: rules separated by white space.
fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    let syntax = regex::Regex::new(
        r"^\s*((DEFAULT)|(RULE:\[(\d*):([^\]]*)](\(([^)]*)\))?(s/([^/]*)/([^/]*)/(g)?)?))",
    )
    .map_err(|e| e.to_string())?;
    let pattern = |p: &str| regex::Regex::new(p).map_err(|e| format!("rule pattern {p}: {e}"));
    let mut rules = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(c) = syntax.captures(rest) else {
            return Err(format!("invalid auth_to_local rule: {rest}"));
        };
        if c.get(2).is_some() {
            rules.push(Rule::Default);
        } else {
            let group = |i| c.get(i).map_or("", |m: regex::Match| m.as_str());
            let components = group(4)
                .parse()
                .map_err(|_| format!("invalid auth_to_local rule: {rest}"))?;
            rules.push(Rule::Map {
                components,
                format: group(5).to_string(),
                // Java's `matches()`: the whole name.
                matches: c
                    .get(7)
                    .map(|m| pattern(&format!("^(?:{})$", m.as_str())))
                    .transpose()?,
                substitute: match c.get(9) {
                    Some(from) => Some((
                        pattern(from.as_str())?,
                        java_replacement(group(10)),
                        c.get(11).is_some(),
                    )),
                    None => None,
                },
            });
        }
        let end = c.get(0).map_or(rest.len(), |m| m.end());
        rest = &rest[end..];
    }
    Ok(rules)
}

/// A Java replacement string (`$1` groups, `\` escapes) in the regex crate's syntax.
fn java_replacement(to: &str) -> String {
    let mut out = String::new();
    let mut chars = to.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(c) => out.push(c),
                None => {}
            },
            '$' => {
                let digits: String =
                    std::iter::from_fn(|| chars.next_if(char::is_ascii_digit)).collect();
                out.push_str(&format!("${{{digits}}}"));
            }
            c => out.push(c),
        }
    }
    out
}

/// The `default_realm` of `[libdefaults]` in a krb5.conf ("" without one).
pub fn default_realm(krb5_conf: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(krb5_conf) else {
        return String::new();
    };
    let mut section = "";
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
        } else if section == "[libdefaults]" {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == "default_realm" {
                    return v.trim().to_string();
                }
            }
        }
    }
    String::new()
}

/// The server's Kerberos login: its acceptor credentials and how names map to ids.
#[derive(Debug)]
pub struct Kerberos {
    cred: Cred,
    /// The principal it accepts tickets for (`zookeeper/host@REALM`).
    pub principal: String,
    /// How clients' principals map to ids; None: a member's id is its principal, as
    /// ZooKeeper's quorum server takes it.
    pub names: Option<Names>,
}

/// Where a server's Kerberos login comes from: a `Krb5LoginModule` entry's options and the
/// JVM properties that go with them.
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    /// `principal=`.
    pub principal: Option<String>,
    /// `keyTab=` with `useKeyTab=true`.
    pub keytab: Option<PathBuf>,
    /// `useTicketCache=true`: an initiator takes its ticket from the cache (`ticketCache=`,
    /// else the default one) rather than from a keytab.
    pub ticket_cache: Option<Option<PathBuf>>,
    /// `java.security.krb5.conf`.
    pub krb5_conf: Option<PathBuf>,
}

impl LoginOptions {
    /// The options of a `Krb5LoginModule` entry.
    pub fn from_entry(options: &[(String, String)]) -> LoginOptions {
        let get = |k: &str| {
            options
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let use_keytab = get("useKeyTab").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let use_cache = get("useTicketCache").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        LoginOptions {
            principal: get("principal"),
            keytab: get("keyTab").filter(|_| use_keytab).map(PathBuf::from),
            ticket_cache: use_cache.then(|| get("ticketCache").map(PathBuf::from)),
            krb5_conf: None,
        }
    }
}

impl Kerberos {
    /// Logs in: the acceptor credentials of the principal from the keytab (see
    /// [`acquire`]).
    pub fn login(options: &LoginOptions, names: Option<Names>) -> Result<Kerberos, SaslError> {
        let (cred, principal) = acquire(options, CredUsage::Accept)?;
        Ok(Kerberos {
            cred,
            principal,
            names,
        })
    }
}

/// The credentials of a login's principal: to accept tickets for it with its key from the
/// keytab (`KRB5_KTNAME`), or to ask for tickets as it, from its keytab (MIT's client keytab,
/// `KRB5_CLIENT_KTNAME`, the tickets in a `MEMORY:` cache) or a ticket cache. The process's
/// environment is set for MIT's library (`KRB5_CONFIG` too, with `java.security.krb5.conf`),
/// so this runs at start, before the server's threads; each credential keeps the keytab it
/// was acquired with.
fn acquire(options: &LoginOptions, usage: CredUsage) -> Result<(Cred, String), SaslError> {
    let accept = matches!(usage, CredUsage::Accept);
    let fail = |reason: String| SaslError::Gssapi(format!("login failed: {reason}"));
    let principal = options
        .principal
        .clone()
        .ok_or_else(|| fail("Krb5LoginModule needs a principal option".into()))?;
    if let Some(conf) = &options.krb5_conf {
        std::env::set_var("KRB5_CONFIG", conf);
    }
    match (&options.keytab, &options.ticket_cache) {
        (Some(keytab), _) => {
            if !keytab.is_file() {
                return Err(fail(format!("keytab {} is not a file", keytab.display())));
            }
            let file = format!("FILE:{}", keytab.display());
            if accept {
                std::env::set_var("KRB5_KTNAME", file);
            } else {
                std::env::set_var("KRB5_CLIENT_KTNAME", file);
                // The tickets it gets with the keytab stay in this process.
                std::env::set_var("KRB5CCNAME", "MEMORY:zkrs-quorum-learner");
            }
        }
        (None, Some(Some(cache))) if !accept => std::env::set_var("KRB5CCNAME", cache),
        (None, _) => {}
    }
    let name = Name::new(principal.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL))
        .map_err(|e| fail(format!("principal {principal}: {e}")))?;
    let mut mechs = OidSet::new();
    mechs.add(GSS_MECH_KRB5).map_err(|e| fail(e.to_string()))?;
    let cred = Cred::acquire(Some(&name), None, usage, Some(&mechs))
        .map_err(|e| fail(format!("no credentials for {principal}: {e}")))?;
    Ok((cred, principal))
}

/// One connection's GSSAPI exchange (Java's `GssKrb5Server`).
#[derive(Default)]
pub enum Gssapi {
    /// Establishing the context: the client's tokens go to `gss_accept_sec_context`.
    #[default]
    Start,
    Accepting(Box<ServerCtx>),
    /// The context is established and its last token went out; the client answers with an
    /// empty token.
    Established(Box<ServerCtx>, String),
    /// The security layer offer went out; the client answers with its choice (wrapped).
    Offered(Box<ServerCtx>, String),
    Complete,
}

impl std::fmt::Debug for Gssapi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Gssapi::Start => "Start",
            Gssapi::Accepting(_) => "Accepting",
            Gssapi::Established(..) => "Established",
            Gssapi::Offered(..) => "Offered",
            Gssapi::Complete => "Complete",
        })
    }
}

/// A wrapped security layer message (RFC 4752 3.1): its layer bits, buffer size (and the
/// client's authorization id). Only the `auth` layer (no protection) is spoken.
fn unwrap_layers(
    ctx: &mut impl SecurityContext,
    token: &[u8],
    what: &str,
) -> Result<Vec<u8>, SaslError> {
    let plain = ctx.unwrap(token).map_err(|e| gss("unwrap", e))?;
    if plain.len() < 4 {
        return Err(SaslError::Gssapi(format!("{what} is short")));
    }
    if plain[0] & LAYER_NONE == 0 {
        return Err(SaslError::Gssapi(format!(
            "{what} has no layer without protection: {}",
            plain[0]
        )));
    }
    Ok(plain.to_vec())
}

fn gss(what: &str, e: impl std::fmt::Display) -> SaslError {
    SaslError::Gssapi(format!("{what}: {e}"))
}

impl Gssapi {
    /// Evaluates a client's token (`SaslServer.evaluateResponse`).
    pub fn evaluate(&mut self, token: &[u8], login: &Kerberos) -> Result<Step, SaslError> {
        match std::mem::replace(self, Gssapi::Complete) {
            Gssapi::Start => self.accept(Box::new(ServerCtx::new(Some(login.cred.clone()))), token),
            Gssapi::Accepting(ctx) => self.accept(ctx, token),
            Gssapi::Established(ctx, peer) => {
                if !token.is_empty() {
                    return Err(SaslError::Gssapi(
                        "handshake expecting no response data from the client".into(),
                    ));
                }
                self.offer(ctx, peer)
            }
            Gssapi::Offered(mut ctx, peer) => {
                let plain = unwrap_layers(&mut *ctx, token, "the client's layer choice")?;
                let authzid = if plain.len() > 4 {
                    String::from_utf8(plain[4..].to_vec())
                        .map_err(|_| SaslError::Gssapi("authorization id is not UTF-8".into()))?
                } else {
                    peer.clone()
                };
                let id = match &login.names {
                    Some(names) => names.authorized_id(&peer, &authzid),
                    None => peer,
                };
                Ok(Step::Done {
                    token: None,
                    id,
                    authzid: Some(authzid),
                })
            }
            Gssapi::Complete => Err(SaslError::Complete),
        }
    }

    fn accept(&mut self, mut ctx: Box<ServerCtx>, token: &[u8]) -> Result<Step, SaslError> {
        let out = ctx
            .step(token, None)
            .map_err(|e| gss("accept_sec_context", e))?;
        if !ctx.is_complete() {
            let out = out.map(|b| b.to_vec()).unwrap_or_default();
            *self = Gssapi::Accepting(ctx);
            return Ok(Step::Challenge(out));
        }
        let peer = ctx
            .source_name()
            .map_err(|e| gss("the client's name", e))?
            .to_string();
        match out {
            Some(t) if !t.is_empty() => {
                *self = Gssapi::Established(ctx, peer);
                Ok(Step::Challenge(t.to_vec()))
            }
            _ => self.offer(ctx, peer),
        }
    }

    /// The security layers the server offers and its buffer size, wrapped.
    fn offer(&mut self, mut ctx: Box<ServerCtx>, peer: String) -> Result<Step, SaslError> {
        let mut offer = MAX_BUFFER.to_be_bytes();
        offer[0] = LAYER_NONE;
        let wrapped = ctx.wrap(false, &offer).map_err(|e| gss("wrap", e))?;
        let out = wrapped.to_vec();
        *self = Gssapi::Offered(ctx, peer);
        Ok(Step::Challenge(out))
    }
}

/// A member's Kerberos login as a learner (`QuorumLearner` with `Krb5LoginModule`): it asks
/// for tickets to `quorum.auth.kerberos.servicePrincipal` as its principal, whose key is in
/// its keytab (MIT's client keytab, `KRB5_CLIENT_KTNAME`; the tickets are kept in memory).
#[derive(Debug, Clone)]
pub struct KerberosClient {
    cred: Cred,
    /// The principal it logs in as.
    pub principal: String,
    /// `quorum.auth.kerberos.servicePrincipal` (`zkquorum/localhost`; `_HOST` is the other
    /// member's host name).
    pub service_principal: String,
}

impl KerberosClient {
    /// Logs in: initiator credentials for the principal, from the keytab (or the ticket
    /// cache with `useTicketCache`; see [`acquire`]).
    pub fn login(
        options: &LoginOptions,
        service_principal: &str,
    ) -> Result<KerberosClient, SaslError> {
        let (cred, principal) = acquire(options, CredUsage::Initiate)?;
        Ok(KerberosClient {
            cred,
            principal,
            service_principal: service_principal.to_string(),
        })
    }

    /// A new exchange with the member on `host`: its first token. It may ask the KDC for a
    /// ticket (and a TGT first), waiting on the network.
    pub fn start(&self, host: &str) -> Result<(GssapiClient, Vec<u8>), SaslError> {
        let service = service_name(&self.service_principal, host);
        let target = Name::new(service.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE))
            .map_err(|e| gss(&format!("service {service}"), e))?;
        let mut ctx = ClientCtx::new(
            Some(self.cred.clone()),
            target,
            CtxFlags::GSS_C_MUTUAL_FLAG | CtxFlags::GSS_C_CONF_FLAG | CtxFlags::GSS_C_INTEG_FLAG,
            Some(GSS_MECH_KRB5),
        );
        let first = ctx
            .step(None, None)
            .map_err(|e| gss(&format!("init_sec_context for {service}"), e))?
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let established = ctx.is_complete();
        Ok((
            GssapiClient {
                ctx: Box::new(ctx),
                established,
                complete: false,
            },
            first,
        ))
    }
}

/// The service a member on `host` is, for a learner: `quorum.auth.kerberos.servicePrincipal`
/// with `_HOST` the host in lower case (`SecurityUtils.getServerPrincipal`), as a GSSAPI
/// host-based name (`service@host`; a realm in it is left to the Kerberos configuration).
pub fn service_name(service_principal: &str, host: &str) -> String {
    let principal = service_principal.replace("_HOST", &host.to_ascii_lowercase());
    match principal.split_once('/') {
        Some((service, rest)) => {
            let host = rest.split('@').next().unwrap_or(rest);
            format!("{service}@{host}")
        }
        None => principal,
    }
}

/// Whether a member that logged in as `principal` may join (`SaslQuorumServerCallbackHandler`
/// with Kerberos): `service/host@REALM` with the host of one of the members' lines.
pub fn member_principal(principal: &str, hosts: &[String]) -> bool {
    let parts: Vec<&str> = principal.split(['/', '@']).collect();
    matches!(parts.as_slice(), [_, host, _] if hosts.iter().any(|h| h == host))
}

/// The client side of one GSSAPI exchange (Java's `GssKrb5Client`).
pub struct GssapiClient {
    ctx: Box<ClientCtx>,
    established: bool,
    /// The layer choice went out: the exchange is over on this side.
    pub complete: bool,
}

impl GssapiClient {
    /// The answer to a server's token (`SaslClient.evaluateChallenge`).
    pub fn respond(&mut self, token: &[u8]) -> Result<Vec<u8>, SaslError> {
        if !self.established {
            let out = self
                .ctx
                .step(Some(token), None)
                .map_err(|e| gss("init_sec_context", e))?;
            self.established = self.ctx.is_complete();
            return Ok(out.map(|b| b.to_vec()).unwrap_or_default());
        }
        let offer = unwrap_layers(&mut *self.ctx, token, "the server's layer offer")?;
        if offer.len() != 4 {
            return Err(SaslError::Gssapi(
                "the server's layer offer is not 4 bytes".into(),
            ));
        }
        // No security layer, the largest buffer either takes, and no authorization id (the
        // server takes the principal).
        let mut choice = MAX_BUFFER.to_be_bytes();
        choice[0] = LAYER_NONE;
        let wrapped = self.ctx.wrap(false, &choice).map_err(|e| gss("wrap", e))?;
        self.complete = true;
        Ok(wrapped.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(rules: &str) -> Names {
        Names::new(rules, "EXAMPLE.COM".into(), false, false).expect("rules")
    }

    #[test]
    fn names_parse_as_zookeeper_parses_them() {
        let n = KerberosName::parse("zookeeper/zk1@EXAMPLE.COM").expect("name");
        assert_eq!(
            n,
            KerberosName {
                service: "zookeeper",
                host: Some("zk1"),
                realm: Some("EXAMPLE.COM")
            }
        );
        assert_eq!(
            KerberosName::parse("bob").expect("bare"),
            KerberosName {
                service: "bob",
                host: None,
                realm: None
            }
        );
        assert!(KerberosName::parse("a/b/c@R").is_none());
        assert!(KerberosName::parse("a@R@S").is_none());
    }

    #[test]
    fn default_rule_keeps_host_and_realm_unless_removed() {
        let n = names("DEFAULT");
        assert_eq!(
            n.authorized_id("bob@EXAMPLE.COM", "bob@EXAMPLE.COM"),
            "bob@EXAMPLE.COM"
        );
        assert_eq!(
            n.authorized_id("svc/h1@EXAMPLE.COM", "svc/h1@EXAMPLE.COM"),
            "svc/h1@EXAMPLE.COM"
        );
        // Another realm: no rule maps it, and the authorization id stands.
        assert_eq!(
            n.authorized_id("bob@OTHER.ORG", "bob@OTHER.ORG"),
            "bob@OTHER.ORG"
        );
        let short = Names {
            remove_host: true,
            remove_realm: true,
            ..names("DEFAULT")
        };
        assert_eq!(short.authorized_id("svc/h1@EXAMPLE.COM", "x"), "svc");
        assert_eq!(short.authorized_id("bob@EXAMPLE.COM", "x"), "bob");
    }

    #[test]
    fn hadoop_rules_map_names() {
        let n =
            names("RULE:[1:$1@$0](bob@EXAMPLE.COM)s/.*/robert/ RULE:[2:$1](svc)s/v/V/g\nDEFAULT");
        assert_eq!(
            n.authorized_id("bob@EXAMPLE.COM", "x"),
            "robert@EXAMPLE.COM"
        );
        assert_eq!(n.authorized_id("svc/h@OTHER.ORG", "x"), "sVc/h@OTHER.ORG");
        assert_eq!(n.authorized_id("amy@EXAMPLE.COM", "x"), "amy@EXAMPLE.COM");
        // A rule giving a name with @ maps nothing: the authorization id stands.
        let n = names("RULE:[1:$1@$0]");
        assert_eq!(n.authorized_id("bob@EXAMPLE.COM", "authz"), "authz");
        // $ groups in the replacement, Java style.
        let n = names("RULE:[1:$1](b.b)s/b(o)b/x$1y/");
        assert_eq!(n.authorized_id("bob@EXAMPLE.COM", "x"), "xoy@EXAMPLE.COM");
        assert!(Names::new("RULE:[x:$1]", String::new(), false, false).is_err());
        assert!(Names::new("NONSENSE", String::new(), false, false).is_err());
    }

    #[test]
    fn learners_ask_for_the_service_on_the_members_host() {
        assert_eq!(
            service_name("zkquorum/_HOST", "ZK1.Example.COM"),
            "zkquorum@zk1.example.com"
        );
        assert_eq!(
            service_name("zkquorum/localhost", "zk2"),
            "zkquorum@localhost"
        );
        assert_eq!(
            service_name("zkquorum/_HOST@EXAMPLE.COM", "zk3"),
            "zkquorum@zk3"
        );
        assert_eq!(service_name("zkquorum", "zk3"), "zkquorum");
    }

    #[test]
    fn members_are_principals_of_members_hosts() {
        let hosts = vec!["zk1".to_string(), "127.0.0.1".to_string()];
        assert!(member_principal("zkquorum/zk1@EXAMPLE.COM", &hosts));
        assert!(member_principal("zkquorum/127.0.0.1@EXAMPLE.COM", &hosts));
        assert!(!member_principal("zkquorum/zk9@EXAMPLE.COM", &hosts));
        assert!(!member_principal("zkquorum@EXAMPLE.COM", &hosts));
        assert!(!member_principal("zkquorum/zk1/x@EXAMPLE.COM", &hosts));
    }

    #[test]
    fn default_realm_comes_from_libdefaults() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("krb5.conf");
        std::fs::write(
            &path,
            "[realms]\n default_realm = NOT.THIS\n[libdefaults]\n  dns_lookup_kdc = false\n  default_realm = EXAMPLE.COM\n",
        )
        .expect("write");
        assert_eq!(default_realm(&path), "EXAMPLE.COM");
        assert_eq!(default_realm(&dir.path().join("none")), "");
    }
}
