"""Stage 1, the model: what a transformer *is* and what it computes, with no cost knowledge.

Specs (:mod:`.spec`, :mod:`.load`, :mod:`.hf_config`, :mod:`.located_yaml`), the op IR
(:mod:`.ops`) and the lowering of a spec to it (:mod:`.lower`), FLOP counts (:mod:`.flops`),
spec transforms (:mod:`.aero_transforms`) and the plain torch reference (:mod:`.torch_reference`).
"""
