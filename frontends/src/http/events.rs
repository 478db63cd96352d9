//! `GET /jobs/ID/events`: a job's state and progress as Server-Sent Events
//! (the HTML standard's `text/event-stream`), for pages (`EventSource`) and
//! scripts.
//!
//! The stream opens with a `state` event for the job as it is. While the
//! job is PENDING, a `progress` event follows whenever the bytes handed to
//! its hasher have grown, at most every [`PROGRESS_INTERVAL`]; a comment
//! line keeps an idle stream open through proxies every
//! [`KEEPALIVE_INTERVAL`]. When the job ends, a last `state` event carries
//! its final state and the stream ends. The end is learnt from the
//! backend's wait (the store's waiters, woken by the commit, on every node),
//! not by reading the store again and again; progress comes from the job
//! owner's memory, never from the store.
//!
//! Every event has an `id:`, a decimal sequence number that grows by one
//! per event: 1 for a stream's first, and one past the `Last-Event-ID`
//! request header (the HTML standard's reconnection, section 9.2) for a
//! reconnect's first, so ids keep growing across an `EventSource`'s
//! reconnects. A reconnect (a `Last-Event-ID` that is a number) to a job
//! still PENDING skips the opening `state` event, which its client has
//! seen, and goes on with progress and the final state; to a job that has
//! ended it sends the final state at once and ends. So a stream cut at any
//! point loses no state change. The server keeps no history: only the
//! number is read back.
//!
//! Bounds: at most `max_event_streams` streams at once (503 with
//! `Retry-After` beyond), each open at most `event_stream_max` (then it
//! ends and an `EventSource` reconnects, see above), and each buffers at
//! most [`QUEUED_EVENTS`] small events for a slow reader.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::respond::{self, Body};
use super::Shared;
use crate::{ApiError, Backend, JobStatus, JobView};

/// How often a running job's progress may be sent: often enough for a
/// smooth bar, rare enough that a thousand watchers cost little.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Longest a stream stays silent: a comment line then, so that proxies
/// (nginx's `proxy_read_timeout` is 60 s by default) keep it open.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// Events queued for a client that reads slowly; the producer waits beyond.
const QUEUED_EVENTS: usize = 4;

/// The window `bytes_per_sec` is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// The request header an `EventSource` reconnects with: the `id` of the
/// last event it received (HTML standard, section 9.2.4).
const LAST_EVENT_ID: &str = "last-event-id";

/// Numbers a stream's events: `id: N` lines, N growing by one per event.
struct Sequence(u64);

impl Sequence {
    /// One event, `event: NAME` with `data` (one line of JSON), numbered.
    fn event(&mut self, name: &str, data: &str) -> Bytes {
        let id = self.0;
        self.0 = self.0.saturating_add(1);
        Bytes::from(format!("id: {id}\nevent: {name}\ndata: {data}\n\n"))
    }

    /// A `state` event: the job as `/jobs` lists it.
    fn state(&mut self, job: &JobView) -> Bytes {
        let data = serde_json::to_string(job).unwrap_or_else(|_| "{}".into());
        self.event("state", &data)
    }
}

/// The `Last-Event-ID` of a reconnect, if it is one of ours (a decimal
/// number); anything else is a first connection.
pub(crate) fn last_event_id(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(LAST_EVENT_ID)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The answer to `GET /jobs/ID/events`; `last_id` is the reconnect's
/// `Last-Event-ID` ([`last_event_id`]).
pub(crate) async fn job_events<B: Backend>(
    shared: &Shared<B>,
    id: &str,
    last_id: Option<u64>,
) -> Response<Body> {
    let Ok(permit) = shared.event_streams.clone().try_acquire_owned() else {
        return respond::error(&ApiError::Busy {
            retry_after: 1,
            what: format!(
                "{} event streams open (--max-event-streams)",
                shared.config.max_event_streams
            ),
        });
    };
    let job = match shared.backend.lookup(id.trim()).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            return respond::error(&ApiError::NotFound(format!(
                "no job with id {}",
                super::query::clean_name(id)
            )))
        }
        Err(e) => return respond::error(&e),
    };
    let (tx, rx) = mpsc::channel(QUEUED_EVENTS);
    let mut seq = Sequence(last_id.map_or(1, |n| n.saturating_add(1)));
    // A reconnect has seen the PENDING state already; the final one it may
    // have missed, so that is always sent. The channel is empty: the first
    // event always fits.
    if job.status != JobStatus::Pending || last_id.is_none() {
        let _ = tx.try_send(seq.state(&job));
    }
    if job.status == JobStatus::Pending {
        let backend = shared.backend.clone();
        let deadline = Instant::now() + shared.config.event_stream_max;
        let stopping = shared.stopping.clone();
        tokio::spawn(async move {
            follow(backend, job.id, seq, tx, deadline, stopping).await;
            drop(permit);
        });
    }
    // Otherwise `tx` is dropped here: the stream ends after the state.
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(event)), rx))
    });
    let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // nginx would otherwise buffer the stream (deploy/nginx does not, but
    // other proxies in front may be nginx too).
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    super::routes::about_job(resp, id.trim())
}

/// Sends progress while job `id` runs and its final state when it ends;
/// returns when the stream is over (job ended, time up, client gone,
/// server stopping).
async fn follow<B: Backend>(
    backend: Arc<B>,
    id: String,
    mut seq: Sequence,
    tx: mpsc::Sender<Bytes>,
    deadline: Instant,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let ended = backend.lookup_wait(&id, deadline.saturating_duration_since(Instant::now()));
    let mut ended = std::pin::pin!(ended);
    let stop = async {
        // A dropped sender means no server will ever stop this stream.
        if stopping.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let mut stop = std::pin::pin!(stop);
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut last_bytes = None;
    let mut last_sent = Instant::now();
    loop {
        tokio::select! {
            answer = &mut ended => {
                let event = match answer {
                    Ok(Some(job)) if job.status != JobStatus::Pending => seq.state(&job),
                    // Time is up (or the job vanished): the client may
                    // reconnect and gets the state as it is then.
                    Ok(_) => return,
                    Err(e) => {
                        let data = serde_json::json!({ "error": e.to_string() });
                        seq.event("error", &data.to_string())
                    }
                };
                let _ = tx.send(event).await;
                return;
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let mut event = None;
                if let Some(p) = backend.job_progress(&id) {
                    samples.push_back((now, p.bytes));
                    while samples.len() > 2 && now - samples[0].0 > RATE_WINDOW {
                        samples.pop_front();
                    }
                    if last_bytes != Some(p.bytes) {
                        last_bytes = Some(p.bytes);
                        let (t0, b0) = samples[0];
                        let secs = (now - t0).as_secs_f64();
                        let rate = match secs > 0.0 {
                            true => p.bytes.saturating_sub(b0) as f64 / secs,
                            false => 0.0,
                        };
                        let data = serde_json::json!({
                            "bytes": p.bytes,
                            "total": p.total,
                            "bytes_per_sec": rate.round(),
                        });
                        event = Some(seq.event("progress", &data.to_string()));
                    }
                }
                if event.is_none() && now - last_sent >= KEEPALIVE_INTERVAL {
                    event = Some(Bytes::from_static(b": keep-alive\n\n"));
                }
                if let Some(event) = event {
                    last_sent = now;
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
            _ = tx.closed() => return,
            _ = &mut stop => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_on_from_the_last_event_id() {
        let mut h = hyper::HeaderMap::new();
        assert_eq!(last_event_id(&h), None);
        h.insert("Last-Event-ID", HeaderValue::from_static(" 41 "));
        assert_eq!(last_event_id(&h), Some(41));
        let mut seq = Sequence(42);
        assert_eq!(
            seq.event("progress", "{}"),
            "id: 42\nevent: progress\ndata: {}\n\n"
        );
        assert!(seq.event("state", "{}").starts_with(b"id: 43\n"));
        for other in ["", "abc", "-1", "1.5", "99999999999999999999"] {
            h.insert("Last-Event-ID", HeaderValue::from_static(other));
            assert_eq!(last_event_id(&h), None, "{other:?}");
        }
    }
}
