//! Tags, branches, Call-IDs and jitter for the sans-IO cores. An attacker who reads one 404's
//! To tag must not predict the next call's identifiers (a guessed tag and Call-ID forge an
//! in-dialog BYE), so they come from ChaCha12 (`rand`'s StdRng, already in the tree through
//! hickory): a 256-bit seed from the OS, reseeded from the OS every [`RESEED_EVERY`] outputs
//! so a leaked state stops predicting soon. Tests fix a seed; a fixed seed never reseeds.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};

/// Outputs between reseeds from the OS (one getrandom call per 65,536 identifiers).
const RESEED_EVERY: u32 = 1 << 16;

#[derive(Debug)]
pub struct Rng {
    inner: StdRng,
    /// Outputs left before the next reseed; `None` for a fixed seed (tests).
    until_reseed: Option<u32>,
}

impl Rng {
    /// A generator from `seed` (tests and the deterministic fuzz targets): reproducible.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: StdRng::seed_from_u64(seed),
            until_reseed: None,
        }
    }

    /// [`Rng::new`] for `Some(seed)`, else [`Rng::from_os`]: the cores' settings say which.
    pub fn seeded_or_os(seed: Option<u64>) -> Self {
        match seed {
            Some(s) => Self::new(s),
            None => Self::from_os(),
        }
    }

    /// A generator seeded from the OS. Should the OS refuse (it never does on Linux after
    /// boot), the seed falls back to the clock and the process id, and the next reseed tries
    /// the OS again soon.
    pub fn from_os() -> Self {
        let (seed, ok) = os_seed();
        Self {
            inner: StdRng::from_seed(seed),
            until_reseed: Some(if ok { RESEED_EVERY } else { 1 }),
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        if let Some(left) = self.until_reseed.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                let (seed, ok) = os_seed();
                // Mix: a reseed never makes the state more predictable than it was.
                let mut mixed = seed;
                for (m, b) in mixed
                    .iter_mut()
                    .zip(self.inner.next_u64().to_le_bytes().iter().cycle())
                {
                    *m ^= b;
                }
                self.inner = StdRng::from_seed(mixed);
                *left = if ok { RESEED_EVERY } else { 1024 };
            }
        }
        self.inner.next_u64()
    }

    /// 16 hex digits (64 bits).
    pub fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }

    /// A factor in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }
}

fn os_seed() -> ([u8; 32], bool) {
    let mut seed = [0u8; 32];
    if getrandom::getrandom(&mut seed).is_ok() {
        return (seed, true);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    seed[..16].copy_from_slice(&nanos.to_le_bytes());
    seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    (seed, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_seed_repeats_and_the_os_seed_does_not() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.token(), b.token());
        let (mut c, mut d) = (Rng::from_os(), Rng::from_os());
        assert_ne!(c.token(), d.token());
    }

    /// The attack the hardening issue measured: xorshift64* (the generator this replaced)
    /// gives its whole state away in one output (the multiplier is odd, so invertible mod
    /// 2^64), and so every later tag, branch and Call-ID. Against ChaCha the same prediction
    /// is a 1-in-2^64 guess.
    #[test]
    fn one_output_does_not_predict_the_next() {
        const M: u64 = 0x2545_F491_4F6C_DD1D;
        // M's inverse mod 2^64 by Newton's iteration (each step doubles the correct bits).
        let mut inv: u64 = M;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(M.wrapping_mul(inv)));
        }
        assert_eq!(M.wrapping_mul(inv), 1);
        let predict = |output: u64| {
            let mut s = output.wrapping_mul(inv);
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            s.wrapping_mul(M)
        };
        // The predictor works on the old generator...
        let mut old: u64 = 0x1234_5678_9abc_def1;
        let mut xorshift = || {
            old ^= old >> 12;
            old ^= old << 25;
            old ^= old >> 27;
            old.wrapping_mul(M)
        };
        let first = xorshift();
        assert_eq!(predict(first), xorshift());
        // ...and not on ours.
        let mut r = Rng::from_os();
        for _ in 0..100 {
            let first = r.next_u64();
            assert_ne!(predict(first), r.next_u64());
        }
    }

    #[test]
    fn the_os_generator_reseeds() {
        let mut r = Rng::from_os();
        for _ in 0..RESEED_EVERY + 2 {
            r.next_u64();
        }
        assert!(r.until_reseed.is_some_and(|l| l < RESEED_EVERY));
    }
}
