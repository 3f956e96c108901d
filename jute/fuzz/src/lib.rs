//! Checks shared by the fuzz targets in `fuzz_targets/`.
//!
//! Every target feeds arbitrary bytes to a decoder (which must never panic: any byte string is a
//! value or a `DecodeError`) and, when decoding succeeds, re-encodes the value and decodes it again:
//! the second decode must succeed, consume exactly the re-encoding, and give an equal value.

use jute::{DecodeError, Encode, Reader};
use std::fmt::Debug;

/// Decodes `bytes` with `decode` and, on success, checks the round trip described above.
/// Returns the decoded value and how many input bytes the decoder consumed.
pub fn check_roundtrip<T, F>(bytes: &[u8], decode: F) -> Option<(T, usize)>
where
    T: Encode + PartialEq + Debug,
    F: Fn(&mut Reader<'_>) -> Result<T, DecodeError>,
{
    let mut r = Reader::new(bytes);
    let value = decode(&mut r).ok()?;
    let consumed = r.position();
    assert!(consumed <= bytes.len());
    let encoded = value.to_bytes();
    check_reencoding(&value, &encoded, decode);
    Some((value, consumed))
}

/// `encoded` (the encoding of `value`) must decode with `decode` to `value`, using every byte.
pub fn check_reencoding<T, F>(value: &T, encoded: &[u8], decode: F)
where
    T: PartialEq + Debug,
    F: Fn(&mut Reader<'_>) -> Result<T, DecodeError>,
{
    let mut r = Reader::new(encoded);
    let again = decode(&mut r).unwrap_or_else(|e| {
        panic!("the re-encoding of {value:?} does not decode: {e}\nre-encoding: {encoded:02x?}")
    });
    assert_eq!(
        &again, value,
        "decode(encode(x)) != x; re-encoding: {encoded:02x?}"
    );
    assert!(
        r.is_empty(),
        "decoding the re-encoding of {value:?} left {} bytes unread",
        r.remaining()
    );
}
