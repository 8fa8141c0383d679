//! The REST API, shaped like Kafka Connect's (paths, JSON and error bodies).

use std::net::SocketAddr;

use axum::extract::{Path, Query, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::config::ConnectorDefinition;
use crate::worker::{Worker, WorkerError};

/// A connector class offered by `GET /connector-plugins`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginInfo {
    /// Class name, as used in connector.class.
    pub class: &'static str,
    /// "source" or "sink".
    pub kind: &'static str,
}

#[derive(Clone)]
struct AppState {
    worker: Worker,
    plugins: &'static [PluginInfo],
}

/// A running REST server.
pub struct RestServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RestServer {
    /// Binds `host:port` (port 0 picks a free one) and serves `worker`;
    /// `plugins` lists the connector classes linked into this binary.
    pub async fn start(
        worker: Worker,
        plugins: &'static [PluginInfo],
        host: &str,
        port: u16,
    ) -> std::io::Result<RestServer> {
        let listener = tokio::net::TcpListener::bind((host, port)).await?;
        let addr = listener.local_addr()?;
        let app = router(AppState { worker, plugins });
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "REST server stopped");
            }
        });
        Ok(RestServer { addr, task })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async {
                Json(json!({"version": env!("CARGO_PKG_VERSION"), "commit": "brook"}))
            }),
        )
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route("/connectors/{name}/config", get(config).put(put_config))
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/tasks", get(tasks))
        .route(
            "/connectors/{name}/offsets",
            get(offsets).patch(alter_offsets).delete(reset_offsets),
        )
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/restart", axum::routing::post(restart))
        .route("/connector-plugins", get(plugins))
        .route("/connector-plugins/{class}/config/validate", put(validate))
        .with_state(state)
}

/// Kafka Connect's error body: `{"error_code": 404, "message": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error_code": self.0.as_u16(), "message": self.1})),
        )
            .into_response()
    }
}

impl From<WorkerError> for ApiError {
    fn from(e: WorkerError) -> Self {
        let code = match &e {
            WorkerError::NotFound(_) => StatusCode::NOT_FOUND,
            WorkerError::AlreadyExists(_) => StatusCode::CONFLICT,
            WorkerError::InvalidConfig(_)
            | WorkerError::Connector { .. }
            | WorkerError::NotStopped(_)
            | WorkerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

fn not_found(name: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("Connector {name} not found"))
}

fn connector_info(worker: &Worker, name: &str) -> Option<Value> {
    let config = worker.connector_config(name)?;
    let status = worker.status(name)?;
    let tasks: Vec<Value> = (0..status.tasks.len())
        .map(|task| json!({"connector": name, "task": task}))
        .collect();
    Some(json!({"name": name, "config": config, "tasks": tasks, "type": status.kind}))
}

/// `GET /connectors`, or with `?expand=status` / `?expand=info` (both may
/// be given) a map from name to `{"status": .., "info": ..}`.
async fn list(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult {
    let expand: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "expand")
        .flat_map(|(_, v)| v.split(','))
        .collect();
    if let Some(bad) = expand.iter().find(|e| !matches!(**e, "status" | "info")) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("unknown expand value {bad:?} (use status or info)"),
        ));
    }
    let names = worker.connectors();
    if expand.is_empty() {
        return Ok(Json(names).into_response());
    }
    let mut out = Map::new();
    for name in names {
        let mut entry = Map::new();
        if expand.contains(&"status") {
            if let Some(status) = worker.status(&name) {
                entry.insert("status".into(), json!(status));
            }
        }
        if expand.contains(&"info") {
            if let Some(info) = connector_info(&worker, &name) {
                entry.insert("info".into(), info);
            }
        }
        out.insert(name, Value::Object(entry));
    }
    Ok(Json(out).into_response())
}

async fn create(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Json(body): Json<Value>,
) -> ApiResult {
    // Kafka Connect's shape is {"name": .., "config": {..}, "initial_state"?};
    // the name may be given in either place (a different one in each is a
    // 400), and a connector created PAUSED or STOPPED runs no task until
    // resumed (KIP-980).
    let body = crate::config_file::connector_file(body).map_err(WorkerError::BadRequest)?;
    let name = worker
        .add_connector_in(&body.config, body.initial_state)
        .await?;
    let info = connector_info(&worker, &name).ok_or_else(|| not_found(&name))?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn info(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(connector_info(&worker, &name).ok_or_else(|| not_found(&name))?).into_response())
}

async fn config(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(
        worker
            .connector_config(&name)
            .ok_or_else(|| not_found(&name))?,
    )
    .into_response())
}

async fn put_config(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let created = worker.put_config(&name, &body).await?;
    let info = connector_info(&worker, &name).ok_or_else(|| not_found(&name))?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(info)).into_response())
}

async fn status(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(worker.status(&name).ok_or_else(|| not_found(&name))?).into_response())
}

async fn tasks(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    let configs = worker.task_configs(&name).ok_or_else(|| not_found(&name))?;
    let body: Vec<Value> = configs
        .into_iter()
        .enumerate()
        .map(|(task, config)| json!({"id": {"connector": name, "task": task}, "config": config}))
        .collect();
    Ok(Json(body).into_response())
}

async fn offsets(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(Json(worker.offsets(&name).await?).into_response())
}

async fn alter_offsets(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let message = worker.alter_offsets(&name, &body).await?;
    Ok(Json(json!({ "message": message })).into_response())
}

async fn reset_offsets(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    let message = worker.reset_offsets(&name).await?;
    Ok(Json(json!({ "message": message })).into_response())
}

async fn pause(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    worker.pause(&name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn resume(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    worker.resume(&name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn stop(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    worker.stop(&name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn restart(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    worker.restart(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete(
    AxumState(AppState { worker, .. }): AxumState<AppState>,
    Path(name): Path<String>,
) -> ApiResult {
    worker.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn plugins(AxumState(state): AxumState<AppState>) -> Json<Vec<Value>> {
    Json(
        state
            .plugins
            .iter()
            .map(
                |p| json!({"class": p.class, "type": p.kind, "version": env!("CARGO_PKG_VERSION")}),
            )
            .collect(),
    )
}

/// Validates a config the way Kafka Connect reports it: an error count and
/// one entry per offending key (here: one entry carrying serde's message).
async fn validate(Path(class): Path<String>, Json(body): Json<Map<String, Value>>) -> Json<Value> {
    let mut config = body;
    config.insert("connector.class".into(), Value::String(class.clone()));
    config
        .entry("name")
        .or_insert_with(|| Value::String("validate".into()));
    let result = ConnectorDefinition::from_json(&Value::Object(config.clone()))
        .map_err(|e| e.to_string())
        .and_then(|def| def.config.build().map(|_| ()).map_err(|e| e.to_string()));
    let configs: Vec<Value> = match &result {
        Ok(()) => config
            .iter()
            .map(|(k, v)| json!({"definition": {"name": k}, "value": {"name": k, "value": v, "errors": []}}))
            .collect(),
        Err(message) => vec![json!({"definition": {"name": "config"}, "value": {"name": "config", "errors": [message]}})],
    };
    Json(json!({
        "name": class,
        "error_count": usize::from(result.is_err()),
        "groups": [],
        "configs": configs,
    }))
}
