//! `shepseg`: the command-line tool.
fn main() {
    println!("shepseg {}", env!("CARGO_PKG_VERSION"));
}
