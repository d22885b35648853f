//! Tags, branches, Call-IDs and jitter for the sans-IO cores: xorshift64*, seeded by the
//! driver (tests fix the seed). Unpredictable enough for SIP identifiers; never for secrets.

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 16 hex digits.
    pub fn token(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }

    /// A factor in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }
}
