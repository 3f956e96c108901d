#!/usr/bin/env python3
"""The Java client's session and watches moving between the members of a 3-member ensemble
(compat-tests/java/src/Failover.java says what is checked): this script starts the members,
runs the Java program twice (W's session first on a follower, then on the leader), and
freezes (SIGSTOP), thaws, kills (SIGKILL) and starts the member it names when it asks. The
same checks pass against Apache ZooKeeper 3.8.

    python3 compat-tests/failover.py zkrs <zkrs-binary> [base-port]
    python3 compat-tests/failover.py apache [base-port]
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import members

WHAT = sys.argv[1] if len(sys.argv) > 1 else "zkrs"
BIN = sys.argv[2] if WHAT == "zkrs" else None
rest = sys.argv[3:] if WHAT == "zkrs" else sys.argv[2:]
BASE = int(rest[0]) if rest else 25500
HERE = os.path.dirname(os.path.abspath(__file__))
J = "/usr/share/java"
SERVER_CP = ":".join(f"{J}/{j}" for j in ["zookeeper.jar", "zookeeper-jute.jar",
                                          "slf4j-simple.jar"])
BUILD = os.path.join(HERE, "java", "build")
CLIENT_CP = ":".join(f"{J}/{j}" for j in ["zookeeper.jar", "zookeeper-jute.jar",
                                          "slf4j-api.jar"])

tmp = tempfile.mkdtemp(prefix="zkrs-failover-")
procs = {}


def port(i):
    return BASE + i


def start(i):
    d = os.path.join(tmp, f"m{i}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "myid"), "w") as f:
        f.write(f"{i}\n")
    servers = "".join(f"server.{s}=127.0.0.1:{BASE + 10 + s}:{BASE + 20 + s}\n"
                      for s in (1, 2, 3))
    cfg = os.path.join(d, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(f"tickTime=500\ninitLimit=20\nsyncLimit=5\ndataDir={d}\n"
                f"clientPort={port(i)}\nclientPortAddress=127.0.0.1\n"
                "admin.enableServer=false\n4lw.commands.whitelist=*\n" + servers)
    log = open(os.path.join(d, f"{WHAT}.log"), "ab")
    if WHAT == "zkrs":
        cmd = [BIN, "--config", cfg]
    else:
        cmd = ["java", f"-Dzookeeper.log.dir={d}", "-cp", SERVER_CP,
               "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
    procs[i] = subprocess.Popen(cmd, stdout=log, stderr=log)


def member(p):
    return next(i for i in (1, 2, 3) if port(i) == p)


def serving():
    return members.wait_serving([port(i) for i in (1, 2, 3)], timeout=90, one_leader=True)


def run_java(hosts, target, root):
    """Runs Failover.java, acting on what it asks; its exit status."""
    java = subprocess.Popen(
        ["timeout", "300", "java", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
         "-Dzookeeper.sasl.client=false", "-cp", f"{BUILD}:{CLIENT_CP}", "Failover", hosts,
         str(target), root],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in java.stdout:
        line = line.rstrip("\n")
        if not line.startswith("ASK "):
            print(line, flush=True)
            continue
        _, verb, p = line.split()
        i = member(int(p))
        print(f"({verb} member {i})", flush=True)
        if verb == "freeze":
            procs[i].send_signal(signal.SIGSTOP)
        elif verb == "thaw":
            procs[i].send_signal(signal.SIGCONT)
        elif verb == "kill":
            procs[i].send_signal(signal.SIGKILL)
            procs[i].wait()
        elif verb == "start":
            start(i)
            if not serving():
                print(f"FAIL: member {i} did not rejoin", flush=True)
        java.stdin.write("OK\n")
        java.stdin.flush()
    return java.wait()


status = 1
try:
    for i in (1, 2, 3):
        start(i)
    if not serving():
        raise SystemExit(f"FAIL: the {WHAT} ensemble did not form; see {tmp}")
    os.makedirs(BUILD, exist_ok=True)
    subprocess.run(["javac", "-nowarn", "-implicit:none", "-sourcepath", "", "-d", BUILD,
                    "-cp", CLIENT_CP, os.path.join(HERE, "java", "src", "Failover.java")],
                   check=True)
    hosts = ",".join(f"127.0.0.1:{port(i)}" for i in (1, 2, 3))
    # Twice: W's member a follower, then the leader (whose freezing also costs an election).
    status = 0
    for run, role in ((1, "follower"), (2, "leader")):
        target = next(port(i) for i in (1, 2, 3) if members.mode(port(i)) == role)
        print(f"--- run {run}: W on the {role}, member {member(target)}", flush=True)
        status |= run_java(hosts, target, f"/fo{run}")
finally:
    for p in procs.values():
        p.send_signal(signal.SIGCONT)
        p.kill()
        p.wait()
    if status == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"failover: logs kept in {tmp}")
print("failover: all checks passed" if status == 0 else "failover: FAILED")
sys.exit(status)
