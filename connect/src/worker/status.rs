//! Connector and task states and the status shapes of the REST API.

use serde::{Deserialize, Serialize};

/// Lifecycle state of a connector or task, as Kafka Connect names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Running normally.
    Running,
    /// Paused by the user.
    Paused,
    /// Stopped by the user; tasks are shut down.
    Stopped,
    /// Failed; see the trace.
    Failed,
    /// Not (yet) running anywhere.
    Unassigned,
}

/// Status of one task (`GET /connectors/{name}/status` → tasks[]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// Task number.
    pub id: usize,
    /// Current state.
    pub state: State,
    /// Worker running the task.
    pub worker_id: String,
    /// Error text when FAILED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// State of a connector itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorState {
    /// Current state.
    pub state: State,
    /// Worker running the connector.
    pub worker_id: String,
    /// Error text when FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// Status of a connector and its tasks, shaped like Kafka Connect's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorStatus {
    /// Connector name.
    pub name: String,
    /// The connector's own state.
    pub connector: ConnectorState,
    /// Its tasks.
    pub tasks: Vec<TaskStatus>,
    /// "source" or "sink".
    #[serde(rename = "type")]
    pub kind: String,
}
