//! The report: a table on the terminal and the same figures as JSON (`--json FILE`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::check::CheckReport;
use crate::cli::Params;
use crate::metrics::LatencySummary;
use crate::procstat::ProcSummary;

/// Everything a run reports.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The parameters.
    pub params: Params,
    /// Students, teachers simulated.
    pub clients: usize,
    /// Seconds the measured phase lasted (from its start to the end of the drain).
    pub measured_secs: f64,
    /// Connections held when the drain began.
    pub connections_held: i64,
    /// The most held at once.
    pub connections_max: i64,
    /// Successful connections (reconnections included).
    pub connects: u64,
    /// Submissions sent (first attempts).
    pub submissions_sent: u64,
    /// Submissions acknowledged.
    pub submissions_acked: u64,
    /// Acknowledged per second.
    pub acks_per_sec: f64,
    /// The busiest second.
    pub acks_per_sec_peak: f64,
    /// Retries with the same idempotency key.
    pub submit_retries: u64,
    /// Acknowledgements of a retry.
    pub replays: u64,
    /// Verifications (station acks + approvals).
    pub verifications: u64,
    /// Per second.
    pub verifications_per_sec: f64,
    /// Approve batches sent.
    pub approve_batches: u64,
    /// Events pushed to clients (all topics).
    pub pushes: u64,
    /// Per second.
    pub pushes_per_sec: f64,
    /// The busiest second.
    pub pushes_per_sec_peak: f64,
    /// Snapshots received.
    pub snapshots: u64,
    /// Events whose sequence number skipped one.
    pub seq_gaps: u64,
    /// Pending submissions teachers learnt of only from the final HTTP sweep.
    pub moderation_missed: u64,
    /// Students whose daily-cap budget ran out.
    pub budgets_spent: u64,
    /// Submit → ack.
    pub ack_latency: LatencySummary,
    /// Verifying request sent → a subscriber's pushed board shows the points.
    pub push_latency: LatencySummary,
    /// Connect + auth + subscribe.
    pub connect_latency: LatencySummary,
    /// connect-storm: storm → connected again.
    pub reconnect_latency: LatencySummary,
    /// Approve → ok.
    pub approve_latency: LatencySummary,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
    /// The server processes.
    pub servers: Vec<ProcSummary>,
    /// This load-test process.
    pub client_process: ProcSummary,
    /// The correctness check (absent with `--no-check`).
    pub check: Option<CheckReport>,
}

fn lat(name: &str, l: &LatencySummary) -> String {
    if l.count == 0 {
        return format!("  {name:<28} -\n");
    }
    format!(
        "  {name:<28} p50 {:>9.1}  p95 {:>9.1}  p99 {:>9.1}  max {:>9.1} ms  (n={})\n",
        l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.count
    )
}

impl Report {
    /// The terminal table.
    pub fn table(&self) -> String {
        let p = &self.params;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\nscenario {:?}: {} schools × {} classes × {} students (this process: {} clients), {:.1} s measured",
            p.scenario, p.schools, p.classes, p.students, self.clients, self.measured_secs
        );
        let row = |t: &mut String, k: &str, v: String| {
            let _ = writeln!(t, "  {k:<28} {v}");
        };
        row(
            &mut t,
            "connections held",
            format!(
                "{} (max {}, {} connects)",
                self.connections_held, self.connections_max, self.connects
            ),
        );
        row(
            &mut t,
            "submissions acknowledged",
            format!(
                "{} of {} sent: {:.1}/s (peak {:.0}/s), {} retries, {} replays",
                self.submissions_acked,
                self.submissions_sent,
                self.acks_per_sec,
                self.acks_per_sec_peak,
                self.submit_retries,
                self.replays
            ),
        );
        row(
            &mut t,
            "verifications",
            format!(
                "{}: {:.1}/s ({} approve batches)",
                self.verifications, self.verifications_per_sec, self.approve_batches
            ),
        );
        row(
            &mut t,
            "pushes delivered",
            format!(
                "{}: {:.1}/s (peak {:.0}/s), {} snapshots, {} sequence gaps",
                self.pushes,
                self.pushes_per_sec,
                self.pushes_per_sec_peak,
                self.snapshots,
                self.seq_gaps
            ),
        );
        t.push_str(&lat("ack latency", &self.ack_latency));
        t.push_str(&lat("verify-to-push latency", &self.push_latency));
        t.push_str(&lat("approve latency", &self.approve_latency));
        t.push_str(&lat("connect latency", &self.connect_latency));
        t.push_str(&lat("reconnect after storm", &self.reconnect_latency));
        for s in &self.servers {
            row(
                &mut t,
                &format!("server pid {}", s.pid),
                format!(
                    "RSS {:.0} MiB (max {:.0}), CPU {:.2} cores mean, {:.2} max",
                    s.rss_last_mib, s.rss_max_mib, s.cpu_mean_cores, s.cpu_max_cores
                ),
            );
        }
        let c = &self.client_process;
        row(
            &mut t,
            "load test process",
            format!(
                "RSS {:.0} MiB (max {:.0}), CPU {:.2} cores mean, {:.2} max",
                c.rss_last_mib, c.rss_max_mib, c.cpu_mean_cores, c.cpu_max_cores
            ),
        );
        if self.errors.is_empty() {
            row(&mut t, "errors", "none".into());
        } else {
            row(&mut t, "errors", String::new());
            for (code, n) in &self.errors {
                let _ = writeln!(t, "    {code:<40} {n}");
            }
        }
        if self.moderation_missed > 0 || self.budgets_spent > 0 {
            row(
                &mut t,
                "notes",
                format!(
                    "{} pending submissions found only by the final sweep; {} students ran out of daily caps",
                    self.moderation_missed, self.budgets_spent
                ),
            );
        }
        match &self.check {
            None => row(&mut t, "correctness check", "skipped".into()),
            Some(c) => {
                row(
                    &mut t,
                    "correctness check",
                    format!(
                        "{}: {} acks vs {} rows ({} unacknowledged), {} verified, {} boards / {} rows compared",
                        if c.passed() { "PASSED" } else { "FAILED" },
                        c.acknowledged,
                        c.rows,
                        c.unacknowledged_rows,
                        c.verified,
                        c.boards,
                        c.board_rows
                    ),
                );
                for m in &c.mismatches {
                    let _ = writeln!(t, "    {m}");
                }
                if c.mismatch_count > c.mismatches.len() {
                    let _ = writeln!(
                        t,
                        "    ... and {} more",
                        c.mismatch_count - c.mismatches.len()
                    );
                }
            }
        }
        t
    }
}
