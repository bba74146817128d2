//! `iter8`: reads experiment results (report, assert, log).
fn main() -> anyhow::Result<()> {
    anyhow::bail!("not wired yet")
}
