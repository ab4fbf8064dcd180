//! The remote executors for real: `shepseg worker` processes talking to the coordinator over TCP,
//! a worker killed mid-job, hostile connections, and the Fargate executor against moto's ECS
//! server on loopback with this test playing the container runtime.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shepseg_exec_fargate::protocol::{
    decode, encode, random_bytes, read_frame_blocking, CoordMsg, WorkerMsg, PROTOCOL_VERSION,
};

mod common;

use common::moto::{free_port, Moto, RunTaskFaults};
use common::{assert_same_files, noisy_crop, pixels, report};

const BIN: &str = env!("CARGO_BIN_EXE_shepseg");

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shepseg-remote-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A job big enough to kill a worker in the middle of: a 2000x2000 crop of pyshepseg's
/// synthetic test image with deterministic noise added (so tiles take a while to segment),
/// 25 tiles; plus its k-means model and the threads executor's output.
struct Fixture {
    dir: PathBuf,
    input: PathBuf,
    model: PathBuf,
    reference: PathBuf,
}

const TILING: [&str; 2] = ["-t", "512"];

fn fixture(name: &str) -> Fixture {
    let dir = tempdir(name);
    let input = dir.join("in.tif");
    noisy_crop(&input);
    let (model, reference) = (dir.join("model.json"), dir.join("threads.tif"));
    let out = Command::new(BIN)
        .arg("segment")
        .args([&input, &reference])
        .args(TILING)
        .args([
            "-q",
            "--fixed-kmeans-init",
            "--executor",
            "threads",
            "-w",
            "2",
        ])
        .arg("--kmeans-out")
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Fixture {
        dir,
        input,
        model,
        reference,
    }
}

impl Fixture {
    /// `shepseg segment` on the fixture with the given extra arguments, stderr piped.
    fn command(&self, output: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("segment")
            .args([&self.input, output])
            .args(TILING)
            .arg("--kmeans-in")
            .arg(&self.model)
            .args(["--fixed-kmeans-init", "--json"])
            .arg(output.with_extension("json"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    /// The output (raster and its RAT sidecar) equals the threads executor's, byte for byte.
    fn assert_same_as_threads(&self, output: &Path) {
        assert_same_files(&self.reference, output, "the threads output");
    }
}

/// A running coordinator whose stderr lines are collected as they come.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        Self { child, lines }
    }

    fn wait_for_line(&self, pat: &str, count: usize) -> Vec<String> {
        let t = Instant::now();
        loop {
            let found: Vec<String> = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(pat))
                .cloned()
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "no {pat:?} line");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(mut self) -> (bool, String) {
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (status.success(), self.lines.lock().unwrap().join("\n"))
    }
}

/// Child processes of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// Once both workers of `run` (a 2-worker processes job) have joined and are at work, sends
/// one of them `sig` (`kill`'s option).
fn signal_a_worker(run: &Running, sig: &str) {
    run.wait_for_line("joined", 2);
    std::thread::sleep(Duration::from_millis(300));
    let workers = children(run.child.id());
    assert_eq!(workers.len(), 2, "two worker processes: {workers:?}");
    let st = Command::new("kill")
        .args([sig, &workers[0].to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn worker_processes_give_the_threads_output() {
    let f = fixture("procs");
    let out = f.dir.join("procs.tif");
    let run = Running::start(f.command(
        &out,
        &[
            "--executor",
            "processes",
            "-w",
            "3",
            "--config",
            "GDAL_CACHEMAX=128",
            "--config",
            "AWS_SECRET_ACCESS_KEY=not-for-workers",
        ],
    ));
    let (ok, log) = run.finish();
    assert!(ok, "{log}");
    f.assert_same_as_threads(&out);
    // GDAL options reach the workers through the protocol, secrets excepted.
    assert_eq!(
        log.matches("GDAL options from the coordinator: GDAL_CACHEMAX")
            .count(),
        3,
        "one line per worker: {log}"
    );
    assert!(!log.contains("not-for-workers"), "{log}");
    assert!(
        log.contains("GDAL option AWS_SECRET_ACCESS_KEY not forwarded"),
        "{log}"
    );
    let r = report(&out);
    assert_eq!(r["executor"], "processes");
    assert_eq!(r["workers"]["joined"], 3, "{log}");
    assert_eq!(r["workers"]["lost"], 0, "{log}");
}

#[test]
fn a_killed_worker_costs_a_retry_not_the_job() {
    let f = fixture("kill");
    let out = f.dir.join("kill.tif");
    let run = Running::start(f.command(&out, &["--executor", "processes", "-w", "2"]));
    // SIGKILL: no chance to say goodbye; the coordinator sees the connection drop.
    signal_a_worker(&run, "-9");
    let (ok, log) = run.finish();
    assert!(ok, "{log}");
    f.assert_same_as_threads(&out);
    let r = report(&out);
    assert_eq!(r["workers"]["lost"], 1, "{log}");
    // Every tile's pixels and table came back through the coordinator; leases went out.
    let (bytes_in, bytes_out) = (
        r["workers"]["coordinator_bytes_in"].as_u64().unwrap(),
        r["workers"]["coordinator_bytes_out"].as_u64().unwrap(),
    );
    assert!(
        bytes_out > 0 && bytes_in > 10 * bytes_out,
        "{bytes_in} in, {bytes_out} out"
    );
    assert!(
        r["workers"]["tiles_requeued"].as_u64().unwrap() >= 1,
        "the killed worker held a tile: {log}"
    );
    assert!(log.contains("lost"), "{log}");
}

#[test]
fn workers_write_a_mosaic_themselves_even_when_one_is_killed() {
    let f = fixture("mosaic");
    let tif = f.dir.join("single.tif");
    let run = Running::start(f.command(&tif, &["--executor", "processes", "-w", "2"]));
    let (ok, log) = run.finish();
    assert!(ok, "{log}");
    let vrt = f.dir.join("mosaic.vrt");
    let run = Running::start(f.command(&vrt, &["--executor", "processes", "-w", "2"]));
    signal_a_worker(&run, "-9");
    let (ok, log) = run.finish();
    assert!(ok, "{log}");
    assert!(pixels(&vrt) == pixels(&f.reference), "the mosaic differs");
    let (single, mosaic) = (report(&tif), report(&vrt));
    assert_eq!(mosaic["workers"]["lost"], 1, "{log}");
    // Segmenting and writing are two runs of workers (the killed one replaced).
    assert_eq!(mosaic["workers"]["joined"], 5, "{log}");
    // The tables came to the coordinator; the pixels stayed with the workers.
    let bytes_in = |r: &Value| r["workers"]["coordinator_bytes_in"].as_u64().unwrap();
    assert!(
        bytes_in(&mosaic) < bytes_in(&single),
        "{} in for the mosaic, {} for the GTiff",
        bytes_in(&mosaic),
        bytes_in(&single)
    );
    let left: Vec<String> = std::fs::read_dir(f.dir.join("mosaic.tiles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter()
            .all(|n| n.ends_with(".tif") && !n.starts_with('.')),
        "{left:?}"
    );
}

#[test]
fn workers_read_the_kmeans_sample_and_fit_the_threads_model() {
    let f = fixture("sample");
    let run = |name: &str, extra: &[&str]| {
        let (out, model) = (
            f.dir.join(format!("{name}.tif")),
            f.dir.join(format!("{name}.json")),
        );
        let o = Command::new(BIN)
            .arg("segment")
            .args([&f.input, &out])
            .args(TILING)
            .args(["-q", "--fixed-kmeans-init", "--kmeans-out"])
            .arg(&model)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {o:?}");
        (out, std::fs::read_to_string(model).unwrap())
    };
    let (threads, want) = run("fit-threads", &[]);
    let json = f.dir.join("fit-procs.report");
    let (procs, got) = run(
        "fit-procs",
        &[
            "--executor",
            "processes",
            "-w",
            "2",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(got, want, "the workers' sample fits another model");
    assert_same_files(&threads, &procs, "the threads output");
    // Two workers read the sample's two rows of blocks, two more segmented.
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["workers"]["joined"], 4, "{r}");
}

#[test]
fn a_worker_sent_sigterm_hands_its_tile_back_and_the_job_succeeds() {
    let f = fixture("term");
    let out = f.dir.join("term.tif");
    // One attempt per tile: a tile lost with the worker would fail the job.
    let run = Running::start(f.command(
        &out,
        &["--executor", "processes", "-w", "2", "--tile-retries", "1"],
    ));
    signal_a_worker(&run, "-TERM");
    let (ok, log) = run.finish();
    assert!(ok, "{log}");
    f.assert_same_as_threads(&out);
    let r = report(&out);
    assert_eq!(r["workers"]["left"], 1, "{log}");
    assert_eq!(r["workers"]["lost"], 0, "{log}");
    assert!(log.contains("stopped by a signal"), "{log}");
    assert!(log.contains("left on a signal"), "{log}");
}

/// True when the coordinator closed the connection (after an optional Refused message).
fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    loop {
        match read_frame_blocking(s, 1 << 20) {
            Ok(p) => match decode::<CoordMsg>(&p) {
                Ok(CoordMsg::Refused { .. }) => continue,
                _ => return false,
            },
            Err(e) => {
                return !e.to_string().contains("timed out")
                    && !e.to_string().contains("would block")
            }
        }
    }
}

#[test]
fn hostile_connections_are_refused_and_the_job_goes_on() {
    let f = fixture("hostile");
    let out = f.dir.join("hostile.tif");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let run = Running::start(f.command(
        &out,
        &["--executor", "processes", "-w", "2", "--listen", &addr],
    ));
    run.wait_for_line("joined", 2);

    // Random bytes.
    let mut s = TcpStream::connect(&addr).unwrap();
    let junk: Vec<u8> = random_bytes()
        .unwrap()
        .iter()
        .chain(b"GET / HTTP/1.1\r\n\r\n")
        .copied()
        .collect();
    s.write_all(&junk).unwrap();
    assert!(closed_by_peer(&mut s), "garbage");

    // A length prefix far over the limit.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0]).unwrap();
    assert!(closed_by_peer(&mut s), "oversized frame");

    // Another protocol version.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(
        &encode(&WorkerMsg::Hello {
            version: PROTOCOL_VERSION + 1,
            name: "future".into(),
        })
        .unwrap(),
    )
    .unwrap();
    assert!(closed_by_peer(&mut s), "wrong version");

    // The right version, the wrong secret.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(
        &encode(&WorkerMsg::Hello {
            version: PROTOCOL_VERSION,
            name: "intruder".into(),
        })
        .unwrap(),
    )
    .unwrap();
    let p = read_frame_blocking(&mut s, 1 << 20).unwrap();
    assert!(matches!(
        decode::<CoordMsg>(&p).unwrap(),
        CoordMsg::Challenge { .. }
    ));
    s.write_all(
        &encode(&WorkerMsg::Proof {
            mac: random_bytes().unwrap(),
            nonce: random_bytes().unwrap(),
        })
        .unwrap(),
    )
    .unwrap();
    assert!(closed_by_peer(&mut s), "wrong secret");

    let (ok, log) = run.finish();
    assert!(ok, "{log}");
    f.assert_same_as_threads(&out);
    let r = report(&out);
    assert_eq!(r["workers"]["connections_refused"], 4, "{log}");
    assert_eq!(r["workers"]["lost"], 0, "{log}");
    assert!(log.contains("failed authentication"), "{log}");
    assert!(log.contains("exceeds the limit"), "{log}");
    let refused = format!("protocol version {}", PROTOCOL_VERSION + 1);
    assert!(log.contains(&refused), "{log}");
}

// ---------------------------------------------------------------------------------------------
// Fargate against moto.

/// A container's environment.
type Env = Vec<(String, String)>;

/// Plays the container runtime: starts each new task's command, as ECS would, from the
/// overrides read back through DescribeTasks. `tamper` may change the environment.
struct Runtime<'a> {
    moto: &'a Moto,
    started: Vec<String>,
    workers: Vec<Child>,
    task_definitions: Vec<String>,
    clusters: Vec<String>,
    /// The next this many new tasks are stopped as ECS stops one that cannot start.
    fail_next: usize,
    /// Start no worker for now (tasks stay pending).
    hold: bool,
    /// Rounds of workers the job runs (each registers a task definition of its own).
    rounds: usize,
}

impl<'a> Runtime<'a> {
    fn new(moto: &'a Moto) -> Self {
        Self {
            moto,
            started: Vec::new(),
            workers: Vec::new(),
            task_definitions: Vec::new(),
            clusters: Vec::new(),
            fail_next: 0,
            hold: false,
            rounds: 1,
        }
    }

    /// The tasks of the jobs' clusters that have not been started or stopped here yet, with
    /// their cluster (clusters are remembered for the clean-up check).
    fn new_tasks(&mut self) -> Vec<(String, Value)> {
        let mut found = Vec::new();
        let clusters = self.moto.ecs("ListClusters", json!({}));
        for c in clusters["clusterArns"].as_array().unwrap() {
            let c = c.as_str().unwrap().to_string();
            if !c.contains("shepseg-") {
                continue;
            }
            if !self.clusters.contains(&c) {
                self.clusters.push(c.clone());
            }
            let tasks = self.moto.ecs("ListTasks", json!({"cluster": c}));
            let arns: Vec<Value> = tasks["taskArns"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| !self.started.iter().any(|s| Some(s.as_str()) == a.as_str()))
                .cloned()
                .collect();
            if arns.is_empty() {
                continue;
            }
            let desc = self
                .moto
                .ecs("DescribeTasks", json!({"cluster": c, "tasks": arns}));
            for t in desc["tasks"].as_array().unwrap() {
                found.push((c.clone(), t.clone()));
            }
        }
        found
    }

    fn step(&mut self, tamper: &dyn Fn(&mut Env)) {
        for (c, t) in self.new_tasks() {
            let arn = t["taskArn"].as_str().unwrap().to_string();
            if self.hold && self.fail_next == 0 {
                continue;
            }
            let td = t["taskDefinitionArn"].as_str().unwrap().to_string();
            // Signals reach the worker, with a Spot notice's time to hand back; the
            // secret comes from SSM through the task definition, as ECS would inject it.
            let d = self
                .moto
                .ecs("DescribeTaskDefinition", json!({"taskDefinition": td}));
            let def = &d["taskDefinition"]["containerDefinitions"][0];
            assert_eq!(def["stopTimeout"], 120, "{d}");
            assert_eq!(def["linuxParameters"]["initProcessEnabled"], true, "{d}");
            assert_eq!(def["secrets"][0]["name"], "SHEPSEG_WORKER_SECRET", "{d}");
            let from = def["secrets"][0]["valueFrom"].as_str().unwrap();
            let name = from.split_once(":parameter").map_or(from, |(_, n)| n);
            let p = self.moto.ssm(
                "GetParameter",
                json!({"Name": name, "WithDecryption": true}),
            );
            assert_eq!(p["Parameter"]["Type"], "SecureString", "{p}");
            let secret = p["Parameter"]["Value"].as_str().unwrap().to_string();
            if !self.task_definitions.contains(&td) {
                self.task_definitions.push(td);
            }
            let o = &t["overrides"]["containerOverrides"][0];
            assert_eq!(o["name"], "shepseg-worker");
            let command: Vec<String> = o["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            let mut env: Env = o["environment"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|kv| {
                    (
                        kv["name"].as_str().unwrap().to_string(),
                        kv["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            assert!(
                !env.iter()
                    .any(|(k, v)| k == "SHEPSEG_WORKER_SECRET" || v == &secret),
                "the secret must not be in the overrides: {t}"
            );
            assert!(
                !t.to_string().contains(&secret),
                "DescribeTasks must not show the secret: {t}"
            );
            assert!(
                !command.iter().any(|a| a.contains(&secret)),
                "the secret must not be on the command line: {command:?}"
            );
            env.push(("SHEPSEG_WORKER_SECRET".into(), secret));
            assert_eq!(command[0], "shepseg");
            assert_eq!(command[1], "worker");
            tamper(&mut env);
            if self.fail_next > 0 {
                self.fail_next -= 1;
                self.moto.ecs(
                    "StopTask",
                    json!({"cluster": c, "task": arn,
                           "reason": "ResourceInitializationError: unable to pull secrets"}),
                );
                self.started.push(arn);
                continue;
            }
            let child = Command::new(BIN)
                .args(&command[1..])
                .envs(env)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            self.workers.push(child);
            self.started.push(arn);
        }
    }

    /// Stops every new task with `reason` instead of starting it, as ECS does when a task
    /// cannot start (an image it cannot pull, a log group it cannot create).
    fn fail_new_tasks(&mut self, reason: &str) {
        for (c, t) in self.new_tasks() {
            let arn = t["taskArn"].as_str().unwrap().to_string();
            let td = t["taskDefinitionArn"].as_str().unwrap();
            if !self.task_definitions.iter().any(|d| d == td) {
                self.task_definitions.push(td.to_string());
            }
            self.moto.ecs(
                "StopTask",
                json!({"cluster": c, "task": arn, "reason": reason}),
            );
            self.started.push(arn);
        }
    }

    /// Starts tasks as they appear until the coordinator exits.
    fn serve_until_exit(&mut self, run: &mut Running, tamper: &dyn Fn(&mut Env)) {
        while run.child.try_wait().unwrap().is_none() {
            self.step(tamper);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts tasks as they appear until `n` workers have joined the coordinator.
    fn serve_until_joined(&mut self, run: &mut Running, n: usize) {
        let joined = |run: &Running| {
            run.lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("joined"))
                .count()
        };
        while joined(run) < n {
            assert!(run.child.try_wait().unwrap().is_none(), "ended early");
            self.step(&|_| {});
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the job created is gone, as far as the ECS API can tell.
    fn assert_cleaned_up(&mut self) {
        assert_eq!(self.clusters.len(), 1, "one private cluster");
        for c in &self.clusters {
            let d = self.moto.ecs("DescribeClusters", json!({"clusters": [c]}));
            assert_eq!(
                d["clusters"][0]["status"], "INACTIVE",
                "cluster deleted: {d}"
            );
            let running = self.moto.ecs(
                "ListTasks",
                json!({"cluster": c, "desiredStatus": "RUNNING"}),
            );
            assert_eq!(running["taskArns"], json!([]), "tasks stopped");
        }
        let params = self.moto.ssm(
            "GetParametersByPath",
            json!({"Path": "/shepseg", "Recursive": true}),
        );
        assert_eq!(params["Parameters"], json!([]), "secret parameter deleted");
        assert_eq!(self.task_definitions.len(), self.rounds);
        for td in &self.task_definitions {
            let d = self
                .moto
                .ecs("DescribeTaskDefinition", json!({"taskDefinition": td}));
            assert_eq!(
                d["taskDefinition"]["status"], "INACTIVE",
                "deregistered: {d}"
            );
        }
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn fargate_command(f: &Fixture, moto: &Moto, out: &Path, extra: &[&str]) -> Command {
    fargate_command_with(f, moto, out, extra, |_| {})
}

/// [`fargate_command`] with the configuration changed by `edit` first.
fn fargate_command_with(
    f: &Fixture,
    moto: &Moto,
    out: &Path,
    extra: &[&str],
    edit: impl FnOnce(&mut Value),
) -> Command {
    let cfg = f.dir.join("fargate.json");
    let mut config = json!({
        "containerImage": "example.invalid/shepseg:test",
        "subnet": moto.subnet(),
        "securityGroups": ["sg-12345678"],
        "cpu": "1 vCPU",
        "memory": "2GB",
        "cpuArchitecture": "X86_64",
        "cloudwatchLogGroup": "/shepseg/test",
        "tags": {"project": "shepseg-test"}
    });
    edit(&mut config);
    std::fs::write(&cfg, config.to_string()).unwrap();
    let mut args = vec!["--executor", "fargate", "--listen", "127.0.0.1:0"];
    if !extra.contains(&"-w") {
        args.extend(["-w", "2"]);
    }
    args.extend_from_slice(extra);
    let mut c = f.command(out, &args);
    c.arg("--fargate-config")
        .arg(&cfg)
        .env("AWS_ENDPOINT_URL", moto.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    c
}

/// A Fargate job against moto: starts moto and `shepseg segment --executor fargate` on a fresh
/// fixture named `name` (output `out_name`, options `extra`), runs `body` with the fixture, the
/// output path, the running coordinator (the body ends it) and the test's container runtime,
/// then checks that every ECS resource the job made is gone.
fn fargate_job(
    name: &str,
    out_name: &str,
    extra: &[&str],
    body: impl FnOnce(&Fixture, &Path, Running, &mut Runtime),
) {
    let moto = Moto::start();
    let f = fixture(name);
    let out = f.dir.join(out_name);
    let run = Running::start(fargate_command(&f, &moto, &out, extra));
    let mut rt = Runtime::new(&moto);
    body(&f, &out, run, &mut rt);
    rt.assert_cleaned_up();
}

#[test]
fn fargate_executor_against_moto() {
    fargate_job("fargate", "fargate.tif", &[], |f, out, mut run, rt| {
        rt.serve_until_exit(&mut run, &|_| {});
        let (ok, log) = run.finish();
        assert!(ok, "{log}");
        f.assert_same_as_threads(out);
        assert_eq!(rt.started.len(), 2, "two tasks run: {log}");
        let r = report(out);
        assert_eq!(r["executor"], "fargate");
        assert_eq!(r["workers"]["joined"], 2, "{log}");
        // Each task's end is reported from the ECS API (moto's exit codes are not real ones).
        assert_eq!(log.matches("Fargate task").count(), 2, "{log}");
        assert!(log.contains("stopped: shepseg job over"), "{log}");
    });
}

#[test]
fn fargate_workers_write_a_mosaic_in_a_second_round_of_tasks() {
    fargate_job(
        "fargate-mosaic",
        "fargate.vrt",
        &[],
        |f, out, mut run, rt| {
            rt.serve_until_exit(&mut run, &|_| {});
            let (ok, log) = run.finish();
            assert!(ok, "{log}");
            assert!(pixels(out) == pixels(&f.reference), "the mosaic differs");
            // Two tasks segmented, two more wrote the tiles; each round cleaned up after.
            assert_eq!(rt.started.len(), 4, "four tasks run: {log}");
            rt.rounds = 2;
            assert_eq!(report(out)["workers"]["joined"], 4, "{log}");
        },
    );
}

#[test]
fn fargate_cleans_up_when_the_job_fails() {
    let extra = ["--barrier-timeout", "3"];
    fargate_job("fargate-fail", "fail.tif", &extra, |_, out, mut run, rt| {
        // Workers with the wrong secret: refused, so none joins and the barrier times out.
        let wrong = |env: &mut Env| {
            for (k, v) in env.iter_mut() {
                if k == "SHEPSEG_WORKER_SECRET" {
                    let flipped = if v.starts_with('0') { "1" } else { "0" };
                    v.replace_range(0..1, flipped);
                }
            }
        };
        rt.serve_until_exit(&mut run, &wrong);
        let (ok, log) = run.finish();
        assert!(!ok, "{log}");
        assert!(log.contains("--barrier-timeout"), "{log}");
        assert!(log.contains("failed authentication"), "{log}");
        assert!(!out.exists(), "no output after a failed job");
    });
}

#[test]
fn fargate_cleans_up_on_ctrl_c_and_sigterm() {
    for sig in ["-INT", "-TERM"] {
        fargate_signalled(sig);
    }
}

/// A Fargate job sent `sig` once its workers joined: it exits 130 with everything it made on
/// AWS (cluster, task definition, tasks, secret parameter) and its partial output removed.
fn fargate_signalled(sig: &str) {
    fargate_job("fargate-int", "int.tif", &[], |f, out, mut run, rt| {
        rt.serve_until_joined(&mut run, 2);
        let st = Command::new("kill")
            .args([sig, &run.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = run.child.wait().unwrap();
        let log = run.lines.lock().unwrap().join("\n");
        assert_eq!(status.code(), Some(130), "{log}");
        assert!(log.contains("stopping workers"), "{log}");
        assert!(!out.exists(), "no output after Ctrl-C");
        let left: Vec<_> = std::fs::read_dir(&f.dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("shepseg-partial"))
            .collect();
        assert!(left.is_empty(), "partial output left: {left:?}");
    });
}

#[test]
fn a_lost_fargate_task_is_replaced_and_no_tile_is_lost() {
    fargate_job("fargate-lost", "lost.tif", &[], |f, out, mut run, rt| {
        rt.serve_until_joined(&mut run, 2);
        std::thread::sleep(Duration::from_millis(300));
        // The container dies (SIGKILL); the coordinator must notice and ask ECS for another task.
        rt.workers[0].kill().unwrap();
        rt.serve_until_exit(&mut run, &|_| {});
        let (ok, log) = run.finish();
        assert!(ok, "{log}");
        f.assert_same_as_threads(out);
        let r = report(out);
        assert_eq!(r["workers"]["lost"], 1, "{log}");
        assert!(
            r["workers"]["tiles_requeued"].as_u64().unwrap() >= 1,
            "{log}"
        );
        assert!(r["workers"]["replacements"].as_u64().unwrap() >= 1, "{log}");
        assert!(rt.started.len() >= 3, "a replacement task was run: {log}");
    });
}

#[test]
fn fargate_tasks_that_never_start_fail_the_job_with_ecs_reason() {
    let reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s): \
                  failed to resolve ref example.invalid/shepseg:test: not found";
    fargate_job("fargate-pull", "pull.tif", &[], |_, out, mut run, rt| {
        // The default barrier is 600 s: the job must not wait for it.
        let t = Instant::now();
        while run.child.try_wait().unwrap().is_none() {
            assert!(t.elapsed() < Duration::from_secs(60), "still waiting");
            rt.fail_new_tasks(reason);
            std::thread::sleep(Duration::from_millis(100));
        }
        let (ok, log) = run.finish();
        assert!(!ok, "{log}");
        let last = log.lines().last().unwrap_or("");
        assert!(
            last.contains("every worker stopped before joining"),
            "{log}"
        );
        assert!(last.contains("CannotPullContainerError"), "{log}");
        assert!(!out.exists(), "no output after a failed job");
        assert_eq!(
            rt.started.len(),
            2,
            "no task replaced before one joined: {log}"
        );
    });
}

#[test]
fn runtask_failures_are_reported_one_by_one_and_the_missing_tasks_retried() {
    let moto = Moto::start();
    // The first RunTask (3 tasks) starts one; two failures come back instead of the others.
    let capacity = "Capacity is unavailable at this time. Please try again later or in a \
                    different availability zone";
    let proxy = RunTaskFaults::start(&moto, 1, &[capacity, "RESOURCE:ENI"]);
    let f = fixture("fargate-runtask");
    let out = f.dir.join("runtask.tif");
    let mut c = fargate_command(&f, &moto, &out, &["-w", "3"]);
    c.env("AWS_ENDPOINT_URL", proxy.url());
    let mut run = Running::start(c);
    let mut rt = Runtime::new(&moto);
    rt.serve_until_exit(&mut run, &|_| {});
    let (ok, log) = run.finish();
    assert!(ok, "{log}");
    f.assert_same_as_threads(&out);
    assert!(
        log.contains(&format!("RunTask failure: {capacity}")),
        "{log}"
    );
    assert!(log.contains("RunTask failure: RESOURCE:ENI"), "{log}");
    assert!(
        log.contains("asking for the 2 missing task(s) again"),
        "{log}"
    );
    assert_eq!(rt.started.len(), 3, "the missing tasks were run: {log}");
    assert_eq!(report(&out)["workers"]["joined"], 3, "{log}");
    rt.assert_cleaned_up();
}

#[test]
fn fargate_spot_capacity_providers_and_a_subnet_list() {
    let moto = Moto::start();
    let f = fixture("fargate-spot");
    let out = f.dir.join("spot.tif");
    let c = fargate_command_with(&f, &moto, &out, &[], |cfg| {
        let subnet = cfg["subnet"].take();
        cfg.as_object_mut().unwrap().remove("subnet");
        cfg["subnets"] = json!([subnet]);
        cfg["capacityProviderStrategy"] = json!([
            {"capacityProvider": "FARGATE", "base": 1, "weight": 1},
            {"capacityProvider": "FARGATE_SPOT", "weight": 4}
        ]);
    });
    let mut run = Running::start(c);
    let mut rt = Runtime::new(&moto);
    rt.serve_until_exit(&mut run, &|_| {});
    let (ok, log) = run.finish();
    assert!(ok, "{log}");
    f.assert_same_as_threads(&out);
    assert_eq!(rt.started.len(), 2, "{log}");
    rt.assert_cleaned_up();
}

#[test]
fn fargate_cleanup_removes_what_a_sigkilled_coordinator_left() {
    fargate_job("fargate-kill9", "kill9.tif", &[], |_, out, mut run, rt| {
        rt.serve_until_joined(&mut run, 2);
        // SIGKILL: the coordinator cannot clean up.
        run.child.kill().unwrap();
        run.child.wait().unwrap();
        let cleanup = |older: &str| {
            let o = Command::new(BIN)
                .args(["fargate-cleanup", "--older-than", older])
                .env("AWS_ENDPOINT_URL", rt.moto.url())
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_PROFILE")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            assert!(
                o.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&o.stderr)
            );
            text
        };
        // A job younger than an hour is left alone.
        let young = cleanup("1");
        assert!(
            young.contains("0 tasks, 0 task definitions, 0 parameters, 0 clusters"),
            "{young}"
        );
        let c = rt.clusters[0].clone();
        let d = rt.moto.ecs("DescribeClusters", json!({"clusters": [c]}));
        assert_eq!(d["clusters"][0]["status"], "ACTIVE", "{d}");
        // Everything else goes: assert_cleaned_up checks, after this body.
        let all = cleanup("0");
        assert!(
            all.contains("2 tasks, 1 task definitions, 1 parameters, 1 clusters"),
            "{all}"
        );
        assert!(!out.exists());
    });
}

#[test]
fn a_task_stopping_before_joining_is_replaced_once_workers_have_joined() {
    let extra = ["--heartbeat-timeout", "2"];
    fargate_job(
        "fargate-unjoined",
        "unjoined.tif",
        &extra,
        |f, out, mut run, rt| {
            // Of the two tasks, the first never starts; the other's worker joins once the
            // coordinator has seen the first stop.
            rt.fail_next = 1;
            rt.hold = true;
            let t = Instant::now();
            while !run
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("stopped: Resource"))
            {
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "the stop was not seen"
                );
                rt.step(&|_| {});
                std::thread::sleep(Duration::from_millis(100));
            }
            rt.hold = false;
            rt.serve_until_exit(&mut run, &|_| {});
            let (ok, log) = run.finish();
            assert!(ok, "{log}");
            f.assert_same_as_threads(out);
            assert!(
                log.contains("launched a replacement worker for one that stopped before joining"),
                "{log}"
            );
            assert!(log.contains("ResourceInitializationError"), "{log}");
            assert_eq!(rt.started.len(), 3, "the stopped task was replaced: {log}");
            let r = report(out);
            assert_eq!(r["workers"]["joined"], 2, "{log}");
            assert_eq!(r["workers"]["replacements"], 1, "{log}");
        },
    );
}

#[test]
fn a_worker_without_the_secret_says_so() {
    for secret in [None, Some("not-hex")] {
        let mut c = Command::new(BIN);
        c.args([
            "worker",
            "--connect",
            "127.0.0.1:9",
            "--connect-timeout",
            "0",
        ])
        .env_remove("SHEPSEG_WORKER_SECRET");
        if let Some(s) = secret {
            c.env("SHEPSEG_WORKER_SECRET", s);
        }
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("SHEPSEG_WORKER_SECRET"), "{err}");
    }
}
