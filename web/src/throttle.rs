//! Throttling of failed credential checks: console sign-ins and bearer
//! tokens. Each failure counts against the client that sent it (its IP
//! address) and against the accounts as a whole; past a few free failures
//! a scope is refused for a while that doubles with every further failure
//! (1 s, 2 s, 4 s, … at most [`MAX_BACKOFF`]), and forgotten after
//! [`FORGET_AFTER`] without a failure. A refused attempt is answered 429
//! with `Retry-After` before its token is even looked at.
//!
//! Why "the accounts as a whole" and not one account: a console token
//! names no user (the token *is* the credential), so a wrong guess is a
//! guess at every user's token at once; the accounts scope is what stops
//! many clients guessing together. It has a larger free allowance, so one
//! client alone is stopped by its own scope long before.
//!
//! The clock is injectable ([`Throttle::with_clock`]) so tests step time
//! instead of sleeping. Pure bookkeeping in memory: a restart forgets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures a client may make before it waits (the default of
/// `[console] failed_tokens_per_client`).
pub const CLIENT_FREE: u32 = crate::config::DEFAULT_FAILED_TOKENS_PER_CLIENT;
/// Failures all clients together may make before everyone waits: ten
/// clients' allowance.
pub const ACCOUNTS_FACTOR: u32 = 10;
/// With the default allowance.
pub const ACCOUNTS_FREE: u32 = CLIENT_FREE * ACCOUNTS_FACTOR;
/// The first wait; each further failure doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// A scope with no failure for this long starts afresh.
pub const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);
/// At most this many clients are remembered, so a flood of addresses
/// cannot exhaust memory: past it, quiet clients are forgotten first, then
/// every client (the all-accounts scope is always kept, so such a flood
/// still waits there).
const MAX_CLIENTS: usize = 100_000;

/// The address a request came from, as the hosting layer saw it (the
/// TCP peer of `timepost serve`, API Gateway's `sourceIp` in Lambda),
/// inserted as a request extension. Never parsed from a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// Whom a failure counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One client address (`None`: the address is unknown; all such
    /// requests share one scope).
    Client(Option<IpAddr>),
    /// Every account at once (see the module documentation).
    Accounts,
}

impl Scope {
    /// For the log: which scope engaged.
    pub fn describe(self) -> String {
        match self {
            Scope::Client(Some(ip)) => format!("client {ip}"),
            Scope::Client(None) => "clients of unknown address".into(),
            Scope::Accounts => "all accounts".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

/// The time source: [`Instant::now`] in service, a stepped clock in tests.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The failure counts (see the module documentation).
pub struct Throttle {
    records: Mutex<HashMap<Scope, Record>>,
    clock: Clock,
    /// Failures a client may make before it waits.
    client_free: u32,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::with_clock(Arc::new(Instant::now))
    }
}

/// The wait after `failures` failures with `free` allowed.
fn backoff(failures: u32, free: u32) -> Option<Duration> {
    let over = failures.checked_sub(free)?;
    let factor = 1u32.checked_shl(over.min(20)).unwrap_or(u32::MAX);
    Some(FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF))
}

impl Throttle {
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            records: Mutex::new(HashMap::new()),
            clock,
            client_free: CLIENT_FREE,
        }
    }

    /// With `[console] failed_tokens_per_client` free failures per client
    /// (and ten times that for all accounts).
    pub fn from_config(c: &crate::config::ConsoleConfig) -> Self {
        Self::default().with_allowance(c.failed_tokens_per_client)
    }

    /// `per_client` free failures per client (at least 1).
    pub fn with_allowance(mut self, per_client: u32) -> Self {
        self.client_free = per_client.max(1);
        self
    }

    fn free(&self, scope: Scope) -> u32 {
        match scope {
            Scope::Client(_) => self.client_free,
            Scope::Accounts => self.client_free.saturating_mul(ACCOUNTS_FACTOR),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Scope, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The scopes an attempt from `client` counts against.
    pub fn scopes(client: Option<IpAddr>) -> [Scope; 2] {
        [Scope::Client(client), Scope::Accounts]
    }

    /// May an attempt from `client` be checked now? `Err((scope, wait))`
    /// names the scope that is waiting and how long is left.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), (Scope, Duration)> {
        let now = (self.clock)();
        let map = self.lock();
        let mut longest: Option<(Scope, Duration)> = None;
        for scope in Self::scopes(client) {
            if let Some(until) = map.get(&scope).and_then(|r| r.blocked_until) {
                if until > now {
                    let wait = until - now;
                    if longest.is_none_or(|(_, w)| wait > w) {
                        longest = Some((scope, wait));
                    }
                }
            }
        }
        longest.map_or(Ok(()), Err)
    }

    /// Count a failed attempt from `client`. Returns the scope that now
    /// waits and for how long, if one does.
    pub fn fail(&self, client: Option<IpAddr>) -> Option<(Scope, Duration)> {
        let now = (self.clock)();
        let mut map = self.lock();
        if map.len() >= MAX_CLIENTS {
            map.retain(|_, r| now.saturating_duration_since(r.last_failure) < FORGET_AFTER);
            if map.len() >= MAX_CLIENTS {
                map.retain(|s, _| *s == Scope::Accounts);
            }
        }
        let mut engaged: Option<(Scope, Duration)> = None;
        let scopes = Self::scopes(client);
        let free = scopes.map(|s| self.free(s));
        for (i, scope) in scopes.into_iter().enumerate() {
            let r = map.entry(scope).or_insert(Record {
                failures: 0,
                last_failure: now,
                blocked_until: None,
            });
            if now.saturating_duration_since(r.last_failure) >= FORGET_AFTER {
                r.failures = 0;
                r.blocked_until = None;
            }
            r.failures = r.failures.saturating_add(1);
            r.last_failure = now;
            if let Some(wait) = backoff(r.failures, free[i]) {
                r.blocked_until = Some(now + wait);
                if engaged.is_none_or(|(_, w)| wait > w) {
                    engaged = Some((scope, wait));
                }
            }
        }
        engaged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock that moves only when told to.
    fn stepped() -> (Throttle, Arc<AtomicU64>) {
        let start = Instant::now();
        let ms = Arc::new(AtomicU64::new(0));
        let m = ms.clone();
        let t = Throttle::with_clock(Arc::new(move || {
            start + Duration::from_millis(m.load(Ordering::SeqCst))
        }));
        (t, ms)
    }

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    #[test]
    fn a_client_waits_after_its_free_failures_and_the_wait_doubles() {
        let (t, ms) = stepped();
        for _ in 0..CLIENT_FREE - 1 {
            assert_eq!(t.fail(ip(1)), None);
            assert!(t.check(ip(1)).is_ok());
        }
        let (scope, wait) = t.fail(ip(1)).expect("engaged");
        assert_eq!((scope, wait), (Scope::Client(ip(1)), FIRST_BACKOFF));
        assert_eq!(t.check(ip(1)), Err((Scope::Client(ip(1)), FIRST_BACKOFF)));
        // Another client is not held up.
        assert!(t.check(ip(2)).is_ok());
        // Released once the wait is over; the next failure waits twice as long.
        ms.fetch_add(1000, Ordering::SeqCst);
        assert!(t.check(ip(1)).is_ok());
        assert_eq!(t.fail(ip(1)).map(|(_, w)| w), Some(FIRST_BACKOFF * 2));
        ms.fetch_add(1999, Ordering::SeqCst);
        assert!(t.check(ip(1)).is_err());
        ms.fetch_add(1, Ordering::SeqCst);
        assert!(t.check(ip(1)).is_ok());
    }

    #[test]
    fn the_wait_is_capped_and_forgotten_after_a_quiet_spell() {
        let (t, ms) = stepped();
        let mut last = Duration::ZERO;
        for _ in 0..40 {
            if let Some((_, w)) = t.fail(ip(1)) {
                last = w;
            }
        }
        assert_eq!(last, MAX_BACKOFF);
        ms.fetch_add(FORGET_AFTER.as_millis() as u64, Ordering::SeqCst);
        assert!(t.check(ip(1)).is_ok());
        assert_eq!(t.fail(ip(1)), None, "counted afresh");
    }

    #[test]
    fn many_clients_together_engage_the_accounts_scope() {
        let (t, _) = stepped();
        for n in 0..ACCOUNTS_FREE {
            // Each client stays within its own allowance.
            let r = t.fail(ip((n % 25) as u8));
            if n + 1 < ACCOUNTS_FREE {
                assert!(r.is_none_or(|(s, _)| s != Scope::Accounts), "{n}");
            }
        }
        let fresh = ip(200);
        assert_eq!(t.check(fresh).map_err(|(s, _)| s), Err(Scope::Accounts));
    }
}
