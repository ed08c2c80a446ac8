//! Dates, times, timestamps and decimals as udfpool stores them, to and from text.
//!
//! Storage: a date is days since 1970-01-01, a time microseconds since midnight, a timestamp
//! microseconds since 1970-01-01T00:00 (naive, or UTC for `timestamp_tz`), a decimal its unscaled
//! integer. Text is ISO 8601 (`2024-02-29`, `12:30:00.25`, `2024-02-29T12:30:00.25`, with `Z` or an
//! offset for `timestamp_tz`) and plain decimal notation (`-12.50`). The range is Python's:
//! years 1 to 9999, so every stored value has a Python equivalent.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;
/// 0001-01-01, Python's `date.min`, in days since 1970-01-01.
pub const MIN_DAYS: i32 = -719_162;
/// 9999-12-31, Python's `date.max`, in days since 1970-01-01.
pub const MAX_DAYS: i32 = 2_932_896;
/// The smallest timestamp: 0001-01-01T00:00.
pub const MIN_MICROS: i64 = MIN_DAYS as i64 * MICROS_PER_DAY;
/// The largest timestamp: 9999-12-31T23:59:59.999999.
pub const MAX_MICROS: i64 = (MAX_DAYS as i64 + 1) * MICROS_PER_DAY - 1;

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// The civil date (year, month, day) of `days` since 1970-01-01, if within years 1..=9999.
pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    if !(MIN_DAYS..=MAX_DAYS).contains(&days) {
        return None;
    }
    epoch().checked_add_signed(chrono::TimeDelta::days(days.into()))
}

/// Days since 1970-01-01 of a date.
pub fn days_from_date(d: NaiveDate) -> i32 {
    (d - epoch()).num_days() as i32
}

/// The time of day `micros` after midnight, if `0 <= micros < 24 h`.
pub fn time_from_micros(micros: i64) -> Option<NaiveTime> {
    if !(0..MICROS_PER_DAY).contains(&micros) {
        return None;
    }
    let secs = (micros / 1_000_000) as u32;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, (micros % 1_000_000) as u32 * 1000)
}

/// Microseconds since midnight of a time (sub-microsecond digits dropped).
pub fn micros_from_time(t: NaiveTime) -> i64 {
    i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() % 1_000_000_000 / 1000)
}

/// The date-time `micros` after 1970-01-01T00:00, if within years 1..=9999.
pub fn datetime_from_micros(micros: i64) -> Option<NaiveDateTime> {
    if !(MIN_MICROS..=MAX_MICROS).contains(&micros) {
        return None;
    }
    let days = micros.div_euclid(MICROS_PER_DAY) as i32;
    Some(date_from_days(days)?.and_time(time_from_micros(micros.rem_euclid(MICROS_PER_DAY))?))
}

/// Microseconds since 1970-01-01T00:00 of a date-time.
pub fn micros_from_datetime(dt: NaiveDateTime) -> i64 {
    i64::from(days_from_date(dt.date())) * MICROS_PER_DAY + micros_from_time(dt.time())
}

/// `2024-02-29`.
pub fn format_date(days: i32) -> String {
    date_from_days(days).map_or_else(|| format!("<date {days} out of range>"), |d| d.format("%Y-%m-%d").to_string())
}

fn fraction(micros: i64) -> String {
    match micros.rem_euclid(1_000_000) {
        0 => String::new(),
        f => format!(".{:06}", f).trim_end_matches('0').to_owned(),
    }
}

/// `12:30:00.25`.
pub fn format_time(micros: i64) -> String {
    match time_from_micros(micros) {
        Some(t) => format!("{}{}", t.format("%H:%M:%S"), fraction(micros)),
        None => format!("<time {micros} out of range>"),
    }
}

/// `2024-02-29T12:30:00.25`, and with `Z` appended when `utc`.
pub fn format_timestamp(micros: i64, utc: bool) -> String {
    match datetime_from_micros(micros) {
        Some(dt) => format!("{}{}{}", dt.format("%Y-%m-%dT%H:%M:%S"), fraction(micros), if utc { "Z" } else { "" }),
        None => format!("<timestamp {micros} out of range>"),
    }
}

/// Days since 1970-01-01 of an ISO date (`2024-02-29`).
pub fn parse_date(s: &str) -> Result<i32, String> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|e| format!("not a date (YYYY-MM-DD): {e}"))?;
    in_years(d.year())?;
    Ok(days_from_date(d))
}

fn in_years(year: i32) -> Result<(), String> {
    if (1..=9999).contains(&year) {
        Ok(())
    } else {
        Err(format!("year {year} is outside 1..=9999"))
    }
}

/// Microseconds since midnight of an ISO time (`12:30`, `12:30:00`, `12:30:00.25`).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .map(micros_from_time)
        .map_err(|e| format!("not a time (HH:MM[:SS[.ffffff]]): {e}"))
}

/// Microseconds of an ISO date-time without offset (`T` or a space between date and time).
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let dt = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_time(NaiveTime::MIN)));
    match dt {
        Some(dt) => {
            in_years(dt.year())?;
            Ok(micros_from_datetime(dt))
        }
        None if DateTime::parse_from_rfc3339(s).is_ok() => {
            Err("has a UTC offset, but the column is a timestamp without time zone".into())
        }
        None => Err("not a timestamp (YYYY-MM-DDTHH:MM[:SS[.ffffff]])".into()),
    }
}

/// Microseconds since the epoch (UTC) of an ISO date-time with `Z` or an offset (`+02:00`).
pub fn parse_timestamp_tz(s: &str) -> Result<i64, String> {
    let s = s.trim();
    match DateTime::parse_from_rfc3339(s).or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z")) {
        Ok(dt) => {
            let utc = dt.naive_utc();
            in_years(utc.year())?;
            Ok(micros_from_datetime(utc))
        }
        Err(_) if parse_timestamp(s).is_ok() => {
            Err("has no UTC offset (Z or +HH:MM), but the column is a timestamp with time zone".into())
        }
        Err(e) => Err(format!("not a timestamp with offset (YYYY-MM-DDTHH:MM:SS[.ffffff]Z): {e}")),
    }
}

/// `unscaled / 10^scale` in plain notation: `format_decimal(-1250, 2)` is `-12.50`.
pub fn format_decimal(unscaled: i128, scale: u8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let scale = usize::from(scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// The unscaled integer of decimal text for `decimal(precision, scale)`, exactly: more fractional
/// digits than `scale` (other than trailing zeros) or more than `precision` digits in all are errors.
pub fn parse_decimal(s: &str, precision: u8, scale: u8) -> Result<i128, String> {
    let t = s.trim();
    let (negative, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return Err("not a decimal number (digits with an optional sign and point)".into());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > usize::from(scale) {
        return Err(format!("has {} digits after the point; decimal({precision}, {scale}) keeps {scale}", frac.len()));
    }
    let int = int.trim_start_matches('0');
    let max_int_digits = usize::from(precision - scale);
    if int.len() > max_int_digits {
        return Err(format!(
            "has {} digits before the point; decimal({precision}, {scale}) holds {max_int_digits}",
            int.len()
        ));
    }
    let digits = format!("{int}{frac:0<width$}", width = usize::from(scale));
    let magnitude: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|e| format!("{e}"))? };
    Ok(if negative { -magnitude } else { magnitude })
}

/// The unscaled integer, at `scale`, of a decimal in Python's `str(Decimal)` form (`-1.005`, `1E+5`,
/// `1.2E-7`), rounded half-up (away from zero on a tie) when it has more fractional digits than
/// `scale`. `None` if it is not a finite decimal or its magnitude exceeds `i128`.
pub fn decimal_from_text_rounded(s: &str, scale: u8) -> Option<i128> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    // value = digits * 10^(exp - frac.len()); unscaled = value * 10^scale.
    let shift = exp.checked_sub(i32::try_from(frac.len()).ok()?)?.checked_add(i32::from(scale))?;
    let magnitude: i128 = if digits.is_empty() {
        0
    } else if shift >= 0 {
        let base: i128 = digits.parse().ok()?;
        base.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?
    } else {
        let drop = usize::try_from(-shift).ok()?;
        if drop > digits.len() {
            0
        } else {
            let (kept, dropped) = digits.split_at(digits.len() - drop);
            let kept: i128 = if kept.is_empty() { 0 } else { kept.parse().ok()? };
            let round_up = dropped.as_bytes().first().is_some_and(|&d| d >= b'5');
            kept.checked_add(i128::from(round_up))?
        }
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Whether `unscaled` has at most `precision` digits.
pub fn decimal_fits(unscaled: i128, precision: u8) -> bool {
    unscaled.unsigned_abs() < decimal_bound(precision)
}

/// 10^`precision`: a decimal of `precision` digits is below it in absolute value. Computed once per
/// column, not per value (`u128::pow` per value made checking a column 30x slower than copying it).
pub fn decimal_bound(precision: u8) -> u128 {
    10u128.pow(u32::from(precision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_at_the_ends_of_pythons_range() {
        for (text, days) in
            [("0001-01-01", MIN_DAYS), ("9999-12-31", MAX_DAYS), ("1970-01-01", 0), ("2024-02-29", 19782)]
        {
            assert_eq!(parse_date(text), Ok(days));
            assert_eq!(format_date(days), text);
        }
        assert!(parse_date("2023-02-29").is_err());
        assert!(date_from_days(MAX_DAYS + 1).is_none());
    }

    #[test]
    fn times_and_timestamps_round_trip() {
        assert_eq!(parse_time("12:30:00.25"), Ok(45_000_250_000));
        assert_eq!(format_time(45_000_250_000), "12:30:00.25");
        assert_eq!(parse_time("23:59"), Ok(86_340_000_000));
        let ts = parse_timestamp("1969-12-31T23:59:59.999999").unwrap();
        assert_eq!(ts, -1);
        assert_eq!(format_timestamp(-1, false), "1969-12-31T23:59:59.999999");
        assert_eq!(parse_timestamp_tz("1970-01-01T02:00:00+02:00"), Ok(0));
        assert_eq!(format_timestamp(0, true), "1970-01-01T00:00:00Z");
        assert!(parse_timestamp("2024-01-01T00:00:00Z").unwrap_err().contains("UTC offset"));
        assert!(parse_timestamp_tz("2024-01-01T00:00:00").unwrap_err().contains("no UTC offset"));
        assert_eq!(format_timestamp(MAX_MICROS, false), "9999-12-31T23:59:59.999999");
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("-12.50", 5, 2), Ok(-1250));
        assert_eq!(format_decimal(-1250, 2), "-12.50");
        assert_eq!(format_decimal(5, 3), "0.005");
        assert_eq!(format_decimal(-5, 3), "-0.005");
        assert_eq!(parse_decimal(".5", 3, 1), Ok(5));
        assert_eq!(parse_decimal("1.230", 4, 2), Ok(123));
        assert!(parse_decimal("1.234", 4, 2).unwrap_err().contains("3 digits after the point"));
        assert!(parse_decimal("123.4", 4, 2).unwrap_err().contains("3 digits before the point"));
        let max = "9".repeat(38);
        assert_eq!(parse_decimal(&max, 38, 0).map(|v| decimal_fits(v, 38)), Ok(true));
        assert!(parse_decimal("1e5", 10, 0).is_err());
    }

    #[test]
    fn python_decimal_text_rounds_half_up() {
        let r = |s: &str, scale| decimal_from_text_rounded(s, scale);
        assert_eq!(r("1.005", 2), Some(101));
        assert_eq!(r("-1.25", 1), Some(-13));
        assert_eq!(r("-1.24", 1), Some(-12));
        assert_eq!(r("1E+5", 2), Some(10_000_000));
        assert_eq!(r("1.2E-7", 2), Some(0));
        assert_eq!(r("5E-3", 2), Some(1));
        assert_eq!(r("0.000", 2), Some(0));
        assert_eq!(r(&"9".repeat(38), 0), Some(10i128.pow(38) - 1));
        assert_eq!(r("1E+50", 0), None);
        assert_eq!(r("NaN", 2), None);
        assert_eq!(r("-Infinity", 2), None);
    }
}
