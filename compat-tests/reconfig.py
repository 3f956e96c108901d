#!/usr/bin/env python3
"""Dynamic reconfiguration with real clients against a real 3-member ensemble.

kazoo's reconfig (the super user: /zookeeper/config is world-readable only) removes a
member, is refused without rights, with a stale version and without a synced quorum, then
adds a fourth server that started as a non-voting follower; with the first member stopped,
the new membership still holds a quorum. The official zkCli.sh reads the config and runs
`reconfig -remove` itself. The same script runs against Apache ZooKeeper 3.8:

    compat-tests/reconfig.py zkrs <zkrs-binary> [base-port]
    compat-tests/reconfig.py apache [base-port]
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NewConfigNoQuorumError,
    NoAuthError,
)

ZKCLI = os.environ.get("ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
JARS = ["zookeeper.jar", "zookeeper-jute.jar", "slf4j-simple.jar"]
SUPER = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # super:test

what = sys.argv[1]
binary = sys.argv[2] if what == "zkrs" else None
base = int(sys.argv[3] if what == "zkrs" and len(sys.argv) > 3 else
           sys.argv[2] if what == "apache" and len(sys.argv) > 2 else 24500)
tmp = tempfile.mkdtemp()
procs = {}
failed = 0
passed = 0


def check(ok, what_):
    global failed, passed
    if ok:
        passed += 1
        print(f"PASS: {what_}")
    else:
        failed += 1
        print(f"FAIL: {what_}")


def ports(i):
    """(client, quorum, election) of server i."""
    return base + i, base + 10 + i, base + 20 + i


def line(i):
    c, q, e = ports(i)
    return f"server.{i}=127.0.0.1:{q}:{e}:participant;127.0.0.1:{c}"


originals = {}


def start(i, servers):
    d = os.path.join(tmp, f"m{i}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "myid"), "w") as f:
        f.write(f"{i}\n")
    originals[i] = (
        f"tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={d}\nclientPort={ports(i)[0]}\n"
        "reconfigEnabled=true\nstandaloneEnabled=false\nadmin.enableServer=false\n"
        f"4lw.commands.whitelist=*\nDigestAuthenticationProvider.superDigest={SUPER}\n"
        + "".join(line(s) + "\n" for s in servers)
    )
    with open(os.path.join(d, "zoo.cfg"), "w") as f:
        f.write(originals[i])
    launch(i)


def launch(i):
    """Starts server i from the zoo.cfg in its directory, as it is."""
    d = os.path.join(tmp, f"m{i}")
    cfg = os.path.join(d, "zoo.cfg")
    log = open(os.path.join(d, "server.log"), "ab")
    if what == "zkrs":
        cmd = [binary, "--config", cfg]
    else:
        cp = ":".join(f"/usr/share/java/{j}" for j in JARS)
        cmd = ["java", f"-Dzookeeper.log.dir={d}", "-cp", cp,
               "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
    procs[i] = subprocess.Popen(cmd, stdout=log, stderr=log)


def stop(i):
    p = procs.pop(i, None)
    if p:
        p.send_signal(signal.SIGKILL)
        p.wait()


def mode(i):
    try:
        with socket.create_connection(("127.0.0.1", ports(i)[0]), timeout=1) as s:
            s.sendall(b"srvr")
            out = b""
            while chunk := s.recv(4096):
                out += chunk
        for ln in out.decode().splitlines():
            if ln.startswith("Mode: "):
                return ln[6:]
    except OSError:
        return None
    return None


def wait_modes(ids, want=("leader", "follower"), timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if all(mode(i) in want for i in ids):
            return True
        time.sleep(0.2)
    return False


def client(ids, auth=True):
    hosts = ",".join(f"127.0.0.1:{ports(i)[0]}" for i in ids)
    zk = KazooClient(hosts=hosts, timeout=10,
                     auth_data=[("digest", "super:test")] if auth else None)
    zk.start(timeout=30)
    return zk


def members_of(data):
    text = data.decode()
    ids = sorted(int(ln.split("=")[0][7:]) for ln in text.splitlines() if ln.startswith("server."))
    version = [ln[8:] for ln in text.splitlines() if ln.startswith("version=")]
    return ids, int(version[0], 16) if version else None


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def config_files(ids, data, version, first=False):
    """ZooKeeper's rewrite of each member's zoo.cfg for the membership `data` (the config node):
    zoo.cfg.dynamic.<version> holds its lines but `version=`, sorted, no newline at the end;
    zoo.cfg keeps its other lines, loses the membership and the client port (each member's
    line carries its own) and points at the dynamic file; at the first start zoo.cfg.bak
    kept the file as it was."""
    want = "\n".join(sorted(ln for ln in data.decode().splitlines()
                            if ln and not ln.startswith("version=")))
    for i in ids:
        cfg = os.path.join(tmp, f"m{i}", "zoo.cfg")
        dynamic = f"{cfg}.dynamic.{version:x}"
        t0 = time.time()
        while read(dynamic) != want and time.time() - t0 < 15:
            time.sleep(0.2)
        ok = read(dynamic) == want
        check(ok, f"m{i}: {os.path.basename(dynamic)} holds the membership"
              + ("" if ok else f" ({read(dynamic)!r}, wanted {want!r})"))
        kept = sorted(ln for ln in originals[i].splitlines()
                      if not ln.startswith(("server.", "clientPort")))
        now = (read(cfg) or "").splitlines()
        pointer = f"dynamicConfigFile={os.path.realpath(dynamic)}"
        ok = pointer in now and sorted(ln for ln in now if ln != pointer) == kept
        check(ok, f"m{i}: zoo.cfg points at it, its other lines kept"
              + ("" if ok else f" ({now})"))
        if first:
            check(read(cfg + ".bak") == originals[i], f"m{i}: zoo.cfg.bak is the file as written")


def zkcli(port, script):
    """Runs zkCli.sh with commands on stdin; its output."""
    r = subprocess.run([ZKCLI, "-server", f"127.0.0.1:{port}"], input=script,
                       capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


try:
    print(f"== reconfig with real clients ({what}, ports {base + 1}..) ==")
    for i in (1, 2, 3):
        start(i, (1, 2, 3))
    check(wait_modes((1, 2, 3)), "three members serve")

    zk = client((1, 2, 3))
    data, stat = zk.get("/zookeeper/config")
    ids, v0 = members_of(data)
    check(ids == [1, 2, 3] and v0 is not None and v0 >> 32 > 0 and v0 & 0xffffffff == 0,
          f"the first epoch versions zoo.cfg's membership ({ids}, {v0:#x})")

    config_files((1, 2, 3), data, v0, first=True)

    anon = client((1, 2, 3), auth=False)
    try:
        anon.reconfig(joining=None, leaving="3", new_members=None)
        check(False, "reconfig without rights refused")
    except NoAuthError:
        check(True, "reconfig without rights refused (NoAuth)")
    anon.stop()
    try:
        zk.reconfig(joining=None, leaving="3", new_members=None, from_config=v0 + 7)
        check(False, "a stale version refused")
    except BadVersionError:
        check(True, "a stale version refused (BadVersion)")
    try:
        zk.reconfig(joining=None, leaving="1,2,3", new_members=None)
        check(False, "a membership without voters refused")
    except BadArgumentsError:
        check(True, "a membership without voters refused (BadArguments)")
    absent = ",".join(f"server.{i}=127.0.0.1:{base + 40 + i}:{base + 50 + i};{base + 60 + i}"
                      for i in (5, 6, 7))
    try:
        zk.reconfig(joining=absent, leaving=None, new_members=None)
        check(False, "servers that are not there cannot be a quorum")
    except NewConfigNoQuorumError:
        check(True, "servers that are not there cannot be a quorum (NewConfigNoQuorum)")

    # zkCli.sh removes server 3.
    # When 3 leads, the ensemble elects anew and zkCli's connection may drop before the answer
    # comes (ConnectionLoss, in ZooKeeper as in zkrs); the config read next shows the commit.
    out = zkcli(ports(1)[0], "addauth digest super:test\nreconfig -remove 3\nquit\n")
    check("Committed new configuration:" in out or "ConnectionLoss" in out,
          "zkCli.sh reconfig -remove 3 is sent")
    zk.stop()
    check(wait_modes((1, 2)), "1 and 2 serve after 3 left")
    zk = client((1, 2))
    zk.sync("/")
    data, stat = zk.get("/zookeeper/config")
    ids, v1 = members_of(data)
    check(ids == [1, 2] and v1 == stat.mzxid and v1 > v0,
          f"config shows 1 and 2, versioned by the reconfig's zxid ({v1:#x})")
    out = zkcli(ports(2)[0], "config\nquit\n")
    check(f"version={v1:x}" in out and "server.3=" not in out, "zkCli.sh config shows it")
    config_files((1, 2), data, v1)
    stop(3)
    zk.create("/reconfig-a", b"x")
    check(zk.exists("/reconfig-a") is not None, "writes commit without 3")

    # Server 4 joins: it starts knowing 1, 2 and itself, syncs, then is added.
    start(4, (1, 2, 4))
    check(wait_modes((4,)), "server 4 follows before it is a member")
    joining = line(4).replace(":participant", "")
    data, stat = zk.reconfig(joining=joining, leaving=None, new_members=None, from_config=v1)
    ids, v2 = members_of(data)
    check(ids == [1, 2, 4] and v2 > v1, f"server 4 added ({ids}, {v2:#x})")
    zk.stop()

    # 4 votes: 2 and 4 are a quorum without 1.
    stop(1)
    check(wait_modes((2, 4)), "2 and 4 serve without 1")
    zk = client((2, 4))
    zk.create("/reconfig-b", b"x")
    zk.sync("/")
    check(zk.exists("/reconfig-a") is not None and zk.exists("/reconfig-b") is not None,
          "every write is there")
    data, _ = zk.get("/zookeeper/config")
    check(members_of(data)[0] == [1, 2, 4], "the membership holds")
    # A non-incremental reconfig names the whole membership: 1, which is down, leaves.
    data, stat = zk.reconfig(joining=None, leaving=None, new_members=line(2) + "," + line(4))
    ids, v3 = members_of(data)
    check(ids == [2, 4] and v3 == stat.mzxid, f"new_members sets the membership ({ids}, {v3:#x})")
    zk.stop()
    config_files((2, 4), data, v3)

    # 2 starts again from its rewritten zoo.cfg: the membership comes from the dynamic file.
    stop(2)
    launch(2)
    check(wait_modes((2, 4)), "2 serves again from the rewritten zoo.cfg")
    zk = client((2,))
    zk.sync("/")
    data, _ = zk.get("/zookeeper/config")
    check(members_of(data) == ([2, 4], v3), f"with membership {v3:#x} ({members_of(data)})")
    check(zk.exists("/reconfig-b") is not None, "and every write")
    zk.stop()
finally:
    for i in list(procs):
        stop(i)
    if failed:
        for i in (1, 2, 3, 4):
            p = os.path.join(tmp, f"m{i}", "server.log")
            if os.path.exists(p):
                print(f"--- m{i}")
                print("".join(open(p, errors="replace").readlines()[-10:]))
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
