//! [`ReadDigests`]: hashing with `std::fs` in the calling thread, one
//! input after another. The reference the daemon's digests are tested against,
//! and the fallback when no daemon is running.

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc;

use hashcore::{Algorithms, Hashes};

use super::{Digests, Input};

/// Read size for [`ReadDigests`]: large enough that the per-call cost
/// vanishes next to hashing, small enough to stay in L2.
const READ_CHUNK_LEN: usize = 128 * 1024;

/// Reads each input with `std::fs` (or standard input) and hashes it with
/// [`Algorithms::hasher`].
#[derive(Debug)]
pub struct ReadDigests {
    /// Reused for every read, so hashing many small files allocates once.
    buffer: Vec<u8>,
}

impl ReadDigests {
    /// With its read buffer allocated.
    pub fn new() -> Self {
        ReadDigests {
            buffer: vec![0; READ_CHUNK_LEN],
        }
    }

    fn hash_reader(&mut self, algo: Algorithms, reader: &mut dyn Read) -> io::Result<Hashes> {
        hash_reader(algo, reader, &mut self.buffer)
    }
}

/// Hashes everything `reader` yields, reading through `buf`. Shared by every
/// [`Digests`] that must hash bytes themselves (stdin, pipes, devices).
///
/// Input past the first read is hashed on a helper thread while this one
/// reads on: reading a pipe costs the kernel's copies and the writer's own
/// work, and done in turn with hashing that made `cat f | hashd sum -` run
/// at about two thirds of `hashd sum f` (whose reads overlap hashing in the
/// pool). An input that ends within its first read starts no thread.
pub(crate) fn hash_reader(
    algo: Algorithms,
    reader: &mut dyn Read,
    buf: &mut [u8],
) -> io::Result<Hashes> {
    let mut hasher = algo.hasher();
    let mut first = read_some(reader, buf)?;
    if first == 0 {
        return Ok(hasher.finalize());
    }
    if first < buf.len() {
        // A short read: often the whole input (a small file), else a pipe.
        let more = read_some(reader, &mut buf[first..])?;
        if more == 0 {
            hasher.update(&buf[..first]);
            return Ok(hasher.finalize());
        }
        first += more;
    }
    let chunk_len = buf.len();
    // Hashed here rather than copied into a buffer for the helper thread.
    hasher.update(&buf[..first]);
    std::thread::scope(|scope| {
        // Full buffers go to the hashing thread, with their filled length,
        // and come back empty; OVERLAP_BUFFERS bounds the memory.
        let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, usize)>(OVERLAP_BUFFERS);
        let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
        let hashing = scope.spawn(move || {
            for (chunk, len) in full_rx {
                hasher.update(&chunk[..len]);
                // The reader may have stopped on an error; then nobody waits.
                let _ = empty_tx.send(chunk);
            }
            hasher.finalize()
        });
        let mut allocated = 0;
        let read_result = loop {
            let mut chunk = match empty_rx.try_recv() {
                Ok(chunk) => chunk,
                Err(_) if allocated < OVERLAP_BUFFERS + 2 => {
                    allocated += 1;
                    vec![0; chunk_len]
                }
                Err(_) => match empty_rx.recv() {
                    Ok(chunk) => chunk,
                    Err(_) => break Ok(()),
                },
            };
            let len = match read_some(reader, &mut chunk) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if full_tx.send((chunk, len)).is_err() {
                break Ok(());
            }
        };
        drop(full_tx);
        let digest = hashing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read_result.map(|()| digest)
    })
}

/// Buffers queued for the hashing thread at most: enough that neither
/// thread waits on the other for a pipe's uneven reads.
const OVERLAP_BUFFERS: usize = 4;

/// One `read`, retried when interrupted by a signal.
fn read_some(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

impl Default for ReadDigests {
    fn default() -> Self {
        Self::new()
    }
}

impl Digests for ReadDigests {
    fn hash_inputs(
        &mut self,
        algo: Algorithms,
        inputs: &[Input],
        done: &mut dyn FnMut(usize, io::Result<Hashes>),
    ) -> io::Result<()> {
        for (index, input) in inputs.iter().enumerate() {
            let result = match input {
                Input::Stdin => self.hash_reader(algo, &mut io::stdin()),
                Input::Path(path) => {
                    File::open(path).and_then(|mut file| self.hash_reader(algo, &mut file))
                }
            };
            done(index, result);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashcore::Algorithm;

    /// Yields `data` in reads of uneven sizes, as a pipe does, with an
    /// interruption now and then; fails once `fail_at` bytes are out.
    struct Dribble {
        data: Vec<u8>,
        pos: usize,
        reads: usize,
        fail_at: Option<usize>,
    }

    impl Read for Dribble {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            if self.reads.is_multiple_of(7) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.fail_at.is_some_and(|at| self.pos >= at) {
                return Err(io::Error::other("device gone"));
            }
            let n = buf
                .len()
                .min(self.data.len() - self.pos)
                .min(1 + self.reads * 7919 % 70_000);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn hash_reader_hashes_uneven_reads_and_reports_a_failed_one() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i * 31 + i / 977) as u8)
            .collect();
        let mut buf = vec![0; READ_CHUNK_LEN];
        for len in [0, 1, 1000, READ_CHUNK_LEN, READ_CHUNK_LEN + 1, data.len()] {
            for algo in [Algorithm::Md5, Algorithm::Sha256] {
                let mut r = Dribble {
                    data: data[..len].to_vec(),
                    pos: 0,
                    reads: 0,
                    fail_at: None,
                };
                let got = hash_reader(algo.into(), &mut r, &mut buf).unwrap();
                assert_eq!(got, [(algo, algo.digest(&data[..len]))], "{algo} {len}");
            }
        }
        let mut r = Dribble {
            data,
            pos: 0,
            reads: 0,
            fail_at: Some(1_000_000),
        };
        let err = hash_reader(Algorithm::Md5.into(), &mut r, &mut buf).unwrap_err();
        assert_eq!(err.to_string(), "device gone");
    }

    #[test]
    fn hashes_files_and_reports_errors_in_order() {
        let dir = std::env::temp_dir().join(format!("hashd-cli-digests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        let big = vec![7u8; READ_CHUNK_LEN * 2 + 3];
        std::fs::write(&file, &big).unwrap();
        let inputs = [
            Input::Path(file),
            Input::Path(dir.join("missing")),
            Input::Path(dir.clone()),
        ];
        let mut seen = Vec::new();
        ReadDigests::new()
            .hash_inputs(Algorithm::Sha256.into(), &inputs, &mut |i, r| {
                seen.push((i, r))
            })
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].0, 0);
        assert_eq!(
            seen[0].1.as_ref().unwrap(),
            &[(Algorithm::Sha256, Algorithm::Sha256.digest(&big))]
        );
        assert_eq!(
            seen[1].1.as_ref().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(seen[2].1.as_ref().unwrap_err().raw_os_error(), Some(21));
    }
}
