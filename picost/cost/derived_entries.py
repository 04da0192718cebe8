"""Entries a table does not write but that follow from entries it does: ``topk`` (a mixture of
experts' router) as ``k`` successive argmaxes over the row. A table without the entries a
derivation needs gets nothing, and the estimate refuses the op naming the kind (never a zero).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from picost.cost import formula


def with_derived(entries: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``entries`` plus a derived ``topk`` entry when the table has ``argmax`` and no ``topk``."""
    out = dict(entries)
    argmax = entries.get("argmax")
    if "topk" not in entries and argmax is not None:
        out["topk"] = _topk(argmax, params)
    return out


def _topk(argmax: Any, params: Mapping[str, Any]) -> Any:
    allowed = {"rows", "cols", "k", *params}
    formulas = {f: formula.parse(f"k * ({form.text})", allowed, field_name=f"derived topk.{f}")
                for f, form in argmax.formulas.items()}
    source = ("derived: k successive argmaxes over the cols values of each row, each followed by masking the "
              "winner out (a public constant times its one-hot subtracted: local, assuming the argmax "
              "yields its one-hot, as CrypTen's does), so k times this table's argmax entry at (rows, cols); "
              f"the argmax entry's source: {argmax.source}")
    return dataclasses.replace(argmax, kind="topk", formulas=formulas, source=source,
                               notes="not written in the table: derived from its argmax entry",
                               where=f"{argmax.where} (x k: derived topk)", symbols=())
