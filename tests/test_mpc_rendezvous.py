"""The engine's rendezvous admits only the parties of its run (issue 21).

* A stranger process that reaches the port during a real run (a torch TCPStore client reading and
  writing keys, raw frames, picost's own join with a wrong secret as server, as dealer, a claim
  of the client's role) learns only the protocol's magic line and random challenges, joins
  nothing, is logged by the client one line per connection, and the run completes with every
  row predicted == measured and the same bytes and rounds as a run without it.
* The client listens on the address given (127.0.0.1: not 127.0.0.2, not 0.0.0.0).
* Multi-host runs (three ``python -m picost.mpc.party`` with job files): the same secret works;
  a party with another secret is refused with a clear message, exit 3, no traceback; a job
  without a nonce is refused (exit 2).
* The rendezvous in-process: a second server, a fake client, slow, oversized, tampered and
  too many connections, the bounded log.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from picost.mpc import rendezvous
from picost.mpc.launcher import free_port, model_job, run_local
from picost.mpc.validate import check_model, measured_rows

REPO = Path(__file__).resolve().parents[1]
SPEC, IDS, SEED = "tiny", [4, 8, 15, 16], 0
SECRET = "0123456789abcdef0123456789abcdef"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _counts(run) -> dict:
    """Bytes and rounds per row (wall times left out)."""
    return {name: {k: v for k, v in row.items() if k != "wall_s"} for name, row in measured_rows(run.stats).items()}


@pytest.fixture(scope="module")
def baseline():
    return run_local(model_job(SPEC, IDS, seed=SEED))


# -- a stranger during a real run ----------------------------------------------------------------------
STRANGER = textwrap.dedent("""
    import json, os, socket, struct, sys, time
    from datetime import timedelta
    host, port = sys.argv[1], int(sys.argv[2])
    import torch.distributed as dist
    from picost.mpc import rendezvous
    MAGIC = rendezvous.MAGIC
    out = {"received": [], "attempts": {}}

    def wait_port():
        end = time.monotonic() + 120
        while time.monotonic() < end:
            with socket.socket() as s:
                if s.connect_ex((host, port)) == 0:
                    return
            time.sleep(0.05)
        raise SystemExit("the run never listened")

    def raw(name, payload, read=4096):
        # connect, read the client's hello, send payload, read what comes back until closed
        with socket.create_connection((host, port), timeout=20) as s:
            got = b""
            if payload is not None:
                while len(got) < len(MAGIC) + 32:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                s.sendall(payload)
            while True:
                try:
                    chunk = s.recv(read)
                except (ConnectionResetError, socket.timeout):
                    break
                if not chunk:
                    break
                got += chunk
        out["received"].append(got.hex())
        out["attempts"][name] = got.hex()

    def frame(b):
        return struct.pack(">I", len(b)) + b

    wait_port()
    out["started"] = time.time()
    # 1. a torch TCPStore client: read every key, read gloo's, write one (its constructor retries a while)
    try:
        store = dist.TCPStore(host, port, None, False, timedelta(seconds=3), wait_for_workers=False)
        out["attempts"]["tcpstore"] = "ANSWERED " + repr((store.list_keys(), store.get("0//cpu//0/0"),
                                                          store.set("0//cpu//0/1", b"evil")))
    except Exception as exc:
        out["attempts"]["tcpstore"] = "failed: " + str(exc).splitlines()[0][:200]
    # 2. raw frames: claim each role with a made-up proof, a store request, oversized and malformed bytes
    for role in (0, 1, 2, 7):
        raw(f"claim role {role}", frame(bytes([role]) + os.urandom(64)))
    raw("set request without handshake", frame(bytes([1]) + frame(b"0//cpu//0/1") + frame(b"evil")))
    raw("oversized", struct.pack(">I", 2**31) + b"x" * 100)
    raw("short", frame(b"hello"))
    raw("http", b"GET / HTTP/1.0\\r\\n\\r\\n")
    # 3. picost's own join, as server and as dealer, with a wrong secret
    for role in (1, 2):
        try:
            rendezvous.join(host, port, role, rendezvous.run_key("not-the-secret"), 10, 10)
            out["attempts"][f"join as {role}"] = "JOINED"
        except rendezvous.RendezvousError as exc:
            out["attempts"][f"join as {role}"] = "refused: " + str(exc)
    out["ended"] = time.time()
    print(json.dumps(out))
""")


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:
                found.append(address)
    return found


def test_a_stranger_learns_nothing_joins_nothing_and_the_run_stays_exact(baseline):
    port = free_port()
    stranger = subprocess.Popen([sys.executable, "-c", STRANGER, "127.0.0.1", str(port)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
    job = {**model_job(SPEC, IDS, seed=SEED), "debug_stall": {"role": "server", "seconds": 15}}
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["run"] = run_local(job, port=port, timeout_s=60)
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc
        outcome["ended"] = time.time()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        # while the run goes on: the rendezvous listens on 127.0.0.1 only
        end = time.monotonic() + 60
        while not _listeners(port) and time.monotonic() < end:
            time.sleep(0.05)
        assert _listeners(port) == ["0100007F"], _listeners(port)  # 127.0.0.1, not 0.0.0.0 nor ::
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.2", port)) != 0  # another local address: nothing there
        stdout, stderr = stranger.communicate(timeout=120)
    finally:
        thread.join(timeout=300)
        if stranger.poll() is None:
            stranger.kill()
    assert "error" not in outcome, outcome.get("error")
    assert stranger.returncode == 0, stderr
    seen = json.loads(stdout)
    assert seen["ended"] < outcome["ended"], "the stranger's attempts must happen during the run"

    # it joined nothing and read nothing
    attempts = seen["attempts"]
    assert not any(str(v).startswith(("ANSWERED", "JOINED")) for v in attempts.values()), attempts
    for role in (1, 2):
        assert "did not accept this party's proof" in attempts[f"join as {role}"]
    # all it received: the magic line, a random challenge, a refusal code
    challenges = set()
    for hexed in seen["received"]:
        got = bytes.fromhex(hexed)
        assert got.startswith(rendezvous.MAGIC), got
        challenges.add(got[len(rendezvous.MAGIC):len(rendezvous.MAGIC) + 32])
        assert got[len(rendezvous.MAGIC) + 32:] in (b"", b"\x00\x00\x00\x02\x00\x01", b"\x00\x00\x00\x02\x00\x03"), got
        assert SECRET.encode() not in got and b"cpu" not in got and b"127.0.0.1" not in got
    assert len(challenges) == len(seen["received"])  # fresh per connection
    assert attempts["claim role 1"].endswith("0000000200" + "01")  # refused: a wrong proof

    # the client logged every refusal, one line each, and went on
    run = outcome["run"]
    refusals = [line for line in run.stderr["client"].splitlines() if line.startswith("client: refused a connection from 127.0.0.1:")]
    assert len(refusals) >= len(seen["received"]) + 1 + 2, run.stderr["client"]
    assert any("wrong proof of the run's secret" in line for line in refusals)
    assert any("more than the" in line for line in refusals)  # the oversized frame
    assert "Traceback" not in "".join(run.stderr.values())
    assert not run.stderr["server"].strip() and not run.stderr["dealer"].strip()

    # the run: every row exact, the same bytes and rounds as without the stranger
    check = check_model(SPEC, IDS, SEED, run)
    assert check.ok, [(r.name, r.predicted, r.measured) for r in check.rows if not r.ok]
    assert check.next_token == check.reference_token == baseline.results["client"]["next_token"]
    assert _counts(run) == _counts(baseline)


# -- multi-host style runs: three party processes with job files -----------------------------------------
def _job_files(tmp: Path, secrets_by_role: dict[str, str | None]) -> dict[str, Path]:
    job = model_job(SPEC, IDS, seed=SEED)
    paths = {}
    for role, secret in secrets_by_role.items():
        mine = {k: v for k, v in job.items() if role == "client" or k != "client_input"}
        if secret is not None:
            mine["nonce"] = secret
        paths[role] = tmp / f"{role}.json"
        paths[role].write_text(json.dumps(mine))
        paths[role].chmod(0o600)
    return paths


def _parties(tmp: Path, jobs: dict[str, Path], port: int, connect_timeout: float = 60) -> dict[str, subprocess.CompletedProcess]:
    procs = {role: subprocess.Popen([sys.executable, "-m", "picost.mpc.party", "--role", role, "--host", "127.0.0.1",
                                     "--port", str(port), "--job", str(jobs[role]), "--out", str(tmp / f"{role}.pt"),
                                     "--timeout", "60", "--connect-timeout", str(connect_timeout)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
             for role in ("client", "server", "dealer")}
    done = {}
    try:
        for role, p in procs.items():
            out, err = p.communicate(timeout=300)
            done[role] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    return done


def test_multi_host_parties_with_the_same_secret_complete_exactly(tmp_path, baseline):
    import torch

    done = _parties(tmp_path, _job_files(tmp_path, dict.fromkeys(("client", "server", "dealer"), SECRET)), free_port())
    for role, res in done.items():
        assert res.returncode == 0, (role, res.stderr)
        assert "warning" not in res.stderr and "refused" not in res.stderr, (role, res.stderr)
    loaded = {role: torch.load(tmp_path / f"{role}.pt", weights_only=False)["runs"][0] for role in done}
    run = SimpleNamespace(stats={r: v["stats"] for r, v in loaded.items()},
                          results={r: v["results"] for r, v in loaded.items()},
                          preprocess_s={r: v["preprocess_s"] for r, v in loaded.items()},
                          peak_rss_bytes={r: v["peak_rss_bytes"] for r, v in loaded.items()})
    check = check_model(SPEC, IDS, SEED, run)
    assert check.ok and check.next_token == check.reference_token
    assert f"next_token {check.next_token}" in done["client"].stdout
    assert _counts(run) == _counts(baseline)


def test_a_party_with_another_secret_is_refused_clearly(tmp_path):
    jobs = _job_files(tmp_path, {"client": SECRET, "server": SECRET, "dealer": "f" * 32})
    done = _parties(tmp_path, jobs, free_port(), connect_timeout=8)
    dealer, client = done["dealer"], done["client"]
    assert dealer.returncode == 3, dealer.stderr
    assert "dealer: refused the rendezvous at 127.0.0.1:" in dealer.stderr
    assert "nonces differ" in dealer.stderr
    assert "client: refused a connection from 127.0.0.1:" in client.stderr
    assert "wrong proof of the run's secret" in client.stderr
    assert "client: could not reach the other parties" in client.stderr and "within 8 s" in client.stderr
    for role, res in done.items():
        assert res.returncode == 3, (role, res.stderr)  # the others: the dealer never joined
        assert "Traceback" not in res.stderr, (role, res.stderr)
        assert not (tmp_path / f"{role}.pt").exists()


def test_a_job_without_a_secret_is_refused_and_a_shared_file_warned(tmp_path):
    jobs = _job_files(tmp_path, {"server": None})
    res = subprocess.run([sys.executable, "-m", "picost.mpc.party", "--role", "server", "--port", str(free_port()),
                          "--job", str(jobs["server"]), "--out", str(tmp_path / "s.pt")],
                         capture_output=True, text=True, env=_env(), cwd=REPO, timeout=60)
    assert res.returncode == 2 and "has no 'nonce'" in res.stderr and "--new-secret" in res.stderr
    assert "Traceback" not in res.stderr
    secret = subprocess.run([sys.executable, "-m", "picost", "mpc", "party", "--new-secret"], capture_output=True,
                            text=True, env=_env(), cwd=REPO, timeout=60)
    assert secret.returncode == 0 and len(secret.stdout.strip()) == 32 and int(secret.stdout, 16) >= 0
    jobs["server"].write_text(json.dumps({"kind": "batch", "jobs": [], "nonce": "short"}))
    jobs["server"].chmod(0o644)
    res = subprocess.run([sys.executable, "-m", "picost.mpc.party", "--role", "server", "--port", str(free_port()),
                          "--job", str(jobs["server"]), "--out", str(tmp_path / "s.pt"), "--connect-timeout", "1"],
                         capture_output=True, text=True, env=_env(), cwd=REPO, timeout=60)
    assert "may be read by other users (mode 0644)" in res.stderr and "chmod 600" in res.stderr
    assert "only 5 characters" in res.stderr
    assert res.returncode == 3 and "could not reach the client's rendezvous" in res.stderr


# -- the rendezvous in-process ---------------------------------------------------------------------------
KEY = rendezvous.run_key(SECRET)


@pytest.fixture
def host(capsys):
    h = rendezvous.Host("127.0.0.1", 0, KEY, max_wait_s=5)
    yield h
    h.close()


def _port(h) -> int:
    return h.address[1]


def _refusals(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("client: refused")]


def _wait_refusals(capsys, n: int, bound_s: float = 10) -> list[str]:
    got: list[str] = []
    end = time.monotonic() + bound_s
    while len(got) < n and time.monotonic() < end:
        got += _refusals(capsys)
        time.sleep(0.05)
    return got


def test_the_store_serves_gloo_and_admits_each_role_once(host, capsys):
    server, run_id = rendezvous.join("127.0.0.1", _port(host), 1, KEY, 5, 5)
    dealer, run_id2 = rendezvous.join("127.0.0.1", _port(host), 2, KEY, 5, 5)
    assert run_id == run_id2 == host.run_id
    local = host.store(5)
    server.set("a", b"1")
    assert local.get("a") == b"1" and dealer.get("a") == b"1"
    assert server.add("n", 2) == 2 and dealer.add("n", 3) == 5 and local.add("n", 1) == 6
    assert dealer.check(["a", "n"]) and not dealer.check(["a", "b"])
    local.set("b", "x")
    dealer.wait(["a", "b"])
    with pytest.raises(RuntimeError, match="timed out"):
        server.wait(["never"], 0.2)
    assert server.compare_set("c", b"", b"v") == b"v" and dealer.compare_set("c", b"w", b"z") == b"v"
    assert server.num_keys() == 4 and dealer.delete_key("c") and not server.check(["c"])
    with pytest.raises(rendezvous.RendezvousError, match="has its server already"):
        rendezvous.join("127.0.0.1", _port(host), 1, KEY, 5, 5)
    assert any("a second server" in line for line in _wait_refusals(capsys, 1))
    server.close()
    dealer.close()


def _join_a_fake(serve, role: int, match: str) -> None:
    """A party joins a listener whose one connection ``serve(conn)`` answers; it must refuse with ``match``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def one_connection() -> None:
        conn, _ = listener.accept()
        with conn:
            serve(conn)
            time.sleep(1)

    thread = threading.Thread(target=one_connection)
    thread.start()
    with pytest.raises(rendezvous.RendezvousError, match=match):
        rendezvous.join("127.0.0.1", listener.getsockname()[1], role, KEY, 5, 5)
    thread.join()
    listener.close()


def test_a_party_refuses_a_client_that_cannot_prove_the_secret():
    def fake_client(conn: socket.socket) -> None:
        conn.sendall(rendezvous.MAGIC + os.urandom(32))
        size = struct.unpack(">I", conn.recv(4))[0]
        conn.recv(size)  # the party's proof: a MAC over fresh challenges, of no use to replay
        answer = b"\x01" + os.urandom(16 + 32)
        conn.sendall(struct.pack(">I", len(answer)) + answer)

    _join_a_fake(fake_client, 1, "could not prove that it knows the run's secret")


def test_a_party_refuses_a_program_that_is_not_a_picost_client():
    _join_a_fake(lambda conn: conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n" + b" " * 64), 2, "is not a picost client")


def test_slow_and_excess_connections_are_closed_and_logged(host, capsys, monkeypatch):
    monkeypatch.setattr(rendezvous, "HANDSHAKE_S", 2.0)
    monkeypatch.setattr(rendezvous, "MAX_PENDING", 2)
    silent = [socket.create_connection(("127.0.0.1", _port(host))) for _ in range(2)]
    time.sleep(0.5)
    extra = socket.create_connection(("127.0.0.1", _port(host)))
    extra.settimeout(5)
    assert extra.recv(100) == b""  # closed at once, unanswered
    for s in silent:
        s.settimeout(5)
        assert s.recv(100).startswith(rendezvous.MAGIC)
        start = time.monotonic()
        while s.recv(100):
            pass
        assert time.monotonic() - start < 4  # closed by the handshake's deadline
        s.close()
    extra.close()
    lines = _wait_refusals(capsys, 3)
    assert sum("already awaiting their handshake" in line for line in lines) == 1
    assert sum("did not complete the handshake within 2 s" in line for line in lines) == 2
    # the real parties still join
    server, _ = rendezvous.join("127.0.0.1", _port(host), 1, KEY, 5, 5)
    server.close()


def test_a_tampered_frame_after_the_handshake_ends_the_connection(host, capsys):
    server, _ = rendezvous.join("127.0.0.1", _port(host), 1, KEY, 5, 5)
    server.set("k", b"v")
    payload = bytes([1]) + rendezvous._pack(b"k", b"evil")
    server.channel.sock.sendall(struct.pack(">I", len(payload) + 32) + payload + os.urandom(32))
    server.channel.sock.settimeout(5)
    assert server.channel.sock.recv(100) == b""
    assert host.store(1).get("k") == b"v"
    assert any("failed its authentication" in line for line in _wait_refusals(capsys, 1))
    server.close()


def test_the_log_is_bounded(host, capsys, monkeypatch):
    monkeypatch.setattr(rendezvous, "MAX_LOGGED", 3)
    for _ in range(6):
        with socket.create_connection(("127.0.0.1", _port(host))) as s:
            s.recv(100)
            s.sendall(struct.pack(">I", 65) + os.urandom(65))
            s.settimeout(5)
            while s.recv(100):
                pass
    time.sleep(0.3)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("client:")]
    assert len(lines) == 4 and "further refusals are not logged" in lines[-1]
