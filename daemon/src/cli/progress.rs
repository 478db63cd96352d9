//! `hashd sum --progress` and `hashd check --progress`: one line on
//! standard error, redrawn in place, with percent, bytes, files, rate and
//! ETA, as `pv` and `rhash --percents` draw theirs. Standard output is
//! untouched: the line is cleared before every result is printed and at
//! the end. Callers turn it on only when standard error is a terminal.
//!
//! Bytes count whole inputs as their results arrive, plus, when hashing
//! in this process, the bytes the hasher pool has hashed of inputs still
//! running; through the daemon a large file counts when it is done (the
//! daemon's heartbeats say that it works, not how far a file has got).
//!
//! Hand-written rather than indicatif: one line of text, redrawn from one
//! thread under one lock, is less code than adapting a bar library to the
//! result callbacks' ordering.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashcore::{Algorithm, Algorithms, BytesHashed};

use super::{Digests, Input};

/// How often the line is redrawn.
const REDRAW: Duration = Duration::from_millis(200);
/// Runs shorter than this draw nothing: a line that flashes is noise.
const QUIET_START: Duration = Duration::from_millis(500);

/// Wraps another [`Digests`] and draws its progress on standard error.
pub struct ProgressDigests {
    inner: Box<dyn Digests>,
    /// Bytes hashed in this process, when the inner digests hash here.
    live: Option<BytesHashed>,
}

impl ProgressDigests {
    /// `live` reads the in-process pool's bytes hashed, if `inner` uses one.
    pub fn new(inner: Box<dyn Digests>, live: Option<BytesHashed>) -> Self {
        ProgressDigests { inner, live }
    }
}

/// What the line shows, shared by the drawing thread and the results.
struct State {
    total_bytes: u64,
    total_files: usize,
    /// Bytes of the inputs whose results have arrived.
    done_bytes: u64,
    done_files: usize,
    /// The pool's count when hashing started, and the bytes of finished
    /// inputs it had counted since (both to turn its count into "bytes of
    /// inputs still running").
    live_base: u64,
    /// Whether the line is on the terminal now (to be cleared).
    drawn: bool,
    finished: bool,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bytes in readable units.
fn human(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut i) = (n, 0);
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    match i {
        0 => format!("{v:.0} B"),
        _ => format!("{v:.1} {}", UNITS[i]),
    }
}

/// The line, from a snapshot.
fn line(s: &State, live: u64, elapsed: Duration) -> String {
    // The pool's count includes finished inputs; those are in done_bytes.
    let running = live
        .saturating_sub(s.live_base)
        .saturating_sub(s.done_bytes);
    let bytes = (s.done_bytes + running).min(s.total_bytes);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
    let pct = match s.total_bytes {
        0 => 100.0 * s.done_files as f64 / s.total_files.max(1) as f64,
        t => 100.0 * bytes as f64 / t as f64,
    };
    let eta = match rate > 0.0 {
        true => format!(
            "ETA {}s",
            ((s.total_bytes - bytes) as f64 / rate).ceil() as u64
        ),
        false => "ETA -".into(),
    };
    format!(
        "{pct:5.1}% {} / {}  {}/{} files  {}/s  {eta}",
        human(bytes as f64),
        human(s.total_bytes as f64),
        s.done_files,
        s.total_files,
        human(rate),
    )
}

/// Clears the drawn line, if any.
fn clear(s: &mut State) {
    if s.drawn {
        let mut err = io::stderr().lock();
        let _ = err.write_all(b"\r\x1b[2K");
        let _ = err.flush();
        s.drawn = false;
    }
}

impl Digests for ProgressDigests {
    fn hash_inputs(
        &mut self,
        algo: Algorithms,
        inputs: &[Input],
        done: &mut dyn FnMut(usize, io::Result<Vec<(Algorithm, Vec<u8>)>>),
    ) -> io::Result<()> {
        // Sizes as of now; a file that is no regular file counts 0 bytes.
        let sizes: Vec<u64> = inputs
            .iter()
            .map(|i| match i {
                Input::Path(p) => std::fs::metadata(p)
                    .ok()
                    .filter(|m| m.is_file())
                    .map_or(0, |m| m.len()),
                Input::Stdin => 0,
            })
            .collect();
        let live = self.live.clone();
        let state = Arc::new(Mutex::new(State {
            total_bytes: sizes.iter().sum(),
            total_files: inputs.len(),
            done_bytes: 0,
            done_files: 0,
            live_base: live.as_ref().map_or(0, BytesHashed::get),
            drawn: false,
            finished: false,
        }));
        let started = Instant::now();
        let drawer = {
            let state = state.clone();
            let live = live.clone();
            std::thread::spawn(move || loop {
                std::thread::sleep(REDRAW);
                let mut s = lock(&state);
                if s.finished {
                    return;
                }
                if started.elapsed() < QUIET_START {
                    continue;
                }
                let text = line(
                    &s,
                    live.as_ref().map_or(0, BytesHashed::get),
                    started.elapsed(),
                );
                let mut err = io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{text}");
                let _ = err.flush();
                s.drawn = true;
            })
        };
        let result = self.inner.hash_inputs(algo, inputs, &mut |index, r| {
            // The result's line (and any warning) goes out on a clean line,
            // and no redraw comes between.
            let mut s = lock(&state);
            clear(&mut s);
            s.done_files += 1;
            s.done_bytes += sizes.get(index).copied().unwrap_or(0);
            done(index, r);
        });
        {
            let mut s = lock(&state);
            s.finished = true;
            clear(&mut s);
        }
        let _ = drawer.join();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_finished_and_running_bytes() {
        let s = State {
            total_bytes: 4 << 20,
            total_files: 2,
            done_bytes: 1 << 20,
            done_files: 1,
            live_base: 100,
            drawn: false,
            finished: false,
        };
        // 1 MiB finished, 1 MiB of the running input hashed, in 1 s.
        let text = line(&s, 100 + (2 << 20), Duration::from_secs(1));
        assert!(
            text.starts_with(" 50.0% 2.0 MiB / 4.0 MiB  1/2 files  2.0 MiB/s  ETA 1s"),
            "{text}"
        );
        // Never past the total, whatever the pool counts.
        let text = line(&s, u64::MAX / 2, Duration::from_secs(1));
        assert!(text.starts_with("100.0%"), "{text}");
    }
}
