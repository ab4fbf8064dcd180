//! # shepseg-exec-fargate
//!
//! A tile executor whose workers are separate processes, on this machine or as AWS ECS Fargate
//! tasks, that connect back to a coordinator over TCP, pull tiles, segment them and return them.
//!
//! Filled by the remote-workers issue.
