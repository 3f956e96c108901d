"""CRUD, node modes, versions and error codes through kazoo."""
import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.protocol.states import ZnodeStat


def test_create_persistent_and_get(zk, root):
    p = root + "/node"
    assert zk.create(p, b"hello") == p
    data, stat = zk.get(p)
    assert data == b"hello"
    assert isinstance(stat, ZnodeStat)
    assert stat.version == 0
    assert stat.cversion == 0
    assert stat.aversion == 0
    assert stat.data_length == 5
    assert stat.numChildren == 0
    assert stat.ephemeralOwner == 0
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.czxid > 0
    assert stat.ctime == stat.mtime
    assert stat.ctime > 1_500_000_000_000  # milliseconds since the epoch


def test_create_include_data_returns_stat(zk, root):
    p = root + "/node"
    path, stat = zk.create(p, b"abc", include_data=True)
    assert path == p
    assert stat.version == 0 and stat.data_length == 3
    assert zk.exists(p) == stat


def test_create_empty_and_binary_data(zk, root):
    zk.create(root + "/empty")
    assert zk.get(root + "/empty")[0] == b""
    blob = bytes(range(256)) * 4
    zk.create(root + "/bin", blob)
    data, stat = zk.get(root + "/bin")
    assert data == blob
    assert stat.data_length == 1024


def test_large_value_round_trip(zk, root):
    blob = b"x" * 1_000_000  # below the default 1 MiB jute.maxbuffer
    zk.create(root + "/big", blob)
    data, stat = zk.get(root + "/big")
    assert data == blob
    assert stat.data_length == 1_000_000


def test_unicode_node_names(zk, root):
    name = "ünïcödé-日本語-ok"
    zk.create(root + "/" + name, "värde".encode())
    assert zk.get_children(root) == [name]
    assert zk.get(root + "/" + name)[0].decode() == "värde"


def test_create_existing_raises_node_exists(zk, root):
    zk.create(root + "/dup")
    with pytest.raises(NodeExistsError):
        zk.create(root + "/dup")


def test_create_missing_parent_raises_no_node(zk, root):
    with pytest.raises(NoNodeError):
        zk.create(root + "/no/such/parent")


def test_create_makepath(zk, root):
    p = root + "/a/b/c/d"
    assert zk.create(p, b"deep", makepath=True) == p
    assert zk.get(p)[0] == b"deep"
    assert zk.get_children(root + "/a/b") == ["c"]
    zk.ensure_path(root + "/a/b/c/d/e")
    assert zk.exists(root + "/a/b/c/d/e") is not None


def test_invalid_path_rejected_by_server(zk, root):
    # kazoo passes a NUL character through; the server's path validation refuses it
    with pytest.raises(BadArgumentsError):
        zk.create(root + "/x\u0000y")
    assert zk.get_children(root) == []


def test_create_sequential(zk, root):
    zk.create(root + "/plain")  # parent counter is now 1
    p1 = zk.create(root + "/seq-", b"1", sequence=True)
    p2 = zk.create(root + "/seq-", b"2", sequence=True)
    p3 = zk.create(root + "/other-", b"3", sequence=True)
    # 10-digit zero padded suffix, taken from the parent's child-create counter
    assert p1 == root + "/seq-0000000001"
    assert p2 == root + "/seq-0000000002"
    assert p3 == root + "/other-0000000003"
    zk.delete(p3)
    # deletions do not reuse numbers
    assert zk.create(root + "/seq-", sequence=True) == root + "/seq-0000000004"


def test_sequential_name_may_end_with_slash(zk, root):
    # "parent/" + sequence is a legal sequential create: the child is just the number
    p = zk.create(root + "/", b"x", sequence=True)
    assert p == root + "/0000000000"
    assert zk.get_children(root) == ["0000000000"]


def test_create_ephemeral(zk, root):
    p = zk.create(root + "/eph", b"e", ephemeral=True)
    stat = zk.exists(p)
    assert stat.ephemeralOwner == zk.client_id[0]
    assert stat.ephemeralOwner != 0
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(p + "/child")


def test_create_ephemeral_sequential(zk, root):
    p1 = zk.create(root + "/es-", ephemeral=True, sequence=True)
    p2 = zk.create(root + "/es-", ephemeral=True, sequence=True)
    assert p1 == root + "/es-0000000000"
    assert p2 == root + "/es-0000000001"
    assert zk.exists(p1).ephemeralOwner == zk.client_id[0]


def test_set_with_versions(zk, root):
    p = root + "/v"
    zk.create(p, b"0")
    stat = zk.set(p, b"1", version=0)
    assert stat.version == 1
    assert stat.mzxid > stat.czxid
    assert stat.data_length == 1
    with pytest.raises(BadVersionError):
        zk.set(p, b"2", version=0)
    with pytest.raises(BadVersionError):
        zk.set(p, b"2", version=5)
    stat = zk.set(p, b"22")  # version -1 = unconditional
    assert stat.version == 2
    assert zk.get(p) == (b"22", stat)
    with pytest.raises(NoNodeError):
        zk.set(root + "/missing", b"x")


def test_set_does_not_change_parent(zk, root):
    zk.create(root + "/c", b"a")
    before = zk.exists(root)
    zk.set(root + "/c", b"b")
    after = zk.exists(root)
    assert before.cversion == after.cversion
    assert before.pzxid == after.pzxid
    assert before.mzxid == after.mzxid


def test_exists(zk, root):
    assert zk.exists(root + "/nope") is None
    zk.create(root + "/yes", b"abc")
    st = zk.exists(root + "/yes")
    assert st is not None and st.data_length == 3


def test_get_missing_raises(zk, root):
    with pytest.raises(NoNodeError):
        zk.get(root + "/missing")
    with pytest.raises(NoNodeError):
        zk.get_children(root + "/missing")


def test_get_children(zk, root):
    names = {"a", "b", "c", "d-0000000000"}
    for n in sorted(names):
        zk.create(root + "/" + n)
    zk.create(root + "/a/grandchild")
    assert set(zk.get_children(root)) == names
    assert zk.get_children(root + "/a") == ["grandchild"]
    assert zk.get_children(root + "/b") == []


def test_get_children_include_data(zk, root):
    for n in ("x", "y", "z"):
        zk.create(root + "/" + n)
    children, stat = zk.get_children(root, include_data=True)
    assert sorted(children) == ["x", "y", "z"]
    assert stat.numChildren == 3
    assert stat.cversion == 3
    assert stat.pzxid == zk.exists(root + "/z").czxid


def test_parent_stat_tracks_children(zk, root):
    st0 = zk.exists(root)
    zk.create(root + "/k1")
    zk.create(root + "/k2")
    st1 = zk.exists(root)
    assert st1.numChildren == 2
    assert st1.cversion == st0.cversion + 2
    assert st1.pzxid == zk.exists(root + "/k2").czxid
    assert st1.version == st0.version  # data version untouched
    zk.delete(root + "/k1")
    st2 = zk.exists(root)
    assert st2.numChildren == 1
    assert st2.cversion == st1.cversion + 1
    assert st2.pzxid > st1.pzxid


def test_delete(zk, root):
    p = root + "/d"
    zk.create(p)
    zk.set(p, b"x")
    with pytest.raises(BadVersionError):
        zk.delete(p, version=0)
    zk.delete(p, version=1)
    assert zk.exists(p) is None
    with pytest.raises(NoNodeError):
        zk.delete(p)


def test_delete_not_empty_and_recursive(zk, root):
    zk.create(root + "/t/a/b", makepath=True)
    zk.create(root + "/t/c", makepath=True)
    with pytest.raises(NotEmptyError):
        zk.delete(root + "/t")
    zk.delete(root + "/t", recursive=True)
    assert zk.exists(root + "/t") is None
    assert zk.get_children(root) == []


def test_zxids_increase_monotonically(zk, root):
    zxids = []
    for i in range(5):
        zk.create("%s/n%d" % (root, i))
        zxids.append(zk.exists("%s/n%d" % (root, i)).czxid)
    assert zxids == sorted(zxids)
    assert len(set(zxids)) == 5


def test_builtin_nodes(zk):
    assert zk.exists("/") is not None
    assert "zookeeper" in zk.get_children("/")
    assert set(zk.get_children("/zookeeper")) >= {"config", "quota"}


def test_writes_visible_to_other_session(zk, clients, root):
    other = clients()
    zk.create(root + "/shared", b"v1")
    other.sync(root + "/shared")
    assert other.get(root + "/shared")[0] == b"v1"
    other.set(root + "/shared", b"v2")
    zk.sync(root + "/shared")
    data, stat = zk.get(root + "/shared")
    assert data == b"v2" and stat.version == 1
