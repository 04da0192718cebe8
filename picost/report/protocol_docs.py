"""Views of protocol tables: the `picost protocols` list, `picost protocols show P`, and the
generated ``docs/protocols/<name>.md`` (``scripts/gen_protocol_docs.py``). A face: it renders
loaded tables and never changes them, so the docs cannot drift from the data."""

from __future__ import annotations

from typing import Any

from picost.cost.protocol_table import FORMULA_FIELDS, ProtocolTable, load_protocol, shipped_protocol_names

FIELD_LABELS = {"comm_bytes": "bytes (total)", "bytes_client_to_server": "bytes client->server",
                "bytes_server_to_client": "bytes server->client", "rounds": "rounds", "compute_s": "compute s",
                "offline_bytes": "offline bytes"}
DOCS_HEADER = "<!-- generated from protocols/{name}.yaml by scripts/gen_protocol_docs.py; do not edit -->"


def listing() -> list[tuple[str, str, str, str]]:
    """``(name, setting, op kinds, confidence)`` for every shipped table."""
    rows = []
    for name in shipped_protocol_names():
        t = load_protocol(name)
        rows.append((name, t.setting.summary(), str(len(t.entries)), _first_sentence(t.confidence)))
    return rows


def _first_sentence(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    cut = text.find(". ")
    first = text if cut < 0 else text[: cut + 1]
    return first if len(first) <= limit else first[: limit - 1] + "…"


def entry_rows(table: ProtocolTable) -> list[tuple[str, ...]]:
    """Per op kind: kind, one cell per formula field (empty if absent), truncation note, source."""
    rows = []
    for kind, e in table.entries.items():
        trunc = "included" if e.includes_truncation else ""
        cells = tuple(e.formulas[f].text if f in e.formulas else "" for f in FORMULA_FIELDS)
        source = e.source + (f" — {e.notes}" if e.notes else "")
        rows.append((kind,) + cells + (trunc, " ".join(source.split())))
    return rows


def option_rows(table: ProtocolTable) -> list[tuple[str, str, str, str]]:
    """Per option choice: option (with its description), choice (``(default)`` marked), what it
    sets (parameter values; entries by kind with their bytes and rounds formulas), source."""
    rows = []
    for option in table.options.values():
        for choice in option.choices.values():
            sets = [f"{k} = {v}" for k, v in choice.params.items()]
            sets += [f"{kind}: bytes {e.formulas['comm_bytes'].text}, rounds {e.formulas['rounds'].text}"
                     for kind, e in choice.entries.items()]
            source = choice.source + (f" — {choice.notes}" if choice.notes else "")
            rows.append((f"{option.name}: {option.description}",
                         choice.name + (" (default)" if choice.name == option.default else ""),
                         "; ".join(sets) or "the table's own entries", " ".join(source.split())))
    return rows


def _md_cell(text: str, code: bool = False) -> str:
    text = text.replace("|", "\\|")
    return f"`{text}`" if code and text else text


def markdown(table: ProtocolTable) -> str:
    """The generated doc page of ``table``."""
    s = table.setting
    lines = [DOCS_HEADER.format(name=table.name), "", f"# Protocol table `{table.name}`", "",
             " ".join(table.description.split()), "",
             f"**Setting:** {s.summary()}.", "",
             f"**Confidence:** {' '.join(table.confidence.split())}", ""]
    if table.citations:
        lines += ["## Citations", ""]
        lines += [f"- `{key}`: {' '.join(text.split())}" for key, text in table.citations.items()]
        lines.append("")
    if table.params:
        lines += ["## Parameters", "", "| name | value | unit | source |", "|---|---:|---|---|"]
        lines += [f"| `{p.name}` | {p.value} | {p.unit or ''} | {_md_cell(' '.join(p.source.split()))} |"
                  for p in table.params.values()]
        lines.append("")
    if table.options:
        lines += ["## Options", "", "Choose with `--option NAME=VALUE` (API: `options={...}`); the costs below use "
                  "the defaults.", "", "| option | choice | sets | source |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in option_rows(table)]
        lines.append("")
    present = [f for f in FORMULA_FIELDS if any(f in e.formulas for e in table.entries.values())]
    header = ["op kind"] + [FIELD_LABELS[f] for f in present] + ["truncation", "source"]
    over = "the op's dimension symbols (see docs/protocol-tables.md)" + (" and the parameters above"
                                                                         if table.params else "")
    lines += ["## Costs per op kind", "", f"Formulas over {over}.", "",
              "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in entry_rows(table):
        cells = dict(zip(("kind",) + FORMULA_FIELDS, row))
        out = [f"`{row[0]}`"] + [_md_cell(cells[f], code=True) for f in present] + [row[-2], _md_cell(row[-1])]
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


def rich_view(table: ProtocolTable) -> Any:
    """`picost protocols show P` as rich text: the header, then one block per op kind."""
    from rich.text import Text

    s = table.setting
    out = Text()
    out.append(f"{table.name}", style="bold")
    out.append(f": {' '.join(table.description.split())}\n")
    out.append(f"setting: {s.summary()}\nconfidence: {' '.join(table.confidence.split())}\nfile: {table.path}\n")
    if table.params:
        out.append("\nparameters\n", style="bold")
        for p in table.params.values():
            out.append(f"  {p.name} = {p.value}{' ' + p.unit if p.unit else ''}   ({' '.join(p.source.split())})\n")
    if table.options:
        out.append("\noptions (--option NAME=VALUE; in force: " + ", ".join(f"{k}={v}" for k, v in table.chosen.items())
                   + ")\n", style="bold")
        for option, choice, sets, source in option_rows(table):
            out.append(f"  {option}\n    {choice}: {sets}   ({source})\n")
    width = max(len(label) for label in FIELD_LABELS.values())
    for kind, e in table.entries.items():
        out.append(f"\n{kind}", style="bold cyan")
        out.append(f"   source: {' '.join(e.source.split())}\n")
        for f in FORMULA_FIELDS:
            if f in e.formulas:
                out.append(f"  {FIELD_LABELS[f]:<{width}}  {e.formulas[f].text}\n")
        if e.includes_truncation:
            out.append(f"  {'truncation':<{width}}  included in the bytes and rounds above\n")
        if e.notes:
            out.append(f"  {'notes':<{width}}  {' '.join(e.notes.split())}\n")
    if table.citations:
        out.append("\ncitations\n", style="bold")
        for key, text in table.citations.items():
            out.append(f"  {key}: {' '.join(text.split())}\n")
    return out


def expected_docs() -> dict[str, str]:
    """``{"<name>.md": page}`` for every shipped table, plus the ``README.md`` index."""
    pages = {f"{name}.md": markdown(load_protocol(name)) for name in shipped_protocol_names()}
    index = ["<!-- generated by scripts/gen_protocol_docs.py; do not edit -->", "", "# Protocol tables", "",
             "One page per shipped table, generated from its YAML (schema: ../protocol-tables.md).", "",
             "| table | setting | confidence |", "|---|---|---|"]
    index += [f"| [{name}]({name}.md) | {_md_cell(setting)} | {_md_cell(conf)} |"
              for name, setting, _, conf in listing()]
    pages["README.md"] = "\n".join(index) + "\n"
    return pages
