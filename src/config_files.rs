//! The config files a member with `reconfigEnabled` rewrites, as ZooKeeper 3.5+ does: the
//! membership in force goes to `<zoo.cfg>.dynamic.<version in hex>` (its `server.N`, `group`
//! and `weight` lines, sorted, without `version`), and zoo.cfg loses its membership lines
//! and points at that file with `dynamicConfigFile=`. At its first start from a zoo.cfg that
//! holds the membership, zoo.cfg is copied to `zoo.cfg.bak`. A restart then reads the
//! membership from the dynamic file, the version from its name.
//!
//! Every file is written whole to a temporary name, synced, and renamed over the old one, so a
//! crash leaves either the old file or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The lines of the dynamic config file for a membership's config text (`/zookeeper/config`):
/// everything but `version=`, sorted as strings, joined by newlines with none at the end
/// (ZooKeeper's `writeDynamicConfig`).
pub fn dynamic_text(membership: &str) -> String {
    let mut lines: Vec<&str> = membership
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("version="))
        .collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// The static config file without its membership (`server.`, `group`, `weight`, `peerType`
/// and an old `dynamicConfigFile`; `clientPort` and `clientPortAddress` too when the member's
/// own line carries its client address), ending with `dynamicConfigFile=<dynamic>`
/// (ZooKeeper's `editStaticConfig`). Other lines, comments included, keep their order.
pub fn edited_static(text: &str, dynamic: &Path, erase_client: bool) -> String {
    let mut out = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        let key = line.split_once('=').map_or(line, |(k, _)| k.trim());
        let membership = [
            "server.",
            "group",
            "weight",
            "dynamicConfigFile",
            "peerType",
        ]
        .iter()
        .any(|p| key.starts_with(p));
        let client = erase_client && key.starts_with("clientPort");
        let comment = line.is_empty() || line.starts_with('#');
        if comment || !(membership || client) {
            out.push_str(raw);
            out.push('\n');
        }
    }
    out.push_str(&format!("dynamicConfigFile={}\n", dynamic.display()));
    out
}

/// Does member `me`'s line in the membership carry its client address (`;host:port`)? Then
/// zoo.cfg's `clientPort`/`clientPortAddress` are no longer needed, and ZooKeeper erases them.
fn own_line_has_client(membership: &str, me: u64) -> bool {
    let key = format!("server.{me}");
    membership.lines().any(|l| {
        l.split_once('=')
            .is_some_and(|(k, v)| k.trim() == key && v.contains(';'))
    })
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside it, synced, renamed
/// over it, and the directory synced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// At the start of a member whose zoo.cfg holds the membership: `zoo.cfg.bak`, a copy of it.
pub fn back_up(static_path: &Path) -> std::io::Result<PathBuf> {
    let bak = with_suffix(static_path, ".bak");
    write_atomic(&bak, &std::fs::read(static_path)?)?;
    Ok(bak)
}

/// A membership took effect (the first one established, or a reconfig's): writes its dynamic
/// file and points zoo.cfg at it. Returns the dynamic file's path.
pub fn rewrite(
    static_path: &Path,
    membership: &str,
    version: u64,
    me: u64,
) -> std::io::Result<PathBuf> {
    let dynamic = with_suffix(static_path, &format!(".dynamic.{version:x}"));
    write_atomic(&dynamic, dynamic_text(membership).as_bytes())?;
    let dynamic = std::fs::canonicalize(&dynamic)?;
    let text = std::fs::read_to_string(static_path)?;
    let edited = edited_static(&text, &dynamic, own_line_has_client(membership, me));
    write_atomic(static_path, edited.as_bytes())?;
    Ok(dynamic)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBERSHIP: &str = "server.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182\n\
        server.10=127.0.0.1:2898:3898:observer\n\
        server.1=127.0.0.1:2888:3888:participant\n\
        version=100000000";

    #[test]
    fn dynamic_file_is_the_membership_sorted_without_version() {
        assert_eq!(
            dynamic_text(MEMBERSHIP),
            // Java's String order, as ZooKeeper sorts them: "server.10=" before "server.1=".
            "server.10=127.0.0.1:2898:3898:observer\n\
             server.1=127.0.0.1:2888:3888:participant\n\
             server.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182"
        );
    }

    #[test]
    fn static_file_loses_the_membership_and_points_at_the_dynamic_file() {
        let text = "# my ensemble\ntickTime=2000\nclientPort=2182\nserver.1=a:1:2\n\
                    group.1=1:2\nweight.1=1\npeerType=participant\n\
                    dynamicConfigFile=/old/zoo.cfg.dynamic.1\ndataDir = /d\n";
        let dynamic = Path::new("/etc/zk/zoo.cfg.dynamic.100000000");
        assert_eq!(
            edited_static(text, dynamic, false),
            "# my ensemble\ntickTime=2000\nclientPort=2182\ndataDir = /d\n\
             dynamicConfigFile=/etc/zk/zoo.cfg.dynamic.100000000\n"
        );
        // The member's own line carries its client address: clientPort goes too.
        assert!(own_line_has_client(MEMBERSHIP, 2));
        assert!(!own_line_has_client(MEMBERSHIP, 1));
        assert!(!own_line_has_client(MEMBERSHIP, 3));
        assert_eq!(
            edited_static(
                "clientPort=2182\nclientPortAddress=127.0.0.1\nx=1\n",
                dynamic,
                true
            ),
            "x=1\ndynamicConfigFile=/etc/zk/zoo.cfg.dynamic.100000000\n"
        );
    }

    #[test]
    fn rewrite_writes_both_files_and_the_config_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        let zoo = dir.path().join("zoo.cfg");
        let original = format!(
            "tickTime=2000\ndataDir={}\nclientPort=2182\nreconfigEnabled=true\n\
             server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889;127.0.0.1:2182\n",
            dir.path().display()
        );
        std::fs::write(&zoo, &original).unwrap();
        let bak = back_up(&zoo).unwrap();
        assert_eq!(std::fs::read_to_string(bak).unwrap(), original);

        let membership = "server.1=127.0.0.1:2888:3888:participant\n\
                          server.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182\n\
                          version=100000000";
        let dynamic = rewrite(&zoo, membership, 0x1_0000_0000, 2).unwrap();
        assert!(dynamic.ends_with("zoo.cfg.dynamic.100000000"));
        assert!(dynamic.is_absolute());
        let edited = std::fs::read_to_string(&zoo).unwrap();
        assert!(!edited.contains("server."), "{edited}");
        assert!(!edited.contains("clientPort"), "{edited}");
        assert!(edited.ends_with(&format!("dynamicConfigFile={}\n", dynamic.display())));

        let cfg = crate::config::Config::read(&zoo).unwrap();
        assert_eq!(cfg.config_version, 0x1_0000_0000);
        assert_eq!(cfg.servers.len(), 2);
        assert_eq!(
            cfg.client_port, 2182,
            "the client port comes from the member's line"
        );

        // A later membership: a new file, zoo.cfg points at it, the old one stays.
        let next = "server.2=127.0.0.1:2889:3889:participant;127.0.0.1:2182\nversion=100000005";
        let dynamic2 = rewrite(&zoo, next, 0x1_0000_0005, 2).unwrap();
        assert!(dynamic.exists());
        let cfg = crate::config::Config::read(&zoo).unwrap();
        assert_eq!(cfg.config_version, 0x1_0000_0005);
        assert_eq!(cfg.servers.len(), 1);
        let edited = std::fs::read_to_string(&zoo).unwrap();
        assert_eq!(edited.matches("dynamicConfigFile=").count(), 1);
        assert!(edited.contains(&dynamic2.display().to_string()));
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    }
}
