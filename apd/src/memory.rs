//! Giving memory back to the kernel. A reply to a large read (every queue
//! of a 256x256 host is about 6 MB on the bus) is allocated and freed in
//! one piece; glibc's defaults keep such pieces in its heaps afterwards
//! (the threshold above which it maps them on their own rises to the
//! largest block freed so far), and a burst of reads left apd hundreds of
//! MiB bigger for good (issue 18). Two settings at start and a trim when
//! reads go quiet hand it back.
//!
//! These are calls into the C library: the only `unsafe` in apd.
#![allow(unsafe_code)]

/// Blocks of this size and above get mappings of their own, returned to
/// the kernel when freed (glibc's initial default, kept fixed).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Heaps glibc may create: one per thread that allocates at once by
/// default (up to 8 per core), each keeping its own free memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

/// Sets the allocator up, once, before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator parameters; it is
    // called before apd starts any thread.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 {
            tracing::warn!("cannot fix glibc's mmap threshold; large replies may stay in the heap");
        }
        if libc::mallopt(libc::M_ARENA_MAX, ARENAS) != 1 {
            tracing::warn!("cannot limit glibc's heaps");
        }
    }
}

/// Returns the free memory of every heap to the kernel (after a burst of
/// large reads).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes glibc's
    // own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
