//! `/admin/streams` and `/admin/jetstream`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::BODY_LIMIT;
use crate::bus::routing::StreamRoute;
use crate::config::StreamSpec;
use crate::error::ApiError;
use crate::openapi::responses::{InvalidName, StreamNotFound, Unavailable, UnsupportedMediaType};
use crate::routes::extract::read_json;
use crate::routes::extract::{StreamPath, valid_name};
use crate::state::AppState;
use crate::streams::convert::{apply_stream, new_stream_config, rfc3339, stream_spec};
use crate::streams::{About, SyncReport};
use crate::subject::StreamName;

/// A stream's configuration and state.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamView {
    pub name: String,
    /// The live configuration, in the same shape as the YAML `streams:` entries.
    pub config: StreamSpec,
    pub state: StreamState,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Whether the config file declares this stream (the gateway then
    /// re-applies the declared keys after every reconnect).
    pub declared: bool,
    /// Outcome of the last reconciliation, for declared streams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<SyncReport>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamState {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_time: String,
    pub last_time: String,
    pub consumer_count: usize,
    /// Distinct subjects stored.
    pub subjects: u64,
}

/// JetStream account usage and limits.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub memory_bytes: u64,
    pub storage_bytes: u64,
    pub streams: usize,
    pub consumers: usize,
    /// Limits; null means unlimited.
    pub limits: AccountLimits,
    pub api_requests: u64,
    pub api_errors: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountLimits {
    pub max_memory: Option<i64>,
    pub max_storage: Option<i64>,
    pub max_streams: Option<i64>,
    pub max_consumers: Option<i64>,
    pub max_ack_pending: i64,
}

/// What `purge` removes; empty (or no body) purges everything.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Only messages on this subject (wildcards allowed).
    pub subject: Option<String>,
    /// Keep this many newest messages.
    pub keep: Option<u64>,
    /// Purge everything below this sequence.
    pub seq: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeResult {
    pub purged: u64,
}

fn invalid_config(field: String, message: String) -> ApiError {
    ApiError::InvalidStreamConfig { field, message }
}

/// Reads and validates a stream spec body; `name` is the stream it is for.
async fn read_spec(
    headers: &HeaderMap,
    body: Body,
    name: Option<&str>,
) -> Result<StreamSpec, ApiError> {
    let spec: StreamSpec = read_json(headers, body, BODY_LIMIT, invalid_config).await?;
    if let (Some(path_name), Some(body_name)) = (name, spec.name.as_deref())
        && path_name != body_name
    {
        return Err(invalid_config(
            "name".into(),
            format!("must equal the stream name {path_name:?}"),
        ));
    }
    spec.validate("")
        .map_err(|e| invalid_config(e.key.trim_start_matches('.').to_owned(), e.message))?;
    Ok(spec)
}

fn view(state: &AppState, info: &async_nats::jetstream::stream::Info) -> StreamView {
    let name = info.config.name.clone();
    let reports = state.reconciler.load().stream_reports();
    StreamView {
        declared: state.reconciler.load().is_declared(&name),
        reconcile: reports.get(&name).cloned(),
        config: stream_spec(&info.config),
        state: StreamState {
            messages: info.state.messages,
            bytes: info.state.bytes,
            first_seq: info.state.first_sequence,
            last_seq: info.state.last_sequence,
            first_time: rfc3339(&info.state.first_timestamp),
            last_time: rfc3339(&info.state.last_timestamp),
            consumer_count: info.state.consumer_count,
            subjects: info.state.subjects_count,
        },
        created: rfc3339(&info.created),
        name,
    }
}

/// The routing index learns about a stream change at once.
fn route(state: &AppState, info: &async_nats::jetstream::stream::Info) {
    state
        .bus
        .routing()
        .upsert(StreamRoute::from_config(&info.config));
}

/// List streams with their configuration and state.
#[utoipa::path(get, path = "/admin/streams", tag = "admin",
    responses(
        (status = 200, description = "All streams", body = Vec<StreamView>),
        Unavailable,
    ))]
pub async fn list_streams(
    State(state): State<AppState>,
) -> Result<Json<Vec<StreamView>>, ApiError> {
    let js = state.bus.jetstream();
    let infos: Vec<_> = state
        .bus
        .api(js.streams().try_collect::<Vec<_>>(), About::Stream("*"))
        .await?;
    Ok(Json(infos.iter().map(|info| view(&state, info)).collect()))
}

/// Create a stream.
///
/// The body uses the YAML `streams:` shape (sizes in bytes, ages in seconds)
/// plus `name`. Keys left out keep NATS defaults.
#[utoipa::path(post, path = "/admin/streams", tag = "admin",
    request_body(content = StreamSpec, description = "Stream definition; `name` and `subjects` are required"),
    responses(
        (status = 201, description = "Created", body = StreamView),
        (status = 400, description = "`invalid_stream_config` (names the field) or `invalid_name`"),
        (status = 409, description = "`stream_exists` or `subjects_overlap`"),
        UnsupportedMediaType,
        Unavailable,
    ))]
pub async fn create_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<StreamView>), ApiError> {
    let spec = read_spec(&headers, body, None).await?;
    let name = spec
        .name
        .clone()
        .ok_or_else(|| invalid_config("name".into(), "is required".into()))?;
    let name = valid_name(&name, StreamName::parse)?;
    let js = state.bus.jetstream();
    let about = About::Stream(name.as_str());
    // Create-only: NATS answers a create of an identical existing stream
    // with success, so look first; an existing stream is a conflict.
    match state.bus.api(js.get_stream(name.as_str()), about).await {
        Ok(_) => return Err(ApiError::StreamExists(name.to_string())),
        Err(ApiError::StreamNotFound(_)) => {}
        Err(err) => return Err(err),
    }
    let mut stream = state
        .bus
        .api(
            js.create_stream(new_stream_config(name.as_str(), &spec)),
            about,
        )
        .await?;
    let info = stream
        .info()
        .await
        .map_err(|e| crate::streams::errors::from_nats(e, about))?;
    route(&state, info);
    Ok((StatusCode::CREATED, Json(view(&state, info))))
}

/// Get one stream.
#[utoipa::path(get, path = "/admin/streams/{name}", tag = "admin",
    params(StreamPath),
    responses(
        (status = 200, description = "The stream", body = StreamView),
        InvalidName,
        StreamNotFound,
        Unavailable,
    ))]
pub async fn get_stream(
    State(state): State<AppState>,
    StreamPath { name }: StreamPath,
) -> Result<Json<StreamView>, ApiError> {
    let stream = state
        .bus
        .api(
            state.bus.jetstream().get_stream(name.as_str()),
            About::Stream(name.as_str()),
        )
        .await?;
    Ok(Json(view(&state, stream.cached_info())))
}

/// Update a stream.
///
/// Keys given replace the live values (the subject list is replaced
/// exactly); keys left out keep theirs. Changes NATS cannot make in place
/// (e.g. `storage`) are refused with its reason.
#[utoipa::path(put, path = "/admin/streams/{name}", tag = "admin",
    params(StreamPath),
    request_body(content = StreamSpec, description = "Keys to change; `subjects` is required"),
    responses(
        (status = 200, description = "Updated", body = StreamView),
        (status = 400, description = "`invalid_stream_config`, `invalid_name` or `jetstream_rejected`"),
        StreamNotFound,
        (status = 409, description = "`subjects_overlap`"),
        UnsupportedMediaType,
        Unavailable,
    ))]
pub async fn update_stream(
    State(state): State<AppState>,
    StreamPath { name }: StreamPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<StreamView>, ApiError> {
    let spec = read_spec(&headers, body, Some(name.as_str())).await?;
    let about = About::Stream(name.as_str());
    let js = state.bus.jetstream();
    let current = state.bus.api(js.get_stream(name.as_str()), about).await?;
    let mut config = current.cached_info().config.clone();
    apply_stream(&spec, &mut config, true);
    let info = state.bus.api(js.update_stream(config), about).await?;
    route(&state, &info);
    Ok(Json(view(&state, &info)))
}

/// Delete a stream and all its messages.
///
/// A stream the config declares is created again (empty) on the gateway's
/// next reconnect.
#[utoipa::path(delete, path = "/admin/streams/{name}", tag = "admin",
    params(StreamPath),
    responses(
        (status = 204, description = "Deleted"),
        InvalidName,
        StreamNotFound,
        Unavailable,
    ))]
pub async fn delete_stream(
    State(state): State<AppState>,
    StreamPath { name }: StreamPath,
) -> Result<StatusCode, ApiError> {
    let about = About::Stream(name.as_str());
    state
        .bus
        .api(state.bus.jetstream().delete_stream(name.as_str()), about)
        .await?;
    state.bus.routing().remove(name.as_str());
    Ok(StatusCode::NO_CONTENT)
}

/// Purge messages from a stream.
///
/// No body (or `{}`) purges everything; `subject` limits the purge to one
/// subject (wildcards allowed); `keep` keeps the newest N; `seq` purges
/// everything below that sequence. `keep` and `seq` exclude each other.
#[utoipa::path(post, path = "/admin/streams/{name}/purge", tag = "admin",
    params(StreamPath),
    request_body(content = Option<PurgeRequest>, description = "What to purge"),
    responses(
        (status = 200, description = "Purged", body = PurgeResult),
        (status = 400, description = "`invalid_body`, `invalid_subject` or `invalid_name`"),
        StreamNotFound,
        Unavailable,
    ))]
pub async fn purge_stream(
    State(state): State<AppState>,
    StreamPath { name }: StreamPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PurgeResult>, ApiError> {
    let request: PurgeRequest = match headers.get(axum::http::header::CONTENT_LENGTH) {
        Some(len) if len == "0" => PurgeRequest::default(),
        None if !headers.contains_key(axum::http::header::CONTENT_TYPE) => PurgeRequest::default(),
        _ => {
            read_json(&headers, body, BODY_LIMIT, |field, message| {
                ApiError::InvalidBody(format!("`{field}`: {message}"))
            })
            .await?
        }
    };
    if request.keep.is_some() && request.seq.is_some() {
        return Err(ApiError::InvalidBody("give keep or seq, not both".into()));
    }
    if let Some(subject) = &request.subject {
        crate::subject::SubjectPattern::parse(subject)
            .map_err(|e| ApiError::invalid_subject(subject, e))?;
    }
    let about = About::Stream(name.as_str());
    let stream = state.bus.stream_handle(name.as_str(), about).await?;
    let purge = stream.purge();
    let purge = match &request.subject {
        Some(subject) => purge.filter(subject.clone()),
        None => purge,
    };
    let response = match (request.keep, request.seq) {
        (Some(keep), _) => state.bus.api(purge.keep(keep).into_future(), about).await?,
        (_, Some(seq)) => {
            state
                .bus
                .api(purge.sequence(seq).into_future(), about)
                .await?
        }
        _ => state.bus.api(purge.into_future(), about).await?,
    };
    Ok(Json(PurgeResult {
        purged: response.purged,
    }))
}

/// JetStream account usage and limits.
#[utoipa::path(get, path = "/admin/jetstream", tag = "admin",
    responses(
        (status = 200, description = "Usage and limits", body = AccountView),
        Unavailable,
    ))]
pub async fn account(State(state): State<AppState>) -> Result<Json<AccountView>, ApiError> {
    let account = state
        .bus
        .api(state.bus.jetstream().query_account(), About::Stream("*"))
        .await?;
    Ok(Json(AccountView {
        memory_bytes: account.memory,
        storage_bytes: account.storage,
        streams: account.streams,
        consumers: account.consumers,
        limits: AccountLimits {
            max_memory: account.limits.max_memory,
            max_storage: account.limits.max_storage,
            max_streams: account.limits.max_streams,
            max_consumers: account.limits.max_consumers,
            max_ack_pending: account.limits.max_ack_pending,
        },
        api_requests: account.requests.total,
        api_errors: account.requests.errors,
    }))
}
