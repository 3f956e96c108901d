"""kazoo recipes: they exercise sequential/ephemeral nodes, watches on
predecessors, children ordering assumptions and multi-session interplay."""
import threading
import time

import pytest
from kazoo.exceptions import LockTimeout
from kazoo.recipe.cache import TreeCache, TreeEvent

from conftest import wait_for


def run_thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


# ------------------------------------------------------------------- Lock


def test_lock_mutual_exclusion(clients, root):
    a, b = clients(), clients()
    la = a.Lock(root + "/lock", "client-a")
    lb = b.Lock(root + "/lock", "client-b")
    assert la.acquire(timeout=5)
    assert la.is_acquired
    assert lb.acquire(blocking=False) is False
    with pytest.raises(LockTimeout):
        lb.acquire(timeout=0.5)
    assert la.contenders() == ["client-a"]

    got = threading.Event()

    def waiter():
        if lb.acquire(timeout=15):
            got.set()

    t = run_thread(waiter)
    assert wait_for(lambda: len(la.contenders()) == 2, 5)
    assert la.contenders() == ["client-a", "client-b"]  # ordered by sequence number
    time.sleep(0.2)
    assert not got.is_set()
    la.release()
    assert got.wait(10), "waiting lock was not granted after release"
    t.join(5)
    assert lb.is_acquired
    lb.release()
    assert a.get_children(root + "/lock") == []


def test_lock_released_when_holder_session_closes(clients, root):
    a, b = clients(), clients()
    assert a.Lock(root + "/lock", "a").acquire(timeout=5)
    lb = b.Lock(root + "/lock", "b")
    got = threading.Event()
    run_thread(lambda: lb.acquire(timeout=15) and got.set())
    assert wait_for(lambda: len(b.get_children(root + "/lock")) == 2, 5)
    a.stop()  # ephemeral lock node removed by closeSession
    assert got.wait(10)
    lb.release()


def test_lock_fifo_order_among_waiters(clients, root):
    holder = clients()
    lock = holder.Lock(root + "/lock", "holder")
    assert lock.acquire(timeout=5)
    order = []
    threads = []
    for i in range(3):
        c = clients()
        lk = c.Lock(root + "/lock", "w%d" % i)

        def work(lk=lk, i=i):
            assert lk.acquire(timeout=20)
            order.append(i)
            time.sleep(0.05)
            lk.release()

        threads.append(run_thread(work))
        assert wait_for(lambda: len(holder.get_children(root + "/lock")) == i + 2, 5)
    lock.release()
    for t in threads:
        t.join(20)
    assert order == [0, 1, 2]


def test_read_write_locks(clients, root):
    a, b, c = clients(), clients(), clients()
    r1 = a.ReadLock(root + "/rw", "r1")
    r2 = b.ReadLock(root + "/rw", "r2")
    w = c.WriteLock(root + "/rw", "w")
    assert r1.acquire(timeout=5)
    assert r2.acquire(timeout=5)  # readers share
    with pytest.raises(LockTimeout):  # writer excluded
        w.acquire(timeout=0.5)
    r1.release()
    r2.release()
    assert w.acquire(timeout=5)
    r3 = a.ReadLock(root + "/rw", "r3")
    with pytest.raises(LockTimeout):  # readers excluded by writer
        r3.acquire(timeout=0.5)
    w.release()
    assert r3.acquire(timeout=5)
    r3.release()


def test_semaphore(clients, root):
    a, b, c = clients(), clients(), clients()
    sa = a.Semaphore(root + "/sem", "a", max_leases=2)
    sb = b.Semaphore(root + "/sem", "b", max_leases=2)
    sc = c.Semaphore(root + "/sem", "c", max_leases=2)
    assert sa.acquire(timeout=5)
    assert sb.acquire(timeout=5)
    assert sc.acquire(blocking=False) is False
    assert sorted(sa.lease_holders()) == ["a", "b"]
    sa.release()
    assert sc.acquire(timeout=5)
    assert sorted(sc.lease_holders()) == ["b", "c"]
    sb.release()
    sc.release()


# ------------------------------------------------------------------- Election


def test_election(clients, root):
    a, b = clients(), clients()
    ea = a.Election(root + "/election", "alpha")
    eb = b.Election(root + "/election", "beta")
    leader = []
    release = {"alpha": threading.Event(), "beta": threading.Event()}
    became = threading.Condition()

    def lead(name):
        with became:
            leader.append(name)
            became.notify_all()
        release[name].wait(30)

    ta = run_thread(ea.run, lead, "alpha")
    with became:
        assert became.wait_for(lambda: len(leader) == 1, 10)
    tb = run_thread(eb.run, lead, "beta")
    assert wait_for(lambda: len(ea.contenders()) == 2, 5)
    assert ea.contenders() == ["alpha", "beta"]
    time.sleep(0.2)
    assert leader == ["alpha"]  # only one leader at a time
    release["alpha"].set()  # alpha's leadership ends -> beta takes over
    with became:
        assert became.wait_for(lambda: len(leader) == 2, 10)
    assert leader == ["alpha", "beta"]
    release["beta"].set()
    ta.join(10)
    tb.join(10)


# ------------------------------------------------------------------- Barriers


def test_barrier(clients, root):
    a, b = clients(), clients()
    barrier = a.Barrier(root + "/barrier")
    barrier.create()
    wb = b.Barrier(root + "/barrier")
    assert wb.wait(timeout=0.5) is False  # barrier up: blocks
    passed = threading.Event()
    run_thread(lambda: wb.wait(timeout=15) and passed.set())
    time.sleep(0.3)
    assert not passed.is_set()
    assert barrier.remove()
    assert passed.wait(10)
    assert wb.wait(timeout=1) is True  # no barrier node: passes immediately


def test_double_barrier(clients, root):
    n = 3
    cs = [clients() for _ in range(n)]
    entered = []
    left = []
    lock = threading.Lock()

    def member(i):
        db = cs[i].DoubleBarrier(root + "/dbarrier", n, identifier="m%d" % i)
        db.enter()
        with lock:
            entered.append((i, time.time()))
        time.sleep(0.1 * i)
        db.leave()
        with lock:
            left.append((i, time.time()))

    threads = []
    for i in range(n):
        threads.append(run_thread(member, i))
        if i < n - 1:
            time.sleep(0.3)
            assert entered == [], "entered the double barrier before all %d members arrived" % n
    for t in threads:
        t.join(20)
    assert sorted(i for i, _ in entered) == list(range(n))
    assert sorted(i for i, _ in left) == list(range(n))
    # nobody leaves before everybody has entered
    assert max(t for _, t in entered) <= min(t for _, t in left)


# ------------------------------------------------------------------- Counter


def test_counter(clients, root):
    a, b = clients(), clients()
    ca = a.Counter(root + "/counter")
    cb = b.Counter(root + "/counter")
    assert ca.value == 0
    ca += 5
    cb += 3
    ca -= 2
    assert ca.value == 6
    assert cb.value == 6
    f = a.Counter(root + "/fcounter", default=0.5)
    f += 1.25
    assert f.value == 1.75


def test_counter_concurrent_increments(clients, root):
    cs = [clients() for _ in range(3)]

    def bump(c):
        ctr = c.Counter(root + "/counter")
        for _ in range(20):
            ctr += 1  # optimistic versioned set, retried on BadVersion

    ts = [run_thread(bump, c) for c in cs]
    for t in ts:
        t.join(60)
    assert cs[0].Counter(root + "/counter").value == 60


# ------------------------------------------------------------------- Queues


def test_queue(clients, root):
    a, b = clients(), clients()
    qa = a.Queue(root + "/queue")
    qb = b.Queue(root + "/queue")
    assert qa.get() is None
    qa.put(b"first")
    qa.put(b"second")
    qa.put(b"urgent", priority=1)
    qa.put(b"third")
    assert len(qb) == 4
    assert qb.get() == b"urgent"  # lower priority value first
    assert qb.get() == b"first"  # then FIFO
    assert qa.get() == b"second"
    assert qb.get() == b"third"
    assert qb.get() is None
    assert len(qa) == 0


def test_locking_queue(clients, root):
    a, b = clients(), clients()
    qa = a.LockingQueue(root + "/lq")
    qb = b.LockingQueue(root + "/lq")
    qa.put(b"one")
    qa.put_all([b"two", b"three"])
    qa.put(b"zero", priority=1)
    assert len(qa) == 4
    assert qa.get(timeout=5) == b"zero"
    assert qa.holds_lock()
    # another consumer skips the locked (in-flight) item
    assert qb.get(timeout=5) == b"one"
    assert qa.consume()
    assert not qa.holds_lock()
    assert len(qa) == 3  # "one" is taken but not consumed yet
    assert qb.release()  # give "one" back
    assert qa.get(timeout=5) == b"one"
    assert qa.consume()
    assert qb.get(timeout=5) == b"two"
    assert qb.consume()
    assert qa.get(timeout=5) == b"three"
    assert qa.consume()
    assert len(qa) == 0
    assert qa.get(timeout=0.3) is None

    got = []
    t = run_thread(lambda: got.append(qb.get(timeout=10)))
    time.sleep(0.2)
    qa.put(b"late")  # wakes the blocked consumer via a children watch
    t.join(10)
    assert got == [b"late"]
    assert qb.consume()


# ------------------------------------------------------------------- Party


@pytest.mark.parametrize("kind", ["Party", "ShallowParty"])
def test_party(clients, root, kind):
    a, b, c = clients(), clients(), clients()
    pa = getattr(a, kind)(root + "/party", "ann")
    pb = getattr(b, kind)(root + "/party", "bob")
    watcher = getattr(c, kind)(root + "/party")
    assert len(watcher) == 0
    pa.join()
    pb.join()
    assert len(watcher) == 2
    assert sorted(watcher) == ["ann", "bob"]
    pa.leave()
    assert list(watcher) == ["bob"]
    b.stop()  # membership is ephemeral: leaving the session leaves the party
    assert wait_for(lambda: len(watcher) == 0, 5)


# ------------------------------------------------------------------- TreeCache


def test_tree_cache(clients, root):
    a, b = clients(), clients()
    a.create(root + "/tc/x", b"1", makepath=True)
    cache = TreeCache(b, root + "/tc")
    events = []
    cache.listen(lambda ev: events.append(ev))
    cache.start()
    try:
        assert wait_for(lambda: any(e.event_type == TreeEvent.INITIALIZED for e in events), 10)
        assert cache.get_data(root + "/tc/x").data == b"1"
        a.create(root + "/tc/y/z", b"deep", makepath=True)
        assert wait_for(lambda: cache.get_data(root + "/tc/y/z") is not None, 10)
        assert cache.get_data(root + "/tc/y/z").data == b"deep"
        a.set(root + "/tc/x", b"2")
        assert wait_for(lambda: cache.get_data(root + "/tc/x").data == b"2", 10)
        a.delete(root + "/tc/x")
        assert wait_for(lambda: cache.get_data(root + "/tc/x") is None, 10)
        assert sorted(cache.get_children(root + "/tc")) == ["y"]
    finally:
        cache.close()


# ------------------------------------------------------------------- SetPartitioner


def test_set_partitioner(clients, root):
    a, b = clients(), clients()
    items = ["i%d" % i for i in range(6)]
    pa = a.SetPartitioner(root + "/part", set=items, identifier="a", time_boundary=0.5)
    pb = b.SetPartitioner(root + "/part", set=items, identifier="b", time_boundary=0.5)

    def settle(p):
        deadline = time.time() + 20
        while time.time() < deadline:
            if p.failed:
                return False
            if p.release:
                p.release_set()
            elif p.allocating:
                p.wait_for_acquire(1)
            elif p.acquired:
                return True
            else:
                time.sleep(0.05)
        return False

    results = {}
    ta = run_thread(lambda: results.__setitem__("a", settle(pa)))
    tb = run_thread(lambda: results.__setitem__("b", settle(pb)))
    ta.join(25)
    tb.join(25)
    assert results == {"a": True, "b": True}
    got_a, got_b = set(pa), set(pb)
    assert got_a | got_b == set(items)
    assert not (got_a & got_b)
    assert len(got_a) == len(got_b) == 3
    pa.finish()
    pb.finish()
