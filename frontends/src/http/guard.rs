//! Who may do what: bearer tokens with scopes (RFC 6750), and which web
//! origins may use the API from a browser (CORS, and refusing cross-site
//! uploads).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, HOST, ORIGIN, VARY};
use hyper::{Method, Response, StatusCode};
use subtle::ConstantTimeEq as _;

use super::respond::Body;

/// What a token allows. `admin` allows everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Create jobs (the upload routes).
    Upload,
    /// Look jobs up and list them (and the pages).
    Read,
    /// Operators' views: `/stats`, `/cluster`, `/metrics`.
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Upload => "upload",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Scope> {
        [Scope::Upload, Scope::Read, Scope::Admin]
            .into_iter()
            .find(|x| x.name() == s)
    }
}

/// The tokens of a token file: one per line, `TOKEN SCOPE[,SCOPE…]`;
/// blank lines and `#` comments are skipped.
#[derive(Default)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, Vec<Scope>)>,
}

impl std::fmt::Debug for Tokens {
    // Never the tokens themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} entries)", self.entries.len())
    }
}

/// Shortest token accepted: 16 bytes, so that a guess is hopeless.
pub const MIN_TOKEN_BYTES: usize = 16;

impl Tokens {
    /// Parses a token file's text. Errors name the line (never its token).
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(token), Some(scopes), None) = (words.next(), words.next(), words.next())
            else {
                return Err(format!(
                    "line {}: expected TOKEN SCOPE[,SCOPE...] (scopes: upload, read, admin)",
                    n + 1
                ));
            };
            if token.len() < MIN_TOKEN_BYTES {
                return Err(format!(
                    "line {}: a token must have at least {MIN_TOKEN_BYTES} characters",
                    n + 1
                ));
            }
            let scopes = scopes
                .split(',')
                .map(|s| {
                    Scope::parse(s).ok_or_else(|| {
                        format!(
                            "line {}: unknown scope {s:?} (expected upload, read or admin)",
                            n + 1
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            entries.push((token.as_bytes().to_vec(), scopes));
        }
        if entries.is_empty() {
            return Err("no tokens: every request would be refused".into());
        }
        Ok(Tokens { entries })
    }

    /// The scopes of `presented`, comparing it with every token in
    /// constant time (no early exit on the first differing byte or match).
    fn scopes(&self, presented: &[u8]) -> Option<&[Scope]> {
        let mut found = None;
        for (token, scopes) in &self.entries {
            if bool::from(token.as_slice().ct_eq(presented)) && found.is_none() {
                found = Some(scopes.as_slice());
            }
        }
        found
    }
}

/// A token file, re-read on demand (SIGHUP).
#[derive(Debug)]
pub struct Auth {
    path: PathBuf,
    tokens: RwLock<Arc<Tokens>>,
}

impl Auth {
    /// Reads `path`. Errors: unreadable, or a line [`Tokens::parse`] refuses.
    pub fn load(path: &Path) -> Result<Auth, String> {
        Ok(Auth {
            path: path.to_path_buf(),
            tokens: RwLock::new(Arc::new(read_tokens(path)?)),
        })
    }

    /// Re-reads the file; on an error the tokens in use stay.
    pub fn reload(&self) -> Result<usize, String> {
        let tokens = read_tokens(&self.path)?;
        let n = tokens.entries.len();
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tokens);
        Ok(n)
    }

    /// Whether `headers` carry a token with `scope` (or `admin`).
    pub fn check(&self, headers: &HeaderMap, scope: Scope) -> Result<(), Refusal> {
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim().to_string())
            });
        let Some(presented) = presented else {
            return Err(Refusal::NoToken);
        };
        let tokens = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match tokens.scopes(presented.as_bytes()) {
            None => Err(Refusal::BadToken),
            Some(s) if s.contains(&scope) || s.contains(&Scope::Admin) => Ok(()),
            Some(_) => Err(Refusal::Scope(scope)),
        }
    }
}

fn read_tokens(path: &Path) -> Result<Tokens, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    Tokens::parse(&text).map_err(|e| format!("token file {}: {e}", path.display()))
}

/// Why a request was not let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header: 401.
    NoToken,
    /// A token no line of the file has: 401 `invalid_token`.
    BadToken,
    /// A good token without the scope: 403 `insufficient_scope`.
    Scope(Scope),
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::NoToken | Refusal::BadToken => StatusCode::UNAUTHORIZED,
            Refusal::Scope(_) => StatusCode::FORBIDDEN,
        }
    }

    pub fn message(self) -> String {
        match self {
            Refusal::NoToken => "authentication required: send Authorization: Bearer TOKEN".into(),
            Refusal::BadToken => "the bearer token is not valid".into(),
            Refusal::Scope(s) => format!("the bearer token lacks the {} scope", s.name()),
        }
    }

    /// `WWW-Authenticate` as RFC 6750 section 3 has it.
    pub fn challenge(self) -> HeaderValue {
        HeaderValue::from_str(&match self {
            Refusal::NoToken => r#"Bearer realm="hashd""#.to_string(),
            Refusal::BadToken => r#"Bearer realm="hashd", error="invalid_token""#.to_string(),
            Refusal::Scope(s) => format!(
                r#"Bearer realm="hashd", error="insufficient_scope", scope="{}""#,
                s.name()
            ),
        })
        .expect("ASCII")
    }
}

/// Which origins may call the API from a browser (`--cors-origin`).
#[derive(Clone, Debug, Default)]
pub struct Cors {
    /// Exact origins (`https://app.example`), compared as given.
    pub origins: Vec<String>,
    /// `*`: any origin.
    pub any: bool,
}

/// Headers a browser script may read from answers.
const EXPOSED: &str = "Retry-After, X-Request-Id, WWW-Authenticate, Allow";

/// Longest a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

impl Cors {
    /// Parses `--cors-origin` values: `*` or `scheme://host[:port]`.
    pub fn parse(values: &[String]) -> Result<Cors, String> {
        let mut cors = Cors::default();
        for v in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
            if v == "*" {
                cors.any = true;
                continue;
            }
            let ok = (v.starts_with("http://") || v.starts_with("https://"))
                && !v.ends_with('/')
                && v.split_once("://").is_some_and(|(_, rest)| {
                    !rest.is_empty() && !rest.contains('/') && HeaderValue::from_str(v).is_ok()
                });
            if !ok {
                return Err(format!(
                    "--cors-origin {v:?}: expected * or an origin such as https://app.example (scheme, host, optional port; no path)"
                ));
            }
            cors.origins.push(v.to_string());
        }
        Ok(cors)
    }

    fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.iter().any(|o| o == origin)
    }
}

/// The request's `Origin`, if it has one.
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(ORIGIN).and_then(|v| v.to_str().ok())
}

/// Whether `origin` is the daemon's own (the page it serves posting back):
/// `http://` or `https://` and the request's `Host`.
fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|h| h.eq_ignore_ascii_case(host))
}

/// A state-changing request from a page of another origin that is not
/// allowed: refused (403), so that another site cannot create jobs through
/// a visitor's browser (a form post needs no preflight). Requests without
/// `Origin` (curl, scripts) pass.
pub fn cross_site_refusal(cors: &Cors, method: &Method, headers: &HeaderMap) -> Option<String> {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let origin = origin(headers)?;
    if safe || cors.allows(origin) || same_origin(headers, origin) {
        return None;
    }
    Some(format!(
        "cross-origin request from {:?} refused (allow it with --cors-origin)",
        super::query::clean_name(origin)
    ))
}

/// The answer to a CORS preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) from an allowed origin; `None` when it
/// is no preflight or the origin is not allowed (then the plain `OPTIONS`
/// answer, without CORS headers, makes the browser refuse).
pub fn preflight(cors: &Cors, headers: &HeaderMap, allow: &'static str) -> Option<Response<Body>> {
    let origin = origin(headers)?;
    headers.get("access-control-request-method")?;
    if !cors.allows(origin) {
        return None;
    }
    let mut resp = Response::new(super::respond::full(bytes::Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static(allow),
    );
    // The headers it asked for: every request header hashd reads is safe
    // to send, and the browser checks the list against its own request.
    if let Some(asked) = headers.get("access-control-request-headers") {
        h.insert("access-control-allow-headers", asked.clone());
    }
    h.insert(
        "access-control-max-age",
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    add_cors_headers(cors, origin, &mut resp);
    Some(resp)
}

/// Adds `Access-Control-Allow-Origin` and the exposed headers to an answer
/// for an allowed origin; `Vary: Origin` whenever the answer depends on it.
pub fn decorate(cors: &Cors, headers: &HeaderMap, resp: &mut Response<Body>) {
    if let Some(origin) = origin(headers) {
        if cors.allows(origin) {
            add_cors_headers(cors, origin, resp);
        }
    }
}

fn add_cors_headers(cors: &Cors, origin: &str, resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    let allowed = match cors.any {
        true => HeaderValue::from_static("*"),
        false => match HeaderValue::from_str(origin) {
            Ok(v) => v,
            Err(_) => return,
        },
    };
    h.insert("access-control-allow-origin", allowed);
    h.insert(
        "access-control-expose-headers",
        HeaderValue::from_static(EXPOSED),
    );
    if !cors.any {
        h.append(VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_parse_with_comments_and_name_the_bad_line() {
        let t =
            Tokens::parse("# ops\n\n0123456789abcdef upload,read\nfedcba9876543210fedc admin\n")
                .unwrap();
        assert_eq!(
            t.scopes(b"0123456789abcdef"),
            Some(&[Scope::Upload, Scope::Read][..])
        );
        assert_eq!(t.scopes(b"0123456789abcdeX"), None);
        assert_eq!(t.scopes(b""), None);
        for (bad, says) in [
            ("short upload\n", "line 1: a token must have"),
            ("0123456789abcdef\n", "line 1: expected TOKEN SCOPE"),
            (
                "# c\n0123456789abcdef write\n",
                "line 2: unknown scope \"write\"",
            ),
            ("0123456789abcdef read extra\n", "line 1: expected"),
            ("# nothing\n", "no tokens"),
        ] {
            let err = Tokens::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
            assert!(!err.contains("0123456789abcdef"), "a token in {err}");
        }
    }

    #[test]
    fn cors_origins_are_exact_and_star_is_any() {
        let c = Cors::parse(&["https://a.example".into(), "http://b:8080".into()]).unwrap();
        assert!(c.allows("https://a.example") && c.allows("http://b:8080"));
        assert!(!c.allows("https://a.example.evil") && !c.allows("http://a.example"));
        assert!(Cors::parse(&["*".into()]).unwrap().allows("null"));
        for bad in ["a.example", "https://a.example/", "https://a/x", "ftp://a"] {
            assert!(Cors::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
