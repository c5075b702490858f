//! Process figures from /proc: CPU seconds (utime + stime) and resident memory (VmRSS, and
//! the kernel's high-water mark VmHWM), sampled once a second for the servers named by
//! `--server-pid` and for the loadgen itself; and raising the open-file limit so 10,000
//! watch connections fit.

use std::collections::BTreeMap;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub hwm_bytes: u64,
}

/// Reads `/proc/<pid>` (`None` for the loadgen itself); `None` if the process is gone.
pub fn sample(pid: Option<u32>) -> Option<Sample> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_string(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    Some(Sample {
        cpu_seconds: cpu_seconds(&stat)?,
        rss_bytes: status_kib(&status, "VmRSS:").unwrap_or(0) * 1024,
        hwm_bytes: status_kib(&status, "VmHWM:").unwrap_or(0) * 1024,
    })
}

/// utime + stime of a `/proc/PID/stat` line, in seconds. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after the last `)`.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    Some((utime + stime) as f64 / ticks)
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// A process's figures over a run: CPU used since the first sample, peak RSS seen.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    first_cpu: f64,
    last_cpu: f64,
    pub peak_rss_bytes: u64,
    pub hwm_bytes: u64,
    pub seen: bool,
}

impl Usage {
    pub fn cpu_seconds(&self) -> f64 {
        self.last_cpu - self.first_cpu
    }

    fn update(&mut self, sample: Sample) {
        if !self.seen {
            self.first_cpu = sample.cpu_seconds;
            self.seen = true;
        }
        self.last_cpu = sample.cpu_seconds;
        self.peak_rss_bytes = self.peak_rss_bytes.max(sample.rss_bytes);
        self.hwm_bytes = self.hwm_bytes.max(sample.hwm_bytes);
    }
}

/// The processes watched during a run (key `None` is the loadgen).
#[derive(Default, Debug)]
pub struct Monitor {
    pub usage: BTreeMap<Option<u32>, Usage>,
}

impl Monitor {
    pub fn new(pids: &[u32]) -> Monitor {
        let mut monitor = Monitor::default();
        monitor.usage.insert(None, Usage::default());
        for pid in pids {
            monitor.usage.insert(Some(*pid), Usage::default());
        }
        monitor.sample();
        monitor
    }

    pub fn sample(&mut self) {
        for (pid, usage) in self.usage.iter_mut() {
            if let Some(sample) = sample(*pid) {
                usage.update(sample);
            }
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force
/// (`u64::MAX` for unlimited).
pub fn raise_nofile() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    // An unlimited hard limit cannot be the soft limit for files (fs.nr_open caps it).
    let target = limit.maximum.unwrap_or(1 << 20);
    if current < target {
        let raised = Rlimit {
            current: Some(target),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return target;
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_read_after_the_command_name() {
        let stat =
            "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        assert_eq!(cpu_seconds(stat), Some(300.0 / ticks));
    }

    #[test]
    fn the_loadgen_reads_itself() {
        let sample = sample(None).expect("/proc/self");
        assert!(sample.rss_bytes > 0);
        assert!(sample.hwm_bytes >= sample.rss_bytes);
        assert!(raise_nofile() >= 1024);
    }
}
