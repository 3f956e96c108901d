#!/usr/bin/env python3
"""SASL GSSAPI (Kerberos v5) client authentication with real clients: kazoo (pure-sasl over
pykerberos, MIT's GSSAPI) and the official zkCli.sh (the Java client's own Kerberos, with a
JAAS `Client` section of Krb5LoginModule).

    python3 compat-tests/sasl_kerberos.py zkrs <zkrs-binary> [port]   # start zkrs and test it
    python3 compat-tests/sasl_kerberos.py apache [port]               # the same against Apache ZooKeeper 3.8

A KDC of its own (MIT krb5kdc, realm ZKRS.TEST, on 127.0.0.1 at port+1, its database in a
temporary directory) issues the tickets. The server logs in as ZooKeeper's docs set it up: a
JAAS `Server` section of Krb5LoginModule with a keytab and the principal
zookeeper/localhost@ZKRS.TEST, `-Djava.security.auth.login.config` and
`-Djava.security.krb5.conf` in SERVER_JVMFLAGS (zkrs) or on the java command line (Apache).
"""
import base64
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, NoAuthError
from kazoo.security import make_acl

import saslserver
from checks import Checks
from saslserver import acl_ids, buf, frame, raw_sasl, recv_frame, stop
from kdc import REALM, Kdc

WHAT = sys.argv[1] if len(sys.argv) > 1 else "zkrs"
if WHAT == "zkrs":
    BIN = sys.argv[2]
    PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 24781
else:
    BIN = None
    PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 24781
KDC_PORT = PORT + 1
ZKCLI = os.environ.get("ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
AUTH_FAILED = -115
PROVIDER = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"

DIR = tempfile.mkdtemp(prefix="zkrs-krb-")
KDC = Kdc(DIR, KDC_PORT)
KRB5_CONF = KDC.krb5_conf

check = Checks()


def start(name, cfg_lines, jvm_flags, quiet=False):
    return saslserver.start(WHAT, BIN, PORT, DIR, name, [PROVIDER] + cfg_lines, jvm_flags,
                            quiet)


def client(principal=None):
    """kazoo on localhost (the service is zookeeper@localhost), as `principal` from its
    credential cache."""
    opts = {}
    if principal:
        os.environ["KRB5CCNAME"] = f"FILE:{KDC.ccaches[principal]}"
        opts["sasl_options"] = {"mechanism": "GSSAPI", "service": "zookeeper",
                                "principal": principal}
    return KazooClient(hosts=f"localhost:{PORT}", connection_retry={"max_tries": 1}, **opts)


def started(principal=None):
    c = client(principal)
    c.start(timeout=15)
    return c


def refused(name, exc, call):
    try:
        call()
        check(name, False, "it was served")
    except exc:
        check(name, True)


def pipelined_sasl_and_exists(principal):
    """A session, then in one write a SASL request with `principal`'s first GSSAPI token
    (xid 7) and an exists of / (xid 8): (xid, err, a token came) of the two answers, in the
    order they came."""
    import kerberos
    os.environ["KRB5CCNAME"] = f"FILE:{KDC.ccaches[principal]}"
    _, ctx = kerberos.authGSSClientInit("zookeeper@localhost")
    kerberos.authGSSClientStep(ctx, "")
    token = base64.b64decode(kerberos.authGSSClientResponse(ctx))
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    try:
        s.sendall(frame(struct.pack(">iqiq", 0, 0, 30000, 0) + buf(b"\0" * 16) + b"\0"))
        recv_frame(s)
        sasl = frame(struct.pack(">ii", 7, 102) + buf(token))
        exists = frame(struct.pack(">ii", 8, 3) + buf(b"/") + b"\0")
        s.sendall(sasl + exists)
        out = []
        for _ in range(2):
            r = recv_frame(s)
            xid, _, err = struct.unpack(">iqi", r[:16])
            n = struct.unpack(">i", r[16:20])[0] if xid == 7 and len(r) >= 20 else -1
            out.append((xid, err, n > 0))
        return out
    finally:
        s.close()


def zkcli(*cmds, principal=None):
    env = dict(os.environ)
    if principal:
        jaas = os.path.join(DIR, principal.replace("/", "_") + ".jaas")
        with open(jaas, "w") as f:
            f.write(KDC.jaas_entry("Client", principal))
        env["CLIENT_JVMFLAGS"] = (f"-Djava.security.auth.login.config={jaas} "
                                  f"-Djava.security.krb5.conf={KRB5_CONF}")
    out = subprocess.run([ZKCLI, "-server", f"localhost:{PORT}"],
                         input="\n".join(cmds) + "\nquit\n",
                         capture_output=True, text=True, timeout=90, env=env)
    return out.stdout + out.stderr


try:
    print(f"== SASL GSSAPI (Kerberos) with real clients ({WHAT} on 127.0.0.1:{PORT}) ==")
    KDC.start()
    for p in ["zookeeper/localhost", "bob", "alice", "admin", "svc/localhost"]:
        KDC.keytab(p)
    for p in ["bob", "alice", "admin", "svc/localhost"]:
        KDC.ccache(p)
    SERVER_JAAS = os.path.join(DIR, "server.jaas")
    with open(SERVER_JAAS, "w") as f:
        f.write(KDC.jaas_entry("Server", f"zookeeper/localhost@{REALM}",
                               KDC.keytabs["zookeeper/localhost"]))
    flags = [f"-Djava.security.auth.login.config={SERVER_JAAS}",
             f"-Djava.security.krb5.conf={KRB5_CONF}", f"-Dzookeeper.superUser=admin@{REALM}"]

    p = start("krb", [], flags)
    try:
        bob = started("bob")
        bob.create("/krb", b"mine", acl=[make_acl("sasl", f"bob@{REALM}", all=True)])
        check("kazoo as bob (GSSAPI): create with ACL sasl:bob@ZKRS.TEST, read it back",
              bob.get("/krb")[0] == b"mine")
        bob.create("/krb-auth", b"a", acl=[make_acl("auth", "", all=True)])
        ids = acl_ids(bob, "/krb-auth")
        check("ACL auth: the connection's id is the principal, realm kept",
              ids == [f"sasl:bob@{REALM}"], ids)
        bob.stop()

        svc = started("svc/localhost")
        svc.create("/krb-svc", b"s", acl=[make_acl("auth", "", all=True)])
        ids = acl_ids(svc, "/krb-svc")
        check("a principal with a host: id svc/localhost@ZKRS.TEST",
              ids == [f"sasl:svc/localhost@{REALM}"], ids)
        svc.stop()

        alice = started("alice")
        refused("kazoo as alice: bob's node is NoAuth", NoAuthError, lambda: alice.get("/krb"))
        alice.stop()

        anon = started()
        refused("kazoo without SASL: bob's node is NoAuth", NoAuthError, lambda: anon.get("/krb"))
        anon.stop()

        admin = started("admin")
        check("kazoo as admin@ZKRS.TEST (zookeeper.superUser): reads bob's node",
              admin.get("/krb")[0] == b"mine")
        admin.set("/krb", b"changed")
        admin.stop()

        _, _, err, tok, closed = raw_sasl(PORT, b"not a GSSAPI token")
        check("a token that is not GSSAPI: AUTHFAILED, no token, connection closed",
              (err, tok, closed) == (AUTH_FAILED, None, True), (err, tok, closed))

        replies = pipelined_sasl_and_exists("bob")
        check("a GSSAPI token and an exists sent together: the SASL answer (with a token) "
              "comes first, then the exists", replies == [(7, 0, True), (8, 0, False)], replies)

        out = zkcli("whoami", "get /krb", "create /krb-cli x auth::cdrwa", "getAcl /krb-cli",
                    principal="bob")
        check("zkCli.sh (Java Krb5LoginModule): SaslAuthenticated, whoami sasl: bob@ZKRS.TEST",
              "state:SaslAuthenticated" in out and f"sasl: bob@{REALM}" in out, out[-800:])
        check("zkCli.sh as bob: reads bob's node, auth ACL becomes sasl:bob@ZKRS.TEST",
              "\nchanged" in out and f"'sasl,'bob@{REALM}" in out, out[-800:])
        out = zkcli("get /krb")
        check("zkCli.sh without JAAS: bob's node is NoAuth", "Insufficient permission" in out,
              out[-300:])

        # The KDC gives the service a new key: tickets it issues now are for a key version
        # the server's keytab does not hold.
        KDC.admin("cpw -randkey zookeeper/localhost")
        KDC.ccache("alice")
        c = client("alice")
        try:
            c.start(timeout=15)
            c.exists("/")
            r = "connected"
        except AuthFailedError:
            r = True
        except Exception as e:  # noqa: BLE001 - the test reports what it got instead
            r = repr(e)
        finally:
            c.stop()
            c.close()
        check("a ticket for a key the server's keytab lacks: AuthFailedError", r is True, r)
        # The keytab takes the new key too (Apache's login asks the KDC for a ticket with it).
        KDC.admin(f"ktadd -k {KDC.keytabs['zookeeper/localhost']} -norandkey zookeeper/localhost")
    finally:
        stop(p)

    # A principal the keytab has no key for: the login fails, and the server does not start.
    bad_jaas = os.path.join(DIR, "bad.jaas")
    with open(SERVER_JAAS) as f, open(bad_jaas, "w") as g:
        g.write(f.read().replace("zookeeper/localhost@", "zookeeper/elsewhere@"))
    bad_flags = [f"-Djava.security.auth.login.config={bad_jaas}"] + flags[1:]
    try:
        p = start("badlogin", [], bad_flags, quiet=True)
        stop(p)
        check("a principal not in the keytab: the server does not start", False, "it serves")
    except SystemExit:
        check("a principal not in the keytab: the server does not start", True)

    p = start("short", ["kerberos.removeHostFromPrincipal=true",
                        "kerberos.removeRealmFromPrincipal=true"], flags)
    try:
        svc = started("svc/localhost")
        svc.create("/krb-short", b"s", acl=[make_acl("auth", "", all=True)])
        ids = acl_ids(svc, "/krb-short")
        check("removeHostFromPrincipal, removeRealmFromPrincipal: id svc", ids == ["sasl:svc"], ids)
        svc.stop()
    finally:
        stop(p)

    # zoo.cfg's unknown keys are ZooKeeper's system properties (zookeeper.<key>).
    rule = "RULE:[1:$1@$0](bob@ZKRS.TEST)s/.*/robert/ DEFAULT"
    p = start("rules", [f"security.auth_to_local={rule}"], flags)
    try:
        bob = started("bob")
        bob.create("/krb-rule", b"r", acl=[make_acl("auth", "", all=True)])
        ids = acl_ids(bob, "/krb-rule")
        check("auth_to_local RULE maps bob to robert (realm appended)",
              ids == [f"sasl:robert@{REALM}"], ids)
        bob.stop()
    finally:
        stop(p)
finally:
    KDC.stop()
    if check.failed:
        for root, _, files in os.walk(DIR):
            for name in files:
                if name == "server.log":
                    with open(os.path.join(root, name)) as f:
                        print(f"--- {root}/{name}\n" + f.read()[-2000:])
    shutil.rmtree(DIR, ignore_errors=True)

sys.exit(check.summary())
