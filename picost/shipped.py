"""Where shipped data lives: ``model_specs/`` and ``protocols/`` at the top of the source tree,
or packed under ``picost/_data/`` in an installed wheel."""

from __future__ import annotations

from pathlib import Path


def shipped_dir(name: str) -> Path:
    """The directory of shipped ``name`` files (``model_specs`` or ``protocols``)."""
    here = Path(__file__).resolve().parent
    packaged = here / "_data" / name
    return packaged if packaged.is_dir() else here.parent / name


def shipped_names(name: str) -> list[str]:
    """Stems of the shipped YAML files in ``shipped_dir(name)``, sorted."""
    return sorted(p.stem for p in shipped_dir(name).glob("*.yaml"))
