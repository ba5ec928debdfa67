"""The Qwen v1 fixture's `qwen.tiktoken`: a small byte-level BPE vocabulary in the real file's format.

ranks 0..255      the 256 single bytes, in the order of the real qwen.tiktoken (GPT-2's byte
                  order: printable Latin-1 first, then the rest)
ranks 256..       merges learned (greedy most-frequent pair, ties to the smallest pair) on
                  make_fixtures.TRAIN_TEXT + EXTRA_TEXT, pre-tokenized with Qwen's PAT_STR, so
                  that multi-byte UTF-8 (accents, CJK, emoji) gets whole and partial-character
                  tokens, digits, whitespace runs and contractions their own merges
last ranks        UNREACHABLE: tokens no merge builds (their halves are no tokens), which tiktoken
                  still returns when a whole pre-token equals one

N_RANKS ranks in all; the special tokens follow them (qwen_remote/tokenization_qwen.py).
"""
import base64
import collections

import regex

import make_fixtures as mf
from qwen_remote.tokenization_qwen import PAT_STR, SPECIAL_NAMES

N_SPECIAL = len(SPECIAL_NAMES)  # 208
N_RANKS = 1024 - N_SPECIAL  # the fixture's vocab_size (1024) is ranks + specials, no padding rows
UNREACHABLE = ["lens", " TransformerLens", "😀", "\tfoo", "123"]
# tokenizer_config.json as the real Qwen v1 repos have it (no special tokens named).
TOKENIZER_CONFIG = {
    "model_max_length": 8192,
    "tokenizer_class": "QWenTokenizer",
    "auto_map": {"AutoTokenizer": ["tokenization_qwen.QWenTokenizer", None]},
}

EXTRA_TEXT = """\
I'm sure it's fine: we'll see, they've gone, she'd know, you're right, don't worry. IT'S OK, I'LL GO.
Café au lait, naïve façade, résumé, Ångström, über, señor, crème brûlée, Dvořák, Łódź.
Здравствуй, мир! Привет всем. Γειά σου Κόσμε. שלום עולם. مرحبا بالعالم.
杭州是个好地方。解释为什么下面的分数等于四分之一。你好，世界！我们今天去公园散步。
日本語のテキストも少し。東京は大きな都市です。한국어 문장도 있습니다.
Emoji: 👋 hello 🌍 world 🚀 launch 😀😀 smile 👍🏽 ok 🇫🇷 flag, 🎉🎉🎉 party.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14159 1,000,000 -7 +8 1e-5 0x1F.
Whitespace:   three spaces,\ttab,\t\ttwo tabs,    four spaces
    indented line
\tindented with a tab
Windows line\r\nends here\r\n
Blank lines follow


def tokenize(text):
    # A comment with code: x = [1, 2, 3]; y = {'a': 1}
    return text.split()  # -> list
if (a != b && c >= d) { return a->b; } // C-like
Symbols: $ % # @ ! ? & * ( ) [ ] { } < > | \\ / ~ ` ^ _ = + - ... -- ---
"""


def byte_order():
    """The 256 byte values in GPT-2's bytes_to_unicode order (the first 256 ranks of the real file)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    return printable + [b for b in range(256) if b not in printable]


def learn_merges(text, n):
    """n merged tokens, greedily: the most frequent adjacent pair (ties: the smallest pair) whose
    concatenation is not a token yet."""
    words = collections.Counter(regex.findall(PAT_STR, text))
    seqs = [([bytes([b]) for b in w.encode("utf-8")], c) for w, c in words.items()]
    known, merges = set(), []
    while len(merges) < n:
        stats = collections.Counter()
        for seq, c in seqs:
            for pair in zip(seq, seq[1:]):
                if pair[0] + pair[1] not in known and len(pair[0] + pair[1]) > 1:
                    stats[pair] += c
        assert stats, f"only {len(merges)} merges in the training text"
        best = min(stats, key=lambda p: (-stats[p], p))
        token = best[0] + best[1]
        known.add(token)
        merges.append(token)
        out = []
        for seq, c in seqs:
            merged, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    merged.append(token)
                    i += 2
                else:
                    merged.append(seq[i])
                    i += 1
            out.append((merged, c))
        seqs = out
    return merges


def build_ranks():
    """{token bytes: rank} with ranks 0..N_RANKS-1."""
    tokens = [bytes([b]) for b in byte_order()]
    extra = [u.encode("utf-8") for u in UNREACHABLE]
    learned = learn_merges(mf.TRAIN_TEXT + EXTRA_TEXT, N_RANKS - 256 - len(extra))
    tokens += learned
    for t in extra:
        assert t not in tokens, t
        tokens.append(t)
    assert len(set(tokens)) == len(tokens) == N_RANKS
    return {t: i for i, t in enumerate(tokens)}


def write_tiktoken(ranks, path):
    with open(path, "w", encoding="utf8") as f:
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(f"{base64.b64encode(token).decode('ascii')} {rank}\n")
