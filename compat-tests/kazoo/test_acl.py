"""ACLs and digest authentication through kazoo."""
import base64
import hashlib

import pytest
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
)
from kazoo.security import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)


def checks_exists(version):
    """Whether a server of this version checks READ for exists (ZOOKEEPER-2590)."""
    return version >= (3, 9, 2) or (3, 8, 4) <= version < (3, 9)


def digest_id(user, password):
    h = base64.b64encode(hashlib.sha1(("%s:%s" % (user, password)).encode()).digest()).decode()
    return "%s:%s" % (user, h)


def test_digest_credential_matches_server_format(zk, root):
    assert make_digest_acl_credential("alice", "secret") == digest_id("alice", "secret")
    zk.add_auth("digest", "alice:secret")
    zk.create(root + "/n", acl=[make_acl("auth", "", all=True)])
    acls, _ = zk.get_acls(root + "/n")
    # the server computes base64(sha1("user:password")) itself
    assert acls == [ACL(Permissions.ALL, Id("digest", digest_id("alice", "secret")))]


def test_digest_acl_denies_unauthenticated(zk, clients, root):
    p = root + "/secret"
    zk.create(p, b"s3", acl=[make_digest_acl("alice", "secret", all=True)])
    anon = clients()
    with pytest.raises(NoAuthError):
        anon.get(p)
    with pytest.raises(NoAuthError):
        anon.set(p, b"x")
    with pytest.raises(NoAuthError):
        anon.get_children(p)
    with pytest.raises(NoAuthError):
        anon.create(p + "/child")
    with pytest.raises(NoAuthError):
        anon.get_acls(p)
    # exists needs READ on a node that is there since ZooKeeper 3.8.4 and 3.9.2
    # (ZOOKEEPER-2590); 3.8.0 to 3.8.3 answer its Stat to anyone
    if checks_exists(zk.server_version()):
        with pytest.raises(NoAuthError):
            anon.exists(p)
    else:
        assert anon.exists(p).data_length == 2
    assert anon.exists(p + "/missing") is None
    # delete is checked against the PARENT's ACL, which is open
    anon2 = clients()
    anon2.delete(p)
    assert zk.exists(p) is None


def test_add_auth_grants_access(zk, clients, root):
    p = root + "/secret"
    zk.create(p, b"data", acl=[make_digest_acl("alice", "secret", all=True)])
    c = clients()
    c.add_auth("digest", "alice:wrong")  # digest auth always "succeeds"...
    with pytest.raises(NoAuthError):  # ...but the id does not match
        c.get(p)
    c.add_auth("digest", "alice:secret")  # ids accumulate on the session
    assert c.get(p)[0] == b"data"
    c.set(p, b"new")
    assert c.get(p)[0] == b"new"
    acls, stat = c.get_acls(p)
    assert acls == [ACL(Permissions.ALL, Id("digest", digest_id("alice", "secret")))]
    assert stat.aversion == 0


def test_auth_data_at_connect(clients, root):
    c = clients(auth_data=[("digest", "bob:builder")])
    p = root + "/bobs"
    c.create(p, b"b", acl=CREATOR_ALL_ACL)
    acls, _ = c.get_acls(p)
    assert acls == [ACL(Permissions.ALL, Id("digest", digest_id("bob", "builder")))]
    anon = clients()
    with pytest.raises(NoAuthError):
        anon.get(p)


def test_creator_all_acl_requires_auth(zk, root):
    with pytest.raises(InvalidACLError):
        zk.create(root + "/c", acl=CREATOR_ALL_ACL)
    assert zk.exists(root + "/c") is None


def test_invalid_acls(zk, root):
    with pytest.raises(InvalidACLError):
        zk.create(root + "/u", acl=[make_acl("nosuchscheme", "x", all=True)])
    with pytest.raises(InvalidACLError):
        zk.create(root + "/d", acl=[make_acl("digest", "no-colon-here", all=True)])
    assert zk.get_children(root) == []


def test_set_acls_versions(zk, root):
    p = root + "/a"
    zk.create(p)
    ra = [make_acl("world", "anyone", read=True, admin=True)]
    stat = zk.set_acls(p, ra, version=0)
    assert stat.aversion == 1
    assert stat.version == 0  # data version unchanged
    with pytest.raises(BadVersionError):
        zk.set_acls(p, OPEN_ACL_UNSAFE, version=0)
    acls, stat = zk.get_acls(p)
    assert acls == [ACL(Permissions.READ | Permissions.ADMIN, Id("world", "anyone"))]
    assert stat.aversion == 1
    stat = zk.set_acls(p, READ_ACL_UNSAFE, version=1)
    assert stat.aversion == 2


def test_acl_check_precedes_version_check(zk, root):
    p = root + "/a"
    zk.create(p, acl=READ_ACL_UNSAFE)
    # wrong version AND no permission: the server reports NoAuth, not BadVersion
    with pytest.raises(NoAuthError):
        zk.set(p, b"x", version=7)
    with pytest.raises(NoAuthError):
        zk.set_acls(p, OPEN_ACL_UNSAFE, version=7)


def test_read_only_acl(zk, root):
    p = root + "/ro"
    zk.create(p, b"r", acl=READ_ACL_UNSAFE)
    assert zk.get(p)[0] == b"r"
    assert zk.get_children(p) == []
    with pytest.raises(NoAuthError):
        zk.set(p, b"w")
    with pytest.raises(NoAuthError):
        zk.create(p + "/kid")
    with pytest.raises(NoAuthError):  # needs ADMIN
        zk.set_acls(p, OPEN_ACL_UNSAFE)


def test_permission_bits_individually(zk, root):
    # CREATE only on the parent: may create children, may not delete them
    parent = root + "/createonly"
    zk.create(parent, acl=[make_acl("world", "anyone", create=True, read=True, admin=True)])
    zk.create(parent + "/kid")
    from kazoo.exceptions import NoAuthError as _NA

    with pytest.raises(_NA):
        zk.delete(parent + "/kid")
    # DELETE only: may delete children, may not create
    zk.set_acls(parent, [make_acl("world", "anyone", delete=True, read=True, admin=True)])
    with pytest.raises(_NA):
        zk.create(parent + "/kid2")
    zk.delete(parent + "/kid")
    # WRITE only: may set data, may not read it
    w = root + "/writeonly"
    zk.create(w, b"0", acl=[make_acl("world", "anyone", write=True)])
    zk.set(w, b"1")
    with pytest.raises(_NA):
        zk.get(w)
    zk.delete(w)  # needs DELETE on the parent only


def test_get_acls_masks_digest_for_non_admin(zk, clients, root):
    p = root + "/m"
    zk.create(p, acl=[make_digest_acl("alice", "secret", all=True), make_acl("world", "anyone", read=True)])
    anon = clients()
    acls, _ = anon.get_acls(p)  # READ is enough for getACL...
    ids = {(a.id.scheme, a.id.id) for a in acls}
    # ...but without ADMIN the digest hash is hidden
    assert ("digest", "alice:x") in ids
    assert ("world", "anyone") in ids
    admin = clients(auth_data=[("digest", "alice:secret")])
    acls, _ = admin.get_acls(p)
    assert ("digest", digest_id("alice", "secret")) in {(a.id.scheme, a.id.id) for a in acls}


def test_ip_acl(zk, clients, root):
    zk.create(root + "/local", b"l", acl=[make_acl("ip", "127.0.0.1", all=True)])
    zk.create(root + "/net", b"n", acl=[make_acl("ip", "127.0.0.0/8", read=True)])
    zk.create(root + "/elsewhere", b"e", acl=[make_acl("ip", "10.1.2.3", all=True)])
    c = clients()
    assert c.get(root + "/local")[0] == b"l"
    assert c.get(root + "/net")[0] == b"n"
    with pytest.raises(NoAuthError):
        c.get(root + "/elsewhere")
    c.delete(root + "/elsewhere")
    with pytest.raises(InvalidACLError):
        zk.create(root + "/badip", acl=[make_acl("ip", "not-an-ip", all=True)])


def test_auth_scheme_acl_uses_all_session_identities(clients, root):
    c = clients(auth_data=[("digest", "alice:secret"), ("digest", "bob:builder")])
    p = root + "/both"
    c.create(p, acl=[make_acl("auth", "", read=True, write=True, create=True, delete=True, admin=True)])
    acls, _ = c.get_acls(p)
    assert sorted(a.id.id for a in acls) == sorted([digest_id("alice", "secret"), digest_id("bob", "builder")])
    assert all(a.id.scheme == "digest" for a in acls)
    # either identity alone is enough
    only_bob = clients(auth_data=[("digest", "bob:builder")])
    only_bob.get(p)


def test_add_auth_unknown_scheme_fails(clients):
    c = clients()
    with pytest.raises(AuthFailedError):
        c.add_auth("nosuchscheme", "whatever")
