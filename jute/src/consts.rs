//! ZooKeeper's numbers: opcodes, special xids, event types, keeper states, permissions, create
//! modes, watcher types and addWatch modes (`ZooDefs`, `Watcher`, `CreateMode`, `ClientCnxn`).

use crate::ZkError;

macro_rules! int_enum {
    ($(#[$m:meta])* $name:ident { $( $(#[$doc:meta])* $v:ident = $n:literal, )* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub enum $name { $( $(#[$doc])* $v, )* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            pub const fn code(self) -> i32 {
                match self { $($name::$v => $n,)* }
            }
        }

        impl TryFrom<i32> for $name {
            type Error = i32;
            fn try_from(n: i32) -> Result<Self, i32> {
                match n { $($n => Ok($name::$v),)* other => Err(other) }
            }
        }
    };
}

int_enum! {
    /// Request types (`ZooDefs.OpCode`).
    OpCode {
        Notification = 0,
        Create = 1,
        Delete = 2,
        Exists = 3,
        GetData = 4,
        SetData = 5,
        GetAcl = 6,
        SetAcl = 7,
        GetChildren = 8,
        Sync = 9,
        Ping = 11,
        GetChildren2 = 12,
        Check = 13,
        Multi = 14,
        Create2 = 15,
        Reconfig = 16,
        CheckWatches = 17,
        RemoveWatches = 18,
        CreateContainer = 19,
        DeleteContainer = 20,
        CreateTtl = 21,
        MultiRead = 22,
        Auth = 100,
        SetWatches = 101,
        Sasl = 102,
        GetEphemerals = 103,
        GetAllChildrenNumber = 104,
        SetWatches2 = 105,
        AddWatch = 106,
        WhoAmI = 107,
        CreateSession = -10,
        CloseSession = -11,
        /// The txn type of a failed write, and the result type of failed multi ops.
        Error = -1,
    }
}

impl OpCode {
    /// `Request.isValid`: what a client may send (everything but notification and error).
    pub fn is_valid_request(self) -> bool {
        !matches!(self, OpCode::Notification | OpCode::Error)
    }
}

int_enum! {
    /// Watch event types (`Watcher.Event.EventType`).
    EventType {
        None = -1,
        NodeCreated = 1,
        NodeDeleted = 2,
        NodeDataChanged = 3,
        NodeChildrenChanged = 4,
        DataWatchRemoved = 5,
        ChildWatchRemoved = 6,
        PersistentWatchRemoved = 7,
    }
}

int_enum! {
    /// Client connection states (`Watcher.Event.KeeperState`).
    KeeperState {
        Unknown = -1,
        Disconnected = 0,
        NoSyncConnected = 1,
        SyncConnected = 3,
        AuthFailed = 4,
        ConnectedReadOnly = 5,
        SaslAuthenticated = 6,
        Expired = -112,
        Closed = 7,
    }
}

int_enum! {
    /// checkWatches / removeWatches types (`Watcher.WatcherType`; 4 and 5 since 3.9).
    WatcherType {
        Children = 1,
        Data = 2,
        Any = 3,
        Persistent = 4,
        PersistentRecursive = 5,
    }
}

int_enum! {
    /// addWatch modes (`ZooDefs.AddWatchModes`).
    AddWatchMode {
        Persistent = 0,
        PersistentRecursive = 1,
    }
}

/// Special xids (`ClientCnxn`).
pub mod xid {
    /// Watch notifications (server to client).
    pub const NOTIFICATION: i32 = -1;
    /// Ping request and its reply.
    pub const PING: i32 = -2;
    /// AuthPacket.
    pub const AUTH: i32 = -4;
    /// SetWatches from the C client.
    pub const SET_WATCHES: i32 = -8;
}

/// Permission bits (`ZooDefs.Perms`).
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 1 << 1;
    pub const CREATE: i32 = 1 << 2;
    pub const DELETE: i32 = 1 << 3;
    pub const ADMIN: i32 = 1 << 4;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// The largest TTL a node may have (`EphemeralType.TTL.maxValue()`).
pub const MAX_TTL_MS: i64 = 0x0000_00FF_FFFF_FFFF;

/// How a node is created (`CreateMode`), from the request's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
    Container,
    PersistentWithTtl,
    PersistentSequentialWithTtl,
}

impl CreateMode {
    pub fn from_flags(flags: i32) -> Result<Self, ZkError> {
        Ok(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return Err(ZkError::BadArguments),
        })
    }

    pub fn flags(self) -> i32 {
        match self {
            CreateMode::Persistent => 0,
            CreateMode::Ephemeral => 1,
            CreateMode::PersistentSequential => 2,
            CreateMode::EphemeralSequential => 3,
            CreateMode::Container => 4,
            CreateMode::PersistentWithTtl => 5,
            CreateMode::PersistentSequentialWithTtl => 6,
        }
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_round_trip() {
        for &op in OpCode::ALL {
            assert_eq!(OpCode::try_from(op.code()), Ok(op));
        }
        assert_eq!(OpCode::try_from(10), Err(10));
        assert!(!OpCode::Notification.is_valid_request());
        assert!(OpCode::DeleteContainer.is_valid_request());
    }

    #[test]
    fn create_modes_round_trip_and_reject_unknown_flags() {
        for flags in 0..7 {
            assert_eq!(
                CreateMode::from_flags(flags).map(CreateMode::flags),
                Ok(flags)
            );
        }
        assert_eq!(CreateMode::from_flags(7), Err(ZkError::BadArguments));
        assert_eq!(CreateMode::from_flags(-1), Err(ZkError::BadArguments));
    }
}
