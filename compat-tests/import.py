#!/usr/bin/env python3
"""A data dir Apache ZooKeeper 3.8 wrote (tests/data/zookeeper-datadir), served by a server
started on it with the same zoo.cfg, as an operator replacing ZooKeeper would start zkrs:
kazoo and zkCli.sh must see what they see on Apache ZooKeeper restarted on that data dir.

    python3 compat-tests/import.py zkrs <zkrs-binary> [port]
    python3 compat-tests/import.py apache [port]

The expected values below are Apache ZooKeeper's answers (both modes check the same ones).
With LOGS_ONLY=1 in the environment the data dir keeps its log and loses its snapshots (as
ZooKeeper 3.4 before 3.5.3 left a data dir), and zoo.cfg says snapshot.trust.empty=true
(zookeeper.snapshot.trust.empty): the log, replayed over the initial tree, gives the same.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

WHAT = sys.argv[1] if len(sys.argv) > 1 else "zkrs"
BIN = sys.argv[2] if WHAT == "zkrs" else None
PORT = int(sys.argv[3 if WHAT == "zkrs" else 2]) if len(sys.argv) > (3 if WHAT == "zkrs" else 2) else 24781
ZKCLI = os.environ.get("ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
JARS = "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar"
HERE = os.path.dirname(os.path.abspath(__file__))
S1 = 0x100000ddd700000  # the session ZooKeeper's data holds open (30 s), owner of /app/eph

failures = 0


def check(name, got, want):
    global failures
    if got == want:
        print(f"PASS: {name}")
    else:
        failures += 1
        print(f"FAIL: {name}: got {got!r}, want {want!r}")


d = tempfile.mkdtemp(prefix="zkrs-import-")
shutil.copytree(os.path.join(HERE, "..", "tests", "data", "zookeeper-datadir", "version-2"),
                os.path.join(d, "version-2"))
LOGS_ONLY = os.environ.get("LOGS_ONLY") == "1"
if LOGS_ONLY:
    for name in os.listdir(os.path.join(d, "version-2")):
        if name.startswith("snapshot."):
            os.remove(os.path.join(d, "version-2", name))
cfg = os.path.join(d, "zoo.cfg")
with open(cfg, "w") as f:
    f.write(f"tickTime=2000\ndataDir={d}\nclientPort={PORT}\nclientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\nextendedTypesEnabled=true\n4lw.commands.whitelist=*\n")
    if LOGS_ONLY:
        f.write("snapshot.trust.empty=true\n")
log = open(os.path.join(d, "server.log"), "w")
if WHAT == "zkrs":
    server = subprocess.Popen([BIN, "--config", cfg], stdout=log, stderr=log)
else:
    server = subprocess.Popen(["java", f"-Dzookeeper.log.dir={d}", "-cp", JARS,
                               "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
                              stdout=log, stderr=log)
started = time.monotonic()
try:
    for _ in range(300):
        try:
            # srvr, not ruok: Apache answers imok before it serves sessions.
            with socket.create_connection(("127.0.0.1", PORT), timeout=1) as s:
                s.sendall(b"srvr")
                if b"Mode:" in s.recv(4096):
                    break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        raise SystemExit(f"the server did not start; see {d}/server.log")

    # The restart compares the digests ZooKeeper recorded (each logged txn's, and the
    # snapshot's) with the tree's as it loads them: none differs.
    with socket.create_connection(("127.0.0.1", PORT), timeout=5) as s:
        s.sendall(b"mntr")
        mntr = b""
        while chunk := s.recv(65536):
            mntr += chunk
    check("digest mismatches counted at the start",
          [ln for ln in mntr.decode().splitlines() if ln.startswith("zk_digest_mismatches_count")],
          ["zk_digest_mismatches_count\t0"])

    zk = KazooClient(hosts=f"127.0.0.1:{PORT}")
    zk.start(timeout=10)
    data, st = zk.get("/app")
    check("/app data and stat", (data, st.version, st.cversion, st.numChildren,
                                 st.czxid, st.mzxid, st.pzxid), (b"v2", 1, 12, 8, 0x2, 0xe, 0x14))
    check("/app children", sorted(zk.get_children("/app")),
          ["box", "c2", "config", "eph", "m1", "secret", "seq-0000000003", "ttl"])
    check("/app/eph is the open session's ephemeral", zk.exists("/app/eph").ephemeralOwner, S1)
    data, st = zk.get("/app/config")
    check("/app/config after setData and setACL", (data, st.version, st.aversion, st.mzxid),
          (b"x=2", 1, 1, 0x4))
    check("/app/config's ACL", [(a.perms, a.id.scheme, a.id.id) for a in zk.get_acls("/app/config")[0]],
          [(3, "world", "anyone")])
    check("/app/secret's ACL (digest masked as ZooKeeper masks it)",
          [(a.perms, a.id.scheme, a.id.id) for a in zk.get_acls("/app/secret")[0]],
          [(31, "digest", "vec:x"), (1, "world", "anyone")])
    try:
        zk.set("/app/secret", b"x")
        check("/app/secret refuses anyone's write", "served", "NoAuth")
    except NoAuthError:
        check("/app/secret refuses anyone's write", "NoAuth", "NoAuth")
    check("a sequential node numbered from the imported counter",
          zk.create("/app/seq-", b"", sequence=True), "/app/seq-0000000010")
    zk.create("/mine", b"1")
    check("zxids go on from ZooKeeper's (session 0x15, refused write 0x16, seq 0x17)",
          zk.exists("/mine").czxid, 0x18)
    out = subprocess.run([ZKCLI, "-server", f"127.0.0.1:{PORT}", "get", "/app/box/item"],
                         capture_output=True, text=True, timeout=60).stdout
    check("zkCli.sh reads a node under the container", out.strip().splitlines()[-1:], ["i"])
    # The imported session expires as it would on ZooKeeper (its timeout, 30 s, from the start).
    deadline = started + 60
    while zk.exists("/app/eph") and time.monotonic() < deadline:
        time.sleep(1)
    check("the imported session expires and takes its ephemeral", zk.exists("/app/eph"), None)
    zk.stop()
finally:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()

if failures:
    print(f"{failures} check(s) failed; server log: {d}/server.log")
    sys.exit(1)
shutil.rmtree(d, ignore_errors=True)
print("import: all checks passed")
