//! The ARM HTTP client: authentication, `If-Match`, bounded retries of
//! passing failures, long-running operations and per-operation metrics.
//!
//! Built on reqwest (rustls, ring) rather than `azure_core`'s pipeline: the
//! adapter must pass a 429's `Retry-After` up to the controller instead of
//! sleeping on it, retry 5xx and timeouts itself with a bound it chooses,
//! poll `Azure-AsyncOperation`, then `Location`, then `provisioningState`,
//! and never follow a URL off the Resource Manager endpoint with its token.
//! Doing that as pipeline policies would be more code than doing it here.

mod lro;
mod ops;
mod retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;
use crate::credential::{ArmCredential, ensure_crypto_provider};
use crate::metrics::Metrics;
use crate::models::ListPage;

pub use ops::{api, op};

/// Tunables of the ARM client. Defaults suit Azure; tests shrink the waits.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Resource Manager endpoint, e.g. `https://management.azure.com`.
    pub endpoint: String,
    /// Subscription of every path the typed calls build.
    pub subscription: String,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Limit on one HTTP request.
    pub request_timeout: Duration,
    /// Extra attempts after a 5xx, a timeout or a passing 409.
    pub max_retries: u32,
    /// First retry delay; doubles each attempt, with jitter.
    pub backoff_base: Duration,
    /// Longest retry delay (also caps a 5xx's `Retry-After`).
    pub backoff_max: Duration,
    /// Delay between polls when the server suggests none.
    pub poll_interval: Duration,
    /// Longest delay between polls, whatever the server suggests.
    pub max_poll_interval: Duration,
    /// Bounded wait for one long-running operation.
    pub operation_timeout: Duration,
}

impl ClientSettings {
    /// Defaults for `endpoint` and `subscription`.
    pub fn new(endpoint: impl Into<String>, subscription: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            subscription: subscription.into(),
            user_agent: crate::config::DEFAULT_USER_AGENT.to_string(),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            poll_interval: Duration::from_secs(1),
            max_poll_interval: Duration::from_secs(10),
            operation_timeout: Duration::from_mins(10),
        }
    }
}

/// A resource as read, with the `ETag` to send back in `If-Match`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetched<T> {
    /// The resource.
    pub value: T,
    /// Its `ETag` (the `ETag` header, or the body's `etag`).
    pub etag: Option<String>,
}

/// The condition a write is sent under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition<'a> {
    /// Unconditional.
    None,
    /// `If-Match: <etag>`: only if unchanged since read.
    IfMatch(&'a str),
    /// `If-None-Match: *`: only if it does not exist yet.
    IfNoneMatch,
}

impl<'a> From<Option<&'a str>> for Precondition<'a> {
    fn from(etag: Option<&'a str>) -> Self {
        etag.map_or(Self::None, Self::IfMatch)
    }
}

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn etag(&self) -> Option<String> {
        self.header("etag").map(str::to_string).or_else(|| {
            serde_json::from_slice::<Value>(&self.body)
                .ok()?
                .get("etag")?
                .as_str()
                .map(str::to_string)
        })
    }

    fn decode<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        what: &'static str,
    ) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Decode {
            operation,
            what,
            source,
        })
    }
}

/// A client of Azure Resource Manager for one subscription.
#[derive(Clone, Debug)]
pub struct ArmClient {
    http: reqwest::Client,
    settings: Arc<ClientSettings>,
    base: String,
    scope: String,
    credential: ArmCredential,
    metrics: Arc<Metrics>,
}

impl ArmClient {
    /// A client with its own metrics.
    pub fn new(settings: ClientSettings, credential: ArmCredential) -> Result<Self, Error> {
        let base = settings.endpoint.trim_end_matches('/').to_string();
        let valid = reqwest::Url::parse(&base)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !valid {
            return Err(Error::Endpoint(settings.endpoint.clone()));
        }
        ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(settings.user_agent.clone())
            .timeout(settings.request_timeout)
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Self {
            http,
            scope: format!("{base}/.default"),
            base,
            settings: Arc::new(settings),
            credential,
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// The counters of every operation.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The settings.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The subscription.
    pub fn subscription(&self) -> &str {
        &self.settings.subscription
    }

    fn url(&self, path: &str, api_version: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}api-version={api_version}", self.base)
    }

    /// Whether `url` is on the endpoint, where the token may go.
    fn on_endpoint(&self, url: &str) -> bool {
        let (Ok(a), Ok(b)) = (reqwest::Url::parse(url), reqwest::Url::parse(&self.base)) else {
            return false;
        };
        a.scheme() == b.scheme()
            && a.host() == b.host()
            && a.port_or_known_default() == b.port_or_known_default()
    }

    /// Sends one request, once; records its answer.
    async fn send_once(
        &self,
        operation: &'static str,
        method: &Method,
        url: &str,
        body: Option<&[u8]>,
        precondition: Precondition<'_>,
    ) -> Result<Answer, Error> {
        if !self.on_endpoint(url) {
            return Err(Error::ForeignUrl {
                operation,
                url: url.to_string(),
            });
        }
        let token = self.credential.token(&self.scope).await?;
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token.secret());
        match precondition {
            Precondition::None => {}
            Precondition::IfMatch(etag) => req = req.header(header::IF_MATCH, etag),
            Precondition::IfNoneMatch => req = req.header(header::IF_NONE_MATCH, "*"),
        }
        if let Some(body) = body {
            req = req
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )
                .body(body.to_vec());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(source) => {
                self.metrics.transport_error(operation);
                return Err(Error::Transport { operation, source });
            }
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(source) => {
                self.metrics.transport_error(operation);
                return Err(Error::Transport { operation, source });
            }
        };
        tracing::debug!(operation, %method, status = status.as_u16(), "ARM request");
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends a request, retrying passing failures within the bound; any
    /// non-success answer becomes [`Error::Arm`].
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        body: Option<&[u8]>,
        precondition: Precondition<'_>,
    ) -> Result<Answer, Error> {
        let mut attempt = 0;
        loop {
            let error = match self
                .send_once(operation, &method, url, body, precondition)
                .await
            {
                Ok(answer) => {
                    self.metrics.answer(operation, answer.status.as_u16());
                    if answer.status.is_success() {
                        return Ok(answer);
                    }
                    retry::arm_error(operation, &answer)
                }
                Err(e) => e,
            };
            if attempt >= self.settings.max_retries || !retry::is_retried_here(&error) {
                return Err(error);
            }
            let delay = retry::backoff(&self.settings, attempt, &error);
            tracing::info!(operation, attempt, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), %error, "retrying ARM request");
            self.metrics.retry(operation);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Times a whole call and records it.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let start = Instant::now();
        let result = call.await;
        self.metrics
            .call(operation, start.elapsed(), result.is_ok());
        if let Err(e) = &result {
            tracing::warn!(operation, error = %e, "ARM call failed");
        }
        result
    }

    /// GET a resource; `None` when it does not exist.
    pub async fn get<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        api_version: &str,
    ) -> Result<Option<Fetched<T>>, Error> {
        self.timed(operation, async {
            match self
                .send(
                    operation,
                    Method::GET,
                    &self.url(path, api_version),
                    None,
                    Precondition::None,
                )
                .await
            {
                Ok(answer) => Ok(Some(Fetched {
                    value: answer.decode(operation, "resource")?,
                    etag: answer.etag(),
                })),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// GET every item of a list, following `nextLink`.
    pub async fn list<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        path: &str,
        api_version: &str,
    ) -> Result<Vec<T>, Error> {
        self.timed(operation, async {
            let mut items = Vec::new();
            let mut url = self.url(path, api_version);
            loop {
                let answer = self
                    .send(operation, Method::GET, &url, None, Precondition::None)
                    .await?;
                let page: ListPage<T> = answer.decode(operation, "list page")?;
                items.extend(page.value);
                match page.next_link {
                    Some(next) if !next.is_empty() => url = next,
                    _ => return Ok(items),
                }
            }
        })
        .await
    }

    /// PUT or PATCH a resource, wait for the operation, and return the
    /// resource as stored, under `precondition`.
    pub async fn write<B: Serialize + Sync, T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        api_version: &str,
        body: &B,
        precondition: Precondition<'_>,
    ) -> Result<Fetched<T>, Error> {
        self.timed(operation, async {
            let url = self.url(path, api_version);
            let bytes = serde_json::to_vec(body).map_err(|source| Error::Decode {
                operation,
                what: "request body",
                source,
            })?;
            let answer = self
                .send(operation, method, &url, Some(&bytes), precondition)
                .await?;
            let polled = self.wait(operation, &answer, Some(&url)).await?;
            if !polled && lro::settled(&answer) {
                return Ok(Fetched {
                    value: answer.decode(operation, "resource")?,
                    etag: answer.etag(),
                });
            }
            let done = self
                .send(operation, Method::GET, &url, None, Precondition::None)
                .await?;
            Ok(Fetched {
                value: done.decode(operation, "resource")?,
                etag: done.etag(),
            })
        })
        .await
    }

    /// DELETE a resource and wait; `false` when it did not exist.
    pub async fn delete(
        &self,
        operation: &'static str,
        path: &str,
        api_version: &str,
        if_match: Option<&str>,
    ) -> Result<bool, Error> {
        self.timed(operation, async {
            let url = self.url(path, api_version);
            match self
                .send(operation, Method::DELETE, &url, None, if_match.into())
                .await
            {
                Ok(answer) if answer.status == StatusCode::NO_CONTENT => Ok(false),
                Ok(answer) => {
                    self.wait(operation, &answer, None).await?;
                    Ok(true)
                }
                Err(e) if e.is_not_found() => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// POST an action and wait for it.
    pub async fn action<B: Serialize + Sync>(
        &self,
        operation: &'static str,
        path: &str,
        api_version: &str,
        body: &B,
    ) -> Result<(), Error> {
        self.timed(operation, async {
            let url = self.url(path, api_version);
            let bytes = serde_json::to_vec(body).map_err(|source| Error::Decode {
                operation,
                what: "request body",
                source,
            })?;
            let answer = self
                .send(
                    operation,
                    Method::POST,
                    &url,
                    Some(&bytes),
                    Precondition::None,
                )
                .await?;
            self.wait(operation, &answer, None).await?;
            Ok(())
        })
        .await
    }
}
