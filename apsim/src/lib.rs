//! apsim: a simulator of the s390 kernel's AP bus and vfio_ap driver, as
//! specified in `shared/spec/kernel.md`. It runs in process ([`Sim`]) or
//! mounted as a FUSE sysfs (`apsim mount`). It deliberately shares no code
//! with libap: it is the referee of the rules libap implements.

mod bits;
pub mod fuse;
mod kernel;
mod owned_fd;
mod parse;
mod sim;
pub mod topology;
pub mod uevent_socket;

pub use sim::{DirEntry, Node, NodeKind, Sim};
pub use topology::{Topology, TopologyError};

/// An errno value as the kernel returns it (`libc::EINVAL`, ...).
pub type Errno = i32;
