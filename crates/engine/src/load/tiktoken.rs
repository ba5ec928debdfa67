//! A tiktoken BPE vocabulary (`qwen.tiktoken`, `cl100k_base.tiktoken`): one `base64(token bytes)
//! rank` per line, and tiktoken's byte-pair encoding of one pre-tokenized piece over it.
//!
//! The encoding is tiktoken's (`CoreBPE::encode_native` / `byte_pair_merge`): a piece that is a
//! token is that token; otherwise it starts as single bytes and, while any two adjacent parts
//! join into a token, the pair whose joined bytes have the lowest rank is merged (the leftmost
//! among equals). Here a heap ordered by (rank, start) finds that pair, which gives the same
//! merges in the same order as tiktoken's scans, in O(n log n) on long pieces.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::load::base64;

/// The largest vocabulary file read: the real qwen.tiktoken is 2.5 MB.
const MAX_FILE_BYTES: u64 = 256 << 20;

#[derive(Debug)]
pub struct TiktokenBpe {
    ranks: HashMap<Vec<u8>, u32>,
    /// Token bytes by rank (ranks are 0..len, checked on reading).
    tokens: Vec<Vec<u8>>,
    /// The longest token's length: longer joins of two parts are no token, unhashed.
    longest: usize,
}

impl TiktokenBpe {
    /// Reads a vocabulary file; `TL_CORRUPT_FILE` naming the file and line for anything that is
    /// not a dense, duplicate-free rank table holding every single byte.
    pub fn read(path: &Path) -> Result<Self> {
        let io = |e: std::io::Error| Error::io(format!("cannot read {}: {e}", path.display()));
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_FILE_BYTES {
            return Err(Error::corrupt(format!("{} is {len} bytes, more than any tiktoken vocabulary ({MAX_FILE_BYTES} at most)", path.display())));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::parse(&bytes).map_err(|why| Error::corrupt(format!("{}: {why}", path.display())))
    }

    /// The rank table in `bytes` (the file's content); `Err` says which line is wrong and how.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let mut by_rank: Vec<Option<Vec<u8>>> = Vec::new();
        let mut ranks = HashMap::new();
        // Lines end in \n, \r\n or \r (Python's bytes.splitlines); blank ones are skipped.
        let lines = bytes.split(|&b| b == b'\n').enumerate().flat_map(|(n, l)| l.split(|&b| b == b'\r').map(move |p| (n, p)));
        for (n, line) in lines {
            if line.is_empty() {
                continue;
            }
            let at = |what: String| format!("line {}: {what}", n + 1);
            let fields: Vec<&[u8]> = line.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty()).collect();
            let [token, rank] = fields[..] else {
                return Err(at(format!("{} fields, expected `base64-token rank`", fields.len())));
            };
            let token = base64::decode(token).map_err(|e| at(format!("the token is not base64 ({e})")))?;
            if token.is_empty() {
                return Err(at("an empty token".into()));
            }
            let rank = std::str::from_utf8(rank)
                .ok()
                .filter(|r| r.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|r| r.parse::<u32>().ok())
                .filter(|&r| r < u32::MAX)
                .ok_or_else(|| at(format!("the rank {:?} is not a token index", String::from_utf8_lossy(rank))))?;
            let slot = rank as usize;
            if slot >= by_rank.len() {
                if slot > bytes.len() {
                    return Err(at(format!("the rank {rank} is larger than the file could number")));
                }
                by_rank.resize(slot + 1, None);
            }
            if by_rank[slot].is_some() {
                return Err(at(format!("the rank {rank} is given twice")));
            }
            if ranks.insert(token.clone(), rank).is_some() {
                return Err(at(format!("the token b\"{}\" is given twice", token.escape_ascii())));
            }
            by_rank[slot] = Some(token);
        }
        let tokens = by_rank
            .into_iter()
            .enumerate()
            .map(|(r, t)| t.ok_or_else(|| format!("no token has the rank {r} (ranks must run from 0 without gaps)")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if let Some(b) = (0..=255u8).find(|b| !ranks.contains_key(&[*b][..])) {
            return Err(format!("the single byte 0x{b:02x} is no token (every byte must be one)"));
        }
        let longest = tokens.iter().map(Vec::len).max().unwrap_or(0);
        Ok(TiktokenBpe { ranks, tokens, longest })
    }

    /// The number of ranks (the first special token's id in Qwen's tokenizer).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn rank(&self, token: &[u8]) -> Option<u32> {
        self.ranks.get(token).copied()
    }

    pub fn token(&self, rank: u32) -> Option<&[u8]> {
        self.tokens.get(rank as usize).map(Vec::as_slice)
    }

    /// The file's content: one `base64 rank` line per token, by rank.
    pub fn to_file(&self) -> String {
        let mut out = String::new();
        for (r, t) in self.tokens.iter().enumerate() {
            out.push_str(&base64::encode(t));
            out.push(' ');
            out.push_str(&r.to_string());
            out.push('\n');
        }
        out
    }

    /// Appends the ranks of one pre-tokenized piece (non-empty).
    pub fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        if let Some(r) = self.rank(piece) {
            out.push(r);
            return;
        }
        let n = piece.len();
        // Parts are runs piece[start..next[start]]; `next[n]` is the end sentinel.
        let mut next: Vec<usize> = (1..=n + 1).collect();
        let mut prev: Vec<usize> = (0..=n).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n + 1];
        // The rank of the pair that starts at each part (u32::MAX: no pair, or not a token).
        let mut pair: Vec<u32> = vec![u32::MAX; n + 1];
        let mut heap = BinaryHeap::new();
        let pair_rank = |next: &[usize], s: usize| -> u32 {
            let e = next[s];
            if e >= n || next[e] - s > self.longest {
                return u32::MAX;
            }
            self.rank(&piece[s..next[e]]).unwrap_or(u32::MAX)
        };
        for (s, p) in pair.iter_mut().enumerate().take(n) {
            *p = pair_rank(&next, s);
            if *p != u32::MAX {
                heap.push(Reverse((*p, s)));
            }
        }
        while let Some(Reverse((rank, s))) = heap.pop() {
            if !alive[s] || pair[s] != rank {
                continue; // stale: this part was merged away or its right neighbour changed
            }
            let gone = next[s];
            next[s] = next[gone];
            prev[next[gone]] = s;
            alive[gone] = false;
            for t in [s, prev[s]] {
                if t < n {
                    pair[t] = pair_rank(&next, t);
                    if pair[t] != u32::MAX {
                        heap.push(Reverse((pair[t], t)));
                    }
                }
            }
        }
        let mut s = 0;
        while s < n {
            // Every part is a token: a single byte (all are ranked) or a merge of two tokens.
            out.push(self.rank(&piece[s..next[s]]).unwrap_or(u32::MAX));
            s = next[s];
        }
    }
}

#[cfg(test)]
#[path = "tiktoken_tests.rs"]
mod tests;
