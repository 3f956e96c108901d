"""Watches: one-shot watch functions, DataWatch, ChildrenWatch."""
import threading
import time

from kazoo.protocol.states import EventType, KeeperState


def test_get_watch_fires_once_on_change(zk, root, recorder):
    p = root + "/w"
    zk.create(p, b"0")
    rec = recorder()
    zk.get(p, watch=rec)
    zk.set(p, b"1")
    assert rec.wait_len(1)
    ev = rec.items[0]
    assert ev.type == EventType.CHANGED
    assert ev.state == KeeperState.CONNECTED
    assert ev.path == p
    zk.set(p, b"2")
    zk.sync(p)
    time.sleep(0.2)
    assert len(rec.items) == 1  # one-shot


def test_get_watch_fires_on_delete(zk, root, recorder):
    p = root + "/w"
    zk.create(p)
    rec = recorder()
    zk.get(p, watch=rec)
    zk.delete(p)
    assert rec.wait_len(1)
    assert rec.items[0].type == EventType.DELETED and rec.items[0].path == p


def test_exists_watch_on_missing_node_fires_created(zk, root, recorder):
    p = root + "/later"
    rec = recorder()
    assert zk.exists(p, watch=rec) is None
    zk.create(p, b"now")
    assert rec.wait_len(1)
    assert rec.items[0].type == EventType.CREATED
    assert rec.items[0].path == p


def test_exists_watch_on_existing_node(zk, root, recorder):
    p = root + "/e"
    zk.create(p)
    rec = recorder()
    zk.exists(p, watch=rec)
    zk.set(p, b"x")
    assert rec.wait_len(1)
    assert rec.items[0].type == EventType.CHANGED


def test_children_watch_fires_on_create_and_delete(zk, root, recorder):
    rec = recorder()
    zk.get_children(root, watch=rec)
    zk.set(root, b"data change does not fire child watches")
    zk.create(root + "/k")
    assert rec.wait_len(1)
    assert rec.items[0].type == EventType.CHILD and rec.items[0].path == root
    rec2 = recorder()
    zk.get_children(root, watch=rec2)
    zk.delete(root + "/k")
    assert rec2.wait_len(1)
    assert rec2.items[0].type == EventType.CHILD
    time.sleep(0.2)
    assert len(rec.items) == 1


def test_children_watch_not_fired_by_grandchildren(zk, root, recorder):
    zk.create(root + "/k")
    rec = recorder()
    zk.get_children(root, watch=rec)
    zk.create(root + "/k/grandchild")
    zk.set(root + "/k", b"x")
    zk.sync(root)
    time.sleep(0.2)
    assert rec.items == []
    zk.delete(root + "/k", recursive=True)
    assert rec.wait_len(1)


def test_watch_from_other_session(zk, clients, root, recorder):
    p = root + "/x"
    zk.create(p, b"a")
    other = clients()
    rec = recorder()
    other.get(p, watch=rec)
    zk.set(p, b"b")
    assert rec.wait_len(1)
    assert rec.items[0].type == EventType.CHANGED


def test_data_watch_recipe(zk, root):
    p = root + "/dw"
    calls = []
    cv = threading.Condition()

    @zk.DataWatch(p)
    def watcher(data, stat, event=None):
        with cv:
            calls.append((data, stat.version if stat else None, event.type if event else None))
            cv.notify_all()

    def wait_n(n):
        with cv:
            return cv.wait_for(lambda: len(calls) >= n, 10)

    assert wait_n(1)
    assert calls[0][:2] == (None, None)  # node does not exist yet
    zk.create(p, b"v0")
    assert wait_n(2)
    assert calls[1][:2] == (b"v0", 0) and calls[1][2] == EventType.CREATED
    zk.set(p, b"v1")
    assert wait_n(3)
    assert calls[2][:2] == (b"v1", 1) and calls[2][2] == EventType.CHANGED
    zk.delete(p)
    assert wait_n(4)
    assert calls[3][:2] == (None, None) and calls[3][2] == EventType.DELETED


def test_children_watch_recipe(zk, root):
    snapshots = []
    cv = threading.Condition()

    @zk.ChildrenWatch(root)
    def watcher(children):
        with cv:
            snapshots.append(sorted(children))
            cv.notify_all()

    def wait_for_snapshot(expected):
        with cv:
            return cv.wait_for(lambda: snapshots and snapshots[-1] == expected, 10)

    assert wait_for_snapshot([])
    zk.create(root + "/a")
    assert wait_for_snapshot(["a"])
    zk.create(root + "/b")
    assert wait_for_snapshot(["a", "b"])
    zk.delete(root + "/a")
    assert wait_for_snapshot(["b"])


def test_many_watchers_same_node(zk, clients, root, recorder):
    p = root + "/fan"
    zk.create(p)
    recs = []
    for _ in range(3):
        c = clients()
        r = recorder()
        c.exists(p, watch=r)
        recs.append(r)
    zk.delete(p)
    for r in recs:
        assert r.wait_len(1)
        assert r.items[0].type == EventType.DELETED
