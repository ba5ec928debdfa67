//! The tuned-lens toolkit's numeric core: training a tuned lens's translators.

pub mod train;

#[cfg(test)]
mod tests {
    use super::train::LensTrainer;
    use crate::model::config::Config;
    use crate::train::init::random_model;
    use crate::train::optim::{OptimizerConfig, OptimizerKind};
    use candle_core::{DType, Device, Tensor};

    #[test]
    fn a_trained_lens_beats_the_logit_lens() {
        let cfg = Config { n_layers: 3, d_model: 24, d_head: 6, n_ctx: 16, d_vocab: 30, act_fn: Some("gelu".into()), ..Config::default() };
        let model = random_model(cfg, 9, DType::F32, &Device::Cpu).unwrap();
        let zeros = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap();
        let (w, b): (Vec<_>, Vec<_>) = (0..3).map(|_| (zeros(&[24, 24]), zeros(&[24]))).unzip();
        let opt = OptimizerConfig { kind: OptimizerKind::Sgd, momentum: 0.9, nesterov: true, weight_decay: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let mut tr = LensTrainer::new(&model, &w, &b, true, opt).unwrap();
        let ids: Vec<i64> = (0..64).map(|i| (i * 13 + 5) % 30).collect();
        let tokens = Tensor::from_vec(ids, (4, 16), &Device::Cpu).unwrap();
        let logit_lens = tr.eval(&model, &tokens, true).unwrap();
        assert_eq!(tr.eval(&model, &tokens, false).unwrap(), logit_lens, "identity translators are the logit lens");
        for k in 0..60 {
            tr.step(&model, std::slice::from_ref(&tokens), 0.1 * (1.0 - k as f64 / 60.0)).unwrap();
        }
        let tuned = tr.eval(&model, &tokens, false).unwrap();
        for (l, (t, g)) in tuned.iter().zip(&logit_lens).enumerate() {
            assert!(t < g, "layer {l}: tuned {t} vs logit {g}");
        }
    }
}
