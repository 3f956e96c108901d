//! The Jute binary encoding: big-endian integers, length-prefixed buffers, strings and vectors
//! (length -1 = null), records as their fields in order.
//!
//! Decoding is total. Every read checks what remains first; a length is checked against the
//! remaining bytes *before* anything is reserved, so a hostile 2 GiB length costs nothing.

use thiserror::Error;

/// Default `jute.maxbuffer`: the largest frame a server accepts (0xfffff bytes).
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

/// Why a byte string is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the record did.
    #[error("incomplete record: {needed} more bytes needed")]
    Incomplete { needed: usize },
    /// A value no valid record holds (negative length, unknown tag).
    #[error("invalid {what}: {value}")]
    Invalid { what: &'static str, value: i64 },
    /// A length above the configured limit.
    #[error("length {len} exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
}

/// Writes a value in Jute encoding.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);

    /// The encoding as a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Reads a value in Jute encoding.
pub trait Decode: Sized {
    /// The fewest bytes any encoding of this type takes; bounds vector pre-allocation.
    const MIN_SIZE: usize;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes from the start of `bytes`; trailing bytes are ignored, as ZooKeeper does.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(&mut Reader::new(bytes))
    }
}

/// A cursor over a byte slice, with the inner length limit ZooKeeper applies to buffers and
/// strings (`jute.maxbuffer` + `zookeeper.jute.maxbuffer.extrasize`, by default 2 x 0xfffff).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_len: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_limit(buf, 2 * DEFAULT_MAX_BUFFER)
    }

    /// A reader whose buffers and strings may be at most `max_len` bytes long.
    pub fn with_limit(buf: &'a [u8], max_len: usize) -> Self {
        Self {
            buf,
            pos: 0,
            max_len,
        }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(DecodeError::Incomplete {
                needed: n - remaining,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        // DataInput.readBoolean: any non-zero byte is true.
        Ok(self.take(1)?[0] != 0)
    }

    /// A length prefix: `None` for -1 (null), an error for other negatives, for more than
    /// `max_len`, or for more elements than the remaining bytes could hold.
    fn read_len(
        &mut self,
        what: &'static str,
        min_elem: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(len) = usize::try_from(len) else {
            return Err(DecodeError::Invalid {
                what,
                value: i64::from(len),
            });
        };
        if min_elem == 1 && len > self.max_len {
            return Err(DecodeError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        let needed = len.saturating_mul(min_elem.max(1));
        if needed > self.remaining() {
            return Err(DecodeError::Incomplete {
                needed: needed - self.remaining(),
            });
        }
        Ok(Some(len))
    }

    /// `buffer`: `None` is null (length -1), distinct from empty.
    pub fn read_buffer(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.read_len("buffer length", 1)? {
            None => Ok(None),
            Some(len) => Ok(Some(self.take(len)?.to_vec())),
        }
    }

    /// `buffer` borrowed from the input.
    pub fn read_buffer_ref(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.read_len("buffer length", 1)? {
            None => Ok(None),
            Some(len) => Ok(Some(self.take(len)?)),
        }
    }

    /// `ustring`: null reads as the empty string (no ZooKeeper request distinguishes them).
    pub fn read_ustring(&mut self) -> Result<String, DecodeError> {
        match self.read_len("string length", 1)? {
            None => Ok(String::new()),
            Some(len) => Ok(decode_java_utf8(self.take(len)?)),
        }
    }

    /// `vector<T>`: `None` is null (count -1).
    pub fn read_vector<T: Decode>(&mut self) -> Result<Option<Vec<T>>, DecodeError> {
        match self.read_len("vector length", T::MIN_SIZE)? {
            None => Ok(None),
            Some(count) => {
                // read_len proved count * MIN_SIZE bytes are present; never reserve more
                // elements than that proves.
                let mut out = Vec::with_capacity(count.min(self.remaining()));
                for _ in 0..count {
                    out.push(T::decode(self)?);
                }
                Ok(Some(out))
            }
        }
    }
}

/// Decodes a Jute string as the Java reader does: standard UTF-8, malformed input replaced by
/// U+FFFD. The one extension: a surrogate pair written as two 3-byte sequences (CESU-8, which
/// the Java *writer* produces for characters outside the BMP) is read back as that character,
/// so what Apache ZooKeeper writes round-trips.
pub fn decode_java_utf8(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => decode_cesu8_lossy(bytes),
    }
}

fn decode_cesu8_lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(c) = surrogate_pair_at(bytes, i) {
            out.push(c);
            i += 6;
            continue;
        }
        match std::str::from_utf8(&bytes[i..]) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) if e.valid_up_to() > 0 => {
                let valid = &bytes[i..i + e.valid_up_to()];
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                i += e.valid_up_to();
            }
            Err(e) => {
                out.push('\u{FFFD}');
                i += e.error_len().unwrap_or(bytes.len() - i);
            }
        }
    }
    out
}

/// The character encoded at `i` as a CESU-8 surrogate pair, if there is one.
fn surrogate_pair_at(bytes: &[u8], i: usize) -> Option<char> {
    let hi = surrogate(bytes.get(i..i + 3)?)?;
    let lo = surrogate(bytes.get(i + 3..i + 6)?)?;
    if (0xD800..0xDC00).contains(&hi) && (0xDC00..0xE000).contains(&lo) {
        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
    } else {
        None
    }
}

fn surrogate(b: &[u8]) -> Option<u32> {
    if b.len() == 3 && b[0] == 0xED && (b[1] & 0xC0) == 0x80 && (b[2] & 0xC0) == 0x80 {
        Some(0xD000 | (u32::from(b[1] & 0x3F) << 6) | u32::from(b[2] & 0x3F))
    } else {
        None
    }
}

/// Encodes a string as the Java writer does: each UTF-16 code unit on its own, so a character
/// outside the BMP becomes two 3-byte surrogate encodings (6 bytes, not 4).
pub fn write_ustring(out: &mut Vec<u8>, s: &str) {
    // ASCII (nearly every path, scheme and id) is checked a word at a time.
    if s.is_ascii() || s.bytes().all(|b| b < 0xF0) {
        write_len(out, s.len());
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut units = [0u16; 2];
    for c in s.chars() {
        if (c as u32) < 0x10000 {
            let mut tmp = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        } else {
            for &unit in c.encode_utf16(&mut units).iter() {
                let u = u32::from(unit);
                out.extend_from_slice(&[
                    0xE0 | (u >> 12) as u8,
                    0x80 | ((u >> 6) & 0x3F) as u8,
                    0x80 | (u & 0x3F) as u8,
                ]);
            }
        }
    }
    let len = out.len() - start - 4;
    out[start..start + 4].copy_from_slice(&len_i32(len).to_be_bytes());
}

fn len_i32(len: usize) -> i32 {
    // Lengths are bounded by the frame size far below i32::MAX; saturate rather than wrap.
    i32::try_from(len).unwrap_or(i32::MAX)
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&len_i32(len).to_be_bytes());
}

/// `buffer`: `None` is written as length -1.
pub fn write_buffer(out: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(data) => {
            write_len(out, data.len());
            out.extend_from_slice(data);
        }
    }
}

/// `vector<T>`: `None` is written as count -1.
pub fn write_vector<T: Encode>(out: &mut Vec<u8>, items: Option<&[T]>) {
    match items {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(items) => {
            write_len(out, items.len());
            for item in items {
                item.encode(out);
            }
        }
    }
}

macro_rules! primitive {
    ($t:ty, $n:expr) => {
        impl Encode for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
        }
        impl Decode for $t {
            const MIN_SIZE: usize = $n;
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let mut b = [0u8; $n];
                b.copy_from_slice(r.take($n)?);
                Ok(<$t>::from_be_bytes(b))
            }
        }
    };
}
primitive!(i8, 1);
primitive!(i32, 4);
primitive!(i64, 8);
primitive!(f32, 4);
primitive!(f64, 8);

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Decode for bool {
    const MIN_SIZE: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_bool()
    }
}

impl Encode for String {
    fn encode(&self, out: &mut Vec<u8>) {
        write_ustring(out, self);
    }
}

impl Encode for str {
    fn encode(&self, out: &mut Vec<u8>) {
        write_ustring(out, self);
    }
}

impl Decode for String {
    const MIN_SIZE: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_ustring()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_bmp_is_written_as_java_does_and_read_back() {
        let mut out = Vec::new();
        write_ustring(&mut out, "/\u{1F600}");
        assert_eq!(out, [0, 0, 0, 7, b'/', 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]);
        assert_eq!(String::from_bytes(&out), Ok("/\u{1F600}".to_string()));
    }

    #[test]
    fn malformed_utf8_is_replaced_not_rejected() {
        let s = decode_java_utf8(&[b'a', 0xFF, b'b', 0xED, 0xA0, 0xBD]);
        assert!(s.starts_with("a\u{FFFD}b\u{FFFD}"), "{s:?}");
    }

    #[test]
    fn negative_lengths_other_than_null_are_invalid() {
        let bytes = (-2i32).to_be_bytes();
        assert!(matches!(
            Reader::new(&bytes).read_buffer(),
            Err(DecodeError::Invalid { .. })
        ));
        let bytes = (-1i32).to_be_bytes();
        assert_eq!(Reader::new(&bytes).read_buffer(), Ok(None));
    }

    #[test]
    fn huge_lengths_are_refused_before_allocating() {
        let bytes = i32::MAX.to_be_bytes();
        assert!(matches!(
            Reader::new(&bytes).read_buffer(),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            Reader::new(&bytes).read_vector::<String>(),
            Err(DecodeError::Incomplete { .. })
        ));
        let bytes = 100i32.to_be_bytes();
        assert!(matches!(
            Reader::with_limit(&bytes, 1000).read_buffer(),
            Err(DecodeError::Incomplete { needed: 100 })
        ));
    }
}
