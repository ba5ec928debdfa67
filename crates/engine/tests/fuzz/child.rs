//! The child side: load one case folder as a user would, run it, and print one line
//! `OUTCOME ok|err <TL_CODE> <message>|bad <why>`. A panic is caught and printed as
//! `err TL_INTERNAL` (what the Node binding turns a panic into); crashes and hangs are the
//! parent's to see. The stage reached goes to stderr (`TLFUZZ-STAGE ...`) so that a crash
//! report says where it happened.

use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use tl_engine::load::model::{load_from_dir, LoadOptions};
use tl_engine::model::hooks::NoHooks;
use tl_engine::model::transformer::{ForwardInput, ForwardOptions};
use tl_engine::process::ProcessOptions;

static STAGE: Mutex<&'static str> = Mutex::new("start");
/// Every panic of the run, caught or not (by the engine or by us), with the stage it hit.
static PANICS: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

fn current_stage() -> &'static str {
    *STAGE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records each panic, then lets the default hook print it.
fn install_panic_recorder() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = panic_message(info.payload());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        PANICS.lock().unwrap_or_else(|p| p.into_inner()).push((current_stage(), format!("{msg}{at}")));
        default(info);
    }));
}

/// The panics recorded in a stage whose name starts with `prefix`.
fn panics_in(prefix: &str) -> Vec<String> {
    let p = PANICS.lock().unwrap_or_else(|p| p.into_inner());
    p.iter().filter(|(s, _)| s.starts_with(prefix)).map(|(s, m)| format!("[{s}] {m}")).collect()
}

fn stage(s: &'static str) {
    *STAGE.lock().unwrap_or_else(|p| p.into_inner()) = s;
    eprintln!("TLFUZZ-STAGE {s}");
}

fn one_line(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if s.chars().count() > 400 {
        format!("{}...", s.chars().take(400).collect::<String>())
    } else {
        s
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Runs the case in `dir` and prints its OUTCOME line.
pub fn run(dir: &Path) {
    install_panic_recorder();
    let line = match std::panic::catch_unwind(|| body(dir)) {
        Ok(line) => line,
        Err(p) => format!("err TL_INTERNAL internal error (Rust panic) during {}: {}", current_stage(), panic_message(&*p)),
    };
    println!("\nOUTCOME {}", one_line(&line));
}

fn body(dir: &Path) -> String {
    let processing = std::env::var(super::runner::CHILD_PROCESSING_ENV).map_or(true, |v| v != "0");
    let opts = LoadOptions::cpu_f32(dir.display().to_string(), if processing { ProcessOptions::ALL } else { ProcessOptions::NONE });
    stage("load");
    let loaded = match load_from_dir(dir, &opts) {
        Ok(l) => l,
        Err(e) => {
            // A panic the engine caught and turned into this error is fine: it refused.
            let caught = panics_in("load");
            let note = if caught.is_empty() { String::new() } else { format!(" (caught panic inside: {})", caught.join("; ")) };
            return format!("err {} {}{note}", e.code.as_str(), e.message);
        }
    };
    let model = &loaded.model;
    let cfg = model.cfg().clone();
    let (vocab, ctx) = (cfg.d_vocab, cfg.n_ctx);
    if vocab == 0 || ctx == 0 {
        return format!("bad loaded a model with d_vocab {vocab}, n_ctx {ctx}");
    }
    stage("forward");
    let pos = ctx.min(7);
    let ids: Vec<i64> = (0..pos).map(|i| ((i * 37 + 5) % vocab) as i64).collect();
    let tokens = Tensor::from_vec(ids, (1, pos), &Device::Cpu).unwrap();
    let out = match model.forward(ForwardInput::Tokens(tokens), &ForwardOptions::default(), &mut NoHooks) {
        Ok(o) => o,
        Err(e) => return format!("bad loaded, but forward on valid tokens failed: {} {}", e.code.as_str(), e.message),
    };
    let Some(logits) = out.logits else { return "bad forward returned no logits".into() };
    let want = [1, pos, cfg.d_vocab_out.max(0) as usize];
    if logits.dims() != want {
        return format!("bad logits shape {:?}, expected {want:?}", logits.dims());
    }
    stage("check logits");
    let vals: Vec<f32> = match logits.to_dtype(DType::F32).and_then(|l| l.flatten_all()).and_then(|l| l.to_vec1()) {
        Ok(v) => v,
        Err(e) => return format!("bad logits unreadable: {e}"),
    };
    let non_finite = vals.iter().filter(|x| !x.is_finite()).count();
    if non_finite > 0 {
        let first = vals.iter().find(|x| !x.is_finite()).unwrap();
        return format!("bad {non_finite} of {} logits are not finite (first: {first})", vals.len());
    }
    let mut notes = Vec::new();
    if let Some(tok) = &loaded.tokenizer {
        let long = format!("{}héllo wörld ✓ 日本語 🦀\n\t end", "The quick brown fox jumps over the lazy dog. ".repeat(100));
        for (what, text) in [("\"\"", ""), ("short", "Hello world"), ("long", long.as_str())] {
            stage("tokenizer encode");
            match tok.encode_one(text, true) {
                Ok(ids) => {
                    stage("tokenizer decode");
                    if let Err(e) = tok.decode(&ids, false) {
                        notes.push(format!("decode({what}): {} {}", e.code.as_str(), e.message));
                    }
                    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
                        notes.push(format!("encode({what}) gave id {bad} >= d_vocab {vocab}"));
                    }
                }
                Err(e) => notes.push(format!("encode({what}): {} {}", e.code.as_str(), e.message)),
            }
        }
        stage("tokenizer to_tokens");
        let batch = ["Hello world".to_string(), "A somewhat longer second row of text".to_string()];
        match tok.to_tokens(&batch, cfg.default_prepend_bos, false, None, &Device::Cpu) {
            Ok(t) if t.dims().len() == 2 && t.dims()[0] == 2 => {}
            Ok(t) => return format!("bad to_tokens of 2 rows gave shape {:?}", t.dims()),
            Err(e) => notes.push(format!("to_tokens: {} {}", e.code.as_str(), e.message)),
        }
        if notes.iter().any(|n| n.contains("TL_INTERNAL")) {
            return format!("err TL_INTERNAL tokenizer call after a successful load: {}", notes.join("; "));
        }
        // A tokenizer that loaded must not panic on plain text, even if the engine catches it.
        let panicked = panics_in("tokenizer");
        if !panicked.is_empty() {
            return format!("bad the tokenizer loaded, then panicked on plain text (caught: {}): {}", notes.join("; "), panicked.join("; "));
        }
    }
    stage("done");
    if notes.is_empty() {
        "ok".into()
    } else {
        format!("ok (notes: {})", notes.join("; "))
    }
}
