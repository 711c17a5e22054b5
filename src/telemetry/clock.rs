//! The timestamp that starts every log line, text or JSON: the time in UTC with microseconds,
//! `2026-12-06T17:55:06.728215Z`, exactly as `tracing_subscriber`'s default timer writes it.
//!
//! That timer turns the clock into a calendar date and formats seven numbers through
//! `core::fmt` for every line, a fifth of the cost of an audit line. Here each thread keeps
//! the text of the last second it wrote (`2026-12-06T17:55:06`), and a line in the same
//! second only adds its six digits of microseconds, written by hand.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// The [`FormatTime`] of both log formats.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timestamp;

/// The length of `2026-12-06T17:55:06`.
const SECOND: usize = 19;

/// The last timestamp a thread wrote.
struct Last {
    /// Its second, since the epoch (`u64::MAX`: none yet).
    second: u64,
    /// Its text: the first [`SECOND`] characters hold for the whole second.
    text: String,
}

thread_local! {
    static LAST: RefCell<Last> = const {
        RefCell::new(Last { second: u64::MAX, text: String::new() })
    };
}

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = SystemTime::now();
        LAST.with_borrow_mut(|last| {
            if last.stamp(now) {
                w.write_str(&last.text)
            } else {
                // A clock before 1970 or after 9999 is broken; the default timer has a
                // notation for such years, and it is no hot path.
                tracing_subscriber::fmt::time::SystemTime.format_time(w)
            }
        })
    }
}

impl Last {
    /// Makes `text` the timestamp of `at`; false (and `text` unusable) before 1970 or after
    /// 9999.
    fn stamp(&mut self, at: SystemTime) -> bool {
        let Ok(since) = at.duration_since(UNIX_EPOCH) else {
            return false;
        };
        if since.as_secs() != self.second {
            self.second = u64::MAX;
            self.text.clear();
            if !write_second(&mut self.text, since.as_secs()) {
                return false;
            }
            self.second = since.as_secs();
        }
        self.text.truncate(SECOND);
        self.text.push('.');
        let micros = since.subsec_micros();
        for unit in [100_000, 10_000, 1_000, 100, 10, 1] {
            let digit = (micros / unit % 10) as u8;
            self.text.push(char::from(b'0' + digit));
        }
        self.text.push('Z');
        true
    }
}

/// Writes `2026-12-06T17:55:06` for `secs` since the epoch; false after 9999. Once a second
/// per thread: `core::fmt` will do.
fn write_second(text: &mut String, secs: u64) -> bool {
    let Some(at) = i64::try_from(secs)
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
    else {
        return false;
    };
    let (year, month, day) = at.to_calendar_date();
    let (hour, minute, second) = at.to_hms();
    if !(0..=9999).contains(&year) {
        return false;
    }
    let month = u8::from(month);
    write!(
        text,
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::format_description;
    use tracing_subscriber::fmt::time::SystemTime as DefaultTimer;

    use super::*;

    fn fresh() -> Last {
        Last {
            second: u64::MAX,
            text: String::new(),
        }
    }

    /// The text of `at` from `last`, which may hold an earlier timestamp.
    fn text(last: &mut Last, at: SystemTime) -> String {
        assert!(last.stamp(at), "a year from 1970 to 9999");
        last.text.clone()
    }

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, micros * 1000 + 999)
    }

    /// Instants whose text is known from elsewhere: `tracing_subscriber`'s own tests and
    /// GNU `date -u -d @SECS`. Leap days, the ends of years, centuries that are leap years
    /// and one that is not.
    #[test]
    fn known_instants_are_written_as_the_default_timer_writes_them() {
        let known = [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (0, 1, "1970-01-01T00:00:00.000001Z"),
            (0, 500_000, "1970-01-01T00:00:00.500000Z"),
            (1, 1, "1970-01-01T00:00:01.000001Z"),
            (60 + 1, 1, "1970-01-01T00:01:01.000001Z"),
            (60 * 60 + 60 + 1, 1, "1970-01-01T01:01:01.000001Z"),
            (86_400 + 3_661, 1, "1970-01-02T01:01:01.000001Z"),
            (68_169_599, 999_999, "1972-02-28T23:59:59.999999Z"),
            (68_169_600, 0, "1972-02-29T00:00:00.000000Z"),
            (68_255_999, 0, "1972-02-29T23:59:59.000000Z"),
            (68_256_000, 0, "1972-03-01T00:00:00.000000Z"),
            (946_684_799, 999_999, "1999-12-31T23:59:59.999999Z"),
            (946_684_800, 0, "2000-01-01T00:00:00.000000Z"),
            (951_782_400, 0, "2000-02-29T00:00:00.000000Z"),
            (951_868_800, 0, "2000-03-01T00:00:00.000000Z"),
            (978_307_199, 0, "2000-12-31T23:59:59.000000Z"),
            (2_147_483_647, 0, "2038-01-19T03:14:07.000000Z"),
            (2_147_483_648, 0, "2038-01-19T03:14:08.000000Z"),
            (1_709_164_800, 123_456, "2024-02-29T00:00:00.123456Z"),
            (1_735_689_599, 654_321, "2024-12-31T23:59:59.654321Z"),
            (1_735_689_600, 10, "2025-01-01T00:00:00.000010Z"),
            (1_796_579_706, 728_215, "2026-12-06T17:55:06.728215Z"),
            (4_107_456_000, 0, "2100-02-28T00:00:00.000000Z"),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000000Z"),
            (11_017_000_000, 7, "2319-02-12T13:46:40.000007Z"),
            (11_847_456_541, 0, "2345-06-07T08:09:01.000000Z"),
            (253_402_300_799, 999_999, "9999-12-31T23:59:59.999999Z"),
        ];
        let mut last = fresh();
        for (secs, micros, expected) in known {
            assert_eq!(text(&mut fresh(), at(secs, micros)), expected);
            assert_eq!(text(&mut last, at(secs, micros)), expected, "after another");
            assert_eq!(text(&mut last, at(secs, micros)), expected, "cached");
        }
        assert!(!fresh().stamp(at(253_402_300_800, 0)), "year 10000");
        assert!(!last.stamp(at(253_402_300_800, 0)), "year 10000");
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert!(!fresh().stamp(before), "before 1970");
        assert!(!last.stamp(before), "before 1970");
        assert_eq!(text(&mut last, at(0, 7)), "1970-01-01T00:00:00.000007Z");
    }

    /// Many instants over eight millennia, every one written as the `time` crate's own
    /// formatter writes it (the calendar is the `time` crate's; this checks the rest), in
    /// an order that makes the cached second miss, hit and miss again.
    #[test]
    fn many_instants_match_a_formatter_of_their_own() {
        let reference = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        let mut rng =
            <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0x2545_f491_4f6c_dd1d_u64);
        let mut next = move || rand::Rng::random::<u64>(&mut rng);
        let mut last = fresh();
        for _ in 0..20_000 {
            let secs = next() % 253_402_300_800;
            for nanos in [next() % 1_000_000_000, next() % 1_000_000_000] {
                let instant = UNIX_EPOCH + Duration::new(secs, nanos as u32);
                let expected = time::OffsetDateTime::from(instant)
                    .format(&reference)
                    .unwrap();
                assert_eq!(text(&mut last, instant), expected, "{secs} s {nanos} ns");
            }
        }
    }

    /// The timer against `tracing_subscriber`'s default, now: the text of the seconds is
    /// the same, the microseconds lie between the two of the default around it.
    #[test]
    fn the_timer_writes_what_the_default_writes_now() {
        let format = |timer: &dyn FormatTime| {
            let mut out = String::new();
            timer.format_time(&mut Writer::new(&mut out)).unwrap();
            out
        };
        let mut compared = 0;
        for _ in 0..2_000 {
            let before = format(&DefaultTimer);
            let ours = format(&Timestamp);
            let after = format(&DefaultTimer);
            assert_eq!(ours.len(), before.len(), "{ours} {before}");
            assert!(before <= ours && ours <= after, "{before} {ours} {after}");
            if before[..SECOND] == after[..SECOND] {
                assert_eq!(ours[..SECOND], before[..SECOND]);
                compared += 1;
            }
        }
        assert!(compared > 1_000, "{compared} comparisons within one second");
    }
}
