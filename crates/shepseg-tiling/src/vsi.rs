//! Files through GDAL's virtual file system (`/vsis3/`, `/vsimem/`, local paths alike).

use std::path::Path;

/// A file's size in bytes and modification time (seconds since 1970), or `None` if it does
/// not exist or cannot be reached.
pub fn stat(path: &Path) -> Option<(u64, i64)> {
    let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).ok()?;
    // gdal-sys declares `VSIStatBufL` opaque (zero-sized), but GDAL fills a whole
    // `struct stat64`: the buffer must be libc's.
    let mut st = std::mem::MaybeUninit::<libc::stat64>::zeroed();
    // SAFETY: a NUL-terminated path and a buffer of the size GDAL writes; it is read only
    // when GDAL reports success (and zeroed before in any case).
    unsafe {
        if gdal_sys::VSIStatL(c.as_ptr(), st.as_mut_ptr().cast()) != 0 {
            return None;
        }
        let st = st.assume_init();
        Some((st.st_size as u64, st.st_mtime))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_gives_size_and_time_or_none() {
        let dir = std::env::temp_dir().join(format!("shepseg-vsi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f.bin");
        std::fs::write(&f, [1u8; 1234]).unwrap();
        let (size, mtime) = super::stat(&f).unwrap();
        assert_eq!(size, 1234);
        assert!(mtime > 1_600_000_000);
        assert!(super::stat(&dir.join("missing")).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
