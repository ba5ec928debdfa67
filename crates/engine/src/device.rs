//! Devices by TL/torch's names: `cpu`, `cuda`, `cuda:N`. CUDA exists only in builds with the
//! `cuda` cargo feature; elsewhere asking for it is a clear `TL_UNSUPPORTED`.

use std::sync::Mutex;

use candle_core::{Device, DeviceLocation, Tensor};

use crate::error::{Error, ErrorCode, Result};

/// Whether this build was compiled with CUDA support.
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

/// `cpu`, `cuda` (GPU 0) or `cuda:N`.
pub fn parse(name: &str) -> Result<Device> {
    let name = label(name);
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match name.as_str() {
        "cuda" => 0,
        _ => match name.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown device '{name}': expected 'cpu', 'cuda' or 'cuda:N'"
                )))
            }
        },
    };
    if !CUDA_BUILD {
        return Err(Error::unsupported(format!(
            "device '{name}' needs a CUDA build of transformer-lens (cargo feature `cuda`); this build is CPU-only"
        )));
    }
    cuda(ordinal).map_err(|e| Error { code: ErrorCode::Device, ..Error::from(e).context(format!("cannot open device '{name}'")) })
}

/// One candle device per GPU for the whole process: candle gives each `new_cuda` its own
/// identity, and tensors of two identities cannot meet in one op.
///
/// The device gets one explicit stream (`new_cuda_with_stream`), not candle's default of
/// `CU_STREAM_PER_THREAD`. The per-thread default stream is a different stream on every host
/// thread, while cudarc sees one stream object and so never orders them: a forward enqueued on
/// one libuv worker, the next on another, and the JS thread's reads (`toArray`) and frees
/// (`dispose`, finalisers) all raced. A stream-ordered free on the JS thread could hand memory
/// back (or to another thread's allocation) while a worker's kernels still wrote it, which is
/// how the GPU bench met `CUDA_ERROR_ILLEGAL_ADDRESS`, and a read could copy a tensor before its
/// kernel finished. With one stream every thread's work runs in the order it was submitted, and
/// the JS side submits in program order (each call is awaited before its result is used).
fn cuda(ordinal: usize) -> candle_core::Result<Device> {
    static OPEN: Mutex<Vec<(usize, Device)>> = Mutex::new(Vec::new());
    let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, d)) = open.iter().find(|(n, _)| *n == ordinal) {
        return Ok(d.clone());
    }
    let d = Device::new_cuda_with_stream(ordinal)?;
    open.push((ordinal, d.clone()));
    Ok(d)
}

/// The name TL keeps in `cfg.device`: the one the user gave (`cuda`, `cuda:1`), tidied.
pub fn label(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

/// The torch-style name of a device: `cpu` or `cuda:N`.
pub fn name(d: &Device) -> String {
    location_name(&d.location())
}

pub fn location_name(l: &DeviceLocation) -> String {
    match *l {
        DeviceLocation::Cpu => "cpu".to_string(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("mps:{gpu_id}"),
    }
}

/// Whether a CUDA device can be opened (a CUDA build and a visible GPU).
pub fn cuda_available() -> bool {
    CUDA_BUILD && candle_core::utils::cuda_is_available() && cuda(0).is_ok()
}

/// `t` on `dev`: itself when already there (no copy).
pub fn to(t: &Tensor, dev: &Device) -> Result<Tensor> {
    if t.device().same_device(dev) {
        Ok(t.clone())
    } else {
        Ok(t.to_device(dev)?)
    }
}

/// The device where tensors of a mixed op meet. Node code makes tensors on the CPU
/// (`Tensor.from`), so a CPU operand joins a GPU one there (torch would raise); two different
/// GPUs are `TL_DEVICE`.
pub fn meeting(ts: &[&Tensor]) -> Result<Device> {
    let mut at = Device::Cpu;
    for t in ts {
        let d = t.device();
        if d.is_cpu() || d.same_device(&at) {
            continue;
        }
        if !at.is_cpu() {
            return Err(Error::new(
                ErrorCode::Device,
                format!("expected tensors on one GPU, got {} and {} (move one with .to(device))", name(&at), name(d)),
            ));
        }
        at = d.clone();
    }
    Ok(at)
}

/// `ts` moved to where they meet (see `meeting`).
pub fn align_all(ts: &[&Tensor]) -> Result<Vec<Tensor>> {
    let dev = meeting(ts)?;
    ts.iter().map(|t| to(t, &dev)).collect()
}

/// `align_all` for a fixed number of operands.
pub fn align<const N: usize>(ts: [&Tensor; N]) -> Result<[Tensor; N]> {
    align_all(&ts)?.try_into().map_err(|_| Error::new(ErrorCode::Internal, "device alignment lost a tensor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_errors() {
        assert!(parse("cpu").unwrap().is_cpu());
        assert!(parse(" CPU ").unwrap().is_cpu());
        assert_eq!(name(&Device::Cpu), "cpu");
        let e = parse("tpu").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("'tpu'"));
        assert_eq!(parse("cuda:x").unwrap_err().code, ErrorCode::InvalidArgument);
        if !CUDA_BUILD {
            let e = parse("cuda:0").unwrap_err();
            assert_eq!(e.code, ErrorCode::Unsupported);
            assert!(!cuda_available());
        }
    }
}
