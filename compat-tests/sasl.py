#!/usr/bin/env python3
"""SASL (DIGEST-MD5) client authentication with real clients: kazoo (pure-sasl) and the
official zkCli.sh (the Java client, with a JAAS `Client` section).

    python3 compat-tests/sasl.py zkrs <zkrs-binary> [port]   # start zkrs and test it
    python3 compat-tests/sasl.py apache [port]               # the same against Apache ZooKeeper 3.8

The server gets a JAAS `Server` section of DigestLoginModule users, as ZooKeeper's docs set it
up: zkrs through `SERVER_JVMFLAGS=-Djava.security.auth.login.config=...` (the variable
zkServer.sh hands the JVM), Apache through the same flags on its java command line. Three
servers in turn (then, for zkrs, a 3-member ensemble): SASL with `authProvider.1=...SASLAuthenticationProvider` and
`zookeeper.superUser=super`; the same with `sessionRequireClientSASLAuth=true`; and one
without a JAAS file.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

from kazoo.client import KazooClient
from kazoo.exceptions import (AuthFailedError, InvalidACLError, NoAuthError,
                              SessionClosedRequireSaslError)
from kazoo.security import make_acl

import saslserver
from saslserver import stop

WHAT = sys.argv[1] if len(sys.argv) > 1 else "zkrs"
if WHAT == "zkrs":
    BIN = sys.argv[2]
    PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 24681
else:
    BIN = None
    PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 24681
ZKCLI = os.environ.get("ZKCLI", "/usr/share/zookeeper/bin/zkCli.sh")
AUTH_FAILED, REQUIRE_SASL = -115, -124

DIR = tempfile.mkdtemp(prefix="zkrs-sasl-")
SERVER_JAAS = os.path.join(DIR, "server.jaas")
with open(SERVER_JAAS, "w") as f:
    f.write("""// the server's DIGEST-MD5 users
Server {
       org.apache.zookeeper.server.auth.DigestLoginModule required
       user_super="adminsecret"
       user_bob="bobsecret"
       user_alice="alicesecret";
};
""")
CLIENT_JAAS = os.path.join(DIR, "client.jaas")
with open(CLIENT_JAAS, "w") as f:
    f.write("""Client {
       org.apache.zookeeper.server.auth.DigestLoginModule required
       username="bob"
       password="bobsecret";
};
""")

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS: {name}")
    else:
        failed += 1
        print(f"FAIL: {name} {detail}")


def start(name, cfg_lines, jvm_flags):
    return saslserver.start(WHAT, BIN, PORT, DIR, name, cfg_lines, jvm_flags)


def client(user=None, password=None, **kw):
    opts = {}
    if user:
        opts["sasl_options"] = {"mechanism": "DIGEST-MD5", "username": user, "password": password}
    return KazooClient(hosts=f"127.0.0.1:{PORT}", connection_retry={"max_tries": 1}, **opts, **kw)


def refused(name, exc, call):
    """Checks that `call` raises `exc`."""
    try:
        call()
        check(name, False, "it was served")
    except exc:
        check(name, True)


def started(user=None, password=None):
    c = client(user, password)
    c.start(timeout=10)
    return c


def start_fails(user, password, exc):
    c = client(user, password)
    try:
        c.start(timeout=10)
        c.exists("/")
        return "connected"
    except exc:
        return True
    except Exception as e:  # noqa: BLE001 - the test reports what it got instead
        return repr(e)
    finally:
        c.stop()
        c.close()


def raw_sasl(*tokens):
    return saslserver.raw_sasl(PORT, *tokens)


def zkcli(*cmds, jaas=True):
    env = dict(os.environ)
    if jaas:
        env["CLIENT_JVMFLAGS"] = f"-Djava.security.auth.login.config={CLIENT_JAAS}"
    out = subprocess.run([ZKCLI, "-server", f"127.0.0.1:{PORT}"], input="\n".join(cmds) + "\nquit\n",
                         capture_output=True, text=True, timeout=90, env=env)
    return out.stdout + out.stderr


SASL_FLAGS = [f"-Djava.security.auth.login.config={SERVER_JAAS}", "-Dzookeeper.superUser=super"]
PROVIDER = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"

try:
    print(f"== SASL DIGEST-MD5 with real clients ({WHAT} on 127.0.0.1:{PORT}) ==")
    p = start("sasl", [PROVIDER], SASL_FLAGS)
    try:
        bob = started("bob", "bobsecret")
        if bob.exists("/bobs"):
            bob.delete("/bobs")
        bob.create("/bobs", b"mine", acl=[make_acl("sasl", "bob", all=True)])
        check("kazoo as bob: create with ACL sasl:bob, read it back",
              bob.get("/bobs")[0] == b"mine" and bob.get_acls("/bobs")[0][0].id.id == "bob")
        bob.create("/auths", b"a", acl=[make_acl("auth", "", all=True)])
        ids = sorted(f"{a.id.scheme}:{a.id.id}" for a in bob.get_acls("/auths")[0])
        check("ACL auth: takes the connection's sasl id", ids == ["sasl:bob"], ids)
        refused("a malformed sasl id is InvalidACL", InvalidACLError,
                lambda: bob.create("/bad", b"", acl=[make_acl("sasl", "a@b@c", all=True)]))
        bob.stop()

        alice = started("alice", "alicesecret")
        refused("kazoo as alice: bob's node is NoAuth", NoAuthError, lambda: alice.get("/bobs"))
        alice.stop()

        anon = started()
        refused("kazoo without SASL: bob's node is NoAuth", NoAuthError, lambda: anon.get("/bobs"))
        anon.stop()

        root = started("super", "adminsecret")
        check("kazoo as super (zookeeper.superUser): reads bob's node",
              root.get("/bobs")[0] == b"mine")
        root.set("/bobs", b"changed")
        root.stop()

        r = start_fails("bob", "wrong", AuthFailedError)
        check("kazoo with a wrong password: AuthFailedError", r is True, r)
        r = start_fails("mallory", "x", AuthFailedError)
        check("kazoo as an unknown user: AuthFailedError", r is True, r)

        xid, zxid, err, tok, _ = raw_sasl(b"")
        text = (tok or b"").decode()
        check("the challenge: realm zk-sasl-md5, a nonce, utf-8, md5-sess, zxid 0",
              (xid, zxid, err) == (7, 0, 0) and text.startswith('realm="zk-sasl-md5",nonce="')
              and text.endswith('",charset=utf-8,algorithm=md5-sess'), (xid, zxid, err, text))
        xid, zxid, err, tok, closed = raw_sasl(b"an initial response")
        check("a first token that is not empty: ignored, challenged all the same",
              err == 0 and tok.startswith(b'realm="zk-sasl-md5"'), (err, tok, closed))
        xid, zxid, err, tok, closed = raw_sasl(b"", b"garbage")
        check("a malformed response: AUTHFAILED, no token, connection closed",
              (xid, err, tok, closed) == (8, AUTH_FAILED, None, True), (xid, err, tok, closed))

        out = zkcli("whoami", "get /bobs", "create /cli x auth::cdrwa", "getAcl /cli")
        check("zkCli.sh (Java client, JAAS Client section): SaslAuthenticated, whoami sasl: bob",
              "state:SaslAuthenticated" in out and "sasl: bob" in out, out[-600:])
        check("zkCli.sh as bob: reads bob's node, auth ACL becomes sasl:bob",
              "\nchanged" in out and "'sasl,'bob" in out, out[-600:])
        out = zkcli("get /bobs", jaas=False)
        check("zkCli.sh without JAAS: bob's node is NoAuth", "Insufficient permission" in out,
              out[-300:])
    finally:
        stop(p)

    shutil.rmtree(os.path.join(DIR, "sasl"))
    p = start("required", [PROVIDER, "sessionRequireClientSASLAuth=true"], SASL_FLAGS)
    try:
        r = start_fails(None, None, SessionClosedRequireSaslError)
        check("sessionRequireClientSASLAuth: kazoo without SASL gets SESSIONCLOSEDREQUIRESASLAUTH",
              r is True, r)
        bob = started("bob", "bobsecret")
        bob.ensure_path("/req")
        check("sessionRequireClientSASLAuth: kazoo as bob is served", bob.exists("/req") is not None)
        bob.stop()
        _, _, err, tok, closed = raw_sasl(b"", b'username="bob",nonce="stale"')
        check("sessionRequireClientSASLAuth: a failed exchange is SESSIONCLOSEDREQUIRESASLAUTH",
              (err, tok, closed) == (REQUIRE_SASL, None, True), (err, tok, closed))
    finally:
        stop(p)

    p = start("nojaas", [], [])
    try:
        xid, zxid, err, tok, closed = raw_sasl(b"")
        check("no JAAS file: a SASL token is answered OK with no token",
              (err, tok, closed) == (0, None, False), (err, tok, closed))
        r = start_fails("bob", "bobsecret", AuthFailedError)
        check("no JAAS file: kazoo with SASL fails to authenticate", r != "connected", r)
    finally:
        stop(p)

    if WHAT == "zkrs":
        # A 3-member ensemble: a follower forwards its clients' writes with their sasl ids,
        # and the leader checks them against the ACLs.
        here = os.path.dirname(os.path.abspath(__file__))
        ens = os.path.join(DIR, "ensemble")
        env = dict(os.environ, SERVER_JVMFLAGS=" ".join(SASL_FLAGS + [f"-Dzookeeper.{PROVIDER}"]))
        out = subprocess.run([os.path.join(here, "ensemble.sh"), "start", BIN, ens, str(PORT + 100)],
                             capture_output=True, text=True, env=env, timeout=120)
        try:
            members = out.stdout.split()
            modes = {}
            for m in members:
                host, port = m.split(":")
                with socket.create_connection((host, int(port)), timeout=5) as s:
                    s.sendall(b"srvr")
                    text = s.recv(4096).decode()
                modes[m] = "leader" if "Mode: leader" in text else "follower"
            leader = [m for m in members if modes[m] == "leader"][0]
            f1, f2 = [m for m in members if modes[m] == "follower"]

            def on(member, user, password):
                c = KazooClient(hosts=member, connection_retry={"max_tries": 1},
                                sasl_options={"mechanism": "DIGEST-MD5", "username": user,
                                              "password": password})
                c.start(timeout=10)
                return c

            bob = on(f1, "bob", "bobsecret")
            bob.create("/ens", b"1", acl=[make_acl("sasl", "bob", all=True)])
            bob.stop()
            alice = on(leader, "alice", "alicesecret")
            alice.sync("/ens")
            refused("ensemble: alice on the leader cannot write bob's node", NoAuthError,
                    lambda: alice.set("/ens", b"alice"))
            alice.stop()
            bob = on(f2, "bob", "bobsecret")
            bob.sync("/ens")
            bob.set("/ens", b"2")
            check("ensemble: bob, via either follower, creates and writes his node",
                  bob.get("/ens")[0] == b"2")
            bob.stop()
            root = on(f2, "super", "adminsecret")
            root.delete("/ens")
            check("ensemble: super deletes it through a follower", root.exists("/ens") is None)
            root.stop()
        finally:
            subprocess.run([os.path.join(here, "ensemble.sh"), "stop", ens], capture_output=True)
finally:
    if not os.environ.get("SASL_KEEP"):
        shutil.rmtree(DIR, ignore_errors=True)

print(f"== SASL: {passed} passed, {failed} failed ==")
sys.exit(1 if failed else 0)
