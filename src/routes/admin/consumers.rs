//! `/admin/streams/{name}/consumers`: durable consumers.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures::TryStreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::BODY_LIMIT;
use crate::config::ConsumerSpec;
use crate::error::ApiError;
use crate::openapi::responses::{
    ConsumerNotFound, InvalidName, StreamNotFound, Unavailable, UnsupportedMediaType,
};
use crate::routes::extract::read_json;
use crate::routes::extract::{ConsumerPath, StreamPath};
use crate::state::AppState;
use crate::streams::convert::{consumer_config, consumer_spec, rfc3339};
use crate::streams::{About, SyncReport};

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerView {
    pub name: String,
    pub stream: String,
    pub config: ConsumerSpec,
    pub state: ConsumerState,
    pub created: String,
    /// Whether the config file declares this consumer.
    pub declared: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<SyncReport>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerState {
    /// Last stream sequence delivered.
    pub delivered_seq: u64,
    /// Stream sequence below which everything is acknowledged.
    pub ack_floor_seq: u64,
    /// Messages not yet delivered.
    pub num_pending: u64,
    pub num_ack_pending: usize,
    pub num_redelivered: usize,
    /// Pull requests waiting.
    pub num_waiting: usize,
}

fn view(state: &AppState, info: &async_nats::jetstream::consumer::Info) -> ConsumerView {
    // The declaration in force (a reload replaces it), not the startup config.
    let declared = state.reconciler.load();
    let reports = declared.consumer_reports();
    ConsumerView {
        declared: declared.is_consumer_declared(&info.name),
        reconcile: reports.get(&info.name).cloned(),
        config: consumer_spec(&info.stream_name, &info.config),
        state: ConsumerState {
            delivered_seq: info.delivered.stream_sequence,
            ack_floor_seq: info.ack_floor.stream_sequence,
            num_pending: info.num_pending,
            num_ack_pending: info.num_ack_pending,
            num_redelivered: info.num_redelivered,
            num_waiting: info.num_waiting,
        },
        created: rfc3339(&info.created),
        name: info.name.clone(),
        stream: info.stream_name.clone(),
    }
}

/// List a stream's consumers.
#[utoipa::path(get, path = "/admin/streams/{name}/consumers", tag = "admin",
    params(StreamPath),
    responses(
        (status = 200, description = "The consumers", body = Vec<ConsumerView>),
        InvalidName,
        StreamNotFound,
        Unavailable,
    ))]
pub async fn list_consumers(
    State(state): State<AppState>,
    StreamPath { name }: StreamPath,
) -> Result<Json<Vec<ConsumerView>>, ApiError> {
    let about = About::Stream(name.as_str());
    // Listing does not say "no such stream" by itself; reading the stream does.
    let stream = state
        .bus
        .api(state.bus.jetstream().get_stream(name.as_str()), about)
        .await?;
    let infos: Vec<_> = state
        .bus
        .api(stream.consumers().try_collect::<Vec<_>>(), about)
        .await?;
    Ok(Json(infos.iter().map(|info| view(&state, info)).collect()))
}

/// Create a durable consumer.
///
/// Pull consumer by default; give `deliver_subject` for a push consumer.
/// Fields follow the seed's `lsr_subscriber.consumer_config` (durations in
/// seconds).
#[utoipa::path(post, path = "/admin/streams/{name}/consumers", tag = "admin",
    params(StreamPath),
    request_body(content = ConsumerSpec, description = "Consumer definition; `durable_name` is required"),
    responses(
        (status = 201, description = "Created", body = ConsumerView),
        (status = 400, description = "`invalid_consumer_config` (names the field), `invalid_name` or `jetstream_rejected`"),
        StreamNotFound,
        (status = 409, description = "`consumer_exists`"),
        UnsupportedMediaType,
        Unavailable,
    ))]
pub async fn create_consumer(
    State(state): State<AppState>,
    StreamPath { name: stream_name }: StreamPath,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ConsumerView>), ApiError> {
    let invalid = |field, message| ApiError::InvalidConsumerConfig { field, message };
    let spec: ConsumerSpec = read_json(&headers, body, BODY_LIMIT, invalid).await?;
    spec.validate("")
        .map_err(|e| invalid(e.key.trim_start_matches('.').to_owned(), e.message))?;
    if spec
        .stream
        .as_deref()
        .is_some_and(|s| s != stream_name.as_str())
    {
        return Err(invalid(
            "stream".into(),
            format!("must equal the stream in the URL ({stream_name})"),
        ));
    }
    let durable = spec
        .durable_name
        .clone()
        .ok_or_else(|| invalid("durable_name".into(), "is required".into()))?;
    let config =
        consumer_config(&durable, &spec).map_err(|m| invalid("deliver_policy".into(), m))?;
    let about = About::Consumer(stream_name.as_str(), &durable);
    let js = state.bus.jetstream();
    // NATS accepts a create of an identical existing consumer; look first.
    match state
        .bus
        .consumer_info(stream_name.as_str(), &durable)
        .await
    {
        Ok(_) => return Err(ApiError::ConsumerExists(durable)),
        Err(ApiError::ConsumerNotFound(_)) => {}
        Err(err) => return Err(err),
    }
    state
        .bus
        .api(
            js.create_consumer_strict_on_stream(config, stream_name.as_str()),
            about,
        )
        .await?;
    let info = state
        .bus
        .consumer_info(stream_name.as_str(), &durable)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &info))))
}

/// Get one consumer.
#[utoipa::path(get, path = "/admin/streams/{name}/consumers/{consumer}", tag = "admin",
    params(StreamPath, ConsumerPath),
    responses(
        (status = 200, description = "The consumer", body = ConsumerView),
        InvalidName,
        ConsumerNotFound,
        Unavailable,
    ))]
pub async fn get_consumer(
    State(state): State<AppState>,
    StreamPath { name: stream_name }: StreamPath,
    ConsumerPath { consumer }: ConsumerPath,
) -> Result<Json<ConsumerView>, ApiError> {
    let info = state
        .bus
        .consumer_info(stream_name.as_str(), consumer.as_str())
        .await?;
    Ok(Json(view(&state, &info)))
}

/// Delete a consumer.
#[utoipa::path(delete, path = "/admin/streams/{name}/consumers/{consumer}", tag = "admin",
    params(StreamPath, ConsumerPath),
    responses(
        (status = 204, description = "Deleted"),
        InvalidName,
        ConsumerNotFound,
        Unavailable,
    ))]
pub async fn delete_consumer(
    State(state): State<AppState>,
    StreamPath { name: stream_name }: StreamPath,
    ConsumerPath { consumer }: ConsumerPath,
) -> Result<StatusCode, ApiError> {
    state
        .bus
        .delete_consumer(stream_name.as_str(), consumer.as_str())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
