//! `brook connect standalone WORKER CONNECTOR...`: a standalone Connect
//! worker running the given connectors, with the REST API on rest.port;
//! `brook connect list|status NAME`: ask a running worker's REST API.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use brook_connect::serde_json::Value;
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
    /// List a worker's connectors with their state
    List {
        /// The worker's REST API
        #[arg(
            long,
            env = "BROOK_CONNECT_URL",
            default_value = "http://127.0.0.1:8083"
        )]
        url: String,
    },
    /// Show the status of one connector and its tasks
    Status {
        /// Connector name
        name: String,
        /// The worker's REST API
        #[arg(
            long,
            env = "BROOK_CONNECT_URL",
            default_value = "http://127.0.0.1:8083"
        )]
        url: String,
        /// Print the REST API's JSON as is
        #[arg(long)]
        json: bool,
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
        ConnectCommand::List { url } => list(&url).await,
        ConnectCommand::Status { name, url, json } => status(&url, &name, json).await,
    }
}

/// `brook connect list`: NAME TYPE STATE TASKS, one connector per line.
async fn list(url: &str) -> Result<()> {
    let all = rest_get(url, "/connectors?expand=status").await?;
    let Some(all) = all.as_object() else {
        bail!("unexpected answer from {url}: {all}");
    };
    println!("{:<30} {:<8} {:<10} TASKS RUNNING", "NAME", "TYPE", "STATE");
    for (name, entry) in all {
        let status = &entry["status"];
        let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
        let running = tasks.iter().filter(|t| t["state"] == "RUNNING").count();
        println!(
            "{:<30} {:<8} {:<10} {}/{}",
            name,
            status["type"].as_str().unwrap_or("?"),
            status["connector"]["state"].as_str().unwrap_or("?"),
            running,
            tasks.len()
        );
    }
    Ok(())
}

/// `brook connect status NAME`: the connector's and each task's state.
async fn status(url: &str, name: &str, raw: bool) -> Result<()> {
    let status = rest_get(url, &format!("/connectors/{}/status", encode_path(name))).await?;
    if raw {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    println!(
        "{} ({}): {} on {}",
        text(&status["name"]),
        text(&status["type"]),
        text(&status["connector"]["state"]),
        text(&status["connector"]["worker_id"])
    );
    if let Some(trace) = status["connector"]["trace"].as_str() {
        println!("  error: {trace}");
    }
    for task in status["tasks"].as_array().cloned().unwrap_or_default() {
        print!("  task {}: {}", task["id"], text(&task["state"]));
        match task["trace"].as_str() {
            Some(trace) => println!(": {trace}"),
            None => println!(),
        }
    }
    Ok(())
}

/// Percent-encodes a path segment.
fn encode_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GETs `path` from a worker's REST API (plain HTTP/1.1) and returns its
/// JSON; a non-2xx answer becomes an error with the API's message.
async fn rest_get(url: &str, path: &str) -> Result<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let base = url
        .strip_prefix("http://")
        .with_context(|| format!("--url {url}: only http:// URLs are supported"))?;
    let (authority, prefix) = match base.split_once('/') {
        Some((a, p)) => (a, format!("/{}", p.trim_end_matches('/'))),
        None => (base, String::new()),
    };
    let prefix = prefix.trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to the worker at {url}"))?;
    let request = format!(
        "GET {prefix}{path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed HTTP answer from {url}"))?;
    let code: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("malformed HTTP status from {url}"))?;
    let body = if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        dechunk(body)
    } else {
        body.to_string()
    };
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if !(200..300).contains(&code) {
        let message = value["message"].as_str().unwrap_or(body.trim());
        bail!("{url}{path}: HTTP {code}: {message}");
    }
    Ok(value)
}

/// Joins the chunks of a chunked HTTP body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

async fn standalone(
    worker_file: &Path,
    connector_files: &[PathBuf],
    rest_host: &str,
) -> Result<()> {
    // Files are read on the blocking pool, not on the runtime's threads.
    let path = worker_file.to_path_buf();
    let worker_value =
        tokio::task::spawn_blocking(move || brook_connect::read_config_file(&path)).await??;
    let config = WorkerConfig::from_json(&worker_value)
        .with_context(|| format!("in {}", worker_file.display()))?;
    // Parse every connector config before starting anything, so a typo in
    // the last file does not leave the first connectors half-started. Each
    // file is a flat config, `{"name", "config"}` JSON (the POST /connectors
    // body) or .properties, as Kafka's standalone worker takes them.
    let mut connector_configs = Vec::new();
    for file in connector_files {
        let path = file.clone();
        let parsed = tokio::task::spawn_blocking(move || brook_connect::read_connector_file(&path))
            .await??;
        brook_connect::ConnectorDefinition::from_json(&parsed.config)
            .with_context(|| format!("in {}", file.display()))?;
        connector_configs.push(parsed);
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
    // Connectors stored in the config topic were restored by Worker::start;
    // a file's config replaces a stored one of the same name.
    for name in worker.connectors() {
        println!("restored connector {name}");
    }
    for parsed in connector_configs {
        let value = parsed.config;
        let name = value["name"].as_str().unwrap_or_default().to_string();
        let unchanged = worker.connector_config(&name).as_ref() == value.as_object();
        // initial_state applies to a connector created now; a restored one
        // keeps its stored target state.
        let created = worker
            .put_config_in(&name, &value, parsed.initial_state)
            .await?;
        let what = match (created, unchanged) {
            (true, _) => "started",
            (false, true) => "kept (unchanged)",
            (false, false) => "updated",
        };
        println!("{what} connector {name}");
    }
    let signal = crate::broker_cmd::wait_for_shutdown_signal().await;
    println!("{signal} received; stopping connectors");
    rest.shutdown();
    worker.shutdown().await;
    Ok(())
}
