//! The per-connection timer table.
//!
//! A connection has a handful of timers (RFC 9293 §3.8, RFC 1122 §4.2.3),
//! each either stopped or armed with a deadline. They live in a fixed array
//! indexed by [`Timer`], so setting, stopping and reading one is an index and
//! finding the earliest is a scan of [`Timer::COUNT`] words. The per-core
//! [`TimerWheel`](super::wheel::TimerWheel) holds one entry per connection,
//! at [`TimerTable::next`]; when it fires the connection asks
//! [`TimerTable::expired`] which of its timers are due.
//!
//! Deadlines are stored as raw nanoseconds with `u64::MAX` meaning "stopped"
//! (8 bytes per timer rather than 16 for `Option<Instant>`): connections are
//! many and small (DESIGN.md, principle 6). `Instant::from_nanos(u64::MAX)`
//! is the saturated "never" of `Instant + Duration`, so treating it as
//! stopped changes nothing observable: it would never fire anyway.

use crate::time::Instant;

/// The timers of one TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Timer {
    /// Retransmission timeout (RFC 6298 §5); also retransmits SYN and
    /// SYN-ACK.
    Rto = 0,
    /// Delayed acknowledgement (RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2: at
    /// most 500 ms).
    DelayedAck,
    /// Zero-window probe (RFC 9293 §3.8.6.1).
    Persist,
    /// Keep-alive probe after idle time (RFC 1122 §4.2.3.6).
    Keepalive,
    /// Bound on FIN-WAIT-2 when the application has closed (the peer may
    /// never send its FIN; Linux's `tcp_fin_timeout`).
    FinWait2,
    /// 2·MSL in TIME-WAIT (RFC 9293 §3.6.1).
    TimeWait,
    /// RACK's reordering timeout or the tail loss probe timeout
    /// (RFC 8985 §6.2, §7.2): one at a time.
    Rack,
}

impl Timer {
    /// Number of timers; the table's length.
    pub const COUNT: usize = 7;

    /// Every timer, in index order.
    pub const ALL: [Timer; Timer::COUNT] = [
        Timer::Rto,
        Timer::DelayedAck,
        Timer::Persist,
        Timer::Keepalive,
        Timer::FinWait2,
        Timer::TimeWait,
        Timer::Rack,
    ];

    #[inline]
    const fn index(self) -> usize {
        self as usize
    }
}

const STOPPED: u64 = u64::MAX;

/// Deadlines of one connection's timers. See the module docs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TimerTable {
    deadlines: [u64; Timer::COUNT],
}

impl Default for TimerTable {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerTable {
    /// A table with every timer stopped.
    pub const fn new() -> Self {
        TimerTable {
            deadlines: [STOPPED; Timer::COUNT],
        }
    }

    /// Arms `timer` to fire at `deadline`, replacing any earlier setting.
    #[inline]
    pub fn set(&mut self, timer: Timer, deadline: Instant) {
        self.deadlines[timer.index()] = deadline.as_nanos();
    }

    /// Stops `timer`.
    #[inline]
    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = STOPPED;
    }

    /// Stops every timer (connection closed).
    pub fn stop_all(&mut self) {
        self.deadlines = [STOPPED; Timer::COUNT];
    }

    /// The deadline of `timer`, if armed.
    #[inline]
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        match self.deadlines[timer.index()] {
            STOPPED => None,
            n => Some(Instant::from_nanos(n)),
        }
    }

    /// Whether `timer` is armed.
    #[inline]
    pub fn is_set(&self, timer: Timer) -> bool {
        self.deadlines[timer.index()] != STOPPED
    }

    /// Whether `timer` is armed with a deadline at or before `now`.
    #[inline]
    pub fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        let d = self.deadlines[timer.index()];
        d != STOPPED && d <= now.as_nanos()
    }

    /// The earliest armed timer and its deadline (ties go to the lower
    /// index, i.e. the order of [`Timer::ALL`]).
    pub fn next(&self) -> Option<(Timer, Instant)> {
        let mut best: Option<(Timer, u64)> = None;
        for t in Timer::ALL {
            let d = self.deadlines[t.index()];
            if d != STOPPED && best.is_none_or(|(_, b)| d < b) {
                best = Some((t, d));
            }
        }
        best.map(|(t, d)| (t, Instant::from_nanos(d)))
    }

    /// The timers due at `now` (deadline `<= now`), in index order. They stay
    /// armed: the caller stops or re-arms each as it handles it.
    pub fn expired(&self, now: Instant) -> Expired {
        Expired {
            deadlines: self.deadlines,
            now: now.as_nanos(),
            next: 0,
        }
    }
}

impl core::fmt::Debug for TimerTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut m = f.debug_map();
        for t in Timer::ALL {
            if let Some(d) = self.get(t) {
                m.entry(&t, &d);
            }
        }
        m.finish()
    }
}

/// Iterator over the due timers of a [`TimerTable`]; see
/// [`TimerTable::expired`]. It holds a copy of the deadlines, so the table
/// may be changed while iterating.
#[derive(Clone, Debug)]
pub struct Expired {
    deadlines: [u64; Timer::COUNT],
    now: u64,
    next: usize,
}

impl Iterator for Expired {
    type Item = Timer;

    fn next(&mut self) -> Option<Timer> {
        while let Some(&t) = Timer::ALL.get(self.next) {
            self.next += 1;
            let d = self.deadlines[t.index()];
            if d != STOPPED && d <= self.now {
                return Some(t);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn table_is_small() {
        assert_eq!(core::mem::size_of::<TimerTable>(), 8 * Timer::COUNT);
        assert_eq!(Timer::ALL.len(), Timer::COUNT);
        for (i, t) in Timer::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
    }

    #[test]
    fn set_get_stop() {
        let mut t = TimerTable::new();
        assert_eq!(t.next(), None);
        t.set(Timer::Keepalive, ms(7_200_000));
        t.set(Timer::Rto, ms(200));
        assert_eq!(t.get(Timer::Rto), Some(ms(200)));
        assert!(t.is_set(Timer::Keepalive));
        assert!(!t.is_set(Timer::Persist));
        t.set(Timer::Rto, ms(400));
        assert_eq!(t.get(Timer::Rto), Some(ms(400)));
        t.stop(Timer::Rto);
        assert_eq!(t.get(Timer::Rto), None);
        assert_eq!(t.next(), Some((Timer::Keepalive, ms(7_200_000))));
        t.stop_all();
        assert_eq!(t.next(), None);
    }

    #[test]
    fn next_is_the_minimum_with_ties_in_index_order() {
        let mut t = TimerTable::new();
        t.set(Timer::TimeWait, ms(60_000));
        t.set(Timer::DelayedAck, ms(40));
        t.set(Timer::Persist, ms(40));
        t.set(Timer::Rto, ms(300));
        assert_eq!(t.next(), Some((Timer::DelayedAck, ms(40))));
        t.stop(Timer::DelayedAck);
        assert_eq!(t.next(), Some((Timer::Persist, ms(40))));
    }

    #[test]
    fn expired_yields_due_timers_only() {
        let mut t = TimerTable::new();
        t.set(Timer::Rto, ms(100));
        t.set(Timer::DelayedAck, ms(40));
        t.set(Timer::Keepalive, ms(101));
        assert_eq!(t.expired(ms(39)).count(), 0);
        let due: Vec<Timer> = t.expired(ms(100)).collect();
        assert_eq!(due, vec![Timer::Rto, Timer::DelayedAck]);
        assert!(t.is_expired(Timer::Rto, ms(100)));
        assert!(!t.is_expired(Timer::Keepalive, ms(100)));
        // Handling while iterating: the iterator works on a snapshot.
        for timer in t.expired(ms(100)) {
            t.stop(timer);
        }
        assert_eq!(t.next(), Some((Timer::Keepalive, ms(101))));
    }

    #[test]
    fn saturated_never_reads_as_stopped() {
        let mut t = TimerTable::new();
        t.set(Timer::Rto, Instant::from_nanos(u64::MAX));
        assert_eq!(t.get(Timer::Rto), None);
        assert_eq!(t.expired(Instant::from_nanos(u64::MAX - 1)).count(), 0);
    }
}
