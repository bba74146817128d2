//! Bounds on what the runner and the CLI accept from outside, checked before the work
//! they bound: document sizes and nesting (before YAML parsing, whose time grows
//! quadratically with nesting), file sizes (a `payloadFile` of `/dev/zero` must not fill
//! the memory), durations (Rust's `Duration` and `Instant` overflow), counts that size
//! allocations (`connections`, `numVersions`) and ports in URLs.
//!
//! Every error names the allowed range, so the caller only has to prefix the field.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// Largest experiment or result document read (a Kubernetes Secret holds at most 1 MiB).
pub const MAX_DOCUMENT_BYTES: u64 = 16 << 20;
/// Deepest nesting of `[` / `{` in a YAML document (counted naively, quotes included).
pub const MAX_FLOW_NESTING: usize = 256;
/// Widest indentation (spaces and compact `- ` indicators) of a YAML line: block nesting.
pub const MAX_INDENT: usize = 1024;
/// Longest duration accepted anywhere (`timeout`, `duration`, `--timeout`, ...): 100000h,
/// about 11 years.
pub const MAX_DURATION: Duration = Duration::from_secs(100_000 * 3600);
/// Most parallel connections of a load task (each is a task with its own buffers).
pub const MAX_CONNECTIONS: usize = 10_000;
/// Most versions in a result (endpoints, `versionValues`).
pub const MAX_VERSIONS: usize = 1_000;
/// Smallest positive `qps`: one request per 1000 s.
pub const MIN_QPS: f64 = 0.001;
/// Largest file read as a request body (`payloadFile`) or a template.
pub const MAX_PAYLOAD_BYTES: u64 = 64 << 20;
/// Largest PEM file of CA certificates (`caFile`), token or key file.
pub const MAX_PEM_BYTES: u64 = 4 << 20;

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is a directory, not a file")]
    Directory,
    #[error("is larger than {} (the limit); is it the right file?", bytes(*.0))]
    TooLarge(u64),
    #[error("is not UTF-8 text")]
    NotUtf8,
}

impl ReadError {
    /// True when the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// Read at most `max` bytes of `path` (a file, a pipe, a device): more is an error, so an
/// endless file (`/dev/zero`) stops at the limit.
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(ReadError::Directory);
    }
    let mut out = Vec::new();
    file.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    Ok(out)
}

/// [`read_capped`] as UTF-8 text.
pub fn read_text_capped(path: &Path, max: u64) -> Result<String, ReadError> {
    String::from_utf8(read_capped(path, max)?).map_err(|_| ReadError::NotUtf8)
}

/// [`read_text_capped`] on a blocking thread (an endless pipe never stalls the runtime).
pub async fn read_text_capped_async(path: &Path, max: u64) -> Result<String, ReadError> {
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(move || read_text_capped(&path, max)).await {
        Ok(r) => r,
        Err(e) => Err(ReadError::Io(std::io::Error::other(e.to_string()))),
    }
}

/// [`read_capped`] on a blocking thread.
pub async fn read_capped_async(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let path = path.to_path_buf();
    match tokio::task::spawn_blocking(move || read_capped(&path, max)).await {
        Ok(r) => r,
        Err(e) => Err(ReadError::Io(std::io::Error::other(e.to_string()))),
    }
}

/// Refuse a YAML document nested deeper than the parser handles in reasonable time (the
/// parse time grows with the square of the nesting): `[` / `{` deeper than
/// [`MAX_FLOW_NESTING`] or a line indented wider than [`MAX_INDENT`]. Counting is naive
/// (brackets in strings count too), which only matters past hundreds of unclosed brackets.
pub fn check_yaml_nesting(text: &str) -> Result<(), String> {
    if text.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the document is larger than {} (the limit)",
            bytes(MAX_DOCUMENT_BYTES)
        ));
    }
    let mut depth = 0usize;
    for (n, line) in text.lines().enumerate() {
        let indent = line
            .bytes()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'-' | b'?' | b':'))
            .count();
        if indent > MAX_INDENT {
            return Err(format!(
                "line {}: indented {indent} columns; at most {MAX_INDENT} levels of nesting are accepted",
                n + 1
            ));
        }
        for b in line.bytes() {
            match b {
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_FLOW_NESTING {
                        return Err(format!(
                            "line {}: more than {MAX_FLOW_NESTING} nested `[` / `{{`; at most {MAX_FLOW_NESTING} levels of nesting are accepted",
                            n + 1
                        ));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Check the port of a URL's authority (`host:port`): when a port is written it must be a
/// number from 1 to 65535 (the `http` crate reads `:99999`, `:-1` and `:abc` as no port).
pub fn check_port(authority: &str) -> Result<(), String> {
    // Userinfo never holds a port; IPv6 literals are in brackets.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host_port.rfind(']') {
        Some(end) => match host_port[end + 1..].strip_prefix(':') {
            Some(p) => p,
            None if host_port.len() == end + 1 => return Ok(()),
            None => return Err(format!("{host_port:?}: unexpected text after the address")),
        },
        None => match host_port.rsplit_once(':') {
            Some((_, p)) => p,
            None => return Ok(()),
        },
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "port {port:?} is not a port number; use 1 to 65535 (or leave it out for the scheme's default)"
        )),
    }
}

/// The authority (`host[:port]`, with userinfo) of an absolute URL, if it has one.
pub fn authority_of(url: &str) -> Option<&str> {
    let (_, rest) = url.trim().split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// [`check_port`] of an absolute URL (no check when it has no `scheme://`).
pub fn check_url_port(url: &str) -> Result<(), String> {
    match authority_of(url) {
        Some(a) => check_port(a),
        None => Ok(()),
    }
}

/// [`check_port`] of a server address: `host:port`, or a URL (`http://host:port`).
pub fn check_host_port(host: &str) -> Result<(), String> {
    let host = host.trim();
    if host.contains("://") {
        check_url_port(host)
    } else {
        check_port(host.split('/').next().unwrap_or_default())
    }
}

/// A duration in range: at most [`MAX_DURATION`].
pub fn check_duration_secs(secs: f64) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err("a duration must be a finite number of seconds, 0 or more".into());
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{secs}s is too long; a duration is at most 100000h (about 11 years)"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `qps`: 0 or negative (as fast as possible), or at least [`MIN_QPS`]; not NaN.
pub fn check_qps(qps: f64) -> Result<(), String> {
    if qps.is_nan() {
        return Err(
            "must be a number: requests per second (0 or negative: as fast as possible)".into(),
        );
    }
    if qps > 0.0 && qps < MIN_QPS {
        return Err(format!(
            "{qps} is too small; use at least {MIN_QPS} (one request per 1000 s), or 0 for as fast as possible"
        ));
    }
    Ok(())
}

/// `connections`: 1 to [`MAX_CONNECTIONS`].
pub fn check_connections(n: usize) -> Result<(), String> {
    if n == 0 || n > MAX_CONNECTIONS {
        return Err(format!(
            "{n} is out of range; use 1 to {MAX_CONNECTIONS} parallel connections"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_checked() {
        for ok in [
            "h",
            "h:80",
            "h:65535",
            "[::1]",
            "[::1]:8080",
            "u:p@h:1",
            "u@h",
        ] {
            assert_eq!(check_port(ok), Ok(()), "{ok}");
        }
        for bad in ["h:99999", "h:-1", "h:abc", "h:0", "h:", "[::1]:x", "[::1]x"] {
            let e = check_port(bad).expect_err(bad);
            assert!(e.contains("port") || e.contains("unexpected"), "{e}");
        }
        assert_eq!(
            check_url_port("http://h:99999/x").map_err(|e| e.contains("1 to 65535")),
            Err(true)
        );
        assert_eq!(check_url_port("http://h/x:99999"), Ok(()));
        assert_eq!(check_url_port("http://h?a=b:1"), Ok(()));
    }

    #[test]
    fn nesting_is_bounded_before_parsing() {
        assert!(check_yaml_nesting("a: [[1, {b: [2]}]]\nc:\n  - d\n").is_ok());
        let deep = format!("a: {}", "[".repeat(150_000));
        let e = check_yaml_nesting(&deep).expect_err("deep");
        assert!(e.contains("at most 256 levels"), "{e}");
        let indented = format!("a:\n{}b: 1\n", " ".repeat(5000));
        assert!(check_yaml_nesting(&indented).is_err());
        let compact = format!("a:\n{}1\n", "- ".repeat(1000));
        assert!(check_yaml_nesting(&compact).is_err());
        // Balanced brackets in scripts do not add up.
        let script = "run: |\n".to_string() + &"  [ -f x ] && echo {a}\n".repeat(10_000);
        assert!(check_yaml_nesting(&script).is_ok());
    }

    #[test]
    fn endless_and_wrong_files_are_refused() {
        let e = read_capped(Path::new("/dev/zero"), 1024).expect_err("endless");
        assert!(e.to_string().contains("larger than 1024 bytes"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let e = read_capped(dir.path(), 1024).expect_err("dir");
        assert!(matches!(e, ReadError::Directory), "{e}");
        let f = dir.path().join("bin");
        std::fs::write(&f, [0xff, 0xfe]).expect("write");
        assert!(matches!(read_text_capped(&f, 10), Err(ReadError::NotUtf8)));
        assert_eq!(read_capped(&f, 2).expect("fits"), vec![0xff, 0xfe]);
        assert!(read_capped(&dir.path().join("nope"), 2)
            .expect_err("missing")
            .is_not_found());
    }

    #[test]
    fn numbers_that_size_things_have_ranges() {
        assert!(check_duration_secs(1e20)
            .expect_err("1e20")
            .contains("100000h"));
        assert!(check_duration_secs(f64::NAN).is_err());
        assert_eq!(check_duration_secs(1.5), Ok(Duration::from_millis(1500)));
        assert!(check_qps(1e-300)
            .expect_err("tiny")
            .contains("at least 0.001"));
        assert!(check_qps(f64::NAN).is_err());
        for ok in [0.0, -1.0, 0.001, 1e300, f64::INFINITY] {
            assert_eq!(check_qps(ok), Ok(()), "{ok}");
        }
        assert!(check_connections(0).is_err());
        assert!(check_connections(1_000_000_000)
            .expect_err("1e9")
            .contains("1 to 10000"));
        assert_eq!(check_connections(10_000), Ok(()));
    }
}
