//! `brook broker` and the embedded broker used by `brook bench --embedded`.
//!
//! This is the only module that depends on the broker library; everything
//! else speaks the Kafka protocol through rdkafka.

use std::path::PathBuf;

use anyhow::{Context, Result};
use brook_broker::{Broker, BrokerHandle};
use clap::Args;

use crate::client::parse_key_val;

/// Arguments of `brook broker`.
#[derive(Args, Debug)]
pub struct BrokerArgs {
    /// Directory holding the broker's logs and metadata
    #[arg(long, default_value = "./brook-data")]
    data_dir: PathBuf,

    /// Address to listen on, HOST:PORT (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: String,

    /// Address clients are told to connect to, HOST:PORT (default: the bound address)
    #[arg(long, value_name = "HOST:PORT")]
    advertised_listener: Option<String>,

    /// Broker config, e.g. num.partitions=3; repeatable
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_val)]
    configs: Vec<(String, String)>,
}

/// Runs a broker in the foreground until SIGINT or SIGTERM.
pub async fn run(args: BrokerArgs) -> Result<()> {
    let mut builder = Broker::builder()
        .data_dir(args.data_dir.clone())
        .listen(args.listen.clone());
    if let Some(advertised) = args.advertised_listener {
        builder = builder.advertised_listener(advertised);
    }
    for (key, value) in args.configs {
        builder = builder.config(key, value);
    }
    let handle = builder.start().await.with_context(|| {
        format!(
            "could not start the broker on {} with data dir {}",
            args.listen,
            args.data_dir.display()
        )
    })?;
    // The broker logs its start itself; this line is on stdout so scripts
    // (and `--listen ...:0` users) get the bound address regardless of RUST_LOG.
    println!(
        "brook broker listening on {} (bootstrap servers: {})",
        handle.local_addr(),
        handle.bootstrap_servers()
    );

    let signal = wait_for_shutdown_signal().await;
    tracing::info!("received {signal}, shutting down");
    handle
        .shutdown()
        .await
        .context("broker did not shut down cleanly")
}

/// Resolves with the name of the first termination signal received.
pub(crate) async fn wait_for_shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                // Still stoppable with Ctrl-C even if SIGTERM cannot be hooked.
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// A broker started inside this process for one-command benchmarking.
pub struct EmbeddedBroker {
    handle: BrokerHandle,
    data_dir: PathBuf,
    /// Only directories we invented are deleted afterwards; a user-given
    /// `--data-dir` is kept.
    remove_data_dir: bool,
}

impl EmbeddedBroker {
    /// Starts a broker on a free localhost port; without `data_dir`, uses
    /// `./brook-bench-data-<pid>` and removes it on [`EmbeddedBroker::stop`].
    pub async fn start(data_dir: Option<PathBuf>) -> Result<EmbeddedBroker> {
        let (data_dir, remove_data_dir) = match data_dir {
            Some(dir) => (dir, false),
            None => (
                PathBuf::from(format!("./brook-bench-data-{}", std::process::id())),
                true,
            ),
        };
        let started = Broker::builder()
            .data_dir(data_dir.clone())
            .listen("127.0.0.1:0")
            .start()
            .await;
        let handle = match started {
            Ok(handle) => handle,
            Err(e) => {
                if remove_data_dir {
                    let _ = std::fs::remove_dir_all(&data_dir);
                }
                return Err(e).with_context(|| {
                    format!(
                        "could not start the embedded broker in {}",
                        data_dir.display()
                    )
                });
            }
        };
        eprintln!(
            "embedded broker listening on {} (data dir {})",
            handle.local_addr(),
            data_dir.display()
        );
        Ok(EmbeddedBroker {
            handle,
            data_dir,
            remove_data_dir,
        })
    }

    /// The bootstrap address clients should use.
    pub fn bootstrap_servers(&self) -> String {
        self.handle.bootstrap_servers()
    }

    /// Shuts the broker down and removes its data dir if we created it.
    pub async fn stop(self) -> Result<()> {
        let shutdown = self
            .handle
            .shutdown()
            .await
            .context("embedded broker did not shut down cleanly");
        if self.remove_data_dir {
            if let Err(e) = std::fs::remove_dir_all(&self.data_dir) {
                eprintln!("warning: could not remove {}: {e}", self.data_dir.display());
            }
        }
        shutdown
    }
}
