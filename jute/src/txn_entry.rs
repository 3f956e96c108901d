//! A whole transaction as it is proposed and logged: TxnHeader, the record its type names
//! (absent for some types) and an optional TxnDigest, detected by the bytes that remain.

use crate::txn::*;
use crate::{Decode, DecodeError, Encode, OpCode, Reader};

/// The record of a transaction, by the TxnHeader type.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum TxnRecord {
    CreateSession(CreateSessionTxn),
    /// Absent in pre-3.6 logs and with `closeSessionTxn.enabled=false`.
    CloseSession(Option<CloseSessionTxn>),
    Create(CreateTxn),
    Create2(CreateTxn),
    CreateContainer(CreateContainerTxn),
    CreateTtl(CreateTTLTxn),
    Delete(DeleteTxn),
    DeleteContainer(DeleteTxn),
    SetData(SetDataTxn),
    Reconfig(SetDataTxn),
    SetAcl(SetACLTxn),
    Check(CheckVersionTxn),
    Error(ErrorTxn),
    Multi(MultiTxn),
}

impl TxnRecord {
    /// The TxnHeader type of this record.
    pub fn op(&self) -> OpCode {
        match self {
            TxnRecord::CreateSession(_) => OpCode::CreateSession,
            TxnRecord::CloseSession(_) => OpCode::CloseSession,
            TxnRecord::Create(_) => OpCode::Create,
            TxnRecord::Create2(_) => OpCode::Create2,
            TxnRecord::CreateContainer(_) => OpCode::CreateContainer,
            TxnRecord::CreateTtl(_) => OpCode::CreateTtl,
            TxnRecord::Delete(_) => OpCode::Delete,
            TxnRecord::DeleteContainer(_) => OpCode::DeleteContainer,
            TxnRecord::SetData(_) => OpCode::SetData,
            TxnRecord::Reconfig(_) => OpCode::Reconfig,
            TxnRecord::SetAcl(_) => OpCode::SetAcl,
            TxnRecord::Check(_) => OpCode::Check,
            TxnRecord::Error(_) => OpCode::Error,
            TxnRecord::Multi(_) => OpCode::Multi,
        }
    }

    /// A multi txn of `subs`, each encoded into its Txn.
    pub fn multi(subs: &[TxnRecord]) -> TxnRecord {
        let txns = subs
            .iter()
            .map(|r| Txn {
                type_: r.op().code(),
                data: Some(r.to_bytes()),
            })
            .collect();
        TxnRecord::Multi(MultiTxn { txns: Some(txns) })
    }

    /// Decodes the record of a txn whose header type is `type_`.
    pub fn decode_for(type_: i32, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let op = OpCode::try_from(type_).map_err(|v| DecodeError::Invalid {
            what: "txn type",
            value: i64::from(v),
        })?;
        Ok(match op {
            OpCode::CreateSession => TxnRecord::CreateSession(Decode::decode(r)?),
            OpCode::CloseSession if r.is_empty() => TxnRecord::CloseSession(None),
            OpCode::CloseSession => TxnRecord::CloseSession(Some(Decode::decode(r)?)),
            OpCode::Create => TxnRecord::Create(Decode::decode(r)?),
            OpCode::Create2 => TxnRecord::Create2(Decode::decode(r)?),
            OpCode::CreateContainer => TxnRecord::CreateContainer(Decode::decode(r)?),
            OpCode::CreateTtl => TxnRecord::CreateTtl(Decode::decode(r)?),
            OpCode::Delete => TxnRecord::Delete(Decode::decode(r)?),
            OpCode::DeleteContainer => TxnRecord::DeleteContainer(Decode::decode(r)?),
            OpCode::SetData => TxnRecord::SetData(Decode::decode(r)?),
            OpCode::Reconfig => TxnRecord::Reconfig(Decode::decode(r)?),
            OpCode::SetAcl => TxnRecord::SetAcl(Decode::decode(r)?),
            OpCode::Check => TxnRecord::Check(Decode::decode(r)?),
            OpCode::Error => TxnRecord::Error(Decode::decode(r)?),
            OpCode::Multi => {
                let multi: MultiTxn = Decode::decode(r)?;
                // Each sub-txn must be one a multi may hold, whole: what cannot be applied is
                // refused where it arrives, not found out when it commits.
                for sub in multi.txns.as_deref().unwrap_or_default() {
                    let data = sub.data.as_deref().unwrap_or_default();
                    let mut sr = Reader::new(data);
                    match TxnRecord::decode_for(sub.type_, &mut sr) {
                        Ok(TxnRecord::Multi(_)) | Err(_) => {
                            return Err(DecodeError::Invalid {
                                what: "multi sub-txn type",
                                value: i64::from(sub.type_),
                            })
                        }
                        Ok(_) => {}
                    }
                }
                TxnRecord::Multi(multi)
            }
            _ => {
                return Err(DecodeError::Invalid {
                    what: "txn type",
                    value: i64::from(type_),
                })
            }
        })
    }
}

impl Encode for TxnRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TxnRecord::CreateSession(t) => t.encode(out),
            TxnRecord::CloseSession(t) => {
                if let Some(t) = t {
                    t.encode(out)
                }
            }
            TxnRecord::Create(t) | TxnRecord::Create2(t) => t.encode(out),
            TxnRecord::CreateContainer(t) => t.encode(out),
            TxnRecord::CreateTtl(t) => t.encode(out),
            TxnRecord::Delete(t) | TxnRecord::DeleteContainer(t) => t.encode(out),
            TxnRecord::SetData(t) | TxnRecord::Reconfig(t) => t.encode(out),
            TxnRecord::SetAcl(t) => t.encode(out),
            TxnRecord::Check(t) => t.encode(out),
            TxnRecord::Error(t) => t.encode(out),
            TxnRecord::Multi(t) => t.encode(out),
        }
    }
}

/// A transaction: what a PROPOSAL carries and a txn-log entry holds.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct TxnEntry {
    pub header: TxnHeader,
    pub record: TxnRecord,
    pub digest: Option<TxnDigest>,
}

impl Encode for TxnEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        self.header.encode(out);
        self.record.encode(out);
        if let Some(d) = &self.digest {
            d.encode(out);
        }
    }
}

impl Decode for TxnEntry {
    const MIN_SIZE: usize = TxnHeader::MIN_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let header = TxnHeader::decode(r)?;
        let record = TxnRecord::decode_for(header.type_, r)?;
        let digest = if r.is_empty() {
            None
        } else {
            Some(TxnDigest::decode(r)?)
        };
        Ok(TxnEntry {
            header,
            record,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi_entry(subs: Vec<Txn>) -> Vec<u8> {
        let entry = TxnEntry {
            header: TxnHeader {
                client_id: 1,
                cxid: 1,
                zxid: 0x1_0000_0001,
                time: 0,
                type_: OpCode::Multi.code(),
            },
            record: TxnRecord::Multi(MultiTxn { txns: Some(subs) }),
            digest: None,
        };
        let mut out = Vec::new();
        entry.encode(&mut out);
        out
    }

    fn sub(record: &TxnRecord) -> Txn {
        let mut data = Vec::new();
        record.encode(&mut data);
        Txn {
            type_: record.op().code(),
            data: Some(data),
        }
    }

    #[test]
    fn a_multi_txn_is_refused_unless_every_sub_txn_can_be_applied() {
        let delete = TxnRecord::Delete(DeleteTxn { path: "/a".into() });
        let error = TxnRecord::Error(ErrorTxn { err: -101 });
        let good = multi_entry(vec![sub(&delete), sub(&error)]);
        assert!(TxnEntry::from_bytes(&good).is_ok());
        let nested = TxnRecord::Multi(MultiTxn {
            txns: Some(vec![sub(&delete)]),
        });
        let cases = [
            vec![sub(&delete), sub(&nested)],
            vec![Txn {
                type_: OpCode::Delete.code(),
                data: Some(vec![0, 0]),
            }],
            vec![Txn {
                type_: 9999,
                data: Some(Vec::new()),
            }],
            vec![Txn {
                type_: OpCode::GetData.code(),
                data: Some(Vec::new()),
            }],
        ];
        for subs in cases {
            let bytes = multi_entry(subs.clone());
            assert!(TxnEntry::from_bytes(&bytes).is_err(), "{subs:?}");
        }
    }
}
