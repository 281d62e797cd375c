//! The TCP listener: accepts connections, and says clearly when the process runs out of file
//! descriptors instead of failing silently.
//!
//! A process here may hold at most its `RLIMIT_NOFILE` open files (20,000 on our machines, not
//! raisable). When `accept` fails with `EMFILE`/`ENFILE`, the new connection waits in the kernel's
//! backlog; the server logs an error (at most every 10 s), counts it in the
//! `carbon_league_accept_fd_exhausted_total` metric, keeps serving every connection it has, and
//! retries shortly — a connection that closes frees a descriptor for the next one.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// `EMFILE`: the process's open-file limit.
const EMFILE: i32 = 24;
/// `ENFILE`: the system's open-file limit.
const ENFILE: i32 = 23;

/// A [`TcpListener`] that reports descriptor exhaustion.
pub struct GuardedListener {
    inner: TcpListener,
    last_report: Option<Instant>,
    exhausted: bool,
}

impl GuardedListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener) -> Self {
        Self {
            inner,
            last_report: None,
            exhausted: false,
        }
    }
}

/// The client's address, as `ConnectInfo` for handlers.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.exhausted {
                        self.exhausted = false;
                        tracing::warn!("file descriptors available again; accepting connections");
                    }
                    // Small frames matter more than throughput for live boards.
                    let _ = stream.set_nodelay(true);
                    return (stream, addr);
                }
                Err(e) => self.on_error(e).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl GuardedListener {
    async fn on_error(&mut self, e: io::Error) {
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        ) {
            return;
        }
        let out_of_fds = matches!(e.raw_os_error(), Some(EMFILE | ENFILE));
        if out_of_fds {
            metrics::counter!("carbon_league_accept_fd_exhausted_total").increment(1);
            self.exhausted = true;
            let due = self
                .last_report
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
            if due {
                self.last_report = Some(Instant::now());
                tracing::error!(
                    error = %e,
                    open_files.limit = open_files_limit().unwrap_or(0),
                    "out of file descriptors: new connections wait in the backlog; open connections are still served"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            metrics::counter!("carbon_league_accept_errors_total").increment(1);
            tracing::error!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The process's soft limit of open files, from `/proc/self/limits`.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
