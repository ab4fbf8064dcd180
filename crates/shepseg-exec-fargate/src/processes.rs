//! Workers as local processes: `--executor processes -w N` starts N `shepseg worker` processes
//! on this machine. The same coordinator and protocol as Fargate, usable on any host, and the
//! way the protocol is tested for real.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::coordinator::{WorkerInvocation, WorkerLauncher};
use crate::error::RemoteError;

/// Starts workers as child processes of this one.
#[derive(Debug)]
pub struct ProcessLauncher {
    program: PathBuf,
    /// Arguments before `worker`.
    prefix: Vec<String>,
    children: Vec<Child>,
    started: usize,
    /// How the last worker to stop ended.
    last_exit: Option<String>,
}

impl ProcessLauncher {
    /// Workers run `program worker --connect HOST:PORT` (`program` is normally the `shepseg`
    /// binary itself).
    pub fn new(program: PathBuf) -> Self {
        Self::with_prefix(program, Vec::new())
    }

    /// Workers run `program PREFIX... worker --connect HOST:PORT`: for a worker command that
    /// is not a binary of its own, as `python -m shepseg worker`.
    pub fn with_prefix(program: PathBuf, prefix: Vec<String>) -> Self {
        Self {
            program,
            prefix,
            children: Vec::new(),
            started: 0,
            last_exit: None,
        }
    }

    /// Process IDs of the workers still running.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl WorkerLauncher for ProcessLauncher {
    fn launch(
        &mut self,
        _rt: &Handle,
        count: usize,
        inv: &WorkerInvocation,
    ) -> Result<(), RemoteError> {
        for _ in 0..count {
            self.started += 1;
            let mut cmd = Command::new(&self.program);
            cmd.args(&self.prefix)
                .args(inv.args())
                .args(["--name", &format!("process-{}", self.started)])
                .envs(inv.env())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            let child = cmd.spawn().map_err(|e| {
                RemoteError::Launch(format!("cannot start {}: {e}", self.program.display()))
            })?;
            self.children.push(child);
        }
        Ok(())
    }

    fn poll(&mut self, _rt: &Handle) -> Vec<String> {
        let mut lines = Vec::new();
        let last = &mut self.last_exit;
        self.children.retain_mut(|c| match c.try_wait() {
            Ok(Some(status)) => {
                let line = format!("worker process {} exited: {status}", c.id());
                if !status.success() {
                    lines.push(line.clone());
                }
                *last = Some(line);
                false
            }
            Ok(None) => true,
            Err(e) => {
                *last = Some(format!("worker process {}: {e}", c.id()));
                false
            }
        });
        lines
    }

    fn stopped(&self) -> usize {
        self.started - self.children.len()
    }

    fn all_stopped(&self) -> Option<String> {
        if self.started > 0 && self.children.is_empty() {
            self.last_exit.clone()
        } else {
            None
        }
    }

    fn shutdown(&mut self, _rt: &Handle) -> Result<(), RemoteError> {
        // Workers told there is no more work exit by themselves; give them a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && self
                .children
                .iter_mut()
                .any(|c| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for c in &mut self.children {
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        Ok(())
    }
}
