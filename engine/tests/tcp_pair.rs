//! Two `Connection<HeapBuf>`s wired back to back through a tiny seeded link
//! (delay, loss, reordering, duplication) on a virtual clock.
//!
//! Every segment crosses the link as bytes (header plus gathered payload)
//! and is re-parsed with `TcpRepr::parse`, checksum verified, so what is
//! tested is what a device would send. Transfers go both ways at once and
//! are compared byte for byte.

use std::collections::BTreeMap;

use wirespeed::buf::{cow_copies, HeapBuf, HeapPool, PacketBuf};
use wirespeed::port::rng::Rng;
use wirespeed::tcp::{CcAlgorithm, CloseReason, Connection, Event, FourTuple, State, TcpConfig};
use wirespeed::wire::{ChecksumCaps, TcpFlags, TcpPacket, TcpRepr};
use wirespeed::{Duration, Instant};

const A: FourTuple = FourTuple {
    local_addr: core::net::Ipv4Addr::new(198, 18, 0, 1),
    local_port: 40_000,
    remote_addr: core::net::Ipv4Addr::new(198, 18, 0, 2),
    remote_port: 80,
};

fn reverse(t: FourTuple) -> FourTuple {
    FourTuple {
        local_addr: t.remote_addr,
        local_port: t.remote_port,
        remote_addr: t.local_addr,
        remote_port: t.local_port,
    }
}

/// Link impairments.
#[derive(Clone, Copy, Debug)]
struct LinkCfg {
    delay: Duration,
    loss: f64,
    dup: f64,
    reorder: f64,
}

struct Link {
    cfg: LinkCfg,
    rng: Rng,
    /// (delivery time, sequence for ties) -> (to side, bytes).
    q: BTreeMap<(Instant, u64), (usize, Vec<u8>)>,
    n: u64,
}

impl Link {
    fn send(&mut self, now: Instant, to: usize, bytes: Vec<u8>) {
        if self.rng.chance(self.cfg.loss) {
            return;
        }
        let copies = if self.rng.chance(self.cfg.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let mut at = now + self.cfg.delay;
            if self.rng.chance(self.cfg.reorder) {
                at += Duration::from_micros(self.rng.below(5_000));
            }
            self.n += 1;
            self.q.insert((at, self.n), (to, bytes.clone()));
        }
    }

    fn next_time(&self) -> Option<Instant> {
        self.q.keys().next().map(|k| k.0)
    }

    fn pop_due(&mut self, now: Instant) -> Option<(usize, Vec<u8>)> {
        let (&k, _) = self.q.iter().next()?;
        if k.0 > now {
            return None;
        }
        self.q.remove(&k)
    }
}

struct Side {
    tuple: FourTuple,
    conn: Option<Connection<HeapBuf>>,
    to_send: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    peer_fin: bool,
    closed: Option<CloseReason>,
    shut: bool,
}

struct Pair {
    cfg: TcpConfig,
    sides: [Side; 2],
    link: Link,
    now: Instant,
    pool: HeapPool,
    chunk: usize,
    /// Run until both are CLOSED (not merely in TIME-WAIT).
    need_closed: bool,
}

impl Pair {
    fn new(cfg: TcpConfig, link: LinkCfg, seed: u64, a_data: Vec<u8>, b_data: Vec<u8>) -> Pair {
        let now = Instant::from_millis(1);
        let conn = Connection::connect(&cfg, A, 0x1234_5678 ^ seed as u32, now);
        let side = |tuple, conn, to_send| Side {
            tuple,
            conn,
            to_send,
            sent: 0,
            got: Vec::new(),
            peer_fin: false,
            closed: None,
            shut: false,
        };
        Pair {
            cfg,
            sides: [side(A, Some(conn), a_data), side(reverse(A), None, b_data)],
            link: Link {
                cfg: link,
                rng: Rng::new(seed),
                q: BTreeMap::new(),
                n: 0,
            },
            now,
            pool: HeapPool::new(256, 128, 1 << 20),
            chunk: 16 * 1024,
            need_closed: false,
        }
    }

    /// Application work and transmissions of side `i`.
    fn service(&mut self, i: usize) {
        let now = self.now;
        let chunk = self.chunk;
        let s = &mut self.sides[i];
        let Some(conn) = s.conn.as_mut() else {
            return;
        };
        // Queue data, zero copy: each chunk is one application buffer.
        if conn.state() == State::Established || conn.state() == State::CloseWait {
            while s.sent < s.to_send.len() {
                let end = (s.sent + chunk).min(s.to_send.len());
                let b = HeapBuf::from_slice(&s.to_send[s.sent..end], 0);
                match conn.send(b) {
                    Ok(()) => s.sent = end,
                    Err(_) => break,
                }
            }
            if s.sent == s.to_send.len() && !s.shut {
                conn.shutdown(now);
                s.shut = true;
            }
        }
        while let Some(b) = conn.recv() {
            s.got.extend_from_slice(b.as_slice());
        }
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::PeerFin => s.peer_fin = true,
                Event::Closed(r) => s.closed = Some(r),
                _ => {}
            }
        }
        while let Some(out) = conn.poll_transmit(now, &mut self.pool) {
            let mut bytes = out.as_slice().to_vec();
            bytes.extend_from_slice(out.attached());
            self.pool.recycle(out);
            self.link.send(now, 1 - i, bytes);
        }
        while conn.poll_recycle().is_some() {}
    }

    fn deliver(&mut self, to: usize, bytes: Vec<u8>) {
        let tuple = self.sides[to].tuple;
        let pkt = TcpPacket::new_checked(&bytes[..]).expect("length");
        let repr = TcpRepr::parse(
            &pkt,
            tuple.remote_addr,
            tuple.local_addr,
            &ChecksumCaps::SOFTWARE,
        )
        .expect("checksum and options verify");
        let mut buf = HeapBuf::from_slice(&bytes, 0);
        buf.advance(pkt.header_len()).unwrap();
        let now = self.now;
        match self.sides[to].conn.as_mut() {
            Some(c) => c.handle_segment(now, &repr, Some(buf)),
            None => {
                if repr.flags.contains(TcpFlags::SYN) && repr.ack_number.is_none() {
                    self.sides[to].conn = Some(Connection::accept(
                        &self.cfg,
                        tuple,
                        0x9abc_def0,
                        &repr,
                        now,
                    ));
                }
            }
        }
    }

    fn done(&self) -> bool {
        self.sides.iter().all(|s| {
            s.closed.is_some()
                || !self.need_closed
                    && s.conn
                        .as_ref()
                        .is_some_and(|c| c.state() == State::TimeWait)
        })
    }

    /// Runs until both sides are done or `limit` of virtual time passed.
    fn run(&mut self, limit: Duration) -> Duration {
        let start = self.now;
        loop {
            for i in 0..2 {
                self.service(i);
            }
            while let Some((to, bytes)) = self.link.pop_due(self.now) {
                self.deliver(to, bytes);
                self.service(to);
            }
            if self.done() {
                return self.now.saturating_since(start);
            }
            let mut next = self.link.next_time();
            for s in &self.sides {
                if let Some(t) = s.conn.as_ref().and_then(|c| c.poll_timeout()) {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
            let Some(next) = next else {
                panic!("stalled at {:?}: {:?}", self.now, self.debug());
            };
            if next.saturating_since(start) > limit {
                panic!("over the time bound: {:?}", self.debug());
            }
            self.now = self.now.max(next);
            for s in &mut self.sides {
                if let Some(c) = s.conn.as_mut() {
                    if c.poll_timeout().is_some_and(|t| t <= self.now) {
                        c.handle_timeout(self.now);
                    }
                }
            }
        }
    }

    fn debug(&self) -> String {
        self.sides
            .iter()
            .map(|s| {
                format!(
                    "[{:?} sent {} / {} got {} fin {} closed {:?}]",
                    s.conn.as_ref(),
                    s.sent,
                    s.to_send.len(),
                    s.got.len(),
                    s.peer_fin,
                    s.closed
                )
            })
            .collect()
    }
}

fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng::new(seed ^ 0xdada);
    (0..n).map(|_| r.next_u64() as u8).collect()
}

fn transfer(size: usize, loss: f64, cc: CcAlgorithm, seed: u64) -> Duration {
    let cfg = TcpConfig {
        cc,
        ..TcpConfig::default()
    };
    let link = LinkCfg {
        delay: Duration::from_millis(5),
        loss,
        dup: if loss > 0.0 { 0.01 } else { 0.0 },
        reorder: if loss > 0.0 { 0.02 } else { 0.0 },
    };
    let a = data(size, seed);
    let b = data(size, seed + 1000);
    let mut p = Pair::new(cfg, link, seed, a.clone(), b.clone());
    // Bound: 4 MiB at 5 % loss on a 10 ms RTT finishes in well under this.
    let took = p.run(Duration::from_secs(300));
    assert!(
        p.sides[1].got == a,
        "A->B bytes differ ({} of {})",
        p.sides[1].got.len(),
        a.len()
    );
    assert!(
        p.sides[0].got == b,
        "B->A bytes differ ({} of {})",
        p.sides[0].got.len(),
        b.len()
    );
    assert!(p.sides.iter().all(|s| s.peer_fin));
    took
}

#[test]
fn transfers_both_ways_through_loss_reordering_and_duplication() {
    for &size in &[1usize, 64 * 1024, 4 << 20] {
        for &loss in &[0.0, 0.01, 0.05] {
            for cc in [CcAlgorithm::NewReno, CcAlgorithm::Cubic] {
                let seeds: &[u64] = if size > 1 << 20 { &[1, 2] } else { &[1, 2, 3] };
                for &seed in seeds {
                    let took = transfer(size, loss, cc, seed);
                    eprintln!("size {size} loss {loss} {cc:?} seed {seed}: {took:?}");
                }
            }
        }
    }
}

#[test]
fn bulk_transfer_copies_nothing() {
    let size = 1 << 20;
    let a = data(size, 7);
    let mut p = Pair::new(
        TcpConfig::default(),
        LinkCfg {
            delay: Duration::from_millis(1),
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
        },
        7,
        a.clone(),
        Vec::new(),
    );
    let before = cow_copies();
    p.run(Duration::from_secs(30));
    assert_eq!(cow_copies(), before, "a shared buffer was written");
    assert!(p.sides[1].got == a);
}

#[test]
fn orderly_close_reaches_closed_and_time_wait() {
    let mut p = Pair::new(
        TcpConfig::default(),
        LinkCfg {
            delay: Duration::from_millis(2),
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
        },
        3,
        b"hello".to_vec(),
        b"world".to_vec(),
    );
    p.run(Duration::from_secs(10));
    p.need_closed = true;
    // Then TIME-WAIT expires (2·MSL = 60 s) on whichever side holds it.
    p.run(Duration::from_secs(120));
    for s in &p.sides {
        let c = s.conn.as_ref().unwrap();
        assert_eq!(c.state(), State::Closed);
    }
    assert!(p
        .sides
        .iter()
        .all(|s| s.closed == Some(CloseReason::Normal)));
}
