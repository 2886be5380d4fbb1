//! The per-core timer wheel.
//!
//! One wheel per worker core (DESIGN.md, principles 2 and 5) holds every
//! timer of every connection on that core: tens of millions of entries, so
//! each operation must be O(1), each entry small, and no loop iteration may
//! do work for timers that are not due.
//!
//! # Structure
//!
//! The wheel is Linux's non-cascading timer wheel (since 4.8,
//! `kernel/time/timer.c`, "timer: Switch to a non-cascading wheel"), made
//! exact for deadlines up to some 32 s ahead. A timer is filed in the level whose granularity fits its delay. In the
//! coarse levels (4 and up) it stays there until it fires and its expiry is
//! rounded *up* to that granularity, so accuracy falls off with the delay
//! (never early, a bounded fraction late) in exchange for never re-filing
//! entries that are not due. The four *precise* levels (0 to 3, up to
//! [`PRECISE_TICKS`] = 64·8³ = 32 768 ticks ahead, about 32.8 s at 1 ms:
//! RTO up to 32 s, SYN retransmissions, delayed ACK, persist and zero-window
//! probes) are exact to the tick: there a timer is filed at the granule that
//! *contains* its expiry (rounded *down*), so its slot comes due at the
//! granule's start, at or before the deadline, and each timer of that slot
//! that is not yet due is then re-filed, landing in a finer level since what
//! remains of its delay is less than its old granule. A timer is thus
//! re-filed at most three times in its life (level 3 to 2 to 1 to 0 at
//! worst), and re-filing only ever touches timers due within the next 512
//! ticks (one level-3 granule): never a timer far from due.
//!
//! Time is counted in ticks (1 ms by default, configurable). There are
//! [`LEVELS`] = 21 levels of 64 slots, and a level-`n` slot is `8ⁿ` ticks wide
//! (Linux's `LVL_CLK_SHIFT` = 3): level 0 spans 64 ticks one tick apart,
//! level 1 512 ticks 8 apart, level 2 4 096 ticks 64 apart, level 3 32 768
//! ticks 512 apart, …, level 8 about 12 days at 1 ms, level 20 2⁶⁶ ticks.
//! Together they cover the whole `u64` tick range, so there is no overflow
//! list and no clamping: levels that hold nothing cost nothing (a mask of
//! non-empty levels skips them).
//!
//! A timer due at tick `when` (its deadline rounded up to a tick) is filed
//! relative to the wheel's current tick `elapsed` in the lowest level `n`
//! whose ring can hold it. With `G = 8ⁿ` and `cur = elapsed / G` (integer
//! division):
//!
//! - levels 0 to 3 (precise): the slot of granule `g = when / G`, rounded
//!   down, due at tick `g·G ≤ when`; the ring holds it if
//!   `cur < g ≤ cur + 64`;
//! - levels 4 and up (coarse): the slot of its expiry `T = ⌈when / G⌉`,
//!   rounded up, due at tick `T·G ≥ when`; the ring holds it if
//!   `T − cur ≤ 64`.
//!
//! Each slot then holds one granule only: the ring is the 64 granules after
//! the current one. When the wheel reaches a slot's tick the whole slot comes
//! due. Every timer of a coarse slot is due then and fires; a timer of a
//! precise slot fires if its `when` has been reached, and is otherwise filed
//! again from the slot's tick (always into a lower level: its remaining delay
//! is under `G`). (A timer whose `T` would lie past the last tick an
//! [`Instant`] can name, while `when` does not, waits on a list due at that
//! last tick.)
//!
//! Entries live in a slab (`Vec` plus free list) and each slot is an
//! intrusive doubly-linked list threaded through the slab by `u32` index, so
//! after warm-up nothing allocates. A 64-bit occupancy mask per level, rotated
//! to the level's current slot, finds its next due slot with one
//! `trailing_zeros`.
//!
//! - [`insert`](TimerWheel::insert), [`cancel`](TimerWheel::cancel),
//!   [`reschedule`](TimerWheel::reschedule): O(1): the level comes from the
//!   delay's leading zeros, and at most three levels are tried.
//! - [`poll_expired`](TimerWheel::poll_expired): O(1) per timer fired or
//!   re-filed plus O(non-empty levels) per due slot and per call. A slot that
//!   comes due is handed whole to a due list in O(1), however many timers it
//!   holds, and each call pops from it until it finds a timer to fire,
//!   re-filing on the way those not yet due. So a call touches the entry it
//!   returns, the entries it re-files (due within 512 ticks, each at most
//!   three times in its life: amortised O(1) per timer) and nothing else. A
//!   coarse slot, however large, is fired one timer per call, so a worker can
//!   bound the work of a loop iteration by how many timers it polls, save
//!   for the re-files: one call may re-file the not-yet-due part of a whole
//!   precise slot in one go. When `now` jumps far ahead the wheel goes from
//!   one due slot straight to the next through the masks, never through the
//!   empty ticks between. No timer more than 512 ticks from due is ever
//!   touched.
//! - [`next_deadline`](TimerWheel::next_deadline): O(non-empty levels). It is
//!   a lower bound: a precise slot may come due before any of its timers.
//!
//! # Contract
//!
//! - A timer never fires early: it fires from a `poll_expired(now)` whose
//!   `now` is at or after its deadline rounded up to a tick (`when`).
//! - It fires on the tick in the precise levels and at most a bounded time
//!   late beyond. Let `delay = when − elapsed` ticks, taken when it was
//!   inserted or last rescheduled, where `elapsed` is the tick of the latest
//!   `now` the wheel was polled with (or created at). The timer becomes due
//!   at a tick `F`, and fires from the first `poll_expired(now)` with `now`
//!   at or after tick `F`, where
//!   - `F = when` if it is filed in levels 0 to 3, which it is whenever
//!     `delay ≤ 32 768` ([`PRECISE_TICKS`]; from 32 769 to 33 279 it
//!     depends on where `elapsed` lies in its 512-tick granule, and from
//!     33 280 on it never is): exact to the tick;
//!   - otherwise, filed in level `n ≥ 4`, `when ≤ F ≤ when + 8ⁿ − 1` with
//!     `n` at most the largest level such that `63·8ⁿ⁻¹ + 2 ≤ delay` (see
//!     [`max_lateness`]); hence `F − when < 8·delay/63`, under 12.7 % of the
//!     delay. (Linux quotes this bound as "12.5 %"; a ring of 64 slots
//!     rounded at both ends cannot do exactly 1/8.)
//!
//!   A worker that polls every iteration and arms timers at the `now` it
//!   last polled with sees `delay` as its own deadline minus `now`, to the
//!   tick.
//! - [`next_deadline`](TimerWheel::next_deadline) is never later than the
//!   next firing, but may be earlier (by under 512 ticks): the tick a precise
//!   slot comes due, when its timers lie later in its granule. Polling at it
//!   then fires nothing and re-files them, and after any
//!   `poll_expired(now)` that returns `None` the next deadline is after
//!   `now`'s tick: a caller polling at `next_deadline` is told a later time,
//!   never the same instant again.
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

/// Number of levels: enough for the whole `u64` tick range.
pub const LEVELS: usize = 21;
/// Each level's slots are `2^LVL_CLK_SHIFT` times wider than the level
/// below's (Linux's name).
const LVL_CLK_SHIFT: u32 = 3;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Levels `0..PRECISE_LEVELS` are precise: filed rounded down, exact to
/// the tick. The levels above round up.
const PRECISE_LEVELS: u32 = 4;

/// Timers armed at most this many ticks ahead fire on the tick: 64·8³ =
/// 32 768, the span of the precise levels 0 to 3 (about 32.8 s at 1 ms).
pub const PRECISE_TICKS: u64 = (SLOTS as u64) << ((PRECISE_LEVELS - 1) * LVL_CLK_SHIFT);

/// List ids: `0..LEVELS*SLOTS` are wheel slots, then the ready list (timers
/// armed in the past), the list due at the last nameable tick, the list of
/// timers that never fire, and `LEVELS + 1` due lists: the slots (and the
/// last-tick list) that came due together, waiting to be polled.
const WHEEL_LISTS: u16 = (LEVELS * SLOTS) as u16;
const READY: u16 = WHEEL_LISTS;
const LAST: u16 = WHEEL_LISTS + 1;
const NEVER: u16 = WHEEL_LISTS + 2;
const DUE: u16 = WHEEL_LISTS + 3;
const LISTS: usize = DUE as usize + LEVELS + 1;
/// `Entry::list` of a free slab slot.
const FREE: u16 = u16::MAX;
const NIL: u32 = u32::MAX;

/// The default tick: 1 ms.
pub const DEFAULT_TICK: Duration = Duration::from_millis(1);

/// The most ticks late a timer armed `delay` ticks ahead can fire (see the
/// module docs): 0 up to [`PRECISE_TICKS`] (it can only be filed in the
/// precise levels 0 to 3), then `8ⁿ − 1` for the largest `n ≥ 4` with
/// `63·8ⁿ⁻¹ + 2 ≤ delay`. Always below `8·delay/63`.
pub fn max_lateness(delay: u64) -> u64 {
    if delay <= PRECISE_TICKS {
        return 0;
    }
    // Past `PRECISE_TICKS`, the loop below stops at `n ≥ 4`.
    let mut late = 0;
    let mut level = 1;
    while level < LEVELS as u32 {
        let below = 1u64 << ((level - 1) * LVL_CLK_SHIFT);
        let threshold = below.saturating_mul(63).saturating_add(2);
        if delay < threshold {
            break;
        }
        late = (below << LVL_CLK_SHIFT) - 1;
        level += 1;
    }
    late
}

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
    /// The list the entry is on, `FREE` if none. Exact for a list's first
    /// entry; for the others it may name a list the entry was moved away
    /// from with its whole list (a due slot handed over in O(1)), which is
    /// harmless: only a first entry's `list` is ever read, besides `FREE`.
    list: u16,
    value: Option<T>,
}

/// Work done by expiry, counted for the tests.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Work {
    /// Entries touched by expiry: the ones it fired and the ones it
    /// re-filed.
    entries: u64,
    /// Entries re-filed: popped from a precise slot before they were due.
    refiled: u64,
    /// The most ticks ahead of the current tick a re-filed entry was due.
    refile_ahead: u64,
    /// Levels examined while looking for, or collecting, due slots.
    levels: u64,
}

/// A non-cascading hierarchical timer wheel carrying a `T` per timer
/// (typically a connection index). See the module docs for the contract.
pub struct TimerWheel<T> {
    entries: Vec<Entry<T>>,
    heads: [u32; LISTS],
    /// Bit `s` of `occupied[n]`: level `n` slot `s` is non-empty.
    occupied: [u64; LEVELS],
    /// Bit `n`: `occupied[n] != 0`.
    levels: u32,
    /// Bit `k`: due list `DUE + k` is non-empty.
    due: u32,
    free_head: u32,
    /// The current tick: every timer whose expiry is at or before it is on
    /// the ready list or a due list or has fired, and every slot's expiry is
    /// after it.
    elapsed: u64,
    /// The last tick an `Instant` can name.
    max_tick: u64,
    tick_ns: u64,
    len: usize,
    #[cfg(test)]
    work: Work,
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
            levels: 0,
            due: 0,
            free_head: NIL,
            elapsed: now.as_nanos() / tick_ns,
            max_tick: u64::MAX / tick_ns,
            tick_ns,
            len: 0,
            #[cfg(test)]
            work: Work::default(),
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

    /// Whether `handle` names a pending timer.
    pub fn contains(&self, handle: TimerHandle) -> bool {
        self.live(handle).is_some()
    }

    /// Arms a timer firing at `deadline` (rounded up to a tick, then as the
    /// module docs say: never early, boundedly late).
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

    /// Moves a pending timer to `deadline`, keeping its handle; its delay is
    /// measured from now. Returns `false` (and does nothing) if the handle
    /// is stale.
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

    /// Fires one due timer: returns the value of a timer that has become due
    /// at or before `now` (never before its deadline; see the module docs
    /// for how late), removing it, or `None` when none is due. Call until
    /// `None`; the wheel may be changed between calls. Timers of a precise
    /// slot popped on the way that are not yet due are re-filed.
    pub fn poll_expired(&mut self, now: Instant) -> Option<T> {
        let now_tick = now.as_nanos() / self.tick_ns;
        loop {
            if let Some(head) = self.first_due() {
                #[cfg(test)]
                {
                    self.work.entries += 1;
                }
                self.unlink(head);
                let when = self.entries[head as usize].when;
                if when > now_tick.max(self.elapsed) {
                    // From a precise slot that came due at the start of its
                    // granule (`elapsed`), before this timer: file it again.
                    // Its remaining delay is under the granule, so it lands
                    // in a lower level, in a slot due after `elapsed`.
                    #[cfg(test)]
                    {
                        self.work.refiled += 1;
                        self.work.refile_ahead = self.work.refile_ahead.max(when - self.elapsed);
                    }
                    let list = self.list_for(when);
                    self.link(head, list);
                    continue;
                }
                return self.release(head);
            }
            if now_tick <= self.elapsed {
                return None;
            }
            match self.next_expiry() {
                Some(at) if at <= now_tick => self.expire(at),
                _ => {
                    self.elapsed = now_tick;
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

    /// When to poll next: a lower bound on the instant from which
    /// [`poll_expired`](Self::poll_expired) returns a timer, or `None` if no
    /// pending timer can ever fire (the wheel is empty, or holds only
    /// deadlines past the last nameable tick). It is the tick the next slot
    /// comes due: never later than the next firing, and exact unless that
    /// slot is a precise one whose timers lie later in its granule (by under
    /// 512 ticks); polling then fires nothing, re-files them, and leaves a
    /// next deadline after the instant polled. It may lie after the earliest
    /// deadline by the lateness the module docs allow. A timer already due
    /// gives the current tick. Costs one masked `trailing_zeros` per
    /// non-empty level.
    pub fn next_deadline(&self) -> Option<Instant> {
        let tick = if self.first_due().is_some() {
            self.elapsed
        } else {
            self.expiry_min()?
        };
        Some(Instant::from_nanos(tick.saturating_mul(self.tick_ns)))
    }

    /// The most a timer inserted now for `deadline` can fire late:
    /// [`max_lateness`] of its delay from the wheel's current tick. A caller
    /// that needs a far deadline met exactly inserts it this much earlier
    /// (it then fires at or before `deadline`) and re-inserts the remainder
    /// when it fires; each such step leaves under 8/63 of the delay, and
    /// from [`PRECISE_TICKS`] down the wheel is exact.
    pub fn lateness_for(&self, deadline: Instant) -> Duration {
        let delay = self.tick_ceil(deadline).saturating_sub(self.elapsed);
        Duration::from_nanos(max_lateness(delay).saturating_mul(self.tick_ns))
    }

    fn tick_ceil(&self, t: Instant) -> u64 {
        let n = t.as_nanos();
        n / self.tick_ns + u64::from(!n.is_multiple_of(self.tick_ns))
    }

    /// A timer that is due: the first on the ready list or a due list.
    fn first_due(&self) -> Option<u32> {
        let head = self.heads[READY as usize];
        if head != NIL {
            return Some(head);
        }
        if self.due == 0 {
            return None;
        }
        let list = DUE as usize + self.due.trailing_zeros() as usize;
        self.heads.get(list).copied()
    }

    fn live(&self, handle: TimerHandle) -> Option<u32> {
        let e = self.entries.get(handle.index as usize)?;
        (e.list != FREE && e.generation == handle.generation).then_some(handle.index)
    }

    /// The list a timer due at tick `when` belongs on, given `elapsed`: the
    /// lowest level whose ring holds `when`, rounded down to the level's
    /// granularity in the precise levels and up in the others.
    fn list_for(&self, when: u64) -> u16 {
        if when <= self.elapsed {
            return READY;
        }
        if when > self.max_tick {
            return NEVER;
        }
        let delta = when - self.elapsed;
        // A level-`n` ring spans `64·8ⁿ` ticks past its current slot, so no
        // rounding-up level below `ceil((log2(delta) − 6) / 3)` can hold the
        // timer; that one or the next does (the next spans 8 times more). A
        // precise level rounds down, so it may also hold a delay up to
        // `65·8ⁿ − 1`: then the level below is tried first.
        let mut level = if delta <= SLOTS as u64 {
            0
        } else {
            let bits = u64::BITS - (delta - 1).leading_zeros();
            (bits - SLOT_BITS).div_ceil(LVL_CLK_SHIFT)
        };
        if (1..=PRECISE_LEVELS).contains(&level)
            && delta < (SLOTS as u64 + 1) << ((level - 1) * LVL_CLK_SHIFT)
        {
            level -= 1;
        }
        while (level as usize) < LEVELS {
            let shift = level * LVL_CLK_SHIFT;
            let granule = 1u64 << shift;
            let cur = self.elapsed >> shift;
            // Expiry in granules: in a precise level the granule containing
            // `when` (its slot comes due at or before `when`, and the timer
            // is re-filed if not yet due then); above, rounded up, never
            // early.
            let expiry = if level < PRECISE_LEVELS {
                when >> shift
            } else {
                (when >> shift) + u64::from(when & (granule - 1) != 0)
            };
            if expiry > cur && expiry - cur <= SLOTS as u64 {
                if expiry > self.max_tick >> shift {
                    // Rounded up past the last nameable tick; `when` is
                    // not, so the timer is due at that last tick.
                    return LAST;
                }
                return (level as usize * SLOTS + (expiry & SLOT_MASK) as usize) as u16;
            }
            level += 1;
        }
        // Unreachable: the top level spans more than `u64`.
        LAST
    }

    /// The expiry tick of level `level`'s first non-empty slot after its
    /// current one (the current slot itself counting as 64 granules ahead).
    fn level_expiry(&self, level: usize) -> u64 {
        let shift = level as u32 * LVL_CLK_SHIFT;
        let base = self.elapsed >> shift;
        let current = (base & SLOT_MASK) as u32;
        let ahead = self.occupied[level].rotate_right((current + 1) % SLOTS as u32);
        let granules = base.saturating_add(u64::from(ahead.trailing_zeros()) + 1);
        granules.saturating_mul(1 << shift)
    }

    /// The tick at which the next slot (or the last-tick list) is due.
    fn expiry_min(&self) -> Option<u64> {
        let mut best = (self.heads[LAST as usize] != NIL).then_some(self.max_tick);
        let mut levels = self.levels;
        while levels != 0 {
            let level = levels.trailing_zeros() as usize;
            levels &= levels - 1;
            // Every slot at this level or above is due at a multiple of its
            // granule after `elapsed`, never before the next such multiple.
            let shift = level as u32 * LVL_CLK_SHIFT;
            let floor = ((self.elapsed >> shift) + 1).saturating_mul(1 << shift);
            if best.is_some_and(|b| b <= floor) {
                break;
            }
            let at = self.level_expiry(level);
            best = Some(best.map_or(at, |b| b.min(at)));
        }
        best
    }

    /// [`expiry_min`](Self::expiry_min), counting the work for the tests.
    fn next_expiry(&mut self) -> Option<u64> {
        #[cfg(test)]
        {
            self.work.levels += u64::from(self.levels.count_ones()) + 1;
        }
        self.expiry_min()
    }

    /// Hands every slot due at tick `at` (the earliest expiry) over to the
    /// due lists, O(1) each, and makes `at` the current tick. The due lists
    /// are empty: polling drains them before looking for more.
    fn expire(&mut self, at: u64) {
        let mut levels = self.levels;
        while levels != 0 {
            let level = levels.trailing_zeros() as usize;
            levels &= levels - 1;
            #[cfg(test)]
            {
                self.work.levels += 1;
            }
            let shift = level as u32 * LVL_CLK_SHIFT;
            if at & ((1u64 << shift) - 1) != 0 {
                // Not a multiple of this granule, nor of any coarser one.
                break;
            }
            // `at` lies within this level's ring (it is after `elapsed` and
            // no later than the level's own next expiry), so the slot of
            // that index, if occupied, is due exactly at `at`.
            let slot = ((at >> shift) & SLOT_MASK) as usize;
            if self.occupied[level] & (1 << slot) != 0 {
                self.hand_over((level * SLOTS + slot) as u16, DUE + level as u16);
            }
        }
        if at == self.max_tick {
            self.hand_over(LAST, DUE + LEVELS as u16);
        }
        self.elapsed = at;
    }

    /// Moves the whole of list `from` to the empty due list `to` in O(1):
    /// only the first entry learns its new list (see `Entry::list`).
    fn hand_over(&mut self, from: u16, to: u16) {
        let first = self.heads[from as usize];
        if first == NIL {
            return;
        }
        self.heads[from as usize] = NIL;
        self.emptied(from);
        self.heads[to as usize] = first;
        self.entries[first as usize].list = to;
        self.due |= 1 << (to - DUE);
    }

    /// Clears the mask bit of a list that became empty.
    fn emptied(&mut self, list: u16) {
        if list < WHEEL_LISTS {
            let level = list as usize / SLOTS;
            self.occupied[level] &= !(1u64 << (list as usize % SLOTS));
            if self.occupied[level] == 0 {
                self.levels &= !(1 << level);
            }
        } else if list >= DUE {
            self.due &= !(1 << (list - DUE));
        }
    }

    fn link(&mut self, index: u32, list: u16) {
        let head = self.heads[list as usize];
        let e = &mut self.entries[index as usize];
        e.prev = NIL;
        e.next = head;
        e.list = list;
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.heads[list as usize] = index;
        if list < WHEEL_LISTS {
            let level = list as usize / SLOTS;
            self.occupied[level] |= 1u64 << (list as usize % SLOTS);
            self.levels |= 1 << level;
        }
    }

    fn unlink(&mut self, index: u32) {
        let e = &self.entries[index as usize];
        let (prev, next, list) = (e.prev, e.next, e.list);
        if prev != NIL {
            // Not first: its `list` may be stale, and is not needed.
            self.entries[prev as usize].next = next;
            if next != NIL {
                self.entries[next as usize].prev = prev;
            }
            return;
        }
        // First: `list` is exact; the next entry inherits it.
        self.heads[list as usize] = next;
        if next != NIL {
            let n = &mut self.entries[next as usize];
            n.prev = NIL;
            n.list = list;
        } else {
            self.emptied(list);
        }
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
    fn filing_early_by_the_bound_meets_far_deadlines_exactly() {
        // The TCP stack's use: file at `d - lateness_for(d)`, re-file the
        // remainder when it fires; the deadline is met on its tick.
        for d in [40_000u64, 60_000, 75_000, 7_200_000, 123_456_789] {
            let mut w = TimerWheel::new(ms(3), DEFAULT_TICK);
            let mut now = ms(3);
            let mut steps = 0;
            loop {
                let at = ms(d) - w.lateness_for(ms(d));
                w.insert(at, ()).unwrap();
                // Poll where the wheel says (a lower bound) until it fires.
                loop {
                    now = now.max(w.next_deadline().unwrap());
                    if !drain(&mut w, now).is_empty() {
                        break;
                    }
                }
                assert!(now >= at && now <= ms(d), "{d}: fired at {now:?}");
                steps += 1;
                if now >= ms(d) {
                    break;
                }
                assert!(steps < 12, "{d}: too many steps");
            }
            assert_eq!(now, ms(d), "{d}");
        }
    }

    #[test]
    fn lateness_bound() {
        assert_eq!(PRECISE_TICKS, 32_768);
        // Exact through the precise levels 0 to 3.
        assert_eq!(max_lateness(0), 0);
        assert_eq!(max_lateness(64), 0);
        assert_eq!(max_lateness(65), 0);
        assert_eq!(max_lateness(506), 0);
        assert_eq!(max_lateness(63 * 64 + 2), 0);
        assert_eq!(max_lateness(PRECISE_TICKS), 0);
        // Then level 4 (4 096-tick slots) and up, as in Linux.
        assert_eq!(max_lateness(PRECISE_TICKS + 1), 4_095);
        assert_eq!(max_lateness(63 * 8 * 8 * 8 * 8 + 1), 4_095);
        assert_eq!(max_lateness(63 * 8 * 8 * 8 * 8 + 2), 32_767);
        assert_eq!(max_lateness(u64::MAX), (1 << 60) - 1);
        // Always below 8/63 of the delay.
        let mut d = 65u64;
        while d < u64::MAX / 16 {
            for delay in [d, d + 1, d * 2 - 1] {
                assert!(
                    u128::from(max_lateness(delay)) * 63 < u128::from(delay) * 8,
                    "{delay}"
                );
            }
            d = d * 3 / 2;
        }
    }

    #[test]
    fn fires_on_time_never_early() {
        let mut w = TimerWheel::new(ms(0), DEFAULT_TICK);
        w.insert(ms(10), 10).unwrap();
        w.insert(Instant::from_micros(10_500), 105).unwrap();
        w.insert(ms(64), 64).unwrap();
        w.insert(ms(100), 100).unwrap();
        assert_eq!(w.next_deadline(), Some(ms(10)));
        assert!(drain(&mut w, Instant::from_micros(9_999)).is_empty());
        assert_eq!(drain(&mut w, ms(10)), vec![10]);
        // 10.5 ms rounds up to tick 11.
        assert!(drain(&mut w, Instant::from_micros(10_999)).is_empty());
        assert_eq!(drain(&mut w, ms(11)), vec![105]);
        // Level 0 is exact up to 64 ticks ahead.
        assert_eq!(w.next_deadline(), Some(ms(64)));
        assert!(drain(&mut w, ms(63)).is_empty());
        assert_eq!(drain(&mut w, ms(64)), vec![64]);
        // 100 ticks ahead: level 1, in the 8-tick slot of ticks 96 to 103,
        // due at 96 (a lower bound); then re-filed in level 0, exact.
        assert_eq!(w.next_deadline(), Some(ms(96)));
        assert!(drain(&mut w, ms(96)).is_empty());
        assert_eq!(w.next_deadline(), Some(ms(100)));
        assert!(drain(&mut w, ms(99)).is_empty());
        assert_eq!(w.len(), 1);
        assert_eq!(drain(&mut w, ms(100)), vec![100]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
        // 200 ms (an RTO) and 31 s (a backed-off one) fire on the tick.
        w.insert(ms(300), 300).unwrap();
        w.insert(ms(31_100), 31_100).unwrap();
        assert!(drain(&mut w, ms(299)).is_empty());
        assert_eq!(drain(&mut w, ms(300)), vec![300]);
        assert!(drain(&mut w, ms(31_099)).is_empty());
        assert_eq!(drain(&mut w, ms(31_100)), vec![31_100]);
    }

    /// Every delay in the precise span fires on its tick from any starting
    /// tick, when polled only at `next_deadline`: each poll there that fires
    /// nothing moves `next_deadline` later, and a timer is re-filed at most
    /// three times.
    #[test]
    fn precise_levels_fire_on_the_tick() {
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        for i in 0..20_000u64 {
            let start = rng.next() % (1 << 40);
            let delay = match i % 4 {
                0 => 1 + rng.next() % 64,
                1 => 1 + rng.next() % 4_096,
                _ => 1 + rng.next() % PRECISE_TICKS,
            };
            let mut w = TimerWheel::new(Instant::from_nanos(start), Duration::from_nanos(1));
            w.insert(Instant::from_nanos(start + delay), ()).unwrap();
            let mut polls = 0;
            let fired_at = loop {
                let nd = w.next_deadline().unwrap().as_nanos();
                assert!(nd <= start + delay, "{start} + {delay}: {nd}");
                if w.poll_expired(Instant::from_nanos(nd)).is_some() {
                    break nd;
                }
                let later = w.next_deadline().unwrap().as_nanos();
                assert!(later > nd, "{start} + {delay}: stuck at {nd}");
                polls += 1;
            };
            assert_eq!(fired_at, start + delay);
            assert!(polls <= 3 && w.work.refiled <= 3, "{start} + {delay}");
            assert!(w.work.refile_ahead < 512);
        }
        // Past the precise span: exact when level 3 still holds it (the
        // current tick at the start of its granule), else rounded up in
        // level 4.
        let mut w = TimerWheel::new(Instant::from_nanos(512), Duration::from_nanos(1));
        w.insert(Instant::from_nanos(512 + 33_279), 1).unwrap();
        assert_eq!(drain(&mut w, Instant::from_nanos(512 + 33_278)), vec![]);
        assert_eq!(drain(&mut w, Instant::from_nanos(512 + 33_279)), vec![1]);
        let mut w = TimerWheel::new(Instant::from_nanos(513), Duration::from_nanos(1));
        w.insert(Instant::from_nanos(513 + 33_279), 2).unwrap();
        let nd = w.next_deadline().unwrap().as_nanos();
        assert_eq!(nd, (513 + 33_279u64).div_ceil(4_096) * 4_096);
        assert!(nd - (513 + 33_279) <= max_lateness(33_279));
        assert_eq!(drain(&mut w, Instant::from_nanos(nd - 1)), vec![]);
        assert_eq!(drain(&mut w, Instant::from_nanos(nd)), vec![2]);
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
    fn far_deadlines_fire_within_the_bound() {
        let day = 86_400_000;
        let mut w = TimerWheel::new(ms(0), DEFAULT_TICK);
        let h = w.insert(ms(1_000 * day), 1).unwrap();
        w.insert(ms(3 * day), 2).unwrap();
        let late = max_lateness(3 * day);
        assert!(drain(&mut w, ms(3 * day - 1)).is_empty());
        assert_eq!(drain(&mut w, ms(3 * day + late)), vec![2]);
        assert!(drain(&mut w, ms(1_000 * day - 1)).is_empty());
        assert!(w.contains(h));
        let nd = w.next_deadline().unwrap();
        assert!(nd >= ms(1_000 * day) && nd <= ms(1_000 * day + max_lateness(1_000 * day)));
        assert_eq!(drain(&mut w, nd), vec![1]);
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
                assert_eq!(w.next_deadline(), None);
            }
        }
        // Near the end of time, from a late start.
        let mut w = TimerWheel::new(Instant::from_nanos(u64::MAX - 100), Duration::from_nanos(1));
        w.insert(Instant::from_nanos(u64::MAX - 50), 1).unwrap();
        // 99 ticks ahead: level 1, in the 8-tick slot starting at
        // `u64::MAX - 7`, then exact.
        w.insert(Instant::from_nanos(u64::MAX - 1), 2).unwrap();
        assert_eq!(drain(&mut w, Instant::from_nanos(u64::MAX - 51)), vec![]);
        assert_eq!(drain(&mut w, Instant::from_nanos(u64::MAX - 50)), vec![1]);
        assert_eq!(w.next_deadline(), Some(Instant::from_nanos(u64::MAX - 7)));
        assert_eq!(drain(&mut w, Instant::from_nanos(u64::MAX - 2)), vec![]);
        assert_eq!(w.next_deadline(), Some(Instant::from_nanos(u64::MAX - 1)));
        assert_eq!(drain(&mut w, Instant::from_nanos(u64::MAX - 1)), vec![2]);
        // 100 000 ticks ahead: a 4 096-tick slot would end past `u64::MAX`,
        // so it waits for the last tick.
        let mut w = TimerWheel::new(
            Instant::from_nanos(u64::MAX - 100_000),
            Duration::from_nanos(1),
        );
        w.insert(Instant::from_nanos(u64::MAX - 1), 3).unwrap();
        assert_eq!(w.next_deadline(), Some(Instant::from_nanos(u64::MAX)));
        assert_eq!(drain(&mut w, Instant::from_nanos(u64::MAX - 1)), vec![]);
        assert_eq!(drain(&mut w, Instant::from_nanos(u64::MAX)), vec![3]);
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
        assert_eq!(drain(&mut w, ms(20_000 + max_lateness(20_000))), vec![2]);
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
        let tick_ns = tick.as_nanos() as u64;
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
            w.advance(now, |i| {
                let d = deadlines[i as usize];
                assert_eq!(i % 2, 1, "a cancelled timer fired");
                assert!(d <= now.as_nanos(), "fired early");
                // Armed at tick 0: not yet due (within the bound) at the
                // previous poll.
                let when = d.div_ceil(tick_ns);
                assert!(
                    when + max_lateness(when) > prev.as_nanos() / tick_ns,
                    "fired late"
                );
                fired += 1;
            });
            prev = now;
        }
        assert_eq!(fired, N / 2);
        // Expiry walked each fired timer once, and re-filed each at most
        // three times, only within 512 ticks of its deadline.
        assert_eq!(w.work.entries - w.work.refiled, N / 2);
        assert!(w.work.refiled <= 3 * (N / 2), "{:?}", w.work);
        assert!(w.work.refile_ahead < 512);

        // Warm slab: another million timers allocate nothing.
        for i in 0..N {
            w.insert(now + Duration::from_millis(i % 5_000), i as u32)
                .unwrap();
        }
        assert!(w.slab_len() <= cap.max(N as usize));
        assert_eq!(
            w.advance(now + Duration::from_millis(5_000 + 511), |_| {}),
            N as usize
        );
    }

    /// The bug this wheel was rebuilt for: with cascading levels, the tick
    /// that reached a coarse slot re-filed every timer in it (hundreds of
    /// thousands, none of them due) in one call. Now a `poll_expired` call
    /// touches the one entry it returns plus the entries it re-files (timers
    /// of a precise slot, all due within 512 ticks, each re-filed at most
    /// three times), plus a few levels' masks.
    #[test]
    fn no_stall_when_a_coarse_slot_comes_due() {
        const N: u64 = 1_000_000;
        const SPREAD_MS: u64 = 120_000;
        // Per call: one search for the next due slot, one hand-over, one
        // search finding nothing more, each at most every level plus one.
        const LEVEL_STEPS: u64 = 3 * (LEVELS as u64 + 1);
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut w = TimerWheel::with_capacity(ms(0), DEFAULT_TICK, N as usize);
        let mut deadlines = Vec::with_capacity(N as usize);
        for i in 0..N {
            let d = rng.next() % (SPREAD_MS + 1);
            deadlines.push(d);
            w.insert(ms(d), i as u32).unwrap();
        }
        let mut fired = 0u64;
        let mut busiest = 0u64;
        let mut most_refiled = 0u64;
        for t in 1..=SPREAD_MS + max_lateness(SPREAD_MS) {
            let tick_start = w.work;
            let mut n = 0u64;
            loop {
                let before = w.work;
                w.work.refile_ahead = 0;
                let got = w.poll_expired(ms(t));
                let entries = w.work.entries - before.entries;
                let refiled = w.work.refiled - before.refiled;
                let levels = w.work.levels - before.levels;
                assert_eq!(entries, u64::from(got.is_some()) + refiled, "tick {t}");
                // Re-filed entries are due within 512 ticks.
                assert!(w.work.refile_ahead < 512, "tick {t}");
                assert!(levels <= LEVEL_STEPS, "tick {t}: {levels} level steps");
                most_refiled = most_refiled.max(refiled);
                let Some(i) = got else { break };
                let d = deadlines[i as usize];
                assert!(d <= t, "fired early");
                // Deadline 0 was due at the start, but the first poll is
                // at tick 1.
                assert!(t <= (d + max_lateness(d)).max(1), "fired late");
                n += 1;
            }
            let entries = w.work.entries - tick_start.entries;
            let refiled = w.work.refiled - tick_start.refiled;
            assert_eq!(entries, n + refiled);
            assert!(w.work.levels - tick_start.levels <= LEVEL_STEPS);
            fired += n;
            busiest = busiest.max(n);
        }
        assert_eq!(fired, N);
        assert!(w.is_empty());
        assert!(w.work.refiled <= 3 * N, "{:?}", w.work);
        // Timers 32.8 s to 120 s ahead sit in 4.096 s slots (level 4), so the
        // busiest ticks fire a whole such slot, ~34 000 timers, all due.
        assert!(busiest < 40_000, "{busiest}");
        // A level-3 slot holds the timers of 512 ticks, ~4 300 here: the
        // most one call re-files.
        assert!(most_refiled < 6_000, "{most_refiled}");
    }

    /// A far jump in `now` goes from due slot to due slot through the masks:
    /// no tick-by-tick walk, and no timer touched but those due and those
    /// due within 512 ticks of a slot that came due (re-filed).
    #[test]
    fn far_jump_touches_only_due_timers() {
        const N: u64 = 200_000;
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let mut w = TimerWheel::new(ms(0), DEFAULT_TICK);
        let mut deadlines = Vec::with_capacity(N as usize);
        for i in 0..N {
            let d = rng.next() % 3_600_000;
            deadlines.push(d);
            w.insert(ms(d), i).unwrap();
        }
        let mut now = 0;
        for jump in [1, 50_000, 7, 1_000_000, 3_600_000] {
            now += jump;
            let before = w.work;
            w.work.refile_ahead = 0;
            let n = w.advance(ms(now), |_| {}) as u64;
            let entries = w.work.entries - before.entries;
            let refiled = w.work.refiled - before.refiled;
            let levels = w.work.levels - before.levels;
            assert_eq!(entries, n + refiled);
            assert!(w.work.refile_ahead < 512);
            // Re-filed: timers fired now, or due within 512 ticks, each at
            // most three times.
            let soon = deadlines
                .iter()
                .filter(|&&d| d > now && d < now + 512)
                .count() as u64;
            assert!(refiled <= 3 * (n + soon), "{refiled} for {n} + {soon}");
            // Per due slot found (each holds at least one entry touched):
            // one search and one collection.
            assert!(
                levels <= 2 * (LEVELS as u64 + 1) * (entries + 1),
                "{levels} for {entries}"
            );
        }
        assert!(w.is_empty());
        assert!(w.work.refiled <= 3 * N);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert { past: bool, delta: u64 },
        Cancel(usize),
        Reschedule(usize, u64),
        Advance(u64),
    }

    fn delta() -> impl Strategy<Value = u64> {
        prop_oneof![
            0..16u64,
            0..5_000u64,
            // Around the end of the precise span at a 1 ns tick.
            32_000..34_000u64,
            0..(1u64 << 30),
            0..(1u64 << 42),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<bool>(), delta()).prop_map(|(past, delta)| Op::Insert { past: past && delta % 7 == 0, delta }),
            1 => any::<usize>().prop_map(Op::Cancel),
            1 => (any::<usize>(), delta()).prop_map(|(i, d)| Op::Reschedule(i, d)),
            2 => prop_oneof![0..4u64, 0..2_000u64, 0..40_000u64, 0..(1u64 << 38)].prop_map(Op::Advance),
        ]
    }

    /// A model timer: deadline in ns, and the latest tick it may become due
    /// (its deadline tick plus the lateness its delay allows: none within
    /// the precise span).
    #[derive(Clone, Copy, Debug)]
    struct Armed {
        deadline: u64,
        latest: u64,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Against a `BTreeMap` model: the same timers fire, none early,
        /// none late within the precise span and none later than the
        /// lateness bound beyond, and `next_deadline` is a lower bound on the
        /// next firing that moves past any instant polled without firing.
        #[test]
        fn matches_model(
            tick in prop_oneof![Just(1u64), Just(7), Just(1_000), Just(1_000_000)],
            start in prop_oneof![0..(1u64 << 50), (u64::MAX - (1u64 << 40))..=u64::MAX],
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut w = TimerWheel::new(Instant::from_nanos(start), Duration::from_nanos(tick));
            let mut now = start;
            let mut model: BTreeMap<u64, Armed> = BTreeMap::new();
            let mut handles: Vec<(u64, TimerHandle)> = Vec::new();
            let mut next_id = 0u64;
            let arm = |d: u64, now: u64| {
                let when = d.div_ceil(tick);
                let delay = when.saturating_sub(now / tick);
                Armed { deadline: d, latest: when.max(now / tick).saturating_add(max_lateness(delay)) }
            };
            for op in ops {
                match op {
                    Op::Insert { past, delta } => {
                        let d = if past { now.saturating_sub(delta) } else { now.saturating_add(delta) };
                        let h = w.insert(Instant::from_nanos(d), next_id).unwrap();
                        model.insert(next_id, arm(d, now));
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
                            model.insert(id, arm(d, now));
                        }
                    }
                    Op::Advance(delta) => {
                        let next = w.next_deadline();
                        now = now.saturating_add(delta);
                        let mut fired = Vec::new();
                        w.advance(Instant::from_nanos(now), |id| fired.push(id));
                        fired.sort_unstable();
                        let now_tick = now / tick;
                        for id in &fired {
                            let Some(a) = model.remove(id) else {
                                return Err(TestCaseError::fail(format!("{id} fired twice or after cancel")));
                            };
                            prop_assert!(a.deadline.div_ceil(tick) <= now_tick, "fired early");
                        }
                        for (id, a) in &model {
                            prop_assert!(a.latest > now_tick, "{} late: {:?} at tick {}", id, a, now_tick);
                        }
                        // `next_deadline` was a lower bound: nothing fired
                        // before it was reached.
                        let reached = next.is_some_and(|nd| nd.as_nanos() / tick <= now_tick);
                        prop_assert!(reached || fired.is_empty());
                        // Drained: the next deadline lies after `now`, so a
                        // caller polling at it never spins on one instant.
                        if let Some(nd) = w.next_deadline() {
                            prop_assert!(nd.as_nanos() / tick > now_tick, "{:?} at tick {}", nd, now_tick);
                        }
                    }
                    _ => {}
                }
                prop_assert_eq!(w.len(), model.len());
                // next_deadline is no later than any timer's latest firing
                // tick, and not before the current tick. (Deadlines past
                // the last nameable tick never fire.)
                let max_tick = u64::MAX / tick;
                let firing = model.values().filter(|a| a.deadline.div_ceil(tick) <= max_tick);
                match (w.next_deadline(), firing.map(|a| a.latest).min()) {
                    (None, None) => {}
                    (Some(nd), Some(latest)) => {
                        prop_assert!(nd.as_nanos() / tick <= latest);
                        prop_assert!(nd.as_nanos() / tick >= now / tick);
                    }
                    (a, b) => prop_assert!(false, "next_deadline {:?} vs model {:?}", a, b),
                }
            }
        }
    }
}
