//! `brook`: run a Brook broker and work with topics, records and consumer
//! groups on any Kafka-protocol cluster.

mod bench;
mod broker_cmd;
mod client;
mod connect_cmd;
mod consume;
mod group;
mod produce;
mod topic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Command-line arguments of `brook`.
#[derive(Parser, Debug)]
#[command(
    name = "brook",
    version,
    about = "Brook: a Kafka-wire-protocol broker and tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a Brook broker in the foreground
    Broker(broker_cmd::BrokerArgs),
    /// Create, list, describe, alter and delete topics
    Topic(topic::TopicArgs),
    /// Produce one record per stdin line
    Produce(produce::ProduceArgs),
    /// Print records of a topic, one per line
    Consume(consume::ConsumeArgs),
    /// List and describe consumer groups
    Group(group::GroupArgs),
    /// Producer and consumer throughput/latency benchmarks
    Bench(bench::BenchArgs),
    /// Run Kafka-Connect-style connectors (standalone worker)
    Connect(connect_cmd::ConnectArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    init_tracing(&cli.command);
    let result = match cli.command {
        Command::Broker(args) => broker_cmd::run(args).await,
        Command::Topic(args) => topic::run(args).await,
        // Producing reads stdin and polls librdkafka synchronously; keep that
        // off the async worker threads.
        Command::Produce(args) => {
            match tokio::task::spawn_blocking(move || produce::run(args)).await {
                Ok(result) => result,
                Err(e) => Err(anyhow::anyhow!("producer task failed: {e}")),
            }
        }
        Command::Consume(args) => consume::run(args).await,
        Command::Group(args) => group::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Connect(args) => connect_cmd::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The context chain on one line, like `{:#}`, minus causes that merely
/// repeat the end of the previous message (rdkafka errors embed their
/// source in their own text).
fn error_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Logs go to stderr so `consume` output on stdout stays clean. The broker
/// logs at info by default; client commands only surface warnings (e.g.
/// librdkafka connection errors) unless RUST_LOG asks for more.
fn init_tracing(command: &Command) {
    let default = match command {
        Command::Broker(_) | Command::Connect(_) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A second initialisation cannot happen here; ignore the error rather
    // than panic if some dependency already installed a subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Keeps glibc from serving (and page-faulting in) a fresh mapping for every megabyte-sized
/// fetch or produce buffer: profiles of the consume path showed a quarter of the broker's time
/// in page faults. Memory stays in the heap instead, bounded by the largest requests in flight.
fn tune_malloc() {
    // SAFETY: mallopt only changes glibc tuning parameters and takes the allocator lock itself.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
