//! `autopurge.*`: ZooKeeper's purge task (`DatadirCleanupManager`, `PurgeTxnLog.purge`) over
//! the files in ZooKeeper's layout that a data dir holds: the `snapshot.<zxid>` files the
//! `snapshot` admin command writes and, in a data dir taken over from ZooKeeper, its own
//! snapshots and `log.<zxid>` files. zkrs's store and log (`zkrs-db`, `zkrs-log`) are not
//! touched: the log trims itself, and the store is the tree.
//!
//! As ZooKeeper: every `autopurge.purgeInterval` hours (0, the default, or less: never), the
//! first time at start, it keeps the newest `autopurge.snapRetainCount` (at least 3) valid
//! snapshots and deletes every snapshot and log named with a lower zxid, except the log that
//! holds the oldest kept snapshot's txns (the newest log named at or below its zxid).
//! "Valid" is ZooKeeper's quick check (`SnapStream.isValidSnapshot`): a plain file ends with
//! the seal's trailing `1` and `/`, a `.gz` one starts with gzip's magic, a `.snappy` one
//! with snappy-java's. With no valid snapshot, nothing is deleted.

use crate::import::zookeeper_files;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// ZooKeeper's floor for `autopurge.snapRetainCount` (`MIN_SNAP_RETAIN_COUNT`).
pub const MIN_SNAP_RETAIN_COUNT: usize = 3;

/// Runs one purge: `snap_dir` and `log_dir` are the `version-2` directories. Returns the
/// files it deleted; one it could not delete is logged and skipped, as ZooKeeper does.
pub fn purge(snap_dir: &Path, log_dir: &Path, retain: usize) -> std::io::Result<Vec<PathBuf>> {
    let retain = retain.max(MIN_SNAP_RETAIN_COUNT);
    let snaps = zookeeper_files(snap_dir, "snapshot.")?;
    let valid: Vec<i64> = snaps
        .iter()
        .rev()
        .filter(|(zxid, path)| *zxid >= 0 && is_valid_snapshot(path))
        .map(|(zxid, _)| *zxid)
        .take(retain)
        .collect();
    let Some(&least) = valid.last() else {
        return Ok(Vec::new());
    };
    let logs = zookeeper_files(log_dir, "log.")?;
    // The log the oldest kept snapshot needs: the newest named at or below its zxid.
    let needed = logs
        .iter()
        .filter(|(zxid, _)| *zxid <= least)
        .map(|(zxid, _)| *zxid)
        .max();
    let doomed = logs
        .into_iter()
        .filter(|(zxid, _)| *zxid < least && Some(*zxid) != needed)
        .chain(snaps.into_iter().filter(|(zxid, _)| *zxid < least))
        .map(|(_, path)| path);
    let mut removed = Vec::new();
    for path in doomed {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!("autopurge removed {}", path.display());
                removed.push(path);
            }
            Err(e) => tracing::warn!("autopurge could not remove {}: {e}", path.display()),
        }
    }
    Ok(removed)
}

/// ZooKeeper's `SnapStream.isValidSnapshot`, by the name's ending.
fn is_valid_snapshot(path: &Path) -> bool {
    let check = || -> std::io::Result<bool> {
        let mut f = std::fs::File::open(path)?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => {
                let mut magic = [0u8; 2];
                f.read_exact(&mut magic)?;
                Ok(magic == [0x1f, 0x8b])
            }
            Some("snappy") => {
                let mut magic = [0u8; 8];
                f.read_exact(&mut magic)?;
                Ok(&magic == b"\x82SNAPPY\0")
            }
            _ => {
                if f.metadata()?.len() < 10 {
                    return Ok(false);
                }
                f.seek(SeekFrom::End(-5))?;
                let mut tail = [0u8; 5];
                f.read_exact(&mut tail)?;
                Ok(tail == [0, 0, 0, 1, b'/'])
            }
        }
    };
    check().unwrap_or(false)
}

/// Starts the purge task when `interval_hours` is above 0: once now, then every interval.
pub fn schedule(snap_dir: PathBuf, log_dir: PathBuf, retain: usize, interval_hours: i64) {
    if interval_hours <= 0 {
        tracing::info!("Purge task is not scheduled.");
        return;
    }
    let every = std::time::Duration::from_secs(interval_hours.unsigned_abs().saturating_mul(3600));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            let (s, l) = (snap_dir.clone(), log_dir.clone());
            match tokio::task::spawn_blocking(move || purge(&s, &l, retain)).await {
                Ok(Ok(removed)) => {
                    tracing::info!("Purge task completed: {} files removed", removed.len())
                }
                Ok(Err(e)) => tracing::error!("Error occurred while purging: {e}"),
                Err(e) => tracing::error!("purge task: {e}"),
            }
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sealed() -> Vec<u8> {
        let mut b = b"ZKSN and a tree".to_vec();
        b.extend_from_slice(&[0, 0, 0, 1, b'/']);
        b
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keeps_the_newest_valid_snapshots_and_the_logs_they_need() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["snapshot.10", "snapshot.30", "snapshot.50", "snapshot.70"] {
            std::fs::write(d.join(name), sealed()).unwrap();
        }
        // The newest is torn (no seal): it does not count among the three kept, and stays.
        std::fs::write(d.join("snapshot.90"), b"ZKSN torn").unwrap();
        for name in ["log.1", "log.20", "log.25", "log.40", "log.60", "log.80"] {
            std::fs::write(d.join(name), b"txns").unwrap();
        }
        std::fs::write(d.join("other"), b"x").unwrap();
        std::fs::write(d.join(".snapshot.95.1.partial"), b"x").unwrap();
        let removed = purge(d, d, 3).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}");
        // Kept: snapshots 30, 50, 70 (and the torn 90), log.25 (holds 30's txns) and after.
        assert_eq!(
            names(d),
            [
                ".snapshot.95.1.partial",
                "log.25",
                "log.40",
                "log.60",
                "log.80",
                "other",
                "snapshot.30",
                "snapshot.50",
                "snapshot.70",
                "snapshot.90",
            ]
        );
        // Again: nothing more to do.
        assert!(purge(d, d, 3).unwrap().is_empty());
    }

    #[test]
    fn a_count_below_three_keeps_three_and_no_valid_snapshot_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let (snaps, logs) = (dir.path().join("snaps"), dir.path().join("logs"));
        std::fs::create_dir_all(&snaps).unwrap();
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(snaps.join("snapshot.1"), b"short").unwrap();
        std::fs::write(logs.join("log.1"), b"txns").unwrap();
        assert!(purge(&snaps, &logs, 1).unwrap().is_empty());
        for z in 2..=6 {
            std::fs::write(snaps.join(format!("snapshot.{z:x}")), sealed()).unwrap();
        }
        std::fs::write(snaps.join("snapshot.7.gz"), [0x1f, 0x8b, 8, 0]).unwrap();
        std::fs::write(logs.join("log.5"), b"txns").unwrap();
        purge(&snaps, &logs, 1).unwrap();
        assert_eq!(names(&snaps), ["snapshot.5", "snapshot.6", "snapshot.7.gz"]);
        assert_eq!(names(&logs), ["log.5"]);
        // A missing dir is no error.
        assert!(purge(&dir.path().join("none"), &logs, 3)
            .unwrap()
            .is_empty());
    }
}
