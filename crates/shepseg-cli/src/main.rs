//! `shepseg`: segment rasters with the Shepherd algorithm, from the command line.
//!
//! `shepseg segment INPUT OUTPUT [options]` runs pyshepseg's tiled segmentation: one k-means
//! model for the whole raster, overlapping tiles segmented and stitched into one UInt32 raster
//! with a raster attribute table.

mod executor;
mod fargate_cleanup;
mod flags;
mod interrupt;
mod polygonize;
mod progress;
mod report;
mod segment;
mod stats;
mod worker;

use clap::{Parser, Subcommand};

/// Tiles allocate and free arrays of hundreds of megabytes; glibc returns each to the system
/// and page-faults it back in for the next tile, which cost about a tenth of the run time.
/// mimalloc keeps and reuses that memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. mimalloc asks for them on its arenas,
/// and the kernel then zeroes 2 MiB at every first touch of a tile's fresh arrays: a fifth of a
/// segmentation's CPU time, measured (`clear_page_erms`), and 3.5 s of system time where 1.4 s
/// remain without them on the 10000x10000 benchmark.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches only this process's flags;
    // if the kernel refuses, nothing changes.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// mimalloc's `purge_delay` option (its index in mimalloc 2's and 3's `mi_option_t`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Has mimalloc give freed memory back to the system 100 ms after it is freed instead of its
/// default 1 s. The tiles free hundreds of megabytes that the seamless join then allocates
/// again in other shapes, and within a second both counted: 1.3-1.5 GiB peak RSS on the
/// 10000x10000 benchmark at `-w 2`, 1.15 GiB with 100 ms, wall time within the noise. A
/// delay other than the default set through `MIMALLOC_PURGE_DELAY` is left alone.
fn shorter_purge_delay() {
    // SAFETY: reads and sets one of mimalloc's integer options, which it synchronises.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == 1000 {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 100);
        }
    }
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
    /// Write a segmentation's segments as polygons (one feature per segment, with its
    /// attribute-table columns) to a vector file.
    Polygonize(Box<polygonize::PolygonizeArgs>),
    /// Remove what Fargate jobs killed without their cleanup (SIGKILL) left in the AWS
    /// account: shepseg's tasks, task definitions, secret parameters and private clusters.
    FargateCleanup(fargate_cleanup::CleanupArgs),
}

fn main() {
    no_transparent_huge_pages();
    shorter_purge_delay();
    let cli = parse_args();
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
        Command::Polygonize(args) => polygonize::run(&args),
        Command::FargateCleanup(args) => fargate_cleanup::run(&args),
    };
    if interrupt::interrupted() {
        eprintln!(
            "shepseg: interrupted; workers stopped, no output written{}",
            interrupt::kept_note()
        );
        std::process::exit(130);
    }
    if let Err(e) = result {
        // One line: the whole chain of causes, outermost first, each on one line (messages
        // from GDAL or the system can hold or end with line breaks).
        let msg: Vec<String> = e
            .chain()
            .map(|c| {
                let text = c.to_string();
                let lines: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                lines.join(" ")
            })
            .collect();
        eprintln!("shepseg: error: {}", msg.join(": "));
        std::process::exit(1);
    }
}

/// The command line, or exit: help and version as clap prints them, a usage error on one
/// line naming the option (clap's own adds a tip and a usage block), exit status 2.
fn parse_args() -> Cli {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("invalid arguments");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                eprintln!("shepseg: error: {first} (see --help)");
                std::process::exit(2);
            }
        },
    }
}
