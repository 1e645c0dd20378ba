"""Images from wherever a notebook keeps them, turned into `image_url` parts.

Everything is checked before a request is sent: a bad source is a `ConfigError` naming it.
Pillow, pandas, polars and matplotlib are optional: they are only touched when the value is
one of theirs.
"""

from __future__ import annotations

import base64
import binascii
import glob
import html
import io
import os
from collections.abc import Iterable
from typing import Any

from ._errors import ConfigError

__all__ = ["MAX_BYTES", "MAX_IMAGES", "collect", "sniff"]

MAX_BYTES = 20 * 1024 * 1024
MAX_IMAGES = 10
SUPPORTED = {"image/png", "image/jpeg", "image/gif", "image/webp"}
SUPPORTED_TEXT = "PNG, JPEG, GIF, WEBP"


def sniff(data: bytes) -> str | None:
    """The MIME type from the file's first bytes (a suffix can lie)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _data_url(data: bytes, label: str) -> str:
    if len(data) > MAX_BYTES:
        raise ConfigError(f"image {label} is {len(data) / 2**20:.1f} MB; the limit is 20 MB")
    mime = sniff(data)
    if mime is None:
        raise ConfigError(f"image {label} is not a supported type (use {SUPPORTED_TEXT})")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _check_data_url(url: str) -> str:
    head, sep, payload = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise ConfigError("a data: URL must be base64, like data:image/png;base64,…")
    mime = head[5:-7]
    if mime not in SUPPORTED:
        raise ConfigError(
            f"data: URL of type {mime or '?'} is not supported (use {SUPPORTED_TEXT})"
        )
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("the data: URL holds invalid base64") from None
    _data_url(raw, "in the data: URL")
    return url


def _from_string(text: str) -> list[tuple[str, str]]:
    """(url, label) pairs for a URL, a data: URL, or a path/glob."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        return [(text, text)]
    if text.startswith("data:"):
        return [(_check_data_url(text), "data URL")]
    path = os.path.expanduser(text)
    matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
    if not matches:
        raise ConfigError(f"no file matches {text!r}")
    out = []
    for match in matches:
        try:
            with open(match, "rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except FileNotFoundError:
            raise ConfigError(f"image file not found: {match}") from None
        except OSError as error:
            raise ConfigError(f"cannot read image {match}: {error.strerror}") from None
        out.append((_data_url(data, match), match))
    return out


def _from_value(value: Any, label: str) -> list[tuple[str, str]]:
    module = type(value).__module__.split(".")[0]
    if isinstance(value, str):
        return _from_string(value)
    if isinstance(value, (bytes, bytearray)):
        return [(_data_url(bytes(value), label), label)]
    if module == "PIL":
        buffer = io.BytesIO()
        _png_ready(value).save(buffer, format="PNG")
        return [(_data_url(buffer.getvalue(), label), f"{label} (PIL image)")]
    if module == "matplotlib" and hasattr(value, "savefig"):
        buffer = io.BytesIO()
        value.savefig(buffer, format="png", bbox_inches="tight")
        return [(_data_url(buffer.getvalue(), label), f"{label} (figure)")]
    if module in ("pandas", "polars") and hasattr(value, "to_list"):
        items = value.to_list()
        if not items:
            raise ConfigError(f"{label} is empty: no images to send")
        return [pair for item in items for pair in _from_value(item, label)]
    if module in ("pandas", "polars"):
        raise ConfigError(f"{label} is a table; pick a column, e.g. -i 'df[\"url\"]'")
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError(f"{label} is empty: no images to send")
        return [pair for item in value for pair in _from_value(item, label)]
    raise ConfigError(
        f"{label} is a {type(value).__name__}; use a URL, a path, a PIL image or a figure"
    )


def _resolve(source: str, namespace: dict[str, Any]) -> list[tuple[str, str]]:
    if source in ("gcf", "plt.gcf()"):
        import matplotlib.pyplot as plt

        return _from_value(plt.gcf(), "current figure")
    looks_literal = source.startswith(("http://", "https://", "data:", "/", "./", "~"))
    if not looks_literal:
        try:
            code = compile(source, "<image>", "eval")
        except SyntaxError:
            code = None
        if code is not None:
            try:
                value = eval(code, namespace)
            except NameError:
                if os.path.exists(source) or glob.has_magic(source):
                    return _from_string(source)
                raise ConfigError(
                    f"-i {source}: not a file, and not a name in the notebook"
                ) from None
            except Exception as error:
                raise ConfigError(f"-i {source} did not evaluate: {error}") from None
            return _from_value(value, source)
    return _from_string(source)


def collect(
    sources: Iterable[Any],
    namespace: dict[str, Any] | None = None,
    *,
    detail: str | None = None,
    limit: int = MAX_IMAGES,
    max_side: int = 0,
) -> list[dict[str, Any]]:
    """The `image_url` parts for `sources` (strings are resolved against `namespace`).

    Files are sent byte for byte; `max_side` > 0 downscales local images whose longer side is
    larger (needs Pillow). Each part keeps where it came from under `_source`, which is shown in
    `%chat history` and stripped before sending."""
    pairs: list[tuple[str, str]] = []
    for source in sources:
        if isinstance(source, str):
            pairs.extend(_resolve(source, namespace or {}))
        else:
            pairs.extend(_from_value(source, type(source).__name__))
    seen: set[str] = set()
    unique = [(u, lbl) for u, lbl in pairs if not (u in seen or seen.add(u))]
    if len(unique) > limit:
        raise ConfigError(f"{len(unique)} images; the limit is {limit} (ChatMagics.max_images)")
    parts = []
    for url, label in unique:
        if max_side and url.startswith("data:"):
            url = _downscale(url, max_side)
        image: dict[str, Any] = {"url": url}
        if detail:
            image["detail"] = detail
        parts.append({"type": "image_url", "image_url": image, "_source": label})
    return parts


_PNG_MODES = {"1", "L", "LA", "I", "P", "RGB", "RGBA"}


def _png_ready(image: Any) -> Any:
    """PNG takes only some modes: CMYK, YCbCr, HSV, LAB, F, I;16 … are converted first."""
    if image.mode in _PNG_MODES:
        return image
    has_alpha = "A" in image.mode or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _downscale(url: str, max_side: int) -> str:
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("downscaling images needs Pillow: pip install pillow") from None
    head, _, payload = url.partition(",")
    with Image.open(io.BytesIO(base64.b64decode(payload))) as image:
        if max(image.size) <= max_side:
            return url
        image.thumbnail((max_side, max_side))
        buffer = io.BytesIO()
        fmt = "JPEG" if "jpeg" in head else "PNG"
        ready = image.convert("RGB") if fmt == "JPEG" and image.mode != "RGB" else image
        (_png_ready(ready) if fmt == "PNG" else ready).save(buffer, format=fmt)
    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def thumbnails_html(parts: list[dict[str, Any]], size: int = 64) -> str:
    """What was sent, above the answer: small thumbnails (Pillow) or the list of sources."""
    items = []
    for part in parts:
        url = part["image_url"]["url"]
        label = html.escape(str(part.get("_source") or "image"))
        thumb = _thumbnail(url, size) if url.startswith("data:") else None
        if thumb:
            items.append(
                f'<img src="{thumb}" title="{label}" alt="{label}" '
                f'style="height: {size}px; margin-right: 4px; border-radius: 3px">'
            )
        else:
            items.append(f'<span style="margin-right: 8px">🖼 {label}</span>')
    return f'<div class="ipychat-images" style="margin-bottom: 6px">{"".join(items)}</div>'


def _thumbnail(url: str, size: int) -> str | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))) as image:
            image.thumbnail((size * 2, size * 2))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=70)
    except Exception:
        return None
    return f"data:image/jpeg;base64,{base64.b64encode(buffer.getvalue()).decode()}"
