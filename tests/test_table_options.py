"""Protocol table options: declared in the YAML, chosen with --option / options={...}, recorded in
outputs; every mistake is one located UserError (exit 2 from the CLI)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import picost
from picost.cli.main import app
from picost.cost.protocol_table import load_protocol
from picost.cost.table_options import load_tables, parse_option_args
from picost.errors import UserError
from tests.conftest import run_cli

TABLE = """\
name: {name}
description: a test table with options
citations:
  fx: "a fixture"
setting:
  parties: 2
  threat_model: semi-honest
  correlated_randomness: none
confidence: invented
params:
  ell: {{value: 64, unit: bits, source: "fx §1"}}
options:
  width:
    description: ring width
    default: wide
    choices:
      wide: {{source: "fx §2"}}
      narrow:
        source: "fx §3"
        params: {{ell: 32}}
  act:
    description: which ReLU
    default: plain
    choices:
      plain: {{source: "fx §4"}}
      cheap:
        source: "fx §5"
        ops:
          relu: {{comm_bytes: "n", rounds: 1, source: "fx Table 9"}}
{extra}
ops:
  relu:
    comm_bytes: "ell * n"
    rounds: 3
    source: "fx Table 2"
"""


def write(tmp_path: Path, extra: str = "", name: str = "t") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TABLE.format(name=name, extra=textwrap.indent(textwrap.dedent(extra), "  ")))
    return path


def relu_cost(table, n: int = 10) -> tuple[int, int]:
    entry = table.entries["relu"]
    values = table.values(entry, {"n": n}, "r")
    return values["comm_bytes"], values["rounds"]


def test_defaults_are_in_force_and_choices_change_params_and_entries(tmp_path):
    path = write(tmp_path)
    base = load_protocol(path)
    assert base.chosen == {"width": "wide", "act": "plain"} and base.label == "t"
    assert relu_cost(base) == (640, 3)
    narrow = load_protocol(path, {"width": "narrow"})
    assert relu_cost(narrow) == (320, 3) and narrow.label == "t[width=narrow]"
    assert narrow.params["ell"].source == "fx §3"
    both = load_protocol(path, {"width": "narrow", "act": "cheap"})
    assert relu_cost(both) == (10, 1)
    assert both.entries["relu"].source == "fx Table 9"
    assert relu_cost(load_protocol(path)) == (640, 3)  # the cached base is untouched


@pytest.mark.parametrize(("options", "message"), [
    ({"widht": "narrow"}, "no option 'widht'; did you mean 'width'?"),
    ({"width": "narow"}, "no value 'narow'; did you mean 'narrow'?"),
])
def test_unknown_option_or_value_is_a_clear_error(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        load_protocol(write(tmp_path), options)


@pytest.mark.parametrize(("extra", "message", "marker"), [
    ("""\
     clash:
       description: another ReLU
       default: a
       choices:
         a: {source: "fx §6", ops: {relu: {comm_bytes: "0", rounds: 0, source: "fx §7"}}}
     """, "option 'clash' sets op 'relu', which option 'act' sets too", "a: {"),
    ("""\
     bad:
       description: a default that is no choice
       default: c
       choices:
         a: {source: "fx §6"}
     """, "default 'c' is not one of the choices", "default: c"),
    ("""\
     bad:
       description: an unknown parameter
       default: a
       choices:
         a: {source: "fx §6", params: {lam: 3}}
     """, "'lam' is not a parameter of this table", "a: {"),
    ("""\
     bad:
       description: a choice without a source
       default: a
       choices:
         a: {params: {ell: 3}}
     """, "missing required key 'source'", "a: {"),
    ("""\
     bad:
       description: an entry with an unknown symbol
       default: a
       choices:
         a: {source: "fx §6", ops: {gelu: {comm_bytes: "q * n", rounds: 1, source: "fx §8"}}}
     """, "q", "a: {"),
])
def test_malformed_options_are_located_load_errors(tmp_path, extra, message, marker):
    path = write(tmp_path, extra)
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines()) if text.strip().startswith(marker)
                    and i > 30)
    with pytest.raises(UserError) as err:
        load_protocol(path)
    assert message in err.value.message
    assert err.value.file.endswith("t.yaml") and err.value.line == line


def test_option_arguments_parse_scoped_and_unscoped():
    assert parse_option_args(["weights=public", "crypten:norm_gain=public"]) == {
        None: {"weights": "public"}, "crypten": {"norm_gain": "public"}}
    for bad in ("weights", "=public", "weights=", ":weights=public"):
        with pytest.raises(UserError, match="NAME=VALUE"):
            parse_option_args([bad])
    with pytest.raises(UserError, match="given twice"):
        parse_option_args(["weights=public", "weights=shared"])


def test_unscoped_option_must_exist_in_every_table_and_scoped_table_must_be_used():
    with pytest.raises(UserError, match="protocol table 'bumblebee' has no option 'norm_gain'"):
        load_tables(["crypten", "bumblebee"], ["norm_gain=public"])
    crypten, bumblebee = load_tables(["crypten", "bumblebee"], ["crypten:norm_gain=public"])
    (default,) = load_tables(["bumblebee"], None)  # bumblebee untouched: its own defaults (options grew in the merge)
    assert crypten.chosen["norm_gain"] == "public" and bumblebee.chosen == default.chosen
    assert bumblebee.chosen["weights"] == "shared"
    with pytest.raises(UserError, match="does not use"):
        load_tables(["bumblebee"], ["crypten:weights=public"])


def test_crypten_public_weights_make_linears_free_in_the_estimate():
    shared = picost.estimate("tiny", protocol="crypten", network="lan", context=8)
    public = picost.estimate("tiny", protocol="crypten", network="lan", context=8, options={"weights": "public"})
    shared_linear = shared.by("class")["linear"].comm_bytes
    assert shared_linear > 0 and public.by("class")["linear"].comm_bytes == 0
    assert public.totals.comm_bytes == shared.totals.comm_bytes - shared_linear - shared.by("class")["embedding"].comm_bytes \
        - shared.by("class")["head"].comm_bytes + public.by("class")["head"].comm_bytes
    assert public.protocol.label == "crypten[weights=public]"


def test_cli_records_options_and_refuses_bad_ones():
    runner = CliRunner()
    done = runner.invoke(app, ["estimate", "tiny", "-p", "crypten", "-n", "lan", "-T", "8", "-f", "json",
                               "--option", "weights=public"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert data["protocol"]["options"] == {"weights": "public", "norm_gain": "shared"}
    bad = run_cli("estimate", "tiny", "-p", "crypten", "-n", "lan", "--option", "weights=privat")
    assert bad.returncode == 2 and bad.stdout == ""
    assert "option 'weights' of protocol table 'crypten' has no value 'privat'" in bad.stderr
    assert "choices: shared, public" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("command", [
    ["sweep", "tiny", "-p", "crypten", "-T", "8,16", "-n", "lan", "-f", "json"],
    ["compare", "tiny", "tiny-relu", "-p", "crypten", "-n", "lan", "-T", "8", "-f", "json"],
    ["aero", "tiny", "-p", "crypten", "-n", "lan", "-T", "8", "-f", "json"],
    ["symbolic", "tiny", "-p", "crypten", "-n", "lan", "-f", "json"],
])
def test_every_costing_command_takes_options(command):
    runner = CliRunner()
    shared = runner.invoke(app, command)
    public = runner.invoke(app, command + ["--option", "weights=public"])
    assert shared.exit_code == 0 and public.exit_code == 0, public.output
    assert shared.output != public.output
    refused = runner.invoke(app, command + ["--option", "nope=1"])
    assert isinstance(refused.exception, UserError) and "has no option 'nope'" in refused.exception.message


def test_protocols_show_lists_the_options():
    done = CliRunner().invoke(app, ["protocols", "show", "crypten", "-f", "md"])
    assert done.exit_code == 0
    assert "## Options" in done.output and "| weights: " in done.output and "public" in done.output
