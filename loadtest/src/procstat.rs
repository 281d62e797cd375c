//! Server resource use, sampled from `/proc` once a second: resident memory (`VmRSS` in
//! `/proc/<pid>/status`) and CPU time (`utime + stime` in `/proc/<pid>/stat`, in clock ticks).
//! The load test's own process is sampled too: on a two-core machine shared with the server,
//! the client's CPU is part of the picture.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Clock ticks per second: 100 on every Linux we run on (`getconf CLK_TCK`).
const TICKS_PER_SEC: f64 = 100.0;

/// One process's figures over the run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProcSummary {
    /// The PID (0: this load test).
    pub pid: u32,
    /// Samples taken.
    pub samples: u64,
    /// Resident memory at the last sample, MiB.
    pub rss_last_mib: f64,
    /// Largest resident memory seen, MiB.
    pub rss_max_mib: f64,
    /// CPU used over the sampled period, in cores (1.0 = one core busy).
    pub cpu_mean_cores: f64,
    /// The busiest one-second sample, in cores.
    pub cpu_max_cores: f64,
}

fn read_rss_kib(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// `utime + stime` in clock ticks.
fn read_cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis are
    // state (3), ..., utime (14), stime (15).
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Samples `pid` (None: this process) every second until `stop`.
pub async fn sample(pid: Option<u32>, stop: CancellationToken) -> ProcSummary {
    let mut s = ProcSummary {
        pid: pid.unwrap_or(0),
        ..ProcSummary::default()
    };
    let Some(first_ticks) = read_cpu_ticks(pid) else {
        return s;
    };
    let started = Instant::now();
    let (mut last_ticks, mut last_at) = (first_ticks, started);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (Some(rss), Some(ticks)) = (read_rss_kib(pid), read_cpu_ticks(pid)) else {
            break;
        };
        let now = Instant::now();
        s.samples += 1;
        s.rss_last_mib = rss as f64 / 1024.0;
        s.rss_max_mib = s.rss_max_mib.max(s.rss_last_mib);
        let dt = now.duration_since(last_at).as_secs_f64();
        if dt > 0.5 {
            let cores = (ticks - last_ticks) as f64 / TICKS_PER_SEC / dt;
            s.cpu_max_cores = s.cpu_max_cores.max(cores);
        }
        let total = now.duration_since(started).as_secs_f64();
        if total > 0.0 {
            s.cpu_mean_cores = (ticks - first_ticks) as f64 / TICKS_PER_SEC / total;
        }
        (last_ticks, last_at) = (ticks, now);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_read() {
        assert!(read_rss_kib(None).is_some_and(|k| k > 0));
        assert!(read_cpu_ticks(None).is_some());
    }
}
