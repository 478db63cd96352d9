//! Passing file descriptors over unix sockets (SCM_RIGHTS). The only way a
//! local client hands the daemon a file it opened, so the daemon reads exactly
//! what the client could open, never a path.
//!
//! Both calls are non-blocking-friendly: they return `WouldBlock` like the
//! socket does, so async front ends can drive them from a readiness loop.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors accepted in one `recvmsg`; the kernel delivers the fds of
/// one `sendmsg` at a time, and our clients send one per message.
pub const MAX_FDS_PER_MSG: usize = 8;

/// Sends `data` with `fd` attached. Returns the bytes sent; the descriptor
/// travels with the first byte, so callers must resend only the tail.
pub fn send_with_fd(sock: BorrowedFd<'_>, data: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
    let raw: RawFd = fd.as_raw_fd();
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` zeroed, aligned bytes, enough for
    // one cmsghdr carrying one RawFd, so CMSG_FIRSTHDR is non-null and the
    // writes through it and CMSG_DATA stay inside `control`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, raw);
    }
    // SAFETY: msg, iov and control outlive the call; iov describes `data`,
    // which the kernel only reads.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
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
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS_PER_MSG * std::mem::size_of::<RawFd>()) as u32) }
        as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: iov describes `buf`, writable for its length; msg_control
    // describes `control`; all outlive the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled msg_control with msg_controllen valid bytes;
    // CMSG_FIRSTHDR/NXTHDR walk only within them, and each SCM_RIGHTS payload
    // holds (cmsg_len - CMSG_LEN(0)) / size_of::<RawFd>() descriptors that
    // this process now owns, so wrapping each in OwnedFd once is sound.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("peer passed more than {MAX_FDS_PER_MSG} descriptors in one message"),
        ));
    }
    Ok(n as usize)
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
}
