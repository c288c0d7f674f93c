//! Keyed budgets: at most `limit` events per `window` for each key.
//!
//! Used two ways: *failure* budgets (a client's misses — unknown tokens, bad
//! credentials — are [`Budgets::spend`]t after the fact, and every request
//! that could reveal a token is [`Budgets::check`]ed first, which spends
//! nothing), and *rate* budgets (each create [`Budgets::take`]s one).
//!
//! A fixed window per key, opened by the key's first event. The entries live
//! in a `moka` cache bounded by entry count and expiring with their window,
//! so memory stays bounded however many addresses try. (`governor`, the
//! usual keyed limiter, has no check that does not spend, which a failure
//! budget needs — the decision to refuse comes before the answer that would
//! be a miss — and its keyed store has no size bound.)
//!
//! Time is [`tokio::time::Instant`], so tests pause and advance it.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::client::ClientKey;

/// `limit` events per `window`; written `20/10m`, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u32,
    pub window: Duration,
}

impl Budget {
    pub const OFF: Budget = Budget {
        limit: u32::MAX,
        window: Duration::from_secs(1),
    };

    pub fn is_off(&self) -> bool {
        self.limit == u32::MAX
    }
}

impl FromStr for Budget {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(Budget::OFF);
        }
        let bad = || format!("{raw:?} is not a budget: write COUNT/DURATION (`20/10m`) or `off`");
        let (count, window) = raw.split_once('/').ok_or_else(bad)?;
        let limit: u32 = count.trim().parse().map_err(|_| bad())?;
        let window = humantime_lite(window.trim()).ok_or_else(bad)?;
        if limit == 0 || limit == u32::MAX || window.is_zero() {
            return Err(bad());
        }
        Ok(Budget { limit, window })
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        write!(f, "{}/{}s", self.limit, self.window.as_secs_f64())
    }
}

/// `500ms`, `30s`, `10m`, `1h`, `1d` (one unit, as the flags are written).
fn humantime_lite(raw: &str) -> Option<Duration> {
    let split = raw.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = raw.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// How long until a refused key may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for a `Retry-After` header, at least 1.
    pub fn secs(&self) -> u64 {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        secs.max(1)
    }
}

#[derive(Debug)]
struct Window {
    start: Instant,
    spent: u32,
}

/// One budget kept per key.
#[derive(Debug)]
pub struct Budgets {
    budget: Budget,
    entries: moka::sync::Cache<ClientKey, Arc<Mutex<Window>>>,
}

impl Budgets {
    /// `max_keys` bounds memory: beyond it the least useful keys are
    /// forgotten (their budget starts afresh).
    pub fn new(budget: Budget, max_keys: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_keys)
            .time_to_live(budget.window)
            .build();
        Self { budget, entries }
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Refuses a key whose budget is spent; spends nothing.
    pub fn check(&self, key: &ClientKey) -> Result<(), RetryAfter> {
        if self.budget.is_off() {
            return Ok(());
        }
        let Some(window) = self.entries.get(key) else {
            return Ok(());
        };
        let window = lock(&window);
        self.refusal(&window, Instant::now()).map_or(Ok(()), Err)
    }

    /// Spends one unit (a miss happened). Returns the refusal the key's next
    /// checks will get, if this spent the budget.
    pub fn spend(&self, key: &ClientKey) -> Result<(), RetryAfter> {
        self.apply(key, false)
    }

    /// Spends one unit if any is left (a create), else refuses and spends
    /// nothing.
    pub fn take(&self, key: &ClientKey) -> Result<(), RetryAfter> {
        self.apply(key, true)
    }

    /// Keys currently held.
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply(&self, key: &ClientKey, refuse_when_spent: bool) -> Result<(), RetryAfter> {
        if self.budget.is_off() {
            return Ok(());
        }
        let now = Instant::now();
        let entry = self.entries.get_with_by_ref(key, || {
            Arc::new(Mutex::new(Window {
                start: now,
                spent: 0,
            }))
        });
        let mut window = lock(&entry);
        if now.duration_since(window.start) >= self.budget.window {
            *window = Window {
                start: now,
                spent: 0,
            };
        }
        if refuse_when_spent {
            if let Some(refusal) = self.refusal(&window, now) {
                return Err(refusal);
            }
            window.spent = window.spent.saturating_add(1);
            return Ok(());
        }
        window.spent = window.spent.saturating_add(1);
        self.refusal(&window, now).map_or(Ok(()), Err)
    }

    fn refusal(&self, window: &Window, now: Instant) -> Option<RetryAfter> {
        let elapsed = now.duration_since(window.start);
        (elapsed < self.budget.window && window.spent >= self.budget.limit)
            .then(|| RetryAfter(self.budget.window - elapsed))
    }
}

fn lock(window: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    // A counter cannot be left inconsistent by a panic elsewhere.
    window.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> ClientKey {
        ClientKey::addr(std::net::IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn budgets_parse() {
        let cases: &[(&str, Option<Budget>)] = &[
            (
                "20/10m",
                Some(Budget {
                    limit: 20,
                    window: Duration::from_secs(600),
                }),
            ),
            (
                " 5 / 30s ",
                Some(Budget {
                    limit: 5,
                    window: Duration::from_secs(30),
                }),
            ),
            ("off", Some(Budget::OFF)),
            ("0/1m", None),
            ("20", None),
            ("x/1m", None),
            ("20/10 minutes", None),
            ("20/0s", None),
        ];
        for (raw, want) in cases {
            assert_eq!(raw.parse::<Budget>().ok(), *want, "{raw}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn misses_spend_the_budget_and_it_recovers() {
        let budgets = Budgets::new("3/10m".parse().unwrap(), 1000);
        assert_eq!(budgets.check(&key(1)), Ok(()));
        assert_eq!(budgets.spend(&key(1)), Ok(()));
        assert_eq!(budgets.spend(&key(1)), Ok(()));
        assert!(budgets.spend(&key(1)).is_err(), "the third miss spends it");
        let refused = budgets.check(&key(1)).unwrap_err();
        assert_eq!(refused.secs(), 600);
        assert_eq!(budgets.check(&key(2)), Ok(()), "others are not affected");
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(budgets.check(&key(1)).unwrap_err().secs(), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(budgets.check(&key(1)), Ok(()), "a new window");
        assert_eq!(budgets.spend(&key(1)), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn take_refuses_once_spent_and_spends_nothing_then() {
        let budgets = Budgets::new("2/1m".parse().unwrap(), 1000);
        assert_eq!(budgets.take(&key(1)), Ok(()));
        assert_eq!(
            budgets.take(&key(1)),
            Ok(()),
            "the second is within the budget"
        );
        assert!(budgets.take(&key(1)).is_err());
        assert!(budgets.take(&key(1)).is_err());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(budgets.take(&key(1)), Ok(()));
    }

    #[test]
    fn off_never_refuses() {
        let budgets = Budgets::new(Budget::OFF, 10);
        for _ in 0..100 {
            assert_eq!(budgets.take(&key(1)), Ok(()));
        }
        assert!(budgets.is_empty());
    }
}
