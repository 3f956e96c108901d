//! `ZkError`: what a client sees, one variant per ZooKeeper error code, with its number
//! (`KeeperException.Code` plus the C client's extra codes). `Ok` (0) is not an error.

use thiserror::Error;

macro_rules! zk_errors {
    ($( $(#[$doc:meta])* $name:ident = $code:literal => $msg:literal, )*) => {
        /// A ZooKeeper error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub enum ZkError {
            $( $(#[$doc])* #[error($msg)] $name, )*
        }

        impl ZkError {
            /// Every error, in code order as ZooKeeper lists them.
            pub const ALL: &'static [ZkError] = &[$(ZkError::$name),*];

            /// The number on the wire.
            pub const fn code(self) -> i32 {
                match self { $(ZkError::$name => $code,)* }
            }
        }

        impl TryFrom<i32> for ZkError {
            type Error = UnknownErrorCode;
            fn try_from(code: i32) -> Result<Self, UnknownErrorCode> {
                match code {
                    $($code => Ok(ZkError::$name),)*
                    other => Err(UnknownErrorCode(other)),
                }
            }
        }
    };
}

zk_errors! {
    /// Range marker for system errors; never sent.
    SystemError = -1 => "SystemError",
    /// A failed multi's ops after the failing one.
    RuntimeInconsistency = -2 => "RuntimeInconsistency",
    DataInconsistency = -3 => "DataInconsistency",
    /// Client-side.
    ConnectionLoss = -4 => "ConnectionLoss",
    /// An undecodable request body.
    MarshallingError = -5 => "MarshallingError",
    /// Unknown opcode, TTL disabled, reconfig on a standalone server.
    Unimplemented = -6 => "Unimplemented",
    OperationTimeout = -7 => "OperationTimeout",
    BadArguments = -8 => "BadArguments",
    /// C client only.
    InvalidState = -9 => "InvalidState",
    UnknownSession = -12 => "UnknownSession",
    NewConfigNoQuorum = -13 => "NewConfigNoQuorum",
    ReconfigInProgress = -14 => "ReconfigInProgress",
    /// C client only.
    SslConnectionError = -15 => "SSLConnectionError",
    /// Range marker for API errors; never sent.
    ApiError = -100 => "APIError",
    NoNode = -101 => "NoNode",
    NoAuth = -102 => "NoAuth",
    BadVersion = -103 => "BadVersion",
    NoChildrenForEphemerals = -108 => "NoChildrenForEphemerals",
    NodeExists = -110 => "NodeExists",
    NotEmpty = -111 => "Directory not empty",
    SessionExpired = -112 => "Session expired",
    InvalidCallback = -113 => "Invalid callback",
    InvalidAcl = -114 => "InvalidACL",
    AuthFailed = -115 => "AuthFailed",
    /// C client only.
    Closing = -116 => "Closing",
    /// C client only.
    Nothing = -117 => "Nothing",
    SessionMoved = -118 => "Session moved",
    NotReadOnly = -119 => "Not a read-only call",
    EphemeralOnLocalSession = -120 => "Ephemeral node on local session",
    NoWatcher = -121 => "No such watcher",
    RequestTimeout = -122 => "RequestTimeout",
    ReconfigDisabled = -123 => "Reconfig is disabled",
    SessionClosedRequireSaslAuth = -124 => "Session closed because client failed to authenticate",
    QuotaExceeded = -125 => "Quota has exceeded",
    ThrottledOp = -127 => "Op throttled due to high load",
}

/// A number that is not a ZooKeeper error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unknown ZooKeeper error code {0}")]
pub struct UnknownErrorCode(pub i32);

/// The `err` field of a reply: 0 or an error's code.
pub fn err_code(result: Result<(), ZkError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for &e in ZkError::ALL {
            assert_eq!(ZkError::try_from(e.code()), Ok(e));
        }
        assert_eq!(ZkError::try_from(0), Err(UnknownErrorCode(0)));
        assert_eq!(ZkError::NoNode.code(), -101);
        assert_eq!(ZkError::ThrottledOp.code(), -127);
    }
}
