//! Header prediction (Van Jacobson's, as in BSD's `tcp_input` and Linux's
//! `tcp_rcv_established`): an established connection mostly receives the
//! next in-order data segment, acknowledging nothing new or new data, and
//! pure ACKs of new data. [`Connection::fast_input`] recognises those with
//! a few compares and handles them without the general walk of
//! RFC 9293 §3.10.7.4.
//!
//! It is that walk with every step decided in advance, not a second
//! implementation: a predicted segment passes PAWS (RFC 7323 §5.3) and the
//! acceptability test (it starts at RCV.NXT and fits the window), carries no
//! RST, SYN or FIN, and its ACK lies in `[SND.UNA, SND.MAX]`, so steps one
//! to four have nothing to do; TS.Recent, keep-alive, the ACK
//! ([`process_ack`](Connection::process_ack), shared with the general path)
//! and the text follow in the RFC's order. Anything else (SACK blocks or
//! SACKed data, recovery after a loss or a timeout, a loss probe or a
//! reordering window outstanding, a duplicate ACK or window update, a FIN
//! queued or received, data out of order or beyond the window) takes the
//! general path. `debug_set_header_prediction(false)` turns prediction off, for
//! tests that compare both paths.

use super::*;

/// Header prediction is off (tests). A high bit, apart from the state
/// flags.
pub(super) const F_NO_PREDICTION: u32 = 1 << 31;

impl<B: PacketBuf> Connection<B> {
    /// Handles `seg` if it is one of the predicted kinds and returns
    /// `true`; otherwise changes nothing and returns `false`. `payload` is
    /// taken when the data is queued.
    #[inline]
    pub(super) fn fast_input(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        payload: &mut Option<B>,
    ) -> bool {
        if self.state != State::Established
            || self.flags
                & (F_RECOVERY | F_LOSS | F_TLP_OPEN | F_FIN_QUEUED | F_RECV_SHUT | F_NO_PREDICTION)
                != 0
            || seg
                .flags
                .intersects(TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST)
        {
            return false;
        }
        let Some(ack) = seg.ack_number else {
            return false;
        };
        let ack = ack.0;
        let seq = seg.seq_number.0;
        if seq != self.rcv_nxt() || !seq_le(self.snd_una, ack) || !seq_le(ack, self.snd_max) {
            return false;
        }
        // SACK information to process goes the general way, and so does
        // anything while RACK waits out a reordering window (the general
        // path looks for losses on every ACK).
        if self.flags & F_SACK != 0
            && (seg.sack_ranges.iter().any(Option::is_some)
                || self.board.sacked_bytes() != 0
                || (self.timers.is_set(Timer::Rack) && self.flags & F_TLP_PTO == 0))
        {
            return false;
        }
        // PAWS (RFC 7323 §5.3): an old timestamp is dropped there.
        let ts = seg.timestamp;
        if self.flags & (F_TS | F_TS_RECENT_VALID) == F_TS | F_TS_RECENT_VALID {
            if let Some((tsval, _)) = ts {
                if seq_lt(tsval, self.ts_recent) {
                    return false;
                }
            }
        }
        let plen = seg.payload.len() as u32;
        if plen == 0 {
            // A pure ACK predicted only when it acknowledges new data: a
            // duplicate ACK or a window update is the general path's.
            if ack == self.snd_una {
                return false;
            }
        } else if payload.is_none() || !self.rxq.takes_in_order(plen) {
            return false;
        }

        // TS.Recent, RFC 7323 §4.3 (the segment starts at RCV.NXT).
        if let Some((tsval, _)) = ts {
            if self.flags & F_TS != 0 && seq_le(seq, self.last_ack_sent) {
                self.ts_recent = tsval;
                self.flags |= F_TS_RECENT_VALID;
            }
        }
        self.arm_keepalive(now);
        // Fifth: the ACK field.
        if ack == self.snd_una {
            // Nothing new acknowledged, and with data this is no duplicate
            // ACK (RFC 5681 §2): only the window may move.
            let new_wnd = u32::from(seg.window_len) << self.snd_wscale;
            self.update_send_window(seq, ack, new_wnd);
        } else {
            self.process_ack(now, seg, ack, plen == 0);
        }
        // Seventh: the text, in order and inside the window.
        if plen > 0 {
            if let Some(buf) = payload.take() {
                match self.rxq.push_in_order(buf, plen) {
                    Ok(()) => self.in_order_data(now, false),
                    Err(buf) => {
                        // Shorter than its segment says: dropped, as the
                        // general path drops it.
                        bump(&mut self.stats.dropped);
                        self.flags |= F_ACK_NOW;
                        self.rxq.release(buf);
                    }
                }
            }
        }
        true
    }

    /// Turns header prediction off or on again (on by default), for tests
    /// and fuzz targets that compare it with the general path. Not a
    /// stable interface.
    #[doc(hidden)]
    pub fn debug_set_header_prediction(&mut self, on: bool) {
        if on {
            self.flags &= !F_NO_PREDICTION;
        } else {
            self.flags |= F_NO_PREDICTION;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Differential test: header prediction against the general path.
    //! Two identical runs, prediction on and off, must be
    //! indistinguishable: every segment sent, every event, every counter.

    use super::*;
    use crate::buf::{HeapBuf, HeapPool};
    use crate::tcp::TcpConfig;
    use crate::time::Duration;
    use crate::wire::{ChecksumCaps, TcpPacket};
    use core::net::Ipv4Addr;

    const A: FourTuple = FourTuple {
        local_addr: Ipv4Addr::new(198, 18, 0, 1),
        local_port: 40_000,
        remote_addr: Ipv4Addr::new(198, 18, 0, 2),
        remote_port: 80,
    };
    const B: FourTuple = FourTuple {
        local_addr: A.remote_addr,
        local_port: A.remote_port,
        remote_addr: A.local_addr,
        remote_port: A.local_port,
    };

    /// xorshift64*: the run's only source of choices.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Something either side did, in order.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Segment(bool, Vec<u8>),
        Event(bool, Event),
        Read(bool, usize),
    }

    struct Side {
        c: Connection<HeapBuf>,
        tuple: FourTuple,
    }

    /// A pair of connections over a wire that loses, duplicates, delays
    /// and reorders, driven by `seed`; returns what was seen and each
    /// side's final state and counters.
    fn run(seed: u64, cfg: &TcpConfig, predict: bool) -> (Vec<Seen>, Vec<String>) {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut now = Instant::from_millis(1);
        let mut pool = HeapPool::new(2048, 128, 1 << 16);
        let mut app = HeapPool::new(4096, 0, 1 << 16);
        let mut seen = Vec::new();
        let mut a = Side {
            c: Connection::connect(cfg, A, 0x1000_0000 ^ seed as u32, now),
            tuple: A,
        };
        a.c.debug_set_header_prediction(predict);
        let mut b: Option<Side> = None;
        // (due, to_b, order, frame)
        let mut wire: Vec<(Instant, bool, u64, Vec<u8>)> = Vec::new();
        let mut order = 0u64;
        let loss = rng.below(8);
        let data =
            |n: usize, salt: u64| -> Vec<u8> { (0..n).map(|i| (i as u64 ^ salt) as u8).collect() };
        for step in 0..3000u64 {
            // The applications: write, read (zero copy or a copy), and
            // finally close.
            for (is_a, side) in [(true, Some(&mut a)), (false, b.as_mut())] {
                let Some(side) = side else { continue };
                let c = &mut side.c;
                if step < 1200 && rng.below(4) == 0 {
                    let n = rng.below(6000) as usize + 1;
                    let _ = c.send_slice(&data(n, step), &mut app);
                }
                match rng.below(4) {
                    0 => {
                        let mut got = 0;
                        while let Some(d) = c.recv() {
                            got += d.len();
                            app.recycle(d);
                        }
                        seen.push(Seen::Read(is_a, got));
                    }
                    1 => {
                        let mut buf = [0u8; 3000];
                        let got = c.read(&mut buf);
                        seen.push(Seen::Read(is_a, got));
                    }
                    _ => {}
                }
                if step == 1300 {
                    c.shutdown(now);
                }
                while let Some(e) = c.poll_event() {
                    seen.push(Seen::Event(is_a, e));
                }
                while let Some(r) = c.poll_recycle() {
                    app.recycle(r);
                }
            }
            // Outputs onto the wire.
            for (is_a, side) in [(true, Some(&mut a)), (false, b.as_mut())] {
                let Some(side) = side else { continue };
                side.c.debug_invariants().expect("invariants");
                while let Some(s) = side.c.poll_transmit(now, &mut pool) {
                    let mut f = s.as_slice().to_vec();
                    f.extend_from_slice(s.attached());
                    pool.recycle(s);
                    seen.push(Seen::Segment(is_a, f.clone()));
                    let copies = match rng.below(100) {
                        x if x < loss => 0,
                        x if x < loss + 3 => 2,
                        _ => 1,
                    };
                    for _ in 0..copies {
                        let due = now + Duration::from_micros(500 + rng.below(3000));
                        wire.push((due, is_a, order, f.clone()));
                        order += 1;
                    }
                }
            }
            // Deliveries due by now, in order of arrival.
            wire.sort_by_key(|&(due, _, o, _)| (due, o));
            let due = wire.iter().take_while(|w| w.0 <= now).count();
            for (_, to_b, _, f) in wire.drain(..due).collect::<Vec<_>>() {
                let from = if to_b { A } else { B };
                let pkt = TcpPacket::new_checked(&f[..]).expect("segment");
                let hl = pkt.header_len();
                let repr = TcpRepr::parse(
                    &pkt,
                    from.local_addr,
                    from.remote_addr,
                    &ChecksumCaps::SOFTWARE,
                )
                .expect("valid");
                let payload = (f.len() > hl).then(|| HeapBuf::from_slice(&f[hl..], 0));
                if to_b && b.is_none() {
                    let mut c = Connection::accept(cfg, B, 0x2000_0000 ^ seed as u32, &repr, now);
                    c.debug_set_header_prediction(predict);
                    b = Some(Side { c, tuple: B });
                    continue;
                }
                let side = if to_b { b.as_mut() } else { Some(&mut a) };
                if let Some(side) = side {
                    side.c.handle_segment(now, &repr, payload);
                }
            }
            // Time and timers.
            now += Duration::from_micros(rng.below(2000));
            for side in [Some(&mut a), b.as_mut()].into_iter().flatten() {
                if side.c.poll_timeout().is_some_and(|t| t <= now) {
                    side.c.handle_timeout(now);
                }
            }
        }
        let finals = [Some(&a), b.as_ref()]
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "{:?} {:?} {:?} {:?} {:?} {:?}",
                    s.tuple,
                    s.c.state(),
                    s.c.debug_seq(),
                    s.c.stats(),
                    s.c.recv_stats(),
                    s.c.poll_timeout()
                )
            })
            .collect();
        (seen, finals)
    }

    fn compare(cfg: &TcpConfig, seeds: core::ops::Range<u64>) {
        let mut predicted = 0;
        for seed in seeds {
            let (fast, fast_end) = run(seed, cfg, true);
            let (slow, slow_end) = run(seed, cfg, false);
            if let Some(i) = (0..fast.len().min(slow.len())).find(|&i| fast[i] != slow[i]) {
                panic!(
                    "seed {seed}: runs part at item {i}:\n predicted {:?}\n general   {:?}",
                    fast[i], slow[i]
                );
            }
            assert_eq!(fast.len(), slow.len(), "seed {seed}");
            assert_eq!(fast_end, slow_end, "seed {seed}");
            predicted += fast.len();
        }
        assert!(predicted > 0);
    }

    #[test]
    fn prediction_is_invisible_with_options() {
        compare(&TcpConfig::default(), 0..12);
        let keepalive = TcpConfig {
            keepalive: Some(crate::tcp::Keepalive {
                idle: Duration::from_millis(300),
                interval: Duration::from_millis(100),
                probes: 3,
            }),
            ..TcpConfig::default()
        };
        compare(&keepalive, 50..56);
    }

    #[test]
    fn prediction_is_invisible_without_options() {
        let cfg = TcpConfig {
            timestamps: false,
            sack: false,
            window_scale: false,
            ..TcpConfig::default()
        };
        compare(&cfg, 100..112);
    }

    #[test]
    fn prediction_is_invisible_with_small_windows_and_quick_acks() {
        let cfg = TcpConfig {
            rcv_buf: 8 * 1024,
            snd_buf: 16 * 1024,
            delayed_ack: Duration::ZERO,
            mss: 536,
            ..TcpConfig::default()
        };
        compare(&cfg, 200..212);
    }
}
