//! The handshake frames: `Connect::from_bytes` (and `ConnectReply::from_bytes`) on arbitrary
//! bytes, then on exactly the record without the trailing readOnly byte (an old client: `None`)
//! and with one such byte (`Some(byte != 0)`). Decoded values must round-trip.
#![no_main]

use jute::proto::{ConnectRequest, ConnectResponse};
use jute::{Connect, ConnectReply, Decode, Reader};
use jute_fuzz::check_roundtrip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_roundtrip(data, Connect::decode);
    check_roundtrip(data, ConnectReply::decode);

    // The bare ConnectRequest, then the same bytes with and without a readOnly byte.
    let mut r = Reader::new(data);
    if let Ok(request) = ConnectRequest::decode(&mut r) {
        let end = r.position();
        let (old, _) = check_roundtrip(&data[..end], Connect::decode).expect("decodes without");
        assert_eq!(old.read_only, None);
        assert_eq!(old.request, request);
        if let Some(&byte) = data.get(end) {
            let (new, used) =
                check_roundtrip(&data[..=end], Connect::decode).expect("decodes with");
            assert_eq!(new.read_only, Some(byte != 0));
            assert_eq!(new.request, request);
            assert_eq!(used, end + 1);
        }
    }

    let mut r = Reader::new(data);
    if let Ok(response) = ConnectResponse::decode(&mut r) {
        let end = r.position();
        let (old, _) =
            check_roundtrip(&data[..end], ConnectReply::decode).expect("decodes without");
        assert_eq!(old.read_only, None);
        assert_eq!(old.response, response);
        if let Some(&byte) = data.get(end) {
            let (new, _) =
                check_roundtrip(&data[..=end], ConnectReply::decode).expect("decodes with");
            assert_eq!(new.read_only, Some(byte != 0));
        }
    }
});
