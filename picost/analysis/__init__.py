"""Stage 3, analysis: ops x protocol table x network composed into answers.

The per-op estimate (:mod:`.estimate`), closed forms (:mod:`.closed_forms`), vectorized sweeps
(:mod:`.sweep`), crossovers (:mod:`.crossovers`), comparisons (:mod:`.compare`), AERO ablations
(:mod:`.ablation`) and consistency checks of published figures (:mod:`.published_check`).
"""
