//! `iter8`: reads experiment results (report, assert). The logic is in `iter8::cli`.
fn main() {
    std::process::exit(iter8::cli::main_with_args(std::env::args_os()));
}
