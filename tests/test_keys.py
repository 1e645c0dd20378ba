"""A key goes to its own provider's host and nowhere else, and never shows, not even in part."""

from __future__ import annotations

import json
import logging

import pytest

import ipychat
from ipychat._errors import ChatError, redact, register_secret, status_error
from ipychat._settings import Secret, resolve

OPENAI = "sk-openai-0123456789abcdefghijklmnopqrstuvwxyz"
DEEPSEEK = "sk-deepseek-abcdefghijklmnopqrstuvwxyz0123456789"


def key_for(layers, env) -> str | None:
    settings = resolve(layers, env)
    return settings.api_key.get() if settings.api_key else None


def test_a_deepseek_base_url_takes_the_deepseek_key_not_the_openai_one() -> None:
    env = {"OPENAI_API_KEY": OPENAI, "DEEPSEEK_API_KEY": DEEPSEEK}
    assert key_for([{"base_url": "https://api.deepseek.com/v1"}], env) == DEEPSEEK
    assert resolve([{"base_url": "https://api.deepseek.com/v1"}], env).preset.name == "deepseek"


def test_the_openai_key_goes_to_no_other_host() -> None:
    env = {"OPENAI_API_KEY": OPENAI}
    assert key_for([{"base_url": "https://api.deepseek.com/v1"}], env) is None
    assert key_for([{"base_url": "https://evil.example/v1"}], env) is None
    assert key_for([], env) == OPENAI  # the default base URL is OpenAI's
    assert key_for([{"base_url": "https://api.openai.com/v1"}], env) == OPENAI


def test_the_openai_key_goes_to_the_host_openai_base_url_names() -> None:
    env = {"OPENAI_API_KEY": OPENAI, "OPENAI_BASE_URL": "https://proxy.example/v1"}
    assert key_for([], env) == OPENAI
    assert key_for([{"base_url": "https://proxy.example/openai/v1"}], env) == OPENAI
    assert key_for([{"base_url": "https://other.example/v1"}], env) is None


def test_provider_openai_sends_its_key_where_the_user_points_it() -> None:
    env = {"OPENAI_API_KEY": OPENAI}
    layers = [{"base_url": "https://my-azure.example/v1", "provider": "openai"}]
    assert key_for(layers, env) == OPENAI


def test_ipychat_api_key_belongs_to_ipychat_base_url() -> None:
    env = {"IPYCHAT_API_KEY": OPENAI, "IPYCHAT_BASE_URL": "https://proxy.example/v1"}
    assert key_for([], env) == OPENAI
    assert key_for([{"base_url": "https://elsewhere.example/v1"}], env) is None
    assert key_for([{"base_url": "https://proxy.example/v2"}], env) == OPENAI


def test_changing_the_base_url_drops_the_old_hosts_env_key(fake) -> None:
    chat = ipychat.Chat(model="m")
    env = {"DEEPSEEK_API_KEY": DEEPSEEK}
    assert resolve([{"base_url": "https://api.deepseek.com/v1"}], env).api_key is not None
    assert resolve([{"base_url": fake.url}], env).api_key is None
    assert chat is not None


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("sk-abc def", "a space"),
        ("sk-abc\u200bdef", "U+200B"),
        ("sk-abc\x07def", "a control character"),
        ("sk-abcédef", "U+00E9"),
    ],
)
def test_a_key_that_cannot_be_a_header_is_refused_without_being_shown(key, what) -> None:
    with pytest.raises(ipychat.ConfigError) as info:
        Secret(key)
    message = str(info.value)
    assert what in message and "abc" not in message and "def" not in message


def test_a_key_with_a_zero_width_space_fails_before_any_request(fake) -> None:
    with pytest.raises(ipychat.ConfigError, match="U\\+200B"):
        ipychat.Chat(base_url=fake.url, model="m", api_key="sk-x\u200by").ask("hi")
    assert fake.requests == []


def test_a_key_cut_by_truncation_leaves_no_fragment() -> None:
    secret = "sk-proj-" + "A1b2C3d4" * 20  # 168 characters
    register_secret(secret)
    echoed = json.dumps({"error": {"message": f"Incorrect API key provided: {secret}"}})
    for cut in (80, 120, 300):
        error = status_error(401, echoed[:cut])
        text = str(error)
        assert not any(secret[i : i + 12] in text for i in range(len(secret) - 11)), text
    assert redact(f"x {secret[:40]} y") == "x *** y"


def test_every_chat_error_is_redacted_even_in_part() -> None:
    secret = "sk-live-9z8y7x6w5v4u3t2s1r0q"
    register_secret(secret)
    assert secret[3:20] not in str(ChatError(f"proxy said {secret[3:20]}!"))


def test_httpx_debug_logs_are_scrubbed_of_keys(fake, caplog) -> None:
    secret = "sk-logged-0123456789abcdefghij"
    chat = ipychat.Chat(base_url=fake.url, model="m", api_key=secret)
    with caplog.at_level(logging.DEBUG):
        chat.ask("hi")
        logging.getLogger("httpcore.http11").debug("response headers %s", [("x-echo", secret)])
        logging.getLogger("httpx").debug("echo: " + secret)
    assert caplog.records and secret not in caplog.text
    assert secret[:14] not in caplog.text


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("api.openai.com/v1", "http:// or https://"),
        ("https://api.example.com:99999/v1", "not valid"),
        ("http://[::1/v1", "not valid"),
        ("ftp://api.example.com/v1", "http:// or https://"),
        ("https:///v1", "no host"),
    ],
)
def test_a_bad_base_url_is_one_line_before_any_request(url, said) -> None:
    chat = ipychat.Chat(base_url=url, model="m", api_key="sk-x")
    with pytest.raises(ipychat.ConfigError, match=said) as info:
        chat.ask("hi")
    assert "\n" not in str(info.value)


def test_a_chosen_presets_key_does_not_follow_a_base_url_to_another_host() -> None:
    env = {"IPYCHAT_PROVIDER": "deepseek", "DEEPSEEK_API_KEY": DEEPSEEK}
    assert key_for([], env) == DEEPSEEK
    assert key_for([{"base_url": "https://elsewhere.example/v1"}], env) is None
    env = {"IPYCHAT_PROVIDER": "openrouter", "OPENROUTER_API_KEY": "sk-or-0123456789abcdef"}
    assert key_for([{"base_url": "https://elsewhere.example/v1"}], env) is None


def test_a_self_hosted_presets_key_goes_to_wherever_that_server_is() -> None:
    env = {"VLLM_API_KEY": "token-for-my-vllm-0123"}
    layers = [{"provider": "vllm", "base_url": "http://gpu-box.example:8000/v1"}]
    assert key_for(layers, env) == "token-for-my-vllm-0123"


def test_a_typed_key_stays_with_the_host_it_was_typed_for() -> None:
    typed = Secret("sk-typed-0123456789abcdef", host="api.deepseek.com")
    commands = {"api_key": typed, "provider": "deepseek"}
    assert key_for([{}, commands], {}) == typed.get()
    assert key_for([{"base_url": "https://evil.example/v1"}, commands], {}) is None
    assert key_for([{}, commands, {"base_url": "https://evil.example/v1"}], {}) == typed.get()


def test_a_self_hosted_presets_key_does_not_go_to_a_known_service() -> None:
    env = {"VLLM_API_KEY": "token-for-my-vllm-0123"}
    assert key_for([{"provider": "vllm", "base_url": "https://api.openai.com/v1"}], env) is None


def test_a_password_in_the_base_url_is_never_repeated() -> None:
    chat = ipychat.Chat(base_url="http://user:hunter2pw@256.256.256.256/v1", model="m")
    with pytest.raises(ipychat.ConfigError) as info:
        chat.ask("hi")
    assert "hunter2pw" not in str(info.value) and "***@" in str(info.value)
