//! A thin HTTP client for `/api/v1`: JSON in and out, bearer tokens, and patient retries on
//! 429 and 503 (setting up thousands of accounts hits the server's rate limits on purpose).

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The API of one server.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// A refused request: its status and the error envelope's code.
#[derive(Debug)]
pub struct Refused {
    /// HTTP status.
    pub status: u16,
    /// The envelope's `error.code`, or the body.
    pub code: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.code)
    }
}

impl std::error::Error for Refused {}

const ATTEMPTS: u32 = 8;

impl Api {
    /// `base` is the server's URL, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(64)
                .build()?,
            base: format!("{}/api/v1", base.trim_end_matches('/')),
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// POST a JSON body; retries 429/503 and transport errors with a backoff.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// GET.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<T> {
        self.send(reqwest::Method::GET, path, token, None::<&()>)
            .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let mut req = self.http.request(method.clone(), &url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let last = attempt == ATTEMPTS;
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        return resp
                            .json::<T>()
                            .await
                            .with_context(|| format!("{method} {path}: unreadable answer"));
                    }
                    let retry = status.as_u16() == 429 || status.as_u16() == 503;
                    let text = resp.text().await.unwrap_or_default();
                    if !retry || last {
                        let code = serde_json::from_str::<serde_json::Value>(&text)
                            .ok()
                            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
                            .unwrap_or(text);
                        return Err(anyhow::Error::new(Refused {
                            status: status.as_u16(),
                            code,
                        })
                        .context(format!("{method} {path}")));
                    }
                }
                Err(e) if last => return Err(e).context(format!("{method} {path}")),
                Err(_) => {}
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        bail!("{method} {path}: no answer after {ATTEMPTS} attempts")
    }
}
