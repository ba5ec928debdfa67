//! TL's activation functions by their `act_fn` names.

use candle_core::Tensor;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    GeluNew,
    Gelu,
    GeluFast,
    GeluPytorchTanh,
    Relu,
    Silu,
    /// TL's `solu`: `x * softmax(x)` over the hidden dimension.
    Solu,
    /// `solu_ln`: SoLU followed by the MLP's own LayerNorm (`mlp.hook_mid`, `mlp.ln`), which
    /// `model::mlp` applies.
    SoluLn,
}

impl Activation {
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu_new" => Activation::GeluNew,
            "gelu" => Activation::Gelu,
            "gelu_fast" => Activation::GeluFast,
            "gelu_pytorch_tanh" => Activation::GeluPytorchTanh,
            "relu" => Activation::Relu,
            "silu" => Activation::Silu,
            "solu" => Activation::Solu,
            "solu_ln" => Activation::SoluLn,
            other => return Err(Error::unsupported(format!("activation function '{other}' is not supported yet"))),
        })
    }

    /// TL's `is_layer_norm_activation`: the MLP normalises the activation (`act_fn` ends in `_ln`).
    pub fn has_ln(self) -> bool {
        self == Activation::SoluLn
    }

    /// Differentiable when `x` is in an autograd graph (the fused kernel has a backward).
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): candle's `gelu` is this formula.
            Activation::GeluNew | Activation::GeluFast | Activation::GeluPytorchTanh => crate::kernels::gelu::gelu_new_tensor(x)?,
            Activation::Gelu => x.gelu_erf()?,
            Activation::Relu => x.relu()?,
            Activation::Silu => x.silu()?,
            Activation::Solu | Activation::SoluLn => (x * crate::kernels::softmax::softmax_last(x)?)?,
        })
    }
}
