//! Go's JSON encoding of `time.Time`: RFC 3339 with up to nine fractional digits, trailing
//! zeros trimmed, `Z` for UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Formats a time as Go does.
pub fn format(t: &DateTime<Utc>) -> String {
    let s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    match s.split_once('.') {
        Some((head, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{head}Z")
            } else {
                format!("{head}.{digits}Z")
            }
        }
        None => s,
    }
}

/// Serde `with` module for `DateTime<Utc>` fields.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

/// Parses any RFC 3339 time.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn matches_go() {
        let t = Utc.with_ymd_and_hms(2024, 11, 2, 18, 39, 44).unwrap();
        assert_eq!(format(&t), "2024-11-02T18:39:44Z");
        assert_eq!(
            format(&(t + chrono::Duration::nanoseconds(120_000_000))),
            "2024-11-02T18:39:44.12Z"
        );
        assert_eq!(
            format(&(t + chrono::Duration::nanoseconds(1))),
            "2024-11-02T18:39:44.000000001Z"
        );
    }
}
