import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.PathChildrenCache;
import org.apache.curator.framework.recipes.cache.PathChildrenCacheEvent;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.server.auth.DigestAuthenticationProvider;

/**
 * Compatibility tests driving the official ZooKeeper Java client (3.8) and
 * Apache Curator (5.x) against a server given as host:port.
 *
 * One PASS/FAIL/SKIP line per test; exit status 0 iff nothing failed.
 */
@SuppressWarnings("deprecation")
public class ZkCompat {

    // ------------------------------------------------------------ tiny test harness

    interface Body {
        void run() throws Exception;
    }

    static final class Skip extends RuntimeException {
        Skip(String why) {
            super(why);
        }
    }

    static int passed, failed, skipped;
    static final List<String> failures = new ArrayList<>();

    static void test(String name, Body body) {
        long t0 = System.nanoTime();
        try {
            body.run();
            passed++;
            System.out.printf("PASS: %s (%d ms)%n", name, (System.nanoTime() - t0) / 1_000_000);
        } catch (Skip s) {
            skipped++;
            System.out.printf("SKIP: %s -- %s%n", name, s.getMessage());
        } catch (Throwable t) {
            failed++;
            failures.add(name);
            System.out.printf("FAIL: %s -- %s%n", name, t);
            StackTraceElement[] st = t.getStackTrace();
            for (int i = 0; i < Math.min(st.length, 6); i++) {
                System.out.println("        at " + st[i]);
            }
        }
        System.out.flush();
    }

    static void check(boolean cond, String msg) {
        if (!cond) throw new AssertionError(msg);
    }

    static void eq(Object expected, Object actual, String what) {
        if (expected == null ? actual != null : !expected.equals(actual)) {
            throw new AssertionError(what + ": expected <" + expected + "> but was <" + actual + ">");
        }
    }

    @SuppressWarnings("unchecked")
    static <T extends Throwable> T expect(Class<T> cls, Body body) throws Exception {
        try {
            body.run();
        } catch (Throwable t) {
            if (cls.isInstance(t)) return (T) t;
            throw new AssertionError("expected " + cls.getSimpleName() + " but got " + t, t);
        }
        throw new AssertionError("expected " + cls.getSimpleName() + " but nothing was thrown");
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String s(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static boolean waitUntil(java.util.function.BooleanSupplier cond, long ms) throws InterruptedException {
        long end = System.currentTimeMillis() + ms;
        while (System.currentTimeMillis() < end) {
            if (cond.getAsBoolean()) return true;
            Thread.sleep(20);
        }
        return cond.getAsBoolean();
    }

    // ------------------------------------------------------------ connection helpers

    static String hosts;
    static String root;
    static final List<AutoCloseable> toClose = new CopyOnWriteArrayList<>();

    /** Watcher that records every event and lets tests wait for specific ones. */
    static final class Events implements Watcher {
        final BlockingQueue<WatchedEvent> q = new LinkedBlockingQueue<>();
        final List<WatchedEvent> all = new CopyOnWriteArrayList<>();

        @Override
        public void process(WatchedEvent e) {
            all.add(e);
            q.add(e);
        }

        WatchedEvent next(long ms) throws InterruptedException {
            return q.poll(ms, TimeUnit.MILLISECONDS);
        }

        /** wait for an event of the given type and path, skipping others */
        WatchedEvent await(EventType type, String path, long ms) throws InterruptedException {
            long end = System.currentTimeMillis() + ms;
            while (true) {
                long left = end - System.currentTimeMillis();
                if (left <= 0) return null;
                WatchedEvent e = q.poll(left, TimeUnit.MILLISECONDS);
                if (e == null) return null;
                if (e.getType() == type && (path == null || path.equals(e.getPath()))) return e;
            }
        }

        long count(EventType type, String path) {
            return all.stream().filter(e -> e.getType() == type && path.equals(e.getPath())).count();
        }
    }

    static ZooKeeper connect(Watcher extra) throws Exception {
        return connect(extra, 10000);
    }

    static ZooKeeper connect(Watcher extra, int timeoutMs) throws Exception {
        CountDownLatch up = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(hosts, timeoutMs, e -> {
            if (e.getState() == KeeperState.SyncConnected && e.getType() == EventType.None) up.countDown();
            if (extra != null) extra.process(e);
        });
        if (!up.await(15, TimeUnit.SECONDS)) {
            zk.close();
            throw new AssertionError("could not connect to " + hosts);
        }
        toClose.add(zk::close);
        return zk;
    }

    static CuratorFramework curator() throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(hosts)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(10000)
                .retryPolicy(new RetryNTimes(3, 200))
                .build();
        c.start();
        if (!c.blockUntilConnected(15, TimeUnit.SECONDS)) throw new AssertionError("curator could not connect");
        toClose.add(c::close);
        return c;
    }

    /** Drop the client's TCP connection without closing the session (test hook in ClientCnxn). */
    static void dropConnection(ZooKeeper zk) throws Exception {
        Field cnxnF = ZooKeeper.class.getDeclaredField("cnxn");
        cnxnF.setAccessible(true);
        Object cnxn = cnxnF.get(zk);
        Field stF = cnxn.getClass().getDeclaredField("sendThread");
        stF.setAccessible(true);
        Object sendThread = stF.get(cnxn);
        Method close = sendThread.getClass().getDeclaredMethod("testableCloseSocket");
        close.setAccessible(true);
        close.invoke(sendThread);
    }

    static void rmr(ZooKeeper zk, String path) throws Exception {
        try {
            for (String c : zk.getChildren(path, false)) rmr(zk, path + "/" + c);
            zk.delete(path, -1);
        } catch (KeeperException.NoNodeException ignored) {
        }
    }

    // ------------------------------------------------------------ main

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: ZkCompat host:port");
            System.exit(2);
        }
        hosts = args[0];
        root = "/java-" + UUID.randomUUID();
        System.out.println("== Java client + Curator suite against " + hosts + " (root " + root + ") ==");

        Events mainEvents = new Events();
        ZooKeeper zk;
        try {
            zk = connect(mainEvents);
        } catch (Throwable t) {
            System.out.println("FAIL: connect -- " + t);
            System.exit(1);
            return;
        }
        zk.create(root, b("java"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);

        coreTests(zk);
        multiTests(zk);
        watchTests(zk);
        sessionTests(zk);
        aclTests(zk);
        curatorTests();

        test("cleanup removes the test root", () -> {
            ZooKeeper c = connect(null);
            c.addAuthInfo("digest", b("alice:secret"));
            rmr(c, root);
            check(c.exists(root, false) == null, "root still exists");
        });

        for (AutoCloseable c : toClose) {
            try {
                c.close();
            } catch (Exception ignored) {
            }
        }
        System.out.printf("== Java client + Curator suite: %d passed, %d failed, %d skipped ==%n", passed, failed,
                skipped);
        if (failed > 0) {
            System.out.println("  failed: " + String.join(", ", failures));
        }
        System.exit(failed == 0 ? 0 : 1);
    }

    // ------------------------------------------------------------ ZooKeeper core API

    static void coreTests(ZooKeeper zk) {
        String base = root + "/core";

        test("session established (id, password, negotiated timeout)", () -> {
            check(zk.getSessionId() != 0, "session id is 0");
            eq(16, zk.getSessionPasswd().length, "password length");
            check(zk.getSessionTimeout() >= 4000 && zk.getSessionTimeout() <= 10000,
                    "negotiated timeout " + zk.getSessionTimeout());
            eq(ZooKeeper.States.CONNECTED, zk.getState(), "state");
        });

        test("session timeout is clamped to the server's min/max", () -> {
            ZooKeeper lo = connect(null, 10);
            ZooKeeper hi = connect(null, 100_000_000);
            check(lo.getSessionTimeout() > 10, "tiny timeout not raised: " + lo.getSessionTimeout());
            check(hi.getSessionTimeout() < 100_000_000, "huge timeout not lowered: " + hi.getSessionTimeout());
            check(lo.getSessionTimeout() <= hi.getSessionTimeout(), "min > max");
            lo.close();
            hi.close();
        });

        test("create / getData / exists with Stat", () -> {
            zk.create(base, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Stat created = new Stat();
            String p = zk.create(base + "/a", b("hello"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, created);
            eq(base + "/a", p, "created path");
            eq(0, created.getVersion(), "version");
            eq(5, created.getDataLength(), "dataLength");
            eq(created.getCzxid(), created.getMzxid(), "czxid == mzxid");
            eq(created.getCzxid(), created.getPzxid(), "czxid == pzxid");
            Stat st = new Stat();
            eq("hello", s(zk.getData(base + "/a", false, st)), "data");
            eq(created, st, "stat from create2 equals stat from getData");
            eq(st, zk.exists(base + "/a", false), "exists stat");
            check(zk.exists(base + "/missing", false) == null, "exists on missing node must be null");
        });

        test("null data vs empty data", () -> {
            zk.create(base + "/null", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(base + "/empty", new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Stat st = new Stat();
            check(zk.getData(base + "/null", false, st) == null, "null data must come back as null");
            eq(0, st.getDataLength(), "dataLength of null data");
            byte[] e = zk.getData(base + "/empty", false, null);
            check(e != null && e.length == 0, "empty data must come back as empty array");
        });

        test("setData with versions and BadVersionException", () -> {
            Stat st = zk.setData(base + "/a", b("v1"), 0);
            eq(1, st.getVersion(), "version after set");
            check(st.getMzxid() > st.getCzxid(), "mzxid advanced");
            KeeperException.BadVersionException e = expect(KeeperException.BadVersionException.class,
                    () -> zk.setData(base + "/a", b("v2"), 0));
            eq(KeeperException.Code.BADVERSION, e.code(), "code");
            eq(base + "/a", e.getPath(), "exception path");
            eq(2, zk.setData(base + "/a", b("v2"), -1).getVersion(), "unconditional set");
            expect(KeeperException.NoNodeException.class, () -> zk.setData(base + "/missing", b("x"), -1));
        });

        test("create errors: NodeExists, NoNode, NoChildrenForEphemerals, BadArguments", () -> {
            expect(KeeperException.NodeExistsException.class,
                    () -> zk.create(base + "/a", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
            expect(KeeperException.NoNodeException.class,
                    () -> zk.create(base + "/x/y", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
            zk.create(base + "/eph", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            expect(KeeperException.NoChildrenForEphemeralsException.class,
                    () -> zk.create(base + "/eph/kid", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
            expect(IllegalArgumentException.class,
                    () -> zk.create(base + "/bad/", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
            zk.delete(base + "/eph", -1);
        });

        test("create modes: sequential, ephemeral, ephemeral_sequential, container", () -> {
            String seqBase = base + "/modes";
            zk.create(seqBase, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            eq(seqBase + "/s-0000000000",
                    zk.create(seqBase + "/s-", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL), "seq 0");
            eq(seqBase + "/s-0000000001",
                    zk.create(seqBase + "/s-", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL), "seq 1");
            String e = zk.create(seqBase + "/e", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            eq(zk.getSessionId(), zk.exists(e, false).getEphemeralOwner(), "ephemeral owner");
            eq(seqBase + "/es-0000000003",
                    zk.create(seqBase + "/es-", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL_SEQUENTIAL), "eseq");
            Stat cst = new Stat();
            zk.create(seqBase + "/cont", null, Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER, cst);
            eq(0L, cst.getEphemeralOwner(), "container ephemeralOwner is reported as 0");
            eq(0L, zk.exists(seqBase + "/cont", false).getEphemeralOwner(), "container owner via exists");
        });

        test("getChildren (+Stat), getAllChildrenNumber", () -> {
            String p = base + "/kids";
            zk.create(p, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            for (String k : new String[] {"a", "b", "c"}) {
                zk.create(p + "/" + k, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            }
            zk.create(p + "/a/x", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(p + "/a/x/y", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Stat st = new Stat();
            List<String> kids = new ArrayList<>(zk.getChildren(p, false, st));
            Collections.sort(kids);
            eq(Arrays.asList("a", "b", "c"), kids, "children");
            eq(3, st.getNumChildren(), "numChildren");
            eq(3, st.getCversion(), "cversion");
            eq(5, zk.getAllChildrenNumber(p), "getAllChildrenNumber counts all descendants");
            eq(0, zk.getAllChildrenNumber(p + "/b"), "leaf has 0 descendants");
            expect(KeeperException.NoNodeException.class, () -> zk.getChildren(base + "/missing", false));
        });

        test("delete: versions, NotEmpty, NoNode", () -> {
            String p = base + "/kids";
            expect(KeeperException.NotEmptyException.class, () -> zk.delete(p, -1));
            expect(KeeperException.BadVersionException.class, () -> zk.delete(p + "/b", 4));
            zk.delete(p + "/b", 0);
            expect(KeeperException.NoNodeException.class, () -> zk.delete(p + "/b", -1));
            Stat st = zk.exists(p, false);
            eq(2, st.getNumChildren(), "numChildren after delete");
            eq(4, st.getCversion(), "cversion counts the delete");
        });

        test("async API: callbacks in request order", () -> {
            String p = base + "/async";
            zk.create(p, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            List<String> order = new CopyOnWriteArrayList<>();
            CountDownLatch done = new CountDownLatch(50);
            for (int i = 0; i < 50; i++) {
                zk.create(String.format("%s/n%02d", p, i), b("" + i), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
                        (rc, path, ctx, name) -> {
                            if (rc == 0) order.add(name);
                            done.countDown();
                        }, null);
            }
            check(done.await(20, TimeUnit.SECONDS), "callbacks did not all arrive");
            List<String> expected = new ArrayList<>();
            for (int i = 0; i < 50; i++) expected.add(String.format("%s/n%02d", p, i));
            eq(expected, order, "callback order");
        });

        test("sync", () -> {
            CountDownLatch l = new CountDownLatch(1);
            AtomicReference<String> got = new AtomicReference<>();
            AtomicInteger rcRef = new AtomicInteger(-999);
            zk.sync(base, (rc, path, ctx) -> {
                rcRef.set(rc);
                got.set(path);
                l.countDown();
            }, null);
            check(l.await(10, TimeUnit.SECONDS), "sync callback not called");
            eq(0, rcRef.get(), "sync rc");
            eq(base, got.get(), "sync path");
        });

        test("built-in /zookeeper nodes", () -> {
            check(zk.exists("/zookeeper", false) != null, "/zookeeper missing");
            check(zk.exists("/zookeeper/quota", false) != null, "/zookeeper/quota missing");
            check(zk.exists("/zookeeper/config", false) != null, "/zookeeper/config missing");
            check(zk.getChildren("/", false).contains("zookeeper"), "/ does not list zookeeper");
        });

        test("TTL node (only if the server has extended types enabled)", () -> {
            Stat st = new Stat();
            try {
                zk.create(base + "/ttl", b("t"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, st, 60_000);
            } catch (KeeperException.UnimplementedException e) {
                throw new Skip("server answered UNIMPLEMENTED: extendedTypesEnabled is off");
            }
            eq(0L, st.getEphemeralOwner(), "TTL node ephemeralOwner reported as 0");
            eq("t", s(zk.getData(base + "/ttl", false, null)), "TTL node data");
        });
    }

    // ------------------------------------------------------------ multi / multiRead / transaction

    static void multiTests(ZooKeeper zk) {
        String base = root + "/multi";

        test("multi success: create, setData, check, delete", () -> {
            zk.create(base, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(base + "/old", b("o"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            List<OpResult> res = zk.multi(Arrays.asList(
                    Op.create(base + "/new", b("n"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.setData(base + "/old", b("o2"), 0),
                    Op.check(base + "/old", 1),
                    Op.delete(base + "/old", 1)));
            eq(4, res.size(), "result count");
            check(res.get(0) instanceof OpResult.CreateResult, "0: " + res.get(0));
            eq(base + "/new", ((OpResult.CreateResult) res.get(0)).getPath(), "created path");
            check(res.get(1) instanceof OpResult.SetDataResult, "1: " + res.get(1));
            eq(1, ((OpResult.SetDataResult) res.get(1)).getStat().getVersion(), "set stat version");
            check(res.get(2) instanceof OpResult.CheckResult, "2: " + res.get(2));
            check(res.get(3) instanceof OpResult.DeleteResult, "3: " + res.get(3));
            check(zk.exists(base + "/old", false) == null, "old not deleted");
            eq(zk.exists(base + "/new", false).getCzxid(), zk.exists(base, false).getPzxid(),
                    "all ops in one zxid");
        });

        test("multi failure: throws the first error, results per op, nothing applied", () -> {
            KeeperException e = expect(KeeperException.class, () -> zk.multi(Arrays.asList(
                    Op.create(base + "/rolled", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.check(base + "/new", 7),
                    Op.setData(base + "/new", b("x"), -1))));
            check(e instanceof KeeperException.BadVersionException, "exception type " + e);
            List<OpResult> res = e.getResults();
            check(res != null && res.size() == 3, "results: " + res);
            eq(0, ((OpResult.ErrorResult) res.get(0)).getErr(), "op0 err (rolled back)");
            eq(KeeperException.Code.BADVERSION.intValue(), ((OpResult.ErrorResult) res.get(1)).getErr(), "op1 err");
            eq(KeeperException.Code.RUNTIMEINCONSISTENCY.intValue(), ((OpResult.ErrorResult) res.get(2)).getErr(),
                    "op2 err");
            check(zk.exists(base + "/rolled", false) == null, "rolled-back create was applied");
            eq("n", s(zk.getData(base + "/new", false, null)), "data changed by failed multi");
        });

        test("multi create result stat: null for plain create, present for container create", () -> {
            List<OpResult> res = zk.multi(Arrays.asList(
                    Op.create(base + "/plain", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                    Op.create(base + "/cont", null, Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER)));
            OpResult.CreateResult plain = (OpResult.CreateResult) res.get(0);
            OpResult.CreateResult cont = (OpResult.CreateResult) res.get(1);
            check(plain.getStat() == null, "plain create in multi should be a type-1 result without stat");
            check(cont.getStat() != null, "container create in multi should be a create2-style result with stat");
            eq(0L, cont.getStat().getEphemeralOwner(), "container owner");
        });

        test("transaction builder", () -> {
            List<OpResult> res = zk.transaction()
                    .create(base + "/t1", b("1"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT)
                    .create(base + "/t1/t2", b("2"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT)
                    .commit();
            eq(2, res.size(), "results");
            eq("2", s(zk.getData(base + "/t1/t2", false, null)), "data");
        });

        test("multiRead (getData/getChildren ops): per-op errors, no rollback semantics", () -> {
            List<OpResult> res = zk.multi(Arrays.asList(
                    Op.getData(base + "/new"),
                    Op.getChildren(base + "/t1"),
                    Op.getData(base + "/missing"),
                    Op.getChildren(base + "/t1/t2")));
            eq(4, res.size(), "results");
            eq("n", s(((OpResult.GetDataResult) res.get(0)).getData()), "getData result");
            eq(Collections.singletonList("t2"), ((OpResult.GetChildrenResult) res.get(1)).getChildren(),
                    "getChildren result");
            eq(KeeperException.Code.NONODE.intValue(), ((OpResult.ErrorResult) res.get(2)).getErr(), "missing node");
            eq(Collections.emptyList(), ((OpResult.GetChildrenResult) res.get(3)).getChildren(),
                    "op after a failed read still executes");
        });

        test("mixing read and write ops in one multi is refused client-side", () -> {
            expect(IllegalArgumentException.class, () -> zk.multi(Arrays.asList(
                    Op.getData(base + "/new"), Op.setData(base + "/new", b("x"), -1))));
        });
    }

    // ------------------------------------------------------------ watches

    static void watchTests(ZooKeeper zk) {
        String base = root + "/watch";

        test("one-shot data watch (getData) fires NodeDataChanged once", () -> {
            zk.create(base, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(base + "/d", b("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Events ev = new Events();
            zk.getData(base + "/d", ev, null);
            zk.setData(base + "/d", b("1"), -1);
            WatchedEvent e = ev.next(5000);
            check(e != null, "no event");
            eq(EventType.NodeDataChanged, e.getType(), "type");
            eq(base + "/d", e.getPath(), "path");
            eq(KeeperState.SyncConnected, e.getState(), "state");
            zk.setData(base + "/d", b("2"), -1);
            zk.exists(base + "/d", false);
            check(ev.next(300) == null, "watch fired twice");
        });

        test("exists watch on a missing node fires NodeCreated", () -> {
            Events ev = new Events();
            check(zk.exists(base + "/later", ev) == null, "node should not exist");
            zk.create(base + "/later", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            WatchedEvent e = ev.next(5000);
            check(e != null && e.getType() == EventType.NodeCreated, "got " + e);
        });

        test("getData on a missing node does not leave a watch", () -> {
            Events ev = new Events();
            expect(KeeperException.NoNodeException.class, () -> zk.getData(base + "/nowatch", ev, null));
            zk.create(base + "/nowatch", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.exists(base + "/nowatch", false);
            check(ev.next(300) == null, "getData(NoNode) must not register a watch");
        });

        test("child watch fires NodeChildrenChanged; data watch fires NodeDeleted", () -> {
            Events ch = new Events();
            Events dt = new Events();
            zk.getChildren(base, ch);
            zk.getData(base + "/later", dt, null);
            zk.delete(base + "/later", -1);
            WatchedEvent d = dt.next(5000);
            check(d != null && d.getType() == EventType.NodeDeleted, "data watch got " + d);
            WatchedEvent c = ch.next(5000);
            check(c != null && c.getType() == EventType.NodeChildrenChanged && base.equals(c.getPath()),
                    "child watch got " + c);
        });

        test("removeWatches (server side) stops a watch; NoWatcher when none", () -> {
            Events ev = new Events();
            zk.getData(base + "/d", ev, null);
            zk.removeWatches(base + "/d", ev, Watcher.WatcherType.Data, false);
            WatchedEvent removed = ev.next(5000);
            check(removed != null && removed.getType() == EventType.DataWatchRemoved, "got " + removed);
            zk.setData(base + "/d", b("x"), -1);
            zk.exists(base + "/d", false);
            check(ev.next(300) == null, "removed watch fired");
            expect(KeeperException.NoWatcherException.class,
                    () -> zk.removeWatches(base + "/d", ev, Watcher.WatcherType.Data, false));
        });

        test("addWatch PERSISTENT: fires repeatedly for the node, not for grandchildren", () -> {
            String p = base + "/pers";
            zk.create(p, b("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Events ev = new Events();
            zk.addWatch(p, ev, AddWatchMode.PERSISTENT);
            zk.setData(p, b("1"), -1);
            zk.setData(p, b("2"), -1);
            zk.create(p + "/kid", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(p + "/kid/grandkid", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.delete(p + "/kid/grandkid", -1);
            zk.delete(p + "/kid", -1);
            zk.delete(p, -1);
            zk.create(p, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            List<String> got = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                WatchedEvent e = ev.next(5000);
                if (e == null) break;
                got.add(e.getType() + " " + e.getPath());
            }
            eq(Arrays.asList(
                    "NodeDataChanged " + p,
                    "NodeDataChanged " + p,
                    "NodeChildrenChanged " + p,
                    "NodeChildrenChanged " + p,
                    "NodeDeleted " + p,
                    "NodeCreated " + p), got, "persistent watch events");
            zk.exists(p, false);
            check(ev.next(300) == null, "unexpected extra event");
            zk.removeWatches(p, ev, Watcher.WatcherType.Any, false);
        });

        test("addWatch PERSISTENT_RECURSIVE: fires for all descendants, no child events", () -> {
            String p = base + "/rec";
            zk.create(p, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Events ev = new Events();
            zk.addWatch(p, ev, AddWatchMode.PERSISTENT_RECURSIVE);
            zk.create(p + "/a", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(p + "/a/b", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.setData(p + "/a/b", b("x"), -1);
            zk.delete(p + "/a/b", -1);
            zk.setData(p, b("top"), -1);
            List<String> got = new ArrayList<>();
            for (int i = 0; i < 5; i++) {
                WatchedEvent e = ev.next(5000);
                if (e == null) break;
                got.add(e.getType() + " " + e.getPath());
            }
            eq(Arrays.asList(
                    "NodeCreated " + p + "/a",
                    "NodeCreated " + p + "/a/b",
                    "NodeDataChanged " + p + "/a/b",
                    "NodeDeleted " + p + "/a/b",
                    "NodeDataChanged " + p), got, "recursive watch events");
            zk.exists(p, false);
            check(ev.next(300) == null, "unexpected extra event (child events must not be sent)");
        });

        test("watches survive a reconnect (SetWatches) and fire for changes made while disconnected", () -> {
            String p = base + "/reconnect";
            zk.create(p, b("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            zk.create(p + "/pr", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            Events conn = new Events();
            ZooKeeper c = connect(conn);
            Events data = new Events();
            Events exist = new Events();
            Events rec = new Events();
            c.getData(p, data, null);
            c.exists(p + "/notyet", exist);
            c.addWatch(p + "/pr", rec, AddWatchMode.PERSISTENT_RECURSIVE);
            long sid = c.getSessionId();
            dropConnection(c);
            check(conn.await(EventType.None, null, 5000) != null, "no Disconnected event");
            // change things while the client is (most likely) still disconnected
            zk.setData(p, b("1"), -1);
            zk.create(p + "/notyet", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            check(waitUntil(() -> c.getState() == ZooKeeper.States.CONNECTED, 10000), "did not reconnect");
            eq(sid, c.getSessionId(), "same session after reconnect");
            WatchedEvent d = data.await(EventType.NodeDataChanged, p, 10000);
            check(d != null, "data watch lost across reconnect");
            WatchedEvent x = exist.await(EventType.NodeCreated, p + "/notyet", 10000);
            check(x != null, "exists watch lost across reconnect");
            // persistent watches are re-registered by SetWatches2 (changes made while
            // disconnected are NOT replayed for them, so only check later changes)
            zk.create(p + "/pr/y", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            check(rec.await(EventType.NodeCreated, p + "/pr/y", 5000) != null,
                    "persistent recursive watch lost across reconnect");
            c.close();
        });
    }

    // ------------------------------------------------------------ sessions / ephemerals

    static void sessionTests(ZooKeeper zk) {
        String base = root + "/sess";

        test("getEphemerals (all, and by prefix)", () -> {
            zk.create(base, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            ZooKeeper c = connect(null);
            c.create(base + "/e1", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            c.create(base + "/e2", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            c.create(base + "/other-e3", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            zk.create(base + "/mine", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            List<String> all = new ArrayList<>(c.getEphemerals());
            Collections.sort(all);
            eq(Arrays.asList(base + "/e1", base + "/e2", base + "/other-e3"), all, "getEphemerals()");
            List<String> pref = new ArrayList<>(c.getEphemerals(base + "/e"));
            Collections.sort(pref);
            eq(Arrays.asList(base + "/e1", base + "/e2"), pref, "getEphemerals(prefix)");
            check(zk.getEphemerals(base).contains(base + "/mine"), "other session's ephemerals");
            c.close();
        });

        test("closing a session deletes its ephemerals (observed by another session)", () -> {
            ZooKeeper c = connect(null);
            c.create(base + "/bye", null, Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
            Events ev = new Events();
            check(zk.exists(base + "/bye", ev) != null, "ephemeral not visible");
            c.close();
            WatchedEvent e = ev.next(5000);
            check(e != null && e.getType() == EventType.NodeDeleted, "got " + e);
            check(zk.exists(base + "/e1", false) == null, "e1 of the earlier closed session still exists");
        });

        test("whoAmI reports the session's identities", () -> {
            ZooKeeper c = connect(null);
            List<ClientInfo> before = c.whoAmI();
            check(before.stream().anyMatch(ci -> ci.getAuthScheme().equals("ip")
                    && ci.getUser().equals("127.0.0.1")), "ip identity missing: " + before);
            c.addAuthInfo("digest", b("alice:secret"));
            List<ClientInfo> after = c.whoAmI();
            check(after.stream().anyMatch(ci -> ci.getAuthScheme().equals("digest")
                    && ci.getUser().equals("alice")), "digest identity missing: " + after);
            eq(before.size() + 1, after.size(), "identity count");
            c.close();
        });
    }

    // ------------------------------------------------------------ ACLs

    static void aclTests(ZooKeeper zk) {
        String base = root + "/acl";

        test("digest ACL: NoAuth without credentials, access with addAuthInfo", () -> {
            zk.create(base, null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            String digest = DigestAuthenticationProvider.generateDigest("alice:secret");
            List<ACL> acl = Collections.singletonList(new ACL(ZooDefs.Perms.ALL, new Id("digest", digest)));
            zk.create(base + "/s", b("secret"), acl, CreateMode.PERSISTENT);
            KeeperException.NoAuthException e = expect(KeeperException.NoAuthException.class,
                    () -> zk.getData(base + "/s", false, null));
            eq(KeeperException.Code.NOAUTH, e.code(), "code");
            ZooKeeper c = connect(null);
            c.addAuthInfo("digest", b("alice:secret"));
            eq("secret", s(c.getData(base + "/s", false, null)), "authorized read");
            Stat st = new Stat();
            List<ACL> got = c.getACL(base + "/s", st);
            eq(acl, got, "getACL");
            eq(0, st.getAversion(), "aversion");
            c.close();
        });

        test("setACL with version; CREATOR_ALL_ACL needs auth", () -> {
            zk.create(base + "/o", null, Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            expect(KeeperException.BadVersionException.class, () -> zk.setACL(base + "/o", Ids.READ_ACL_UNSAFE, 3));
            eq(1, zk.setACL(base + "/o", Ids.READ_ACL_UNSAFE, 0).getAversion(), "aversion");
            expect(KeeperException.NoAuthException.class, () -> zk.setData(base + "/o", b("x"), -1));
            expect(KeeperException.InvalidACLException.class,
                    () -> zk.create(base + "/c", null, Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT));
            ZooKeeper c = connect(null);
            c.addAuthInfo("digest", b("bob:pw"));
            c.create(base + "/c", null, Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
            eq(new Id("digest", DigestAuthenticationProvider.generateDigest("bob:pw")),
                    c.getACL(base + "/c", null).get(0).getId(), "creator id");
            c.delete(base + "/c", -1);
            c.close();
        });
    }

    // ------------------------------------------------------------ Curator

    static void curatorTests() {
        String base = root + "/curator";

        test("Curator: framework basics", () -> {
            CuratorFramework c = curator();
            c.create().creatingParentsIfNeeded().forPath(base + "/basic/deep/node", b("v"));
            eq("v", s(c.getData().forPath(base + "/basic/deep/node")), "data");
            Stat st = c.setData().withVersion(0).forPath(base + "/basic/deep/node", b("v2"));
            eq(1, st.getVersion(), "version");
            expect(KeeperException.BadVersionException.class,
                    () -> c.setData().withVersion(0).forPath(base + "/basic/deep/node", b("v3")));
            check(c.checkExists().forPath(base + "/basic/deep") != null, "parent created");
            eq(Collections.singletonList("node"), c.getChildren().forPath(base + "/basic/deep"), "children");
            String seq = c.create().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(base + "/basic/e-");
            check(seq.matches(".*/e-\\d{10}"), "sequential name " + seq);
            c.create().orSetData().forPath(base + "/basic/deep/node", b("v4"));
            eq("v4", s(c.getData().forPath(base + "/basic/deep/node")), "orSetData");
            String prot = c.create().withProtection().withMode(CreateMode.EPHEMERAL_SEQUENTIAL)
                    .forPath(base + "/basic/p-");
            check(prot.contains("_c_"), "protected name " + prot);
            c.delete().deletingChildrenIfNeeded().forPath(base + "/basic");
            check(c.checkExists().forPath(base + "/basic") == null, "recursive delete");
        });

        test("Curator: creatingParentContainersIfNeeded makes container parents", () -> {
            CuratorFramework c = curator();
            c.create().creatingParentContainersIfNeeded().forPath(base + "/cont/parent/leaf");
            Stat st = c.checkExists().forPath(base + "/cont/parent");
            check(st != null && st.getEphemeralOwner() == 0, "container parent missing");
        });

        test("Curator: transactions", () -> {
            CuratorFramework c = curator();
            c.create().creatingParentsIfNeeded().forPath(base + "/tx/a", b("a"));
            CuratorOp op1 = c.transactionOp().create().forPath(base + "/tx/b", b("b"));
            CuratorOp op2 = c.transactionOp().setData().withVersion(0).forPath(base + "/tx/a", b("a2"));
            CuratorOp op3 = c.transactionOp().check().withVersion(1).forPath(base + "/tx/a");
            List<CuratorTransactionResult> res = c.transaction().forOperations(op1, op2, op3);
            eq(3, res.size(), "results");
            eq(base + "/tx/b", res.get(0).getResultPath(), "create result path");
            CuratorOp bad1 = c.transactionOp().create().forPath(base + "/tx/c");
            CuratorOp bad2 = c.transactionOp().delete().withVersion(9).forPath(base + "/tx/a");
            expect(KeeperException.BadVersionException.class, () -> c.transaction().forOperations(bad1, bad2));
            check(c.checkExists().forPath(base + "/tx/c") == null, "failed tx applied");
        });

        test("Curator: InterProcessMutex", () -> {
            CuratorFramework c1 = curator();
            CuratorFramework c2 = curator();
            InterProcessMutex m1 = new InterProcessMutex(c1, base + "/mutex");
            InterProcessMutex m2 = new InterProcessMutex(c2, base + "/mutex");
            check(m1.acquire(5, TimeUnit.SECONDS), "m1 acquire");
            check(m1.acquire(1, TimeUnit.SECONDS), "m1 re-entrant acquire");
            check(!m2.acquire(300, TimeUnit.MILLISECONDS), "m2 acquired a held lock");
            CountDownLatch got = new CountDownLatch(1);
            Thread t = new Thread(() -> {
                try {
                    if (m2.acquire(15, TimeUnit.SECONDS)) got.countDown();
                } catch (Exception ignored) {
                }
            });
            t.start();
            Thread.sleep(200);
            m1.release();
            check(got.getCount() == 1, "released once but lock is re-entrant (held twice)");
            m1.release();
            check(got.await(10, TimeUnit.SECONDS), "m2 never got the lock");
            t.join(5000);
            check(m2.isOwnedByCurrentThread() == false, "ownership is per thread");
            check(m2.isAcquiredInThisProcess(), "m2 should hold the lock");
        });

        test("Curator: LeaderLatch", () -> {
            CuratorFramework c1 = curator();
            CuratorFramework c2 = curator();
            LeaderLatch l1 = new LeaderLatch(c1, base + "/latch", "one");
            LeaderLatch l2 = new LeaderLatch(c2, base + "/latch", "two");
            l1.start();
            check(l1.await(10, TimeUnit.SECONDS), "l1 not leader");
            l2.start();
            check(!l2.await(500, TimeUnit.MILLISECONDS), "two leaders");
            check(waitUntil(() -> {
                try {
                    return l1.getParticipants().size() == 2;
                } catch (Exception e) {
                    return false;
                }
            }, 5000), "participants");
            eq("one", l2.getLeader().getId(), "leader id seen by l2");
            l1.close();
            check(l2.await(10, TimeUnit.SECONDS), "l2 did not take over");
            eq("two", l2.getLeader().getId(), "new leader id");
            l2.close();
        });

        test("Curator: DistributedAtomicLong", () -> {
            CuratorFramework c1 = curator();
            CuratorFramework c2 = curator();
            DistributedAtomicLong a1 = new DistributedAtomicLong(c1, base + "/along", new RetryNTimes(20, 10));
            DistributedAtomicLong a2 = new DistributedAtomicLong(c2, base + "/along", new RetryNTimes(20, 10));
            AtomicValue<Long> v = a1.increment();
            check(v.succeeded(), "increment failed");
            eq(0L, v.preValue(), "pre");
            eq(1L, v.postValue(), "post");
            check(a2.add(41L).succeeded(), "add failed");
            eq(42L, a1.get().postValue(), "value seen by other client");
            check(a1.compareAndSet(42L, 100L).succeeded(), "CAS with the right expected value");
            check(!a2.compareAndSet(42L, 7L).succeeded(), "CAS with a stale expected value");
            Thread[] ts = new Thread[2];
            for (int i = 0; i < 2; i++) {
                DistributedAtomicLong a = i == 0 ? a1 : a2;
                ts[i] = new Thread(() -> {
                    for (int k = 0; k < 25; k++) {
                        try {
                            if (!a.increment().succeeded()) throw new RuntimeException("increment gave up");
                        } catch (Exception e) {
                            throw new RuntimeException(e);
                        }
                    }
                });
                ts[i].start();
            }
            for (Thread t : ts) t.join(30000);
            eq(150L, a1.get().postValue(), "after concurrent increments");
        });

        test("Curator: SharedCount", () -> {
            CuratorFramework c1 = curator();
            CuratorFramework c2 = curator();
            SharedCount s1 = new SharedCount(c1, base + "/shared", 5);
            SharedCount s2 = new SharedCount(c2, base + "/shared", 5);
            s1.start();
            s2.start();
            eq(5, s1.getCount(), "seed");
            check(s1.trySetCount(s1.getVersionedValue(), 6), "trySetCount");
            check(waitUntil(() -> s2.getCount() == 6, 5000), "other side saw update: " + s2.getCount());
            s1.close();
            s2.close();
        });

        test("Curator: InterProcessSemaphoreV2", () -> {
            CuratorFramework c1 = curator();
            CuratorFramework c2 = curator();
            InterProcessSemaphoreV2 s1 = new InterProcessSemaphoreV2(c1, base + "/sem", 2);
            InterProcessSemaphoreV2 s2 = new InterProcessSemaphoreV2(c2, base + "/sem", 2);
            java.util.Collection<Lease> leases = s1.acquire(2, 5, TimeUnit.SECONDS);
            check(leases != null && leases.size() == 2, "s1 leases");
            check(s2.acquire(300, TimeUnit.MILLISECONDS) == null, "over-acquired");
            s1.returnAll(leases);
            Lease l = s2.acquire(5, TimeUnit.SECONDS);
            check(l != null, "s2 lease after return");
            s2.returnLease(l);
        });

        test("Curator: DistributedBarrier", () -> {
            CuratorFramework c1 = curator();
            CuratorFramework c2 = curator();
            DistributedBarrier b1 = new DistributedBarrier(c1, base + "/barrier");
            DistributedBarrier b2 = new DistributedBarrier(c2, base + "/barrier");
            b1.setBarrier();
            check(!b2.waitOnBarrier(300, TimeUnit.MILLISECONDS), "passed a set barrier");
            CountDownLatch through = new CountDownLatch(1);
            Thread t = new Thread(() -> {
                try {
                    if (b2.waitOnBarrier(10, TimeUnit.SECONDS)) through.countDown();
                } catch (Exception ignored) {
                }
            });
            t.start();
            Thread.sleep(200);
            b1.removeBarrier();
            check(through.await(10, TimeUnit.SECONDS), "waiter not released");
        });

        test("Curator: CuratorCache (persistent recursive watch based)", () -> {
            CuratorFramework c1 = curator();
            CuratorFramework c2 = curator();
            String p = base + "/cache";
            c1.create().creatingParentsIfNeeded().forPath(p + "/pre", b("0"));
            List<String> events = new CopyOnWriteArrayList<>();
            CountDownLatch init = new CountDownLatch(1);
            CuratorCache cache = CuratorCache.build(c2, p);
            cache.listenable().addListener(CuratorCacheListener.builder()
                    .forCreates(n -> events.add("create " + n.getPath()))
                    .forChanges((o, n) -> events.add("change " + n.getPath() + " " + s(n.getData())))
                    .forDeletes(o -> events.add("delete " + o.getPath()))
                    .forInitialized(init::countDown)
                    .build());
            cache.start();
            check(init.await(10, TimeUnit.SECONDS), "cache not initialized");
            check(cache.get(p + "/pre").isPresent(), "initial node missing from cache");
            c1.create().forPath(p + "/new", b("n"));
            c1.create().forPath(p + "/new/deeper", b("d"));
            c1.setData().forPath(p + "/pre", b("1"));
            check(waitUntil(() -> events.contains("create " + p + "/new/deeper"), 10000),
                    "deep create missing: " + events);
            check(events.contains("create " + p + "/new"), "create event missing: " + events);
            check(waitUntil(() -> events.contains("change " + p + "/pre 1"), 10000),
                    "change event missing: " + events);
            c1.delete().forPath(p + "/new/deeper");
            check(waitUntil(() -> events.contains("delete " + p + "/new/deeper"), 10000),
                    "delete event missing: " + events);
            eq("1", s(cache.get(p + "/pre").get().getData()), "cached data");
            check(!cache.get(p + "/new/deeper").isPresent(), "deleted node still cached");
            cache.close();
        });

        test("Curator: PathChildrenCache", () -> {
            CuratorFramework c1 = curator();
            CuratorFramework c2 = curator();
            String p = base + "/pcc";
            c1.create().creatingParentsIfNeeded().forPath(p);
            BlockingQueue<String> q = new LinkedBlockingQueue<>();
            PathChildrenCache pcc = new PathChildrenCache(c2, p, true);
            pcc.getListenable().addListener((cl, ev) -> {
                if (ev.getType() == PathChildrenCacheEvent.Type.CHILD_ADDED
                        || ev.getType() == PathChildrenCacheEvent.Type.CHILD_UPDATED
                        || ev.getType() == PathChildrenCacheEvent.Type.CHILD_REMOVED) {
                    q.add(ev.getType() + " " + ev.getData().getPath() + " " + s(ev.getData().getData()));
                }
            });
            pcc.start(PathChildrenCache.StartMode.BUILD_INITIAL_CACHE);
            c1.create().forPath(p + "/k", b("1"));
            eq("CHILD_ADDED " + p + "/k 1", q.poll(10, TimeUnit.SECONDS), "add");
            c1.setData().forPath(p + "/k", b("2"));
            eq("CHILD_UPDATED " + p + "/k 2", q.poll(10, TimeUnit.SECONDS), "update");
            c1.delete().forPath(p + "/k");
            eq("CHILD_REMOVED " + p + "/k 2", q.poll(10, TimeUnit.SECONDS), "remove");
            pcc.close();
        });

        test("Curator: TTL node via withTtl (only if extended types are enabled)", () -> {
            CuratorFramework c = curator();
            try {
                c.create().withTtl(60_000).creatingParentsIfNeeded().withMode(CreateMode.PERSISTENT_WITH_TTL)
                        .forPath(base + "/ttl/node", b("t"));
            } catch (KeeperException.UnimplementedException e) {
                throw new Skip("server answered UNIMPLEMENTED: extendedTypesEnabled is off");
            }
            eq("t", s(c.getData().forPath(base + "/ttl/node")), "ttl node data");
        });
    }
}
