//! `iter8-runner`: runs an experiment (the image's entrypoint; also local runs).
fn main() -> anyhow::Result<()> {
    anyhow::bail!("not wired yet")
}
