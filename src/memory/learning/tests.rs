//! Unit tests of learning memory's pure helpers (the trend's slope). Tests
//! only; they must never open a database.

use super::history::slope;

#[test]
fn slope_is_zero_when_flat_or_single() {
    assert_eq!(slope(&[]), 0.0);
    assert_eq!(slope(&[(1.0, 0.5)]), 0.0);
    assert_eq!(slope(&[(1.0, 0.5), (2.0, 0.5), (3.0, 0.5)]), 0.0);
    assert_eq!(slope(&[(1.0, 0.5), (1.0, 0.7)]), 0.0);
    assert!((slope(&[(0.0, 0.0), (1.0, 0.1)]) - 0.1).abs() < 1e-9);
}
