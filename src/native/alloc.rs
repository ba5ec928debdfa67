//! The addon's global allocator. Tensor buffers are large (an attention pattern at 1×1024 is
//! 50 MB, logits 206 MB) and short-lived: a forward frees and re-asks for the same sizes layer
//! after layer. glibc serves every allocation over 32 MiB with its own mmap and gives it back on
//! free, so the kernel zero-fills fresh pages for each one (a fifth of a forward's time at 1×1024
//! went to page faults, and glibc's per-thread arenas fragment). mimalloc keeps freed memory
//! mapped a short while and hands it out again. It is linked into this library only (not into
//! Node): V8 and libuv keep the system allocator.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v2's `mi_option_e` (the `-sys` crate names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays mapped before mimalloc gives it back, in milliseconds. v2's
/// default of 10 ms is far shorter than a run: a gradient run (or a long forward) got fresh pages
/// for its buffers again and again, each 2 MiB huge page zero-filled by the kernel (143k page
/// faults in ten `runWithCache` + `inclBwd` runs of a Llama-shaped model at 1×128; 19k with 10 s,
/// 12k never purging; ~15% of the CPU time), and v3's 1 s still purges what one run freed
/// during the next. The cost is peak RSS where runs of different shapes follow each other (the
/// encoder bench's forward then runWithCache: +160 MiB of 1.5–1.8 GiB; the decoder benches: none);
/// `dispose()` hands everything back at once.
const PURGE_DELAY_MS: std::os::raw::c_long = 10_000;

/// Sets the purge delay unless the user chose one (`MIMALLOC_PURGE_DELAY`).
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set takes no pointers and may be called at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// Gives freed memory back to the system now. mimalloc purges lazily, on later allocator calls,
/// so memory freed just before the process goes quiet (a disposed model's weights) would stay
/// resident; disposing a model calls this.
pub fn release_free_memory() {
    // SAFETY: mi_collect takes no pointers; forcing a collection is allowed from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
