from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakeprovider import FakeProvider  # noqa: E402

ENV_VARS = [
    "IPYCHAT_BASE_URL",
    "IPYCHAT_API_KEY",
    "IPYCHAT_MODEL",
    "IPYCHAT_PROVIDER",
    "IPYCHAT_CASSETTE",
    "IPYCHAT_CASSETTE_MODE",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENROUTER_API_KEY",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own keys or settings; the session state starts empty."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    from ipychat._threads import SESSION

    SESSION.threads.clear()
    SESSION.commands.clear()
    SESSION.config.clear()


@pytest.fixture(scope="session")
def _server() -> FakeProvider:
    server = FakeProvider().start()
    yield server
    server.stop()


@pytest.fixture
def fake(_server: FakeProvider) -> FakeProvider:
    _server.reset()
    yield _server
    _server.reset()


@pytest.fixture
def chat(fake: FakeProvider):
    import ipychat

    c = ipychat.Chat(base_url=fake.url, model="fake-model")
    c.retry = type(c.retry)(retries=3, base=0.01, max_delay=0.05)
    return c


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The integration tests need the local extra; CI installs it, so there they always run.
    if os.environ.get("CI"):
        return
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        skip = pytest.mark.skip(reason="needs ipychat[local] (make test installs it)")
        for item in items:
            if "local" in item.keywords:
                item.add_marker(skip)
