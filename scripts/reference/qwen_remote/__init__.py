"""The remote code of the Qwen v1 fixture (Qwen/Qwen-1_8B's `configuration_qwen.py` /
`modeling_qwen.py`, not available offline): see qwen_fixtures.py."""
