//! A per-company (or per-tracker-account: the pollers use it too) rate
//! limiter that keeps timepost under an API's
//! published limits in steady state, so 429s are the exception.
//!
//! Each rate (`limit` units per `window`; a unit is a call, a batch item or
//! a batch call: [`Unit`]) is paced with a token bucket of capacity one:
//! calls are spaced `window / (limit × 0.98)` apart per unit they use and
//! never catch up after a pause; and a call of several units (a QBO batch,
//! each item counting) also waits until the last `window` holds room for
//! all of them, so no sliding window of the server's ever sees more than
//! `limit` units. A semaphore caps calls in flight, a window caps calls per
//! rolling 24 hours (Xero's daily limit is rolling, not a calendar day:
//! VENDOR-FACTS.md "Xero", corrected), and a 429 (or a server saying a
//! minute's allowance — the tenant's or the app's — is spent) pauses every
//! caller of the company until the time it names.
//!
//! All of that is per process. Lambda runs many `sync` instances at once
//! against one company's single allowance, so a [`SharedPacer`] (DynamoDB:
//! `crate::aws::ratelimit`) can be plugged in: on every acquire the limiter
//! also reserves the company's next start in the shared store, spaced by the
//! tightest rate, and a 429 pause is published there for every instance.

// `LedgerError` is the port's error type and carries the exception inline.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use timepost_core::ledger::LedgerError;

/// Pace at this share of the published rate: the margin absorbs clock and
/// network jitter between timepost and the server's window.
const SAFETY: f64 = 0.98;

/// What one unit of a [`Rate`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unit {
    /// Every call counts once.
    #[default]
    Call,
    /// Every item a call carries counts once (QBO counts each batch item
    /// as a request); a call without items counts once.
    Item,
    /// Only batch calls count, once each (QBO's batch allowance).
    Batch,
}

/// What one call costs against the rates: its items, and whether it is a
/// batch call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    pub items: u32,
    pub batch: bool,
}

impl Cost {
    /// A plain call (a read).
    pub const ONE: Cost = Cost {
        items: 1,
        batch: false,
    };

    /// A batch call of `items` items.
    pub fn batch(items: usize) -> Cost {
        Cost {
            items: u32::try_from(items).unwrap_or(u32::MAX).max(1),
            batch: true,
        }
    }
}

/// `limit` units per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub window: Duration,
    pub unit: Unit,
}

impl Rate {
    /// `limit` calls per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            unit: Unit::Call,
        }
    }

    /// `limit` items per `window`, each item of a batch counting once.
    pub fn per_item(limit: u32, window: Duration) -> Self {
        Self {
            unit: Unit::Item,
            ..Self::new(limit, window)
        }
    }

    /// `limit` batch calls per `window`; other calls do not count.
    pub fn per_batch(limit: u32, window: Duration) -> Self {
        Self {
            unit: Unit::Batch,
            ..Self::new(limit, window)
        }
    }

    /// How many units a call of `cost` uses of this rate.
    fn units(&self, cost: Cost) -> u32 {
        match self.unit {
            Unit::Call => 1,
            Unit::Item => cost.items.max(1),
            Unit::Batch => u32::from(cost.batch),
        }
    }

    fn spacing(&self) -> Duration {
        let limit = f64::from(self.limit.max(1)) * SAFETY;
        self.window.div_f64(limit)
    }
}

/// Everything one company's limiter enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub rates: Vec<Rate>,
    /// Calls in flight at once.
    pub concurrent: u32,
    /// Calls per rolling 24 hours, if the vendor caps them.
    pub per_day: Option<u32>,
    /// How long a "minute" lasts (60 s; shorter in tests and benchmarks
    /// that compress time against a fake).
    pub minute: Duration,
}

impl Limits {
    /// The ceiling in calls per `minute`: the tightest rate, scaled.
    pub fn calls_per_minute(&self) -> f64 {
        self.rates
            .iter()
            .map(|r| f64::from(r.limit) * self.minute.as_secs_f64() / r.window.as_secs_f64())
            .fold(f64::INFINITY, f64::min)
    }
}

/// A shared pacer could not be consulted.
#[derive(Debug, thiserror::Error)]
#[error("shared rate limit unavailable: {0}")]
pub struct PacerError(pub String);

/// Pacing shared by every process calling one company (several Lambda
/// instances), so together they stay under the company's one allowance.
#[async_trait]
pub trait SharedPacer: Send + Sync {
    /// Reserve the next start for `key`, at least `spacing` after the
    /// previous reservation of any process and not before a shared pause.
    /// Returns how long to wait from now before starting.
    async fn reserve(&self, key: &str, spacing: Duration) -> Result<Duration, PacerError>;
    /// Nobody of `key` starts before `after` from now has passed.
    async fn pause(&self, key: &str, after: Duration) -> Result<(), PacerError>;
}

struct Shared {
    pacer: Arc<dyn SharedPacer>,
    key: String,
    /// The tightest rate's spacing: one "next start" spaced by it keeps
    /// every rate (each is a bucket of capacity one).
    spacing: Duration,
}

struct State {
    /// Earliest start of the next call, per rate.
    next: Vec<Instant>,
    /// Per rate, the starts of the last window and the units each used:
    /// a call of several units (a batch of items) also waits until the
    /// window has room for all of them, since spacing alone lets the
    /// window hold up to one call's units too many.
    log: Vec<std::collections::VecDeque<(Instant, u32)>>,
    /// Nobody starts before this (after a 429 or an exhausted allowance).
    paused_until: Option<Instant>,
    /// Starts of the calls of the last 24 hours (oldest first), when a
    /// daily cap applies.
    day_calls: VecDeque<Instant>,
    /// The server said the day's allowance is spent: no call before this.
    day_blocked_until: Option<Instant>,
}

/// The rolling window of the daily limit.
const DAY: Duration = Duration::from_secs(24 * 3600);

/// The limiter for one company (QBO realm, Xero tenant).
pub struct RateLimiter {
    limits: Limits,
    /// The window of the daily cap: 24 hours (shorter only in tests).
    day_window: Duration,
    spacing: Vec<Duration>,
    state: Mutex<State>,
    in_flight: Semaphore,
    shared: Option<Shared>,
}

/// Held while one call is in flight.
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
}

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        let now = Instant::now();
        let spacing = limits.rates.iter().map(Rate::spacing).collect();
        Self {
            state: Mutex::new(State {
                next: vec![now; limits.rates.len()],
                log: vec![std::collections::VecDeque::new(); limits.rates.len()],
                paused_until: None,
                day_calls: VecDeque::new(),
                day_blocked_until: None,
            }),
            in_flight: Semaphore::new(limits.concurrent.max(1) as usize),
            day_window: DAY,
            spacing,
            limits,
            shared: None,
        }
    }

    /// Also pace through `pacer` under `key` (the company: `qbo:<realm>`),
    /// shared with every other process using the same key.
    pub fn with_shared(mut self, pacer: Arc<dyn SharedPacer>, key: impl Into<String>) -> Self {
        let spacing = self.spacing.iter().copied().max().unwrap_or_default();
        self.shared = Some(Shared {
            pacer,
            key: key.into(),
            spacing,
        });
        self
    }

    /// The daily cap's rolling window (24 hours unless set; tests shorten
    /// it to watch it roll).
    pub fn with_day_window(mut self, window: Duration) -> Self {
        self.day_window = window;
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for a slot for one plain call ([`Cost::ONE`]).
    pub async fn acquire(&self) -> Result<Slot<'_>, LedgerError> {
        self.acquire_cost(Cost::ONE).await
    }

    /// Wait for a slot for a call of `cost`: a free concurrency permit and
    /// the next start time every rate allows, each rate then moving on by
    /// its spacing times the units the call uses of it. Fails only when the
    /// allowance of the last 24 hours is spent (with the time until the
    /// oldest call leaves it).
    pub async fn acquire_cost(&self, cost: Cost) -> Result<Slot<'_>, LedgerError> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| LedgerError::Transient("rate limiter closed".into()))?;
        let start = {
            let mut s = self.lock();
            let now = Instant::now();
            if let Some(cap) = self.limits.per_day {
                let window = self.day_window;
                while s.day_calls.front().is_some_and(|t| *t + window <= now) {
                    s.day_calls.pop_front();
                }
                if let Some(until) = s.day_blocked_until.filter(|u| *u > now) {
                    return Err(LedgerError::RateLimited(Some(until - now)));
                }
                if s.day_calls.len() >= cap as usize {
                    let oldest = s.day_calls.front().copied().unwrap_or(now);
                    return Err(LedgerError::RateLimited(Some(
                        (oldest + window).saturating_duration_since(now),
                    )));
                }
            }
            let mut start = now;
            for (n, rate) in s.next.iter().zip(&self.limits.rates) {
                if rate.units(cost) > 0 {
                    start = start.max(*n);
                }
            }
            if let Some(p) = s.paused_until {
                start = start.max(p);
            }
            // Room in each rate's window for this call's units: the
            // earliest start at which the window's units plus this call's
            // fit (later starts only see fewer), then recorded.
            // A call is counted where it arrives, a little after it starts
            // here: an entry is kept a window / 0.98 (the safety share of
            // the window again) so the server has let it go first.
            let mut room = start;
            for (log, rate) in s.log.iter().zip(&self.limits.rates) {
                let units = rate.units(cost);
                if units == 0 {
                    continue;
                }
                let cap = ((f64::from(rate.limit) * SAFETY).floor() as u32).max(1);
                let held = rate.window.div_f64(SAFETY);
                let live: Vec<&(Instant, u32)> = log
                    .iter()
                    .filter(|(t, _)| start.saturating_duration_since(*t) < held)
                    .collect();
                let mut used: u32 = live.iter().map(|(_, u)| *u).sum();
                for (t, u) in live {
                    if used.saturating_add(units) <= cap {
                        break;
                    }
                    room = room.max(*t + held);
                    used -= u;
                }
            }
            start = room;
            for (log, rate) in s.log.iter_mut().zip(&self.limits.rates) {
                let units = rate.units(cost);
                let held = rate.window.div_f64(SAFETY);
                while log
                    .front()
                    .is_some_and(|(t, _)| start.saturating_duration_since(*t) >= held)
                {
                    log.pop_front();
                }
                if units > 0 {
                    log.push_back((start, units));
                }
            }
            for ((n, gap), rate) in s.next.iter_mut().zip(&self.spacing).zip(&self.limits.rates) {
                let units = rate.units(cost);
                if units > 0 {
                    *n = start + *gap * units;
                }
            }
            if self.limits.per_day.is_some() {
                s.day_calls.push_back(start);
            }
            start
        };
        tokio::time::sleep_until(start).await;
        if let Some(sh) = &self.shared {
            // Unavailable shared pacing fails the call as transient (it is
            // retried later) rather than risk the company's allowance.
            let spacing = self
                .spacing
                .iter()
                .zip(&self.limits.rates)
                .map(|(gap, rate)| *gap * rate.units(cost))
                .max()
                .unwrap_or_default()
                .max(sh.spacing);
            let wait = sh
                .pacer
                .reserve(&sh.key, spacing)
                .await
                .map_err(|e| LedgerError::Transient(e.to_string()))?;
            tokio::time::sleep(wait).await;
        }
        Ok(Slot { _permit: permit })
    }

    /// [`pause`](Self::pause), and publish the pause to every process
    /// sharing the pacer (best effort: a failure to publish is logged, the
    /// local pause holds regardless).
    pub async fn pause_everywhere(&self, after: Duration) {
        self.pause(after);
        if let Some(sh) = &self.shared {
            if let Err(e) = sh.pacer.pause(&sh.key, after).await {
                tracing::warn!(error = %e, "could not share the rate-limit pause");
            }
        }
    }

    /// The server said to wait (429 `Retry-After`): nobody of this company
    /// starts a call before `after` has passed.
    pub fn pause(&self, after: Duration) {
        let until = Instant::now() + after;
        let mut s = self.lock();
        s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
    }

    /// What the server reports is left (Xero's `X-MinLimit-Remaining`,
    /// `X-DayLimit-Remaining` and `X-AppMinLimit-Remaining`): a spent
    /// minute, the tenant's or the app's, pauses for a minute; a spent day
    /// refuses further calls until the oldest call this limiter knows of
    /// leaves the 24-hour window (an hour when it knows none). The app's
    /// minute is shared by every tenant of the app, so it is honoured
    /// exactly like the tenant's.
    pub fn observe_remaining(
        &self,
        minute: Option<u32>,
        day: Option<u32>,
        app_minute: Option<u32>,
    ) {
        if minute == Some(0) || app_minute == Some(0) {
            self.pause(self.limits.minute);
        }
        if let Some(left) = day {
            let now = Instant::now();
            let mut s = self.lock();
            if left == 0 {
                let until = s
                    .day_calls
                    .front()
                    .map(|t| *t + self.day_window)
                    .filter(|u| *u > now)
                    .unwrap_or(now + Duration::from_secs(3600));
                s.day_blocked_until = Some(until);
            } else if let Some(cap) = self.limits.per_day {
                // Trust the server's count when it has seen more calls
                // (other processes share the allowance): the calls it saw
                // and this limiter did not count from now.
                let seen = cap.saturating_sub(left) as usize;
                while s.day_calls.len() < seen {
                    s.day_calls.push_back(now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rates: Vec<Rate>) -> Limits {
        Limits {
            rates,
            concurrent: 4,
            per_day: Some(5),
            minute: Duration::from_millis(600),
        }
    }

    #[tokio::test]
    async fn paces_at_the_tightest_rate_without_bursting() {
        let l = RateLimiter::new(limits(vec![
            Rate::new(50, Duration::from_millis(100)),
            Rate::new(10, Duration::from_millis(100)),
        ]));
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5 {
            let _s = l.acquire().await.unwrap();
            starts.push(t0.elapsed());
        }
        // 10 per 100 ms → ~10.2 ms apart; the first is immediate. (Compare
        // with t0: a late wake-up may shorten one gap, never the schedule.)
        for (k, at) in starts.iter().enumerate() {
            assert!(*at >= Duration::from_millis(10) * k as u32, "{starts:?}");
        }
        // The day cap (5) is now spent.
        assert!(matches!(
            l.acquire().await,
            Err(LedgerError::RateLimited(Some(_)))
        ));
    }

    #[tokio::test]
    async fn items_count_each_and_batches_count_apart_from_reads() {
        // 100 items per 100 ms (1 ms apart), 5 batches per 100 ms (20 ms).
        let l = RateLimiter::new(Limits {
            rates: vec![
                Rate::per_item(100, Duration::from_millis(100)),
                Rate::per_batch(5, Duration::from_millis(100)),
            ],
            concurrent: 4,
            per_day: None,
            minute: Duration::from_millis(100),
        });
        let t0 = Instant::now();
        // A 30-item batch holds the item rate for ~30 ms …
        drop(l.acquire_cost(Cost::batch(30)).await.unwrap());
        // … so a read waits for it, though it is no batch.
        drop(l.acquire().await.unwrap());
        assert!(
            t0.elapsed() >= Duration::from_millis(28),
            "{:?}",
            t0.elapsed()
        );
        // A one-item batch then starts at once: the batch spacing (20 ms)
        // passed meanwhile, and the read did not move it.
        let t1 = Instant::now();
        drop(l.acquire_cost(Cost::batch(1)).await.unwrap());
        assert!(
            t1.elapsed() < Duration::from_millis(15),
            "{:?}",
            t1.elapsed()
        );
        assert_eq!(Cost::batch(0).items, 1);
    }

    #[tokio::test]
    async fn a_pause_holds_everyone_and_a_spent_day_refuses() {
        let l = RateLimiter::new(limits(vec![Rate::new(1000, Duration::from_secs(1))]));
        l.pause(Duration::from_millis(50));
        let t0 = Instant::now();
        drop(l.acquire().await.unwrap());
        assert!(t0.elapsed() >= Duration::from_millis(45));
        l.observe_remaining(None, Some(0), None);
        assert!(l.acquire().await.is_err());
    }

    /// Issue 11, point 10: the daily allowance is a rolling window (24
    /// hours; shortened here to 400 ms), not a calendar day.
    #[tokio::test]
    async fn the_daily_allowance_rolls_over_its_window_not_at_midnight() {
        let window = Duration::from_millis(400);
        let l = RateLimiter::new(limits(vec![Rate::new(1000, Duration::from_secs(1))]))
            .with_day_window(window);
        let t0 = Instant::now();
        for _ in 0..3 {
            drop(l.acquire().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..2 {
            drop(l.acquire().await.unwrap());
        }
        // Five calls within the window: the sixth must wait until the first
        // three leave it, about 200 ms on.
        match l.acquire().await {
            Err(LedgerError::RateLimited(Some(w))) => {
                assert!(w <= Duration::from_millis(200), "{w:?}");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        tokio::time::sleep_until(t0 + window + Duration::from_millis(20)).await;
        for _ in 0..3 {
            drop(l.acquire().await.unwrap());
        }
        assert!(
            l.acquire().await.is_err(),
            "the later two are still in the window"
        );
        // The server has seen more calls than this process: trusted.
        let l = RateLimiter::new(limits(vec![Rate::new(1000, Duration::from_secs(1))]));
        l.observe_remaining(None, Some(1), None);
        drop(l.acquire().await.unwrap());
        assert!(l.acquire().await.is_err());
    }

    #[tokio::test]
    async fn a_spent_app_minute_pauses_like_a_spent_tenant_minute() {
        let l = RateLimiter::new(limits(vec![Rate::new(1000, Duration::from_secs(1))]));
        l.observe_remaining(Some(40), None, Some(0));
        let t0 = Instant::now();
        drop(l.acquire().await.unwrap());
        assert!(
            t0.elapsed() >= Duration::from_millis(600),
            "{:?}",
            t0.elapsed()
        );
        let l = RateLimiter::new(limits(vec![Rate::new(1000, Duration::from_secs(1))]));
        l.observe_remaining(Some(0), None, Some(500));
        let t0 = Instant::now();
        drop(l.acquire().await.unwrap());
        assert!(t0.elapsed() >= Duration::from_millis(600));
        let l = RateLimiter::new(limits(vec![Rate::new(1000, Duration::from_secs(1))]));
        l.observe_remaining(Some(3), Some(9), Some(500));
        let t0 = Instant::now();
        drop(l.acquire().await.unwrap());
        assert!(t0.elapsed() < Duration::from_millis(600));
    }
}
