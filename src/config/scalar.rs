//! Parsers for the scalar settings that YAML has no type for: durations and the seal key.

use std::time::Duration;

use super::raw::RawDuration;

/// A duration that is not in the accepted syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected e.g. \"500ms\", \"10s\", \"30m\", \"1h\" or an integer number of seconds"
)]
pub struct DurationError(pub String);

/// A seal key that does not encode 32 bytes. Never shows the key itself: it is a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealKeyError {
    #[error("must be 32 bytes written as 64 hex characters or base64")]
    NotEncoded,
    #[error("must be 32 bytes, but decodes to {0} bytes")]
    WrongLength(usize),
}

/// Parses `500ms`, `10s`, `30m`, `1h`, sums such as `1h30m`, or bare seconds (`90`).
pub fn parse_duration(raw: &RawDuration) -> Result<Duration, DurationError> {
    match raw {
        RawDuration::Seconds(seconds) => Ok(Duration::from_secs(*seconds)),
        RawDuration::Text(text) => {
            parse_duration_text(text).ok_or_else(|| DurationError(text.clone()))
        }
    }
}

fn parse_duration_text(text: &str) -> Option<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(Duration::from_secs);
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    // An empty string would otherwise parse as zero.
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let amount: u64 = rest.get(..digits)?.parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = unit_millis(&rest[..unit_len])?;
        rest = rest[unit_len..].trim_start();
        total = total.checked_add(Duration::from_millis(amount.checked_mul(unit)?))?;
    }
    Some(total)
}

fn unit_millis(unit: &str) -> Option<u64> {
    match unit {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        _ => None,
    }
}

/// Decodes a 32-byte key from 64 hex characters or base64 (standard or URL-safe alphabet,
/// with or without padding). Hex is tried first: 64 hex characters are also valid base64.
pub fn parse_seal_key(text: &str) -> Result<[u8; 32], SealKeyError> {
    let text = text.trim();
    let bytes = decode_hex(text)
        .or_else(|| decode_base64(text))
        .ok_or(SealKeyError::NotEncoded)?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| SealKeyError::WrongLength(bytes.len()))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    let digits: Option<Vec<u8>> = text
        .chars()
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect();
    Some(
        digits?
            .chunks_exact(2)
            .map(|pair| (pair[0] << 4) | pair[1])
            .collect(),
    )
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    let padding = text.len() - body.len();
    // Padding, when present, must complete the last group of four characters.
    if body.is_empty()
        || padding > 2
        || (padding > 0 && !text.len().is_multiple_of(4))
        || body.len() % 4 == 1
    {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in body.bytes() {
        buffer = (buffer << 6) | u32::from(sextet(byte)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// The 6-bit value of one base64 character; both alphabets are accepted.
fn sextet(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> RawDuration {
        RawDuration::Text(value.to_owned())
    }

    #[test]
    fn durations_in_every_accepted_form() {
        let cases = [
            ("500ms", 500),
            ("10s", 10_000),
            ("30m", 1_800_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("90", 90_000),
        ];
        for (input, millis) in cases {
            assert_eq!(
                parse_duration(&text(input)),
                Ok(Duration::from_millis(millis)),
                "{input}"
            );
        }
        assert_eq!(
            parse_duration(&RawDuration::Seconds(7)),
            Ok(Duration::from_secs(7))
        );
    }

    #[test]
    fn bad_durations_are_rejected() {
        for input in ["", "abc", "10x", "s", "1.5s", "-1s", "10 s"] {
            assert!(parse_duration(&text(input)).is_err(), "{input}");
        }
    }

    #[test]
    fn seal_key_hex_and_base64_forms() {
        let expected: Vec<u8> = (0u8..32).collect();
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_seal_key(&hex).unwrap().to_vec(), expected);
        let standard = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        assert_eq!(parse_seal_key(standard).unwrap().to_vec(), expected);
        assert_eq!(
            parse_seal_key(standard.trim_end_matches('='))
                .unwrap()
                .to_vec(),
            expected
        );
        let key = [0xfbu8; 32];
        let url_safe = "-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_s";
        assert_eq!(parse_seal_key(url_safe), Ok(key));
        assert_eq!(
            parse_seal_key(&url_safe.replace('-', "+").replace('_', "/")),
            Ok(key)
        );
    }

    #[test]
    fn seal_key_of_the_wrong_size_is_rejected() {
        assert_eq!(
            parse_seal_key("AAECAw=="),
            Err(SealKeyError::WrongLength(4))
        );
        assert_eq!(parse_seal_key("not a key!"), Err(SealKeyError::NotEncoded));
    }
}
