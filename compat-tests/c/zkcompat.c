/*
 * Compatibility tests with the official ZooKeeper C client (libzookeeper_mt,
 * synchronous API).
 *
 *   ./zkcompat host:port
 *
 * Prints one PASS/FAIL line per check; exit status 0 iff everything passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netdb.h>
#include <sys/socket.h>
#include <zookeeper/zookeeper.h>

static int g_pass, g_fail;
static const char *g_hosts;
static char g_root[128];

#define CHECK(name, cond, ...)                                     \
    do {                                                           \
        if (cond) {                                                \
            g_pass++;                                              \
            printf("PASS: %s\n", name);                            \
        } else {                                                   \
            g_fail++;                                              \
            printf("FAIL: %s -- ", name);                          \
            printf(__VA_ARGS__);                                   \
            printf("\n");                                          \
        }                                                          \
        fflush(stdout);                                            \
    } while (0)

/* CHECK_RC: rc must equal want */
#define CHECK_RC(name, rc, want)                                                    \
    do {                                                                            \
        int _rc = (rc), _want = (want);                                             \
        CHECK(name, _rc == _want, "expected %d (%s), got %d (%s)", _want,           \
              zerror(_want), _rc, zerror(_rc));                                     \
    } while (0)

static char *P(const char *fmt, ...) /* path under the test root (static ring buffer) */
{
    static char bufs[16][512];
    static int idx;
    char *b = bufs[idx++ % 16];
    va_list ap;
    int n = snprintf(b, 512, "%s", g_root);
    va_start(ap, fmt);
    vsnprintf(b + n, 512 - n, fmt, ap);
    va_end(ap);
    return b;
}

/* ------------------------------------------------------------------ events */

#define MAXEV 256
struct event {
    int type, state;
    char path[512];
    const char *tag;
};

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cv = PTHREAD_COND_INITIALIZER;
static struct event events[MAXEV];
static int nev;

static void record(int type, int state, const char *path, const char *tag)
{
    pthread_mutex_lock(&ev_mu);
    if (nev < MAXEV) {
        events[nev].type = type;
        events[nev].state = state;
        snprintf(events[nev].path, sizeof events[nev].path, "%s", path ? path : "");
        events[nev].tag = tag;
        nev++;
    }
    pthread_cond_broadcast(&ev_cv);
    pthread_mutex_unlock(&ev_mu);
}

/* global (session) watcher: records session-state changes and default watches */
static void global_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    record(type, state, path, ctx ? (const char *)ctx : "global");
}

/* per-call watcher (zoo_wget etc.): ctx is a tag string */
static void tagged_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    record(type, state, path, (const char *)ctx);
}

static int count_events(int type, const char *path, const char *tag)
{
    int n = 0;
    for (int i = 0; i < nev; i++)
        if (events[i].type == type && (!path || strcmp(events[i].path, path) == 0) &&
            (!tag || (events[i].tag && strcmp(events[i].tag, tag) == 0)))
            n++;
    return n;
}

/* wait until at least `want` matching events have been seen (or timeout) */
static int wait_event(int type, const char *path, const char *tag, int want, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ev_mu);
    int n;
    while ((n = count_events(type, path, tag)) < want) {
        if (pthread_cond_timedwait(&ev_cv, &ev_mu, &dl) == ETIMEDOUT) {
            n = count_events(type, path, tag);
            break;
        }
    }
    pthread_mutex_unlock(&ev_mu);
    return n;
}

static int events_now(int type, const char *path, const char *tag)
{
    pthread_mutex_lock(&ev_mu);
    int n = count_events(type, path, tag);
    pthread_mutex_unlock(&ev_mu);
    return n;
}

/* ------------------------------------------------------------------ helpers */

static zhandle_t *connect_zk(const char *tag)
{
    zhandle_t *zh = zookeeper_init(g_hosts, global_watcher, 10000, NULL, (void *)tag, 0);
    if (!zh)
        return NULL;
    /* wait for SESSION_EVENT / CONNECTED for this handle's tag */
    for (int i = 0; i < 100; i++) {
        if (zoo_state(zh) == ZOO_CONNECTED_STATE)
            return zh;
        usleep(100 * 1000);
    }
    zookeeper_close(zh);
    return NULL;
}

struct auth_done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
};

static void auth_completion(int rc, const void *data)
{
    struct auth_done *a = (struct auth_done *)data;
    pthread_mutex_lock(&a->mu);
    a->rc = rc;
    a->done = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static int add_digest_auth(zhandle_t *zh, const char *cred)
{
    struct auth_done a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -999};
    int rc = zoo_add_auth(zh, "digest", cred, (int)strlen(cred), auth_completion, &a);
    if (rc != ZOK)
        return rc;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&a.mu);
    while (!a.done)
        if (pthread_cond_timedwait(&a.cv, &a.mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&a.mu);
    return a.done ? a.rc : ZOPERATIONTIMEOUT;
}

struct str_done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
    char value[512];
};

static void sync_completion(int rc, const char *value, const void *data)
{
    struct str_done *s = (struct str_done *)data;
    pthread_mutex_lock(&s->mu);
    s->rc = rc;
    snprintf(s->value, sizeof s->value, "%s", value ? value : "(null)");
    s->done = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int has_child(const struct String_vector *v, const char *name)
{
    for (int i = 0; i < v->count; i++)
        if (strcmp(v->data[i], name) == 0)
            return 1;
    return 0;
}

/* recursive delete, best effort */
static void rmr(zhandle_t *zh, const char *path)
{
    struct String_vector kids = {0, NULL};
    if (zoo_get_children(zh, path, 0, &kids) == ZOK) {
        for (int i = 0; i < kids.count; i++) {
            char child[1024];
            snprintf(child, sizeof child, "%s/%s", path, kids.data[i]);
            rmr(zh, child);
        }
        deallocate_String_vector(&kids);
    }
    zoo_delete(zh, path, -1);
}

/* Run this binary in --orphan mode: it opens a session, creates an ephemeral
 * at `path`, prints "<session id hex> <password hex>" and exits WITHOUT closing
 * the session. */
static char g_self[4096];

static int spawn_orphan_session(const char *path, clientid_t *cid)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' --orphan '%s' '%s'", g_self, g_hosts, path);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char line[256] = "";
    char *got = fgets(line, sizeof line, f);
    int st = pclose(f);
    if (!got || st != 0)
        return -1;
    unsigned long long id;
    char pw[64];
    if (sscanf(line, "%llx %32s", &id, pw) != 2 || strlen(pw) != 32)
        return -1;
    cid->client_id = (int64_t)id;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(pw + 2 * i, "%2x", &v);
        cid->passwd[i] = (char)v;
    }
    return 0;
}

/* The server's version from its `srvr` four-letter word ("Zookeeper version: 3.8.0-..."),
 * as major * 10000 + minor * 100 + patch; 0 when it cannot be read. The first host of
 * g_hosts is asked. */
static int server_version(void)
{
    char host[256];
    snprintf(host, sizeof host, "%s", g_hosts);
    char *comma = strchr(host, ',');
    if (comma)
        *comma = 0;
    char *colon = strrchr(host, ':');
    if (!colon)
        return 0;
    *colon = 0;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
        return 0;
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    int version = 0;
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 && write(fd, "srvr", 4) == 4) {
        char out[4096];
        size_t got = 0;
        ssize_t n;
        while (got < sizeof out - 1 && (n = read(fd, out + got, sizeof out - 1 - got)) > 0)
            got += (size_t)n;
        out[got] = 0;
        const char *v = strstr(out, "Zookeeper version: ");
        int major, minor, patch;
        if (v && sscanf(v + 19, "%d.%d.%d", &major, &minor, &patch) == 3)
            version = major * 10000 + minor * 100 + patch;
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return version;
}

static int orphan_main(const char *hosts, const char *path)
{
    g_hosts = hosts;
    zhandle_t *zh = connect_zk("orphan");
    if (!zh)
        return 1;
    if (zoo_create(zh, path, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0) != ZOK)
        return 1;
    const clientid_t *c = zoo_client_id(zh);
    printf("%llx ", (unsigned long long)c->client_id);
    for (int i = 0; i < 16; i++)
        printf("%02x", (unsigned char)c->passwd[i]);
    printf("\n");
    fflush(stdout);
    _exit(0); /* no zookeeper_close: the connection just drops */
}

/* ------------------------------------------------------------------ tests */

static void test_basic_crud(zhandle_t *zh)
{
    char out[512];
    struct Stat st, st2;
    int rc;

    rc = zoo_create(zh, g_root, "root", 4, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, out, sizeof out);
    CHECK_RC("create test root", rc, ZOK);
    CHECK("create returns the created path", strcmp(out, g_root) == 0, "got '%s'", out);

    rc = zoo_create(zh, g_root, "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    CHECK_RC("create existing -> ZNODEEXISTS", rc, ZNODEEXISTS);

    rc = zoo_create(zh, P("/no/such/parent"), "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    CHECK_RC("create with missing parent -> ZNONODE", rc, ZNONODE);

    rc = zoo_create(zh, "bad-path", "x", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    CHECK_RC("create relative path rejected client-side -> ZBADARGUMENTS", rc, ZBADARGUMENTS);

    memset(&st, 0, sizeof st);
    rc = zoo_create2(zh, P("/a"), "hello", 5, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, out, sizeof out, &st);
    CHECK_RC("create2", rc, ZOK);
    CHECK("create2 returns stat (version 0, dataLength 5, czxid == mzxid == pzxid)",
          st.version == 0 && st.dataLength == 5 && st.czxid == st.mzxid && st.czxid == st.pzxid &&
              st.czxid > 0 && st.ephemeralOwner == 0 && st.numChildren == 0 && st.ctime == st.mtime &&
              st.ctime > 1500000000000LL,
          "version=%d dataLength=%d czxid=%lld mzxid=%lld pzxid=%lld owner=%lld ctime=%lld", st.version,
          st.dataLength, (long long)st.czxid, (long long)st.mzxid, (long long)st.pzxid,
          (long long)st.ephemeralOwner, (long long)st.ctime);

    char buf[64];
    int len = sizeof buf;
    rc = zoo_get(zh, P("/a"), 0, buf, &len, &st2);
    CHECK_RC("get", rc, ZOK);
    CHECK("get returns the data", len == 5 && memcmp(buf, "hello", 5) == 0, "len=%d", len);
    CHECK("get stat matches create2 stat", st2.czxid == st.czxid && st2.version == 0 && st2.dataLength == 5,
          "czxid %lld vs %lld", (long long)st2.czxid, (long long)st.czxid);

    /* null data (valuelen -1) is preserved as null, distinct from empty */
    rc = zoo_create(zh, P("/null"), NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    CHECK_RC("create with NULL data", rc, ZOK);
    len = sizeof buf;
    rc = zoo_get(zh, P("/null"), 0, buf, &len, &st2);
    CHECK("get of NULL data returns length -1", rc == ZOK && len == -1 && st2.dataLength == 0,
          "rc=%d len=%d dataLength=%d", rc, len, st2.dataLength);
    rc = zoo_create(zh, P("/empty"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    len = sizeof buf;
    rc = zoo_get(zh, P("/empty"), 0, buf, &len, &st2);
    CHECK("get of empty data returns length 0", rc == ZOK && len == 0 && st2.dataLength == 0,
          "rc=%d len=%d", rc, len);

    /* binary data round trip */
    char bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (char)i;
    rc = zoo_create(zh, P("/bin"), bin, 256, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    char bin2[300];
    len = sizeof bin2;
    rc = zoo_get(zh, P("/bin"), 0, bin2, &len, NULL);
    CHECK("binary data (all 256 byte values) round-trips", rc == ZOK && len == 256 && memcmp(bin, bin2, 256) == 0,
          "rc=%d len=%d", rc, len);

    len = sizeof buf;
    rc = zoo_get(zh, P("/missing"), 0, buf, &len, NULL);
    CHECK_RC("get missing -> ZNONODE", rc, ZNONODE);

    /* set with versions */
    rc = zoo_set2(zh, P("/a"), "v1", 2, 0, &st2);
    CHECK_RC("set with matching version", rc, ZOK);
    CHECK("set returns stat with version 1 and mzxid > czxid", st2.version == 1 && st2.mzxid > st2.czxid &&
          st2.dataLength == 2, "version=%d", st2.version);
    rc = zoo_set(zh, P("/a"), "v2", 2, 0);
    CHECK_RC("set with stale version -> ZBADVERSION", rc, ZBADVERSION);
    rc = zoo_set(zh, P("/a"), "v2", 2, -1);
    CHECK_RC("set with version -1 (any)", rc, ZOK);
    rc = zoo_set(zh, P("/missing"), "v", 1, -1);
    CHECK_RC("set missing -> ZNONODE", rc, ZNONODE);

    /* exists */
    rc = zoo_exists(zh, P("/a"), 0, &st2);
    CHECK("exists returns stat", rc == ZOK && st2.version == 2 && st2.dataLength == 2, "rc=%d version=%d", rc,
          st2.version);
    rc = zoo_exists(zh, P("/missing"), 0, &st2);
    CHECK_RC("exists missing -> ZNONODE", rc, ZNONODE);
}

static void test_children_and_modes(zhandle_t *zh)
{
    char out[512];
    struct Stat st;
    int rc;
    struct String_vector kids = {0, NULL};

    zoo_create(zh, P("/kids"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    zoo_create(zh, P("/kids/x"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    zoo_create(zh, P("/kids/y"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);

    rc = zoo_create(zh, P("/kids/s-"), "1", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, out, sizeof out);
    CHECK("sequential create appends 10-digit parent counter",
          rc == ZOK && strcmp(out, P("/kids/s-0000000002")) == 0, "rc=%d path=%s", rc, out);
    rc = zoo_create(zh, P("/kids/s-"), "2", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL, out, sizeof out);
    CHECK("second sequential create increments counter", rc == ZOK && strcmp(out, P("/kids/s-0000000003")) == 0,
          "rc=%d path=%s", rc, out);

    rc = zoo_create(zh, P("/kids/e"), "e", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, out, sizeof out);
    CHECK_RC("ephemeral create", rc, ZOK);
    rc = zoo_exists(zh, P("/kids/e"), 0, &st);
    CHECK("ephemeralOwner == our session id", rc == ZOK && st.ephemeralOwner == zoo_client_id(zh)->client_id,
          "owner=%llx session=%llx", (unsigned long long)st.ephemeralOwner,
          (unsigned long long)zoo_client_id(zh)->client_id);
    rc = zoo_create(zh, P("/kids/e/child"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    CHECK_RC("child of ephemeral -> ZNOCHILDRENFOREPHEMERALS", rc, ZNOCHILDRENFOREPHEMERALS);

    rc = zoo_create(zh, P("/kids/es-"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, out, sizeof out);
    CHECK("ephemeral-sequential create", rc == ZOK && strcmp(out, P("/kids/es-0000000005")) == 0, "rc=%d path=%s",
          rc, out);

    rc = zoo_create(zh, P("/kids/c"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER, out, sizeof out);
    CHECK_RC("container create", rc, ZOK);
    rc = zoo_exists(zh, P("/kids/c"), 0, &st);
    CHECK("container reports ephemeralOwner 0", rc == ZOK && st.ephemeralOwner == 0, "owner=%llx",
          (unsigned long long)st.ephemeralOwner);

    /* TTL nodes exist only with extendedTypesEnabled=true; otherwise the server
     * answers UNIMPLEMENTED. Either is a valid configuration. Not a child of
     * /kids so the counts below stay fixed. */
    rc = zoo_create_ttl(zh, P("/ttl"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_WITH_TTL, 60000, NULL, 0);
    if (rc == ZOK) {
        rc = zoo_exists(zh, P("/ttl"), 0, &st);
        CHECK("TTL node created (extended types on) and reports ephemeralOwner 0",
              rc == ZOK && st.ephemeralOwner == 0, "rc=%d owner=%llx", rc, (unsigned long long)st.ephemeralOwner);
    } else {
        CHECK_RC("TTL create without extended types -> ZUNIMPLEMENTED", rc, ZUNIMPLEMENTED);
    }

    rc = zoo_get_children(zh, P("/kids"), 0, &kids);
    CHECK("get_children lists all children",
          rc == ZOK && kids.count == 7 && has_child(&kids, "x") && has_child(&kids, "y") &&
              has_child(&kids, "s-0000000002") && has_child(&kids, "s-0000000003") && has_child(&kids, "e") &&
              has_child(&kids, "es-0000000005") && has_child(&kids, "c"),
          "rc=%d count=%d", rc, kids.count);
    deallocate_String_vector(&kids);

    rc = zoo_get_children2(zh, P("/kids"), 0, &kids, &st);
    CHECK("get_children2 returns stat with numChildren and cversion", rc == ZOK && st.numChildren == 7 &&
          st.cversion == 7 && kids.count == 7, "rc=%d numChildren=%d cversion=%d", rc, st.numChildren, st.cversion);
    deallocate_String_vector(&kids);

    rc = zoo_get_children(zh, P("/missing"), 0, &kids);
    CHECK_RC("get_children missing -> ZNONODE", rc, ZNONODE);

    /* delete */
    rc = zoo_delete(zh, P("/kids"), -1);
    CHECK_RC("delete non-empty -> ZNOTEMPTY", rc, ZNOTEMPTY);
    rc = zoo_delete(zh, P("/kids/x"), 3);
    CHECK_RC("delete with wrong version -> ZBADVERSION", rc, ZBADVERSION);
    rc = zoo_delete(zh, P("/kids/x"), 0);
    CHECK_RC("delete with right version", rc, ZOK);
    rc = zoo_delete(zh, P("/kids/x"), -1);
    CHECK_RC("delete again -> ZNONODE", rc, ZNONODE);
    rc = zoo_get_children2(zh, P("/kids"), 0, &kids, &st);
    CHECK("cversion counts deletions, pzxid advanced", rc == ZOK && st.numChildren == 6 && st.cversion == 8 &&
          st.pzxid > st.czxid, "numChildren=%d cversion=%d", st.numChildren, st.cversion);
    deallocate_String_vector(&kids);
    rc = zoo_delete(zh, "/", -1);
    CHECK("deleting / is refused", rc != ZOK, "rc=%d", rc);
}

static void test_multi(zhandle_t *zh)
{
    zoo_op_t ops[4];
    zoo_op_result_t res[4];
    char pbuf[512];
    struct Stat st;
    int rc;

    zoo_create(zh, P("/m"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    zoo_create(zh, P("/m/old"), "o", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);

    memset(res, 0, sizeof res);
    memset(&st, 0, sizeof st);
    zoo_create_op_init(&ops[0], P("/m/new"), "n", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, pbuf, sizeof pbuf);
    zoo_set_op_init(&ops[1], P("/m/old"), "o2", 2, 0, &st);
    zoo_check_op_init(&ops[2], P("/m/old"), 1);
    zoo_delete_op_init(&ops[3], P("/m/old"), 1);
    rc = zoo_multi(zh, 4, ops, res);
    CHECK_RC("multi (create,set,check,delete) succeeds", rc, ZOK);
    CHECK("multi per-op results are all ZOK",
          res[0].err == ZOK && res[1].err == ZOK && res[2].err == ZOK && res[3].err == ZOK, "%d %d %d %d",
          res[0].err, res[1].err, res[2].err, res[3].err);
    CHECK("multi create result carries the path", strcmp(pbuf, P("/m/new")) == 0, "got '%s'", pbuf);
    CHECK("multi set result carries the stat", st.version == 1 && st.dataLength == 2, "version=%d", st.version);
    CHECK("multi effects visible", zoo_exists(zh, P("/m/new"), 0, NULL) == ZOK &&
          zoo_exists(zh, P("/m/old"), 0, NULL) == ZNONODE, "state mismatch");

    /* failing multi: op 1 fails, op 0 is rolled back, op 2 is not attempted */
    memset(res, 0, sizeof res);
    zoo_create_op_init(&ops[0], P("/m/rolled"), "r", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, pbuf, sizeof pbuf);
    zoo_check_op_init(&ops[1], P("/m/new"), 42);
    zoo_delete_op_init(&ops[2], P("/m/new"), -1);
    rc = zoo_multi(zh, 3, ops, res);
    CHECK_RC("failing multi returns the first error (ZBADVERSION)", rc, ZBADVERSION);
    CHECK("failing multi per-op results: ZOK, ZBADVERSION, ZRUNTIMEINCONSISTENCY",
          res[0].err == ZOK && res[1].err == ZBADVERSION && res[2].err == ZRUNTIMEINCONSISTENCY,
          "got %d %d %d", res[0].err, res[1].err, res[2].err);
    CHECK("failing multi is atomic (nothing applied)", zoo_exists(zh, P("/m/rolled"), 0, NULL) == ZNONODE &&
          zoo_exists(zh, P("/m/new"), 0, NULL) == ZOK, "partial application");

    memset(res, 0, sizeof res);
    zoo_create_op_init(&ops[0], P("/m/new"), "dup", 3, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, pbuf, sizeof pbuf);
    rc = zoo_multi(zh, 1, ops, res);
    CHECK("multi with a single failing create -> ZNODEEXISTS", rc == ZNODEEXISTS && res[0].err == ZNODEEXISTS,
          "rc=%d res=%d", rc, res[0].err);

    memset(res, 0, sizeof res);
    zoo_delete_op_init(&ops[0], P("/m/new"), -1);
    zoo_delete_op_init(&ops[1], P("/m/new"), -1);
    rc = zoo_multi(zh, 2, ops, res);
    CHECK("multi sees its own earlier ops (second delete -> ZNONODE)",
          rc == ZNONODE && res[0].err == ZOK && res[1].err == ZNONODE, "rc=%d res=%d,%d", rc, res[0].err,
          res[1].err);

    rc = zoo_multi(zh, 0, ops, res);
    CHECK_RC("empty multi succeeds", rc, ZOK);
}

static void test_watches(zhandle_t *zh)
{
    char buf[64];
    int len, rc;
    struct String_vector kids = {0, NULL};
    char *wnode = P("/w"), *wmiss = P("/w-missing");

    zoo_create(zh, wnode, "0", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);

    /* data watch via zoo_wget, fires NodeDataChanged once */
    len = sizeof buf;
    rc = zoo_wget(zh, wnode, tagged_watcher, "data", buf, &len, NULL);
    CHECK_RC("wget sets a data watch", rc, ZOK);
    zoo_set(zh, wnode, "1", 1, -1);
    CHECK("data watch fires ZOO_CHANGED_EVENT with path", wait_event(ZOO_CHANGED_EVENT, wnode, "data", 1, 5000) == 1,
          "no event");
    zoo_set(zh, wnode, "2", 1, -1);
    /* round-trip to make sure any (wrong) second notification would have arrived */
    zoo_exists(zh, wnode, 0, NULL);
    usleep(200 * 1000);
    CHECK("watch is one-shot (second set does not fire)", events_now(ZOO_CHANGED_EVENT, wnode, "data") == 1,
          "fired %d times", events_now(ZOO_CHANGED_EVENT, wnode, "data"));

    /* exists watch on a missing node fires NodeCreated */
    rc = zoo_wexists(zh, wmiss, tagged_watcher, "exists", NULL);
    CHECK_RC("wexists on missing node -> ZNONODE (watch still set)", rc, ZNONODE);
    zoo_create(zh, wmiss, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    CHECK("exists watch fires ZOO_CREATED_EVENT", wait_event(ZOO_CREATED_EVENT, wmiss, "exists", 1, 5000) == 1,
          "no event");

    /* child watch */
    rc = zoo_wget_children(zh, wnode, tagged_watcher, "child", &kids);
    CHECK_RC("wget_children sets a child watch", rc, ZOK);
    deallocate_String_vector(&kids);
    zoo_create(zh, P("/w/kid"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    CHECK("child watch fires ZOO_CHILD_EVENT on create", wait_event(ZOO_CHILD_EVENT, wnode, "child", 1, 5000) == 1,
          "no event");
    /* setting data on the parent must not fire child watches */
    rc = zoo_wget_children(zh, wnode, tagged_watcher, "child2", &kids);
    deallocate_String_vector(&kids);
    zoo_set(zh, wnode, "3", 1, -1);
    zoo_delete(zh, P("/w/kid"), -1);
    CHECK("child watch fires on child delete (and not on parent data change)",
          wait_event(ZOO_CHILD_EVENT, wnode, "child2", 1, 5000) == 1 &&
              events_now(ZOO_CHANGED_EVENT, wnode, "child2") == 0,
          "events: child=%d changed=%d", events_now(ZOO_CHILD_EVENT, wnode, "child2"),
          events_now(ZOO_CHANGED_EVENT, wnode, "child2"));

    /* delete fires data watch with ZOO_DELETED_EVENT and child watch too */
    len = sizeof buf;
    zoo_wget(zh, wmiss, tagged_watcher, "del-data", buf, &len, NULL);
    zoo_wget_children(zh, wmiss, tagged_watcher, "del-child", &kids);
    deallocate_String_vector(&kids);
    zoo_delete(zh, wmiss, -1);
    CHECK("delete fires ZOO_DELETED_EVENT on data and child watches",
          wait_event(ZOO_DELETED_EVENT, wmiss, "del-data", 1, 5000) == 1 &&
              wait_event(ZOO_DELETED_EVENT, wmiss, "del-child", 1, 5000) == 1,
          "missing events");

    /* remove watches (opcode removeWatches) */
    len = sizeof buf;
    zoo_wget(zh, wnode, tagged_watcher, "removed", buf, &len, NULL);
    rc = zoo_remove_watches(zh, wnode, ZWATCHTYPE_DATA, tagged_watcher, "removed", 0);
    CHECK_RC("remove_watches on a set data watch", rc, ZOK);
    zoo_set(zh, wnode, "4", 1, -1);
    zoo_exists(zh, wnode, 0, NULL);
    usleep(200 * 1000);
    CHECK("removed watch does not fire", events_now(ZOO_CHANGED_EVENT, wnode, "removed") == 0, "it fired");
    rc = zoo_remove_watches(zh, wnode, ZWATCHTYPE_CHILD, tagged_watcher, "removed", 0);
    CHECK_RC("remove_watches with no such watch -> ZNOWATCHER", rc, ZNOWATCHER);

    /* default watcher (watch=1) goes to the global watcher */
    len = sizeof buf;
    zoo_get(zh, wnode, 1, buf, &len, NULL);
    zoo_set(zh, wnode, "5", 1, -1);
    CHECK("watch=1 delivers to the handle's global watcher",
          wait_event(ZOO_CHANGED_EVENT, wnode, "main", 1, 5000) == 1, "no event");
}

static void test_sync_and_session(zhandle_t *zh)
{
    struct str_done s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, -999, ""};
    int rc = zoo_async(zh, g_root, sync_completion, &s);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&s.mu);
    while (!s.done)
        if (pthread_cond_timedwait(&s.cv, &s.mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&s.mu);
    CHECK("sync (zoo_async) completes with ZOK and echoes the path",
          rc == ZOK && s.done && s.rc == ZOK && strcmp(s.value, g_root) == 0, "rc=%d done=%d cb_rc=%d value=%s", rc,
          s.done, s.rc, s.value);

    CHECK("negotiated session timeout is within [2,20] x tickTime of the oracle",
          zoo_recv_timeout(zh) >= 4000 && zoo_recv_timeout(zh) <= 40000, "timeout=%d", zoo_recv_timeout(zh));
    CHECK("session id is non-zero", zoo_client_id(zh)->client_id != 0, "id=0");

    /* a second session's ephemerals vanish when it closes */
    zhandle_t *zh2 = connect_zk("second");
    CHECK("second session connects", zh2 != NULL, "connect failed");
    if (!zh2)
        return;
    CHECK("sessions have distinct ids", zoo_client_id(zh2)->client_id != zoo_client_id(zh)->client_id, "same id");
    rc = zoo_create(zh2, P("/eph2"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0);
    CHECK_RC("second session creates an ephemeral", rc, ZOK);
    rc = zoo_wexists(zh, P("/eph2"), tagged_watcher, "eph2", NULL);
    CHECK_RC("first session sees it", rc, ZOK);
    zookeeper_close(zh2);
    CHECK("ephemeral deleted when its session closes (watch fires ZOO_DELETED_EVENT)",
          wait_event(ZOO_DELETED_EVENT, P("/eph2"), "eph2", 1, 5000) == 1 &&
              zoo_exists(zh, P("/eph2"), 0, NULL) == ZNONODE,
          "still there");

    /* Re-attach to a session whose connection dropped (the owner process exits
     * without closing it, like a crashed client). */
    clientid_t cid;
    if (spawn_orphan_session(P("/eph3"), &cid) != 0) {
        CHECK("orphan session helper", 0, "helper process failed");
        return;
    }
    struct Stat st;
    rc = zoo_exists(zh, P("/eph3"), 0, &st);
    CHECK("ephemeral of a disconnected (not closed) session survives",
          rc == ZOK && st.ephemeralOwner == cid.client_id, "rc=%d owner=%llx", rc,
          (unsigned long long)st.ephemeralOwner);

    clientid_t bad = cid;
    bad.passwd[0] ^= 0x55;
    zhandle_t *zh6 = zookeeper_init(g_hosts, global_watcher, 10000, &bad, "badpw", 0);
    int expired = 0;
    for (int i = 0; zh6 && i < 100; i++) {
        if (zoo_state(zh6) == ZOO_EXPIRED_SESSION_STATE) {
            expired = 1;
            break;
        }
        usleep(100 * 1000);
    }
    CHECK("re-attach with a wrong password -> ZOO_EXPIRED_SESSION_STATE", expired, "state=%d",
          zh6 ? zoo_state(zh6) : -1);
    if (zh6)
        zookeeper_close(zh6);

    zhandle_t *zh4 = zookeeper_init(g_hosts, global_watcher, 10000, &cid, "reattach", 0);
    int ok = 0;
    for (int i = 0; zh4 && i < 100; i++) {
        if (zoo_state(zh4) == ZOO_CONNECTED_STATE) {
            ok = 1;
            break;
        }
        usleep(100 * 1000);
    }
    CHECK("re-attach with session id + password succeeds and keeps the id",
          ok && zoo_client_id(zh4)->client_id == cid.client_id, "state=%d", zh4 ? zoo_state(zh4) : -1);
    if (ok) {
        rc = zoo_exists(zh4, P("/eph3"), 0, &st);
        CHECK("re-attached session still owns its ephemeral", rc == ZOK && st.ephemeralOwner == cid.client_id,
              "rc=%d", rc);
    }
    if (zh4)
        zookeeper_close(zh4);
    CHECK("closing the re-attached handle ends the session (ephemeral gone)",
          zoo_exists(zh, P("/eph3"), 0, NULL) == ZNONODE, "ephemeral still there");
}

static void test_acl(zhandle_t *zh)
{
    int rc;
    struct ACL_vector acl;
    struct Stat st;
    char buf[64];
    int len;

    zhandle_t *za = connect_zk("auth");
    CHECK("auth session connects", za != NULL, "connect failed");
    if (!za)
        return;

    rc = zoo_create(zh, P("/creator"), "x", 1, &ZOO_CREATOR_ALL_ACL, ZOO_PERSISTENT, NULL, 0);
    CHECK_RC("CREATOR_ALL_ACL without any auth -> ZINVALIDACL", rc, ZINVALIDACL);

    rc = add_digest_auth(za, "carol:s3cret");
    CHECK_RC("zoo_add_auth digest completes with ZOK", rc, ZOK);

    rc = zoo_create(za, P("/secret"), "shh", 3, &ZOO_CREATOR_ALL_ACL, ZOO_PERSISTENT, NULL, 0);
    CHECK_RC("CREATOR_ALL_ACL after digest auth", rc, ZOK);

    rc = zoo_get_acl(za, P("/secret"), &acl, &st);
    int okacl = rc == ZOK && acl.count == 1 && strcmp(acl.data[0].id.scheme, "digest") == 0 &&
                strncmp(acl.data[0].id.id, "carol:", 6) == 0 && strlen(acl.data[0].id.id) == 6 + 28 &&
                acl.data[0].perms == ZOO_PERM_ALL;
    CHECK("get_acl shows digest:carol:<base64 sha1> with all perms", okacl, "rc=%d count=%d id=%s:%s perms=%d", rc,
          acl.count, acl.count ? acl.data[0].id.scheme : "", acl.count ? acl.data[0].id.id : "",
          acl.count ? acl.data[0].perms : -1);
    if (rc == ZOK)
        deallocate_ACL_vector(&acl);

    len = sizeof buf;
    rc = zoo_get(zh, P("/secret"), 0, buf, &len, NULL);
    CHECK_RC("unauthenticated get -> ZNOAUTH", rc, ZNOAUTH);
    rc = zoo_set(zh, P("/secret"), "x", 1, -1);
    CHECK_RC("unauthenticated set -> ZNOAUTH", rc, ZNOAUTH);
    /* exists needs READ on a node that is there since ZooKeeper 3.8.4 and 3.9.2
     * (ZOOKEEPER-2590); 3.8.0 to 3.8.3 answer its Stat to anyone. */
    int v = server_version();
    int checks_read = v >= 30902 || (v >= 30804 && v < 30900);
    rc = zoo_exists(zh, P("/secret"), 0, &st);
    if (checks_read)
        CHECK_RC("exists without READ -> ZNOAUTH (3.8.4, 3.9.2 on)", rc, ZNOAUTH);
    else
        CHECK_RC("exists without READ answers (before 3.8.4)", rc, ZOK);
    CHECK("the server's version is read", v > 0, "srvr gave no version");
    rc = zoo_exists(zh, P("/secret/none"), 0, &st);
    CHECK_RC("exists of a missing node under it -> ZNONODE", rc, ZNONODE);
    len = sizeof buf;
    rc = zoo_get(za, P("/secret"), 0, buf, &len, NULL);
    CHECK("authenticated get", rc == ZOK && len == 3 && memcmp(buf, "shh", 3) == 0, "rc=%d", rc);

    /* set_acl to read-only for world; version check on aversion */
    rc = zoo_set_acl(za, P("/secret"), 5, &ZOO_READ_ACL_UNSAFE);
    CHECK_RC("set_acl with wrong aversion -> ZBADVERSION", rc, ZBADVERSION);
    rc = zoo_set_acl(za, P("/secret"), 0, &ZOO_READ_ACL_UNSAFE);
    CHECK_RC("set_acl world:anyone:r", rc, ZOK);
    rc = zoo_get_acl(zh, P("/secret"), &acl, &st);
    CHECK("get_acl after set_acl: world:anyone READ, aversion 1",
          rc == ZOK && acl.count == 1 && strcmp(acl.data[0].id.scheme, "world") == 0 &&
              strcmp(acl.data[0].id.id, "anyone") == 0 && acl.data[0].perms == ZOO_PERM_READ && st.aversion == 1,
          "rc=%d aversion=%d", rc, st.aversion);
    if (rc == ZOK)
        deallocate_ACL_vector(&acl);
    len = sizeof buf;
    rc = zoo_get(zh, P("/secret"), 0, buf, &len, NULL);
    CHECK_RC("world-readable get", rc, ZOK);
    rc = zoo_set(za, P("/secret"), "x", 1, -1);
    CHECK_RC("write on read-only ACL -> ZNOAUTH even for the creator", rc, ZNOAUTH);
    rc = zoo_delete(zh, P("/secret"), -1);
    CHECK_RC("delete needs DELETE on the parent only", rc, ZOK);

    /* CREATE permission on parent */
    struct ACL ro_acl[] = {{ZOO_PERM_READ | ZOO_PERM_DELETE, {"world", "anyone"}}};
    struct ACL_vector nocreate = {1, ro_acl};
    rc = zoo_create(zh, P("/nocreate"), "", 0, &nocreate, ZOO_PERSISTENT, NULL, 0);
    rc = zoo_create(zh, P("/nocreate/kid"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    CHECK_RC("create without CREATE permission on parent -> ZNOAUTH", rc, ZNOAUTH);

    /* invalid ACLs */
    struct ACL bad_acl[] = {{ZOO_PERM_ALL, {"nosuchscheme", "x"}}};
    struct ACL_vector badv = {1, bad_acl};
    rc = zoo_create(zh, P("/badacl"), "", 0, &badv, ZOO_PERSISTENT, NULL, 0);
    CHECK_RC("create with unknown ACL scheme -> ZINVALIDACL", rc, ZINVALIDACL);

    /* ip ACL */
    struct ACL ip_acl[] = {{ZOO_PERM_ALL, {"ip", "127.0.0.1"}}};
    struct ACL_vector ipv = {1, ip_acl};
    rc = zoo_create(zh, P("/iponly"), "ip", 2, &ipv, ZOO_PERSISTENT, NULL, 0);
    CHECK_RC("create with ip:127.0.0.1 ACL", rc, ZOK);
    len = sizeof buf;
    rc = zoo_get(zh, P("/iponly"), 0, buf, &len, NULL);
    CHECK_RC("ip ACL matches a client on 127.0.0.1", rc, ZOK);

    zookeeper_close(za);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s host:port\n", argv[0]);
        return 2;
    }
    zoo_set_debug_level(getenv("ZK_C_DEBUG") ? ZOO_LOG_LEVEL_DEBUG : ZOO_LOG_LEVEL_ERROR);
    zoo_deterministic_conn_order(1);
    ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    g_self[n > 0 ? n : 0] = 0;
    if (strcmp(argv[1], "--orphan") == 0 && argc == 4)
        return orphan_main(argv[2], argv[3]);
    g_hosts = argv[1];
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(g_root, sizeof g_root, "/c-client-%ld-%d-%d", (long)time(NULL), (int)getpid(), rand() % 100000);

    printf("== C client suite against %s (root %s) ==\n", g_hosts, g_root);
    zhandle_t *zh = connect_zk("main");
    CHECK("connect", zh != NULL, "could not connect to %s within 10s", g_hosts);
    if (!zh) {
        printf("== C client suite: %d passed, %d failed ==\n", g_pass, g_fail);
        return 1;
    }
    CHECK("SESSION_EVENT/CONNECTED delivered to the global watcher",
          wait_event(ZOO_SESSION_EVENT, "", "main", 1, 5000) >= 1, "no session event");

    test_basic_crud(zh);
    test_children_and_modes(zh);
    test_multi(zh);
    test_watches(zh);
    test_sync_and_session(zh);
    test_acl(zh);

    rmr(zh, g_root);
    CHECK("cleanup removed the test root", zoo_exists(zh, g_root, 0, NULL) == ZNONODE, "root still there");
    zookeeper_close(zh);

    printf("== C client suite: %d passed, %d failed ==\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
