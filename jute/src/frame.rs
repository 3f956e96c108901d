//! Framing: every message is a 4-byte big-endian signed length and that many bytes.
//!
//! Two phases, as in mini-redis: [`check`] looks at buffered bytes without allocating and says
//! whether a whole frame is there; only then is the payload decoded.

use thiserror::Error;

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;

/// A length prefix ZooKeeper refuses (`NIOServerCnxn.readLength`): the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("negative frame length {0}")]
    Negative(i32),
    #[error("frame length {len} exceeds jute.maxbuffer {max}")]
    TooLarge { len: usize, max: usize },
}

/// The length announced by the first 4 bytes of `buf`, checked against `max_buffer`.
/// `Ok(None)`: fewer than 4 bytes buffered.
pub fn announced_len(buf: &[u8], max_buffer: usize) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buf.get(..LEN_BYTES) else {
        return Ok(None);
    };
    let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let Ok(len) = usize::try_from(len) else {
        return Err(FrameError::Negative(len));
    };
    if len > max_buffer {
        return Err(FrameError::TooLarge {
            len,
            max: max_buffer,
        });
    }
    Ok(Some(len))
}

/// If `buf` starts with a whole frame, the payload's length; `Ok(None)` if more bytes are needed.
pub fn check(buf: &[u8], max_buffer: usize) -> Result<Option<usize>, FrameError> {
    Ok(announced_len(buf, max_buffer)?.filter(|&len| buf.len() >= LEN_BYTES + len))
}

/// Starts a frame in `out`: reserves the length prefix and returns where it is.
pub fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    start
}

/// Fills in the length prefix of the frame begun at `start`.
pub fn finish(out: &mut [u8], start: usize) {
    let len = out.len() - start - LEN_BYTES;
    let len = i32::try_from(len).unwrap_or(i32::MAX);
    out[start..start + LEN_BYTES].copy_from_slice(&len.to_be_bytes());
}

/// Appends one frame whose payload `write` produces.
pub fn write(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let start = begin(out);
    write(out);
    finish(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_MAX_BUFFER;

    #[test]
    fn the_limit_itself_is_accepted_one_more_is_not() {
        let at = (DEFAULT_MAX_BUFFER as i32).to_be_bytes();
        assert_eq!(
            announced_len(&at, DEFAULT_MAX_BUFFER),
            Ok(Some(DEFAULT_MAX_BUFFER))
        );
        let over = (DEFAULT_MAX_BUFFER as i32 + 1).to_be_bytes();
        assert!(matches!(
            announced_len(&over, DEFAULT_MAX_BUFFER),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(
            announced_len(&(-1i32).to_be_bytes(), 10),
            Err(FrameError::Negative(-1))
        );
    }

    #[test]
    fn check_waits_for_the_whole_payload() {
        assert_eq!(check(&[0, 0], 100), Ok(None));
        assert_eq!(check(&[0, 0, 0, 2, 9], 100), Ok(None));
        assert_eq!(check(&[0, 0, 0, 2, 9, 9, 7], 100), Ok(Some(2)));
        let mut out = Vec::new();
        write(&mut out, |o| o.extend_from_slice(b"abc"));
        assert_eq!(out, [0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
