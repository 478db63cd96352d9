//! The API as a contract: the OpenAPI 3.1 document (`/openapi.json`) and
//! the interactive docs (`/docs`, Swagger UI), all embedded in the binary so
//! they work offline and always match the build that serves them.
//!
//! The document is kept by hand in `openapi.json` beside this file, not
//! generated: the router is a plain `match` (see [`super::routes`]), and
//! annotating it for a generator would describe less than the document does
//! (the original's quirks, every error body). `frontends/tests/openapi.rs`
//! fails when the document and [`super::ROUTES`] disagree on a path or a
//! method, and CI validates it and runs schemathesis against it.

use std::sync::OnceLock;

use bytes::Bytes;

/// The checked-in document; `info.version` is filled in from the crate's
/// version when it is first served.
const OPENAPI: &str = include_str!("openapi.json");

/// The served document, built once.
pub(crate) fn openapi_json() -> Bytes {
    static DOC: OnceLock<Bytes> = OnceLock::new();
    DOC.get_or_init(|| {
        // The document is a compile-time constant that a test parses, so a
        // failure here is a build that the tests already reject.
        let mut doc: serde_json::Value =
            serde_json::from_str(OPENAPI).expect("openapi.json is valid JSON");
        doc["info"]["version"] = env!("CARGO_PKG_VERSION").into();
        Bytes::from(serde_json::to_vec(&doc).expect("a JSON value serialises"))
    })
    .clone()
}

/// The page at `/docs`.
pub(crate) const DOCS_PAGE: &str = include_str!("../../assets/swagger-ui/index.html");

/// Files under `/docs/`: name, content type, bytes. Swagger UI 5.35.0 from
/// the npm package `swagger-ui-dist` (Apache-2.0; its LICENSE and NOTICE
/// are served and kept beside the files in `frontends/assets/swagger-ui`),
/// plus hashd's own initializer.
pub const DOCS_ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "swagger-ui-bundle.js",
        "application/javascript; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/swagger-ui.css"),
    ),
    (
        "swagger-initializer.js",
        "application/javascript; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/swagger-initializer.js"),
    ),
    (
        "LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/LICENSE"),
    ),
    (
        "NOTICE",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/NOTICE"),
    ),
    (
        "swagger-ui-bundle.js.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js.LICENSE.txt"),
    ),
];

/// The asset named `name`, if there is one: its content type and bytes.
pub(crate) fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    DOCS_ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, ct, bytes)| (ct, bytes))
}
