//! Shared rdkafka plumbing: connection options, client configs, admin helpers.
//!
//! Every client subcommand talks to the cluster through rdkafka only, so the
//! same commands work against Brook and against Apache Kafka.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::metadata::Metadata;
use rdkafka::ClientConfig;

/// How long metadata, watermark and offset look-ups may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an admin operation (create/delete/alter) may take.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection options shared by every client subcommand.
#[derive(Args, Debug, Clone)]
pub struct ClientOpts {
    /// Broker(s) to bootstrap from, HOST:PORT[,HOST:PORT...]
    #[arg(
        long,
        short = 'b',
        env = "BROOK_BOOTSTRAP_SERVER",
        hide_env_values = true,
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap_server: String,

    /// Extra librdkafka client property (e.g. security.protocol=ssl); repeatable
    #[arg(
        long = "client-config",
        short = 'X',
        value_name = "KEY=VALUE",
        value_parser = parse_key_val,
        global = true
    )]
    pub client_config: Vec<(String, String)>,
}

impl ClientOpts {
    /// Base rdkafka config: bootstrap servers plus the user's extra properties.
    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_server)
            .set("client.id", "brook-cli");
        // User-supplied properties go last so they can override our defaults.
        for (key, value) in &self.client_config {
            config.set(key, value);
        }
        config
    }

    /// An admin client for topic and config operations.
    pub fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        self.config()
            .create()
            .context("could not create the Kafka admin client")
    }

    /// Same options pointed at another bootstrap address (embedded broker).
    pub fn with_bootstrap(&self, bootstrap: String) -> ClientOpts {
        ClientOpts {
            bootstrap_server: bootstrap,
            client_config: self.client_config.clone(),
        }
    }
}

/// Admin request options with the CLI's timeouts.
pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT))
}

/// Fetches metadata for all topics, with an error that names the bootstrap servers.
///
/// We always ask for all topics: asking for one topic by name can make a
/// broker with auto-creation enabled create it, which a read-only command
/// must never do.
pub fn fetch_all_metadata(
    client: &rdkafka::client::Client<impl rdkafka::client::ClientContext>,
    bootstrap: &str,
) -> Result<Metadata> {
    client
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .with_context(|| {
            format!(
                "could not fetch cluster metadata from {bootstrap} (is a broker running there?)"
            )
        })
}

/// Whether a topic is internal to the cluster (offsets, transactions).
pub fn is_internal_topic(name: &str) -> bool {
    name.starts_with("__")
}

/// Parses `key=value` for repeatable `--config`-style flags.
pub fn parse_key_val(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

/// Random-enough suffix for throwaway group ids, without pulling in `rand`.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{:08x}", std::process::id(), nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_val_parsing() {
        assert_eq!(
            parse_key_val("retention.ms=1000").unwrap(),
            ("retention.ms".to_string(), "1000".to_string())
        );
        // Only the first `=` separates; values may contain more.
        assert_eq!(parse_key_val("a=b=c").unwrap().1, "b=c");
        assert!(parse_key_val("novalue").is_err());
        assert!(parse_key_val("=x").is_err());
    }
}
