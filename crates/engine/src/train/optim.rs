//! torch's optimisers (`SGD`, `Adam`, `AdamW`) and `clip_grad_norm_`, with torch's update
//! rules in torch's order of f32 operations (its single-tensor CPU path), so a run follows
//! torch step for step. Each parameter is updated in place by one fused pass over its
//! elements; the optimiser state (momentum buffers, Adam's moments) lives here.

use candle_core::{CpuStorage, InplaceOp2, Layout, Tensor, Var};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerKind {
    Sgd,
    Adam,
    AdamW,
}

impl OptimizerKind {
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "SGD" => OptimizerKind::Sgd,
            "Adam" => OptimizerKind::Adam,
            "AdamW" => OptimizerKind::AdamW,
            other => return Err(Error::invalid(format!("Optimizer {other} not supported (SGD, Adam or AdamW)"))),
        })
    }
}

/// The hyperparameters torch's constructors take (lr is given per step: schedules live with
/// the caller).
#[derive(Debug, Clone, Copy)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl OptimizerConfig {
    pub fn check(&self) -> Result<()> {
        let finite = |name: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && v >= lo && v < hi {
                Ok(())
            } else {
                Err(Error::invalid(format!("{name} must be in [{lo}, {hi}), got {v}")))
            }
        };
        finite("momentum", self.momentum, 0.0, f64::INFINITY)?;
        finite("weight_decay", self.weight_decay, 0.0, f64::INFINITY)?;
        finite("beta1", self.beta1, 0.0, 1.0)?;
        finite("beta2", self.beta2, 0.0, 1.0)?;
        finite("eps", self.eps, 0.0, f64::INFINITY)?;
        if self.nesterov && (self.kind != OptimizerKind::Sgd || self.momentum <= 0.0) {
            return Err(Error::invalid("Nesterov momentum requires SGD with a momentum > 0"));
        }
        Ok(())
    }
}

/// One parameter's state: SGD's momentum buffer (in `m`), or Adam's two moments.
#[derive(Default)]
struct State {
    m: Vec<f32>,
    v: Vec<f32>,
}

pub struct Optimizer {
    pub cfg: OptimizerConfig,
    states: Vec<State>,
    /// Steps taken (torch's `state['step']`).
    pub steps: u64,
}

impl Optimizer {
    pub fn new(cfg: OptimizerConfig, n_params: usize) -> Result<Self> {
        cfg.check()?;
        Ok(Optimizer { cfg, states: (0..n_params).map(|_| State::default()).collect(), steps: 0 })
    }

    /// `optimizer.step()` at learning rate `lr`: parameters with no gradient are skipped, as
    /// torch skips parameters whose `.grad` is None.
    pub fn step(&mut self, params: &[Var], grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        if params.len() != self.states.len() || grads.len() != params.len() {
            return Err(Error::invalid("the optimizer was built for another parameter list"));
        }
        if !lr.is_finite() || lr < 0.0 {
            return Err(Error::invalid(format!("lr must be a finite number >= 0, got {lr}")));
        }
        self.steps += 1;
        for ((p, g), st) in params.iter().zip(grads).zip(self.states.iter_mut()) {
            let Some(g) = g else { continue };
            let g = g.to_dtype(p.dtype())?.contiguous()?;
            let op = Update { cfg: self.cfg, lr, step: self.steps, state: std::cell::RefCell::new(std::mem::take(st)) };
            let r = p.as_tensor().inplace_op2(&g, &op);
            *st = op.state.into_inner();
            r?;
        }
        Ok(())
    }
}

struct Update {
    cfg: OptimizerConfig,
    lr: f64,
    step: u64,
    state: std::cell::RefCell<State>,
}

impl Update {
    fn sgd(&self, p: &mut [f32], g: &[f32], st: &mut State) {
        let c = &self.cfg;
        let (wd, mom, lr) = (c.weight_decay as f32, c.momentum as f32, self.lr as f32);
        let first = st.m.is_empty();
        if mom != 0.0 && first {
            st.m = vec![0.0; p.len()];
        }
        for i in 0..p.len() {
            let mut d = g[i];
            if wd != 0.0 {
                d += p[i] * wd;
            }
            if mom != 0.0 {
                // torch: the buffer starts as a copy of the first gradient, then
                // `buf = buf * momentum + grad` (dampening 0).
                let buf = if first { d } else { st.m[i] * mom + d };
                st.m[i] = buf;
                d = if c.nesterov { d + buf * mom } else { buf };
            }
            p[i] += d * -lr;
        }
    }

    fn adam(&self, p: &mut [f32], g: &[f32], st: &mut State) {
        let c = &self.cfg;
        if st.m.is_empty() {
            st.m = vec![0.0; p.len()];
            st.v = vec![0.0; p.len()];
        }
        let (b1, b2) = (c.beta1, c.beta2);
        let t = self.step as i32;
        // Python floats (f64) for the scalars, as torch computes them, then f32 where they meet
        // the tensors.
        let bias1 = 1.0 - b1.powi(t);
        let bias2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let step_size = (self.lr / bias1) as f32;
        let (w1, w2, eps, b2f) = ((1.0 - b1) as f32, (1.0 - b2) as f32, c.eps as f32, b2 as f32);
        let bias2_sqrt = bias2_sqrt as f32;
        let decoupled = c.kind == OptimizerKind::AdamW;
        let (wd, shrink) = (c.weight_decay as f32, (1.0 - self.lr * c.weight_decay) as f32);
        for i in 0..p.len() {
            let mut d = g[i];
            if decoupled {
                p[i] *= shrink;
            } else if wd != 0.0 {
                d += p[i] * wd;
            }
            // lerp(m, d, w1) = m + w1 * (d - m) (torch's form for weights below 0.5).
            let m = if w1 < 0.5 { st.m[i] + w1 * (d - st.m[i]) } else { d - (d - st.m[i]) * (1.0 - w1) };
            let v = st.v[i] * b2f + w2 * d * d;
            st.m[i] = m;
            st.v[i] = v;
            let denom = v.sqrt() / bias2_sqrt + eps;
            p[i] += -step_size * (m / denom);
        }
    }
}

impl InplaceOp2 for Update {
    fn name(&self) -> &'static str {
        "tl-optimizer-step"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (s1, s2) else {
            candle_core::bail!("training updates float32 parameters")
        };
        let (Some((p0, p1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("optimizer: parameters and gradients must be contiguous")
        };
        if p1 - p0 != g1 - g0 {
            candle_core::bail!("optimizer: gradient size differs from its parameter")
        }
        let mut st = self.state.borrow_mut();
        match self.cfg.kind {
            OptimizerKind::Sgd => self.sgd(&mut p[p0..p1], &g[g0..g1], &mut st),
            OptimizerKind::Adam | OptimizerKind::AdamW => self.adam(&mut p[p0..p1], &g[g0..g1], &mut st),
        }
        Ok(())
    }
}

/// torch's `clip_grad_norm_(params, max_norm)`: scales every gradient by
/// `min(1, max_norm / (total_norm + 1e-6))` (always, as torch does) and returns the total
/// 2-norm before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.iter().flatten() {
        let n = g.to_dtype(candle_core::DType::F32)?.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        total += n;
    }
    let total = total.sqrt();
    let coef = (max_norm / (total + 1e-6)).min(1.0);
    for g in grads.iter_mut().flatten() {
        *g = (&*g * coef)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn cfg(kind: OptimizerKind) -> OptimizerConfig {
        OptimizerConfig { kind, momentum: 0.9, nesterov: false, weight_decay: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    #[test]
    fn sgd_with_momentum_follows_torch_rule() {
        let p = Var::new(&[1f32, -2.0], &Device::Cpu).unwrap();
        let mut o = Optimizer::new(cfg(OptimizerKind::Sgd), 1).unwrap();
        let g = Tensor::new(&[0.5f32, 0.25], &Device::Cpu).unwrap();
        o.step(std::slice::from_ref(&p), &[Some(g.clone())], 0.1).unwrap();
        // d = g + 0.01 p; buf = d; p -= 0.1 d
        let d0 = [0.5 + 0.01, 0.25 - 0.02];
        let p1 = [1.0 - 0.1 * d0[0], -2.0 - 0.1 * d0[1]];
        let got: Vec<f32> = p.as_tensor().to_vec1().unwrap();
        assert!((got[0] as f64 - p1[0]).abs() < 1e-6 && (got[1] as f64 - p1[1]).abs() < 1e-6);
        o.step(std::slice::from_ref(&p), &[Some(g)], 0.1).unwrap();
        let d1 = [0.5 + 0.01 * p1[0], 0.25 + 0.01 * p1[1]];
        let buf = [0.9 * d0[0] + d1[0], 0.9 * d0[1] + d1[1]];
        let got: Vec<f32> = p.as_tensor().to_vec1().unwrap();
        assert!((got[0] as f64 - (p1[0] - 0.1 * buf[0])).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_each_weight_by_lr() {
        let p = Var::new(&[1f32, -2.0, 3.0], &Device::Cpu).unwrap();
        let mut c = cfg(OptimizerKind::Adam);
        c.weight_decay = 0.0;
        let mut o = Optimizer::new(c, 1).unwrap();
        let g = Tensor::new(&[0.5f32, -0.25, 2.0], &Device::Cpu).unwrap();
        o.step(std::slice::from_ref(&p), &[Some(g)], 0.01).unwrap();
        let got: Vec<f32> = p.as_tensor().to_vec1().unwrap();
        let want = [0.99f32, -1.99, 2.99];
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{got:?}");
        }
        assert!(Optimizer::new(OptimizerConfig { nesterov: true, ..c }, 1).is_err());
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let mut g = vec![Some(Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap()), None];
        let n = clip_grad_norm(&mut g, 1.0).unwrap();
        assert!((n - 5.0).abs() < 1e-6);
        let v: Vec<f32> = g[0].as_ref().unwrap().to_vec1().unwrap();
        assert!((v[0] - 0.6).abs() < 1e-5 && (v[1] - 0.8).abs() < 1e-5);
    }
}
