//! Times drawn apart. A walk every node repeats (placing a record again, refreshing the routing
//! table) falls due at a time drawn within ±[`SPREAD`] of its period, each time anew, so that
//! nodes and keys started together do not fall due together.

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
}
