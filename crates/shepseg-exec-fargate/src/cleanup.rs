//! `fargate-cleanup`: finds and removes what Fargate jobs left behind when their coordinator
//! could not clean up (SIGKILL, a lost machine): running tasks, task definitions, SSM secret
//! parameters and private clusters, each known by the `shepseg:job`/`shepseg:created` tags, the
//! tasks' `startedBy`, the `shepseg-worker-` family and the `/shepseg/` parameter path that every
//! job gives them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_ecs::types::{ClusterField, DesiredStatus, TaskDefinitionStatus};

use crate::error::RemoteError;
use crate::fargate::{aws, sdk_config, CREATED_TAG, JOB_TAG, STOP_WAIT};

/// What a cleanup removed (each entry a resource's ARN or name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Tasks stopped.
    pub tasks: Vec<String>,
    /// Task definitions deregistered.
    pub task_definitions: Vec<String>,
    /// SSM parameters deleted.
    pub parameters: Vec<String>,
    /// Private clusters deleted.
    pub clusters: Vec<String>,
}

/// Removes what shepseg jobs started at least `older_than` ago left behind (all of it with
/// `Duration::ZERO`: only when no job is running). Uses the AWS SDK's settings from the
/// environment, as the Fargate executor does.
pub fn cleanup_leftovers(older_than: Duration) -> Result<CleanupReport, RemoteError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(cleanup(older_than))
}

/// Whether a resource made at Unix time `created` (if known) is old enough; with no age
/// limit, everything is.
fn old_enough(created: Option<u64>, older_than: Duration) -> bool {
    if older_than.is_zero() {
        return true;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    created.is_some_and(|c| now.saturating_sub(c) >= older_than.as_secs())
}

/// The creation time in a task's `startedBy` (`shepseg-JOB-CREATED`).
fn started_at(started_by: &str) -> Option<u64> {
    let rest = started_by.strip_prefix("shepseg-")?;
    let (_, created) = rest.rsplit_once('-')?;
    created.parse().ok()
}

async fn cleanup(older_than: Duration) -> Result<CleanupReport, RemoteError> {
    let sdk = sdk_config().await;
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let mut report = CleanupReport::default();

    // Every cluster: shepseg's tasks in any of them, and shepseg's private clusters.
    let clusters: Vec<String> = ecs
        .list_clusters()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| aws("ListClusters", e))?;
    let mut doomed = Vec::new();
    for chunk in clusters.chunks(100) {
        let out = ecs
            .describe_clusters()
            .set_clusters(Some(chunk.to_vec()))
            .include(ClusterField::Tags)
            .send()
            .await
            .map_err(|e| aws("DescribeClusters", e))?;
        for c in out.clusters() {
            let tag = |k: &str| {
                c.tags()
                    .iter()
                    .find(|t| t.key() == Some(k))
                    .and_then(|t| t.value())
                    .map(str::to_string)
            };
            let ours = tag(JOB_TAG).is_some()
                && c.cluster_name().is_some_and(|n| n.starts_with("shepseg-"));
            let created = tag(CREATED_TAG).and_then(|v| v.parse().ok());
            if ours && c.status() == Some("ACTIVE") && old_enough(created, older_than) {
                doomed.extend(c.cluster_arn().map(str::to_string));
            }
        }
    }
    for cluster in &clusters {
        let arns: Vec<String> = ecs
            .list_tasks()
            .cluster(cluster)
            .desired_status(DesiredStatus::Running)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(|e| aws("ListTasks", e))?;
        for chunk in arns.chunks(100) {
            let out = ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws("DescribeTasks", e))?;
            for t in out.tasks() {
                let by = t.started_by().unwrap_or("");
                let private = doomed.contains(cluster);
                let leftover = by.starts_with("shepseg-") && old_enough(started_at(by), older_than);
                if let (true, Some(arn)) = (private || leftover, t.task_arn()) {
                    ecs.stop_task()
                        .cluster(cluster)
                        .task(arn)
                        .reason("shepseg fargate-cleanup: left by a job that did not end")
                        .send()
                        .await
                        .map_err(|e| aws("StopTask", e))?;
                    report.tasks.push(arn.to_string());
                }
            }
        }
    }

    // Task definitions of the shepseg-worker-JOB families (matched here rather than with
    // familyPrefix, which moto takes as an exact family).
    let defs: Vec<String> = ecs
        .list_task_definitions()
        .status(TaskDefinitionStatus::Active)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| aws("ListTaskDefinitions", e))?;
    for td in defs
        .into_iter()
        .filter(|a| a.contains(":task-definition/shepseg-worker-"))
    {
        let out = ecs
            .describe_task_definition()
            .task_definition(&td)
            .send()
            .await
            .map_err(|e| aws("DescribeTaskDefinition", e))?;
        let created = out
            .task_definition()
            .and_then(|d| d.registered_at())
            .map(|t| t.secs().max(0) as u64);
        if old_enough(created, older_than) {
            ecs.deregister_task_definition()
                .task_definition(&td)
                .send()
                .await
                .map_err(|e| aws("DeregisterTaskDefinition", e))?;
            report.task_definitions.push(td);
        }
    }

    // The job secrets under /shepseg/.
    let pages: Vec<_> = ssm
        .get_parameters_by_path()
        .path("/shepseg")
        .recursive(true)
        .into_paginator()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| aws("SSM GetParametersByPath", e))?;
    for p in pages.iter().flat_map(|page| page.parameters()) {
        let created = p.last_modified_date().map(|t| t.secs().max(0) as u64);
        if let (true, Some(name)) = (old_enough(created, older_than), p.name()) {
            ssm.delete_parameter()
                .name(name)
                .send()
                .await
                .map_err(|e| aws("SSM DeleteParameter", e))?;
            report.parameters.push(name.to_string());
        }
    }

    // Private clusters, once their tasks have stopped.
    for cluster in doomed {
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            let out = ecs
                .list_tasks()
                .cluster(&cluster)
                .desired_status(DesiredStatus::Running)
                .send()
                .await
                .map_err(|e| aws("ListTasks", e))?;
            if out.task_arns().is_empty() || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        ecs.delete_cluster()
            .cluster(&cluster)
            .send()
            .await
            .map_err(|e| aws("DeleteCluster", e))?;
        report.clusters.push(cluster);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_by_carries_the_creation_time() {
        let by = crate::fargate::started_by("0a1b2c3d", 1_796_000_000);
        assert_eq!(started_at(&by), Some(1_796_000_000));
        assert_eq!(started_at("someone-else"), None);
        assert!(old_enough(Some(0), Duration::from_secs(3600)));
        assert!(!old_enough(Some(u64::MAX), Duration::from_secs(3600)));
        assert!(old_enough(None, Duration::ZERO));
        assert!(!old_enough(None, Duration::from_secs(1)));
    }
}
