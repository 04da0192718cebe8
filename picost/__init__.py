"""picost: what a transformer costs under private inference.

Python API (same functions as the CLI)::

    from picost import load_spec, lower, count_flops
    spec = load_spec("gpt2")
    report = count_flops(spec, context=128)

    from picost import estimate
    est = estimate("gpt2", protocol="bumblebee", network="wan", context=128)
    est.totals.latency_s, est.by("class"), est.to_frame()
    gen = estimate("gpt2", protocol="bumblebee", network="wan", context=128, new_tokens=32)
    gen.ttft_s, gen.mean_token_s, gen.totals()

    from picost import plan        # which protocol is fastest over bandwidth x RTT (x cores)
    frame = plan("gpt2", ["bumblebee", "puma", "crypten"], context=128, target="10min")

Nothing heavy (sympy, pandas, torch) is imported here.
"""

from picost.errors import UserError
from picost.analysis.estimate import Estimate
from picost.analysis.generation import Generation, estimate, generation
from picost.analysis.plan import plan
from picost.model.flops import count_flops, symbolic_flops
from picost.model.lower import lower
from picost.model.load import load_spec
from picost.model.spec import ModelSpec

__all__ = ["Estimate", "Generation", "generation", "ModelSpec", "UserError", "count_flops", "estimate", "load_spec", "lower", "plan", "symbolic_flops"]
__version__ = "0.1.0"
