//! RSS-aware active open: source ports whose *reply* lands on our own queue.
//!
//! A worker that opens a connection owns its flow table entry, so the
//! peer's replies must reach that worker's queue. The NIC picks the queue by
//! the Toeplitz hash of the reply's 4-tuple (source = the peer, destination
//! = us) looked up in its redirection table; we choose the one field we
//! control, the local port (and, across `--src-ips`, the local address), so
//! that the lookup names our queue.
//!
//! Toeplitz is linear over GF(2): the hash of the reply input
//! `remote_ip | local_ip | remote_port | local_port` is the hash with the
//! local port zeroed, XOR the hash of the local port alone (in its
//! position). With a power-of-two table the queue depends only on the low
//! bits, so ports are grouped once, at start, by the low bits of their own
//! contribution ("buckets"); for a connection, the wanted buckets are
//! `i ^ low(base)` for each table index `i` that names our queue. Picking a
//! port is then one 12-byte hash and a walk down a bucket, however many
//! connections are open. A table whose size is not a power of two falls
//! back to testing ports one by one (about `queues` tries each).

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use crate::net::rss::{queue_for, Toeplitz};
use crate::port::RssInfo;
use crate::tcp::FourTuple;

/// The source ports one worker may use, by the reply's RSS queue.
#[derive(Debug)]
pub struct SourcePorts {
    toeplitz: Toeplitz,
    reta: Vec<u16>,
    queue: u16,
    ports: RangeInclusive<u16>,
    /// `reta.len() - 1` when the table size is a power of two.
    mask: Option<usize>,
    /// Table indices that name our queue.
    mine: Vec<usize>,
    /// Ports of `ports` grouped by the low bits of their own hash part.
    buckets: Vec<Vec<u16>>,
    /// Where the next walk down each bucket starts.
    cursors: Vec<usize>,
    next_index: usize,
    /// Fallback scan position.
    scan: u16,
}

impl SourcePorts {
    /// The ports of `ports` whose replies `rss` maps to `queue`.
    pub fn new(rss: &RssInfo, queue: u16, ports: RangeInclusive<u16>) -> Self {
        let toeplitz = Toeplitz::new(&rss.key);
        let len = rss.reta.len();
        let mask = (len.is_power_of_two()).then(|| len - 1);
        let mine: Vec<usize> = (0..len).filter(|&i| rss.reta[i] == queue).collect();
        let mut buckets = vec![Vec::new(); mask.map_or(0, |m| m + 1)];
        if let Some(m) = mask {
            for p in ports.clone() {
                let part = toeplitz.hash_ipv4_tcp([0; 4], [0; 4], 0, p) as usize;
                buckets[part & m].push(p);
            }
        }
        SourcePorts {
            cursors: vec![0; buckets.len()],
            toeplitz,
            reta: rss.reta.clone(),
            queue,
            scan: *ports.start(),
            ports,
            mask,
            mine,
            buckets,
            next_index: 0,
        }
    }

    /// The queue a reply on `tuple` (seen from our side) lands on.
    pub fn reply_queue(&self, tuple: &FourTuple) -> u16 {
        let h = self.toeplitz.hash_ipv4_tcp(
            tuple.remote_addr.octets(),
            tuple.local_addr.octets(),
            tuple.remote_port,
            tuple.local_port,
        );
        queue_for(h, &self.reta)
    }

    /// Whether a reply on `tuple` belongs to another queue: an active open
    /// of another worker (our port range, hashed elsewhere).
    pub fn is_foreign(&self, tuple: &FourTuple) -> bool {
        self.ports.contains(&tuple.local_port) && self.reply_queue(tuple) != self.queue
    }

    /// [`is_foreign`](Self::is_foreign) as a standalone rule, for the
    /// stack's steering hook.
    pub fn foreign_rule(&self) -> impl Fn(&FourTuple) -> bool + 'static {
        let toeplitz = self.toeplitz.clone();
        let reta = self.reta.clone();
        let queue = self.queue;
        let ports = self.ports.clone();
        move |t: &FourTuple| {
            let h = toeplitz.hash_ipv4_tcp(
                t.remote_addr.octets(),
                t.local_addr.octets(),
                t.remote_port,
                t.local_port,
            );
            ports.contains(&t.local_port) && queue_for(h, &reta) != queue
        }
    }

    /// Offers `try_port` local ports for a connection from `local` to
    /// `remote` whose replies come to our queue, until it accepts one (it
    /// returns `true`: the 4-tuple was free); returns that port, or `None`
    /// when every such port was refused.
    pub fn pick(
        &mut self,
        local: Ipv4Addr,
        remote: (Ipv4Addr, u16),
        mut try_port: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        if self.mine.is_empty() {
            return None;
        }
        let Some(mask) = self.mask else {
            return self.pick_by_scan(local, remote, try_port);
        };
        let base =
            self.toeplitz
                .hash_ipv4_tcp(remote.0.octets(), local.octets(), remote.1, 0) as usize;
        let n = self.mine.len();
        for k in 0..n {
            let index = self.mine[(self.next_index + k) % n];
            let b = (index ^ base) & mask;
            let bucket = &self.buckets[b];
            let len = bucket.len();
            for step in 0..len {
                let at = (self.cursors[b] + step) % len;
                let port = bucket[at];
                if try_port(port) {
                    self.cursors[b] = (at + 1) % len;
                    self.next_index = (self.next_index + k + 1) % n;
                    return Some(port);
                }
            }
        }
        None
    }

    fn pick_by_scan(
        &mut self,
        local: Ipv4Addr,
        remote: (Ipv4Addr, u16),
        mut try_port: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let (lo, hi) = (*self.ports.start(), *self.ports.end());
        let span = u32::from(hi - lo) + 1;
        for _ in 0..span {
            let port = self.scan;
            self.scan = if port >= hi { lo } else { port + 1 };
            let tuple = FourTuple {
                local_addr: local,
                local_port: port,
                remote_addr: remote.0,
                remote_port: remote.1,
            };
            if self.reply_queue(&tuple) == self.queue && try_port(port) {
                return Some(port);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::rss::{frame_hash, round_robin_reta};
    use crate::port::link::DEFAULT_RSS_KEY;
    use crate::port::rng::Rng;
    use std::collections::HashSet;

    /// The reply as the NIC sees it: an Ethernet/IPv4/TCP frame from the
    /// peer to us, hashed by the same code the in-memory ports use.
    fn reply_frame_queue(t: &Toeplitz, reta: &[u16], tuple: &FourTuple) -> u16 {
        let mut f = [0u8; 54];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&tuple.remote_addr.octets());
        f[30..34].copy_from_slice(&tuple.local_addr.octets());
        f[34..36].copy_from_slice(&tuple.remote_port.to_be_bytes());
        f[36..38].copy_from_slice(&tuple.local_port.to_be_bytes());
        queue_for(frame_hash(t, &f).unwrap(), reta)
    }

    /// 100 000 connections over 1 to 8 queues, random peers and source
    /// addresses: every reply lands on the queue of the worker that opened it.
    #[test]
    fn every_reply_lands_on_the_opener() {
        let mut rng = Rng::new(7);
        for queues in 1..=8u16 {
            for reta_len in [128usize, 100] {
                let rss = RssInfo {
                    key: DEFAULT_RSS_KEY.to_vec(),
                    reta: round_robin_reta(reta_len, queues),
                };
                let t = Toeplitz::new(&rss.key);
                let mut pickers: Vec<SourcePorts> = (0..queues)
                    .map(|q| SourcePorts::new(&rss, q, 1024..=65535))
                    .collect();
                let mut used = HashSet::new();
                let per = if reta_len == 128 { 100_000 / 8 } else { 2_000 };
                for _ in 0..per {
                    let q = rng.below(u64::from(queues)) as usize;
                    let local = Ipv4Addr::from(0xc612_0100 + rng.below(200) as u32);
                    let remote = (
                        Ipv4Addr::from(rng.next_u64() as u32),
                        rng.below(65536) as u16,
                    );
                    let port = pickers[q]
                        .pick(local, remote, |p| used.insert((local, p, remote)))
                        .expect("a port");
                    let tuple = FourTuple {
                        local_addr: local,
                        local_port: port,
                        remote_addr: remote.0,
                        remote_port: remote.1,
                    };
                    assert_eq!(reply_frame_queue(&t, &rss.reta, &tuple), q as u16);
                    assert!(!pickers[q].is_foreign(&tuple));
                    for (other, p) in pickers.iter().enumerate() {
                        assert_eq!(p.is_foreign(&tuple), other != q);
                    }
                }
            }
        }
    }

    #[test]
    fn one_destination_gets_its_share_of_ports_then_none() {
        let rss = RssInfo {
            key: DEFAULT_RSS_KEY.to_vec(),
            reta: round_robin_reta(128, 4),
        };
        let mut p = SourcePorts::new(&rss, 1, 40000..=40999);
        let local = Ipv4Addr::new(198, 18, 0, 1);
        let remote = (Ipv4Addr::new(198, 18, 0, 2), 80);
        let mut used = HashSet::new();
        while p.pick(local, remote, |port| used.insert(port)).is_some() {}
        // About a quarter of the 1000 ports, all distinct and all ours.
        assert!((150..350).contains(&used.len()), "{}", used.len());
        for &port in &used {
            let tuple = FourTuple {
                local_addr: local,
                local_port: port,
                remote_addr: remote.0,
                remote_port: remote.1,
            };
            assert_eq!(p.reply_queue(&tuple), 1);
        }
    }
}
