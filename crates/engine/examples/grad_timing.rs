//! Times a gradient run (every hook cached and tapped, loss, backward) on a checkpoint folder:
//! `cargo run --release -p tl-engine --example grad_timing -- DIR NAME [REPS]`.
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use tl_engine::load::model::{load_from_dir, LoadOptions};
use tl_engine::model::grad::{backward, GradRun};
use tl_engine::model::hooks::HookSink;
use tl_engine::model::transformer::{ForwardInput, ForwardOptions, ReturnType};
use tl_engine::process::ProcessOptions;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct All(Vec<Tensor>);
impl HookSink for All {
    fn wants(&self, _id: usize) -> bool {
        true
    }
    fn fire(&mut self, _id: usize, t: &Tensor) -> tl_engine::Result<Option<Tensor>> {
        self.0.push(t.clone());
        Ok(None)
    }
    fn wants_grad(&self, _id: usize) -> bool {
        true
    }
}

fn main() -> tl_engine::Result<()> {
    // As the addon: a 10 s purge delay (option 15) and candle's pool spin limit.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        unsafe { libmimalloc_sys::mi_option_set(15, 10_000) };
    }
    tl_engine::kernels::threads::tune_candle_pool();
    let a: Vec<String> = std::env::args().collect();
    let dir = Path::new(&a[1]);
    let reps: usize = a.get(3).map(|s| s.parse().unwrap()).unwrap_or(8);
    let opts = LoadOptions::cpu_f32(a[2].clone(), ProcessOptions::ALL);
    let model = load_from_dir(dir, &opts)?.model;
    let ids: Vec<i64> = (0..128).map(|i| ((i * 7919 + 13) % 512) as i64).collect();
    let toks = Tensor::from_vec(ids, (1, 128), &Device::Cpu)?;
    let (mut tf, mut tb) = (vec![], vec![]);
    for _ in 0..reps {
        let t0 = Instant::now();
        let mut sink = All(vec![]);
        let fopts = ForwardOptions { return_type: ReturnType::Loss, grad_run: Some(7), ..Default::default() };
        let out = model.forward(ForwardInput::Tokens(toks.clone()), &fopts, &mut sink)?;
        let loss = out.loss.unwrap();
        if std::env::var_os("NODES").is_some() {
            let nodes = loss.sorted_nodes();
            let mut by: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
            for n in &nodes {
                let e = by.entry(format!("{:?}", n.dims())).or_default();
                e.0 += 1;
                e.1 += n.elem_count();
            }
            println!("{} nodes", nodes.len());
            for (k, v) in by { println!("  {k}: {} nodes", v.0); }
        }
        let t1 = Instant::now();
        let mut grads = vec![];
        backward(&loss, &mut |e| {
            grads.push(e.grad.clone());
            Ok(None)
        })?;
        let t2 = Instant::now();
        drop(grads);
        drop(sink);
        tf.push((t1 - t0).as_secs_f64() * 1e3);
        tb.push((t2 - t1).as_secs_f64() * 1e3);
        let _ = GradRun::new(0);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!("forward {:.1} ms  backward {:.1} ms", med(&mut tf), med(&mut tb));
    Ok(())
}
