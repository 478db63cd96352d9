//! The digest backends behind `hashd sum` and `hashd check`:
//! - [`DaemonBackend`] talks to a running daemon over its unix socket and
//!   passes each file's descriptor, so the daemon's hashers read it with
//!   io_uring while the client only opens files;
//! - [`EngineBackend`] runs the same hasher pool in-process, for when no
//!   daemon is running (or `--no-daemon`).
//!
//! Both pipeline up to [`WINDOW`] files and report results in input order.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;

use bytes::BytesMut;
use frontends::unix::frame::{self, Kind};
use hashcore::{Algorithm, HasherPool, JobError, PoolConfig};

use crate::cli::{DigestBackend, Input};

/// Files in flight at once: enough to keep every hasher's lanes and reads
/// busy, well under the socket's per-connection in-flight limit (1024).
pub const WINDOW: usize = 256;
/// Bytes per STREAM_DATA frame when a non-regular input is sent as bytes.
const STREAM_CHUNK_LEN: usize = 256 << 10;

/// Emits results in input order as they complete in any order.
struct InOrder<'a> {
    next: usize,
    ready: BTreeMap<usize, io::Result<Vec<u8>>>,
    done: &'a mut dyn FnMut(usize, io::Result<Vec<u8>>),
}

impl<'a> InOrder<'a> {
    fn new(done: &'a mut dyn FnMut(usize, io::Result<Vec<u8>>)) -> Self {
        InOrder {
            next: 0,
            ready: BTreeMap::new(),
            done,
        }
    }

    fn put(&mut self, index: usize, result: io::Result<Vec<u8>>) {
        self.ready.insert(index, result);
        while let Some(r) = self.ready.remove(&self.next) {
            (self.done)(self.next, r);
            self.next += 1;
        }
    }
}

/// An engine that hashes inputs asynchronously; [`run_pipeline`] drives it.
trait Pipelined {
    /// Starts hashing input `index`; `Some(result)` when it is known at once.
    fn start(
        &mut self,
        algo: Algorithm,
        index: usize,
        opened: Opened,
    ) -> io::Result<Option<io::Result<Vec<u8>>>>;

    /// Waits for the next completion; `None` when the engine resubmitted the
    /// input instead (it is still in flight).
    fn next(
        &mut self,
        algo: Algorithm,
        inputs: &[Input],
    ) -> io::Result<Option<(usize, io::Result<Vec<u8>>)>>;
}

/// Keeps up to [`WINDOW`] inputs in flight and reports every result, in
/// input order, exactly once.
fn run_pipeline<P: Pipelined>(
    engine: &mut P,
    algo: Algorithm,
    inputs: &[Input],
    done: &mut dyn FnMut(usize, io::Result<Vec<u8>>),
) -> io::Result<()> {
    let mut order = InOrder::new(done);
    let mut in_flight = 0usize;
    let reap = |engine: &mut P, order: &mut InOrder<'_>, in_flight: &mut usize| -> io::Result<()> {
        if let Some((index, result)) = engine.next(algo, inputs)? {
            order.put(index, result);
            *in_flight -= 1;
        }
        Ok(())
    };
    for (index, input) in inputs.iter().enumerate() {
        while in_flight >= WINDOW {
            reap(engine, &mut order, &mut in_flight)?;
        }
        match open(input) {
            Err(e) => order.put(index, Err(e)),
            Ok(opened) => match engine.start(algo, index, opened)? {
                Some(result) => order.put(index, result),
                None => in_flight += 1,
            },
        }
    }
    while in_flight > 0 {
        reap(engine, &mut order, &mut in_flight)?;
    }
    Ok(())
}

/// What an input turned out to be once opened.
enum Opened {
    /// A regular file: the hashers read it by descriptor.
    File(File),
    /// Anything else (stdin, a pipe, a device): its bytes must be pushed.
    Stream(Box<dyn Read>),
}

fn open(input: &Input) -> io::Result<Opened> {
    match input {
        Input::Stdin => Ok(Opened::Stream(Box::new(io::stdin()))),
        Input::Path(p) => {
            let f = File::open(p)?;
            let meta = f.metadata()?;
            if meta.is_dir() {
                Err(io::Error::from_raw_os_error(libc::EISDIR))
            } else if meta.is_file() {
                Ok(Opened::File(f))
            } else {
                Ok(Opened::Stream(Box::new(f)))
            }
        }
    }
}

fn job_error(e: JobError) -> io::Error {
    io::Error::other(e.to_string())
}

/// The same engine as the daemon, in this process.
pub struct EngineBackend {
    pool: HasherPool,
    /// Completions come back here, tagged with their input's index.
    tx: mpsc::Sender<(usize, io::Result<Vec<u8>>)>,
    rx: mpsc::Receiver<(usize, io::Result<Vec<u8>>)>,
}

impl EngineBackend {
    pub fn new(uring: bool) -> io::Result<EngineBackend> {
        let pool = HasherPool::start(PoolConfig {
            prefer_uring: uring && PoolConfig::default().prefer_uring,
            // A command-line tool shares the machine: pinned hashers cannot
            // move off a core another process keeps busy, and the hasher on
            // it then holds its files (up to 32) while the others idle.
            pin: false,
            max_streams: 1,
            ..PoolConfig::default()
        })?;
        let (tx, rx) = mpsc::channel();
        Ok(EngineBackend { pool, tx, rx })
    }
}

impl Pipelined for EngineBackend {
    fn start(
        &mut self,
        algo: Algorithm,
        index: usize,
        opened: Opened,
    ) -> io::Result<Option<io::Result<Vec<u8>>>> {
        match opened {
            Opened::Stream(mut r) => {
                let mut buf = vec![0u8; STREAM_CHUNK_LEN];
                Ok(Some(crate::cli::hash_reader(algo, &mut r, &mut buf)))
            }
            Opened::File(f) => {
                let tx = self.tx.clone();
                self.pool.submit_file(
                    algo,
                    f,
                    Box::new(move |o| {
                        let _ = tx.send((index, o.map(|d| d.bytes).map_err(job_error)));
                    }),
                );
                Ok(None)
            }
        }
    }

    fn next(
        &mut self,
        _: Algorithm,
        _: &[Input],
    ) -> io::Result<Option<(usize, io::Result<Vec<u8>>)>> {
        self.rx
            .recv()
            .map(Some)
            .map_err(|_| io::Error::other("hasher pool stopped"))
    }
}

/// A client of the daemon's unix socket.
pub struct DaemonBackend {
    sock: UnixStream,
    inbox: BytesMut,
}

impl DaemonBackend {
    pub fn connect(path: &Path) -> io::Result<DaemonBackend> {
        let sock = UnixStream::connect(path)?;
        Ok(DaemonBackend {
            sock,
            inbox: BytesMut::with_capacity(64 << 10),
        })
    }

    fn send_frame(&mut self, kind: Kind, tag: u64, payload: &[u8]) -> io::Result<()> {
        let mut out = BytesMut::new();
        frame::encode(kind, tag, payload, &mut out);
        self.sock.write_all(&out)
    }

    /// Sends HASH_FD with the descriptor attached to the frame's first byte.
    fn send_fd(&mut self, tag: u64, algo: Algorithm, file: &File) -> io::Result<()> {
        let mut out = BytesMut::new();
        frame::encode(Kind::HashFd, tag, algo.name().as_bytes(), &mut out);
        let sent = loop {
            match hashcore::fdpass::send_with_fd(self.sock.as_fd(), &out, file.as_fd()) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.sock.write_all(&out[sent..])
    }

    fn send_stream(&mut self, tag: u64, algo: Algorithm, r: &mut dyn Read) -> io::Result<()> {
        self.send_frame(Kind::StreamOpen, tag, algo.name().as_bytes())?;
        let mut buf = vec![0u8; STREAM_CHUNK_LEN];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.send_frame(Kind::StreamData, tag, &buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The daemon's job is abandoned with the stream.
                Err(e) => return Err(e),
            }
        }
        self.send_frame(Kind::StreamEnd, tag, &[])
    }

    /// Reads the next reply: (tag, body).
    fn recv_reply(&mut self) -> io::Result<(u64, serde_json::Value)> {
        loop {
            match frame::decode(&mut self.inbox) {
                Ok(Some(f)) => {
                    let v: serde_json::Value = serde_json::from_slice(&f.payload)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    if f.tag == 0 {
                        return Err(io::Error::other(format!("daemon: {}", v["error"])));
                    }
                    return Ok((f.tag, v));
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            let mut buf = [0u8; 64 << 10];
            let n = self.sock.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection",
                ));
            }
            self.inbox.extend_from_slice(&buf[..n]);
        }
    }
}

fn reply_to_result(v: &serde_json::Value) -> io::Result<Vec<u8>> {
    if v["ok"] == true {
        let hex = v["hash"].as_str().unwrap_or("");
        return (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
    }
    Err(io::Error::other(
        v["error"].as_str().unwrap_or("daemon error").to_string(),
    ))
}

impl Pipelined for DaemonBackend {
    fn start(
        &mut self,
        algo: Algorithm,
        index: usize,
        opened: Opened,
    ) -> io::Result<Option<io::Result<Vec<u8>>>> {
        let tag = index as u64 + 1;
        match opened {
            Opened::File(f) => self.send_fd(tag, algo, &f)?,
            Opened::Stream(mut r) => self.send_stream(tag, algo, &mut r)?,
        }
        Ok(None)
    }

    fn next(
        &mut self,
        algo: Algorithm,
        inputs: &[Input],
    ) -> io::Result<Option<(usize, io::Result<Vec<u8>>)>> {
        let (tag, v) = self.recv_reply()?;
        let index = usize::try_from(tag - 1)
            .ok()
            .filter(|&i| i < inputs.len())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("reply for unknown tag {tag}"),
                )
            })?;
        if v["busy"] == true {
            // The daemon's file queue was full: send the file again; it
            // stays in flight.
            std::thread::sleep(std::time::Duration::from_millis(1));
            return match open(&inputs[index]) {
                Ok(Opened::File(f)) => self.send_fd(tag, algo, &f).map(|()| None),
                Ok(Opened::Stream(_)) => Ok(Some((index, reply_to_result(&v)))),
                Err(e) => Ok(Some((index, Err(e)))),
            };
        }
        Ok(Some((index, reply_to_result(&v))))
    }
}

/// Every pipelined backend hashes through the one windowed, in-order loop.
impl<P: Pipelined> DigestBackend for P {
    fn hash_inputs(
        &mut self,
        algo: Algorithm,
        inputs: &[Input],
        done: &mut dyn FnMut(usize, io::Result<Vec<u8>>),
    ) -> io::Result<()> {
        run_pipeline(self, algo, inputs, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashSet, VecDeque};

    /// Completes out of order and asks for some inputs to be resubmitted.
    struct Scrambler {
        pending: VecDeque<usize>,
        resubmitted: HashSet<usize>,
        most_in_flight: usize,
    }

    impl Pipelined for Scrambler {
        fn start(
            &mut self,
            _: Algorithm,
            index: usize,
            _: Opened,
        ) -> io::Result<Option<io::Result<Vec<u8>>>> {
            if index.is_multiple_of(3) {
                return Ok(Some(Ok(index.to_le_bytes().to_vec())));
            }
            self.pending.push_front(index);
            self.most_in_flight = self.most_in_flight.max(self.pending.len());
            Ok(None)
        }

        fn next(
            &mut self,
            _: Algorithm,
            _: &[Input],
        ) -> io::Result<Option<(usize, io::Result<Vec<u8>>)>> {
            let index = self
                .pending
                .pop_back()
                .expect("next() with nothing in flight");
            if index % 5 == 1 && self.resubmitted.insert(index) {
                self.pending.push_front(index);
                return Ok(None);
            }
            Ok(Some((index, Ok(index.to_le_bytes().to_vec()))))
        }
    }

    #[test]
    fn every_input_is_reported_once_in_order_despite_resubmissions() {
        let path = std::env::temp_dir().join(format!("hashd-client-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let inputs: Vec<Input> = (0..1000).map(|_| Input::Path(path.clone())).collect();
        let mut engine = Scrambler {
            pending: VecDeque::new(),
            resubmitted: HashSet::new(),
            most_in_flight: 0,
        };
        let mut seen = Vec::new();
        run_pipeline(&mut engine, Algorithm::Md5, &inputs, &mut |i, r| {
            assert_eq!(r.unwrap(), i.to_le_bytes().to_vec());
            seen.push(i);
        })
        .unwrap();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert!(engine.most_in_flight <= WINDOW);
        assert!(!engine.resubmitted.is_empty());
        std::fs::remove_file(path).unwrap();
    }
}
