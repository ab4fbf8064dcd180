//! Label images packed for travel or for waiting: `u32` little-endian, LZ4-compressed. Labels
//! come in runs, so a packed image is a fraction of its size: remote workers send tiles so,
//! and the seamless pipeline holds them so until the join has numbered their segments.

/// A label image packed, rows in order.
pub fn pack_image(img: &ndarray::Array2<u32>) -> Vec<u8> {
    match img.as_slice() {
        Some(labels) => pack_labels(labels),
        None => pack_labels(&img.iter().copied().collect::<Vec<_>>()),
    }
}

/// `labels` packed.
pub fn pack_labels(labels: &[u32]) -> Vec<u8> {
    let mut bytes = vec![0u8; labels.len() * 4];
    for (b, v) in bytes.chunks_exact_mut(4).zip(labels) {
        b.copy_from_slice(&v.to_le_bytes());
    }
    lz4_flex::compress(&bytes)
}

/// The `n` labels packed in `packed`; `None` if it does not hold exactly `n` (corrupt, or
/// another image's).
pub fn unpack_labels(packed: &[u8], n: usize) -> Option<Vec<u32>> {
    let bytes = lz4_flex::decompress(packed, n.checked_mul(4)?).ok()?;
    if bytes.len() != n * 4 {
        return None;
    }
    let mut labels = vec![0u32; n];
    for (l, c) in labels.iter_mut().zip(bytes.chunks_exact(4)) {
        *l = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_pack_and_unpack() {
        let labels: Vec<u32> = (0..1000).map(|i| i / 7 + (i % 3) * 1_000_000).collect();
        let packed = pack_labels(&labels);
        assert_eq!(unpack_labels(&packed, 1000), Some(labels));
        assert_eq!(unpack_labels(&packed, 999), None);
        assert_eq!(unpack_labels(&packed[..packed.len() / 2], 1000), None);
    }
}
