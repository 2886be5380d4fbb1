//! The ARP neighbour cache (RFC 826, RFC 1122 §2.3.2).
//!
//! A sans-IO data structure: it never builds a packet. The interface asks it
//! to [`resolve`](ArpCache::resolve) a next hop for an outgoing frame, tells
//! it what ARP packets said ([`update`](ArpCache::update)), and calls
//! [`handle_timeout`](ArpCache::handle_timeout) at [`poll_at`](ArpCache::poll_at);
//! the cache answers with what to do (send a request, release or drop
//! waiting frames).
//!
//! Entry life:
//! - **Incomplete**: a request went out by broadcast; up to
//!   [`ArpConfig::queue_len`] frames wait. The request is repeated every
//!   [`ArpConfig::retry_interval`] up to [`ArpConfig::max_retries`] times
//!   (RFC 1122 §2.3.2.1: a bounded retransmission rate); then the entry is
//!   removed and its frames dropped ([`ArpAction::Failed`]).
//!   RFC 1122 §2.3.2.2: "SHOULD save (rather than discard) at least one
//!   (the latest) packet" while waiting.
//! - **Reachable**: known MAC, valid for [`ArpConfig::reachable_time`] since
//!   it was last confirmed (RFC 1122 §2.3.2.1: entries must time out). An
//!   entry used since its last confirmation is re-requested by unicast from
//!   [`ArpConfig::refresh_before`] ahead of its expiry, every retry interval,
//!   so a live flow never waits on a broadcast resolution; an unused one
//!   simply expires.
//!
//! The cache is bounded by [`ArpConfig::max_entries`]: a new entry evicts
//! the resolved entry confirmed longest ago; when every entry is waiting for
//! resolution, the new frame is refused.
//!
//! Entries live in a `BTreeMap` so every walk is in address order and a
//! simulation replays identically.

use core::net::Ipv4Addr;
use std::collections::{BTreeMap, VecDeque};

use crate::time::{Duration, Instant};
use crate::wire::EthernetAddress;

/// Tunables of the neighbour cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpConfig {
    /// How long a resolved entry stays valid after its last confirmation.
    pub reachable_time: Duration,
    /// How long before expiry an entry in use is re-requested by unicast.
    pub refresh_before: Duration,
    /// Interval between requests for the same address.
    pub retry_interval: Duration,
    /// Requests repeated after the first before resolution fails.
    pub max_retries: u8,
    /// Most entries (resolved and incomplete) the cache holds.
    pub max_entries: usize,
    /// Most frames waiting on one unresolved neighbour.
    pub queue_len: usize,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            reachable_time: Duration::from_secs(60),
            refresh_before: Duration::from_secs(5),
            retry_interval: Duration::from_secs(1),
            max_retries: 3,
            max_entries: 1024,
            queue_len: 3,
        }
    }
}

impl ArpConfig {
    /// Checks the settings; returns what is wrong.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.reachable_time.is_zero() {
            return Err("ARP reachable time must be above zero");
        }
        if self.retry_interval.is_zero() {
            return Err("ARP retry interval must be above zero");
        }
        if self.refresh_before >= self.reachable_time {
            return Err("ARP refresh lead must be shorter than the reachable time");
        }
        if self.max_entries == 0 {
            return Err("ARP cache must hold at least one entry");
        }
        if self.queue_len == 0 {
            // RFC 1122 §2.3.2.2: keep at least the latest packet.
            return Err("ARP must queue at least one frame per neighbour");
        }
        Ok(())
    }
}

/// A cache entry as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbour {
    /// Resolution in progress.
    Incomplete {
        /// Frames waiting.
        queued: usize,
        /// Requests sent so far.
        requests: u8,
    },
    /// Resolved.
    Reachable {
        /// The neighbour's MAC.
        mac: EthernetAddress,
        /// When the entry expires unless confirmed again.
        expires: Instant,
    },
}

/// What [`ArpCache::resolve`] did with a frame.
#[derive(Debug)]
pub enum Resolve<B> {
    /// The MAC is known: send the frame to it now.
    Ready(EthernetAddress, B),
    /// A new entry was created and the frame queued: send a broadcast
    /// request for the address now.
    QueuedNewRequest,
    /// The frame was queued behind a request already outstanding.
    Queued,
    /// The neighbour's queue is full; the frame comes back to be dropped.
    QueueFull(B),
    /// The cache is full of unresolved entries; the frame comes back.
    CacheFull(B),
}

/// What an ARP packet did to the cache in [`ArpCache::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// No entry for the address and none created.
    NotPresent,
    /// A new entry was created.
    Created,
    /// An existing resolved entry was refreshed (its MAC may have changed).
    Refreshed,
    /// An incomplete entry was resolved; its waiting frames were released.
    Resolved,
}

/// What the cache asks of its owner from [`ArpCache::handle_timeout`].
#[derive(Debug)]
pub enum ArpAction<B> {
    /// Send an ARP request for `addr`, by broadcast or (refresh) by unicast.
    Request {
        /// Address to resolve.
        addr: Ipv4Addr,
        /// The MAC to send to; `None` for broadcast.
        unicast: Option<EthernetAddress>,
    },
    /// Resolution failed: the entry is gone, the frames are to be dropped.
    Failed {
        /// The address that never answered.
        addr: Ipv4Addr,
        /// Frames that were waiting for it.
        frames: VecDeque<B>,
    },
    /// A resolved entry expired and was removed.
    Expired {
        /// Its address.
        addr: Ipv4Addr,
    },
}

#[derive(Debug)]
enum Entry<B> {
    Incomplete {
        queue: VecDeque<B>,
        requests: u8,
        next_request: Instant,
    },
    Reachable {
        mac: EthernetAddress,
        confirmed: Instant,
        expires: Instant,
        used: bool,
        probe_at: Instant,
    },
}

/// The neighbour cache. See the module documentation.
#[derive(Debug)]
pub struct ArpCache<B> {
    config: ArpConfig,
    entries: BTreeMap<Ipv4Addr, Entry<B>>,
    evictions: u64,
}

impl<B> ArpCache<B> {
    /// An empty cache.
    pub fn new(config: ArpConfig) -> Self {
        ArpCache {
            config,
            entries: BTreeMap::new(),
            evictions: 0,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ArpConfig {
        &self.config
    }

    /// Number of entries, resolved or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Resolved entries evicted so far to make room for new ones.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Entries still waiting for resolution.
    pub fn unresolved(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e, Entry::Incomplete { .. }))
            .count()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `addr`, if any.
    pub fn get(&self, addr: Ipv4Addr) -> Option<Neighbour> {
        self.entries.get(&addr).map(|e| match e {
            Entry::Incomplete {
                queue, requests, ..
            } => Neighbour::Incomplete {
                queued: queue.len(),
                requests: *requests,
            },
            Entry::Reachable { mac, expires, .. } => Neighbour::Reachable {
                mac: *mac,
                expires: *expires,
            },
        })
    }

    /// The MAC for `addr` if it is resolved and not expired at `now`, without
    /// marking the entry in use.
    pub fn peek(&self, now: Instant, addr: Ipv4Addr) -> Option<EthernetAddress> {
        match self.entries.get(&addr) {
            Some(Entry::Reachable { mac, expires, .. }) if now < *expires => Some(*mac),
            _ => None,
        }
    }

    fn reachable(&self, now: Instant, mac: EthernetAddress) -> Entry<B> {
        let expires = now + self.config.reachable_time;
        Entry::Reachable {
            mac,
            confirmed: now,
            expires,
            used: false,
            probe_at: expires - self.config.refresh_before,
        }
    }

    fn incomplete(&self, now: Instant, frame: B) -> Entry<B> {
        let mut queue = VecDeque::with_capacity(self.config.queue_len.min(4));
        queue.push_back(frame);
        Entry::Incomplete {
            queue,
            requests: 1,
            next_request: now + self.config.retry_interval,
        }
    }

    /// Makes room for one more entry: evicts the resolved entry confirmed
    /// longest ago. Returns whether there is room.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < self.config.max_entries {
            return true;
        }
        let oldest = self
            .entries
            .iter()
            .filter_map(|(a, e)| match e {
                Entry::Reachable { confirmed, .. } => Some((*confirmed, *a)),
                Entry::Incomplete { .. } => None,
            })
            .min();
        match oldest {
            Some((_, addr)) => {
                self.entries.remove(&addr);
                self.evictions += 1;
                true
            }
            None => false,
        }
    }

    /// Finds the MAC for next hop `addr` to send `frame` to, queueing the
    /// frame if resolution is needed. Marks a resolved entry in use.
    ///
    /// An entry past its expiry that [`handle_timeout`](Self::handle_timeout)
    /// has not removed yet is treated as absent: it is resolved again.
    pub fn resolve(&mut self, now: Instant, addr: Ipv4Addr, frame: B) -> Resolve<B> {
        let queue_len = self.config.queue_len;
        match self.entries.get_mut(&addr) {
            Some(Entry::Reachable {
                mac, expires, used, ..
            }) if now < *expires => {
                *used = true;
                return Resolve::Ready(*mac, frame);
            }
            Some(Entry::Incomplete { queue, .. }) => {
                if queue.len() >= queue_len {
                    return Resolve::QueueFull(frame);
                }
                queue.push_back(frame);
                return Resolve::Queued;
            }
            Some(Entry::Reachable { .. }) => {
                let entry = self.incomplete(now, frame);
                self.entries.insert(addr, entry);
                return Resolve::QueuedNewRequest;
            }
            None => {}
        }
        if !self.make_room() {
            return Resolve::CacheFull(frame);
        }
        let entry = self.incomplete(now, frame);
        self.entries.insert(addr, entry);
        Resolve::QueuedNewRequest
    }

    /// Records that `addr` is at `mac`, as an ARP packet said.
    ///
    /// RFC 826 ("Packet Reception"): an existing entry is updated from any
    /// ARP packet (`Merge_flag`); a new entry is created only when `create`
    /// is set, i.e. when the packet was addressed to us. Frames waiting on a
    /// resolved incomplete entry are passed to `release`, oldest first.
    pub fn update(
        &mut self,
        now: Instant,
        addr: Ipv4Addr,
        mac: EthernetAddress,
        create: bool,
        mut release: impl FnMut(EthernetAddress, B),
    ) -> Update {
        let fresh = self.reachable(now, mac);
        match self.entries.get_mut(&addr) {
            Some(entry @ Entry::Reachable { .. }) => {
                *entry = fresh;
                Update::Refreshed
            }
            Some(entry @ Entry::Incomplete { .. }) => {
                let old = core::mem::replace(entry, fresh);
                if let Entry::Incomplete { queue, .. } = old {
                    for frame in queue {
                        release(mac, frame);
                    }
                }
                Update::Resolved
            }
            None if create => {
                if !self.make_room() {
                    return Update::NotPresent;
                }
                self.entries.insert(addr, fresh);
                Update::Created
            }
            None => Update::NotPresent,
        }
    }

    /// Removes the entry for `addr`, returning its waiting frames if any.
    pub fn remove(&mut self, addr: Ipv4Addr) -> VecDeque<B> {
        match self.entries.remove(&addr) {
            Some(Entry::Incomplete { queue, .. }) => queue,
            _ => VecDeque::new(),
        }
    }

    /// The earliest time at which [`handle_timeout`](Self::handle_timeout)
    /// has work to do.
    pub fn poll_at(&self) -> Option<Instant> {
        self.entries
            .values()
            .map(|e| match *e {
                Entry::Incomplete { next_request, .. } => next_request,
                Entry::Reachable {
                    expires,
                    used,
                    probe_at,
                    ..
                } => {
                    if used {
                        probe_at.min(expires)
                    } else {
                        expires
                    }
                }
            })
            .min()
    }

    /// Runs the timers due at `now`: retries, failures, refreshes, expiry.
    /// `act` receives what the owner must do, in address order.
    pub fn handle_timeout(&mut self, now: Instant, mut act: impl FnMut(ArpAction<B>)) {
        let cfg = self.config;
        self.entries.retain(|&addr, entry| match entry {
            Entry::Incomplete {
                queue,
                requests,
                next_request,
            } => {
                if now < *next_request {
                    return true;
                }
                if *requests > cfg.max_retries {
                    act(ArpAction::Failed {
                        addr,
                        frames: core::mem::take(queue),
                    });
                    return false;
                }
                *requests = requests.saturating_add(1);
                *next_request = now + cfg.retry_interval;
                act(ArpAction::Request {
                    addr,
                    unicast: None,
                });
                true
            }
            Entry::Reachable {
                mac,
                expires,
                used,
                probe_at,
                ..
            } => {
                if now >= *expires {
                    act(ArpAction::Expired { addr });
                    return false;
                }
                if *used && now >= *probe_at {
                    // RFC 1122 §2.3.2.1 (method: unicast poll): ask the
                    // neighbour itself before the entry runs out.
                    *probe_at = now + cfg.retry_interval;
                    act(ArpAction::Request {
                        addr,
                        unicast: Some(*mac),
                    });
                }
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
    const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, last)
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn actions(c: &mut ArpCache<u32>, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        c.handle_timeout(now, |a| {
            out.push(match a {
                ArpAction::Request { addr, unicast } => format!("req {addr} {unicast:?}"),
                ArpAction::Failed { addr, frames } => format!("fail {addr} {frames:?}"),
                ArpAction::Expired { addr } => format!("exp {addr}"),
            })
        });
        out
    }

    #[test]
    fn default_config_is_valid_and_bad_ones_are_named() {
        assert!(ArpConfig::default().validate().is_ok());
        let bad = ArpConfig {
            queue_len: 0,
            ..ArpConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("queue"));
        let bad = ArpConfig {
            refresh_before: Duration::from_secs(60),
            ..ArpConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn resolve_queues_then_releases_in_order() {
        let mut c = ArpCache::new(ArpConfig::default());
        assert!(matches!(
            c.resolve(t(0), ip(9), 1),
            Resolve::QueuedNewRequest
        ));
        assert!(matches!(c.resolve(t(1), ip(9), 2), Resolve::Queued));
        assert!(matches!(c.resolve(t(2), ip(9), 3), Resolve::Queued));
        assert!(matches!(c.resolve(t(3), ip(9), 4), Resolve::QueueFull(4)));
        assert_eq!(
            c.get(ip(9)),
            Some(Neighbour::Incomplete {
                queued: 3,
                requests: 1
            })
        );
        let mut out = Vec::new();
        let u = c.update(t(10), ip(9), MAC_A, true, |m, f| out.push((m, f)));
        assert_eq!(u, Update::Resolved);
        assert_eq!(out, vec![(MAC_A, 1), (MAC_A, 2), (MAC_A, 3)]);
        assert!(matches!(
            c.resolve(t(11), ip(9), 5),
            Resolve::Ready(MAC_A, 5)
        ));
    }

    #[test]
    fn retries_then_fails_with_the_frames() {
        let mut c = ArpCache::new(ArpConfig::default());
        let _ = c.resolve(t(0), ip(9), 7);
        assert_eq!(c.poll_at(), Some(t(1000)));
        assert!(actions(&mut c, t(999)).is_empty());
        for ms in [1000, 2000, 3000] {
            assert_eq!(actions(&mut c, t(ms)), vec![format!("req {} None", ip(9))]);
        }
        assert_eq!(
            c.get(ip(9)),
            Some(Neighbour::Incomplete {
                queued: 1,
                requests: 4
            })
        );
        assert_eq!(
            actions(&mut c, t(4000)),
            vec![format!("fail {} [7]", ip(9))]
        );
        assert!(c.is_empty());
        assert_eq!(c.poll_at(), None);
    }

    #[test]
    fn merge_rule_updates_existing_but_creates_only_when_asked() {
        let mut c: ArpCache<u32> = ArpCache::new(ArpConfig::default());
        let nothing = |_: EthernetAddress, _: u32| panic!("nothing waits");
        assert_eq!(
            c.update(t(0), ip(9), MAC_A, false, nothing),
            Update::NotPresent
        );
        assert!(c.is_empty());
        assert_eq!(c.update(t(0), ip(9), MAC_A, true, nothing), Update::Created);
        assert_eq!(
            c.update(t(5), ip(9), MAC_B, false, nothing),
            Update::Refreshed
        );
        assert_eq!(c.peek(t(6), ip(9)), Some(MAC_B));
    }

    #[test]
    fn unused_entry_expires_and_is_resolved_again() {
        let mut c = ArpCache::new(ArpConfig::default());
        c.update(t(0), ip(9), MAC_A, true, |_, _| {});
        assert_eq!(c.poll_at(), Some(t(60_000)));
        assert!(actions(&mut c, t(59_999)).is_empty(), "unused: no refresh");
        // Past expiry but before the timer ran: resolve starts over.
        assert!(matches!(
            c.resolve(t(60_000), ip(9), 1),
            Resolve::QueuedNewRequest
        ));
        c.update(t(60_001), ip(9), MAC_A, false, |_, _| {});
        assert_eq!(actions(&mut c, t(120_001)), vec![format!("exp {}", ip(9))]);
        assert_eq!(c.get(ip(9)), None);
    }

    #[test]
    fn entry_in_use_is_refreshed_by_unicast_before_expiry() {
        let mut c = ArpCache::new(ArpConfig::default());
        c.update(t(0), ip(9), MAC_A, true, |_, _| {});
        assert!(matches!(c.resolve(t(100), ip(9), 1), Resolve::Ready(..)));
        assert_eq!(c.poll_at(), Some(t(55_000)));
        assert_eq!(
            actions(&mut c, t(55_000)),
            vec![format!("req {} Some({MAC_A})", ip(9))]
        );
        assert_eq!(c.poll_at(), Some(t(56_000)));
        // The neighbour answers: a fresh lifetime, no longer marked in use.
        c.update(t(55_010), ip(9), MAC_A, false, |_, _| {});
        assert_eq!(c.poll_at(), Some(t(115_010)));
        assert_eq!(c.peek(t(115_009), ip(9)), Some(MAC_A));
    }

    #[test]
    fn full_cache_evicts_oldest_resolved_or_refuses() {
        let cfg = ArpConfig {
            max_entries: 2,
            ..ArpConfig::default()
        };
        let mut c = ArpCache::new(cfg);
        c.update(t(0), ip(1), MAC_A, true, |_, _| {});
        c.update(t(1), ip(2), MAC_B, true, |_, _| {});
        assert_eq!(
            c.update(t(2), ip(3), MAC_A, true, |_, _| {}),
            Update::Created
        );
        assert_eq!(c.get(ip(1)), None, "oldest evicted");
        assert!(matches!(
            c.resolve(t(3), ip(4), 1),
            Resolve::QueuedNewRequest
        ));
        assert_eq!(c.get(ip(2)), None);
        assert!(matches!(
            c.resolve(t(3), ip(5), 2),
            Resolve::QueuedNewRequest
        ));
        assert!(matches!(c.resolve(t(3), ip(6), 3), Resolve::CacheFull(3)));
        assert_eq!(
            c.update(t(4), ip(7), MAC_A, true, |_, _| {}),
            Update::NotPresent
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c.evictions(), 3);
        assert_eq!(c.remove(ip(4)).len(), 1);
    }
}
