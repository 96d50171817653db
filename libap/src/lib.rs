//! libap: the AP (crypto adapter) model of s390 hosts.
//!
//! The kernel's vocabulary ([`mask`], [`ids`], [`apqn`], [`matrix`]), the
//! only door to the kernel ([`sysfs`]), the host model read through it
//! ([`host`], [`guest`]), verdicts ([`validate`]) and definitions on disk
//! ([`definition`], [`store`], [`mdevctl`], [`desired`]).
//!
//! libap never panics on bad input and never touches sysfs except through
//! the [`sysfs::Sysfs`] trait.

pub mod apply;
pub mod apqn;
pub mod chzdev;
pub mod coexist;
pub mod config_file;
pub mod definition;
pub mod desired;
pub mod guest;
pub mod host;
pub mod ids;
pub mod mask;
pub mod matrix;
pub mod mdevctl;
pub mod plan;
pub mod resync;
pub mod store;
pub mod sysfs;
pub mod uevent;
pub mod usable;
pub mod validate;

pub use apqn::Apqn;
pub use definition::Definition;
pub use host::{Host, HostError, Matrix, Mdev, Owner};
pub use mask::ApMask;
pub use sysfs::{DirSysfs, Sysfs, SysfsError, SysfsOp};
