//! moto's server on loopback (ECS and S3), for the tests that need AWS: started on a free
//! port, killed on drop, with a minimal HTTP client to drive it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// moto's server, started on a free loopback port and killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SHEPSEG_MOTO_SERVER") {
        return p.into();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = [
        home.join(".cache/shepseg/moto/bin/moto_server"),
        PathBuf::from("/opt/moto/bin/moto_server"),
    ];
    candidates.into_iter().find(|p| p.exists()).expect(
        "moto_server not found: run `bash .ci/setup` (it installs moto) or set SHEPSEG_MOTO_SERVER",
    )
}

impl Moto {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new(moto_server_path())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moto = Self { child, port };
        let t = Instant::now();
        while http(port, "GET", "/moto-api/", &[], "").map(|r| r.0) != Some(200) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Keep tasks RUNNING until stopped, as real ones would be (moto otherwise advances a
        // task's status on every DescribeTasks).
        let (code, _) = http(
            port,
            "POST",
            "/moto-api/state-manager/set-transition",
            &[],
            r#"{"model_name":"ecs::task","transition":{"progression":"manual","times":1000000}}"#,
        )
        .unwrap();
        assert!(code < 300);
        moto
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An ECS JSON API call.
    pub fn ecs(&self, action: &str, body: Value) -> Value {
        self.json_api("ecs", "AmazonEC2ContainerServiceV20141113", action, body)
    }

    /// An SSM JSON API call.
    pub fn ssm(&self, action: &str, body: Value) -> Value {
        self.json_api("ssm", "AmazonSSM", action, body)
    }

    /// A call to one of the AWS JSON 1.1 APIs: `service` for the credential scope, `prefix` of
    /// the target header.
    fn json_api(&self, service: &str, prefix: &str, action: &str, body: Value) -> Value {
        let target = format!("{prefix}.{action}");
        let (code, text) = http(
            self.port,
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-amz-json-1.1"),
                ("X-Amz-Target", &target),
                ("Authorization", &auth(service)),
                ("X-Amz-Date", "20261125T000000Z"),
            ],
            &body.to_string(),
        )
        .unwrap();
        assert_eq!(code, 200, "{action}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The first subnet of moto's default VPC (EC2 query API).
    pub fn subnet(&self) -> String {
        let (code, text) = http(
            self.port,
            "POST",
            "/",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Authorization", &auth("ec2")),
                ("X-Amz-Date", "20261125T000000Z"),
            ],
            "Action=DescribeSubnets&Version=2016-11-15",
        )
        .unwrap();
        assert_eq!(code, 200, "{text}");
        let start = text.find("<subnetId>").unwrap() + "<subnetId>".len();
        let end = text[start..].find('<').unwrap();
        text[start..start + end].to_string()
    }
}

/// moto routes by the SigV4 credential scope and does not check signatures.
pub fn auth(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20261125/us-east-1/{service}/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=00"
    )
}

/// A minimal HTTP/1.1 request; returns status and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut r = rest;
        while let Some((size, after)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.push_str(after.get(..n)?);
            r = after.get(n + 2..)?;
        }
        out
    } else {
        rest.to_string()
    };
    Some((code, body))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Creates S3 bucket `name`.
    pub fn create_bucket(&self, name: &str) {
        let (code, text) = http(
            self.port,
            "PUT",
            &format!("/{name}"),
            &[
                ("Authorization", &auth("s3")),
                ("X-Amz-Date", "20261125T000000Z"),
                ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ],
            "",
        )
        .unwrap();
        assert!(code < 300, "CreateBucket {name}: {code} {text}");
    }

    /// `host:port`, as GDAL's AWS_S3_ENDPOINT wants it.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The environment under which GDAL reaches this server's S3 for `/vsis3/` paths.
    pub fn s3_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_S3_ENDPOINT", self.endpoint()),
            ("AWS_HTTPS", "NO".into()),
            ("AWS_VIRTUAL_HOSTING", "FALSE".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

/// An HTTP proxy in front of moto that makes the first RunTask calls fail in part, as ECS does
/// when capacity or ENIs run short: the call is forwarded asking for fewer tasks, and the
/// answer gets a `failures` entry for each one it lacks.
pub struct RunTaskFaults {
    port: u16,
}

impl RunTaskFaults {
    /// Proxies to `moto`; the first `calls` RunTask calls start 1 task fewer than asked
    /// (at least one), the shortfall reported with `reasons` (cycled).
    pub fn start(moto: &Moto, calls: usize, reasons: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = moto.port;
        let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(calls));
        let reasons: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let (left, reasons) = (std::sync::Arc::clone(&left), reasons.clone());
                std::thread::spawn(move || {
                    let _ = proxy_connection(conn, upstream, &left, &reasons);
                });
            }
        });
        Self { port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Serves one keep-alive client connection, request by request.
fn proxy_connection(
    mut conn: TcpStream,
    upstream: u16,
    left: &std::sync::atomic::AtomicUsize,
    reasons: &[String],
) -> Option<()> {
    use std::sync::atomic::Ordering;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // The request head, then its body by Content-Length.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 8192];
            let n = conn.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split_whitespace();
        let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + 4 + len {
            let mut chunk = [0u8; 8192];
            let n = conn.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut body = String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + len]).into_owned();
        buf.drain(..head_end + 4 + len);
        let run_task = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-amz-target") && v.ends_with(".RunTask"));
        let mut missing = 0;
        if run_task {
            let mut req: Value = serde_json::from_str(&body).ok()?;
            let asked = req["count"].as_u64().unwrap_or(1);
            if asked > 1
                && left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                    .is_ok()
            {
                missing = asked - 1;
                req["count"] = Value::from(1);
                body = req.to_string();
            }
        }
        let fwd: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(k, _)| {
                !["host", "content-length", "connection"].contains(&k.to_ascii_lowercase().as_str())
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (code, mut answer) = http(upstream, &method, &path, &fwd, &body)?;
        if missing > 0 {
            let mut v: Value = serde_json::from_str(&answer).ok()?;
            let failures: Vec<Value> = (0..missing as usize)
                .map(|i| {
                    serde_json::json!({
                        "reason": reasons[i % reasons.len()],
                        "arn": format!("arn:aws:ecs:us-east-1:123456789012:task/missing-{i}"),
                    })
                })
                .collect();
            v["failures"] = Value::from(failures);
            answer = v.to_string();
        }
        let reply = format!(
            "HTTP/1.1 {code} X\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        conn.write_all(reply.as_bytes()).ok()?;
    }
}
