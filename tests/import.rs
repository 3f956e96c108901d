#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A server started on a data dir where Apache ZooKeeper 3.8 ran (`tests/data`) serves
//! ZooKeeper's tree: imported once, at its first start, and its own from then on.

mod common;
use common::*;
use jute::proto::GetACLRequest;
use jute::{Request, Response};
use std::path::Path;

/// A copy of `tests/data/<name>` (ZooKeeper's `version-2` and the rest) in a fresh dir.
fn zookeeper_data_dir(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    copy_dir(&src, tmp.path());
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn stat_of(c: &mut Client, path: &str) -> Option<jute::data::Stat> {
    match c.call(exists(path, false)).body {
        Some(Response::Exists(e)) => Some(e.stat),
        _ => None,
    }
}

fn data_of(c: &mut Client, path: &str) -> Option<Vec<u8>> {
    match c.call(get_data(path, false)).body {
        Some(Response::GetData(d)) => Some(d.data.unwrap_or_default()),
        _ => None,
    }
}

#[test]
fn a_standalone_zookeeper_data_dir_is_served_after_one_import() {
    let tmp = zookeeper_data_dir("zookeeper-datadir");
    let server = TestServer::start_in(tmp.path(), "extendedTypesEnabled=true\n");
    let mut c = Client::connect(server.addr);
    assert_eq!(data_of(&mut c, "/app").as_deref(), Some(&b"v2"[..]));
    let app = stat_of(&mut c, "/app").unwrap();
    assert_eq!((app.version, app.cversion, app.num_children), (1, 12, 8));
    assert_eq!((app.czxid, app.mzxid, app.pzxid), (0x2, 0xe, 0x14));
    let r = c.call(children2("/app", false));
    let Some(Response::GetChildren2(ch)) = r.body else {
        panic!("{r:?}")
    };
    let mut names = ch.children.unwrap_or_default();
    names.sort();
    assert_eq!(
        names,
        [
            "box",
            "c2",
            "config",
            "eph",
            "m1",
            "secret",
            "seq-0000000003",
            "ttl"
        ]
    );
    assert_eq!(
        stat_of(&mut c, "/app/eph").unwrap().ephemeral_owner,
        0x100000ddd700000
    );
    assert_eq!(data_of(&mut c, "/app/config").as_deref(), Some(&b"x=2"[..]));
    // /app/secret's ACL: all rights for a digest user, read for anyone.
    assert_eq!(data_of(&mut c, "/app/secret").as_deref(), Some(&b"s"[..]));
    assert_eq!(c.call(set_data("/app/secret", b"x", -1)).err(), -102); // NoAuth
    let r = c.call(Request::GetAcl(GetACLRequest {
        path: "/app/secret".into(),
    }));
    let Some(Response::GetAcl(acl)) = r.body else {
        panic!("{r:?}")
    };
    let acl = acl.acl.unwrap_or_default();
    assert_eq!((acl.len(), acl[0].id.scheme.as_str()), (2, "digest"));
    // Zxids go on from ZooKeeper's last, 0x14 (this session took 0x15, and the refused
    // setData's error txn 0x16), and a sequential node's number from its parent's counter.
    assert_eq!(c.call(create("/mine", b"1", 0)).err(), 0);
    assert_eq!(stat_of(&mut c, "/mine").unwrap().czxid, 0x17);
    let r = c.call(create("/app/seq-", b"", 2));
    let Some(Response::Create(made)) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(made.path, "/app/seq-0000000010"); // the stored cversion, as ZooKeeper names it
    drop(c);
    let tmp_owner = server.stop();

    // Restarted, it serves its own store: what was written since is there (an import again
    // would have replaced it).
    let server = TestServer::start_in(tmp.path(), "extendedTypesEnabled=true\n");
    let mut c = Client::connect(server.addr);
    assert_eq!(data_of(&mut c, "/mine").as_deref(), Some(&b"1"[..]));
    assert_eq!(data_of(&mut c, "/app").as_deref(), Some(&b"v2"[..]));
    drop((c, server, tmp_owner));
    // ZooKeeper's files are as they were.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zookeeper-datadir/version-2");
    for f in ["snapshot.0", "snapshot.14", "log.1"] {
        assert_eq!(
            std::fs::read(tmp.path().join("version-2").join(f)).unwrap(),
            std::fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn import_zookeeper_data_false_leaves_it_alone() {
    let tmp = zookeeper_data_dir("zookeeper-datadir");
    let server = TestServer::start_in(tmp.path(), "importZooKeeperData=false\n");
    let mut c = Client::connect(server.addr);
    assert!(stat_of(&mut c, "/app").is_none());
}

#[test]
fn a_damaged_zookeeper_log_stops_the_server_with_a_message() {
    let tmp = zookeeper_data_dir("zookeeper-datadir");
    let log = tmp.path().join("version-2/log.1");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&log, bytes).unwrap();
    std::fs::write(
        tmp.path().join("zoo.cfg"),
        format!(
            "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n",
            tmp.path().display(),
            free_port()
        ),
    )
    .unwrap();
    // Only snapshot.0 is older than the log's damage: the txns must be read.
    std::fs::remove_file(tmp.path().join("version-2/snapshot.14")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zkrs"))
        .arg("--config")
        .arg(tmp.path().join("zoo.cfg"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("importing Apache ZooKeeper's data") && text.contains("log.1 at byte 77"),
        "{text}"
    );
}

#[test]
fn snapshots_in_data_dir_and_logs_in_data_log_dir_are_read_together() {
    // As the official Docker image lays them out (/data and /datalog): only the log brings
    // the tree past the empty first snapshot.
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zookeeper-datadir/version-2");
    let (data, logs) = (tmp.path().join("data"), tmp.path().join("datalog"));
    for (dir, file) in [(&data, "snapshot.0"), (&logs, "log.1")] {
        std::fs::create_dir_all(dir.join("version-2")).unwrap();
        std::fs::copy(src.join(file), dir.join("version-2").join(file)).unwrap();
    }
    let server = TestServer::start_in(
        &data,
        &format!("dataLogDir={}\nextendedTypesEnabled=true\n", logs.display()),
    );
    let mut c = Client::connect(server.addr);
    assert_eq!(data_of(&mut c, "/app").as_deref(), Some(&b"v2"[..]));
    assert_eq!(stat_of(&mut c, "/app").unwrap().cversion, 12);
}
