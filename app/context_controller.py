"""Keeps the context meter current and turns "it does not fit" into a choice, never a cut.

Counts are asked of the worker's helper thread (debounced while typing). When the next message
and the room for its answer exceed the context, the banner says by how much and offers:
drop the oldest turns (a marker in the chat shows where the model's view now starts), or start
a new chat that carries a summary of this one.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from PySide6.QtCore import QObject, QTimer

from app.chat_controller import answer_reserve, turn
from app.chat_model import CONTEXT_START
from app.context_meter import Usage
from app.document_fit import DocumentFit

COUNT_DELAY_MS = 200


class ContextController(QObject):
    def __init__(self, chats, client, meter, banner, parent=None) -> None:
        super().__init__(parent)
        self.chats, self.client, self.meter, self.banner = chats, client, meter, banner
        self.per_turn: list[int] = []
        self.send_waiting = False  # Send was pressed but the message did not fit
        self.pending_resend = False  # the stored last message still needs its answer
        self._ids = itertools.count(1)
        self._latest = 0
        self._summary_job: int | None = None
        self._worker_overflow = 0  # tokens too many, as the worker counted them exactly
        self._timer = QTimer(self, singleShot=True, interval=COUNT_DELAY_MS)
        self._timer.timeout.connect(self.count_now)
        client.counted.connect(self._on_counted)
        client.summary_ready.connect(self._on_summary)
        client.task_progress.connect(self._on_summary_progress)
        client.failed.connect(self._on_failed)
        chats.overflow.connect(self._on_worker_overflow)
        self.documents = DocumentFit(client, chats.composer, banner, self, self)

    def schedule(self) -> None:
        self._timer.start()

    def draft_edited(self) -> None:
        """The user changed the message: a refused Send is not sent later on its own."""
        self.send_waiting = False
        self.schedule()

    def count_now(self) -> None:
        chat, composer = self.chats.chat, self.chats.composer
        self._latest = next(self._ids)
        history = [m for m in chat.messages[chat.context_start():] if m.status != "streaming"]
        self.client.count({
            "id": self._latest, "turns": [turn(m) for m in history],
            "system": self.chats.conversation.system_prompt if self.chats.conversation else "",
            "draft": {"role": "user", "text": composer.text()},
            "pan_and_scan": self.chats.settings.pan_and_scan,
        })

    def usage(self) -> Usage:
        return self.meter.usage

    def blocks_send(self) -> bool:
        """True when the message being sent does not fit (the choice is then shown), or while
        an attachment is still being counted (it then goes by itself once it fits). Sent
        regardless, a document too long would only be refused by the worker, too late to offer
        reading it in sections."""
        counting = [i.name for i in self._attached() if i.token_cost is None]
        if counting:
            self.send_waiting = True
            self.banner.show_message(f"Counting the tokens of {', '.join(counting)}; the "
                                     "message goes as soon as it is known to fit.", "info",
                                     "overflow")
            return True
        # the chips may know their costs before the next count of the whole message comes
        self.meter.set_usage(replace(self.usage(), attachments=self._attachment_costs()))
        if self.usage().overflow <= 0:
            return False
        self.send_waiting = True
        self._offer(self.usage().overflow)
        return True

    def _attached(self) -> list:
        return [i for i in self.chats.composer.items if not i.error]

    def _attachment_costs(self) -> list[tuple[str, int]]:
        """(name, tokens) of each usable attachment, as its chip knows it now."""
        return [(i.name, i.token_cost or 0) for i in self._attached()]

    # -- counting ------------------------------------------------------------------------------

    def _on_counted(self, result: dict) -> None:
        if result.get("id") != self._latest:
            return  # an older count; a newer one is on its way
        context = result.get("context_length", 0)
        self.per_turn = result.get("per_turn", [])
        usage = Usage(context, result.get("history", 0), result.get("draft", 0),
                      self._attachment_costs(),
                      answer_reserve(self.chats.settings.max_answer_tokens, context))
        self.meter.set_usage(usage)
        if usage.overflow:
            if self.banner.kind not in ("document", "summary"):  # a summary being written, or
                self._offer(usage.overflow)  # how it ended, is the news; the choice is back
            return  # on Send
        if self.pending_resend:
            return  # the worker's exact count said it does not fit; the choice stays open
        if self.banner.kind == "overflow":
            self.banner.dismiss("overflow")
        if self.send_waiting and self.banner.kind != "summary":
            self.send_waiting = False
            self.chats.composer.request_send()

    def _offer(self, overflow: int) -> None:
        u = self.usage()
        own = self.per_turn[-1] if self.pending_resend and self.per_turn else \
            u.draft + u.files
        alone = own + u.reserve + self._base_tokens()
        text = (f"<b>The next message does not fit.</b> With room for the answer it needs "
                f"{overflow:,} tokens more than the model's {u.context_length:,}-token context.")
        actions = [("New chat with a summary", "Summarise this chat and continue in a new one",
                    self.new_chat_with_summary)]
        document = None if self.pending_resend else self.documents.too_long(u)
        if document is not None:
            text += (f" {document.name} alone takes {document.token_cost:,} tokens. Summarise "
                     "it in sections, or send its first part: either way the chat says what "
                     "the model read.")
            actions = self.documents.choices(document, u)
        elif alone > u.context_length:
            text += " Even on its own it is too long: " + self._remedies(u)
            actions = []
            if not self.pending_resend and u.draft + u.reserve > u.context_length // 2:
                actions = [("Attach the text as a document", "Move the text into an attached "
                            "file, which can be summarised in sections or read in part",
                            self.chats.composer.text_to_document)]
        elif self._new_start(overflow) is not None:
            actions.insert(0, ("Drop the oldest turns", "Stop sending the oldest messages to "
                               "the model; a marker in the chat shows where", self.drop_oldest))
        self.banner.show_message(text, "warning", "overflow", actions)

    def _remedies(self, u: Usage) -> str:
        raise_it = (self.client.info or {}).get("max_context", 0) > u.context_length
        if raise_it:
            return "shorten it, remove an attachment, or raise the context length in Settings."
        return (f"shorten it or remove an attachment ({u.context_length:,} tokens is the "
                "longest context this model can have here).")

    def _base_tokens(self) -> int:
        return max(0, self.usage().history - sum(self.per_turn))

    def _new_start(self, need: int) -> int | None:
        """Index of the first user message after enough dropped turns to free `need` tokens;
        None when even starting at the latest user message would not free enough."""
        messages, start, freed = self.chats.chat.messages, self.chats.chat.context_start(), 0
        for offset, tokens in enumerate(self.per_turn):
            freed += tokens
            candidate = start + offset + 1
            if candidate < len(messages) and freed >= need and \
                    messages[candidate].role == "user":
                return candidate
        return None

    # -- choice 1: drop the oldest turns -------------------------------------------------------

    def drop_oldest(self) -> None:
        """Start the model's view at the first user message that leaves enough room; a marker
        row in the chat shows where."""
        chat = self.chats.chat
        new_start = self._new_start(max(self.usage().overflow, self._worker_overflow, 1))
        if new_start is None:
            return
        message = chat.messages[new_start]
        message.stats = {**message.stats, CONTEXT_START: True}
        self.chats.store.finish_message(message.id, message.status, message.stats)
        chat.refresh()
        self.banner.dismiss("overflow")
        self._resume()

    # -- choice 2: a new chat carrying a summary -----------------------------------------------

    def new_chat_with_summary(self) -> None:
        messages = self.chats.chat.messages
        if self.pending_resend:
            messages = messages[:-1]  # the unanswered message moves to the new chat
        self._summary_job = self.client.summarize({"turns": [turn(m) for m in messages]})
        self.banner.show_message("Summarising this chat for the new one…", "info", "summary",
                                 [("Stop", "Stop summarising", self._stop_summary)])

    def _on_summary_progress(self, job: int, fraction: float, text: str) -> None:
        if job == self._summary_job and self.banner.kind == "summary":
            self.banner.set_text(f"Summarising this chat for the new one: {text} "
                                 f"({int(fraction * 100)}%)…")

    def _stop_summary(self) -> None:
        if self._summary_job is not None:
            self.client.stop(self._summary_job)

    def _on_summary(self, job: int, text: str) -> None:
        if job != self._summary_job:
            return
        self._summary_job = None
        old = self.chats.conversation
        moving = self.chats.chat.messages[-1] if self.pending_resend else None
        note = f"Summary of the earlier chat “{old.display_title}”:\n{text}"
        system = "\n\n".join(p for p in (self.chats.settings.system_prompt, note) if p)
        if moving is not None:
            self._move(moving, old, system)
        else:
            self.chats.start_chat(system, f"{old.display_title} (continued)")
        self.banner.dismiss("summary")
        self._resume()

    def _move(self, message, old, system: str) -> None:
        store = self.chats.store
        files = [store.add_attachment_file(a.path, a.name, a.kind, token_cost=a.token_cost,
                                           extracted_text=a.extracted_text,
                                           page_count=a.page_count) for a in message.attachments]
        store.delete_message(message.id)
        new = self.chats.start_chat(system, f"{old.display_title} (continued)")
        self.chats.chat.append(store.add_message(new.id, "user", message.text, files))

    def _on_failed(self, job: int, message: str, details: dict) -> None:
        if job == self._summary_job:
            self._summary_job = None
            self.banner.show_message(f"The summary could not be written: {message}", "error",
                                     "summary")

    # -- after a choice ------------------------------------------------------------------------

    def _on_worker_overflow(self, details: dict) -> None:
        self.pending_resend = True
        self._worker_overflow = max(1, details["needed"] - details["available"])
        self.count_now()
        self._offer(self._worker_overflow)

    def _resume(self) -> None:
        """Send what was waiting: the stored message's answer now, or the composer's message
        once the new count confirms it fits."""
        if self.pending_resend:
            self.pending_resend, self._worker_overflow = False, 0
            self.chats.answer()
        self.count_now()
