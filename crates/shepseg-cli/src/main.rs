//! `shepseg`: segment rasters with the Shepherd algorithm, from the command line.
//!
//! `shepseg segment INPUT OUTPUT [options]` runs pyshepseg's tiled segmentation: one k-means
//! model for the whole raster, overlapping tiles segmented and stitched into one UInt32 raster
//! with a raster attribute table.

mod interrupt;
mod segment;
mod stats;
mod timings;
mod worker;

use clap::{Parser, Subcommand};

/// Tiles allocate and free arrays of hundreds of megabytes; glibc returns each to the system
/// and page-faults it back in for the next tile, which cost about a tenth of the run time.
/// mimalloc keeps and reuses that memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_e` (mimalloc.h, v3), which
/// libmimalloc-sys does not name. The test `purge_delay_is_the_option_we_set` pins it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to hand freed memory back to the system. By default it does so a
/// second after the free, about when the next tile allocates the same amount again, which then
/// costs a page fault and a page of zeroes per 4 KiB (a third of the run's page faults and about
/// a second of system time on the 10000x10000 benchmark). Peak memory is unchanged: the process
/// keeps what it already held at its peak.
fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores an integer in mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// The command line.
#[derive(Parser)]
#[command(
    name = "shepseg",
    version,
    about = "Shepherd segmentation of large rasters"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Segment INPUT into OUTPUT (tiled, pyshepseg's doTiledShepherdSegmentation).
    Segment(Box<segment::SegmentArgs>),
    /// Join a coordinator as a tile worker (started by `--executor processes|fargate`; the job
    /// secret comes in the SHEPSEG_WORKER_SECRET environment variable).
    Worker(worker::WorkerArgs),
    /// Per-segment and spatial statistics of IMAGE's bands into SEGFILE's attribute table.
    Stats(Box<stats::StatsArgs>),
    /// Cut a window (or mask) of a segmentation into a new one, renumbered, with its table.
    Subset(Box<stats::SubsetArgs>),
}

fn main() {
    keep_freed_memory();
    let cli = Cli::parse();
    // GDAL's own messages would add lines to ours; errors reach the user through shepseg's
    // one-line report, warnings only with SHEPSEG_GDAL_WARNINGS set.
    let show_warnings = std::env::var_os("SHEPSEG_GDAL_WARNINGS").is_some();
    gdal::config::set_error_handler(move |class, _, msg| {
        if show_warnings && class == gdal::errors::CplErrType::Warning {
            eprintln!("GDAL warning: {msg}");
        }
    });
    let result = match cli.command {
        Command::Segment(args) => segment::run(&args),
        Command::Worker(args) => worker::run(&args),
        Command::Stats(args) => stats::run_stats(&args),
        Command::Subset(args) => stats::run_subset(&args),
    };
    if interrupt::interrupted() {
        eprintln!("shepseg: interrupted; workers stopped, no output written");
        std::process::exit(130);
    }
    if let Err(e) = result {
        // One line: the whole chain of causes, outermost first.
        let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("shepseg: error: {}", msg.join(": "));
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::{keep_freed_memory, MI_OPTION_PURGE_DELAY};

    #[test]
    fn purge_delay_is_the_option_we_set() {
        // SAFETY: reads an integer from mimalloc's option table.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // mimalloc v3's default purge delay (options.c); no other option defaults to 1000,
            // so a renumbered enum fails here.
            assert_eq!(get(), 1000);
        }
        keep_freed_memory();
        assert_eq!(get(), -1);
    }
}
