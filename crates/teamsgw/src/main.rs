use clap::Parser;

fn main() -> std::process::ExitCode {
    teamsgw::cli::Cli::parse().execute()
}
