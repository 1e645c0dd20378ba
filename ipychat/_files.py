"""Files ipychat writes for the user (saved threads, cassettes): UTF-8 whatever the locale, and
atomic, so a failed write never leaves the old file truncated or half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["read_text", "write_atomic"]


def write_atomic(path: Path, text: str) -> None:
    """Write `text` beside `path` under a private temporary name, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_text(path: Path) -> str:
    return Path(path).read_text(encoding="utf-8")
