//! Passing file descriptors over unix sockets (SCM_RIGHTS). The only way a
//! local client hands the daemon a file it opened, so the daemon reads exactly
//! what the client could open, never a path.
//!
//! Both calls are non-blocking-friendly: they return `WouldBlock` like the
//! socket does, so async front ends can drive them from a readiness loop.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};

/// Most descriptors accepted in one `recvmsg`; the kernel delivers the fds of
/// one `sendmsg` at a time, and our clients send one per message.
pub const MAX_FDS_PER_MSG: usize = 8;

/// Sends `data` with `fd` attached. Returns the bytes sent; the descriptor
/// travels with the first byte, so callers must resend only the tail.
///
/// rustix builds the control message (the `cmsghdr` arithmetic that was our
/// own `unsafe` before), so this module has none.
pub fn send_with_fd(sock: BorrowedFd<'_>, data: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    // The space was sized for exactly this one message.
    let pushed = control.push(SendAncillaryMessage::ScmRights(&fds));
    debug_assert!(pushed, "control buffer too small for one descriptor");
    // MSG_NOSIGNAL: a peer that went away is an EPIPE error, not a SIGPIPE.
    Ok(sendmsg(
        sock,
        &[IoSlice::new(data)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?)
}

/// Receives into `buf`, appending any passed descriptors to `fds` (with
/// close-on-exec set). Returns the bytes read; 0 means the peer closed.
/// Descriptors cut off by a too-small control buffer are an error: the
/// kernel has closed them, so the stream no longer matches its frames.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MSG))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = recvmsg(
        sock,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut passed = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(these) = message {
            passed.extend(these);
        }
    }
    // rustix's control buffer has alignment slack, so a few descriptors over
    // the limit may arrive rather than be cut off (CTRUNC); both are the same
    // error, and the ones that did arrive are closed when `passed` drops.
    if received.flags.contains(ReturnFlags::CTRUNC) || passed.len() > MAX_FDS_PER_MSG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer passed more than {MAX_FDS_PER_MSG} descriptors in one message"),
        ));
    }
    fds.append(&mut passed);
    Ok(received.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_passed_descriptor_reads_the_same_file() {
        let (a, b) = UnixStream::pair().unwrap();
        let path = std::env::temp_dir().join(format!("hashcore-fdpass-{}", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"passed")
            .unwrap();
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(send_with_fd(a.as_fd(), b"hello", file.as_fd()).unwrap(), 5);
        drop(file); // the message holds its own reference
        let mut buf = [0u8; 16];
        let mut fds = Vec::new();
        let n = recv_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        let mut got = std::fs::File::from(fds.pop().unwrap());
        got.rewind().unwrap();
        let mut s = String::new();
        got.read_to_string(&mut s).unwrap();
        assert_eq!(s, "passed");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn plain_bytes_carry_no_descriptors() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"xyz").unwrap();
        drop(a);
        let mut buf = [0u8; 8];
        let mut fds = Vec::new();
        assert_eq!(recv_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap(), 3);
        assert!(fds.is_empty());
        assert_eq!(recv_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap(), 0);
    }

    #[test]
    fn more_descriptors_than_the_limit_are_an_error() {
        // Just over the limit (they arrive, and are counted), and far over
        // it (the kernel cuts them off: MSG_CTRUNC).
        for count in [MAX_FDS_PER_MSG + 1, 3 * MAX_FDS_PER_MSG] {
            let (a, b) = UnixStream::pair().unwrap();
            let files: Vec<std::fs::File> = (0..count)
                .map(|_| std::fs::File::open("/dev/null").unwrap())
                .collect();
            let borrowed: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
            let mut space =
                [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3 * MAX_FDS_PER_MSG))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
            sendmsg(
                a.as_fd(),
                &[IoSlice::new(b"x")],
                &mut control,
                SendFlags::empty(),
            )
            .unwrap();
            let mut buf = [0u8; 8];
            let mut fds = Vec::new();
            let err = recv_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{count}");
            assert!(err.to_string().contains("more than 8"), "{err}");
            assert!(fds.is_empty(), "{count}");
        }
    }
}
