"""Provider presets: a base URL, the variable its key is read from, and its body quirks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PRESETS", "Preset", "get_preset"]


@dataclass(frozen=True)
class Preset:
    name: str
    base_url: str
    key_env: str | None = None
    default_model: str | None = None
    # body field -> new name, or None to drop it (the provider rejects or ignores it)
    rename: dict[str, str | None] = field(default_factory=dict)
    # whether the provider accepts stream_options.include_usage
    stream_usage: bool = True
    # False: the model is text-only, so images are refused before anything is sent
    images: bool = True
    # True: an assistant message with tool calls goes back with its `reasoning_content`
    reasoning_echo: bool = False

    def adapt(self, body: dict[str, Any]) -> dict[str, Any]:
        """Rename or drop the fields this provider spells differently."""
        for old, new in self.rename.items():
            if old in body:
                value = body.pop(old)
                if new is not None and new not in body:
                    body[new] = value
        return body


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            "gpt-4o-mini",
            rename={"max_tokens": "max_completion_tokens"},
        ),
        Preset(
            "deepseek",
            "https://api.deepseek.com/v1",
            "DEEPSEEK_API_KEY",
            "deepseek-chat",
            reasoning_echo=True,
        ),
        Preset(
            "openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "openai/gpt-4o-mini"
        ),
        Preset("modelstream", "https://api.modelstream.ai/v1", "MODELSTREAM_API_KEY"),
        Preset("modelstack", "https://api.modelstack.cc/v1", "MODELSTACK_API_KEY"),
        Preset("aimlapi", "https://api.aimlapi.com/v1", "AIMLAPI_API_KEY", "gpt-4o-mini"),
        Preset("ollama", "http://localhost:11434/v1", "OLLAMA_API_KEY"),
        Preset("vllm", "http://localhost:8000/v1", "VLLM_API_KEY"),
        Preset(
            "llamacpp",
            "http://localhost:8080/v1",
            "LLAMACPP_API_KEY",
            rename={"reasoning_effort": None},
        ),
        # The embedded llama-cpp-python server (ipychat.local); its base URL is found at run time.
        Preset(
            "local",
            "",
            None,
            "qwen2.5-coder-0.5b",
            rename={"reasoning_effort": None},
            stream_usage=False,
            images=False,
        ),
    ]
}


def get_preset(name: str) -> Preset:
    from ._errors import ConfigError

    try:
        return PRESETS[name.lower()]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError(f"unknown provider {name!r}; use one of: {known}") from None
