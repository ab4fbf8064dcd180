//! Spatial statistics: functions over one segment's pixels (coordinates and values) that fill
//! chosen attribute-table columns. Implement [`SpatialStat`] to add your own; the built-ins are
//! pyshepseg's: mean coordinate, number of edge pixels, and the variogram.

use shepseg_tiling::rat::ColumnType;

/// The valid pixels of one segment, in raster order (row, then column), with the values of
/// the band the spatial statistics use. Nodata pixels are not included.
#[derive(Debug, Clone, Copy)]
pub struct SegmentPixels<'a> {
    /// Column of each pixel in the whole image.
    pub xs: &'a [u32],
    /// Row of each pixel in the whole image.
    pub ys: &'a [u32],
    /// The band's value at each pixel.
    pub values: &'a [f64],
    /// The image's GDAL geotransform.
    pub geotransform: [f64; 6],
}

/// A function over one segment's pixels that fills some columns.
pub trait SpatialStat: Send + Sync {
    /// The columns it fills: names and types, created if absent.
    fn columns(&self) -> Vec<(String, ColumnType)>;
    /// Fills `out` (one value per column, preset to the missing value) for a segment with at
    /// least one valid pixel.
    fn compute(&self, pixels: &SegmentPixels<'_>, out: &mut [f64]);
}

/// Mean easting and northing of the segment's pixels, from the geotransform (pyshepseg's
/// userFuncMeanCoord: the pixels' top-left corners). Columns `Band_{b}_easting`,
/// `Band_{b}_northing`.
#[derive(Debug, Clone)]
pub struct MeanCoord {
    /// The band, for the column names.
    pub band: usize,
}

impl SpatialStat for MeanCoord {
    fn columns(&self) -> Vec<(String, ColumnType)> {
        vec![
            (format!("Band_{}_easting", self.band), ColumnType::Real),
            (format!("Band_{}_northing", self.band), ColumnType::Real),
        ]
    }

    fn compute(&self, p: &SegmentPixels<'_>, out: &mut [f64]) {
        let g = p.geotransform;
        let (mut sx, mut sy) = (0.0, 0.0);
        for (&x, &y) in p.xs.iter().zip(p.ys) {
            let (x, y) = (f64::from(x), f64::from(y));
            sx += g[0] + g[1] * x + g[2] * y;
            sy += g[3] + g[4] * x + g[5] * y;
        }
        let n = p.xs.len() as f64;
        out[0] = sx / n;
        out[1] = sy / n;
    }
}

/// Number of edge pixels: pixels on the segment's bounding box, or with a 4-way (or 8-way)
/// neighbour outside the segment (pyshepseg's userFuncNumEdgePixels; its 8-way test looks at
/// the south-east neighbour twice and never at the north-east one, shepseg looks at all eight).
/// Column `Band_{b}_edgepixels`.
#[derive(Debug, Clone)]
pub struct EdgePixels {
    /// The band, for the column name.
    pub band: usize,
    /// 4-way neighbours if true, else 8-way.
    pub four_connected: bool,
}

/// The segment as a mask over its bounding box: (mask, x0, y0, width, height).
fn bbox_mask(p: &SegmentPixels<'_>) -> (Vec<bool>, u32, u32, usize, usize) {
    let x0 = p.xs.iter().copied().min().unwrap_or(0);
    let y0 = p.ys.iter().copied().min().unwrap_or(0);
    let w = (p.xs.iter().copied().max().unwrap_or(0) - x0) as usize + 1;
    let h = (p.ys.iter().copied().max().unwrap_or(0) - y0) as usize + 1;
    let mut mask = vec![false; w * h];
    for (&x, &y) in p.xs.iter().zip(p.ys) {
        mask[(y - y0) as usize * w + (x - x0) as usize] = true;
    }
    (mask, x0, y0, w, h)
}

impl SpatialStat for EdgePixels {
    fn columns(&self) -> Vec<(String, ColumnType)> {
        vec![(
            format!("Band_{}_edgepixels", self.band),
            ColumnType::Integer,
        )]
    }

    fn compute(&self, p: &SegmentPixels<'_>, out: &mut [f64]) {
        let (mask, _, _, w, h) = bbox_mask(p);
        let at = |x: usize, y: usize| mask[y * w + x];
        let mut edges = 0u64;
        for y in 0..h {
            for x in 0..w {
                if !at(x, y) {
                    continue;
                }
                let border = x == 0 || y == 0 || x == w - 1 || y == h - 1;
                let inside = !border
                    && at(x - 1, y)
                    && at(x + 1, y)
                    && at(x, y - 1)
                    && at(x, y + 1)
                    && (self.four_connected
                        || (at(x - 1, y - 1)
                            && at(x + 1, y - 1)
                            && at(x - 1, y + 1)
                            && at(x + 1, y + 1)));
                if !inside {
                    edges += 1;
                }
            }
        }
        out[0] = edges as f64;
    }
}

/// pyshepseg's variogram (userFuncVariogram): for lags d = 1..=max_dist, the root mean square
/// difference of values between pixel pairs offset by (dy, dx) with both offsets at least 1
/// (down and to the right) and `floor(sqrt(dy² + dx²)) == d`. Columns `variogram1` ..
/// `variogram{max_dist}` (pyshepseg_variograms' names); a lag with no pairs keeps the missing
/// value.
#[derive(Debug, Clone)]
pub struct Variogram {
    /// The largest lag, in pixels.
    pub max_dist: usize,
}

impl SpatialStat for Variogram {
    fn columns(&self) -> Vec<(String, ColumnType)> {
        (1..=self.max_dist)
            .map(|d| (format!("variogram{d}"), ColumnType::Real))
            .collect()
    }

    fn compute(&self, p: &SegmentPixels<'_>, out: &mut [f64]) {
        let (mask, x0, y0, w, h) = bbox_mask(p);
        let mut vals = vec![0.0f64; w * h];
        for ((&x, &y), &v) in p.xs.iter().zip(p.ys).zip(p.values) {
            vals[(y - y0) as usize * w + (x - x0) as usize] = v;
        }
        let md = self.max_dist;
        let mut sums = vec![0.0f64; md];
        let mut counts = vec![0u64; md];
        for y in 0..h {
            for x in 0..w {
                if !mask[y * w + x] {
                    continue;
                }
                let v1 = vals[y * w + x];
                for yo in 1..=md {
                    for xo in 1..=md {
                        let (y2, x2) = (y + yo, x + xo);
                        if y2 >= h || x2 >= w || !mask[y2 * w + x2] {
                            continue;
                        }
                        let d = ((yo * yo + xo * xo) as f64).sqrt() as usize;
                        if (1..=md).contains(&d) {
                            let diff = v1 - vals[y2 * w + x2];
                            counts[d - 1] += 1;
                            sums[d - 1] += diff * diff;
                        }
                    }
                }
            }
        }
        for d in 0..md {
            if counts[d] > 0 {
                out[d] = (sums[d] / counts[d] as f64).sqrt();
            }
        }
    }
}

/// Parses `--spatial meancoord|edgepixels|variogram:MAXDIST` for statistics of `band`.
pub fn parse_spatial(
    spec: &str,
    band: usize,
    four_connected: bool,
) -> Result<Box<dyn SpatialStat>, crate::StatsError> {
    let t = spec.trim().to_ascii_lowercase();
    match t.as_str() {
        "meancoord" => Ok(Box::new(MeanCoord { band })),
        "edgepixels" => Ok(Box::new(EdgePixels {
            band,
            four_connected,
        })),
        _ => {
            let d = t
                .strip_prefix("variogram:")
                .and_then(|d| d.parse::<usize>().ok())
                .filter(|d| (1..=100).contains(d))
                .ok_or_else(|| {
                    crate::StatsError::BadOption(format!(
                        "spatial statistic {spec}: expected meancoord, edgepixels or variogram:MAXDIST (1..100)"
                    ))
                })?;
            Ok(Box::new(Variogram { max_dist: d }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(points: &[(u32, u32, f64)]) -> (Vec<u32>, Vec<u32>, Vec<f64>) {
        (
            points.iter().map(|p| p.0).collect(),
            points.iter().map(|p| p.1).collect(),
            points.iter().map(|p| p.2).collect(),
        )
    }

    #[test]
    fn edge_pixels_of_a_square() {
        // A 3x3 square: only the centre is interior, both ways; without a corner, the centre
        // is interior 4-way but an edge 8-way.
        let all: Vec<(u32, u32, f64)> = (0..3)
            .flat_map(|y| (0..3).map(move |x| (x + 5, y + 7, 0.0)))
            .collect();
        for (pts, four, want) in [
            (all.clone(), true, 8.0),
            (all.clone(), false, 8.0),
            (all[1..].to_vec(), true, 7.0),
            (all[1..].to_vec(), false, 8.0),
        ] {
            let (xs, ys, vs) = px(&pts);
            let p = SegmentPixels {
                xs: &xs,
                ys: &ys,
                values: &vs,
                geotransform: [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
            };
            let mut out = [0.0];
            EdgePixels {
                band: 1,
                four_connected: four,
            }
            .compute(&p, &mut out);
            assert_eq!(out[0], want, "four={four} n={}", pts.len());
        }
    }

    #[test]
    fn mean_coord_and_variogram() {
        let pts = [(0, 0, 1.0), (1, 0, 2.0), (0, 1, 3.0), (1, 1, 5.0)];
        let (xs, ys, vs) = px(&pts);
        let p = SegmentPixels {
            xs: &xs,
            ys: &ys,
            values: &vs,
            geotransform: [100.0, 10.0, 0.0, 200.0, 0.0, -10.0],
        };
        let mut out = [0.0; 2];
        MeanCoord { band: 1 }.compute(&p, &mut out);
        assert_eq!(out, [105.0, 195.0]);
        let mut out = [-9999.0; 2];
        Variogram { max_dist: 2 }.compute(&p, &mut out);
        // Only the (1,1) offset: pixel (0,0) with (1,1): |1 - 5| = 4 at lag floor(sqrt 2) = 1.
        assert_eq!(out, [4.0, -9999.0]);
    }
}
