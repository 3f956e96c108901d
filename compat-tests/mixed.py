#!/usr/bin/env python3
"""A rolling migration of a 3-member Apache ZooKeeper 3.8 ensemble to zkrs, one member at a
time, with clients writing throughout: the members of both kinds elect, sync (SNAP, DIFF)
and serve together.

1. Three Apache members; a client makes nodes of every kind (sequential, ACL'd, an
   ephemeral of a session that stays open).
2. An Apache follower is replaced by zkrs on a fresh data dir: it takes the Apache leader's
   SNAP while a client writes.
3. The other Apache follower is replaced by zkrs on that member's own data dir: it imports
   ZooKeeper's files and syncs the rest from the Apache leader.
4. The Apache leader is stopped: the two zkrs members elect one of them; the Apache member
   comes back on its data dir and follows the zkrs leader; then on an empty data dir, it
   takes the zkrs leader's SNAP.
5. The last Apache member is replaced by zkrs.

At each step every member is read through a client of its own (after a sync) and must hold
the same tree: every node's data, stat and ACL; writes through each member are seen by
all; the ephemeral's session lives on.

    compat-tests/mixed.py <zkrs-binary> [base-port]
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
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl

JARS = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-simple.jar"]

SUPER = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # super:test
# MIXED_RECONFIG=1: every member with reconfigEnabled, and reconfigs along the way (one
# committed by the Apache leader, one by a zkrs leader).
RECONFIG = os.environ.get("MIXED_RECONFIG") == "1"

binary = sys.argv[1]
base = int(sys.argv[2]) if len(sys.argv) > 2 else 24600
tmp = tempfile.mkdtemp()
procs = {}
kinds = {}
failed = 0
passed = 0


def check(ok, what):
    global failed, passed
    if ok:
        passed += 1
        print(f"PASS: {what}", flush=True)
    else:
        failed += 1
        print(f"FAIL: {what}", flush=True)


def ports(i):
    """(client, quorum, election) of server i."""
    return base + i, base + 10 + i, base + 20 + i


def data_dir(i):
    return os.path.join(tmp, f"m{i}")


def start(i, kind, wipe=False):
    """Starts member i as `kind` (apache or zkrs) on its data dir (emptied if `wipe`)."""
    d = data_dir(i)
    if wipe:
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "myid"), "w") as f:
        f.write(f"{i}\n")
    # Member 4 is an observer.
    servers = "".join(
        f"server.{s}=127.0.0.1:{ports(s)[1]}:{ports(s)[2]}{':observer' if s == 4 else ''}\n"
        for s in (1, 2, 3, 4))
    cfg = os.path.join(d, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(f"tickTime=500\ninitLimit=20\nsyncLimit=5\ndataDir={d}\n"
                f"clientPort={ports(i)[0]}\nclientPortAddress=127.0.0.1\n"
                "admin.enableServer=false\n4lw.commands.whitelist=*\n"
                + ("peerType=observer\n" if i == 4 else "")
                + (f"reconfigEnabled=true\nDigestAuthenticationProvider.superDigest={SUPER}\n"
                   if RECONFIG else "")
                + servers)
    log = open(os.path.join(d, f"{kind}.log"), "ab")
    if kind == "zkrs":
        cmd = [binary, "--config", cfg]
    else:
        cp = ":".join(f"/usr/share/java/{j}" for j in JARS)
        cmd = ["java", f"-Dzookeeper.log.dir={d}", "-cp", cp,
               "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
    procs[i] = subprocess.Popen(cmd, stdout=log, stderr=log)
    kinds[i] = kind


def stop(i):
    p = procs.pop(i, None)
    if p:
        p.send_signal(signal.SIGKILL)
        p.wait()
    kinds.pop(i, None)


def four(i, word):
    return members.four(ports(i)[0], word)


def mode(i):
    return members.mode(ports(i)[0])


def wait_serving(ids, timeout=90):
    return members.wait_serving([ports(i)[0] for i in ids], timeout)


def leader(ids):
    return next((i for i in ids if mode(i) == "leader"), None)


def client(i):
    zk = KazooClient(hosts=f"127.0.0.1:{ports(i)[0]}", timeout=10,
                     auth_data=[("digest", "app:secret")])
    zk.start(timeout=30)
    return zk


def dump(zk, path="/"):
    """Every node under `path` (the /zookeeper subtree aside): data, stat and ACL."""
    out = {}
    data, stat = zk.get(path)
    acl, _ = zk.get_acls(path)
    out[path] = (data, tuple(stat), tuple((a.perms, a.id.scheme, a.id.id) for a in acl))
    for c in sorted(zk.get_children(path)):
        child = path.rstrip("/") + "/" + c
        if child == "/zookeeper":
            continue
        out.update(dump(zk, child))
    return out


def same_trees(ids, what):
    """Each member's tree, read through its own client after a sync, is the same."""
    trees = {}
    for i in ids:
        zk = client(i)
        try:
            zk.sync("/")
            trees[i] = dump(zk)
        finally:
            zk.stop()
            zk.close()
    first = trees[ids[0]]
    differ = [i for i in ids if trees[i] != first]
    for i in differ:
        diff = [p for p in set(first) | set(trees[i]) if first.get(p) != trees[i].get(p)]
        print(f"  member {i} ({kinds.get(i)}) differs at {sorted(diff)[:5]}")
    check(not differ and len(first) > 1, f"{what}: members {ids} hold the same "
          f"{len(first)} nodes (kinds {[kinds.get(i) for i in ids]})")
    # Members of both kinds check the tree digest the leader's txns carry (an Apache
    # leader's or a zkrs leader's) against their own tree's.
    for i in ids:
        mntr = dict(ln.split("\t", 1) for ln in four(i, "mntr").splitlines() if "\t" in ln)
        check(mntr.get("zk_digest_mismatches_count") == "0",
              f"{what}: {kinds.get(i)} member {i} counts no digest mismatch "
              f"({mntr.get('zk_digest_mismatches_count')})")


def writes_everywhere(ids, tag):
    """A node made through each member is read through every member."""
    made = []
    for i in ids:
        zk = client(i)
        try:
            made.append(zk.create(f"/mixed/{tag}-via-{i}-", f"{kinds[i]}".encode(),
                                  sequence=True))
        finally:
            zk.stop()
            zk.close()
    seen = True
    for i in ids:
        zk = client(i)
        try:
            zk.sync("/")
            seen &= all(zk.exists(p) is not None for p in made)
        finally:
            zk.stop()
            zk.close()
    check(seen, f"{tag}: a write through each of {ids} is read through each")


def session_outlives_its_timeout(i, leader_id, tag):
    """A session connected to member i only, idle past its timeout while member
    `leader_id` (of the other kind) leads: i's pings to the leader keep it alive; closed,
    its ephemeral goes everywhere."""
    zk = KazooClient(hosts=f"127.0.0.1:{ports(i)[0]}", timeout=3)
    zk.start(timeout=30)
    path = f"/mixed/{tag}-ephemeral"
    zk.create(path, b"e", ephemeral=True)
    session = zk.client_id[0]
    time.sleep(7)  # more than twice the negotiated timeout
    other = client(leader_id)
    other.sync("/")
    stat = other.exists(path)
    check(stat is not None and stat.ephemeralOwner == session and zk.connected,
          f"{tag}: a session on member {i} ({kinds[i]}) outlives its timeout under "
          f"leader {leader_id} ({kinds[leader_id]})")
    zk.stop()
    zk.close()
    deadline = time.time() + 10
    while other.exists(path) and time.time() < deadline:
        time.sleep(0.1)
    check(other.exists(path) is None, f"{tag}: closed on member {i}, its ephemeral is gone "
          f"from member {leader_id}")
    other.stop()
    other.close()


def reconfig_everywhere(ids, via, what, **change):
    """A reconfig through member `via` (the super user); every member of `ids` then runs
    the membership it made: the same /zookeeper/config, the reconfig's zxid as version."""
    zk = KazooClient(hosts=f"127.0.0.1:{ports(via)[0]}", timeout=10,
                     auth_data=[("digest", "super:test")])
    zk.start(timeout=30)
    args = {"joining": None, "leaving": None, "new_members": None, **change}
    data, stat = zk.reconfig(from_config=-1, **args)
    zk.stop()
    zk.close()
    want = sorted(ln for ln in data.decode().splitlines() if ln.startswith("server."))
    version = [ln for ln in data.decode().splitlines() if ln.startswith("version=")]
    ok = True
    for i in ids:
        deadline = time.time() + 20
        while True:
            zk = client(i)
            zk.sync("/zookeeper/config")
            text = zk.get("/zookeeper/config")[0].decode()
            zk.stop()
            zk.close()
            have = sorted(ln for ln in text.splitlines() if ln.startswith("server."))
            conf = four(i, "conf")
            if have == want and version[0] in text and version[0] in conf or \
                    time.time() > deadline:
                break
            time.sleep(0.2)
        if not (have == want and version[0] in text and version[0] in conf):
            print(f"  member {i} ({kinds[i]}): {have} {text.splitlines()[-1:]}, conf "
                  f"{[ln for ln in conf.splitlines() if 'version' in ln]}; want {want} {version}")
            ok = False
    check(ok and stat.mzxid == int(version[0][8:], 16),
          f"{what}: members {ids} ({[kinds[i] for i in ids]}) run the new membership")
    writes_everywhere(ids, what.split(":")[0])


class Writer(threading.Thread):
    """Writes while members come and go; counts what was acknowledged."""

    def __init__(self, ids, tag):
        super().__init__(daemon=True)
        self.ids, self.tag, self.acked, self.halt = ids, tag, [], threading.Event()

    def run(self):
        zk = KazooClient(hosts=",".join(f"127.0.0.1:{ports(i)[0]}" for i in self.ids),
                         timeout=10)
        zk.start(timeout=30)
        n = 0
        while not self.halt.is_set():
            # 20 at a time: a leader commits several txns at once.
            paths = [f"/mixed/load/{self.tag}-{n + k:06d}" for k in range(20)]
            n += 20
            made = [(p, zk.create_async(p, b"x" * 100)) for p in paths]
            for p, r in made:
                try:
                    r.get(timeout=10)
                    zk.set(p, b"y" * 100)
                    self.acked.append(p)
                except Exception:
                    time.sleep(0.05)
        zk.stop()
        zk.close()

    def finish(self):
        self.halt.set()
        self.join()
        return self.acked


def restart_under_load(i, kind, via, tag, what):
    """Member i restarts as `kind` on an empty data dir while a client writes through
    member `via`: it syncs by SNAP. The paths whose writes were acknowledged."""
    w = Writer([via], tag)
    w.start()
    time.sleep(1)
    stop(i)
    start(i, kind, wipe=True)
    check(wait_serving([1, 2, 3]), what)
    time.sleep(1)
    return w.finish()


try:
    # 1. Apache ZooKeeper, three members.
    for i in (1, 2, 3):
        start(i, "apache")
    check(wait_serving([1, 2, 3]), "three Apache members serve")
    zk = client(1)
    acl = make_digest_acl("app", "secret", all=True)
    zk.create("/mixed", b"root of the test")
    zk.create("/mixed/load")
    for n in range(200):
        zk.create(f"/mixed/n{n:03d}", f"node {n}".encode() * 5)
    for n in range(20):
        zk.create("/mixed/seq-", b"s", sequence=True)
    zk.create("/mixed/secret", b"only app", acl=[acl])
    zk.set("/mixed/n001", b"changed")
    zk.delete("/mixed/n002")
    # A session that lives through the whole migration, with an ephemeral.
    owner = KazooClient(hosts=",".join(f"127.0.0.1:{ports(i)[0]}" for i in (1, 2, 3)),
                        timeout=30)
    owner.start(timeout=30)
    owner.create("/mixed/owned", b"ephemeral", ephemeral=True)
    session = owner.client_id[0]
    zk.stop()
    zk.close()

    # 2. A follower becomes zkrs, on an empty data dir: the Apache leader's SNAP.
    lead = leader([1, 2, 3])
    followers = [i for i in (1, 2, 3) if i != lead]
    a, b = followers
    acked = restart_under_load(a, "zkrs", lead, "snap",
                               f"zkrs member {a} follows Apache leader {lead} after a SNAP")
    check(len(acked) > 0, f"writes went on during the SNAP ({len(acked)})")
    same_trees([1, 2, 3], "after the SNAP from Apache")
    zk = client(a)
    zk.sync("/")
    check(all(zk.exists(p) for p in acked), "every acknowledged write is read through zkrs")
    check(zk.exists("/mixed/owned").ephemeralOwner == session,
          "the ephemeral is the long session's on zkrs")
    try:
        zk.get("/mixed/secret")
        secret = True
    except NoAuthError:
        secret = False
    check(secret and zk.get("/mixed/secret")[0] == b"only app", "the ACL'd node reads with its auth")
    zk.stop()
    zk.close()
    writes_everywhere([1, 2, 3], "apache-leader")
    session_outlives_its_timeout(a, lead, "apache-leader")

    # 3. The other follower becomes zkrs on ZooKeeper's own data dir (import, then sync).
    stop(b)
    zk = client(lead)
    zk.create("/mixed/while-b-away", b"missed")
    zk.stop()
    zk.close()
    start(b, "zkrs")
    check(wait_serving([1, 2, 3]), f"zkrs member {b} imports its data dir and follows")
    same_trees([1, 2, 3], "after the import and sync")
    # A zkrs observer of the Apache leader (SNAP, then INFORMs).
    start(4, "zkrs")
    check(wait_serving([4]) and mode(4) == "observer", "a zkrs observer observes Apache leader")
    writes_everywhere([1, 2, 3, 4], "zkrs-observer")
    same_trees([1, 2, 3, 4], "with a zkrs observer")
    stop(4)
    if RECONFIG:
        reconfig_everywhere([1, 2, 3], lead, "apache-reconfig: the Apache leader removes 4",
                            leaving="4")
    writes_everywhere([1, 2, 3], "two-zkrs")

    # 4. The Apache leader goes: a zkrs member leads; the Apache member follows it.
    stop(lead)
    check(wait_serving([a, b]), "the two zkrs members elect a leader")
    new = leader([a, b])
    check(new in (a, b), f"zkrs member {new} leads")
    zk = client(new)
    zk.create("/mixed/under-zkrs", b"x")
    for n in range(100):
        zk.set(f"/mixed/n{n + 3:03d}", b"under zkrs")
    zk.stop()
    zk.close()
    start(lead, "apache")
    check(wait_serving([1, 2, 3]), f"Apache member {lead} follows zkrs leader {new}")
    same_trees([1, 2, 3], "Apache synced from a zkrs leader (its data dir)")
    writes_everywhere([1, 2, 3], "zkrs-leader")
    session_outlives_its_timeout(lead, new, "zkrs-leader")
    acked = restart_under_load(lead, "apache", new, "apache-snap",
                               f"Apache member {lead} takes zkrs leader {new}'s SNAP")
    same_trees([1, 2, 3], "Apache synced from a zkrs leader (SNAP)")
    if RECONFIG:
        c, q, e = ports(4)
        reconfig_everywhere([1, 2, 3], new, "zkrs-reconfig: a zkrs leader adds 4 back",
                            joining=f"server.4=127.0.0.1:{q}:{e}:observer;127.0.0.1:{c}")
    # An Apache observer of the zkrs leader (its SNAP in ZooKeeper's format, then INFORMs).
    start(4, "apache", wipe=True)
    check(wait_serving([4]) and mode(4) == "observer", "an Apache observer observes zkrs leader")
    writes_everywhere([1, 2, 3, 4], "apache-observer")
    same_trees([1, 2, 3, 4], "with an Apache observer")
    stop(4)
    zk = client(lead)
    zk.sync("/")
    check(all(zk.exists(p) for p in acked),
          f"every write acknowledged during the SNAP ({len(acked)}) is read through Apache")
    check(zk.exists("/mixed/owned").ephemeralOwner == session,
          "the ephemeral is the long session's on Apache after the SNAP")
    zk.stop()
    zk.close()
    writes_everywhere([1, 2, 3], "apache-after-snap")

    # 5. The last Apache member becomes zkrs.
    stop(lead)
    start(lead, "zkrs")
    check(wait_serving([1, 2, 3]), "three zkrs members serve")
    same_trees([1, 2, 3], "all zkrs")
    writes_everywhere([1, 2, 3], "all-zkrs")
    check(owner.exists("/mixed/owned") is not None, "the long session still holds its ephemeral")
    owner.stop()
    owner.close()
    time.sleep(0.5)
    zk = client(1)
    deadline = time.time() + 40
    while zk.exists("/mixed/owned") and time.time() < deadline:
        time.sleep(0.2)
    check(zk.exists("/mixed/owned") is None, "the ephemeral goes with its closed session")
    zk.stop()
    zk.close()
    # Neither kind logged a broken sync along the way (Apache's learner survives what it
    # cannot take only by starting over: a COMMIT it cannot match, a snapshot it cannot read).
    broken = ['because "pif" is null', "but next pending txn", "without seeing txn",
              "Missing signature", "Invalid Datatree", "Got unexpected packet",
              "snapshot: ", "Digests are not matching", "ERROR"]
    for i in (1, 2, 3, 4):
        for kind in ("apache", "zkrs"):
            p = os.path.join(data_dir(i), f"{kind}.log")
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    text = f.read()
                found = [b for b in broken if b in text and not (
                    b == "ERROR" and kind == "apache")]
                check(not found, f"member {i}'s {kind} log tells of no broken sync {found}")
finally:
    for i in list(procs):
        stop(i)
    if failed:
        for i in (1, 2, 3, 4):
            for kind in ("apache", "zkrs"):
                p = os.path.join(data_dir(i), f"{kind}.log")
                if os.path.exists(p):
                    print(f"--- member {i} {kind}.log (tail)")
                    with open(p, errors="replace") as f:
                        print("".join(f.readlines()[-25:]))
    if failed and os.environ.get("MIXED_KEEP"):
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)

print(f"{passed} passed, {failed} failed")
if failed:
    print("mixed Apache/zkrs ensemble: FAILED")
    sys.exit(1)
print("mixed Apache/zkrs ensemble: all checks passed")
