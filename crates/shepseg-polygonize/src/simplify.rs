//! Topology-preserving simplification of a segment's rings (pure, given the labels around
//! them).
//!
//! A ring is cut into *arcs* at *nodes*: the grid vertices where three or more labels meet
//! (null and outside the image count as one label, 0) or where two meet diagonally (a
//! saddle). Between two nodes a boundary separates the same two labels all along, so the
//! segments on either side of an arc see the same arc, reversed. Each arc is simplified by
//! Douglas-Peucker in a canonical direction (from its lower endpoint in (row, col) order), so
//! both segments compute the same vertices: neighbours still share their edges exactly, and
//! the work needs no coordination between them.
//!
//! A shortcut (a chord replacing a run of an arc) is taken only if the region between the
//! chord and the run it replaces holds no other boundary: no boundary edge of the label image
//! other than the run's own touches that region or the chord, except at the chord's ends.
//! Every chord is checked against the original boundaries only, so the result does not
//! depend on the order arcs are simplified in, and no two chords can cross or touch where the
//! original boundaries did not (a chord that entered another's region would have to leave it
//! through an original boundary). Each arc keeps at least one vertex between its ends (three
//! for an arc that closes on itself), so no ring collapses. The result is valid wherever the
//! unsimplified rings are.

use crate::geometry::GeoTransform;
use crate::trace::{Ring, Vertex};

/// The label of pixel `(col, row)`: 0 for null and outside the image.
pub trait Labels {
    /// The label; columns and rows outside the image give 0.
    fn label(&mut self, col: i64, row: i64) -> u32;
}

type Pt = (i64, i64);

/// The (row, col) order that chooses an arc's canonical direction.
fn key(p: Pt) -> (i64, i64) {
    (p.1, p.0)
}

/// Twice the signed area of triangle `a b c` (exact).
fn orient(a: Pt, b: Pt, c: Pt) -> i128 {
    i128::from(b.0 - a.0) * i128::from(c.1 - a.1) - i128::from(b.1 - a.1) * i128::from(c.0 - a.0)
}

/// Whether `v` is a node: three or more labels around it, or two meeting diagonally.
fn is_node<L: Labels + ?Sized>(l: &mut L, (x, y): Pt) -> bool {
    let (nw, ne, sw, se) = (
        l.label(x - 1, y - 1),
        l.label(x, y - 1),
        l.label(x - 1, y),
        l.label(x, y),
    );
    if nw == se && ne == sw && nw != ne {
        return true;
    }
    let mut n = 1;
    n += usize::from(ne != nw);
    n += usize::from(sw != nw && sw != ne);
    n += usize::from(se != nw && se != ne && se != sw);
    n >= 3
}

/// Simplifies rings to a tolerance in map units; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct Simplifier {
    tol: f64,
    gt: GeoTransform,
    det: f64,
}

/// How many levels of an arc's split must keep their farthest vertex whatever the tolerance.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Between two distinct nodes: one vertex kept.
    Open,
    /// From a node (or, for a ring without nodes, its lowest vertex) back to itself: three.
    Loop,
}

impl Simplifier {
    /// A simplifier to `tolerance` map units on the grid of `gt`.
    pub fn new(tolerance: f64, gt: GeoTransform) -> Self {
        Self {
            tol: tolerance,
            gt,
            det: gt.pixel_area(),
        }
    }

    /// The map length of grid vector `(dx, dy)`.
    fn map_len(&self, dx: i64, dy: i64) -> f64 {
        let g = &self.gt.0;
        let (dx, dy) = (dx as f64, dy as f64);
        (g[1] * dx + g[2] * dy).hypot(g[4] * dx + g[5] * dy)
    }

    /// The point of `run` farthest from the line through `p` and `q` (from `p` when they are
    /// equal), the first of equals, and its map distance. Exact comparisons on the grid where
    /// the map distance is proportional to a grid quantity.
    fn farthest(&self, p: Pt, q: Pt, run: &[Pt]) -> (usize, f64) {
        if p == q {
            let mut best = (0, -1.0f64);
            for (m, &x) in run.iter().enumerate() {
                let d = self.map_len(x.0 - p.0, x.1 - p.1);
                if d > best.1 {
                    best = (m, d);
                }
            }
            return best;
        }
        let mut best = (0, 0u128);
        for (m, &x) in run.iter().enumerate() {
            let c = orient(p, q, x).unsigned_abs();
            if c > best.1 || m == 0 {
                best = (m, c);
            }
        }
        let len = self.map_len(q.0 - p.0, q.1 - p.1);
        (best.0, self.det * best.1 as f64 / len)
    }

    /// `ring` simplified, with its direction (and so the sign of its area) kept, starting at
    /// its lowest vertex.
    pub fn ring<L: Labels + ?Sized>(&self, labels: &mut L, ring: &Ring) -> Ring {
        let n = ring.verts.len();
        if n < 4 {
            return ring.clone();
        }
        // Corners, with the nodes between corners put in.
        let mut pts: Vec<Pt> = Vec::with_capacity(n);
        let mut node: Vec<bool> = Vec::with_capacity(n);
        for i in 0..n {
            let a = (i64::from(ring.verts[i].0), i64::from(ring.verts[i].1));
            let b = ring.verts[(i + 1) % n];
            let b = (i64::from(b.0), i64::from(b.1));
            pts.push(a);
            node.push(is_node(labels, a));
            let (dx, dy) = ((b.0 - a.0).signum(), (b.1 - a.1).signum());
            let mut v = (a.0 + dx, a.1 + dy);
            while v != b {
                if is_node(labels, v) {
                    pts.push(v);
                    node.push(true);
                }
                v = (v.0 + dx, v.1 + dy);
            }
        }
        let out = match node.iter().position(|&b| b) {
            None => {
                // One arc closing on itself, from its lowest vertex.
                let s = (0..pts.len()).min_by_key(|&i| key(pts[i])).unwrap_or(0);
                pts.rotate_left(s);
                pts.push(pts[0]);
                let mut arc = self.arc(labels, &pts, Shape::Loop);
                arc.pop();
                arc
            }
            Some(s) => {
                pts.rotate_left(s);
                node.rotate_left(s);
                pts.push(pts[0]);
                node.push(true);
                let mut out = Vec::with_capacity(pts.len());
                let mut start = 0;
                for end in 1..pts.len() {
                    if !node[end] {
                        continue;
                    }
                    let shape = if pts[start] == pts[end] {
                        Shape::Loop
                    } else {
                        Shape::Open
                    };
                    let arc = self.arc(labels, &pts[start..=end], shape);
                    out.extend_from_slice(&arc[..arc.len() - 1]);
                    start = end;
                }
                out
            }
        };
        let verts = drop_collinear(out)
            .into_iter()
            .map(|(x, y)| (x as u32, y as u32))
            .collect::<Vec<Vertex>>();
        let mut out = Ring::new(ring.label, verts, false);
        out.start_lowest();
        out
    }

    /// The vertices kept of the arc `pts` (first and last included), in its own direction,
    /// computed in the canonical direction.
    fn arc<L: Labels + ?Sized>(&self, labels: &mut L, pts: &[Pt], shape: Shape) -> Vec<Pt> {
        let n = pts.len();
        if n <= 2 {
            return pts.to_vec();
        }
        let reverse = match shape {
            Shape::Open => key(pts[n - 1]) < key(pts[0]),
            // A loop is walked from its lower second vertex.
            Shape::Loop => key(pts[n - 2]) < key(pts[1]),
        };
        let canon: Vec<Pt> = if reverse {
            pts.iter().rev().copied().collect()
        } else {
            pts.to_vec()
        };
        let keep = self.douglas_peucker(labels, &canon, shape);
        let mut out: Vec<Pt> = canon
            .iter()
            .zip(&keep)
            .filter(|(_, &k)| k)
            .map(|(&p, _)| p)
            .collect();
        if reverse {
            out.reverse();
        }
        out
    }

    /// Which vertices of `pts` Douglas-Peucker keeps, with the topology check.
    fn douglas_peucker<L: Labels + ?Sized>(
        &self,
        labels: &mut L,
        pts: &[Pt],
        shape: Shape,
    ) -> Vec<bool> {
        let n = pts.len();
        let mut keep = vec![false; n];
        keep[0] = true;
        keep[n - 1] = true;
        let forced = match shape {
            Shape::Open => 1u8,
            Shape::Loop => 2,
        };
        let mut stack = vec![(0usize, n - 1, forced)];
        while let Some((i, j, force)) = stack.pop() {
            if j <= i + 1 {
                continue;
            }
            let (p, q) = (pts[i], pts[j]);
            let (k, far) = self.farthest(p, q, &pts[i + 1..j]);
            let k = i + 1 + k;
            if force == 0 && far <= self.tol && chord_clear(labels, &pts[i..=j]) {
                continue;
            }
            keep[k] = true;
            let next = force.saturating_sub(1);
            stack.push((k, j, next));
            stack.push((i, k, next));
        }
        keep
    }
}

/// `pts` (a closed ring, first vertex not repeated) without the vertices where it runs
/// straight on. One pass is enough: in a ring that never doubles back on itself (the chord
/// checks rule that out), dropping a straight vertex leaves its neighbours' turns as they were.
fn drop_collinear(pts: Vec<Pt>) -> Vec<Pt> {
    let n = pts.len();
    if n < 4 {
        return pts;
    }
    (0..n)
        .filter(|&i| orient(pts[(i + n - 1) % n], pts[i], pts[(i + 1) % n]) != 0)
        .map(|i| pts[i])
        .collect()
}

/// Whether the chord from `run`'s first vertex to its last may replace it: no boundary edge
/// of `labels` other than the run's own meets the closed region between the chord and the
/// run, or the chord, except at the chord's two ends.
fn chord_clear<L: Labels + ?Sized>(labels: &mut L, run: &[Pt]) -> bool {
    let (p, q) = (run[0], run[run.len() - 1]);
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (p.0, p.0, p.1, p.1);
    for &(x, y) in run {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    // The run's own unit edges, per vertex row: horizontal spans `[x0, x1)` along the row,
    // and the columns of vertical edges down from it.
    let height = (ymax - ymin + 1) as usize;
    let mut spans: Vec<Vec<(i64, i64)>> = vec![Vec::new(); height];
    let mut downs: Vec<Vec<i64>> = vec![Vec::new(); height];
    for w in run.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.1 == b.1 {
            spans[(a.1 - ymin) as usize].push((a.0.min(b.0), a.0.max(b.0)));
        } else {
            for y in a.1.min(b.1)..a.1.max(b.1) {
                downs[(y - ymin) as usize].push(a.0);
            }
        }
    }
    let own_h = |x: i64, y: i64| {
        spans[(y - ymin) as usize]
            .iter()
            .any(|&(x0, x1)| x >= x0 && x < x1)
    };
    let own_v =
        |x: i64, y: i64| (ymin..ymax).contains(&y) && downs[(y - ymin) as usize].contains(&x);
    let bbox = (xmin, xmax, ymin, ymax);
    // The region lies in the run's convex hull, so within its bounding box and within the
    // run's widest horizontal reach from the chord's line.
    let band = (q.1 != p.1).then(|| {
        let at = |y: i64| p.0 as f64 + (y - p.1) as f64 * (q.0 - p.0) as f64 / (q.1 - p.1) as f64;
        let dev = run
            .iter()
            .map(|&(x, y)| (x as f64 - at(y)).abs())
            .fold(0.0f64, f64::max);
        (at, dev)
    });
    let span = |y: i64| -> (i64, i64) {
        let y = y.clamp(ymin, ymax);
        match &band {
            Some((at, dev)) => {
                let c = at(y);
                (
                    ((c - dev).floor() as i64).max(xmin),
                    ((c + dev).ceil() as i64).min(xmax),
                )
            }
            None => (xmin, xmax),
        }
    };
    for y in ymin - 1..=ymax {
        let (a0, a1) = span(y);
        let (b0, b1) = span(y + 1);
        for x in a0.min(b0) - 1..=a1.max(b1) + 1 {
            let here = labels.label(x, y);
            // The horizontal edge from (x, y) to (x + 1, y).
            if y >= ymin
                && labels.label(x, y - 1) != here
                && !own_h(x, y)
                && meets(run, bbox, (x, y), (x + 1, y))
            {
                return false;
            }
            // The vertical edge from (x, y) to (x, y + 1).
            if labels.label(x - 1, y) != here
                && !own_v(x, y)
                && meets(run, bbox, (x, y), (x, y + 1))
            {
                return false;
            }
        }
    }
    true
}

/// Whether the unit edge `u w` meets the closed region between `run` and its chord anywhere
/// but at the chord's ends.
fn meets(run: &[Pt], bbox: (i64, i64, i64, i64), u: Pt, w: Pt) -> bool {
    let (p, q) = (run[0], run[run.len() - 1]);
    let (x0, x1, y0, y1) = bbox;
    let boxed = |e: Pt| e.0 >= x0 && e.0 <= x1 && e.1 >= y0 && e.1 <= y1;
    if [u, w]
        .iter()
        .any(|&e| e != p && e != q && boxed(e) && in_region(run, e))
    {
        return true;
    }
    // Crossing the chord between its ends.
    let (a, b) = (orient(p, q, u), orient(p, q, w));
    let (c, d) = (orient(u, w, p), orient(u, w, q));
    a.signum() * b.signum() < 0 && c.signum() * d.signum() < 0
}

/// Whether `e` is on the chord or the run, or inside the region they bound (nonzero winding).
fn in_region(run: &[Pt], e: Pt) -> bool {
    let (p, q) = (run[0], run[run.len() - 1]);
    let on = |a: Pt, b: Pt| {
        orient(a, b, e) == 0
            && e.0 >= a.0.min(b.0)
            && e.0 <= a.0.max(b.0)
            && e.1 >= a.1.min(b.1)
            && e.1 <= a.1.max(b.1)
    };
    if on(p, q) {
        return true;
    }
    let mut winding = 0i32;
    let closing = [q, p];
    for (a, b) in run
        .windows(2)
        .map(|w| (w[0], w[1]))
        .chain(std::iter::once((closing[0], closing[1])))
    {
        if on(a, b) {
            return true;
        }
        if a.1 <= e.1 {
            if b.1 > e.1 && orient(a, b, e) > 0 {
                winding += 1;
            }
        } else if b.1 <= e.1 && orient(a, b, e) < 0 {
            winding -= 1;
        }
    }
    winding != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels from rows of characters ('.' is 0).
    struct Grid {
        cols: i64,
        rows: i64,
        v: Vec<u32>,
    }

    impl Grid {
        fn new(rows: &[&str]) -> Self {
            let v = rows
                .iter()
                .flat_map(|r| {
                    r.chars().map(|c| {
                        if c == '.' {
                            0
                        } else {
                            c.to_digit(36).unwrap_or(0)
                        }
                    })
                })
                .collect();
            Self {
                cols: rows[0].len() as i64,
                rows: rows.len() as i64,
                v,
            }
        }
    }

    impl Labels for Grid {
        fn label(&mut self, c: i64, r: i64) -> u32 {
            if c < 0 || r < 0 || c >= self.cols || r >= self.rows {
                0
            } else {
                self.v[(r * self.cols + c) as usize]
            }
        }
    }

    fn unit() -> Simplifier {
        Simplifier::new(1.5, GeoTransform([0.0, 1.0, 0.0, 0.0, 0.0, 1.0]))
    }

    #[test]
    fn a_staircase_becomes_a_diagonal_and_both_sides_agree() {
        let mut g = Grid::new(&[
            "2111111", //
            "2211111", //
            "2221111", //
            "2222111", //
            "2222211", //
            "2222221", //
        ]);
        // Segment 1's ring: walk with 1 on the right, from the top left corner of its
        // first pixel.
        let one = Ring::new(
            1,
            vec![
                (1, 0),
                (7, 0),
                (7, 6),
                (6, 6),
                (6, 5),
                (5, 5),
                (5, 4),
                (4, 4),
                (4, 3),
                (3, 3),
                (3, 2),
                (2, 2),
                (2, 1),
                (1, 1),
            ],
            false,
        );
        let s = unit().ring(&mut g, &one);
        assert!(s.verts.len() < one.verts.len(), "{:?}", s.verts);
        assert!(s.area2 > 0);
        // The shared arc, as segment 2 sees it (reversed), gives the same vertices.
        let two = Ring::new(
            2,
            vec![
                (0, 0),
                (1, 0),
                (1, 1),
                (2, 1),
                (2, 2),
                (3, 2),
                (3, 3),
                (4, 3),
                (4, 4),
                (5, 4),
                (5, 5),
                (6, 5),
                (6, 6),
                (0, 6),
            ],
            false,
        );
        let t = unit().ring(&mut g, &two);
        let shared = |r: &Ring| -> Vec<Vertex> {
            let mut v: Vec<Vertex> = r
                .verts
                .iter()
                .copied()
                .filter(|&(x, y)| (1..=6).contains(&x) && y <= 5)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(shared(&s), shared(&t), "{:?} / {:?}", s.verts, t.verts);
    }

    #[test]
    fn a_chord_may_not_pass_over_another_boundary() {
        // A 4x4 block of 2 in 1; its boundary with 1 runs (0,4) (4,4) (4,0), and the chord
        // (0,4)-(4,0) sweeps the block's lower right half.
        let run = [(0, 4), (4, 4), (4, 0)];
        let block = ["22221", "22221", "22221", "22221", "11111"];
        assert!(chord_clear(&mut Grid::new(&block), &run));
        // An island of 3 at pixel (2, 2), its corner on the chord: refused.
        let island = ["22221", "22221", "22321", "22221", "11111"];
        assert!(!chord_clear(&mut Grid::new(&island), &run));
        // The same island at pixel (0, 0), outside the swept half: allowed.
        let away = ["32221", "22221", "22221", "22221", "11111"];
        assert!(chord_clear(&mut Grid::new(&away), &run));
    }

    #[test]
    fn a_lone_square_stays_a_square() {
        let mut g = Grid::new(&["...", ".1.", "..."]);
        let r = Ring::new(1, vec![(1, 1), (2, 1), (2, 2), (1, 2)], false);
        assert_eq!(unit().ring(&mut g, &r), r);
    }

    #[test]
    fn collinear_vertices_go() {
        assert_eq!(
            drop_collinear(vec![(0, 0), (1, 0), (2, 0), (2, 2), (1, 2), (0, 2), (0, 1)]),
            vec![(0, 0), (2, 0), (2, 2), (0, 2)]
        );
    }
}
