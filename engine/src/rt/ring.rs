//! A bounded single-producer, single-consumer ring: the one primitive that
//! crosses cores (worker ↔ worker, worker ↔ application thread, the
//! threaded in-memory wire).
//!
//! Lock-free and wait-free: the producer owns `tail`, the consumer owns
//! `head`; each reads the other's index with `Acquire` only when its cached
//! copy says the ring looks full (producer) or empty (consumer), so in steady
//! state a push or pop touches one shared cache line every `capacity`
//! operations instead of every operation. A full ring refuses the push and
//! hands the value back: the caller decides (push back on the sender, count a
//! drop), nothing is lost silently.
//!
//! [`channel`] returns the two ends; each end is `Send` but not `Clone`, so
//! the single-producer and single-consumer rules hold by construction.

use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Pads a value to its own cache line (128 bytes: adjacent-line prefetch
/// pairs lines on x86).
#[repr(align(128))]
struct Padded<T>(T);

struct Shared<T> {
    /// Next slot to read; written only by the consumer.
    head: Padded<AtomicUsize>,
    /// Next slot to write; written only by the producer.
    tail: Padded<AtomicUsize>,
    mask: usize,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

// SAFETY: a slot is written only by the one producer before it publishes the
// slot with a Release store of `tail`, and read only by the one consumer after
// an Acquire load of `tail` shows it; it is then handed back by a Release
// store of `head`, which the producer Acquires before reusing the slot. So no
// slot is ever accessed from two threads at once, and `T: Send` is enough to
// move values between the threads.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: see above; the shared state owns `T`s that may move threads.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let head = *self.head.0.get_mut();
        let tail = *self.tail.0.get_mut();
        let mut i = head;
        while i != tail {
            let slot = self.slots[i & self.mask].get_mut();
            // SAFETY: slots in head..tail hold initialised values that no one
            // else can reach any more (both ends are gone: we have `&mut`).
            unsafe { slot.assume_init_drop() };
            i = i.wrapping_add(1);
        }
    }
}

/// The sending end of a ring.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: Cell<usize>,
    /// The consumer's `head` as last seen.
    head_cache: Cell<usize>,
}

/// The receiving end of a ring.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: Cell<usize>,
    /// The producer's `tail` as last seen.
    tail_cache: Cell<usize>,
}

// SAFETY: each end is the only handle of its role; moving it to another thread
// moves the role. The `Cell`s are plain copies of indices owned by this end.
unsafe impl<T: Send> Send for Producer<T> {}
// SAFETY: as for `Producer`.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T> core::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl<T> core::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &(self.shared.mask + 1))
            .finish()
    }
}

/// A ring of at least `capacity` slots (rounded up to a power of two, at
/// least 2).
pub fn channel<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let cap = capacity.max(2).next_power_of_two();
    let slots = (0..cap)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        head: Padded(AtomicUsize::new(0)),
        tail: Padded(AtomicUsize::new(0)),
        mask: cap - 1,
        slots,
    });
    (
        Producer {
            shared: shared.clone(),
            tail: Cell::new(0),
            head_cache: Cell::new(0),
        },
        Consumer {
            shared,
            head: Cell::new(0),
            tail_cache: Cell::new(0),
        },
    )
}

impl<T> Producer<T> {
    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.shared.mask + 1
    }

    /// Whether the ring has room for one more value.
    pub fn has_room(&self) -> bool {
        let tail = self.tail.get();
        if tail.wrapping_sub(self.head_cache.get()) < self.capacity() {
            return true;
        }
        self.head_cache
            .set(self.shared.head.0.load(Ordering::Acquire));
        tail.wrapping_sub(self.head_cache.get()) < self.capacity()
    }

    /// Appends `value`, or hands it back when the ring is full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if !self.has_room() {
            return Err(value);
        }
        let tail = self.tail.get();
        // SAFETY: `has_room` showed (with an Acquire load of `head` when the
        // cache was stale) that the consumer is done with this slot, and only
        // this producer writes slots.
        unsafe { (*self.shared.slots[tail & self.shared.mask].get()).write(value) };
        self.tail.set(tail.wrapping_add(1));
        self.shared
            .tail
            .0
            .store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Values waiting in the ring (an upper bound while the consumer runs).
    /// Reads the consumer's index: one shared cache line, so not for every
    /// push.
    pub fn len(&self) -> usize {
        self.tail
            .get()
            .wrapping_sub(self.shared.head.0.load(Ordering::Acquire))
    }

    /// Whether the consumer has taken every value pushed so far.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the consumer end has been dropped.
    pub fn is_disconnected(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }
}

impl<T> Consumer<T> {
    /// Values waiting (a lower bound while the producer runs).
    pub fn len(&self) -> usize {
        self.shared
            .tail
            .0
            .load(Ordering::Acquire)
            .wrapping_sub(self.head.get())
    }

    /// Whether no value is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the oldest value, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let head = self.head.get();
        if head == self.tail_cache.get() {
            self.tail_cache
                .set(self.shared.tail.0.load(Ordering::Acquire));
            if head == self.tail_cache.get() {
                return None;
            }
        }
        let ptr = self.shared.slots[head & self.shared.mask].get();
        // SAFETY: head != tail (as published by the producer with Release and
        // read here with Acquire), so the producer no longer touches this
        // slot and this consumer is its only user until `head` moves on.
        let slot = unsafe { &mut *ptr };
        // SAFETY: the slot holds an initialised value (see above); reading
        // moves it out, and the Release store of `head` below hands the slot
        // back, after which it is treated as uninitialised.
        let value = unsafe { slot.assume_init_read() };
        self.head.set(head.wrapping_add(1));
        self.shared
            .head
            .0
            .store(head.wrapping_add(1), Ordering::Release);
        Some(value)
    }

    /// Whether the producer end has been dropped.
    pub fn is_disconnected(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_full() {
        let (mut p, mut c) = channel(3);
        assert_eq!(p.capacity(), 4);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(9), Err(9));
        assert_eq!(c.len(), 4);
        assert_eq!(p.len(), 4);
        assert_eq!(c.pop(), Some(0));
        assert_eq!(p.len(), 3);
        p.push(4).unwrap();
        let got: Vec<_> = core::iter::from_fn(|| c.pop()).collect();
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert!(c.is_empty());
        assert!(p.is_empty());
    }

    #[test]
    fn drops_what_is_left() {
        let v = Arc::new(());
        let (mut p, c) = channel(8);
        for _ in 0..5 {
            p.push(v.clone()).unwrap();
        }
        assert_eq!(Arc::strong_count(&v), 6);
        drop(p);
        assert!(c.is_disconnected());
        drop(c);
        assert_eq!(Arc::strong_count(&v), 1);
    }

    #[test]
    fn two_threads_keep_order_and_lose_nothing() {
        const N: u64 = 200_000;
        let (mut p, mut c) = channel::<Box<u64>>(64);
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                match p.push(Box::new(i)) {
                    Ok(()) => i += 1,
                    Err(_) => std::hint::spin_loop(),
                }
            }
        });
        let mut next = 0;
        while next < N {
            if let Some(v) = c.pop() {
                assert_eq!(*v, next);
                next += 1;
            } else {
                std::hint::spin_loop();
            }
        }
        t.join().unwrap();
        assert!(c.pop().is_none());
    }
}
