//! Ending a command-line process the way a C filter ends when its reader
//! goes away. Rust programs ignore SIGPIPE, so a write to a closed pipe
//! returns `EPIPE` instead of killing them; `md5sum … | head -1` relies on
//! the signal to stop md5sum silently. This lives here because it needs
//! `unsafe`, which the `daemon` crate forbids.

/// Terminates the process by SIGPIPE, as the kernel would have done at the
/// failed write had the signal not been ignored: no message, and the parent
/// sees death by signal 13 (a shell's `$?` is 141), exactly as for
/// coreutils. Output still buffered is dropped: its reader is gone.
pub fn die_of_sigpipe() -> ! {
    // SAFETY: signal(2) and raise(3) take plain integers and touch no memory
    // of ours; restoring the default disposition is what lets raise()
    // terminate the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Only reached if SIGPIPE is blocked: the status a shell shows for it.
    std::process::exit(128 + libc::SIGPIPE)
}
