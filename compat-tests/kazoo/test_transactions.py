"""multi / transactions through kazoo's TransactionRequest."""
from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import ZnodeStat


def test_transaction_success(zk, root):
    zk.create(root + "/old", b"o")
    zk.create(root + "/gone")
    t = zk.transaction()
    t.create(root + "/new", b"n")
    t.create(root + "/seq-", b"s", sequence=True)
    t.set_data(root + "/old", b"o2", version=0)
    t.check(root + "/old", 1)  # sees the set_data above
    t.delete(root + "/gone", version=0)
    results = t.commit()
    assert len(results) == 5
    assert results[0] == root + "/new"
    # sequence number assigned inside the multi: /old, /gone and /new came first
    assert results[1] == root + "/seq-0000000003"
    assert isinstance(results[2], ZnodeStat) and results[2].version == 1 and results[2].data_length == 2
    assert results[3] is True
    assert results[4] is True
    assert zk.get(root + "/new")[0] == b"n"
    assert zk.get(root + "/old")[0] == b"o2"
    assert zk.exists(root + "/gone") is None
    # all ops of a multi share one zxid
    assert zk.exists(root + "/new").czxid == zk.exists(root + "/old").mzxid


def test_transaction_as_context_manager(zk, root):
    with zk.transaction() as t:
        t.create(root + "/a", b"1")
        t.create(root + "/a/b", b"2")
    assert zk.get(root + "/a/b")[0] == b"2"
    assert t.committed


def test_transaction_failure_reports_per_op_results(zk, root):
    zk.create(root + "/x", b"x")
    before = zk.exists(root)
    t = zk.transaction()
    t.create(root + "/new", b"n")  # would succeed -> rolled back
    t.check(root + "/x", 5)  # fails: version is 0
    t.set_data(root + "/x", b"y")  # never attempted
    t.delete(root + "/x")  # never attempted
    results = t.commit()  # kazoo does not raise; it returns per-op exceptions
    assert len(results) == 4
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], BadVersionError)
    assert isinstance(results[2], RuntimeInconsistency)
    assert isinstance(results[3], RuntimeInconsistency)
    # nothing was applied
    assert zk.exists(root + "/new") is None
    assert zk.get(root + "/x") == (b"x", zk.exists(root + "/x"))
    assert zk.exists(root + "/x").version == 0
    after = zk.exists(root)
    assert after.cversion == before.cversion and after.numChildren == before.numChildren


def test_transaction_failure_in_first_op(zk, root):
    zk.create(root + "/dup")
    t = zk.transaction()
    t.create(root + "/dup")
    t.create(root + "/other")
    results = t.commit()
    assert isinstance(results[0], NodeExistsError)
    assert isinstance(results[1], RuntimeInconsistency)
    assert zk.exists(root + "/other") is None


def test_transaction_failure_in_last_op(zk, root):
    zk.create(root + "/p")
    zk.create(root + "/p/kid")
    t = zk.transaction()
    t.create(root + "/a")
    t.set_data(root + "/p", b"v")
    t.delete(root + "/p")  # NotEmpty
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], RolledBackError)
    assert isinstance(results[2], NotEmptyError)
    assert zk.exists(root + "/a") is None
    assert zk.exists(root + "/p").version == 0


def test_transaction_ops_see_earlier_ops(zk, root):
    t = zk.transaction()
    t.create(root + "/a")
    t.create(root + "/a/b")
    t.delete(root + "/a/b")
    t.delete(root + "/a")
    t.create(root + "/a", b"again")
    results = t.commit()
    assert results == [root + "/a", root + "/a/b", True, True, root + "/a"]
    assert zk.get(root + "/a")[0] == b"again"


def test_transaction_delete_then_missing(zk, root):
    zk.create(root + "/d")
    t = zk.transaction()
    t.delete(root + "/d")
    t.delete(root + "/d")
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NoNodeError)
    assert zk.exists(root + "/d") is not None


def test_transaction_check_missing_node(zk, root):
    t = zk.transaction()
    t.check(root + "/missing", 0)
    results = t.commit()
    assert len(results) == 1 and isinstance(results[0], NoNodeError)


def test_transaction_ephemeral_create(zk, clients, root):
    t = zk.transaction()
    t.create(root + "/e", b"", ephemeral=True)
    t.commit()
    assert zk.exists(root + "/e").ephemeralOwner == zk.client_id[0]
