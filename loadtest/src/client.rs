//! The simulated clients: one task per student or teacher, each holding one real WebSocket.
//!
//! A connection is opened from one of the `--source-ips` (a [`TcpSocket`] bound before
//! connecting, so one process can hold more connections than one source address has ports),
//! upgraded with tokio-tungstenite, authenticated with the first frame, and subscribed to the
//! client's topics. Then one `select!` loop per connection reads frames, sends submissions on
//! schedule, retries unanswered ones with their idempotency keys, and ends on shutdown, on the
//! storm signal (drop the socket without a close handshake), or when the server closes it.
//! Students and teachers keep their state across reconnections.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use rand::RngExt as _;
use schema::league::{Board, BulkResult, Submission, SubmissionStatus, SubmitBehavior};
use schema::ws::{ClientMsg, ServerMsg};
use schema::{ClassId, SchoolId, StudentId, SubmissionId};
use serde::Deserialize as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::api::Api;
use crate::cli::Params;
use crate::ledger::{Cursor, Mark};
use crate::metrics::Metrics;
use crate::plan::{Budget, StationUse};
use crate::world::World;

type Ws = WebSocketStream<TcpStream>;

/// A server to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its socket address.
    pub addr: SocketAddr,
    /// `ws://host:port/api/v1/ws`.
    pub url: String,
    /// Its HTTP API.
    pub api: Api,
}

/// An acknowledged submission.
#[derive(Debug, Clone)]
pub struct Acked {
    /// The student.
    pub student: StudentId,
    /// Its idempotency key.
    pub key: String,
    /// The id it was acknowledged with.
    pub id: SubmissionId,
}

/// What every client shares.
pub struct Shared {
    /// The run's parameters.
    pub params: Params,
    /// The world.
    pub world: World,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Bounds handshakes in flight.
    pub handshakes: Semaphore,
    /// The measured phase starts: submissions begin.
    pub phase_start: Instant,
    /// Stop submitting (the drain begins).
    pub stop_submitting: CancellationToken,
    /// Teachers sweep their moderation queues over HTTP and approve what is left.
    pub sweep: CancellationToken,
    /// Close everything.
    pub stop: CancellationToken,
    /// Bumped to make everyone drop their connection at once.
    pub storm: watch::Receiver<u64>,
    /// When the storm was triggered.
    pub storm_at: Mutex<Option<Instant>>,
    /// Submissions sent and not yet answered (or given up).
    pub inflight: AtomicI64,
    /// Teachers done with the final sweep.
    pub swept: AtomicU64,
    /// Every acknowledgement.
    pub acked: Mutex<Vec<Acked>>,
    /// Submissions the run verified (station acks and approvals).
    pub verified: Mutex<Vec<SubmissionId>>,
    /// Moderation items the teacher learnt only from the final HTTP sweep.
    pub moderation_missed: AtomicU64,
    /// Students whose budget ran out.
    pub budget_spent: AtomicU64,
}

impl Shared {
    fn storm_elapsed(&self) -> Option<Duration> {
        self.storm_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| t.elapsed())
    }
}

/// How a session ended.
enum End {
    Stop,
    Storm,
    Failed,
}

/// Connects, authenticates and subscribes; returns the socket and every frame received after
/// the `auth` reply (snapshots, and events that raced them).
async fn connect(
    target: &Target,
    source: IpAddr,
    token: &str,
    topics: &[String],
    timeout: Duration,
    recv_buffer: Option<u32>,
) -> Result<(Ws, Vec<ServerMsg>), String> {
    tokio::time::timeout(timeout, async {
        let socket = match source {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| format!("socket_{:?}", e.kind()))?;
        if let Some(bytes) = recv_buffer {
            // A small receive window, like a phone on a poor link: the server's writes back
            // up within seconds instead of filling the loopback's large buffers.
            let _ = socket.set_recv_buffer_size(bytes);
        }
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| format!("bind_{:?}", e.kind()))?;
        let stream = socket
            .connect(target.addr)
            .await
            .map_err(|e| format!("connect_{:?}", e.kind()))?;
        let _ = stream.set_nodelay(true);
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(4 * 1024)
            .max_message_size(Some(4 << 20))
            .max_frame_size(Some(4 << 20));
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(target.url.as_str(), stream, Some(config))
                .await
                .map_err(|e| match e {
                    tokio_tungstenite::tungstenite::Error::Http(r) => {
                        format!("handshake_http_{}", r.status().as_u16())
                    }
                    _ => "handshake_failed".to_owned(),
                })?;
        match recv(&mut ws).await? {
            ServerMsg::Hello { .. } => {}
            _ => return Err("no_hello".to_owned()),
        }
        send(
            &mut ws,
            &ClientMsg::Auth {
                id: "auth".into(),
                token: token.to_owned(),
            },
        )
        .await?;
        loop {
            match recv(&mut ws).await? {
                ServerMsg::Ok { id, .. } if id == "auth" => break,
                ServerMsg::Error { code, .. } => return Err(format!("auth_{code}")),
                _ => {}
            }
        }
        for (i, topic) in topics.iter().enumerate() {
            send(
                &mut ws,
                &ClientMsg::Subscribe {
                    id: format!("sub{i}"),
                    topic: topic.clone(),
                },
            )
            .await?;
        }
        let mut early = Vec::new();
        let mut answered = 0;
        while answered < topics.len() {
            match recv(&mut ws).await? {
                ServerMsg::Ok { id, .. } if id.starts_with("sub") => answered += 1,
                ServerMsg::Error {
                    id: Some(id), code, ..
                } if id.starts_with("sub") => {
                    return Err(format!("subscribe_{code}"));
                }
                other => early.push(other),
            }
        }
        Ok((ws, early))
    })
    .await
    .map_err(|_| "connect_timeout".to_owned())?
}

async fn send(ws: &mut Ws, msg: &ClientMsg) -> Result<(), String> {
    let text = serde_json::to_string(msg).map_err(|_| "encode".to_owned())?;
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|_| "send_failed".to_owned())
}

/// The next application frame, skipping pings and pongs; a close becomes `close_<code>`.
async fn recv(ws: &mut Ws) -> Result<ServerMsg, String> {
    loop {
        match ws.next().await {
            None => return Err("eof".to_owned()),
            Some(Err(_)) => return Err("read_failed".to_owned()),
            Some(Ok(msg)) => {
                if let Some(m) = decode(msg)? {
                    return Ok(m);
                }
            }
        }
    }
}

fn decode(msg: Message) -> Result<Option<ServerMsg>, String> {
    match msg {
        Message::Text(t) => serde_json::from_str(t.as_str())
            .map(Some)
            .map_err(|_| "undecodable_frame".to_owned()),
        Message::Close(frame) => Err(match frame {
            Some(f) => format!("close_{}", u16::from(f.code)),
            None => "close_none".to_owned(),
        }),
        _ => Ok(None),
    }
}

/// Per-topic state of one client: the last sequence number and a cursor per entity shown.
struct Follow {
    /// The client's index (histogram shard).
    who: usize,
    /// Whether its push latencies count (slow readers' do not).
    record: bool,
    topics: HashMap<String, TopicView>,
}

#[derive(Default)]
struct TopicView {
    seq: Option<u64>,
    cursors: HashMap<Uuid, Cursor>,
}

impl Follow {
    fn new(who: usize, record: bool) -> Self {
        Self {
            who,
            record,
            topics: HashMap::new(),
        }
    }

    /// Handles a snapshot or an event.
    fn frame(
        &mut self,
        shared: &Shared,
        topic: &str,
        seq: u64,
        data: &serde_json::Value,
        snapshot: bool,
    ) {
        let (who, record) = (self.who, self.record);
        let view = self.topics.entry(topic.to_owned()).or_default();
        let prev = view.seq;
        if snapshot {
            Metrics::add(&shared.metrics.snapshots, 1);
            // A new subscription starts over: its first frame is a baseline.
            view.cursors.clear();
        } else {
            Metrics::add(&shared.metrics.pushes, 1);
            if let Some(p) = prev
                && seq != p + 1
            {
                Metrics::add(&shared.metrics.seq_gaps, 1);
            }
        }
        view.seq = Some(seq);
        if !topic.starts_with("board:") {
            return;
        }
        let Ok(board) = Board::deserialize(data) else {
            shared.metrics.error("undecodable_board");
            return;
        };
        let now = Instant::now();
        let prev = if snapshot { None } else { prev };
        for e in &board.entries {
            let Some(log) = shared.world.ledger.log(&e.id) else {
                continue;
            };
            view.cursors
                .entry(e.id)
                .or_default()
                .advance(log, e.points, seq, prev, now, |d| {
                    if record {
                        shared.metrics.push_latency.record(who, d);
                    }
                });
        }
    }
}

/// A submission sent and not yet answered.
struct InFlight {
    msg: SubmitBehavior,
    attempt: u32,
    sent: Instant,
    mark: Option<Mark>,
}

/// A simulated student.
pub struct StudentSim {
    /// Client index (histogram shard, source address).
    pub idx: usize,
    /// The student.
    pub id: StudentId,
    /// Their class.
    pub class: ClassId,
    /// Their school's index in `world.schools`.
    pub school: usize,
    /// Their school.
    pub school_id: SchoolId,
    /// Device token.
    pub token: String,
    /// Topics followed.
    pub topics: Vec<String>,
    /// Reads slowly and does not submit.
    pub slow: bool,
    /// Submits at all (fanout: only the writers).
    pub writer: bool,
    /// Where to connect.
    pub target: Target,
    /// Source address.
    pub source: IpAddr,
    /// When to connect first.
    pub connect_at: Instant,
    budget: Budget,
    stations: StationUse,
    inflight: BTreeMap<String, InFlight>,
    next_key: u64,
    next_submit: Option<Instant>,
    burst_left: u32,
    follow: Follow,
}

impl StudentSim {
    /// A student with a full budget.
    #[expect(clippy::too_many_arguments, reason = "plain data, built in one place")]
    pub fn new(
        shared: &Shared,
        idx: usize,
        id: StudentId,
        class: ClassId,
        school: usize,
        token: String,
        topics: Vec<String>,
        slow: bool,
        writer: bool,
        target: Target,
        connect_at: Instant,
    ) -> Self {
        let ips = &shared.params.source_ips;
        Self {
            idx,
            id,
            class,
            school,
            school_id: shared.world.schools[school].id,
            token,
            topics,
            slow,
            writer: writer && !slow,
            target,
            source: ips[idx % ips.len()],
            connect_at,
            budget: Budget::new(&shared.world.catalogue, &shared.world.calendar),
            stations: StationUse::default(),
            inflight: BTreeMap::new(),
            next_key: 0,
            next_submit: None,
            burst_left: shared.params.burst_submissions,
            follow: Follow::new(idx, !slow),
        }
    }

    fn schedule(&mut self, shared: &Shared, after: Instant) {
        use crate::cli::Scenario;
        if !self.writer {
            self.next_submit = None;
            return;
        }
        let p = &shared.params;
        let mut rng = rand::rng();
        self.next_submit = match p.scenario {
            Scenario::Burst => {
                if self.burst_left == 0 {
                    None
                } else {
                    self.burst_left -= 1;
                    let offset = rng.random_range(0.0..p.burst.as_secs_f64());
                    Some((shared.phase_start + Duration::from_secs_f64(offset)).max(after))
                }
            }
            _ if p.rate_per_min <= 0.0 => None,
            _ => {
                // Poisson arrivals: exponential gaps with mean 60/rate seconds.
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                let gap = -u.ln() * 60.0 / p.rate_per_min;
                Some(after.max(shared.phase_start) + Duration::from_secs_f64(gap.min(3600.0)))
            }
        };
    }

    fn plan_submission(&mut self, shared: &Shared) -> Option<(SubmitBehavior, Option<Mark>)> {
        let world = &shared.world;
        let p = &shared.params;
        let mut rng = rand::rng();
        let school = &world.schools[self.school];
        let want_station = !school.stations.is_empty() && rng.random_bool(p.station_share);
        let codes: Vec<Option<(u64, String)>> = if want_station {
            school
                .stations
                .iter()
                .map(|s| lock(&s.code).clone())
                .collect()
        } else {
            Vec::new()
        };
        let station = if want_station {
            self.stations
                .take(codes.len(), |i| codes[i].as_ref().map(|c| c.0))
        } else {
            None
        };
        let pick = match station {
            Some(_) => world
                .budget_take(&mut self.budget, true, &mut rng)
                .or_else(|| world.budget_take(&mut self.budget, false, &mut rng)),
            None => world.budget_take(&mut self.budget, false, &mut rng),
        }?;
        let behavior = &world.catalogue[pick.behavior];
        let station = station.filter(|_| behavior.station);
        self.next_key += 1;
        let key = format!("lt-{}-{}", self.idx, self.next_key);
        let (station_code, station_id, mark) = match station {
            Some(i) => {
                let s = &school.stations[i];
                let code = codes[i].as_ref().map(|c| c.1.clone()).unwrap_or_default();
                let mark = world.ledger.append(
                    &[self.id.0, self.class.0, self.school_id.0],
                    behavior.points_per_unit,
                    Instant::now(),
                );
                (Some(code), Some(s.id), Some(mark))
            }
            None => (None, None, None),
        };
        Some((
            SubmitBehavior {
                behavior: behavior.id.clone(),
                quantity: 1,
                occurred_at: pick.occurred_at,
                idempotency_key: key,
                station_code,
                station_id,
                note: None,
            },
            mark,
        ))
    }

    /// Runs the student until the run stops.
    pub async fn run(mut self, shared: Arc<Shared>) {
        tokio::time::sleep_until(self.connect_at.into()).await;
        self.schedule(&shared, Instant::now());
        let mut storm = shared.storm.clone();
        let mut failures = 0u32;
        storm.borrow_and_update();
        let mut after_storm = false;
        while !shared.stop.is_cancelled() {
            let started = Instant::now();
            let connected = {
                let _permit = shared.handshakes.acquire().await;
                connect(
                    &self.target,
                    self.source,
                    &self.token,
                    &self.topics,
                    shared.params.request_timeout,
                    self.slow.then_some(shared.params.slow_recv_buffer_bytes),
                )
                .await
            };
            let (mut ws, early) = match connected {
                Ok(c) => c,
                Err(code) => {
                    shared.metrics.error(self.tag(&code));
                    failures += 1;
                    if !backoff(&shared, failures).await {
                        break;
                    }
                    continue;
                }
            };
            failures = 0;
            shared
                .metrics
                .connect_latency
                .record(self.idx, started.elapsed());
            // A slow reader notices the storm only after its pause: not the server's time.
            if after_storm
                && !self.slow
                && let Some(d) = shared.storm_elapsed()
            {
                shared.metrics.reconnect_latency.record(self.idx, d);
            }
            after_storm = false;
            shared.metrics.connection_up();
            let end = self.session(&shared, &mut ws, early, &mut storm).await;
            shared.metrics.connection_down();
            match end {
                End::Stop => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    break;
                }
                End::Storm => {
                    storm.borrow_and_update();
                    after_storm = true;
                    drop(ws);
                }
                End::Failed => {
                    drop(ws);
                    failures += 1;
                    if !backoff(&shared, failures).await {
                        break;
                    }
                }
            }
        }
        // Whatever is still unanswered will never be.
        let left = self.inflight.len() as i64;
        if left > 0 {
            shared.inflight.fetch_sub(left, Ordering::Relaxed);
            for _ in 0..left {
                shared.metrics.error("submit_unanswered");
            }
        }
    }

    fn tag(&self, code: &str) -> String {
        if self.slow {
            format!("slow_reader:{code}")
        } else {
            code.to_owned()
        }
    }

    async fn session(
        &mut self,
        shared: &Shared,
        ws: &mut Ws,
        early: Vec<ServerMsg>,
        storm: &mut watch::Receiver<u64>,
    ) -> End {
        for m in early {
            self.handle(shared, m);
        }
        // Resend what the previous connection left unanswered, with the same keys.
        let keys: Vec<String> = self.inflight.keys().cloned().collect();
        for key in keys {
            if self.resend(shared, ws, &key).await.is_err() {
                return End::Failed;
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            let submit_at = self
                .next_submit
                .filter(|_| !shared.stop_submitting.is_cancelled());
            tokio::select! {
                biased;
                () = shared.stop.cancelled() => return End::Stop,
                _ = storm.changed() => return End::Storm,
                frame = ws.next() => {
                    let msg = match frame {
                        None => { shared.metrics.error(self.tag("eof")); return End::Failed; }
                        Some(Err(_)) => { shared.metrics.error(self.tag("read_failed")); return End::Failed; }
                        Some(Ok(m)) => m,
                    };
                    match decode(msg) {
                        Ok(Some(m)) => self.handle(shared, m),
                        Ok(None) => {}
                        Err(code) => { shared.metrics.error(self.tag(&code)); return End::Failed; }
                    }
                    if self.slow {
                        tokio::time::sleep(shared.params.slow_read).await;
                    }
                }
                () = sleep_until_opt(submit_at) => {
                    self.schedule(shared, Instant::now());
                    match self.plan_submission(shared) {
                        Some((msg, mark)) => {
                            let key = msg.idempotency_key.clone();
                            self.inflight.insert(key.clone(), InFlight { msg, attempt: 0, sent: Instant::now(), mark });
                            shared.inflight.fetch_add(1, Ordering::Relaxed);
                            Metrics::add(&shared.metrics.submits_sent, 1);
                            if self.resend(shared, ws, &key).await.is_err() {
                                return End::Failed;
                            }
                        }
                        None => {
                            shared.budget_spent.fetch_add(1, Ordering::Relaxed);
                            self.next_submit = None;
                        }
                    }
                }
                _ = tick.tick() => {
                    let timeout = shared.params.request_timeout;
                    let late: Vec<String> = self.inflight.iter()
                        .filter(|(_, f)| f.sent.elapsed() > timeout)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in late {
                        shared.metrics.error("submit_timeout");
                        if self.resend(shared, ws, &key).await.is_err() {
                            return End::Failed;
                        }
                    }
                }
            }
        }
    }

    /// Sends (or re-sends, with the same idempotency key) an in-flight submission.
    async fn resend(&mut self, shared: &Shared, ws: &mut Ws, key: &str) -> Result<(), ()> {
        let Some(f) = self.inflight.get_mut(key) else {
            return Ok(());
        };
        if f.attempt >= 5 {
            shared.metrics.error("submit_abandoned");
            if let Some(m) = &f.mark {
                m.cancel();
            }
            self.inflight.remove(key);
            shared.inflight.fetch_sub(1, Ordering::Relaxed);
            return Ok(());
        }
        if f.attempt > 0 {
            Metrics::add(&shared.metrics.submit_retries, 1);
        }
        f.attempt += 1;
        f.sent = Instant::now();
        let msg = ClientMsg::Submit {
            id: format!("{key}#{}", f.attempt),
            submission: f.msg.clone(),
        };
        send(ws, &msg)
            .await
            .map_err(|code| shared.metrics.error(code))
    }

    fn handle(&mut self, shared: &Shared, msg: ServerMsg) {
        match msg {
            ServerMsg::Ok { id, result } => {
                let Some((key, attempt)) = id.split_once('#') else {
                    return;
                };
                let Some(f) = self.inflight.remove(key) else {
                    // An answer to an attempt already answered.
                    return;
                };
                shared.inflight.fetch_sub(1, Ordering::Relaxed);
                if attempt != "1" || f.attempt > 1 {
                    Metrics::add(&shared.metrics.replays, 1);
                }
                shared
                    .metrics
                    .ack_latency
                    .record(self.idx, f.sent.elapsed());
                Metrics::add(&shared.metrics.acks, 1);
                let Some(sub) = result.and_then(|r| Submission::deserialize(r).ok()) else {
                    shared.metrics.error("undecodable_ack");
                    return;
                };
                if f.mark.is_some() {
                    if sub.status == SubmissionStatus::Verified {
                        Metrics::add(&shared.metrics.verifications, 1);
                        lock(&shared.verified).push(sub.id);
                    } else {
                        shared.metrics.error("station_not_verified");
                    }
                }
                lock(&shared.acked).push(Acked {
                    student: self.id,
                    key: key.to_owned(),
                    id: sub.id,
                });
            }
            ServerMsg::Error { id, code, .. } => {
                shared.metrics.error(self.tag(&code));
                if let Some(key) = id.as_deref().and_then(|i| i.split_once('#')).map(|k| k.0)
                    && let Some(f) = self.inflight.remove(key)
                {
                    shared.inflight.fetch_sub(1, Ordering::Relaxed);
                    if let Some(m) = f.mark {
                        m.cancel();
                    }
                }
            }
            ServerMsg::Snapshot { topic, seq, data } => {
                self.follow.frame(shared, &topic, seq, &data, true);
            }
            ServerMsg::Event { topic, seq, data } => {
                self.follow.frame(shared, &topic, seq, &data, false);
            }
            ServerMsg::Hello { .. } => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Waits before reconnecting (exponential, jittered, at most 5 s); false when the run stopped.
async fn backoff(shared: &Shared, failures: u32) -> bool {
    let base = 250u64 << failures.min(5);
    let ms = rand::rng().random_range(base / 2..=base).min(5000);
    tokio::select! {
        () = shared.stop.cancelled() => false,
        () = tokio::time::sleep(Duration::from_millis(ms)) => true,
    }
}

/// A pending submission as the teacher knows it.
#[derive(Clone, Copy)]
struct Pending {
    student: StudentId,
    points: i64,
}

/// An approve batch in flight.
struct Batch {
    req: String,
    ids: Vec<(SubmissionId, Pending, Mark)>,
    sent: Instant,
}

/// A simulated teacher: follows their class's moderation queue and approves in batches.
pub struct TeacherSim {
    /// Client index.
    pub idx: usize,
    /// The class.
    pub class: ClassId,
    /// Its school.
    pub school_id: SchoolId,
    /// Login token.
    pub token: String,
    /// Topics followed.
    pub topics: Vec<String>,
    /// Where to connect.
    pub target: Target,
    /// Source address.
    pub source: IpAddr,
    /// When to connect first.
    pub connect_at: Instant,
    pending: BTreeMap<SubmissionId, Pending>,
    decided: HashSet<SubmissionId>,
    batch: Option<Batch>,
    batches: u64,
    swept: bool,
    follow: Follow,
}

impl TeacherSim {
    /// A teacher.
    #[expect(clippy::too_many_arguments, reason = "plain data, built in one place")]
    pub fn new(
        shared: &Shared,
        idx: usize,
        class: ClassId,
        school_id: SchoolId,
        token: String,
        topics: Vec<String>,
        target: Target,
        connect_at: Instant,
    ) -> Self {
        let ips = &shared.params.source_ips;
        Self {
            idx,
            class,
            school_id,
            token,
            topics,
            target,
            source: ips[idx % ips.len()],
            connect_at,
            pending: BTreeMap::new(),
            decided: HashSet::new(),
            batch: None,
            batches: 0,
            swept: false,
            follow: Follow::new(idx, true),
        }
    }

    /// Runs the teacher until the run stops.
    pub async fn run(mut self, shared: Arc<Shared>) {
        tokio::time::sleep_until(self.connect_at.into()).await;
        let mut storm = shared.storm.clone();
        storm.borrow_and_update();
        let mut after_storm = false;
        let mut failures = 0u32;
        while !shared.stop.is_cancelled() {
            let started = Instant::now();
            let connected = {
                let _permit = shared.handshakes.acquire().await;
                connect(
                    &self.target,
                    self.source,
                    &self.token,
                    &self.topics,
                    shared.params.request_timeout,
                    None,
                )
                .await
            };
            let (mut ws, early) = match connected {
                Ok(c) => c,
                Err(code) => {
                    shared.metrics.error(format!("teacher:{code}"));
                    failures += 1;
                    if !backoff(&shared, failures).await {
                        break;
                    }
                    continue;
                }
            };
            failures = 0;
            shared
                .metrics
                .connect_latency
                .record(self.idx, started.elapsed());
            if after_storm && let Some(d) = shared.storm_elapsed() {
                shared.metrics.reconnect_latency.record(self.idx, d);
            }
            after_storm = false;
            shared.metrics.connection_up();
            let end = self.session(&shared, &mut ws, early, &mut storm).await;
            shared.metrics.connection_down();
            match end {
                End::Stop => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    break;
                }
                End::Storm => {
                    storm.borrow_and_update();
                    after_storm = true;
                }
                End::Failed => {
                    failures += 1;
                    if !backoff(&shared, failures).await {
                        break;
                    }
                }
            }
            // A batch whose answer was lost: its submissions are approved or still pending;
            // the sweep at the end finds the pending ones.
            if let Some(b) = self.batch.take() {
                shared.metrics.error("approve_unanswered");
                for (_, _, mark) in b.ids {
                    mark.cancel();
                }
            }
        }
        if !self.swept {
            shared.swept.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn session(
        &mut self,
        shared: &Shared,
        ws: &mut Ws,
        early: Vec<ServerMsg>,
        storm: &mut watch::Receiver<u64>,
    ) -> End {
        for m in early {
            self.handle(shared, m);
        }
        let interval = shared.params.approve_interval;
        let jitter = rand::rng().random_range(0..interval.as_millis().max(1) as u64);
        let mut tick = tokio::time::interval_at(
            (Instant::now() + Duration::from_millis(jitter)).into(),
            interval,
        );
        loop {
            let sweep = !self.swept && shared.sweep.is_cancelled() && self.batch.is_none();
            tokio::select! {
                biased;
                () = shared.stop.cancelled() => return End::Stop,
                _ = storm.changed() => return End::Storm,
                frame = ws.next() => {
                    let msg = match frame {
                        None => { shared.metrics.error("teacher:eof"); return End::Failed; }
                        Some(Err(_)) => { shared.metrics.error("teacher:read_failed"); return End::Failed; }
                        Some(Ok(m)) => m,
                    };
                    match decode(msg) {
                        Ok(Some(m)) => self.handle(shared, m),
                        Ok(None) => {}
                        Err(code) => { shared.metrics.error(format!("teacher:{code}")); return End::Failed; }
                    }
                }
                () = std::future::ready(()), if sweep => {
                    self.sweep(shared).await;
                    if self.pending.is_empty() {
                        self.swept = true;
                        shared.swept.fetch_add(1, Ordering::Relaxed);
                    } else if self.approve(shared, ws).await.is_err() {
                        return End::Failed;
                    }
                }
                _ = tick.tick() => {
                    if let Some(b) = &self.batch
                        && b.sent.elapsed() > shared.params.request_timeout
                    {
                        shared.metrics.error("approve_timeout");
                        let b = self.batch.take().expect("checked");
                        for (id, p, mark) in b.ids {
                            mark.cancel();
                            self.pending.insert(id, p);
                        }
                    }
                    if self.batch.is_none() && !self.pending.is_empty()
                        && self.approve(shared, ws).await.is_err()
                    {
                        return End::Failed;
                    }
                }
            }
        }
    }

    /// Reads the moderation queue over HTTP: anything pending the pushes did not bring.
    async fn sweep(&mut self, shared: &Shared) {
        let mut after: Option<Uuid> = None;
        loop {
            let path = match after {
                Some(a) => format!("/classes/{}/moderation?limit=200&after={a}", self.class),
                None => format!("/classes/{}/moderation?limit=200", self.class),
            };
            let page: schema::api::Page<Submission> =
                match self.target.api.get(&path, Some(&self.token)).await {
                    Ok(p) => p,
                    Err(_) => {
                        shared.metrics.error("sweep_failed");
                        return;
                    }
                };
            for s in page.items {
                if s.status == SubmissionStatus::Pending
                    && !self.pending.contains_key(&s.id)
                    && !self
                        .batch
                        .as_ref()
                        .is_some_and(|b| b.ids.iter().any(|(id, _, _)| *id == s.id))
                {
                    shared.moderation_missed.fetch_add(1, Ordering::Relaxed);
                    self.pending.insert(
                        s.id,
                        Pending {
                            student: s.student_id,
                            points: s.points,
                        },
                    );
                }
            }
            match page.next_after {
                Some(a) => after = Some(a),
                None => return,
            }
        }
    }

    async fn approve(&mut self, shared: &Shared, ws: &mut Ws) -> Result<(), ()> {
        let now = Instant::now();
        let mut ids = Vec::new();
        while ids.len() < 500 {
            let Some((id, p)) = self.pending.pop_first() else {
                break;
            };
            let mark = shared.world.ledger.append(
                &[p.student.0, self.class.0, self.school_id.0],
                p.points,
                now,
            );
            ids.push((id, p, mark));
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.batches += 1;
        let req = format!("ap{}", self.batches);
        let msg = ClientMsg::Approve {
            id: req.clone(),
            submission_ids: ids.iter().map(|(id, _, _)| *id).collect(),
        };
        Metrics::add(&shared.metrics.approve_batches, 1);
        self.batch = Some(Batch {
            req,
            ids,
            sent: now,
        });
        send(ws, &msg)
            .await
            .map_err(|code| shared.metrics.error(code))
    }

    fn handle(&mut self, shared: &Shared, msg: ServerMsg) {
        match msg {
            ServerMsg::Ok { id, result } => {
                let Some(b) = self.batch.take_if(|b| b.req == id) else {
                    return;
                };
                shared
                    .metrics
                    .approve_latency
                    .record(self.idx, b.sent.elapsed());
                let Some(res) = result.and_then(|r| BulkResult::deserialize(r).ok()) else {
                    shared.metrics.error("undecodable_approve");
                    return;
                };
                Metrics::add(&shared.metrics.verifications, res.done.len() as u64);
                self.decided.extend(res.done.iter().map(|s| s.id));
                lock(&shared.verified).extend(res.done.iter().map(|s| s.id));
                for r in &res.refused {
                    shared.metrics.error(format!("approve:{}", r.code));
                    if let Some((_, _, mark)) = b.ids.iter().find(|(id, _, _)| id.0 == r.id) {
                        mark.cancel();
                    }
                }
            }
            ServerMsg::Error { id, code, .. } => {
                shared.metrics.error(format!("teacher:{code}"));
                if let Some(b) = self.batch.take_if(|b| Some(&b.req) == id.as_ref()) {
                    for (id, p, mark) in b.ids {
                        mark.cancel();
                        self.pending.insert(id, p);
                    }
                }
            }
            ServerMsg::Snapshot { topic, seq, data } => {
                if topic.starts_with("moderation:") {
                    if let Ok(page) = schema::api::Page::<Submission>::deserialize(&data) {
                        for s in page.items {
                            self.learn(&s);
                        }
                    }
                    Metrics::add(&shared.metrics.snapshots, 1);
                } else {
                    self.follow.frame(shared, &topic, seq, &data, true);
                }
            }
            ServerMsg::Event { topic, seq, data } => {
                if topic.starts_with("moderation:") {
                    Metrics::add(&shared.metrics.pushes, 1);
                    if let Some(s) = data
                        .get("submission")
                        .and_then(|s| Submission::deserialize(s).ok())
                    {
                        self.learn(&s);
                    }
                } else {
                    self.follow.frame(shared, &topic, seq, &data, false);
                }
            }
            ServerMsg::Hello { .. } => {}
        }
    }

    fn learn(&mut self, s: &Submission) {
        let in_batch = self
            .batch
            .as_ref()
            .is_some_and(|b| b.ids.iter().any(|(id, _, _)| *id == s.id));
        if s.status == SubmissionStatus::Pending && !in_batch && !self.decided.contains(&s.id) {
            self.pending.insert(
                s.id,
                Pending {
                    student: s.student_id,
                    points: s.points,
                },
            );
        } else if s.status != SubmissionStatus::Pending {
            self.pending.remove(&s.id);
        }
    }
}

/// A station's display: follows `station:<id>` and keeps the code it shows where the students
/// of its school read it.
pub struct StationSim {
    /// Client index.
    pub idx: usize,
    /// School index in `world.schools`.
    pub school: usize,
    /// Station index in the school.
    pub station: usize,
    /// Where to connect.
    pub target: Target,
    /// Source address.
    pub source: IpAddr,
    /// When to connect first.
    pub connect_at: Instant,
}

impl StationSim {
    /// Runs the display until the run stops.
    pub async fn run(self, shared: Arc<Shared>) {
        tokio::time::sleep_until(self.connect_at.into()).await;
        let station = &shared.world.schools[self.school].stations[self.station];
        let topics = vec![format!("station:{}", station.id)];
        let mut storm = shared.storm.clone();
        storm.borrow_and_update();
        let mut failures = 0u32;
        while !shared.stop.is_cancelled() {
            let connected = {
                let _permit = shared.handshakes.acquire().await;
                connect(
                    &self.target,
                    self.source,
                    &station.display_token,
                    &topics,
                    shared.params.request_timeout,
                    None,
                )
                .await
            };
            let (mut ws, early) = match connected {
                Ok(c) => c,
                Err(code) => {
                    shared.metrics.error(format!("station:{code}"));
                    failures += 1;
                    if !backoff(&shared, failures).await {
                        break;
                    }
                    continue;
                }
            };
            failures = 0;
            shared.metrics.connection_up();
            for m in early {
                self.show(&shared, m);
            }
            let end = loop {
                tokio::select! {
                    biased;
                    () = shared.stop.cancelled() => break End::Stop,
                    _ = storm.changed() => break End::Storm,
                    frame = ws.next() => match frame.map(|f| f.map_err(|_| "read_failed".to_owned()).and_then(decode)) {
                        Some(Ok(Some(m))) => self.show(&shared, m),
                        Some(Ok(None)) => {}
                        Some(Err(code)) => {
                            shared.metrics.error(format!("station:{code}"));
                            break End::Failed;
                        }
                        None => {
                            shared.metrics.error("station:eof");
                            break End::Failed;
                        }
                    },
                }
            };
            shared.metrics.connection_down();
            match end {
                End::Stop => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    break;
                }
                End::Storm => {
                    storm.borrow_and_update();
                }
                End::Failed => {
                    failures += 1;
                    if !backoff(&shared, failures).await {
                        break;
                    }
                }
            }
        }
    }

    fn show(&self, shared: &Shared, msg: ServerMsg) {
        let data = match msg {
            ServerMsg::Snapshot { data, .. } => {
                Metrics::add(&shared.metrics.snapshots, 1);
                data
            }
            ServerMsg::Event { data, .. } => {
                Metrics::add(&shared.metrics.pushes, 1);
                data
            }
            _ => return,
        };
        match schema::league::StationCode::deserialize(&data) {
            Ok(c) => {
                let station = &shared.world.schools[self.school].stations[self.station];
                *lock(&station.code) = Some((c.window_index, c.code));
            }
            Err(_) => shared.metrics.error("undecodable_station_code"),
        }
    }
}
