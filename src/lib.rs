//! # zkrs: a ZooKeeper wire-compatible server
//!
//! Data flow (see README): socket -> [`reactor`] / [`net`] (framing, 4lw, decode) ->
//! [`core`] (the one task that owns all state) -> [`prep`] (request -> txn | error) ->
//! [`tree`] apply -> [`store`] (RocksDB group commit) -> replies and watch events in order ->
//! socket.

/// Hash maps keyed by what clients send (paths, ids): ahash with per-process random keys.
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
/// See [`FastMap`].
pub type FastSet<T> = std::collections::HashSet<T, ahash::RandomState>;

pub mod acl;
pub mod admin;
pub mod admin_http;
pub mod backup;
pub mod config;
pub mod config_files;
pub mod core;
pub mod ensemble;
pub mod filter;
pub mod import;
pub mod java;
pub mod kerberos;
pub mod metrics;
pub mod net;
pub mod overlay;
pub mod path;
pub mod prep;
pub mod purge;
pub mod quorum;
pub mod reactor;
pub mod read;
pub mod reconfig;
pub mod replica;
pub mod sasl;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod store;
pub mod tls;
pub mod tree;
pub mod txlog;
pub mod watches;
pub mod zab;
