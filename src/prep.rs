//! prep: a write request becomes a txn, or the error a client sees (which is logged too, as an
//! error txn). Every check happens here, in ZooKeeper's order (`PrepRequestProcessor`), and
//! every nondeterministic choice (sequence suffix, new versions) is resolved into the txn.
//! prep never mutates the tree.

use crate::acl::{self, AuthIds};
use crate::overlay::{NodeView, View};
use crate::path;
use crate::tree::{node_kind, NodeKind};
use jute::data::Acl;
use jute::proto::CreateRequest;
use jute::txn::*;
use jute::{perms, CreateMode, MultiOp, OpCode, TxnRecord, ZkError, MAX_TTL_MS};

/// What prep may read.
pub struct Ctx<'a> {
    pub tree: &'a dyn View,
    pub session: i64,
    pub auth: &'a AuthIds,
    pub extended_types: bool,
    /// `enforceQuota`.
    pub enforce_quota: bool,
}

/// Parent path as `getParentPathAndValidate` computes it: the path must contain `/` and no NUL.
fn parent_of(p: &str) -> Result<&str, ZkError> {
    if p.contains('\0') {
        return Err(ZkError::BadArguments);
    }
    match p.rfind('/') {
        None => Err(ZkError::BadArguments),
        Some(0) => Ok("/"),
        Some(i) => Ok(&p[..i]),
    }
}

fn node(ctx: &Ctx<'_>, p: &str) -> Result<NodeView, ZkError> {
    ctx.tree.view(p).ok_or(ZkError::NoNode)
}

/// `checkQuota`, when quotas are enforced: `count` more nodes and `bytes` more bytes under `p`.
fn check_quota(ctx: &Ctx<'_>, p: &str, bytes: i64, count: i64) -> Result<(), ZkError> {
    if ctx.enforce_quota {
        ctx.tree.check_quota(p, bytes, count)
    } else {
        Ok(())
    }
}

fn len(data: &Option<Vec<u8>>) -> i64 {
    data.as_ref().map_or(0, Vec::len) as i64
}

fn check_version(want: i32, have: i32) -> Result<(), ZkError> {
    if want == -1 || want == have {
        Ok(())
    } else {
        Err(ZkError::BadVersion)
    }
}

/// create, create2, createContainer, createTTL. `ttl` is -1 when the opcode carries none.
#[allow(clippy::too_many_arguments)]
pub fn create(
    ctx: &Ctx<'_>,
    op: OpCode,
    p: &str,
    data: &Option<Vec<u8>>,
    acl: Option<&[Acl]>,
    flags: i32,
    ttl: i64,
) -> Result<TxnRecord, ZkError> {
    let mode = CreateMode::from_flags(flags)?;
    if mode.is_ttl() && !ctx.extended_types {
        return Err(ZkError::Unimplemented);
    }
    if mode.is_ttl() {
        if ttl <= 0 || ttl > MAX_TTL_MS {
            return Err(ZkError::BadArguments);
        }
    } else if ttl >= 0 || op == OpCode::CreateTtl {
        // A createTTL of another mode: ZooKeeper refuses a TTL given with it, and with a
        // negative one its prep lets the txn through and applying it throws, which stops the
        // server (3.8). Refused here either way.
        return Err(ZkError::BadArguments);
    }
    let parent_path = parent_of(p)?;
    let acl = acl::fixup(acl, ctx.auth)?;
    let parent = node(ctx, parent_path)?;
    acl::check(&parent.acl, perms::CREATE, ctx.auth)?;
    let mut full = p.to_string();
    if mode.is_sequential() {
        full.push_str(&format!("{:010}", parent.stat.cversion));
    }
    path::validate(&full)?;
    if ctx.tree.view(&full).is_some() {
        return Err(ZkError::NodeExists);
    }
    if let NodeKind::Ephemeral(_) = node_kind(parent.stat.ephemeral_owner, ctx.extended_types) {
        return Err(ZkError::NoChildrenForEphemerals);
    }
    check_quota(ctx, &full, len(data), 1)?;
    let parent_c_version = parent.stat.cversion.wrapping_add(1);
    let acl = Some(acl);
    let data = data.clone();
    Ok(match op {
        OpCode::CreateContainer => TxnRecord::CreateContainer(CreateContainerTxn {
            path: full,
            data,
            acl,
            parent_c_version,
        }),
        OpCode::CreateTtl => TxnRecord::CreateTtl(CreateTTLTxn {
            path: full,
            data,
            acl,
            parent_c_version,
            ttl,
        }),
        _ => {
            let t = CreateTxn {
                path: full,
                data,
                acl,
                ephemeral: mode.is_ephemeral(),
                parent_c_version,
            };
            if op == OpCode::Create2 {
                TxnRecord::Create2(t)
            } else {
                TxnRecord::Create(t)
            }
        }
    })
}

pub fn delete(ctx: &Ctx<'_>, p: &str, version: i32) -> Result<TxnRecord, ZkError> {
    let parent_path = parent_of(p)?;
    if path::is_special(p) {
        return Err(ZkError::BadArguments);
    }
    let parent = node(ctx, parent_path)?;
    acl::check(&parent.acl, perms::DELETE, ctx.auth)?;
    let n = node(ctx, p)?;
    check_version(version, n.stat.version)?;
    if n.num_children > 0 {
        return Err(ZkError::NotEmpty);
    }
    Ok(TxnRecord::Delete(DeleteTxn {
        path: p.to_string(),
    }))
}

pub fn set_data(
    ctx: &Ctx<'_>,
    p: &str,
    data: &Option<Vec<u8>>,
    version: i32,
) -> Result<TxnRecord, ZkError> {
    path::validate(p)?;
    let n = node(ctx, p)?;
    acl::check(&n.acl, perms::WRITE, ctx.auth)?;
    check_quota(ctx, p, len(data) - n.data_len as i64, 0)?;
    check_version(version, n.stat.version)?;
    Ok(TxnRecord::SetData(SetDataTxn {
        path: p.to_string(),
        data: data.clone(),
        version: n.stat.version.wrapping_add(1),
    }))
}

pub fn set_acl(
    ctx: &Ctx<'_>,
    p: &str,
    acl: Option<&[Acl]>,
    version: i32,
) -> Result<TxnRecord, ZkError> {
    path::validate(p)?;
    let acl = acl::fixup(acl, ctx.auth)?;
    let n = node(ctx, p)?;
    acl::check(&n.acl, perms::ADMIN, ctx.auth)?;
    check_version(version, n.stat.aversion)?;
    Ok(TxnRecord::SetAcl(SetACLTxn {
        path: p.to_string(),
        acl: Some(acl),
        version: n.stat.aversion.wrapping_add(1),
    }))
}

pub fn check(ctx: &Ctx<'_>, p: &str, version: i32) -> Result<TxnRecord, ZkError> {
    path::validate(p)?;
    let n = node(ctx, p)?;
    acl::check(&n.acl, perms::READ, ctx.auth)?;
    check_version(version, n.stat.version)?;
    Ok(TxnRecord::Check(CheckVersionTxn {
        path: p.to_string(),
        version,
    }))
}

/// A multi's ops as ZooKeeper takes them (`MultiOperationRecord` builds each create with
/// `Op.create`): the kind of create follows the flags, not the op's type. A create, create2 or
/// createContainer op is a container create with container flags and a plain create
/// otherwise; a createTTL op is a TTL create with TTL flags, and without them a create of
/// what the flags say, its TTL dropped. Unknown flags make a plain create (refused when
/// prepared). TTL flags on an op without a TTL stay as they are: see
/// [`fails_whole_multi`].
pub fn multi_ops_as_zookeeper(ops: &[MultiOp]) -> Vec<MultiOp> {
    let by_flags = |r: &CreateRequest| match lenient_mode(r.flags) {
        CreateMode::Container => MultiOp::CreateContainer(r.clone()),
        _ => MultiOp::Create(r.clone()),
    };
    ops.iter()
        .map(|op| match op {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => by_flags(r),
            MultiOp::CreateTtl(r) if lenient_mode(r.flags).is_ttl() => op.clone(),
            MultiOp::CreateTtl(r) => by_flags(&CreateRequest {
                path: r.path.clone(),
                data: r.data.clone(),
                acl: r.acl.clone(),
                flags: r.flags,
            }),
            other => other.clone(),
        })
        .collect()
}

/// `CreateMode.fromFlag(flags, PERSISTENT)`.
fn lenient_mode(flags: i32) -> CreateMode {
    CreateMode::from_flags(flags).unwrap_or(CreateMode::Persistent)
}

/// A create op with TTL flags and no TTL: when ZooKeeper's prep reaches it (no op before it
/// failed), it casts the request to one with a TTL and throws, and the whole multi is answered
/// MarshallingError.
pub fn fails_whole_multi(op: &MultiOp) -> bool {
    matches!(op, MultiOp::Create(r) if lenient_mode(r.flags).is_ttl())
}

/// One op of a multi.
pub fn multi_op(ctx: &Ctx<'_>, op: &MultiOp) -> Result<TxnRecord, ZkError> {
    match op {
        MultiOp::Create(r) => create(
            ctx,
            OpCode::Create,
            &r.path,
            &r.data,
            r.acl.as_deref(),
            r.flags,
            -1,
        ),
        MultiOp::Create2(r) => create(
            ctx,
            OpCode::Create2,
            &r.path,
            &r.data,
            r.acl.as_deref(),
            r.flags,
            -1,
        ),
        MultiOp::CreateContainer(r) => create(
            ctx,
            OpCode::CreateContainer,
            &r.path,
            &r.data,
            r.acl.as_deref(),
            r.flags,
            -1,
        ),
        MultiOp::CreateTtl(r) => create(
            ctx,
            OpCode::CreateTtl,
            &r.path,
            &r.data,
            r.acl.as_deref(),
            r.flags,
            r.ttl,
        ),
        MultiOp::Delete(r) => delete(ctx, &r.path, r.version),
        MultiOp::SetData(r) => set_data(ctx, &r.path, &r.data, r.version),
        MultiOp::Check(r) => check(ctx, &r.path, r.version),
        MultiOp::GetData(_) | MultiOp::GetChildren(_) => Err(ZkError::MarshallingError),
    }
}
