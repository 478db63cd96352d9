//! Streaming request bodies into the backend: multipart (the original API)
//! and raw bodies. Chunks go from hyper (through multer for multipart) to the
//! backend as `Bytes`; nothing here buffers a file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use hashcore::Algorithms;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, TRANSFER_ENCODING,
};
use hyper::Request;

use super::claims;
use super::query::clean_name;
use super::Shared;
use crate::{ApiError, Backend, Claim, JobView, Upload, UploadMeta};

/// Room for multipart framing and small form fields around the file.
const MULTIPART_OVERHEAD_BYTES: u64 = 1 << 20;
/// Largest non-file form field; they are read and ignored.
const MAX_OTHER_FIELD_BYTES: u64 = 64 << 10;
/// The form field that carries the file, as in the original API.
const FILE_FIELD: &str = "file";
/// The page form's algorithm field (read by `/uploadfile-html/` only; its
/// size is bounded by `MAX_OTHER_FIELD_BYTES`). It may come several times
/// (the page's checkboxes), each a name or a comma-separated list.
const ALGO_FIELD: &str = "algo";

/// What the query string said about an upload.
#[derive(Clone, Debug)]
pub struct UploadParams {
    /// `?algo=md5,sha256`: the algorithms asked for, in order.
    pub algo: Algorithms,
    /// Whether form fields `algo` before the file part choose the
    /// algorithms (the page's plain form, which cannot set the query): the
    /// first replaces `algo`, later ones add theirs, repeats dropped.
    pub algo_field: bool,
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
                    super::observe::count_in(data.len());
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

/// The members of a list-valued header across all its lines (RFC 9110
/// section 5.3), trimmed, empty ones skipped.
fn list_members(headers: &hyper::HeaderMap, name: HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Refuses a request whose transfer codings are anything but `chunked`
/// (hyper decodes `chunked` only, and would hand the other codings' bytes on
/// as if they were the content): 501, RFC 9112 section 6.1.
pub fn transfer_coding(headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    match list_members(headers, TRANSFER_ENCODING)
        .into_iter()
        .find(|c| !c.eq_ignore_ascii_case("chunked"))
    {
        Some(coding) => Err(ApiError::NotImplemented(format!(
            "transfer coding {} is not supported; send the body as it is, or chunked",
            clean_name(&coding)
        ))),
        None => Ok(()),
    }
}

/// What an upload's head must say for its body to be exactly the bytes the
/// client meant: over HTTP/1.x a known length or chunked framing (else
/// 411; HTTP/2 frames every body, so there it may have neither), no content
/// coding hashd would have to undo (415, RFC 9110 section 8.4.1), and no
/// Content-Range, which makes the body a part of the file (400, RFC 9110
/// section 14.5).
fn upload_framing(req: &Request<Incoming>) -> Result<(), ApiError> {
    let headers = req.headers();
    if req.version() < hyper::Version::HTTP_2
        && !headers.contains_key(CONTENT_LENGTH)
        && !headers.contains_key(TRANSFER_ENCODING)
    {
        return Err(ApiError::LengthRequired(
            "an upload needs Content-Length or Transfer-Encoding: chunked".to_string(),
        ));
    }
    if let Some(coding) = list_members(headers, CONTENT_ENCODING)
        .into_iter()
        .find(|c| !c.eq_ignore_ascii_case("identity"))
    {
        return Err(ApiError::UnsupportedContentCoding(format!(
            "content coding {} is not supported: hashd hashes the bytes as sent, so send them unencoded",
            clean_name(&coding)
        )));
    }
    if headers.contains_key(CONTENT_RANGE) {
        return Err(ApiError::BadRequest(
            "Content-Range is not supported: send the whole file in one request".to_string(),
        ));
    }
    Ok(())
}

fn upload_permit<B>(
    shared: &Shared<B>,
    req: &Request<Incoming>,
    algo: &Algorithms,
) -> Result<UploadSlot, ApiError> {
    let permit = shared
        .uploads
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy {
            retry_after: 1,
            what: format!("{} uploads in progress", shared.config.max_uploads),
        })?;
    let metrics = shared.config.metrics.clone();
    if let Some(m) = &metrics {
        m.uploads.inc();
    }
    let peer = req
        .extensions()
        .get::<super::uploads::Peer>()
        .and_then(|p| p.0);
    let listed = shared
        .in_progress
        .register(peer, declared_length(req), algo.to_string());
    Ok(UploadSlot {
        _permit: permit,
        metrics,
        listed,
    })
}

/// One of the `--max-uploads` slots, counted in `uploads_in_progress` and
/// listed by `GET /uploads` while held.
struct UploadSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    metrics: Option<Arc<super::observe::HttpMetrics>>,
    listed: super::uploads::Registration,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        if let Some(m) = &self.metrics {
            m.uploads.dec();
        }
    }
}

/// What a multipart upload's head must pass before its body is read: the
/// framing, the content type and its boundary, the declared length; then an
/// upload slot. Returns the boundary and the slot.
fn multipart_head<B>(
    shared: &Shared<B>,
    req: &Request<Incoming>,
    algo: &Algorithms,
) -> Result<(String, UploadSlot), ApiError> {
    let max = shared.config.max_upload;
    upload_framing(req)?;
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
    if declared_length(req).is_some_and(|n| n > max + MULTIPART_OVERHEAD_BYTES) {
        return Err(ApiError::PayloadTooLarge { limit: max });
    }
    Ok((boundary, upload_permit(shared, req, algo)?))
}

/// Longest a refused upload's body is read and dropped (see [`linger`]).
const LINGER: Duration = Duration::from_secs(2);

/// Most bytes of a refused upload's body read and dropped (see [`linger`]).
const LINGER_BYTES: usize = 64 << 20;

/// Answers an upload refused before its body was read, reading that body
/// for a while (see [`linger`]).
pub(crate) fn refuse(req: Request<Incoming>, e: ApiError) -> Result<JobView, ApiError> {
    linger(req.into_body());
    Err(e)
}

/// Reads and drops what is left of a refused upload's body, for at most
/// [`LINGER`] and [`LINGER_BYTES`], while the answer goes out. A
/// connection closed with unread bytes in its receive buffer is reset
/// (RFC 9112 section 9.6 warns of it), and the reset can reach a client
/// that is still sending before it has read the answer: a 413 or 503 became
/// a "connection reset" for clients that do not wait for `100 Continue`
/// (`hashd upload`, Python `requests`). The drain runs beside the answer and
/// holds the connection (and so its slot) until it ends; nothing is kept.
pub(crate) fn linger(mut body: Incoming) {
    tokio::spawn(async move {
        let mut left = LINGER_BYTES;
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                left = left.saturating_sub(frame.data_ref().map_or(0, Bytes::len));
                if left == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    });
}

/// Pushes one chunk, enforcing the size limit and counting it for
/// `GET /uploads`.
async fn feed<U: Upload>(
    upload: &mut U,
    chunk: Bytes,
    total: &mut u64,
    max: u64,
    slot: &UploadSlot,
) -> Result<(), ApiError> {
    *total += chunk.len() as u64;
    slot.listed
        .entry
        .received
        .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
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
    let admitted = upload_framing(&req)
        .and_then(|()| match declared_length(&req).is_some_and(|n| n > max) {
            true => Err(ApiError::PayloadTooLarge { limit: max }),
            false => Ok(()),
        })
        .and_then(|()| claims::from_headers(req.headers(), false))
        .and_then(|expected| Ok((expected, upload_permit(shared, &req, &params.algo)?)));
    let (expected, permit) = match admitted {
        Ok(admitted) => admitted,
        Err(e) => return refuse(req, e),
    };
    let mut body = req.into_body();
    // A claimed digest is answered: the job's end is waited for.
    let wait = params.wait || !expected.is_empty();
    let mut upload = shared.backend.begin_upload(UploadMeta {
        algo: with_claimed(params.algo, &expected),
        name: params.name,
        expected,
    })?;
    let mut total = 0;
    let idle = shared.config.body_idle_timeout;
    while let Some(chunk) = next_chunk(&mut body, idle).await? {
        if let Err(e) = feed(&mut upload, chunk, &mut total, max, &permit).await {
            linger(body);
            return Err(e);
        }
    }
    upload.finish(wait).await
}

/// The algorithms asked for, then those of the claims not among them.
fn with_claimed(mut algos: Algorithms, claims: &[Claim]) -> Algorithms {
    for c in claims {
        algos.push(c.algo);
    }
    algos
}

/// `POST /uploadfile/`: multipart/form-data with the file in field `file`;
/// other fields are read and ignored.
pub async fn multipart<B: Backend>(
    shared: &Shared<B>,
    req: Request<Incoming>,
    params: UploadParams,
) -> Result<JobView, ApiError> {
    let max = shared.config.max_upload;
    let (boundary, mut expected, permit) = match multipart_head(shared, &req, &params.algo)
        .and_then(|(b, permit)| Ok((b, claims::from_headers(req.headers(), true)?, permit)))
    {
        Ok(admitted) => admitted,
        Err(e) => return refuse(req, e),
    };

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
    // The latest complete `file` part, hashed but not yet recorded. The
    // original hashed the last `file` part of a form (Starlette keeps a
    // field's last value), so a later one replaces it; and only a form that
    // reached its close delimiter is whole, so nothing is recorded before.
    let mut file: Option<B::Upload> = None;
    let mut algo = params.algo;
    // Whether an `algo` field has replaced the query's algorithms yet.
    let mut algo_given = false;
    // Claims the current `file` upload was opened with; later ones are
    // added to it before it finishes.
    let mut given = 0;
    while let Some(mut field) = form.next_field().await.map_err(map_err)? {
        // Small fields (bounded by MAX_OTHER_FIELD_BYTES) are read whole.
        if params.algo_field && field.name() == Some(ALGO_FIELD) {
            // Parsed as `?algo=` is, so that both take the same values.
            let named: Algorithms = field
                .text()
                .await
                .map_err(map_err)?
                .parse()
                .map_err(|e: hashcore::UnknownAlgorithm| ApiError::BadRequest(e.to_string()))?;
            match algo_given {
                false => algo = named,
                true => named.iter().for_each(|a| algo.push(a)),
            }
            algo_given = true;
            continue;
        }
        if field.name() != Some(FILE_FIELD) {
            let name = field.name().unwrap_or("").to_string();
            let text = field.text().await.map_err(map_err)?;
            if let Some(claim) = claims::from_form_field(&name, &text)? {
                expected.push(claim);
            }
            continue;
        }
        identity_part(field.headers())?;
        // Dropping an unrecorded upload abandons its job.
        drop(file.take());
        let name = field
            .file_name()
            .map(|n| clean_name(n).into_owned())
            .or(params.name.clone());
        let mut upload = shared.backend.begin_upload(UploadMeta {
            algo: with_claimed(algo, &expected),
            name,
            expected: expected.clone(),
        })?;
        given = expected.len();
        let mut total = 0;
        while let Some(chunk) = field.chunk().await.map_err(map_err)? {
            feed(&mut upload, chunk, &mut total, max, &permit).await?;
        }
        file = Some(upload);
    }
    let mut upload = file.ok_or_else(|| {
        ApiError::BadRequest("multipart body has no field named `file`".to_string())
    })?;
    // A claim in a field after the file can only be checked if its
    // algorithm was computed; `expect` refuses it otherwise (the upload is
    // then dropped: no job).
    upload.expect(expected[given..].to_vec())?;
    upload.finish(params.wait || !expected.is_empty()).await
}

/// Refuses a part whose bytes are encoded (`Content-Transfer-Encoding:
/// base64` or `quoted-printable`, which RFC 7578 section 4.7 deprecates):
/// hashing them as sent would answer the hash of the encoding, not of the
/// file.
fn identity_part(headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    let Some(coding) = headers.get("content-transfer-encoding") else {
        return Ok(());
    };
    let coding = String::from_utf8_lossy(coding.as_bytes());
    let coding = coding.trim();
    if ["7bit", "8bit", "binary"]
        .iter()
        .any(|ok| coding.eq_ignore_ascii_case(ok))
    {
        return Ok(());
    }
    Err(ApiError::BadRequest(format!(
        "the `file` part has Content-Transfer-Encoding {}; send the file's bytes as they are (binary)",
        clean_name(coding)
    )))
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
