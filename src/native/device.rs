//! Which devices this build and machine offer.

use napi_derive::napi;

/// Whether this addon was built with the `cuda` feature.
#[napi]
pub fn cuda_build() -> bool {
    tl_engine::device::CUDA_BUILD
}

/// Whether a CUDA device can be opened (a CUDA build and a visible GPU).
#[napi]
pub fn cuda_available() -> bool {
    crate::errors::guard(|| Ok(tl_engine::device::cuda_available())).unwrap_or(false)
}

/// Waits for the work queued on `device` (`cuda`, `cuda:N`; a no-op for `cpu`), as
/// `torch.cuda.synchronize()`.
#[napi]
pub fn synchronize(device: String) -> napi::Result<()> {
    use crate::errors::IntoNapi;
    crate::errors::guard(|| {
        let dev = tl_engine::device::parse(&device).napi()?;
        dev.synchronize().map_err(tl_engine::Error::from).napi()
    })
}
