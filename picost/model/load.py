"""Load a model spec by shipped name or path: a YAML spec (with ``extends:`` overlays) or a
HuggingFace ``config.json`` (:mod:`picost.model.hf_config`).

A spec may say ``extends: gpt2.yaml`` (a path relative to itself, or a shipped spec name) and
override a few fields; mappings merge key by key, lists and scalars replace.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from picost.errors import UserError
from picost.model import limits
from picost.model.hf_config import load_hf_config
from picost.model.located_yaml import KeyPath, load_located
from picost.model.spec import ModelSpec, Origins, validate_spec
from picost.shipped import shipped_dir, shipped_names


def shipped_specs_dir() -> Path:
    """The directory of shipped model specs (inside an installed wheel, or the source tree)."""
    return shipped_dir("model_specs")


def shipped_spec_names() -> list[str]:
    """Names of the shipped model specs (file stems), sorted."""
    return shipped_names("model_specs")


def resolve_spec_path(ref: str | Path, relative_to: Path | None = None) -> Path:
    """A spec reference -> a path: an existing path, else a shipped spec name (``gpt2``)."""
    candidate = Path(ref)
    try:
        if relative_to is not None and not candidate.is_absolute():
            rel = relative_to / candidate
            if rel.is_file():
                return rel
        if candidate.is_file():
            return candidate
        if candidate.exists() and len(candidate.parts) > 1:
            raise UserError(f"'{candidate}' is not a regular file (a directory, FIFO or device cannot be a spec)")
    except OSError as exc:  # a name longer than the file system allows, a path through a non-directory
        raise UserError(f"cannot use '{limits.short(str(ref))[1:-1]}' as a spec file: {exc.strerror}") from None
    name = candidate.name[: -len(".yaml")] if candidate.name.endswith(".yaml") else candidate.name
    shipped = shipped_specs_dir() / f"{name}.yaml"
    if shipped.is_file() and len(candidate.parts) == 1:
        return shipped
    names = shipped_spec_names()
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; shipped specs: {', '.join(names)}"
    raise UserError(f"no such spec file or shipped spec '{ref}'{hint}")


_LOADED: dict[Path, tuple[tuple[tuple[Path, bytes | None], ...], ModelSpec]] = {}
"""Specs already loaded, per resolved path: a digest of every file read for it (the ``extends:``
chain) and the spec. Specs are frozen, so callers can share one."""
MAX_LOADED = 256


def load_spec(ref: str | Path) -> ModelSpec:
    """Load a spec by path or shipped name; a ``.json`` file is read as a HuggingFace config.
    A spec whose files hold the same bytes as when it was last loaded (every file of its
    ``extends:`` chain) is the one loaded then: only parsing and validation are saved."""
    path = resolve_spec_path(ref)
    key = path.resolve()
    cached = _LOADED.get(key)
    if cached is not None and all(_stamp(f) == (f, digest) for f, digest in cached[0]):
        return cached[1]
    files: list[Path] = []
    if path.suffix == ".json":
        files.append(key)
        spec = load_hf_config(path)
    else:
        data, origins = _load_with_overlays(path, chain=(), files=files)
        data.setdefault("name", path.stem)
        spec = validate_spec(data, origins, default_file=str(path))
    if len(_LOADED) >= MAX_LOADED:
        _LOADED.clear()
    _LOADED[key] = (tuple(_stamp(f) for f in files), spec)
    return spec


def _stamp(path: Path) -> tuple[Path, bytes | None]:
    """``(path, digest of its bytes)``; None for a file that is gone, not a regular file (a FIFO
    must never be read) or over :data:`~picost.model.limits.MAX_FILE_BYTES`: never equal to a
    loaded file's stamp, so the spec is loaded again and the loader says what is wrong."""
    import hashlib
    import stat

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > limits.MAX_FILE_BYTES:
            return path, None
        return path, hashlib.blake2b(path.read_bytes(), digest_size=16).digest()
    except OSError:
        return path, None


def _load_with_overlays(path: Path, chain: tuple[Path, ...],
                        files: list[Path] | None = None) -> tuple[dict[str, Any], Origins]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in chain + (resolved,))
        raise UserError(f"'extends' forms a cycle: {cycle}", file=str(path), field="extends")
    if len(chain) >= limits.MAX_EXTENDS_DEPTH:
        raise UserError(f"'extends' chain longer than {limits.MAX_EXTENDS_DEPTH} files (see docs/limits.md)",
                        file=str(path), field="extends")
    if files is not None:
        files.append(resolved)
    raw, lines = load_located(path)
    file = str(path)
    if raw is None:
        raise UserError("the spec is empty", file=file, line=1)
    if not isinstance(raw, dict):
        raise UserError("a spec must be a mapping of field: value", file=file, line=1)
    origins: Origins = {_dotted(k): (file, v) for k, v in lines.items()}
    base_ref = raw.pop("extends", None)
    if base_ref is None:
        return raw, origins
    if not isinstance(base_ref, str):
        raise UserError("'extends' must be a file name or a shipped spec name", file=file,
                        line=lines.get(("extends",)), field="extends")
    try:
        base_path = resolve_spec_path(base_ref, relative_to=path.parent)
    except UserError as exc:
        raise UserError(exc.message, file=file, line=lines.get(("extends",)), field="extends") from None
    base, base_origins = _load_with_overlays(base_path, chain + (resolved,), files)
    base.pop("name", None)  # a variant is never named after its base
    base_origins = {k: v for k, v in base_origins.items() if k != "name"}
    return _merge(base, raw), {**base_origins, **origins}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)
