//! [`InProcessBackend`]: hashing with `std::fs` in the calling thread, one
//! input after another. The reference the daemon backend is tested against,
//! and the fallback when no daemon is running.

use std::fs::File;
use std::io::{self, Read};

use hashcore::Algorithm;

use super::{DigestBackend, Input};

/// Read size for [`InProcessBackend`]: large enough that the per-call cost
/// vanishes next to hashing, small enough to stay in L2.
const READ_CHUNK_LEN: usize = 128 * 1024;

/// Reads each input with `std::fs` (or standard input) and hashes it with
/// [`Algorithm::hasher`].
#[derive(Debug)]
pub struct InProcessBackend {
    /// Reused for every read, so hashing many small files allocates once.
    buffer: Vec<u8>,
}

impl InProcessBackend {
    /// A backend with its read buffer allocated.
    pub fn new() -> Self {
        InProcessBackend {
            buffer: vec![0; READ_CHUNK_LEN],
        }
    }

    fn hash_reader(&mut self, algo: Algorithm, reader: &mut dyn Read) -> io::Result<Vec<u8>> {
        hash_reader(algo, reader, &mut self.buffer)
    }
}

/// Hashes everything `reader` yields, reading through `buf`. Shared by every
/// backend that must hash bytes itself (stdin, pipes, devices).
pub(crate) fn hash_reader(
    algo: Algorithm,
    reader: &mut dyn Read,
    buf: &mut [u8],
) -> io::Result<Vec<u8>> {
    let mut hasher = algo.hasher();
    loop {
        match reader.read(buf) {
            Ok(0) => return Ok(hasher.finalize()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl Default for InProcessBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl DigestBackend for InProcessBackend {
    fn hash_inputs(
        &mut self,
        algo: Algorithm,
        inputs: &[Input],
        done: &mut dyn FnMut(usize, io::Result<Vec<u8>>),
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

    #[test]
    fn hashes_files_and_reports_errors_in_order() {
        let dir = std::env::temp_dir().join(format!("hashd-cli-backend-{}", std::process::id()));
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
        InProcessBackend::new()
            .hash_inputs(Algorithm::Sha256, &inputs, &mut |i, r| seen.push((i, r)))
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].0, 0);
        assert_eq!(seen[0].1.as_ref().unwrap(), &Algorithm::Sha256.digest(&big));
        assert_eq!(
            seen[1].1.as_ref().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(seen[2].1.as_ref().unwrap_err().raw_os_error(), Some(21));
    }
}
