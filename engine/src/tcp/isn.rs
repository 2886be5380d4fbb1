//! Initial sequence numbers, RFC 6528 §3:
//!
//! ```text
//! ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
//! ```
//!
//! `M` is a timer ticking every 4 microseconds, derived from the caller's
//! `now` (the core reads no clock). `F` is SipHash-2-4 keyed with a 128-bit
//! secret that the runtime draws from its random source at start-up (§3:
//! "a cryptographic hash function ... with a secret key"); nothing here
//! reads the operating system. The per-tuple offset keeps sequence spaces of
//! different connections apart (blind-injection resistance, §2); the clock
//! keeps successive incarnations of the same 4-tuple moving forward
//! (RFC 9293 §3.4.1).

use super::siphash::SipHasher24;
use super::FourTuple;
use crate::time::Instant;

use core::net::Ipv4Addr;

/// RFC 6528 ISN generator. `Debug` does not print the key.
#[derive(Clone, Debug)]
pub struct IsnGenerator {
    hasher: SipHasher24,
}

impl IsnGenerator {
    /// A generator keyed with `secret` (RFC 6528 §3: the key should be
    /// random and at least 128 bits).
    pub fn new(secret: [u8; 16]) -> Self {
        IsnGenerator {
            hasher: SipHasher24::new(secret),
        }
    }

    /// Replaces the secret. RFC 6528 §3 allows periodic re-keying; ISNs of
    /// a reused 4-tuple may then go backwards, which TIME-WAIT and
    /// timestamps (RFC 6191) guard against.
    pub fn rekey(&mut self, secret: [u8; 16]) {
        self.hasher = SipHasher24::new(secret);
    }

    /// The ISN for a connection on `tuple` opened at `now`.
    pub fn isn(&self, now: Instant, tuple: &FourTuple) -> u32 {
        // M: the 4 µs clock (RFC 6528 §3, RFC 9293 §3.4.1), wrapping.
        let m = (now.as_nanos() / 4_000) as u32;
        let f = self.hasher.hash(&tuple.to_bytes()) as u32;
        m.wrapping_add(f)
    }

    /// The offset of our timestamp clock towards `remote` (RFC 7323 §5.4:
    /// a random offset so TSvals do not reveal uptime). Keyed on the two
    /// addresses only, not the ports, as Linux does: every connection
    /// between the same two hosts runs one clock, so a new incarnation of a
    /// 4-tuple always sends newer timestamps than the old one did, which
    /// is what TIME-WAIT reuse (RFC 6191) and PAWS rely on.
    pub fn ts_offset(&self, local: Ipv4Addr, remote: Ipv4Addr) -> u32 {
        let mut msg = [0u8; 10];
        msg[..4].copy_from_slice(&local.octets());
        msg[4..8].copy_from_slice(&remote.octets());
        msg[8..].copy_from_slice(b"ts");
        self.hasher.hash(&msg) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn tuple(port: u16) -> FourTuple {
        FourTuple {
            local_addr: Ipv4Addr::new(198, 18, 0, 1),
            local_port: 80,
            remote_addr: Ipv4Addr::new(198, 18, 0, 2),
            remote_port: port,
        }
    }

    #[test]
    fn timestamp_offset_depends_on_addresses_not_ports() {
        let g = IsnGenerator::new([7; 16]);
        let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(g.ts_offset(a, b), g.ts_offset(a, b));
        assert_ne!(g.ts_offset(a, b), g.ts_offset(b, a));
        assert_ne!(
            g.ts_offset(a, b),
            IsnGenerator::new([8; 16]).ts_offset(a, b)
        );
    }

    #[test]
    fn clock_component_ticks_every_4_us() {
        let g = IsnGenerator::new([7; 16]);
        let t = tuple(40000);
        let base = g.isn(Instant::from_micros(1_000), &t);
        assert_eq!(g.isn(Instant::from_micros(1_003), &t), base);
        assert_eq!(g.isn(Instant::from_micros(1_004), &t), base.wrapping_add(1));
        assert_eq!(
            g.isn(Instant::from_micros(1_000 + 4_000_000), &t),
            base.wrapping_add(1_000_000)
        );
    }

    #[test]
    fn offset_depends_on_tuple_and_key() {
        let g = IsnGenerator::new([7; 16]);
        let now = Instant::from_millis(5);
        let a = g.isn(now, &tuple(40000));
        assert_ne!(a, g.isn(now, &tuple(40001)));
        let mut swapped = tuple(40000);
        core::mem::swap(&mut swapped.local_addr, &mut swapped.remote_addr);
        assert_ne!(a, g.isn(now, &swapped));
        let mut g2 = g.clone();
        g2.rekey([8; 16]);
        assert_ne!(a, g2.isn(now, &tuple(40000)));
        // Same inputs, same answer.
        assert_eq!(a, IsnGenerator::new([7; 16]).isn(now, &tuple(40000)));
    }

    #[test]
    fn offset_is_the_keyed_hash_of_the_tuple() {
        let key = [3u8; 16];
        let t = tuple(1234);
        let mut msg = Vec::new();
        msg.extend_from_slice(&[198, 18, 0, 1, 0, 80, 198, 18, 0, 2]);
        msg.extend_from_slice(&1234u16.to_be_bytes());
        let f = SipHasher24::new(key).hash(&msg) as u32;
        assert_eq!(IsnGenerator::new(key).isn(Instant::ZERO, &t), f);
    }

    #[test]
    fn wraps_without_panic() {
        let g = IsnGenerator::new([1; 16]);
        let _ = g.isn(Instant::from_nanos(u64::MAX), &tuple(1));
    }
}
