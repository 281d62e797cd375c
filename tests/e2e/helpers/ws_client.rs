//! A typed WebSocket test client for `/api/v1/ws`: connect, send [`ClientMsg`]s, receive
//! [`ServerMsg`]s with a timeout, wait for the reply to a request, and expect a close code.
//!
//! Every wait has a timeout ([`WAIT`] unless told), so a test fails instead of hanging.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use schema::ws::{ClientMsg, ServerMsg};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest a test waits for one message.
pub const WAIT: Duration = Duration::from_secs(5);

/// How a request ended.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `ok`, with its result.
    Ok(Option<Value>),
    /// `error`: its code and message.
    Error {
        /// The error code.
        code: String,
        /// The sentence.
        message: String,
    },
}

impl Reply {
    /// The result of an `ok`; panics on an error.
    #[track_caller]
    pub fn ok(self) -> Value {
        match self {
            Self::Ok(result) => result.unwrap_or(Value::Null),
            Self::Error { code, message } => panic!("expected ok, got error {code}: {message}"),
        }
    }

    /// The code of an `error`; panics on an ok.
    #[track_caller]
    pub fn error_code(self) -> String {
        match self {
            Self::Error { code, .. } => code,
            Self::Ok(result) => panic!("expected an error, got ok {result:?}"),
        }
    }
}

/// A connected client.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Messages read while waiting for a reply, handed out by [`WsClient::recv`] first.
    pending: VecDeque<ServerMsg>,
    next_id: u64,
}

impl WsClient {
    /// Connects to `ws://addr/api/v1/ws` (the `hello` is left unread).
    pub async fn connect(addr: SocketAddr) -> Self {
        // The client's own limits must not stop a test from sending oversized frames.
        let config = WebSocketConfig::default()
            .max_frame_size(None)
            .max_message_size(None);
        let (stream, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async_with_config(
                format!("ws://{addr}/api/v1/ws"),
                Some(config),
                false,
            ),
        )
        .await
        .expect("the websocket handshake completes in time")
        .expect("the websocket handshake succeeds");
        Self {
            stream,
            pending: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Connects, reads `hello`, authenticates with `token` and expects `ok`.
    pub async fn signed_in(addr: SocketAddr, token: &str) -> Self {
        let mut client = Self::connect(addr).await;
        let hello = client.recv().await;
        assert!(
            matches!(hello, ServerMsg::Hello { .. }),
            "hello first: {hello:?}"
        );
        let id = client.new_id();
        client
            .request(ClientMsg::Auth {
                id,
                token: token.to_owned(),
            })
            .await
            .ok();
        client
    }

    /// A fresh request id.
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("r{}", self.next_id)
    }

    /// Sends a message.
    pub async fn send(&mut self, msg: &ClientMsg) {
        let text = serde_json::to_string(msg).expect("serialise a client message");
        self.send_text(text).await.expect("send a frame");
    }

    /// Sends a raw text frame; the error tells whether the connection took it.
    pub async fn send_text(
        &mut self,
        text: impl Into<String>,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.stream.send(Message::text(text.into())).await
    }

    /// Sends any frame.
    pub async fn send_frame(
        &mut self,
        msg: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.stream.send(msg).await
    }

    /// The next raw frame within `wait`, whatever it is; `None` if none came.
    pub async fn next_frame(
        &mut self,
        wait: Duration,
    ) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
        tokio::time::timeout(wait, self.stream.next())
            .await
            .ok()
            .flatten()
    }

    /// The next server message within [`WAIT`]; panics on a close, an error or a timeout.
    pub async fn recv(&mut self) -> ServerMsg {
        match self.recv_within(WAIT).await {
            Some(msg) => msg,
            None => panic!("no message within {WAIT:?}"),
        }
    }

    /// The next server message within `wait`, or `None` if none came; panics on a close.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<ServerMsg> {
        if let Some(msg) = self.pending.pop_front() {
            return Some(msg);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Some(
                        serde_json::from_str(text.as_str())
                            .unwrap_or_else(|e| panic!("unreadable server message {text}: {e}")),
                    );
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// Sends a request and waits for its `ok` or `error`, keeping other messages for
    /// [`WsClient::recv`].
    pub async fn request(&mut self, msg: ClientMsg) -> Reply {
        let id = msg.id().to_owned();
        self.send(&msg).await;
        self.reply_to(&id).await
    }

    /// Waits for the reply to request `id`, keeping other messages for [`WsClient::recv`].
    pub async fn reply_to(&mut self, id: &str) -> Reply {
        let mut skipped = VecDeque::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        let reply = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = match self.pending.pop_front() {
                Some(m) => m,
                None => match self.recv_within(left).await {
                    Some(m) => m,
                    None => panic!("no reply to {id} within {WAIT:?}"),
                },
            };
            match msg {
                ServerMsg::Ok { id: got, result } if got == id => break Reply::Ok(result),
                ServerMsg::Error {
                    id: Some(got),
                    code,
                    message,
                    ..
                } if got == id => break Reply::Error { code, message },
                other => skipped.push_back(other),
            }
        };
        skipped.extend(self.pending.drain(..));
        self.pending = skipped;
        reply
    }

    /// Sends an application `ping` and expects `ok`.
    pub async fn ping(&mut self) {
        let id = self.new_id();
        self.request(ClientMsg::Ping { id }).await.ok();
    }

    /// Subscribes to `topic`, expects `ok` then `snapshot`; returns the snapshot's seq and data.
    pub async fn subscribe(&mut self, topic: &str) -> (u64, Value) {
        let id = self.new_id();
        self.request(ClientMsg::Subscribe {
            id,
            topic: topic.to_owned(),
        })
        .await
        .ok();
        match self.recv().await {
            ServerMsg::Snapshot {
                topic: got,
                seq,
                data,
            } => {
                assert_eq!(got, topic, "the snapshot's topic");
                (seq, data)
            }
            other => panic!("expected the snapshot of {topic}, got {other:?}"),
        }
    }

    /// The next `event` on `topic` within `wait`, skipping other messages; `None` if none came.
    pub async fn event_within(&mut self, topic: &str, wait: Duration) -> Option<(u64, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await? {
                ServerMsg::Event {
                    topic: got,
                    seq,
                    data,
                } if got == topic => return Some((seq, data)),
                _ => {}
            }
        }
    }

    /// Reads (skipping messages) until the server closes with `code`; panics on another code,
    /// on the connection ending without a close frame, or after [`WAIT`].
    pub async fn expect_close(&mut self, code: u16) {
        match self.close_code().await {
            Ok(Some(got)) => assert_eq!(got, code, "close code"),
            Ok(None) => panic!("closed without a code, expected {code}"),
            Err(e) => panic!("the connection failed before closing with {code}: {e}"),
        }
    }

    /// Reads (skipping messages) until the connection ends: `Ok(code)` on a close frame,
    /// `Err` when it failed without one (e.g. reset). Panics after [`WAIT`].
    pub async fn close_code(&mut self) -> Result<Option<u16>, String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("the server did not close within {WAIT:?}"));
            match frame {
                Some(Ok(Message::Close(frame))) => return Ok(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the stream ended".into()),
            }
        }
    }
}
