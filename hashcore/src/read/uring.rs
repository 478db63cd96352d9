//! The io_uring engine: one ring per reader, reads in a slab keyed by
//! `user_data`, each owning its buffer and a handle on its file.
//!
//! Buffer ownership across the kernel boundary (as in tokio-uring's design):
//! from the moment a read's SQE is pushed until its CQE is reaped, the kernel
//! may write into the read's buffer. In that window the read stays in
//! [`Slots`], and nothing touches its buffer: the slab may move the `Vec`
//! header when it grows, but never the heap memory the kernel writes to. A
//! cancelled file's reads are not cancelled in the kernel (reads of regular
//! files cannot be interrupted once started); they complete normally and
//! their buffers go back to the pool. [`UringEngine`]'s `Drop` waits for every
//! read the kernel holds, and leaks the buffers if it cannot.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::os::unix::io::AsRawFd;

use io_uring::{opcode, types, IoUring, Probe};

use super::{Completed, ReadOp, ReaderConfig};

/// The largest ring asked for; reads beyond it wait in the backlog.
const MAX_RING_ENTRIES: u32 = 4096;

/// The real `io_uring_setup(2)`, with `entries` clamped to what the kernel allows.
pub(super) fn setup_ring(entries: u32) -> io::Result<IoUring> {
    IoUring::builder().setup_clamp().build(entries)
}

pub(super) struct UringEngine {
    /// The ring; dropped after `Drop::drop` has drained it.
    ring: IoUring,
    /// Every read pushed and not yet reaped, by `user_data`.
    slots: Slots,
    /// Slots of reads not yet in the submission queue, in push order.
    backlog: VecDeque<usize>,
    /// Reads in the submission queue or the kernel: their CQE is not reaped.
    in_kernel: usize,
    /// At most this many reads are given to the kernel at once: no more than
    /// the submission queue holds, nor than the completion queue holds, so
    /// completions never overflow.
    max_in_kernel: usize,
}

impl UringEngine {
    /// Sets up a ring sized for `cfg` with `setup`, and checks that the kernel
    /// supports `IORING_OP_READ`. The error is the reason to log.
    pub(super) fn new(
        cfg: &ReaderConfig,
        setup: impl FnOnce(u32) -> io::Result<IoUring>,
    ) -> Result<UringEngine, String> {
        let wanted = cfg.max_files.saturating_mul(cfg.reads_per_file);
        let entries = u32::try_from(wanted)
            .unwrap_or(u32::MAX)
            .clamp(8, MAX_RING_ENTRIES)
            .next_power_of_two();
        let ring = setup(entries).map_err(|e| format!("io_uring_setup failed: {e}"))?;
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| format!("io_uring cannot probe its opcodes (kernel before 5.6?): {e}"))?;
        if !probe.is_supported(opcode::Read::CODE) {
            return Err("io_uring does not support IORING_OP_READ (kernel before 5.6)".to_owned());
        }
        let max_in_kernel = ring.params().sq_entries().min(ring.params().cq_entries()) as usize;
        Ok(UringEngine {
            ring,
            slots: Slots::default(),
            backlog: VecDeque::new(),
            in_kernel: 0,
            max_in_kernel: max_in_kernel.max(1),
        })
    }

    pub(super) fn push(&mut self, op: ReadOp) {
        let key = self.slots.insert(op);
        self.backlog.push_back(key);
    }

    /// Reads pushed and not yet reaped.
    pub(super) fn in_flight(&self) -> usize {
        self.slots.len
    }

    /// Hands the backlog to the kernel without waiting. A failure is left for
    /// the next `reap`, which meets it again and reports it.
    pub(super) fn submit(&mut self) {
        self.fill_submission_queue();
        if !self.ring.submission().is_empty() {
            let _ = self.ring.submit();
        }
    }

    /// Moves completed reads to `done`; with `wait`, blocks until at least one
    /// is there if any read is in the kernel.
    pub(super) fn reap(&mut self, wait: bool, done: &mut Vec<Completed>) -> io::Result<()> {
        let before = done.len();
        loop {
            self.fill_submission_queue();
            self.drain_completion_queue(done);
            let want = usize::from(wait && done.len() == before && self.in_kernel > 0);
            match self.ring.submit_and_wait(want) {
                Ok(_) => {
                    self.drain_completion_queue(done);
                    if want == 0 || done.len() > before {
                        return Ok(());
                    }
                }
                // EBUSY: completions must be reaped before more can be
                // submitted; EINTR: a signal interrupted the wait; EAGAIN: the
                // kernel is short of memory for requests. Reap, then retry.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBUSY | libc::EINTR | libc::EAGAIN)
                    ) =>
                {
                    if want == 0 {
                        self.drain_completion_queue(done);
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves reads from the backlog to the submission queue while the kernel
    /// may take more.
    fn fill_submission_queue(&mut self) {
        let mut sq = self.ring.submission();
        while self.in_kernel < self.max_in_kernel {
            let Some(&key) = self.backlog.front() else {
                break;
            };
            let op = self.slots.get_mut(key);
            let unread = &mut op.buf[op.filled..];
            let entry = opcode::Read::new(
                types::Fd(op.file.as_raw_fd()),
                unread.as_mut_ptr(),
                // At most MAX_READ_LEN (1 GiB): `ReaderConfig::normalized`.
                unread.len() as u32,
            )
            .offset(op.offset + op.filled as u64)
            .build()
            .user_data(key as u64);
            // SAFETY: the entry points into `op.buf[op.filled..]`, which is
            // initialised, `unread.len()` bytes long and owned by the slot
            // `key`. The slot keeps `op` (its buffer, and the `Arc<File>` that
            // keeps the descriptor open) until `drain_completion_queue` reaps
            // this entry's CQE, and nothing reads, resizes or frees the buffer
            // before then; if the engine is dropped first, `Drop` waits for
            // the CQE or leaks the slot.
            if unsafe { sq.push(&entry) }.is_err() {
                break;
            }
            self.backlog.pop_front();
            self.in_kernel += 1;
        }
    }

    fn drain_completion_queue(&mut self, done: &mut Vec<Completed>) {
        for cqe in self.ring.completion() {
            // The kernel is done with this read's buffer: it is ours again.
            let op = self.slots.remove(cqe.user_data() as usize);
            self.in_kernel -= 1;
            let result = match cqe.result() {
                n if n < 0 => Err(io::Error::from_raw_os_error(-n)),
                n => Ok(n as usize),
            };
            done.push(Completed { op, result });
        }
    }
}

impl Drop for UringEngine {
    /// Waits until the kernel has returned every buffer it holds. Reads still
    /// in the backlog were never submitted and are simply dropped.
    fn drop(&mut self) {
        let mut done = Vec::new();
        while self.in_kernel > 0 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBUSY | libc::EINTR | libc::EAGAIN)
                    ) => {}
                Err(_) => break,
            }
            self.drain_completion_queue(&mut done);
            done.clear();
        }
        if self.in_kernel > 0 {
            // The ring cannot be waited on, and closing it does not wait for
            // the reads it holds: the kernel may still write into their
            // buffers. Leak every slot (buffers and descriptors) rather than
            // free memory the kernel may write to.
            mem::forget(mem::take(&mut self.slots));
        }
    }
}

/// A slab of reads: a read's index is its `user_data`, and stays valid until
/// it is removed.
#[derive(Default)]
struct Slots {
    entries: Vec<Option<ReadOp>>,
    /// Indices of `None` entries.
    free: Vec<usize>,
    /// `Some` entries.
    len: usize,
}

impl Slots {
    fn insert(&mut self, op: ReadOp) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(key) => {
                self.entries[key] = Some(op);
                key
            }
            None => {
                self.entries.push(Some(op));
                self.entries.len() - 1
            }
        }
    }

    fn get_mut(&mut self, key: usize) -> &mut ReadOp {
        self.entries[key]
            .as_mut()
            .expect("io_uring slot is occupied")
    }

    fn remove(&mut self, key: usize) -> ReadOp {
        let op = self.entries[key]
            .take()
            .expect("io_uring completion for an occupied slot");
        self.free.push(key);
        self.len -= 1;
        op
    }
}
