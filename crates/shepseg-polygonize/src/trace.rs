//! Tracing one strip of a segment image into the boundaries of its segments (pure, no I/O).
//!
//! Boundaries run along pixel edges, between the vertices of the pixel grid (`(col, row)`,
//! `0..=cols` by `0..=rows`). Each boundary edge is walked with its segment on the right, so
//! outer rings come out with positive area in `(col, row)` coordinates and holes negative.
//!
//! Where two pixels of a segment meet only at a corner (a saddle: the other two pixels there
//! are not the segment's), the walk turns right, around its own pixel: the boundary never
//! crosses such a corner, so each ring bounds one 4-connected part. If the two pixels are
//! connected elsewhere, the part's outer ring and a hole (or two holes) meet at that corner
//! and the walk passes it twice; [`Ring::split_pinches`] cuts the ring there into simple rings
//! touching at a point, as OGC validity allows.
//!
//! A strip owns the vertex rows `r0..r1` (the last strip `r0..=r1`) and decides every turn
//! there from the pixel rows on either side, so strips are traced independently. A boundary
//! that leaves the strip becomes an open [`Chain`], ended by the [`Crossing`] edges where it
//! enters and leaves; [`crate::rings::Assembler`] joins chains of neighbouring strips at
//! equal crossings.

/// East (column + 1).
pub const E: u8 = 0;
/// South (row + 1).
pub const S: u8 = 1;
/// West (column - 1).
pub const W: u8 = 2;
/// North (row - 1).
pub const N: u8 = 3;

/// [`TURNS`] flags: a way on exists, and the vertex is a saddle.
const VALID: u8 = 8;
const SADDLE: u8 = 4;

/// Whether the segment has an edge leaving a vertex going `d`, given which of the four pixels
/// around it are the segment's (`mask` bits: above left, above right, below left, below
/// right): its pixel on the right of the edge, another on the left.
const fn has_edge(mask: usize, d: u8) -> bool {
    let (nw, ne, sw, se) = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0, mask & 8 != 0);
    match d {
        E => se && !ne,
        S => sw && !se,
        W => nw && !sw,
        _ => ne && !nw,
    }
}

/// The way on from a vertex, by its pixel mask and the direction of arrival: right if there
/// is an edge, else straight, else left, with [`VALID`] and [`SADDLE`] set.
const TURNS: [[u8; 4]; 16] = {
    let mut t = [[0u8; 4]; 16];
    let mut mask = 0;
    while mask < 16 {
        let mut d = 0u8;
        while d < 4 {
            let (right, left) = ((d + 1) % 4, (d + 3) % 4);
            t[mask][d as usize] = if has_edge(mask, right) {
                right | VALID | if has_edge(mask, left) { SADDLE } else { 0 }
            } else if has_edge(mask, d) {
                d | VALID
            } else if has_edge(mask, left) {
                left | VALID
            } else {
                0
            };
            d += 1;
        }
        mask += 1;
    }
    t
};

/// A vertex of the pixel grid: `(col, row)`.
pub type Vertex = (u32, u32);

/// A closed boundary ring of one segment: its corner vertices (first not repeated) and twice
/// its signed area in `(col, row)` units (positive for an outer ring, negative for a hole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    /// Segment ID.
    pub label: u32,
    /// Corners, in walking order.
    pub verts: Vec<Vertex>,
    /// Twice the signed area.
    pub area2: i64,
    /// Whether it passed a saddle, so that it may pass a vertex twice.
    pub pinched: bool,
}

impl Ring {
    /// A ring of `verts`, its area computed.
    pub fn new(label: u32, verts: Vec<Vertex>, pinched: bool) -> Self {
        let area2 = area2(&verts);
        Self {
            label,
            verts,
            area2,
            pinched,
        }
    }

    /// The same ring starting at its lowest vertex in (row, col) order, so that it is written
    /// the same however it was traced.
    pub fn start_lowest(&mut self) {
        if let Some(s) = (0..self.verts.len()).min_by_key(|&i| (self.verts[i].1, self.verts[i].0)) {
            self.verts.rotate_left(s);
        }
    }

    /// The ring cut at every vertex it passes twice into simple rings (itself if it passes
    /// none twice). A saddle vertex is a corner of each ring through it.
    pub fn split_pinches(self) -> Vec<Ring> {
        if !self.pinched {
            return vec![self];
        }
        let mut out = Vec::new();
        let mut stack: Vec<Vertex> = Vec::with_capacity(self.verts.len());
        let mut at: std::collections::HashMap<Vertex, usize> = std::collections::HashMap::new();
        for &v in &self.verts {
            if let Some(&i) = at.get(&v) {
                // A loop from the earlier visit back to here: a ring of its own.
                let lp: Vec<Vertex> = stack.drain(i + 1..).collect();
                for u in &lp {
                    at.remove(u);
                }
                let mut ring = Vec::with_capacity(lp.len() + 1);
                ring.push(v);
                ring.extend(lp);
                out.push(Ring::new(self.label, ring, false));
            } else {
                at.insert(v, stack.len());
                stack.push(v);
            }
        }
        if !stack.is_empty() {
            out.push(Ring::new(self.label, stack, false));
        }
        out
    }
}

/// Twice the signed area of a closed ring of `verts` (shoelace, exact).
pub fn area2(verts: &[Vertex]) -> i64 {
    let n = verts.len();
    (0..n)
        .map(|i| {
            let (x0, y0) = verts[i];
            let (x1, y1) = verts[(i + 1) % n];
            i64::from(x0) * i64::from(y1) - i64::from(x1) * i64::from(y0)
        })
        .sum()
}

/// A vertical boundary edge that crosses between two strips, named by the vertex it arrives
/// at and its direction ([`S`] or [`N`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Crossing {
    /// Column of the arrival vertex.
    pub col: u32,
    /// Row of the arrival vertex.
    pub row: u32,
    /// [`S`] or [`N`].
    pub dir: u8,
}

/// A piece of boundary inside one strip, from the crossing it enters by to the one it leaves
/// by. `verts` starts at the vertex `head` arrives at and ends at the one `tail` arrives at
/// (both kept whether or not they are corners); in between, corners only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Segment ID.
    pub label: u32,
    /// Vertices, see above.
    pub verts: Vec<Vertex>,
    /// The edge it enters by.
    pub head: Crossing,
    /// Direction of its first edge in the strip (whether `verts[0]` is a corner).
    pub first_move: u8,
    /// The edge it leaves by.
    pub tail: Crossing,
    /// Whether it passed a saddle.
    pub pinched: bool,
}

/// What tracing a strip found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StripTrace {
    /// Rings closed inside the strip.
    pub rings: Vec<Ring>,
    /// Boundaries that leave it.
    pub chains: Vec<Chain>,
}

/// A strip of the segment image with the pixel rows its vertex rows need.
pub struct Strip<'a> {
    /// Pixel rows `r0 - 1 ..= r1`, each `cols + 2` wide with a 0 column either side; rows
    /// outside the image are 0, and row `r1` is never read (only the bottom strip's, which is
    /// outside the image, matters). 0 is null: it gets no boundary of its own.
    pub labels: &'a [u32],
    /// Image width.
    pub cols: usize,
    /// First vertex row owned.
    pub r0: usize,
    /// End of the vertex rows owned (exclusive, or inclusive when `last`).
    pub r1: usize,
    /// Whether this is the bottom strip (it owns the image's bottom vertex row too).
    pub last: bool,
}

/// The strip's trace could not be completed: the labels do not form the boundaries the walk
/// expects (a bug, not bad input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceBroken(pub String);

impl Strip<'_> {
    /// Rows of `labels` a strip of vertex rows `r0..r1` needs.
    pub fn rows_needed(r0: usize, r1: usize) -> usize {
        r1 - r0 + 2
    }

    fn width(&self) -> usize {
        self.cols + 2
    }

    /// The label of pixel `(col, row)`; columns -1 and `cols` and the halo rows are there.
    #[inline]
    fn px(&self, c: i64, r: i64) -> u32 {
        let i = (r - self.r0 as i64 + 1) as usize * self.width() + (c + 1) as usize;
        self.labels[i]
    }

    /// [`Strip::px`] for any pixel: those outside the buffer (beyond the halo rows and the
    /// 0 columns) are null. What the simplifier reads for segments inside the strip.
    pub(crate) fn px_or_null(&self, c: i64, r: i64) -> u32 {
        let r = r - self.r0 as i64 + 1;
        if c < -1 || c > self.cols as i64 || r < 0 {
            return 0;
        }
        self.labels
            .get(r as usize * self.width() + (c + 1) as usize)
            .copied()
            .unwrap_or(0)
    }

    #[inline]
    fn owned(&self, r: i64) -> bool {
        r >= self.r0 as i64 && (r < self.r1 as i64 || (self.last && r == self.r1 as i64))
    }

    /// The direction `label`'s boundary leaves vertex `(c, r)` by, having arrived going `d`
    /// (right first, see the module docs), and whether the vertex is a saddle.
    #[inline]
    fn turn(&self, c: i64, r: i64, d: u8, label: u32) -> Result<(u8, bool), TraceBroken> {
        // The four pixels around the vertex, from the one above left.
        let w = self.width();
        let nw = (r - self.r0 as i64) as usize * w + c as usize;
        let l = &self.labels;
        let mask = usize::from(l[nw] == label)
            | usize::from(l[nw + 1] == label) << 1
            | usize::from(l[nw + w] == label) << 2
            | usize::from(l[nw + w + 1] == label) << 3;
        let t = TURNS[mask][usize::from(d)];
        if t & VALID == 0 {
            return Err(TraceBroken(format!(
                "boundary of {label} ends at vertex ({c}, {r})"
            )));
        }
        Ok((t & 3, t & SADDLE != 0))
    }

    /// Traces the strip.
    pub fn trace(&self) -> Result<StripTrace, TraceBroken> {
        let expect = Self::rows_needed(self.r0, self.r1) * self.width();
        if self.labels.len() != expect || self.r1 < self.r0 || (self.r1 == self.r0 && !self.last) {
            return Err(TraceBroken(format!(
                "strip {}..{}: {} labels, expected {expect}",
                self.r0,
                self.r1,
                self.labels.len()
            )));
        }
        let owned_rows = self.r1 - self.r0 + usize::from(self.last);
        let vw = self.cols + 1;
        let mut visited = vec![0u8; owned_rows * vw];
        let mut out = StripTrace::default();
        let (r0, r1) = (self.r0 as i64, self.r1 as i64);
        // Boundaries entering from the strip above (south across r0) and from below (north
        // across r1), if those rows belong to other strips.
        if r0 > 0 {
            for c in 0..=self.cols as i64 {
                let label = self.px(c - 1, r0 - 1);
                if label != 0 && self.px(c, r0 - 1) != label {
                    let head = Crossing {
                        col: c as u32,
                        row: r0 as u32,
                        dir: S,
                    };
                    out.chains.push(self.walk_chain(&mut visited, head, label)?);
                }
            }
        }
        if !self.last {
            for c in 0..=self.cols as i64 {
                let label = self.px(c, r1 - 1);
                if label != 0 && self.px(c - 1, r1 - 1) != label {
                    let head = Crossing {
                        col: c as u32,
                        row: (r1 - 1) as u32,
                        dir: N,
                    };
                    out.chains.push(self.walk_chain(&mut visited, head, label)?);
                }
            }
        }
        // Everything else closes inside the strip; every ring has a horizontal edge.
        let w = self.width();
        for r in 0..owned_rows {
            let above = &self.labels[r * w + 1..r * w + 1 + self.cols];
            let below = &self.labels[(r + 1) * w + 1..(r + 1) * w + 1 + self.cols];
            let vr = r0 + r as i64;
            for (c, (&a, &b)) in above.iter().zip(below).enumerate() {
                if a == b {
                    continue;
                }
                let c = c as i64;
                if b != 0 && visited[r * vw + c as usize] & (1 << E) == 0 {
                    out.rings.push(self.walk_ring(&mut visited, c, vr, E, b)?);
                }
                if a != 0 && visited[r * vw + c as usize + 1] & (1 << W) == 0 {
                    out.rings
                        .push(self.walk_ring(&mut visited, c + 1, vr, W, a)?);
                }
            }
        }
        Ok(out)
    }

    #[inline]
    fn mark(&self, visited: &mut [u8], c: i64, r: i64, d: u8) {
        let i = (r - self.r0 as i64) as usize * (self.cols + 1) + c as usize;
        visited[i] |= 1 << d;
    }

    fn step(c: i64, r: i64, d: u8) -> (i64, i64) {
        match d {
            E => (c + 1, r),
            S => (c, r + 1),
            W => (c - 1, r),
            _ => (c, r - 1),
        }
    }

    /// Walks from the vertex `head` arrives at until the boundary leaves the strip.
    fn walk_chain(
        &self,
        visited: &mut [u8],
        head: Crossing,
        label: u32,
    ) -> Result<Chain, TraceBroken> {
        let (mut c, mut r) = (i64::from(head.col), i64::from(head.row));
        let mut verts = vec![(head.col, head.row)];
        let (mut d, mut pinched) = self.turn(c, r, head.dir, label)?;
        let first_move = d;
        loop {
            self.mark(visited, c, r, d);
            (c, r) = Self::step(c, r, d);
            if !self.owned(r) {
                verts.push((c as u32, r as u32));
                return Ok(Chain {
                    label,
                    verts,
                    head,
                    first_move,
                    tail: Crossing {
                        col: c as u32,
                        row: r as u32,
                        dir: d,
                    },
                    pinched,
                });
            }
            let (nd, saddle) = self.turn(c, r, d, label)?;
            pinched |= saddle;
            if nd != d {
                verts.push((c as u32, r as u32));
            }
            d = nd;
        }
    }

    /// Walks the ring through the edge leaving `(c0, r0)` going `d0` back to that edge.
    fn walk_ring(
        &self,
        visited: &mut [u8],
        c0: i64,
        r0: i64,
        d0: u8,
        label: u32,
    ) -> Result<Ring, TraceBroken> {
        let (mut c, mut r, mut d) = (c0, r0, d0);
        let mut verts = Vec::new();
        let mut pinched = false;
        loop {
            self.mark(visited, c, r, d);
            (c, r) = Self::step(c, r, d);
            if !self.owned(r) {
                return Err(TraceBroken(format!(
                    "ring of {label} from ({c0}, {r0}) leaves its strip"
                )));
            }
            let (nd, saddle) = self.turn(c, r, d, label)?;
            pinched |= saddle;
            if nd != d {
                verts.push((c as u32, r as u32));
            }
            if (c, r, nd) == (c0, r0, d0) {
                // The start vertex, pushed above if it is a corner, is now last: rotate it
                // to the front so that rings start where their walk did.
                if nd != d {
                    verts.rotate_right(1);
                }
                return Ok(Ring::new(label, verts, pinched));
            }
            d = nd;
        }
    }
}
