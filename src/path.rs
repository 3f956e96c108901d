//! Path rules (`PathUtils.validatePath`) and path arithmetic.

use jute::ZkError;

/// Validates a path as ZooKeeper does for writes: non-empty, absolute, no trailing `/` (except
/// the root), no empty, `.` or `..` component, and none of the code points ZooKeeper rejects.
pub fn validate(path: &str) -> Result<(), ZkError> {
    let bad = || Err(ZkError::BadArguments);
    if path.is_empty() || !path.starts_with('/') {
        return bad();
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return bad();
    }
    for component in path[1..].split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return bad();
        }
    }
    for c in path.chars() {
        let u = c as u32;
        // Java checks UTF-16 code units: a character outside the BMP is a surrogate pair,
        // which falls in the rejected range.
        if u == 0
            || (0x01..=0x1F).contains(&u)
            || (0x7F..=0x9F).contains(&u)
            || (0xD800..=0xF8FF).contains(&u)
            || (0xFFF0..=0xFFFF).contains(&u)
            || u > 0xFFFF
        {
            return bad();
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
    path.rsplit('/').next().unwrap_or(path)
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
        path.matches('/').count()
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
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a/b"), 2);
    }
}
