//! The progress bar of long runs, on stderr.

use indicatif::{ProgressBar, ProgressStyle};

/// A progress callback `(done, total)`: a bar counting `unit` (tiles, strips) on stderr when
/// `show`, created at the first call and cleared when done.
pub fn progress_bar(show: bool, unit: &'static str) -> impl FnMut(usize, usize) {
    let mut bar: Option<ProgressBar> = None;
    move |done, total| {
        if !show {
            return;
        }
        let b = bar.get_or_insert_with(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template(&format!(
                    "{{bar:40}} {{pos}}/{{len}} {unit}  elapsed {{elapsed}}  ETA {{eta}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        b.set_position(done as u64);
        if done == total {
            b.finish_and_clear();
        }
    }
}
