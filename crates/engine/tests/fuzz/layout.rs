//! The folder layer: writing a case folder to disk, and mutations of the layout (a file
//! missing or replaced by a directory, an empty file, a symlink to /dev/zero or a loop, a FIFO,
//! a huge sparse file, the HF cache's blob symlinks, sharded weights with a bad index).

use std::path::Path;

use serde_json::{json, Value};

use super::json_mut::pretty;
use super::rng::Rng;
use super::st::StFile;
use super::{Applied, Expect, Folder, Node};

pub const INDEX: &str = "model.safetensors.index.json";

/// Files a loader reads; the must-have ones make any damage a must-refuse.
pub const FILES: &[&str] =
    &["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"];

impl Folder {
    /// The bytes behind `name`: the file itself, or the blob a `../outside/` symlink names.
    pub fn content(&self, name: &str) -> Option<&Vec<u8>> {
        match self.files.get(name)? {
            Node::File(b) => Some(b),
            Node::Symlink(t) => match self.outside.get(t.strip_prefix("../outside/")?)? {
                Node::File(b) => Some(b),
                _ => None,
            },
            _ => None,
        }
    }
}

fn write_node(path: &Path, node: &Node, root: &Path) -> std::io::Result<()> {
    let subst = |s: &str| {
        s.replace("@OUTSIDE@", &root.join("outside").display().to_string()).replace("@ROOT@", &root.display().to_string())
    };
    match node {
        Node::File(b) => {
            let is_json = path.extension().is_some_and(|e| e == "json");
            if is_json && b.windows(9).any(|w| w == b"@OUTSIDE@") {
                std::fs::write(path, subst(&String::from_utf8_lossy(b)))
            } else {
                std::fs::write(path, b)
            }
        }
        Node::Dir => std::fs::create_dir_all(path),
        Node::Symlink(t) => std::os::unix::fs::symlink(subst(t), path),
        Node::Fifo => {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o644) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
        Node::Sparse(n) => std::fs::File::create(path)?.set_len(*n),
    }
}

/// Writes the case under `root` (`root/m` is the model folder) and returns the model folder.
pub fn materialize(f: &Folder, root: &Path) -> std::io::Result<std::path::PathBuf> {
    let (m, out) = (root.join("m"), root.join("outside"));
    std::fs::create_dir_all(&m)?;
    std::fs::create_dir_all(&out)?;
    for (name, node) in &f.outside {
        write_node(&out.join(name), node, root)?;
    }
    for (name, node) in &f.files {
        write_node(&m.join(name), node, root)?;
    }
    Ok(m)
}

fn required(name: &str) -> bool {
    name == "config.json" || name == "model.safetensors"
}

/// One file replaced by something that is not a readable regular file of its kind.
pub fn damage_file(rng: &mut Rng, f: &mut Folder, name: &str) -> Option<Applied> {
    let (kind, node): (&str, Option<Node>) = match rng.below(8) {
        0 => ("missing", None),
        1 => ("directory", Some(Node::Dir)),
        2 => ("empty", Some(Node::File(vec![]))),
        3 => ("symlink-/dev/zero", Some(Node::Symlink("/dev/zero".into()))),
        4 => ("symlink-loop", Some(Node::Symlink(format!("{name}.loop")))),
        5 => ("dangling-symlink", Some(Node::Symlink("does-not-exist".into()))),
        6 => ("fifo", Some(Node::Fifo)),
        _ => ("sparse-1TiB", Some(Node::Sparse(1 << 40))),
    };
    match node {
        None => {
            f.files.remove(name)?;
        }
        Some(n) => {
            if kind == "symlink-loop" {
                f.files.insert(format!("{name}.loop"), Node::Symlink(name.into()));
            }
            f.files.insert(name.into(), n);
        }
    }
    let expect = match (required(name), name, kind) {
        (true, _, _) => Expect::MustRefuse,
        (false, "generation_config.json", _) => Expect::MustLoad,
        (false, _, "missing") => Expect::MustLoad,
        _ => Expect::Either,
    };
    Some(Applied::new(format!("layout.{name} {kind}"), format!("layout: {name} is {kind}"), Some(expect)))
}

/// Every file a symlink into a blob store, as the HF cache lays snapshots out (valid).
pub fn blob_symlinks(f: &mut Folder) -> Option<Applied> {
    let names: Vec<String> = f.files.iter().filter(|(_, n)| matches!(n, Node::File(_))).map(|(k, _)| k.clone()).collect();
    for n in &names {
        let node = f.files.remove(n).unwrap();
        f.outside.insert(format!("blob-{n}"), node);
        f.files.insert(n.clone(), Node::Symlink(format!("../outside/blob-{n}")));
    }
    Some(Applied::new("layout.blob-symlinks", "layout: every file is a relative symlink to ../outside/blob-*", None))
}

/// Cuts model.safetensors into shards with an index, then possibly damages the index.
pub fn shard(rng: &mut Rng, f: &mut Folder, variant: Option<usize>) -> Option<Applied> {
    let bytes = f.bytes("model.safetensors")?.clone();
    let st = StFile::parse(&bytes).ok()?;
    if st.entries.len() < 2 || st.header_override.is_some() {
        return None;
    }
    let cut = rng.range(1, st.entries.len() - 1);
    let names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
    let parts = [&st.entries[..cut], &st.entries[cut..]];
    let mut map = serde_json::Map::new();
    for (i, part) in parts.iter().enumerate() {
        let sf = StFile { meta: st.meta.clone(), entries: part.to_vec(), ..Default::default() };
        f.set(names[i], sf.serialize());
        for e in part.iter() {
            map.insert(e.name.clone(), json!(names[i]));
        }
    }
    f.files.remove("model.safetensors");
    f.sharded_from = Some(bytes.clone());
    let variant = variant.unwrap_or_else(|| rng.below(12));
    let (kind, expect) = match variant {
        0 | 1 => ("valid", None),
        2 => {
            f.files.remove(names[1]);
            ("missing-shard", Some(Expect::MustRefuse))
        }
        3 | 4 => {
            // The shard lives outside the model folder; the index escapes with ../ or an absolute path.
            let node = f.files.remove(names[1]).unwrap();
            f.outside.insert(names[1].into(), node);
            let to = if variant == 3 { format!("../outside/{}", names[1]) } else { format!("@OUTSIDE@/{}", names[1]) };
            for v in map.values_mut() {
                if v == names[1] {
                    *v = json!(to);
                }
            }
            (if variant == 3 { "shard-path-dotdot" } else { "shard-path-absolute" }, Some(Expect::MustRefuse))
        }
        5 => {
            for v in map.values_mut() {
                if v == names[1] {
                    *v = json!("/dev/zero");
                }
            }
            ("shard-/dev/zero", Some(Expect::MustRefuse))
        }
        6 => {
            map.clear();
            ("empty-weight-map", Some(Expect::MustRefuse))
        }
        7 => {
            for v in map.values_mut() {
                *v = json!(1);
            }
            ("weight-map-numbers", Some(Expect::MustRefuse))
        }
        8 => {
            f.files.insert(names[1].into(), Node::Dir);
            ("shard-is-directory", Some(Expect::MustRefuse))
        }
        9 => {
            for v in map.values_mut() {
                *v = json!(names[0]);
            }
            ("index-omits-shard", Some(Expect::MustRefuse))
        }
        10 => {
            f.set("model.safetensors", bytes);
            ("index-and-single-file", Some(Expect::Either))
        }
        _ => {
            // The first shard's first tensor also stored in the second shard.
            let mut second = StFile::parse(f.bytes(names[1])?).ok()?;
            second.entries.push(parts[0][0].clone());
            f.set(names[1], second.serialize());
            ("tensor-in-two-shards", Some(Expect::Either))
        }
    };
    let total: usize = st.entries.iter().map(|e| e.data.len()).sum();
    let index: Value = json!({"metadata": {"total_size": total}, "weight_map": Value::Object(map)});
    f.set(INDEX, pretty(&index));
    Some(Applied::new(format!("layout.shards {kind}"), format!("layout: weights in 2 shards + index, {kind}"), expect))
}

/// One layout mutation on a file not named in `touched` (content-mutated files keep their content).
pub fn mutate(rng: &mut Rng, f: &mut Folder, touched: &[&str]) -> Option<Applied> {
    match rng.below(10) {
        0..=4 => {
            let free: Vec<&str> = FILES.iter().copied().filter(|n| !touched.contains(n) && f.files.contains_key(*n)).collect();
            if free.is_empty() {
                return None;
            }
            let name = *rng.pick(&free);
            damage_file(rng, f, name)
        }
        5 | 6 => shard(rng, f, None),
        7 => {
            let a = shard(rng, f, Some(0))?;
            let b = blob_symlinks(f)?;
            Some(Applied::new(format!("{} + {}", a.class, b.class), format!("{}; {}", a.desc, b.desc), None))
        }
        _ => blob_symlinks(f),
    }
}
