use clap::Parser;

fn main() -> std::process::ExitCode {
    keyproof::cli::run(keyproof::config::Cli::parse())
}
