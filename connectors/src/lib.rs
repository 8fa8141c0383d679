//! Brook connectors: connector classes for brook-connect.
//!
//! Each connector registers its config type under its class name (via
//! `typetag`), so linking this crate makes `FileTailSource`, `FileSink`,
//! `SqliteSource` and `SqliteSink` available to `ConnectorDefinition::from_json`.

mod file_sink;
mod file_tail;
mod sqlite;

pub use file_sink::FileSinkConfig;
pub use file_tail::{FileTailSourceConfig, ReadFrom, DEFAULT_MAX_LINE_BYTES};
pub use sqlite::{
    InsertMode, PkMode, SqliteError, SqliteSinkConfig, SqliteSourceConfig, SqliteSourceMode,
};

/// The connector classes this crate provides (for `GET /connector-plugins`).
pub const PLUGINS: &[brook_connect::PluginInfo] = &[
    brook_connect::PluginInfo {
        class: "FileTailSource",
        kind: "source",
    },
    brook_connect::PluginInfo {
        class: "FileSink",
        kind: "sink",
    },
    brook_connect::PluginInfo {
        class: "SqliteSource",
        kind: "source",
    },
    brook_connect::PluginInfo {
        class: "SqliteSink",
        kind: "sink",
    },
];
