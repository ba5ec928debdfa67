//! Against the goldens of the real remote code (tokenization_qwen.py through transformers, on the
//! Qwen v1 fixture's qwen.tiktoken): scripts/reference/qwen_tokenizer_fixtures.py.

use super::*;
use serde_json::Value;

fn fixture() -> (QwenTiktoken, Value) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures");
    let repo = root.join("hub/models--Qwen--Qwen-1_8B");
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    let tok = QwenTiktoken::read(&repo.join("snapshots").join(commit.trim()).join(VOCAB_FILE), Utf8Errors::Replace).unwrap();
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(root.join("golden/Qwen__Qwen-1_8B/tokenizer.json")).unwrap()).unwrap();
    (tok, golden["tokenizer"].clone())
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn encodes_every_prompt_and_fuzz_string_as_the_remote_code() {
    let (tok, g) = fixture();
    assert_eq!(tok.n_vocab() as u64, g["len"].as_u64().unwrap());
    assert_eq!(tok.ranks_len() as u64, g["max_vocab_id_plus_1"].as_u64().unwrap());
    assert_eq!(tok.eod_id() as u64, g["eos"][1].as_u64().unwrap());
    assert_eq!(tok.encode("").unwrap(), ids(&g["empty"]));
    let cases = g["prompts"].as_array().unwrap().iter().chain(g["fuzz"].as_array().unwrap());
    let mut n = 0;
    for c in cases {
        let text = c["text"].as_str().unwrap();
        assert_eq!(tok.encode(text).unwrap(), ids(&c["ids"]), "{text:?}");
        n += 1;
    }
    assert!(n > 300, "{n} cases");
}

#[test]
fn decodes_with_replacement_characters_and_skips_special_tokens_as_the_remote_code() {
    let (tok, g) = fixture();
    for p in g["prompts"].as_array().unwrap() {
        let i = ids(&p["ids"]);
        assert_eq!(tok.decode(&i, false).unwrap(), p["decode"].as_str().unwrap());
        assert_eq!(tok.decode(&i, true).unwrap(), p["decode_skip"].as_str().unwrap());
        let pieces: Vec<String> = i.iter().map(|&x| tok.decode(&[x], false).unwrap()).collect();
        let tokens: Vec<String> = i.iter().map(|&x| tok.id_to_token(x).unwrap()).collect();
        assert_eq!(pieces, p["pieces"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect::<Vec<_>>());
        assert_eq!(tokens, p["tokens"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect::<Vec<_>>());
        for (t, &x) in tokens.iter().zip(&i) {
            assert_eq!(tok.token_to_id(t), Some(x), "{t:?}");
        }
    }
    for d in g["decodes"].as_array().unwrap() {
        let i = ids(&d["ids"]);
        assert_eq!(tok.decode(&i, false).unwrap(), d["text"].as_str().unwrap(), "{i:?}");
        assert_eq!(tok.decode(&i, true).unwrap(), d["skip"].as_str().unwrap(), "{i:?}");
    }
    // Ids past the vocabulary: the remote code raises (KeyError) unless they are skipped.
    for u in g["unknown"].as_array().unwrap() {
        let i = ids(&u["ids"]);
        for (skip, want) in [(false, &u["decode"]), (true, &u["skip"])] {
            match want.as_str() {
                Some(text) => assert_eq!(tok.decode(&i, skip).unwrap(), text),
                None => assert_eq!(tok.decode(&i, skip).unwrap_err().code, ErrorCode::Tokenizer, "{i:?}"),
            }
        }
    }
    for (name, id) in g["special_ids"].as_object().unwrap() {
        assert_eq!(tok.token_to_id(name), Some(id.as_u64().unwrap() as u32));
        assert_eq!(tok.id_to_token(id.as_u64().unwrap() as u32).as_deref(), Some(name.as_str()));
    }
    assert_eq!(tok.id_to_token(tok.n_vocab() as u32), None);
}

#[test]
fn the_class_is_found_by_name_or_by_auto_map() {
    let j = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    assert!(names_qwen_class(Some(&j(r#"{"tokenizer_class": "QWenTokenizer"}"#))));
    assert!(names_qwen_class(Some(&j(r#"{"auto_map": {"AutoTokenizer": ["tokenization_qwen.QWenTokenizer", null]}}"#))));
    assert!(names_qwen_class(Some(&j(r#"{"auto_map": {"AutoTokenizer": "tokenization_qwen.QWenTokenizer"}}"#))));
    assert!(!names_qwen_class(Some(&j(r#"{"tokenizer_class": "Qwen2Tokenizer"}"#))));
    assert!(!names_qwen_class(Some(&j(r#"{"auto_map": {"AutoTokenizer": ["x.QWenTokenizerFast", null]}}"#))));
    assert!(!names_qwen_class(None));
    let chars = byte_level_chars();
    assert_eq!((chars[b' ' as usize], chars[b'!' as usize], chars[0xad], chars[0xff]), ('Ġ', '!', 'Ń', 'ÿ'));
}

#[test]
fn mutated_vocabularies_are_refused_or_work_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/hub/models--Qwen--Qwen-1_8B");
    let commit = std::fs::read_to_string(root.join("refs/main")).unwrap();
    let good = std::fs::read(root.join("snapshots").join(commit.trim()).join(VOCAB_FILE)).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    };
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..400 {
        let mut lines: Vec<Vec<u8>> = good.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        for _ in 0..1 + next(3) {
            let i = next(lines.len());
            match next(6) {
                0 if !lines[i].is_empty() => {
                    let j = next(lines[i].len());
                    lines[i][j] = [b'=', b' ', b'A', b'/', b'\r', 0xff, b'9'][next(7)];
                }
                1 => drop(lines.remove(i)),
                2 => lines.insert(next(lines.len()), lines[i].clone()),
                3 => {
                    // Swap two lines' ranks: still a valid table, other merges.
                    let j = next(lines.len());
                    let split = |l: &[u8]| l.iter().position(|&b| b == b' ').map(|p| (l[..p].to_vec(), l[p..].to_vec()));
                    if let (Some((a, ra)), Some((b, rb))) = (split(&lines[i]), split(&lines[j])) {
                        lines[i] = [a, rb].concat();
                        lines[j] = [b, ra].concat();
                    }
                }
                4 => lines.truncate(i),
                _ => lines[i] = b"4oCU 5 6 \xe2\x80".to_vec(),
            }
        }
        match TiktokenBpe::parse(&lines.join(&b'\n')) {
            Err(why) => {
                assert!(!why.is_empty());
                refused += 1;
            }
            Ok(bpe) => {
                let tok = QwenTiktoken::new(bpe).unwrap();
                let ids = tok.encode("The quick brown fox, 杭州 😀 <|endoftext|>  x\n\n").unwrap();
                assert_eq!(tok.decode(&ids, false).unwrap(), "The quick brown fox, 杭州 😀 <|endoftext|>  x\n\n");
                loaded += 1;
            }
        }
    }
    assert!(loaded > 20 && refused > 100, "{loaded} loaded, {refused} refused");
}

#[test]
fn the_errors_setting_replaces_ignores_or_refuses_invalid_utf8_as_the_remote_code() {
    let (tok, g) = fixture();
    let root: Value = serde_json::from_str(&std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/golden/Qwen__Qwen-1_8B/tokenizer.json")).unwrap()).unwrap();
    let cases: Vec<Vec<u32>> = g["decodes"].as_array().unwrap().iter().map(|d| ids(&d["ids"])).collect();
    let j = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    for name in ["ignore", "strict"] {
        let errors = Utf8Errors::from_config(Some(&j(&format!("{{\"errors\": \"{name}\"}}")))).unwrap();
        let t = QwenTiktoken { errors, ..QwenTiktoken::new(TiktokenBpe::parse(tok.vocab_file().as_bytes()).unwrap()).unwrap() };
        for (i, want) in cases.iter().zip(root["errors"][name].as_array().unwrap()) {
            match want.as_str() {
                Some(text) => assert_eq!(t.decode(i, false).unwrap(), text, "{name} {i:?}"),
                None => assert_eq!(t.decode(i, false).unwrap_err().code, ErrorCode::Tokenizer, "{name} {i:?}"),
            }
        }
    }
    assert_eq!(Utf8Errors::from_config(None).unwrap(), Utf8Errors::Replace);
    assert_eq!(Utf8Errors::from_config(Some(&j(r#"{"errors": "backslashreplace"}"#))).unwrap_err().code, ErrorCode::Unsupported);
}
