"""The 791 hostile answers of ../shared/fixtures/xss/corpus.json (PortSwigger, OWASP, DOMPurify,
CommonMark/GFM, markdown-it, and ipychat's own; SOURCES.md there). Others' data: read from
../shared, never copied here."""

from __future__ import annotations

import json
import random
from pathlib import Path

CORPUS = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "xss" / "corpus.json"
)


def load() -> list[dict[str, str]]:
    if not CORPUS.is_file():
        return []
    return list(json.loads(CORPUS.read_text())["payloads"])


def sample(size: int, seed: int = 13) -> list[dict[str, str]]:
    """A fixed sample for the slow (browser) path: every source represented."""
    payloads = load()
    return random.Random(seed).sample(payloads, min(size, len(payloads)))
