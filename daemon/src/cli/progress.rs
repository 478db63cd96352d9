//! `hashd sum --progress` and `hashd check --progress`: one line on
//! standard error, drawn by indicatif, with percent, a bar, bytes, files,
//! rate and ETA, as `pv` and `rhash --percents` draw theirs. Standard
//! output is untouched: every line written to the terminal (through a
//! [`Suspending`] writer) is written with the bar cleared (indicatif's
//! `suspend`), and the bar is cleared at the end. Callers turn it on only
//! when standard error is a terminal, and indicatif also draws nothing on a
//! terminal whose `TERM` is unset or `dumb` (it could not erase the line).
//!
//! The bar is cleared for what reaches the terminal, not around every
//! result: with stdout in a file, a clear and redraw per result wrote about
//! 0.9 MB to the terminal for 20,000 small files through the daemon, and
//! the run took 1.6-1.7 s against 0.4-1.1 s without the bar (a shared
//! 2-core VM, `script` as the terminal); clearing only around lines that
//! reach the terminal, the same run writes 2-4 KB.
//!
//! Bytes count whole inputs as their results arrive, plus the bytes the
//! hashing engine says it has hashed of inputs still running: the
//! in-process pool's counters, or, through the daemon, its PROGRESS frames
//! (see docs/protocol.md), so one large file moves either way.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hashcore::{Algorithm, Algorithms};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Digests, Input};
use crate::client::HashedSoFar;

/// How often the engine's count is read into the bar; indicatif itself
/// redraws at most 20 times a second.
const POLL: Duration = Duration::from_millis(100);
/// Runs shorter than this draw nothing: a line that flashes is noise.
const QUIET_START: Duration = Duration::from_millis(500);
/// The line: `pv`'s fields, in indicatif's template language. The bar
/// takes what the terminal's width leaves, so the line never wraps on 80
/// columns (a wrapped line cannot be redrawn in place).
const TEMPLATE: &str =
    "{percent:>3}% [{wide_bar}] {bytes}/{total_bytes}  {msg}  {binary_bytes_per_sec}  ETA {eta}";

/// The bar on the terminal while a batch is hashed, shared by
/// [`ProgressDigests`] (which puts it there) and the [`Suspending`]
/// writers (which clear it around their lines).
#[derive(Clone, Default)]
pub struct Screen(Arc<Mutex<Option<ProgressBar>>>);

impl Screen {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `write` with the bar, if one is drawn, cleared; it is redrawn
    /// after.
    fn write<R>(&self, write: impl FnOnce() -> R) -> R {
        match &*self.slot() {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

/// A writer to the terminal the bar is on: it writes whole lines, each with
/// the bar cleared, so no line is drawn over the bar or cut by a redraw.
/// The bytes of an unfinished line wait for its end (or a flush, or the
/// drop); a failed write surfaces on the next write or flush.
pub struct Suspending<W: Write> {
    inner: W,
    screen: Screen,
    /// The line begun and not yet ended.
    line: Vec<u8>,
}

impl<W: Write> Suspending<W> {
    /// Writes to `inner` around the bar on `screen`.
    pub fn new(inner: W, screen: Screen) -> Self {
        Suspending {
            inner,
            screen,
            line: Vec::new(),
        }
    }

    fn write_out(&mut self, upto: usize) -> io::Result<()> {
        let (inner, line) = (&mut self.inner, &self.line[..upto]);
        let result = self.screen.write(|| inner.write_all(line));
        self.line.drain(..upto);
        result
    }
}

impl<W: Write> Write for Suspending<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        if let Some(end) = self.line.iter().rposition(|&b| b == b'\n') {
            self.write_out(end + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            self.write_out(self.line.len())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for Suspending<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Wraps another [`Digests`] and draws its progress on standard error.
pub struct ProgressDigests {
    inner: Box<dyn Digests>,
    /// Bytes hashed by `inner`'s engine, finished inputs included, if it
    /// can tell.
    live: Option<HashedSoFar>,
    /// Where the bar is put for the writers to clear.
    screen: Screen,
}

impl ProgressDigests {
    /// `live` reads the bytes `inner`'s engine has hashed, if it can tell;
    /// whatever the command writes to the terminal must go through
    /// [`Suspending`] writers on `screen`.
    pub fn new(inner: Box<dyn Digests>, live: Option<HashedSoFar>, screen: Screen) -> Self {
        ProgressDigests {
            inner,
            live,
            screen,
        }
    }
}

/// Where the bar stands: the larger of what finished inputs add up to and
/// what the engine has hashed since the start (`hashed`), never past the
/// total. The engine's count includes finished inputs, so the larger one
/// is the better guess; neither goes down, so neither does the bar.
fn position(done_bytes: u64, hashed: u64, total: u64) -> u64 {
    done_bytes.max(hashed).min(total)
}

fn files(done: usize, total: usize) -> String {
    format!("{done}/{total} files")
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
        let total: u64 = sizes.iter().sum();
        // A batch of empty files (or only stdin) counts files instead.
        let (len, by_files) = match total {
            0 => (inputs.len() as u64, true),
            t => (t, false),
        };
        // Hidden until the quiet start is over; the bar counts (rate, ETA)
        // from now on either way.
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template(TEMPLATE)
            .map_err(io::Error::other)?
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(files(0, inputs.len()));
        let done_bytes = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicBool::new(false));
        let live = self.live.clone();
        let base = live.as_ref().map_or(0, |l| l());
        let poller = {
            let (bar, done_bytes, finished) = (bar.clone(), done_bytes.clone(), finished.clone());
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let mut shown = false;
                while !finished.load(Ordering::Acquire) {
                    std::thread::sleep(POLL);
                    if !by_files {
                        let hashed = live.as_ref().map_or(0, |l| l().saturating_sub(base));
                        bar.set_position(position(
                            done_bytes.load(Ordering::Relaxed),
                            hashed,
                            total,
                        ));
                    }
                    if !shown && started.elapsed() >= QUIET_START {
                        shown = true;
                        bar.set_draw_target(ProgressDrawTarget::stderr());
                    }
                }
            })
        };
        *self.screen.slot() = Some(bar.clone());
        let mut done_files = 0;
        let result = self.inner.hash_inputs(algo, inputs, &mut |index, r| {
            done_files += 1;
            let size = sizes.get(index).copied().unwrap_or(0);
            done_bytes.fetch_add(size, Ordering::Relaxed);
            // What the result prints on the terminal clears the bar itself
            // (the writers are Suspending). Bytes reach the bar through the
            // poller, which weighs them against the engine's.
            done(index, r);
            bar.set_message(files(done_files, inputs.len()));
            if by_files {
                bar.set_position(done_files as u64);
            }
        });
        finished.store(true, Ordering::Release);
        let _ = poller.join();
        *self.screen.slot() = None;
        bar.finish_and_clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_takes_the_larger_count_and_stops_at_the_total() {
        // 1 MiB finished, the engine 2 MiB into the batch.
        assert_eq!(position(1 << 20, 2 << 20, 4 << 20), 2 << 20);
        // An engine that cannot tell: finished inputs only.
        assert_eq!(position(1 << 20, 0, 4 << 20), 1 << 20);
        // Never past the total, whatever the engine counts.
        assert_eq!(position(1 << 20, u64::MAX / 2, 4 << 20), 4 << 20);
    }

    /// Lines go out whole, however they are written, and a line begun is
    /// written by the flush.
    #[test]
    fn a_suspending_writer_writes_whole_lines() {
        let screen = Screen::default();
        *screen.slot() = Some(ProgressBar::hidden());
        let mut out = Vec::new();
        {
            let mut w = Suspending::new(&mut out, screen.clone());
            write!(w, "hashd: ").unwrap();
            write!(w, "a: gone").unwrap();
            assert!(w.line.len() == 14 && w.inner.is_empty());
            writeln!(w, "\nb: ok").unwrap();
            assert_eq!(&w.inner[..], b"hashd: a: gone\nb: ok\n");
            write!(w, "no end").unwrap();
            w.flush().unwrap();
            assert!(w.line.is_empty());
        }
        assert_eq!(out, b"hashd: a: gone\nb: ok\nno end");
    }

    #[test]
    fn the_template_parses() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
        assert_eq!(files(1, 2), "1/2 files");
    }
}
