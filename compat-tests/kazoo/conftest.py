"""Shared fixtures for the kazoo compatibility suite.

The target server is taken from the ZK_HOSTS environment variable
(e.g. ``ZK_HOSTS=127.0.0.1:2181``). Every run works below a unique root
``/kazoo-<uuid>``; every test gets its own sub-node ``<root>/<test name>``.
"""
import logging
import os
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient

ZK_HOSTS = os.environ.get("ZK_HOSTS", "127.0.0.1:2181")
RUN_ROOT = "/kazoo-" + uuid.uuid4().hex

logging.basicConfig(level=logging.WARNING)


def new_client(**kwargs):
    kwargs.setdefault("timeout", 10.0)
    c = KazooClient(hosts=ZK_HOSTS, **kwargs)
    c.start(timeout=15)
    return c


@pytest.fixture(scope="session")
def admin():
    """A long-lived client used to create and remove the run root."""
    try:
        c = new_client()
    except Exception as e:  # no point running 80 tests against a dead server
        pytest.exit("cannot connect to %s: %r" % (ZK_HOSTS, e), returncode=1)
    c.ensure_path(RUN_ROOT)
    yield c
    try:
        c.delete(RUN_ROOT, recursive=True)
    finally:
        c.stop()
        c.close()


@pytest.fixture
def clients():
    """Factory for extra clients; all of them are stopped after the test."""
    made = []

    def make(**kwargs):
        c = new_client(**kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


@pytest.fixture
def zk(clients):
    return clients()


@pytest.fixture
def root(admin, request):
    """A fresh, empty node for this test, removed afterwards."""
    path = "%s/%s" % (RUN_ROOT, request.node.name.replace("/", "_").replace("[", "_").replace("]", ""))
    admin.create(path)
    yield path
    # nodes protected by ACLs need an authenticated, admin-capable session to clean up
    try:
        admin.delete(path, recursive=True)
    except Exception:
        c = new_client(auth_data=[("digest", "alice:secret"), ("digest", "bob:builder")])
        try:
            c.delete(path, recursive=True)
        finally:
            c.stop()
            c.close()


def wait_for(predicate, timeout=10.0, interval=0.02):
    """Poll predicate() until it is truthy; return its last value."""
    deadline = time.time() + timeout
    while True:
        v = predicate()
        if v or time.time() > deadline:
            return v
        time.sleep(interval)


class Recorder:
    """Thread-safe list of callback invocations with waiting helpers."""

    def __init__(self):
        self.items = []
        self.cv = threading.Condition()

    def __call__(self, *args):
        with self.cv:
            self.items.append(args[0] if len(args) == 1 else args)
            self.cv.notify_all()

    def wait_len(self, n, timeout=10.0):
        with self.cv:
            self.cv.wait_for(lambda: len(self.items) >= n, timeout)
            return len(self.items) >= n


@pytest.fixture
def recorder():
    return Recorder
