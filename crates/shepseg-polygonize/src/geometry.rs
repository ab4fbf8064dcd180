//! A finished segment's rings as one WKB geometry in map coordinates (pure).
//!
//! One outer ring gives a Polygon with every hole; several give a MultiPolygon, each hole in
//! the innermost outer ring around it. Vertices map through the raster's geotransform, each
//! from its integer grid position, so the two segments on either side of an edge compute the
//! same coordinates bit for bit. Outer rings are counter-clockwise on the map and holes
//! clockwise (the right-hand rule of RFC 7946), whatever the direction of the raster's rows.

use crate::trace::{Ring, Vertex};

/// An affine map from pixel-grid vertices to map coordinates (GDAL's geotransform).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoTransform(pub [f64; 6]);

impl GeoTransform {
    #[inline]
    fn apply(&self, (c, r): Vertex) -> (f64, f64) {
        let g = &self.0;
        let (c, r) = (f64::from(c), f64::from(r));
        (g[0] + c * g[1] + r * g[2], g[3] + c * g[4] + r * g[5])
    }

    /// Whether it mirrors (north-up rasters do: rows run down, map y up).
    fn mirrors(&self) -> bool {
        let g = &self.0;
        g[1] * g[5] - g[2] * g[4] < 0.0
    }

    /// The area of one pixel, in map units.
    pub fn pixel_area(&self) -> f64 {
        let g = &self.0;
        (g[1] * g[5] - g[2] * g[4]).abs()
    }
}

/// Whether the centre of the pixel right of `ring`'s first edge... is inside `outer`: ray
/// casting in doubled coordinates, where pixel centres are odd and vertices even, so the ray
/// never meets a vertex.
fn contains(outer: &[Vertex], (px, py): (i64, i64)) -> bool {
    let n = outer.len();
    let mut inside = false;
    for i in 0..n {
        let (x0, y0) = (2 * i64::from(outer[i].0), 2 * i64::from(outer[i].1));
        let j = (i + 1) % n;
        let (x1, y1) = (2 * i64::from(outer[j].0), 2 * i64::from(outer[j].1));
        // Vertical edges only can cross a horizontal ray (rings are rectilinear).
        if x0 == x1 && (y0 < py) != (y1 < py) && px < x0 {
            inside = !inside;
        }
    }
    inside
}

/// The doubled centre of the pixel on the right of a ring's first edge (a pixel of the
/// ring's segment).
fn inner_pixel(ring: &[Vertex]) -> (i64, i64) {
    let (x0, y0) = (i64::from(ring[0].0), i64::from(ring[0].1));
    let (x1, y1) = (i64::from(ring[1].0), i64::from(ring[1].1));
    let (dx, dy) = ((x1 - x0).signum(), (y1 - y0).signum());
    // Walking (dx, dy), the right-hand side is (-dy, dx) in (col, row) with rows down.
    let (mx, my) = (2 * x0 + dx, 2 * y0 + dy);
    (mx - dy, my + dx)
}

/// A segment's rings as polygons: each outer ring with the holes it holds (the innermost
/// outer ring around each hole). Needs the rings as traced (rectilinear). Every ring starts at
/// its lowest vertex (row, then column) and rings are in that order, so the geometry does
/// not depend on how the image was cut into strips.
pub fn polygons(mut rings: Vec<Ring>) -> Vec<(Ring, Vec<Ring>)> {
    for r in &mut rings {
        r.start_lowest();
    }
    rings.sort_by_key(|r| r.verts.first().map(|&(c, r)| (r, c)));
    let (outers, holes): (Vec<Ring>, Vec<Ring>) = rings.drain(..).partition(|r| r.area2 > 0);
    let mut polys: Vec<(Ring, Vec<Ring>)> = outers.into_iter().map(|o| (o, Vec::new())).collect();
    if polys.len() == 1 {
        polys[0].1 = holes;
    } else {
        for h in holes {
            let p = inner_pixel(&h.verts);
            let best = polys
                .iter()
                .enumerate()
                .filter(|(_, (o, _))| contains(&o.verts, p))
                .min_by_key(|(_, (o, _))| o.area2)
                .map(|(i, _)| i);
            if let Some(i) = best {
                polys[i].1.push(h);
            }
        }
    }
    polys
}

/// Appends the WKB (little-endian) of a segment's `rings` to `out`; returns the number of
/// vertices written.
pub fn segment_wkb(rings: Vec<Ring>, gt: &GeoTransform, out: &mut Vec<u8>) -> usize {
    polygons_wkb(&polygons(rings), gt, out)
}

/// Appends the WKB (little-endian) of `polys` ([`polygons`], possibly simplified since) to
/// `out`, a Polygon for one and a MultiPolygon for more; returns the number of vertices
/// written.
pub fn polygons_wkb(polys: &[(Ring, Vec<Ring>)], gt: &GeoTransform, out: &mut Vec<u8>) -> usize {
    let mirrors = gt.mirrors();
    let mut vertices = 0;
    let ring_wkb = |ring: &Ring, out: &mut Vec<u8>| {
        let n = ring.verts.len();
        out.extend_from_slice(&(n as u32 + 1).to_le_bytes());
        let mut put = |v: Vertex| {
            let (x, y) = gt.apply(v);
            out.extend_from_slice(&x.to_le_bytes());
            out.extend_from_slice(&y.to_le_bytes());
        };
        if mirrors {
            for i in (0..n).rev() {
                put(ring.verts[i]);
            }
            put(ring.verts[n - 1]);
        } else {
            for &v in &ring.verts {
                put(v);
            }
            put(ring.verts[0]);
        }
        n + 1
    };
    let mut polygon = |(outer, holes): &(Ring, Vec<Ring>), out: &mut Vec<u8>| {
        out.push(1);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(holes.len() as u32 + 1).to_le_bytes());
        vertices += ring_wkb(outer, out);
        for h in holes {
            vertices += ring_wkb(h, out);
        }
    };
    if let [one] = polys {
        polygon(one, out);
    } else {
        out.push(1);
        out.extend_from_slice(&6u32.to_le_bytes());
        out.extend_from_slice(&(polys.len() as u32).to_le_bytes());
        for p in polys {
            polygon(p, out);
        }
    }
    vertices
}
