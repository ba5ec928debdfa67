//! Thread pools. Candle's thread pool for elementwise ops spins 25,000 times waiting for work
//! before it parks. Between the ops of a small forward (1×128 on GPT-2 small) that spinning worker holds
//! a core that gemm's threads need: on two cores, forward 1×128 takes ~340 ms with the default
//! and ~250 ms with a limit of 1,000 (1×1024 and runWithCache no slower).

/// The variable candle reads, once, when its pool starts (the first parallel elementwise op).
pub const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// The limit set when the user has not set one.
pub const SPIN_LIMIT: &str = "1000";

/// Sets candle's pool spin limit unless the environment already has one. Call once at start-up
/// (module init), before other threads run or read the environment.
pub fn tune_candle_pool() {
    if std::env::var_os(SPIN_LIMIT_VAR).is_none() {
        std::env::set_var(SPIN_LIMIT_VAR, SPIN_LIMIT);
    }
}

/// Runs `f` on a worker of rayon's global pool (the one the kernels split their products on)
/// and waits for it. A split from a worker hands its other half to the other worker directly;
/// from any other thread (a libuv worker running an async task) every split wakes a pool worker,
/// sleeps, and is woken when it ends: on a two-core decode step of GPT-2 small (49 products)
/// that cost ~2 ms, a fifth of a bf16 step. For loops of many small products.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
