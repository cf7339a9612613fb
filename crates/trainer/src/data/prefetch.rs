//! Producing batches on a helper thread while the trainer computes.

use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};

/// Runs `body` over the items of `source`, which a scoped helper thread produces up to `depth`
/// items ahead; returns `body`'s result and the time `body` spent waiting for items (the
/// stall: zero when production keeps up with consumption).
///
/// Items arrive in the source's order, so training stays deterministic. When `body` returns
/// early, the helper stops at its next item.
pub fn prefetched<I, R>(
    source: I,
    depth: usize,
    body: impl FnOnce(&mut dyn Iterator<Item = I::Item>) -> R,
) -> (R, Duration)
where
    I: Iterator + Send,
    I::Item: Send,
{
    std::thread::scope(|scope| {
        let (sender, receiver) = sync_channel(depth.max(1));
        scope.spawn(move || {
            for item in source {
                if sender.send(item).is_err() {
                    break;
                }
            }
        });
        let mut waiting = Waiting {
            receiver,
            waited: Duration::ZERO,
        };
        let result = body(&mut waiting);
        (result, waiting.waited)
    })
}

/// The consuming end, timing each wait.
struct Waiting<T> {
    receiver: Receiver<T>,
    waited: Duration,
}

impl<T> Iterator for Waiting<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let started = Instant::now();
        let item = self.receiver.recv().ok();
        self.waited += started.elapsed();
        item
    }
}

#[cfg(test)]
mod tests {
    use super::prefetched;

    #[test]
    fn items_arrive_in_order_and_an_early_stop_ends_the_producer() {
        let (all, _) = prefetched(0..100, 2, |items| items.collect::<Vec<_>>());
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        let (first, _) = prefetched(0.., 2, |items| items.take(3).collect::<Vec<_>>());
        assert_eq!(first, [0, 1, 2]);
    }

    #[test]
    fn a_slow_producer_shows_as_waiting() {
        let slow = (0..3).inspect(|_| std::thread::sleep(std::time::Duration::from_millis(20)));
        let (n, waited) = prefetched(slow, 1, |items| items.count());
        assert_eq!(n, 3);
        assert!(waited >= std::time::Duration::from_millis(40), "{waited:?}");
    }
}
