//! Dispatch: the original API's paths (with and without the trailing slash),
//! hashd's additions, and one answer for everything else.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use super::claims;
use super::respond::{self, Body};
use super::upload::{self, UploadParams};
use super::{docs, events, guard, pages, query, Shared};
use crate::{ApiError, Backend, JobStatus, JobView, ListQuery, DIGEST_MISMATCH};

/// A job's digests as JSON objects `{"md5": "…", …}`, in the job's order;
/// left out of an answer where the job has none (not finished, failed).
#[derive(Serialize)]
struct HashMaps {
    /// Lower-case hex.
    #[serde(serialize_with = "as_map")]
    hashes: Vec<(String, String)>,
    /// The same digests in standard base64 (RFC 4648), the form of
    /// `Content-MD5`, `x-amz-checksum-*` and RFC 9530 fields.
    #[serde(serialize_with = "as_map")]
    hashes_base64: Vec<(String, String)>,
}

impl HashMaps {
    fn of(job: &JobView) -> Option<HashMaps> {
        if job.hashes.is_empty() {
            return None;
        }
        Some(HashMaps {
            hashes: job.hashes.clone(),
            hashes_base64: claims::base64_forms(&claims::parse_hashes(&job.hashes)),
        })
    }
}

fn as_map<S: serde::Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(v.len()))?;
    for (k, h) in v {
        map.serialize_entry(k, h)?;
    }
    map.end()
}

/// Adds the digest headers of a finished job (see
/// [`claims::answer_headers`]) to an answer, and marks it with the job's
/// digests for the RFC 9530 fields [`answer_wanted`] adds.
fn with_digest_headers(mut resp: Response<Body>, job: &JobView) -> Response<Body> {
    let hashes = claims::parse_hashes(&job.hashes);
    if !hashes.is_empty() {
        resp.extensions_mut().insert(JobHashes(hashes.clone()));
    }
    for (name, value) in claims::answer_headers(&hashes) {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}

/// A finished job's digests, on the answers about it.
#[derive(Clone)]
struct JobHashes(hashcore::Hashes);

/// Adds the RFC 9530 digest fields the request asked for
/// ([`claims::Wanted`]) to an answer about a finished job; other answers
/// pass unchanged.
///
/// How hashd maps RFC 9530's terms: an answer about a job (the upload's
/// answer, a lookup) is JSON about one uploaded file, and the resource it
/// is about is that file. So `Repr-Digest` gives the file's digests, those
/// the job computed (never computed afresh, never an algorithm the job did
/// not run), as RFC 9530 appendix B.6 has the answer to a PUT give the
/// digest of the stored representation while its own content is something
/// else. `Content-Digest` is, by definition, the digest of this message's
/// content: it is computed over the JSON sent (at most a few KiB), since a
/// file digest there would make a client that checks the field reject the
/// answer.
async fn answer_wanted(headers: &hyper::HeaderMap, resp: Response<Body>) -> Response<Body> {
    let wanted = claims::Wanted::from_headers(headers);
    if wanted.is_empty() {
        return resp;
    }
    let Some(JobHashes(hashes)) = resp.extensions().get::<JobHashes>().cloned() else {
        return resp;
    };
    let (mut parts, body) = resp.into_parts();
    let mut add = |name: &'static str, value: Option<String>| {
        if let Some(v) = value.and_then(|v| hyper::header::HeaderValue::from_str(&v).ok()) {
            parts.headers.insert(name, v);
        }
    };
    add("repr-digest", claims::digest_field(&wanted.repr, &hashes));
    if wanted.content.is_empty() {
        return Response::from_parts(parts, body);
    }
    use http_body_util::BodyExt as _;
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let of_body: hashcore::Hashes = wanted
        .content
        .iter()
        .map(|&a| (a, a.digest(&bytes)))
        .collect();
    add(
        "content-digest",
        claims::digest_field(&wanted.content, &of_body),
    );
    Response::from_parts(parts, respond::full(bytes))
}

/// GET bodies carry at most an id.
const MAX_GET_BODY_BYTES: usize = 64 << 10;
const DEFAULT_PAGE_LEN: usize = 100;
const MAX_PAGE_LEN: usize = 1000;

/// The original upload answer, plus hashd's fields.
#[derive(Serialize)]
struct UploadAnswer<'a> {
    success: bool,
    id: Option<&'a str>,
    celery_status: Option<&'a str>,
    celery_id: Option<&'a str>,
    status: Option<&'a str>,
    algorithm: Option<&'a str>,
    hash: Option<&'a str>,
    size: Option<u64>,
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    maps: Option<HashMaps>,
}

/// The original lookup answer, plus hashd's fields.
#[derive(Serialize)]
struct HashAnswer<'a> {
    status: &'a str,
    hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    maps: Option<HashMaps>,
}

pub(crate) async fn handle<B: Backend>(
    shared: &Shared<B>,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let path = match raw_path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let params = query::pairs(req.uri().query().unwrap_or(""));
    if let Err(e) = request_target(&req) {
        return respond::error(&e);
    }
    if !KNOWN_METHODS.contains(&method.as_str()) {
        return respond::error(&ApiError::NotImplemented(format!(
            "method {} is not implemented",
            query::clean_name(method.as_str())
        )));
    }
    if method == Method::OPTIONS && raw_path == "*" {
        return respond::options(SERVER_METHODS);
    }
    let Some(allow) = allowed_methods(path) else {
        return respond::error(&ApiError::NotFound(format!(
            "no route for {method} {}",
            query::clean_name(&raw_path)
        )));
    };
    // Upload paths take no GET; their errors have the upload answer's shape.
    let refuse = |e: ApiError| match allow.contains("GET") {
        false => upload_answer(Err(e)),
        true => respond::error(&e),
    };
    let cors = &shared.config.cors;
    if method == Method::OPTIONS {
        if let Some(resp) = guard::preflight(cors, req.headers(), allow) {
            return resp;
        }
    }
    if let Some(reason) = guard::cross_site_refusal(cors, &method, req.headers()) {
        return refuse(ApiError::Forbidden {
            reason,
            challenge: None,
        });
    }
    if let (Some(auth), Some(scope)) = (&shared.config.auth, route_scope(path, &method)) {
        if let Err(r) = auth.check(req.headers(), scope) {
            let (reason, challenge) = (r.message(), r.challenge().to_str().unwrap_or("").into());
            return refuse(match r {
                guard::Refusal::Scope(_) => ApiError::Forbidden {
                    reason,
                    challenge: Some(challenge),
                },
                _ => ApiError::Unauthorized { reason, challenge },
            });
        }
    }
    let headers = req.headers().clone();
    let resp = dispatch(shared, req, &method, path, &raw_path, &params, allow).await;
    let mut resp = answer_wanted(&headers, resp).await;
    guard::decorate(cors, &headers, &mut resp);
    resp
}

/// The scope a request needs when tokens are on; `None` for the probes
/// (`/health`, `/ready`), the API's description (`/openapi.json`, `/docs`)
/// and `OPTIONS`, which stay open.
fn route_scope(path: &str, method: &Method) -> Option<guard::Scope> {
    use guard::Scope;
    if *method == Method::OPTIONS {
        return None;
    }
    match path {
        "/health" | "/ready" | "/openapi.json" | "/docs" => None,
        p if p.starts_with("/docs/") => None,
        // `/uploads` names clients' addresses.
        "/stats" | "/cluster" | "/metrics" | "/uploads" => Some(Scope::Admin),
        "/uploadfile" | "/uploadfile-html" | "/files" => Some(Scope::Upload),
        p if p.starts_with("/files/") => Some(Scope::Upload),
        _ => Some(Scope::Read),
    }
}

/// The route's answer, once the request may have it.
async fn dispatch<B: Backend>(
    shared: &Shared<B>,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
    raw_path: &str,
    params: &[(String, String)],
    allow: &'static str,
) -> Response<Body> {
    if let Err(e) = upload::transfer_coding(req.headers()).and(query::single_valued(params)) {
        // Upload paths take no GET; their errors have the upload answer's shape.
        return match allow.contains("GET") {
            false if !matches!(e, ApiError::NotImplemented(_)) => {
                upload_answer(upload::refuse(req, e))
            }
            false => upload_answer(Err(e)),
            true => respond::error(&e),
        };
    }
    // HEAD is answered wherever GET is (RFC 9110 section 9.3.2); hyper
    // sends the head of the GET answer without its body.
    let route = match *method {
        Method::HEAD => Method::GET,
        ref m => m.clone(),
    };
    match (&route, path) {
        (&Method::OPTIONS, _) => respond::options(allow),
        (&Method::POST, "/uploadfile") => match upload_params(params) {
            Ok(p) => upload_answer(upload::multipart(shared, req, p).await),
            Err(e) => upload_answer(upload::refuse(req, e)),
        },
        (&Method::PUT | &Method::POST, "/files") => match upload_params(params) {
            Ok(p) => upload_answer(upload::raw(shared, req, p).await),
            Err(e) => upload_answer(upload::refuse(req, e)),
        },
        (&Method::PUT | &Method::POST, p) if p.starts_with("/files/") => {
            match upload_params(params) {
                Ok(mut p) => {
                    let name = query::decode_component(&raw_path["/files/".len()..]);
                    p.name = p.name.or(Some(query::clean_name(&name).into_owned()));
                    upload_answer(upload::raw(shared, req, p).await)
                }
                Err(e) => upload_answer(upload::refuse(req, e)),
            }
        }
        (&Method::GET, "/gethash" | "/get_hash/gethash") => {
            let wait = match lookup_wait(params) {
                Ok(w) => w,
                Err(e) => return respond::error(&e),
            };
            let id = match id_from_query_or_body(shared, req, params).await {
                Ok(id) => id,
                Err(e) => return respond::error(&e),
            };
            hash_answer(shared, id, wait).await
        }
        (&Method::GET, p) if p.starts_with("/gethash/") => match lookup_wait(params) {
            Ok(wait) => {
                let id = query::decode_component(&p["/gethash/".len()..]);
                hash_answer(shared, Some(id), wait).await
            }
            Err(e) => respond::error(&e),
        },
        (&Method::GET, "/" | "/uploadform") => {
            respond::html(StatusCode::OK, pages::form_page(shared.config.max_upload))
        }
        (&Method::POST, "/uploadfile-html") => match upload_params(params) {
            Ok(mut p) => match upload::multipart(shared, req, {
                p.algo_field = true;
                p
            })
            .await
            {
                Ok(job) if is_mismatch(&job) => {
                    respond::html(StatusCode::BAD_REQUEST, pages::job_page(&job))
                }
                // Post/Redirect/Get: reloading the job page sends nothing.
                Ok(job) => {
                    let (location, page) = pages::job_location(&job);
                    let mut resp = respond::html(StatusCode::SEE_OTHER, page);
                    if let Ok(v) = hyper::header::HeaderValue::from_str(&location) {
                        resp.headers_mut().insert(hyper::header::LOCATION, v);
                    }
                    about_job(resp, &job.id)
                }
                Err(e) => respond::with_error_headers(
                    respond::html(e.status(), pages::error_page(&e)),
                    &e,
                ),
            },
            Err(e) => {
                upload::linger(req.into_body());
                respond::html(e.status(), pages::error_page(&e))
            }
        },
        (&Method::GET, "/gethash-form") => {
            let id = query::get(params, "file_id")
                .unwrap_or("")
                .trim()
                .to_string();
            match shared.backend.lookup(&id).await {
                Ok(Some(job)) => respond::html(StatusCode::OK, pages::job_page(&job)),
                Ok(None) => respond::html(StatusCode::NOT_FOUND, pages::invalid_id_page(&id)),
                Err(e) => respond::html(e.status(), pages::error_page(&e)),
            }
        }
        (&Method::GET, "/jobs") => match list_query(params) {
            Ok(q) => match shared.backend.list(q).await {
                Ok(page) => respond::json(StatusCode::OK, &page),
                Err(e) => respond::error(&e),
            },
            Err(e) => respond::error(&e),
        },
        (&Method::GET, "/stats") => match shared.backend.stats().await {
            Ok(mut stats) => {
                if let Some(o) = stats.as_object_mut() {
                    o.insert(
                        "uploads_in_progress".into(),
                        shared.in_progress.count().into(),
                    );
                }
                respond::json(StatusCode::OK, &stats)
            }
            Err(e) => respond::error(&e),
        },
        (&Method::GET, "/uploads") => respond::json(StatusCode::OK, &shared.in_progress.snapshot()),
        (&Method::GET, p) if p.starts_with(JOB_EVENTS.path) => {
            let id = &p[JOB_EVENTS.path.len()..p.len() - JOB_EVENTS.suffix.len()];
            let last_id = events::last_event_id(req.headers());
            events::job_events(shared, &query::decode_component(id), last_id).await
        }
        (&Method::GET, "/health") => {
            respond::json(StatusCode::OK, &serde_json::json!({"ok": true}))
        }
        (&Method::GET, "/ready") => match shared.backend.ready().await {
            Ok(()) => respond::json(StatusCode::OK, &serde_json::json!({"ready": true})),
            Err(why) => respond::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"ready": false, "error": why}),
            ),
        },
        (&Method::GET, "/metrics") => match shared.backend.metrics() {
            Some(text) => respond::metrics(text),
            None => respond::error(&ApiError::NotFound("no metrics".into())),
        },
        (&Method::GET, "/cluster") => match shared.backend.cluster().await {
            Ok(nodes) => respond::json(StatusCode::OK, &nodes),
            Err(e) => respond::error(&e),
        },
        (&Method::GET, "/openapi.json") => respond::bytes("application/json", docs::openapi_json()),
        (&Method::GET, "/docs") => respond::html(StatusCode::OK, docs::DOCS_PAGE.to_string()),
        (&Method::GET, p) if p.starts_with("/docs/") => match docs::asset(&p["/docs/".len()..]) {
            Some((content_type, data)) => {
                respond::bytes(content_type, bytes::Bytes::from_static(data))
            }
            None => respond::error(&ApiError::NotFound(format!(
                "no such file {}",
                query::clean_name(raw_path)
            ))),
        },
        (_, p) => respond::error(&ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: p.to_string(),
            allow,
        }),
    }
}

/// The methods RFC 9110 section 9 defines, plus PATCH (RFC 5789) and QUERY
/// (draft-ietf-httpbis-safe-method-w-body, which API testers such as
/// schemathesis send): any other is 501 (section 9.1), while these get 405
/// where a path does not take them.
const KNOWN_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY",
];

/// What `OPTIONS *` answers: every method some path takes.
const SERVER_METHODS: &str = "GET, HEAD, POST, PUT, OPTIONS";

/// RFC 9112 section 3.2: an HTTP/1.1 request without a Host, and any
/// request with two or with an invalid one, is 400. hashd does not route by
/// host, so the value is only checked (an empty one is allowed, as the RFC
/// allows it when the target has no authority).
fn request_target(req: &Request<Incoming>) -> Result<(), ApiError> {
    let mut hosts = req.headers().get_all(hyper::header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(ApiError::BadRequest("more than one Host header".into())),
        (None, _) if req.version() == hyper::Version::HTTP_11 => {
            return Err(ApiError::BadRequest(
                "an HTTP/1.1 request needs a Host header".into(),
            ))
        }
        (None, _) => return Ok(()),
        (Some(host), None) => host.as_bytes(),
    };
    let valid = host.is_empty()
        || (!host.contains(&b'@') && hyper::http::uri::Authority::try_from(host).is_ok());
    match valid {
        true => Ok(()),
        false => Err(ApiError::BadRequest(format!(
            "invalid Host header {:?}",
            query::clean_name(&String::from_utf8_lossy(host))
        ))),
    }
}

/// One routed path and the methods it answers.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// The path without its trailing slash, or, if `prefix`, what every
    /// path of the route starts with (`/files/` for `/files/NAME`).
    pub path: &'static str,
    /// Whether `path` is a prefix followed by one parameter.
    pub prefix: bool,
    /// What a prefix route's paths end with after the parameter (`/events`
    /// for `/jobs/ID/events`); empty for none.
    pub suffix: &'static str,
    /// The methods, as the `Allow` header lists them (RFC 9110 section
    /// 10.2.1).
    pub allow: &'static str,
    /// The route as a metric label: the path, with a placeholder for a
    /// prefix's parameter (a fixed set, so clients cannot grow it).
    pub label: &'static str,
}

const READ: &str = "GET, HEAD, OPTIONS";
const UPLOAD: &str = "POST, OPTIONS";
const RAW_UPLOAD: &str = "PUT, POST, OPTIONS";

const fn exact(path: &'static str, allow: &'static str) -> Route {
    Route {
        path,
        prefix: false,
        suffix: "",
        allow,
        label: path,
    }
}

const fn prefix(path: &'static str, label: &'static str, allow: &'static str) -> Route {
    Route {
        path,
        prefix: true,
        suffix: "",
        allow,
        label,
    }
}

/// `GET /jobs/ID/events`: a prefix route whose parameter is followed by
/// `/events`.
const JOB_EVENTS: Route = Route {
    path: "/jobs/",
    prefix: true,
    suffix: "/events",
    allow: READ,
    label: "/jobs/{id}/events",
};

/// Every route, in the order they are matched. [`handle`] must dispatch
/// exactly these (a test asks every route every method and compares), and
/// the OpenAPI document must list exactly these (another test compares).
pub const ROUTES: &[Route] = &[
    exact("/uploadfile", UPLOAD),
    exact("/uploadfile-html", UPLOAD),
    exact("/files", RAW_UPLOAD),
    exact("/", READ),
    exact("/uploadform", READ),
    exact("/gethash", READ),
    exact("/get_hash/gethash", READ),
    exact("/gethash-form", READ),
    exact("/jobs", READ),
    exact("/uploads", READ),
    exact("/stats", READ),
    exact("/health", READ),
    exact("/ready", READ),
    exact("/cluster", READ),
    exact("/metrics", READ),
    exact("/openapi.json", READ),
    exact("/docs", READ),
    prefix("/files/", "/files/{name}", RAW_UPLOAD),
    prefix("/gethash/", "/gethash/{id}", READ),
    prefix("/docs/", "/docs/{asset}", READ),
    JOB_EVENTS,
];

/// The route of a path (without its trailing slash), if any.
fn route_of(p: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| match r.prefix {
        true => {
            p.len() > r.path.len() + r.suffix.len()
                && p.starts_with(r.path)
                && p.ends_with(r.suffix)
        }
        false => p == r.path,
    })
}

/// The methods a path (without its trailing slash) answers, or `None` for
/// no route.
pub(crate) fn allowed_methods(p: &str) -> Option<&'static str> {
    route_of(p).map(|r| r.allow)
}

/// A request path's route as a metric label; `other` for no route.
pub(crate) fn route_label(raw: &str) -> &'static str {
    let p = match raw.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    route_of(p).map_or("other", |r| r.label)
}

/// `?algo=` (or `algorithm=`): one name or several, comma-separated
/// (`md5,sha256`); md5 when absent.
fn upload_params(params: &[(String, String)]) -> Result<UploadParams, ApiError> {
    let algo = match query::get(params, "algo").or_else(|| query::get(params, "algorithm")) {
        Some(name) => name
            .parse()
            .map_err(|e: hashcore::UnknownAlgorithm| ApiError::BadRequest(e.to_string()))?,
        None => hashcore::Algorithms::default(),
    };
    Ok(UploadParams {
        algo,
        algo_field: false,
        wait: query::flag(params, "wait")?,
        name: query::get(params, "name").map(|n| query::clean_name(n).into_owned()),
    })
}

fn list_query(params: &[(String, String)]) -> Result<ListQuery, ApiError> {
    let status = match query::get(params, "status").filter(|s| !s.is_empty()) {
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown status {:?} (expected PENDING, SUCCESS or FAILURE)",
                query::clean_name(s)
            ))
        })?),
        None => None,
    };
    // Unlike `status` and `after`, whose empty values the spec documents
    // (a form's "any"), an empty `limit` is no number: a 400, as schemathesis
    // expects of a value that breaks the documented type.
    let limit = match query::get(params, "limit") {
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_LEN).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE_LEN}, got {:?}",
                    query::clean_name(s)
                )))
            }
        },
        None => DEFAULT_PAGE_LEN,
    };
    let after = query::get(params, "after")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    // Ids are 32 hex digits; anything else cannot be a previous page's
    // `next`, and an empty page would hide the mistake.
    if let Some(a) = &after {
        if a.len() != 32 || !a.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::BadRequest(format!(
                "after must be a job id (a previous page's `next`), got {:?}",
                query::clean_name(a)
            )));
        }
    }
    Ok(ListQuery {
        status,
        limit,
        after,
    })
}

/// The id from the query string; failing that, from a JSON or form body
/// (the documented `{"file_id": ID}` variant). A body is always read, so a
/// keep-alive connection stays usable after a GET that carried one.
async fn id_from_query_or_body<B: Backend>(
    shared: &Shared<B>,
    req: Request<Incoming>,
    params: &[(String, String)],
) -> Result<Option<String>, ApiError> {
    let mut body = req.into_body();
    let bytes = upload::read_small_body(
        &mut body,
        MAX_GET_BODY_BYTES,
        shared.config.body_idle_timeout,
    )
    .await?;
    if let Some(id) = query::get(params, "file_id") {
        return Ok(Some(id.to_string()));
    }
    Ok(query::id_from_body(&bytes))
}

/// Longest a lookup may wait for a job's end (`?wait=SECS`): long enough
/// for most jobs, short enough for proxies' default read timeouts (nginx:
/// 60 s) and for a client to notice a lost connection.
pub const MAX_LOOKUP_WAIT_SECS: f64 = 55.0;

/// `wait=SECS` on a lookup: a number of seconds from 0 to
/// [`MAX_LOOKUP_WAIT_SECS`]; absent for no wait. Empty is a 400 like any
/// other value that is no number (an upload's `wait` is a flag instead).
fn lookup_wait(params: &[(String, String)]) -> Result<Option<std::time::Duration>, ApiError> {
    let Some(v) = query::get(params, "wait") else {
        return Ok(None);
    };
    match v.parse::<f64>() {
        Ok(secs) if (0.0..=MAX_LOOKUP_WAIT_SECS).contains(&secs) => {
            Ok(Some(std::time::Duration::from_secs_f64(secs)))
        }
        _ => Err(ApiError::BadRequest(format!(
            "wait must be a number of seconds from 0 to {MAX_LOOKUP_WAIT_SECS}, got {:?}",
            query::clean_name(v)
        ))),
    }
}

async fn hash_answer<B: Backend>(
    shared: &Shared<B>,
    id: Option<String>,
    wait: Option<std::time::Duration>,
) -> Response<Body> {
    let Some(id) = id else {
        return respond::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({
                "status": "INVALID_ID",
                "hash": null,
                "error": "missing file_id (query ?file_id=ID, path /gethash/ID, or JSON body {\"file_id\": ID})",
            }),
        );
    };
    let found = match wait {
        Some(timeout) => {
            // Held for the wait: what waiting lookups cost (a connection or
            // an HTTP/2 stream, a task, a waiter entry) is bounded by it.
            let Ok(_permit) = shared.lookup_waits.try_acquire() else {
                return respond::error(&ApiError::Busy {
                    retry_after: 1,
                    what: format!(
                        "{} lookups waiting (?wait; --max-connections)",
                        shared.config.max_connections
                    ),
                });
            };
            shared.backend.lookup_wait(id.trim(), timeout).await
        }
        None => shared.backend.lookup(id.trim()).await,
    };
    match found {
        Ok(Some(job)) => about_job(
            with_digest_headers(
                respond::json(
                    StatusCode::OK,
                    &HashAnswer {
                        status: job.status.as_str(),
                        hash: job.hash.as_deref(),
                        id: Some(&job.id),
                        algorithm: Some(&job.algorithm),
                        size: job.size,
                        error: job.error.as_deref(),
                        maps: HashMaps::of(&job),
                    },
                ),
                &job,
            ),
            &job.id,
        ),
        Ok(None) => respond::json(
            StatusCode::NOT_FOUND,
            &HashAnswer {
                status: "INVALID_ID",
                hash: None,
                id: None,
                algorithm: None,
                size: None,
                error: None,
                maps: None,
            },
        ),
        Err(e) => respond::error(&e),
    }
}

/// `resp`, marked as being about job `id` (for the access log).
pub(crate) fn about_job(mut resp: Response<Body>, id: &str) -> Response<Body> {
    resp.extensions_mut()
        .insert(super::observe::JobId(id.to_string()));
    resp
}

/// Whether a job failed because its bytes contradicted a digest its client
/// claimed: answered 400, as the request's claim was wrong.
pub(crate) fn is_mismatch(job: &JobView) -> bool {
    job.status == JobStatus::Failure
        && job
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with(DIGEST_MISMATCH))
}

fn upload_answer(result: Result<JobView, ApiError>) -> Response<Body> {
    match result {
        Ok(job) if is_mismatch(&job) => about_job(
            respond::json(
                StatusCode::BAD_REQUEST,
                &UploadAnswer {
                    success: false,
                    id: Some(&job.id),
                    celery_status: Some(job.status.as_str()),
                    celery_id: Some(&job.id),
                    status: Some(job.status.as_str()),
                    algorithm: Some(&job.algorithm),
                    hash: None,
                    size: job.size,
                    name: job.name.as_deref(),
                    error: job.error.clone(),
                    maps: None,
                },
            ),
            &job.id,
        ),
        Ok(job) => about_job(
            with_digest_headers(
                respond::json(
                    StatusCode::OK,
                    &UploadAnswer {
                        success: true,
                        id: Some(&job.id),
                        celery_status: Some(job.status.as_str()),
                        celery_id: Some(&job.id),
                        status: Some(job.status.as_str()),
                        algorithm: Some(&job.algorithm),
                        hash: job.hash.as_deref(),
                        size: job.size,
                        name: job.name.as_deref(),
                        error: job.error.clone(),
                        maps: HashMaps::of(&job),
                    },
                ),
                &job,
            ),
            &job.id,
        ),
        Err(e) => {
            let answer = UploadAnswer {
                success: false,
                id: None,
                celery_status: None,
                celery_id: None,
                status: None,
                algorithm: None,
                hash: None,
                size: None,
                name: None,
                error: Some(e.to_string()),
                maps: None,
            };
            respond::with_error_headers(respond::json(e.status(), &answer), &e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HTTP/2 carries many requests on one connection, so the connection
    /// limit alone would not bound waiting lookups: a wait past
    /// `max_connections` is refused with 503 and `Retry-After`.
    #[tokio::test]
    async fn waiting_lookups_past_max_connections_are_refused() {
        let config = super::super::HttpConfig {
            max_connections: 1,
            ..Default::default()
        };
        let (_stop, stopping) = tokio::sync::watch::channel(false);
        let shared = Shared::new(
            std::sync::Arc::new(crate::testing::MemBackend::default()),
            config,
            stopping,
        );
        let id = Some("0123456789abcdef0123456789abcdef".to_string());
        let wait = Some(std::time::Duration::ZERO);
        // A free slot: the wait runs (an unknown id: 404).
        let r = hash_answer(&shared, id.clone(), wait).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let held = shared.lookup_waits.try_acquire().unwrap();
        let r = hash_answer(&shared, id.clone(), wait).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()["retry-after"], "1");
        // A lookup that does not wait needs no slot.
        let r = hash_answer(&shared, id.clone(), None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        drop(held);
        let r = hash_answer(&shared, id, wait).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
