//! The HTTP listener of `timepost serve`: hyper's HTTP/1 connection driver
//! under limits that keep slow or idle clients from starving the server
//! (`[server]` in the config):
//!
//! - at most `max_connections` connections are served at once; further
//!   ones wait in the kernel's listen backlog (holding no descriptor of
//!   ours) until a slot frees;
//! - a request's headers must arrive within `header_read_timeout_secs`
//!   (hyper's header-read timer, which also runs while a kept-alive
//!   connection waits for its next request);
//! - its body within `body_read_timeout_secs` of the headers (else 408);
//! - a connection with no request in progress and no bytes moving for
//!   `idle_timeout_secs` is closed.
//!
//! On stop the listener closes, connections finish the request in progress
//! and close, and connections with nothing in progress close at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use timepost::config::ServerConfig;
use timepost_web::{ApiError, MAX_BODY};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// The listener's limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl From<&ServerConfig> for Limits {
    fn from(c: &ServerConfig) -> Self {
        Self {
            max_connections: c.max_connections.max(1),
            header_read_timeout: Duration::from_secs(c.header_read_timeout_secs.max(1)),
            body_read_timeout: Duration::from_secs(c.body_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(c.idle_timeout_secs.max(1)),
        }
    }
}

/// While stopping, a connection with nothing in progress and no bytes
/// moving for this long is closed (a half-sent request is dropped; its
/// sender retries, as for any unanswered delivery).
const QUIET_WHEN_STOPPING: Duration = Duration::from_millis(250);

/// Serve `app` on `listener` until `stop` turns true (or its sender goes
/// away); then stop accepting and return once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits.body_read_timeout,
        body_deadline,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut full_reported = false;
    loop {
        if *stop.borrow() {
            break;
        }
        if slots.available_permits() == 0 {
            if !full_reported {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached: new connections wait until one closes"
                );
                full_reported = true;
            }
        } else {
            full_reported = false;
        }
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors and the like: wait a little.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = stop.changed() => break,
                    }
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        tracing::trace!(%peer, "connection accepted");
        tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            limits,
            permit,
            stop.clone(),
        ));
    }
    drop(listener);
    // Every connection holds a slot until it closes.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
}

/// Drive one connection; `_slot` is released when it closes.
async fn connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    app: Router,
    limits: Limits,
    _slot: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service = Counted {
        inner: TowerToHyperService::new(app),
        activity: activity.clone(),
        peer: timepost_web::throttle::ClientAddr(peer.ip()),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let every = (limits.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut check = tokio::time::interval(every);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quiet_limit = limits.idle_timeout;
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection closed with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
                quiet_limit = QUIET_WHEN_STOPPING;
                check = tokio::time::interval(Duration::from_millis(100));
            }
            _ = check.tick() => {
                if activity.quiet_for() >= quiet_limit {
                    if !stopping {
                        tracing::debug!("idle connection closed");
                    }
                    return;
                }
            }
        }
    }
}

/// Read the whole request body within the deadline, then hand the request
/// on. Every handler reads its body whole anyway (1 MiB at most), so this
/// only bounds how long a client may take to send it.
async fn body_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    // A body declared over the limit is refused before any of it is
    // awaited (the router would refuse it too, but only once it was read).
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BODY as u64) {
        tracing::warn!(declared = n, path = %req.uri().path(), "request refused: body too large");
        return closing(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is {n} bytes; at most {MAX_BODY} are accepted"),
        ));
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => {
            // `to_bytes` reports an over-long body as "length limit exceeded".
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.to_string().contains("length limit"));
            if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is over {} bytes", MAX_BODY),
                )
                .into_response()
            } else {
                closing(ApiError::bad_request(
                    format!("the request body could not be read: {e}"),
                    None,
                ))
            }
        }
        Err(_) => {
            tracing::warn!(
                path = %parts.uri.path(),
                "request body not received within {} s: connection closed",
                limit.as_secs()
            );
            closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    limit.as_secs()
                ),
            ))
        }
    }
}

/// An error answer after which the connection is closed.
fn closing(e: ApiError) -> Response {
    let mut r = e.into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// When bytes last moved on a connection, and how many of its requests are
/// being handled.
struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long nothing has happened (zero while a request is handled).
    fn quiet_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The socket, noting every byte that moves.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as a hyper service, counting the requests in progress.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
    /// The connection's peer, given to every request (the sign-in and
    /// bearer throttle counts failures per client).
    peer: timepost_web::throttle::ClientAddr,
}

/// One request in progress; when it ends, the connection counts as active
/// then (so a long handler is not followed at once by an idle close).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(a)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S, B> hyper::service::Service<hyper::Request<B>> for Counted<S>
where
    S: hyper::service::Service<hyper::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, mut req: hyper::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.peer);
        let guard = InFlight::new(self.activity.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            drop(guard);
            r
        })
    }
}
