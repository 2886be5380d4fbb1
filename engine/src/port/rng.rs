//! A small seeded PRNG for the in-memory wire's impairments.
//!
//! xoshiro256** (Blackman and Vigna) seeded through SplitMix64: fast, good
//! enough statistically for loss and jitter, and identical on every platform
//! for a given seed, which is what deterministic simulation needs. Not for
//! anything that must be unpredictable (ISNs, SYN cookies).

/// SplitMix64 step: advances `state` and returns the next output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256**, deterministic per seed.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut s = [0; 4];
        for w in &mut s {
            *w = splitmix64(&mut sm);
        }
        // SplitMix64 never yields four zero words from one seed, but keep
        // the all-zero state (a fixed point) impossible regardless.
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    /// A generator seeded from several values (a wire seed, a port index, a
    /// queue), so that each stream differs and none depends on the others.
    pub fn from_parts(parts: &[u64]) -> Self {
        let mut sm = 0x5eed_0f5e_ed00_u64;
        let mut acc = 0u64;
        for &p in parts {
            sm ^= p;
            acc = splitmix64(&mut sm) ^ acc.rotate_left(17);
        }
        Rng::new(acc)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform float in `[0, 1)` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift; the bias is below 2^-64 * n, negligible here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`. Draws nothing when `p <= 0` or `p >= 1`, so
    /// a disabled impairment does not shift the stream of an enabled one.
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 || p.is_nan() {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.next_f64() < p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_seed_and_distinct_across_seeds() {
        let a: Vec<u64> = (0..8)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..8)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..8)
            .scan(Rng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut p = Rng::from_parts(&[1, 0, 1]);
        let mut q = Rng::from_parts(&[1, 1, 0]);
        assert_ne!(p.next_u64(), q.next_u64());
    }

    #[test]
    fn uniform_enough() {
        let mut r = Rng::new(42);
        let n = 100_000;
        let mean = (0..n).map(|_| r.next_f64()).sum::<f64>() / f64::from(n);
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        let hits = (0..n).filter(|_| r.chance(0.25)).count();
        assert!((23_500..26_500).contains(&hits), "hits {hits}");
        assert!((0..1000).all(|_| r.below(10) < 10));
        assert_eq!(r.below(0), 0);
    }
}
