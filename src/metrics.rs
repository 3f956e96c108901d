//! `/metrics`: ZooKeeper's PrometheusMetricsProvider (`metricsProvider.className=
//! org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider`), in the text format
//! its Prometheus client (simpleclient 0.9) writes: for each metric `# HELP name name`,
//! `# TYPE name gauge|counter|summary`, then its samples, values as Java doubles (`5.0`,
//! `NaN`), labels ending with a comma (`{quantile="0.5",}`).
//!
//! The metrics are `mntr`'s: its gauges and counters by name (without `zk_`), each summary
//! (`zk_avg_X` ... `zk_sum_X`) as the summary `X` with its quantiles (0.5; with 0.9 and 0.99
//! for the detailed ones), `X_count` and `X_sum`. With `metricsProvider.exportJvmInfo` (the
//! default), the process metrics every Prometheus client exports follow (`process_*`, read
//! from `/proc`); the JVM's own (`jvm_*`) have no equivalent here.

use crate::admin::{file_descriptors, java_double, mntr, MNTR_SUMMARIES};
use crate::core::Core;
use std::fmt::Write;

/// The metrics ZooKeeper registers as gauges (callbacks sampled at each scrape): the
/// server's (`ZooKeeperServer.registerMetrics`), a quorum member's and a leader's. The
/// other plain metrics of `mntr` are counters.
const GAUGES: &[&str] = &[
    "avg_latency",
    "max_latency",
    "min_latency",
    "packets_received",
    "packets_sent",
    "num_alive_connections",
    "outstanding_requests",
    "uptime",
    "znode_count",
    "watch_count",
    "ephemerals_count",
    "approximate_data_size",
    "global_sessions",
    "local_sessions",
    "open_file_descriptor_count",
    "max_file_descriptor_count",
    "connection_drop_probability",
    "last_client_response_size",
    "max_client_response_size",
    "min_client_response_size",
    "outstanding_tls_handshake",
    "auth_failed_count",
    "non_mtls_remote_conn_count",
    "non_mtls_local_conn_count",
    "quorum_size",
    "learners",
    "synced_followers",
    "synced_non_voting_followers",
    "synced_observers",
    "pending_syncs",
    "leader_uptime",
    "last_proposal_size",
    "max_proposal_size",
    "min_proposal_size",
];

/// `mntr` keys that are no metrics: text, and what only ZooKeeper's `dumpMonitorValues`
/// adds (an observer's learner master).
const TEXT: &[&str] = &[
    "version",
    "server_state",
    "peer_state",
    "observer_master_id",
];

/// The Content-Type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition of `core`'s metrics.
pub fn exposition(core: &Core, process: bool) -> String {
    let text = mntr(core);
    let values: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("zk_")?.split_once('\t'))
        .collect();
    let value = |key: &str| values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let summary_key = |key: &str| {
        MNTR_SUMMARIES.iter().any(|(name, _)| {
            [
                "avg_", "min_", "max_", "cnt_", "sum_", "p50_", "p95_", "p99_", "p999_",
            ]
            .iter()
            .any(|p| key.strip_prefix(p) == Some(name))
        })
    };
    // The summary sets (per namespace, per learner): summaries with a `key` label, below.
    let set_key = |key: &str| {
        NAMESPACE_SETS
            .iter()
            .chain(LEARNER_SETS.iter())
            .any(|set| key.ends_with(&format!("_{set}")))
    };
    let mut out = String::new();
    for (key, v) in &values {
        if TEXT.contains(key) || summary_key(key) || set_key(key) {
            continue;
        }
        let kind = if GAUGES.contains(key) {
            "gauge"
        } else {
            "counter"
        };
        family(&mut out, key, kind, "");
        sample(&mut out, key, "", number(v));
    }
    for (name, advanced) in MNTR_SUMMARIES {
        family(&mut out, name, "summary", "");
        let quantiles: &[&str] = if *advanced {
            &["0.5", "0.9", "0.99"]
        } else {
            &["0.5"]
        };
        // zkrs keeps no quantiles: a summary's quantiles read NaN, as an empty one's do.
        for q in quantiles {
            sample(&mut out, name, &format!("{{quantile=\"{q}\",}}"), f64::NAN);
        }
        let count = value(&format!("cnt_{name}")).map_or(0.0, number);
        let sum = value(&format!("sum_{name}")).map_or(0.0, number);
        sample(&mut out, &format!("{name}_count"), "", count);
        sample(&mut out, &format!("{name}_sum"), "", sum);
    }
    // A summary set is a summary labelled by `key` (its namespace, or its learner's id); its
    // quantiles (0.5 for a BASIC one, 0.5, 0.9 and 0.99 for an ADVANCED one) read NaN.
    let [writes, reads] = NAMESPACE_SETS;
    for (set, stats) in [(writes, &core.tree.writes), (reads, &core.reads)] {
        let members: Vec<(&str, Basic)> = stats.iter().map(|(k, b)| (k, *b)).collect();
        summary_set(&mut out, set, false, &members);
    }
    let queues = core
        .replica
        .as_ref()
        .map(|r| r.peers.learner_queues())
        .unwrap_or_default();
    let ids: Vec<String> = queues.iter().map(|(sid, _)| sid.to_string()).collect();
    let [size, time] = LEARNER_SETS;
    let sizes: Vec<(&str, Basic)> = ids
        .iter()
        .zip(&queues)
        .filter_map(|(id, (_, q))| Some((id.as_str(), q.size()?)))
        .collect();
    summary_set(&mut out, size, false, &sizes);
    let times: Vec<(&str, Basic)> = ids
        .iter()
        .zip(&queues)
        .filter_map(|(id, (_, q))| Some((id.as_str(), crate::quorum::lock(&q.time).basic?)))
        .collect();
    summary_set(&mut out, time, true, &times);
    if process {
        process_metrics(&mut out);
    }
    out
}

/// One summary set: a summary family whose samples carry each member's `key`.
fn summary_set(out: &mut String, set: &str, advanced: bool, members: &[(&str, Basic)]) {
    family(out, set, "summary", "");
    let quantiles: &[&str] = if advanced {
        &["0.5", "0.9", "0.99"]
    } else {
        &["0.5"]
    };
    for (key, b) in members {
        let key = format!(
            "key=\"{}\",",
            key.replace('\\', "\\\\").replace('"', "\\\"")
        );
        for q in quantiles {
            sample(out, set, &format!("{{{key}quantile=\"{q}\",}}"), f64::NAN);
        }
        sample(
            out,
            &format!("{set}_count"),
            &format!("{{{key}}}"),
            b.cnt as f64,
        );
        sample(
            out,
            &format!("{set}_sum"),
            &format!("{{{key}}}"),
            b.sum as f64,
        );
    }
}

fn number(v: &str) -> f64 {
    v.parse().unwrap_or(f64::NAN)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = if help.is_empty() { name } else { help };
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample, its value as simpleclient's `doubleToGoString`: Java's `Double.toString`,
/// with `+Inf`, `-Inf` and `NaN`.
fn sample(out: &mut String, name: &str, labels: &str, v: f64) {
    let v = match v {
        v if v.is_nan() => "NaN".to_string(),
        v if v == f64::INFINITY => "+Inf".to_string(),
        v if v == f64::NEG_INFINITY => "-Inf".to_string(),
        v => java_double(v),
    };
    let _ = writeln!(out, "{name}{labels} {v}");
}

/// The standard process metrics (simpleclient_hotspot's StandardExports), from `/proc`.
fn process_metrics(out: &mut String) {
    // /proc/<pid>/stat after the command's closing parenthesis: state is field 3; utime and
    // stime are 14 and 15, starttime 22 (in clock ticks, USER_HZ = 100 on Linux).
    const TICKS: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    if let (Some(u), Some(s)) = (field(14), field(15)) {
        family(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        sample(out, "process_cpu_seconds_total", "", (u + s) / TICKS);
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(boot), Some(start)) = (boot, field(22)) {
        family(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        );
        sample(out, "process_start_time_seconds", "", boot + start / TICKS);
    }
    let (max_fds, open_fds) = file_descriptors();
    family(
        out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    );
    sample(out, "process_open_fds", "", open_fds as f64);
    family(
        out,
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
    );
    sample(out, "process_max_fds", "", max_fds as f64);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    for (key, name, help) in [
        (
            "VmSize:",
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        ),
        (
            "VmRSS:",
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        ),
    ] {
        if let Some(v) = kib(key) {
            family(out, name, "gauge", help);
            sample(out, name, "", v * 1024.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_print_as_simpleclient_does() {
        let mut out = String::new();
        family(&mut out, "fsynctime", "summary", "");
        sample(&mut out, "fsynctime", "{quantile=\"0.5\",}", f64::NAN);
        sample(&mut out, "fsynctime_count", "", 3.0);
        sample(&mut out, "big", "", 1.0e7);
        sample(&mut out, "inf", "", f64::INFINITY);
        assert_eq!(
            out,
            "# HELP fsynctime fsynctime\n# TYPE fsynctime summary\n\
             fsynctime{quantile=\"0.5\",} NaN\nfsynctime_count 3.0\nbig 1.0E7\ninf +Inf\n"
        );
    }

    #[test]
    fn process_metrics_read_this_process() {
        let mut out = String::new();
        process_metrics(&mut out);
        for name in [
            "process_cpu_seconds_total",
            "process_start_time_seconds",
            "process_open_fds",
            "process_max_fds",
            "process_virtual_memory_bytes",
            "process_resident_memory_bytes",
        ] {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing: {out}"));
            let v: f64 = line[name.len() + 1..].parse().unwrap();
            // A test process may not have used a clock tick of CPU yet.
            assert!(
                v > 0.0 || name == "process_cpu_seconds_total" && v == 0.0,
                "{line}"
            );
        }
        let rss = out
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .unwrap();
        let start = out
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start: f64 = start.parse().unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} {now}"
        );
        assert!(rss.parse::<f64>().unwrap() > 1e6);
    }
}

/// ZooKeeper's per-namespace summaries (`write_per_namespace`, `read_per_namespace`, its
/// `DataTree.updateWriteStat` / `updateReadStat`): by a path's first component, how many
/// reads or writes and their sizes in bytes.
#[derive(Debug, Default)]
pub struct PerNamespace(std::collections::BTreeMap<String, Basic>);

/// A BASIC summary (ZooKeeper's `AvgMinMaxCounter`).
#[derive(Debug, Clone, Copy)]
pub struct Basic {
    pub cnt: u64,
    pub sum: u64,
    pub min: u64,
    pub max: u64,
}

impl Basic {
    /// A summary of one value.
    pub fn of(v: u64) -> Basic {
        Basic {
            cnt: 1,
            sum: v,
            min: v,
            max: v,
        }
    }

    pub fn add(&mut self, v: u64) {
        self.cnt += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// An ADVANCED summary (ZooKeeper's `AvgMinMaxPercentileCounter`): a BASIC one and a uniform
/// sample of the values (its `ResettableUniformReservoir`, 4,096 values) for percentiles.
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    pub basic: Option<Basic>,
    values: Vec<u64>,
    /// xorshift state, for which sampled value a new one replaces.
    rng: u64,
}

/// Values a [`Sampled`] keeps.
const RESERVOIR: usize = 4096;

impl Sampled {
    pub fn add(&mut self, v: u64) {
        let seen = match &mut self.basic {
            Some(b) => {
                b.add(v);
                b.cnt
            }
            None => {
                self.basic = Some(Basic::of(v));
                1
            }
        };
        if self.values.len() < RESERVOIR {
            self.values.push(v);
            return;
        }
        // Reservoir sampling: the n-th value replaces a kept one with probability size/n.
        self.rng = match self.rng {
            0 => 0x9e37_79b9_7f4a_7c15,
            mut x => {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            }
        };
        let at = self.rng % seen;
        if let Some(slot) = self.values.get_mut(at as usize) {
            *slot = v;
        }
    }

    /// The `q` quantile as Dropwizard's `UniformSnapshot.getValue` interpolates it, cut to
    /// a whole number as ZooKeeper prints it.
    pub fn percentile(&self, q: f64) -> u64 {
        let mut v = self.values.clone();
        v.sort_unstable();
        let n = v.len();
        if n == 0 {
            return 0;
        }
        let pos = q * (n + 1) as f64;
        let index = pos as usize;
        if index < 1 {
            return v[0];
        }
        if index >= n {
            return v[n - 1];
        }
        let (lower, upper) = (v[index - 1] as f64, v[index] as f64);
        (lower + (pos - pos.floor()) * (upper - lower)) as u64
    }
}

impl PerNamespace {
    /// One read or write of `path`: the path's length as Java counts it, plus `bytes`.
    pub fn add(&mut self, path: &str, bytes: u64) {
        // PathUtils.getTopNamespace: none for "/".
        let Some(ns) = path
            .strip_prefix('/')
            .and_then(|p| p.split('/').next())
            .filter(|ns| !ns.is_empty())
        else {
            return;
        };
        let v = java_len(path) as u64 + bytes;
        match self.0.get_mut(ns) {
            Some(b) => b.add(v),
            None => {
                self.0.insert(ns.to_string(), Basic::of(v));
            }
        }
    }

    /// (namespace, summary), by namespace.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Basic)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// A string's length as Java counts it (UTF-16 code units).
pub fn java_len(s: &str) -> usize {
    match s.is_ascii() {
        true => s.len(),
        false => s.encode_utf16().count(),
    }
}

/// The per-namespace summary sets, as `mntr` names them after their namespace.
pub const NAMESPACE_SETS: [&str; 2] = ["write_per_namespace", "read_per_namespace"];

/// The per-learner summary sets (a BASIC one and an ADVANCED one), named after the learner's
/// id.
pub const LEARNER_SETS: [&str; 2] = ["learner_handler_qp_size", "learner_handler_qp_time_ms"];

/// `DataTree.STAT_OVERHEAD_BYTES`, added to every read's size.
pub const STAT_OVERHEAD_BYTES: u64 = 6 * 8 + 5 * 4;

#[cfg(test)]
mod namespace_tests {
    use super::*;

    #[test]
    fn sampled_percentiles_interpolate_as_dropwizard() {
        let mut s = Sampled::default();
        assert_eq!(s.percentile(0.5), 0);
        for v in [0, 0, 0, 0, 0, 5] {
            s.add(v);
        }
        // As Apache 3.8's mntr showed for these six queue times.
        assert_eq!((s.percentile(0.5), s.percentile(0.95)), (0, 5));
        let mut s = Sampled::default();
        for v in 1..=10 {
            s.add(v);
        }
        assert_eq!((s.percentile(0.5), s.percentile(0.99)), (5, 10));
        let b = s.basic.expect("values");
        assert_eq!((b.cnt, b.sum, b.min, b.max), (10, 55, 1, 10));
        for v in 0..10_000 {
            s.add(v);
        }
        assert_eq!(s.basic.expect("values").cnt, 10_010);
        assert!(s.percentile(0.5) > 1000, "the sample follows the values");
    }

    #[test]
    fn per_namespace_counts_by_first_component_as_zookeeper() {
        let mut s = PerNamespace::default();
        s.add("/", 5);
        s.add("/app", 10);
        s.add("/app/a/b", 0);
        s.add("/zookeeper/config", 178);
        s.add("/é", 1);
        let got: Vec<(&str, u64, u64, u64, u64)> = s
            .iter()
            .map(|(k, b)| (k, b.cnt, b.sum, b.min, b.max))
            .collect();
        assert_eq!(
            got,
            vec![
                ("app", 2, 14 + 8, 8, 14),
                ("zookeeper", 1, 195, 195, 195),
                ("é", 1, 3, 3, 3),
            ]
        );
    }
}
