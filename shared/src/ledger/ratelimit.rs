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
//! `limit` units. A semaphore caps calls in flight, a counter caps
//! calls per UTC day, and a 429 (or a server saying the minute's allowance is
//! spent) pauses every caller of the company until the time it names.
//!
//! All of that is per process. Lambda runs many `sync` instances at once
//! against one company's single allowance, so a [`SharedPacer`] (DynamoDB:
//! `crate::aws::ratelimit`) can be plugged in: on every acquire the limiter
//! also reserves the company's next start in the shared store, spaced by the
//! tightest rate, and a 429 pause is published there for every instance.

// `LedgerError` is the port's error type and carries the exception inline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use chrono::{NaiveDate, Utc};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::LedgerError;

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
    /// Calls per UTC day, if the vendor caps them.
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
    day: NaiveDate,
    day_count: u32,
    day_exhausted: bool,
}

/// The limiter for one company (QBO realm, Xero tenant).
pub struct RateLimiter {
    limits: Limits,
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
                day: Utc::now().date_naive(),
                day_count: 0,
                day_exhausted: false,
            }),
            in_flight: Semaphore::new(limits.concurrent.max(1) as usize),
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
    /// day's allowance is spent.
    pub async fn acquire_cost(&self, cost: Cost) -> Result<Slot<'_>, LedgerError> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| LedgerError::Transient("rate limiter closed".into()))?;
        let start = {
            let mut s = self.lock();
            let today = Utc::now().date_naive();
            if s.day != today {
                s.day = today;
                s.day_count = 0;
                s.day_exhausted = false;
            }
            if let Some(cap) = self.limits.per_day {
                if s.day_exhausted || s.day_count >= cap {
                    return Err(LedgerError::RateLimited(Some(until_utc_midnight())));
                }
            }
            let now = Instant::now();
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
            s.day_count += 1;
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

    /// What the server reports is left (Xero's `X-MinLimit-Remaining` and
    /// `X-DayLimit-Remaining`): a spent minute pauses for a minute, a spent
    /// day refuses further calls until midnight UTC.
    pub fn observe_remaining(&self, minute: Option<u32>, day: Option<u32>) {
        if minute == Some(0) {
            self.pause(self.limits.minute);
        }
        if let Some(left) = day {
            let mut s = self.lock();
            if left == 0 {
                s.day_exhausted = true;
            } else if let Some(cap) = self.limits.per_day {
                // Trust the server's count when it has seen more calls
                // (other processes share the allowance).
                s.day_count = s.day_count.max(cap.saturating_sub(left));
            }
        }
    }
}

fn until_utc_midnight() -> Duration {
    let now = Utc::now();
    let midnight = (now.date_naive() + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .map(|m| m.and_utc());
    midnight
        .and_then(|m| (m - now).to_std().ok())
        .unwrap_or(Duration::from_secs(3600))
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
        l.observe_remaining(None, Some(0));
        assert!(l.acquire().await.is_err());
    }
}
