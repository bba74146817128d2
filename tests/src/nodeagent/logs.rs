//! Container logs, kept as the kubelet keeps them: one file per container run in the CRI
//! format (`TIMESTAMP STREAM F|P CONTENT`), under the pod's directory, until the pod is
//! deleted; and reading them with the options of `GET /containerLogs` (`tailLines`,
//! `timestamps`, `sinceSeconds`, `sinceTime`, `limitBytes`, `previous`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// Longest line written as one record; longer lines are split into partial (`P`) records.
const MAX_RECORD: usize = 16 * 1024;

/// The directory of a pod's logs and files: `<state>/pods/<ns>_<pod>_<uid>`.
pub fn pod_dir(state_dir: &Path, ns: &str, pod: &str, uid: &str) -> PathBuf {
    state_dir.join("pods").join(format!("{ns}_{pod}_{uid}"))
}

/// The log file of run `restart` of a container.
pub fn log_path(pod_dir: &Path, container: &str, restart: u32) -> PathBuf {
    pod_dir
        .join("logs")
        .join(container)
        .join(format!("{restart}.log"))
}

/// Marks a container run's log complete (its process ended).
pub fn mark_done(log: &Path) {
    let _ = std::fs::write(done_marker(log), b"");
}

fn done_marker(log: &Path) -> PathBuf {
    log.with_extension("log.done")
}

/// Whether a container run's log is complete.
pub fn is_done(log: &Path) -> bool {
    done_marker(log).exists()
}

fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

/// Appends records to one log file (shared by a run's stdout and stderr).
#[derive(Debug, Clone)]
pub struct LogWriter {
    file: Arc<Mutex<std::fs::File>>,
}

impl LogWriter {
    /// Creates (appends to) the log file.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogWriter {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Writes one record (`partial`: the line did not end with a newline).
    pub fn record(&self, stream: &str, content: &[u8], partial: bool) {
        let mut rec = Vec::with_capacity(content.len() + 48);
        rec.extend_from_slice(timestamp().as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.as_bytes());
        rec.extend_from_slice(if partial { b" P " } else { b" F " });
        rec.extend_from_slice(content);
        rec.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(&rec);
    }

    /// A message of the agent itself (why a container could not start), on stderr.
    pub fn note(&self, msg: &str) {
        self.record("stderr", msg.as_bytes(), false);
    }

    /// Copies a stream into the log, line by line, until it ends.
    pub async fn copy(self, stream: &'static str, r: impl AsyncRead + Unpin) {
        let mut r = BufReader::new(r);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = match (&mut r)
                .take(MAX_RECORD as u64)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(n) => n,
                Err(_) => break,
            };
            if n == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
                self.record(stream, &line, false);
            } else {
                self.record(stream, &line, true);
            }
        }
    }
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// RFC 3339 with nanoseconds.
    pub time: String,
    /// The line (without its newline).
    pub content: Vec<u8>,
    /// Did not end with a newline.
    pub partial: bool,
}

/// Parses the records of a log file's text (incomplete trailing lines are left out).
pub fn parse(bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let Some(line) = line.strip_suffix(b"\n") else {
            break;
        };
        let mut parts = line.splitn(4, |b| *b == b' ');
        let (Some(t), Some(_stream), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        out.push(Record {
            time: String::from_utf8_lossy(t).into_owned(),
            content: parts.next().unwrap_or_default().to_vec(),
            partial: tag == b"P",
        });
    }
    out
}

/// The options of a log request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the container ends.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Only lines at or after this time (RFC 3339).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<usize>,
    /// The previous run of the container.
    pub previous: bool,
}

impl LogOptions {
    /// Parses a query string (`follow=true&tailLines=10`); errors name the parameter.
    pub fn from_query(q: &str) -> Result<Self, String> {
        let mut o = LogOptions::default();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
            let v = percent_decode(v);
            let num = |what: &str| -> Result<i64, String> {
                v.parse::<i64>()
                    .map_err(|_| format!("{what}: expected an integer, got \"{v}\""))
            };
            match k {
                "follow" => o.follow = v == "true" || v == "1",
                "timestamps" => o.timestamps = v == "true" || v == "1",
                "previous" => o.previous = v == "true" || v == "1",
                "tailLines" => o.tail_lines = Some(num(k)?.max(0) as usize),
                "limitBytes" => o.limit_bytes = Some(num(k)?.max(1) as usize),
                "sinceSeconds" => {
                    o.since = Some(chrono::Utc::now() - chrono::Duration::seconds(num(k)?.max(0)))
                }
                "sinceTime" => {
                    let t = chrono::DateTime::parse_from_rfc3339(&v)
                        .map_err(|e| format!("sinceTime: {e}"))?;
                    o.since = Some(t.with_timezone(&chrono::Utc));
                }
                _ => {}
            }
        }
        Ok(o)
    }

    fn keeps(&self, r: &Record) -> bool {
        match &self.since {
            Some(s) => chrono::DateTime::parse_from_rfc3339(&r.time)
                .map(|t| t.with_timezone(&chrono::Utc) >= *s)
                .unwrap_or(true),
            None => true,
        }
    }

    /// The output of records (tail applied by the caller on the first batch).
    pub fn render(&self, records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records.iter().filter(|r| self.keeps(r)) {
            if self.timestamps {
                out.extend_from_slice(r.time.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(&r.content);
            if !r.partial {
                out.push(b'\n');
            }
        }
        out
    }

    /// The records of the first batch after `tailLines`.
    pub fn tail<'a>(&self, records: &'a [Record]) -> &'a [Record] {
        match self.tail_lines {
            Some(n) => {
                let kept: Vec<usize> = (0..records.len())
                    .filter(|i| self.keeps(&records[*i]))
                    .collect();
                let start = kept
                    .len()
                    .checked_sub(n)
                    .and_then(|i| kept.get(i).copied())
                    .unwrap_or(if n == 0 { records.len() } else { 0 });
                &records[start..]
            }
            None => records,
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The log file of a container for a request: the newest run, or the one before it
/// (`previous`). Errors are the kubelet's messages.
pub fn select_log(pod_dir: &Path, container: &str, previous: bool) -> Result<PathBuf, String> {
    let dir = pod_dir.join("logs").join(container);
    let mut runs: Vec<u32> = std::fs::read_dir(&dir)
        .map_err(|_| format!("container \"{container}\" has no logs (not started yet)"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse().ok())
        })
        .collect();
    runs.sort_unstable();
    let pick = if previous {
        runs.len().checked_sub(2).and_then(|i| runs.get(i))
    } else {
        runs.last()
    };
    match pick {
        Some(r) => Ok(log_path(pod_dir, container, *r)),
        None if previous => Err(format!(
            "previous terminated container \"{container}\" not found"
        )),
        None => Err(format!(
            "container \"{container}\" has no logs (not started yet)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_written_and_rendered_with_the_options() {
        let dir = tempfile::tempdir().unwrap();
        let p = log_path(dir.path(), "c", 0);
        let w = LogWriter::create(&p).unwrap();
        w.clone()
            .copy("stdout", &b"one\ntwo\nthree\nno-newline"[..])
            .await;
        let records = parse(&std::fs::read(&p).unwrap());
        assert_eq!(records.len(), 4);
        assert!(records[3].partial);
        let all = LogOptions::default();
        assert_eq!(all.render(&records), b"one\ntwo\nthree\nno-newline");
        let o = LogOptions::from_query("tailLines=2&timestamps=true").unwrap();
        let out = String::from_utf8(o.render(o.tail(&records))).unwrap();
        let lines: Vec<&str> = out.split('\n').collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].ends_with(" three"), "{out}");
        assert!(lines[0].starts_with(&records[2].time), "{out}");
        let o = LogOptions::from_query("tailLines=0").unwrap();
        assert!(o.render(o.tail(&records)).is_empty());
        let future = (chrono::Utc::now() + chrono::Duration::seconds(60))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let o = LogOptions::from_query(&format!("sinceTime={future}")).unwrap();
        assert!(o.render(&records).is_empty());
        let o = LogOptions::from_query("sinceSeconds=60").unwrap();
        assert_eq!(o.render(&records), all.render(&records));
        let e = LogOptions::from_query("tailLines=x").unwrap_err();
        assert!(e.contains("tailLines"), "{e}");
    }

    #[test]
    fn previous_picks_the_run_before_the_last() {
        let dir = tempfile::tempdir().unwrap();
        for r in [0, 1, 2] {
            LogWriter::create(&log_path(dir.path(), "c", r)).unwrap();
        }
        let last = select_log(dir.path(), "c", false).unwrap();
        assert!(last.ends_with("c/2.log"), "{}", last.display());
        let prev = select_log(dir.path(), "c", true).unwrap();
        assert!(prev.ends_with("c/1.log"), "{}", prev.display());
        let e = select_log(dir.path(), "other", false).unwrap_err();
        assert!(e.contains("\"other\""), "{e}");
    }
}
