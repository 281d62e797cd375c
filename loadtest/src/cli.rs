//! The command line: the scenario, the size of the simulated world, the rates, and where the
//! server and its database are. Defaults that depend on the scenario are resolved in
//! [`Args::resolve`], so `--help` can name them and an explicit flag always wins.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};

/// The named scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A school day: clients connect on a ramp, students submit at `--rate` per minute each,
    /// teachers approve in batches, station submissions verify at once.
    Steady,
    /// Every connected student submits `--burst-submissions` times within `--burst-secs`
    /// seconds; the run then drains.
    Burst,
    /// Steady traffic, then every client drops its connection at once and reconnects at once
    /// (no ramp), retrying unanswered submissions with their idempotency keys.
    ConnectStorm,
    /// One board followed by every client (their school's board — one board with the default
    /// single school — or `--fanout-board province`) while `--fanout-writers` students keep
    /// changing it.
    Fanout,
    /// The CI smoke: a few hundred connections for about 10 s of steady traffic, with the
    /// correctness check (the same as `steady` with small defaults).
    Smoke,
}

/// Which board every client follows in the `fanout` scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FanoutBoard {
    /// `school:<id>` of each client's school (classes of one school, per capita).
    School,
    /// `province` (schools, per capita).
    Province,
}

/// Simulated schools on the real Carbon League server, over real WebSockets and HTTP.
///
/// Scenarios: steady (a school day), burst (every student submits within a few seconds),
/// connect-storm (everyone reconnects at once), fanout (one board with thousands of
/// subscribers under a stream of changes), smoke (the CI check: small steady run).
///
/// The run sets up its own schools through the server's API (as the programme admin), runs the
/// scenario, prints a table (and `--json FILE`), then checks that every acknowledged submission
/// is in the database exactly once and that every board equals the verified points there.
/// Any mismatch exits with status 1 (2: the run could not be set up). See loadtest/README.md.
///
/// Scenario defaults (S schools × C classes × N students, measured seconds, ramp seconds,
/// submissions per student per minute, slow-reader share); every one can be overridden:
///
///   steady         4 × 6 × 40,  60 s, ramp 10 s, 2/min, 2% slow
///   burst          4 × 6 × 40,  20 s, ramp 10 s, each student 1 submission within 3 s
///   connect-storm  4 × 6 × 40,  40 s, ramp 10 s, 1/min, storm at 20 s
///   fanout         1 × 40 × 50, 60 s, ramp 10 s, 6/min for 100 writers
///   smoke          2 × 3 × 50,  10 s, ramp 3 s,  6/min, 2% slow
#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadtest",
    version,
    args_override_self = true,
    verbatim_doc_comment
)]
pub struct Args {
    /// The scenario.
    #[arg(long, value_enum, default_value = "steady")]
    pub scenario: Scenario,

    /// The server's base URL (repeat the flag to spread clients over several server
    /// processes, round-robin by class).
    #[arg(long = "server", default_value = "http://127.0.0.1:8080")]
    pub servers: Vec<String>,

    /// The server's database, for the active season and the correctness check: a postgres://
    /// URL, or sqlite://PATH for an embedded server's file (e.g. sqlite:///tmp/league.sqlite3).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub database_url: String,

    /// The programme admin's username.
    #[arg(long, default_value = "admin")]
    pub admin_user: String,

    /// The programme admin's password (`carbon-league admin bootstrap` prints it).
    #[arg(long, env = "LOADTEST_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: String,

    /// Total number of schools (S). With `--shard i/n` this process takes schools i, i+n, ...
    #[arg(long)]
    pub schools: Option<usize>,

    /// Classes per school (C), each with its own teacher.
    #[arg(long)]
    pub classes: Option<usize>,

    /// Students per class (N).
    #[arg(long)]
    pub students: Option<usize>,

    /// Stations per school (each verifies every station-accepting behaviour).
    #[arg(long, default_value_t = 2)]
    pub stations: usize,

    /// Station code window, seconds (15 to 3600). A student may use each station once per
    /// window, so short windows allow more station submissions.
    #[arg(long, default_value_t = 15)]
    pub station_window_secs: u32,

    /// Length of the measured phase, seconds (after the ramp).
    #[arg(long)]
    pub duration_secs: Option<u64>,

    /// Seconds over which clients connect (0: all at once).
    #[arg(long)]
    pub ramp_secs: Option<u64>,

    /// Submissions per student per minute (Poisson arrivals).
    #[arg(long)]
    pub rate: Option<f64>,

    /// Share of submissions that carry a station code (verified at once), 0 to 1.
    #[arg(long, default_value_t = 0.3)]
    pub station_share: f64,

    /// Teachers approve their pending submissions this often, milliseconds (batches of up to 500).
    #[arg(long, default_value_t = 2000)]
    pub approve_interval_ms: u64,

    /// Share of students who read slowly (and do not submit), 0 to 1.
    #[arg(long)]
    pub slow_readers: Option<f64>,

    /// A slow reader reads one frame, then waits this long, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub slow_read_ms: u64,

    /// A slow reader's socket receive buffer, bytes (the kernel doubles it): small, so the
    /// server sees the backlog instead of the loopback's megabytes of buffer.
    #[arg(long, default_value_t = 4096)]
    pub slow_recv_buffer_bytes: u32,

    /// burst: submissions per student in the burst.
    #[arg(long, default_value_t = 1)]
    pub burst_submissions: u32,

    /// burst: the burst's length, seconds.
    #[arg(long, default_value_t = 3)]
    pub burst_secs: u64,

    /// connect-storm: seconds into the measured phase when everyone drops and reconnects
    /// (default: half the duration).
    #[arg(long)]
    pub storm_at_secs: Option<u64>,

    /// fanout: the board everyone follows.
    #[arg(long, value_enum, default_value = "school")]
    pub fanout_board: FanoutBoard,

    /// fanout: students who keep submitting (the rest only follow the board).
    #[arg(long, default_value_t = 100)]
    pub fanout_writers: usize,

    /// Handshakes (TCP + WebSocket + auth + subscribe) in flight at once.
    #[arg(long, default_value_t = 256)]
    pub max_handshakes: usize,

    /// A request (connect, submit, approve) unanswered for this long counts as a timeout;
    /// submissions are then retried with the same idempotency key, milliseconds.
    #[arg(long, default_value_t = 15000)]
    pub request_timeout_ms: u64,

    /// Client source addresses, comma-separated or a range `127.0.0.10-127.0.0.17`. Each
    /// address gives at most ~28,000 local ports. Default: 8 addresses per shard.
    #[arg(long)]
    pub source_ips: Option<String>,

    /// Run only part of the schools: `i/n` takes schools i, i+n, i+2n, ... (0-based). Run n
    /// processes with the same `--run-id` and `--schools`.
    #[arg(long, default_value = "0/1")]
    pub shard: String,

    /// Names this run's schools and accounts (default: a fresh random id). Shards of one run
    /// share it.
    #[arg(long)]
    pub run_id: Option<String>,

    /// HTTP requests in flight at once while setting the world up.
    #[arg(long, default_value_t = 32)]
    pub setup_concurrency: usize,

    /// How far back behaviours are dated, hours (daily caps count per school day, so spreading
    /// over days multiplies what a student may submit). Keep below the server's
    /// `league.max_lateness_hours`.
    #[arg(long, default_value_t = 68)]
    pub backdate_hours: u64,

    /// PID of the server process, to sample its RSS and CPU during the run (repeatable).
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,

    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Skip the correctness check at the end.
    #[arg(long)]
    pub no_check: bool,

    /// No progress bar (for CI logs); a line every few seconds instead.
    #[arg(long)]
    pub quiet: bool,
}

/// Every parameter, resolved for the chosen scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Params {
    /// The scenario.
    pub scenario: Scenario,
    /// Total schools.
    pub schools: usize,
    /// Classes per school.
    pub classes: usize,
    /// Students per class.
    pub students: usize,
    /// Stations per school.
    pub stations: usize,
    /// Station window, seconds.
    pub station_window_secs: u32,
    /// Measured phase.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Connection ramp.
    #[serde(serialize_with = "secs")]
    pub ramp: Duration,
    /// Submissions per student per minute.
    pub rate_per_min: f64,
    /// Station share.
    pub station_share: f64,
    /// Approval interval.
    #[serde(serialize_with = "secs")]
    pub approve_interval: Duration,
    /// Slow reader share.
    pub slow_readers: f64,
    /// Slow reader delay.
    #[serde(serialize_with = "secs")]
    pub slow_read: Duration,
    /// Slow reader receive buffer.
    pub slow_recv_buffer_bytes: u32,
    /// Burst: submissions per student.
    pub burst_submissions: u32,
    /// Burst length.
    #[serde(serialize_with = "secs")]
    pub burst: Duration,
    /// Storm instant, from the start of the measured phase.
    #[serde(serialize_with = "secs")]
    pub storm_at: Duration,
    /// Fanout board.
    pub fanout_board: FanoutBoard,
    /// Fanout writers.
    pub fanout_writers: usize,
    /// Concurrent handshakes.
    pub max_handshakes: usize,
    /// Request timeout.
    #[serde(serialize_with = "secs")]
    pub request_timeout: Duration,
    /// Source addresses.
    pub source_ips: Vec<IpAddr>,
    /// This shard.
    pub shard: (usize, usize),
    /// Run id.
    pub run_id: String,
    /// Setup concurrency.
    pub setup_concurrency: usize,
    /// Backdating, hours.
    pub backdate_hours: u64,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Args {
    /// Fills in the scenario's defaults and validates.
    pub fn resolve(&self) -> anyhow::Result<Params> {
        use Scenario::*;
        let s = self.scenario;
        // (schools, classes, students, duration, ramp, rate, slow readers)
        let (schools, classes, students, duration, ramp, rate, slow) = match s {
            Steady => (4, 6, 40, 60, 10, 2.0, 0.02),
            Burst => (4, 6, 40, 20, 10, 0.0, 0.0),
            ConnectStorm => (4, 6, 40, 40, 10, 1.0, 0.0),
            Fanout => (1, 40, 50, 60, 10, 6.0, 0.0),
            Smoke => (2, 3, 50, 10, 3, 6.0, 0.02),
        };
        let (i, n) = parse_shard(&self.shard)?;
        let params = Params {
            scenario: s,
            schools: self.schools.unwrap_or(schools),
            classes: self.classes.unwrap_or(classes),
            students: self.students.unwrap_or(students),
            stations: self.stations,
            station_window_secs: self.station_window_secs,
            duration: Duration::from_secs(self.duration_secs.unwrap_or(duration)),
            ramp: Duration::from_secs(self.ramp_secs.unwrap_or(ramp)),
            rate_per_min: self.rate.unwrap_or(rate),
            station_share: self.station_share,
            approve_interval: Duration::from_millis(self.approve_interval_ms.max(50)),
            slow_readers: self.slow_readers.unwrap_or(slow),
            slow_read: Duration::from_millis(self.slow_read_ms),
            slow_recv_buffer_bytes: self.slow_recv_buffer_bytes,
            burst_submissions: self.burst_submissions,
            burst: Duration::from_secs(self.burst_secs.max(1)),
            storm_at: Duration::from_secs(
                self.storm_at_secs
                    .unwrap_or(self.duration_secs.unwrap_or(duration) / 2),
            ),
            fanout_board: self.fanout_board,
            fanout_writers: self.fanout_writers,
            max_handshakes: self.max_handshakes.max(1),
            request_timeout: Duration::from_millis(self.request_timeout_ms.max(100)),
            source_ips: match &self.source_ips {
                Some(spec) => parse_ips(spec)?,
                None => default_ips(i),
            },
            shard: (i, n),
            run_id: self
                .run_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()),
            setup_concurrency: self.setup_concurrency.max(1),
            backdate_hours: self.backdate_hours.clamp(1, 71),
        };
        if params.schools == 0 || params.classes == 0 || params.students == 0 {
            bail!("--schools, --classes and --students must be at least 1");
        }
        if !(0.0..=1.0).contains(&params.station_share)
            || !(0.0..=1.0).contains(&params.slow_readers)
        {
            bail!("--station-share and --slow-readers are between 0 and 1");
        }
        if !(15..=3600).contains(&params.station_window_secs) {
            bail!("--station-window-secs is between 15 and 3600");
        }
        if params.rate_per_min < 0.0 {
            bail!("--rate must not be negative");
        }
        let mine = params.my_schools().len();
        let sockets = mine * params.classes * (params.students + 1);
        if sockets > 19_500 {
            bail!(
                "this process would hold {sockets} WebSockets; one process may open at most 20,000 \
                 files here. Split the run with --shard i/n (see loadtest/README.md)"
            );
        }
        if sockets > params.source_ips.len() * 20_000 {
            bail!("give more --source-ips: about 20,000 connections per address at most");
        }
        Ok(params)
    }
}

impl Params {
    /// The school indexes this process runs.
    pub fn my_schools(&self) -> Vec<usize> {
        let (i, n) = self.shard;
        (0..self.schools).filter(|k| k % n == i).collect()
    }
}

fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let (i, n) = s.split_once('/').context("--shard is i/n, e.g. 0/4")?;
    let i: usize = i.trim().parse().context("--shard i/n: i is a number")?;
    let n: usize = n.trim().parse().context("--shard i/n: n is a number")?;
    if n == 0 || i >= n {
        bail!("--shard i/n needs 0 <= i < n");
    }
    Ok((i, n))
}

/// `127.0.0.10,127.0.0.11` or `127.0.0.10-127.0.0.17`.
pub fn parse_ips(spec: &str) -> anyhow::Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: Ipv4Addr = a
                .trim()
                .parse()
                .with_context(|| format!("bad address {a}"))?;
            let b: Ipv4Addr = b
                .trim()
                .parse()
                .with_context(|| format!("bad address {b}"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a > 1024 {
                bail!("bad address range {part}");
            }
            out.extend((a..=b).map(|x| IpAddr::V4(Ipv4Addr::from(x))));
        } else {
            out.push(
                part.parse()
                    .with_context(|| format!("bad address {part}"))?,
            );
        }
    }
    if out.is_empty() {
        bail!("--source-ips names no address");
    }
    Ok(out)
}

/// Eight loopback addresses per shard: 127.0.0.10-17 for shard 0, 127.0.0.18-25 for shard 1...
fn default_ips(shard: usize) -> Vec<IpAddr> {
    (0..8u32)
        .map(|k| {
            let host = 10 + (shard as u32) * 8 + k;
            IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(127, 0, 0, 0)) + host,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_range_lists_every_address() {
        let ips = parse_ips("127.0.0.10-127.0.0.12,127.0.1.1").unwrap();
        assert_eq!(ips.len(), 4);
        assert_eq!(ips[2].to_string(), "127.0.0.12");
    }

    #[test]
    fn a_shard_must_lie_below_its_count() {
        assert!(parse_shard("3/3").is_err());
        assert_eq!(parse_shard("1/4").unwrap(), (1, 4));
    }

    #[test]
    fn a_shard_takes_every_nth_school() {
        let args = Args::parse_from([
            "loadtest",
            "--admin-password",
            "x",
            "--schools",
            "10",
            "--shard",
            "1/4",
        ]);
        assert_eq!(args.resolve().unwrap().my_schools(), vec![1, 5, 9]);
    }

    #[test]
    fn too_many_sockets_for_one_process_are_refused() {
        let args = Args::parse_from([
            "loadtest",
            "--admin-password",
            "x",
            "--schools",
            "100",
            "--classes",
            "10",
            "--students",
            "40",
        ]);
        assert!(args.resolve().is_err());
    }
}
