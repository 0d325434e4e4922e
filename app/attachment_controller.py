"""Attachments in the composer: measured by the worker's helper thread, problems explained."""

from __future__ import annotations

from PySide6.QtCore import QObject

from app.attachments import PendingAttachment


class AttachmentController(QObject):
    def __init__(self, client, composer, banner, context, settings, show_models,
                 parent=None) -> None:
        super().__init__(parent)
        self.client, self.composer, self.banner = client, composer, banner
        self.context, self.settings, self.show_models = context, settings, show_models
        composer.attachment_added.connect(self.measure)
        client.measured.connect(self.on_measured)

    def measure(self, item: PendingAttachment) -> None:
        if item.error is None:
            self.client.measure(item.key, str(item.path), item.kind, self.settings.pan_and_scan)

    def measure_all(self) -> None:
        """A model was loaded: costs depend on its tokenizer and on whether it sees pictures."""
        for item in self.composer.items:
            self.measure(item)

    def on_measured(self, key: int, result: dict) -> None:
        item = next((i for i in self.composer.items if i.key == key), None)
        if item is None or result.get("waiting"):
            return
        item.error = result.get("error")
        item.token_cost = result.get("token_cost")
        item.page_count = result.get("page_count")
        item.extracted_text = result.get("extracted_text")
        item.note = result.get("note", "")
        self.composer.refresh_item(key)
        self.context.schedule()
        if item.error:
            self.banner.show_message(f"{item.name} cannot be attached. {item.error}", "error",
                                     "attachment")
        elif item.note:
            name = (self.client.info or {}).get("name", "This model")
            self.banner.show_message(
                f"<b>{item.name}</b>: {name} cannot see pictures. Open a Gemma 3 that does (4B, "
                "12B or 27B) to chat about it.", "warning", "attachment",
                [("Choose a model…", "Open the model list", self.show_models)])

    def sendable(self, items: list[PendingAttachment]) -> bool:
        """False (with the reason shown, the message kept) when an attachment cannot go."""
        broken = [i.name for i in items if i.error]
        blind = [i.name for i in items if i.note]
        if broken or blind:
            why = "cannot be used" if broken else "cannot be seen by this model"
            self.banner.show_message(f"Remove {', '.join(broken + blind)} first ({why}). "
                                     "Nothing was sent.", "error", "attachment")
            return False
        return True
