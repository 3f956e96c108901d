//! Path rules (`PathUtils.validatePath`) and path arithmetic.

use jute::ZkError;

/// Validates a path as ZooKeeper does for writes: non-empty, absolute, no trailing `/` (except
/// the root), no empty, `.` or `..` component, and none of the code points ZooKeeper rejects.
pub fn validate(path: &str) -> Result<(), ZkError> {
    let bad = || Err(ZkError::BadArguments);
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return bad();
    }
    if b.len() == 1 {
        return Ok(());
    }
    if b.last() == Some(&b'/') {
        return bad();
    }
    // One pass over the bytes: components, and the ASCII code points ZooKeeper rejects (NUL,
    // the C0 controls, DEL). Other code points are checked only in paths that have them.
    let component_ok = |c: &[u8]| !(c.is_empty() || c == b"." || c == b"..");
    let mut start = 1;
    let mut ascii = true;
    for (i, &c) in b.iter().enumerate().skip(1) {
        if c == b'/' {
            if !component_ok(&b[start..i]) {
                return bad();
            }
            start = i + 1;
        } else if c < 0x20 || c == 0x7F {
            return bad();
        } else if c >= 0x80 {
            ascii = false;
        }
    }
    if !component_ok(&b[start..]) {
        return bad();
    }
    if !ascii {
        for c in path.chars() {
            let u = c as u32;
            // Java checks UTF-16 code units: a character outside the BMP is a surrogate
            // pair, which falls in the rejected range.
            if (0x7F..=0x9F).contains(&u)
                || (0xD800..=0xF8FF).contains(&u)
                || (0xFFF0..=0xFFFF).contains(&u)
                || u > 0xFFFF
            {
                return bad();
            }
        }
    }
    Ok(())
}

/// The parent of a path (`/a/b` -> `/a`, `/a` -> `/`); `None` for the root or a path with no `/`.
pub fn parent(path: &str) -> Option<&str> {
    let idx = path.rfind('/')?;
    if path == "/" {
        None
    } else if idx == 0 {
        Some("/")
    } else {
        Some(&path[..idx])
    }
}

/// The last component of a path.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `parent` + `/` + `child`.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// The number of components (`/` is 0, `/a` is 1).
pub fn depth(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.bytes().filter(|&b| b == b'/').count()
    }
}

/// Paths ZooKeeper never lets a client delete (`DataTree.isSpecialPath`).
pub fn is_special(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_zookeeper_rejects() {
        for bad in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/a/./b",
            "/a/..",
            "/a\0",
            "/a\u{1}",
            "/\u{7f}",
            "/\u{9f}",
            "/\u{d7ff}x\u{e000}",
            "/\u{fff0}",
            "/\u{1F600}",
            "/./a",
            "/a/../b",
            "/a/\u{1f}b",
            "/x\u{80}",
            "/é/\u{7f}",
        ] {
            assert_eq!(validate(bad), Err(ZkError::BadArguments), "{bad:?}");
        }
        for good in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/...",
            "/é",
            "/\u{d7ff}",
            "/\u{f900}",
        ] {
            assert_eq!(validate(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn parents_and_names() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(name("/a/b"), "b");
        assert_eq!(name("/a"), "a");
        assert_eq!(name("/"), "");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a/b"), 2);
    }
}
