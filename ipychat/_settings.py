"""Where the base URL, key and model come from (SPEC §2), and the key as a secret type.

Resolution order, first found wins: magic flag → `%chat` command in this kernel →
`%config ChatMagics.*` → `IPYCHAT_*` variables → provider preset → `OPENAI_*`.
Callers pass the first three as `layers`, highest first.

Choosing a provider in a layer also chooses its base URL at that layer: `%chat provider deepseek`
must switch to DeepSeek even when `IPYCHAT_BASE_URL` points elsewhere.

A key in a variable is bound to a host, and goes nowhere else: a preset's variable (e.g.
`DEEPSEEK_API_KEY`) to that preset's host, or wherever the user pointed that provider;
`OPENAI_API_KEY` to api.openai.com, to the host `OPENAI_BASE_URL` names (the usual proxy or
Azure pairing), or with `provider openai`; `IPYCHAT_API_KEY` to `IPYCHAT_BASE_URL` or
`IPYCHAT_PROVIDER`. Without a provider, the preset is inferred from the base URL's host, so
`Chat(base_url="https://api.deepseek.com/v1")` takes `DEEPSEEK_API_KEY` and never the OpenAI
key. Changing the base URL therefore drops the keys of the old host.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._errors import ConfigError, register_secret
from ._providers import PRESETS, Preset, get_preset

__all__ = ["Secret", "Settings", "is_loopback", "resolve"]

FIELDS = ("base_url", "api_key", "model", "provider")
ENV = {
    "base_url": "IPYCHAT_BASE_URL",
    "api_key": "IPYCHAT_API_KEY",
    "model": "IPYCHAT_MODEL",
    "provider": "IPYCHAT_PROVIDER",
}
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class Secret:
    """A key that will not print itself: repr, str and format show only that it is set."""

    __slots__ = ("_value", "host")

    def __init__(self, value: str, host: str | None = None) -> None:
        self.host = host  # the host it was typed for (`%chat key`); None: wherever it is used
        value = value.strip()
        if not value:
            raise ConfigError("the API key is empty")
        bad = next((c for c in value if not 33 <= ord(c) < 127), None)
        if bad is not None:
            # Said without the key: h11 would echo the whole header into the error.
            if bad.isspace():
                what = "a space or line break"
            elif ord(bad) < 32 or ord(bad) == 127:
                what = "a control character"
            else:
                what = f"a non-ASCII character (U+{ord(bad):04X})"
            raise ConfigError(
                f"the API key contains {what}, which cannot be sent in a header; paste it "
                "again (copied keys often bring an invisible character along)"
            )
        self._value = value
        register_secret(value)

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"<secret, {len(self._value)} chars>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("an API key is not saved or pickled")


def as_secret(value: str | Secret | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value) if value.strip() else None


def check_base_url(url: str) -> None:
    """A base URL that cannot be requested is a ConfigError now, not a network error retried
    three times (or a raw ExceptionGroup from deep in the transport) later."""
    example = "e.g. https://api.openai.com/v1"
    shown = url
    try:
        parts = urlsplit(url)
        if "@" in parts.netloc:  # a user or password is never repeated back
            shown = url.replace(parts.netloc, "***@" + parts.netloc.rpartition("@")[2], 1)
        port = parts.port  # raises for a port that is not a number in range
        host = parts.hostname
    except ValueError as error:
        raise ConfigError(f"the base URL {shown!r} is not valid ({error}); {example}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"the base URL {shown!r} needs http:// or https://; {example}")
    if not host:
        raise ConfigError(f"the base URL {shown!r} has no host; {example}")
    if port == 0:
        raise ConfigError(f"the base URL {shown!r} has port 0; {example}")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ConfigError(f"the base URL {shown!r} contains spaces or control characters")
    import httpx

    try:
        httpx.URL(url).copy_with()  # the transport's own reading: IDNA labels, IPv4 ranges
    except (httpx.InvalidURL, UnicodeError, ValueError) as error:
        raise ConfigError(f"the base URL {shown!r} is not valid ({error}); {example}") from None


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True)
class Settings:
    base_url: str
    api_key: Secret | None
    model: str | None
    preset: Preset | None
    sources: Mapping[str, str]  # field -> where it came from, for `%chat` to show

    def require(self, *, key: bool = True) -> None:
        """Fail before sending anything when the request could not succeed."""
        if not self.base_url and not (self.preset and self.preset.name == "local"):
            raise ConfigError("no base URL: set IPYCHAT_BASE_URL or choose %chat provider NAME")
        if self.base_url:
            check_base_url(self.base_url)
        if not self.model:
            raise ConfigError(
                "no model set: use -m NAME, %chat model NAME, or the IPYCHAT_MODEL variable"
            )
        if key and self.api_key is None and self.base_url and not is_loopback(self.base_url):
            where = (self.preset.key_env if self.preset else None) or "IPYCHAT_API_KEY"
            raise ConfigError(f"no API key for {self.base_url}: run %chat key, or set {where}")

    def describe(self) -> dict[str, str]:
        """What `%chat` shows: the key masked, never any of its characters."""
        key = "set" if self.api_key else "not set"
        if self.api_key and self.sources.get("api_key"):
            key += f" (from {self.sources['api_key']})"
        return {
            "provider": self.preset.name if self.preset else "(none)",
            "base_url": self.base_url or "(started on first use)",
            "model": self.model or "(not set)",
            "api_key": key,
        }


def resolve(
    layers: Sequence[Mapping[str, Any]] = (), env: Mapping[str, str] | None = None
) -> Settings:
    env = os.environ if env is None else env
    env_layer = {name: env.get(var) for name, var in ENV.items()}
    named = [*(("layer", dict(layer)) for layer in layers), ("env", env_layer)]
    found: dict[str, tuple[int, Any]] = {}
    for index, (_, layer) in enumerate(named):
        for name in FIELDS:
            value = layer.get(name)
            if name not in found and value not in (None, ""):
                found[name] = (index, value)
    env_index = len(named) - 1
    sources = {name: _source(i, env_index, name) for name, (i, _) in found.items()}

    chosen = get_preset(found["provider"][1]) if "provider" in found else None
    provider_at = found["provider"][0] if "provider" in found else len(named)

    base_at = len(named)  # where the base URL came from: a layer, or below them all
    if "base_url" in found and found["base_url"][0] <= provider_at:
        base_url, base_at = str(found["base_url"][1]), found["base_url"][0]
    elif chosen is not None:
        base_url, base_at = chosen.base_url, provider_at
        sources["base_url"] = f"provider {chosen.name}"
    elif env.get("OPENAI_BASE_URL"):
        base_url, sources["base_url"] = env["OPENAI_BASE_URL"], "OPENAI_BASE_URL"
    else:
        base_url, sources["base_url"] = DEFAULT_BASE_URL, "default"
    base_url = base_url.rstrip("/")
    preset = chosen or preset_for_host(host_of(base_url))

    key, key_source = _key(found, env, chosen, preset, base_url, base_at, env_index)
    if key_source:
        sources["api_key"] = key_source
    model = found["model"][1] if "model" in found else (preset.default_model if preset else None)
    return Settings(base_url, as_secret(key), model, preset, sources)


def _source(index: int, env_index: int, name: str) -> str:
    return ENV[name] if index == env_index else "settings"


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def preset_for_host(host: str) -> Preset | None:
    """The preset whose service lives at `host` (loopback ones need no key: not inferred)."""
    if not host:
        return None
    for preset in PRESETS.values():
        if (
            preset.base_url
            and host_of(preset.base_url) == host
            and not is_loopback(preset.base_url)
        ):
            return preset
    return None


def _key(
    found: dict[str, tuple[int, Any]],
    env: Mapping[str, str],
    chosen: Preset | None,
    preset: Preset | None,
    base_url: str,
    base_at: int,
    env_index: int,
) -> tuple[str | Secret | None, str | None]:
    host = host_of(base_url)
    if "api_key" in found and found["api_key"][0] < env_index:
        value = found["api_key"][1]
        bound = getattr(value, "host", None)
        if bound is None or bound == host:
            return value, "settings"  # given in this session, for these settings
        # else: typed for another service; what the variables hold may still apply
    if env.get("IPYCHAT_API_KEY"):
        # IPYCHAT_API_KEY belongs to IPYCHAT_BASE_URL / IPYCHAT_PROVIDER: not to a base URL or
        # a provider chosen above them, unless that is the same host.
        ours = {host_of(env.get("IPYCHAT_BASE_URL") or "")}
        if env.get("IPYCHAT_PROVIDER"):
            with contextlib.suppress(ConfigError):
                ours.add(host_of(get_preset(env["IPYCHAT_PROVIDER"]).base_url))
        if base_at >= env_index or host in ours - {""}:
            return env["IPYCHAT_API_KEY"], "IPYCHAT_API_KEY"
    # A preset's variable goes to the preset's own host; a self-hosted preset's (vLLM, Ollama,
    # llama.cpp: loopback by default) to wherever that server is.
    if (
        preset is not None
        and preset.key_env
        and env.get(preset.key_env)
        and (
            host_of(preset.base_url) == host
            or (is_loopback(preset.base_url) and preset_for_host(host) in (None, preset))
        )
    ):
        return env[preset.key_env], preset.key_env
    if env.get("OPENAI_API_KEY"):
        openai_hosts = {"api.openai.com", host_of(env.get("OPENAI_BASE_URL") or "")} - {""}
        if (chosen is not None and chosen.name == "openai") or (
            chosen is None and host in openai_hosts
        ):
            return env["OPENAI_API_KEY"], "OPENAI_API_KEY"
    return None, None
