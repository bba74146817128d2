//! The node agent's image map: which images run as a local binary (or a host command)
//! instead of a container (`--image PATTERN=PATH`).

use std::path::PathBuf;

/// What an image runs as on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageTarget {
    /// This binary replaces the image's entrypoint (`command[0]`); the rest of `command`
    /// and `args` are its arguments.
    Binary(PathBuf),
    /// The container's `command[0]` is run as-is on the host.
    Host,
}

/// One image-map entry: `pattern` is an image name (`iter8-runner`, matching any
/// registry and tag), a full repository (`ghcr.io/x/iter8-runner`), or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMapping {
    /// Image pattern.
    pub pattern: String,
    /// What matching images run.
    pub target: ImageTarget,
}

/// Parses `PATTERN=PATH` (PATH `@host` selects [`ImageTarget::Host`]).
pub fn parse_image_mapping(s: &str) -> Result<ImageMapping, String> {
    let (p, t) = s.split_once('=').ok_or_else(|| {
        format!("image map entry '{s}': expected IMAGE=PATH, e.g. iter8-runner=target/debug/iter8-runner")
    })?;
    let target = if t == "@host" {
        ImageTarget::Host
    } else {
        ImageTarget::Binary(PathBuf::from(t))
    };
    Ok(ImageMapping {
        pattern: p.to_string(),
        target,
    })
}

/// The repository part of an image reference (no tag, no digest).
fn image_repo(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// Finds what an image runs as.
pub fn resolve_image(map: &[ImageMapping], image: &str) -> Option<ImageTarget> {
    let repo = image_repo(image);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    map.iter()
        .find(|m| {
            let pat = image_repo(&m.pattern);
            pat == "*" || pat == repo || (!pat.contains('/') && pat == last)
        })
        .map(|m| m.target.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Vec<ImageMapping> {
        [
            "iter8-runner=/bin/runner",
            "ghcr.io/x/tool=/bin/tool",
            "iter8-test/host:1=@host",
        ]
        .iter()
        .map(|s| parse_image_mapping(s).expect("entry"))
        .collect()
    }

    #[test]
    fn a_name_matches_any_registry_tag_and_digest() {
        let runner = Some(ImageTarget::Binary("/bin/runner".into()));
        for image in [
            "iter8-runner",
            "ghcr.io/iter8-rs/iter8-runner:0.1.0",
            "localhost:5000/iter8-runner@sha256:abcd",
        ] {
            assert_eq!(resolve_image(&map(), image), runner, "{image}");
        }
    }

    #[test]
    fn a_repository_matches_only_itself_and_host_entries_run_the_command() {
        assert_eq!(
            resolve_image(&map(), "ghcr.io/x/tool:2"),
            Some(ImageTarget::Binary("/bin/tool".into()))
        );
        assert_eq!(resolve_image(&map(), "docker.io/y/tool:2"), None);
        assert_eq!(
            resolve_image(&map(), "iter8-test/host:1"),
            Some(ImageTarget::Host)
        );
        assert_eq!(resolve_image(&map(), "busybox"), None);
        let all = vec![parse_image_mapping("*=@host").expect("entry")];
        assert_eq!(resolve_image(&all, "busybox:1.36"), Some(ImageTarget::Host));
    }

    #[test]
    fn a_malformed_entry_says_what_is_expected() {
        let e = parse_image_mapping("no-equals-sign").expect_err("malformed");
        assert!(e.contains("expected IMAGE=PATH"), "{e}");
    }
}
