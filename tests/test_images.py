"""Images from every source a notebook keeps them in, checked in a real kernel against the
loopback provider, which decodes what it received and compares it with the files."""

from __future__ import annotations

import base64

import pytest

from tests.fakeprovider import error
from tests.kernel import Kernel

pytestmark = pytest.mark.kernel

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIA"
    "X8jx0gAAAABJRU5ErkJggg=="
)
GIF = b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00;"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    (folder / "a.png").write_bytes(PNG)
    (folder / "b.gif").write_bytes(GIF)
    (folder / "c.jpg").write_bytes(JPEG)
    (folder / "lying.png").write_bytes(JPEG)  # the suffix lies: content decides
    (folder / "notes.txt").write_text("not an image")
    (folder / "huge.png").write_bytes(PNG + b"\0" * (20 * 1024 * 1024))
    (folder / "sub").mkdir()
    return folder


@pytest.fixture(scope="module")
def k(_server, files):
    kernel = Kernel({"IPYCHAT_BASE_URL": _server.url, "IPYCHAT_MODEL": "fake-model"})
    setup = f"""
%load_ext ipychat
import ipychat, pandas as pd
folder = {str(files)!r}
df = pd.DataFrame({{"url": [f"https://example.com/{{i}}.png" for i in range(12)],
                    "path": [folder + "/a.png"] * 12}})
empty = pd.DataFrame({{"url": []}})
"""
    assert kernel.run(setup).status == "ok"
    yield kernel
    kernel.stop()


@pytest.fixture
def ask(k, fake):
    k.run("ipychat.thread().reset()")

    def run(flags: str, text: str = "what is this"):
        result = k.run(f"%%chat {flags}\n{text}")
        return result

    return run


def sent_images(fake) -> list[dict]:
    content = fake.requests[-1].body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "what is this"}
    return [p["image_url"] for p in content[1:]]


def data_bytes(url: str) -> bytes:
    payload = url.partition(",")[2]
    return base64.b64decode(payload)


def test_url_is_sent_as_is_with_detail(ask, fake) -> None:
    assert ask("-i https://example.com/cat.png --detail low").status == "ok"
    assert sent_images(fake) == [{"url": "https://example.com/cat.png", "detail": "low"}]


def test_file_is_sent_byte_for_byte_with_mime_from_content(ask, fake, files) -> None:
    assert ask(f"-i {files}/a.png -i {files}/lying.png").status == "ok"
    first, second = sent_images(fake)
    assert first["url"].startswith("data:image/png;base64,") and data_bytes(first["url"]) == PNG
    assert second["url"].startswith("data:image/jpeg;base64,")
    assert data_bytes(second["url"]) == JPEG


def test_glob_sends_every_match(ask, fake, files) -> None:
    assert ask(f"-i '{files}/[abc].*'").status == "ok"
    assert [data_bytes(i["url"]) for i in sent_images(fake)] == [PNG, GIF, JPEG]


def test_data_url_is_validated_and_sent(ask, fake) -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert ask(f"-i {url}").status == "ok"
    assert sent_images(fake) == [{"url": url}]


def test_dataframe_columns_by_attribute_item_and_slice(ask, fake) -> None:
    assert ask("-i 'df.url[:3]'").status == "ok"
    assert [i["url"] for i in sent_images(fake)] == [
        f"https://example.com/{n}.png" for n in range(3)
    ]
    assert ask("-i 'df[\"path\"][:2]'").status == "ok"
    assert len(sent_images(fake)) == 1  # the same file twice is sent once


def test_python_values_str_list_pil_and_figures(ask, fake, k) -> None:
    k.run(
        "from PIL import Image\nimport matplotlib\nmatplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n"
        "pil = Image.new('RGB', (4, 3), 'red')\nfig, ax = plt.subplots()\nax.plot([1, 2])\n"
        "one = folder + '/b.gif'\nmixed = [one, 'https://example.com/x.png', pil]"
    )
    assert ask("-i one -i mixed -i fig").status == "ok"
    images = sent_images(fake)
    assert data_bytes(images[0]["url"]) == GIF
    assert images[1]["url"] == "https://example.com/x.png"
    assert images[2]["url"].startswith("data:image/png") and data_bytes(images[2]["url"])[:4] == (
        b"\x89PNG"
    )
    assert images[3]["url"].startswith("data:image/png")
    assert len(images) == 4  # the gif listed twice (one, mixed[0]) is sent once
    assert ask("-i gcf").status == "ok"
    assert sent_images(fake)[0]["url"].startswith("data:image/png")


def test_images_stay_in_history_and_show_by_reference(ask, fake, files, k) -> None:
    ask(f"-i {files}/a.png")
    ask("", text="and now?")
    first_user = fake.requests[-1].body["messages"][0]["content"]
    assert first_user[1]["image_url"]["url"].startswith("data:image/png")
    assert "_source" not in first_user[1]  # ipychat's own keys never reach the provider
    history = k.run("%chat history").text()
    assert f"[image: {files}/a.png]" in history and "base64" not in history


def test_thumbnails_show_what_was_sent(ask, files) -> None:
    result = ask(f"-i {files}/a.png -i https://example.com/q.png")
    final = result.final()
    assert "ipychat-images" in final[0]["data"]["text/html"]
    assert "https://example.com/q.png" in final[0]["data"]["text/plain"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ("-i {folder}/missing.png", "not found"),
        ("-i {folder}/sub", "cannot read image"),
        ("-i {folder}/notes.txt", "not a supported type (use PNG, JPEG, GIF, WEBP)"),
        ("-i {folder}/huge.png", "the limit is 20 MB"),
        ("-i 'df.url'", "12 images; the limit is 10"),
        ("-i 'undefined_name.url'", "not a file, and not a name"),
        ("-i '1/0'", "did not evaluate"),
        ("-i 'empty.url'", "is empty"),
        ("-i 'data:image/png;base64,@@@'", "invalid base64"),
        ("-i df", "is a table; pick a column"),
    ],
)
def test_bad_images_fail_before_any_request(ask, fake, files, flags, message) -> None:
    result = ask(flags.format(folder=files))
    assert result.status == "error" and result.reply["ename"] == "UsageError"
    assert message in result.text(), result.text()
    assert fake.requests == []


def test_limit_and_downscale_are_configurable(ask, fake, k, files) -> None:
    k.run("%config ChatMagics.max_images = 12")
    try:
        assert ask("-i 'df.url'").status == "ok"
        assert len(sent_images(fake)) == 12
    finally:
        k.run("%config ChatMagics.max_images = 10")
    k.run("big = Image.new('RGB', (400, 200), 'blue')\n%config ChatMagics.image_max_side = 100")
    try:
        assert ask("-i big").status == "ok"
    finally:
        k.run("%config ChatMagics.image_max_side = 0")
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(data_bytes(sent_images(fake)[0]["url"]))) as image:
        assert image.size == (100, 50)


def test_provider_that_takes_no_images_says_so(ask, fake) -> None:
    fake.push(error(400, "Invalid content type. image_url is only supported by certain models."))
    result = ask("-i https://example.com/a.png")
    assert "takes no images" in result.text()
