//! nix's `accept4` hands back a raw descriptor; this small module is the one
//! place that takes ownership of it (there is no safe constructor).
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::socket::{accept4, SockFlag};

/// Accepts one connection on a listening socket, as an owned descriptor.
pub(crate) fn accept_owned(listener: &OwnedFd, flags: SockFlag) -> nix::Result<OwnedFd> {
    let fd = accept4(listener.as_raw_fd(), flags)?;
    // SAFETY: accept4 just created this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
