//! The handshake frames, whose trailing `readOnly` byte is not in the IDL: a client that omits
//! it (pre-3.4) gets a ConnectResponse without it.

use crate::proto::{ConnectRequest, ConnectResponse};
use crate::{Decode, DecodeError, Encode, Reader};

/// The first frame of a client connection.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Connect {
    pub request: ConnectRequest,
    /// `None`: an old client that sent no readOnly byte.
    pub read_only: Option<bool>,
}

/// The server's answer to [`Connect`].
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ConnectReply {
    pub response: ConnectResponse,
    /// Present iff the request carried one.
    pub read_only: Option<bool>,
}

fn read_trailing_bool(r: &mut Reader<'_>) -> Result<Option<bool>, DecodeError> {
    if r.is_empty() {
        Ok(None)
    } else {
        r.read_bool().map(Some)
    }
}

impl Encode for Connect {
    fn encode(&self, out: &mut Vec<u8>) {
        self.request.encode(out);
        if let Some(ro) = self.read_only {
            ro.encode(out);
        }
    }
}

impl Decode for Connect {
    const MIN_SIZE: usize = ConnectRequest::MIN_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request = ConnectRequest::decode(r)?;
        Ok(Connect {
            request,
            read_only: read_trailing_bool(r)?,
        })
    }
}

impl Encode for ConnectReply {
    fn encode(&self, out: &mut Vec<u8>) {
        self.response.encode(out);
        if let Some(ro) = self.read_only {
            ro.encode(out);
        }
    }
}

impl Decode for ConnectReply {
    const MIN_SIZE: usize = ConnectResponse::MIN_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let response = ConnectResponse::decode(r)?;
        Ok(ConnectReply {
            response,
            read_only: read_trailing_bool(r)?,
        })
    }
}
