//! Streaming request bodies into the backend: multipart (the original API)
//! and raw bodies. Chunks go from hyper (through multer for multipart) to the
//! backend as `Bytes`; nothing here buffers a file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use hashcore::Algorithm;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;

use super::query::clean_name;
use super::Shared;
use crate::{ApiError, Backend, JobView, Upload, UploadMeta};

/// Room for multipart framing and small form fields around the file.
const MULTIPART_OVERHEAD_BYTES: u64 = 1 << 20;
/// Largest non-file form field; they are read and ignored.
const MAX_OTHER_FIELD_BYTES: u64 = 64 << 10;
/// The form field that carries the file, as in the original API.
const FILE_FIELD: &str = "file";

/// What the query string said about an upload.
#[derive(Clone, Debug)]
pub struct UploadParams {
    pub algo: Algorithm,
    pub wait: bool,
    pub name: Option<String>,
}

/// Reads the next body chunk, giving up after `idle` of silence. Trailers
/// are skipped. A transport error means the client went away.
pub async fn next_chunk(body: &mut Incoming, idle: Duration) -> Result<Option<Bytes>, ApiError> {
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                return Err(ApiError::Timeout {
                    secs: idle.as_secs(),
                })
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(ApiError::BadRequest(format!(
                    "request body could not be read: {e}"
                )))
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Reads a small body whole (GET bodies carrying an id); larger ones are
/// rejected rather than buffered.
pub async fn read_small_body(
    body: &mut Incoming,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = next_chunk(body, idle).await? {
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge {
                limit: limit as u64,
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn declared_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn upload_permit<B>(shared: &Shared<B>) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    shared
        .uploads
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy {
            retry_after: 1,
            what: format!("{} uploads in progress", shared.config.max_uploads),
        })
}

/// Pushes one chunk, enforcing the size limit.
async fn feed<U: Upload>(
    upload: &mut U,
    chunk: Bytes,
    total: &mut u64,
    max: u64,
) -> Result<(), ApiError> {
    *total += chunk.len() as u64;
    if *total > max {
        return Err(ApiError::PayloadTooLarge { limit: max });
    }
    upload.send(chunk).await
}

/// `PUT /files[/NAME]`: the body is the file.
pub async fn raw<B: Backend>(
    shared: &Shared<B>,
    req: Request<Incoming>,
    params: UploadParams,
) -> Result<JobView, ApiError> {
    let max = shared.config.max_upload;
    if declared_length(&req).is_some_and(|n| n > max) {
        return Err(ApiError::PayloadTooLarge { limit: max });
    }
    let _permit = upload_permit(shared)?;
    let mut body = req.into_body();
    let mut upload = shared.backend.begin_upload(UploadMeta {
        algo: params.algo,
        name: params.name,
    })?;
    let mut total = 0;
    let idle = shared.config.body_idle_timeout;
    while let Some(chunk) = next_chunk(&mut body, idle).await? {
        feed(&mut upload, chunk, &mut total, max).await?;
    }
    upload.finish(params.wait).await
}

/// `POST /uploadfile/`: multipart/form-data with the file in field `file`;
/// other fields are read and ignored.
pub async fn multipart<B: Backend>(
    shared: &Shared<B>,
    req: Request<Incoming>,
    params: UploadParams,
) -> Result<JobView, ApiError> {
    let max = shared.config.max_upload;
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let shown = if content_type.is_empty() {
            "none"
        } else {
            content_type.as_str()
        };
        return Err(ApiError::UnsupportedMediaType(format!(
            "expected multipart/form-data with the file in field `file`, got content type {}",
            clean_name(shown)
        )));
    }
    let boundary = multer::parse_boundary(&content_type)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            if b.is_empty() {
                Err("the boundary is empty".to_string())
            } else {
                Ok(b)
            }
        })
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "multipart content type has no usable boundary: {e}"
            ))
        })?;
    if declared_length(&req).is_some_and(|n| n > max + MULTIPART_OVERHEAD_BYTES) {
        return Err(ApiError::PayloadTooLarge { limit: max });
    }
    let _permit = upload_permit(shared)?;

    // multer sees body errors only as opaque stream failures; keep ours to
    // answer with the right status (408 for a silent client).
    let failure: Arc<Mutex<Option<ApiError>>> = Arc::default();
    let stream = body_stream(
        req.into_body(),
        shared.config.body_idle_timeout,
        failure.clone(),
    );
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(max + MULTIPART_OVERHEAD_BYTES)
            .per_field(MAX_OTHER_FIELD_BYTES)
            .for_field(FILE_FIELD, max),
    );
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut answer = None;
    let map_err = |e: multer::Error| -> ApiError {
        if let Some(err) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return err;
        }
        match e {
            multer::Error::FieldSizeExceeded { field_name, .. } => {
                if field_name.as_deref() == Some(FILE_FIELD) {
                    ApiError::PayloadTooLarge { limit: max }
                } else {
                    ApiError::PayloadTooLarge {
                        limit: MAX_OTHER_FIELD_BYTES,
                    }
                }
            }
            multer::Error::StreamSizeExceeded { .. } => ApiError::PayloadTooLarge { limit: max },
            other => ApiError::BadRequest(format!("malformed multipart body: {other}")),
        }
    };
    loop {
        let next = match form.next_field().await {
            Ok(next) => next,
            Err(e) => return answer_despite(answer, map_err(e)),
        };
        let Some(mut field) = next else { break };
        if answer.is_some() || field.name() != Some(FILE_FIELD) {
            loop {
                match field.chunk().await {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return answer_despite(answer, map_err(e)),
                }
            }
            continue;
        }
        let name = field
            .file_name()
            .map(str::to_string)
            .or_else(|| lossy_file_name(field.headers()))
            .map(|n| clean_name(&n).into_owned())
            .or(params.name.clone());
        let mut upload = shared.backend.begin_upload(UploadMeta {
            algo: params.algo,
            name,
        })?;
        let mut total = 0;
        while let Some(chunk) = field.chunk().await.map_err(map_err)? {
            feed(&mut upload, chunk, &mut total, max).await?;
        }
        // Record the job before reading the rest of the form, which may be
        // slow to arrive and cannot change the file.
        answer = Some(upload.finish(params.wait).await?);
    }
    answer
        .ok_or_else(|| ApiError::BadRequest("multipart body has no field named `file`".to_string()))
}

/// The `filename` of a Content-Disposition that is not valid UTF-8 (multer
/// then reports none), with the invalid bytes replaced: a Latin-1 name
/// should not lose the whole name.
fn lossy_file_name(headers: &hyper::HeaderMap) -> Option<String> {
    let raw = headers.get(hyper::header::CONTENT_DISPOSITION)?.as_bytes();
    let text = String::from_utf8_lossy(raw);
    let rest = &text[text.find("filename=")? + "filename=".len()..];
    let name = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split(';').next()?.trim(),
    };
    Some(name.to_string())
}

/// A failure in the form after the file: once the file is recorded, its job
/// exists and will finish, so the client gets its id rather than an error
/// that would leave a job nobody knows of. Before that, the error.
fn answer_despite(answer: Option<JobView>, err: ApiError) -> Result<JobView, ApiError> {
    match answer {
        Some(job) => {
            tracing::debug!(id = %job.id, error = %err, "ignored a broken form after its file");
            Ok(job)
        }
        None => Err(err),
    }
}

/// The body as the byte stream multer wants, with the idle timeout applied
/// and the real cause of a failure kept in `failure`.
fn body_stream(
    body: Incoming,
    idle: Duration,
    failure: Arc<Mutex<Option<ApiError>>>,
) -> impl Stream<Item = Result<Bytes, ApiError>> + Send + 'static {
    futures_util::stream::unfold(Some(body), move |state| {
        let failure = failure.clone();
        async move {
            let mut body = state?;
            match next_chunk(&mut body, idle).await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(body))),
                Ok(None) => None,
                Err(e) => {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                    Some((Err(e), None))
                }
            }
        }
    })
}
