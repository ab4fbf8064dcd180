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

/// Whether something is at `path`: a local file or folder, or (for `/vsi…` paths) what
/// GDAL can stat there.
pub fn exists(path: &Path) -> bool {
    if is_virtual(path) {
        stat(path).is_some()
    } else {
        path.exists()
    }
}

/// The sidecar of `path` with extension `ext` (`.aux.xml`, `.ovr`): `path` with `ext` appended.
pub fn sidecar(path: &Path, ext: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(ext);
    s.into()
}

/// Whether `path` is one of GDAL's virtual paths (`/vsis3/…`, `/vsimem/…`).
pub fn is_virtual(path: &Path) -> bool {
    path.to_string_lossy().starts_with("/vsi")
}

/// Copies local file `from` to `to` through GDAL's virtual file system (for `/vsis3/`, one
/// upload, completed when the file is closed: a failed copy leaves no object). The error
/// is GDAL's message, or the system's.
pub fn upload(from: &Path, to: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut src = std::fs::File::open(from).map_err(|e| e.to_string())?;
    let c = std::ffi::CString::new(to.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    let message = |fallback: &str| crate::last_gdal_message().unwrap_or_else(|| fallback.into());
    // SAFETY: NUL-terminated path and mode; the handle is closed below.
    let fp = unsafe { gdal_sys::VSIFOpenL(c.as_ptr(), c"wb".as_ptr()) };
    if fp.is_null() {
        return Err(message("cannot open for writing"));
    }
    let mut buf = vec![0u8; 8 << 20];
    let mut result = Ok(());
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        };
        // SAFETY: `buf` holds `n` bytes; `fp` is open.
        let wrote = unsafe { gdal_sys::VSIFWriteL(buf.as_ptr().cast(), 1, n, fp) };
        if wrote != n {
            result = Err(message("write failed"));
            break;
        }
    }
    // SAFETY: `fp` is open; closing flushes (for S3, completes the upload).
    if unsafe { gdal_sys::VSIFCloseL(fp) } != 0 && result.is_ok() {
        result = Err(message("upload failed"));
    }
    forget_cached(to);
    result
}

/// Drops what GDAL remembers of `path`'s folder on network file systems (its listing, the
/// files' sizes): after a write, a later open in this process must see the new file.
pub fn forget_cached(path: &Path) {
    forget_prefix(path.parent().unwrap_or(path));
}

/// Drops what GDAL remembers of every path starting with `prefix`.
fn forget_prefix(prefix: &Path) {
    if let Ok(c) = std::ffi::CString::new(prefix.to_string_lossy().as_bytes()) {
        // SAFETY: a NUL-terminated prefix.
        unsafe { gdal_sys::VSICurlPartialClearCache(c.as_ptr()) };
    }
}

/// Copies `from` (any GDAL path) to local file `to` through GDAL's virtual file system.
pub fn download(from: &Path, to: &Path) -> Result<(), String> {
    use std::io::Write;
    let c = std::ffi::CString::new(from.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    let message = |fallback: &str| crate::last_gdal_message().unwrap_or_else(|| fallback.into());
    // SAFETY: NUL-terminated path and mode; the handle is closed below.
    let fp = unsafe { gdal_sys::VSIFOpenL(c.as_ptr(), c"rb".as_ptr()) };
    if fp.is_null() {
        return Err(message("cannot open for reading"));
    }
    let mut result = std::fs::File::create(to).map_err(|e| e.to_string());
    let mut buf = vec![0u8; 8 << 20];
    while let Ok(file) = result.as_mut() {
        // SAFETY: `buf` has room for `buf.len()` bytes; `fp` is open.
        let n = unsafe { gdal_sys::VSIFReadL(buf.as_mut_ptr().cast(), 1, buf.len(), fp) };
        if n == 0 {
            break;
        }
        if let Err(e) = file.write_all(&buf[..n]) {
            result = Err(e.to_string());
        }
    }
    // SAFETY: `fp` is open.
    unsafe { gdal_sys::VSIFCloseL(fp) };
    result.map(|_| ())
}

/// The whole of `path` (any GDAL path), or why not.
pub fn read_all(path: &Path) -> Result<Vec<u8>, String> {
    let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: NUL-terminated path and mode; the handle is closed below.
    let fp = unsafe { gdal_sys::VSIFOpenL(c.as_ptr(), c"rb".as_ptr()) };
    if fp.is_null() {
        return Err(crate::last_gdal_message().unwrap_or_else(|| "cannot open for reading".into()));
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        // SAFETY: `buf` has room for `buf.len()` bytes; `fp` is open.
        let n = unsafe { gdal_sys::VSIFReadL(buf.as_mut_ptr().cast(), 1, buf.len(), fp) };
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    // SAFETY: `fp` is open.
    unsafe { gdal_sys::VSIFCloseL(fp) };
    Ok(out)
}

/// Writes `bytes` as the whole of `path` (any GDAL path; on S3 one object, there complete or
/// not at all).
pub fn write_all(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    let message = |fallback: &str| crate::last_gdal_message().unwrap_or_else(|| fallback.into());
    // SAFETY: NUL-terminated path and mode; the handle is closed below.
    let fp = unsafe { gdal_sys::VSIFOpenL(c.as_ptr(), c"wb".as_ptr()) };
    if fp.is_null() {
        return Err(message("cannot open for writing"));
    }
    // SAFETY: `bytes` holds `bytes.len()` bytes; `fp` is open.
    let wrote = unsafe { gdal_sys::VSIFWriteL(bytes.as_ptr().cast(), 1, bytes.len(), fp) };
    // SAFETY: `fp` is open; closing completes the write (for S3, the upload).
    let closed = unsafe { gdal_sys::VSIFCloseL(fp) } == 0;
    forget_cached(path);
    if wrote != bytes.len() || !closed {
        return Err(message("write failed"));
    }
    Ok(())
}

/// The names in folder `dir` (any GDAL path; for object stores, the keys under its prefix),
/// as they are now: not from a listing GDAL cached earlier.
pub fn list(dir: &Path) -> Vec<String> {
    forget_prefix(dir);
    let Ok(c) = std::ffi::CString::new(dir.to_string_lossy().as_bytes()) else {
        return Vec::new();
    };
    // SAFETY: a NUL-terminated path; the list GDAL returns is read, then freed with CSLDestroy.
    unsafe {
        let list = gdal_sys::VSIReadDir(c.as_ptr());
        if list.is_null() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let p = *list.add(i);
            if p.is_null() {
                break;
            }
            let name = std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
            if name != "." && name != ".." {
                out.push(name);
            }
            i += 1;
        }
        gdal_sys::CSLDestroy(list);
        out
    }
}

/// Deletes `path` through GDAL's virtual file system; whether it did.
pub fn unlink(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.to_string_lossy().as_bytes()) else {
        return false;
    };
    // SAFETY: a NUL-terminated path.
    let done = unsafe { gdal_sys::VSIUnlink(c.as_ptr()) == 0 };
    forget_cached(path);
    done
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
