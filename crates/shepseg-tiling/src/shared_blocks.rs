//! Input blocks decoded once for all the threads that read a grid's tiles.
//!
//! Each reading thread has its own GDAL dataset, and GDAL caches decoded blocks per dataset.
//! A block that several tiles' windows touch (a seamless tile's 2-pixel halo reaches into its
//! neighbours' blocks) was therefore decoded again by every thread that read one of those
//! tiles: with 2 threads and a DEFLATE input, reading took 4.1 s of CPU where one thread took
//! 2.5 s. [`SharedBlocks`] decodes such a block once, keeps it until every window that touches
//! it has been read, then drops it; a block only one window touches is read straight into
//! that window's array. The pixels are the file's either way.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use gdal::raster::GdalType;
use ndarray::Array3;

use crate::error::TilingError;
use crate::raster::{read_stack_with, ReadTyped};
use crate::{BandStack, Raster, Window};

/// A decoded block, all bands, band-sequential: a `Vec<T>` of the read's type.
type Block = Arc<dyn Any + Send + Sync>;

/// A shared block's state.
enum Slot {
    /// A thread is decoding it; others wait.
    Decoding,
    /// Decoded, until its last window has been read.
    Ready(Block),
}

/// The blocks more than one window touches: how many of those windows are still to be read,
/// and the decoded ones.
struct State {
    left: HashMap<usize, u32>,
    slots: HashMap<usize, Slot>,
}

/// Blocks of one raster shared between reading threads; see the module docs.
pub struct SharedBlocks {
    bands: Vec<usize>,
    raster: (usize, usize),
    block: (usize, usize),
    blocks_across: usize,
    state: Mutex<State>,
    changed: Condvar,
}

/// Decoded blocks larger than this are not kept (a file stored as a few huge blocks): each
/// window then reads through its own dataset, as without sharing.
const MAX_BLOCK_BYTES: usize = 64 << 20;

/// How a window gets one of its blocks.
enum Use<'a> {
    /// Read its part straight from the file (only this window needs the block, or it is no
    /// longer kept).
    Direct,
    /// Copy from the decoded block.
    Ready(Block),
    /// Decode it for everyone; the guard publishes it, or gives the slot up on failure.
    Decode(DecodeGuard<'a>),
}

/// A slot this thread is decoding; dropped without [`DecodeGuard::publish`], it frees the slot
/// so that another thread can try.
struct DecodeGuard<'a> {
    id: usize,
    shared: &'a SharedBlocks,
}

impl SharedBlocks {
    /// Sharing for reads of `bands` of `raster` through `windows` (each read once, any order):
    /// `None` when no block is touched by two windows, or the blocks are too large to keep.
    pub fn for_windows(raster: &Raster, bands: &[usize], windows: &[Window]) -> Option<Self> {
        let band = raster.dataset().rasterband(*bands.first()?).ok()?;
        let (bw, bh) = band.block_size();
        let value = usize::from(band.band_type().bytes());
        if bw == 0 || bh == 0 || bw * bh * value * bands.len() > MAX_BLOCK_BYTES {
            return None;
        }
        let (cols, rows) = raster.size();
        let blocks_across = cols.div_ceil(bw);
        let mut left: HashMap<usize, u32> = HashMap::new();
        for &w in windows {
            for (bx, by) in blocks_of(w, (bw, bh)) {
                *left.entry(by * blocks_across + bx).or_default() += 1;
            }
        }
        left.retain(|_, n| *n > 1);
        if left.is_empty() {
            return None;
        }
        Some(Self {
            bands: bands.to_vec(),
            raster: (cols, rows),
            block: (bw, bh),
            blocks_across,
            state: Mutex::new(State {
                left,
                slots: HashMap::new(),
            }),
            changed: Condvar::new(),
        })
    }

    /// Reads `window` of `bands` through `raster` (this thread's dataset of the same file), in
    /// the bands' common pixel type, as [`Raster::read_stack`] does.
    pub fn read_stack(
        &self,
        raster: &Raster,
        bands: &[usize],
        window: Window,
    ) -> Result<BandStack, TilingError> {
        let pt = raster.pixel_type(bands)?;
        if bands != self.bands.as_slice() || raster.size() != self.raster {
            return raster.read_stack(bands, window);
        }
        read_stack_with(&Through(self, raster), pt, bands, window)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How the calling window gets block `id`: waits while another thread decodes it.
    fn take(&self, id: usize) -> Use<'_> {
        let mut st = self.lock();
        if st.left.get(&id).copied().unwrap_or(0) == 0 {
            return Use::Direct;
        }
        loop {
            match st.slots.get(&id) {
                None => {
                    st.slots.insert(id, Slot::Decoding);
                    return Use::Decode(DecodeGuard { id, shared: self });
                }
                Some(Slot::Ready(b)) => return Use::Ready(b.clone()),
                Some(Slot::Decoding) => {
                    st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// One more window has read block `id`: dropped after the last.
    fn used(&self, id: usize) {
        let mut st = self.lock();
        if let Some(n) = st.left.get_mut(&id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.left.remove(&id);
                st.slots.remove(&id);
            }
        }
    }

    /// Block `(bx, by)`'s pixels, cut at the raster's edge.
    fn block_window(&self, bx: usize, by: usize) -> Window {
        let (bw, bh) = self.block;
        let (xoff, yoff) = (bx * bw, by * bh);
        Window {
            xoff,
            yoff,
            xsize: bw.min(self.raster.0 - xoff),
            ysize: bh.min(self.raster.1 - yoff),
        }
    }

    /// [`SharedBlocks::read_stack`] in one type.
    fn read<T: Copy + GdalType + Default + Send + Sync + 'static>(
        &self,
        raster: &Raster,
        bands: &[usize],
        w: Window,
    ) -> Result<Array3<T>, TilingError> {
        let (cols, rows) = self.raster;
        if w.xsize == 0 || w.ysize == 0 || w.xoff + w.xsize > cols || w.yoff + w.ysize > rows {
            return raster.read(bands, w);
        }
        let plane = w.xsize * w.ysize;
        let mut data = vec![T::default(); bands.len() * plane];
        for (bx, by) in blocks_of(w, self.block) {
            let id = by * self.blocks_across + bx;
            let b = self.block_window(bx, by);
            let part = intersection(b, w);
            let to = (part.yoff - w.yoff) * w.xsize + (part.xoff - w.xoff);
            let decoded = match self.take(id) {
                Use::Direct => {
                    raster.read_into(bands, part, &mut data, (to, w.xsize, plane))?;
                    continue;
                }
                Use::Ready(block) => block,
                Use::Decode(guard) => {
                    let area = b.xsize * b.ysize;
                    let mut pixels = vec![T::default(); bands.len() * area];
                    raster.read_into(bands, b, &mut pixels, (0, b.xsize, area))?;
                    let block: Block = Arc::new(pixels);
                    guard.publish(block.clone());
                    block
                }
            };
            match decoded.downcast_ref::<Vec<T>>() {
                Some(pixels) => copy_part(pixels, b, part, &mut data, w, bands.len()),
                None => raster.read_into(bands, part, &mut data, (to, w.xsize, plane))?,
            }
            self.used(id);
        }
        Array3::from_shape_vec((bands.len(), w.ysize, w.xsize), data).map_err(|e| {
            TilingError::Read {
                path: raster.path().to_path_buf(),
                band: bands.first().copied().unwrap_or(0),
                reason: e.to_string(),
            }
        })
    }
}

impl DecodeGuard<'_> {
    /// Makes the decoded block available to every window that needs it.
    fn publish(self, block: Block) {
        let shared = self.shared;
        shared.lock().slots.insert(self.id, Slot::Ready(block));
        shared.changed.notify_all();
        std::mem::forget(self);
    }
}

impl Drop for DecodeGuard<'_> {
    fn drop(&mut self) {
        let shared = self.shared;
        let mut st = shared.lock();
        if matches!(st.slots.get(&self.id), Some(Slot::Decoding)) {
            st.slots.remove(&self.id);
        }
        drop(st);
        shared.changed.notify_all();
    }
}

/// A [`SharedBlocks`] with the raster one thread reads through.
struct Through<'a>(&'a SharedBlocks, &'a Raster);

impl ReadTyped for Through<'_> {
    fn read_typed<T: Copy + GdalType + Default + Send + Sync + 'static>(
        &self,
        bands: &[usize],
        window: Window,
    ) -> Result<Array3<T>, TilingError> {
        self.0.read(self.1, bands, window)
    }
}

/// The blocks (column, row) of a grid of `(bw, bh)` blocks that window `w` touches.
fn blocks_of(w: Window, (bw, bh): (usize, usize)) -> impl Iterator<Item = (usize, usize)> {
    let empty = w.xsize == 0 || w.ysize == 0;
    let span = |off: usize, size: usize, b: usize| {
        if empty {
            0..0
        } else {
            off / b..(off + size).div_ceil(b)
        }
    };
    let (xs, ys) = (span(w.xoff, w.xsize, bw), span(w.yoff, w.ysize, bh));
    ys.flat_map(move |by| xs.clone().map(move |bx| (bx, by)))
}

/// The pixels in both `a` and `b` (which overlap).
fn intersection(a: Window, b: Window) -> Window {
    let (x0, y0) = (a.xoff.max(b.xoff), a.yoff.max(b.yoff));
    let x1 = (a.xoff + a.xsize).min(b.xoff + b.xsize);
    let y1 = (a.yoff + a.ysize).min(b.yoff + b.ysize);
    Window {
        xoff: x0,
        yoff: y0,
        xsize: x1.saturating_sub(x0),
        ysize: y1.saturating_sub(y0),
    }
}

/// Copies `part` from a decoded block (`block`'s pixels, band-sequential) into `data`, the
/// window `w`'s pixels.
fn copy_part<T: Copy>(
    pixels: &[T],
    block: Window,
    part: Window,
    data: &mut [T],
    w: Window,
    bands: usize,
) {
    let (block_plane, plane) = (block.xsize * block.ysize, w.xsize * w.ysize);
    for k in 0..bands {
        for y in part.yoff..part.yoff + part.ysize {
            let from = k * block_plane + (y - block.yoff) * block.xsize + (part.xoff - block.xoff);
            let to = k * plane + (y - w.yoff) * w.xsize + (part.xoff - w.xoff);
            data[to..to + part.xsize].copy_from_slice(&pixels[from..from + part.xsize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder for one test.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("shepseg-blocks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A tiled 3-band UInt16 GeoTIFF of `cols x rows` with 16x16 blocks, pixel values from
    /// their position.
    fn tiff(dir: &std::path::Path, cols: usize, rows: usize) -> std::path::PathBuf {
        let path = dir.join("blocks.tif");
        let drv = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
        let mut ds = drv
            .create_with_band_type_with_options::<u16, _>(
                &path,
                cols,
                rows,
                3,
                &gdal::raster::RasterCreationOptions::from_iter([
                    "TILED=YES",
                    "BLOCKXSIZE=16",
                    "BLOCKYSIZE=16",
                    "COMPRESS=DEFLATE",
                ]),
            )
            .unwrap();
        for b in 1..=3 {
            let data: Vec<u16> = (0..cols * rows)
                .map(|i| (i * 7 + b * 1000) as u16)
                .collect();
            let mut buf = gdal::raster::Buffer::new((cols, rows), data);
            ds.rasterband(b)
                .unwrap()
                .write((0, 0), (cols, rows), &mut buf)
                .unwrap();
        }
        ds.flush_cache().unwrap();
        path
    }

    #[test]
    fn shared_reads_equal_direct_reads_from_many_threads() {
        let dir = scratch("threads");
        let (cols, rows) = (101, 75);
        let path = tiff(&dir, cols, rows);
        let r = Raster::open(&path).unwrap();
        // Overlapping windows, as a seamless grid's tiles with their halo read them.
        let mut windows = Vec::new();
        for y0 in (0..rows).step_by(20) {
            for x0 in (0..cols).step_by(24) {
                let (x, y) = (x0.saturating_sub(2), y0.saturating_sub(2));
                windows.push(Window {
                    xoff: x,
                    yoff: y,
                    xsize: (x0 + 26).min(cols) - x,
                    ysize: (y0 + 22).min(rows) - y,
                });
            }
        }
        let bands = [1, 3];
        let shared = SharedBlocks::for_windows(&r, &bands, &windows).unwrap();
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let own = Raster::open(&path).unwrap();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&w) = windows.get(k) else { break };
                        let got = shared.read_stack(&own, &bands, w).unwrap();
                        assert_eq!(got, own.read_stack(&bands, w).unwrap(), "window {w:?}");
                    }
                });
            }
        });
        // Every shared block was dropped after its last window.
        let st = shared.lock();
        assert!(st.slots.is_empty() && st.left.is_empty());
        // A window read again (a retried tile) still reads right.
        drop(st);
        assert_eq!(
            shared.read_stack(&r, &bands, windows[5]).unwrap(),
            r.read_stack(&bands, windows[5]).unwrap()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_sharing_without_overlap() {
        let dir = scratch("apart");
        let path = tiff(&dir, 64, 32);
        let r = Raster::open(&path).unwrap();
        let windows = [
            Window {
                xoff: 0,
                yoff: 0,
                xsize: 32,
                ysize: 32,
            },
            Window {
                xoff: 32,
                yoff: 0,
                xsize: 32,
                ysize: 32,
            },
        ];
        assert!(SharedBlocks::for_windows(&r, &[1], &windows).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
