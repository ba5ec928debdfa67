//! Standard base64 (RFC 4648 alphabet, `=` padding), as tiktoken vocabulary files store tokens.
//! Decoding is strict: no whitespace, no other characters, padding only where it belongs.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some((c - b'A') as u32),
        b'a'..=b'z' => Some((c - b'a') as u32 + 26),
        b'0'..=b'9' => Some((c - b'0') as u32 + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// The bytes `text` encodes; `Err` says what is wrong with it.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(4) {
        return Err(format!("{} characters, not a multiple of 4", text.len()));
    }
    let pad = text.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return Err("more than two '=' of padding".into());
    }
    let body = &text[..text.len() - pad];
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    for (i, &c) in body.iter().enumerate() {
        let v = value(c).ok_or_else(|| format!("{:?} at {i} is not a base64 character", c as char))?;
        acc = (acc << 6) | v;
        if i % 4 == 3 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
        }
    }
    // The last group: 2 characters give one byte, 3 give two; the unused low bits must be zero.
    match body.len() % 4 {
        0 => {}
        2 if acc & 0xf == 0 => out.push((acc >> 4) as u8),
        3 if acc & 0x3 == 0 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => return Err("bad padding".into()),
    }
    Ok(out)
}

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_base64() {
        for bytes in [&b""[..], b"a", b"ab", b"abc", b"abcd", b" \xe6\xa0", b"\xff\x00\x80"] {
            assert_eq!(decode(encode(bytes).as_bytes()).unwrap(), bytes);
        }
        assert_eq!(encode(b" \xe6\xa0"), "IOag");
        assert_eq!(decode(b"IQ==").unwrap(), b"!");
        for bad in [&b"IQ="[..], b"I===", b"IQ=A", b"IQ\n=", b"IR==", b"a b=", b"===="] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
