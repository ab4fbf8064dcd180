//! Small numeric helpers that reproduce Python's and numpy's exact rounding behaviour.

/// Python 3's `round(x)`: to the nearest integer, halves to even.
pub fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

/// numpy's `percentile(a, q)` with linear interpolation, for a `float32` array as numpy 2
/// computes it: the interpolation in `float64` from the two `float32` neighbours, the result
/// rounded to `float32`. `a` must be non-empty and free of NaN.
pub fn percentile_f32(a: &[f32], q: f64) -> f32 {
    let mut s = a.to_vec();
    s.sort_by(f32::total_cmp);
    let n = s.len();
    let q = q / 100.0;
    let virtual_index = n as f64 * q - q;
    let prev = virtual_index.floor().clamp(0.0, (n - 1) as f64);
    let gamma = virtual_index - prev;
    let prev = prev as usize;
    let next = (prev + 1).min(n - 1);
    let (lo, hi) = (s[prev], s[next]);
    let diff = hi - lo; // float32, as numpy subtracts the two float32 values
    let v = if gamma >= 0.5 {
        hi as f64 - diff as f64 * (1.0 - gamma)
    } else {
        lo as f64 + diff as f64 * gamma
    };
    v as f32
}

/// numpy's pairwise summation of a contiguous `float64` array (`np.sum`, `add.reduce`).
pub fn numpy_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = -0.0;
        for v in a {
            res += v;
        }
        res
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_rounding() {
        assert_eq!(round_half_even(0.5), 0.0);
        assert_eq!(round_half_even(1.5), 2.0);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(2.6), 3.0);
        assert_eq!(round_half_even(100.0), 100.0);
        assert_eq!(round_half_even(66.66), 67.0);
    }

    #[test]
    fn percentile_matches_numpy_examples() {
        // numpy: np.percentile(np.float32([1, 2.1, 3, 4.7]), 50) == np.float32(2.55)
        assert_eq!(percentile_f32(&[1.0, 2.1, 3.0, 4.7], 50.0), 2.55f32);
        assert_eq!(percentile_f32(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile_f32(&[5.0], 30.0), 5.0);
        assert_eq!(percentile_f32(&[1.0, 2.0], 100.0), 2.0);
        assert_eq!(percentile_f32(&[1.0, 2.0], 0.0), 1.0);
    }

    #[test]
    fn pairwise_sum_small_is_sequential() {
        let a = [1e16, 1.0, -1e16, 1.0];
        assert_eq!(numpy_sum(&a), ((1e16 + 1.0) - 1e16) + 1.0);
        let v: Vec<f64> = (0..300).map(|i| i as f64 * 0.1).collect();
        assert!((numpy_sum(&v) - v.iter().sum::<f64>()).abs() < 1e-9);
    }
}
