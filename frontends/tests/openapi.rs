//! The OpenAPI document at `/openapi.json` and the router cannot drift
//! apart (issue 13): every routed path and method is in the document, and
//! the document names nothing the router does not serve. (CI also validates
//! the document as OpenAPI 3.1 and runs schemathesis against a live daemon;
//! see `tests/integration/api_contract.rs`.)

mod common;

use std::collections::{BTreeSet, HashSet};

use common::Answer;
use frontends::http::{Route, DOCS_ASSETS, ROUTES};

fn get(path: &str) -> Answer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    common::serve(vec![request.into_bytes()])
}

fn options_allow(path: &str) -> String {
    let request = format!("OPTIONS {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let a = common::serve(vec![request.into_bytes()]);
    assert_eq!(a.status, 200, "OPTIONS {path}");
    a.head
        .lines()
        .find_map(|l| l.strip_prefix("allow: "))
        .unwrap_or_else(|| panic!("no Allow on OPTIONS {path}"))
        .to_string()
}

fn document() -> serde_json::Value {
    let a = get("/openapi.json");
    assert_eq!(a.status, 200);
    assert!(
        a.head.contains("content-type: application/json"),
        "{}",
        a.head
    );
    a.json
}

/// The route a document path is served by: a template with one `{param}`
/// is a prefix route (what follows the parameter is its suffix), any other
/// path an exact one (the router ignores a trailing slash).
fn route_of(template: &str) -> Option<&'static Route> {
    match template.find('{') {
        Some(at) => {
            let close = template.find('}').expect("a closed parameter");
            assert!(
                template.matches('{').count() == 1,
                "{template}: only one path segment may be a parameter"
            );
            ROUTES.iter().find(|r| {
                r.prefix && r.path == &template[..at] && r.suffix == &template[close + 1..]
            })
        }
        None => {
            let path = match template.trim_end_matches('/') {
                "" => "/",
                p => p,
            };
            ROUTES.iter().find(|r| !r.prefix && r.path == path)
        }
    }
}

/// The methods a route lists in the document: those in its `Allow` but
/// HEAD and OPTIONS, which every path answers as the document's
/// description says.
fn documented_methods(allow: &str) -> BTreeSet<String> {
    allow
        .split(',')
        .map(str::trim)
        .filter(|m| !matches!(*m, "HEAD" | "OPTIONS"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_document_lists_exactly_the_routes_and_methods_served() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = doc["paths"].as_object().expect("paths");
    let mut seen = HashSet::new();
    for (template, item) in paths {
        let route = route_of(template)
            .unwrap_or_else(|| panic!("openapi.json names {template}, which no route serves"));
        assert!(
            seen.insert(route.path),
            "{template}: route {} is in openapi.json twice",
            route.path
        );
        let listed: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| {
                matches!(
                    k.as_str(),
                    "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
                )
            })
            .map(|k| k.to_ascii_uppercase())
            .collect();
        assert_eq!(
            listed,
            documented_methods(route.allow),
            "{template}: methods in openapi.json against the router's {}",
            route.allow
        );
        // And the real handler agrees with the table.
        let concrete = match route.prefix {
            true => format!("{}x{}", route.path, route.suffix),
            false => template.clone(),
        };
        assert_eq!(options_allow(&concrete), route.allow, "{template}");
    }
    for route in ROUTES {
        assert!(
            seen.contains(route.path),
            "route {} ({}) is missing from openapi.json",
            route.path,
            route.allow
        );
    }
}

#[test]
fn the_docs_and_every_asset_the_document_names_are_served() {
    let doc = document();
    let names: Vec<&str> = doc["paths"]["/docs/{asset}"]["get"]["parameters"][0]["schema"]["enum"]
        .as_array()
        .expect("the asset names")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let served: Vec<&str> = DOCS_ASSETS.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names, served);
    for name in names {
        let a = get(&format!("/docs/{name}"));
        assert_eq!(a.status, 200, "/docs/{name}");
    }
    let page = get("/docs");
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.raw).into_owned();
    assert!(html.contains("/docs/swagger-ui-bundle.js"), "{html}");
    assert_eq!(get("/docs/nothing.js").status, 404);
}

/// Every `$ref` in the document points at something in it (the validator in
/// CI checks this too; this catches it in `cargo test`).
#[test]
fn every_reference_resolves() {
    fn walk(v: &serde_json::Value, doc: &serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    let pointer = r.strip_prefix('#').expect("a local $ref");
                    assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
                }
                map.values().for_each(|v| walk(v, doc));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, doc)),
            _ => {}
        }
    }
    let doc = document();
    walk(&doc, &doc);
}
