#!/usr/bin/env python3
"""Observers syncing from followers (`observerMasterPort`, ZooKeeper's ObserverMaster), with
real Apache ZooKeeper 3.8 and zkrs members.

Three voting members of one kind (VOTERS=zkrs, the default, or VOTERS=apache) and two
observers, one Apache and one zkrs, every member with the same `observerMasterPort` in its
zoo.cfg. Each member has a loopback address of its own (127.0.0.1 to .5), since an observer
dials each voting member at its own configured port, as ZooKeeper's does.

1. The ensemble forms; each observer registers with some voting member (ZooKeeper's
   observer goes through a shuffled list of them, zkrs's in turn; a zkrs leader takes
   observers on that port too, an Apache leader does not listen there).
2. Until each observer is served by a follower (its `obsr` lists it: zkrs's AdminServer, or
   the follower's connection count on Apache), the observer is restarted.
3. Through each observer: a session, a create and a setData (forwarded by the follower to
   the leader), a sync, reads; a watch set on the observer fires for a write through the
   leader; an ephemeral of a session on the observer goes everywhere when it closes.
4. The follower serving an observer is killed: the observer registers elsewhere and serves
   the writes made meanwhile.

    compat-tests/observer-master.py <zkrs-binary> [base-port]
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from kazoo.client import KazooClient

import members

JARS = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-simple.jar"]
VOTERS = os.environ.get("VOTERS", "zkrs")

binary = sys.argv[1]
base = int(sys.argv[2]) if len(sys.argv) > 2 else 25400
tmp = tempfile.mkdtemp()
procs = {}
kinds = {1: VOTERS, 2: VOTERS, 3: VOTERS, 4: "apache", 5: "zkrs"}
failed = 0
passed = 0
MASTER_PORT = base + 30


def check(ok, what):
    global failed, passed
    if ok:
        passed += 1
        print(f"PASS: {what}", flush=True)
    else:
        failed += 1
        print(f"FAIL: {what}", flush=True)


def host(i):
    return f"127.0.0.{i}"


def ports(i):
    """(client, quorum, election, admin) of server i."""
    return base + i, base + 10 + i, base + 20 + i, base + 40 + i


def data_dir(i):
    return os.path.join(tmp, f"m{i}")


def start(i):
    d = data_dir(i)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "myid"), "w") as f:
        f.write(f"{i}\n")
    servers = "".join(
        f"server.{s}={host(s)}:{ports(s)[1]}:{ports(s)[2]}{':observer' if s >= 4 else ''}\n"
        for s in (1, 2, 3, 4, 5))
    cfg = os.path.join(d, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(f"tickTime=500\ninitLimit=20\nsyncLimit=5\ndataDir={d}\n"
                f"clientPort={ports(i)[0]}\nclientPortAddress=127.0.0.1\n"
                f"admin.serverAddress=127.0.0.1\nadmin.serverPort={ports(i)[3]}\n"
                "4lw.commands.whitelist=*\n"
                f"observerMasterPort={MASTER_PORT}\n"
                + ("peerType=observer\n" if i >= 4 else "")
                + servers)
    log = open(os.path.join(d, f"{kinds[i]}.log"), "ab")
    if kinds[i] == "zkrs":
        cmd = [binary, "--config", cfg]
        env = dict(os.environ, RUST_LOG="info")
    else:
        cp = ":".join(f"/usr/share/java/{j}" for j in JARS)
        cmd = ["java", f"-Dzookeeper.log.dir={d}", "-cp", cp,
               "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        env = os.environ
    procs[i] = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)


def stop(i):
    p = procs.pop(i, None)
    if p:
        p.send_signal(signal.SIGKILL)
        p.wait()


def four(i, word):
    return members.four(ports(i)[0], word)


def mode(i):
    return members.mode(ports(i)[0])


def wait_serving(ids, timeout=90):
    return members.wait_serving([ports(i)[0] for i in ids], timeout, one_leader=True)


def mntr(i):
    return dict(ln.split("\t", 1) for ln in four(i, "mntr").splitlines() if "\t" in ln)


def admin(i, command):
    try:
        with socket.create_connection(("127.0.0.1", ports(i)[3]), timeout=5) as s:
            s.sendall(f"GET /commands/{command} HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n".encode())
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode(errors="replace")
    except OSError:
        return ""


def serves(voter, observer):
    """Does voting member `voter` serve `observer` (its `observers` admin command)?"""
    body = admin(voter, "observers")
    return f'"sid" : {observer},' in body


def registered_with(observer):
    """The voting member `observer` last registered with, from its log (ZooKeeper's
    "Observing new leader sid=N", zkrs's "role Observing(N)")."""
    import re
    try:
        with open(os.path.join(data_dir(observer), f"{kinds[observer]}.log"), errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    found = re.findall(r"Observing new leader sid=(\d+)|role Observing\((\d+)\), serving clients: true",
                       text)
    if not found:
        return None
    a, b = found[-1]
    return int(a or b)


def master_of(observer, voters):
    """The follower serving `observer`, if one does (a zkrs follower must also list it)."""
    m = registered_with(observer)
    if m not in voters or mode(m) != "follower":
        return None
    if kinds[m] == "zkrs" and not serves(m, observer):
        return None
    return m


def leader(ids):
    return next((i for i in ids if mode(i) == "leader"), None)


def client(i):
    zk = KazooClient(hosts=f"127.0.0.1:{ports(i)[0]}", timeout=10)
    zk.start(timeout=30)
    return zk


def served_by_a_follower(obs, voters):
    """Restarts `obs` until a follower serves it; returns that follower."""
    for attempt in range(12):
        t0 = time.time()
        while time.time() - t0 < 20:
            if mode(obs) == "observer":
                m = master_of(obs, voters)
                if m is not None:
                    return m
                if registered_with(obs) == leader(voters):
                    break  # the leader serves it: try again
            time.sleep(0.3)
        stop(obs)
        start(obs)
    return None


def main():
    voters = [1, 2, 3]
    for i in (1, 2, 3, 4, 5):
        start(i)
    check(wait_serving([1, 2, 3, 4, 5]), f"{VOTERS} voters and two observers serve")
    lead = leader(voters)
    zl = client(lead)
    zl.ensure_path("/om")
    for obs in (4, 5):
        kind = kinds[obs]
        m = served_by_a_follower(obs, voters)
        check(m is not None, f"the {kind} observer {obs} is served by follower {m} ({VOTERS})")
        if m is None:
            continue
        if kinds[lead] == "zkrs":
            check(not serves(lead, obs), f"observer {obs}: the leader does not list it")
        # mntr, as ZooKeeper's: the observer names its learner master, the follower counts
        # the observers it serves.
        om, fm = mntr(obs), mntr(m)
        check(om.get("zk_observer_master_id") == str(m)
              and om.get("zk_peer_state") == "observing - broadcast",
              f"observer {obs}: mntr names its master ({om.get('zk_observer_master_id')}, "
              f"{om.get('zk_peer_state')})")
        check(int(fm.get("zk_synced_observers", "0")) >= 1
              and fm.get("zk_peer_state") == "following - broadcast",
              f"follower {m}: mntr counts the observers it serves "
              f"({fm.get('zk_synced_observers')}, {fm.get('zk_peer_state')})")
        zo = client(obs)
        # A write through the observer goes to the leader by way of the follower.
        p = zo.create(f"/om/{kind}-", b"via-observer", sequence=True)
        zo.set(p, b"set-via-observer")
        data, stat = zo.get(p)
        check(data == b"set-via-observer" and stat.version == 1,
              f"observer {obs}: reads its own create and setData ({stat.version})")
        zl.sync(p)
        check(zl.get(p)[0] == b"set-via-observer", f"observer {obs}: the leader has its write")
        # A watch on the observer fires for a write through the leader.
        fired = threading.Event()
        zo.get(p, watch=lambda e: fired.set())
        zl.set(p, b"from-leader")
        check(fired.wait(10), f"observer {obs}: its watch fires for the leader's write")
        # A sync through the observer, then the write is there.
        zl.create(f"/om/{kind}-after-sync", b"x")
        zo.sync("/om")
        check(zo.exists(f"/om/{kind}-after-sync") is not None,
              f"observer {obs}: after a sync it reads the leader's latest write")
        # An ephemeral of the observer's session goes everywhere, and away at its close.
        ze = client(obs)
        ze.create(f"/om/{kind}-eph", b"e", ephemeral=True)
        zl.sync("/om")
        check(zl.exists(f"/om/{kind}-eph") is not None, f"observer {obs}: its ephemeral is on the leader")
        ze.stop()
        ze.close()
        t0 = time.time()
        while zl.exists(f"/om/{kind}-eph") is not None and time.time() - t0 < 10:
            time.sleep(0.1)
        check(zl.exists(f"/om/{kind}-eph") is None, f"observer {obs}: the ephemeral goes at its close")
        # A session on the observer idle past its timeout lives on: the follower reports it
        # to the leader in its pings.
        zi = KazooClient(hosts=f"127.0.0.1:{ports(obs)[0]}", timeout=4)
        zi.start(timeout=30)
        sid = zi.client_id[0]
        zi.create(f"/om/{kind}-idle", b"i", ephemeral=True)
        time.sleep(8)
        zl.sync("/om")
        check(zl.exists(f"/om/{kind}-idle") is not None and zi.client_id[0] == sid,
              f"observer {obs}: an idle session outlives twice its timeout")
        zi.stop()
        zi.close()
        zo.stop()
        zo.close()
        # The follower serving it is killed: it registers elsewhere and catches up.
        stop(m)
        made = zl.create(f"/om/{kind}-while-moving", b"m")
        t0 = time.time()
        seen = False
        while time.time() - t0 < 40 and not seen:
            try:
                zo = KazooClient(hosts=f"127.0.0.1:{ports(obs)[0]}", timeout=4)
                zo.start(timeout=5)
                zo.sync("/om")
                seen = zo.exists(made) is not None
                zo.stop()
                zo.close()
            except Exception:
                time.sleep(0.5)
        check(seen, f"observer {obs}: with its follower gone it serves the writes made meanwhile")
        start(m)
        check(wait_serving([1, 2, 3, 4, 5]), f"member {m} back")
        lead = leader(voters)
        zl.stop()
        zl.close()
        zl = client(lead)
    zl.stop()
    zl.close()


try:
    main()
finally:
    for i in list(procs):
        stop(i)
    if failed:
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
