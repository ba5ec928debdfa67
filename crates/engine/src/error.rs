//! The one error type of the engine. Every variant maps to a stable code that the
//! Node binding hands to JS as `error.code`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    UnknownModel,
    MissingFile,
    MissingWeight,
    ShapeMismatch,
    UnknownHook,
    DType,
    CorruptFile,
    Unsupported,
    Disposed,
    InvalidArgument,
    Io,
    Tokenizer,
    Hook,
    Aborted,
    Device,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownModel => "TL_UNKNOWN_MODEL",
            ErrorCode::MissingFile => "TL_MISSING_FILE",
            ErrorCode::MissingWeight => "TL_MISSING_WEIGHT",
            ErrorCode::ShapeMismatch => "TL_SHAPE_MISMATCH",
            ErrorCode::UnknownHook => "TL_UNKNOWN_HOOK",
            ErrorCode::DType => "TL_DTYPE",
            ErrorCode::CorruptFile => "TL_CORRUPT_FILE",
            ErrorCode::Unsupported => "TL_UNSUPPORTED",
            ErrorCode::Disposed => "TL_DISPOSED",
            ErrorCode::InvalidArgument => "TL_INVALID_ARGUMENT",
            ErrorCode::Io => "TL_IO",
            ErrorCode::Tokenizer => "TL_TOKENIZER",
            ErrorCode::Hook => "TL_HOOK",
            ErrorCode::Aborted => "TL_ABORTED",
            ErrorCode::Device => "TL_DEVICE",
            ErrorCode::Internal => "TL_INTERNAL",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }
    pub fn shape(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ShapeMismatch, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unsupported, message)
    }
    pub fn dtype(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::DType, message)
    }
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::CorruptFile, message)
    }
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Io, message)
    }
    pub fn missing_weight(key: &str) -> Self {
        Self::new(ErrorCode::MissingWeight, format!("weight '{key}' is missing from the checkpoint"))
    }
    /// Prefix the message with context, keeping the code.
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for Error {}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        use candle_core::Error as C;
        let mut inner = &e;
        while let C::WithBacktrace { inner: i, .. } | C::Context { inner: i, .. } | C::WithPath { inner: i, .. } = inner {
            inner = i;
        }
        let code = match inner {
            C::ShapeMismatchBinaryOp { .. }
            | C::ShapeMismatchCat { .. }
            | C::ShapeMismatch { .. }
            | C::UnexpectedNumberOfDims { .. }
            | C::UnexpectedShape { .. }
            | C::DimOutOfRange { .. }
            | C::NarrowInvalidArgs { .. }
            | C::MatMulUnexpectedStriding(_)
            | C::BroadcastIncompatibleShapes { .. }
            | C::ShapeMismatchSplit { .. } => ErrorCode::ShapeMismatch,
            C::DTypeMismatchBinaryOp { .. } | C::UnsupportedDTypeForOp(..) => ErrorCode::DType,
            C::DeviceMismatchBinaryOp { .. } | C::NotCompiledWithCudaSupport | C::Cuda(_) => ErrorCode::Device,
            C::Io(_) => ErrorCode::Io,
            C::SafeTensor(_) => ErrorCode::CorruptFile,
            _ => ErrorCode::Internal,
        };
        // candle's messages carry backtraces when RUST_BACKTRACE is set: keep the first line.
        let msg = match inner {
            C::DeviceMismatchBinaryOp { lhs, rhs, op } => format!(
                "expected all tensors on the same device, got {} and {} in {op} (move one with .to(device))",
                crate::device::location_name(lhs),
                crate::device::location_name(rhs)
            ),
            _ => inner.to_string(),
        };
        let first = msg.lines().next().unwrap_or("").to_string();
        Error::new(code, first)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorCode::Io, e.to_string())
    }
}

/// Shorthand for `Err(Error::new(..))`.
#[macro_export]
macro_rules! bail {
    ($code:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::new($crate::error::ErrorCode::$code, format!($($arg)*)))
    };
}
