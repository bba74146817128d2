//! Scripts and make targets find binaries where cargo puts them (`CARGO_TARGET_DIR`,
//! `build.target-dir`), never at a hard-coded `target/`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn target_dir(env: Option<&str>) -> String {
    let mut c = Command::new("bash");
    c.arg(repo().join("scripts/target-dir"))
        .env_remove("CARGO_BUILD_TARGET_DIR");
    match env {
        Some(dir) => c.env("CARGO_TARGET_DIR", dir),
        None => c.env_remove("CARGO_TARGET_DIR"),
    };
    let out = c.output().expect("run scripts/target-dir");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn target_dir_is_where_cargo_builds() {
    assert_eq!(
        target_dir(Some("/tmp/iter8-elsewhere")),
        "/tmp/iter8-elsewhere"
    );
    // relative: to the repository root, where the scripts run cargo
    assert_eq!(
        target_dir(Some("build-out")),
        repo().join("build-out").display().to_string()
    );
    // unset: cargo's own answer (target/ unless a cargo config says otherwise)
    let default = target_dir(None);
    assert!(Path::new(&default).is_absolute(), "{default}");
}

#[test]
fn no_script_or_make_target_hard_codes_the_target_directory() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("scripts"))
        .expect("scripts/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.push(repo().join("Makefile"));
    let mut offenders = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue; // not text
        };
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            for dir in [
                "target/debug",
                "target/release",
                "target/x86_64",
                "target/$(",
            ] {
                // a path that starts at "target/" (not "$target/..." or ".../target/...")
                let hit = line.match_indices(dir).any(|(i, _)| {
                    i == 0 || matches!(line.as_bytes()[i - 1], b' ' | b'"' | b'\'' | b'=' | b'(')
                });
                if hit {
                    offenders.push(format!("{}:{}: {line}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "use scripts/target-dir:\n{}",
        offenders.join("\n")
    );
}
