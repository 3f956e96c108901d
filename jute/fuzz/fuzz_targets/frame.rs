//! A client connection's byte stream: `frame::check` on arbitrary bytes (with the default
//! `jute.maxbuffer` and with a tiny one), then, for a whole frame, RequestHeader + the Request its
//! opcode names, as the server reads it. A decoded request re-encodes (via `encode_frame`) to a
//! frame that checks and decodes to the same header and request.
#![no_main]

use jute::frame::{self, FrameError};
use jute::proto::RequestHeader;
use jute::{Decode, OpCode, Reader, Request, DEFAULT_MAX_BUFFER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for max in [DEFAULT_MAX_BUFFER, 64] {
        match frame::check(data, max) {
            Ok(Some(len)) => {
                assert!(len <= max && frame::LEN_BYTES + len <= data.len());
                if max == DEFAULT_MAX_BUFFER {
                    request(&data[frame::LEN_BYTES..frame::LEN_BYTES + len]);
                }
            }
            Ok(None) => {
                // Either the prefix is incomplete or the payload is.
                if let Ok(Some(len)) = frame::announced_len(data, max) {
                    assert!(data.len() < frame::LEN_BYTES + len);
                } else {
                    assert!(data.len() < frame::LEN_BYTES);
                }
            }
            Err(FrameError::Negative(n)) => assert!(n < 0),
            Err(FrameError::TooLarge { len, max: m }) => assert!(len > m && m == max),
        }
    }
});

fn request(payload: &[u8]) {
    let mut r = Reader::new(payload);
    let Ok(header) = RequestHeader::decode(&mut r) else {
        assert!(payload.len() < RequestHeader::MIN_SIZE);
        return;
    };
    let Ok(op) = OpCode::try_from(header.type_) else {
        return;
    };
    let decoded = Request::decode(op, &mut r);
    if !op.is_valid_request() {
        assert!(decoded.is_err(), "{op:?} is no client request");
        return;
    }
    let Ok(req) = decoded else { return };
    assert_eq!(req.op(), op);

    let mut out = Vec::new();
    req.encode_frame(header.xid, &mut out);
    let len = frame::check(&out, usize::MAX >> 1)
        .expect("a valid length")
        .expect("a whole frame");
    assert_eq!(frame::LEN_BYTES + len, out.len());
    let mut r2 = Reader::new(&out[frame::LEN_BYTES..]);
    let header2 = RequestHeader::decode(&mut r2).expect("header re-decodes");
    assert_eq!(header2, header);
    let again = Request::decode(op, &mut r2).expect("request re-decodes");
    assert_eq!(again, req);
}
