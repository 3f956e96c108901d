//! # jute: the ZooKeeper wire format
//!
//! Everything zkrs says on the wire or writes to disk passes through this crate.
//!
//! * The records are **data**: `zookeeper.jute` holds them in Apache ZooKeeper's own record
//!   language. `build.rs` parses it with a `nom` parser ([`idl`], also tested here) and generates
//!   one Rust module per Jute module ([`data`], [`proto`], [`txn`], [`quorum`],
//!   [`persistence`]) with an [`Encode`] and a [`Decode`] impl per record. A build script rather
//!   than a proc macro, because the input is a data file and the generated code is readable
//!   plain Rust in `target/.../out/records.rs`.
//! * Hand-written beside them: the handshake frames with their optional readOnly byte
//!   ([`Connect`], [`ConnectReply`]), requests and responses by opcode ([`Request`],
//!   [`Response`]) including multi, [`OpCode`], special [`xid`]s, [`ZkError`], event types,
//!   keeper states, [`perms`], [`CreateMode`], and [`frame`]ing.
//! * Decoding is total: any byte string gives a value or a [`DecodeError`]. Lengths are checked
//!   against what remains before anything is reserved.

pub mod codec;
mod connect;
pub mod consts;
mod error;
pub mod frame;
pub mod idl;
mod message;
mod txn_entry;

#[cfg(test)]
#[allow(dead_code)]
mod codegen;

include!(concat!(env!("OUT_DIR"), "/records.rs"));

pub use codec::{Decode, DecodeError, Encode, Reader, DEFAULT_MAX_BUFFER};
pub use connect::{Connect, ConnectReply};
pub use consts::{
    perms, xid, AddWatchMode, CreateMode, EventType, KeeperState, OpCode, WatcherType, MAX_TTL_MS,
};
pub use error::{err_code, UnknownErrorCode, ZkError};
pub use message::{MultiOp, MultiRequest, MultiResponse, MultiResult, Request, Response};
pub use txn_entry::{TxnEntry, TxnRecord};

#[cfg(test)]
mod naming_tests {
    use crate::codegen::{rust_field_name, rust_type_name};

    #[test]
    fn names_follow_rust_conventions() {
        assert_eq!(rust_type_name("ACL"), "Acl");
        assert_eq!(rust_type_name("CreateTTLRequest"), "CreateTTLRequest");
        assert_eq!(rust_field_name("ephemeralOwner"), "ephemeral_owner");
        assert_eq!(rust_field_name("paths2Delete"), "paths2_delete");
        assert_eq!(rust_field_name("type"), "type_");
        assert_eq!(rust_field_name("czxid"), "czxid");
    }
}
