//! The addon's global allocator. Tensor buffers are large (an attention pattern at 1×1024 is
//! 50 MB, logits 206 MB) and short-lived: a forward frees and re-asks for the same sizes layer
//! after layer. glibc serves every allocation over 32 MiB with its own mmap and gives it back on
//! free, so the kernel zero-fills fresh pages for each one (a fifth of a forward's time at 1×1024
//! went to page faults, and glibc's per-thread arenas fragment). mimalloc keeps freed memory
//! mapped a short while and hands it out again. It is linked into this library only (not into
//! Node): V8 and libuv keep the system allocator.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gives freed memory back to the system now. mimalloc purges lazily, on later allocator calls,
/// so memory freed just before the process goes quiet (a disposed model's weights) would stay
/// resident; disposing a model calls this.
pub fn release_free_memory() {
    // SAFETY: mi_collect takes no pointers; forcing a collection is allowed from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
