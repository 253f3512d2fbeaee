//! Unix milliseconds as people and protocols write dates: the civil date
//! (proleptic Gregorian, UTC) the pages, A2A timestamps and registry
//! listings share.

/// The UTC civil date of Unix milliseconds, and the milliseconds into it:
/// `(year, month, day, ms_of_day)`.
pub fn civil(ms: u64) -> (i64, u32, u32, u64) {
    let (days, rest) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    // Days to civil date, after Howard Hinnant's days-from-civil inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest)
}

/// `YYYY-MM-DD` (UTC).
pub fn date(ms: u64) -> String {
    let (y, m, d, _) = civil(ms);
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 UTC with whole seconds: `2026-11-26T18:04:34Z`.
pub fn rfc3339_seconds(ms: u64) -> String {
    let (y, m, d, rest) = civil(ms);
    let s = rest / 1_000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3_600,
        s / 60 % 60,
        s % 60
    )
}

/// RFC 3339 UTC with milliseconds: `2026-11-26T18:04:34.120Z`.
pub fn rfc3339_millis(ms: u64) -> String {
    let (y, m, d, rest) = civil(ms);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_seconds(1_764_892_800_000), "2025-12-05T00:00:00Z");
        // A leap day and the last millisecond of a year.
        assert_eq!(date(951_782_400_000), "2000-02-29");
        assert_eq!(
            rfc3339_millis(1_767_225_599_999),
            "2025-12-31T23:59:59.999Z"
        );
    }
}
