//! The reconciler's work queue, with the semantics of client-go's rate-limited work queue
//! (the one controller-runtime and kube-rs controllers sit on):
//!
//! - Keys, not events: adding a key that is already waiting does nothing (duplicates
//!   collapse), so a burst of commits or webhook deliveries costs one reconcile.
//! - One reconcile per key at a time: a key added while it is being processed is marked dirty
//!   and handed out again once [`WorkQueue::done`] is called, never to two workers at once.
//! - Delays: [`WorkQueue::add_after`] (a controller's "requeue after", the resync timer) and
//!   [`WorkQueue::add_rate_limited`] (per-key error backoff: 1 s doubling to 5 min, full
//!   jitter, reset by [`WorkQueue::forget`] after a success).
//! - Bounded concurrency is the caller's: run N workers that each loop on
//!   [`WorkQueue::next`].
//!
//! Time is tokio's clock (`tokio::time::Instant`), so tests run on paused time; jitter comes
//! from an injected source so backoff is testable exactly.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// First error backoff.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest error backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A source of jitter: given the backoff ceiling, the delay to use (full jitter picks
/// uniformly in `[0, ceiling]`).
pub type Jitter = Box<dyn Fn(Duration) -> Duration + Send + Sync>;

/// Full jitter from the std hasher's per-process random keys (uniqueness, not secrecy, is
/// what matters: it spreads retries of many keys apart).
pub fn full_jitter() -> Jitter {
    Box::new(|ceiling: Duration| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(ceiling.as_nanos());
        let frac = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(frac)
    })
}

struct State<K> {
    /// Keys ready to hand out, in order.
    ready: VecDeque<K>,
    /// Keys in `ready`, or added while processing (they go back to `ready` on `done`).
    dirty: HashSet<K>,
    /// Keys a worker holds.
    processing: HashSet<K>,
    /// Delayed adds: due time → keys. A key may wait here and be ready at the same time;
    /// the dedup happens when it becomes due.
    waiting: BTreeMap<Instant, Vec<K>>,
    /// Earliest due time per waiting key (a later `add_after` of the same key is dropped).
    due: HashMap<K, Instant>,
    /// Consecutive failures per key.
    failures: HashMap<K, u32>,
    shutting_down: bool,
}

/// A deduplicating, per-key-exclusive, delaying work queue. Cheap to share behind an `Arc`.
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    wake: Notify,
    jitter: Jitter,
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// An empty queue with [`full_jitter`].
    pub fn new() -> Self {
        Self::with_jitter(full_jitter())
    }

    /// An empty queue with a given jitter source (tests pass the identity for exact delays).
    pub fn with_jitter(jitter: Jitter) -> Self {
        Self {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                waiting: BTreeMap::new(),
                due: HashMap::new(),
                failures: HashMap::new(),
                shutting_down: false,
            }),
            wake: Notify::new(),
            jitter,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `key` now. No effect when it is already queued; when a worker holds it, it is
    /// handed out again after [`WorkQueue::done`].
    pub fn add(&self, key: K) {
        let mut s = self.lock();
        if s.shutting_down || !s.dirty.insert(key.clone()) {
            return;
        }
        if !s.processing.contains(&key) {
            s.ready.push_back(key);
            drop(s);
            self.wake.notify_one();
        }
    }

    /// Queue `key` after `delay` (now when zero). When the key already waits for an earlier
    /// time, the earlier one stands.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        let mut s = self.lock();
        if s.shutting_down || s.due.get(&key).is_some_and(|&t| t <= at) {
            return;
        }
        if let Some(old) = s.due.insert(key.clone(), at)
            && let Some(keys) = s.waiting.get_mut(&old)
        {
            keys.retain(|k| k != &key);
        }
        s.waiting.entry(at).or_default().push(key);
        drop(s);
        // A worker sleeping until a later due time must recompute.
        self.wake.notify_one();
    }

    /// Queue `key` after its error backoff: 1 s, 2 s, 4 s … up to 5 min, with jitter; each
    /// call counts one more failure. Returns the delay chosen.
    pub fn add_rate_limited(&self, key: K) -> Duration {
        let n = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let ceiling = BACKOFF_BASE
            .saturating_mul(1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX))
            .min(BACKOFF_MAX);
        let delay = (self.jitter)(ceiling).min(ceiling);
        self.add_after(key, delay);
        delay
    }

    /// Forget `key`'s failures (after a successful reconcile): its next backoff starts at 1 s.
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// Drop `key` altogether (its object left the desired set): out of the ready list and the
    /// delayed adds, failures forgotten. A worker holding it finishes; it is not handed out again
    /// unless added anew.
    pub fn remove(&self, key: &K) {
        let mut s = self.lock();
        s.ready.retain(|k| k != key);
        s.dirty.remove(key);
        if let Some(at) = s.due.remove(key)
            && let Some(keys) = s.waiting.get_mut(&at)
        {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                s.waiting.remove(&at);
            }
        }
        s.failures.remove(key);
    }

    /// Every key the queue knows: ready, delayed or held by a worker (for dropping those whose
    /// object left the desired set).
    pub fn keys(&self) -> Vec<K> {
        let s = self.lock();
        let mut all: HashSet<K> = s.dirty.iter().cloned().collect();
        all.extend(s.processing.iter().cloned());
        all.extend(s.due.keys().cloned());
        all.into_iter().collect()
    }

    /// Consecutive failures of `key`.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The worker is finished with `key`: if it was added meanwhile, it is ready again.
    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.ready.push_back(key.clone());
            drop(s);
            self.wake.notify_one();
        }
    }

    /// Keys ready now plus keys a worker holds (the `opsctl_workqueue_depth` gauge counts the
    /// ready ones: [`WorkQueue::depth`]).
    pub fn depth(&self) -> usize {
        let mut s = self.lock();
        Self::promote(&mut s);
        s.ready.len()
    }

    /// Stop handing out keys: [`WorkQueue::next`] returns `None` from now on.
    pub fn shut_down(&self) {
        self.lock().shutting_down = true;
        self.wake.notify_waiters();
    }

    /// Move due delayed keys to `ready`; the next due time, if any is left.
    fn promote(s: &mut State<K>) -> Option<Instant> {
        let now = Instant::now();
        while let Some(entry) = s.waiting.first_entry() {
            if *entry.key() > now {
                break;
            }
            for key in entry.remove() {
                s.due.remove(&key);
                if s.dirty.insert(key.clone()) && !s.processing.contains(&key) {
                    s.ready.push_back(key);
                }
            }
        }
        s.waiting.keys().next().copied()
    }

    /// Wait for the next ready key and take it (the caller must call [`WorkQueue::done`]).
    /// `None` once the queue is shut down.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut s = self.lock();
                if s.shutting_down {
                    return None;
                }
                let next_due = Self::promote(&mut s);
                if let Some(key) = s.ready.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    let more = !s.ready.is_empty();
                    drop(s);
                    if more {
                        self.wake.notify_one();
                    }
                    return Some(key);
                }
                next_due
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn exact() -> WorkQueue<&'static str> {
        WorkQueue::with_jitter(Box::new(|d| d))
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_collapse_and_order_is_kept() {
        let q = exact();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.depth(), 2);
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.next().await, Some("b"));
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_is_never_handed_to_two_workers_and_comes_back_when_added_meanwhile() {
        let q = Arc::new(exact());
        q.add("app");
        let held = q.next().await.unwrap();
        q.add("app"); // a commit arrives while the app reconciles
        let q2 = q.clone();
        let second = tokio::spawn(async move { q2.next().await });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!second.is_finished(), "handed out while still processing");
        q.done(&held);
        assert_eq!(second.await.unwrap(), Some("app"));
        q.done(&"app");
        assert_eq!(q.depth(), 0, "processed once more, not twice");
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_waits_and_the_earlier_time_wins() {
        let q = Arc::new(exact());
        let t0 = Instant::now();
        q.add_after("idle", Duration::from_secs(300));
        q.add_after("idle", Duration::from_secs(15)); // a rollout started: observe sooner
        q.add_after("idle", Duration::from_secs(600));
        assert_eq!(q.next().await, Some("idle"));
        assert_eq!(t0.elapsed(), Duration::from_secs(15));
        q.done(&"idle");
        let q2 = q.clone();
        let again = tokio::spawn(async move { q2.next().await });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!again.is_finished(), "the later adds were dropped");
        q.shut_down();
        assert_eq!(again.await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn error_backoff_doubles_from_one_second_to_five_minutes_and_resets() {
        let q = exact();
        let delays: Vec<u64> = (0..12)
            .map(|_| {
                let d = q.add_rate_limited("app").as_secs();
                q.lock().due.clear();
                q.lock().waiting.clear();
                d
            })
            .collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300],
            "1 s doubling, capped at 5 min"
        );
        assert_eq!(q.failures(&"app"), 12);
        q.forget(&"app");
        assert_eq!(q.add_rate_limited("app"), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_key_is_not_handed_out_ready_or_delayed() {
        let q = Arc::new(exact());
        q.add("gone");
        q.add_after("gone-later", Duration::from_secs(5));
        q.add_rate_limited("gone");
        q.add("kept");
        let mut keys = q.keys();
        keys.sort();
        assert_eq!(keys, ["gone", "gone-later", "kept"]);
        q.remove(&"gone");
        q.remove(&"gone-later");
        assert_eq!(q.depth(), 1);
        assert_eq!(q.failures(&"gone"), 0);
        assert_eq!(q.next().await, Some("kept"));
        q.done(&"kept");
        let q2 = q.clone();
        let next = tokio::spawn(async move { q2.next().await });
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!next.is_finished(), "a removed key came back");
        q.shut_down();
        assert_eq!(next.await.unwrap(), None);
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_varies() {
        let j = full_jitter();
        let ceiling = Duration::from_secs(8);
        let picks: HashSet<u128> = (0..50).map(|_| j(ceiling).as_millis()).collect();
        assert!(picks.iter().all(|&ms| ms <= 8000));
        assert!(picks.len() > 10, "not jittered: {picks:?}");
    }
}
