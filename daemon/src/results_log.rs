//! The results log: one JSON line per finished job, appended by a single
//! writer thread so lines never interleave. Lines are written only after the
//! store committed the result they describe.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

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
}

enum Msg {
    Lines(Vec<LogLine>),
    Close,
}

/// Handle to the log writer thread.
pub struct ResultsLog {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<io::Result<()>>>,
    path: PathBuf,
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
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("results-log".into())
            .spawn(move || write_lines(file, rx))?;
        Ok(ResultsLog {
            tx,
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues lines; they are written in the order given, whole.
    pub fn append(&self, lines: Vec<LogLine>) {
        if !lines.is_empty() {
            let _ = self.tx.send(Msg::Lines(lines));
        }
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

fn write_lines(file: File, rx: mpsc::Receiver<Msg>) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 << 10, file);
    let mut result = Ok(());
    'outer: while let Ok(msg) = rx.recv() {
        let mut next = Some(msg);
        // Write everything already queued, then flush once.
        while let Some(msg) = next.take() {
            match msg {
                Msg::Close => break 'outer,
                Msg::Lines(lines) => {
                    for line in lines {
                        let mut text = serde_json::to_vec(&line).unwrap_or_default();
                        text.push(b'\n');
                        if let Err(e) = out.write_all(&text) {
                            tracing::error!(error = %e, "results log write failed");
                            result = Err(e);
                        }
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            tracing::error!(error = %e, "results log flush failed");
            result = Err(e);
        }
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    result
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
