"""Views of protocol tables: the `picost protocols` list, `picost protocols show P`, and the
generated ``docs/protocols/<name>.md`` (``scripts/gen_protocol_docs.py``). A face: it renders
loaded tables and never changes them, so the docs cannot drift from the data."""

from __future__ import annotations

from typing import Any

from picost.cost.protocol_table import FORMULA_FIELDS, ProtocolTable, load_protocol, shipped_protocol_names

FIELD_LABELS = {"comm_bytes": "bytes (total)", "bytes_client_to_server": "bytes client->server",
                "bytes_server_to_client": "bytes server->client", "rounds": "rounds",
                "messages": "messages (info)", "compute_s": "compute s",
                "offline_bytes": "offline bytes", "setup_bytes": "one-time setup bytes"}
DOCS_HEADER = "<!-- generated from protocols/{name}.yaml by scripts/gen_protocol_docs.py; do not edit -->"


def listing(limit: int | None = 160) -> list[tuple[str, str, str, str]]:
    """``(name, setting, op kinds, confidence)`` for every shipped table; the confidence is its
    first sentence, cut to ``limit`` characters (``None``: whole)."""
    rows = []
    for name in shipped_protocol_names():
        t = load_protocol(name)
        rows.append((name, t.setting.summary(), str(len(t.entries)), _first_sentence(t.confidence, limit)))
    return rows


def _first_sentence(text: str, limit: int | None) -> str:
    text = " ".join(text.split())
    cut = text.find(". ")
    first = text if cut < 0 else text[: cut + 1]
    return first if limit is None or len(first) <= limit else first[: limit - 1] + "…"


def entry_rows(table: ProtocolTable) -> list[tuple[str, ...]]:
    """Per op kind: kind, one cell per formula field (empty if absent), truncation note, source."""
    rows = []
    for kind, e in table.entries.items():
        trunc = "included" if e.includes_truncation else ""
        cells = tuple(e.formulas[f].text if f in e.formulas else "" for f in FORMULA_FIELDS)
        source = (e.source + (f"; compute_s: {e.compute_source}" if e.compute_source else "")
                  + (f" — {e.notes}" if e.notes else ""))
        rows.append((kind,) + cells + (trunc, " ".join(source.split())))
    return rows


def option_rows(table: ProtocolTable) -> list[tuple[str, str, str, str, str]]:
    """Per option choice: option name, its description, choice (``(default)`` marked), what it
    sets (parameter values; entries by kind with their bytes and rounds formulas), source."""
    rows = []
    for option in table.options.values():
        for choice in option.choices.values():
            sets = [f"{k} = {v}" for k, v in choice.params.items()]
            sets += [f"{kind}: bytes {e.formulas['comm_bytes'].text}, rounds {e.formulas['rounds'].text}"
                     + (f", messages {e.formulas['messages'].text}" if "messages" in e.formulas else "")
                     for kind, e in choice.entries.items()]
            source = choice.source + (f" — {choice.notes}" if choice.notes else "")
            rows.append((option.name, option.description,
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
        lines += ["| " + " | ".join(_md_cell(c) for c in (f"{name}: {what}", choice, sets, source)) + " |"
                  for name, what, choice, sets, source in option_rows(table)]
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
    """`picost protocols show P` for the terminal: the header, then one block per op kind. Each
    block is a grid of label and text, so long text wraps on words under its own column at any
    terminal width."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def grid(rows: list[tuple[str, str]]) -> Any:
        g = Table.grid(padding=(0, 2), pad_edge=True)
        g.add_column(no_wrap=True)
        g.add_column(overflow="fold")
        for label, text in rows:
            g.add_row(Text(label), Text(" ".join(text.split())))
        return g

    s = table.setting
    parts: list[Any] = [Text.assemble((table.name, "bold"), f": {' '.join(table.description.split())}"),
                        grid([("setting", s.summary()), ("confidence", table.confidence), ("file", str(table.path))])]
    if table.params:
        parts += [Text("\nparameters", style="bold"),
                  grid([(p.name, f"= {p.value}{' ' + p.unit if p.unit else ''} ({p.source})")
                        for p in table.params.values()])]
    if table.options:
        in_force = ", ".join(f"{k}={v}" for k, v in table.chosen.items())
        parts += [Text(f"\noptions (--option NAME=VALUE; in force: {in_force})", style="bold"),
                  grid([(f"{name}={choice.split()[0]}", f"{what}{' (default)' if choice.endswith('(default)') else ''}: "
                         f"{sets} ({source})") for name, what, choice, sets, source in option_rows(table)])]
    for kind, e in table.entries.items():
        rows = [("source", e.source)] + [(FIELD_LABELS[f], e.formulas[f].text) for f in FORMULA_FIELDS
                                          if f in e.formulas]
        if e.compute_source:
            rows.append(("compute source", e.compute_source))
        if e.includes_truncation:
            rows.append(("truncation", "included in the bytes and rounds above"))
        if e.notes:
            rows.append(("notes", e.notes))
        parts += [Text(f"\n{kind}", style="bold cyan"), grid(rows)]
    if table.citations:
        parts += [Text("\ncitations", style="bold"), grid(list(table.citations.items()))]
    return Group(*parts)


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


def compose_listing() -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """What composes with what (``picost protocols compose``): per shipped table its share domain
    and transport, then per ordered pair of tables with different domains the conversion steps a
    hybrid inserts between them, or why the pair is refused."""
    from picost.cost.conversions import Domain, conversion_steps, describe_steps, load_conversions
    from picost.errors import UserError

    conv = load_conversions()
    tables = [load_protocol(name) for name in shipped_protocol_names()]
    domains = [(t.name, Domain.of(t).describe(), str(t.setting.delays_per_round)) for t in tables]
    pairs = []
    for a in tables:
        for b in tables:
            if a is b or Domain.of(a) == Domain.of(b) or Domain.of(a).shares != "additive" \
                    or Domain.of(b).shares != "additive":
                continue
            try:
                text = describe_steps(conversion_steps(a, b, conv))
            except UserError as exc:
                text = f"refused: {exc.message}"
            if a.setting.delays_per_round != b.setting.delays_per_round:
                text = "refused: different transports (delays_per_round)"
            pairs.append((a.name, b.name, text))
    return domains, pairs
