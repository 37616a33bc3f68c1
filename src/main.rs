use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    message_broker::cli::run(message_broker::cli::Cli::parse()).await
}
