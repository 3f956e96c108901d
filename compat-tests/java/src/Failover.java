import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

/**
 * The Java client's session and watches across members of a 3-member ensemble, driven by
 * compat-tests/failover.py, which starts the members and freezes, thaws, kills and starts
 * them when asked: this program prints "ASK verb port" and waits for "OK" on stdin.
 *
 * The watching session W sets one-shot watches (getData, getChildren, exists of a node that
 * is not there) and persistent and persistent-recursive ones. Its member is frozen (SIGSTOP)
 * while another session changes everything W watches; W's client gives up on the frozen
 * member and moves to another, sending setWatches with the last zxid it saw: the new member
 * must fire the one-shot watches whose nodes changed meanwhile, in ZooKeeper's order, and
 * keep the persistent ones. Then W's member is killed (SIGKILL): the persistent watches
 * follow W again. W's session and its ephemeral live through both.
 *
 *   java Failover host:port,host:port,host:port <port of the member to freeze> <root path>
 *
 * One PASS/FAIL line per check; exit status 0 iff nothing failed.
 */
public class Failover {
    static int passed, failed;
    /** The run's own nodes are under it. */
    static String R;
    static final BufferedReader IN =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

    static void check(boolean ok, String what) {
        if (ok) {
            passed++;
            System.out.println("PASS: " + what);
        } else {
            failed++;
            System.out.println("FAIL: " + what);
        }
        System.out.flush();
    }

    static void ask(String verb, int port) throws Exception {
        System.out.println("ASK " + verb + " " + port);
        System.out.flush();
        String reply = IN.readLine();
        if (!"OK".equals(reply)) {
            throw new IllegalStateException("asked " + verb + ", got " + reply);
        }
    }

    /** Every event a watcher got, as "Type path". */
    static final class Events implements Watcher {
        final BlockingQueue<String> q = new LinkedBlockingQueue<>();

        @Override
        public void process(WatchedEvent e) {
            if (e.getType() != Event.EventType.None) {
                q.add(e.getType() + " " + e.getPath());
            }
        }

        /** The next `n` events, waiting up to 20 s for each. */
        List<String> take(int n) throws InterruptedException {
            List<String> out = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                String e = q.poll(20, TimeUnit.SECONDS);
                if (e == null) {
                    break;
                }
                out.add(e);
            }
            return out;
        }

        /** What else comes within `ms`. */
        List<String> more(long ms) throws InterruptedException {
            Thread.sleep(ms);
            List<String> out = new ArrayList<>();
            q.drainTo(out);
            return out;
        }
    }

    /** The session's connection states, in order. */
    static final class States implements Watcher {
        final BlockingQueue<Event.KeeperState> q = new LinkedBlockingQueue<>();

        @Override
        public void process(WatchedEvent e) {
            if (e.getType() == Event.EventType.None) {
                q.add(e.getState());
            }
        }

        /** Waits (up to `s` seconds) for `want`; the states seen before it. */
        List<Event.KeeperState> until(Event.KeeperState want, int s) throws InterruptedException {
            List<Event.KeeperState> seen = new ArrayList<>();
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(s);
            while (System.nanoTime() < end) {
                Event.KeeperState st = q.poll(200, TimeUnit.MILLISECONDS);
                if (st == null) {
                    continue;
                }
                seen.add(st);
                if (st == want) {
                    return seen;
                }
            }
            throw new IllegalStateException("no " + want + " after " + seen);
        }
    }

    static final Pattern REMOTE = Pattern.compile("remoteserver:[^ ]*:(\\d+)");

    /** The client port of the member `zk` is connected to, or -1. */
    static int memberOf(ZooKeeper zk) {
        Matcher m = REMOTE.matcher(zk.toString());
        return m.find() ? Integer.parseInt(m.group(1)) : -1;
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** A write, sent again after a lost connection (until it takes, up to 60 s). */
    interface Write {
        void run() throws Exception;
    }

    static void write(Write w) throws Exception {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            try {
                w.run();
                return;
            } catch (KeeperException.ConnectionLossException e) {
                if (System.nanoTime() > end) {
                    throw e;
                }
                Thread.sleep(100);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String all = args[0];
        int target = Integer.parseInt(args[1]);
        R = args[2];
        // W's session on the member to freeze (the client picks one of the list at random).
        States states = null;
        ZooKeeper w = null;
        for (int i = 0; i < 50 && (w == null || memberOf(w) != target); i++) {
            if (w != null) {
                w.close();
            }
            states = new States();
            w = new ZooKeeper(all, 10000, states);
            states.until(Watcher.Event.KeeperState.SyncConnected, 30);
        }
        check(memberOf(w) == target, "W's session is on member :" + target);
        long session = w.getSessionId();
        w.create(R, new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        for (String p : new String[] {R + "/data", R + "/kids", R + "/pers", R + "/rec"}) {
            w.create(p, b("0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        }
        w.create(R + "/eph", new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);

        Events once = new Events();
        Events pers = new Events();
        Events rec = new Events();
        w.getData(R + "/data", once, null);
        w.getChildren(R + "/kids", once);
        check(w.exists(R + "/late", once) == null, R + "/late is not there yet");
        w.addWatch(R + "/pers", pers, AddWatchMode.PERSISTENT);
        w.addWatch(R + "/rec", rec, AddWatchMode.PERSISTENT_RECURSIVE);

        int frozen = memberOf(w);
        List<String> others = new ArrayList<>();
        for (String h : all.split(",")) {
            if (!h.endsWith(":" + frozen)) {
                others.add(h);
            }
        }
        ask("freeze", frozen);
        ZooKeeper x = new ZooKeeper(String.join(",", others), 10000, e -> { });
        write(() -> x.setData(R + "/data", b("1"), -1));
        write(() -> x.create(R + "/kids/a", new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
        write(() -> x.create(R + "/late", new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
        write(() -> x.setData(R + "/pers", b("1"), -1));
        write(() -> x.create(R + "/rec/x", new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));

        // W's client stops hearing from its member and moves to another, with its watches.
        List<Watcher.Event.KeeperState> seen =
                states.until(Watcher.Event.KeeperState.SyncConnected, 40);
        check(seen.contains(Watcher.Event.KeeperState.Disconnected)
                && !seen.contains(Watcher.Event.KeeperState.Expired),
                "W's session is disconnected from the frozen member and reconnects: " + seen);
        int moved = memberOf(w);
        check(moved != frozen && moved > 0, "W moved from member :" + frozen + " to :" + moved);
        check(w.getSessionId() == session, "W keeps its session");
        check(once.take(3).equals(Arrays.asList(
                "NodeDataChanged " + R + "/data", "NodeCreated " + R + "/late", "NodeChildrenChanged " + R + "/kids")),
                "the one-shot watches whose nodes changed while W was away fire at once, data, "
                        + "exists then child watches");
        check(pers.more(500).isEmpty() && rec.more(0).isEmpty(),
                "persistent watches fire nothing for what changed while away");
        ask("thaw", frozen);

        write(() -> x.setData(R + "/pers", b("2"), -1));
        write(() -> x.create(R + "/rec/x/y", new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
        write(() -> x.setData(R + "/data", b("2"), -1));
        check(pers.take(1).equals(Arrays.asList("NodeDataChanged " + R + "/pers")),
                "the persistent watch moved with W");
        check(rec.take(1).equals(Arrays.asList("NodeCreated " + R + "/rec/x/y")),
                "the persistent recursive watch moved with W");
        check(once.more(500).isEmpty(), "a fired one-shot watch stays fired");

        // Killed under W: W moves again, its persistent watches with it.
        Stat st = new Stat();
        w.getData(R + "/data", once, st);
        int killed = memberOf(w);
        ask("kill", killed);
        seen = states.until(Watcher.Event.KeeperState.SyncConnected, 40);
        check(memberOf(w) != killed && !seen.contains(Watcher.Event.KeeperState.Expired),
                "W moves off the killed member :" + killed + ": " + seen);
        write(() -> x.setData(R + "/pers", b("3"), -1));
        write(() -> x.setData(R + "/rec/x/y", b("1"), -1));
        write(() -> x.setData(R + "/data", b("3"), -1));
        check(pers.take(1).equals(Arrays.asList("NodeDataChanged " + R + "/pers")),
                "the persistent watch survived the kill");
        check(rec.take(1).equals(Arrays.asList("NodeDataChanged " + R + "/rec/x/y")),
                "the persistent recursive watch survived the kill");
        check(once.take(1).equals(Arrays.asList("NodeDataChanged " + R + "/data")),
                "the re-armed one-shot watch survived the kill");
        ask("start", killed);

        Stat eph = w.exists(R + "/eph", false);
        check(w.getSessionId() == session && eph != null && eph.getEphemeralOwner() == session,
                "W's session and its ephemeral lived through both");
        check(pers.more(300).isEmpty() && rec.more(0).isEmpty(), "no event twice");
        x.close();
        w.close();
        System.out.println("failover: " + passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
