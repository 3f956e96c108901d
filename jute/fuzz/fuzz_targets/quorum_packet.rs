//! Server-to-server messages: the bytes as a QuorumPacket (and the TxnEntry its data carries in a
//! PROPOSAL), a TxnEntry, an election Notification and an InitialMessage. Decoded values must
//! round-trip.
#![no_main]

use jute::quorum::{InitialMessage, LearnerInfo, Notification, QuorumPacket};
use jute::{Decode, TxnEntry};
use jute_fuzz::check_roundtrip;
use libfuzzer_sys::fuzz_target;

/// Leader.PROPOSAL and Leader.INFORM carry a whole txn; FOLLOWERINFO/OBSERVERINFO a LearnerInfo.
const PROPOSAL: i32 = 2;
const INFORM: i32 = 8;
const FOLLOWERINFO: i32 = 11;
const OBSERVERINFO: i32 = 16;

fuzz_target!(|data: &[u8]| {
    if let Some((packet, _)) = check_roundtrip(data, QuorumPacket::decode) {
        if let Some(inner) = packet.data.as_deref() {
            match packet.type_ {
                PROPOSAL | INFORM => {
                    check_roundtrip(inner, TxnEntry::decode);
                }
                FOLLOWERINFO | OBSERVERINFO => {
                    check_roundtrip(inner, LearnerInfo::decode);
                }
                _ => {}
            }
        }
    }
    if let Some((txn, _)) = check_roundtrip(data, TxnEntry::decode) {
        assert_eq!(txn.record.op().code(), txn.header.type_);
    }
    check_roundtrip(data, Notification::decode);
    check_roundtrip(data, InitialMessage::decode);
});
