//! Percentiles, the server's CPU time from /proc, and result rows.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

/// Latency summary of one run, in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: u64,
}

/// Nearest-rank percentiles; sorts `lat` in place.
pub fn summarize(lat: &mut [u64]) -> Summary {
    if lat.is_empty() {
        return Summary::default();
    }
    lat.sort_unstable();
    let n = lat.len();
    let at = |q: f64| {
        let rank = (q * n as f64).ceil() as usize;
        lat[rank.clamp(1, n) - 1]
    };
    let sum: u128 = lat.iter().map(|&x| u128::from(x)).sum();
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: lat[n - 1],
        mean: (sum / n as u128) as u64,
    }
}

pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// utime + stime of `pid` in microseconds (USER_HZ = 100 on Linux), None if unreadable.
pub fn cpu_us(pid: Option<u32>) -> Option<u64> {
    let pid = pid?;
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) * 10_000)
}

/// Named values a run produced, printed as one `RESULT` line and appended to the record file.
pub struct Report {
    pub label: String,
    pub rows: Vec<(String, f64)>,
    pub line: String,
}

impl Report {
    pub fn new(label: &str, mode: &str) -> Self {
        Report {
            label: label.to_string(),
            rows: Vec::new(),
            line: format!("RESULT mode={mode}"),
        }
    }

    /// A key=value on the RESULT line only.
    pub fn kv(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = write!(self.line, " {key}={value}");
    }

    /// A metric for the table (and the RESULT line).
    pub fn metric(&mut self, name: &str, key: &str, value: f64) {
        self.kv(key, fmt_num(value));
        self.rows.push((name.to_string(), value));
    }

    /// The standard metrics of a load run.
    pub fn load(
        &mut self,
        ops: u64,
        errors: u64,
        elapsed: Duration,
        s: &Summary,
        cpu: Option<u64>,
        per: &str,
    ) {
        let secs = elapsed.as_secs_f64().max(1e-9);
        self.kv("ops", ops);
        self.kv("errors", errors);
        self.kv("secs", format!("{secs:.3}"));
        self.metric(&format!("{per}/s ↑"), "ops_per_s", ops as f64 / secs);
        self.metric("p50 ms ↓", "p50_ms", ms(s.p50));
        self.metric("p99 ms ↓", "p99_ms", ms(s.p99));
        self.metric("p99.9 ms ↓", "p999_ms", ms(s.p999));
        self.kv("max_ms", fmt_num(ms(s.max)));
        self.kv("mean_ms", fmt_num(ms(s.mean)));
        if let Some(cpu) = cpu {
            if ops > 0 {
                self.metric(
                    &format!("server CPU µs/{} ↓", per.trim_end_matches('s')),
                    "cpu_us_per_op",
                    cpu as f64 / ops as f64,
                );
            }
        }
        if errors > 0 {
            self.metric("errors", "errors_rows", errors as f64);
        }
    }

    /// Prints the RESULT line and appends `label \t metric \t server \t value` rows to `record`.
    pub fn finish(self, record: Option<&Path>, server: &str) -> std::io::Result<()> {
        println!("{}", self.line);
        if let Some(path) = record {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            for (name, v) in &self.rows {
                writeln!(f, "{}\t{}\t{}\t{}", self.label, name, server, v)?;
            }
        }
        Ok(())
    }
}

/// A number with about 3 significant digits, thousands separated when large.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".into()
    } else {
        format!("{v:.3}")
    }
}

/// The markdown table of a record file: one row per (workload, metric) in first-seen order,
/// Apache ZooKeeper and zkrs side by side, ratio = zkrs ÷ Apache. Rows whose server is
/// `floor` (the TCP echo and fsync floors) show the floor in both columns.
pub fn table(text: &str) -> String {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut vals: std::collections::HashMap<(String, String, String), f64> = Default::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 4 {
            continue;
        }
        let Ok(v) = f[3].parse::<f64>() else { continue };
        let key = (f[0].to_string(), f[1].to_string());
        if !keys.contains(&key) {
            keys.push(key);
        }
        vals.insert((f[0].into(), f[1].into(), f[2].into()), v);
    }
    let mut out = String::from(
        "| workload | metric | Apache ZK | zkrs | ratio (zkrs ÷ Apache) |\n|---|---|---:|---:|---:|\n",
    );
    for (w, m) in keys {
        let get = |s: &str| vals.get(&(w.clone(), m.clone(), s.to_string())).copied();
        if let Some(f) = get("floor") {
            let _ = writeln!(
                out,
                "| {w} | {m} | {} | {} | (floor) |",
                fmt_num(f),
                fmt_num(f)
            );
            continue;
        }
        let a = get("apache");
        let z = get("zkrs");
        let cell = |v: Option<f64>| v.map_or("—".to_string(), fmt_num);
        let ratio = match (a, z) {
            (Some(a), Some(z)) if a != 0.0 => format!("{:.2}", z / a),
            _ => "—".into(),
        };
        let _ = writeln!(out, "| {w} | {m} | {} | {} | {ratio} |", cell(a), cell(z));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<u64> = (1..=1000).collect();
        let s = summarize(&mut v);
        assert_eq!((s.p50, s.p99, s.p999, s.max), (500, 990, 999, 1000));
        let mut one = vec![7];
        assert_eq!(summarize(&mut one).p999, 7);
    }

    #[test]
    fn numbers_are_readable() {
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(0.01234), "0.012");
        assert_eq!(fmt_num(12.345), "12.3");
    }

    #[test]
    fn table_pairs_servers() {
        let t = table("create 1×1\tops/s ↑\tapache\t100\ncreate 1×1\tops/s ↑\tzkrs\t300\n");
        assert!(
            t.contains("| create 1×1 | ops/s ↑ | 100 | 300 | 3.00 |"),
            "{t}"
        );
    }
}
