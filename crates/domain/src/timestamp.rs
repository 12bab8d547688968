use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

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

/// `YYYY-MM-DDTHH:MM:SS[.f]Z`: the fraction only when non-zero, without trailing zeros.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.to_datetime().naive_utc();
        let date: NaiveDate = at.date();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            date.year(),
            date.month(),
            date.day(),
            at.hour(),
            at.minute(),
            at.second()
        )?;
        let mut micros = self.0.rem_euclid(1_000_000);
        if micros != 0 {
            let mut width = 6;
            while micros % 10 == 0 {
                micros /= 10;
                width -= 1;
            }
            write!(f, ".{micros:0width$}")?;
        }
        f.write_str("Z")
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
