"""Record and replay: a readable JSON file of requests and their responses (SPEC §8).

Each entry is keyed by a hash of the request body (model, messages, params). The body never
holds the key: it travels in a header, which is not recorded. Replay answers from the file with
no network and no key, streaming the recorded chunks, so `jupyter nbconvert --execute` gives the
same notebook offline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ._client import STREAM_DONE
from ._errors import APIStatusError, CassetteError, redact, status_error
from ._files import read_text, write_atomic

__all__ = ["MODES", "Cassette", "active_cassette", "request_key"]

MODES = ("record", "replay", "auto")
FORMAT = "ipychat.cassette/1"


def request_key(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


class Cassette:
    def __init__(self, path: str | Path, mode: str = "auto") -> None:
        if mode not in MODES:
            raise CassetteError(f"cassette mode {mode!r}: use one of {', '.join(MODES)}")
        self.path = Path(path)
        self.mode = mode
        self._lock = threading.Lock()
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(read_text(self.path))
            except (OSError, ValueError) as exc:
                raise CassetteError(f"{self.path} is not an ipychat cassette: {exc}") from None
            from ._validate import check_cassette

            check_cassette(data, self.path)
            self.entries = dict(data.get("entries") or {})
        elif mode == "replay":
            raise CassetteError(f"no cassette at {self.path} to replay; record it first")

    @property
    def replaying(self) -> bool:
        return self.mode == "replay"

    def __repr__(self) -> str:
        return f"<Cassette {str(self.path)!r} {self.mode}, {len(self.entries)} entries>"

    async def play(self, body: dict[str, Any], live: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """Answer `body` from the file, or from `live` while recording it."""
        key = request_key(body)
        entry = self.entries.get(key)
        if entry is not None and self.mode in ("replay", "auto"):
            await live.aclose()  # type: ignore[attr-defined]
            if "error" in entry:
                err = entry["error"]
                raise status_error(int(err["status"]), err.get("body"))
            for chunk in entry["chunks"]:
                yield [chunk]
                await asyncio.sleep(0)  # let the view breathe, as a real stream would
            if entry.get("done"):
                yield STREAM_DONE
            return
        if self.mode == "replay":
            await live.aclose()  # type: ignore[attr-defined]
            raise CassetteError(self._missing(body))
        chunks: list[Any] = []
        done = False
        try:
            async for batch in live:
                if isinstance(batch, list):
                    chunks.extend(batch)
                done = done or batch is STREAM_DONE
                yield batch
        except APIStatusError as error:
            # A refusal of the request itself replays; a bad key, a rate limit or an outage
            # is about that moment, and replaying it forever would hide the fix.
            if error.status_code in (400, 404, 409, 413, 422):
                scrubbed = json.loads(redact(json.dumps(error.body, default=str)))
                self._save(key, body, {"error": {"status": error.status_code, "body": scrubbed}})
            raise
        self._save(key, body, {"chunks": chunks, **({"done": True} if done else {})})

    def _save(self, key: str, body: dict[str, Any], response: dict[str, Any]) -> None:
        with self._lock:
            self.entries[key] = {"request": body, **response}
            data = {"format": FORMAT, "entries": self.entries}
            text = json.dumps(data, indent=1, ensure_ascii=False)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                # A surrogate pair split across two chunks: escaped, it round-trips exactly.
                text = json.dumps(data, indent=1)
            write_atomic(self.path, text + "\n")

    def _missing(self, body: dict[str, Any]) -> str:
        head = f"{self.path} has no recorded answer for this request"
        if not self.entries:
            return head + " (the cassette is empty)"
        best = max(self.entries.values(), key=lambda e: _similarity(e["request"], body))
        return f"{head}; closest recorded request differs in {_difference(best['request'], body)}"


def _similarity(a: dict[str, Any], b: dict[str, Any]) -> int:
    score = sum(1 for k in set(a) | set(b) if a.get(k) == b.get(k))
    ma, mb = a.get("messages") or [], b.get("messages") or []
    return score * 100 + sum(1 for x, y in zip(ma, mb, strict=False) if x == y)


def _difference(recorded: dict[str, Any], asked: dict[str, Any]) -> str:
    diffs = []
    for key in sorted(set(recorded) | set(asked)):
        if key == "messages" or recorded.get(key) == asked.get(key):
            continue
        diffs.append(f"{key} ({recorded.get(key)!r} recorded, {asked.get(key)!r} now)")
    old, new = recorded.get("messages") or [], asked.get("messages") or []
    for index in range(max(len(old), len(new))):
        a = old[index] if index < len(old) else None
        b = new[index] if index < len(new) else None
        if a != b:
            text = (b or {}).get("content") if b else None
            shown = text[:60] if isinstance(text, str) else "(none)"
            diffs.append(f"message {index + 1} (now: {shown!r})")
            break
    return "; ".join(diffs) or "nothing visible (re-record it)"


_active: Cassette | None = None


def set_active(cassette: Cassette | None) -> None:
    global _active
    _active = cassette


def active_cassette() -> Cassette | None:
    """The kernel's cassette: `%chat record|replay`, else IPYCHAT_CASSETTE(_MODE)."""
    if _active is not None:
        return _active
    path = os.environ.get("IPYCHAT_CASSETTE")
    if not path:
        return None
    mode = os.environ.get("IPYCHAT_CASSETTE_MODE", "auto")
    return _env_cassette(path, mode)


_env_cache: dict[tuple[str, str], Cassette] = {}


def _env_cassette(path: str, mode: str) -> Cassette:
    key = (path, mode)
    if key not in _env_cache:
        _env_cache[key] = Cassette(path, mode)
    return _env_cache[key]
