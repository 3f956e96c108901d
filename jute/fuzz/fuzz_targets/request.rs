//! A request body by opcode: the first 4 bytes (big-endian i32) pick the opcode, the rest is the
//! body given to `Request::decode`. A valid opcode number is used as is (so seeds are simply
//! `type ++ body` from captured frames); any other number indexes `OpCode::ALL`. The same body is
//! also decoded as the `Response` to that opcode. Decoded values must round-trip.
#![no_main]

use jute::{Encode, OpCode, Reader, Request, Response};
use jute_fuzz::{check_reencoding, check_roundtrip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first_chunk::<4>() else {
        return;
    };
    let n = i32::from_be_bytes(*selector);
    let op =
        OpCode::try_from(n).unwrap_or(OpCode::ALL[n.unsigned_abs() as usize % OpCode::ALL.len()]);

    if let Ok(req) = Request::decode(op, &mut Reader::new(body)) {
        assert!(op.is_valid_request(), "{op:?} is no client request");
        assert_eq!(req.op(), op);
        let encoded = req.to_bytes();
        if op == OpCode::DeleteContainer {
            // Its body is the raw rest of the frame, which `Request::decode` borrows without
            // advancing the reader: compare values only.
            let again = Request::decode(op, &mut Reader::new(&encoded))
                .expect("deleteContainer re-decodes");
            assert_eq!(again, req);
        } else {
            check_reencoding(&req, &encoded, |r| Request::decode(op, r));
        }
    }

    check_roundtrip(body, |r| Response::decode(op, r));
});
