//! The small web UI: one page to upload a file and look a result up, and the
//! result pages. Plain HTML with inline CSS; no scripts, fonts or images, so
//! it works offline and behind strict content policies.

use crate::{ApiError, JobStatus, JobView};

const STYLE: &str = "*{box-sizing:border-box}body{font-family:system-ui,sans-serif;max-width:52rem;margin:1.5rem auto;padding:0 1rem;color:#222;line-height:1.4}\
h1{font-size:1.4rem}h2{font-size:1.1rem}fieldset{min-width:0;margin:1rem 0;padding:1rem;border:1px solid #bbb;border-radius:6px}\
code{background:#f3f3f3;padding:0 .2rem;word-break:break-all}table{border-collapse:collapse}\
td,th{text-align:left;padding:.2rem .8rem .2rem 0;vertical-align:top}.FAILURE{color:#a00}.SUCCESS{color:#070}.PENDING{color:#750}\
#drop{border:2px dashed #999;border-radius:6px;padding:1rem}#drop.over{background:#eef6ff;border-color:#06c}\
button,select,input{font:inherit;padding:.3rem .6rem;max-width:100%}button:focus,select:focus,input:focus,a:focus{outline:3px solid #06c;outline-offset:2px}\
#files,#recent{list-style:none;padding:0}.file{border-bottom:1px solid #ddd;padding:.6rem 0}.file progress{width:12rem;max-width:100%}\
.bar{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center}.failed .info{color:#a00}.cancelled .info{color:#666}\
.hash{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:1.15rem}.expect{width:22rem;max-width:100%}\
#algos label{display:inline-block;margin:0 .8rem .3rem 0;white-space:nowrap}.digest{margin:.3rem 0}.algo{display:inline-block;min-width:4.5rem;color:#555}\
.verdict.MATCH{color:#070;font-weight:bold}.verdict.MISMATCH{color:#a00;font-weight:bold}.error{color:#a00}";

/// The page's script (`page.js`): uploads with progress, results, the
/// live list, job pages followed live. Inline, so the page is one request
/// and needs nothing from elsewhere.
const SCRIPT: &str = include_str!("page.js");

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, head_extra: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{head_extra}\
<title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        title = escape(title),
    )
}

/// One checkbox per algorithm, all named `algo` (the form posts one field
/// per ticked box; the server takes them all), MD5 ticked.
fn algorithm_checkboxes() -> String {
    hashcore::Algorithm::ALL
        .iter()
        .map(|a| {
            let checked = match *a == hashcore::Algorithm::Md5 {
                true => " checked",
                false => "",
            };
            format!(
                "<label><input type=\"checkbox\" name=\"algo\" value=\"{0}\"{checked}> {0}</label> ",
                a.name()
            )
        })
        .collect()
}

/// Bytes in readable units (`8 GiB`, `1.5 MiB`).
fn readable(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    match i {
        0 => format!("{n} bytes"),
        _ if v.fract() == 0.0 => format!("{v} {}", UNITS[i]),
        _ => format!("{v:.1} {}", UNITS[i]),
    }
}

/// `/uploadform` and `/`. Without scripts it is a plain form that posts one
/// file to `/uploadfile-html/` (which redirects to the job page); with
/// them, many files upload at once with progress, and results stay on the
/// page.
pub fn form_page(max_upload: u64) -> String {
    let body = format!(
        "<h1>hashd</h1>\
<form id=\"upload\" action=\"/uploadfile-html/\" method=\"post\" enctype=\"multipart/form-data\" data-max-upload=\"{max_upload}\">\
<fieldset><legend>Upload files</legend>\
<p>Largest accepted file: <strong>{max}</strong>.</p>\
<fieldset id=\"algos\"><legend>Algorithms (MD5 if none is ticked)</legend>{options}</fieldset>\
<div id=\"drop\"><p><label for=\"file\">File</label> <input id=\"file\" type=\"file\" name=\"file\"></p>\
<p class=\"js\" hidden>Choose several files, or drop them here. Each uploads at once; you can add more while others are in flight.</p></div>\
<p><button type=\"submit\">Upload</button></p></fieldset></form>\
<section class=\"js\" hidden aria-label=\"Uploads\"><ul id=\"files\"></ul></section>\
<form action=\"/gethash-form/\" method=\"get\"><fieldset><legend>Look up a result</legend>\
<p><label for=\"file_id\">Id</label> <input id=\"file_id\" name=\"file_id\" size=\"34\" required> \
<button type=\"submit\">Look up</button></p></fieldset></form>\
<section class=\"js\" hidden><h2>Recent jobs</h2><ul id=\"recent\"></ul></section>\
<p>API: <code>POST /uploadfile/</code>, <code>GET /gethash/ID</code>, \
<code>GET /jobs</code>, <code>GET /jobs/ID/events</code>, <a href=\"/docs\">documentation</a>.</p>\
<script>{SCRIPT}</script>",
        options = algorithm_checkboxes(),
        max = readable(max_upload),
    );
    layout("hashd: upload files", "", &body)
}

/// A job's state. A pending job's page follows the job's event stream
/// with scripts; without them it reloads itself every second, and says so.
pub fn job_page(job: &JobView) -> String {
    let pending = job.status == JobStatus::Pending;
    let refresh = match pending {
        true => format!(
            "<noscript><meta http-equiv=\"refresh\" content=\"1;url=/gethash-form/?file_id={}\"></noscript>",
            escape(&job.id)
        ),
        false => String::new(),
    };
    let mut rows = vec![
        ("Id", format!("<code>{}</code>", escape(&job.id))),
        (
            "Status",
            format!("<span class=\"{0}\">{0}</span>", job.status.as_str()),
        ),
        ("Algorithm", escape(&job.algorithm)),
    ];
    // Every digest, each labelled with its algorithm; the first (the job's
    // `hash`) has the id scripts and tests look for.
    let digests = match (&job.hash, job.hashes.is_empty()) {
        (Some(hash), true) => vec![(job.algorithm.clone(), hash.clone())],
        _ => job.hashes.clone(),
    };
    for (i, (algo, hex)) in digests.iter().enumerate() {
        let id = match i {
            0 => " id=\"hash\"",
            _ => "",
        };
        rows.push((
            "Hash",
            format!(
                "{algo}: <code{id} class=\"hash\" data-algo=\"{algo}\">{hex}</code>",
                algo = escape(algo),
                hex = escape(hex)
            ),
        ));
    }
    if let Some(name) = &job.name {
        rows.push(("File name", escape(name)));
    }
    if let Some(size) = job.size {
        rows.push(("Size", format!("{} ({size} bytes)", readable(size))));
    }
    if let Some(error) = &job.error {
        rows.push(("Reason", escape(error)));
    }
    rows.push(("Created", escape(&job.created_at)));
    if let Some(t) = &job.finished_at {
        rows.push(("Finished", escape(t)));
    }
    let table: String = rows
        .iter()
        .map(|(k, v)| format!("<tr><th>{k}</th><td>{v}</td></tr>"))
        .collect();
    let note = match pending {
        true => {
            "<noscript><p>This page reloads itself every second until the job ends.</p></noscript>\
<p id=\"live\" role=\"status\" hidden>Waiting for the job; this page updates by itself.</p>"
        }
        false => "",
    };
    let body = format!(
        "<main id=\"job\" data-id=\"{id}\" data-status=\"{status}\"><h1>Job {status}</h1>{note}<table>{table}</table>\
<p><a href=\"/uploadform\">Upload more files</a></p></main><script>{SCRIPT}</script>",
        id = escape(&job.id),
        status = job.status.as_str(),
    );
    layout("hashd: job", &refresh, &body)
}

/// What `/uploadfile-html/` answers once the job is recorded: 303 to the
/// job page (Post/Redirect/Get), so that reloading it never sends the file
/// again. The body is for clients that do not follow redirects.
pub fn job_location(job: &JobView) -> (String, String) {
    let location = format!("/gethash-form/?file_id={}", job.id);
    let body = format!(
        "<h1>Uploaded</h1><p>The job is <a href=\"{}\">{}</a>.</p>",
        escape(&location),
        escape(&job.id)
    );
    (location, layout("hashd: uploaded", "", &body))
}

pub fn invalid_id_page(id: &str) -> String {
    let body = format!(
        "<h1>INVALID_ID</h1><p>No job has the id <code>{}</code>.</p>\
<p><a href=\"/uploadform\">Back</a></p>",
        escape(id)
    );
    layout("hashd: unknown id", "", &body)
}

pub fn error_page(err: &ApiError) -> String {
    let body = format!(
        "<h1>Error {}</h1><p>{}</p><p><a href=\"/uploadform\">Back</a></p>",
        err.status().as_u16(),
        escape(&err.to_string())
    );
    layout("hashd: error", "", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: JobStatus) -> JobView {
        JobView {
            id: "<id>".into(),
            status,
            algorithm: "md5".into(),
            hash: Some("abc".into()),
            hashes: vec![("md5".into(), "abc".into())],
            size: Some(3),
            name: Some("<script>alert(1)</script>".into()),
            error: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
        }
    }

    #[test]
    fn pages_escape_client_text_and_load_nothing_external() {
        let page = job_page(&job(JobStatus::Success));
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("http-equiv=\"refresh\""));
        for p in [
            form_page(8 << 30),
            page,
            invalid_id_page("\"x"),
            error_page(&ApiError::NotFound("<".into())),
        ] {
            assert!(!p.contains("http://") && !p.contains("https://") && !p.contains("<img"));
            // Scripts are inline only: nothing is fetched from elsewhere.
            assert!(!p.contains("<script src"));
        }
    }

    #[test]
    fn pending_pages_refresh_themselves_only_without_scripts_and_say_so() {
        let page = job_page(&job(JobStatus::Pending));
        assert!(page.contains("<noscript><meta http-equiv=\"refresh\""));
        assert!(page.contains("reloads itself every second"));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(readable(3), "3 bytes");
        assert_eq!(readable(8 << 30), "8 GiB");
        assert_eq!(readable(1536 << 10), "1.5 MiB");
    }
}
