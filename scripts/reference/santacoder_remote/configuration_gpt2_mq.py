"""GPT-2 config with santacoder's `attention_head_type` (the layout of bigcode/santacoder's
configuration_gpt2_mq.py: model_type "gpt2", class GPT2CustomConfig)."""
from transformers.models.gpt2.configuration_gpt2 import GPT2Config


class GPT2CustomConfig(GPT2Config):
    model_type = "gpt2"

    def __init__(self, attention_head_type="multiquery", **kwargs):
        # "multihead" is GPT-2's fused c_attn; santacoder is "multiquery" (one shared K/V head).
        assert attention_head_type in ("multiquery", "multihead"), attention_head_type
        self.attention_head_type = attention_head_type
        super().__init__(**kwargs)
