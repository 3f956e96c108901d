//! The multi op lists: the same bytes as the body of a `multi` (writes only), of a `multiRead`
//! (reads only) and of a multi response. Decoded values must round-trip, and a decoded list
//! holds only the kind of op its opcode allows.
#![no_main]

use jute::{Decode, MultiRequest, MultiResponse, OpCode};
use jute_fuzz::check_roundtrip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((m, _)) = check_roundtrip(data, |r| MultiRequest::decode_for(OpCode::Multi, r)) {
        assert!(
            m.ops.iter().all(|op| !op.is_read()),
            "read op in a multi: {m:?}"
        );
    }
    if let Some((m, _)) = check_roundtrip(data, |r| MultiRequest::decode_for(OpCode::MultiRead, r))
    {
        assert!(
            m.ops.iter().all(|op| op.is_read()),
            "write op in a multiRead: {m:?}"
        );
    }
    check_roundtrip(data, MultiResponse::decode);
});
