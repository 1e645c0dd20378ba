from __future__ import annotations

import pytest

import ipychat
from ipychat._errors import register_secret, status_error


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ipychat.BadRequestError),
        (401, ipychat.AuthenticationError),
        (403, ipychat.AuthenticationError),
        (404, ipychat.BadRequestError),
        (429, ipychat.RateLimitError),
        (500, ipychat.ServerError),
        (503, ipychat.ServerError),
    ],
)
def test_status_maps_to_class(status: int, cls: type) -> None:
    assert type(status_error(status, {"error": {"message": "m"}})) is cls


def test_message_has_status_provider_text_param_and_hint() -> None:
    body = b'{"error": {"message": "max_tokens is too large", "param": "max_tokens", "code": "x"}}'
    error = status_error(400, body)
    assert str(error) == "HTTP 400: max_tokens is too large (param: max_tokens)"
    assert (error.param, error.code, error.status_code) == ("max_tokens", "x", 400)


def test_401_hint_names_the_fix() -> None:
    assert "%chat key" in str(status_error(401, {"error": {"message": "bad key"}}))


def test_non_json_error_body_is_kept_short() -> None:
    assert str(status_error(502, b"<html>Bad Gateway</html>")).startswith("HTTP 502: <html>")


def test_error_is_one_line() -> None:
    error = status_error(429, {"error": {"message": "slow\n  down"}})
    assert "\n" not in str(error)


def test_registered_secret_is_scrubbed_from_error_text() -> None:
    register_secret("sk-test-SECRET-123456")
    error = status_error(401, {"error": {"message": "Incorrect key sk-test-SECRET-123456"}})
    assert "SECRET" not in str(error) and "***" in str(error)


def test_llama_cpp_list_content_500_says_no_images() -> None:
    body = {"error": {"message": 'can only concatenate str (not "list") to str'}}
    assert "takes no images" in str(status_error(500, body))


def test_hierarchy() -> None:
    assert issubclass(ipychat.APITimeoutError, ipychat.APIConnectionError)
    for cls in (
        ipychat.AuthenticationError,
        ipychat.RateLimitError,
        ipychat.BadRequestError,
        ipychat.ServerError,
        ipychat.APIConnectionError,
        ipychat.StreamError,
    ):
        assert issubclass(cls, ipychat.ChatError)


def test_ipython_shows_one_line_instead_of_a_traceback() -> None:
    lines = ipychat.RateLimitError("HTTP 429: slow", status_code=429)._render_traceback_()
    assert len(lines) == 1 and "RateLimitError: HTTP 429: slow" in lines[0]


def test_openrouter_upstream_detail_is_shown() -> None:
    from ipychat._errors import status_error

    raw = "qwen is temporarily rate-limited upstream"
    body = {"error": {"code": 429, "message": "Provider returned error", "metadata": {"raw": raw}}}
    assert "temporarily rate-limited upstream" in str(status_error(429, body))


def test_a_param_sent_as_the_string_none_is_not_shown() -> None:
    from ipychat._errors import status_error

    body = {"error": {"message": "bad", "param": "None"}}
    error = status_error(400, body)
    assert "param" not in str(error) and error.param is None
