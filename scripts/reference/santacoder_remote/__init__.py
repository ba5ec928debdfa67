"""The remote code of the santacoder fixture (bigcode/santacoder's `configuration_gpt2_mq.py` /
`modeling_gpt2_mq.py`, not available offline): see santacoder_fixtures.py."""
