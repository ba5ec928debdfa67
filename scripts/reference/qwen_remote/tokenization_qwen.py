"""A small, faithful stand-in for Qwen/Qwen-1_8B's tokenization_qwen.py (`QWenTokenizer`, the slow
tokenizer the real Qwen v1 repos ship as remote code beside `qwen.tiktoken`; no tokenizer.json).

What the real class does, and this one the same way:
  vocabulary   qwen.tiktoken: one `base64(token bytes) rank` per line (blank lines skipped), read
               into {bytes: rank}; a tiktoken.Encoding "Qwen" over it with PAT_STR below
  specials     <|endoftext|>, <|im_start|>, <|im_end|>, <|extra_0|> .. <|extra_204|>, numbered
               from SPECIAL_START_ID on; no bos / eos / pad / unk token is set by the class
  tokenize     NFC-normalise, then tiktoken's encode with every special token allowed in the text
               (allowed_special="all"): token ids -> their bytes (regular) or strings (special)
  ids          convert_tokens_to_ids maps bytes through the ranks and strings through the
               specials (a str that is no special token gives None)
  decode       tiktoken's decode of the ids (the special tokens' text included) with
               errors="replace"; skip_special_tokens keeps only ids below <|endoftext|>'s
  vocab_size   and len(): tiktoken's n_vocab (the largest id + 1); get_vocab(): the ranks only
  _add_tokens  refuses regular tokens and special tokens other than the ones above

The one difference: the real file numbers the special tokens from a fixed 151643 (the number of
ranks in the real qwen.tiktoken), this one from the number of ranks in the file read, so that a
small fabricated vocabulary works. For the real vocabulary the two are the same ids.
Not here (the fixtures never use them): the extra_vocab_file argument and pickling support.
"""
import base64
import unicodedata

import tiktoken
from transformers import AddedToken, PreTrainedTokenizer

VOCAB_FILES_NAMES = {"vocab_file": "qwen.tiktoken"}

PAT_STR = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
ENDOFTEXT, IMSTART, IMEND = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_NAMES = (ENDOFTEXT, IMSTART, IMEND) + tuple(f"<|extra_{i}|>" for i in range(205))


def read_ranks(path):
    with open(path, "rb") as f:
        lines = f.read().splitlines()
    ranks = {}
    for line in lines:
        if not line:
            continue
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    return ranks


class QWenTokenizer(PreTrainedTokenizer):
    vocab_files_names = VOCAB_FILES_NAMES

    def __init__(self, vocab_file, errors="replace", **kwargs):
        super().__init__(**kwargs)
        self.errors = errors
        self.mergeable_ranks = read_ranks(vocab_file)
        start = len(self.mergeable_ranks)
        self.special_tokens = {name: start + i for i, name in enumerate(SPECIAL_NAMES)}
        self.tokenizer = tiktoken.Encoding(
            "Qwen", pat_str=PAT_STR, mergeable_ranks=self.mergeable_ranks, special_tokens=self.special_tokens,
        )
        n = len(self.mergeable_ranks) + len(self.special_tokens)
        assert n == self.tokenizer.n_vocab, f"{n} != {self.tokenizer.n_vocab} in encoding"
        self.decoder = {rank: token for token, rank in self.mergeable_ranks.items()}
        self.decoder.update({i: name for name, i in self.special_tokens.items()})
        self.eod_id = self.tokenizer.eot_token
        self.im_start_id = self.special_tokens[IMSTART]
        self.im_end_id = self.special_tokens[IMEND]

    def __len__(self):
        return self.tokenizer.n_vocab

    @property
    def vocab_size(self):
        return self.tokenizer.n_vocab

    def get_vocab(self):
        return self.mergeable_ranks

    def _one_id(self, token):
        if token in self.special_tokens:
            return self.special_tokens[token]
        return self.mergeable_ranks.get(token)

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, (str, bytes)):
            return self._one_id(tokens)
        return [self._one_id(t) for t in tokens]

    def _add_tokens(self, new_tokens, special_tokens=False):
        if new_tokens and not special_tokens:
            raise ValueError("Adding regular tokens is not supported")
        for token in new_tokens:
            name = token.content if isinstance(token, AddedToken) else token
            if name not in SPECIAL_NAMES:
                raise ValueError("Adding unknown special tokens is not supported")
        return 0

    def save_vocabulary(self, save_directory, **kwargs):
        path = f"{save_directory}/qwen.tiktoken"
        with open(path, "w", encoding="utf8") as f:
            for token, rank in self.mergeable_ranks.items():
                f.write(f"{base64.b64encode(token).decode('utf8')} {rank}\n")
        return (path,)

    def tokenize(self, text, allowed_special="all", disallowed_special=(), **kwargs):
        text = unicodedata.normalize("NFC", text)
        ids = self.tokenizer.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)
        return [self.decoder[i] for i in ids]

    def convert_tokens_to_string(self, tokens):
        out, pending = [], b""
        for t in tokens:
            if isinstance(t, bytes):
                pending += t
                continue
            if not isinstance(t, str):
                raise TypeError("token should only be of type types or str")
            if pending:
                out.append(pending.decode("utf-8", errors=self.errors))
                pending = b""
            out.append(t)
        if pending:
            out.append(pending.decode("utf-8", errors=self.errors))
        return "".join(out)

    def _convert_id_to_token(self, index):
        if index not in self.decoder:
            raise ValueError("unknown ids")
        return self.decoder[index]

    def _convert_token_to_id(self, token):
        i = self._one_id(token)
        if i is None:
            raise ValueError("unknown token")
        return i

    def _tokenize(self, text, **kwargs):
        raise NotImplementedError

    def _decode(self, token_ids, skip_special_tokens=False, errors=None, **kwargs):
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        if skip_special_tokens:
            token_ids = [i for i in token_ids if i < self.eod_id]
        return self.tokenizer.decode(token_ids, errors=errors or self.errors)
