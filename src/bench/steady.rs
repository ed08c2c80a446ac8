//! Steady-state rates from runs at two input sizes, for peers whose every run pays a start-up (a JVM
//! job, a session, a query plan) that a single run would charge to the UDF.
//!
//! Repeat `i` runs the same query over `small` and `big` rows; its rate is `(big − small) / (T_big,i −
//! T_small,i)`: whatever a run pays once cancels out. A figure is not trusted — flagged, with the
//! reason, and left out of the report's numbers — when a big run was not slower than its small one,
//! when the steady-state work lasted too short a time to measure, or when the repeats disagree too much.

use super::Spread;
use serde::Serialize;

/// Steady-state work (T_big − T_small, median over repeats) below this is not trusted, in seconds.
pub const MIN_STEADY_SECONDS: f64 = 0.25;
/// Rates whose (max − min) / median over repeats exceeds this are not trusted.
pub const MAX_RELATIVE_SPREAD: f64 = 0.5;

/// A peer configuration's steady-state figure.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyState {
    /// Rows per second over the repeats, where every repeat's big run was the slower one.
    pub rows_per_sec: Option<Spread>,
    /// Median seconds of steady-state work (T_big − T_small).
    pub steady_seconds: f64,
    /// Why the figure is not to be trusted, if it is not.
    pub flag: Option<String>,
}

/// The steady-state rate of runs over `small` and `big` rows taking `small_secs` and `big_secs`
/// seconds, paired by repeat.
pub fn steady_state(small: usize, small_secs: &[f64], big: usize, big_secs: &[f64]) -> SteadyState {
    let diffs: Vec<f64> = small_secs.iter().zip(big_secs).map(|(s, b)| b - s).collect();
    if diffs.is_empty() || big <= small {
        let flag = Some(format!("no pair of runs at two sizes ({small} and {big} rows)"));
        return SteadyState { rows_per_sec: None, steady_seconds: 0.0, flag };
    }
    let steady_seconds = Spread::of(diffs.clone()).median;
    if let Some(i) = diffs.iter().position(|&d| d <= 0.0) {
        let flag = Some(format!(
            "repeat {} ran {big} rows in no more time than {small} ({:.3} s against {:.3} s): lost in noise",
            i + 1,
            big_secs[i],
            small_secs[i]
        ));
        return SteadyState { rows_per_sec: None, steady_seconds, flag };
    }
    let extra = (big - small) as f64;
    let rate = Spread::of(diffs.iter().map(|d| extra / d).collect());
    let spread = (rate.max - rate.min) / rate.median;
    let flag = if steady_seconds < MIN_STEADY_SECONDS {
        Some(format!("only {steady_seconds:.3} s of steady-state work (under {MIN_STEADY_SECONDS} s)"))
    } else if diffs.len() < 2 {
        Some("one repeat: no spread to judge it by".to_owned())
    } else if spread > MAX_RELATIVE_SPREAD {
        Some(format!("the repeats disagree: {:.0}% spread (over {:.0}%)", spread * 100.0, MAX_RELATIVE_SPREAD * 100.0))
    } else {
        None
    };
    SteadyState { rows_per_sec: Some(rate), steady_seconds, flag }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_start_up_cancels_out() {
        // 2 s of start-up every run, 1 µs per row: 1 M rows/s whatever the start-up.
        let secs = |n: f64, jitter: f64| 2.0 + n * 1e-6 + jitter;
        let s = steady_state(
            10_000,
            &[secs(1e4, 0.0), secs(1e4, 0.01), secs(1e4, -0.01)],
            3_010_000,
            &[secs(3.01e6, 0.0), secs(3.01e6, 0.0), secs(3.01e6, 0.0)],
        );
        assert!(s.flag.is_none(), "{:?}", s.flag);
        let r = s.rows_per_sec.unwrap();
        assert!((r.median - 1e6).abs() < 1.0, "{r:?}");
        assert!(r.min < r.median && r.median < r.max, "{r:?}");
        assert!((s.steady_seconds - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_big_run_no_slower_than_the_small_one_is_noise() {
        let s = steady_state(10_000, &[2.0, 2.0], 20_000, &[2.1, 1.9]);
        assert!(s.rows_per_sec.is_none());
        assert!(s.flag.unwrap().contains("repeat 2 ran 20000 rows in no more time than 10000"));
    }

    #[test]
    fn too_little_steady_state_work_is_flagged_but_kept() {
        let s = steady_state(1_000, &[1.0, 1.0, 1.0], 101_000, &[1.1, 1.1, 1.1]);
        assert!((s.rows_per_sec.unwrap().median - 1e6).abs() < 1.0);
        assert!(s.flag.unwrap().contains("only 0.100 s of steady-state work"));
    }

    #[test]
    fn repeats_that_disagree_are_flagged() {
        let s = steady_state(0, &[0.0, 0.0, 0.0], 1_000_000, &[1.0, 1.0, 3.0]);
        assert!(s.flag.unwrap().contains("the repeats disagree"), "spread over 50%");
        let s = steady_state(0, &[0.0, 0.0, 0.0], 1_000_000, &[1.0, 1.1, 1.2]);
        assert!(s.flag.is_none(), "{:?}", s.flag);
    }

    #[test]
    fn one_repeat_or_no_sizes_cannot_be_judged() {
        assert!(steady_state(0, &[0.0], 1_000_000, &[1.0]).flag.unwrap().contains("one repeat"));
        assert!(steady_state(5, &[], 5, &[]).flag.unwrap().contains("no pair of runs"));
        assert!(steady_state(10, &[1.0], 10, &[1.0]).rows_per_sec.is_none());
    }
}
