"""A small, faithful stand-in for Qwen/Qwen-1_8B's modeling_qwen.py (Qwen v1, `QWenLMHeadModel`).
Same module and parameter names as the real checkpoints (transformer.wte / h.{i}.{ln_1,
attn.c_attn, attn.c_proj, ln_2, mlp.w1, mlp.w2, mlp.c_proj} / ln_f, lm_head, untied), nn.Linear
([out, in]) projections, and the real forward:

  RMSNorm: x * rsqrt(mean(x^2) + eps) * weight
  q, k, v = c_attn(x).split(hidden_size)     fused QKV, with bias; heads of kv_channels
  rotary on q and k: inv_freq = 1 / base^(arange(0, rot, 2) / rot), rot = kv_channels * rotary_pct,
     cat((-x2, x1)) rotation of the two halves (not adjacent pairs)
  dynamic NTK and logn scaling only past seq_length (never for the fixtures' short inputs)
  scores / sqrt(head_dim) when scale_attn_weights, causal mask (finfo.min), + attention_mask,
  softmax, @ v, merge heads, c_proj (no bias when no_bias)
  MLP: c_proj(w1(x) * silu(w2(x))), w1 / w2 of intermediate_size // 2, no biases

Only what the fixtures need is here: no KV cache (use_cache), no flash attention, no quantised
cache; dropout modules exist but the fixtures run in eval mode."""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.modeling_utils import PreTrainedModel

from .configuration_qwen import QWenConfig


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class RotaryEmbedding(nn.Module):
    def __init__(self, dim, base=10000):
        super().__init__()
        self.dim = dim
        self.base = base
        self.register_buffer("inv_freq", 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), persistent=False)

    def forward(self, max_seq_len, ntk_alpha=1.0):
        base = self.base * ntk_alpha ** (self.dim / (self.dim - 2))
        inv_freq = 1.0 / (base ** (torch.arange(0, self.dim, 2, device=self.inv_freq.device).float() / self.dim))
        seq = torch.arange(max_seq_len, device=inv_freq.device).type_as(inv_freq)
        freqs = torch.outer(seq, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)[None, :, None, :]  # [1, s, 1, rot]
        return emb.cos(), emb.sin()


def _rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(t, cos, sin):
    rot = cos.shape[-1]
    t_, t_pass = t[..., :rot], t[..., rot:]
    t_ = t_.float() * cos + _rotate_half(t_.float()) * sin
    return torch.cat((t_.type_as(t), t_pass), dim=-1)


class QWenAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.seq_length = config.seq_length
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.hidden_size // self.num_heads
        self.projection_size = config.kv_channels * config.num_attention_heads
        assert self.projection_size % self.num_heads == 0
        self.hidden_size_per_attention_head = self.projection_size // self.num_heads
        self.scale_attn_weights = config.scale_attn_weights
        self.use_logn_attn = config.use_logn_attn
        self.c_attn = nn.Linear(config.hidden_size, 3 * self.projection_size)
        self.c_proj = nn.Linear(config.hidden_size, self.projection_size, bias=not config.no_bias)
        self.attn_dropout = nn.Dropout(config.attn_dropout_prob)
        logn = [math.log(i, self.seq_length) if i > self.seq_length else 1 for i in range(1, 32768)]
        self.register_buffer("logn_tensor", torch.tensor(logn)[None, :, None, None], persistent=False)

    def forward(self, hidden_states, rotary, attention_mask=None):
        b, s, _ = hidden_states.shape
        query, key, value = self.c_attn(hidden_states).split(self.projection_size, dim=2)
        shape = (b, s, self.num_heads, self.hidden_size_per_attention_head)
        query, key, value = query.view(shape), key.view(shape), value.view(shape)
        cos, sin = rotary
        query = apply_rotary_pos_emb(query, cos, sin)
        key = apply_rotary_pos_emb(key, cos, sin)
        if self.use_logn_attn and not self.training and key.size(1) > self.seq_length:
            query = query * self.logn_tensor[:, :s].type_as(query)
        query, key, value = (x.permute(0, 2, 1, 3) for x in (query, key, value))
        attn = torch.matmul(query, key.transpose(-1, -2))
        if self.scale_attn_weights:
            attn = attn / torch.full([], value.size(-1) ** 0.5, dtype=attn.dtype, device=attn.device)
        causal = torch.tril(torch.ones((s, s), dtype=torch.bool, device=attn.device)).view(1, 1, s, s)
        attn = torch.where(causal, attn, torch.full([], torch.finfo(attn.dtype).min, dtype=attn.dtype, device=attn.device))
        if attention_mask is not None:
            attn = attn + attention_mask
        attn = self.attn_dropout(F.softmax(attn.float(), dim=-1).type(value.dtype))
        out = torch.matmul(attn, value).permute(0, 2, 1, 3).contiguous().view(b, s, self.projection_size)
        return self.c_proj(out)


class QWenMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        ff_dim_in = config.intermediate_size // 2
        self.w1 = nn.Linear(config.hidden_size, ff_dim_in, bias=not config.no_bias)
        self.w2 = nn.Linear(config.hidden_size, ff_dim_in, bias=not config.no_bias)
        self.c_proj = nn.Linear(ff_dim_in, config.hidden_size, bias=not config.no_bias)

    def forward(self, x):
        return self.c_proj(self.w1(x) * F.silu(self.w2(x)))


class QWenBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = RMSNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.attn = QWenAttention(config)
        self.ln_2 = RMSNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.mlp = QWenMLP(config)

    def forward(self, x, rotary, attention_mask=None):
        x = x + self.attn(self.ln_1(x), rotary, attention_mask)
        return x + self.mlp(self.ln_2(x))


class QWenPreTrainedModel(PreTrainedModel):
    config_class = QWenConfig
    base_model_prefix = "transformer"
    _no_split_modules = ["QWenBlock"]

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, RMSNorm):
            module.weight.data.fill_(1.0)


class QWenModel(QWenPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.seq_length = config.seq_length
        self.use_dynamic_ntk = config.use_dynamic_ntk
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.drop = nn.Dropout(config.emb_dropout_prob)
        rot = config.kv_channels if config.rotary_pct == 1.0 else int(config.kv_channels * config.rotary_pct)
        self.rotary_emb = RotaryEmbedding(rot, base=config.rotary_emb_base)
        self.h = nn.ModuleList([QWenBlock(config) for _ in range(config.num_hidden_layers)])
        self.ln_f = RMSNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.post_init()

    def forward(self, input_ids, attention_mask=None):
        b, s = input_ids.shape
        if attention_mask is not None:
            m = attention_mask.view(b, -1)[:, None, None, :].to(torch.float32)
            attention_mask = (1.0 - m) * torch.finfo(torch.float32).min
        ntk_alpha = 1.0
        if self.use_dynamic_ntk and s > self.seq_length and not self.training:
            context_value = math.log(s / self.seq_length, 2) + 1
            ntk_alpha = max(2 ** math.ceil(context_value) - 1, 1)
        rotary = self.rotary_emb(s, ntk_alpha=ntk_alpha)
        x = self.drop(self.wte(input_ids))
        for block in self.h:
            x = block(x, rotary, attention_mask)
        return self.ln_f(x)


class QWenLMHeadModel(QWenPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.transformer = QWenModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.transformer.wte

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids: Optional[torch.LongTensor] = None, attention_mask=None, labels=None, **kwargs):
        logits = self.lm_head(self.transformer(input_ids, attention_mask))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1))
        return CausalLMOutputWithPast(loss=loss, logits=logits)
