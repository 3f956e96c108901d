"""Shared fixtures for the kazoo compatibility suite.

The target server is taken from the ZK_HOSTS environment variable
(e.g. ``ZK_HOSTS=127.0.0.1:2181``). Every run works below a unique root
``/kazoo-<uuid>``; every test gets its own sub-node ``<root>/<test name>``.

Against an ensemble (a comma-separated ZK_HOSTS), the clients a test makes
all connect to one member, and the member rotates from test to test. A read
is only as fresh as the member that serves it: ZooKeeper promises a client
its own writes in order, not another client's writes made through another
member, unless the reader calls sync first. Tests that cross members on
purpose (sessions re-attached through ZK_HOSTS) call sync themselves.
"""
import itertools
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


ALL_HOSTS = ZK_HOSTS.split(",")
_test_member = itertools.count()
_hosts_now = [ZK_HOSTS]


@pytest.fixture(autouse=True)
def one_member_per_test():
    """Pin this test's clients to one member (see the module docstring)."""
    _hosts_now[0] = ALL_HOSTS[next(_test_member) % len(ALL_HOSTS)]
    yield _hosts_now[0]
    _hosts_now[0] = ZK_HOSTS


def new_client(**kwargs):
    kwargs.setdefault("timeout", 10.0)
    kwargs.setdefault("hosts", _hosts_now[0])
    c = KazooClient(**kwargs)
    c.start(timeout=15)
    return c


@pytest.fixture(scope="session")
def admin():
    """A long-lived client used to create and remove the run root."""
    try:
        c = new_client(hosts=ZK_HOSTS)
    except Exception as e:  # no point running 80 tests against a dead server
        pytest.exit("cannot connect to %s: %r" % (ZK_HOSTS, e), returncode=1)
    c.ensure_path(RUN_ROOT)
    yield c
    try:
        c.sync(RUN_ROOT)  # tests wrote through every member
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


@pytest.fixture(scope="session")
def member_admins(admin):
    """One long-lived client per member, made when first needed."""
    made = {}
    yield made
    for c in made.values():
        c.stop()
        c.close()


@pytest.fixture
def root(member_admins, one_member_per_test, request):
    """A fresh, empty node for this test, removed afterwards. It is made
    through the test's own member, so the test's clients see it at once."""
    path = "%s/%s" % (RUN_ROOT, request.node.name.replace("/", "_").replace("[", "_").replace("]", ""))
    if one_member_per_test not in member_admins:
        member_admins[one_member_per_test] = new_client()
    admin = member_admins[one_member_per_test]
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
