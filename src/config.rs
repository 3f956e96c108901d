//! Configuration: ZooKeeper's own `zoo.cfg` format and keys.
//!
//! `key=value` lines, `#` comments. ZooKeeper turns any key K it does not know into the system
//! property `zookeeper.K`, so keys are accepted with or without that prefix. Unknown keys are
//! warnings; invalid values are errors naming the key and the line.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("line {line}: invalid value {value:?} for {key}: {reason}")]
    Invalid {
        line: usize,
        key: String,
        value: String,
        reason: String,
    },
    #[error("line {line}: expected key=value, got {text:?}")]
    Syntax { line: usize, text: String },
    #[error("environment variable {var}: invalid value {value:?} for {key}: {reason}")]
    InvalidEnv {
        var: String,
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    /// The JAAS file (`java.security.auth.login.config`) cannot be used.
    #[error("SASL login: {0}")]
    Sasl(#[from] crate::sasl::SaslError),
    /// An error in the dynamic config file (`dynamicConfigFile`).
    #[error("{path}: {error}")]
    InFile {
        path: String,
        error: Box<ConfigError>,
    },
}

/// The settings zkrs uses, with ZooKeeper's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub tick_time_ms: u64,
    pub data_dir: PathBuf,
    pub data_log_dir: Option<PathBuf>,
    pub client_port: u16,
    pub client_port_address: Option<IpAddr>,
    /// `clientPort` was given: a config file with only `secureClientPort` serves TLS alone, as
    /// ZooKeeper does.
    pub client_port_set: bool,
    /// TLS for clients: `secureClientPort`, `secureClientPortAddress` and `ssl.*`.
    pub secure_client_port: Option<u16>,
    pub secure_client_port_address: Option<IpAddr>,
    pub tls: TlsSettings,
    /// `sslQuorum`: members dial each other with TLS (`ssl.quorum.*` stores).
    pub ssl_quorum: bool,
    /// `portUnification`: the election and quorum ports accept TLS and plain connections.
    pub port_unification: bool,
    pub quorum_tls: TlsSettings,
    /// `ssl.quorum.hostnameVerification` (default true): a dialed member's certificate must
    /// name the host it is dialed at.
    pub quorum_hostname_verification: bool,
    /// SASL between members (see [`crate::sasl::QuorumSasl`]): `quorum.auth.enableSasl`,
    /// `quorum.auth.serverRequireSasl`, `quorum.auth.learnerRequireSasl` and the JAAS
    /// sections `quorum.auth.server.saslLoginContext` / `quorum.auth.learner.saslLoginContext`.
    quorum_sasl_enabled: bool,
    quorum_server_require_sasl: bool,
    quorum_learner_require_sasl: bool,
    quorum_server_login_context: String,
    quorum_learner_login_context: String,
    /// `quorum.auth.kerberos.servicePrincipal`: the principal of the member a learner logs
    /// in to with Kerberos (`_HOST`: that member's host).
    quorum_kerberos_service_principal: String,
    /// Read from the JAAS file at load when `quorum.auth.enableSasl` is on in an ensemble.
    pub quorum_sasl: Option<std::sync::Arc<crate::sasl::QuorumSasl>>,
    /// Per client IP; 0 = unlimited.
    pub max_client_cnxns: usize,
    /// `maxCnxns`: the most connections a client port takes in all (0: no limit).
    pub max_cnxns: usize,
    /// `skipACL=yes`: no ACL is checked (ZooKeeper reads exactly `yes`).
    pub skip_acl: bool,
    /// `digest.enabled` (ZooKeeper's `zookeeper.digest.enabled`, default true): a leader's
    /// txns carry the tree's digest after them (TxnDigest), and members check the digests
    /// of the txns they apply.
    pub digest_enabled: bool,
    min_session_timeout_ms: Option<i32>,
    max_session_timeout_ms: Option<i32>,
    pub global_outstanding_limit: usize,
    /// `commitLogCount` (ZooKeeper's `zookeeper.commitLogCount`): how many committed txns a
    /// leader keeps to bring a learner up to date with DIFF; one further behind gets a
    /// snapshot. zkrs keeps 10,000 unless told; as in ZooKeeper, no fewer than 500.
    pub commit_log_count: usize,
    /// `zookeeper.snapshot.trust.empty`: a ZooKeeper data dir taken over may hold logs
    /// without a snapshot (3.4 before 3.5.3 wrote no first one).
    pub snapshot_trust_empty: bool,
    /// `autopurge.snapRetainCount`: the snapshots the purge task keeps (3, at least 3).
    pub autopurge_snap_retain_count: usize,
    /// `autopurge.purgeInterval`: hours between purges; 0 (the default) or less, none.
    pub autopurge_purge_interval: i64,
    /// `None`: the default set; `Some(["*"])`: everything.
    pub four_letter_whitelist: Option<Vec<String>>,
    pub jute_max_buffer: usize,
    pub extended_types: bool,
    /// `user:base64(sha1)` of the super user.
    pub super_digest: Option<String>,
    pub reconfig_enabled: bool,
    /// The AdminServer (HTTP): `admin.enableServer` (default true, as ZooKeeper's),
    /// `admin.serverAddress`, `admin.serverPort`, `admin.commandURL`.
    pub admin_enabled: bool,
    pub admin_address: IpAddr,
    pub admin_port: u16,
    pub admin_url: String,
    /// `admin.snapshot.enabled` and `admin.restore.enabled` (default true): the `snapshot`
    /// and `restore` admin commands are served.
    pub admin_snapshot_enabled: bool,
    pub admin_restore_enabled: bool,
    /// `admin.rateLimiterIntervalInMS` (default 300000): at most one `restore` per interval,
    /// and one `snapshot` per a thousandth of it (ZooKeeper 3.9 reads the value in
    /// microseconds for `snapshot`).
    pub admin_rate_limit_ms: u64,
    /// `serializeLastProcessedZxid.enabled` (default true): snapshot files end with the last
    /// processed zxid, which `snapshot` and `restore` need.
    pub serialize_last_processed_zxid: bool,
    /// `metricsProvider.className` set to ZooKeeper's PrometheusMetricsProvider: `/metrics`
    /// served over HTTP at `metricsProvider.httpHost` (default 0.0.0.0) and
    /// `metricsProvider.httpPort` (default 7000).
    pub prometheus: bool,
    pub prometheus_host: String,
    pub prometheus_port: u16,
    /// `metricsProvider.exportJvmInfo` (default true): the process metrics
    /// (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...) with the others.
    pub prometheus_process: bool,
    /// The config file's text as read at start (the AdminServer's `initial_configuration`).
    pub initial_config: String,
    /// The zoo.cfg-style file the settings came from (not a TOML one): a member with
    /// `reconfigEnabled` rewrites it to point at its dynamic config file, as ZooKeeper does.
    pub config_path: Option<PathBuf>,
    /// `enforceQuota` (`zookeeper.enforceQuota`): a create or setData that would take a
    /// subtree past a hard quota (`setquota -N`/`-B`) fails with QUOTAEXCEEDED.
    pub enforce_quota: bool,
    /// `enforce.auth.enabled` with `enforce.auth.schemes` (`sessionRequireClientSASLAuth`
    /// means `sasl`): a connection must hold an id of one of these schemes before any request
    /// but auth; else it gets SESSIONCLOSEDREQUIRESASLAUTH and is closed. Empty: not enforced.
    enforce_auth_schemes: Vec<String>,
    enforce_auth_enabled: bool,
    session_require_sasl: bool,
    /// SASL (see [`crate::sasl`]): the JAAS file (`java.security.auth.login.config`) and its
    /// section of server users (`zookeeper.sasl.serverconfig`, default `Server`).
    pub jaas_file: Option<PathBuf>,
    pub sasl_section: String,
    /// `zookeeper.superUser` and `zookeeper.superUser.*`: SASL ids that are super.
    pub sasl_super_users: Vec<String>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: the SASL user `super`'s password.
    pub sasl_super_password: Option<String>,
    /// `zookeeper.letAnySaslUserDoX`: a `sasl` ACL id that every SASL-authenticated client matches.
    pub sasl_any_user: Option<String>,
    /// `zookeeper.allowSaslFailedClients`: a failed SASL exchange leaves the connection open.
    pub allow_sasl_failed_clients: bool,
    /// Kerberos (see [`crate::kerberos`]): `java.security.krb5.conf`,
    /// `zookeeper.security.auth_to_local` and `zookeeper.kerberos.remove{Host,Realm}FromPrincipal`.
    pub krb5_conf: Option<PathBuf>,
    pub auth_to_local: String,
    pub kerberos_remove_host: bool,
    pub kerberos_remove_realm: bool,
    /// An `authProvider.N` naming `SASLAuthenticationProvider`: the `sasl` ACL scheme is known.
    pub sasl_provider: bool,
    /// The server's SASL users, read from the JAAS file at load; None: SASL is off (no file,
    /// or no such section in it, as in ZooKeeper).
    pub sasl_login: Option<std::sync::Arc<crate::sasl::Login>>,
    /// `readonlymode.enabled` (a system property in ZooKeeper): a member cut off from its
    /// quorum serves reads to clients that allow it.
    pub read_only_mode: bool,
    pub force_sync: bool,
    pub container_check_interval_ms: u64,
    /// `znodeCacheSizeMB` (zkrs's own): memory for the znodes held beyond the store, in bytes.
    pub znode_cache_bytes: usize,
    /// `importZooKeeperData` (zkrs's own, default true): at the first start on a data dir
    /// where Apache ZooKeeper ran, take over its snapshot and logs (see [`crate::import`]).
    pub import_zookeeper_data: bool,
    /// How long a connection may stay silent before its handshake
    /// (`zookeeper.nio.sessionlessCnxnTimeout`).
    pub sessionless_cnxn_timeout_ms: u64,
    pub init_limit: u32,
    pub sync_limit: u32,
    /// `server.N=...` lines, for the ensemble; empty means standalone.
    pub servers: Vec<(u32, String)>,
    /// `group.G=...` and `weight.S=...` lines: hierarchical quorums (see
    /// [`crate::ensemble::Groups`]).
    pub quorum_groups: Vec<(String, String)>,
    /// `dynamicConfigFile`: the file the `server.N` lines are in (ZooKeeper 3.5+'s split
    /// config, as a member that ran with `reconfigEnabled` leaves it).
    pub dynamic_config_file: Option<PathBuf>,
    /// The membership's version: the hex suffix of the dynamic config file's name
    /// (`zoo.cfg.dynamic.100000000`), else 0; `/zookeeper/config` ends with it.
    pub config_version: u64,
    pub standalone_enabled: bool,
    /// Bind the quorum and election ports on all addresses (`quorumListenOnAllIPs`).
    pub quorum_listen_on_all_ips: bool,
    /// `observerMasterPort`: while following, this member serves observers on this port
    /// (ZooKeeper's ObserverMaster), and an observer syncs from a voting member's port
    /// instead of the leader's. 0: off.
    pub observer_master_port: u16,
    /// `peerType=observer`.
    pub observer: bool,
    /// `myid`; standalone servers use 1, as ZooKeeper does.
    pub server_id: u8,
    /// Where each setting came from, for `conf`/`envi`.
    pub warnings: Vec<String>,
}

/// `ssl.clientAuth`: whether a TLS client must present a certificate (ZooKeeper's default is
/// `need`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    Need,
    Want,
    None,
}

/// The `ssl.*` settings of the secure client port, or the `ssl.quorum.*` ones of TLS between
/// members (ZooKeeper's `X509Util` keys).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The keys' prefix (`ssl`, `ssl.quorum`) and what needs them, for messages.
    pub prefix: &'static str,
    pub user: &'static str,
    pub key_store: Option<PathBuf>,
    pub key_store_password: Option<String>,
    pub key_store_type: Option<String>,
    pub trust_store: Option<PathBuf>,
    pub trust_store_password: Option<String>,
    pub trust_store_type: Option<String>,
    pub client_auth: ClientAuth,
}

impl Default for TlsSettings {
    /// The secure client port's (`ssl.*`).
    fn default() -> Self {
        TlsSettings {
            prefix: "ssl",
            user: "secureClientPort",
            key_store: None,
            key_store_password: None,
            key_store_type: None,
            trust_store: None,
            trust_store_password: None,
            trust_store_type: None,
            client_auth: ClientAuth::Need,
        }
    }
}

impl TlsSettings {
    /// TLS between members (`ssl.quorum.*`).
    pub fn quorum() -> Self {
        TlsSettings {
            prefix: "ssl.quorum",
            user: "sslQuorum",
            ..TlsSettings::default()
        }
    }

    /// Sets `key` (the part after the prefix: `keyStore.location`, ...); false if it is not
    /// one of these.
    fn set(&mut self, key: &str, value: &str) -> Result<bool, &'static str> {
        match key {
            "keyStore.location" => self.key_store = Some(PathBuf::from(value)),
            "keyStore.password" => self.key_store_password = Some(value.to_string()),
            "keyStore.type" => self.key_store_type = Some(value.to_string()),
            "trustStore.location" => self.trust_store = Some(PathBuf::from(value)),
            "trustStore.password" => self.trust_store_password = Some(value.to_string()),
            "trustStore.type" => self.trust_store_type = Some(value.to_string()),
            "clientAuth" => {
                self.client_auth = match value.to_ascii_lowercase().as_str() {
                    "need" => ClientAuth::Need,
                    "want" => ClientAuth::Want,
                    "none" => ClientAuth::None,
                    _ => return Err("expected need, want or none"),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tick_time_ms: 2000,
            data_dir: PathBuf::from("./data"),
            data_log_dir: None,
            client_port: 2181,
            client_port_address: None,
            client_port_set: false,
            secure_client_port: None,
            secure_client_port_address: None,
            tls: TlsSettings::default(),
            ssl_quorum: false,
            port_unification: false,
            quorum_tls: TlsSettings::quorum(),
            quorum_hostname_verification: true,
            quorum_sasl_enabled: false,
            quorum_server_require_sasl: false,
            quorum_learner_require_sasl: false,
            quorum_server_login_context: "QuorumServer".into(),
            quorum_learner_login_context: "QuorumLearner".into(),
            quorum_kerberos_service_principal: "zkquorum/localhost".into(),
            quorum_sasl: None,
            max_client_cnxns: 60,
            max_cnxns: 0,
            skip_acl: false,
            digest_enabled: true,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            global_outstanding_limit: 1000,
            commit_log_count: 10_000,
            snapshot_trust_empty: false,
            autopurge_snap_retain_count: crate::purge::MIN_SNAP_RETAIN_COUNT,
            autopurge_purge_interval: 0,
            four_letter_whitelist: None,
            jute_max_buffer: jute::DEFAULT_MAX_BUFFER,
            extended_types: false,
            super_digest: None,
            reconfig_enabled: false,
            admin_enabled: true,
            admin_address: IpAddr::from([0, 0, 0, 0]),
            admin_port: 8080,
            prometheus: false,
            prometheus_process: true,
            prometheus_host: "0.0.0.0".into(),
            prometheus_port: 7000,
            admin_url: "/commands".to_string(),
            admin_snapshot_enabled: true,
            admin_restore_enabled: true,
            admin_rate_limit_ms: 300_000,
            serialize_last_processed_zxid: true,
            initial_config: String::new(),
            config_path: None,
            enforce_quota: false,
            enforce_auth_schemes: Vec::new(),
            enforce_auth_enabled: false,
            session_require_sasl: false,
            jaas_file: None,
            sasl_section: "Server".into(),
            sasl_super_users: Vec::new(),
            sasl_super_password: None,
            sasl_any_user: None,
            allow_sasl_failed_clients: false,
            krb5_conf: None,
            auth_to_local: "DEFAULT".into(),
            kerberos_remove_host: false,
            kerberos_remove_realm: false,
            sasl_provider: false,
            sasl_login: None,
            force_sync: true,
            container_check_interval_ms: 60_000,
            znode_cache_bytes: crate::tree::DEFAULT_CACHE_BYTES,
            import_zookeeper_data: true,
            sessionless_cnxn_timeout_ms: 10_000,
            init_limit: 10,
            sync_limit: 5,
            servers: Vec::new(),
            quorum_groups: Vec::new(),
            dynamic_config_file: None,
            config_version: 0,
            standalone_enabled: true,
            read_only_mode: false,
            quorum_listen_on_all_ips: false,
            observer_master_port: 0,
            observer: false,
            server_id: 1,
            warnings: Vec::new(),
        }
    }
}

/// The 4lw enabled when `4lw.commands.whitelist` is not set: the read-only informational ones.
pub const DEFAULT_4LW: &[&str] = &[
    "ruok", "stat", "srvr", "conf", "cons", "envi", "mntr", "wchs", "isro", "dirs",
];

impl Config {
    pub fn min_session_timeout_ms(&self) -> i32 {
        self.min_session_timeout_ms
            .unwrap_or((self.tick_time_ms * 2) as i32)
    }

    pub fn max_session_timeout_ms(&self) -> i32 {
        self.max_session_timeout_ms
            .unwrap_or((self.tick_time_ms * 20) as i32)
    }

    /// Is the four-letter word in the whitelist? (`srvr` is answered regardless, as ZooKeeper does.)
    pub fn four_letter_enabled(&self, word: &str) -> bool {
        match &self.four_letter_whitelist {
            None => DEFAULT_4LW.contains(&word),
            Some(list) => list.iter().any(|w| w == "*" || w == word),
        }
    }

    /// Reads a zoo.cfg file, then the `myid` file of an ensemble member.
    pub fn read(path: &std::path::Path) -> Result<Config, ConfigError> {
        Config::load(Some(path), None)
    }

    /// The settings in layers: ZooKeeper's defaults, then the file (`zoo.cfg`, or TOML when its
    /// name ends in `.toml`), then `ZKRS_*` environment variables (`env`: `None` reads the
    /// process environment), then the `myid` file of an ensemble member. Every layer goes
    /// through the same keys and checks as zoo.cfg.
    pub fn load(
        path: Option<&std::path::Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        cfg.apply_jvm_flags(env.as_ref())?;
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
            {
                cfg.set_toml(&text)?;
            } else {
                cfg.set_lines(&text)?;
                cfg.config_path = Some(path.to_path_buf());
            }
            cfg.initial_config = text;
        }
        cfg.check()?;
        cfg.read_dynamic()?;
        cfg.apply_env(env)?;
        cfg.read_myid()?;
        cfg.take_member_client_address()?;
        cfg.sasl_login = cfg.load_sasl_login()?;
        cfg.quorum_sasl = cfg.load_quorum_sasl()?;
        Ok(cfg)
    }

    /// The JAAS sections members log in to one another with (`quorum.auth.enableSasl`; a
    /// standalone server has no use for them, as ZooKeeper's does not).
    fn load_quorum_sasl(
        &self,
    ) -> Result<Option<std::sync::Arc<crate::sasl::QuorumSasl>>, ConfigError> {
        if !self.quorum_sasl_enabled || self.servers.is_empty() {
            return Ok(None);
        }
        let Some(path) = &self.jaas_file else {
            return Err(ConfigError::Invalid {
                line: 0,
                key: "quorum.auth.enableSasl".into(),
                value: "true".into(),
                reason: format!(
                    "needs a JAAS file (java.security.auth.login.config) with sections {} and {}",
                    self.quorum_server_login_context, self.quorum_learner_login_context
                ),
            });
        };
        let kerberos = crate::sasl::QuorumKerberos {
            krb5_conf: self.krb5_conf.clone(),
            service_principal: self.quorum_kerberos_service_principal.clone(),
            authz_hosts: self
                .servers
                .iter()
                .filter_map(|(id, spec)| crate::ensemble::Member::parse(u64::from(*id), spec).ok())
                .map(|m| m.host)
                .collect(),
        };
        let q = crate::sasl::QuorumSasl::load(
            path,
            &self.quorum_server_login_context,
            &self.quorum_learner_login_context,
            self.quorum_server_require_sasl,
            self.quorum_learner_require_sasl,
            &kerberos,
        )?;
        Ok(Some(std::sync::Arc::new(q)))
    }

    /// The JAAS file's server section, with the super settings that go with it.
    fn load_sasl_login(
        &mut self,
    ) -> Result<Option<std::sync::Arc<crate::sasl::Login>>, ConfigError> {
        let Some(path) = self.jaas_file.clone() else {
            return Ok(None);
        };
        let Some(mut login) = crate::sasl::Login::load(&path, &self.sasl_section)? else {
            self.warnings.push(format!(
                "{}: no section {} (zookeeper.sasl.serverconfig): SASL is off",
                path.display(),
                self.sasl_section
            ));
            return Ok(None);
        };
        login.super_password = self.sasl_super_password.clone();
        login.super_users = self.sasl_super_users.clone();
        if let Some(options) = login.krb5.clone() {
            login.kerberos = Some(std::sync::Arc::new(self.kerberos_login(options)?));
        }
        Ok(Some(std::sync::Arc::new(login)))
    }

    /// The server's Kerberos login (a `Krb5LoginModule` entry in its JAAS section): the
    /// acceptor credentials from the keytab, and the name rules.
    fn kerberos_login(
        &self,
        mut options: crate::kerberos::LoginOptions,
    ) -> Result<crate::kerberos::Kerberos, ConfigError> {
        options.krb5_conf = self.krb5_conf.clone();
        // The Kerberos configuration MIT's library reads: the given one, else KRB5_CONFIG's
        // first file, else /etc/krb5.conf.
        let conf = self.krb5_conf.clone().unwrap_or_else(|| {
            std::env::var("KRB5_CONFIG")
                .ok()
                .and_then(|v| v.split(':').next().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("/etc/krb5.conf"))
        });
        let names = crate::kerberos::Names::new(
            &self.auth_to_local,
            crate::kerberos::default_realm(&conf),
            self.kerberos_remove_host,
            self.kerberos_remove_realm,
        )
        .map_err(|reason| ConfigError::Invalid {
            line: 0,
            key: "security.auth_to_local".into(),
            value: self.auth_to_local.clone(),
            reason,
        })?;
        let login = crate::kerberos::Kerberos::login(&options, Some(names))?;
        tracing::info!(
            "SASL: clients authenticate with Kerberos (GSSAPI) to {}",
            login.principal
        );
        Ok(login)
    }

    /// The system properties zkServer.sh would hand ZooKeeper's JVM: the `-Dkey=value` words
    /// of `SERVER_JVMFLAGS` and `JVMFLAGS` (split on white space, as the script splits them)
    /// whose keys ZooKeeper reads as properties: `zookeeper.*`, `jute.maxbuffer`,
    /// `readonlymode.enabled` and `java.security.auth.login.config`. Others (the JVM's own)
    /// are left alone. The file, read next, overrides them, as zoo.cfg's keys override
    /// ZooKeeper's properties.
    fn apply_jvm_flags(
        &mut self,
        env: Option<&HashMap<String, String>>,
    ) -> Result<(), ConfigError> {
        for var in ["SERVER_JVMFLAGS", "JVMFLAGS"] {
            let flags = match env {
                Some(map) => map.get(var).cloned(),
                None => std::env::var(var).ok(),
            };
            for (key, value) in jvm_properties(flags.as_deref().unwrap_or_default()) {
                let bare = key.strip_prefix("zookeeper.");
                let read = bare.is_some()
                    || matches!(
                        key,
                        "jute.maxbuffer"
                            | "readonlymode.enabled"
                            | "java.security.auth.login.config"
                            | "java.security.krb5.conf"
                    );
                let bare = bare.unwrap_or(key);
                let known = canonical_key(bare).is_some_and(|k| k == bare)
                    || bare.starts_with("superUser.")
                    || bare.starts_with("authProvider.");
                if !read || !known {
                    continue;
                }
                self.set_from_env(&format!("{var} (-D{key})"), key, value)?;
            }
        }
        Ok(())
    }

    /// Sets a key an environment variable gave; an invalid value names the variable.
    fn set_from_env(&mut self, var: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        self.set(0, key, value).map_err(|e| match e {
            ConfigError::Invalid {
                key, value, reason, ..
            } => ConfigError::InvalidEnv {
                var: var.to_string(),
                key,
                value,
                reason,
            },
            other => other,
        })
    }

    /// ZooKeeper's `setupClientPort`: a member whose own `server.N` line names a client
    /// address (`...;[host:]port`) serves clients there. A clientPort (and clientPortAddress)
    /// in the file that names another is an error, as in ZooKeeper.
    fn take_member_client_address(&mut self) -> Result<(), ConfigError> {
        let id = u32::from(self.server_id);
        let Some((_, spec)) = self.servers.iter().find(|(n, _)| *n == id) else {
            return Ok(());
        };
        let Some((_, client)) = spec.split_once(';') else {
            return Ok(());
        };
        let invalid = |reason: String| ConfigError::Invalid {
            line: 0,
            key: format!("server.{id}"),
            value: spec.clone(),
            reason,
        };
        let client = client.trim();
        let (host, port) = match client.rsplit_once(':') {
            Some((h, p)) => (Some(h.trim_start_matches('[').trim_end_matches(']')), p),
            None => (None, client),
        };
        let port: u16 = port
            .parse()
            .map_err(|_| invalid(format!("bad client port {port:?}")))?;
        let ip = match host {
            None => None,
            Some(h) => {
                use std::net::ToSocketAddrs;
                let addr = (h, port)
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| invalid(format!("cannot resolve client host {h:?}")))?;
                Some(addr.ip()).filter(|ip| !ip.is_unspecified())
            }
        };
        if self.client_port_set {
            let static_ip = self.client_port_address.filter(|ip| !ip.is_unspecified());
            let differs = match static_ip {
                Some(s) => Some(s) != ip || self.client_port != port,
                None => self.client_port != port,
            };
            if differs {
                return Err(invalid(format!(
                    "its client address {client} differs from clientPort/clientPortAddress \
                     ({}:{})",
                    static_ip.map_or("0.0.0.0".to_string(), |i| i.to_string()),
                    self.client_port
                )));
            }
        }
        self.client_port = port;
        self.client_port_address = ip;
        self.client_port_set = true;
        Ok(())
    }

    /// Reads the membership from `dynamicConfigFile`, as ZooKeeper does: the static file may
    /// then hold no `server.N`, `group` or `weight` line, and the dynamic file no `version`
    /// (its name carries it).
    fn read_dynamic(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.dynamic_config_file.clone() else {
            return Ok(());
        };
        let static_line = self
            .servers
            .first()
            .map(|(id, spec)| (format!("server.{id}"), spec.clone()))
            .or_else(|| self.quorum_groups.first().cloned());
        if let Some((key, value)) = static_line {
            return Err(ConfigError::Invalid {
                line: 0,
                key,
                value,
                reason: "must be in a separate dynamic config file (dynamicConfigFile is set)"
                    .into(),
            });
        }
        let shown = path.display().to_string();
        let in_file = |error| ConfigError::InFile {
            path: shown.clone(),
            error: Box::new(error),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        for (line, key, value) in key_values(&text).map_err(in_file)? {
            if key == "version" {
                return Err(in_file(ConfigError::Invalid {
                    line,
                    key: key.into(),
                    value: value.into(),
                    reason: "a dynamic config file holds no version: its name carries it".into(),
                }));
            }
            if key.starts_with("server.") || key.starts_with("group.") || key.starts_with("weight.")
            {
                self.set(line, key, value).map_err(in_file)?;
            } else {
                self.warnings.push(format!(
                    "{shown} line {line}: {key} ignored (only membership here)"
                ));
            }
        }
        // `getVersionFromFilename`: the part after the last dot, read as hex.
        self.config_version = path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(|e| u64::from_str_radix(e, 16).ok())
            .unwrap_or(0);
        Ok(())
    }

    /// Parses TOML holding zoo.cfg's keys: `tickTime = 2000`, `"4lw.commands.whitelist" =
    /// ["ruok", "mntr"]`, `server.1 = "10.0.0.1:2888:3888"` (dotted keys or tables).
    pub fn parse_toml(text: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        cfg.set_toml(text)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Sets the keys of TOML text, over what is set already.
    fn set_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        for (key, value) in collect(config::File::from_str(text, config::FileFormat::Toml))? {
            let line = toml_line(text, &key);
            let key = canonical_key(&key).unwrap_or(key);
            self.set(line, &key, &value)?;
        }
        Ok(())
    }

    /// `ZKRS_<KEY>` variables override the file: the key in any case, with `_` for the dots and
    /// word breaks (`ZKRS_TICK_TIME`, `ZKRS_4LW_COMMANDS_WHITELIST`, `ZKRS_SERVER_1`).
    pub fn apply_env(&mut self, env: Option<HashMap<String, String>>) -> Result<(), ConfigError> {
        for (key, value) in collect(config::Environment::with_prefix("ZKRS").source(env))? {
            let var = format!("ZKRS_{}", key.to_ascii_uppercase());
            let Some(key) = canonical_key(&key) else {
                self.warnings
                    .push(format!("environment variable {var}: unknown key ignored"));
                continue;
            };
            self.set_from_env(&var, &key, &value)?;
        }
        self.check()
    }

    fn read_myid(&mut self) -> Result<(), ConfigError> {
        let cfg = self;
        if !cfg.servers.is_empty() {
            let myid = cfg.data_dir.join("myid");
            if let Ok(text) = std::fs::read_to_string(&myid) {
                cfg.server_id = text.trim().parse().map_err(|_| ConfigError::Invalid {
                    line: 0,
                    key: "myid".into(),
                    value: text.trim().into(),
                    reason: format!("{} must hold a number from 1 to 255", myid.display()),
                })?;
            }
        }
        Ok(())
    }

    /// Parses zoo.cfg text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        cfg.set_lines(text)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Sets the keys of zoo.cfg text, over what is set already.
    fn set_lines(&mut self, text: &str) -> Result<(), ConfigError> {
        for (line, key, value) in key_values(text)? {
            self.set(line, key, value)?;
        }
        Ok(())
    }

    /// The schemes a connection must have authenticated with before its requests are
    /// served (`AuthenticationHelper`); empty when that is not enforced.
    pub fn enforced_auth_schemes(&self) -> Vec<String> {
        if self.session_require_sasl {
            vec!["sasl".to_string()]
        } else if self.enforce_auth_enabled {
            self.enforce_auth_schemes.clone()
        } else {
            Vec::new()
        }
    }

    /// Checks between keys, once all are read.
    fn check(&self) -> Result<(), ConfigError> {
        if self.enforce_auth_enabled
            && !self.session_require_sasl
            && self.enforce_auth_schemes.is_empty()
        {
            return Err(ConfigError::Invalid {
                line: 0,
                key: "enforce.auth.schemes".into(),
                value: String::new(),
                reason: "must be configured when enforce.auth.enabled is true".into(),
            });
        }
        // As ZooKeeper refuses to start with a scheme it has no provider for: zkrs has ip and
        // digest, and sasl once an `authProvider.N` names SASLAuthenticationProvider. Serving
        // everyone instead would open what the file closes.
        if let Some(s) = self
            .enforced_auth_schemes()
            .into_iter()
            .find(|s| s != "ip" && s != "digest" && !(s == "sasl" && self.sasl_provider))
        {
            let key = if self.session_require_sasl {
                "sessionRequireClientSASLAuth"
            } else {
                "enforce.auth.schemes"
            };
            return Err(ConfigError::Invalid {
                line: 0,
                key: key.into(),
                value: s.clone(),
                reason: format!(
                    "authentication scheme {s} is not available (zkrs has ip and digest, and sasl \
                     with authProvider.N=org.apache.zookeeper.server.auth.SASLAuthenticationProvider)"
                ),
            });
        }
        // QuorumPeerConfig's rules: nothing is required of SASL that is not enabled, and a
        // member that requires it of others must log in itself (or it could not join them).
        for (wrong, key, needs) in [
            (
                !self.quorum_sasl_enabled && self.quorum_server_require_sasl,
                "quorum.auth.serverRequireSasl",
                "quorum.auth.enableSasl",
            ),
            (
                !self.quorum_sasl_enabled && self.quorum_learner_require_sasl,
                "quorum.auth.learnerRequireSasl",
                "quorum.auth.enableSasl",
            ),
            (
                !self.quorum_learner_require_sasl && self.quorum_server_require_sasl,
                "quorum.auth.serverRequireSasl",
                "quorum.auth.learnerRequireSasl",
            ),
        ] {
            if wrong {
                return Err(ConfigError::Invalid {
                    line: 0,
                    key: key.into(),
                    value: "true".into(),
                    reason: format!("{needs} is disabled, so {key} cannot be enabled"),
                });
            }
        }
        if self.ssl_quorum || self.port_unification {
            let s = &self.quorum_tls;
            let missing = [
                (s.key_store.is_none(), "ssl.quorum.keyStore.location"),
                (s.trust_store.is_none(), "ssl.quorum.trustStore.location"),
            ];
            if let Some((_, key)) = missing.iter().find(|(m, _)| *m) {
                return Err(ConfigError::Invalid {
                    line: 0,
                    key: key.to_string(),
                    value: String::new(),
                    reason: "TLS between members (sslQuorum, portUnification) needs a key store \
                             and a trust store"
                        .into(),
                });
            }
        }
        if self.min_session_timeout_ms() > self.max_session_timeout_ms() {
            return Err(ConfigError::Invalid {
                line: 0,
                key: "minSessionTimeout".into(),
                value: self.min_session_timeout_ms().to_string(),
                reason: "must not exceed maxSessionTimeout".into(),
            });
        }
        Ok(())
    }

    fn set(&mut self, line: usize, key: &str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            line,
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        fn num<T: std::str::FromStr>(v: &str) -> Option<T> {
            v.parse().ok()
        }
        let boolean = |v: &str| match v.to_ascii_lowercase().as_str() {
            "true" | "yes" => Ok(true),
            "false" | "no" => Ok(false),
            _ => Err(invalid("expected true or false")),
        };
        let bare = key.strip_prefix("zookeeper.").unwrap_or(key);
        match bare {
            "tickTime" => {
                self.tick_time_ms = num(value)
                    .filter(|&t: &u64| t > 0)
                    .ok_or_else(|| invalid("expected a positive number of ms"))?
            }
            "dataDir" => self.data_dir = PathBuf::from(value),
            "dataLogDir" => self.data_log_dir = Some(PathBuf::from(value)),
            "clientPort" => {
                self.client_port = num(value).ok_or_else(|| invalid("expected a port number"))?;
                self.client_port_set = true;
            }
            "clientPortAddress" => {
                self.client_port_address =
                    Some(num(value).ok_or_else(|| invalid("expected an IP address"))?)
            }
            "secureClientPort" => {
                self.secure_client_port =
                    Some(num(value).ok_or_else(|| invalid("expected a port number"))?)
            }
            "secureClientPortAddress" => {
                self.secure_client_port_address =
                    Some(num(value).ok_or_else(|| invalid("expected an IP address"))?)
            }
            k if k.starts_with("ssl.quorum.")
                && self
                    .quorum_tls
                    .set(&k["ssl.quorum.".len()..], value)
                    .map_err(invalid)? => {}
            k if k.starts_with("ssl.")
                && self.tls.set(&k["ssl.".len()..], value).map_err(invalid)? => {}
            "sslQuorum" => self.ssl_quorum = boolean(value)?,
            "quorum.auth.enableSasl" => self.quorum_sasl_enabled = boolean(value)?,
            "quorum.auth.serverRequireSasl" => self.quorum_server_require_sasl = boolean(value)?,
            "quorum.auth.learnerRequireSasl" => self.quorum_learner_require_sasl = boolean(value)?,
            "quorum.auth.server.saslLoginContext" => {
                self.quorum_server_login_context = value.to_string()
            }
            "quorum.auth.learner.saslLoginContext" => {
                self.quorum_learner_login_context = value.to_string()
            }
            "quorum.auth.kerberos.servicePrincipal" => {
                self.quorum_kerberos_service_principal = value.to_string()
            }
            "portUnification" => self.port_unification = boolean(value)?,
            "ssl.quorum.hostnameVerification" => {
                self.quorum_hostname_verification = boolean(value)?
            }
            "maxClientCnxns" => {
                self.max_client_cnxns = num(value).ok_or_else(|| invalid("expected a number"))?
            }
            "skipACL" => self.skip_acl = value == "yes",
            // Java's Boolean.parseBoolean: anything but `true` is false.
            "digest.enabled" => self.digest_enabled = value.eq_ignore_ascii_case("true"),
            "maxCnxns" => {
                self.max_cnxns = num(value).ok_or_else(|| invalid("expected a number"))?
            }
            "minSessionTimeout" => {
                let v: i32 = num(value).ok_or_else(|| invalid("expected a number of ms"))?;
                self.min_session_timeout_ms = (v >= 0).then_some(v);
            }
            "maxSessionTimeout" => {
                let v: i32 = num(value).ok_or_else(|| invalid("expected a number of ms"))?;
                self.max_session_timeout_ms = (v >= 0).then_some(v);
            }
            "commitLogCount" => {
                let n: usize = num(value).ok_or_else(|| invalid("expected a number"))?;
                if n < MIN_COMMIT_LOG_COUNT {
                    self.warnings.push(format!(
                        "line {line}: commitLogCount {n} is less than the recommended \
                         {MIN_COMMIT_LOG_COUNT}, going to use the recommended one"
                    ));
                }
                self.commit_log_count = n.max(MIN_COMMIT_LOG_COUNT);
            }
            "autopurge.snapRetainCount" => {
                let n: i32 = num(value).ok_or_else(|| invalid("expected a number"))?;
                let floor = crate::purge::MIN_SNAP_RETAIN_COUNT;
                if n < floor as i32 {
                    self.warnings.push(format!(
                        "line {line}: Invalid autopurge.snapRetainCount: {n}. Defaulting to \
                         {floor}"
                    ));
                }
                self.autopurge_snap_retain_count = usize::try_from(n).unwrap_or(0).max(floor);
            }
            "autopurge.purgeInterval" => {
                self.autopurge_purge_interval = num::<i32>(value)
                    .ok_or_else(|| invalid("expected a number of hours"))?
                    .into()
            }
            "globalOutstandingLimit" => {
                self.global_outstanding_limit =
                    num(value).ok_or_else(|| invalid("expected a number"))?
            }
            "4lw.commands.whitelist" => {
                self.four_letter_whitelist = Some(
                    value
                        .split(',')
                        .map(|w| w.trim().to_string())
                        .filter(|w| !w.is_empty())
                        .collect(),
                )
            }
            "jute.maxbuffer" => {
                self.jute_max_buffer = parse_int(value)
                    .filter(|&v| v > 0)
                    .ok_or_else(|| invalid("expected a positive number of bytes"))?
            }
            "extendedTypesEnabled" => self.extended_types = boolean(value)?,
            "DigestAuthenticationProvider.superDigest" => {
                if !value.contains(':') {
                    return Err(invalid("expected user:base64digest"));
                }
                self.super_digest = Some(value.to_string())
            }
            "reconfigEnabled" => self.reconfig_enabled = boolean(value)?,
            // System properties ZooKeeper reads with Boolean.parseBoolean: "true" in any case
            // is true, anything else false.
            "enforceQuota" => self.enforce_quota = value.eq_ignore_ascii_case("true"),
            "admin.enableServer" => self.admin_enabled = value.eq_ignore_ascii_case("true"),
            "admin.serverAddress" => {
                self.admin_address = value
                    .parse()
                    .map_err(|_| invalid("expected an IP address"))?
            }
            "admin.serverPort" => {
                self.admin_port = value.parse().map_err(|_| invalid("expected a port"))?
            }
            "admin.commandURL" => self.admin_url = value.to_string(),
            "admin.snapshot.enabled" => {
                self.admin_snapshot_enabled = value.eq_ignore_ascii_case("true")
            }
            "admin.restore.enabled" => {
                self.admin_restore_enabled = value.eq_ignore_ascii_case("true")
            }
            // Integer.parseInt: a number of milliseconds that fits an int.
            "admin.rateLimiterIntervalInMS" => {
                self.admin_rate_limit_ms = value
                    .parse::<i32>()
                    .ok()
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| invalid("expected a number of milliseconds"))?
            }
            "serializeLastProcessedZxid.enabled" => {
                self.serialize_last_processed_zxid = value.eq_ignore_ascii_case("true")
            }
            // ZooKeeper loads the named class at start and fails when there is none: the
            // default provider (mntr only) and the Prometheus one are the two it ships.
            "metricsProvider.className" => match value {
                PROMETHEUS_PROVIDER => self.prometheus = true,
                DEFAULT_PROVIDER => self.prometheus = false,
                _ => return Err(invalid("metrics provider class was not found")),
            },
            "metricsProvider.httpHost" => self.prometheus_host = value.to_string(),
            "metricsProvider.httpPort" => {
                self.prometheus_port = value.parse().map_err(|_| invalid("expected a port"))?
            }
            "metricsProvider.exportJvmInfo" => {
                self.prometheus_process = value.eq_ignore_ascii_case("true")
            }
            "enforce.auth.enabled" => {
                self.enforce_auth_enabled = value.eq_ignore_ascii_case("true")
            }
            "enforce.auth.schemes" => {
                self.enforce_auth_schemes = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "sessionRequireClientSASLAuth" => {
                self.session_require_sasl = value.eq_ignore_ascii_case("true")
            }
            "readonlymode.enabled" => self.read_only_mode = boolean(value)?,
            "forceSync" => self.force_sync = boolean(value)?,
            // Java's Boolean.getBoolean: "true" in any case, anything else false.
            "snapshot.trust.empty" => {
                self.snapshot_trust_empty = value.eq_ignore_ascii_case("true")
            }
            "standaloneEnabled" => self.standalone_enabled = boolean(value)?,
            "znode.container.checkIntervalMs" => {
                self.container_check_interval_ms = num(value)
                    .filter(|&v: &u64| v > 0)
                    .ok_or_else(|| invalid("expected a positive number of ms"))?
            }
            "importZooKeeperData" => self.import_zookeeper_data = boolean(value)?,
            "znodeCacheSizeMB" => {
                self.znode_cache_bytes = num(value)
                    .and_then(|mb: usize| mb.checked_mul(1 << 20))
                    .ok_or_else(|| invalid("expected a number of MiB"))?
            }
            "nio.sessionlessCnxnTimeout" => {
                self.sessionless_cnxn_timeout_ms = num(value)
                    .filter(|&v: &u64| v > 0)
                    .ok_or_else(|| invalid("expected a positive number of ms"))?
            }
            "initLimit" => {
                self.init_limit = num(value).ok_or_else(|| invalid("expected a number of ticks"))?
            }
            "syncLimit" => {
                self.sync_limit = num(value).ok_or_else(|| invalid("expected a number of ticks"))?
            }
            k if k.starts_with("server.") => {
                let id: u32 = num(&k["server.".len()..])
                    .ok_or_else(|| invalid("server id must be a number"))?;
                if !value.contains(':') {
                    return Err(invalid("expected host:quorumPort:electionPort"));
                }
                // A later layer (TOML after zoo.cfg, the environment) replaces the line.
                self.servers.retain(|(other, _)| *other != id);
                self.servers.push((id, value.to_string()));
            }
            k if k.starts_with("admin.")
                || k.starts_with("metricsProvider.")
                || k.starts_with("quorum.")
                || k.starts_with("ssl.")
                || k.starts_with("znode.container.") => {}
            k if k.starts_with("group.") || k.starts_with("weight.") => {
                self.quorum_groups.retain(|(other, _)| other != k);
                self.quorum_groups.push((k.to_string(), value.to_string()));
            }
            // Boolean.parseBoolean, as ZooKeeper reads it.
            "quorumListenOnAllIPs" => {
                self.quorum_listen_on_all_ips = value.eq_ignore_ascii_case("true")
            }
            "observerMasterPort" => {
                // ZooKeeper takes any number and serves observers when it is above 0.
                let port: i64 = num(value).ok_or_else(|| invalid("expected a port number"))?;
                self.observer_master_port =
                    u16::try_from(port.max(0)).map_err(|_| invalid("expected a port number"))?;
            }
            "peerType"
            | "electionPortBindRetry"
            | "snapCount"
            | "preAllocSize"
            | "syncEnabled"
            | "closeSessionTxn.enabled"
            | "localSessionsEnabled"
            | "localSessionsUpgradingEnabled"
            | "cnxTimeout"
            | "connectToLearnerMasterLimit"
            | "snapSizeLimitInKb"
            | "txnLogSizeLimitInKb"
            | "serverCnxnFactory"
            | "jute.maxbuffer.extrasize"
            | "requestThrottleLimit"
            | "electionAlg"
            | "maxResponseCacheSize"
            | "4lw.commands.enable"
            | "multiAddress.enabled" => {}
            "dynamicConfigFile" => self.dynamic_config_file = Some(PathBuf::from(value)),
            "java.security.auth.login.config" => self.jaas_file = Some(PathBuf::from(value)),
            "java.security.krb5.conf" => self.krb5_conf = Some(PathBuf::from(value)),
            "security.auth_to_local" => self.auth_to_local = value.to_string(),
            "kerberos.removeHostFromPrincipal" => self.kerberos_remove_host = value == "true",
            "kerberos.removeRealmFromPrincipal" => self.kerberos_remove_realm = value == "true",
            "sasl.serverconfig" => self.sasl_section = value.to_string(),
            "SASLAuthenticationProvider.superPassword" => {
                self.sasl_super_password = Some(value.to_string())
            }
            "letAnySaslUserDoX" => self.sasl_any_user = Some(value.to_string()),
            "allowSaslFailedClients" => {
                self.allow_sasl_failed_clients = value.eq_ignore_ascii_case("true")
            }
            k if k == "superUser" || k.starts_with("superUser.") => {
                self.sasl_super_users.push(value.to_string())
            }
            // ZooKeeper loads the class each names; zkrs has ip and digest built in, and knows
            // the SASL one (other providers are not available).
            k if k.starts_with("authProvider.") => match value.rsplit('.').next() {
                Some("SASLAuthenticationProvider") => self.sasl_provider = true,
                Some("DigestAuthenticationProvider" | "IPAuthenticationProvider") => {}
                _ => self.warnings.push(format!(
                    "line {line}: {key}: authentication provider {value} is not available"
                )),
            },
            _ => self
                .warnings
                .push(format!("line {line}: unknown key {key} ignored")),
        }
        Ok(())
    }
}

/// The `key=value` lines of zoo.cfg text (blank lines and `#` comments skipped), numbered
/// from 1, key and value trimmed.
fn key_values(text: &str) -> Result<Vec<(usize, &str, &str)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(ConfigError::Syntax {
                line: i + 1,
                text: trimmed.into(),
            });
        };
        out.push((i + 1, key.trim(), value.trim()));
    }
    Ok(out)
}

/// ZooKeeper's metrics providers (`metricsProvider.className`).
const PROMETHEUS_PROVIDER: &str =
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
const DEFAULT_PROVIDER: &str = "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider";

/// The keys `Config::set` knows by name, to match TOML keys and environment variables whatever
/// their case and separators.
const KNOWN_KEYS: &[&str] = &[
    "tickTime",
    "dataDir",
    "dataLogDir",
    "clientPort",
    "clientPortAddress",
    "secureClientPort",
    "secureClientPortAddress",
    "ssl.keyStore.location",
    "ssl.keyStore.password",
    "ssl.keyStore.type",
    "ssl.trustStore.location",
    "ssl.trustStore.password",
    "ssl.trustStore.type",
    "ssl.clientAuth",
    "ssl.quorum.keyStore.location",
    "ssl.quorum.keyStore.password",
    "ssl.quorum.keyStore.type",
    "ssl.quorum.trustStore.location",
    "ssl.quorum.trustStore.password",
    "ssl.quorum.trustStore.type",
    "ssl.quorum.clientAuth",
    "ssl.quorum.hostnameVerification",
    "portUnification",
    "sslQuorum",
    "quorum.auth.enableSasl",
    "quorum.auth.serverRequireSasl",
    "quorum.auth.learnerRequireSasl",
    "quorum.auth.server.saslLoginContext",
    "quorum.auth.learner.saslLoginContext",
    "quorum.auth.kerberos.servicePrincipal",
    "maxClientCnxns",
    "minSessionTimeout",
    "maxSessionTimeout",
    "globalOutstandingLimit",
    "commitLogCount",
    "4lw.commands.whitelist",
    "jute.maxbuffer",
    "extendedTypesEnabled",
    "admin.snapshot.enabled",
    "admin.restore.enabled",
    "admin.rateLimiterIntervalInMS",
    "serializeLastProcessedZxid.enabled",
    "DigestAuthenticationProvider.superDigest",
    "reconfigEnabled",
    "enforceQuota",
    "enforce.auth.enabled",
    "enforce.auth.schemes",
    "sessionRequireClientSASLAuth",
    "java.security.auth.login.config",
    "java.security.krb5.conf",
    "security.auth_to_local",
    "kerberos.removeHostFromPrincipal",
    "kerberos.removeRealmFromPrincipal",
    "sasl.serverconfig",
    "superUser",
    "SASLAuthenticationProvider.superPassword",
    "letAnySaslUserDoX",
    "allowSaslFailedClients",
    "readonlymode.enabled",
    "forceSync",
    "standaloneEnabled",
    "znode.container.checkIntervalMs",
    "znodeCacheSizeMB",
    "importZooKeeperData",
    "nio.sessionlessCnxnTimeout",
    "initLimit",
    "syncLimit",
    "peerType",
    "electionPortBindRetry",
    "quorumListenOnAllIPs",
    "observerMasterPort",
    "snapCount",
    "preAllocSize",
    "maxCnxns",
    "syncEnabled",
    "skipACL",
    "digest.enabled",
    "closeSessionTxn.enabled",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "cnxTimeout",
    "admin.enableServer",
    "admin.serverPort",
    "metricsProvider.className",
    "metricsProvider.httpHost",
    "metricsProvider.httpPort",
    "metricsProvider.exportJvmInfo",
    "admin.serverAddress",
    "admin.commandURL",
    "autopurge.snapRetainCount",
    "autopurge.purgeInterval",
    "snapshot.trust.empty",
];

/// The fewest committed txns a leader keeps for DIFF (ZooKeeper's floor for
/// `zookeeper.commitLogCount`).
const MIN_COMMIT_LOG_COUNT: usize = 500;

/// Lower case, letters and digits only: `tick_time`, `TICKTIME` and `tickTime` all match.
fn normalize(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// zoo.cfg's spelling of a key written in another case or with other separators.
fn canonical_key(key: &str) -> Option<String> {
    let n = normalize(key);
    let n = n.strip_prefix("zookeeper").unwrap_or(&n);
    if let Some(id) = n.strip_prefix("server") {
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!("server.{id}"));
        }
    }
    KNOWN_KEYS
        .iter()
        .find(|k| normalize(k) == n)
        .map(|k| k.to_string())
}

/// The `-Dkey=value` words of JVM flags (`-Dkey` alone: an empty value, as Java sets it).
fn jvm_properties(flags: &str) -> Vec<(&str, &str)> {
    flags
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("-D"))
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// The (key, value) pairs of one `config` source, flattened and sorted.
fn collect(
    source: impl config::Source + Send + Sync + 'static,
) -> Result<Vec<(String, String)>, ConfigError> {
    let table = config::Config::builder()
        .add_source(source)
        .build()
        .and_then(|c| c.try_deserialize::<HashMap<String, config::Value>>())
        .map_err(|e| ConfigError::Syntax {
            line: 0,
            text: e.to_string(),
        })?;
    Ok(flatten(table))
}

/// Nested tables become dotted keys; arrays become comma-separated lists (the whitelist).
fn flatten(table: HashMap<String, config::Value>) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: config::Value, out: &mut Vec<(String, String)>) {
        match value.kind {
            config::ValueKind::Table(t) => {
                for (k, v) in t {
                    walk(&format!("{prefix}.{k}"), v, out);
                }
            }
            config::ValueKind::Array(items) => {
                let items: Vec<String> = items.into_iter().map(|v| v.to_string()).collect();
                out.push((prefix.to_string(), items.join(",")));
            }
            kind => out.push((prefix.to_string(), kind.to_string())),
        }
    }
    let mut out = Vec::new();
    for (k, v) in table {
        walk(&k, v, &mut out);
    }
    out.sort();
    out
}

/// The line of a TOML file where `key` (flattened) is set, for error messages; 0 if not found.
fn toml_line(text: &str, key: &str) -> usize {
    let whole = normalize(key);
    let last = normalize(key.rsplit('.').next().unwrap_or(key));
    let mut fallback = 0;
    for (i, line) in text.lines().enumerate() {
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        let lhs = normalize(lhs);
        if lhs == whole {
            return i + 1;
        }
        if lhs == last && fallback == 0 {
            fallback = i + 1;
        }
    }
    fallback
}

/// ZooKeeper reads jute.maxbuffer with Integer.decode: decimal, 0x hex or leading-0 octal.
fn parse_int(v: &str) -> Option<usize> {
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        usize::from_str_radix(hex, 16).ok()
    } else {
        v.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_zookeeper_keys() {
        let cfg = Config::parse(
            "# c\ntickTime=1000\ndataDir=/tmp/x\nclientPort=2999\nmaxClientCnxns=0\n\
             4lw.commands.whitelist=ruok, mntr\njute.maxbuffer=0x1000\nzookeeper.extendedTypesEnabled=true\n\
             admin.enableServer=false\nserver.1=127.0.0.1:2888:3888\nwhatever=1\nenforceQuota=true\n",
        )
        .unwrap();
        assert!(cfg.enforce_quota);
        assert!(!Config::parse("").unwrap().enforce_quota, "off by default");
        assert!(
            !Config::parse("enforceQuota=yes\n").unwrap().enforce_quota,
            "Boolean.parseBoolean: only true is true"
        );
        assert_eq!(cfg.tick_time_ms, 1000);
        assert_eq!(cfg.min_session_timeout_ms(), 2000);
        assert_eq!(cfg.max_session_timeout_ms(), 20000);
        assert_eq!(cfg.client_port, 2999);
        assert_eq!(cfg.max_client_cnxns, 0);
        assert!(cfg.four_letter_enabled("mntr") && !cfg.four_letter_enabled("stat"));
        assert_eq!(cfg.jute_max_buffer, 4096);
        assert!(cfg.extended_types);
        assert_eq!(cfg.servers.len(), 1);
        assert_eq!(cfg.warnings.len(), 1);
    }

    #[test]
    fn observer_master_port_and_quorum_listen_on_all_ips() {
        let off = Config::parse("tickTime=2000\n").unwrap();
        assert_eq!(off.observer_master_port, 0);
        assert!(!off.quorum_listen_on_all_ips);
        let cfg = Config::parse("observerMasterPort=2191\nquorumListenOnAllIPs=TRUE\n").unwrap();
        assert_eq!(cfg.observer_master_port, 2191);
        assert!(cfg.quorum_listen_on_all_ips);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        // ZooKeeper serves observers only above 0.
        assert_eq!(
            Config::parse("observerMasterPort=-1\n")
                .unwrap()
                .observer_master_port,
            0
        );
        for bad in ["abc", "70000"] {
            assert!(
                Config::parse(&format!("observerMasterPort={bad}\n")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn invalid_values_name_key_and_line() {
        let err = Config::parse("tickTime=2000\nclientPort=abc\n").unwrap_err();
        assert_eq!(
            err,
            ConfigError::Invalid {
                line: 2,
                key: "clientPort".into(),
                value: "abc".into(),
                reason: "expected a port number".into()
            }
        );
        assert!(matches!(
            Config::parse("secureClientPort=twenty"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            Config::parse("ssl.clientAuth=sometimes"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            Config::parse("sslQuorum=true"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            Config::parse("justtext"),
            Err(ConfigError::Syntax { line: 1, .. })
        ));
    }

    #[test]
    fn znode_cache_size_in_mib() {
        let default = Config::parse("tickTime=2000\n").unwrap();
        assert_eq!(default.znode_cache_bytes, 64 << 20);
        let cfg = Config::parse("znodeCacheSizeMB=0\n").unwrap();
        assert_eq!(cfg.znode_cache_bytes, 0);
        assert!(cfg.warnings.is_empty());
        let cfg = Config::parse("znodeCacheSizeMB=512\n").unwrap();
        assert_eq!(cfg.znode_cache_bytes, 512 << 20);
        for bad in ["-1", "lots", "99999999999999999999"] {
            assert!(
                matches!(
                    Config::parse(&format!("znodeCacheSizeMB={bad}\n")),
                    Err(ConfigError::Invalid { .. })
                ),
                "{bad}"
            );
        }
    }

    fn env(vars: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn toml_holds_zoo_cfg_keys() {
        let cfg = Config::parse_toml(
            "tickTime = 1000\nclientPort = 2999\ndataDir = \"/tmp/t\"\n\
             \"4lw.commands.whitelist\" = [\"ruok\", \"mntr\"]\n\
             extendedTypesEnabled = true\nzookeeper.forceSync = \"no\"\n\
             server.1 = \"127.0.0.1:2888:3888\"\n[admin]\nenableServer = false\n",
        )
        .unwrap();
        assert_eq!(cfg.tick_time_ms, 1000);
        assert_eq!(cfg.client_port, 2999);
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/t"));
        assert!(cfg.four_letter_enabled("mntr") && !cfg.four_letter_enabled("stat"));
        assert!(cfg.extended_types);
        assert!(!cfg.force_sync);
        assert_eq!(cfg.servers, vec![(1, "127.0.0.1:2888:3888".to_string())]);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn toml_errors_name_key_and_line() {
        let err = Config::parse_toml("tickTime = 2000\n\nclientPort = \"abc\"\n").unwrap_err();
        assert_eq!(
            err,
            ConfigError::Invalid {
                line: 3,
                key: "clientPort".into(),
                value: "abc".into(),
                reason: "expected a port number".into()
            }
        );
        assert!(matches!(
            Config::parse_toml("tickTime = = 1"),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut cfg = Config::parse("tickTime=2000\nclientPort=2181\nserver.1=a:1:2\n").unwrap();
        cfg.apply_env(env(&[
            ("ZKRS_TICK_TIME", "500"),
            ("ZKRS_CLIENTPORT", "3000"),
            ("ZKRS_4LW_COMMANDS_WHITELIST", "*"),
            ("ZKRS_SERVER_1", "b:1:2"),
            (
                "ZKRS_DIGEST_AUTHENTICATION_PROVIDER_SUPER_DIGEST",
                "super:abc=",
            ),
            ("ZKRS_NO_SUCH_THING", "1"),
            ("OTHER_TICK_TIME", "7"),
        ]))
        .unwrap();
        assert_eq!(cfg.tick_time_ms, 500);
        assert_eq!(cfg.client_port, 3000);
        assert!(cfg.four_letter_enabled("crst"));
        assert_eq!(cfg.servers, vec![(1, "b:1:2".to_string())]);
        assert_eq!(cfg.super_digest.as_deref(), Some("super:abc="));
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains("ZKRS_NO_SUCH_THING"));
    }

    #[test]
    fn tls_keys_as_zookeeper_names_them() {
        let cfg = Config::parse(
            "secureClientPort=2281\nsecureClientPortAddress=127.0.0.1\n\
             ssl.keyStore.location=/k.pem\nssl.keyStore.type=PEM\n\
             zookeeper.ssl.trustStore.location=/t.pem\nssl.clientAuth=want\n",
        )
        .unwrap();
        assert_eq!(cfg.secure_client_port, Some(2281));
        assert!(!cfg.client_port_set, "no clientPort: TLS alone");
        assert_eq!(cfg.tls.key_store, Some(PathBuf::from("/k.pem")));
        assert_eq!(cfg.tls.key_store_type.as_deref(), Some("PEM"));
        assert_eq!(cfg.tls.trust_store, Some(PathBuf::from("/t.pem")));
        assert_eq!(cfg.tls.client_auth, ClientAuth::Want);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        assert_eq!(Config::default().tls.client_auth, ClientAuth::Need);
        assert!(Config::parse("clientPort=2181\n").unwrap().client_port_set);
    }

    #[test]
    fn read_only_mode_from_every_layer() {
        assert!(!Config::default().read_only_mode);
        assert!(
            Config::parse("readonlymode.enabled=true\n")
                .unwrap()
                .read_only_mode
        );
        assert!(
            Config::parse_toml("[readonlymode]\nenabled = true\n")
                .unwrap()
                .read_only_mode
        );
        let mut cfg = Config::default();
        cfg.apply_env(env(&[("ZKRS_READONLYMODE_ENABLED", "true")]))
            .unwrap();
        assert!(cfg.read_only_mode && cfg.warnings.is_empty());
        assert!(matches!(
            Config::parse("readonlymode.enabled=maybe\n"),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn invalid_environment_values_name_the_variable() {
        let mut cfg = Config::default();
        let err = cfg
            .apply_env(env(&[("ZKRS_MAX_CLIENT_CNXNS", "many")]))
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::InvalidEnv {
                var: "ZKRS_MAX_CLIENT_CNXNS".into(),
                key: "maxClientCnxns".into(),
                value: "many".into(),
                reason: "expected a number".into()
            }
        );
        let err = Config::default()
            .apply_env(env(&[("ZKRS_MIN_SESSION_TIMEOUT", "90000")]))
            .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
    }

    #[test]
    fn default_whitelist_is_the_informational_words() {
        let cfg = Config::default();
        assert!(cfg.four_letter_enabled("stat"));
        assert!(!cfg.four_letter_enabled("crst"));
    }

    #[test]
    fn membership_comes_from_the_dynamic_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let dynamic = dir.path().join("zoo.cfg.dynamic.100000000");
        std::fs::write(
            &dynamic,
            "server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
             server.2=10.0.0.2:2888:3888:participant;0.0.0.0:2181\n\
             server.3=10.0.0.3:2888:3888:observer;0.0.0.0:2181\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        let zoo = dir.path().join("zoo.cfg");
        let write = |extra: &str| {
            std::fs::write(
                &zoo,
                format!(
                    "tickTime=2000\ndataDir={}\ndynamicConfigFile={}\n{extra}",
                    dir.path().display(),
                    dynamic.display()
                ),
            )
            .unwrap();
        };
        write("");
        let cfg = Config::load(Some(&zoo), Some(HashMap::new())).unwrap();
        assert_eq!(cfg.servers.len(), 3);
        assert_eq!(cfg.server_id, 2, "myid is read for the dynamic members too");
        assert_eq!(cfg.config_version, 0x1_0000_0000);
        // The AdminServer's initial_configuration: the file as read, not the dynamic one.
        assert_eq!(cfg.initial_config, std::fs::read_to_string(&zoo).unwrap());
        let ensemble = crate::ensemble::Ensemble::from_config(&cfg)
            .unwrap()
            .unwrap();
        assert!(ensemble.config_text().ends_with("\nversion=100000000"));
        // As ZooKeeper: no server, group or weight line in the static file once there is a
        // dynamic one.
        for line in [
            "server.4=10.0.0.4:2888:3888\n",
            "group.1=1:2:3\n",
            "weight.2=3\n",
        ] {
            write(line);
            let err = Config::load(Some(&zoo), Some(HashMap::new())).unwrap_err();
            assert!(
                err.to_string()
                    .contains("must be in a separate dynamic config file"),
                "{line}: {err}"
            );
        }
        // Groups in the dynamic file make the ensemble's quorums hierarchical.
        write("");
        let groups = "group.1=1:2\ngroup.2=3\nweight.2=2\n";
        let members = std::fs::read_to_string(&dynamic).unwrap();
        std::fs::write(&dynamic, format!("{members}{groups}")).unwrap();
        let cfg = Config::load(Some(&zoo), Some(HashMap::new())).unwrap();
        let ensemble = crate::ensemble::Ensemble::from_config(&cfg)
            .unwrap()
            .unwrap();
        let g = ensemble.groups.as_ref().expect("groups");
        assert_eq!((g.weight(1), g.weight(2)), (1, 2));
        assert!(ensemble
            .config_text()
            .contains("group.1=1:2\ngroup.2=3\nweight.1=1\nweight.2=2\nversion=100000000"));
        std::fs::write(&dynamic, members).unwrap();
        // No version inside the dynamic file; a missing file stops the server too.
        write("");
        std::fs::write(&dynamic, "server.1=10.0.0.1:2888:3888\nversion=1\n").unwrap();
        let err = Config::load(Some(&zoo), Some(HashMap::new())).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(err.to_string().contains("holds no version"), "{err}");
        std::fs::remove_file(&dynamic).unwrap();
        assert!(matches!(
            Config::load(Some(&zoo), Some(HashMap::new())),
            Err(ConfigError::Read { .. })
        ));
        // A name without a hex suffix is version 0.
        let plain = dir.path().join("members");
        std::fs::write(&plain, "server.1=10.0.0.1:2888:3888\n").unwrap();
        std::fs::write(
            &zoo,
            format!(
                "dataDir={}\ndynamicConfigFile={}\n",
                dir.path().display(),
                plain.display()
            ),
        )
        .unwrap();
        let cfg = Config::load(Some(&zoo), Some(HashMap::new())).unwrap();
        assert_eq!((cfg.servers.len(), cfg.config_version), (1, 0));
    }

    #[test]
    fn a_member_serves_clients_where_its_server_line_says() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        let zoo = dir.path().join("zoo.cfg");
        let load = |extra: &str, me: &str| {
            std::fs::write(
                &zoo,
                format!(
                    "dataDir={}\nserver.1=10.0.0.1:2888:3888;2181\nserver.2={me}\n{extra}",
                    dir.path().display()
                ),
            )
            .unwrap();
            Config::load(Some(&zoo), Some(HashMap::new()))
        };
        let cfg = load("", "127.0.0.1:2888:3888:participant;127.0.0.1:2185").unwrap();
        assert_eq!(cfg.client_port, 2185);
        assert_eq!(cfg.client_port_address, Some("127.0.0.1".parse().unwrap()));
        let cfg = load("", "127.0.0.1:2888:3888;localhost:2186").unwrap();
        assert_eq!(cfg.client_port, 2186);
        assert!(cfg.client_port_address.is_some_and(|ip| ip.is_loopback()));
        // A port alone is every address; the same port in clientPort agrees with it.
        let cfg = load("clientPort=2187\n", "127.0.0.1:2888:3888;2187").unwrap();
        assert_eq!((cfg.client_port, cfg.client_port_address), (2187, None));
        // Without a client part, clientPort stands.
        let cfg = load("clientPort=2188\n", "127.0.0.1:2888:3888").unwrap();
        assert_eq!(cfg.client_port, 2188);
        // Disagreements stop the server, as in ZooKeeper.
        for (extra, me) in [
            ("clientPort=2190\n", "127.0.0.1:2888:3888;2189"),
            (
                "clientPort=2189\nclientPortAddress=127.0.0.1\n",
                "127.0.0.1:2888:3888;2189",
            ),
            ("", "127.0.0.1:2888:3888;127.0.0.1:x"),
        ] {
            let err = load(extra, me).unwrap_err();
            assert!(err.to_string().contains("server.2"), "{err}");
        }
    }

    #[test]
    fn enforced_auth_takes_only_schemes_zkrs_has() {
        let cfg =
            Config::parse("enforce.auth.enabled=true\nenforce.auth.schemes=digest, ip\n").unwrap();
        assert_eq!(cfg.enforced_auth_schemes(), vec!["digest", "ip"]);
        let off = Config::parse("enforce.auth.schemes=digest\n").unwrap();
        assert!(off.enforced_auth_schemes().is_empty(), "not enabled");
        for (text, key) in [
            ("enforce.auth.enabled=true\n", "enforce.auth.schemes"),
            (
                "enforce.auth.enabled=true\nenforce.auth.schemes=digest,sasl\n",
                "enforce.auth.schemes",
            ),
            (
                "zookeeper.sessionRequireClientSASLAuth=true\n",
                "sessionRequireClientSASLAuth",
            ),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        let err = Config::parse("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sasl is not available"), "{err}");
    }

    #[test]
    fn quorum_tls_keys() {
        let cfg = Config::parse(
            "sslQuorum=true\nssl.quorum.keyStore.location=/k.pem\nssl.quorum.keyStore.type=PEM\n\
             ssl.quorum.trustStore.location=/t.p12\nssl.quorum.trustStore.password=pw\n\
             ssl.quorum.clientAuth=want\nssl.quorum.hostnameVerification=false\n\
             ssl.keyStore.location=/client.pem\nportUnification=true\n",
        )
        .unwrap();
        assert!(cfg.ssl_quorum && cfg.port_unification && !cfg.quorum_hostname_verification);
        let q = &cfg.quorum_tls;
        assert_eq!(q.key_store.as_deref(), Some(std::path::Path::new("/k.pem")));
        assert_eq!(q.trust_store_password.as_deref(), Some("pw"));
        assert_eq!((q.client_auth, q.prefix), (ClientAuth::Want, "ssl.quorum"));
        assert_eq!(
            cfg.tls.key_store.as_deref(),
            Some(std::path::Path::new("/client.pem"))
        );
        assert!(cfg.tls.trust_store.is_none());
        for (text, key) in [
            ("sslQuorum=true\n", "ssl.quorum.keyStore.location"),
            (
                "portUnification=true\nssl.quorum.keyStore.location=/k\n",
                "ssl.quorum.trustStore.location",
            ),
            ("ssl.quorum.clientAuth=maybe\n", "ssl.quorum.clientAuth"),
        ] {
            match Config::parse(text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn sasl_enforcement_needs_the_sasl_provider() {
        let provider =
            "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n";
        let cfg = Config::parse(&format!("{provider}sessionRequireClientSASLAuth=true\n")).unwrap();
        assert_eq!(cfg.enforced_auth_schemes(), vec!["sasl"]);
        assert!(cfg.sasl_provider);
        let cfg = Config::parse(&format!(
            "zookeeper.{provider}enforce.auth.enabled=true\nenforce.auth.schemes=sasl,digest\n"
        ))
        .unwrap();
        assert_eq!(cfg.enforced_auth_schemes(), vec!["sasl", "digest"]);
        let other = Config::parse("authProvider.2=com.example.MyProvider\n").unwrap();
        assert!(!other.sasl_provider);
        assert!(
            other.warnings[0].contains("com.example.MyProvider"),
            "{:?}",
            other.warnings
        );
    }

    #[test]
    fn quorum_sasl_settings_are_checked_and_read_from_the_jaas_file() {
        // QuorumPeerConfig's rules between the three switches.
        for (lines, key) in [
            (
                "quorum.auth.serverRequireSasl=true\nquorum.auth.learnerRequireSasl=true\n",
                "quorum.auth.serverRequireSasl",
            ),
            (
                "quorum.auth.learnerRequireSasl=true\n",
                "quorum.auth.learnerRequireSasl",
            ),
            (
                "quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n",
                "quorum.auth.serverRequireSasl",
            ),
        ] {
            match Config::parse(lines) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{lines}"),
                other => panic!("{lines}: {other:?}"),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "1\n").unwrap();
        let jaas = dir.path().join("quorum.jaas");
        let zoo = dir.path().join("zoo.cfg");
        let load = |jaas_text: Option<&str>, extra: &str| {
            let mut text = format!(
                "dataDir={}\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n\
                 quorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\n\
                 quorum.auth.serverRequireSasl=true\n{extra}",
                dir.path().display()
            );
            if let Some(j) = jaas_text {
                std::fs::write(&jaas, j).unwrap();
                text += &format!("java.security.auth.login.config={}\n", jaas.display());
            }
            std::fs::write(&zoo, text).unwrap();
            Config::load(Some(&zoo), Some(HashMap::new()))
        };
        const DIGEST: &str = "org.apache.zookeeper.server.auth.DigestLoginModule required";
        let good = format!(
            "QuorumServer {{ {DIGEST} user_test=\"pw\"; }};\n\
             QuorumLearner {{ {DIGEST} username=\"test\" password=\"pw\"; }};\n"
        );
        let cfg = load(Some(&good), "").unwrap();
        let q = cfg.quorum_sasl.expect("quorum SASL on");
        assert!(q.server_required && q.learner_required);
        let crate::sasl::QuorumLearner::Digest(learner) = &q.learner else {
            panic!("a DIGEST-MD5 learner: {:?}", q.learner);
        };
        assert_eq!(
            (learner.user.as_str(), learner.password.as_str()),
            ("test", "pw")
        );
        assert_eq!(learner.authzid.as_deref(), Some("test"));
        assert_eq!(q.server.service, crate::sasl::QUORUM);
        // Other section names.
        let renamed = good
            .replace("QuorumServer", "QS")
            .replace("QuorumLearner", "QL");
        let cfg = load(
            Some(&renamed),
            "quorum.auth.server.saslLoginContext=QS\nquorum.auth.learner.saslLoginContext=QL\n",
        )
        .unwrap();
        assert!(cfg.quorum_sasl.is_some());
        // Refused at start, as ZooKeeper's login fails: no JAAS file, a missing section, a
        // learner without a password, Kerberos.
        let refusals = [
            (None, "needs a JAAS file"),
            (Some(renamed.clone()), "section QuorumServer"),
            (
                Some(good.replace(" password=\"pw\"", "")),
                "username and password",
            ),
            (
                Some(good.replace(
                    &format!("QuorumLearner {{ {DIGEST}"),
                    "QuorumLearner { com.sun.security.auth.module.Krb5LoginModule required",
                )),
                "Krb5LoginModule needs a principal option",
            ),
        ];
        for (jaas_text, why) in refusals {
            let err = load(jaas_text.as_deref(), "").unwrap_err().to_string();
            assert!(err.contains(why), "{why}: {err}");
        }
        // A standalone server has no use for the sections, as ZooKeeper's does not.
        std::fs::write(
            &zoo,
            format!(
                "dataDir={}\nquorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let cfg = Config::load(Some(&zoo), Some(HashMap::new())).unwrap();
        assert!(cfg.quorum_sasl.is_none() && cfg.warnings.is_empty());
    }

    #[test]
    fn jvm_flags_are_system_properties_under_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let jaas = dir.path().join("server.jaas");
        std::fs::write(
            &jaas,
            "Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"pw\"; };",
        )
        .unwrap();
        let zoo = dir.path().join("zoo.cfg");
        std::fs::write(&zoo, "tickTime=3000\nmaxClientCnxns=7\n").unwrap();
        let flags = format!(
            "-Xmx1g -server -Djava.security.auth.login.config={} -Dcom.sun.management.jmxremote \
             -DtickTime=5 -Dzookeeper.maxClientCnxns=9 -Dzookeeper.superUser=super \
             -Dzookeeper.superUser.2=admin -Dzookeeper.4lw.commands.whitelist=* \
             -Dzookeeper.snapshot.trust.empty=TRUE",
            jaas.display()
        );
        let env = HashMap::from([("SERVER_JVMFLAGS".to_string(), flags)]);
        let cfg = Config::load(Some(&zoo), Some(env)).unwrap();
        assert_eq!(
            cfg.tick_time_ms, 3000,
            "the file's, and -DtickTime is not a property"
        );
        assert_eq!(cfg.max_client_cnxns, 7, "the file overrides a property");
        assert_eq!(cfg.four_letter_whitelist, Some(vec!["*".to_string()]));
        assert_eq!(cfg.sasl_super_users, vec!["super", "admin"]);
        assert!(cfg.snapshot_trust_empty);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        let login = cfg.sasl_login.expect("the Server section");
        assert!(login.is_super("admin") && !login.is_super("bob"));

        // JVMFLAGS too; a section that is not there leaves SASL off, as in ZooKeeper.
        let env = HashMap::from([(
            "JVMFLAGS".to_string(),
            format!(
                "-Djava.security.auth.login.config={} -Dzookeeper.sasl.serverconfig=Other",
                jaas.display()
            ),
        )]);
        let cfg = Config::load(Some(&zoo), Some(env)).unwrap();
        assert_eq!(cfg.sasl_section, "Other");
        assert!(cfg.sasl_login.is_none());
        assert!(
            cfg.warnings[0].contains("no section Other"),
            "{:?}",
            cfg.warnings
        );

        let env = HashMap::from([(
            "SERVER_JVMFLAGS".to_string(),
            "-Dzookeeper.jute.maxbuffer=lots".to_string(),
        )]);
        let err = Config::load(Some(&zoo), Some(env)).unwrap_err().to_string();
        assert!(
            err.contains("SERVER_JVMFLAGS") && err.contains("jute.maxbuffer"),
            "{err}"
        );

        for text in ["no such file", "Server { broken"] {
            let bad = dir.path().join("bad.jaas");
            if text != "no such file" {
                std::fs::write(&bad, text).unwrap();
            }
            let env = HashMap::from([(
                "SERVER_JVMFLAGS".to_string(),
                format!("-Djava.security.auth.login.config={}", bad.display()),
            )]);
            let err = Config::load(Some(&zoo), Some(env)).unwrap_err();
            assert!(matches!(err, ConfigError::Sasl(_)), "{text}: {err}");
        }
    }
}
