"""The last check before output: every total is a finite, non-negative number.

Inputs are validated where they enter (:mod:`picost.model.limits`), yet a valid huge per-op
cost over a valid slow link can still overflow a float sum. Such a result is an error naming the
quantity, never ``inf``/``nan`` in a table or JSON.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from picost.errors import UserError


def require_finite(values: Mapping[str, Any], where: str) -> None:
    """Raise a :class:`UserError` if a number in ``values`` (``None`` skipped; numpy arrays
    checked element-wise) is not finite or is negative. ``where`` names the result."""
    for name, value in values.items():
        if value is None:
            continue
        if hasattr(value, "dtype"):
            import numpy as np

            bad = bool(np.iscomplexobj(value)) or not bool(np.all(np.isfinite(value) & (value >= 0)))
        else:
            try:
                bad = isinstance(value, complex) or not math.isfinite(value) or value < 0
            except (OverflowError, TypeError):
                bad = True
        if bad:
            raise UserError(f"{where}: {name} is not a finite number (a cost or a time overflows; check huge "
                            "formulas, sizes or a tiny --bandwidth)", field=name)
