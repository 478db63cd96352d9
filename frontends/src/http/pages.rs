//! The small web UI: one page to upload a file and look a result up, and the
//! result pages. Plain HTML with inline CSS; no scripts, fonts or images, so
//! it works offline and behind strict content policies.

use crate::{ApiError, JobStatus, JobView};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}fieldset{margin:1rem 0;padding:1rem;border:1px solid #ccc;border-radius:6px}\
code{background:#f3f3f3;padding:0 .2rem;word-break:break-all}table{border-collapse:collapse}\
td,th{text-align:left;padding:.2rem .8rem .2rem 0;vertical-align:top}.FAILURE{color:#a00}.SUCCESS{color:#070}";

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

fn algorithm_options() -> String {
    hashcore::Algorithm::ALL
        .iter()
        .map(|a| format!("<option value=\"{0}\">{0}</option>", a.name()))
        .collect()
}

/// `/uploadform` and `/`.
pub fn form_page() -> String {
    let body = format!(
        "<h1>hashd</h1>\
<form action=\"/uploadfile-html/\" method=\"post\" enctype=\"multipart/form-data\"><fieldset>\
<legend>Upload a file</legend>\
<p><input type=\"file\" name=\"file\" required></p>\
<p><label>Algorithm <select name=\"algo_hint\" disabled>{options}</select></label> \
(choose with <code>?algo=</code> on the API; the form uses md5)</p>\
<p><button type=\"submit\">Upload</button></p></fieldset></form>\
<form action=\"/gethash-form/\" method=\"get\"><fieldset><legend>Look up a result</legend>\
<p><label>Id <input name=\"file_id\" size=\"36\" required></label> \
<button type=\"submit\">Look up</button></p></fieldset></form>\
<p>API: <code>POST /uploadfile/</code>, <code>GET /gethash/?file_id=ID</code>, \
<code>GET /jobs</code>, <code>GET /stats</code>.</p>",
        options = algorithm_options(),
    );
    layout("hashd: upload a file", "", &body)
}

/// A job's state. While it is pending the page refreshes itself, so the
/// browser polls without scripts.
pub fn job_page(job: &JobView) -> String {
    let refresh = if job.status == JobStatus::Pending {
        format!(
            "<meta http-equiv=\"refresh\" content=\"1;url=/gethash-form/?file_id={}\">",
            escape(&job.id)
        )
    } else {
        String::new()
    };
    let mut rows = vec![
        ("Id", format!("<code>{}</code>", escape(&job.id))),
        (
            "Status",
            format!("<span class=\"{0}\">{0}</span>", job.status.as_str()),
        ),
        ("Algorithm", escape(&job.algorithm)),
    ];
    if let Some(hash) = &job.hash {
        rows.push(("Hash", format!("<code>{}</code>", escape(hash))));
    }
    if let Some(name) = &job.name {
        rows.push(("File name", escape(name)));
    }
    if let Some(size) = job.size {
        rows.push(("Size", format!("{size} bytes")));
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
    let body = format!(
        "<h1>Job {}</h1><table>{table}</table><p><a href=\"/uploadform\">Upload another file</a></p>",
        job.status.as_str()
    );
    layout("hashd: job", &refresh, &body)
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
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(!page.contains("refresh"));
        for p in [
            form_page(),
            page,
            invalid_id_page("\"x"),
            error_page(&ApiError::NotFound("<".into())),
        ] {
            assert!(!p.contains("http://") && !p.contains("https://") && !p.contains("<img"));
            assert!(!p.contains("<script"));
        }
    }

    #[test]
    fn pending_pages_refresh_themselves() {
        assert!(job_page(&job(JobStatus::Pending)).contains("http-equiv=\"refresh\""));
    }
}
