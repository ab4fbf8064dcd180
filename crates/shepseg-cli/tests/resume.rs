//! Resumable jobs for real: a coordinator SIGKILLed or interrupted part-way, then `shepseg
//! segment ... --resume` with the threads and processes executors gives the uninterrupted
//! output byte for byte; a changed parameter or input is refused in one line; a second
//! coordinator is kept out of a work directory in use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{
    assert_same_files, busy_work_dir, noisy_crop, one_line_error, pixels, report, tempdir,
};
use shepseg_pipeline::finished_tiles;

const BIN: &str = env!("CARGO_BIN_EXE_shepseg");

/// Small tiles, so that a kill lands with some tiles done and most to do.
const TILING: [&str; 2] = ["-t", "128"];

struct Job {
    dir: PathBuf,
    input: PathBuf,
    reference: PathBuf,
}

impl Job {
    /// The noisy crop and its uninterrupted segmentation.
    fn new(name: &str) -> Self {
        let dir = tempdir(&format!("resume-{name}"));
        let input = dir.join("in.tif");
        noisy_crop(&input);
        let reference = dir.join("reference.tif");
        let out = Self::command_for(&input, &reference, &["-w", "2"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            !work_dir(&reference).exists(),
            "work dir left after success"
        );
        Self {
            dir,
            input,
            reference,
        }
    }

    fn command_for(input: &Path, output: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("segment")
            .args([input, output])
            .args(TILING)
            .args(["--fixed-kmeans-init", "-q", "--json"])
            .arg(output.with_extension("json"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    fn command(&self, output: &Path, extra: &[&str]) -> Command {
        Self::command_for(&self.input, output, extra)
    }

    /// Starts the job and stops it with `signal` once `tiles` tiles are in its work
    /// directory; returns its output.
    fn start_and_stop(&self, output: &Path, extra: &[&str], signal: i32, tiles: usize) -> Output {
        let child = self.command(output, extra).spawn().unwrap();
        let t = Instant::now();
        while finished_tiles(&work_dir(output)) < tiles {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "no tiles in the work directory"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        signal_and_wait(child, signal)
    }

    /// The output equals the uninterrupted one, raster and attribute table, byte for byte.
    fn assert_same(&self, output: &Path) {
        assert_same_files(&self.reference, output, "the uninterrupted run");
    }
}

/// The work directory a job into `output` uses.
fn work_dir(output: &Path) -> PathBuf {
    shepseg_pipeline::default_work_dir(output).unwrap()
}

fn signal_and_wait(mut child: Child, signal: i32) -> Output {
    // SAFETY: signalling our own child process, which has not been waited for yet.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    Output {
        status,
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    }
}

#[test]
fn a_sigkilled_coordinator_resumes_to_the_same_output() {
    let job = Job::new("kill");
    for (name, first, resumed) in [
        ("threads", ["--executor", "threads", "-w", "1"], ["-w", "2"]),
        (
            "processes",
            ["--executor", "processes", "-w", "2"],
            ["-w", "1"],
        ),
    ] {
        let out = job.dir.join(format!("{name}.tif"));
        let killed = job.start_and_stop(&out, &first, libc::SIGKILL, 8);
        assert!(!killed.status.success());
        assert!(
            !out.exists(),
            "{name}: killed before the end, yet OUTPUT exists"
        );
        let kept = finished_tiles(&work_dir(&out));
        assert!(kept >= 8, "{name}: {kept} tiles kept");

        // A changed parameter is refused, naming it; the work directory stays.
        let refused = job
            .command(&out, &["--resume", "-s", "20"])
            .output()
            .unwrap();
        let err = one_line_error(&refused);
        assert!(
            err.contains("cannot resume") && err.contains("min_segment_size"),
            "{err}"
        );
        assert!(!out.exists());
        assert!(finished_tiles(&work_dir(&out)) >= kept);

        // The same job resumes, with another worker count (and executor, for processes).
        let mut extra: Vec<&str> = resumed.to_vec();
        extra.push("--resume");
        let done = job.command(&out, &extra).output().unwrap();
        assert!(done.status.success(), "{name}: {done:?}");
        job.assert_same(&out);
        let r = report(&out);
        let resumed = r["tiles_resumed"].as_u64().unwrap();
        assert!(
            resumed >= kept as u64 && resumed < r["num_tiles"].as_u64().unwrap(),
            "{name}: {resumed} tiles resumed of {}",
            r["num_tiles"]
        );
        assert!(!work_dir(&out).exists(), "{name}: work directory left");
    }
    let _ = std::fs::remove_dir_all(&job.dir);
}

#[test]
fn an_interrupted_job_says_how_to_resume_and_does() {
    let job = Job::new("interrupt");
    let out = job.dir.join("int.tif");
    let stopped = job.start_and_stop(&out, &["-w", "1"], libc::SIGINT, 4);
    assert_eq!(stopped.status.code(), Some(130), "{stopped:?}");
    let msg = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        msg.contains("kept, continue with: shepseg segment") && msg.contains("--resume"),
        "{msg}"
    );
    assert!(!out.exists());
    assert!(
        !work_dir(&out).join("lock").exists(),
        "lock left after Ctrl-C"
    );
    // The command the message gives, as given.
    let command = msg
        .split("continue with: ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let done = Command::new(BIN).args(&args).output().unwrap();
    assert!(done.status.success(), "{done:?}");
    job.assert_same(&out);
    assert!(report(&out)["tiles_resumed"].as_u64().unwrap() >= 4);

    // A changed input is refused: the same size, touched.
    let out2 = job.dir.join("int2.tif");
    let stopped = job.start_and_stop(&out2, &["-w", "1"], libc::SIGKILL, 2);
    assert!(!stopped.status.success());
    let copy = std::fs::read(&job.input).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&job.input, copy).unwrap();
    let err = one_line_error(&job.command(&out2, &["--resume"]).output().unwrap());
    assert!(err.contains("input file differs"), "{err}");
    assert!(!out2.exists());
    let _ = std::fs::remove_dir_all(&job.dir);
}

#[test]
fn resume_without_a_job_starts_afresh_and_a_busy_work_dir_is_refused() {
    let dir = tempdir("resume-fresh");
    let rgbn = common::rgbn();
    let out = dir.join("fresh.tif");
    let run = Job::command_for(&rgbn, &out, &["--resume"])
        .arg("--work-dir")
        .arg(dir.join("wd"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let r = report(&out);
    assert_eq!(r["tiles_resumed"], 0);
    assert!(!dir.join("wd").exists());
    // Not quiet: it says so.
    let out2 = dir.join("fresh2.tif");
    let run = Command::new(BIN)
        .args([
            "segment",
            rgbn.to_str().unwrap(),
            out2.to_str().unwrap(),
            "--resume",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("started afresh"),
        "{run:?}"
    );

    // A work directory locked by a live process (this test) is refused, nothing written.
    let busy = busy_work_dir(&dir);
    let out3 = dir.join("busy.tif");
    let err = one_line_error(
        &Job::command_for(&rgbn, &out3, &["--work-dir", busy.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert!(err.contains("in use by process"), "{err}");
    assert!(!out3.exists());
    // ... and taken over once its process is gone. A folder the user named keeps what else
    // it holds.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(busy.join("lock"), format!("999999999 {}", host.trim())).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine").unwrap();
    let ok = Job::command_for(&rgbn, &out3, &["--work-dir", busy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let left: Vec<String> = std::fs::read_dir(&busy)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["notes.txt"]);

    // A work directory holding another job (killed part-way) is refused, with or without
    // --resume, and left as it was.
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(
        busy.join("job.json"),
        serde_json::json!({
            "format": 1, "output": "/elsewhere/x.tif", "input": "/elsewhere/in.tif",
            "cols": 10, "rows": 10, "geo_transform": null, "band_types": ["Byte"],
            "file_size": 1, "modified": 1, "bands": [1], "null_value": null,
            "tile_size": 64, "subsample_pcnt": null, "params": {}
        })
        .to_string(),
    )
    .unwrap();
    let before = std::fs::read(busy.join("job.json")).unwrap();
    let out4 = dir.join("other.tif");
    for extra in [&[][..], &["--resume"][..]] {
        let mut args = vec!["--work-dir", busy.to_str().unwrap()];
        args.extend_from_slice(extra);
        let err = one_line_error(&Job::command_for(&rgbn, &out4, &args).output().unwrap());
        assert!(err.contains("holds another job"), "{err}");
        assert_eq!(std::fs::read(busy.join("job.json")).unwrap(), before);
        assert!(!out4.exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_sigkilled_mosaic_job_resumes_to_the_same_pixels_with_either_executor() {
    let job = Job::new("mosaic");
    let want = pixels(&job.reference);
    for (name, resumed) in [
        ("threads", ["--executor", "threads", "-w", "2"]),
        ("processes", ["--executor", "processes", "-w", "2"]),
    ] {
        // Remote workers kept the finished tiles' pixels beside the mosaic's tiles.
        let out = job.dir.join(format!("{name}.vrt"));
        let killed = job.start_and_stop(
            &out,
            &["--executor", "processes", "-w", "2"],
            libc::SIGKILL,
            8,
        );
        assert!(!killed.status.success());
        assert!(
            !out.exists(),
            "{name}: killed before the end, yet OUTPUT exists"
        );
        let mut extra = resumed.to_vec();
        extra.push("--resume");
        let done = job.command(&out, &extra).output().unwrap();
        assert!(done.status.success(), "{name}: {done:?}");
        assert!(pixels(&out) == want, "{name}: the resumed mosaic differs");
        assert!(report(&out)["tiles_resumed"].as_u64().unwrap() >= 8);
        let left: Vec<String> = std::fs::read_dir(job.dir.join(format!("{name}.tiles")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.iter().all(|n| !n.starts_with('.')), "{name}: {left:?}");
        assert!(!work_dir(&out).exists(), "{name}: work directory left");
    }
    let _ = std::fs::remove_dir_all(&job.dir);
}
