//! Times drawn apart. A walk every node repeats (placing a record again, refreshing the routing
//! table) falls due at a time drawn within ±[`SPREAD`] of its period, each time anew, so that
//! nodes and keys started together do not fall due together.
//!
//! The first repetition is drawn over a whole period ([`phased`]): drawn within ±[`SPREAD`]
//! alone, walks that began together (a cluster restarting) would fall within 40 % of a period
//! of each other for rounds on end, two and a half times as dense as their average; drawn over a
//! whole period once, their phases are spread evenly from the first round on, and the later
//! draws keep them so.

use std::time::Duration;

/// How far from its period a repeated walk may fall, as a fraction of it.
pub(crate) const SPREAD: f64 = 0.2;

/// The wait `draw` picks within ±[`SPREAD`] of `period`: 0 the earliest, 1 the latest. Its
/// owner draws it at random; a draw outside `[0, 1]` counts as the nearer end, and one that is
/// not a number as the middle.
pub(crate) fn drawn(period: Duration, draw: f64) -> Duration {
    let draw = if draw.is_nan() {
        0.5
    } else {
        draw.clamp(0.0, 1.0)
    };
    period.mul_f64(1.0 - SPREAD + 2.0 * SPREAD * draw)
}

/// The first wait of a repeated walk, which `draw` picks evenly over one whole `period`:
/// from `SPREAD` of it (0) to `1 + SPREAD` of it (1), so that it ends no later than the latest
/// [`drawn`] one. A draw outside `[0, 1]` counts as the nearer end, and one that is not a
/// number as the middle.
pub(crate) fn phased(period: Duration, draw: f64) -> Duration {
    let draw = if draw.is_nan() {
        0.5
    } else {
        draw.clamp(0.0, 1.0)
    };
    period.mul_f64(SPREAD + draw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draw_falls_within_the_spread_of_its_period() {
        let period = Duration::from_secs(100);
        assert_eq!(drawn(period, 0.0), Duration::from_secs(80));
        assert_eq!(drawn(period, 0.5), period);
        assert_eq!(drawn(period, 1.0), Duration::from_secs(120));
        assert_eq!(drawn(period, 7.0), Duration::from_secs(120));
        assert_eq!(drawn(period, -1.0), Duration::from_secs(80));
        assert_eq!(drawn(period, f64::NAN), period, "no panic");
    }

    #[test]
    fn a_first_wait_falls_anywhere_within_one_period() {
        let period = Duration::from_secs(100);
        assert_eq!(phased(period, 0.0), Duration::from_secs(20));
        assert_eq!(phased(period, 0.5), Duration::from_secs(70));
        assert_eq!(
            phased(period, 1.0),
            drawn(period, 1.0),
            "no later than the latest"
        );
        assert_eq!(phased(period, -3.0), Duration::from_secs(20));
        assert_eq!(
            phased(period, f64::NAN),
            Duration::from_secs(70),
            "no panic"
        );
    }
}
