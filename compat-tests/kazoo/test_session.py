"""Sessions, ephemerals, sync and server commands through kazoo."""
import subprocess
import sys
import textwrap
import threading
import time

from kazoo.client import KazooClient
from kazoo.protocol.states import EventType, KazooState, KeeperState

from conftest import ZK_HOSTS


def test_session_basics(zk):
    session_id, password = zk.client_id
    assert session_id != 0
    assert isinstance(password, bytes) and len(password) == 16
    assert zk.connected
    assert zk.state == KazooState.CONNECTED
    assert zk.client_state == KeeperState.CONNECTED


def test_sessions_are_distinct(clients):
    a, b = clients(), clients()
    assert a.client_id[0] != b.client_id[0]


def test_ephemeral_removed_when_client_stops(zk, clients, root):
    owner = clients()
    p = owner.create(root + "/eph", b"mine", ephemeral=True)
    owner.create(root + "/eseq-", ephemeral=True, sequence=True)
    assert zk.exists(p).ephemeralOwner == owner.client_id[0]
    deleted = threading.Event()
    events = []

    def w(ev):
        events.append(ev)
        deleted.set()

    zk.exists(p, watch=w)
    owner.stop()  # sends closeSession: ephemerals go away immediately
    assert deleted.wait(10)
    assert events[0].type == EventType.DELETED and events[0].path == p
    assert zk.exists(p) is None
    assert zk.get_children(root) == []


ORPHAN = textwrap.dedent(
    """
    import os, sys
    from kazoo.client import KazooClient
    c = KazooClient(hosts=sys.argv[1], timeout=float(sys.argv[3]))
    c.start(timeout=15)
    c.create(sys.argv[2], b"orphan", ephemeral=True)
    sid, pw = c.client_id
    print("%x %s" % (sid, pw.hex()), flush=True)
    os._exit(0)  # drop the TCP connection without closing the session
    """
)


def spawn_orphan(path, timeout):
    out = subprocess.run(
        [sys.executable, "-c", ORPHAN, ZK_HOSTS, path, str(timeout)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    return int(out[0], 16), bytes.fromhex(out[1])


def test_session_expires_after_disconnect(zk, root):
    p = root + "/orphan"
    t0 = time.time()
    sid, _ = spawn_orphan(p, 4.0)  # 4s = the oracle's minimum session timeout
    zk.sync(p)  # the orphan may have written through another member
    # a dropped connection is not a closed session: the ephemeral survives for now
    st = zk.exists(p)
    assert st is not None and st.ephemeralOwner == sid
    gone = threading.Event()
    zk.exists(p, watch=lambda ev: gone.set() if ev.type == EventType.DELETED else None)
    assert gone.wait(20), "ephemeral of an expired session was never removed"
    elapsed = time.time() - t0
    assert elapsed >= 2.0, "ephemeral vanished after %.1fs, before the session timeout" % elapsed
    assert zk.exists(p) is None


def test_reattach_session_by_id_and_password(zk, root):
    p = root + "/orphan"
    sid, pw = spawn_orphan(p, 10.0)
    c = KazooClient(hosts=ZK_HOSTS, client_id=(sid, pw), timeout=10.0)
    try:
        c.start(timeout=15)
        assert c.client_id[0] == sid
        assert c.exists(p).ephemeralOwner == sid
        c.set(p, b"still mine")
    finally:
        c.stop()
        c.close()
    zk.sync(p)
    assert zk.exists(p) is None  # stop() closed the re-attached session


def test_reattach_with_wrong_password_expires(zk, root):
    p = root + "/orphan"
    sid, pw = spawn_orphan(p, 10.0)
    bad = bytes([pw[0] ^ 0x55]) + pw[1:]
    c = KazooClient(hosts=ZK_HOSTS, client_id=(sid, bad), timeout=10.0)
    try:
        # the server refuses the re-attach (session "expired" for this client);
        # kazoo then transparently starts a brand-new session
        c.start(timeout=15)
        assert c.client_id[0] != sid
        assert c.exists(p).ephemeralOwner == sid
    finally:
        c.stop()
        c.close()
    # a failed re-attach does not kill the real session
    zk.sync(p)
    assert zk.exists(p).ephemeralOwner == sid
    good = KazooClient(hosts=ZK_HOSTS, client_id=(sid, pw), timeout=10.0)
    good.start(timeout=15)
    good.stop()
    good.close()
    zk.sync(p)
    assert zk.exists(p) is None


def test_read_only_capable_client_gets_rw_session(clients, root):
    c = clients(read_only=True)
    # the server is not in read-only mode, so the session is a normal one
    assert c.client_state == KeeperState.CONNECTED
    c.create(root + "/w", b"writable")
    assert c.get(root + "/w")[0] == b"writable"


def test_sync(zk, clients, root):
    other = clients()
    other.create(root + "/s", b"v")
    assert zk.sync(root + "/s") == root + "/s"
    assert zk.get(root + "/s")[0] == b"v"
    # sync of a missing path still succeeds (it is only a barrier)
    assert zk.sync(root + "/missing") == root + "/missing"


def test_server_version(zk):
    v = zk.server_version()
    assert isinstance(v, tuple) and len(v) >= 3
    assert v[0] == 3 and v[1] >= 5


def test_four_letter_command_ruok(zk):
    assert zk.command(b"ruok") == "imok"


def test_four_letter_command_stat(zk):
    out = zk.command(b"srvr")
    assert "Zookeeper version:" in out
    assert any(f"Mode: {m}" in out for m in ("standalone", "leader", "follower", "observer"))


def test_many_requests_pipelined(zk, root):
    # issue many async requests at once: replies must come back in order and complete
    results = [zk.create_async("%s/n%03d" % (root, i), b"%d" % i) for i in range(200)]
    paths = [r.get(timeout=30) for r in results]
    assert paths == ["%s/n%03d" % (root, i) for i in range(200)]
    gets = [zk.get_async("%s/n%03d" % (root, i)) for i in range(200)]
    assert [g.get(timeout=30)[0] for g in gets] == [b"%d" % i for i in range(200)]
    assert zk.exists(root).numChildren == 200


def test_idle_session_kept_alive_by_pings(clients, root):
    # kazoo pings after ~timeout/3 of silence; the server must answer (xid -2)
    # and must not expire a session that keeps pinging.
    states = []
    c = clients(timeout=4.0)
    c.add_listener(states.append)
    sid = c.client_id[0]
    c.create(root + "/alive", ephemeral=True)
    time.sleep(7)
    assert c.connected
    assert states == [], "connection state changed while idle: %r" % states
    assert c.client_id[0] == sid
    assert c.exists(root + "/alive").ephemeralOwner == sid
