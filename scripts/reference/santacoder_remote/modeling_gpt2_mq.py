"""A small, faithful stand-in for bigcode/santacoder's modeling_gpt2_mq.py: GPT-2 whose blocks use
multi-query attention. Same module and parameter names as the real checkpoint (transformer.wte /
wpe / h.{i}.{ln_1, attn.q_attn, attn.kv_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj} / ln_f,
lm_head tied to wte), Conv1D ([in, out]) projections, and the real forward:

  q = q_attn(x)                      [b, s, n_head * head_dim], every query head
  k, v = kv_attn(x).split(head_dim)  [b, s, head_dim] each: ONE key head and ONE value head
  scores[b, h, i, j] = q[b, i, h] . k[b, j]  / sqrt(head_dim)  [/ (layer_idx + 1)]
  causal mask (finfo.min), + attention_mask, softmax, @ v, merge heads, c_proj
  GPT-2's pre-LN block and MLP (c_fc, activation_function, c_proj), learned positions.

Only what the fixtures need is here: no KV cache (use_cache), no cross-attention, no head_mask;
dropout modules exist but the fixtures run in eval mode."""
from typing import Optional

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions
from transformers.modeling_utils import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from .configuration_gpt2_mq import GPT2CustomConfig


class GPT2MQAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        assert config.attention_head_type == "multiquery", config.attention_head_type
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        assert self.head_dim * self.num_heads == self.embed_dim
        self.layer_idx = layer_idx
        self.scale_attn_weights = config.scale_attn_weights
        self.scale_attn_by_inverse_layer_idx = config.scale_attn_by_inverse_layer_idx
        n = config.max_position_embeddings
        self.register_buffer("bias", torch.tril(torch.ones((n, n), dtype=torch.bool)).view(1, 1, n, n),
                             persistent=False)
        self.q_attn = Conv1D(self.embed_dim, self.embed_dim)
        self.kv_attn = Conv1D(2 * self.head_dim, self.embed_dim)
        self.c_proj = Conv1D(self.embed_dim, self.embed_dim)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden_states, attention_mask=None):
        b, s, _ = hidden_states.shape
        query = self.q_attn(hidden_states).view(b, s, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        key, value = self.kv_attn(hidden_states).split(self.head_dim, dim=2)
        # As the real code: queries of all heads stacked, one bmm against the single key head.
        query = query.reshape(b, self.num_heads * s, self.head_dim)
        attn_weights = torch.bmm(query, key.transpose(1, 2)).view(b, self.num_heads, s, s)
        if self.scale_attn_weights:
            attn_weights = attn_weights / torch.full([], value.size(-1) ** 0.5, dtype=attn_weights.dtype)
        if self.scale_attn_by_inverse_layer_idx:
            attn_weights = attn_weights / float(self.layer_idx + 1)
        causal_mask = self.bias[:, :, :s, :s]
        mask_value = torch.full([], torch.finfo(attn_weights.dtype).min, dtype=attn_weights.dtype)
        attn_weights = torch.where(causal_mask, attn_weights, mask_value)
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = self.attn_dropout(nn.functional.softmax(attn_weights, dim=-1))
        attn_output = torch.bmm(attn_weights.view(b, self.num_heads * s, s), value)
        attn_output = attn_output.view(b, self.num_heads, s, self.head_dim).permute(0, 2, 1, 3)
        attn_output = attn_output.reshape(b, s, self.embed_dim)
        return self.resid_dropout(self.c_proj(attn_output))


class GPT2MLP(nn.Module):
    def __init__(self, intermediate_size, config):
        super().__init__()
        self.c_fc = Conv1D(intermediate_size, config.hidden_size)
        self.c_proj = Conv1D(config.hidden_size, intermediate_size)
        self.act = ACT2FN[config.activation_function]
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class GPT2CustomBlock(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        inner = config.n_inner if config.n_inner is not None else 4 * config.hidden_size
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.attn = GPT2MQAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(inner, config)

    def forward(self, x, attention_mask=None):
        x = x + self.attn(self.ln_1(x), attention_mask)
        return x + self.mlp(self.ln_2(x))


class GPT2CustomPreTrainedModel(PreTrainedModel):
    config_class = GPT2CustomConfig
    base_model_prefix = "transformer"
    _no_split_modules = ["GPT2CustomBlock"]

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, Conv1D)):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)


class GPT2CustomModel(GPT2CustomPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.wpe = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList([GPT2CustomBlock(config, i) for i in range(config.num_hidden_layers)])
        self.ln_f = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.post_init()

    def get_input_embeddings(self):
        return self.wte

    def set_input_embeddings(self, new_embeddings):
        self.wte = new_embeddings

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        b, s = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(s, device=input_ids.device).unsqueeze(0)
        x = self.drop(self.wte(input_ids) + self.wpe(position_ids))
        additive = None
        if attention_mask is not None:
            # [b, s] of 1 / 0 -> [b, 1, 1, s] of 0 / finfo.min, as GPT-2.
            additive = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for block in self.h:
            x = block(x, additive)
        return self.ln_f(x)


class GPT2LMHeadCustomModel(GPT2CustomPreTrainedModel):
    _tied_weights_keys = ["lm_head.weight"]

    def __init__(self, config):
        super().__init__(config)
        self.transformer = GPT2CustomModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(self, input_ids, attention_mask=None, position_ids=None, labels: Optional[torch.Tensor] = None,
                **kwargs):
        logits = self.lm_head(self.transformer(input_ids, attention_mask, position_ids))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
        return CausalLMOutputWithCrossAttentions(loss=loss, logits=logits)
