//! The results log: one JSON line per finished job, appended by a single
//! writer thread so lines never interleave. Lines are written only after the
//! store committed the result they describe. Lines a full disk refuses are
//! kept and retried every second, so they are delayed, not lost or torn.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use frontends::JobView;
use serde::Serialize;

/// One finished job, as a log line.
#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    pub time: String,
    pub id: String,
    pub status: &'static str,
    pub algorithm: String,
    pub hash: Option<String>,
    pub size: Option<u64>,
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every digest (hex) of a job with several algorithms, by name;
    /// absent for one algorithm, whose digest is `hash`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashes: Option<std::collections::BTreeMap<String, String>>,
}

impl LogLine {
    /// The line for a job that has ended.
    pub fn of(view: &JobView) -> LogLine {
        LogLine {
            time: view.finished_at.clone().unwrap_or_default(),
            id: view.id.clone(),
            status: view.status.as_str(),
            algorithm: view.algorithm.clone(),
            hash: view.hash.clone(),
            size: view.size,
            name: view.name.clone(),
            error: view.error.clone(),
            hashes: (view.hashes.len() > 1).then(|| view.hashes.iter().cloned().collect()),
        }
    }
}

enum Msg {
    Lines(Vec<LogLine>),
    /// Write what is queued to the current file, then open the path anew
    /// (logrotate has renamed the file).
    Reopen,
    Close,
}

/// Asks the log's writer to reopen its file (SIGHUP), from anywhere.
#[derive(Clone)]
pub struct Reopener(mpsc::Sender<Msg>);

impl Reopener {
    /// Lines queued before this call go to the old file, later ones to the
    /// new; none is lost or split between them.
    pub fn reopen(&self) {
        let _ = self.0.send(Msg::Reopen);
    }
}

/// The last lines of the log as found at start-up: where a crash may have
/// cut it short of what the store committed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogTail {
    /// The `time` of the last line.
    pub time: String,
    /// The id of the last line.
    pub last_id: String,
    /// Every id logged with that same `time` (lines are in commit order, so
    /// these are the last lines of the file).
    pub ids_at_time: Vec<String>,
}

/// Handle to the log writer thread.
pub struct ResultsLog {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<io::Result<()>>>,
    tail: Option<LogTail>,
    pending: Arc<AtomicU64>,
}

impl ResultsLog {
    /// Opens (creating) the log for appending. A torn last line left by a
    /// crash is cut off first, so every line in the file is whole.
    pub fn open(path: &Path) -> io::Result<ResultsLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let repaired = repair_torn_tail(&mut file)?;
        if repaired > 0 {
            tracing::warn!(path = %path.display(), bytes = repaired, "cut a torn last line from the results log");
        }
        let tail = read_tail(&mut file)?;
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicU64::new(0));
        let counted = pending.clone();
        let reopen_path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("results-log".into())
            .spawn(move || write_lines(file, &reopen_path, rx, &counted))?;
        Ok(ResultsLog {
            tx,
            thread: Some(thread),
            tail,
            pending,
        })
    }

    /// The last lines found at start-up; `None` for an empty log.
    pub fn tail(&self) -> Option<&LogTail> {
        self.tail.as_ref()
    }

    /// Queues lines; they are written in the order given, whole.
    pub fn append(&self, lines: Vec<LogLine>) {
        if !lines.is_empty() {
            self.pending
                .fetch_add(lines.len() as u64, Ordering::Relaxed);
            let _ = self.tx.send(Msg::Lines(lines));
        }
    }

    /// A handle that makes the writer reopen the file (log rotation).
    pub fn reopener(&self) -> Reopener {
        Reopener(self.tx.clone())
    }

    /// Lines queued and not yet written: the log's lag behind the store.
    pub fn pending_lines(&self) -> Arc<AtomicU64> {
        self.pending.clone()
    }

    /// Writes what is queued, fsyncs, and stops the writer.
    pub fn close(&mut self) -> io::Result<()> {
        let _ = self.tx.send(Msg::Close);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("results log writer panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for ResultsLog {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// How long lines the disk refused wait before the next attempt.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Unwritten bytes held while the disk refuses them (about 200,000 lines);
/// lines beyond are dropped, and the drop is logged.
const MAX_PENDING_BYTES: usize = 64 << 20;

fn write_lines(
    mut file: File,
    path: &Path,
    rx: mpsc::Receiver<Msg>,
    queued: &AtomicU64,
) -> io::Result<()> {
    // Whole lines not yet in the file. A failed write (a full disk) leaves
    // its unwritten tail here for the next attempt, so lines are delayed,
    // never lost or torn, while the daemon runs.
    let mut pending: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut failing = false;
    let mut dropped = 0u64;
    // Lines taken from the queue and not yet written (or dropped): what
    // `queued` counts down once they are.
    let mut buffered = 0u64;
    loop {
        let first = if failing {
            match rx.recv_timeout(RETRY_INTERVAL) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => Some(Msg::Close),
            }
        } else {
            Some(rx.recv().unwrap_or(Msg::Close))
        };
        // Take everything already queued, then write once.
        let mut closing = false;
        let mut reopen = false;
        let mut next = first;
        while let Some(msg) = next.take() {
            match msg {
                Msg::Close => {
                    closing = true;
                    break;
                }
                // Lines after it wait for the next round, so they go to
                // the new file.
                Msg::Reopen => {
                    reopen = true;
                    break;
                }
                Msg::Lines(lines) => {
                    for line in lines {
                        buffered += 1;
                        if pending.len() >= MAX_PENDING_BYTES {
                            dropped += 1;
                            continue;
                        }
                        // Our own plain struct: serialising cannot fail.
                        if serde_json::to_writer(&mut pending, &line).is_ok() {
                            pending.push(b'\n');
                        }
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        if dropped > 0 {
            tracing::error!(
                lines = dropped,
                "results log lines dropped: the disk refused them for too long"
            );
            dropped = 0;
        }
        let written = write_pending(&mut file, &mut pending);
        if written.is_ok() {
            queued.fetch_sub(std::mem::take(&mut buffered), Ordering::Relaxed);
        }
        match written {
            Ok(()) if failing => {
                tracing::info!("results log writable again; delayed lines written");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::error!(error = %e, "results log write failed; retrying every second");
                failing = true;
            }
            Err(_) => {}
        }
        if reopen && pending.is_empty() {
            match reopen_file(path) {
                Ok(new) => {
                    let _ = file.sync_all();
                    file = new;
                    tracing::info!(path = %path.display(), "results log reopened");
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot reopen the results log; still writing to the old file")
                }
            }
        } else if reopen {
            tracing::error!("results log not reopened: lines for the old file are still unwritten");
        }
        if closing {
            break;
        }
    }
    if !pending.is_empty() {
        return Err(io::Error::other(format!(
            "{} bytes of results could not be written",
            pending.len()
        )));
    }
    file.sync_all()
}

/// Writes as much of `pending` as the file takes, removing what was written.
fn reopen_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_pending(file: &mut File, pending: &mut Vec<u8>) -> io::Result<()> {
    let mut written = 0;
    let result = loop {
        if written == pending.len() {
            break Ok(());
        }
        match file.write(&pending[written..]) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    pending.drain(..written);
    result
}

/// Most of the file's end read to find its last lines.
const TAIL_READ_BYTES: u64 = 1 << 20;

/// The last line's time and id, and every id logged at that time (as far
/// as the last MiB shows). Lines that are not ours (not JSON with `time` and
/// `id`) end the scan.
fn read_tail(file: &mut File) -> io::Result<Option<LogTail>> {
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_READ_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    file.read_to_end(&mut buf)?;
    let mut tail: Option<LogTail> = None;
    for line in buf.split(|&b| b == b'\n').rev().filter(|l| !l.is_empty()) {
        #[derive(serde::Deserialize)]
        struct Head {
            time: String,
            id: String,
        }
        let Ok(head) = serde_json::from_slice::<Head>(line) else {
            break;
        };
        match &mut tail {
            None => {
                tail = Some(LogTail {
                    time: head.time,
                    last_id: head.id.clone(),
                    ids_at_time: vec![head.id],
                })
            }
            Some(t) if t.time == head.time => t.ids_at_time.push(head.id),
            Some(_) => break,
        }
    }
    Ok(tail)
}

/// Truncates the file after its last newline; returns the bytes removed.
fn repair_torn_tail(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // Scan backwards in blocks for the last newline.
    const BLOCK: u64 = 64 << 10;
    let mut end = len;
    let mut buf = vec![0u8; BLOCK as usize];
    loop {
        let start = end.saturating_sub(BLOCK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(pos) = buf[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + pos as u64 + 1;
            if keep < len {
                file.set_len(keep)?;
            }
            return Ok(len - keep);
        }
        if start == 0 {
            file.set_len(0)?;
            return Ok(len);
        }
        end = start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> LogLine {
        LogLine {
            time: "t".into(),
            id: format!("id{i}"),
            status: "SUCCESS",
            algorithm: "md5".into(),
            hash: Some("00".into()),
            size: Some(i as u64),
            name: Some("a\nb".into()),
            error: None,
            hashes: None,
        }
    }

    #[test]
    fn appends_whole_lines_and_repairs_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("hashd-log-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/results.log");
        let mut log = ResultsLog::open(&path).unwrap();
        log.append((0..3).map(line).collect());
        log.close().unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        // A crash mid-line: the partial line is cut at the next start.
        std::fs::write(&path, format!("{text}{{\"time\":\"x")).unwrap();
        let mut log = ResultsLog::open(&path).unwrap();
        log.append(vec![line(9)]);
        log.close().unwrap();
        text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4);
        let log = ResultsLog::open(&path).unwrap();
        assert_eq!(
            log.tail(),
            Some(&LogTail {
                time: "t".into(),
                last_id: "id9".into(),
                ids_at_time: vec!["id9".into(), "id2".into(), "id1".into(), "id0".into()],
            })
        );
        drop(log);
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["name"], "a\nb");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_with_no_newline_at_all_is_emptied() {
        let path = std::env::temp_dir().join(format!("hashd-log-torn-{}", std::process::id()));
        std::fs::write(&path, "partial").unwrap();
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert_eq!(repair_torn_tail(&mut f).unwrap(), 7);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        std::fs::remove_file(&path).unwrap();
    }
}
