"""Issue 21, round two: each class of misbehaviour found by the adversarial pass has a regression
test here (silently wrong numbers, tracebacks in less-travelled paths, Python API types, terminal
safety, unbounded reads), plus a generated sweep of every command over every shipped spec and
table, with and without options."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from picost.analysis.estimate import estimate
from picost.cost.protocol_table import load_protocol, shipped_protocol_names
from picost.errors import UserError
from picost.model.load import load_spec, shipped_spec_names
from picost.model.located_yaml import load_located
from tests.conftest import run_cli

FIXTURE = Path(__file__).parent / "data" / "protocols" / "fixture2pc.yaml"


# -- silently wrong --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, needle", [
    ("x: 1:30\n", "base-60"), ("x: 010\n", "leading zero"), ("x: -07\n", "leading zero"),
    ("x: 1:30.5\n", "base-60"), ("x: 0_10\n", "leading zero"),
])
def test_yaml_11_number_spellings_are_refused(tmp_path, text, needle):
    f = tmp_path / "n.yaml"
    f.write_text(text)
    with pytest.raises(UserError) as exc:
        load_located(f)
    assert needle in exc.value.message and exc.value.line == 1 and exc.value.field == "x"


@pytest.mark.parametrize("text, value", [("x: 0\n", 0), ("x: 10\n", 10), ("x: '010'\n", "010"), ("x: 0.5\n", 0.5),
                                         ("x: '1:30'\n", "1:30"), ("x: -3\n", -3)])
def test_plain_numbers_and_quoted_text_still_read(tmp_path, text, value):
    f = tmp_path / "n.yaml"
    f.write_text(text)
    assert load_located(f)[0] == {"x": value}


def test_a_spec_with_an_octal_looking_size_is_exit_2(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("extends: tiny\nn_layers: 010\n")
    res = run_cli("flops", str(f))
    assert res.returncode == 2 and f"{f}:2" in res.stderr and "n_layers" in res.stderr


@pytest.mark.parametrize("latency", ["1e-300s", "0.1us", "5"])
def test_check_refuses_latencies_that_make_every_ratio_infinite_or_have_no_unit(latency):
    for fmt in ("table", "json"):
        res = run_cli("check", "--comm", "1GB", "--latency", latency, "-f", fmt)
        assert res.returncode == 2 and "--latency" in res.stderr, res.stdout
        assert "Infinity" not in res.stdout and "inf" not in res.stdout


@pytest.mark.parametrize("argv", [
    ["sweep", "tiny", "-p", "crypten", "-T", "64,,128"], ["sweep", "tiny", "-p", "crypten", "-T", "64,128,"],
    ["sweep", "tiny", "-p", "crypten", "-n", "lan,,wan", "-T", "64"],
    ["sweep", "tiny", "-p", "crypten", "-T", "64", "--new-tokens", "1,,8"],
])
def test_empty_list_items_are_an_error_not_skipped(argv):
    res = run_cli(*argv)
    assert res.returncode == 2 and "empty item" in res.stderr, res.stdout


@pytest.mark.parametrize("rounds", ["0.5", '"n/3"', '"log2(n)"'])
def test_fractional_rounds_from_a_custom_table_are_refused(tmp_path, rounds):
    text = FIXTURE.read_text().replace("name: fixture2pc", "name: frac")
    old = '  truncation: {comm_bytes: "2*n", rounds: 1, source: "fx §9"}'
    assert old in text
    f = tmp_path / "frac.yaml"
    f.write_text(text.replace(old, f'  truncation: {{comm_bytes: "2*n", rounds: {rounds}, source: "fx §9"}}'))
    res = run_cli("estimate", "tiny", "-p", str(f), "-n", "lan", "-T", "8")
    assert res.returncode == 2 and "must be whole" in res.stderr and "ops.truncation.rounds" in res.stderr


def test_every_shipped_table_gives_whole_rounds():
    for name in shipped_protocol_names():
        est = estimate("gpt2" if name != "sigma" else "gpt2-lnfree-relu", name, "lan", 48, allow_uncosted=True)
        assert all(float(r.rounds).is_integer() for r in est.rows if r.costed), name


# -- crashes in less-travelled paths -----------------------------------------------------------------

def test_report_with_an_option(tmp_path):
    out = tmp_path / "r.md"
    res = run_cli("report", "tiny", "-p", "crypten,bumblebee", "-n", "lan", "--option", "crypten:weights=public",
                  "--sweep", "64,128", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "crypten[weights=public]" in out.read_text()


def test_aero_on_a_spec_without_a_token_embedding():
    res = run_cli("aero", "vit-base", "-p", "puma", "-n", "lan")
    assert res.returncode == 0, res.stderr
    assert "197x197" in res.stdout  # ViT-B/16: 196 patches + CLS per softmax row


def test_a_spec_name_longer_than_a_file_name():
    res = run_cli("estimate", "a" * 300, "-p", "crypten")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "spec" in res.stderr


def test_control_characters_reach_the_terminal_escaped():
    res = run_cli("estimate", "gp\x1b[2Jt2", "-p", "crypten")
    assert res.returncode == 2 and "\x1b" not in res.stderr and "\\x1b[2J" in res.stderr


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_devices_are_never_read_as_files(path):
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    for argv in (["estimate", path, "-p", "crypten"], ["estimate", "tiny", "-p", path],
                 ["estimate", "tiny", "-p", "crypten", "--machine", path],
                 ["estimate", "tiny", "-p", "picost-2pc", "--calibration", path]):
        start = time.monotonic()
        res = run_cli(*argv, timeout=60)
        assert res.returncode == 2 and "Traceback" not in res.stderr, (argv, res.stderr)
        assert time.monotonic() - start < 30


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    res = run_cli("estimate", str(fifo), "-p", "crypten", timeout=60)
    assert res.returncode == 2 and "not a regular file" in res.stderr


# -- the Python API --------------------------------------------------------------------------------

def test_a_loaded_spec_cannot_be_changed_in_place():
    spec = load_spec("gpt2")
    with pytest.raises(UserError, match="cannot be changed in place"):
        spec.n_layers = -5
    with pytest.raises(UserError, match="cannot be changed in place"):
        spec.norm.kind = "none"
    assert spec.n_layers == 12


@pytest.mark.parametrize("update, field", [({"n_layers": -5}, "n_layers"), ({"n_layers": 10**9}, "n_layers"),
                                           ({"d_model": 770}, None)])
def test_a_copy_is_checked_like_a_loaded_spec(update, field):
    start = time.monotonic()
    with pytest.raises(UserError) as exc:
        load_spec("gpt2").model_copy(update=update)
    assert time.monotonic() - start < 10
    if field:
        assert exc.value.field == field
    assert load_spec("gpt2").model_copy(update={"phase": "decode"}).phase == "decode"


@pytest.mark.parametrize("kwargs, field", [
    ({"options": ["weights=public"]}, "--option"), ({"options": {"weights": 1}}, "--option"),
    ({"network": 5}, "--network"), ({"protocol": 3}, "--protocol"), ({"context": "abc"}, "context"),
    ({"machine": 3}, "--machine"), ({"threads": "x"}, "--threads"), ({"compute": "off"}, "--compute"),
])
def test_api_arguments_of_the_wrong_type_are_user_errors(kwargs, field):
    from picost.analysis.generation import generation

    args = {"spec": "tiny", "protocol": "crypten", "network": "lan", "context": 8, **kwargs}
    for fn in (estimate, generation):
        with pytest.raises(UserError) as exc:
            fn(**args)
        assert exc.value.field == field


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=8), st.lists(st.text(max_size=3), max_size=2),
                 st.floats(allow_nan=True), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
def test_api_fuzz_gives_an_estimate_or_a_user_error(value):
    """Any value in any argument: a finite estimate or picost's UserError, never Python's own error."""
    for key in ("network", "context", "options", "machine", "threads", "compute", "bandwidth", "rtt"):
        args = {"spec": "tiny", "protocol": "crypten", "network": "lan", "context": 8, key: value}
        if key in ("bandwidth", "rtt") and value is not None:
            args["network"] = None
            args["bandwidth" if key == "rtt" else "rtt"] = "1ms" if key == "bandwidth" else "1Gbps"
        try:
            est = estimate(**args)
        except UserError:
            continue
        assert est.totals.latency_s is not None and est.totals.latency_s >= 0


# -- every command over every shipped spec and table ----------------------------------------------------

def _default_options(table_name: str) -> list[dict[str, str]]:
    """No options, then each non-default choice of each option of the table."""
    table = load_protocol(table_name)
    out: list[dict[str, str]] = [{}]
    for name, option in table.options.items():
        out += [{name: choice} for choice in option.choices if choice != option.default]
    return out


@pytest.mark.parametrize("table_name", shipped_protocol_names())
def test_every_spec_under_every_table_and_option_estimates_or_says_why(table_name):
    for options in _default_options(table_name):
        for spec in shipped_spec_names():
            try:
                est = estimate(spec, table_name, "wan", 16, options=options, allow_uncosted=True)
            except UserError as exc:  # a located refusal (e.g. a generation-only spec) is an answer
                assert exc.message, (spec, table_name, options)
                continue
            assert est.totals.latency_s is None or est.totals.latency_s >= 0, (spec, table_name, options)
            assert est.totals.comm_bytes is None or est.totals.comm_bytes >= 0


@pytest.mark.parametrize("spec", shipped_spec_names())
def test_every_spec_through_the_what_if_library(spec):
    """aero, a sweep, a comparison and the closed forms under one table, in process."""
    from picost.analysis.ablation import ablation, estimate_cost
    from picost.analysis.closed_forms import class_forms
    from picost.analysis.sweep import sweep
    from picost.cost.hybrid import load_costing
    from picost.cost.network import get_network
    from picost.model.aero_transforms import aero_steps

    model = load_spec(spec)
    table = load_costing("spu-semi2k")
    link = get_network("lan")
    try:
        steps = aero_steps(model)
    except UserError:
        steps = None
    if steps is not None:
        rows = ablation(steps, 16, estimate_cost(table, link, allow_uncosted=True))
        assert rows and all(r.total_flops > 0 for r in rows)
    result = sweep(model, [16, 32], [table], [link], allow_uncosted=True)
    assert len(result) == 2 and (result.total["latency_s"] >= 0).all()
    if model.n_layers <= 12:
        forms = class_forms(model, table, True, ["T"])
        assert forms.costed_classes


# -- leftovers -----------------------------------------------------------------------------------

def test_a_report_cleans_the_staging_folder_of_a_killed_writer(tmp_path):
    """A writer killed with SIGKILL during staging leaves .picost-stage-<pid>-*; the next write in
    that folder removes it (its pid is dead) and leaves a live writer's alone."""
    import subprocess
    import sys

    from picost.report.atomic_write import STAGE_PREFIX, write_all_atomic

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{STAGE_PREFIX}{int(dead.stdout)}-abc"
    stale.mkdir()
    (stale / "0.md").write_text("half")
    live = tmp_path / f"{STAGE_PREFIX}{os.getpid()}-xyz"
    live.mkdir()
    write_all_atomic({tmp_path / "r.md": "report\n"})
    assert not stale.exists() and live.exists() and (tmp_path / "r.md").read_text() == "report\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGE_PREFIX) and p != live]


@pytest.mark.parametrize("host", ["::1", "192.0.2.7"])
def test_mpc_run_on_a_host_that_is_not_a_local_ipv4_address_is_exit_2(host):
    """::1 (IPv6) and a documentation address (not on this machine): one message, before any party starts."""
    res = run_cli("mpc", "run", "tiny", "--tokens", "1,2", "--host", host, "--timeout", "5", timeout=60)
    assert res.returncode == 2 and "--host" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("argv", [
    ["estimate", "vit-base", "-p", "puma", "-n", "lan", "-N", "4"],
    ["compare", "vit-base", "tiny", "-p", "puma", "-n", "lan", "-N", "4"],
    ["sweep", "vit-base", "-p", "puma", "-n", "lan", "-T", "197", "-N", "4"],
    ["symbolic", "vit-base", "-p", "puma", "-n", "lan", "--new-tokens"],
])
def test_a_patch_input_spec_refuses_generation_in_every_command(argv):
    res = run_cli(*argv)
    assert res.returncode == 2 and "image-patch input" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("argv", [("mpc", "run", "tiny", "--tokens", "1,2", "--timeout", "1e-9"),
                                  ("validate", "tiny", "-T", "4", "--timeout", "0.01")])
def test_a_timeout_too_short_to_meet_is_the_arguments_fault_not_a_busy_port(argv):
    res = run_cli(*argv, timeout=60)
    assert res.returncode == 2, res.stderr
    assert "--timeout" in res.stderr and "at least 0.1 s" in res.stderr
    assert "in use" not in res.stderr and "could not reach" not in res.stderr


def test_a_party_refuses_a_timeout_too_short_to_meet():
    res = subprocess.run([sys.executable, "-m", "picost.mpc.party", "--role", "client", "--host", "127.0.0.1",
                          "--port", "1", "--job", "-", "--out", "-", "--timeout", "1e-9"],
                         capture_output=True, text=True, timeout=60, input="")
    assert res.returncode == 2 and "--timeout" in res.stderr and "0.1" in res.stderr, res.stderr
