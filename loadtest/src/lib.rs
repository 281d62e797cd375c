//! Carbon League's load generator: simulated schools on the real server, over real WebSockets
//! and HTTP, with a correctness check against the server's database (Postgres or the embedded
//! SQLite file) at the end.
//!
//! A run: set the world up through the API ([`world`]), start one task per student and teacher
//! ([`client`]) on a connection ramp, play the scenario's timeline (measured phase, optional
//! storm, drain, final sweep of the moderation queues), then report ([`report`]) and check
//! ([`check`]). See loadtest/README.md for the scenarios and the machine's limits.

pub mod api;
pub mod check;
pub mod cli;
pub mod client;
pub mod ledger;
pub mod metrics;
pub mod plan;
pub mod procstat;
pub mod report;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngExt as _;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::cli::{Args, FanoutBoard, Scenario};
use crate::client::{Shared, StationSim, StudentSim, Target, TeacherSim};
use crate::metrics::Metrics;
use crate::report::Report;

/// Runs the load test; returns whether it passed (the check found no mismatch and the run
/// measured something).
pub async fn run(args: Args) -> anyhow::Result<bool> {
    let params = args.resolve()?;
    let db = check::connect(&args.database_url)
        .await
        .context("connect to --database-url")?;
    let mut targets = Vec::new();
    for s in &args.servers {
        targets.push(target(s).await?);
    }
    let clients_per_school = params.classes * (params.students + 1);
    let my_schools = params.my_schools().len();
    eprintln!(
        "loadtest {:?}: run {} shard {}/{}: {} schools here × {} classes × {} students ({} WebSockets) against {}",
        params.scenario,
        params.run_id,
        params.shard.0,
        params.shard.1,
        my_schools,
        params.classes,
        params.students,
        my_schools * clients_per_school,
        args.servers.join(", ")
    );

    // Set-up.
    let joined = Arc::new(AtomicU64::new(0));
    let total_students = (my_schools * params.classes * params.students) as u64;
    let bar = progress(args.quiet, total_students, "setting up: students joined");
    let ticker = {
        let (bar, joined) = (bar.clone(), joined.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(joined.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let setup_started = Instant::now();
    let world = world::build(
        &params,
        &targets[0].api,
        &db,
        &args.admin_user,
        &args.admin_password,
        joined,
    )
    .await;
    ticker.abort();
    bar.finish_and_clear();
    let world = world?;
    eprintln!(
        "set up in {:.1} s ({} students can date behaviours over {} school days)",
        setup_started.elapsed().as_secs_f64(),
        total_students,
        world.calendar.len()
    );

    // The timeline.
    let t0 = Instant::now() + Duration::from_millis(300);
    let settle = if params.scenario == Scenario::Burst {
        Duration::from_secs(2)
    } else {
        Duration::ZERO
    };
    let phase_start = t0 + params.ramp + settle;
    let (storm_tx, storm_rx) = watch::channel(0u64);
    let shared = Arc::new(Shared {
        handshakes: Semaphore::new(params.max_handshakes),
        phase_start,
        stop_submitting: CancellationToken::new(),
        sweep: CancellationToken::new(),
        stop: CancellationToken::new(),
        storm: storm_rx,
        storm_at: std::sync::Mutex::new(None),
        inflight: AtomicI64::new(0),
        swept: AtomicU64::new(0),
        acked: std::sync::Mutex::new(Vec::new()),
        verified: std::sync::Mutex::new(Vec::new()),
        moderation_missed: AtomicU64::new(0),
        budget_spent: AtomicU64::new(0),
        metrics: Metrics::default(),
        params: params.clone(),
        world,
    });
    let (students, teachers, stations) = clients(&shared, &targets, t0);
    let n_clients = students.len() + teachers.len() + stations.len();
    let n_teachers = teachers.len() as u64;
    let mut tasks = Vec::with_capacity(n_clients);
    for s in stations {
        tasks.push(tokio::spawn(s.run(shared.clone())));
    }
    for t in teachers {
        tasks.push(tokio::spawn(t.run(shared.clone())));
    }
    for s in students {
        tasks.push(tokio::spawn(s.run(shared.clone())));
    }

    let sampling = CancellationToken::new();
    let samplers: Vec<_> = args
        .server_pids
        .iter()
        .map(|pid| tokio::spawn(procstat::sample(Some(*pid), sampling.clone())))
        .collect();
    let self_sampler = tokio::spawn(procstat::sample(None, sampling.clone()));
    let total = params.ramp + settle + params.duration;
    let monitor = tokio::spawn(monitor(
        shared.clone(),
        progress(args.quiet, total.as_secs().max(1), "running"),
        t0,
        sampling.clone(),
        args.quiet,
    ));

    tokio::time::sleep_until(phase_start.into()).await;
    if params.scenario == Scenario::ConnectStorm {
        tokio::time::sleep_until((phase_start + params.storm_at).into()).await;
        *shared.storm_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let _ = storm_tx.send(1);
        eprintln!("storm: every client drops its connection and reconnects now");
    }
    tokio::time::sleep_until((phase_start + params.duration).into()).await;
    let held = shared.metrics.connected.load(Ordering::Relaxed);

    // Drain: no new submissions; wait for answers (and retries), then the teachers' sweep.
    shared.stop_submitting.cancel();
    let drain_deadline = Instant::now() + params.request_timeout * 6;
    while shared.inflight.load(Ordering::Relaxed) > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shared.sweep.cancel();
    let sweep_deadline = Instant::now() + params.request_timeout * 4;
    while shared.swept.load(Ordering::Relaxed) < n_teachers && Instant::now() < sweep_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if shared.swept.load(Ordering::Relaxed) < n_teachers {
        shared.metrics.error("sweep_unfinished");
    }
    let measured = phase_start.elapsed();
    // Let the last coalesced pushes arrive before closing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    shared.stop.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    sampling.cancel();
    let (peak_acks, peak_pushes) = monitor.await.unwrap_or((0.0, 0.0));
    let mut servers = Vec::new();
    for s in samplers {
        servers.push(s.await.unwrap_or_default());
    }
    let client_process = self_sampler.await.unwrap_or_default();

    let acked = std::mem::take(&mut *shared.acked.lock().unwrap_or_else(|e| e.into_inner()));
    let verified = std::mem::take(&mut *shared.verified.lock().unwrap_or_else(|e| e.into_inner()));
    let check = if args.no_check {
        None
    } else {
        eprintln!("checking the database and the boards...");
        Some(check::run(&db, &targets[0].api, &shared.world, &acked, &verified).await?)
    };

    let m = &shared.metrics;
    let secs = measured.as_secs_f64().max(0.001);
    let get = Metrics::get;
    let report = Report {
        params: params.clone(),
        clients: n_clients,
        measured_secs: secs,
        connections_held: held,
        connections_max: m.connected_max.load(Ordering::Relaxed),
        connects: get(&m.connects),
        submissions_sent: get(&m.submits_sent),
        submissions_acked: get(&m.acks),
        acks_per_sec: get(&m.acks) as f64 / secs,
        acks_per_sec_peak: peak_acks,
        submit_retries: get(&m.submit_retries),
        replays: get(&m.replays),
        verifications: get(&m.verifications),
        verifications_per_sec: get(&m.verifications) as f64 / secs,
        approve_batches: get(&m.approve_batches),
        pushes: get(&m.pushes),
        pushes_per_sec: get(&m.pushes) as f64 / secs,
        pushes_per_sec_peak: peak_pushes,
        snapshots: get(&m.snapshots),
        seq_gaps: get(&m.seq_gaps),
        moderation_missed: shared.moderation_missed.load(Ordering::Relaxed),
        budgets_spent: shared.budget_spent.load(Ordering::Relaxed),
        ack_latency: m.ack_latency.summary(),
        push_latency: m.push_latency.summary(),
        connect_latency: m.connect_latency.summary(),
        reconnect_latency: m.reconnect_latency.summary(),
        approve_latency: m.approve_latency.summary(),
        errors: m.errors(),
        servers,
        client_process,
        check,
    };
    println!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    let expect_acks = params.rate_per_min > 0.0 || params.scenario == Scenario::Burst;
    let measured_something =
        report.connections_max > 0 && (!expect_acks || report.submissions_acked > 0);
    if !measured_something {
        eprintln!(
            "loadtest: the run measured nothing (no connection or no acknowledged submission)"
        );
    }
    Ok(measured_something && report.check.as_ref().is_none_or(|c| c.passed()))
}

async fn target(base: &str) -> anyhow::Result<Target> {
    let api = Api::new(base)?;
    let rest = base
        .strip_prefix("http://")
        .context("--server is an http:// URL")?
        .trim_end_matches('/');
    let hostport = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = tokio::net::lookup_host(hostport)
        .await
        .with_context(|| format!("resolve {hostport}"))?
        .find(SocketAddr::is_ipv4)
        .with_context(|| format!("{hostport} has no IPv4 address"))?;
    Ok(Target {
        addr,
        url: format!("ws://{hostport}/api/v1/ws"),
        api,
    })
}

/// Builds every simulated client, with its topics, server, source address and connect time.
/// Station displays connect first (students need their codes), then classes in turn.
fn clients(
    shared: &Arc<Shared>,
    targets: &[Target],
    t0: Instant,
) -> (Vec<StudentSim>, Vec<TeacherSim>, Vec<StationSim>) {
    let p = &shared.params;
    let world = &shared.world;
    let n_classes: usize = world.schools.iter().map(|s| s.classes.len()).sum();
    let total: usize = world
        .schools
        .iter()
        .flat_map(|s| &s.classes)
        .map(|c| c.students.len() + 1)
        .sum();
    let n_students = total - n_classes;
    let writer_every = if p.scenario == Scenario::Fanout {
        (n_students / p.fanout_writers.max(1)).max(1)
    } else {
        1
    };
    let connect_at = |i: usize| {
        if total <= 1 {
            t0
        } else {
            t0 + p.ramp.mul_f64(i as f64 / total as f64)
        }
    };
    let mut rng = rand::rng();
    let (mut students, mut teachers, mut stations) = (Vec::new(), Vec::new(), Vec::new());
    let mut idx = 0usize;
    let ips = &p.source_ips;
    for (si, school) in world.schools.iter().enumerate() {
        for k in 0..school.stations.len() {
            stations.push(StationSim {
                idx,
                school: si,
                station: k,
                target: targets[idx % targets.len()].clone(),
                source: ips[idx % ips.len()],
                connect_at: t0,
            });
            idx += 1;
        }
    }
    let mut idx = 0usize;
    let mut student_no = 0usize;
    let mut class_no = 0usize;
    for (si, school) in world.schools.iter().enumerate() {
        let fanout_topic = match p.fanout_board {
            FanoutBoard::School => format!("board:school:{}", school.id),
            FanoutBoard::Province => "board:province".to_owned(),
        };
        for class in &school.classes {
            let target = targets[class_no % targets.len()].clone();
            class_no += 1;
            let teacher_topics = if p.scenario == Scenario::Fanout {
                vec![format!("moderation:{}", class.id), fanout_topic.clone()]
            } else {
                vec![
                    format!("moderation:{}", class.id),
                    format!("board:class:{}", class.id),
                ]
            };
            teachers.push(TeacherSim::new(
                shared,
                idx,
                class.id,
                school.id,
                class.teacher_token.clone(),
                teacher_topics,
                target.clone(),
                connect_at(idx),
            ));
            idx += 1;
            for st in &class.students {
                let topics = if p.scenario == Scenario::Fanout {
                    vec![fanout_topic.clone()]
                } else {
                    let mut t = vec![
                        format!("board:class:{}", class.id),
                        format!("board:school:{}", school.id),
                    ];
                    if let Some(ch) = school.challenge {
                        t.push(format!("board:challenge:{ch}:per_capita"));
                    }
                    t
                };
                let slow = p.slow_readers > 0.0 && rng.random_bool(p.slow_readers);
                let writer = student_no.is_multiple_of(writer_every);
                student_no += 1;
                students.push(StudentSim::new(
                    shared,
                    idx,
                    st.id,
                    class.id,
                    si,
                    st.token.clone(),
                    topics,
                    slow,
                    writer,
                    target.clone(),
                    connect_at(idx),
                ));
                idx += 1;
            }
        }
    }
    (students, teachers, stations)
}

fn progress(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar
}

/// Updates the progress bar once a second and tracks the busiest seconds; returns the peak
/// acknowledgements and pushes per second.
async fn monitor(
    shared: Arc<Shared>,
    bar: ProgressBar,
    t0: Instant,
    stop: CancellationToken,
    quiet: bool,
) -> (f64, f64) {
    let m = &shared.metrics;
    let (mut peak_acks, mut peak_pushes) = (0.0f64, 0.0f64);
    let (mut last_acks, mut last_pushes, mut last_at) = (0u64, 0u64, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let dt = now.duration_since(last_at).as_secs_f64().max(0.001);
        let (acks, pushes) = (Metrics::get(&m.acks), Metrics::get(&m.pushes));
        let ack_rate = (acks - last_acks) as f64 / dt;
        let push_rate = (pushes - last_pushes) as f64 / dt;
        if now > shared.phase_start {
            peak_acks = peak_acks.max(ack_rate);
            peak_pushes = peak_pushes.max(push_rate);
        }
        (last_acks, last_pushes, last_at) = (acks, pushes, now);
        let errors: u64 = m.errors().values().sum();
        let phase = if shared.stop_submitting.is_cancelled() {
            "draining"
        } else if now < shared.phase_start {
            "ramp"
        } else {
            "measuring"
        };
        let msg = format!(
            "{phase}: {} connected, {acks} acks ({ack_rate:.0}/s), {} verified, {pushes} pushes ({push_rate:.0}/s), {errors} errors",
            m.connected.load(Ordering::Relaxed),
            Metrics::get(&m.verifications),
        );
        bar.set_position(now.saturating_duration_since(t0).as_secs());
        bar.set_message(msg.clone());
        n += 1;
        if quiet && n.is_multiple_of(5) {
            eprintln!(
                "[{:>4} s] {msg}",
                now.saturating_duration_since(t0).as_secs()
            );
        }
    }
    bar.finish_and_clear();
    (peak_acks, peak_pushes)
}
