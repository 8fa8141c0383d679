//! `brook connect standalone WORKER CONNECTOR...`: a standalone Connect
//! worker running the given connectors, with the REST API on rest.port.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use brook_connect::serde_json::{Map, Value};
use brook_connect::{serde_json, RestServer, Worker, WorkerConfig};
use clap::{Args, Subcommand};

/// Arguments of `brook connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    #[command(subcommand)]
    command: ConnectCommand,
}

#[derive(Subcommand, Debug)]
enum ConnectCommand {
    /// Run a standalone worker with the given connectors until SIGINT/SIGTERM
    Standalone {
        /// Worker config (JSON object or Java .properties)
        worker: PathBuf,
        /// Connector configs (JSON object or Java .properties)
        connectors: Vec<PathBuf>,
        /// Address the REST API binds to
        #[arg(long, default_value = "0.0.0.0")]
        rest_host: String,
    },
}

/// Runs `brook connect`.
pub async fn run(args: ConnectArgs) -> Result<()> {
    match args.command {
        ConnectCommand::Standalone {
            worker,
            connectors,
            rest_host,
        } => standalone(&worker, &connectors, &rest_host).await,
    }
}

async fn standalone(
    worker_file: &Path,
    connector_files: &[PathBuf],
    rest_host: &str,
) -> Result<()> {
    let config = WorkerConfig::from_json(&read_config(worker_file)?)
        .with_context(|| format!("in {}", worker_file.display()))?;
    // Parse every connector config before starting anything, so a typo in
    // the last file does not leave the first connectors half-started.
    let mut connector_configs = Vec::new();
    for file in connector_files {
        let value = read_config(file)?;
        brook_connect::ConnectorDefinition::from_json(&value)
            .with_context(|| format!("in {}", file.display()))?;
        connector_configs.push(value);
    }
    let port = u16::try_from(config.rest_port).context("rest.port")?;
    let worker = Worker::start(config).await.context("starting the worker")?;
    let rest = RestServer::start(worker.clone(), brook_connectors::PLUGINS, rest_host, port)
        .await
        .with_context(|| format!("binding the REST API to {rest_host}:{port}"))?;
    println!(
        "brook connect standalone: REST API on http://{}",
        rest.local_addr()
    );
    for value in connector_configs {
        let name = worker.add_connector(&value).await?;
        println!("started connector {name}");
    }
    let signal = crate::broker_cmd::wait_for_shutdown_signal().await;
    println!("{signal} received; stopping connectors");
    rest.shutdown();
    worker.shutdown().await;
    Ok(())
}

/// Reads a JSON object, or Java properties (`key=value` lines) as strings.
fn read_config(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()));
    }
    let mut map = Map::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .or_else(|| line.split_once(':'))
            .with_context(|| format!("{}: expected key=value, got {line:?}", path.display()))?;
        map.insert(
            key.trim().to_string(),
            Value::String(value.trim().to_string()),
        );
    }
    Ok(Value::Object(map))
}
