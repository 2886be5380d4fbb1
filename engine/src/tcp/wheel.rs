//! The per-core hierarchical timer wheel.
//!
//! One wheel per worker core (DESIGN.md, principles 2 and 5) holds every
//! timer of every connection on that core: tens of millions of entries, so
//! each operation must be O(1) and each entry small.
//!
//! # Structure
//!
//! Time is counted in ticks (1 ms by default, configurable). There are
//! [`LEVELS`] = 6 levels of 64 slots: level `L` slot `s` holds timers whose
//! deadline tick agrees with the wheel's current tick on every bit above
//! `6·(L+1)` and has `s` in bits `6·L .. 6·L+6`. Level 0 slots are one tick
//! wide, level 5 slots 2³⁰ ticks; the levels together span 2³⁶ ticks (about
//! 795 days at 1 ms). Deadlines further out sit on an overflow list and are
//! re-filed when the wheel reaches their 2³⁶-tick block.
//!
//! Entries live in a slab (`Vec` plus free list) and each slot is an
//! intrusive doubly-linked list threaded through the slab by `u32` index, so
//! after warm-up nothing allocates. A 64-bit occupancy mask per level finds
//! the next non-empty slot with one `trailing_zeros`.
//!
//! - [`insert`](TimerWheel::insert), [`cancel`](TimerWheel::cancel),
//!   [`reschedule`](TimerWheel::reschedule): O(1).
//! - [`poll_expired`](TimerWheel::poll_expired): amortised O(1) per timer:
//!   when the wheel reaches a level-`L` slot its entries move down to a lower
//!   level (a *cascade*), at most [`LEVELS`] times per timer, plus one
//!   re-filing per 2³⁶ ticks for overflow entries.
//!
//! # Contract
//!
//! - A timer never fires early: it fires from the first `poll_expired(now)`
//!   whose `now` is at or after the deadline rounded *up* to a tick, so it is
//!   at most one tick late relative to a caller that polls every tick.
//! - A deadline at or before the wheel's current tick (in the past) fires on
//!   the next poll.
//! - A deadline that rounds up past the last tick an `Instant` can name
//!   (within one tick of `u64::MAX` ns, some 584 years after the origin)
//!   never fires: that is the saturated "never" of `Instant + Duration`.
//! - `now` must not go backwards; an earlier `now` is treated as no progress.
//! - Handles carry a generation: cancelling or rescheduling a handle whose
//!   timer has fired or been cancelled is a no-op, even after its slab slot
//!   has been reused (until the 32-bit generation wraps, 2³² reuses of one
//!   slot later).
//! - Timers due in the same tick fire in unspecified order.
//! - Nothing here panics; inserting beyond `u32::MAX - 1` live timers hands
//!   the value back as [`WheelFull`].

use core::fmt;

use crate::time::{Duration, Instant};

/// Number of levels.
pub const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Ticks covered by the levels: 2³⁶.
const SPAN_BITS: u32 = SLOT_BITS * LEVELS as u32;

/// List ids: `0..LEVELS*SLOTS` are wheel slots, then the overflow list and
/// the ready list (due, waiting to be polled).
const WHEEL_LISTS: u16 = (LEVELS * SLOTS) as u16;
const OVERFLOW: u16 = WHEEL_LISTS;
const READY: u16 = WHEEL_LISTS + 1;
const LISTS: usize = READY as usize + 1;
/// `Entry::list` of a free slab slot.
const FREE: u16 = u16::MAX;
const NIL: u32 = u32::MAX;

/// The default tick: 1 ms.
pub const DEFAULT_TICK: Duration = Duration::from_millis(1);

/// Identifies a timer in a [`TimerWheel`]. Stale handles are harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerHandle {
    index: u32,
    generation: u32,
}

/// The wheel holds `u32::MAX - 1` timers already; the value is handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelFull<T>(pub T);

impl<T> fmt::Display for WheelFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timer wheel is full")
    }
}

struct Entry<T> {
    /// Deadline in ticks, rounded up.
    when: u64,
    next: u32,
    prev: u32,
    generation: u32,
    list: u16,
    value: Option<T>,
}

/// A hierarchical timer wheel carrying a `T` per timer (typically a
/// connection index). See the module docs for the contract.
pub struct TimerWheel<T> {
    entries: Vec<Entry<T>>,
    heads: [u32; LISTS],
    occupied: [u64; LEVELS],
    free_head: u32,
    /// The current tick: every timer with `when <= elapsed` is on the ready
    /// list or has fired.
    elapsed: u64,
    tick_ns: u64,
    len: usize,
    /// Lower bound on `when` over the overflow list.
    overflow_min: u64,
    cascades: u64,
}

impl<T> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len)
            .field("elapsed_ticks", &self.elapsed)
            .field("tick_ns", &self.tick_ns)
            .field("slab", &self.entries.len())
            .finish()
    }
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose clock starts at `now`, with the given tick
    /// (clamped to at least 1 ns).
    pub fn new(now: Instant, tick: Duration) -> Self {
        Self::with_capacity(now, tick, 0)
    }

    /// As [`new`](Self::new), with room for `capacity` timers before the
    /// slab grows.
    pub fn with_capacity(now: Instant, tick: Duration, capacity: usize) -> Self {
        let tick_ns = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX).max(1);
        TimerWheel {
            entries: Vec::with_capacity(capacity),
            heads: [NIL; LISTS],
            occupied: [0; LEVELS],
            free_head: NIL,
            elapsed: now.as_nanos() / tick_ns,
            tick_ns,
            len: 0,
            overflow_min: u64::MAX,
            cascades: 0,
        }
    }

    /// The tick length.
    pub fn tick(&self) -> Duration {
        Duration::from_nanos(self.tick_ns)
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slab slots allocated (live plus free): the memory high-water mark is
    /// this times `size_of` of an entry.
    pub fn slab_len(&self) -> usize {
        self.entries.len()
    }

    /// Entries moved down a level or re-filed from overflow so far: the
    /// amortised cost of expiry beyond one step per timer.
    pub fn cascades(&self) -> u64 {
        self.cascades
    }

    /// Whether `handle` names a pending timer.
    pub fn contains(&self, handle: TimerHandle) -> bool {
        self.live(handle).is_some()
    }

    /// Arms a timer firing at `deadline` (rounded up to a tick).
    pub fn insert(&mut self, deadline: Instant, value: T) -> Result<TimerHandle, WheelFull<T>> {
        let when = self.tick_ceil(deadline);
        let index = if self.free_head != NIL {
            let i = self.free_head;
            let e = &mut self.entries[i as usize];
            self.free_head = e.next;
            e.when = when;
            e.value = Some(value);
            i
        } else {
            let i = self.entries.len();
            if i >= NIL as usize {
                return Err(WheelFull(value));
            }
            self.entries.push(Entry {
                when,
                next: NIL,
                prev: NIL,
                generation: 0,
                list: FREE,
                value: Some(value),
            });
            i as u32
        };
        self.len += 1;
        let list = self.list_for(when);
        self.link(index, list);
        Ok(TimerHandle {
            index,
            generation: self.entries[index as usize].generation,
        })
    }

    /// Cancels the timer and returns its value; `None` (and no effect) if it
    /// already fired or was cancelled.
    pub fn cancel(&mut self, handle: TimerHandle) -> Option<T> {
        let index = self.live(handle)?;
        self.unlink(index);
        self.release(index)
    }

    /// Moves a pending timer to `deadline`, keeping its handle. Returns
    /// `false` (and does nothing) if the handle is stale.
    pub fn reschedule(&mut self, handle: TimerHandle, deadline: Instant) -> bool {
        let Some(index) = self.live(handle) else {
            return false;
        };
        let when = self.tick_ceil(deadline);
        self.unlink(index);
        self.entries[index as usize].when = when;
        let list = self.list_for(when);
        self.link(index, list);
        true
    }

    /// Fires one due timer: returns the value of a timer whose deadline
    /// (rounded up to a tick) is at or before `now`, removing it, or `None`
    /// when none is due. Call until `None`; the wheel may be changed between
    /// calls.
    pub fn poll_expired(&mut self, now: Instant) -> Option<T> {
        let now_tick = now.as_nanos() / self.tick_ns;
        loop {
            let head = self.heads[READY as usize];
            if head != NIL {
                self.unlink(head);
                return self.release(head);
            }
            match self.next_expiration() {
                Some((list, at)) if at <= now_tick => {
                    self.elapsed = self.elapsed.max(at);
                    self.refile(list);
                }
                _ => {
                    self.elapsed = self.elapsed.max(now_tick);
                    return None;
                }
            }
        }
    }

    /// Fires every due timer, passing each value to `fire`. Returns how many
    /// fired.
    pub fn advance(&mut self, now: Instant, mut fire: impl FnMut(T)) -> usize {
        let mut n = 0;
        while let Some(v) = self.poll_expired(now) {
            fire(v);
            n += 1;
        }
        n
    }

    /// When to poll next: a lower bound on the earliest instant at which
    /// [`poll_expired`](Self::poll_expired) returns a timer, or `None` if the
    /// wheel is empty. Exact when the next timer is within 64 ticks;
    /// otherwise the start of its slot, where polling only cascades (the
    /// caller just asks again). A timer already due gives the current tick.
    pub fn next_deadline(&self) -> Option<Instant> {
        let tick = if self.heads[READY as usize] != NIL {
            self.elapsed
        } else {
            self.next_expiration()?.1
        };
        Some(Instant::from_nanos(tick.saturating_mul(self.tick_ns)))
    }

    fn tick_ceil(&self, t: Instant) -> u64 {
        let n = t.as_nanos();
        n / self.tick_ns + u64::from(!n.is_multiple_of(self.tick_ns))
    }

    fn live(&self, handle: TimerHandle) -> Option<u32> {
        let e = self.entries.get(handle.index as usize)?;
        (e.list != FREE && e.generation == handle.generation).then_some(handle.index)
    }

    /// The list a timer due at tick `when` belongs on, given `elapsed`.
    fn list_for(&self, when: u64) -> u16 {
        if when <= self.elapsed {
            return READY;
        }
        // The highest bit where `when` and `elapsed` differ picks the level
        // (at least level 0: the low six bits are the level-0 slot).
        let masked = (self.elapsed ^ when) | SLOT_MASK;
        let level = (63 - masked.leading_zeros()) / SLOT_BITS;
        if level as usize >= LEVELS {
            return OVERFLOW;
        }
        let slot = (when >> (level * SLOT_BITS)) & SLOT_MASK;
        (level as usize * SLOTS + slot as usize) as u16
    }

    /// The earliest non-empty list and the tick at which it must be
    /// processed. Lower levels always come first: every entry of level `L`
    /// lies within the current level-`L+1` slot.
    fn next_expiration(&self) -> Option<(u16, u64)> {
        for (level, &occupied) in self.occupied.iter().enumerate() {
            let shift = level as u32 * SLOT_BITS;
            let current = (self.elapsed >> shift) & SLOT_MASK;
            let ahead = occupied & (u64::MAX << current);
            if ahead != 0 {
                let slot = u64::from(ahead.trailing_zeros());
                let block = self.elapsed & !((1u64 << (shift + SLOT_BITS)) - 1);
                let at = block | (slot << shift);
                return Some(((level * SLOTS) as u16 + slot as u16, at));
            }
        }
        if self.heads[OVERFLOW as usize] != NIL {
            // Start of the first 2^36-tick block holding an overflow entry.
            let at = self.overflow_min & !((1u64 << SPAN_BITS) - 1);
            return Some((OVERFLOW, at));
        }
        None
    }

    /// Empties `list` and files each entry again relative to `elapsed`:
    /// level 0 entries become ready, higher ones move down (cascade).
    fn refile(&mut self, list: u16) {
        let mut index = self.heads[list as usize];
        self.heads[list as usize] = NIL;
        if list < WHEEL_LISTS {
            self.occupied[list as usize / SLOTS] &= !(1u64 << (list as usize % SLOTS));
        } else {
            self.overflow_min = u64::MAX;
        }
        let cascades = list >= SLOTS as u16;
        while index != NIL {
            let e = &self.entries[index as usize];
            let next = e.next;
            let target = self.list_for(e.when);
            self.link(index, target);
            if cascades {
                self.cascades += 1;
            }
            index = next;
        }
    }

    fn link(&mut self, index: u32, list: u16) {
        let head = self.heads[list as usize];
        let e = &mut self.entries[index as usize];
        e.prev = NIL;
        e.next = head;
        e.list = list;
        let when = e.when;
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.heads[list as usize] = index;
        if list < WHEEL_LISTS {
            self.occupied[list as usize / SLOTS] |= 1u64 << (list as usize % SLOTS);
        } else if list == OVERFLOW {
            self.overflow_min = self.overflow_min.min(when);
        }
    }

    fn unlink(&mut self, index: u32) {
        let e = &self.entries[index as usize];
        let (prev, next, list) = (e.prev, e.next, e.list);
        if prev == NIL {
            self.heads[list as usize] = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        if list < WHEEL_LISTS && self.heads[list as usize] == NIL {
            self.occupied[list as usize / SLOTS] &= !(1u64 << (list as usize % SLOTS));
        }
        // An emptied overflow list keeps its stale lower bound until the next
        // re-filing; that is allowed (it is only a bound).
    }

    /// Returns an unlinked entry to the free list.
    fn release(&mut self, index: u32) -> Option<T> {
        let e = &mut self.entries[index as usize];
        e.list = FREE;
        e.generation = e.generation.wrapping_add(1);
        e.next = self.free_head;
        e.prev = NIL;
        self.free_head = index;
        self.len -= 1;
        e.value.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn drain<T>(w: &mut TimerWheel<T>, now: Instant) -> Vec<T> {
        let mut v = Vec::new();
        w.advance(now, |x| v.push(x));
        v
    }

    #[test]
    fn entry_size() {
        // Per-timer memory with a `u32` payload (a connection index).
        assert_eq!(core::mem::size_of::<Entry<u32>>(), 32);
        assert_eq!(core::mem::size_of::<Entry<u64>>(), 40);
        assert_eq!(core::mem::size_of::<TimerHandle>(), 8);
    }

    #[test]
    fn fires_on_time_never_early() {
        let mut w = TimerWheel::new(ms(0), DEFAULT_TICK);
        w.insert(ms(10), 10).unwrap();
        w.insert(Instant::from_micros(10_500), 105).unwrap();
        w.insert(ms(100), 100).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(10)));
        assert!(drain(&mut w, Instant::from_micros(9_999)).is_empty());
        assert_eq!(drain(&mut w, ms(10)), vec![10]);
        // 10.5 ms rounds up to tick 11.
        assert!(drain(&mut w, Instant::from_micros(10_999)).is_empty());
        assert_eq!(drain(&mut w, ms(11)), vec![105]);
        assert_eq!(w.len(), 1);
        assert_eq!(drain(&mut w, ms(1_000)), vec![100]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn past_deadlines_fire_on_next_poll() {
        let mut w = TimerWheel::new(ms(1_000), DEFAULT_TICK);
        w.insert(ms(5), 'a').unwrap();
        w.insert(ms(1_000), 'b').unwrap();
        assert_eq!(w.next_deadline(), Some(ms(1_000)));
        let mut fired = drain(&mut w, ms(1_000));
        fired.sort();
        assert_eq!(fired, vec!['a', 'b']);
    }

    #[test]
    fn far_deadlines_overflow_and_come_back() {
        let day = 86_400_000;
        let mut w = TimerWheel::new(ms(0), DEFAULT_TICK);
        // Beyond the 2^36-tick span (~795 days at 1 ms).
        let h = w.insert(ms(1_000 * day), 1).unwrap();
        w.insert(ms(3 * day), 2).unwrap();
        assert_eq!(drain(&mut w, ms(3 * day)), vec![2]);
        assert!(drain(&mut w, ms(1_000 * day - 1)).is_empty());
        assert!(w.contains(h));
        assert_eq!(drain(&mut w, ms(1_000 * day)), vec![1]);
        assert!(w.cascades() > 0);
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        for tick in [1, 3, 1_000_000, u64::MAX] {
            let mut w = TimerWheel::new(Instant::ZERO, Duration::from_nanos(tick));
            w.insert(Instant::from_nanos(u64::MAX), 1).unwrap();
            w.insert(Instant::from_nanos(u64::MAX - 1), 2).unwrap();
            w.insert(Instant::ZERO, 3).unwrap();
            let _ = w.next_deadline();
            assert_eq!(drain(&mut w, Instant::ZERO), vec![3]);
            let mut rest = drain(&mut w, Instant::from_nanos(u64::MAX));
            rest.sort();
            if u64::MAX % tick == 0 {
                assert_eq!(rest, vec![1, 2], "tick {tick}");
                assert!(w.is_empty());
            } else {
                // Rounded up past the last reachable tick: never fires
                // rather than early.
                assert!(rest.is_empty(), "tick {tick}");
                assert_eq!(w.len(), 2);
            }
        }
    }

    #[test]
    fn stale_handles_are_harmless() {
        let mut w = TimerWheel::new(ms(0), DEFAULT_TICK);
        let a = w.insert(ms(50), "a").unwrap();
        assert_eq!(w.cancel(a), Some("a"));
        assert_eq!(w.cancel(a), None);
        // `b` reuses `a`'s slab slot with a new generation.
        let b = w.insert(ms(60), "b").unwrap();
        assert_eq!(a.index, b.index);
        assert_ne!(a, b);
        assert_eq!(w.cancel(a), None);
        assert!(!w.reschedule(a, ms(1)));
        assert!(w.contains(b));
        assert_eq!(drain(&mut w, ms(60)), vec!["b"]);
        // Fired handles are stale too.
        assert_eq!(w.cancel(b), None);
        assert!(!w.reschedule(b, ms(100)));
        // A handle from outside the slab.
        let bogus = TimerHandle {
            index: 1_000,
            generation: 0,
        };
        assert_eq!(w.cancel(bogus), None);
    }

    #[test]
    fn reschedule_moves_earlier_and_later() {
        let mut w = TimerWheel::new(ms(0), DEFAULT_TICK);
        let a = w.insert(ms(10_000), 1).unwrap();
        let b = w.insert(ms(5), 2).unwrap();
        assert!(w.reschedule(a, ms(3)));
        assert!(w.reschedule(b, ms(20_000)));
        assert_eq!(drain(&mut w, ms(3)), vec![1]);
        assert!(drain(&mut w, ms(19_999)).is_empty());
        assert_eq!(drain(&mut w, ms(20_000)), vec![2]);
    }

    /// Tiny deterministic generator for the bulk tests.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn one_million_timers() {
        const N: u64 = 1_000_000;
        let tick = DEFAULT_TICK;
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut w = TimerWheel::with_capacity(ms(0), tick, N as usize);
        let mut deadlines = Vec::with_capacity(N as usize);
        let mut handles = Vec::with_capacity(N as usize);
        for i in 0..N {
            // Up to 10 minutes, ns resolution; a few far ones.
            let d = if i % 1000 == 0 {
                rng.next() % (1 << 46)
            } else {
                rng.next() % 600_000_000_000
            };
            deadlines.push(d);
            handles.push(w.insert(Instant::from_nanos(d), i as u32).unwrap());
        }
        assert_eq!(w.len(), N as usize);
        for h in handles.iter().step_by(2) {
            assert!(w.cancel(*h).is_some());
        }
        assert_eq!(w.len(), (N / 2) as usize);
        let cap = w.slab_len();

        let mut fired = 0u64;
        let mut prev = Instant::ZERO;
        let mut now = Instant::ZERO;
        while !w.is_empty() {
            // Irregular steps of 0.5 to 5 ms, then jumps once the near ones
            // are done.
            let step = if now < ms(600_000) {
                500_000 + rng.next() % 4_500_000
            } else {
                1 << 36
            };
            now += Duration::from_nanos(step);
            let tick_ns = tick.as_nanos() as u64;
            w.advance(now, |i| {
                let d = deadlines[i as usize];
                assert_eq!(i % 2, 1, "a cancelled timer fired");
                assert!(d <= now.as_nanos(), "fired early");
                // Not due at the previous poll (at most one tick late).
                assert!(
                    d.div_ceil(tick_ns) > prev.as_nanos() / tick_ns,
                    "fired late"
                );
                fired += 1;
            });
            prev = now;
        }
        assert_eq!(fired, N / 2);
        // Amortised O(1): each timer cascades at most once per level.
        assert!(w.cascades() <= LEVELS as u64 * N, "{}", w.cascades());

        // Warm slab: another million timers allocate nothing.
        for i in 0..N {
            w.insert(now + Duration::from_millis(i % 5_000), i as u32)
                .unwrap();
        }
        assert!(w.slab_len() <= cap.max(N as usize));
        assert_eq!(w.advance(now + Duration::from_secs(5), |_| {}), N as usize);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert { past: bool, delta: u64 },
        Cancel(usize),
        Reschedule(usize, u64),
        Advance(u64),
    }

    fn delta() -> impl Strategy<Value = u64> {
        prop_oneof![0..16u64, 0..5_000u64, 0..(1u64 << 30), 0..(1u64 << 42),]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<bool>(), delta()).prop_map(|(past, delta)| Op::Insert { past: past && delta % 7 == 0, delta }),
            1 => any::<usize>().prop_map(Op::Cancel),
            1 => (any::<usize>(), delta()).prop_map(|(i, d)| Op::Reschedule(i, d)),
            2 => prop_oneof![0..4u64, 0..2_000u64, 0..(1u64 << 38)].prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Against a `BTreeMap` model: the same timers fire, at the tick the
        /// contract says, and none early.
        #[test]
        fn matches_model(
            tick in prop_oneof![Just(1u64), Just(7), Just(1_000), Just(1_000_000)],
            start in 0..(1u64 << 50),
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut w = TimerWheel::new(Instant::from_nanos(start), Duration::from_nanos(tick));
            let mut now = start;
            let mut model: BTreeMap<u64, u64> = BTreeMap::new(); // id -> deadline ns
            let mut handles: Vec<(u64, TimerHandle)> = Vec::new();
            let mut next_id = 0u64;
            for op in ops {
                match op {
                    Op::Insert { past, delta } => {
                        let d = if past { now.saturating_sub(delta) } else { now.saturating_add(delta) };
                        let h = w.insert(Instant::from_nanos(d), next_id).unwrap();
                        model.insert(next_id, d);
                        handles.push((next_id, h));
                        next_id += 1;
                    }
                    Op::Cancel(i) if !handles.is_empty() => {
                        let (id, h) = handles[i % handles.len()];
                        let want = model.remove(&id).map(|_| id);
                        prop_assert_eq!(w.cancel(h), want);
                    }
                    Op::Reschedule(i, delta) if !handles.is_empty() => {
                        let (id, h) = handles[i % handles.len()];
                        let d = now.saturating_add(delta);
                        let live = model.contains_key(&id);
                        prop_assert_eq!(w.reschedule(h, Instant::from_nanos(d)), live);
                        if live {
                            model.insert(id, d);
                        }
                    }
                    Op::Advance(delta) => {
                        now = now.saturating_add(delta);
                        let mut fired = Vec::new();
                        w.advance(Instant::from_nanos(now), |id| fired.push(id));
                        fired.sort_unstable();
                        let now_tick = now / tick;
                        let due: Vec<u64> = model
                            .iter()
                            .filter(|(_, &d)| d.div_ceil(tick) <= now_tick)
                            .map(|(&id, _)| id)
                            .collect();
                        for id in &fired {
                            prop_assert!(model[id] <= now, "fired early");
                            model.remove(id);
                        }
                        prop_assert_eq!(fired, due);
                    }
                    _ => {}
                }
                prop_assert_eq!(w.len(), model.len());
                // next_deadline is a lower bound on the next firing.
                match (w.next_deadline(), model.values().map(|d| d.div_ceil(tick)).min()) {
                    (None, None) => {}
                    (Some(nd), Some(first)) => {
                        // A timer already due reports the current tick.
                        prop_assert!(nd.as_nanos() <= first.saturating_mul(tick).max(now));
                    }
                    (a, b) => prop_assert!(false, "next_deadline {:?} vs model {:?}", a, b),
                }
            }
        }
    }
}
