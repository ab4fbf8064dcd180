//! Workers as AWS ECS Fargate tasks (`--executor fargate --fargate-config FILE`).
//!
//! [`FargateLauncher`] creates a private cluster (unless the configuration names one),
//! registers a task definition for the worker image, runs the tasks (at most 10 per RunTask
//! call) with the worker command and the job secret as container overrides, reports each
//! stopped task's exit code and reason, and on shutdown stops every task, deregisters the task
//! definition and deletes the private cluster. The coordinator judges workers by their
//! connections and heartbeats; the ECS API is only used to launch, report and clean up.
//!
//! The AWS SDK's usual configuration applies: the default credential chain and region, and
//! `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_ECS`) to talk to a test endpoint.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, Compatibility,
    ContainerDefinition, ContainerOverride, CpuArchitecture, KeyValuePair, LaunchType,
    LinuxParameters, LogConfiguration, LogDriver, NetworkConfiguration, NetworkMode, OsFamily,
    RuntimePlatform, Secret as EcsSecret, Tag, TaskOverride,
};
use serde::Deserialize;
use tokio::runtime::Handle;

use crate::coordinator::{WorkerInvocation, WorkerLauncher};
use crate::error::RemoteError;
use crate::protocol::{random_bytes, Secret, SECRET_ENV};

/// Seconds between SIGTERM and SIGKILL when ECS stops a worker's task (the most Fargate
/// allows, and a Spot interruption's notice).
const STOP_TIMEOUT_S: i32 = 120;

/// The `--fargate-config` file (JSON or TOML), with pyshepseg's FargateConfig keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FargateConfig {
    /// The worker image (built from the repository's Dockerfile).
    pub container_image: String,
    /// IAM role the worker runs as (needs read access to the input, e.g. S3).
    #[serde(default)]
    pub task_role_arn: Option<String>,
    /// IAM role ECS uses to pull the image and write logs.
    #[serde(default)]
    pub execution_role_arn: Option<String>,
    /// Subnet for the tasks; it must route to the coordinator's port. `subnets` (several, in
    /// different zones, as AWS advises) may be given instead or as well.
    #[serde(default)]
    pub subnet: Option<String>,
    /// Subnets for the tasks, ECS picking among them (several zones ride out a zone's lack
    /// of capacity).
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Capacity providers instead of the FARGATE launch type, e.g. FARGATE_SPOT with a FARGATE
    /// base: `[{"capacityProvider": "FARGATE", "base": 1, "weight": 1},
    /// {"capacityProvider": "FARGATE_SPOT", "weight": 4}]`.
    #[serde(default)]
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    /// Security groups for the tasks.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Task CPU, in ECS units or vCPU (`"1024"` or `"1 vCPU"`, the default).
    #[serde(default = "default_cpu")]
    pub cpu: String,
    /// Task memory, in MiB or GB (`"4096"` or `"4GB"`, the default; a 4096-pixel tile of
    /// four 16-bit bands needs about 1.5 GB).
    #[serde(default = "default_memory")]
    pub memory: String,
    /// `X86_64` or `ARM64`.
    #[serde(default)]
    pub cpu_architecture: Option<String>,
    /// CloudWatch log group for the workers' output (awslogs driver), if any.
    #[serde(default)]
    pub cloudwatch_log_group: Option<String>,
    /// Tags for the cluster, task definition and tasks.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// An existing cluster to run in, instead of a new private one (which is then left alone).
    #[serde(default)]
    pub cluster: Option<String>,
    /// Give the tasks a public IP (needed to pull images without a NAT gateway).
    #[serde(default)]
    pub assign_public_ip: bool,
    /// The worker program inside the image.
    #[serde(default = "default_program")]
    pub worker_program: String,
}

/// One entry of `capacityProviderStrategy`, as ECS names its fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapacityProviderItem {
    /// `FARGATE` or `FARGATE_SPOT` (or a cluster's own provider).
    pub capacity_provider: String,
    /// Relative share of the tasks.
    #[serde(default)]
    pub weight: i32,
    /// Tasks to run on this provider before the weights apply.
    #[serde(default)]
    pub base: i32,
}

fn default_cpu() -> String {
    "1 vCPU".into()
}
fn default_memory() -> String {
    "4GB".into()
}
fn default_program() -> String {
    "shepseg".into()
}

impl FargateConfig {
    /// Reads a configuration file; `.toml` is TOML, anything else JSON.
    pub fn load(path: &Path) -> Result<Self, RemoteError> {
        let err = |message: String| RemoteError::Config {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        Self::parse(&text, is_toml, &path.display().to_string())
    }

    /// Parses a configuration given as text (TOML if `is_toml`, else JSON); `origin` names
    /// where it came from in errors.
    pub fn parse(text: &str, is_toml: bool, origin: &str) -> Result<Self, RemoteError> {
        let err = |message: String| RemoteError::Config {
            path: origin.to_string(),
            message,
        };
        let cfg: Self = if is_toml {
            toml::from_str(text).map_err(|e| err(e.message().to_string()))?
        } else {
            serde_json::from_str(text).map_err(|e| err(e.to_string()))?
        };
        if cfg.container_image.trim().is_empty() {
            return Err(err("containerImage is empty".into()));
        }
        if cfg.all_subnets().is_empty() {
            return Err(err("subnet (or subnets) is required".into()));
        }
        if let Some(c) = cfg
            .capacity_provider_strategy
            .iter()
            .find(|c| c.capacity_provider.trim().is_empty() || c.weight < 0 || c.base < 0)
        {
            return Err(err(format!(
                "capacityProviderStrategy: bad entry {c:?} (a provider name, weight and base \
                 of 0 or more)"
            )));
        }
        if let Some(a) = &cfg.cpu_architecture {
            if !matches!(a.as_str(), "X86_64" | "ARM64") {
                return Err(err(format!(
                    "cpuArchitecture must be X86_64 or ARM64, got {a:?}"
                )));
            }
        }
        Ok(cfg)
    }

    /// `subnet` and `subnets`, without repeats.
    pub fn all_subnets(&self) -> Vec<String> {
        let mut all: Vec<String> = self.subnet.iter().cloned().collect();
        for s in &self.subnets {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        all.retain(|s| !s.trim().is_empty());
        all
    }

    /// Container memory in MiB, from `memory` (`"4096"`, `"4 GB"`, `"4GB"`).
    fn memory_mib(&self) -> Option<i32> {
        let s = self.memory.trim().to_ascii_lowercase();
        if let Some(gb) = s.strip_suffix("gb") {
            return gb.trim().parse::<f64>().ok().map(|g| (g * 1024.0) as i32);
        }
        s.parse().ok()
    }
}

/// The name of the worker container in the task definition.
pub const CONTAINER_NAME: &str = "shepseg-worker";

/// The tag naming the job that created a resource.
pub const JOB_TAG: &str = "shepseg:job";

/// The tag with the Unix time a job started.
pub const CREATED_TAG: &str = "shepseg:created";

/// RunTask's `startedBy` for a job's tasks: `shepseg-JOB-CREATED`.
pub fn started_by(job: &str, created: u64) -> String {
    format!("shepseg-{job}-{created}")
}

/// Times RunTask is asked again for tasks it could not start.
const RUN_TASK_RETRIES: u32 = 5;

/// The first pause before asking RunTask again; it doubles each time.
const RUN_TASK_BACKOFF: Duration = Duration::from_millis(500);

/// How long shutdown waits for tasks to stop before deleting the cluster.
pub(crate) const STOP_WAIT: Duration = Duration::from_secs(120);

/// Starts workers as ECS Fargate tasks; see the module docs.
#[derive(Debug)]
pub struct FargateLauncher {
    config: FargateConfig,
    /// This job's ID: in its resources' names and tags (`shepseg:job`).
    job: String,
    /// When the job started (Unix seconds; tag `shepseg:created`), for `fargate-cleanup`.
    created: u64,
    client: Option<aws_sdk_ecs::Client>,
    ssm: Option<aws_sdk_ssm::Client>,
    /// The job's SSM parameter holding the worker secret, once created.
    parameter: Option<String>,
    cluster: Option<String>,
    created_cluster: bool,
    task_definition: Option<String>,
    tasks: Vec<String>,
    reported: HashSet<String>,
    /// The log line of the last task seen stopped.
    last_stop: Option<String>,
    last_poll: Option<Instant>,
    /// Reports gathered during cleanup, for the next `poll`.
    pending: Vec<String>,
}

impl FargateLauncher {
    /// A launcher for this configuration; nothing is created until the first launch.
    pub fn new(config: FargateConfig) -> Self {
        Self {
            config,
            job: hex8(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            client: None,
            ssm: None,
            parameter: None,
            cluster: None,
            created_cluster: false,
            task_definition: None,
            tasks: Vec::new(),
            reported: HashSet::new(),
            last_stop: None,
            last_poll: None,
            pending: Vec::new(),
        }
    }

    /// The cluster in use (after the first launch).
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// The configuration's tags and the job's own: `shepseg:job` and `shepseg:created`, by
    /// which `fargate-cleanup` finds what a killed job left.
    fn tag_pairs(&self) -> Vec<(String, String)> {
        let mut t: Vec<(String, String)> = self
            .config
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        t.push((JOB_TAG.into(), self.job.clone()));
        t.push((CREATED_TAG.into(), self.created.to_string()));
        t
    }

    fn tags(&self) -> Vec<Tag> {
        self.tag_pairs()
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    }

    /// Creates the client, the cluster, the secret's parameter and the task definition, once.
    async fn ensure_setup(&mut self, secret: &Secret) -> Result<(), RemoteError> {
        if self.client.is_none() {
            let sdk = sdk_config().await;
            self.client = Some(aws_sdk_ecs::Client::new(&sdk));
            self.ssm = Some(aws_sdk_ssm::Client::new(&sdk));
        }
        let client = self.client.clone().ok_or_else(|| launch("no client"))?;
        let tag = self.job.clone();
        if self.cluster.is_none() {
            match &self.config.cluster {
                Some(c) => self.cluster = Some(c.clone()),
                None => {
                    let name = format!("shepseg-{tag}");
                    let out = client
                        .create_cluster()
                        .cluster_name(&name)
                        // RunTask may only use the providers associated with the cluster.
                        .set_capacity_providers(
                            Some(
                                self.config
                                    .capacity_provider_strategy
                                    .iter()
                                    .map(|c| c.capacity_provider.clone())
                                    .collect::<Vec<_>>(),
                            )
                            .filter(|p| !p.is_empty()),
                        )
                        .set_tags(Some(self.tags()).filter(|t| !t.is_empty()))
                        .send()
                        .await
                        .map_err(|e| aws("CreateCluster", e))?;
                    let arn = out
                        .cluster()
                        .and_then(|c| c.cluster_arn())
                        .map(str::to_string)
                        .unwrap_or(name);
                    self.cluster = Some(arn);
                    self.created_cluster = true;
                }
            }
        }
        if self.task_definition.is_none() {
            let secret_arn = self.put_secret(&tag, secret).await?;
            let cfg = &self.config;
            let mut container = ContainerDefinition::builder()
                .name(CONTAINER_NAME)
                .image(&cfg.container_image)
                .essential(true)
                .set_memory(cfg.memory_mib())
                // A stopping task's worker gets SIGTERM and this long (a Spot interruption's
                // two minutes) before SIGKILL; it hands its tile back at once. The init
                // process forwards the signal to the worker, which is not PID 1 then.
                .stop_timeout(STOP_TIMEOUT_S)
                .linux_parameters(
                    LinuxParameters::builder()
                        .init_process_enabled(true)
                        .build(),
                )
                // ECS puts the secret in the worker's environment at start; it is in no
                // task's overrides, so DescribeTasks does not show it.
                .secrets(
                    EcsSecret::builder()
                        .name(SECRET_ENV)
                        .value_from(secret_arn)
                        .build()
                        .map_err(|e| launch(&e.to_string()))?,
                );
            if let Some(group) = &cfg.cloudwatch_log_group {
                let mut opts = std::collections::HashMap::new();
                opts.insert("awslogs-group".to_string(), group.clone());
                opts.insert("awslogs-stream-prefix".to_string(), "shepseg".to_string());
                // A missing group is created (the execution role needs logs:CreateLogGroup)
                // rather than stopping every task at start.
                opts.insert("awslogs-create-group".to_string(), "true".to_string());
                if let Some(region) = client.config().region() {
                    opts.insert("awslogs-region".to_string(), region.to_string());
                }
                container = container.log_configuration(
                    LogConfiguration::builder()
                        .log_driver(LogDriver::Awslogs)
                        .set_options(Some(opts))
                        .build()
                        .map_err(|e| launch(&e.to_string()))?,
                );
            }
            let mut req = client
                .register_task_definition()
                .family(format!("shepseg-worker-{tag}"))
                .network_mode(NetworkMode::Awsvpc)
                .requires_compatibilities(Compatibility::Fargate)
                .cpu(&cfg.cpu)
                .memory(&cfg.memory)
                .container_definitions(container.build())
                .set_task_role_arn(cfg.task_role_arn.clone())
                .set_execution_role_arn(cfg.execution_role_arn.clone())
                .set_tags(Some(self.tags()).filter(|t| !t.is_empty()));
            if let Some(a) = &cfg.cpu_architecture {
                req = req.runtime_platform(
                    RuntimePlatform::builder()
                        .cpu_architecture(CpuArchitecture::from(a.as_str()))
                        .operating_system_family(OsFamily::Linux)
                        .build(),
                );
            }
            let out = req
                .send()
                .await
                .map_err(|e| aws("RegisterTaskDefinition", e))?;
            let arn = out
                .task_definition()
                .and_then(|t| t.task_definition_arn())
                .ok_or_else(|| launch("RegisterTaskDefinition returned no ARN"))?;
            self.task_definition = Some(arn.to_string());
        }
        Ok(())
    }

    /// Stores the job secret as an SSM SecureString parameter `/shepseg/TAG/secret`; returns
    /// its ARN for the task definition.
    async fn put_secret(&mut self, tag: &str, secret: &Secret) -> Result<String, RemoteError> {
        let ssm = self.ssm.clone().ok_or_else(|| launch("no SSM client"))?;
        let name = format!("/shepseg/{tag}/secret");
        let tags: Vec<aws_sdk_ssm::types::Tag> = self
            .tag_pairs()
            .into_iter()
            .map(|(k, v)| {
                aws_sdk_ssm::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .map_err(|e| launch(&e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        ssm.put_parameter()
            .name(&name)
            .description("shepseg job secret for its workers; deleted when the job ends")
            .value(secret.to_hex())
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .set_tags(Some(tags).filter(|t| !t.is_empty()))
            .send()
            .await
            .map_err(|e| aws("SSM PutParameter", e))?;
        self.parameter = Some(name.clone());
        let out = ssm
            .get_parameter()
            .name(&name)
            .send()
            .await
            .map_err(|e| aws("SSM GetParameter", e))?;
        Ok(out
            .parameter()
            .and_then(|p| p.arn())
            .map_or(name, str::to_string))
    }

    async fn run_tasks(&mut self, count: usize, inv: &WorkerInvocation) -> Result<(), RemoteError> {
        self.ensure_setup(&inv.secret).await?;
        let client = self.client.clone().ok_or_else(|| launch("no client"))?;
        let cluster = self.cluster.clone().ok_or_else(|| launch("no cluster"))?;
        let taskdef = self
            .task_definition
            .clone()
            .ok_or_else(|| launch("no task definition"))?;
        let mut command = vec![self.config.worker_program.clone()];
        command.extend(inv.args());
        // The secret comes from the task definition's `secrets`, never from the overrides.
        let env: Vec<KeyValuePair> = inv
            .env()
            .into_iter()
            .filter(|(k, _)| k != SECRET_ENV)
            .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
            .collect();
        let network = NetworkConfiguration::builder()
            .awsvpc_configuration(
                AwsVpcConfiguration::builder()
                    .set_subnets(Some(self.config.all_subnets()))
                    .set_security_groups(Some(self.config.security_groups.clone()))
                    .assign_public_ip(if self.config.assign_public_ip {
                        AssignPublicIp::Enabled
                    } else {
                        AssignPublicIp::Disabled
                    })
                    .build()
                    .map_err(|e| launch(&e.to_string()))?,
            )
            .build();
        let strategy: Vec<CapacityProviderStrategyItem> = self
            .config
            .capacity_provider_strategy
            .iter()
            .map(|c| {
                CapacityProviderStrategyItem::builder()
                    .capacity_provider(&c.capacity_provider)
                    .weight(c.weight)
                    .base(c.base)
                    .build()
                    .map_err(|e| launch(&e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let mut left = count;
        let mut retry = 0u32;
        let mut failures: Vec<String> = Vec::new();
        while left > 0 {
            let batch = left.min(10);
            let mut req = client
                .run_task()
                .cluster(&cluster)
                .task_definition(&taskdef);
            // The launch type and a capacity provider strategy exclude each other.
            req = if strategy.is_empty() {
                req.launch_type(LaunchType::Fargate)
            } else {
                req.set_capacity_provider_strategy(Some(strategy.clone()))
            };
            let out = req
                .count(batch as i32)
                .network_configuration(network.clone())
                .overrides(
                    TaskOverride::builder()
                        .container_overrides(
                            ContainerOverride::builder()
                                .name(CONTAINER_NAME)
                                .set_command(Some(command.clone()))
                                .set_environment(Some(env.clone()).filter(|e| !e.is_empty()))
                                .build(),
                        )
                        .build(),
                )
                .set_tags(Some(self.tags()).filter(|t| !t.is_empty()))
                .started_by(started_by(&self.job, self.created))
                .send()
                .await
                .map_err(|e| aws("RunTask", e))?;
            let mut started = 0;
            for t in out.tasks() {
                if let Some(arn) = t.task_arn() {
                    self.tasks.push(arn.to_string());
                    started += 1;
                }
            }
            // Every failure is reported; the tasks that started are kept and the missing
            // ones asked for again, after a pause that doubles (capacity comes back, a zone
            // recovers).
            for f in out.failures() {
                let line = format!(
                    "RunTask failure: {}{}{}",
                    f.reason().unwrap_or("no reason given"),
                    f.detail().map(|d| format!(" ({d})")).unwrap_or_default(),
                    f.arn().map(|a| format!(" [{a}]")).unwrap_or_default()
                );
                self.pending.push(line.clone());
                failures.push(line);
            }
            left -= started.min(batch);
            if started < batch {
                retry += 1;
                if retry > RUN_TASK_RETRIES {
                    let msg = format!(
                        "RunTask started {} of {count} tasks after {RUN_TASK_RETRIES} retries; \
                         last failure: {}",
                        count - left,
                        failures.last().map_or("none reported", String::as_str)
                    );
                    if count > left {
                        // Some workers run: the job goes on with them.
                        self.pending.push(msg);
                        return Ok(());
                    }
                    return Err(launch(&msg));
                }
                let pause = RUN_TASK_BACKOFF * 2u32.pow(retry - 1);
                self.pending.push(format!(
                    "asking for the {} missing task(s) again in {:.1} s",
                    batch - started.min(batch),
                    pause.as_secs_f64()
                ));
                tokio::time::sleep(pause).await;
            }
        }
        Ok(())
    }

    /// Describes our tasks; returns a line for each newly stopped one.
    async fn stopped_tasks(&mut self) -> Result<Vec<String>, RemoteError> {
        let (Some(client), Some(cluster)) = (self.client.clone(), self.cluster.clone()) else {
            return Ok(Vec::new());
        };
        let mut lines = Vec::new();
        for chunk in self.tasks.chunks(100) {
            let out = client
                .describe_tasks()
                .cluster(&cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws("DescribeTasks", e))?;
            for t in out.tasks() {
                let arn = t.task_arn().unwrap_or("?").to_string();
                if t.last_status() != Some("STOPPED") || self.reported.contains(&arn) {
                    continue;
                }
                let codes: Vec<String> = t
                    .containers()
                    .iter()
                    .map(|c| {
                        format!(
                            "exit code {}{}",
                            c.exit_code().map_or("none".into(), |x| x.to_string()),
                            c.reason().map(|r| format!(" ({r})")).unwrap_or_default()
                        )
                    })
                    .collect();
                // awslogs names a stream PREFIX/CONTAINER/TASK-ID.
                let logs = self
                    .config
                    .cloudwatch_log_group
                    .as_ref()
                    .map(|g| {
                        let id = arn.rsplit('/').next().unwrap_or(&arn);
                        format!("; log: {g} shepseg/{CONTAINER_NAME}/{id}")
                    })
                    .unwrap_or_default();
                let line = format!(
                    "Fargate task {arn} stopped: {}; {}{logs}",
                    t.stopped_reason().unwrap_or("no reason given"),
                    codes.join(", ")
                );
                self.last_stop = Some(line.clone());
                lines.push(line);
                self.reported.insert(arn);
            }
        }
        Ok(lines)
    }

    async fn cleanup(&mut self) -> Result<(), RemoteError> {
        let Some(client) = self.client.clone() else {
            return Ok(());
        };
        let mut errors = Vec::new();
        if let Some(cluster) = self.cluster.clone() {
            for arn in &self.tasks {
                if let Err(e) = client
                    .stop_task()
                    .cluster(&cluster)
                    .task(arn)
                    .reason("shepseg job over")
                    .send()
                    .await
                {
                    errors.push(aws("StopTask", e).to_string());
                }
            }
            // A cluster with running tasks cannot be deleted: wait for them to stop.
            let deadline = Instant::now() + STOP_WAIT;
            while self.created_cluster && !self.tasks.is_empty() && Instant::now() < deadline {
                let mut running = false;
                for chunk in self.tasks.chunks(100) {
                    match client
                        .describe_tasks()
                        .cluster(&cluster)
                        .set_tasks(Some(chunk.to_vec()))
                        .send()
                        .await
                    {
                        Ok(out) => {
                            running |= out
                                .tasks()
                                .iter()
                                .any(|t| t.last_status() != Some("STOPPED"));
                        }
                        Err(_) => running = false,
                    }
                }
                if !running {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        // Report how each task ended before the cluster goes.
        match self.stopped_tasks().await {
            Ok(lines) => self.pending.extend(lines),
            Err(e) => errors.push(e.to_string()),
        }
        if let (Some(ssm), Some(name)) = (self.ssm.clone(), self.parameter.take()) {
            if let Err(e) = ssm.delete_parameter().name(&name).send().await {
                errors.push(aws("SSM DeleteParameter", e).to_string());
            }
        }
        if let Some(td) = self.task_definition.take() {
            if let Err(e) = client
                .deregister_task_definition()
                .task_definition(&td)
                .send()
                .await
            {
                errors.push(aws("DeregisterTaskDefinition", e).to_string());
            }
        }
        if self.created_cluster {
            if let Some(cluster) = self.cluster.take() {
                if let Err(e) = client.delete_cluster().cluster(&cluster).send().await {
                    errors.push(aws("DeleteCluster", e).to_string());
                }
            }
            self.created_cluster = false;
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(launch(&errors.join("; ")))
        }
    }
}

impl WorkerLauncher for FargateLauncher {
    fn launch(
        &mut self,
        rt: &Handle,
        count: usize,
        inv: &WorkerInvocation,
    ) -> Result<(), RemoteError> {
        rt.block_on(self.run_tasks(count, inv))
    }

    fn poll(&mut self, rt: &Handle) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.pending);
        // DescribeTasks at most every 5 s.
        if self
            .last_poll
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            return lines;
        }
        self.last_poll = Some(Instant::now());
        match rt.block_on(self.stopped_tasks()) {
            Ok(l) => lines.extend(l),
            Err(e) => lines.push(format!("cannot describe Fargate tasks: {e}")),
        }
        lines
    }

    fn stopped(&self) -> usize {
        self.reported.len()
    }

    fn all_stopped(&self) -> Option<String> {
        let all = !self.tasks.is_empty() && self.tasks.iter().all(|t| self.reported.contains(t));
        all.then(|| self.last_stop.clone()).flatten()
    }

    fn shutdown(&mut self, rt: &Handle) -> Result<(), RemoteError> {
        self.last_poll = None;
        rt.block_on(self.cleanup())
    }
}

/// The AWS SDK's settings from the environment (credential chain, region, endpoint), with
/// rustls for HTTPS.
pub(crate) async fn sdk_config() -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}

/// Eight random hex digits for resource names.
fn hex8() -> String {
    random_bytes()
        .map(|b| b[..4].iter().map(|x| format!("{x:02x}")).collect())
        .unwrap_or_else(|_| format!("{:08x}", std::process::id()))
}

fn launch(msg: &str) -> RemoteError {
    RemoteError::Launch(msg.to_string())
}

/// An AWS SDK error, with the service's message when there is one.
pub(crate) fn aws<E: std::error::Error + 'static>(call: &str, e: E) -> RemoteError {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    RemoteError::Launch(format!("ECS {call}: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("shepseg-fargate-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn json_and_toml_configs_load_the_same() {
        let j = write(
            "c.json",
            r#"{"containerImage": "img:1", "subnet": "subnet-1", "securityGroups": ["sg-1"],
                "memory": "2 GB", "tags": {"a": "b"}}"#,
        );
        let t = write(
            "c.toml",
            "containerImage = \"img:1\"\nsubnet = \"subnet-1\"\nsecurityGroups = [\"sg-1\"]\nmemory = \"2 GB\"\n[tags]\na = \"b\"\n",
        );
        let (a, b) = (
            FargateConfig::load(&j).unwrap(),
            FargateConfig::load(&t).unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(a.cpu, "1 vCPU");
        assert_eq!(a.memory_mib(), Some(2048));
        assert_eq!(a.worker_program, "shepseg");
    }

    #[test]
    fn subnets_and_capacity_providers() {
        let cfg = FargateConfig::parse(
            r#"{"containerImage": "i", "subnet": "a", "subnets": ["b", "a", "c"],
                "capacityProviderStrategy": [
                    {"capacityProvider": "FARGATE", "base": 1, "weight": 1},
                    {"capacityProvider": "FARGATE_SPOT", "weight": 4}]}"#,
            false,
            "inline",
        )
        .unwrap();
        assert_eq!(cfg.all_subnets(), ["a", "b", "c"]);
        assert_eq!(
            cfg.capacity_provider_strategy[1].capacity_provider,
            "FARGATE_SPOT"
        );
        assert_eq!(cfg.capacity_provider_strategy[1].base, 0);
    }

    #[test]
    fn bad_configs_name_the_file_and_key() {
        for (name, text, want) in [
            ("missing.json", r#"{"subnet": "s"}"#, "containerImage"),
            (
                "typo.json",
                r#"{"containerImage": "i", "subnet": "s", "subnetz": []}"#,
                "subnetz",
            ),
            ("nosubnet.json", r#"{"containerImage": "i"}"#, "subnet"),
            (
                "emptysubnets.json",
                r#"{"containerImage": "i", "subnets": []}"#,
                "subnet",
            ),
            (
                "cap.json",
                r#"{"containerImage": "i", "subnet": "s",
                    "capacityProviderStrategy": [{"capacityProvider": "", "weight": 1}]}"#,
                "capacityProviderStrategy",
            ),
            (
                "arch.json",
                r#"{"containerImage": "i", "subnet": "s", "cpuArchitecture": "MIPS"}"#,
                "cpuArchitecture",
            ),
        ] {
            let p = write(name, text);
            let err = FargateConfig::load(&p).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(want), "{err}");
        }
    }
}
