//! Client requests and responses as enums over the opcode, and the multi op lists.
//!
//! A request frame is `RequestHeader{xid, type}` + the record `type` names; [`Request::decode`]
//! reads that record. A response body depends on the request it answers, so
//! [`Response::decode`] takes the opcode.

use crate::data::Stat;
use crate::proto::*;
use crate::txn::CreateSessionTxn;
use crate::{Decode, DecodeError, Encode, OpCode, Reader};

/// One op of a `multi` (opcode 14, writes) or `multiRead` (opcode 22, reads).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MultiOp {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTTLRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    GetData(GetDataRequest),
    GetChildren(GetChildrenRequest),
}

impl MultiOp {
    pub fn op(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetData(_) => OpCode::GetData,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
        }
    }

    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetData(_) | MultiOp::GetChildren(_))
    }

    /// The path the op names.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => &r.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.encode(out),
            MultiOp::CreateTtl(r) => r.encode(out),
            MultiOp::Delete(r) => r.encode(out),
            MultiOp::SetData(r) => r.encode(out),
            MultiOp::Check(r) => r.encode(out),
            MultiOp::GetData(r) => r.encode(out),
            MultiOp::GetChildren(r) => r.encode(out),
        }
    }
}

const MULTI_END: MultiHeader = MultiHeader {
    type_: -1,
    done: true,
    err: -1,
};

/// The op list of a `multi` or `multiRead` request.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MultiRequest {
    pub ops: Vec<MultiOp>,
}

impl Encode for MultiRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        for op in &self.ops {
            MultiHeader {
                type_: op.op().code(),
                done: false,
                err: -1,
            }
            .encode(out);
            op.encode_body(out);
        }
        MULTI_END.encode(out);
    }
}

impl MultiRequest {
    /// Decodes the op list of opcode `multi` (writes only) or `multiRead` (reads only). Any other
    /// op type, or a mix, is undecodable: ZooKeeper answers MARSHALLINGERROR.
    pub fn decode_for(op: OpCode, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let reads = op == OpCode::MultiRead;
        let mut ops = Vec::new();
        loop {
            let header = MultiHeader::decode(r)?;
            if header.done {
                return Ok(MultiRequest { ops });
            }
            let invalid = DecodeError::Invalid {
                what: "multi op type",
                value: i64::from(header.type_),
            };
            let op = match (OpCode::try_from(header.type_), reads) {
                (Ok(OpCode::Create), false) => MultiOp::Create(Decode::decode(r)?),
                (Ok(OpCode::Create2), false) => MultiOp::Create2(Decode::decode(r)?),
                (Ok(OpCode::CreateContainer), false) => {
                    MultiOp::CreateContainer(Decode::decode(r)?)
                }
                (Ok(OpCode::CreateTtl), false) => MultiOp::CreateTtl(Decode::decode(r)?),
                (Ok(OpCode::Delete), false) => MultiOp::Delete(Decode::decode(r)?),
                (Ok(OpCode::SetData), false) => MultiOp::SetData(Decode::decode(r)?),
                (Ok(OpCode::Check), false) => MultiOp::Check(Decode::decode(r)?),
                (Ok(OpCode::GetData), true) => MultiOp::GetData(Decode::decode(r)?),
                (Ok(OpCode::GetChildren), true) => MultiOp::GetChildren(Decode::decode(r)?),
                _ => return Err(invalid),
            };
            ops.push(op);
        }
    }
}

/// One result of a multi: its type is in the MultiHeader.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MultiResult {
    /// Type 1: plain create and create2 ops (the server answers a create2 op as a create).
    Create(CreateResponse),
    /// Type 15: container and TTL create ops.
    Create2(Create2Response),
    Delete,
    SetData(SetDataResponse),
    Check,
    GetData(GetDataResponse),
    GetChildren(GetChildrenResponse),
    /// Type -1 with the error code in both the header and an ErrorResponse.
    Error(i32),
}

impl MultiResult {
    fn header(&self) -> MultiHeader {
        let (op, err) = match self {
            MultiResult::Create(_) => (OpCode::Create, 0),
            MultiResult::Create2(_) => (OpCode::Create2, 0),
            MultiResult::Delete => (OpCode::Delete, 0),
            MultiResult::SetData(_) => (OpCode::SetData, 0),
            MultiResult::Check => (OpCode::Check, 0),
            MultiResult::GetData(_) => (OpCode::GetData, 0),
            MultiResult::GetChildren(_) => (OpCode::GetChildren, 0),
            MultiResult::Error(err) => (OpCode::Error, *err),
        };
        MultiHeader {
            type_: op.code(),
            done: false,
            err,
        }
    }
}

/// The result list of a `multi` or `multiRead` response.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MultiResponse {
    pub results: Vec<MultiResult>,
}

impl Encode for MultiResponse {
    fn encode(&self, out: &mut Vec<u8>) {
        for result in &self.results {
            result.header().encode(out);
            match result {
                MultiResult::Create(r) => r.encode(out),
                MultiResult::Create2(r) => r.encode(out),
                MultiResult::SetData(r) => r.encode(out),
                MultiResult::GetData(r) => r.encode(out),
                MultiResult::GetChildren(r) => r.encode(out),
                MultiResult::Error(err) => ErrorResponse { err: *err }.encode(out),
                MultiResult::Delete | MultiResult::Check => {}
            }
        }
        MULTI_END.encode(out);
    }
}

impl Decode for MultiResponse {
    const MIN_SIZE: usize = MultiHeader::MIN_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut results = Vec::new();
        loop {
            let header = MultiHeader::decode(r)?;
            if header.done {
                return Ok(MultiResponse { results });
            }
            let result = match OpCode::try_from(header.type_) {
                Ok(OpCode::Create) => MultiResult::Create(Decode::decode(r)?),
                Ok(OpCode::Create2) => MultiResult::Create2(Decode::decode(r)?),
                Ok(OpCode::Delete) => MultiResult::Delete,
                Ok(OpCode::SetData) => MultiResult::SetData(Decode::decode(r)?),
                Ok(OpCode::Check) => MultiResult::Check,
                Ok(OpCode::GetData) => MultiResult::GetData(Decode::decode(r)?),
                Ok(OpCode::GetChildren) => MultiResult::GetChildren(Decode::decode(r)?),
                Ok(OpCode::Error) => MultiResult::Error(ErrorResponse::decode(r)?.err),
                _ => {
                    return Err(DecodeError::Invalid {
                        what: "multi result type",
                        value: i64::from(header.type_),
                    })
                }
            };
            results.push(result);
        }
    }
}

/// A client request: the record after the RequestHeader, by opcode.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Request {
    Create(CreateRequest),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetACLRequest),
    SetAcl(SetACLRequest),
    GetChildren(GetChildrenRequest),
    Sync(SyncRequest),
    Ping,
    GetChildren2(GetChildren2Request),
    Check(CheckVersionRequest),
    Multi(MultiRequest),
    Create2(CreateRequest),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    CreateContainer(CreateRequest),
    /// Internal (the container manager's); the body is the raw path bytes, not a record.
    DeleteContainer(Vec<u8>),
    CreateTtl(CreateTTLRequest),
    MultiRead(MultiRequest),
    Auth(AuthPacket),
    SetWatches(SetWatches),
    Sasl(GetSASLRequest),
    GetEphemerals(GetEphemeralsRequest),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    SetWatches2(SetWatches2),
    AddWatch(AddWatchRequest),
    WhoAmI,
    CreateSession(CreateSessionTxn),
    CloseSession,
}

impl Request {
    /// Decodes the body of a request of type `op`. `Err(Invalid)` for an opcode no client may
    /// send (ZooKeeper answers UNIMPLEMENTED and closes).
    pub fn decode(op: OpCode, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use Request as R;
        Ok(match op {
            OpCode::Create => R::Create(Decode::decode(r)?),
            OpCode::Delete => R::Delete(Decode::decode(r)?),
            OpCode::Exists => R::Exists(Decode::decode(r)?),
            OpCode::GetData => R::GetData(Decode::decode(r)?),
            OpCode::SetData => R::SetData(Decode::decode(r)?),
            OpCode::GetAcl => R::GetAcl(Decode::decode(r)?),
            OpCode::SetAcl => R::SetAcl(Decode::decode(r)?),
            OpCode::GetChildren => R::GetChildren(Decode::decode(r)?),
            OpCode::Sync => R::Sync(Decode::decode(r)?),
            OpCode::Ping => R::Ping,
            OpCode::GetChildren2 => R::GetChildren2(Decode::decode(r)?),
            OpCode::Check => R::Check(Decode::decode(r)?),
            OpCode::Multi => R::Multi(MultiRequest::decode_for(op, r)?),
            OpCode::Create2 => R::Create2(Decode::decode(r)?),
            OpCode::Reconfig => R::Reconfig(Decode::decode(r)?),
            OpCode::CheckWatches => R::CheckWatches(Decode::decode(r)?),
            OpCode::RemoveWatches => R::RemoveWatches(Decode::decode(r)?),
            OpCode::CreateContainer => R::CreateContainer(Decode::decode(r)?),
            OpCode::DeleteContainer => R::DeleteContainer(r.rest().to_vec()),
            OpCode::CreateTtl => R::CreateTtl(Decode::decode(r)?),
            OpCode::MultiRead => R::MultiRead(MultiRequest::decode_for(op, r)?),
            OpCode::Auth => R::Auth(Decode::decode(r)?),
            OpCode::SetWatches => R::SetWatches(Decode::decode(r)?),
            OpCode::Sasl => R::Sasl(Decode::decode(r)?),
            OpCode::GetEphemerals => R::GetEphemerals(Decode::decode(r)?),
            OpCode::GetAllChildrenNumber => R::GetAllChildrenNumber(Decode::decode(r)?),
            OpCode::SetWatches2 => R::SetWatches2(Decode::decode(r)?),
            OpCode::AddWatch => R::AddWatch(Decode::decode(r)?),
            OpCode::WhoAmI => R::WhoAmI,
            OpCode::CreateSession => R::CreateSession(Decode::decode(r)?),
            OpCode::CloseSession => R::CloseSession,
            OpCode::Notification | OpCode::Error => {
                return Err(DecodeError::Invalid {
                    what: "request opcode",
                    value: i64::from(op.code()),
                })
            }
        })
    }

    pub fn op(&self) -> OpCode {
        use Request as R;
        match self {
            R::Create(_) => OpCode::Create,
            R::Delete(_) => OpCode::Delete,
            R::Exists(_) => OpCode::Exists,
            R::GetData(_) => OpCode::GetData,
            R::SetData(_) => OpCode::SetData,
            R::GetAcl(_) => OpCode::GetAcl,
            R::SetAcl(_) => OpCode::SetAcl,
            R::GetChildren(_) => OpCode::GetChildren,
            R::Sync(_) => OpCode::Sync,
            R::Ping => OpCode::Ping,
            R::GetChildren2(_) => OpCode::GetChildren2,
            R::Check(_) => OpCode::Check,
            R::Multi(_) => OpCode::Multi,
            R::Create2(_) => OpCode::Create2,
            R::Reconfig(_) => OpCode::Reconfig,
            R::CheckWatches(_) => OpCode::CheckWatches,
            R::RemoveWatches(_) => OpCode::RemoveWatches,
            R::CreateContainer(_) => OpCode::CreateContainer,
            R::DeleteContainer(_) => OpCode::DeleteContainer,
            R::CreateTtl(_) => OpCode::CreateTtl,
            R::MultiRead(_) => OpCode::MultiRead,
            R::Auth(_) => OpCode::Auth,
            R::SetWatches(_) => OpCode::SetWatches,
            R::Sasl(_) => OpCode::Sasl,
            R::GetEphemerals(_) => OpCode::GetEphemerals,
            R::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            R::SetWatches2(_) => OpCode::SetWatches2,
            R::AddWatch(_) => OpCode::AddWatch,
            R::WhoAmI => OpCode::WhoAmI,
            R::CreateSession(_) => OpCode::CreateSession,
            R::CloseSession => OpCode::CloseSession,
        }
    }

    /// Is this a write (a txn), as opposed to a read or session-level request?
    pub fn is_write(&self) -> bool {
        matches!(
            self.op(),
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Check
                | OpCode::Multi
                | OpCode::Reconfig
                | OpCode::CreateSession
                | OpCode::CloseSession
        )
    }

    /// A whole request frame: length, RequestHeader{xid, op}, body.
    pub fn encode_frame(&self, xid: i32, out: &mut Vec<u8>) {
        crate::frame::write(out, |out| {
            RequestHeader {
                xid,
                type_: self.op().code(),
            }
            .encode(out);
            self.encode(out);
        });
    }
}

impl Encode for Request {
    fn encode(&self, out: &mut Vec<u8>) {
        use Request as R;
        match self {
            R::Create(r) | R::Create2(r) | R::CreateContainer(r) => r.encode(out),
            R::Delete(r) => r.encode(out),
            R::Exists(r) => r.encode(out),
            R::GetData(r) => r.encode(out),
            R::SetData(r) => r.encode(out),
            R::GetAcl(r) => r.encode(out),
            R::SetAcl(r) => r.encode(out),
            R::GetChildren(r) => r.encode(out),
            R::Sync(r) => r.encode(out),
            R::GetChildren2(r) => r.encode(out),
            R::Check(r) => r.encode(out),
            R::Multi(r) | R::MultiRead(r) => r.encode(out),
            R::Reconfig(r) => r.encode(out),
            R::CheckWatches(r) => r.encode(out),
            R::RemoveWatches(r) => r.encode(out),
            R::DeleteContainer(path) => out.extend_from_slice(path),
            R::CreateTtl(r) => r.encode(out),
            R::Auth(r) => r.encode(out),
            R::SetWatches(r) => r.encode(out),
            R::Sasl(r) => r.encode(out),
            R::GetEphemerals(r) => r.encode(out),
            R::GetAllChildrenNumber(r) => r.encode(out),
            R::SetWatches2(r) => r.encode(out),
            R::AddWatch(r) => r.encode(out),
            R::CreateSession(r) => r.encode(out),
            R::Ping | R::WhoAmI | R::CloseSession => {}
        }
    }
}

/// A successful response body (errors carry none), by the opcode of the request.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Response {
    /// delete, ping, auth, setWatches, check/removeWatches, closeSession, setACL... without body.
    Empty,
    Create(CreateResponse),
    Create2(Create2Response),
    Exists(ExistsResponse),
    GetData(GetDataResponse),
    SetData(SetDataResponse),
    GetAcl(GetACLResponse),
    SetAcl(SetACLResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    Sync(SyncResponse),
    Multi(MultiResponse),
    /// reconfig answers with the new config as a GetDataResponse.
    Reconfig(GetDataResponse),
    Sasl(SetSASLResponse),
    GetEphemerals(GetEphemeralsResponse),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    /// addWatch's success carries ErrorResponse{0}.
    AddWatch(ErrorResponse),
    WhoAmI(WhoAmIResponse),
}

impl Response {
    /// Decodes the body of a successful reply to a request of type `op`.
    pub fn decode(op: OpCode, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use Response as S;
        Ok(match op {
            OpCode::Create => S::Create(Decode::decode(r)?),
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
                S::Create2(Decode::decode(r)?)
            }
            OpCode::Exists => S::Exists(Decode::decode(r)?),
            OpCode::GetData => S::GetData(Decode::decode(r)?),
            OpCode::SetData => S::SetData(Decode::decode(r)?),
            OpCode::GetAcl => S::GetAcl(Decode::decode(r)?),
            OpCode::SetAcl => S::SetAcl(Decode::decode(r)?),
            OpCode::GetChildren => S::GetChildren(Decode::decode(r)?),
            OpCode::GetChildren2 => S::GetChildren2(Decode::decode(r)?),
            OpCode::Sync => S::Sync(Decode::decode(r)?),
            OpCode::Multi | OpCode::MultiRead => S::Multi(Decode::decode(r)?),
            OpCode::Reconfig => S::Reconfig(Decode::decode(r)?),
            OpCode::Sasl => S::Sasl(Decode::decode(r)?),
            OpCode::GetEphemerals => S::GetEphemerals(Decode::decode(r)?),
            OpCode::GetAllChildrenNumber => S::GetAllChildrenNumber(Decode::decode(r)?),
            OpCode::AddWatch => S::AddWatch(Decode::decode(r)?),
            OpCode::WhoAmI => S::WhoAmI(Decode::decode(r)?),
            _ => S::Empty,
        })
    }

    /// The Stat a response carries, if any.
    pub fn stat(&self) -> Option<&Stat> {
        match self {
            Response::Create2(r) => Some(&r.stat),
            Response::Exists(r) => Some(&r.stat),
            Response::GetData(r) | Response::Reconfig(r) => Some(&r.stat),
            Response::SetData(r) => Some(&r.stat),
            Response::GetAcl(r) => Some(&r.stat),
            Response::SetAcl(r) => Some(&r.stat),
            Response::GetChildren2(r) => Some(&r.stat),
            _ => None,
        }
    }
}

impl Encode for Response {
    fn encode(&self, out: &mut Vec<u8>) {
        use Response as S;
        match self {
            S::Empty => {}
            S::Create(r) => r.encode(out),
            S::Create2(r) => r.encode(out),
            S::Exists(r) => r.encode(out),
            S::GetData(r) | S::Reconfig(r) => r.encode(out),
            S::SetData(r) => r.encode(out),
            S::GetAcl(r) => r.encode(out),
            S::SetAcl(r) => r.encode(out),
            S::GetChildren(r) => r.encode(out),
            S::GetChildren2(r) => r.encode(out),
            S::Sync(r) => r.encode(out),
            S::Multi(r) => r.encode(out),
            S::Sasl(r) => r.encode(out),
            S::GetEphemerals(r) => r.encode(out),
            S::GetAllChildrenNumber(r) => r.encode(out),
            S::AddWatch(r) => r.encode(out),
            S::WhoAmI(r) => r.encode(out),
        }
    }
}
