#!/usr/bin/env python3
"""Prometheus metrics, read by Prometheus's own parser (prometheus_client's
text_string_to_metric_families) as a scrape would read them.

A standalone server with ZooKeeper's PrometheusMetricsProvider configured serves /metrics;
kazoo writes; the parsed families carry ZooKeeper's names and types, and their values follow
the writes and agree with mntr.

    compat-tests/prometheus.py <zkrs-binary> [client-port]
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

binary = sys.argv[1]
port = int(sys.argv[2]) if len(sys.argv) > 2 else 24881
metrics_port = port + 1
tmp = tempfile.mkdtemp()
failed = passed = 0


def check(ok, what):
    global failed, passed
    passed += bool(ok)
    failed += not ok
    print(("PASS: " if ok else "FAIL: ") + what)


def scrape():
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
        kind = r.headers.get("Content-Type")
        families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
    return kind, families


def value(families, name, sample=None):
    f = families[name]
    for s in f.samples:
        if s.name == (sample or name) and "quantile" not in s.labels:
            return s.value
    return None


def mntr():
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"mntr")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return dict(line.split("\t", 1) for line in out.decode().splitlines() if "\t" in line)


cfg = os.path.join(tmp, "zoo.cfg")
with open(cfg, "w") as f:
    f.write(f"tickTime=2000\ndataDir={tmp}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n4lw.commands.whitelist=*\n"
            "metricsProvider.className="
            "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n"
            f"metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort={metrics_port}\n")
proc = subprocess.Popen([binary, "--config", cfg], stdout=subprocess.DEVNULL,
                        stderr=open(os.path.join(tmp, "server.log"), "wb"))
try:
    print(f"== Prometheus metrics (zkrs, ports {port}, {metrics_port}) ==")
    families = None
    for _ in range(100):
        try:
            kind, families = scrape()
            break
        except OSError:
            time.sleep(0.1)
    check(families is not None, "/metrics answers and Prometheus's parser reads it")
    check(kind == "text/plain; version=0.0.4; charset=utf-8", f"content type {kind}")
    before = value(families, "znode_count")
    check(families["znode_count"].type == "gauge" and before == 5.0,
          f"znode_count is a gauge, 5 on a fresh server ({before})")
    check(families["fsynctime"].type == "summary", "fsynctime is a summary")
    check(families["commit_count"].type == "counter", "commit_count is a counter")

    zk = KazooClient(hosts=f"127.0.0.1:{port}")
    zk.start(timeout=15)
    for i in range(10):
        zk.create(f"/p{i}", b"x")
    zk.create("/e", b"x", ephemeral=True)
    _, families = scrape()
    check(value(families, "znode_count") == 16.0, "znode_count follows the creates (16)")
    check(value(families, "ephemerals_count") == 1.0, "ephemerals_count 1")
    check(value(families, "fsynctime", "fsynctime_count") >= 1.0,
          "fsynctime_count counts the group commits")
    m = mntr()
    check(float(m["zk_znode_count"]) == value(families, "znode_count") and
          float(m["zk_cnt_fsynctime"]) <= value(families, "fsynctime", "fsynctime_count"),
          "mntr agrees")
    rss = value(families, "process_resident_memory_bytes")
    check(rss is not None and rss > 1e6, f"process_resident_memory_bytes ({rss})")
    zk.stop()
finally:
    proc.terminate()
    proc.wait()
    if failed:
        print(open(os.path.join(tmp, "server.log"), errors="replace").read()[-3000:])
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
