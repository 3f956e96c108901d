//! SASL client authentication (opcode 102), as ZooKeeper's server does it with a JAAS `Server`
//! section of `DigestLoginModule` users: the DIGEST-MD5 mechanism (RFC 2831, qop `auth`),
//! service `zookeeper`, server name and realm `zk-sasl-md5`. A client that completes it holds
//! the id `sasl:<username>` (and `super:` when the name is a `zookeeper.superUser`).
//!
//! The JAAS file is ZooKeeper's own (`java.security.auth.login.config`, e.g. passed as
//! `-Djava.security.auth.login.config=...` in `SERVER_JVMFLAGS`):
//!
//! ```text
//! Server {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     user_super="adminsecret"
//!     user_bob="bobsecret";
//! };
//! ```

use md5::{Digest, Md5};
use std::collections::HashMap;
use std::path::Path;

/// The login module whose `user_<name>="<password>"` options are the server's users.
pub const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";
/// A DIGEST-MD5 service: the protocol and server name a `digest-uri` names (the server name
/// is also the realm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub protocol: &'static str,
    pub server_name: &'static str,
}

/// Clients authenticating to a server (`zookeeper/zk-sasl-md5`).
pub const CLIENTS: Service = Service {
    protocol: "zookeeper",
    server_name: "zk-sasl-md5",
};
/// A member authenticating to another (`zookeeper-quorum/zk-quorum-sasl-md5`,
/// `quorum.auth.enableSasl`).
pub const QUORUM: Service = Service {
    protocol: "zookeeper-quorum",
    server_name: "zk-quorum-sasl-md5",
};

impl Default for Service {
    fn default() -> Self {
        CLIENTS
    }
}
/// The longest response a client may send (Java's DIGEST-MD5 server refuses longer ones).
const MAX_RESPONSE: usize = 4096;

/// Why a JAAS file or a client's SASL exchange was refused. Every refusal of a client is
/// ZooKeeper's AUTHFAILED (SESSIONCLOSEDREQUIRESASLAUTH where SASL is required).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SaslError {
    #[error("JAAS file {path}: {reason}")]
    Jaas { path: String, reason: String },
    #[error("JAAS file line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("DIGEST-MD5: digest response format violation: {0}")]
    Format(String),
    #[error("DIGEST-MD5: cannot acquire password for {0}")]
    UnknownUser(String),
    #[error("DIGEST-MD5: mismatched response (wrong password)")]
    Mismatch,
    #[error("DIGEST-MD5: authentication already complete")]
    Complete,
    #[error("SASL: {0} is not authorized as {1}")]
    Unauthorized(String, String),
    #[error("DIGEST-MD5: the server's rspauth does not match (it does not know our password)")]
    ServerMismatch,
    #[error("GSSAPI: {0}")]
    Gssapi(String),
}

impl SaslError {
    /// The error code a client is answered with (before its connection is closed).
    pub fn code(&self, sasl_required: bool) -> jute::ZkError {
        if sasl_required {
            jute::ZkError::SessionClosedRequireSaslAuth
        } else {
            jute::ZkError::AuthFailed
        }
    }
}

/// One login module line of a JAAS section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasEntry {
    pub module: String,
    pub flag: String,
    pub options: Vec<(String, String)>,
}

/// A JAAS configuration file: named sections of login module entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jaas {
    pub sections: Vec<(String, Vec<JaasEntry>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Punct(char),
}

/// Java's `ConfigFile` tokens: words, `"quoted"` strings (backslash escapes), `{ } ; =`,
/// with `//` and `/* */` comments.
fn tokenize(text: &str) -> Result<Vec<(usize, Tok)>, SaslError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let syntax = |line, reason: &str| SaslError::Syntax {
        line,
        reason: reason.into(),
    };
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                loop {
                    let Some(c) = chars.next() else {
                        return Err(syntax(line, "unterminated comment"));
                    };
                    if c == '\n' {
                        line += 1;
                    }
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(syntax(start, "unterminated quoted string")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err(syntax(start, "unterminated quoted string")),
                        },
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c);
                        }
                    }
                }
                out.push((start, Tok::Quoted(s)));
            }
            '{' | '}' | ';' | '=' => out.push((line, Tok::Punct(c))),
            _ => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '=' | '"') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push((line, Tok::Word(s)));
            }
        }
    }
    Ok(out)
}

impl Jaas {
    pub fn parse(text: &str) -> Result<Jaas, SaslError> {
        let toks = tokenize(text)?;
        let mut it = toks.into_iter().peekable();
        let mut jaas = Jaas::default();
        let last_line = text.lines().count().max(1);
        let syntax = |line, reason: String| SaslError::Syntax { line, reason };
        let word = |t: Option<(usize, Tok)>, what: &str| match t {
            Some((_, Tok::Word(w))) => Ok(w),
            Some((line, t)) => Err(syntax(line, format!("expected {what}, found {t:?}"))),
            None => Err(syntax(last_line, format!("expected {what}, found the end"))),
        };
        let punct = |t: Option<(usize, Tok)>, p: char| match t {
            Some((_, Tok::Punct(c))) if c == p => Ok(()),
            Some((line, t)) => Err(syntax(line, format!("expected '{p}', found {t:?}"))),
            None => Err(syntax(last_line, format!("expected '{p}', found the end"))),
        };
        while it.peek().is_some() {
            let name = word(it.next(), "a section name")?;
            punct(it.next(), '{')?;
            let mut entries = Vec::new();
            loop {
                if let Some((_, Tok::Punct('}'))) = it.peek() {
                    it.next();
                    break;
                }
                let module = word(it.next(), "a login module class")?;
                let flag = word(it.next(), "a control flag")?;
                let line = it.peek().map_or(last_line, |t| t.0);
                if !["required", "requisite", "sufficient", "optional"]
                    .contains(&flag.to_ascii_lowercase().as_str())
                {
                    return Err(syntax(line, format!("invalid control flag {flag}")));
                }
                let mut options = Vec::new();
                loop {
                    match it.next() {
                        Some((_, Tok::Punct(';'))) => break,
                        Some((_, Tok::Word(key))) => {
                            punct(it.next(), '=')?;
                            let value = match it.next() {
                                Some((_, Tok::Word(v) | Tok::Quoted(v))) => v,
                                Some((line, t)) => {
                                    return Err(syntax(
                                        line,
                                        format!("expected a value, found {t:?}"),
                                    ))
                                }
                                None => return Err(syntax(last_line, "expected a value".into())),
                            };
                            options.push((key, value));
                        }
                        Some((line, t)) => {
                            return Err(syntax(line, format!("expected an option, found {t:?}")))
                        }
                        None => return Err(syntax(last_line, "expected ';'".into())),
                    }
                }
                entries.push(JaasEntry {
                    module,
                    flag,
                    options,
                });
            }
            punct(it.next(), ';')?;
            jaas.sections.push((name, entries));
        }
        Ok(jaas)
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Jaas, SaslError> {
        let text = std::fs::read_to_string(path).map_err(|e| jaas_error(path, e.to_string()))?;
        Jaas::parse(&text).map_err(|e| jaas_error(path, e.to_string()))
    }

    pub fn section(&self, name: &str) -> Option<&[JaasEntry]> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.as_slice())
    }
}

fn jaas_error(path: &Path, reason: String) -> SaslError {
    SaslError::Jaas {
        path: path.display().to_string(),
        reason,
    }
}

/// SASL between members (`quorum.auth.enableSasl`), as ZooKeeper's SaslQuorumAuthServer and
/// SaslQuorumAuthLearner do it with `DigestLoginModule`: a member that connects to another
/// (an election connection, or a learner's to its leader) logs in with the JAAS
/// `QuorumLearner` section's `username`/`password`, and the member it reaches checks them
/// against its `QuorumServer` section's `user_<name>` entries.
///
/// ```text
/// QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule required user_test="test"; };
/// QuorumLearner { org.apache.zookeeper.server.auth.DigestLoginModule required
///                 username="test" password="test"; };
/// ```
#[derive(Debug)]
pub struct QuorumSasl {
    /// The users members may log in as (`quorum.auth.server.saslLoginContext`), or its
    /// Kerberos login.
    pub server: Login,
    /// Whom this member logs in as (`quorum.auth.learner.saslLoginContext`).
    pub learner: QuorumLearner,
    /// `quorum.auth.serverRequireSasl`: a member that does not log in, or fails to, is
    /// turned away (without it, both are let through, for a rolling upgrade).
    pub server_required: bool,
    /// `quorum.auth.learnerRequireSasl`: this member logs in when it connects.
    pub learner_required: bool,
    /// With Kerberos, the hosts of the members' lines: a member logging in must be
    /// `<service>/<one of them>@<REALM>` (`SaslQuorumServerCallbackHandler`'s `authzHosts`).
    pub authz_hosts: Vec<String>,
}

/// How a member logs in to another.
#[derive(Debug)]
pub enum QuorumLearner {
    /// DIGEST-MD5 with the `QuorumLearner` section's `username` and `password`.
    Digest(DigestClient),
    /// Kerberos (`Krb5LoginModule`): GSSAPI to `quorum.auth.kerberos.servicePrincipal`.
    Kerberos(crate::kerberos::KerberosClient),
}

impl QuorumLearner {
    /// Whom it logs in as.
    pub fn name(&self) -> &str {
        match self {
            QuorumLearner::Digest(d) => &d.user,
            QuorumLearner::Kerberos(k) => &k.principal,
        }
    }
}

/// What a quorum Kerberos login needs besides its JAAS sections.
#[derive(Debug, Clone, Default)]
pub struct QuorumKerberos {
    /// `java.security.krb5.conf`.
    pub krb5_conf: Option<std::path::PathBuf>,
    /// `quorum.auth.kerberos.servicePrincipal`.
    pub service_principal: String,
    /// The hosts of the members' lines.
    pub authz_hosts: Vec<String>,
}

impl QuorumSasl {
    /// Both sections of the JAAS file at `path`, logged in. Either missing, or holding
    /// another login module, stops the server, as ZooKeeper's failed login does. Sections of
    /// `Krb5LoginModule` log in with Kerberos (see [`crate::kerberos`]).
    pub fn load(
        path: &Path,
        server_section: &str,
        learner_section: &str,
        server_required: bool,
        learner_required: bool,
        kerberos: &QuorumKerberos,
    ) -> Result<QuorumSasl, SaslError> {
        let jaas = Jaas::read(path)?;
        let section = |name: &str| {
            jaas.section(name).filter(|e| !e.is_empty()).ok_or_else(|| {
                jaas_error(
                    path,
                    format!("quorum SASL needs a section {name}, and there is none"),
                )
            })
        };
        let mut server = Login::from_entries(section(server_section)?)
            .map_err(|reason| section_error(path, server_section, reason))?;
        server.service = QUORUM;
        if let Some(mut options) = server.krb5.clone() {
            options.krb5_conf = kerberos.krb5_conf.clone();
            let login = crate::kerberos::Kerberos::login(&options, None)?;
            server.kerberos = Some(std::sync::Arc::new(login));
        }
        let entries = section(learner_section)?;
        let learner = match entries
            .iter()
            .find(|e| e.module == crate::kerberos::KRB5_LOGIN_MODULE)
        {
            Some(e) => {
                let mut options = crate::kerberos::LoginOptions::from_entry(&e.options);
                options.krb5_conf = kerberos.krb5_conf.clone();
                QuorumLearner::Kerberos(crate::kerberos::KerberosClient::login(
                    &options,
                    &kerberos.service_principal,
                )?)
            }
            None => QuorumLearner::Digest(digest_learner(path, learner_section, entries)?),
        };
        Ok(QuorumSasl {
            server,
            learner,
            server_required,
            learner_required,
            authz_hosts: kerberos.authz_hosts.clone(),
        })
    }

    /// Whether a member that completed a login as `id`, asking to act as `authzid`, may
    /// join (`SaslQuorumServerCallbackHandler`): the same name, and with Kerberos a
    /// `service/host@REALM` whose host is a member's.
    pub fn authorized(&self, id: &str, authzid: Option<&str>) -> Result<(), SaslError> {
        if let Some(z) = authzid.filter(|z| *z != id) {
            return Err(SaslError::Unauthorized(id.to_string(), z.to_string()));
        }
        if self.server.kerberos.is_none() {
            return Ok(());
        }
        if crate::kerberos::member_principal(id, &self.authz_hosts) {
            Ok(())
        } else {
            Err(SaslError::Unauthorized(
                id.to_string(),
                "a member (its host is not in the membership)".into(),
            ))
        }
    }
}

/// A `QuorumLearner` section of `DigestLoginModule`: whom the member logs in as.
fn digest_learner(
    path: &Path,
    learner_section: &str,
    entries: &[JaasEntry],
) -> Result<DigestClient, SaslError> {
    let mut user = None;
    let mut password = None;
    for e in entries {
        if e.module != DIGEST_LOGIN_MODULE {
            return Err(section_error(path, learner_section, unsupported(&e.module)));
        }
        for (k, v) in &e.options {
            match k.as_str() {
                "username" => user = Some(v.clone()),
                "password" => password = Some(v.clone()),
                _ => {}
            }
        }
    }
    let (Some(user), Some(password)) = (user, password) else {
        return Err(section_error(
            path,
            learner_section,
            "needs username and password options".into(),
        ));
    };
    Ok(DigestClient {
        authzid: Some(user.clone()),
        user,
        password,
        service: QUORUM,
    })
}

fn section_error(path: &Path, section: &str, reason: String) -> SaslError {
    jaas_error(path, format!("section {section}: {reason}"))
}

fn unsupported(module: &str) -> String {
    format!(
        "login module {module} is not supported (only {DIGEST_LOGIN_MODULE}: DIGEST-MD5, and \
         for clients {}: GSSAPI)",
        crate::kerberos::KRB5_LOGIN_MODULE
    )
}

/// The server side of SASL: its users, and who among them is super.
#[derive(Debug, Clone, Default)]
pub struct Login {
    users: HashMap<String, String>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: the password of `super`.
    pub super_password: Option<String>,
    /// `zookeeper.superUser` (and `zookeeper.superUser.*`): authenticated ids that are super.
    pub super_users: Vec<String>,
    /// Whom the users authenticate to: clients to the server, or members to one another.
    pub service: Service,
    /// The options of a `Krb5LoginModule` entry: the section logs in with Kerberos, and its
    /// clients authenticate with GSSAPI (ZooKeeper's choice for a subject with a principal).
    pub krb5: Option<crate::kerberos::LoginOptions>,
    /// That login, once made (at start).
    pub kerberos: Option<std::sync::Arc<crate::kerberos::Kerberos>>,
}

impl Login {
    /// The users of `section` in the JAAS file at `path`; None when the file has no such
    /// section (ZooKeeper then runs without SASL). A file that cannot be read or parsed, or
    /// a section with another login module (Kerberos), stops the server, as ZooKeeper's
    /// failed login does.
    pub fn load(path: &Path, section: &str) -> Result<Option<Login>, SaslError> {
        let jaas = Jaas::read(path)?;
        let Some(entries) = jaas.section(section) else {
            return Ok(None);
        };
        Login::from_entries(entries)
            .map(Some)
            .map_err(|reason| section_error(path, section, reason))
    }

    fn from_entries(entries: &[JaasEntry]) -> Result<Login, String> {
        let mut users = HashMap::new();
        let mut krb5 = None;
        for e in entries {
            if e.module == crate::kerberos::KRB5_LOGIN_MODULE {
                krb5 = Some(crate::kerberos::LoginOptions::from_entry(&e.options));
                continue;
            }
            if e.module != DIGEST_LOGIN_MODULE {
                return Err(unsupported(&e.module));
            }
            for (k, v) in &e.options {
                if let Some(user) = k.strip_prefix("user_") {
                    users.insert(user.to_string(), v.clone());
                }
            }
        }
        Ok(Login {
            users,
            krb5,
            ..Login::default()
        })
    }

    /// The password a user authenticates with (SaslServerCallbackHandler's rules).
    fn password(&self, user: &str) -> Option<&str> {
        let stored = self.users.get(user)?;
        match (&self.super_password, user) {
            (Some(p), "super") => Some(p),
            _ => Some(stored),
        }
    }

    pub fn is_super(&self, id: &str) -> bool {
        !id.is_empty() && self.super_users.iter().any(|s| s == id)
    }
}

/// Is `id` a valid `sasl` ACL id (a Kerberos-style name: `user[/host][@REALM]`)?
pub fn id_valid(id: &str) -> bool {
    if !id.contains('@') {
        return true;
    }
    // `([^/@]*)(/([^/@]*))?@([^/@]*)`
    let Some((principal, realm)) = id.split_once('@') else {
        return true;
    };
    !realm.contains(['@', '/']) && principal.split('/').count() <= 2
}

/// One connection's DIGEST-MD5 exchange.
#[derive(Debug, Default)]
pub enum DigestMd5 {
    /// Waiting for the client's first token (empty from DIGEST-MD5 clients; Java's server
    /// ignores what it holds, and so does this one).
    #[default]
    Start,
    /// The challenge went out with this nonce.
    Challenged {
        nonce: String,
    },
    Complete,
}

/// What a step of the exchange answers.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A token for the client; the exchange goes on.
    Challenge(Vec<u8>),
    /// The last token (`rspauth=...`; none for GSSAPI), the id the client authenticated as
    /// and the authorization id it asked for, if any.
    Done {
        token: Option<Vec<u8>>,
        id: String,
        authzid: Option<String>,
    },
}

impl DigestMd5 {
    /// Evaluates a client's token (Java's `SaslServer.evaluateResponse`).
    pub fn evaluate(&mut self, token: &[u8], login: &Login) -> Result<Step, SaslError> {
        match std::mem::replace(self, DigestMd5::Complete) {
            DigestMd5::Start => {
                let nonce = new_nonce();
                let realm = login.service.server_name;
                let challenge =
                    format!("realm=\"{realm}\",nonce=\"{nonce}\",charset=utf-8,algorithm=md5-sess");
                *self = DigestMd5::Challenged { nonce };
                Ok(Step::Challenge(challenge.into_bytes()))
            }
            DigestMd5::Challenged { nonce } => verify(token, &nonce, login),
            DigestMd5::Complete => Err(SaslError::Complete),
        }
    }
}

/// One connection's SASL exchange, in the mechanism the server's login makes it speak.
#[derive(Debug)]
pub enum Exchange {
    Digest(DigestMd5),
    Gssapi(crate::kerberos::Gssapi),
}

impl Exchange {
    /// GSSAPI where the server logs in with Kerberos, DIGEST-MD5 otherwise.
    pub fn new(login: &Login) -> Exchange {
        match login.kerberos {
            Some(_) => Exchange::Gssapi(crate::kerberos::Gssapi::default()),
            None => Exchange::Digest(DigestMd5::default()),
        }
    }

    pub fn is_gssapi(&self) -> bool {
        matches!(self, Exchange::Gssapi(_))
    }

    pub fn evaluate(&mut self, token: &[u8], login: &Login) -> Result<Step, SaslError> {
        match (self, &login.kerberos) {
            (Exchange::Gssapi(g), Some(k)) => g.evaluate(token, k),
            (Exchange::Digest(d), _) => d.evaluate(token, login),
            (Exchange::Gssapi(_), None) => Err(SaslError::Complete),
        }
    }
}

/// 30 random bytes, base64 (40 characters, as Java's server makes them).
fn new_nonce() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 30];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness: a nonce that is at least never repeated within this process.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mixed = Md5::digest(seed.to_le_bytes());
        bytes[..16].copy_from_slice(&mixed);
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// RFC 2831's directives: `name=token` or `name="quoted"`, comma separated.
fn directives(text: &str) -> Result<HashMap<String, String>, SaslError> {
    let fmt = |s: &str| SaslError::Format(s.to_string());
    let mut out = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            name.push(c.to_ascii_lowercase());
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(fmt(&format!("directive {name} has no value")));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(fmt("unterminated quoted value")),
                    Some('"') => break,
                    Some('\\') => value.push(chars.next().ok_or_else(|| fmt("bad escape"))?),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if out.insert(name.clone(), value).is_some() {
            return Err(fmt(&format!("directive {name} repeated")));
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 2831 2.1.2.1: with `charset=utf-8`, a value whose characters all fit ISO 8859-1 is
/// hashed in ISO 8859-1; any other in UTF-8.
fn latin1_or_utf8(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) < 256) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

/// The client's response to the challenge: checked as Java's DIGEST-MD5 server checks it,
/// and answered with `rspauth`.
fn verify(token: &[u8], nonce: &str, login: &Login) -> Result<Step, SaslError> {
    let fmt = |s: &str| SaslError::Format(s.to_string());
    if token.len() > MAX_RESPONSE {
        return Err(fmt("response longer than 4096 bytes"));
    }
    let text = std::str::from_utf8(token).map_err(|_| fmt("response is not UTF-8"))?;
    let d = directives(text)?;
    let get = |k: &str| d.get(k).map(String::as_str);
    if get("charset").is_some_and(|c| !c.eq_ignore_ascii_case("utf-8")) {
        return Err(fmt("incompatible charset"));
    }
    let username = get("username").ok_or_else(|| fmt("missing username"))?;
    let service = login.service;
    let realm = get("realm").unwrap_or("");
    if !realm.is_empty() && realm != service.server_name {
        return Err(fmt(&format!("nonexistent realm {realm}")));
    }
    if get("nonce") != Some(nonce) {
        return Err(fmt("mismatched nonce"));
    }
    let cnonce = get("cnonce").ok_or_else(|| fmt("missing cnonce"))?;
    let nc = get("nc").unwrap_or("");
    if u32::from_str_radix(nc, 16) != Ok(1) {
        return Err(fmt("nonce count does not match"));
    }
    let qop = get("qop").unwrap_or("auth");
    if qop != "auth" {
        return Err(fmt(&format!("invalid qop {qop}")));
    }
    let uri = get("digest-uri").ok_or_else(|| fmt("missing digest-uri"))?;
    match uri.split_once('/') {
        Some((protocol, host))
            if protocol.eq_ignore_ascii_case(service.protocol)
                && host.eq_ignore_ascii_case(service.server_name) => {}
        _ => return Err(fmt("digest-uri mismatch")),
    }
    let response = get("response").ok_or_else(|| fmt("missing response"))?;
    let authzid = get("authzid");
    let password = login
        .password(username)
        .ok_or_else(|| SaslError::UnknownUser(username.to_string()))?;
    let (expected, rspauth) = Digests {
        username,
        realm,
        password,
        nonce,
        cnonce,
        authzid,
        nc,
        uri,
    }
    .compute();
    if !constant_eq(
        expected.as_bytes(),
        response.to_ascii_lowercase().as_bytes(),
    ) {
        return Err(SaslError::Mismatch);
    }
    Ok(Step::Done {
        token: Some(format!("rspauth={rspauth}").into_bytes()),
        id: username.to_string(),
        authzid: authzid.map(str::to_string),
    })
}

/// What RFC 2831's digests are computed from (qop `auth`, algorithm `md5-sess`).
struct Digests<'a> {
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    nonce: &'a str,
    cnonce: &'a str,
    authzid: Option<&'a str>,
    nc: &'a str,
    uri: &'a str,
}

impl Digests<'_> {
    /// The client's `response` and the server's `rspauth`, in lower-case hex.
    fn compute(&self) -> (String, String) {
        let mut inner = Md5::new();
        inner.update(latin1_or_utf8(self.username));
        inner.update(b":");
        inner.update(latin1_or_utf8(self.realm));
        inner.update(b":");
        inner.update(latin1_or_utf8(self.password));
        let mut a1 = Md5::new();
        a1.update(inner.finalize());
        a1.update(format!(":{}:{}", self.nonce, self.cnonce));
        if let Some(z) = self.authzid {
            a1.update(b":");
            a1.update(z.as_bytes());
        }
        let ha1 = hex(&a1.finalize());
        let digest = |a2: &str| {
            let ha2 = hex(&Md5::digest(a2.as_bytes()));
            let (nonce, nc, cnonce) = (self.nonce, self.nc, self.cnonce);
            hex(&Md5::digest(
                format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}").as_bytes(),
            ))
        };
        (
            digest(&format!("AUTHENTICATE:{}", self.uri)),
            digest(&format!(":{}", self.uri)),
        )
    }
}

/// The client side of DIGEST-MD5 (as Java's `SaslClient` does it for ZooKeeper): a user, its
/// password and the authorization id it asks for (Java's client asks for its own name).
#[derive(Debug, Clone)]
pub struct DigestClient {
    pub user: String,
    pub password: String,
    pub authzid: Option<String>,
    pub service: Service,
}

impl DigestClient {
    /// The response to the server's challenge, and the `rspauth` the server must answer with.
    pub fn respond(&self, challenge: &[u8]) -> Result<(Vec<u8>, String), SaslError> {
        self.respond_with(challenge, &new_nonce())
    }

    fn respond_with(&self, challenge: &[u8], cnonce: &str) -> Result<(Vec<u8>, String), SaslError> {
        let fmt = |s: &str| SaslError::Format(s.to_string());
        let text = std::str::from_utf8(challenge).map_err(|_| fmt("challenge is not UTF-8"))?;
        let d = directives(text)?;
        let get = |k: &str| d.get(k).map(String::as_str);
        let nonce = get("nonce").ok_or_else(|| fmt("challenge without a nonce"))?;
        if get("algorithm") != Some("md5-sess") {
            return Err(fmt("challenge without algorithm=md5-sess"));
        }
        if !get("qop")
            .unwrap_or("auth")
            .split(',')
            .any(|q| q.trim() == "auth")
        {
            return Err(fmt("the server offers no qop auth"));
        }
        let realm = get("realm").unwrap_or(self.service.server_name);
        let uri = format!("{}/{}", self.service.protocol, self.service.server_name);
        let nc = "00000001";
        let authzid = self.authzid.as_deref();
        let (response, rspauth) = Digests {
            username: &self.user,
            realm,
            password: &self.password,
            nonce,
            cnonce,
            authzid,
            nc,
            uri: &uri,
        }
        .compute();
        let quote = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        let z = authzid
            .map(|z| format!(",authzid=\"{}\"", quote(z)))
            .unwrap_or_default();
        let token = format!(
            "charset=utf-8,username=\"{}\",realm=\"{}\",nonce=\"{}\",nc={nc},cnonce=\"{}\",\
             digest-uri=\"{uri}\",maxbuf=65536,response={response},qop=auth{z}",
            quote(&self.user),
            quote(realm),
            quote(nonce),
            quote(cnonce),
        );
        Ok((token.into_bytes(), rspauth))
    }

    /// Checks the server's last token (`rspauth=...`) against what `respond` expected.
    pub fn check_rspauth(token: &[u8], expected: &str) -> Result<(), SaslError> {
        let got = std::str::from_utf8(token)
            .ok()
            .and_then(|t| directives(t).ok())
            .and_then(|d| d.get("rspauth").cloned())
            .ok_or_else(|| SaslError::Format("no rspauth from the server".into()))?;
        if constant_eq(got.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(SaslError::ServerMismatch)
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAAS: &str = r#"
// the server's users
Server {
       org.apache.zookeeper.server.auth.DigestLoginModule required
       user_super="adminsecret"
       user_bob="bob\"secret";
};
/* the client side, ignored by the server */
Client {
  org.apache.zookeeper.server.auth.DigestLoginModule required username="bob" password=x;
};
"#;

    fn login() -> Login {
        let jaas = Jaas::parse(JAAS).expect("parses");
        Login::from_entries(jaas.section("Server").expect("Server")).expect("digest users")
    }

    #[test]
    fn jaas_sections_and_options() {
        let jaas = Jaas::parse(JAAS).expect("parses");
        assert_eq!(jaas.sections.len(), 2);
        let client = jaas.section("Client").expect("Client");
        assert_eq!(client[0].flag, "required");
        assert_eq!(
            client[0].options,
            vec![
                ("username".into(), "bob".into()),
                ("password".into(), "x".into())
            ]
        );
        let l = login();
        assert_eq!(l.password("bob"), Some("bob\"secret"));
        assert_eq!(l.password("nobody"), None);
        assert!(jaas.section("Other").is_none());
    }

    #[test]
    fn jaas_errors_name_the_line() {
        for (text, line) in [
            ("Server {\n x.Y required a=\"b\"\n};", 3),
            ("Server {\n x.Y maybe;\n};", 2),
            ("Server {\n x.Y required a=\"open;\n};", 2),
            ("Server \n x.Y required;\n};", 2),
            ("/* never closed", 1),
        ] {
            match Jaas::parse(text) {
                Err(SaslError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let krb = Jaas::parse(
            "Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true \
             keyTab=\"/k.keytab\" principal=\"zookeeper/h@R\"; };",
        )
        .expect("parses");
        let login = Login::from_entries(krb.section("Server").expect("Server")).expect("login");
        let krb5 = login.krb5.expect("a Kerberos login");
        assert_eq!(krb5.principal.as_deref(), Some("zookeeper/h@R"));
        assert_eq!(krb5.keytab.as_deref(), Some(Path::new("/k.keytab")));
        let other = Jaas::parse("Server { com.example.Other required; };").expect("parses");
        let err = Login::from_entries(other.section("Server").expect("Server")).unwrap_err();
        assert!(err.contains("com.example.Other is not supported"), "{err}");
    }

    /// A client's response to `challenge` (with a fixed cnonce).
    fn client_response(
        challenge: &str,
        user: &str,
        password: &str,
        authzid: Option<&str>,
    ) -> String {
        let client = DigestClient {
            user: user.into(),
            password: password.into(),
            authzid: authzid.map(str::to_string),
            service: CLIENTS,
        };
        let (token, _) = client
            .respond_with(challenge.as_bytes(), "OA6MHXh6VqTrRk")
            .expect("responds");
        String::from_utf8(token).expect("text")
    }

    /// RFC 2831 section 4's example exchange.
    #[test]
    fn digests_match_the_rfc_example() {
        let (response, rspauth) = Digests {
            username: "chris",
            realm: "elwood.innosoft.com",
            password: "secret",
            nonce: "OA6MG9tEQGm2hh",
            cnonce: "OA6MHXh6VqTrRk",
            authzid: None,
            nc: "00000001",
            uri: "imap/elwood.innosoft.com",
        }
        .compute();
        assert_eq!(response, "d388dad90d4bbd760a152321f2143af7");
        assert_eq!(rspauth, "ea40f60335c427b5527b84dbabcdfffd");
    }

    #[test]
    fn a_client_and_a_quorum_server_complete_and_check_rspauth() {
        let jaas = Jaas::parse("QuorumServer { org.apache.zookeeper.server.auth.DigestLoginModule required user_test=\"s3\"; };").expect("parses");
        let mut l =
            Login::from_entries(jaas.section("QuorumServer").expect("section")).expect("users");
        l.service = QUORUM;
        let client = |password: &str| DigestClient {
            user: "test".into(),
            password: password.into(),
            authzid: Some("test".into()),
            service: QUORUM,
        };
        let mut m = DigestMd5::default();
        let c = challenge(&mut m, &l);
        assert!(c.starts_with("realm=\"zk-quorum-sasl-md5\""), "{c}");
        let (resp, rspauth) = client("s3").respond(c.as_bytes()).expect("responds");
        let text = String::from_utf8(resp.clone()).expect("text");
        assert!(
            text.contains("digest-uri=\"zookeeper-quorum/zk-quorum-sasl-md5\""),
            "{text}"
        );
        match m.evaluate(&resp, &l).expect("authenticates") {
            Step::Done { token, id, authzid } => {
                assert_eq!((id.as_str(), authzid.as_deref()), ("test", Some("test")));
                let token = token.expect("rspauth");
                DigestClient::check_rspauth(&token, &rspauth).expect("rspauth matches");
                let forged = format!("rspauth={}", "0".repeat(32));
                assert_eq!(
                    DigestClient::check_rspauth(forged.as_bytes(), &rspauth),
                    Err(SaslError::ServerMismatch)
                );
            }
            other => panic!("{other:?}"),
        }
        // A client's service must be the server's: a quorum client cannot log in to clients'.
        let mut m = DigestMd5::default();
        let c = challenge(&mut m, &login());
        let (resp, _) = DigestClient {
            user: "bob".into(),
            password: "bob\"secret".into(),
            authzid: None,
            service: QUORUM,
        }
        .respond(c.as_bytes())
        .expect("responds");
        assert!(matches!(
            m.evaluate(&resp, &login()),
            Err(SaslError::Format(_))
        ));
        // Wrong password.
        let mut m = DigestMd5::default();
        let c = challenge(&mut m, &l);
        let (resp, _) = client("nope").respond(c.as_bytes()).expect("responds");
        assert_eq!(m.evaluate(&resp, &l), Err(SaslError::Mismatch));
    }

    fn challenge(m: &mut DigestMd5, l: &Login) -> String {
        match m.evaluate(b"", l).expect("challenge") {
            Step::Challenge(c) => String::from_utf8(c).expect("text"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_right_password_completes_with_rspauth() {
        let l = login();
        let mut m = DigestMd5::default();
        let c = challenge(&mut m, &l);
        assert!(c.starts_with("realm=\"zk-sasl-md5\",nonce=\""), "{c}");
        assert!(c.ends_with("\",charset=utf-8,algorithm=md5-sess"), "{c}");
        let resp = client_response(&c, "bob", "bob\"secret", None);
        match m.evaluate(resp.as_bytes(), &l).expect("authenticates") {
            Step::Done { token, id, .. } => {
                assert_eq!(id, "bob");
                let t = String::from_utf8(token.expect("rspauth")).expect("text");
                assert!(t.starts_with("rspauth=") && t.len() == 8 + 32, "{t}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(m.evaluate(b"", &l), Err(SaslError::Complete));
    }

    #[test]
    fn the_id_is_the_authenticated_name_whatever_the_authzid() {
        let l = login();
        let mut m = DigestMd5::default();
        let c = challenge(&mut m, &l);
        let resp = client_response(&c, "bob", "bob\"secret", Some("super"));
        match m.evaluate(resp.as_bytes(), &l) {
            Ok(Step::Done { id, .. }) => assert_eq!(id, "bob"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals() {
        let l = login();
        let mut m = DigestMd5::default();
        let first = m.evaluate(b"an initial response", &l).expect("challenged");
        assert!(matches!(first, Step::Challenge(_)));

        type Mangle = Box<dyn Fn(&str) -> String>;
        let cases: Vec<(Mangle, SaslError)> = vec![
            (
                Box::new(|c| client_response(c, "bob", "wrong", None)),
                SaslError::Mismatch,
            ),
            (
                Box::new(|c| client_response(c, "eve", "x", None)),
                SaslError::UnknownUser("eve".into()),
            ),
            (
                Box::new(|c| {
                    client_response(c, "bob", "bob\"secret", None)
                        .replace("nc=00000001", "nc=00000002")
                }),
                SaslError::Format("nonce count does not match".into()),
            ),
            (
                Box::new(|c| {
                    client_response(c, "bob", "bob\"secret", None).replace("zookeeper/", "http/")
                }),
                SaslError::Format("digest-uri mismatch".into()),
            ),
            (
                Box::new(|c| {
                    client_response(c, "bob", "bob\"secret", None)
                        .replace("qop=auth", "qop=auth-conf")
                }),
                SaslError::Format("invalid qop auth-conf".into()),
            ),
            (
                Box::new(|c| {
                    client_response(c, "bob", "bob\"secret", None).replace("nonce=\"", "nonce=\"x")
                }),
                SaslError::Format("mismatched nonce".into()),
            ),
            (
                Box::new(|_| "username=\"bob\",username=\"eve\"".into()),
                SaslError::Format("directive username repeated".into()),
            ),
            (
                Box::new(|_| "garbage".into()),
                SaslError::Format("directive garbage has no value".into()),
            ),
            (
                Box::new(|_| "x".repeat(5000)),
                SaslError::Format("response longer than 4096 bytes".into()),
            ),
        ];
        for (make, want) in cases {
            let mut m = DigestMd5::default();
            let c = challenge(&mut m, &l);
            assert_eq!(m.evaluate(make(&c).as_bytes(), &l), Err(want));
        }
        let mut m = DigestMd5::default();
        let c = challenge(&mut m, &l);
        assert!(matches!(
            m.evaluate(&[0xff, 0xfe], &l),
            Err(SaslError::Format(_))
        ));
        drop(c);
    }

    #[test]
    fn super_password_and_super_users() {
        let mut l = login();
        l.super_password = Some("fromprop".into());
        assert_eq!(l.password("super"), Some("fromprop"));
        assert_eq!(l.password("bob"), Some("bob\"secret"));
        l.super_users = vec!["bob".into()];
        assert!(l.is_super("bob") && !l.is_super("super") && !l.is_super(""));
    }

    #[test]
    fn sasl_ids_are_kerberos_names() {
        for ok in ["bob", "bob@EXAMPLE.COM", "zk/host@EXAMPLE.COM", "bob@"] {
            assert!(id_valid(ok), "{ok}");
        }
        for bad in ["a@b@c", "a/b/c@R", "a@R/x"] {
            assert!(!id_valid(bad), "{bad}");
        }
    }
}
