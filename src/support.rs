//! Small pieces every layer shares: work repeated until cancelled, a backoff, and a lock that a
//! panic elsewhere does not poison for good.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Waits `pause`; false when `stop` came first.
pub async fn sleep_or_stop(pause: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(pause) => true,
    }
}

/// Runs `work` after every `period` until `stop`; a run that takes long delays the next rather
/// than piling runs up.
pub async fn every<F, Fut>(period: Duration, stop: CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    while sleep_or_stop(period, &stop).await {
        work().await;
    }
}

/// A pause that doubles after each wait, from `first` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            next: first,
            max,
        }
    }

    /// The pause the next wait takes.
    pub fn next_pause(&self) -> Duration {
        self.next
    }

    /// The pause to take now; the next one is twice as long, up to the ceiling.
    pub fn advance(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Waits the next pause; false when `stop` came first.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let pause = self.advance();
        sleep_or_stop(pause, stop).await
    }
}

/// Locks `mutex`, also after a panic while it was held: the state behind every lock of the
/// service is updated in single steps, so a panic elsewhere leaves it whole.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads through `lock`, as [`lock`] locks.
pub fn lock_read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes through `lock`, as [`lock`] locks.
pub fn lock_write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_to_its_ceiling_and_starts_again_when_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let pauses: Vec<_> = (0..4).map(|_| backoff.advance().as_millis()).collect();
        assert_eq!(pauses, [100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn work_repeats_until_stopped() {
        let stop = CancellationToken::new();
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = runs.clone();
        let stopper = stop.clone();
        let task = tokio::spawn(every(Duration::from_secs(1), stop, move || {
            let runs = counted.clone();
            let stopper = stopper.clone();
            async move {
                if runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2 {
                    stopper.cancel();
                }
            }
        }));
        task.await.unwrap();
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
