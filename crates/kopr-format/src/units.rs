//! Human-readable numbers and durations exactly as Kopia prints them (bytes in base 10 unless
//! `KOPIA_BYTES_STRING_BASE_2` is true).

fn nice_number(f: f64) -> String {
    let s = format!("{f:.1}");
    let s = s.trim_end_matches('0');
    s.trim_end_matches('.').to_string()
}

fn decimal_unit(mut f: f64, thousand: f64, prefixes: &[&str], suffix: &str) -> String {
    for p in prefixes {
        if f < 0.9 * thousand {
            return format!("{} {p}{suffix}", nice_number(f));
        }
        f /= thousand;
    }
    let last = prefixes.last().copied().unwrap_or("");
    format!("{} {last}{suffix}", nice_number(f * thousand))
}

/// Bytes as Kopia prints them: `506 B`, `9 KB`, `37.2 MB`.
pub fn bytes(b: i64) -> String {
    let base2 = std::env::var("KOPIA_BYTES_STRING_BASE_2")
        .map(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
        .unwrap_or(false);
    if base2 {
        decimal_unit(
            b as f64,
            1024.0,
            &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"],
            "B",
        )
    } else {
        decimal_unit(b as f64, 1000.0, &["", "K", "M", "G", "T", "P", "E"], "B")
    }
}

/// Kopia's compression percentage: `73.1%`, `0%` when nothing was saved.
pub fn compression_percentage(original: i64, compressed: i64) -> String {
    if compressed >= original || original == 0 {
        return "0%".into();
    }
    format!(
        "{:.1}%",
        100.0 * (1.0 - compressed as f64 / original as f64)
    )
}

/// Go's duration formatting for whole durations: `59m59s`, `24h0m0s`, `0s`.
pub fn duration(d: chrono::Duration) -> String {
    let total = d.num_seconds();
    if total == 0 {
        let ms = d.num_milliseconds();
        return if ms == 0 {
            "0s".into()
        } else {
            format!("{ms}ms")
        };
    }
    let neg = total < 0;
    let t = total.unsigned_abs();
    let (h, m, s) = (t / 3600, (t / 60) % 60, t % 60);
    let body = if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_match_the_field_guide() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(506), "506 B");
        assert_eq!(bytes(9000), "9 KB");
        assert_eq!(bytes(201_600), "201.6 KB");
        assert_eq!(bytes(900_000), "0.9 MB");
        assert_eq!(bytes(37_200_000), "37.2 MB");
        assert_eq!(bytes(899), "899 B");
        assert_eq!(bytes(900), "0.9 KB");
        assert_eq!(bytes(2_000_000_000), "2 GB");
    }

    #[test]
    fn percentages_and_durations() {
        assert_eq!(compression_percentage(50_400, 13_600), "73.0%");
        assert_eq!(compression_percentage(10, 10), "0%");
        assert_eq!(compression_percentage(0, 0), "0%");
        assert_eq!(duration(chrono::Duration::seconds(3599)), "59m59s");
        assert_eq!(duration(chrono::Duration::hours(24)), "24h0m0s");
        assert_eq!(duration(chrono::Duration::zero()), "0s");
    }
}
