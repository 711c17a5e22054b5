//! Looking for bytes eight at a time, in a `u64` read from the text: for the scans every
//! message and log line goes through (JSON escapes, control characters).
//!
//! Each function marks the bytes it looks for by setting their high bit in the returned
//! word. A borrow can mark a byte *above* a marked one by mistake, never below it: the
//! lowest mark is always a byte looked for, and no mark means none is there.

/// `0x0101010101010101`: a byte, times this, in every byte of a `u64`.
const EVERY: u64 = u64::from_le_bytes([1; 8]);
const HIGH_BITS: u64 = EVERY * 0x80;

/// Marks the bytes of `word` below `n`, for `n` up to 0x80. The lowest such byte gets no
/// borrow from the bytes under it, so subtracting `n` sets its high bit, which was clear in
/// `word` (the byte is below 0x80).
pub const fn below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(EVERY * n as u64) & !word & HIGH_BITS
}

/// Marks the bytes of `word` equal to `b`: the zero bytes of `word ^ b…b`.
pub const fn equal(word: u64, b: u8) -> u64 {
    below(word ^ (EVERY * b as u64), 1)
}

/// The index (0–7, in text order) of the lowest marked byte of a non-zero mark.
pub const fn first(marks: u64) -> usize {
    (marks.trailing_zeros() / 8) as usize
}

/// The word of the eight bytes at `bytes[0..8]`, first byte lowest.
pub fn of(bytes: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*bytes)
}

#[cfg(test)]
mod tests {
    use super::{below, equal, first};

    /// The word tests against the same tests byte by byte: every byte value in every place
    /// among bytes that pass, and random words, some with many bytes that hit.
    #[test]
    fn word_tests_say_what_byte_tests_say() {
        let mut rng =
            <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0x2545_f491_4f6c_dd1d_u64);
        let mut next = move || rand::Rng::random::<u64>(&mut rng);
        let mut words = Vec::new();
        for place in 0..8 {
            for b in 0..=255u8 {
                let mut bytes = [b'a'; 8];
                bytes[place] = b;
                words.push(u64::from_le_bytes(bytes));
                bytes[(place + 3) % 8] = 0xff;
                words.push(u64::from_le_bytes(bytes));
            }
        }
        words.extend((0..100_000).map(|_| next()));
        words.extend((0..100_000).map(|_| next() & next() & 0x7f7f_7f7f_7f7f_7f7f));
        for word in words {
            let bytes = word.to_le_bytes();
            for n in [1, 0x20, 0x22, 0x7f, 0x80] {
                let marks = below(word, n);
                let at = bytes.iter().position(|b| *b < n);
                assert_eq!(marks != 0, at.is_some(), "{word:#x} < {n}");
                if let Some(at) = at {
                    assert_eq!(first(marks), at, "{word:#x} < {n}");
                }
            }
            for b in [0, b'"', b'\\', 0x7f, 0xc2, 0xff] {
                let marks = equal(word, b);
                let at = bytes.iter().position(|x| *x == b);
                assert_eq!(marks != 0, at.is_some(), "{word:#x} has {b}");
                if let Some(at) = at {
                    assert_eq!(first(marks), at, "{word:#x} has {b}");
                }
            }
        }
    }
}
