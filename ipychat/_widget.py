"""`ChatPanel`: an ipywidgets chat box over the kernel's threads (SPEC §9).

The answer streams from a task on the kernel's own event loop, so the kernel stays idle and
other cells run meanwhile; Stop cancels that task. The live answer goes through the same
`LiveView` as a `%%chat` cell, into a box of HTML widgets instead of display outputs.
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

import ipywidgets as widgets

from ._errors import ChatError
from ._live import LiveView
from ._render import WRAP, money, turn_html
from ._threads import SESSION

__all__ = ["ChatPanel"]


class WidgetFrontend:
    """The `Frontend` protocol over a box of HTML widgets (one per output)."""

    rich = True

    def __init__(self, box: widgets.Box) -> None:
        self.box = box
        self.parts: dict[str, widgets.HTML] = {}

    def show(self, bundle: dict[str, Any]) -> str:
        part = widgets.HTML(bundle.get("text/html") or html.escape(bundle.get("text/plain", "")))
        handle = f"p{len(self.parts)}"
        self.parts[handle] = part
        self.box.children = (*self.box.children, part)
        return handle

    def update(self, handle: str, bundle: dict[str, Any]) -> None:
        part = self.parts.get(handle)
        if part is not None:
            part.value = bundle.get("text/html") or html.escape(bundle.get("text/plain", ""))

    def clear(self) -> None:
        self.parts.clear()
        self.box.children = ()

    def write(self, text: str) -> None:
        pass


class ChatPanel(widgets.VBox):
    """A chat panel for the kernel's thread `thread` (shared with `%%chat -t THREAD`)."""

    def __init__(self, thread: str = "default", **kwargs: Any) -> None:
        self.transcript = widgets.HTML(layout=widgets.Layout(max_height="480px", overflow="auto"))
        self.live = widgets.VBox()
        self.prompt = widgets.Textarea(
            placeholder="Write a message (Enter makes a new line), then click Send",
            layout=widgets.Layout(width="100%", height="80px"),
        )
        self.send_button = widgets.Button(
            description="Send", button_style="primary", icon="paper-plane"
        )
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.model = widgets.Combobox(
            placeholder="model", ensure_option=False, layout=widgets.Layout(width="220px")
        )
        self.thread = widgets.Combobox(
            value=thread,
            placeholder="thread",
            ensure_option=False,
            layout=widgets.Layout(width="160px"),
        )
        self.upload = widgets.FileUpload(accept="image/*", multiple=True, description="Image")
        self.image_url = widgets.Text(
            placeholder="image URL(s)", layout=widgets.Layout(width="220px")
        )
        self.status = widgets.HTML()
        self.usage = widgets.HTML()
        for name, widget in [
            ("transcript", self.transcript),
            ("prompt", self.prompt),
            ("send", self.send_button),
            ("stop", self.stop_button),
            ("status", self.status),
            ("usage", self.usage),
            ("model", self.model),
            ("thread", self.thread),
        ]:
            widget.add_class(f"ipychat-panel-{name}")
        controls = widgets.HBox(
            [
                self.send_button,
                self.stop_button,
                self.model,
                self.thread,
                self.upload,
                self.image_url,
            ]
        )
        super().__init__(
            [self.transcript, self.live, self.prompt, controls, self.status, self.usage], **kwargs
        )
        self.add_class("ipychat-panel")
        self.task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._display_id: str | None = None
        self.send_button.on_click(lambda _: self.send())
        self.stop_button.on_click(lambda _: self.stop())
        self.thread.observe(lambda _: self.refresh(), names="value")
        self._listen()
        self.refresh()
        self._fill_models()

    # -- state shared with the magics ------------------------------------------------------
    @property
    def chat(self) -> Any:
        return SESSION.thread(self.thread.value or "default")

    def _listen(self) -> None:
        try:
            self._loop = asyncio.get_event_loop()
        except RuntimeError:
            self._loop = None
        SESSION.listen(self._changed)

    def _changed(self, name: str) -> None:
        """A thread changed (maybe in another thread of the process): refresh on the kernel's
        loop, where widget messages belong."""
        if name != (self.thread.value or "default") or self.task is not None:
            return
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self.refresh)
        else:
            self.refresh()

    def refresh(self) -> None:
        chat = self.chat
        self.transcript.value = (
            WRAP.format("".join(turn_html(t) for t in chat.turns))
            if (chat.turns)
            else "<i>No messages yet.</i>"
        )
        self.thread.options = tuple(SESSION.threads) or ("default",)
        prompt = completion = 0
        cost = 0.0
        priced = False
        for turn in chat.turns:
            usage = turn.meta.get("usage") or {}
            prompt += usage.get("prompt_tokens", 0)
            completion += usage.get("completion_tokens", 0)
            if usage.get("cost") is not None:
                cost += usage["cost"]
                priced = True
        line = f"{len(chat.turns)} turns · {prompt:,} tokens in · {completion:,} out"
        if priced:
            line += f" · {money(cost)}"
        self.usage.value = f'<span style="font-size: 0.85em; opacity: 0.7">{line}</span>'
        self._republish()

    def _republish(self) -> None:
        if self._display_id is not None:
            from IPython.display import update_display

            update_display(self._bundle(), raw=True, display_id=self._display_id)

    # -- sending --------------------------------------------------------------------------
    def images(self) -> list[Any]:
        from ._images import collect

        sources: list[Any] = [bytes(item["content"]) for item in self.upload.value]
        sources += self.image_url.value.split()
        return collect(sources) if sources else []

    def send(self) -> asyncio.Task[Any] | None:
        """What the Send button does: start streaming the prompt as a task."""
        text = self.prompt.value
        if not text.strip() or self.task is not None:
            return None
        self.status.value = ""
        try:
            images = self.images()
        except ChatError as error:
            self._error(str(error))
            return None
        loop = asyncio.get_event_loop()
        self.task = loop.create_task(self._run(text, images))
        return self.task

    def stop(self) -> None:
        """What the Stop button does: cancel the streaming task now."""
        if self.task is not None:
            self.task.cancel()

    async def _run(self, text: str, images: list[Any]) -> None:
        self.send_button.disabled, self.stop_button.disabled = True, False
        self.live.children = (widgets.HTML(WRAP.format(f"<p><b>You</b>: {html.escape(text)}</p>")),)
        answer = widgets.VBox()
        self.live.children = (*self.live.children, answer)
        view = LiveView(WidgetFrontend(answer), owns_cell=True)
        params: dict[str, Any] = {}
        if self.model.value.strip():
            params["model"] = self.model.value.strip()
        self.prompt.value = ""
        ok = False
        try:
            async for event in self.chat.stream(text, images or None, **params):
                if event.kind == "reply":
                    view.finish(event.reply)  # type: ignore[arg-type]
                else:
                    view.feed(event)
                    view.tick()
            ok = True
        except asyncio.CancelledError:
            view.finish(view.partial("interrupted", "stopped", params.get("model")))
            self._error("stopped")
            ok = bool(view.content or view.reasoning)  # else nothing was kept: keep the prompt
        except ChatError as error:
            reply = getattr(error, "reply", None)
            if reply is not None:
                view.finish(reply)
                ok = True
            self._error(str(error))
        finally:
            if not ok:
                self.prompt.value = text  # nothing typed is lost
            self.task = None
            self.send_button.disabled, self.stop_button.disabled = False, True
            self.live.children = ()
            self.upload.value = ()
            self.refresh()

    def _error(self, message: str) -> None:
        self.status.value = (
            '<span style="color: var(--jp-error-color1, #c00)">'
            f"{html.escape(message.splitlines()[0] if message else '')}</span>"
        )

    # -- models ---------------------------------------------------------------------------
    def _fill_models(self) -> None:
        try:
            settings = self.chat.settings()
        except ChatError:
            return
        if settings.model:
            self.model.value = settings.model
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return
        if loop.is_running():
            self._models_task = loop.create_task(self._load_models(settings))

    async def _load_models(self, settings: Any) -> None:
        from ._client import get_client

        if not settings.base_url:
            return
        headers = {"Authorization": f"Bearer {settings.api_key.get()}"} if settings.api_key else {}
        try:
            response = await get_client().get(
                f"{settings.base_url}/models", headers=headers, timeout=5
            )
            names = sorted(m["id"] for m in response.json().get("data", []) if "id" in m)
        except Exception:
            return  # free text it is
        self.model.options = tuple(names)

    # -- display --------------------------------------------------------------------------
    def _bundle(self) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_()
        # Where widgets are not live (GitHub, nbconvert), the transcript still shows.
        bundle["text/html"] = self.transcript.value
        bundle["text/plain"] = (
            f"ChatPanel(thread={self.thread.value!r}, {len(self.chat.turns)} turns)"
        )
        return bundle

    def _ipython_display_(self) -> None:
        import uuid

        from IPython.display import display

        self._display_id = self._display_id or uuid.uuid4().hex
        display(self._bundle(), raw=True, display_id=self._display_id)

    def close(self) -> None:
        SESSION.unlisten(self._changed)
        super().close()
