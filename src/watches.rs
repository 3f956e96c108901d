//! Watches: one-shot data and child watches, persistent and persistent-recursive watches
//! (`WatchManager`), kept per connection as ZooKeeper keeps them.

use crate::path;
use crate::tree::Event;
use jute::EventType;
use std::collections::{HashMap, HashSet};

/// A connection, as the core knows it.
pub type ConnId = u64;

const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

type Table = crate::FastMap<String, crate::FastMap<ConnId, u8>>;

/// What a checkWatches or removeWatches names (`Watcher.WatcherType` as 3.9 reads it):
/// `Child` and `Data` the one-shot watches only, `Persistent` and `Recursive` the watches
/// `addWatch` made, `Any` every watch on the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Child,
    Data,
    Persistent,
    Recursive,
    Any,
}

/// Which table a watch lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data,
    Child,
}

#[derive(Debug, Default)]
pub struct Watches {
    data: Table,
    child: Table,
    /// Number of recursive watches: when zero, ancestors need not be walked.
    recursive: usize,
}

fn add(table: &mut Table, p: &str, conn: ConnId, flag: u8) {
    *table
        .entry(p.to_string())
        .or_default()
        .entry(conn)
        .or_default() |= flag;
}

impl Watches {
    pub fn add(&mut self, kind: Kind, p: &str, conn: ConnId) {
        let table = match kind {
            Kind::Data => &mut self.data,
            Kind::Child => &mut self.child,
        };
        add(table, p, conn, STANDARD);
    }

    /// addWatch: mode 0 persistent (both tables), mode 1 persistent recursive.
    pub fn add_persistent(&mut self, p: &str, conn: ConnId, recursive: bool) {
        if recursive {
            let had = self
                .data
                .get(p)
                .and_then(|m| m.get(&conn))
                .is_some_and(|f| f & RECURSIVE != 0);
            add(&mut self.data, p, conn, RECURSIVE);
            if !had {
                self.recursive += 1;
            }
        } else {
            add(&mut self.data, p, conn, PERSISTENT);
            add(&mut self.child, p, conn, PERSISTENT);
        }
    }

    /// The connections to notify of `event`, in no particular order, each once.
    pub fn trigger(&mut self, event: &Event) -> Vec<ConnId> {
        let mut notified = HashSet::new();
        match event.kind {
            EventType::NodeChildrenChanged => {
                fire(&mut self.child, &event.path, &mut notified, false);
            }
            EventType::NodeDeleted => {
                self.recursive -= fire(&mut self.data, &event.path, &mut notified, true);
                fire(&mut self.child, &event.path, &mut notified, false);
                self.ancestors(&event.path, &mut notified);
            }
            _ => {
                fire(&mut self.data, &event.path, &mut notified, true);
                self.ancestors(&event.path, &mut notified);
            }
        }
        notified.into_iter().collect()
    }

    fn ancestors(&self, p: &str, notified: &mut HashSet<ConnId>) {
        if self.recursive == 0 {
            return;
        }
        let mut cur = path::parent(p);
        while let Some(a) = cur {
            if let Some(m) = self.data.get(a) {
                notified.extend(
                    m.iter()
                        .filter(|(_, f)| **f & RECURSIVE != 0)
                        .map(|(c, _)| *c),
                );
            }
            cur = path::parent(a);
        }
    }

    /// Is `conn` in the data-watch table at `p` (a data, exists, persistent or recursive
    /// watch)? What the watch 4lw and admin commands list.
    pub fn in_data_table(&self, p: &str, conn: ConnId) -> bool {
        self.data.get(p).is_some_and(|m| m.contains_key(&conn))
    }

    /// Does `conn` hold a watch of this type on `p`? (`DataTree.containsWatcher`, 3.9.)
    pub fn has(&self, p: &str, conn: ConnId, target: Target) -> bool {
        let flags = |t: &Table| t.get(p).and_then(|m| m.get(&conn)).copied().unwrap_or(0);
        match target {
            Target::Child => flags(&self.child) & STANDARD != 0,
            Target::Data => flags(&self.data) & STANDARD != 0,
            Target::Persistent => flags(&self.data) & PERSISTENT != 0,
            Target::Recursive => flags(&self.data) & RECURSIVE != 0,
            Target::Any => flags(&self.child) != 0 || flags(&self.data) != 0,
        }
    }

    /// removeWatches: drops the watches of that type; false if there was none
    /// (`DataTree.removeWatch`, 3.9).
    pub fn remove(&mut self, p: &str, conn: ConnId, target: Target) -> bool {
        let (removed, recursive_gone) = match target {
            Target::Child => (clear(&mut self.child, p, conn, STANDARD), false),
            Target::Data => (clear(&mut self.data, p, conn, STANDARD), false),
            Target::Persistent => {
                let child = clear(&mut self.child, p, conn, PERSISTENT);
                (clear(&mut self.data, p, conn, PERSISTENT) | child, false)
            }
            Target::Recursive => {
                let gone = clear(&mut self.data, p, conn, RECURSIVE);
                (gone, gone)
            }
            Target::Any => {
                let child = clear(&mut self.child, p, conn, u8::MAX);
                let data = take(&mut self.data, p, conn);
                let recursive = data.is_some_and(|f| f & RECURSIVE != 0);
                (child | data.is_some(), recursive)
            }
        };
        if recursive_gone {
            self.recursive -= 1;
        }
        removed
    }

    /// Forgets every watch of a closed connection.
    pub fn remove_conn(&mut self, conn: ConnId) {
        for table in [&mut self.data, &mut self.child] {
            table.retain(|_, m| {
                m.remove(&conn);
                !m.is_empty()
            });
        }
        self.recursive = self
            .data
            .values()
            .flat_map(|m| m.values())
            .filter(|f| **f & RECURSIVE != 0)
            .count();
    }

    /// (paths with watches, total watches) over both tables, for `wchs`.
    pub fn summary(&self) -> (usize, usize) {
        let paths: HashSet<&String> = self.data.keys().chain(self.child.keys()).collect();
        let total = self
            .data
            .values()
            .chain(self.child.values())
            .map(HashMap::len)
            .sum();
        (paths.len(), total)
    }

    /// Path -> connections, for `wchp`.
    pub fn by_path(&self) -> std::collections::BTreeMap<String, Vec<ConnId>> {
        let mut out: std::collections::BTreeMap<String, Vec<ConnId>> = Default::default();
        for table in [&self.data, &self.child] {
            for (p, m) in table {
                let e = out.entry(p.clone()).or_default();
                for c in m.keys() {
                    if !e.contains(c) {
                        e.push(*c);
                    }
                }
            }
        }
        out
    }

    /// Connection count with watches.
    pub fn connections(&self) -> usize {
        let conns: HashSet<&ConnId> = self
            .data
            .values()
            .chain(self.child.values())
            .flat_map(|m| m.keys())
            .collect();
        conns.len()
    }
}

/// Notifies the watchers of `p` in `table`, removing one-shot ones. Returns how many recursive
/// watches went away with the node (none: they outlive it).
fn fire(table: &mut Table, p: &str, notified: &mut HashSet<ConnId>, recursive_here: bool) -> usize {
    let Some(m) = table.get_mut(p) else { return 0 };
    m.retain(|conn, flags| {
        let fires =
            *flags & (STANDARD | PERSISTENT) != 0 || (recursive_here && *flags & RECURSIVE != 0);
        if fires {
            notified.insert(*conn);
        }
        *flags &= !STANDARD;
        *flags != 0
    });
    if m.is_empty() {
        table.remove(p);
    }
    0
}

/// Clears `flags` of `conn`'s watch on `p`: whether any of them was set.
fn clear(table: &mut Table, p: &str, conn: ConnId, flags: u8) -> bool {
    let Some(m) = table.get_mut(p) else {
        return false;
    };
    let Some(have) = m.get_mut(&conn) else {
        return false;
    };
    let had = *have & flags != 0;
    *have &= !flags;
    if *have == 0 {
        m.remove(&conn);
        if m.is_empty() {
            table.remove(p);
        }
    }
    had
}

fn take(table: &mut Table, p: &str, conn: ConnId) -> Option<u8> {
    let m = table.get_mut(p)?;
    let flags = m.remove(&conn);
    if m.is_empty() {
        table.remove(p);
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, p: &str) -> Event {
        Event {
            kind,
            path: p.into(),
            acl: Default::default(),
        }
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = Watches::default();
        w.add(Kind::Data, "/a", 1);
        assert_eq!(w.trigger(&ev(EventType::NodeDataChanged, "/a")), vec![1]);
        assert!(w.trigger(&ev(EventType::NodeDataChanged, "/a")).is_empty());
    }

    #[test]
    fn recursive_watches_skip_child_events_and_persist() {
        let mut w = Watches::default();
        w.add_persistent("/a", 7, true);
        assert_eq!(w.trigger(&ev(EventType::NodeCreated, "/a/b/c")), vec![7]);
        assert!(w
            .trigger(&ev(EventType::NodeChildrenChanged, "/a"))
            .is_empty());
        assert_eq!(w.trigger(&ev(EventType::NodeDeleted, "/a/b/c")), vec![7]);
        assert!(w.remove("/a", 7, Target::Any));
        assert!(w.trigger(&ev(EventType::NodeCreated, "/a/x")).is_empty());
    }

    #[test]
    fn checks_and_removals_name_watch_kinds_as_zookeeper_3_9() {
        // One-shot data and child watches, a persistent and a recursive one, side by side.
        let mut w = Watches::default();
        w.add(Kind::Data, "/a", 1);
        w.add_persistent("/a", 1, false);
        w.add_persistent("/a", 1, true);
        assert!(!w.has("/a", 1, Target::Child));
        assert!([
            Target::Data,
            Target::Persistent,
            Target::Recursive,
            Target::Any
        ]
        .iter()
        .all(|t| w.has("/a", 1, *t)));
        // Data names the one-shot watch only: the others stay and fire on.
        assert!(w.remove("/a", 1, Target::Data));
        assert!(!w.remove("/a", 1, Target::Data));
        assert!(!w.remove("/a", 1, Target::Child));
        assert_eq!(
            w.trigger(&ev(EventType::NodeChildrenChanged, "/a")),
            vec![1]
        );
        assert_eq!(w.trigger(&ev(EventType::NodeDataChanged, "/a/b")), vec![1]);
        assert!(w.remove("/a", 1, Target::Recursive));
        assert!(w
            .trigger(&ev(EventType::NodeDataChanged, "/a/b"))
            .is_empty());
        assert!(w.remove("/a", 1, Target::Persistent));
        assert!(!w.has("/a", 1, Target::Any));
        assert_eq!(w.summary(), (0, 0));
        // Any takes every kind at once; one that holds none is told so.
        w.add(Kind::Child, "/b", 2);
        w.add_persistent("/b", 2, true);
        assert!(w.remove("/b", 2, Target::Any));
        assert!(!w.remove("/b", 2, Target::Any));
        assert_eq!(
            w.trigger(&ev(EventType::NodeCreated, "/b/c")),
            Vec::<ConnId>::new()
        );
    }

    #[test]
    fn delete_notifies_data_and_child_watchers_once() {
        let mut w = Watches::default();
        w.add(Kind::Data, "/a", 1);
        w.add(Kind::Child, "/a", 1);
        w.add(Kind::Child, "/a", 2);
        let mut got = w.trigger(&ev(EventType::NodeDeleted, "/a"));
        got.sort();
        assert_eq!(got, vec![1, 2]);
        assert_eq!(w.summary(), (0, 0));
    }
}
