"""Entries a table does not write but that follow from what it does write:

* ``topk`` (a mixture of experts' router) as ``k`` successive argmaxes over the row, from the
  table's ``argmax`` entry;
* ``reveal`` (opening ``n`` secret ring elements to the computing parties: the routing decision of
  a mixture of experts with ``routing: revealed``) from the table's ``setting``: its parties, how
  its activations are shared and its ring.

A table without what a derivation needs gets nothing, and the estimate refuses the op naming the
kind and saying why (:func:`why_not_derived`), never a zero.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from picost.cost import formula
from picost.cost.entries import Entry, Setting

DERIVABLE = ("topk", "reveal")
"""The kinds this module can derive."""


def with_derived(entries: Mapping[str, Any], params: Mapping[str, Any], setting: Setting) -> dict[str, Any]:
    """``entries`` plus the derived kinds the table does not write and can derive."""
    out = dict(entries)
    argmax = entries.get("argmax")
    if "topk" not in entries and argmax is not None:
        out["topk"] = _topk(argmax, params)
    if "reveal" not in entries:
        reveal = _reveal(setting)
        if reveal is not None:
            out["reveal"] = reveal
    return out


def why_not_derived(kind: str, derive: bool) -> str | None:
    """Why a table without a ``kind`` entry does not derive one (None: not a derivable kind)."""
    if kind not in DERIVABLE:
        return None
    if not derive:
        return f"it sets derived_entries: false (it costs only what it writes), so {kind} is not derived"
    if kind == "topk":
        return "topk is derived from an argmax entry (k successive argmaxes), and the table has none"
    return ("an opening is derived only for 2PC additive or 3PC replicated sharing over a ring of setting.ring_bits "
            "(or no protocol); the table's setting is none of these")


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


def _reveal(setting: Setting) -> Entry | None:
    """Opening ``n`` shared elements: every party learns them, in one flight of messages."""
    shares, bits = setting.shares, setting.ring_bits
    if shares == "plaintext":
        return _entry({"comm_bytes": "0", "rounds": "0"},
                      "derived: no protocol (setting.parties: 1): the routing is computed in the clear, so "
                      "there is nothing to open and nothing is sent", "setting: no protocol")
    if bits is None:
        return None
    one = f"ceil(n * {bits} / 8)"  # one party's shares of the n elements, packed
    ring = f"Z_2^{bits} (setting.ring_bits)"
    if shares == "additive" and setting.parties == 2:
        return _entry({"comm_bytes": f"2 * {one}", "bytes_client_to_server": one, "bytes_server_to_client": one,
                       "rounds": "1"},
                      f"derived: opening n elements additively shared over {ring} between the 2 parties "
                      f"(setting: parties 2, additive sharing): each party sends the other its share of every "
                      f"element (n * {bits}/8 bytes each way, both in the same flight) and adds the share it "
                      f"receives to its own: 2 * n * {bits}/8 bytes, 1 round",
                      "setting: 2PC additive")
    if shares == "replicated" and setting.parties == 3:
        return _entry({"comm_bytes": f"3 * {one}", "rounds": "1"},
                      f"derived: opening n elements replicated-shared over {ring} among the 3 parties "
                      f"(setting: parties 3, replicated sharing; x = x1 + x2 + x3, party i holds x_i and "
                      f"x_i+1): each party sends the next party the one share it lacks (n * {bits}/8 bytes "
                      f"each, the three messages in the same flight): 3 * n * {bits}/8 bytes, 1 round",
                      "setting: 3PC replicated")
    return None


def _entry(texts: Mapping[str, str], source: str, basis: str) -> Entry:
    formulas = {f: formula.parse(text, ("n",), field_name=f"derived reveal.{f}") for f, text in texts.items()}
    return Entry("reveal", formulas, False, source, f"not written in the table: derived from its setting ({basis})",
                 None, where=f"setting (derived reveal: {basis})")
