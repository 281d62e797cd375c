//! Live fan-out: topics, their subscribers on this node, and the bus that carries changes
//! between server nodes.
//!
//! A change made on any node is published on the [`LiveBus`] (Redis pub/sub in production); every
//! node receives it and hands it to its own [`Hub`], which pushes it to the sockets subscribed on
//! that node. Board changes are coalesced: a board that changed is marked dirty, and a ticker
//! (every `live.coalesce_ms`) reads each dirty board once, serialises the push once, and shares the
//! bytes with every subscriber. Every message on a topic carries the topic's sequence number on
//! this node, so a client sees a gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use schema::SeasonId;
use schema::ws::ServerMsg;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::state::RedisPool;

/// What travels between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveMessage {
    /// Boards whose content changed (coalesced before they are pushed).
    BoardsChanged {
        /// The season.
        season: SeasonId,
        /// The boards' names, e.g. `class:<id>`.
        boards: Vec<String>,
    },
    /// An event for a topic, pushed as it is (moderation queue items, challenge results).
    Topic {
        /// The topic.
        topic: String,
        /// The event's data.
        data: serde_json::Value,
    },
}

/// Carries [`LiveMessage`]s to every node, this one included.
#[async_trait]
pub trait LiveBus: Send + Sync {
    /// Publishes to every node.
    async fn publish(&self, msg: &LiveMessage) -> Result<(), ApiError>;
}

/// One frame for sockets: its sequence number and the serialised `ServerMsg`, shared by all.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The topic's sequence number.
    pub seq: u64,
    /// The JSON text, serialised once.
    pub text: Arc<str>,
}

/// A topic on this node.
pub struct Topic {
    /// The topic's name.
    pub name: String,
    tx: broadcast::Sender<Frame>,
    state: std::sync::Mutex<TopicState>,
    dirty: AtomicBool,
}

#[derive(Default)]
struct TopicState {
    seq: u64,
    /// The latest data pushed (boards: the latest view), reused as the next snapshot.
    last: Option<serde_json::Value>,
}

impl Topic {
    /// Receives the topic's frames from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Frame> {
        self.tx.subscribe()
    }

    /// The current sequence number and the last data pushed.
    pub fn current(&self) -> (u64, Option<serde_json::Value>) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.seq, state.last.clone())
    }

    /// Pushes an event: next sequence number, serialised once, shared by every subscriber.
    /// `keep` stores the data as the topic's latest state (for the next snapshot).
    pub fn push(&self, data: serde_json::Value, keep: bool) {
        let frame = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.seq += 1;
            let msg = ServerMsg::Event {
                topic: self.name.clone(),
                seq: state.seq,
                data,
            };
            let text: Arc<str> = match serde_json::to_string(&msg) {
                Ok(t) => t.into(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot serialise a topic event");
                    return;
                }
            };
            if keep && let ServerMsg::Event { data, .. } = msg {
                state.last = Some(data);
            }
            Frame {
                seq: state.seq,
                text,
            }
        };
        // No receiver is not an error: the last subscriber may just have left.
        let _ = self.tx.send(frame);
    }

    /// Forgets the latest state (its season closed), so the next snapshot is read afresh.
    pub fn forget(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.last = None;
    }

    /// Stores `data` (computed while the topic stood at `seq`) as the latest state, unless a push
    /// has happened since: then the pushed data is newer and is kept. Returns whether it stored.
    pub fn remember_at(&self, seq: u64, data: serde_json::Value) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.seq != seq {
            return false;
        }
        state.last = Some(data);
        true
    }

    /// Number of sockets subscribed on this node.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// This node's topics.
pub struct Hub {
    topics: DashMap<String, Arc<Topic>>,
    capacity: usize,
}

impl Hub {
    /// A hub whose topics buffer `capacity` frames per subscriber before it counts as too slow.
    pub fn new(capacity: usize) -> Self {
        Self {
            topics: DashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The topic, created on first use.
    pub fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = self.topics.get(name) {
            return t.clone();
        }
        self.topics
            .entry(name.to_owned())
            .or_insert_with(|| {
                let (tx, _) = broadcast::channel(self.capacity);
                Arc::new(Topic {
                    name: name.to_owned(),
                    tx,
                    state: std::sync::Mutex::new(TopicState::default()),
                    dirty: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// The topic if some socket on this node follows it.
    pub fn existing(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.get(name).map(|t| t.clone())
    }

    /// Hands a message from the bus to the local subscribers.
    pub fn deliver(&self, msg: LiveMessage) {
        match msg {
            LiveMessage::BoardsChanged { boards, .. } => {
                for board in boards {
                    if let Some(t) = self.existing(&format!("board:{board}")) {
                        t.dirty.store(true, Ordering::Release);
                    }
                }
            }
            LiveMessage::Topic { topic, data } => {
                if let Some(t) = self.existing(&topic) {
                    t.push(data, false);
                }
            }
        }
    }

    /// The topics whose name starts with `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Vec<Arc<Topic>> {
        self.topics
            .iter()
            .filter(|t| t.key().starts_with(prefix))
            .map(|t| t.clone())
            .collect()
    }

    /// Takes the dirty board topics (clearing the flag).
    pub fn take_dirty(&self) -> Vec<Arc<Topic>> {
        self.topics
            .iter()
            .filter(|t| t.dirty.swap(false, Ordering::AcqRel))
            .map(|t| t.clone())
            .collect()
    }

    /// Forgets topics nobody follows any more.
    pub fn sweep(&self) {
        self.topics.retain(|_, t| t.subscribers() > 0);
    }

    /// Topics with subscribers on this node.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// Whether no topic is followed.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

/// The bus over Redis pub/sub: one channel per deployment (`{prefix}:live`), published through
/// the pool, received on a dedicated connection that reconnects by itself.
pub struct RedisBus {
    pool: RedisPool,
    channel: String,
}

impl RedisBus {
    /// Publishes through `pool`; call [`RedisBus::listen`] to receive.
    pub fn new(pool: RedisPool, prefix: &str) -> Self {
        Self {
            pool,
            channel: format!("{prefix}:live"),
        }
    }

    /// Receives every message on a dedicated connection and delivers it to `hub`, forever,
    /// reconnecting with a backoff when Redis goes away. `ready` is told once subscribed.
    pub fn listen(
        &self,
        url: String,
        hub: Arc<Hub>,
        ready: tokio::sync::oneshot::Sender<()>,
    ) -> tokio::task::JoinHandle<()> {
        use futures_util::StreamExt as _;
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready);
            let mut backoff = Duration::from_millis(100);
            loop {
                let subscribed = async {
                    let client = redis::Client::open(url.as_str())?;
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                match subscribed.await {
                    Ok(pubsub) => {
                        backoff = Duration::from_millis(100);
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                        tracing::info!("live bus subscribed");
                        let mut stream = pubsub.into_on_message();
                        while let Some(msg) = stream.next().await {
                            let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
                            match serde_json::from_slice::<LiveMessage>(&payload) {
                                Ok(m) => hub.deliver(m),
                                Err(e) => tracing::warn!(error = %e, "unreadable live message"),
                            }
                        }
                        tracing::warn!("live bus connection lost; reconnecting");
                    }
                    Err(e) => tracing::warn!(error = %e, "live bus cannot subscribe; retrying"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })
    }
}

#[async_trait]
impl LiveBus for RedisBus {
    async fn publish(&self, msg: &LiveMessage) -> Result<(), ApiError> {
        let payload = serde_json::to_string(msg).map_err(|e| ApiError::Internal(e.into()))?;
        let mut conn = crate::league::boards::checkout(&self.pool).await?;
        let _: i64 = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut *conn)
            .await?;
        Ok(())
    }
}
