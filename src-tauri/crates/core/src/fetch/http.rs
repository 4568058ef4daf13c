//! HTTP with the retry, timeout and resume rules every download obeys.
//!
//! Timeouts: 30 s to connect and to the response headers, 90 s of silence while reading a body, and
//! no total timeout: a long download ends by cancellation, never by clock. Retries: at most five
//! attempts, backoff from 500 ms doubling to 16 s with ±20 % jitter, for connection errors, timeouts,
//! 5xx and 429 (whose `Retry-After` is honoured, capped); any other status is final, and so is a
//! refused certificate (see [`crate::fetch::tls`]): another attempt would meet the same certificate.
//!
//! While no byte comes for 2 s or more (a silent body, a wait before another attempt), the
//! download's progress says so about once a second ([`crate::progress::Progress::waiting`]).
//!
//! Redirects: reqwest's default (at most 10 in a chain), except that a redirect from https to plain
//! http is refused, finally: whoever is on the plain-HTTP path could choose the image and the
//! checksum file that vouches for it, and every document and download goes through here.

use std::path::PathBuf;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE, RETRY_AFTER};
use reqwest::{redirect, Method, Response, StatusCode};
use tokio::sync::Mutex;
use url::Url;

use crate::error::{Error, Result};
use crate::fetch::credentials::{self, Credentials};
use crate::fetch::tls::TlsFailure;
use crate::progress::{ProgressSink, Reporter, Stage};
use crate::CancellationToken;

/// The limits above, adjustable so tests need not wait 90 s for a stalled body.
#[derive(Clone, Debug)]
pub struct HttpPolicy {
    pub attempts: usize,
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub retry_after_cap: Duration,
    pub connect_timeout: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// PEM files of CA certificates trusted beside the platform's (`--ca-cert`, a config's).
    pub ca_certs: Vec<PathBuf>,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(16),
            retry_after_cap: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            ca_certs: Vec::new(),
        }
    }
}

/// Where a download's bytes go. Implementations keep and hash exactly the bytes appended, so a
/// restart must drop both the kept bytes and the hash state.
pub trait BodySink: Send {
    /// Bytes kept so far; a resumed request asks for the rest from here.
    fn kept(&self) -> u64;
    /// The most bytes it takes: a larger body is refused from its announced length, unread.
    fn cap(&self) -> Option<u64> {
        None
    }
    fn append(&mut self, bytes: &[u8]) -> Result<()>;
    /// Forget everything kept: the server is sending the body from the start again.
    fn restart(&mut self) -> Result<()>;
}

/// Which bytes of a body to ask for.
#[derive(Clone, Copy, Debug)]
pub enum Span {
    /// The last n bytes.
    Tail(u64),
    /// The first n bytes.
    Head(u64),
    /// From the first offset up to (not including) the second.
    Between(u64, u64),
}

/// A byte range a server sent: where it starts, its bytes, and the whole body's length.
#[derive(Debug)]
pub struct Ranged {
    pub start: u64,
    pub bytes: Vec<u8>,
    pub total: u64,
}

/// The outcome of one attempt that failed, and whether another attempt may help.
#[derive(Debug)]
struct Failed {
    error: Error,
    retry: bool,
    retry_after: Option<Duration>,
}

impl Failed {
    fn fatal(error: Error) -> Self {
        Self {
            error,
            retry: false,
            retry_after: None,
        }
    }

    fn transient(error: Error) -> Self {
        Self {
            error,
            retry: true,
            retry_after: None,
        }
    }
}

pub struct Http {
    client: reqwest::Client,
    policy: HttpPolicy,
    scoped: Option<Scoped>,
}

/// Credentials and the one origin (scheme, host, port) they are sent to.
#[derive(Clone)]
struct Scoped {
    origin: url::Origin,
    credentials: Credentials,
}

impl Http {
    pub fn new(policy: HttpPolicy) -> Result<Self> {
        // reqwest reads HTTP(S)_PROXY / NO_PROXY from the environment by default. No `.timeout()`:
        // a total timeout would cut long downloads off by clock.
        let client = reqwest::Client::builder()
            .user_agent(concat!("labflash/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(policy.connect_timeout)
            .redirect(no_downgrade())
            .use_preconfigured_tls(crate::fetch::tls::client_config(&policy.ca_certs)?)
            .build()
            .map_err(|e| Error::Network {
                url: String::new(),
                detail: error_chain(&e),
            })?;
        Ok(Self {
            client,
            policy,
            scoped: None,
        })
    }

    /// A client that sends `credentials` with every request to `at`'s origin, and to no other:
    /// the token is put in that origin's URLs only, and reqwest drops the Authorization header
    /// when a redirect leads to another host or port (reqwest 0.12 `remove_sensitive_headers`).
    pub fn with_credentials(&self, at: &Url, credentials: Credentials) -> Self {
        Self {
            client: self.client.clone(),
            policy: self.policy.clone(),
            scoped: (!credentials.is_empty()).then(|| Scoped {
                origin: at.origin(),
                credentials,
            }),
        }
    }

    /// Whether requests to `url` carry credentials.
    fn sends_credentials_to(&self, url: &Url) -> bool {
        self.scoped
            .as_ref()
            .is_some_and(|s| s.origin == url.origin())
    }

    /// A request for `url`, with the credentials if they are for its origin.
    fn request(&self, method: Method, url: &Url) -> reqwest::RequestBuilder {
        match &self.scoped {
            Some(s) if s.origin == url.origin() => {
                let req = self.client.request(method, s.credentials.with_token(url));
                match &s.credentials.basic {
                    Some((user, password)) => req.basic_auth(user, Some(password.expose())),
                    None => req,
                }
            }
            _ => self.client.request(method, url.clone()),
        }
    }

    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    /// A client with the same policy that also trusts the CA certificates in `ca_cert`.
    pub fn trusting(&self, ca_cert: PathBuf) -> Result<Self> {
        let mut policy = self.policy.clone();
        policy.ca_certs.push(ca_cert);
        Ok(Self {
            scoped: self.scoped.clone(),
            ..Self::new(policy)?
        })
    }

    /// GETs a text document (at most 16 MiB): a checksum file, a catalog, an index.
    pub async fn get_text(&self, url: &Url, cancel: &CancellationToken) -> Result<String> {
        self.text(url, None, false, cancel).await
    }

    /// As [`Http::get_text`], but a response from anywhere else than `url` (a redirect followed)
    /// is refused: for what must come from that server itself (an Image Factory's signing key).
    pub async fn get_text_direct(&self, url: &Url, cancel: &CancellationToken) -> Result<String> {
        self.text(url, None, true, cancel).await
    }

    /// Whether the server says `url` is gone: one HEAD, at most 5 s, for wording an error; any
    /// answer other than 404 or 410 (a timeout, a server that builds assets on request) is `false`.
    pub async fn is_missing(&self, url: &Url, cancel: &CancellationToken) -> bool {
        let head = self.send_request(url, self.request(Method::HEAD, url));
        tokio::select! {
            answer = tokio::time::timeout(Duration::from_secs(5), head) => matches!(
                answer,
                Ok(Err(Failed { error: Error::HttpStatus { status: 404 | 410, .. }, .. }))
            ),
            _ = cancel.cancelled() => false,
        }
    }

    /// The same client (credentials and trust too), asking once: for a probe, whose answer is
    /// wanted now; the flash that follows asks again, with retries.
    pub fn once(&self) -> Self {
        Self {
            client: self.client.clone(),
            policy: HttpPolicy {
                attempts: 1,
                ..self.policy.clone()
            },
            scoped: self.scoped.clone(),
        }
    }

    /// What one HEAD of an asset says of it: its length as announced (`Content-Length`), `None`
    /// when the server does not say or takes no HEAD (405, 501: it serves GET alone, which is no
    /// fault), or sends no headers in time (an Image Factory builds the asset before it answers
    /// HEAD: siderolabs/image-factory `internal/frontend/http/image.go` `handleImage`). A
    /// missing asset, one that wants credentials and a failing server are errors naming the
    /// URL, redacted, and the status.
    pub async fn head(&self, url: &Url, cancel: &CancellationToken) -> Result<Option<u64>> {
        let shown = credentials::redact(url);
        let answer = self
            .with_retries(cancel, || async {
                match self
                    .send_request(&shown, self.request(Method::HEAD, url))
                    .await
                {
                    Ok(resp) => Ok(Some(resp)),
                    Err(Failed {
                        error:
                            Error::HttpStatus {
                                status: 405 | 501, ..
                            },
                        ..
                    }) => Ok(None),
                    Err(failed) => Err(failed),
                }
            })
            .await;
        match answer {
            // reqwest's `content_length()` is the body's, which a HEAD has none of.
            Ok(resp) => Ok(resp.and_then(|resp| {
                resp.headers()
                    .get(CONTENT_LENGTH)?
                    .to_str()
                    .ok()?
                    .parse()
                    .ok()
            })),
            Err(Error::HttpStatus { status: 404, .. }) => Err(Error::NotFound {
                url: shown.to_string(),
            }),
            Err(Error::Timeout { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GETs one byte range of `url` in one attempt (it only saves work: no retries), or `None`
    /// when the server answers with the whole body (it takes no ranges), which is not read.
    pub async fn get_range(
        &self,
        url: &Url,
        span: Span,
        cancel: &CancellationToken,
    ) -> Result<Option<Ranged>> {
        const LIMIT: u64 = 16 << 20;
        let range = match span {
            Span::Tail(n) => format!("bytes=-{n}"),
            Span::Head(n) => format!("bytes=0-{}", n.max(1) - 1),
            Span::Between(from, to) => format!("bytes={from}-{}", to.max(from + 1) - 1),
        };
        let attempt = async {
            let req = self.request(Method::GET, url).header(RANGE, range);
            let mut resp = self.send_request(url, req).await.map_err(|f| f.error)?;
            if resp.status() != StatusCode::PARTIAL_CONTENT {
                return Ok(None);
            }
            let Some((start, total)) = content_range(&resp) else {
                return Ok(None);
            };
            let mut bytes = Vec::new();
            while let Some(chunk) = self.next_chunk(url, &mut resp).await.map_err(|f| f.error)? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > LIMIT {
                    return Ok(None);
                }
            }
            Ok(Some(Ranged {
                start,
                bytes,
                total,
            }))
        };
        tokio::select! {
            ranged = attempt => ranged,
            _ = cancel.cancelled() => Err(Error::Cancelled),
        }
    }

    /// POSTs a JSON body and returns the answer's text. Only for idempotent
    /// requests: it is retried like a GET.
    pub async fn post_json(
        &self,
        url: &Url,
        body: &serde_json::Value,
        cancel: &CancellationToken,
    ) -> Result<String> {
        self.text(url, Some(body), false, cancel).await
    }

    async fn text(
        &self,
        url: &Url,
        body: Option<&serde_json::Value>,
        direct: bool,
        cancel: &CancellationToken,
    ) -> Result<String> {
        // Checksum files and schematics are tiny; indexes (IncusOS) grow with every release.
        const LIMIT: usize = 16 << 20;
        self.with_retries(cancel, || async {
            let resp = match body {
                None => self.send(url, None).await?,
                Some(body) => {
                    self.send_request(url, self.request(Method::POST, url).json(body))
                        .await?
                }
            };
            let served_by = resp.url();
            if direct && (served_by.origin() != url.origin() || served_by.path() != url.path()) {
                return Err(Failed::fatal(Error::Network {
                    url: url.to_string(),
                    detail: format!(
                        "it redirected to {}, and a signing key is taken only from the factory itself",
                        crate::fetch::credentials::redact(served_by)
                    ),
                }));
            }
            let mut body = Vec::new();
            let mut resp = resp;
            while let Some(chunk) = self.next_chunk(url, &mut resp).await? {
                body.extend_from_slice(&chunk);
                if body.len() > LIMIT {
                    return Err(Failed::fatal(Error::Network {
                        url: url.to_string(),
                        detail: format!("the document is larger than {LIMIT} bytes"),
                    }));
                }
            }
            Ok(String::from_utf8_lossy(&body).into_owned())
        })
        .await
    }

    /// Downloads `url` into `sink`. A body cut off mid-transfer continues with a `Range` request
    /// when the server answers 206, and starts over when it answers 200. Returns the URL whose
    /// response ended the body: `url`, or where its redirects led (a resumed body may have begun
    /// elsewhere; the digest covers all of it either way).
    pub async fn download(
        &self,
        url: &Url,
        sink: &mut dyn BodySink,
        cancel: &CancellationToken,
        progress: &dyn ProgressSink,
    ) -> Result<Url> {
        let reporter = std::sync::Mutex::new(Reporter::new(progress, Stage::Download, None));
        let sink = Mutex::new(sink);
        let attempts = self.with_retries(cancel, || async {
            let mut sink = sink.lock().await;
            self.download_attempt(url, &mut **sink, &reporter).await
        });
        // While no byte comes (a silent server, a wait before another attempt), the window and
        // the terminal say so, rather than show the last speed frozen.
        let waiting = async {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                reporter.lock().expect("progress lock").waiting();
            }
        };
        let final_url = tokio::select! {
            final_url = attempts => final_url?,
            () = waiting => unreachable!("the waiting ticker never ends"),
        };
        let kept = sink.into_inner().kept();
        reporter.into_inner().expect("progress lock").finish(kept);
        Ok(final_url)
    }

    async fn download_attempt(
        &self,
        url: &Url,
        sink: &mut dyn BodySink,
        reporter: &std::sync::Mutex<Reporter<'_>>,
    ) -> Result<Url, Failed> {
        let offset = sink.kept();
        let mut resp = self.send(url, (offset > 0).then_some(offset)).await?;
        // As the server saw it, with the token: redacted before it is logged or returned.
        let served_by = credentials::redact(resp.url());
        if served_by != credentials::redact(url) {
            tracing::info!(%url, to = %served_by, "followed a redirect");
        }
        let start = match resp.status() {
            StatusCode::PARTIAL_CONTENT if resume_offset(&resp) == Some(offset) => offset,
            StatusCode::PARTIAL_CONTENT => {
                sink.restart().map_err(Failed::fatal)?;
                return Err(Failed::transient(Error::Network {
                    url: url.to_string(),
                    detail: format!("the server resumed at a different offset than {offset}"),
                }));
            }
            _ => {
                if offset > 0 {
                    tracing::info!(%url, "the server does not resume downloads; starting over");
                    sink.restart().map_err(Failed::fatal)?;
                }
                0
            }
        };
        let total = resp.content_length().map(|len| start + len);
        if let (Some(total), Some(cap)) = (total, sink.cap()) {
            if total > cap {
                return Err(Failed::fatal(Error::ArchiveTooLarge { cap }));
            }
        }
        reporter.lock().expect("progress lock").set_total(total);
        while let Some(chunk) = self.next_chunk(url, &mut resp).await? {
            sink.append(&chunk).map_err(Failed::fatal)?;
            reporter.lock().expect("progress lock").update(sink.kept());
        }
        match total {
            Some(total) if sink.kept() < total => Err(Failed::transient(Error::Network {
                url: url.to_string(),
                detail: format!("the body ended after {} of {total} bytes", sink.kept()),
            })),
            _ => Ok(served_by),
        }
    }

    /// Sends a GET (from `offset` if given) and sorts the status: success, retryable, or final.
    async fn send(&self, url: &Url, offset: Option<u64>) -> Result<Response, Failed> {
        let mut req = self.request(Method::GET, url);
        if let Some(offset) = offset {
            req = req.header(RANGE, format!("bytes={offset}-"));
        }
        self.send_request(url, req).await
    }

    async fn send_request(
        &self,
        url: &Url,
        req: reqwest::RequestBuilder,
    ) -> Result<Response, Failed> {
        let resp = match tokio::time::timeout(self.policy.header_timeout, req.send()).await {
            Err(_) => {
                return Err(Failed::transient(Error::Timeout {
                    url: url.to_string(),
                    secs: self.policy.header_timeout.as_secs(),
                    during: "waiting for the response headers",
                }))
            }
            Ok(Err(e)) => return Err(transport_failure(url, e)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let error = Error::HttpStatus {
            url: url.to_string(),
            status: status.as_u16(),
            reason: status.canonical_reason(),
        };
        if matches!(status.as_u16(), 401 | 403) {
            return Err(Failed::fatal(Error::Unauthorized {
                url: url.to_string(),
                status: status.as_u16(),
                sent: self.sends_credentials_to(url),
            }));
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Failed {
                error,
                retry: true,
                retry_after,
            });
        }
        Err(Failed::fatal(error))
    }

    /// The next body chunk, or a timeout after the idle limit of silence.
    async fn next_chunk(
        &self,
        url: &Url,
        resp: &mut Response,
    ) -> Result<Option<bytes::Bytes>, Failed> {
        match tokio::time::timeout(self.policy.idle_timeout, resp.chunk()).await {
            Err(_) => Err(Failed::transient(Error::Timeout {
                url: url.to_string(),
                secs: self.policy.idle_timeout.as_secs(),
                during: "sending the body",
            })),
            Ok(Err(e)) => Err(transport_failure(url, e)),
            Ok(Ok(chunk)) => Ok(chunk),
        }
    }

    /// Runs `op` under the retry policy; cancellation stops it at once, sleeping or not.
    async fn with_retries<T, F, Fut>(&self, cancel: &CancellationToken, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failed>>,
    {
        let cap = self.policy.retry_after_cap;
        let retried = op
            .retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(|f: &Failed| f.retry)
            .adjust(move |f: &Failed, delay| {
                delay.map(|d| f.retry_after.map_or(d, |ra| ra.min(cap)))
            })
            .notify(|f: &Failed, delay: Duration| {
                tracing::warn!("{}; retrying in {:.1} s", f.error, delay.as_secs_f64())
            });
        tokio::select! {
            result = retried => result.map_err(|f| f.error),
            _ = cancel.cancelled() => Err(Error::Cancelled),
        }
    }

    /// The delays between attempts: exponential, capped, each scaled by a random 0.8–1.2.
    fn backoff(&self) -> impl Iterator<Item = Duration> + Send + Sync + Unpin {
        fn jitter(d: Duration) -> Duration {
            d.mul_f64(0.8 + 0.4 * fastrand::f64())
        }
        ExponentialBuilder::default()
            .with_min_delay(self.policy.first_delay)
            .with_factor(2.0)
            .with_max_delay(self.policy.max_delay)
            .with_max_times(self.policy.attempts.saturating_sub(1))
            .build()
            .map(jitter as fn(Duration) -> Duration)
    }
}

/// The start and the whole length a 206 response's `Content-Range: bytes START-END/TOTAL` names.
fn content_range(resp: &Response) -> Option<(u64, u64)> {
    let value = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    Some((
        range.split('-').next()?.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// The start offset a 206 response's `Content-Range: bytes START-END/TOTAL` announces.
fn resume_offset(resp: &Response) -> Option<u64> {
    let value = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// reqwest's redirect policy with one rule added: never from https to plain http.
fn no_downgrade() -> redirect::Policy {
    let default = redirect::Policy::default();
    redirect::Policy::custom(move |attempt| {
        let to = attempt.url();
        let downgrade = attempt
            .previous()
            .last()
            .filter(|from| from.scheme() == "https" && to.scheme() == "http")
            .map(|from| Downgrade {
                from: credentials::redact(from),
                to: credentials::redact(to),
            });
        match downgrade {
            Some(refused) => attempt.error(refused),
            None => default.redirect(attempt),
        }
    })
}

/// A refused https → http redirect, as the policy hands it to reqwest, which wraps it.
#[derive(Debug)]
struct Downgrade {
    from: Url,
    to: Url,
}

impl std::fmt::Display for Downgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused a redirect from {} to {}", self.from, self.to)
    }
}

impl std::error::Error for Downgrade {}

/// Transport errors (connect, reset, cut body) are worth another attempt; a refused certificate, a
/// failed TLS handshake, a refused or looping redirect or a bad request is not.
fn transport_failure(url: &Url, e: reqwest::Error) -> Failed {
    // reqwest's message names the URL as requested, token and all: `url` names it instead.
    let e = &e.without_url();
    // The policy's own error, lifted out of reqwest's "error following redirect" chain whole.
    let downgrade = std::iter::successors(std::error::Error::source(e), |s| s.source())
        .find_map(|s| s.downcast_ref::<Downgrade>());
    if let Some(Downgrade { from, to }) = downgrade {
        return Failed::fatal(Error::InsecureRedirect {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    match crate::fetch::tls::problem_in(e) {
        Some(TlsFailure::Certificate(problem)) => {
            return Failed::fatal(Error::Certificate {
                url: url.to_string(),
                problem,
            })
        }
        Some(TlsFailure::Handshake(detail)) => {
            return Failed::fatal(Error::Network {
                url: url.to_string(),
                detail: format!("the TLS handshake failed: {detail}"),
            })
        }
        None => {}
    }
    let error = Error::Network {
        url: url.to_string(),
        detail: transport_problem(url, e),
    };
    if e.is_redirect() || e.is_builder() {
        Failed::fatal(error)
    } else {
        Failed::transient(error)
    }
}

/// reqwest's own message is terse ("error sending request"); the cause is in the source chain.
/// What went wrong on the way to the server, in words an operator can act on; the library's own
/// chain of errors only where none of the common cases fits (it is logged either way).
fn transport_problem(url: &Url, e: &reqwest::Error) -> String {
    let chain = error_chain(e);
    tracing::debug!(%url, "transport error: {chain}");
    let host = url.host_str().unwrap_or("the server");
    let io_kind = std::iter::successors(std::error::Error::source(e), |s| s.source())
        .find_map(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    if chain.contains("dns error") || chain.contains("failed to lookup address") {
        format!(
            "the name {host} does not resolve (is this machine offline, or the address mistyped?)"
        )
    } else if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
        let port = url.port_or_known_default().unwrap_or(0);
        format!("{host} refused the connection (nothing answers on port {port})")
    } else if e.is_timeout() || io_kind == Some(std::io::ErrorKind::TimedOut) {
        format!("{host} did not answer in time")
    } else if e.is_connect() {
        format!("cannot connect to {host} ({chain})")
    } else {
        chain
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_policy() {
        let http = Http::new(HttpPolicy::default()).unwrap();
        let delays: Vec<Duration> = http.backoff().collect();
        assert_eq!(delays.len(), 4, "five attempts means four waits");
        for (d, nominal) in delays.iter().zip([0.5, 1.0, 2.0, 4.0]) {
            let s = d.as_secs_f64();
            assert!(
                s >= nominal * 0.8 - 1e-9 && s <= nominal * 1.2 + 1e-9,
                "{s} vs {nominal}"
            );
        }
    }

    #[test]
    fn backoff_is_capped() {
        let policy = HttpPolicy {
            attempts: 10,
            ..HttpPolicy::default()
        };
        let http = Http::new(policy).unwrap();
        let last = http.backoff().last().unwrap();
        assert!(last.as_secs_f64() <= 16.0 * 1.2 + 1e-9);
        assert!(last.as_secs_f64() >= 16.0 * 0.8 - 1e-9);
    }
}
