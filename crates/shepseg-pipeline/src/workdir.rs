//! A job's work directory: what the job is (its settings and input, in `job.json`), its k-means
//! model (`model.bin`) and every finished tile (`tile-N.bin`), so that a job whose coordinator
//! died (SIGKILL, a lost machine, Ctrl-C) resumes without segmenting those tiles again.
//!
//! The directory is any GDAL path: a local folder, or a prefix on object storage
//! (`/vsis3/…`). Local files are written to a temporary name and renamed into place, objects
//! are written whole, so a file under its final name is complete; each tile file also carries
//! a checksum, and a tile whose file does not check out is segmented again. A `lock` file names
//! the process using the directory: a second coordinator is refused while that process lives,
//! and takes over once it is gone. (On object storage the lock is checked, then written: two
//! coordinators started in the same instant could both pass.)

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shepseg_core::seamless::TilePart;
use shepseg_core::{KMeansModel, SegmentParams};
use shepseg_tiling::{vsi, Raster, TileGrid, Window};

use crate::error::PipelineError;

const JOB_FILE: &str = "job.json";
const MODEL_FILE: &str = "model.bin";
const LOCK_FILE: &str = "lock";
const TILE_MAGIC: &[u8; 8] = b"SHEPTILE";
/// Version of the files' layout; a directory of another version is not resumed.
const FORMAT: u32 = 2;

/// The default work directory of `output`: a hidden folder beside it (on object storage, a
/// hidden prefix beside it). `None` for `/vsimem/` outputs, which die with the process.
pub fn default_work_dir(output: &Path) -> Option<PathBuf> {
    if output.to_string_lossy().starts_with("/vsimem/") {
        return None;
    }
    let name = output.file_name()?.to_string_lossy().into_owned();
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = format!(".{name}.shepseg-work");
    Some(parent.map_or_else(|| PathBuf::from(&dir), |p| p.join(&dir)))
}

/// Everything that decides a job's tiles, as `job.json` records it. Floating-point values
/// are kept as their `{:?}` text, so that NaN null values and exact decimals compare as they
/// are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobSettings {
    format: u32,
    output: String,
    input: String,
    cols: usize,
    rows: usize,
    geo_transform: Option<String>,
    band_types: Vec<String>,
    /// Size in bytes and modification time (seconds) of the input file, where it has them.
    file_size: Option<u64>,
    modified: Option<i64>,
    bands: Vec<usize>,
    null_value: Option<String>,
    tile_size: usize,
    subsample_pcnt: Option<String>,
    params: serde_json::Value,
}

impl JobSettings {
    /// The settings of a job on `raster` (at `input`) into `output`.
    #[allow(clippy::too_many_arguments)] // one per setting recorded
    pub fn new(
        input: &Path,
        output: &Path,
        raster: &Raster,
        bands: &[usize],
        null_value: Option<f64>,
        tile_size: usize,
        subsample_pcnt: Option<f64>,
        params: &SegmentParams,
    ) -> Self {
        let ds = raster.dataset();
        let (cols, rows) = raster.size();
        let band_types = (1..=raster.band_count())
            .map(|b| {
                ds.rasterband(b)
                    .map(|band| band.band_type().name())
                    .unwrap_or_default()
            })
            .collect();
        let (file_size, modified) = shepseg_tiling::vsi::stat(input).unzip();
        Self {
            format: FORMAT,
            output: output.to_string_lossy().into_owned(),
            input: input.to_string_lossy().into_owned(),
            cols,
            rows,
            geo_transform: ds.geo_transform().ok().map(|g| format!("{g:?}")),
            band_types,
            file_size,
            modified,
            bands: bands.to_vec(),
            null_value: null_value.map(|v| format!("{v:?}")),
            tile_size,
            subsample_pcnt: subsample_pcnt.map(|v| format!("{v:?}")),
            params: serde_json::to_value(params).unwrap_or_default(),
        }
    }

    /// What differs between the job that made a work directory (`self`) and this one, in a
    /// few words; `None` if nothing does.
    fn difference(&self, now: &JobSettings) -> Option<String> {
        let changed = |what: &str, was: String, is: String| {
            Some(format!("{what} differs ({was} then, {is} now)"))
        };
        if self.format != now.format {
            return Some(format!(
                "it was written by another version of shepseg (format {} then, {} now)",
                self.format, now.format
            ));
        }
        if self.output != now.output {
            return changed("the output", self.output.clone(), now.output.clone());
        }
        if self.input != now.input {
            return changed("the input", self.input.clone(), now.input.clone());
        }
        if (self.cols, self.rows) != (now.cols, now.rows) {
            return changed(
                "the input's size",
                format!("{} x {}", self.cols, self.rows),
                format!("{} x {}", now.cols, now.rows),
            );
        }
        if self.geo_transform != now.geo_transform {
            return Some("the input's georeferencing differs: it changed".into());
        }
        if self.band_types != now.band_types {
            return changed(
                "the input's band types",
                self.band_types.join(","),
                now.band_types.join(","),
            );
        }
        if self.file_size != now.file_size || self.modified != now.modified {
            return Some("the input file differs: its size or modification time changed".into());
        }
        let list = |v: &[usize]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        if self.bands != now.bands {
            return changed("the bands", list(&self.bands), list(&now.bands));
        }
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        if self.null_value != now.null_value {
            return changed(
                "the null value",
                opt(&self.null_value),
                opt(&now.null_value),
            );
        }
        if self.tile_size != now.tile_size {
            return changed(
                "the tile size",
                self.tile_size.to_string(),
                now.tile_size.to_string(),
            );
        }
        if self.subsample_pcnt != now.subsample_pcnt {
            return changed(
                "the k-means subsample percentage",
                opt(&self.subsample_pcnt),
                opt(&now.subsample_pcnt),
            );
        }
        if let (Some(was), Some(is)) = (self.params.as_object(), now.params.as_object()) {
            for (key, v) in was {
                let w = is.get(key).cloned().unwrap_or_default();
                if *v != w {
                    return changed(&format!("parameter {key}"), v.to_string(), w.to_string());
                }
            }
        }
        (self.params != now.params).then(|| "the segmentation parameters differ".into())
    }
}

/// A finished tile as its file holds it.
#[derive(Serialize, Deserialize)]
struct TileRecord {
    index: u32,
    window: [u64; 4],
    /// The node image, packed ([`shepseg_tiling::packed::pack_image`]).
    image: Vec<u8>,
    part: TilePart,
    max_spectral_diff: f64,
}

/// A tile read back from the work directory.
pub(crate) struct ResumedTile {
    pub index: usize,
    pub image: Vec<u8>,
    pub part: TilePart,
    pub max_spectral_diff: f64,
}

/// What opening a work directory found.
pub(crate) struct Opened {
    /// The directory, locked.
    pub dir: WorkDir,
    /// The model the tiles were segmented with, and the percentage of pixels it was fitted
    /// on, when resuming.
    pub model: Option<(KMeansModel, Option<f64>)>,
    /// The tiles already finished, when resuming.
    pub tiles: Vec<ResumedTile>,
    /// `--resume` was asked for but there was nothing to resume.
    pub started_afresh: bool,
}

/// An open, locked work directory; see the module docs.
pub(crate) struct WorkDir {
    path: PathBuf,
}

fn wd_err(path: &Path, message: impl std::fmt::Display) -> PipelineError {
    PipelineError::WorkDir {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// A 64-bit checksum, eight bytes at a time (FNV-1a's constants on words, then a final mix):
/// enough to tell a complete tile file from a damaged one, at memory speed.
fn checksum(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(a))
            .wrapping_mul(PRIME)
            .rotate_left(29);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// This process as the lock file names it.
fn me() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!("{} {host}", std::process::id())
}

/// Whether the process a lock file names is gone (on this host, where that can be told).
fn holder_gone(holder: &str) -> bool {
    let mut it = holder.split_whitespace();
    let (Some(pid), host) = (it.next(), it.next().unwrap_or_default()) else {
        return true;
    };
    let my_host = me()
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    host == my_host && !Path::new("/proc").join(pid).exists()
}

impl WorkDir {
    /// Opens the work directory at `path` for a job with `settings` on `grid`: with `resume`,
    /// checks that it belongs to the same job and reads its model and finished tiles; without,
    /// clears what an earlier run left there. Locks it either way.
    pub fn open(
        path: &Path,
        settings: &JobSettings,
        grid: &TileGrid,
        resume: bool,
    ) -> Result<Opened, PipelineError> {
        let dir = WorkDir {
            path: path.to_path_buf(),
        };
        if !dir.is_virtual() {
            if path.exists() && !path.is_dir() {
                return Err(wd_err(path, "exists and is not a folder"));
            }
            std::fs::create_dir_all(path).map_err(|e| wd_err(path, e))?;
        }
        let existed = dir.exists(JOB_FILE);
        dir.lock()?;
        let mut opened = Opened {
            dir,
            model: None,
            tiles: Vec::new(),
            started_afresh: resume && !existed,
        };
        if existed {
            let d = &opened.dir;
            let text = d.read(JOB_FILE).unwrap_or_default();
            let Ok(was) = serde_json::from_slice::<JobSettings>(&text) else {
                d.unlock();
                return Err(wd_err(path, "holds no shepseg job (job.json unreadable)"));
            };
            // Another job's directory is never cleared: its own --resume may still need it.
            if was.output != settings.output || was.input != settings.input {
                d.unlock();
                return Err(PipelineError::WorkDirOtherJob {
                    path: path.to_path_buf(),
                    input: was.input,
                    output: was.output,
                });
            }
            if resume {
                if let Some(what) = was.difference(settings) {
                    d.unlock();
                    return Err(PipelineError::ResumeMismatch {
                        path: path.to_path_buf(),
                        what,
                    });
                }
                opened.model = d
                    .read(MODEL_FILE)
                    .and_then(|b| postcard::from_bytes::<(KMeansModel, Option<f64>)>(&b).ok());
                if opened.model.is_some() {
                    opened.tiles = d.read_tiles(grid);
                }
                return Ok(opened);
            }
        }
        opened.dir.clear()?;
        Ok(opened)
    }

    fn is_virtual(&self) -> bool {
        vsi::is_virtual(&self.path)
    }

    /// The contents of `name`, if it is there (GDAL reads local paths and `/vsi…` alike).
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        vsi::read_all(&self.path.join(name)).ok()
    }

    fn exists(&self, name: &str) -> bool {
        vsi::exists(&self.path.join(name))
    }

    fn delete(&self, name: &str) {
        vsi::unlink(&self.path.join(name));
    }

    /// The names of the files in it.
    fn names(&self) -> Vec<String> {
        vsi::list(&self.path)
    }

    fn lock(&self) -> Result<(), PipelineError> {
        let lock = self.path.join(LOCK_FILE);
        for _ in 0..2 {
            let created = if self.is_virtual() {
                if self.exists(LOCK_FILE) {
                    Err(std::io::ErrorKind::AlreadyExists.into())
                } else {
                    vsi::write_all(&lock, me().as_bytes()).map_err(std::io::Error::other)
                }
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&lock)
                    .and_then(|mut f| f.write_all(me().as_bytes()))
            };
            match created {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = self
                        .read(LOCK_FILE)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    if !holder_gone(&holder) {
                        let mut it = holder.split_whitespace();
                        return Err(PipelineError::WorkDirLocked {
                            path: self.path.clone(),
                            pid: it.next().unwrap_or("?").to_string(),
                            host: it.next().unwrap_or("?").to_string(),
                        });
                    }
                    // Its coordinator died: take over.
                    self.delete(LOCK_FILE);
                }
                Err(e) => return Err(wd_err(&self.path, e)),
            }
        }
        Err(wd_err(&self.path, "cannot take its lock"))
    }

    /// Releases the lock, keeping everything else.
    pub fn unlock(&self) {
        self.delete(LOCK_FILE);
    }

    /// Removes every file of an earlier job (the lock stays).
    fn clear(&self) -> Result<(), PipelineError> {
        for name in self.names() {
            if name == JOB_FILE
                || name == MODEL_FILE
                || name.starts_with("tile-")
                || name.ends_with(".tmp")
            {
                self.delete(&name);
            }
        }
        Ok(())
    }

    /// Writes `bytes` to `name` in the directory, complete or not at all.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), PipelineError> {
        if self.is_virtual() {
            return vsi::write_all(&self.path.join(name), bytes).map_err(|e| wd_err(&self.path, e));
        }
        let tmp = self.path.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes).map_err(|e| wd_err(&self.path, e))?;
        std::fs::rename(&tmp, self.path.join(name)).map_err(|e| wd_err(&self.path, e))
    }

    /// Records the job's settings and model (with the percentage of pixels it was fitted on);
    /// the tiles come after.
    pub fn start(
        &self,
        settings: &JobSettings,
        model: &KMeansModel,
        subsample_pcnt: Option<f64>,
    ) -> Result<(), PipelineError> {
        let model =
            postcard::to_stdvec(&(model, subsample_pcnt)).map_err(|e| wd_err(&self.path, e))?;
        self.put(MODEL_FILE, &model)?;
        let text = serde_json::to_string_pretty(settings).map_err(|e| wd_err(&self.path, e))?;
        self.put(JOB_FILE, text.as_bytes())
    }

    /// Records finished tile `index` (its window, packed node image and table).
    pub fn save_tile(
        &self,
        index: usize,
        window: Window,
        image: &[u8],
        part: &TilePart,
        max_spectral_diff: f64,
    ) -> Result<(), PipelineError> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            index: u32,
            window: [u64; 4],
            image: &'a [u8],
            part: &'a TilePart,
            max_spectral_diff: f64,
        }
        let payload = postcard::to_stdvec(&Borrowed {
            index: index as u32,
            window: window_key(window),
            image,
            part,
            max_spectral_diff,
        })
        .map_err(|e| wd_err(&self.path, e))?;
        let mut bytes = Vec::with_capacity(payload.len() + 20);
        bytes.extend_from_slice(TILE_MAGIC);
        bytes.extend_from_slice(&FORMAT.to_le_bytes());
        bytes.extend_from_slice(&checksum(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        self.put(&format!("tile-{index}.bin"), &bytes)
    }

    /// The finished tiles whose files check out, by index.
    fn read_tiles(&self, grid: &TileGrid) -> Vec<ResumedTile> {
        let mut out = BTreeMap::new();
        for (index, tile) in grid.tiles().iter().enumerate() {
            let Some(bytes) = self.read(&format!("tile-{index}.bin")) else {
                continue;
            };
            if bytes.len() < 20
                || &bytes[..8] != TILE_MAGIC
                || bytes[8..12] != FORMAT.to_le_bytes()
                || bytes[12..20] != checksum(&bytes[20..]).to_le_bytes()
            {
                continue;
            }
            let Ok(r) = postcard::from_bytes::<TileRecord>(&bytes[20..]) else {
                continue;
            };
            if r.index as usize != index || r.window != window_key(tile.window) {
                continue;
            }
            out.insert(
                index,
                ResumedTile {
                    index,
                    image: r.image,
                    part: r.part,
                    max_spectral_diff: r.max_spectral_diff,
                },
            );
        }
        out.into_values().collect()
    }

    /// Removes the job's files, and the directory if nothing else is in it (a folder the
    /// user named may hold other things): the job is complete.
    pub fn remove(self) {
        let _ = self.clear();
        self.unlock();
        if !self.is_virtual() {
            let _ = std::fs::remove_dir(&self.path);
        }
    }

    /// On a failed job: kept, unlocked, if it holds finished tiles; removed otherwise.
    pub fn keep_or_remove(self) {
        if self.has_tiles() {
            self.unlock();
        } else {
            self.remove();
        }
    }

    /// Whether it holds any finished tile.
    pub fn has_tiles(&self) -> bool {
        finished_tiles(&self.path) > 0
    }
}

/// The finished tiles in the work directory at `path`.
pub fn finished_tiles(path: &Path) -> usize {
    WorkDir {
        path: path.to_path_buf(),
    }
    .names()
    .iter()
    .filter(|n| n.starts_with("tile-") && n.ends_with(".bin"))
    .count()
}

/// For a process about to end without cleaning up (an interrupt): releases the work
/// directory at `path` and says whether it holds a job to resume; one that holds none (the
/// job had not started) is removed.
pub fn release(path: &Path) -> bool {
    let dir = WorkDir {
        path: path.to_path_buf(),
    };
    if dir.exists(JOB_FILE) {
        dir.unlock();
        true
    } else {
        dir.remove();
        false
    }
}

fn window_key(w: Window) -> [u64; 4] {
    [w.xoff as u64, w.yoff as u64, w.xsize as u64, w.ysize as u64]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_sees_any_changed_byte_and_length() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let h = checksum(&data);
        for i in [0, 7, 8, 500, 995, 999] {
            let mut d = data.clone();
            d[i] ^= 1;
            assert_ne!(checksum(&d), h, "byte {i}");
        }
        assert_ne!(checksum(&data[..999]), h);
        let mut zeros = data.clone();
        zeros[992..].fill(0);
        assert_ne!(checksum(&zeros), h);
    }

    #[test]
    fn default_work_dir_is_hidden_beside_the_output() {
        assert_eq!(
            default_work_dir(Path::new("/data/out/seg.tif")),
            Some(PathBuf::from("/data/out/.seg.tif.shepseg-work"))
        );
        assert_eq!(
            default_work_dir(Path::new("seg.tif")),
            Some(PathBuf::from(".seg.tif.shepseg-work"))
        );
        assert_eq!(
            default_work_dir(Path::new("/vsis3/b/seg.tif")),
            Some(PathBuf::from("/vsis3/b/.seg.tif.shepseg-work"))
        );
        assert_eq!(default_work_dir(Path::new("/vsimem/seg.tif")), None);
    }
}
