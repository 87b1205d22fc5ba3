//! The LLM fallback of intent extraction: an adapter for any
//! OpenAI-compatible chat-completions endpoint, asked for a JSON answer
//! about prompts the rules read with low confidence (`[intent.llm]`, off by
//! default).
//!
//! The intent stage handles records synchronously and must never stall on
//! the endpoint, so [`Llm::try_extract`] never waits: it answers from the
//! cache, refuses at once when the concurrency cap is full or the circuit
//! breaker is open, or starts a request on the tokio runtime and hands back
//! a [`Pending`] result. The stage parks the record, and when the request
//! finishes the [`Llm::notify`] handle wakes its `poll` to collect it.
//!
//! Safety: the prompt text is untrusted and goes only into the user
//! message; the answer can only propose SKUs, quantities, options and a
//! coupon code, and is unvalidated ([`Answer`]): the caller checks it
//! against the catalog and the limits exactly like the rules' output. The
//! text is personal data, so it is never logged, not even at debug level.
//!
//! - `config`: [`LlmConfig`], the `[intent.llm]` section;
//! - `prompt`: the messages sent; `answer`: reading the response;
//! - `cache`: answers by normalised text; `breaker`: the circuit breaker.

mod answer;
mod breaker;
mod cache;
mod config;
mod prompt;
#[cfg(any(test, feature = "test-server"))]
pub mod test_server;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

pub use answer::{Answer, MAX_FIELD_CHARS, MAX_ITEMS, MAX_OPTIONS, MAX_RESPONSE_BYTES};
pub use cache::normalise;
pub use config::{DEFAULT_API_KEY_ENV, LlmConfig, LlmConfigError};
pub use prompt::CatalogDescription;

use breaker::{Admit, Breaker};
use cache::Cache;

/// One request to the endpoint that did not produce an answer. Messages
/// never quote the prompt or the response body.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(
        "the LLM endpoint did not answer within {ms} ms; check its load, or raise intent.llm.timeout_ms"
    )]
    Timeout { ms: u64 },
    #[error(
        "request to the LLM endpoint failed ({0}); check intent.llm.base_url and that the endpoint is reachable"
    )]
    Request(String),
    #[error("the LLM endpoint answered HTTP {status}; {}", status_hint(*.status))]
    Status { status: u16 },
    #[error(
        "the LLM endpoint's response is larger than {limit} bytes; check that intent.llm.base_url is a chat-completions API and intent.llm.model follows the answer format"
    )]
    TooLarge { limit: usize },
    #[error(
        "the LLM endpoint's response is not a JSON chat completion; check that intent.llm.base_url points at an OpenAI-compatible API (ending in /v1 for most)"
    )]
    NotJson,
    #[error(
        "the model's answer is not in the requested shape: {0}; a model that follows JSON instructions better (intent.llm.model) avoids this"
    )]
    Malformed(&'static str),
    #[error(
        "the model's answer lists {count} items, more than the {limit} allowed; the prompt is answered without it"
    )]
    TooManyItems { count: usize, limit: usize },
    #[error(
        "the LLM request ended without an answer because the runtime is shutting down; the prompt is answered without it"
    )]
    Abandoned,
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            "check the API key in the environment variable named by intent.llm.api_key_env"
        }
        404 => "check intent.llm.base_url (most APIs end in /v1) and intent.llm.model",
        429 => "the endpoint is rate-limiting; lower intent.llm.max_concurrency or raise the quota",
        500..=599 => "the endpoint is failing; the circuit breaker keeps load off it",
        _ => "check intent.llm.model and that the endpoint is OpenAI-compatible",
    }
}

impl LlmError {
    fn from_reqwest(error: &reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            return Self::Timeout {
                ms: millis(timeout),
            };
        }
        // reqwest's own message is only the outermost layer ("error sending
        // request"); the cause (refused, DNS, TLS) is further down.
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Request(text)
    }

    /// Whether this says the endpoint is unhealthy, as opposed to being
    /// about this one request (400, 413, 422, ...): only the former counts
    /// towards opening the breaker.
    fn is_endpoint_failure(&self) -> bool {
        match self {
            Self::Status { status } => {
                !(400..500).contains(status) || matches!(status, 401 | 403 | 404 | 408 | 429)
            }
            _ => true,
        }
    }
}

/// An [`Llm`] that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum LlmSetupError {
    #[error(transparent)]
    Config(#[from] LlmConfigError),
    #[error(
        "the LLM fallback is enabled but the environment variable `{var}` (intent.llm.api_key_env) is not set or empty; set it to the API key, or set intent.llm.api_key_env = \"\" for an endpoint without a key"
    )]
    MissingApiKey { var: String },
    #[error(
        "the API key in the environment variable `{var}` contains characters not allowed in an HTTP header; check its value"
    )]
    InvalidApiKey { var: String },
    #[error(
        "the catalog description for the LLM fallback lists no SKUs; pass the loaded catalog's SKUs"
    )]
    EmptyCatalog,
    #[error("cannot build the HTTP client for the LLM endpoint: {0}")]
    Client(#[from] reqwest::Error),
}

/// What [`Llm::try_extract`] did. It never waits.
#[derive(Debug)]
#[must_use]
pub enum Attempt {
    /// An answer to the same normalised text, from the cache.
    Cached(Answer),
    /// A request is under way; collect it with [`Pending::try_result`] after
    /// [`Llm::notify`] fires (or await it).
    Started(Pending),
    /// `max_concurrency` requests are in flight: answer without the LLM.
    Busy,
    /// The circuit breaker is open: answer without the LLM.
    BreakerOpen,
    /// The text is not sent at all.
    NotSent(NotSent),
}

/// Why a text is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    /// Nothing is left after normalising.
    Empty,
    /// Longer than `max_prompt_chars` after normalising.
    TooLong,
    /// Called outside a tokio runtime, so there is nowhere to run the request.
    NoRuntime,
}

/// The result of a request [`Attempt::Started`].
#[derive(Debug)]
pub struct Pending {
    receiver: oneshot::Receiver<Result<Answer, LlmError>>,
}

impl Pending {
    /// The result once the request has finished; `None` while it runs.
    /// Returns `Some` once: afterwards the result has been taken, and a
    /// further call reports [`LlmError::Abandoned`].
    pub fn try_result(&mut self) -> Option<Result<Answer, LlmError>> {
        match self.receiver.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(LlmError::Abandoned)),
        }
    }
}

impl Future for Pending {
    type Output = Result<Answer, LlmError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|received| received.unwrap_or(Err(LlmError::Abandoned)))
    }
}

/// Counts since the [`Llm`] was built, for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests started.
    pub sent: u64,
    /// Requests that produced an answer.
    pub succeeded: u64,
    /// Requests that failed, timeouts included.
    pub failures: u64,
    /// Of `failures`, those that ran out of `timeout_ms`.
    pub timeouts: u64,
    /// Answers from the cache.
    pub cache_hits: u64,
    /// Refused because `max_concurrency` requests were in flight.
    pub busy: u64,
    /// Refused because the breaker was open.
    pub breaker_open: u64,
    /// Times the breaker opened.
    pub breaker_trips: u64,
    /// Texts not sent: empty or longer than `max_prompt_chars`.
    pub not_sent: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    succeeded: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    cache_hits: AtomicU64,
    busy: AtomicU64,
    breaker_open: AtomicU64,
    breaker_trips: AtomicU64,
    not_sent: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The adapter. Cheap to clone; clones share the cap, breaker, cache and
/// counters.
#[derive(Clone)]
pub struct Llm {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    url: reqwest::Url,
    model: String,
    /// `Bearer <key>`, marked sensitive so it is not printed.
    authorization: Option<HeaderValue>,
    system: String,
    timeout: Duration,
    max_prompt_chars: usize,
    breaker_open_ms: u64,
    permits: Arc<Semaphore>,
    breaker: Mutex<Breaker>,
    cache: Mutex<Cache>,
    counters: Counters,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: the key must not reach a log through `{:?}`.
        f.debug_struct("Llm")
            .field("url", &self.inner.url.as_str())
            .field("model", &self.inner.model)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Llm {
    /// The adapter when `config.enabled`, otherwise `None`.
    pub fn from_config(
        config: &LlmConfig,
        catalog: &CatalogDescription,
    ) -> Result<Option<Self>, LlmSetupError> {
        if config.enabled {
            Self::new(config, catalog).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Builds the adapter whatever `config.enabled` says, reading the API key
    /// from the environment variable named by `config.api_key_env`.
    pub fn new(config: &LlmConfig, catalog: &CatalogDescription) -> Result<Self, LlmSetupError> {
        Self::with_env(config, catalog, |name| std::env::var(name).ok())
    }

    /// [`Llm::new`] with environment variables looked up by `env`.
    pub(crate) fn with_env(
        config: &LlmConfig,
        catalog: &CatalogDescription,
        env: impl FnOnce(&str) -> Option<String>,
    ) -> Result<Self, LlmSetupError> {
        config.validate()?;
        if catalog.skus.is_empty() {
            return Err(LlmSetupError::EmptyCatalog);
        }
        let authorization = if config.api_key_env.is_empty() {
            None
        } else {
            let var = config.api_key_env.clone();
            let key = env(&var)
                .filter(|key| !key.trim().is_empty())
                .ok_or_else(|| LlmSetupError::MissingApiKey { var: var.clone() })?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.trim()))
                .map_err(|_| LlmSetupError::InvalidApiKey { var })?;
            value.set_sensitive(true);
            Some(value)
        };
        let url = reqwest::Url::parse(&format!(
            "{}/chat/completions",
            config.base_url.trim_end_matches('/')
        ))
        .map_err(|_| LlmConfigError::BaseUrl(config.base_url.clone()))?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut client = reqwest::Client::builder()
            .user_agent(concat!("chatcart/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            // A redirect would resend the key somewhere not configured.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.max_concurrency);
        if is_loopback(&url) {
            // A model server on this machine is never reached through a
            // proxy set for outbound traffic.
            client = client.no_proxy();
        }
        Ok(Self {
            inner: Arc::new(Inner {
                client: client.build()?,
                url,
                model: config.model.clone(),
                authorization,
                system: prompt::system_message(catalog),
                timeout,
                max_prompt_chars: config.max_prompt_chars,
                breaker_open_ms: config.breaker_open_ms,
                permits: Arc::new(Semaphore::new(config.max_concurrency)),
                breaker: Mutex::new(Breaker::new(
                    config.breaker_failures,
                    Duration::from_millis(config.breaker_open_ms),
                )),
                cache: Mutex::new(Cache::new(config.cache_entries)),
                counters: Counters::default(),
                notify: Arc::new(Notify::new()),
            }),
        })
    }

    /// Asks about `text` without ever waiting; see [`Attempt`]. Must be
    /// called inside a tokio runtime for a request to start.
    pub fn try_extract(&self, text: &str) -> Attempt {
        let inner = &self.inner;
        let key = normalise(text);
        if key.is_empty() || key.chars().count() > inner.max_prompt_chars {
            bump(&inner.counters.not_sent);
            return Attempt::NotSent(if key.is_empty() {
                NotSent::Empty
            } else {
                NotSent::TooLong
            });
        }
        if let Some(answer) = lock(&inner.cache).get(&key) {
            bump(&inner.counters.cache_hits);
            return Attempt::Cached(answer);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Attempt::NotSent(NotSent::NoRuntime);
        };
        // The permit is taken before asking the breaker, so that a half-open
        // trial is only ever handed to a request that really starts.
        let Ok(permit) = Arc::clone(&inner.permits).try_acquire_owned() else {
            bump(&inner.counters.busy);
            return Attempt::Busy;
        };
        let admitted = lock(&inner.breaker).admit(Instant::now());
        if admitted == Admit::Refused {
            bump(&inner.counters.breaker_open);
            return Attempt::BreakerOpen;
        }
        bump(&inner.counters.sent);
        let (sender, receiver) = oneshot::channel();
        let task = Arc::clone(inner);
        runtime.spawn(async move { task.run(key, admitted, permit, sender).await });
        Attempt::Started(Pending { receiver })
    }

    /// Notified (`notify_one`) each time a started request finishes; the
    /// stage returns it from `Stage::wakeup` so its `poll` collects results.
    pub fn notify(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.notify)
    }

    /// Whether the breaker refuses requests now (open, or on trial).
    pub fn breaker_open(&self) -> bool {
        self.inner
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_open(Instant::now())
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            sent: get(&c.sent),
            succeeded: get(&c.succeeded),
            failures: get(&c.failures),
            timeouts: get(&c.timeouts),
            cache_hits: get(&c.cache_hits),
            busy: get(&c.busy),
            breaker_open: get(&c.breaker_open),
            breaker_trips: get(&c.breaker_trips),
            not_sent: get(&c.not_sent),
        }
    }
}

/// Reports a request's outcome to the breaker exactly once; if the task is
/// dropped first (runtime shutdown), reports a failure, so that a half-open
/// trial cannot leave the breaker waiting for it forever.
struct Outcome<'a> {
    breaker: &'a Mutex<Breaker>,
    admitted: Admit,
    reported: bool,
}

impl Outcome<'_> {
    fn report(&mut self, success: bool) -> bool {
        self.reported = true;
        lock(self.breaker).record(self.admitted, success, Instant::now())
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.report(false);
        }
    }
}

impl Inner {
    async fn run(
        &self,
        key: String,
        admitted: Admit,
        permit: OwnedSemaphorePermit,
        sender: oneshot::Sender<Result<Answer, LlmError>>,
    ) {
        let mut outcome = Outcome {
            breaker: &self.breaker,
            admitted,
            reported: false,
        };
        let result = self.request(&key).await;
        match &result {
            Ok(answer) => {
                outcome.report(true);
                bump(&self.counters.succeeded);
                lock(&self.cache).insert(key, answer.clone());
            }
            Err(error) => {
                bump(&self.counters.failures);
                if matches!(error, LlmError::Timeout { .. }) {
                    bump(&self.counters.timeouts);
                }
                // A refusal of this one request (400, 422, ...) still shows
                // the endpoint is up, so it counts as health, not failure.
                let opened = outcome.report(!error.is_endpoint_failure());
                if opened {
                    bump(&self.counters.breaker_trips);
                    tracing::warn!(
                        %error,
                        open_ms = self.breaker_open_ms,
                        "LLM endpoint failing; intent extraction continues without it for a while"
                    );
                } else {
                    tracing::debug!(%error, "LLM request failed");
                }
            }
        }
        // Free the slot before waking the stage, so a request it starts on
        // that wakeup finds it free.
        drop(permit);
        // The stage may have given up on the record; nothing to do then.
        let _ = sender.send(result);
        self.notify.notify_one();
    }

    async fn request(&self, text: &str) -> Result<Answer, LlmError> {
        let exchange = async {
            let mut request = self
                .client
                .post(self.url.clone())
                .json(&prompt::request_body(&self.model, &self.system, text));
            if let Some(authorization) = &self.authorization {
                request = request.header(AUTHORIZATION, authorization.clone());
            }
            let mut response = request
                .send()
                .await
                .map_err(|e| LlmError::from_reqwest(&e, self.timeout))?;
            let status = response.status();
            if !status.is_success() {
                return Err(LlmError::Status {
                    status: status.as_u16(),
                });
            }
            let too_large = LlmError::TooLarge {
                limit: MAX_RESPONSE_BYTES,
            };
            if response
                .content_length()
                .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
            {
                return Err(too_large);
            }
            // Read chunk by chunk, so a body without a length (or with a
            // wrong one) cannot make us buffer more than the limit.
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| LlmError::from_reqwest(&e, self.timeout))?
            {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(too_large);
                }
                body.extend_from_slice(&chunk);
            }
            answer::parse_completion(&body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(LlmError::Timeout {
                ms: millis(self.timeout),
            }))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded structures stay consistent between statements, so a
    // panic elsewhere while holding the lock leaves nothing half-done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // IPv6 hosts come bracketed: `[::1]`.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
