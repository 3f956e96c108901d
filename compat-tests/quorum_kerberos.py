#!/usr/bin/env python3
"""SASL with Kerberos between members, against Apache ZooKeeper 3.8: one Apache member and one
zkrs member, both with quorum.auth.enableSasl and both requirements on, JAAS `QuorumServer`
and `QuorumLearner` sections of Krb5LoginModule (ZooKeeper's server-to-server Kerberos
setup: principal zkquorum/localhost, `quorum.auth.kerberos.servicePrincipal=zkquorum/_HOST`),
tickets from a KDC of the test's own (compat-tests/kdc.py). In each id order (the larger id
dials the election port, and the follower the leader's quorum port) each takes the other's
login and the pair forms a quorum; then, with learners logging in as a principal of a host
that is not a member's, each refuses the other. Last, two zkrs members with Kerberos between
them and for their clients (kazoo): 13 checks.

    python3 compat-tests/quorum_kerberos.py <zkrs-binary> [base port]
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from checks import Checks
from kdc import REALM, Kdc

BIN = sys.argv[1]
BASE = int(sys.argv[2]) if len(sys.argv) > 2 else 24950
JARS = "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar"
DIR = tempfile.mkdtemp(prefix="zkrs-quorum-krb-")
KDC = Kdc(DIR, BASE + 40)
MEMBER = f"zkquorum/localhost@{REALM}"
OUTSIDER = f"zkquorum/elsewhere@{REALM}"

check = Checks()


def mode(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"srvr")
            text = s.recv(4096).decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Mode: "):
            return line[6:]
    return None


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def pair(a, z, learner, done, z2=None, clients=None):
    """Starts Apache member `a` (or, with `z2`, zkrs member `z2` in its place) and zkrs member
    `z`, their learners logging in as `learner`; waits (up to 60 s) until
    `done(first log, zkrs log, a, z)`; runs `clients()` then, if given; stops them. Returns
    both logs. With `clients` the members also take clients' Kerberos logins (a `Server`
    section with the zookeeper/localhost key, from a keytab of its own)."""
    d = os.path.join(DIR, f"{a}{z}{'z' if z2 else ''}-{learner.split('/')[1].split('@')[0]}")
    jaas = os.path.join(d, "jaas")
    os.makedirs(d)
    with open(jaas, "w") as f:
        f.write(KDC.jaas_entry("QuorumServer", MEMBER, KDC.keytabs["zkquorum/localhost"]))
        f.write(KDC.jaas_entry("QuorumLearner", learner,
                               KDC.keytabs[learner.split("@")[0]]))
        if clients:
            f.write(KDC.jaas_entry("Server", f"zookeeper/localhost@{REALM}",
                                   KDC.keytabs["zookeeper/localhost"]))
    procs = []
    first = a if z2 is None else z2
    for who, sid in (("a", first), ("z", z)):
        data = os.path.join(d, who)
        os.makedirs(data)
        with open(os.path.join(data, "myid"), "w") as f:
            f.write(f"{sid}\n")
        with open(os.path.join(data, "zoo.cfg"), "w") as f:
            f.write("\n".join([
                "tickTime=500", "initLimit=10", "syncLimit=4", f"dataDir={data}",
                f"clientPort={BASE + sid}", "clientPortAddress=127.0.0.1",
                "admin.enableServer=false", "4lw.commands.whitelist=*",
                "quorum.auth.enableSasl=true", "quorum.auth.learnerRequireSasl=true",
                "quorum.auth.serverRequireSasl=true",
                "quorum.auth.kerberos.servicePrincipal=zkquorum/_HOST",
                "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
                f"server.{first}=localhost:{BASE + 10 + first}:{BASE + 20 + first}",
                f"server.{z}=localhost:{BASE + 10 + z}:{BASE + 20 + z}",
            ]) + "\n")
    flags = [f"-Djava.security.auth.login.config={jaas}",
             f"-Djava.security.krb5.conf={KDC.krb5_conf}"]
    alog, zlog = os.path.join(d, "a.log"), os.path.join(d, "z.log")
    env = dict(os.environ, SERVER_JVMFLAGS=" ".join(flags), RUST_LOG="info")
    with open(alog, "w") as out:
        if z2 is None:
            cmd = ["java"] + flags + [f"-Dzookeeper.log.dir={d}/a", "-cp", JARS,
                                      "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                                      os.path.join(d, "a", "zoo.cfg")]
        else:
            cmd = [BIN, "--config", os.path.join(d, "a", "zoo.cfg")]
        procs.append(subprocess.Popen(cmd, stdout=out, stderr=out, env=env))
    with open(zlog, "w") as out:
        procs.append(subprocess.Popen([BIN, "--config", os.path.join(d, "z", "zoo.cfg")],
                                      stdout=out, stderr=out, env=env))
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not done(read(alog), read(zlog), first, z):
            time.sleep(0.2)
        if clients:
            clients()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return read(alog), read(zlog)


def refused(alog, zlog, a, z):
    return (f"{OUTSIDER} is not authorized to connect" in alog
            and f"{OUTSIDER} is not authorized" in zlog)


def tail(log):
    lines = [line for line in log.splitlines()
             if any(w in line for w in ("SASL", "sasl", "Kerberos", "GSSAPI", "authenticat",
                                        "LEADING", "FOLLOWING", "role"))]
    return "\n    " + "\n    ".join(lines[-15:])


try:
    print("== SASL with Kerberos between an Apache ZooKeeper member and a zkrs member ==")
    KDC.start()
    KDC.keytab("zkquorum/localhost")
    KDC.keytab("zkquorum/elsewhere")
    for a, z in ((1, 2), (2, 1)):
        modes = {}

        def done(alog, zlog, a, z):
            # The modes the check reads are the ones this poll decided on.
            modes["a"], modes["z"] = mode(BASE + a), mode(BASE + z)
            return (f"Successfully authenticated learner: authenticationID={MEMBER}" in alog
                    and f"logged in as {MEMBER}" in zlog
                    and sorted(filter(None, modes.values())) == ["follower", "leader"])

        alog, zlog = pair(a, z, MEMBER, done)
        check(f"Apache member {a} takes zkrs member {z}'s Kerberos login",
              f"Successfully authenticated learner: authenticationID={MEMBER}" in alog, tail(alog))
        check(f"zkrs member {z} takes Apache member {a}'s Kerberos login",
              f"logged in as {MEMBER}" in zlog, tail(zlog))
        check(f"Apache member {a} and zkrs member {z} form a quorum",
              sorted(filter(None, modes.values())) == ["follower", "leader"],
              (modes, alog[-3000:], zlog[-3000:]))
        alog, zlog = pair(a, z, OUTSIDER, refused)
        check(f"Apache member {a} refuses zkrs member {z} logging in as {OUTSIDER}",
              f"{OUTSIDER} is not authorized to connect" in alog, tail(alog))
        check(f"zkrs member {z} refuses Apache member {a} logging in as {OUTSIDER}",
              f"{OUTSIDER} is not authorized" in zlog, tail(zlog))
    # Two zkrs members, which also take Kerberos clients (keys of another keytab): kazoo as
    # bob writes through one and reads through the other.
    KDC.keytab("zookeeper/localhost")
    KDC.keytab("bob")
    KDC.keytab("alice")
    KDC.ccache("bob")
    KDC.ccache("alice")
    seen = {}

    def zkrs_pair(alog, zlog, a, z):
        seen["modes"] = sorted(filter(None, (mode(BASE + a), mode(BASE + z))))
        return (f"logged in as {MEMBER}" in alog and f"logged in as {MEMBER}" in zlog
                and seen["modes"] == ["follower", "leader"])

    def kazoo_clients():
        from kazoo.client import KazooClient
        from kazoo.exceptions import NoAuthError
        from kazoo.security import make_acl

        def on(port, who):
            os.environ["KRB5CCNAME"] = f"FILE:{KDC.ccaches[who]}"
            c = KazooClient(hosts=f"localhost:{port}", connection_retry={"max_tries": 1},
                            sasl_options={"mechanism": "GSSAPI", "service": "zookeeper",
                                          "principal": who})
            c.start(timeout=15)
            return c
        try:
            bob = on(BASE + 3, "bob")
            bob.create("/qk", b"v", acl=[make_acl("sasl", f"bob@{REALM}", all=True)])
            bob.stop()
            bob = on(BASE + 4, "bob")
            bob.sync("/qk")
            seen["read"] = bob.get("/qk")[0]
            bob.stop()
            alice = on(BASE + 4, "alice")
            try:
                alice.get("/qk")
                seen["alice"] = "served"
            except NoAuthError:
                seen["alice"] = "NoAuth"
            alice.stop()
        except Exception as e:  # noqa: BLE001 - the checks report what happened
            seen["error"] = repr(e)

    alog, zlog = pair(0, 4, MEMBER, zkrs_pair, z2=3, clients=kazoo_clients)
    check("two zkrs members log in to each other with Kerberos and form a quorum",
          seen.get("modes") == ["follower", "leader"] and f"logged in as {MEMBER}" in alog
          and f"logged in as {MEMBER}" in zlog, (seen, tail(alog), tail(zlog)))
    check("with a Server section too (another keytab): kazoo as bob writes through one member "
          "and reads through the other", seen.get("read") == b"v", seen)
    check("alice is NoAuth on bob's node", seen.get("alice") == "NoAuth", seen)
finally:
    KDC.stop()
    shutil.rmtree(DIR, ignore_errors=True)

sys.exit(check.summary())
