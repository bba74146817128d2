//! The HTML report in a real browser: headless Chromium (Debian `chromium`, installed by
//! scripts/setup-test-env), network off, a fresh profile. Checks that the plots render
//! (DOM and screenshot pixels), light and dark, and that the console shows no error.
//! Skipped, saying why, only when no Chromium is installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use iter8::report::html;

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// `unshare -n` (a network namespace with no interfaces) when it works here.
fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

struct Browser {
    bin: PathBuf,
    unshare: bool,
}

impl Browser {
    fn get() -> Option<Self> {
        match find_chromium() {
            Some(bin) => Some(Self {
                bin,
                unshare: unshare_works(),
            }),
            None => {
                eprintln!(
                    "SKIPPED: no chromium on PATH (scripts/setup-test-env installs Debian chromium)"
                );
                None
            }
        }
    }

    /// Run headless Chromium on `page` with `extra` arguments; network off.
    fn run(&self, page: &Path, extra: &[String]) -> Output {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            // No network even without a namespace: every fetch goes to a closed port.
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "--enable-logging=stderr",
            "--v=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend_from_slice(extra);
        args.push(format!("file://{}", page.display()));
        let mut cmd = if self.unshare {
            let mut c = Command::new("unshare");
            c.arg("-n").arg(&self.bin);
            c
        } else {
            Command::new(&self.bin)
        };
        let child = cmd
            .args(&args)
            .env("HOME", profile.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let pid = child.id();
        // Bounded: kill a hung browser rather than hang the test suite.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(out) = rx.recv_timeout(Duration::from_millis(200)) {
                return out.expect("chromium output");
            }
            if Instant::now() > deadline {
                let _ = Command::new("kill").arg(pid.to_string()).status();
                panic!("chromium did not finish within 120s");
            }
        }
    }
}

/// Console errors, uncaught exceptions and blocked loads in Chromium's log.
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Failed to load resource")
                || l.contains("net::ERR_")
        })
        .collect()
}

fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn write_report(name: &str) -> (PathBuf, String) {
    let r = common::all()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| r)
        .expect("fixture");
    let html = html::render(&r);
    let path = out_dir().join(format!("{name}.html"));
    std::fs::write(&path, &html).expect("write report");
    (path, html)
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn console_check_catches_errors() {
    // The check below is only worth something if it sees errors when there are some.
    let Some(browser) = Browser::get() else {
        return;
    };
    let page = out_dir().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>x</p><script>console.error('boom'); throw new Error('kaput');</script>\
         <img src=\"http://127.0.0.1:9/missing.png\"></body></html>",
    )
    .expect("write");
    let out = browser.run(&page, &["--dump-dom".to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors = console_errors(&stderr);
    assert!(
        errors
            .iter()
            .any(|l| l.contains("kaput") || l.contains("boom")),
        "the console check misses script errors:\n{stderr}"
    );
}

#[test]
fn plots_render_offline_without_console_errors() {
    let Some(browser) = Browser::get() else {
        return;
    };
    for name in [
        "three-versions",
        "cronjob-20-loops",
        "grpc-custom",
        "failed",
    ] {
        let (page, html) = write_report(name);
        let out = browser.run(&page, &["--dump-dom".to_string()]);
        let dom = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: chromium failed:\n{stderr}");
        assert!(
            dom.contains("Iter8 experiment report"),
            "{name}: no DOM:\n{stderr}"
        );
        // Every plot of the document is in the DOM, with its bars and curves.
        assert_eq!(count(&dom, "<svg"), count(&html, "<svg"), "{name}");
        assert_eq!(
            count(&dom, "data-plot=\"histogram\""),
            count(&html, "data-plot=\"histogram\""),
            "{name}"
        );
        assert_eq!(count(&dom, "<rect"), count(&html, "<rect"), "{name}");
        assert_eq!(
            count(&dom, "<polyline"),
            count(&html, "<polyline"),
            "{name}"
        );
        assert_eq!(
            count(&dom, "<tr class=\"slo "),
            count(&html, "<tr class=\"slo "),
            "{name}"
        );
        if name != "failed" {
            assert!(count(&dom, "<svg") >= 3, "{name}: plots expected");
        }
        let errors = console_errors(&stderr);
        assert!(errors.is_empty(), "{name}: console errors: {errors:#?}");
    }
}

/// RGB(A) pixels of a PNG.
fn decode_png(path: &Path) -> (u32, u32, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).expect("open png"));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let bpp = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    buf.truncate(info.buffer_size());
    (info.width, info.height, bpp, buf)
}

/// Pixels close to a series colour (the bars and curves of version 0, v1 blue).
fn pixels_near(img: &(u32, u32, usize, Vec<u8>), rgb: (u8, u8, u8), tol: i32) -> usize {
    let (_, _, bpp, data) = img;
    data.chunks(*bpp)
        .filter(|p| {
            (p[0] as i32 - rgb.0 as i32).abs() <= tol
                && (p[1] as i32 - rgb.1 as i32).abs() <= tol
                && (p[2] as i32 - rgb.2 as i32).abs() <= tol
        })
        .count()
}

fn pixel(img: &(u32, u32, usize, Vec<u8>), x: u32, y: u32) -> (u8, u8, u8) {
    let (w, _, bpp, data) = img;
    let i = ((y * w + x) as usize) * bpp;
    (data[i], data[i + 1], data[i + 2])
}

#[test]
fn screenshots_light_and_dark() {
    let Some(browser) = Browser::get() else {
        return;
    };
    let (page, _) = write_report("three-versions");
    let shots = [
        ("light", vec![]),
        (
            "dark",
            vec![
                "--force-dark-mode".to_string(),
                "--blink-settings=preferredColorScheme=0".to_string(),
            ],
        ),
    ];
    for (mode, extra) in shots {
        let png = out_dir().join(format!("three-versions-{mode}.png"));
        let _ = std::fs::remove_file(&png);
        let mut args = vec![
            "--window-size=1280,2600".to_string(),
            format!("--screenshot={}", png.display()),
        ];
        args.extend(extra);
        let out = browser.run(&page, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(png.is_file(), "{mode}: no screenshot:\n{stderr}");
        let img = decode_png(&png);
        assert_eq!((img.0, img.1), (1280, 2600), "{mode}");
        let (r, g, b) = pixel(&img, 4, 4);
        let luma = (r as u32 + g as u32 + b as u32) / 3;
        if mode == "light" {
            assert!(luma > 230, "light background expected, got {r},{g},{b}");
        } else {
            assert!(luma < 40, "dark background expected, got {r},{g},{b}");
        }
        // The bars of each version are drawn (series colours at 85% opacity over the
        // figure background: compare loosely).
        for (v, rgb) in [(1, (78, 121, 167)), (2, (242, 142, 43)), (3, (89, 161, 79))] {
            let n = pixels_near(&img, rgb, 40);
            assert!(n > 3000, "{mode}: version v{v} plotted with {n} pixels");
        }
        let errors = console_errors(&stderr);
        assert!(errors.is_empty(), "{mode}: console errors: {errors:#?}");
        eprintln!("screenshot: {}", png.display());
    }
}
