//! Image-sized working buffers, backed by transparent huge pages where Linux offers them on
//! request.
//!
//! The phases after prediction read per-pixel and per-segment arrays of tens of megabytes at
//! scattered places (segment sizes, sums, union-find links, neighbour lists). With 4 KiB pages
//! nearly every such read misses the TLB, and first touching the buffers costs one page fault
//! per 4 KiB. Most distributions set transparent huge pages to `madvise`, so they back only
//! the memory a program asks for: these helpers ask, for the buffers big enough to matter,
//! before their pages are first touched. Elsewhere (other systems, small buffers) they are
//! plain vectors. The advice changes no value, only how the memory is mapped.
//!
//! Also here: [`prefetch`], the cache hint that the scattered reads of elimination and of
//! Lloyd's assignment issue ahead of time.

/// A huge page (2 MiB on x86_64 and aarch64 with 4 KiB base pages).
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// Buffers smaller than this are left alone (a huge page partly used would waste memory).
#[cfg(target_os = "linux")]
const MIN_ADVISED: usize = 4 * HUGE_PAGE;

#[cfg(target_os = "linux")]
unsafe extern "C" {
    /// The C library's `madvise(2)` (every Linux Rust program links the C library).
    fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: std::ffi::c_int)
        -> std::ffi::c_int;
}

/// `MADV_HUGEPAGE` (the same value on every Linux architecture).
#[cfg(target_os = "linux")]
const MADV_HUGEPAGE: std::ffi::c_int = 14;

/// Asks the OS to back the whole huge pages inside `v`'s allocated capacity with huge pages
/// when they are first touched. A hint: failure (an older kernel, huge pages disabled) only
/// leaves the ordinary pages.
pub(crate) fn advise_huge<T>(v: &mut Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if bytes < MIN_ADVISED {
            return;
        }
        let start = v.as_mut_ptr() as usize;
        let lo = start.next_multiple_of(HUGE_PAGE);
        let hi = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
        if hi > lo {
            // SAFETY: the range lies inside `v`'s live allocation, and MADV_HUGEPAGE changes
            // neither its contents nor its validity, only how it is backed.
            unsafe { madvise(lo as *mut std::ffi::c_void, hi - lo, MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// `n` zeros, advised onto huge pages. The allocator hands over zeroed memory it has not
/// touched (`vec!` of a zero value asks for it), so a page is only mapped once it is used.
pub(crate) fn zeroed<T: Copy + Default>(n: usize) -> Vec<T> {
    let mut v = vec![T::default(); n];
    advise_huge(&mut v);
    v
}

/// `0, 1, ..., n - 1`, advised onto huge pages before they are written (the identity of a
/// union-find or a linked list).
pub(crate) fn identity(n: usize) -> Vec<u32> {
    let mut v = Vec::with_capacity(n);
    advise_huge(&mut v);
    v.extend(0..n as u32);
    v
}

/// A hint to load the cache line of `slice[i]` (nothing if `i` is out of range).
#[inline(always)]
pub(crate) fn prefetch<T>(slice: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(r) = slice.get(i) {
        // SAFETY: a prefetch only hints the cache; SSE is part of every x86_64 CPU, and the
        // pointer comes from a live reference.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (r as *const T).cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, i);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_give_the_plain_values() {
        let n = 5 << 20; // past the advised size
        assert!(zeroed::<u32>(n).iter().all(|&v| v == 0));
        assert!(zeroed::<usize>(n).iter().all(|&v| v == 0));
        assert!(zeroed::<f32>(3).iter().all(|&v| v == 0.0));
        let id = identity(n);
        assert_eq!(id.len(), n);
        assert!(id.iter().enumerate().all(|(i, &v)| v as usize == i));
    }
}
