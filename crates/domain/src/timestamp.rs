use std::fmt;

use chrono::{DateTime, Utc};

/// Why a value is not a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("expected an RFC 3339 timestamp with an offset, e.g. 2024-03-01T09:00:00Z")]
    NotRfc3339,
    #[error("more than 6 fractional digits: precision is microseconds")]
    TooPrecise,
    #[error("outside the years 0001 to 9999")]
    OutOfRange,
}

/// An instant in UTC with microsecond precision, between the years 1 and 9999.
///
/// Stored as microseconds since the Unix epoch so that ordering and storage are exact
/// in every adapter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in microseconds.
const MIN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_MICROS: i64 = 253_402_300_799_999_999;

impl Timestamp {
    pub fn from_unix_micros(micros: i64) -> Result<Self, TimestampError> {
        if (MIN_MICROS..=MAX_MICROS).contains(&micros) {
            Ok(Self(micros))
        } else {
            Err(TimestampError::OutOfRange)
        }
    }

    /// Refuses sub-microsecond parts rather than rounding them away.
    pub fn from_datetime(at: DateTime<Utc>) -> Result<Self, TimestampError> {
        if !at.timestamp_subsec_nanos().is_multiple_of(1_000) {
            return Err(TimestampError::TooPrecise);
        }
        Self::from_unix_micros(at.timestamp_micros())
    }

    /// Now, truncated to microseconds.
    pub fn now() -> Self {
        let micros = Utc::now().timestamp_micros().clamp(MIN_MICROS, MAX_MICROS);
        Self(micros)
    }

    /// Any RFC 3339 offset is accepted and normalised to UTC; more than six
    /// fractional digits is an error, never silently rounded.
    pub fn parse_rfc3339(input: &str) -> Result<Self, TimestampError> {
        if fraction_digits(input) > 6 {
            return Err(TimestampError::TooPrecise);
        }
        let at = DateTime::parse_from_rfc3339(input).map_err(|_| TimestampError::NotRfc3339)?;
        Self::from_datetime(at.with_timezone(&Utc))
    }

    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        // In range by construction; the fallback is unreachable but keeps this total.
        DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }

    /// Adds microseconds, saturating at the representable range.
    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros).clamp(MIN_MICROS, MAX_MICROS))
    }
}

/// Counts the digits after the seconds' decimal point, if any.
fn fraction_digits(input: &str) -> usize {
    // "YYYY-MM-DDTHH:MM:SS" is 19 bytes; a fraction starts right after it.
    match input.as_bytes().get(19) {
        Some(b'.') => input.as_bytes()[20..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count(),
        _ => 0,
    }
}

/// Room for the longest form, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub const RFC3339_MAX_LEN: usize = 27;

impl Timestamp {
    /// Writes `YYYY-MM-DDTHH:MM:SS[.f]Z` (the fraction only when non-zero, without
    /// trailing zeros) into `buf` and returns it. No allocation and no formatting
    /// machinery: responses print several timestamps per message.
    pub fn write_rfc3339(self, buf: &mut [u8; RFC3339_MAX_LEN]) -> &str {
        // Only ASCII digits and punctuation are written.
        std::str::from_utf8(self.write_rfc3339_bytes(buf)).unwrap_or_default()
    }

    /// [`Self::write_rfc3339`] as bytes, for writers of bytes: a response body prints
    /// one or more per message, and checking each for UTF-8 showed in its profile.
    pub fn write_rfc3339_bytes(self, buf: &mut [u8; RFC3339_MAX_LEN]) -> &[u8] {
        let seconds = self.0.div_euclid(1_000_000);
        let mut micros = self.0.rem_euclid(1_000_000);
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        let second_of_day = seconds.rem_euclid(86_400);
        // The constructor bounds years to 1..=9999, so four digits always suffice.
        let year = u32::try_from(year).unwrap_or(0);
        put_digits(&mut buf[0..4], year);
        buf[4] = b'-';
        put_digits(&mut buf[5..7], month);
        buf[7] = b'-';
        put_digits(&mut buf[8..10], day);
        buf[10] = b'T';
        put_digits(&mut buf[11..13], (second_of_day / 3600) as u32);
        buf[13] = b':';
        put_digits(&mut buf[14..16], (second_of_day / 60 % 60) as u32);
        buf[16] = b':';
        put_digits(&mut buf[17..19], (second_of_day % 60) as u32);
        let mut len = 19;
        if micros != 0 {
            let mut width = 6;
            while micros % 10 == 0 {
                micros /= 10;
                width -= 1;
            }
            buf[19] = b'.';
            put_digits(&mut buf[20..20 + width], micros as u32);
            len = 20 + width;
        }
        buf[len] = b'Z';
        &buf[..=len]
    }
}

/// Writes `value` as exactly `out.len()` decimal digits, zero-padded.
fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DDTHH:MM:SS[.f]Z`: the fraction only when non-zero, without trailing zeros.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0; RFC3339_MAX_LEN];
        f.write_str(self.write_rfc3339(&mut buf))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &str) -> String {
        Timestamp::parse_rfc3339(input).unwrap().to_string()
    }

    #[test]
    fn prints_the_shortest_fraction() {
        assert_eq!(round_trip("2024-03-01T09:00:00Z"), "2024-03-01T09:00:00Z");
        assert_eq!(
            round_trip("2024-03-01T09:00:00.500Z"),
            "2024-03-01T09:00:00.5Z"
        );
        assert_eq!(
            round_trip("2024-03-01T09:00:00.000001Z"),
            "2024-03-01T09:00:00.000001Z"
        );
        assert_eq!(
            round_trip("2024-03-01T09:00:00.000000Z"),
            "2024-03-01T09:00:00Z"
        );
        assert_eq!(
            round_trip("2024-03-01T09:00:00.120Z"),
            "2024-03-01T09:00:00.12Z"
        );
    }

    #[test]
    fn normalises_offsets_to_utc() {
        assert_eq!(
            round_trip("2024-03-01T10:30:00+01:30"),
            "2024-03-01T09:00:00Z"
        );
        assert_eq!(
            round_trip("2024-02-29T23:00:00-10:00"),
            "2024-03-01T09:00:00Z"
        );
    }

    #[test]
    fn rejects_excess_precision_and_junk() {
        assert_eq!(
            Timestamp::parse_rfc3339("2024-03-01T09:00:00.0000001Z"),
            Err(TimestampError::TooPrecise)
        );
        for bad in [
            "",
            "2024-03-01",
            "2024-03-01T09:00:00",
            "yesterday",
            "2024-13-01T09:00:00Z",
        ] {
            assert_eq!(
                Timestamp::parse_rfc3339(bad),
                Err(TimestampError::NotRfc3339),
                "{bad}"
            );
        }
    }

    #[test]
    fn before_the_epoch_prints_correctly() {
        assert_eq!(
            round_trip("1969-12-31T23:59:59.5Z"),
            "1969-12-31T23:59:59.5Z"
        );
        assert_eq!(round_trip("0001-01-01T00:00:00Z"), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn the_fast_formatter_agrees_with_chrono_everywhere() {
        // A deterministic walk over the whole range, plus the edges.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let span = (MAX_MICROS - MIN_MICROS) as u64;
        let mut samples = vec![
            MIN_MICROS,
            MAX_MICROS,
            0,
            -1,
            1,
            951_782_400_000_000,
            4_107_542_399_999_999,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let micros = MIN_MICROS + (x % span) as i64;
            // Half of them on whole seconds, to exercise the no-fraction form.
            samples.push(if x.is_multiple_of(2) {
                micros - micros.rem_euclid(1_000_000)
            } else {
                micros
            });
        }
        for micros in samples {
            let at = Timestamp::from_unix_micros(micros).unwrap();
            let expected = at
                .to_datetime()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            // chrono prints six digits always; trim to the contract's shortest form.
            let (head, fraction) = expected.trim_end_matches('Z').split_once('.').unwrap();
            let fraction = fraction.trim_end_matches('0');
            let expected = if fraction.is_empty() {
                format!("{head}Z")
            } else {
                format!("{head}.{fraction}Z")
            };
            assert_eq!(at.to_string(), expected, "{micros}");
            assert_eq!(Timestamp::parse_rfc3339(&expected).unwrap(), at);
        }
    }

    #[test]
    fn range_is_enforced() {
        assert!(Timestamp::from_unix_micros(MAX_MICROS).is_ok());
        assert_eq!(
            Timestamp::from_unix_micros(MAX_MICROS + 1),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            Timestamp::from_unix_micros(i64::MIN),
            Err(TimestampError::OutOfRange)
        );
    }

    #[test]
    fn orders_by_instant() {
        let a = Timestamp::parse_rfc3339("2024-03-01T09:00:00.9Z").unwrap();
        let b = Timestamp::parse_rfc3339("2024-03-01T09:00:00.10Z").unwrap();
        assert!(b < a);
    }
}
