"""Regenerate docs/protocols/<name>.md from protocols/<name>.yaml (the `picost protocols show P
--format md` view). With --check, write nothing and exit 1 if any page is stale or missing.

    .venv/bin/python scripts/gen_protocol_docs.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from picost.report.protocol_docs import expected_docs  # noqa: E402


def main(argv: list[str]) -> int:
    check = "--check" in argv
    docs_dir = REPO / "docs" / "protocols"
    expected = expected_docs()
    stale = [name for name, text in expected.items()
             if not (docs_dir / name).is_file() or (docs_dir / name).read_text(encoding="utf-8") != text]
    extra = sorted(p.name for p in docs_dir.glob("*.md") if p.name not in expected) if docs_dir.is_dir() else []
    if check:
        for name in stale:
            print(f"stale or missing: docs/protocols/{name}")
        for name in extra:
            print(f"no table behind: docs/protocols/{name}")
        return 1 if stale or extra else 0
    docs_dir.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (docs_dir / name).write_text(expected[name], encoding="utf-8")
        print(f"wrote docs/protocols/{name}")
    for name in extra:
        (docs_dir / name).unlink()
        print(f"removed docs/protocols/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
