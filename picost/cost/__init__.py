"""Stage 2, the cost side: what one op costs under a protocol and a network.

The formula grammar (:mod:`.formula`), protocol tables (:mod:`.protocol_table`), network presets
(:mod:`.network`) and engine compute calibration (:mod:`.calibration`). Reads the op IR, never a
spec file, a face, the engines or torch.
"""
