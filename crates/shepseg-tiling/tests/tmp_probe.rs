use shepseg_tiling::{BandStack, Raster};
#[test]
fn probe() {
    let r = Raster::open("../../testdata/reference/rgbn/rgbn.tif").unwrap();
    let BandStack::U8(img) = r.read_stack(&[1, 2, 3, 4], r.full_window()).unwrap() else {
        panic!()
    };
    let raw = std::fs::read("/tmp/rgbn.raw").unwrap();
    let d = img.iter().zip(raw.iter()).filter(|(a, b)| a != b).count();
    eprintln!("differences between gdal read and raw: {d}");
    let z = img
        .map_axis(ndarray::Axis(0), |px| px.iter().any(|&v| v == 0))
        .iter()
        .filter(|&&v| v)
        .count();
    eprintln!("orig zero pixels {z}");
}
