//! Go's JSON encoding of `time.Time`: RFC 3339 with up to nine fractional digits, trailing
//! zeros trimmed, `Z` for UTC.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Longest text [`write_go`] makes: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const GO_TIME_MAX: usize = 30;

/// Formats a time as Go does.
pub fn format(t: &DateTime<Utc>) -> String {
    with_text(t, str::to_string)
}

/// `f` of a time's Go text, without a string of its own in the common case.
fn with_text<R>(t: &DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; GO_TIME_MAX];
    match write_go(t, &mut buf) {
        Some(text) => f(text),
        None => f(&format_rare(t)),
    }
}

/// Writes a time as Go does into `buf`, digit by digit: directory manifests hold one time per
/// entry, and going through chrono's formatter and trimming its text cost more than the rest
/// of writing the entry. `None` for the times this does not handle (years outside 0..=9999,
/// leap seconds), which [`format_rare`] writes.
fn write_go<'a>(t: &DateTime<Utc>, buf: &'a mut [u8; GO_TIME_MAX]) -> Option<&'a str> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (at..at + digits).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(5, t.month(), 2);
    put(8, t.day(), 2);
    put(11, t.hour(), 2);
    put(14, t.minute(), 2);
    put(17, t.second(), 2);
    let mut len = 19;
    if nanos != 0 {
        put(20, nanos, 9);
        len = 29;
        while buf[len - 1] == b'0' {
            len -= 1;
        }
    }
    for (at, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        buf[at] = sep;
    }
    buf[len] = b'Z';
    std::str::from_utf8(&buf[..=len]).ok()
}

/// [`format`] of the times [`write_go`] leaves out, through chrono's RFC 3339 text.
fn format_rare(t: &DateTime<Utc>) -> String {
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

/// Serializes a time for serde's `with` on `DateTime<Utc>` fields.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    with_text(t, |text| s.serialize_str(text))
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

    #[test]
    fn digit_writer_agrees_with_chrono() {
        // Times across the whole range of Unix nanoseconds (years 1677 to 2262), each also
        // rounded to every fraction length, against chrono's text trimmed as Go trims it.
        let mut n: i64 = 1;
        for _ in 0..5_000 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut unit = 1i64;
            for _ in 0..=9 {
                let t = Utc.timestamp_nanos(n / unit * unit);
                let mut buf = [0u8; GO_TIME_MAX];
                let fast = write_go(&t, &mut buf).map(str::to_string);
                assert_eq!(fast.as_deref(), Some(format_rare(&t).as_str()), "{n}");
                unit *= 10;
            }
        }
        let far = Utc.with_ymd_and_hms(12345, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format(&far), format_rare(&far));
        let mut buf = [0u8; GO_TIME_MAX];
        assert_eq!(write_go(&far, &mut buf), None);
        let json = serde_json::to_string(&Wrapped(far)).unwrap();
        assert_eq!(json, format!("\"{}\"", format_rare(&far)));
    }

    #[derive(serde::Serialize)]
    struct Wrapped(#[serde(with = "super")] DateTime<Utc>);
}
