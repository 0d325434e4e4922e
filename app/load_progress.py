"""Loading a model, as the banner tells it: progress with a Stop button once a load takes more
than a moment, and what to do when a load fails.

Stopping keeps the model still in use if it was not yet let go, and otherwise leaves none
loaded; either way the settings go back to the model used before, so the next start does not
begin the same long load again."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject

from app import settings as settings_store

NOTE_AFTER_S = 1.0  # the bundled model loads in about a second: no banner flashes for it


class LoadProgress(QObject):
    def __init__(self, client, banner, settings, load_model, show_models, parent=None) -> None:
        """`load_model(source, mmproj)` is the window's (no arguments: the model in the
        settings); `show_models()` opens the model list."""
        super().__init__(parent)
        self.client, self.banner, self.settings = client, banner, settings
        self.load_model, self.show_models = load_model, show_models
        self.previous: tuple[str, str] | None = None  # (source, mmproj) before this load
        self._started: float | None = None
        client.loading.connect(self._on_loading)
        client.loaded.connect(self._on_done)
        client.load_failed.connect(self._on_failed)

    def starting(self, previous: tuple[str, str]) -> None:
        """A load begins; `previous` is the model setting to go back to if it is stopped."""
        self.previous, self._started = previous, time.monotonic()

    def stop(self) -> None:
        self.client.cancel_load()
        self._started = None
        if self.previous is not None:
            self.settings.model_source, self.settings.mmproj = self.previous
            settings_store.save(self.settings)
        self.banner.show_message(  # goes at once if the worker says a model is still in use
            "Loading stopped, and no model is loaded now: choose one in the model list.",
            "info", "load", [("Choose a model…", "Open the model list", self.show_models)])

    def _on_loading(self, fraction: float, _message: str) -> None:
        if self._started is None or time.monotonic() - self._started < NOTE_AFTER_S:
            return
        text = f"Loading the model… {int(fraction * 100)}%"
        if self.banner.kind == "loading" and self.banner.isVisible():
            self.banner.set_text(text)
            return
        self.banner.show_message(text, "info", "loading",
                                 [("Stop", "Stop loading this model", self.stop)])

    def _on_done(self, *_args) -> None:
        self._started = None
        self.banner.dismiss("loading")

    def _on_failed(self, message: str) -> None:
        self._on_done()
        s = self.settings
        actions = [("Choose a model…", "Open the model list", self.show_models)]
        if s.model_source or s.use_server:
            actions.append(("Use the bundled model", "Load the small model that comes with "
                            "Gemma Desk", lambda: self.load_model("", "")))
        if s.use_server and self.client.info is None:
            actions.insert(0, ("Try again", "Ask the server again", self.load_model))
        self.banner.show_message(message, "error", "load", actions)
