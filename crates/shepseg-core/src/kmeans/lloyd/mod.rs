//! Lloyd's algorithm as scikit-learn runs it.
//!
//! Each iteration assigns every point to its nearest centre (scikit-learn's score and
//! tie-breaking, see [`super::sklearn_math`]; module `hamerly`), moves each centre to the mean of
//! its points (module `update`), and stops when the labels repeat or the summed squared centre
//! shift is within tolerance. Every pass over the sample runs over fixed blocks of points that
//! threads take one at a time, their results combined in block order: the model is the same for
//! any thread count. Lloyd's iterations keep scikit-learn's `f64` arithmetic.

pub(crate) mod hamerly;
mod update;

use super::sklearn_math::euclidean;
use super::Data;
use crate::numeric::numpy_sum;
use hamerly::{Assignment, Geometry};
use update::update_centres;

/// How long a Lloyd run goes on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    /// Iterations at most.
    pub max_iter: usize,
    /// Stop once the summed squared centre shift is at most this.
    pub tol: f64,
}

/// The outcome of one Lloyd run.
pub(super) struct LloydResult {
    pub centres: Vec<f64>,
    pub iterations: usize,
    pub inertia: f64,
}

/// The vector instructions a pass over the sample uses, chosen once per fit. For Lloyd's
/// assignment, how a point whose bounds fail is scanned: `Scalar` scans only the centres the
/// triangle inequality cannot rule out, one at a time; the vector choices score every centre,
/// one point a lane (exactly, four (AVX2) or eight (AVX-512) centres a vector, where that
/// leaves a point uncertain). For k-means++'s passes, eight or sixteen points a vector.
pub(super) use crate::cpu::Simd;

/// Runs Lloyd's algorithm from `centres` (centred like the data), scanning with the fastest
/// vectors the CPU has (measured: AVX-512 beats AVX2, which beats the pruned scan, on an
/// AVX-512 Xeon; AVX2 beats the pruned scan on an AVX2-only EPYC).
pub(super) fn lloyd(d: &Data, centres: Vec<f64>, run: Run) -> LloydResult {
    lloyd_with(d, centres, run, Simd::best())
}

/// [`lloyd`] with the given scan, which must be one the CPU supports (the result is the same
/// for every scan; tests compare them).
pub(super) fn lloyd_with(d: &Data, centres: Vec<f64>, run: Run, scan: Simd) -> LloydResult {
    // Each block of the passes picks its own instruction set ([`Block::step_any`]).
    lloyd_bands(d, centres, run, scan)
}

/// Dispatches on the band count, so the common counts get loops unrolled at compile time.
#[inline(always)]
fn lloyd_bands(d: &Data, centres: Vec<f64>, run: Run, scan: Simd) -> LloydResult {
    match d.nb {
        1 => lloyd_inline::<1>(d, centres, run, scan),
        2 => lloyd_inline::<2>(d, centres, run, scan),
        3 => lloyd_inline::<3>(d, centres, run, scan),
        4 => lloyd_inline::<4>(d, centres, run, scan),
        5 => lloyd_inline::<5>(d, centres, run, scan),
        6 => lloyd_inline::<6>(d, centres, run, scan),
        7 => lloyd_inline::<7>(d, centres, run, scan),
        8 => lloyd_inline::<8>(d, centres, run, scan),
        _ => lloyd_inline::<0>(d, centres, run, scan),
    }
}

#[inline(always)]
fn lloyd_inline<const NB: usize>(
    d: &Data,
    mut centres: Vec<f64>,
    run: Run,
    scan: Simd,
) -> LloydResult {
    let Run { max_iter, tol } = run;
    let nb = d.nb::<NB>();
    let k = centres.len() / nb;
    let mut asg = Assignment::new(d.n, scan);
    asg.all::<NB>(d, &Geometry::new(&centres, nb, scan));
    // Whether the last assignment step left every label as it was (scikit-learn compares
    // the label arrays).
    let mut unchanged = false;
    let mut iterations = 0;
    let mut new_centres = vec![0.0; k * nb];
    let mut shift = vec![0.0; k];
    for it in 0..max_iter {
        iterations = it + 1;
        update_centres::<NB>(d, &centres, &asg.labels, &mut new_centres);
        for j in 0..k {
            shift[j] = euclidean(
                &new_centres[j * nb..(j + 1) * nb],
                &centres[j * nb..(j + 1) * nb],
            );
        }
        std::mem::swap(&mut centres, &mut new_centres);
        if unchanged {
            break;
        }
        let sq: Vec<f64> = shift.iter().map(|s| s * s).collect();
        if numpy_sum(&sq) <= tol || it + 1 == max_iter {
            break;
        }
        unchanged = !asg.step::<NB>(d, &Geometry::new(&centres, nb, scan), &shift);
    }
    // Final assignment to the final centres, for the inertia that ranks restarts: a bounded
    // step from the last one (the bounds hold for the centres before the last update, which
    // moved them by `shift`), so only the points whose bounds fail are scanned.
    asg.step::<NB>(d, &Geometry::new(&centres, nb, scan), &shift);
    let mut inertia = 0.0;
    for i in 0..d.n {
        let a = asg.labels[i] as usize;
        let e = euclidean(d.point::<NB>(i), &centres[a * nb..(a + 1) * nb]);
        inertia += e * e;
    }
    LloydResult {
        centres,
        iterations,
        inertia,
    }
}
