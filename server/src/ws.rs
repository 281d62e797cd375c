//! The WebSocket endpoint `/api/v1/ws` (the protocol is in `docs/protocol.md`, its messages in
//! [`schema::ws`]).
//!
//! One task per connection runs one `select!` loop over the socket's reads, the connection's
//! bounded send queue, the ping timer, the pong deadline, the auth deadline and the server's
//! shutdown token. Replies to requests are written by the loop itself, in order. Topic events
//! reach the loop through the send queue: each subscription has a small forwarder task that
//! moves frames from the topic's broadcast channel into the queue with `try_send`, so a client
//! that reads too slowly (its queue full, or its broadcast receiver lagging) is closed with 4003
//! and never slows the topic's other subscribers. Frames are serialised once per topic event
//! and the bytes are shared by every subscriber.
//!
//! Everything is bounded: the connection count (`ws.max_connections`, 4005 above it), the frame
//! size the transport accepts (`ws.transport_max_bytes`, 1009 above it) and the one the
//! application reads (`ws.max_frame_bytes`, an error reply above it), tungstenite's buffers, the
//! send queue, the time to authenticate (4001), the time to answer a ping (4006), the number of
//! bad frames (4004), the subscriptions per connection ([`MAX_SUBSCRIPTIONS`]) and the time one
//! write may take (`ws.pong_timeout_ms`; a client that does not take our bytes is dropped).

mod requests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use futures_util::SinkExt as _;
use schema::ws::{CLIENT_TYPES, ClientMsg, PROTOCOL_VERSION, ServerMsg, close};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::auth::{Actor, authenticate};
use crate::error::{ApiError, error_response};
use crate::league::access::{self, TopicKind};
use crate::league::live::{Frame, Hub, Topic};
use crate::state::AppState;

/// Most topics one connection follows at once.
pub const MAX_SUBSCRIPTIONS: usize = 32;
/// Longest token looked up (ours are 43 characters); longer ones are refused unread.
const MAX_TOKEN_CHARS: usize = 128;
/// Longest client `id` echoed in an error about an unreadable frame.
const MAX_ECHOED_ID_CHARS: usize = 128;
/// How long a closing connection waits to write its close frame, then for the client's reply.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Queued frames written per flush.
const WRITE_BATCH: usize = 32;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// `GET /api/v1/ws`: upgrades to a WebSocket with explicit limits, then serves it.
///
/// Over `ws.max_connections` the upgrade is still accepted and the socket closed at once with
/// 4005: a browser cannot read the status of a refused upgrade, but it can read a close code.
pub async fn ws_handler(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => {
            return error_response(
                rejection.status(),
                "websocket_required",
                "this address speaks WebSocket only: connect with a WebSocket client".into(),
                None,
            );
        }
    };
    let limits = &state.settings.ws;
    let slot = Slot::take(&state.connections, limits.max_connections);
    upgrade
        .max_frame_size(limits.transport_max_bytes)
        .max_message_size(limits.transport_max_bytes)
        .read_buffer_size(limits.read_buffer_bytes)
        .write_buffer_size(limits.write_buffer_bytes)
        // Room for the write buffer plus one largest message; must exceed the write buffer.
        .max_write_buffer_size(
            limits
                .write_buffer_bytes
                .saturating_add(limits.transport_max_bytes),
        )
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| {
            let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
            serve(socket, state, slot).instrument(tracing::info_span!("ws", conn.id = id))
        })
        .into_response()
}

/// A place among `ws.max_connections`, given back when dropped (also when the upgrade fails).
struct Slot(Option<Arc<AtomicUsize>>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Self {
        let taken = count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        Self(taken.then(|| count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(count) = &self.0 {
            count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// How a connection ends.
#[derive(Debug)]
enum End {
    /// Send a close frame with this code and reason, then wait briefly for the client's reply.
    Close(u16, &'static str),
    /// Send a close frame and drop the socket at once: the stream cannot be read any further
    /// (a frame over the transport limit is still arriving).
    CloseNow(u16, &'static str),
    /// Nothing more can be written: the client left, or the socket failed.
    Gone(&'static str),
}

async fn serve(mut socket: WebSocket, state: AppState, slot: Slot) {
    if slot.0.is_none() {
        tracing::warn!(
            ws.max_connections = state.settings.ws.max_connections,
            "websocket refused: the server is full"
        );
        finish(
            &mut socket,
            End::Close(close::SERVER_FULL, "the server is full; retry later"),
        )
        .await;
        return;
    }
    let opened = Instant::now();
    tracing::info!("websocket connected");
    let (queue_tx, queue_rx) = mpsc::channel(state.settings.ws.send_queue_len.max(1));
    let mut conn = Connection {
        write_timeout: Duration::from_millis(state.settings.ws.pong_timeout_ms.max(1)),
        state,
        actor: None,
        subs: HashMap::new(),
        next_gen: 0,
        queue: queue_tx,
        slow: CancellationToken::new(),
        bad_frames: 0,
    };
    let end = conn.run(&mut socket, queue_rx).await;
    let subscriptions = conn.subs.len();
    drop(conn); // stops the forwarders
    let duration_ms = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX);
    match end {
        End::Close(code, reason) | End::CloseNow(code, reason) => tracing::info!(
            ws.close_code = code,
            ws.close_reason = reason,
            ws.duration_ms = duration_ms,
            ws.subscriptions = subscriptions,
            "websocket closed by the server"
        ),
        End::Gone(reason) => tracing::info!(
            ws.reason = reason,
            ws.duration_ms = duration_ms,
            ws.subscriptions = subscriptions,
            "websocket ended"
        ),
    }
    finish(&mut socket, end).await;
}

/// Sends the close frame, if any, and waits (briefly) for the client's reply, so that frames it
/// sent meanwhile are read rather than reset away with the connection.
async fn finish(socket: &mut WebSocket, end: End) {
    let (code, reason, linger) = match end {
        End::Close(code, reason) => (code, reason, true),
        End::CloseNow(code, reason) => (code, reason, false),
        End::Gone(_) => return,
    };
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let sent = tokio::time::timeout(CLOSE_WAIT, socket.send(Message::Close(Some(frame)))).await;
    if linger && matches!(sent, Ok(Ok(()))) {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(_)) = socket.recv().await {}
        })
        .await;
    }
}

/// A frame the server could not take, and the error to answer it with.
#[derive(Debug)]
struct BadFrame {
    id: Option<String>,
    code: &'static str,
    message: String,
}

impl BadFrame {
    fn into_msg(self) -> ServerMsg {
        ServerMsg::Error {
            id: self.id,
            code: self.code.into(),
            message: self.message,
            field: None,
        }
    }
}

/// Reads one text frame: JSON, an object with a known string `type`, the fields that type needs.
fn parse_frame(text: &str) -> Result<ClientMsg, BadFrame> {
    let value: Value = serde_json::from_str(text).map_err(|e| BadFrame {
        id: None,
        code: "malformed_message",
        message: format!("the frame is not JSON: {e}"),
    })?;
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| id.chars().count() <= MAX_ECHOED_ID_CHARS)
        .map(str::to_owned);
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(BadFrame {
            id,
            code: "malformed_message",
            message: "a frame is a JSON object with a string `type`".into(),
        });
    };
    if !CLIENT_TYPES.contains(&kind) {
        return Err(BadFrame {
            id,
            code: "unknown_type",
            message: format!("unknown type; the types are {}", CLIENT_TYPES.join(", ")),
        });
    }
    let kind = kind.to_owned();
    serde_json::from_value(value).map_err(|e| BadFrame {
        id,
        code: "malformed_message",
        message: format!("a `{kind}` frame: {e}"),
    })
}

/// The error reply for a failed request. Failures of ours are logged here, once, as HTTP logs
/// them in `error.rs`; the client sees only the code and the sentence.
fn error_reply(id: Option<String>, err: &ApiError) -> ServerMsg {
    match err {
        ApiError::Internal(e) => tracing::error!(error = ?e, "websocket request failed"),
        ApiError::DatabaseUnavailable(e) => tracing::warn!(error = %e, "database unavailable"),
        ApiError::RedisUnavailable(e) => tracing::warn!(error = %e, "redis unavailable"),
        _ => {}
    }
    let field = match err {
        ApiError::Validation { field, .. } => Some(field.clone()),
        _ => None,
    };
    ServerMsg::Error {
        id,
        code: err.code().into(),
        message: err.to_string(),
        field,
    }
}

/// Why reading failed: a frame over the transport limit is answered with 1009.
fn read_failed(err: axum::Error) -> End {
    let err = err.into_inner();
    match err.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => End::CloseNow(
            close::MESSAGE_TOO_BIG,
            "the frame exceeds the transport limit",
        ),
        Some(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
            End::Gone("the connection closed")
        }
        Some(tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_)) => {
            End::Gone("the client broke the WebSocket protocol")
        }
        _ => End::Gone("reading failed"),
    }
}

/// One subscription: its generation (to drop frames queued by an earlier subscription of the
/// same topic) and its forwarder task.
struct Subscription {
    generation: u64,
    forwarder: JoinHandle<()>,
}

/// A topic frame waiting in the send queue.
#[derive(Debug)]
struct Queued {
    generation: u64,
    text: Arc<str>,
}

/// One connection's state, owned by its task.
struct Connection {
    state: AppState,
    /// Set by a successful `auth`.
    actor: Option<Actor>,
    /// Followed topics by canonical name.
    subs: HashMap<String, Subscription>,
    next_gen: u64,
    /// The send queue, fed by the forwarders.
    queue: mpsc::Sender<Queued>,
    /// Cancelled by a forwarder that finds the client too slow.
    slow: CancellationToken,
    bad_frames: u32,
    /// The longest one write (or one batch of writes) may take.
    write_timeout: Duration,
}

impl Drop for Connection {
    fn drop(&mut self) {
        for sub in self.subs.values() {
            sub.forwarder.abort();
        }
    }
}

impl Connection {
    /// The connection's loop; returns how it ends.
    async fn run(&mut self, socket: &mut WebSocket, mut queue: mpsc::Receiver<Queued>) -> End {
        let limits = self.state.settings.ws.clone();
        let hello = ServerMsg::Hello {
            protocol: PROTOCOL_VERSION,
            auth_deadline_ms: limits.auth_deadline_ms,
            max_frame_bytes: limits.max_frame_bytes,
        };
        if let Err(end) = self.send(socket, &hello).await {
            return end;
        }
        let auth_deadline = tokio::time::sleep(Duration::from_millis(limits.auth_deadline_ms));
        tokio::pin!(auth_deadline);
        let ping_every = Duration::from_millis(limits.ping_interval_ms.max(1));
        let pong_within = Duration::from_millis(limits.pong_timeout_ms.max(1));
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let pong_deadline = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(pong_deadline);
        let mut awaiting_pong = false;
        let shutdown = self.state.shutdown.clone();
        let slow = self.slow.clone();
        loop {
            let step = tokio::select! {
                () = shutdown.cancelled() => {
                    Err(End::Close(close::GOING_AWAY, "the server is shutting down"))
                }
                () = slow.cancelled() => {
                    Err(End::Close(close::TOO_SLOW, "too slow: the send queue filled up"))
                }
                () = &mut auth_deadline, if self.actor.is_none() => {
                    Err(End::Close(close::AUTH_TIMEOUT, "no auth frame in time"))
                }
                () = &mut pong_deadline, if awaiting_pong => {
                    Err(End::Close(close::PING_TIMEOUT, "no pong in time"))
                }
                _ = ping.tick() => {
                    if awaiting_pong {
                        Ok(())
                    } else {
                        awaiting_pong = true;
                        pong_deadline.as_mut().reset(Instant::now() + pong_within);
                        self.write(socket, Message::Ping(Bytes::new())).await
                    }
                }
                Some(first) = queue.recv() => self.write_queued(socket, first, &mut queue).await,
                frame = socket.recv() => match frame {
                    None => Err(End::Gone("the client closed the connection")),
                    Some(Err(e)) => Err(read_failed(e)),
                    Some(Ok(Message::Pong(_))) => {
                        awaiting_pong = false;
                        Ok(())
                    }
                    // tungstenite answers pings and close frames by itself.
                    Some(Ok(Message::Ping(_) | Message::Close(_))) => Ok(()),
                    Some(Ok(Message::Binary(_))) => self.on_frame(socket, Err(BadFrame {
                        id: None,
                        code: "binary_not_supported",
                        message: "send JSON text frames".into(),
                    })).await,
                    Some(Ok(Message::Text(text))) => {
                        let parsed = if text.len() > limits.max_frame_bytes {
                            Err(BadFrame {
                                id: None,
                                code: "message_too_large",
                                message: format!(
                                    "a frame is at most {} bytes",
                                    limits.max_frame_bytes
                                ),
                            })
                        } else {
                            parse_frame(text.as_str())
                        };
                        self.on_frame(socket, parsed).await
                    }
                },
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Serialises and writes one message.
    async fn send(&self, socket: &mut WebSocket, msg: &ServerMsg) -> Result<(), End> {
        let text = serde_json::to_string(msg).map_err(|e| {
            tracing::error!(error = %e, "cannot serialise a websocket message");
            End::Close(1011, "internal error")
        })?;
        self.write(socket, Message::Text(text.into())).await
    }

    /// Writes one message within the write timeout.
    async fn write(&self, socket: &mut WebSocket, msg: Message) -> Result<(), End> {
        match tokio::time::timeout(self.write_timeout, socket.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone("writing failed")),
            Err(_) => Err(End::Gone("too slow: a write timed out")),
        }
    }

    /// Writes queued topic frames, up to [`WRITE_BATCH`] with one flush.
    async fn write_queued(
        &self,
        socket: &mut WebSocket,
        first: Queued,
        queue: &mut mpsc::Receiver<Queued>,
    ) -> Result<(), End> {
        let batch = async {
            let mut next = Some(first);
            let mut written = 0;
            while let Some(item) = next.take() {
                if self.is_current(item.generation) {
                    socket.feed(Message::Text(shared_text(item.text))).await?;
                    written += 1;
                }
                if written < WRITE_BATCH {
                    next = queue.try_recv().ok();
                }
            }
            socket.flush().await
        };
        match tokio::time::timeout(self.write_timeout, batch).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone("writing failed")),
            Err(_) => Err(End::Gone("too slow: a write timed out")),
        }
    }

    fn is_current(&self, generation: u64) -> bool {
        self.subs.values().any(|s| s.generation == generation)
    }

    /// Handles one data frame, read or not.
    async fn on_frame(
        &mut self,
        socket: &mut WebSocket,
        parsed: Result<ClientMsg, BadFrame>,
    ) -> Result<(), End> {
        let Some(actor) = self.actor else {
            return self.authenticate(socket, parsed).await;
        };
        match parsed {
            Ok(msg) => self.dispatch(socket, actor, msg).await,
            Err(bad) => {
                self.bad_frames += 1;
                tracing::debug!(
                    ws.error = bad.code,
                    ws.bad_frames = self.bad_frames,
                    "bad frame"
                );
                if self.bad_frames > self.state.settings.ws.max_bad_frames {
                    return Err(End::Close(close::ABUSE, "too many bad frames"));
                }
                self.send(socket, &bad.into_msg()).await
            }
        }
    }

    /// The first frame: `auth` with a good token, or an error and 4002.
    async fn authenticate(
        &mut self,
        socket: &mut WebSocket,
        parsed: Result<ClientMsg, BadFrame>,
    ) -> Result<(), End> {
        let failed = End::Close(close::AUTH_FAILED, "authentication failed");
        let (id, token) = match parsed {
            Ok(ClientMsg::Auth { id, token }) => (id, token),
            Ok(other) => {
                let reply = ServerMsg::Error {
                    id: Some(other.id().to_owned()),
                    code: "unauthenticated".into(),
                    message: "the first frame must be auth {id, token}".into(),
                    field: None,
                };
                self.send(socket, &reply).await?;
                return Err(failed);
            }
            Err(bad) => {
                self.send(socket, &bad.into_msg()).await?;
                return Err(failed);
            }
        };
        let token = token.trim();
        let principal = if token.is_empty() || token.chars().count() > MAX_TOKEN_CHARS {
            Err(ApiError::Unauthorized(
                "invalid_token",
                "the token is unknown, expired or revoked",
            ))
        } else {
            authenticate(&self.state, token).await
        };
        let actor = match principal {
            Ok(p) => p.actor,
            Err(e) => {
                tracing::info!(ws.error = e.code(), "websocket authentication refused");
                self.send(socket, &error_reply(Some(id), &e)).await?;
                return Err(match e {
                    ApiError::Unauthorized(..) => failed,
                    _ => End::Close(close::TRY_AGAIN_LATER, "cannot check the token now"),
                });
            }
        };
        let me = match crate::routes::auth::me_of(&self.state, actor).await {
            Ok(me) => serde_json::to_value(me).ok(),
            Err(e) => {
                self.send(socket, &error_reply(Some(id), &e)).await?;
                return Err(End::Close(
                    close::TRY_AGAIN_LATER,
                    "cannot load the account now",
                ));
            }
        };
        self.actor = Some(actor);
        tracing::info!(
            actor.role = actor.role().as_str(),
            "websocket authenticated"
        );
        self.send(socket, &ServerMsg::Ok { id, result: me }).await
    }

    /// A request from an authenticated client.
    async fn dispatch(
        &mut self,
        socket: &mut WebSocket,
        actor: Actor,
        msg: ClientMsg,
    ) -> Result<(), End> {
        match msg {
            ClientMsg::Auth { id, .. } => {
                let e = ApiError::Conflict(
                    "already_authenticated",
                    "this connection is already authenticated".into(),
                );
                self.send(socket, &error_reply(Some(id), &e)).await
            }
            ClientMsg::Ping { id } => self.send(socket, &ServerMsg::Ok { id, result: None }).await,
            ClientMsg::Subscribe { id, topic } => self.subscribe(socket, actor, id, &topic).await,
            ClientMsg::Unsubscribe { id, topic } => self.unsubscribe(socket, id, &topic).await,
            msg => {
                let reply = match requests::handle(&self.state, &actor, &msg).await {
                    Ok(result) => ServerMsg::Ok {
                        id: msg.id().to_owned(),
                        result: Some(result),
                    },
                    Err(e) => error_reply(Some(msg.id().to_owned()), &e),
                };
                self.send(socket, &reply).await
            }
        }
    }

    /// Follows a topic: subscribes to it first, then takes the snapshot, so no change falls
    /// between the two; sends `ok`, then `snapshot`, then the events numbered after the snapshot.
    /// Subscribing again to a followed topic sends a fresh snapshot (how a client recovers from
    /// a gap).
    async fn subscribe(
        &mut self,
        socket: &mut WebSocket,
        actor: Actor,
        id: String,
        topic: &str,
    ) -> Result<(), End> {
        let kind = match topic.parse::<TopicKind>() {
            Ok(kind) => kind,
            Err(e) => return self.send(socket, &error_reply(Some(id), &e)).await,
        };
        let name = kind.to_string();
        if !self.subs.contains_key(&name) && self.subs.len() >= MAX_SUBSCRIPTIONS {
            let e = ApiError::Refused(
                "too_many_subscriptions",
                format!("a connection follows at most {MAX_SUBSCRIPTIONS} topics"),
            );
            return self.send(socket, &error_reply(Some(id), &e)).await;
        }
        if let Err(e) = access::authorize(&self.state, &actor, kind).await {
            return self.send(socket, &error_reply(Some(id), &e)).await;
        }
        let (topic, receiver) = follow(&self.state.league.hub, &name);
        // The snapshot is numbered with the sequence read *before* it is taken: any event after
        // that number is forwarded, even if the snapshot already shows it, so nothing is missed.
        let (seq, last) = topic.current();
        let data = match (kind, last) {
            // Boards: the last push is the snapshot, shared by every new subscriber.
            (TopicKind::Board(_), Some(data)) => data,
            _ => match access::snapshot(&self.state, &actor, kind).await {
                Ok(data) => {
                    if matches!(kind, TopicKind::Board(_)) {
                        topic.remember_at(seq, data.clone());
                    }
                    data
                }
                Err(e) => return self.send(socket, &error_reply(Some(id), &e)).await,
            },
        };
        if let Some(old) = self.subs.remove(&name) {
            old.forwarder.abort();
        }
        let ok = ServerMsg::Ok {
            id,
            result: Some(json!({ "topic": name, "seq": seq })),
        };
        self.send(socket, &ok).await?;
        let snapshot = ServerMsg::Snapshot {
            topic: name.clone(),
            seq,
            data,
        };
        self.send(socket, &snapshot).await?;
        self.next_gen += 1;
        let generation = self.next_gen;
        let forwarder = tokio::spawn(
            forward(
                receiver,
                seq,
                generation,
                self.queue.clone(),
                self.slow.clone(),
            )
            .in_current_span(),
        );
        tracing::debug!(ws.topic = %name, ws.seq = seq, "subscribed");
        self.subs.insert(
            name,
            Subscription {
                generation,
                forwarder,
            },
        );
        Ok(())
    }

    /// Stops following a topic (not following it is fine too).
    async fn unsubscribe(
        &mut self,
        socket: &mut WebSocket,
        id: String,
        topic: &str,
    ) -> Result<(), End> {
        let name = match topic.parse::<TopicKind>() {
            Ok(kind) => kind.to_string(),
            Err(e) => return self.send(socket, &error_reply(Some(id), &e)).await,
        };
        if let Some(old) = self.subs.remove(&name) {
            old.forwarder.abort();
        }
        let ok = ServerMsg::Ok {
            id,
            result: Some(json!({ "topic": name })),
        };
        self.send(socket, &ok).await
    }
}

/// Subscribes to the hub's topic `name`. The hub forgets topics nobody follows, and may do so
/// between `topic()` and `subscribe()`: the receiver would then belong to a topic nobody pushes
/// to. Once subscribed the topic cannot be forgotten, so check it is still the hub's and retry
/// if not.
fn follow(hub: &Hub, name: &str) -> (Arc<Topic>, broadcast::Receiver<Frame>) {
    loop {
        let topic = hub.topic(name);
        let receiver = topic.subscribe();
        if hub
            .existing(name)
            .is_some_and(|current| Arc::ptr_eq(&current, &topic))
        {
            return (topic, receiver);
        }
    }
}

/// Moves a topic's frames numbered after `after` into the connection's queue. A full queue or a
/// lagging receiver means the client reads too slowly: the connection is told (`slow`) and this
/// stops, so the topic never waits for anyone.
async fn forward(
    mut frames: broadcast::Receiver<Frame>,
    after: u64,
    generation: u64,
    queue: mpsc::Sender<Queued>,
    slow: CancellationToken,
) {
    loop {
        match frames.recv().await {
            // Buffered between subscribing and the snapshot, which already covers it.
            Ok(frame) if frame.seq <= after => {}
            Ok(frame) => match queue.try_send(Queued {
                generation,
                text: frame.text,
            }) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::info!("websocket too slow: its send queue is full");
                    slow.cancel();
                    return;
                }
                Err(TrySendError::Closed(_)) => return,
            },
            Err(RecvError::Lagged(missed)) => {
                tracing::info!(ws.missed = missed, "websocket too slow: it lags its topic");
                slow.cancel();
                return;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// The shared serialisation of a topic frame as a WebSocket text payload, without copying it.
fn shared_text(text: Arc<str>) -> Utf8Bytes {
    struct Shared(Arc<str>);
    impl AsRef<[u8]> for Shared {
        fn as_ref(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
    Utf8Bytes::try_from(Bytes::from_owner(Shared(text.clone())))
        .unwrap_or_else(|_| Utf8Bytes::from(&*text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        Frame {
            seq,
            text: format!("{{\"seq\":{seq}}}").into(),
        }
    }

    #[test]
    fn a_frame_is_classified_as_malformed_unknown_or_read() {
        assert_eq!(parse_frame("{nope").unwrap_err().code, "malformed_message");
        assert_eq!(parse_frame("[1,2]").unwrap_err().code, "malformed_message");
        let unknown = parse_frame(r#"{"type":"shout","id":"a"}"#).unwrap_err();
        assert_eq!(unknown.code, "unknown_type");
        assert_eq!(unknown.id.as_deref(), Some("a"));
        let missing = parse_frame(r#"{"type":"subscribe","id":"b"}"#).unwrap_err();
        assert_eq!(missing.code, "malformed_message");
        assert_eq!(missing.id.as_deref(), Some("b"));
        assert!(missing.message.contains("topic"), "{}", missing.message);
        assert!(matches!(
            parse_frame(r#"{"type":"ping","id":"c"}"#),
            Ok(ClientMsg::Ping { id }) if id == "c"
        ));
    }

    #[test]
    fn the_connection_cap_gives_back_its_place_when_dropped() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = Slot::take(&count, 1);
        let b = Slot::take(&count, 1);
        assert!(a.0.is_some());
        assert!(b.0.is_none());
        assert_eq!(count.load(Ordering::Acquire), 1);
        drop(a);
        drop(b);
        assert_eq!(count.load(Ordering::Acquire), 0);
        assert!(Slot::take(&count, 1).0.is_some());
    }

    #[tokio::test]
    async fn a_forwarder_drops_frames_the_snapshot_covers() {
        let (tx, rx) = broadcast::channel(8);
        let (qtx, mut qrx) = mpsc::channel(8);
        for seq in 1..=4 {
            tx.send(frame(seq)).unwrap();
        }
        drop(tx);
        let slow = CancellationToken::new();
        forward(rx, 2, 7, qtx, slow.clone()).await;
        let got: Vec<u64> = std::iter::from_fn(|| qrx.try_recv().ok())
            .map(|q| {
                assert_eq!(q.generation, 7);
                serde_json::from_str::<Value>(&q.text).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(got, vec![3, 4]);
        assert!(!slow.is_cancelled());
    }

    #[tokio::test]
    async fn a_client_whose_queue_is_full_is_flagged_too_slow() {
        let (tx, rx) = broadcast::channel(8);
        let (qtx, _qrx) = mpsc::channel(1);
        tx.send(frame(1)).unwrap();
        tx.send(frame(2)).unwrap();
        let slow = CancellationToken::new();
        forward(rx, 0, 1, qtx, slow.clone()).await;
        assert!(slow.is_cancelled());
    }

    #[tokio::test]
    async fn a_client_lagging_its_topic_is_flagged_too_slow() {
        let (tx, rx) = broadcast::channel(2);
        let (qtx, _qrx) = mpsc::channel(64);
        for seq in 1..=5 {
            tx.send(frame(seq)).unwrap();
        }
        let slow = CancellationToken::new();
        forward(rx, 0, 1, qtx, slow.clone()).await;
        assert!(slow.is_cancelled());
    }

    #[test]
    fn a_shared_frame_keeps_its_text() {
        let text: Arc<str> = "{\"type\":\"event\"}".into();
        assert_eq!(shared_text(text.clone()).as_str(), &*text);
    }
}
