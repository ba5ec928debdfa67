use super::*;

/// A vocabulary file: the 256 bytes (in reverse byte order, so rank != byte), then `merged`.
fn vocab_file(merged: &[&[u8]]) -> Vec<u8> {
    let mut lines = String::new();
    let mut rank = 0;
    for b in (0..=255u8).rev() {
        lines.push_str(&format!("{} {rank}\n", base64::encode(&[b])));
        rank += 1;
    }
    for t in merged {
        lines.push_str(&format!("{} {rank}\n", base64::encode(t)));
        rank += 1;
    }
    lines.into_bytes()
}

/// tiktoken's `byte_pair_merge` as it is written: rescan every pair after each merge.
fn reference(bpe: &TiktokenBpe, piece: &[u8]) -> Vec<u32> {
    if let Some(r) = bpe.rank(piece) {
        return vec![r];
    }
    let mut parts: Vec<usize> = (0..=piece.len()).collect();
    loop {
        let mut best: Option<(u32, usize)> = None;
        for i in 0..parts.len().saturating_sub(2) {
            if let Some(r) = bpe.rank(&piece[parts[i]..parts[i + 2]]) {
                if best.is_none_or(|(b, _)| r < b) {
                    best = Some((r, i));
                }
            }
        }
        match best {
            Some((_, i)) => {
                parts.remove(i + 1);
            }
            None => break,
        }
    }
    parts.windows(2).map(|w| bpe.rank(&piece[w[0]..w[1]]).unwrap()).collect()
}

fn encode(bpe: &TiktokenBpe, piece: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    bpe.encode_piece(piece, &mut out);
    out
}

#[test]
fn merges_lowest_rank_first_and_leftmost_among_equals_as_tiktoken() {
    // "ab" before "bc", so "abc" -> ab c; "aaa" -> aa a (leftmost); "abcd" -> ab cd -> abcd;
    // "dcba" is a token no merge reaches ("dc", "cb", "ba" are none): only a whole piece gets it.
    let merged: [&[u8]; 7] = [b"ab", b"bc", b"aa", b"cd", b"bcd", b"abcd", b"dcba"];
    let bpe = TiktokenBpe::parse(&vocab_file(&merged)).unwrap();
    let r = |t: &[u8]| bpe.rank(t).unwrap();
    assert_eq!(encode(&bpe, b"abc"), vec![r(b"ab"), r(b"c")]);
    assert_eq!(encode(&bpe, b"aaa"), vec![r(b"aa"), r(b"a")]);
    assert_eq!(encode(&bpe, b"xabcd"), vec![r(b"x"), r(b"abcd")]);
    assert_eq!(encode(&bpe, b"xbcd"), vec![r(b"x"), r(b"bcd")]);
    assert_eq!(encode(&bpe, b"dcba"), vec![r(b"dcba")]);
    assert_eq!(encode(&bpe, b"dcbax"), [b"d", b"c", b"b", b"a", b"x"].map(|t| r(t)).to_vec());
    assert_eq!(encode(&bpe, &[0xe6, 0xa0]), vec![r(&[0xe6]), r(&[0xa0])]);
}

#[test]
fn heap_merging_matches_tiktokens_rescanning_on_random_pieces() {
    let merged: [&[u8]; 14] = [b"ab", b"ba", b"aa", b"abab", b"bab", b"aab", b"abb", b"bb", b"aba", b"bbb", b"ca", b"cab", b"abca", b"aaaa"];
    let bpe = TiktokenBpe::parse(&vocab_file(&merged)).unwrap();
    let mut seed = 0x2545_f491_u64;
    for _ in 0..3000 {
        let len = 1 + (seed % 24) as usize;
        let piece: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b"aabbc"[(seed % 5) as usize]
            })
            .collect();
        assert_eq!(encode(&bpe, &piece), reference(&bpe, &piece), "{:?}", String::from_utf8_lossy(&piece));
    }
    // A long piece stays fast (the heap) and still agrees.
    let long: Vec<u8> = b"abcab".iter().cycle().take(6_000).copied().collect();
    assert_eq!(encode(&bpe, &long), reference(&bpe, &long[..]));
}

#[test]
fn reads_crlf_and_blank_lines_and_writes_the_same_table_back() {
    let mut text = vocab_file(&[b"ab"]);
    text.splice(0..0, b"\r\n\n".iter().copied());
    let crlf: Vec<u8> = String::from_utf8(text).unwrap().replace('\n', "\r\n").into_bytes();
    let bpe = TiktokenBpe::parse(&crlf).unwrap();
    assert_eq!(bpe.len(), 257);
    assert_eq!(bpe.token(256), Some(&b"ab"[..]));
    assert_eq!(bpe.token(0), Some(&[255u8][..]));
    let again = TiktokenBpe::parse(bpe.to_file().as_bytes()).unwrap();
    assert_eq!(again.tokens, bpe.tokens);
}

#[test]
fn refuses_malformed_files_naming_the_line() {
    let good = String::from_utf8(vocab_file(&[b"ab"])).unwrap();
    let line_of_ab = 257;
    let with = |old: &str, new: &str| good.replacen(old, new, 1);
    let cases = [
        (with("YWI= 256", "YWI= 256 7"), format!("line {line_of_ab}: 3 fields")),
        (with("YWI= 256", "YWI="), format!("line {line_of_ab}: 1 fields")),
        (with("YWI= 256", "YW!= 256"), format!("line {line_of_ab}: the token is not base64")),
        (with("YWI= 256", "YWI= -1"), format!("line {line_of_ab}: the rank \"-1\"")),
        (with("YWI= 256", "YWI= 1_0"), format!("line {line_of_ab}: the rank \"1_0\"")),
        (with("YWI= 256", "YWI= 4294967295"), format!("line {line_of_ab}: the rank \"4294967295\"")),
        (with("YWI= 256", "YWI= 255"), format!("line {line_of_ab}: the rank 255 is given twice")),
        (with("YWI= 256", "/w== 256"), format!("line {line_of_ab}: the token b\"\\xff\" is given twice")),
        (with("YWI= 256", "YWI= 258"), "no token has the rank 256".to_string()),
        (with("YWI= 256", "YWI= 99999999"), format!("line {line_of_ab}: the rank 99999999 is larger")),
        (with("/w== 0", "YWJj 0"), "the single byte 0xff is no token".to_string()),
        (with("/w== 0", "= 0"), "line 1: the token is not base64".to_string()),
    ];
    for (text, expected) in cases {
        let err = TiktokenBpe::parse(text.as_bytes()).err().unwrap_or_else(|| panic!("accepted, expected {expected}"));
        assert!(err.starts_with(&expected) || err.contains(&expected), "{err:?} does not say {expected:?}");
    }
    assert!(TiktokenBpe::parse(b"").unwrap_err().contains("0x00"));
    // Through a file: TL_CORRUPT_FILE naming the file.
    let dir = std::env::temp_dir().join(format!("tl-tiktoken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("qwen.tiktoken");
    std::fs::write(&path, with("YWI= 256", "YWI= x")).unwrap();
    let err = TiktokenBpe::read(&path).unwrap_err();
    assert_eq!(err.code, crate::error::ErrorCode::CorruptFile);
    assert!(err.message.contains("qwen.tiktoken") && err.message.contains("line 257"), "{}", err.message);
    std::fs::remove_dir_all(&dir).unwrap();
}
