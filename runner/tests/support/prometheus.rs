//! Real Prometheus (Debian package `prometheus`) and Pushgateway (Debian package
//! `prometheus-pushgateway`) started on 127.0.0.1 for a test; both are killed on drop.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::closed_port;

fn binary(path: &'static str, package: &str) -> &'static str {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} missing: run scripts/setup-test-env (installs the Debian package {package})"
    );
    path
}

/// A Prometheus scraping the given jobs every second.
pub struct Prometheus {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scrape job: its name, target (`host:port`) and whether the target's labels win
/// (`honor_labels: true`, as a Pushgateway needs).
pub struct ScrapeJob<'a> {
    pub name: &'a str,
    pub target: std::net::SocketAddr,
    pub honor_labels: bool,
}

impl Prometheus {
    /// Start Prometheus with a 1 s scrape and evaluation interval.
    pub fn start(jobs: &[ScrapeJob<'_>]) -> Prometheus {
        let bin = binary("/usr/bin/prometheus", "prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let mut yaml = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for j in jobs {
            yaml.push_str(&format!(
                "- job_name: {}\n  honor_labels: {}\n  static_configs:\n  - targets: ['{}']\n",
                j.name, j.honor_labels, j.target
            ));
        }
        std::fs::write(&config, yaml).unwrap();
        let port = closed_port();
        let data = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    /// The body of an instant query (`/api/v1/query`), None while Prometheus is not up.
    pub async fn query(&self, promql: &str) -> Option<String> {
        let url = iter8::tasks::httpcall::with_query(
            &format!("{}/api/v1/query", self.url),
            &[("query".to_string(), promql.to_string())],
        );
        let r = iter8::tasks::httpcall::send("GET", &url, &[], None, Duration::from_secs(2))
            .await
            .ok()?;
        (r.status == 200).then(|| String::from_utf8_lossy(&r.body).to_string())
    }

    /// Poll `promql` (every 0.5 s, at most 60 s) until `ok(body)`; panics with the last
    /// answer and Prometheus' log otherwise.
    pub async fn wait_for(&self, promql: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..120 {
            if let Some(body) = self.query(promql).await {
                if ok(&body) {
                    return body;
                }
                last = body;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let log =
            std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        panic!("Prometheus: {promql} did not give the expected answer within 60s; last answer: {last}\nits log:\n{log}");
    }
}

/// A Pushgateway (no persistence).
pub struct Pushgateway {
    child: Child,
    pub addr: std::net::SocketAddr,
    pub url: String,
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pushgateway {
    /// Start it and wait (at most 30 s) until it is ready.
    pub async fn start() -> Pushgateway {
        let bin = binary("/usr/bin/prometheus-pushgateway", "prometheus-pushgateway");
        let port = closed_port();
        let child = Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-pushgateway");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let pg = Pushgateway {
            child,
            addr,
            url: format!("http://{addr}"),
        };
        for _ in 0..60 {
            let ready = iter8::tasks::httpcall::send(
                "GET",
                &format!("{}/-/ready", pg.url),
                &[],
                None,
                Duration::from_secs(2),
            )
            .await;
            if matches!(ready, Ok(ref r) if r.status == 200) {
                return pg;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("the Pushgateway on {} did not get ready within 30s", pg.url);
    }

    /// Its own /metrics page (what Prometheus scrapes).
    pub async fn metrics(&self) -> String {
        let r = iter8::tasks::httpcall::send(
            "GET",
            &format!("{}/metrics", self.url),
            &[],
            None,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        String::from_utf8_lossy(&r.body).to_string()
    }
}
