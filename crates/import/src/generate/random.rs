//! Randomness and ids: a small PRNG written here (SplitMix64), so output never changes
//! with a dependency upgrade, and UUID v4-shaped ids hashed from business, seed and
//! counters.

use uuid::Uuid;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn fmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a key, a kind and counters to 64 bits, starting from `init`.
fn chain(init: u64, key: [u64; 3], kind: u64, parts: &[u64]) -> u64 {
    let mut h = init;
    for word in key.iter().chain([kind].iter()).chain(parts) {
        h = fmix(h ^ word).wrapping_add(GOLDEN);
    }
    fmix(h)
}

pub(super) fn mix(key: [u64; 3], kind: u64, parts: &[u64]) -> u64 {
    chain(0x243F_6A88_85A3_08D3, key, kind, parts)
}

/// A v4-shaped UUID from two independent 64-bit hashes, so distinct inputs collide only
/// with UUID-like odds.
pub(super) fn derive_uuid(key: [u64; 3], kind: u64, parts: &[u64]) -> Uuid {
    let hi = chain(0x1319_8A2E_0370_7344, key, kind, parts);
    let lo = chain(0xA409_3822_299F_31D0, key, kind, parts);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

// What a derived value is for: distinct streams from one key.
pub(super) const KIND_SEQUENCE: u64 = 1;
pub(super) const KIND_CONVERSATION: u64 = 3;
pub(super) const KIND_CUSTOMER: u64 = 4;
pub(super) const KIND_CUSTOMER_RNG: u64 = 5;
pub(super) const KIND_MESSAGE: u64 = 6;
pub(super) const KIND_ATTACHMENT: u64 = 7;
pub(super) const KIND_AGENT: u64 = 8;
pub(super) const KIND_CHANNEL: u64 = 9;

/// SplitMix64.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        fmix(self.0)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(super) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub(super) fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Picks by weight from `(weight, value)` pairs.
    pub(super) fn weighted<T: Copy>(&mut self, items: &[(u64, T)]) -> T {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut roll = self.below(total);
        for &(w, value) in items {
            if roll < w {
                return value;
            }
            roll -= w;
        }
        items[items.len() - 1].1
    }
}
