//! JSON helpers shared by the config and tokenizer mutators: the odd values fields are set to,
//! and a random structural mutation (a value's type swapped, a key deleted or renamed).

use serde_json::{json, Value};

use super::rng::Rng;

pub fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

/// 0, -1, 1.5, 2^40, 1e18 (a float literal), 10^18 (an integer), 1e300, "12", null, true.
pub const ODD_VALUES: &[fn() -> Value] = &[
    || json!(0),
    || json!(-1),
    || json!(1.5),
    || json!(1u64 << 40),
    || json!(1e18),
    || json!(1_000_000_000_000_000_000u64),
    || json!(1e300),
    || json!("12"),
    || json!(null),
    || json!(true),
];

/// A value of another JSON type than `v` (or an odd number).
pub fn other_type(rng: &mut Rng, v: &Value) -> Value {
    let choices = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(1u64 << 40),
        json!(1.5),
        json!(""),
        json!("x"),
        json!([]),
        json!({}),
        json!([1, "a", null]),
        json!({"type": "Nope"}),
    ];
    loop {
        let c = rng.pick(&choices).clone();
        let same_kind = std::mem::discriminant(&c) == std::mem::discriminant(v);
        if !same_kind || (c.is_number() && &c != v) {
            return c;
        }
    }
}

fn path_str(path: &[String]) -> String {
    if path.is_empty() {
        "<root>".into()
    } else {
        path.join(".")
    }
}

/// Walks from the root to a random node (at most `max_depth` steps, stopping early with some
/// probability) and mutates it: type swap, delete, rename, or array element duplicated.
/// Returns a description, or None when nothing could be done.
pub fn walk_mutate(rng: &mut Rng, root: &mut Value, max_depth: usize) -> Option<String> {
    let mut path: Vec<String> = Vec::new();
    let mut node = root;
    for depth in 0..max_depth {
        let n_children = match &*node {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if n_children == 0 || (depth > 0 && rng.chance(0.35)) {
            break;
        }
        // Decide the operation on a child of this node when this is the last step.
        let last = depth + 1 == max_depth || rng.chance(0.3);
        let k = rng.below(n_children);
        if last {
            return mutate_child(rng, node, k, &path);
        }
        node = match node {
            Value::Object(m) => {
                let key = m.keys().nth(k).unwrap().clone();
                path.push(key.clone());
                m.get_mut(&key).unwrap()
            }
            Value::Array(a) => {
                path.push(k.to_string());
                &mut a[k]
            }
            _ => unreachable!(),
        };
    }
    let old = node.clone();
    *node = other_type(rng, &old);
    Some(format!("{} {} -> {}", path_str(&path), brief(&old), brief(node)))
}

fn mutate_child(rng: &mut Rng, parent: &mut Value, k: usize, path: &[String]) -> Option<String> {
    let op = rng.below(4);
    match parent {
        Value::Object(m) => {
            let key = m.keys().nth(k)?.clone();
            let at = format!("{}.{key}", path_str(path));
            match op {
                0 => {
                    m.remove(&key);
                    Some(format!("{at} deleted"))
                }
                1 => {
                    let v = m.remove(&key)?;
                    let new = format!("{key}_x");
                    m.insert(new.clone(), v);
                    Some(format!("{at} renamed {new}"))
                }
                _ => {
                    let old = m[&key].clone();
                    let v = other_type(rng, &old);
                    let d = format!("{at} {} -> {}", brief(&old), brief(&v));
                    m.insert(key, v);
                    Some(d)
                }
            }
        }
        Value::Array(a) => {
            let at = format!("{}[{k}]", path_str(path));
            match op {
                0 => {
                    a.remove(k);
                    Some(format!("{at} removed"))
                }
                1 => {
                    let v = a[k].clone();
                    a.insert(k, v);
                    Some(format!("{at} duplicated"))
                }
                _ => {
                    let old = a[k].clone();
                    a[k] = other_type(rng, &old);
                    Some(format!("{at} {} -> {}", brief(&old), brief(&a[k])))
                }
            }
        }
        _ => None,
    }
}

/// A value shown short.
pub fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(36).collect::<String>())
    } else {
        s
    }
}
