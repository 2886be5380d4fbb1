//! SYN cookies, RFC 4987 §3.6.
//!
//! Under a SYN flood the listener keeps no state for a SYN: everything it
//! must remember is folded into the ISN of its SYN-ACK, and the ACK that
//! completes the handshake brings it back (`ack − 1`). The layout follows
//! Linux's `secure_tcp_syn_cookie` in spirit, but authenticates every field:
//!
//! ```text
//! cookie = H1(tuple) + (count << 24 | MAC22(tuple, client_isn, count, i) << 2 | i)
//! ```
//!
//! - `count`: a coarse clock, one tick per 64 s, low 8 bits carried. A
//!   cookie is accepted during its own period and the next one (64 to 128 s
//!   of validity, like Linux's `MAX_SYNCOOKIE_AGE` of 2).
//! - `i`: a 2-bit index into [`MSS_TABLE`], the only SYN option that must
//!   survive (RFC 4987 §3.6); window scale and SACK-permitted ride in the
//!   timestamp when the peer uses timestamps ([`encode_ts_opts`]).
//! - `MAC22`: 22 bits of keyed SipHash-2-4. Unlike Linux, where the MSS
//!   index is added to the hash and a modified cookie can decode to another
//!   index, here the index is under the MAC: any change to the ACK, the
//!   tuple or the client ISN is rejected except with probability 2⁻²².
//! - `H1`: a keyed hash of the tuple, added so cookies (our ISNs) look
//!   random and reveal neither the clock nor the MSS.
//!
//! A random ACK is accepted with probability (2/256)·2⁻²² = 2⁻²⁹ per key
//! (twice that just after a key rotation, when the previous key is still
//! honoured).

use super::siphash::SipHasher24;
use super::FourTuple;
use crate::time::Instant;

/// MSS values a cookie can carry (Linux's `msstab`): the common IPv4 MSSes
/// behind tunnels, PPPoE and plain Ethernet, and the IPv4 minimum.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Length of a cookie period.
pub const PERIOD_SECS: u64 = 64;

const COUNT_SHIFT: u32 = 24;
const MAC_MASK: u32 = (1 << 22) - 1;
const INDEX_MASK: u32 = 0b11;

/// What a valid cookie gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieInfo {
    /// The MSS to use towards the peer (from [`MSS_TABLE`]).
    pub mss: u16,
}

/// SYN-cookie generator and checker for one listener (or one core).
/// `Debug` does not print the keys.
#[derive(Clone, Debug)]
pub struct SynCookies {
    current: SipHasher24,
    previous: Option<SipHasher24>,
}

fn counter(now: Instant) -> u32 {
    (now.as_nanos() / 1_000_000_000 / PERIOD_SECS) as u32
}

impl SynCookies {
    /// Keyed with a random 128-bit `secret` supplied by the runtime.
    pub fn new(secret: [u8; 16]) -> Self {
        SynCookies {
            current: SipHasher24::new(secret),
            previous: None,
        }
    }

    /// Installs a new key. Cookies made with the previous key stay valid
    /// until the next rotation, so rotate less often than every 128 s.
    pub fn rotate_key(&mut self, secret: [u8; 16]) {
        self.previous = Some(self.current);
        self.current = SipHasher24::new(secret);
    }

    /// The ISN for a SYN-ACK answering a SYN on `tuple` with sequence number
    /// `client_isn` and MSS option `mss` (536 if absent, RFC 9293 §3.7.1),
    /// and the MSS the connection will use: the largest table entry not
    /// above `mss` (536 at least, as Linux).
    pub fn generate(
        &self,
        now: Instant,
        tuple: &FourTuple,
        client_isn: u32,
        mss: u16,
    ) -> (u32, u16) {
        let index = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0);
        let count = counter(now);
        let cookie = make(&self.current, tuple, client_isn, count, index as u32);
        (cookie, MSS_TABLE[index])
    }

    /// Checks the cookie returned in an ACK: `cookie` is the ACK number
    /// minus one, `client_isn` the ACK's sequence number minus one.
    pub fn validate(
        &self,
        now: Instant,
        tuple: &FourTuple,
        client_isn: u32,
        cookie: u32,
    ) -> Option<CookieInfo> {
        let count = counter(now);
        check(&self.current, tuple, client_isn, count, cookie).or_else(|| {
            self.previous
                .as_ref()
                .and_then(|k| check(k, tuple, client_isn, count, cookie))
        })
    }
}

/// `H1`: blinds the cookie; depends on the tuple only so that validation
/// can remove it before reading the count.
fn h1(key: &SipHasher24, tuple: &FourTuple) -> u32 {
    let mut msg = [0u8; 13];
    msg[0] = 1;
    msg[1..].copy_from_slice(&tuple.to_bytes());
    key.hash(&msg) as u32
}

fn mac(key: &SipHasher24, tuple: &FourTuple, client_isn: u32, count: u32, index: u32) -> u32 {
    let mut msg = [0u8; 22];
    msg[0] = 2;
    msg[1..13].copy_from_slice(&tuple.to_bytes());
    msg[13..17].copy_from_slice(&client_isn.to_be_bytes());
    msg[17..21].copy_from_slice(&count.to_be_bytes());
    msg[21] = index as u8;
    key.hash(&msg) as u32 & MAC_MASK
}

fn make(key: &SipHasher24, tuple: &FourTuple, client_isn: u32, count: u32, index: u32) -> u32 {
    let body = (count << COUNT_SHIFT) | (mac(key, tuple, client_isn, count, index) << 2) | index;
    h1(key, tuple).wrapping_add(body)
}

fn check(
    key: &SipHasher24,
    tuple: &FourTuple,
    client_isn: u32,
    count: u32,
    cookie: u32,
) -> Option<CookieInfo> {
    let body = cookie.wrapping_sub(h1(key, tuple));
    // Age in periods, modulo 256: this period or the previous one.
    let age = count.wrapping_sub(body >> COUNT_SHIFT) & 0xff;
    if age > 1 {
        return None;
    }
    let index = body & INDEX_MASK;
    let want = mac(key, tuple, client_isn, count.wrapping_sub(age), index);
    if (body >> 2) & MAC_MASK != want {
        return None;
    }
    Some(CookieInfo {
        mss: MSS_TABLE[index as usize],
    })
}

/// Connection options a cookie cannot hold, kept in the low bits of the
/// timestamp value of the SYN-ACK (Linux's `cookie_init_timestamp`) and
/// read back from the echo in the ACK (RFC 7323 §3: TSecr echoes our
/// TSval).
///
/// These bits are not authenticated: a peer that lies about them only
/// harms its own connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CookieTsOpts {
    /// The peer's window scale shift (RFC 7323 §2.3, at most 14), `None` if
    /// it sent no window scale option.
    pub wscale: Option<u8>,
    /// The peer sent SACK-permitted (RFC 2018 §2).
    pub sack_ok: bool,
    /// The SYN negotiated ECN (RFC 3168 §6.1.1).
    pub ecn_ok: bool,
}

const TS_OPT_BITS: u32 = 6;
const TS_OPT_MASK: u32 = (1 << TS_OPT_BITS) - 1;
const TS_WSCALE_MASK: u32 = 0xf;
const TS_WSCALE_NONE: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
const TS_ECN: u32 = 1 << 5;
const MAX_WSCALE: u8 = 14;

/// The TSval to send in a cookie SYN-ACK: `now_ts` with its low 6 bits
/// replaced by `opts`, moved back one 64-tick step if that would put it
/// ahead of our timestamp clock (timestamps must not run ahead, RFC 7323
/// §5.4).
pub fn encode_ts_opts(now_ts: u32, opts: CookieTsOpts) -> u32 {
    let wscale = opts
        .wscale
        .map_or(TS_WSCALE_NONE, |w| u32::from(w.min(MAX_WSCALE)));
    let bits =
        wscale | if opts.sack_ok { TS_SACK } else { 0 } | if opts.ecn_ok { TS_ECN } else { 0 };
    let ts = (now_ts & !TS_OPT_MASK) | bits;
    if ts > now_ts {
        ts.wrapping_sub(1 << TS_OPT_BITS)
    } else {
        ts
    }
}

/// Reads back the options from the TSecr of the handshake-completing ACK.
pub fn decode_ts_opts(tsecr: u32) -> CookieTsOpts {
    let wscale = tsecr & TS_WSCALE_MASK;
    CookieTsOpts {
        wscale: (wscale != TS_WSCALE_NONE).then_some(wscale as u8),
        sack_ok: tsecr & TS_SACK != 0,
        ecn_ok: tsecr & TS_ECN != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    fn tuple() -> FourTuple {
        FourTuple {
            local_addr: Ipv4Addr::new(198, 18, 0, 1),
            local_port: 443,
            remote_addr: Ipv4Addr::new(198, 19, 7, 9),
            remote_port: 51_000,
        }
    }

    fn secs(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    const T: u64 = 1_000_000 * PERIOD_SECS; // start of a period

    #[test]
    fn round_trip_every_mss_index() {
        let c = SynCookies::new([9; 16]);
        for (i, &m) in MSS_TABLE.iter().enumerate() {
            let (isn, used) = c.generate(secs(T + 5), &tuple(), 0xdead_beef, m);
            assert_eq!(used, m);
            let got = c.validate(secs(T + 6), &tuple(), 0xdead_beef, isn);
            assert_eq!(got, Some(CookieInfo { mss: m }), "index {i}");
        }
    }

    #[test]
    fn mss_rounds_down_to_the_table() {
        let c = SynCookies::new([9; 16]);
        for (asked, want) in [
            (0, 536),
            (535, 536),
            (536, 536),
            (1299, 536),
            (1300, 1300),
            (1459, 1440),
            (1460, 1460),
            (9000, 1460),
            (u16::MAX, 1460),
        ] {
            let (isn, used) = c.generate(secs(T), &tuple(), 1, asked);
            assert_eq!(used, want, "mss {asked}");
            assert_eq!(
                c.validate(secs(T), &tuple(), 1, isn),
                Some(CookieInfo { mss: want })
            );
        }
    }

    #[test]
    fn tampering_is_rejected() {
        let c = SynCookies::new([9; 16]);
        let t = tuple();
        let (isn, _) = c.generate(secs(T), &t, 77, 1300);
        let now = secs(T + 1);
        assert!(c.validate(now, &t, 77, isn).is_some());
        // The ACK number.
        for delta in [1u32, 2, 3, 4, 0x100, 1 << 24, 0x8000_0000] {
            assert_eq!(
                c.validate(now, &t, 77, isn.wrapping_add(delta)),
                None,
                "+{delta:#x}"
            );
            assert_eq!(
                c.validate(now, &t, 77, isn.wrapping_sub(delta)),
                None,
                "-{delta:#x}"
            );
        }
        for bit in 0..32 {
            assert_eq!(c.validate(now, &t, 77, isn ^ (1 << bit)), None, "bit {bit}");
        }
        // The client ISN.
        assert_eq!(c.validate(now, &t, 78, isn), None);
        // Each tuple field.
        let mut u = t;
        u.remote_port += 1;
        assert_eq!(c.validate(now, &u, 77, isn), None);
        let mut u = t;
        u.local_port += 1;
        assert_eq!(c.validate(now, &u, 77, isn), None);
        let mut u = t;
        u.remote_addr = Ipv4Addr::new(198, 19, 7, 10);
        assert_eq!(c.validate(now, &u, 77, isn), None);
        let mut u = t;
        u.local_addr = Ipv4Addr::new(198, 18, 0, 2);
        assert_eq!(c.validate(now, &u, 77, isn), None);
        // Another key.
        assert_eq!(SynCookies::new([8; 16]).validate(now, &t, 77, isn), None);
    }

    #[test]
    fn expires_after_the_next_period() {
        let c = SynCookies::new([9; 16]);
        let (isn, _) = c.generate(secs(T + 63), &tuple(), 5, 1460);
        assert!(c.validate(secs(T + 64), &tuple(), 5, isn).is_some());
        assert!(c.validate(secs(T + 127), &tuple(), 5, isn).is_some());
        assert_eq!(c.validate(secs(T + 128), &tuple(), 5, isn), None);
        assert_eq!(
            c.validate(secs(T + 100 * PERIOD_SECS), &tuple(), 5, isn),
            None
        );
        // A cookie from the future (clock went back) is not accepted.
        assert_eq!(c.validate(secs(T - 1), &tuple(), 5, isn), None);
        // 256 periods later the 8-bit count matches again, but the MAC
        // covers the full count.
        assert_eq!(
            c.validate(secs(T + 63 + 256 * PERIOD_SECS), &tuple(), 5, isn),
            None
        );
    }

    #[test]
    fn key_rotation_keeps_one_previous_key() {
        let mut c = SynCookies::new([1; 16]);
        let (isn, _) = c.generate(secs(T), &tuple(), 5, 1460);
        c.rotate_key([2; 16]);
        assert!(c.validate(secs(T), &tuple(), 5, isn).is_some());
        let (isn2, _) = c.generate(secs(T), &tuple(), 5, 1460);
        assert_ne!(isn, isn2);
        assert!(c.validate(secs(T), &tuple(), 5, isn2).is_some());
        c.rotate_key([3; 16]);
        assert_eq!(c.validate(secs(T), &tuple(), 5, isn), None);
        assert!(c.validate(secs(T), &tuple(), 5, isn2).is_some());
    }

    #[test]
    fn random_acks_are_not_accepted() {
        // Expected false accepts: 1e5 * 2 keys * 2^-29 ~ 4e-4.
        let mut c = SynCookies::new([0x5a; 16]);
        c.rotate_key([0xa5; 16]);
        let mut x = 0x0123_4567_89ab_cdefu64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let now = secs(T + 10);
        for _ in 0..100_000 {
            let r = next();
            let t = FourTuple {
                local_addr: Ipv4Addr::from((r >> 32) as u32),
                local_port: r as u16,
                remote_addr: Ipv4Addr::from(r as u32),
                remote_port: (r >> 16) as u16,
            };
            let s = next();
            assert_eq!(c.validate(now, &t, s as u32, (s >> 32) as u32), None);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn round_trip_and_random_reject(
            key in any::<[u8; 16]>(),
            la in any::<u32>(), lp in any::<u16>(), ra in any::<u32>(), rp in any::<u16>(),
            client_isn in any::<u32>(), mss in any::<u16>(), at in 0u64..(1 << 40),
            wait in 0u64..PERIOD_SECS, random_ack in any::<u32>(),
        ) {
            let t = FourTuple {
                local_addr: Ipv4Addr::from(la), local_port: lp,
                remote_addr: Ipv4Addr::from(ra), remote_port: rp,
            };
            let c = SynCookies::new(key);
            let (isn, used) = c.generate(secs(at), &t, client_isn, mss);
            prop_assert_eq!(c.validate(secs(at + wait), &t, client_isn, isn), Some(CookieInfo { mss: used }));
            if random_ack != isn {
                prop_assert_eq!(c.validate(secs(at + wait), &t, client_isn, random_ack), None);
            }
        }

        #[test]
        fn ts_opts_round_trip(now_ts in any::<u32>(), wscale in proptest::option::of(0u8..=14), sack_ok: bool, ecn_ok: bool) {
            let opts = CookieTsOpts { wscale, sack_ok, ecn_ok };
            let ts = encode_ts_opts(now_ts, opts);
            prop_assert_eq!(decode_ts_opts(ts), opts);
            // Never ahead of our clock, at most 127 ticks behind (modulo
            // 2^32, RFC 7323 §5.2 comparison).
            let behind = now_ts.wrapping_sub(ts);
            prop_assert!(behind < 128);
        }
    }

    #[test]
    fn ts_opts_layout() {
        let o = CookieTsOpts {
            wscale: Some(7),
            sack_ok: true,
            ecn_ok: false,
        };
        assert_eq!(encode_ts_opts(0x1000_0040 + 0x3f, o), 0x1000_0040 | 0x17);
        // Would be ahead: step back 64.
        assert_eq!(encode_ts_opts(0x1000_0040, o), 0x1000_0000 | 0x17);
        let none = CookieTsOpts::default();
        assert_eq!(encode_ts_opts(0x7f, none) & 0x3f, 0x0f);
        assert_eq!(decode_ts_opts(0x0f), none);
        // A wscale above 14 is clamped (RFC 7323 §2.3).
        let big = CookieTsOpts {
            wscale: Some(200),
            ..none
        };
        assert_eq!(
            decode_ts_opts(encode_ts_opts(1 << 20, big)).wscale,
            Some(14)
        );
    }
}
