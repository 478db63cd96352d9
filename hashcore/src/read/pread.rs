//! The fallback engine: `pread(2)` done synchronously inside `poll`, for when
//! io_uring cannot be set up or is not wanted. Nothing is in flight while the
//! caller hashes, so reading and hashing do not overlap, but the files are
//! still read by offset, in the same segments and with the same flow control.

use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::FileExt;

use super::{Completed, ReadOp};

/// Reads queued by `push`, executed by the next `reap`.
#[derive(Default)]
pub(super) struct PreadEngine {
    /// Reads pushed and not yet executed.
    queue: VecDeque<ReadOp>,
    /// When set (a seeded generator), every read asks for a random number of
    /// bytes up to what the buffer holds, and each `reap` hands its reads
    /// back in random order: tests that short reads are continued and that
    /// segments are delivered in file order whatever order they complete in.
    #[cfg(test)]
    pub(super) chaos: Option<crate::testutil::XorShift>,
}

impl PreadEngine {
    pub(super) fn push(&mut self, op: ReadOp) {
        self.queue.push_back(op);
    }

    /// Executes every queued read.
    pub(super) fn reap(&mut self, done: &mut Vec<Completed>) {
        #[cfg(test)]
        let first = done.len();
        while let Some(mut op) = self.queue.pop_front() {
            let result = self.read(&mut op);
            done.push(Completed { op, result });
        }
        #[cfg(test)]
        if let Some(state) = &mut self.chaos {
            for i in (first + 1..done.len()).rev() {
                let j = first + state.below(i - first + 1);
                done.swap(i, j);
            }
        }
    }

    pub(super) fn in_flight(&self) -> usize {
        self.queue.len()
    }

    fn read(&mut self, op: &mut ReadOp) -> io::Result<usize> {
        let offset = op.offset + op.filled as u64;
        let buf = &mut op.buf[op.filled..];
        #[cfg(test)]
        let buf = match &mut self.chaos {
            Some(state) => {
                let len = 1 + state.below(buf.len());
                &mut buf[..len]
            }
            None => buf,
        };
        loop {
            match op.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return result,
            }
        }
    }
}
