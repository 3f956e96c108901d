//! Sessions: ids with the server id in the high byte, passwords derived from the id exactly as
//! Apache ZooKeeper derives them (so any member of a mixed ensemble can check them), timeouts.

use std::time::{Duration, Instant};

/// `ZooKeeperServer.superSecret`.
const SUPER_SECRET: i64 = 0xB341_5C00;

/// The 16-byte password of a session: `java.util.Random(id ^ superSecret).nextBytes(16)`.
pub fn password(session_id: i64) -> Vec<u8> {
    const MULT: i64 = 0x5_DEEC_E66D;
    const MASK: i64 = (1 << 48) - 1;
    let mut seed = ((session_id ^ SUPER_SECRET) ^ MULT) & MASK;
    let mut out = Vec::with_capacity(16);
    while out.len() < 16 {
        seed = (seed.wrapping_mul(MULT).wrapping_add(0xB)) & MASK;
        let mut r = (seed >> 16) as i32;
        for _ in 0..4.min(16 - out.len()) {
            out.push(r as u8);
            r >>= 8;
        }
    }
    out
}

/// The first session id of a server (`SessionTrackerImpl.initializeNextSessionId`):
/// the time in ms shifted into bits 8..48, the server id in the top byte.
pub fn initial_session_id(server_id: u8, now_ms: i64) -> i64 {
    let mut id = ((now_ms << 24) as u64 >> 8) as i64;
    id |= i64::from(server_id) << 56;
    if id == i64::MIN {
        id += 1;
    }
    id
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub timeout_ms: i32,
    /// When the session expires unless it is heard from.
    pub deadline: Instant,
    /// The connection currently attached, if any.
    pub conn: Option<u64>,
    /// A closeSession is on its way; further requests get SESSIONEXPIRED.
    pub closing: bool,
    /// Opened while this member served read-only: known here only, never logged, gone when
    /// the member rejoins a quorum (ZooKeeper's read-only server sessions).
    pub local: bool,
}

impl Session {
    pub fn new(id: i64, timeout_ms: i32, now: Instant, tick_ms: u64) -> Self {
        let mut s = Session {
            id,
            timeout_ms,
            deadline: now,
            conn: None,
            closing: false,
            local: false,
        };
        s.touch(now, tick_ms);
        s
    }

    /// Heard from the client: push the deadline out, rounded up to the next tick as
    /// ZooKeeper's expiry buckets do.
    pub fn touch(&mut self, now: Instant, tick_ms: u64) {
        let timeout = u64::try_from(self.timeout_ms).unwrap_or(0);
        let tick = tick_ms.max(1);
        let rounded = timeout.div_ceil(tick) * tick;
        self.deadline = now + Duration::from_millis(rounded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_match_apache_zookeeper() {
        // connect-new-session.hex
        let pw = password(0x0100_0002_5813_003c);
        assert_eq!(
            pw,
            [
                0x46, 0x3e, 0x56, 0x12, 0x0f, 0xe5, 0xf5, 0x02, 0xf8, 0x6e, 0x00, 0x32, 0x7f, 0x79,
                0x63, 0x9a
            ]
        );
        // connect-reconnect-existing-session.hex
        let pw = password(0x100000258130040);
        assert_eq!(
            pw,
            [
                0xf5, 0xe4, 0x82, 0x11, 0x8e, 0x87, 0x5c, 0xb2, 0x74, 0xd9, 0x85, 0x4c, 0x41, 0xb7,
                0x46, 0x71
            ]
        );
    }

    #[test]
    fn ids_carry_the_server_id() {
        let id = initial_session_id(3, 1_795_672_832_508);
        assert_eq!((id as u64) >> 56, 3);
    }
}
