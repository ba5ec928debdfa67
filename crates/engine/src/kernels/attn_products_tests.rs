use super::*;
use crate::kernels::testing::grad_gap;
use candle_core::{Device, Var};

/// `[b, pos, kv, dh]` → `[b, kv·g, pos, dh]`: every K/V head repeated for its g query heads (TL's
/// repeat_interleave), heads first.
fn heads_first(t: &Tensor, g: usize) -> Tensor {
    let (b, p, kv, dh) = t.dims4().unwrap();
    let r = t.unsqueeze(3).unwrap().broadcast_as((b, p, kv, g, dh)).unwrap().reshape((b, p, kv * g, dh)).unwrap();
    r.transpose(1, 2).unwrap().contiguous().unwrap()
}

fn gap(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

fn case(b: usize, p: usize, kp: usize, h: usize, kv: usize, dh: usize) {
    let dev = Device::Cpu;
    let v = |dims: (usize, usize, usize, usize)| Var::from_tensor(&Tensor::randn(0f32, 1.0, dims, &dev).unwrap()).unwrap();
    let (q, k, vals) = (v((b, p, h, dh)), v((b, kp, kv, dh)), v((b, kp, kv, dh)));
    let scale = (dh as f64).sqrt();
    let ours = scores(q.as_tensor(), k.as_tensor(), scale).unwrap().expect("fits");
    let qh = q.as_tensor().transpose(1, 2).unwrap().contiguous().unwrap();
    let kh = heads_first(k.as_tensor(), h / kv);
    let theirs = (qh.matmul(&kh.transpose(2, 3).unwrap().contiguous().unwrap()).unwrap() / scale).unwrap();
    assert_eq!(ours.dims(), &[b, h, p, kp]);
    assert!(gap(&ours, &theirs) < 1e-5, "scores {}", gap(&ours, &theirs));
    let coef = Tensor::randn(0f32, 1.0, (b, h, p, kp), &dev).unwrap();
    for (name, wrt) in [("q", &q), ("k", &k)] {
        let g = grad_gap(&ours, &theirs, &coef, wrt.as_tensor()).unwrap();
        assert!(g < 1e-4, "scores d{name}: {g}");
    }

    let pat = v((b, h, p, kp));
    let z = mix(pat.as_tensor(), vals.as_tensor()).unwrap().expect("fits");
    let vh = heads_first(vals.as_tensor(), h / kv);
    let want = pat.as_tensor().matmul(&vh).unwrap().transpose(1, 2).unwrap();
    assert_eq!(z.dims(), &[b, p, h, dh]);
    assert!(gap(&z, &want) < 1e-5, "z {}", gap(&z, &want));
    let coef = Tensor::randn(0f32, 1.0, (b, p, h, dh), &dev).unwrap();
    for (name, wrt) in [("pattern", &pat), ("v", &vals)] {
        let g = grad_gap(&z, &want, &coef, wrt.as_tensor()).unwrap();
        assert!(g < 1e-4, "mix d{name}: {g}");
    }
}

#[test]
fn products_and_gradients_match_the_candle_ops() {
    // Multi-head, grouped (4 query heads per K/V head), multi-query, a batch, more keys than
    // queries, and a size big enough to split between the cores.
    case(1, 5, 5, 3, 3, 4);
    case(2, 6, 6, 8, 2, 8);
    case(2, 3, 7, 4, 1, 16);
    case(1, 128, 128, 12, 4, 64);
}

#[test]
fn mismatched_operands_are_errors() {
    let dev = Device::Cpu;
    let z = |d: &[usize]| Tensor::zeros(d, candle_core::DType::F32, &dev).unwrap();
    // 3 query heads cannot share 2 K/V heads; d_head differs; batch differs.
    assert!(scores(&z(&[1, 4, 3, 8]), &z(&[1, 4, 2, 8]), 1.0).is_err());
    assert!(scores(&z(&[1, 4, 2, 8]), &z(&[1, 4, 2, 4]), 1.0).is_err());
    assert!(mix(&z(&[2, 2, 4, 4]), &z(&[1, 4, 2, 8])).is_err());
    // Keys: the pattern's last dim must be the number of value positions.
    assert!(mix(&z(&[1, 2, 4, 5]), &z(&[1, 4, 2, 8])).is_err());
    // Not f32: the caller falls back.
    let h = z(&[1, 4, 2, 8]).to_dtype(candle_core::DType::BF16).unwrap();
    assert!(scores(&h, &h, 1.0).unwrap().is_none());
}
