//! Giving freed heap memory back to the system after a burst of work: glibc keeps what a storm
//! or a flood freed in its arenas, so RSS would stay at the peak (`malloc_trim`). The crate's
//! one FFI call; a no-op where glibc is not the allocator.

/// Asks the allocator to return free heap pages to the system. Takes a few milliseconds on a
/// large heap: call it after work, not on a hot path.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code, reason = "the crate's one FFI call; see the SAFETY note")]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}
