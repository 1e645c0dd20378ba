from __future__ import annotations

import pickle

import pytest

from ipychat import ConfigError
from ipychat._providers import PRESETS
from ipychat._settings import Secret, resolve


def test_flag_beats_command_beats_config_beats_env() -> None:
    env = {"IPYCHAT_MODEL": "env"}
    assert resolve([{"model": "flag"}, {"model": "cmd"}, {"model": "cfg"}], env).model == "flag"
    assert resolve([{}, {"model": "cmd"}, {"model": "cfg"}], env).model == "cmd"
    assert resolve([{}, {}, {"model": "cfg"}], env).model == "cfg"
    assert resolve([{}, {}, {}], env).model == "env"


def test_env_beats_preset_beats_openai_fallback() -> None:
    env = {"IPYCHAT_PROVIDER": "deepseek", "OPENAI_BASE_URL": "http://x/v1"}
    assert resolve([], env).base_url == "https://api.deepseek.com/v1"
    env["IPYCHAT_BASE_URL"] = "http://proxy/v1"
    assert resolve([], env).base_url == "http://proxy/v1"
    assert resolve([], {"OPENAI_BASE_URL": "http://x/v1/"}).base_url == "http://x/v1"


def test_provider_chosen_in_kernel_switches_base_url_over_env() -> None:
    env = {"IPYCHAT_BASE_URL": "http://elsewhere/v1"}
    settings = resolve([{"provider": "openrouter"}], env)
    assert settings.base_url == "https://openrouter.ai/api/v1"


def test_preset_reads_its_own_key_variable() -> None:
    settings = resolve([], {"IPYCHAT_PROVIDER": "deepseek", "DEEPSEEK_API_KEY": "sk-ds"})
    assert settings.api_key.get() == "sk-ds"


def test_key_of_one_provider_is_not_sent_to_another() -> None:
    env = {"IPYCHAT_API_KEY": "sk-for-openai", "OPENAI_API_KEY": "sk-openai"}
    settings = resolve([{"provider": "deepseek"}], env)
    assert settings.api_key is None


def test_openai_fallbacks() -> None:
    settings = resolve([], {"OPENAI_API_KEY": "sk-o"})
    assert settings.base_url == "https://api.openai.com/v1"
    assert settings.api_key.get() == "sk-o"


def test_loopback_needs_no_key() -> None:
    resolve([{"base_url": "http://127.0.0.1:9/v1", "model": "m"}], {}).require()
    resolve([{"base_url": "http://localhost:9/v1", "model": "m"}], {}).require()


def test_remote_without_key_fails_before_sending_and_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="DEEPSEEK_API_KEY"):
        resolve([{"provider": "deepseek"}], {}).require()


def test_missing_model_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="-m NAME"):
        resolve([{"base_url": "http://127.0.0.1:1/v1"}], {}).require()


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="deepseek"):
        resolve([{"provider": "nope"}], {})


def test_every_spec_preset_exists_with_base_url_and_key_variable() -> None:
    for name in [
        "openai",
        "deepseek",
        "openrouter",
        "modelstream",
        "modelstack",
        "aimlapi",
        "ollama",
        "vllm",
        "llamacpp",
    ]:
        assert PRESETS[name].base_url.startswith("http")
        assert PRESETS[name].key_env.endswith("_API_KEY")


def test_openai_preset_renames_max_tokens() -> None:
    body = PRESETS["openai"].adapt({"max_tokens": 5})
    assert body == {"max_completion_tokens": 5}


def test_secret_never_shows_its_value() -> None:
    secret = Secret("sk-very-secret-value")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}"):
        assert "very-secret" not in text
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_describe_masks_the_key() -> None:
    settings = resolve([], {"OPENAI_API_KEY": "sk-abcdef123456"})
    assert "abcdef" not in str(settings.describe())
    assert "abcdef" not in repr(settings)
