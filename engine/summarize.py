"""Summarise a long file: whole when it fits, else section by section and then combined.

The answer always states what was read ("pages 1-240 of 240 in 12 sections", or "pages 1-212
of 240" for a first part); nothing is cut without saying so.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace

from engine.context import (
    DOCUMENT_NOTE,
    chunk_label,
    count_tokens,
    coverage,
    document_block,
    first_part,
    plan_chunks,
    span,
)
from engine.documents import Document
from engine.errors import Cancelled, ContextOverflowError, EngineError

MARGIN = 4  # a block's tokens inside a prompt can differ from its own count by a token or two
TASKS = {  # what an instruction-tuned model is asked
    "whole": "Summarise this file. Keep the names, numbers and conclusions that matter.",
    "section": "Summarise this part of the file in a few sentences. Keep the names, numbers "
               "and conclusions that matter.",
    "combine": "These are summaries of consecutive parts of one file, in order. Combine them "
               "into one summary of the whole file.",
}
CUE = "In summary:"  # a base model continues text, so it gets a cue instead of an instruction


@dataclass(frozen=True)
class Progress:
    stage: str  # "reading" (one pass), "section" or "combining"
    index: int  # 1-based step of this stage
    total: int
    label: str  # what this step reads: "pages 21-40"
    sections: int = 0  # sections of the whole job; combining them counts as one step more
    done: float = 0.0  # share of this step's prompt read so far (a long prompt takes a while)
    level: int = 1  # combining pass: summaries too many for one prompt are combined in groups

    @property
    def fraction(self) -> float:
        """Share of the whole job done, never running backwards between stages: the sections,
        then combining, whose passes take half of what is left each (their number is unknown
        until the summaries are written)."""
        if self.stage == "section":
            return (self.index - 1 + self.done) / (self.total + 1)
        step = (self.index - 1 + self.done) / self.total
        if self.sections:  # combining pass `level` takes half of what is left
            step = 1 - 0.5 ** (self.level - 1) + step * 0.5 ** self.level
        return (self.sections + step) / (self.sections + 1)

    def __str__(self) -> str:
        if self.stage == "reading":
            return f"reading {self.label}"
        what = "section" if self.stage == "section" else "combining summaries"
        return f"{what} {self.index} of {self.total} ({self.label})"


@dataclass(frozen=True)
class Part:
    start: int
    end: int
    label: str
    text: str


@dataclass
class Summary:
    document: Document
    read: str  # coverage: "pages 1-240 of 240"
    method: str  # "whole", "sections" or "first_part"
    text: str
    parts: list[Part] = field(default_factory=list)
    model: str = ""

    @property
    def header(self) -> str:
        name = self.document.name
        if self.method == "first_part":
            return f"Summary of {name}: read {self.read}, the first part only; not the rest."
        if self.method == "sections":
            return f"Summary of {name}: read {self.read} in {len(self.parts)} sections."
        return f"Summary of {name}: read {self.read} in one pass."

    def markdown(self) -> str:
        lines = [f"# Summary of {self.document.name}", "", f"*{self.header}*"]
        if self.model:
            lines[-1] = f"*{self.header} Model: {self.model}.*"
        lines += ["", self.text or "(The model wrote nothing.)", ""]
        if self.parts:
            lines += ["## Section by section", ""]
            for part in self.parts:
                lines += [f"### {part.label[0].upper()}{part.label[1:]}", "",
                          part.text or "(The model wrote nothing for this part.)", ""]
        return "\n".join(lines)


def prompt_style(model) -> str:
    """"chat" for instruction-tuned models, "plain" continuation for base models."""
    tuned = getattr(model, "instruction_tuned", None)
    if tuned is None:
        names = f"{model.describe()} {getattr(model, 'source', '') or ''}"
        tuned = bool(re.search(r"(?i)(\b|_)(it|instruct|chat)(\b|_)", names))
    return "chat" if tuned else "plain"


def prompt_ids(tokenizer, style: str, block: str, task: str) -> list[int]:
    """A chat turn with the note, the block and the task; or, for a base model, block + cue."""
    if style == "chat":
        from engine.chat import Turn, render_prompt

        text = f"{DOCUMENT_NOTE}\n\n{block}\n\n{TASKS[task]}"
        return render_prompt(tokenizer, [Turn("user", text)])
    return [tokenizer.bos_id, *tokenizer.encode(f"{block}\n\n{CUE}")]


class Writer:
    """One session reused for every step: prompts share their start, so it is prefilled once."""

    def __init__(self, model, context_length, sampling, cancel, progress, style=None):
        self.tokenizer = model.tokenizer
        self.session = model.new_session(context_length)
        self.style = style or prompt_style(model)
        self.sampling, self.cancel = sampling, cancel
        self.report = progress or (lambda event: None)

    @property
    def context_length(self) -> int:
        return self.session.context_length

    def ids(self, block: str, task: str) -> list[int]:
        return prompt_ids(self.tokenizer, self.style, block, task)

    def room(self, task: str, answer_tokens: int) -> int:
        """Tokens a block may take in a prompt for `task` that leaves room for the answer."""
        return self.context_length - len(self.ids("", task)) - answer_tokens - MARGIN

    def write(self, block: str, task: str, answer_tokens: int, step: Progress) -> str:
        """The model's answer to `task` about `block`; `step` is reported as its prompt is read."""
        ids = self.ids(block, task)
        if len(ids) + answer_tokens > self.context_length:
            raise ContextOverflowError(len(ids) + answer_tokens, self.context_length,
                                       self.context_length)
        self.report(step)
        read = lambda done, total: self.report(replace(step, done=done / total))
        self.session.prefill_to(ids, cancel=self.cancel, reserve=answer_tokens, progress=read)
        text = ""
        for piece in self.session.generate(answer_tokens, self.sampling, self.cancel):
            text += piece
            if self.style == "plain" and base_model_answer(text)[1]:
                break
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("Summary stopped")
        return base_model_answer(text)[0] if self.style == "plain" else text.strip()


def base_model_answer(text: str) -> tuple[str, bool]:
    """(answer, finished): a base model's summary is its first paragraph, up to the first line
    it repeats; after that it drifts or loops until the token limit."""
    body = text.lstrip()
    ended = "\n\n" in body
    lines = body.split("\n\n")[0].split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        complete = ended or i + 1 < len(lines)
        if complete and line.strip() and line.strip() in {k.strip() for k in kept}:
            return "\n".join(kept).strip(), True
        kept.append(line)
    return "\n".join(kept).strip(), ended


def summarize(model, doc: Document, *, context_length: int | None = None, mode="sections",
              section_tokens: int | None = None, answer_tokens: int | None = None,
              progress=None, cancel=None, sampling=None, style=None) -> Summary:
    """Summarise `doc`: whole if it fits, else in sections (mode="sections") or its first part."""
    if mode not in ("sections", "first_part"):
        raise ValueError(f"mode must be 'sections' or 'first_part', not {mode!r}")
    writer = Writer(model, context_length, sampling, cancel, progress, style)
    n = writer.context_length
    section_tokens = section_tokens or min(256, max(32, n // 8))
    answer_tokens = answer_tokens or min(512, max(48, n // 4))
    whole_room = writer.room("whole", answer_tokens)
    summary = Summary(doc, coverage(doc), "whole", "", model=model.describe())
    if count_tokens(writer.tokenizer, doc) <= whole_room:
        summary.text = writer.write(document_block(doc), "whole", answer_tokens,
                                    Progress("reading", 1, 1, summary.read))
    elif mode == "first_part":
        block, summary.read = first_part(doc, writer.tokenizer, whole_room)
        summary.method = "first_part"
        summary.text = writer.write(block, "whole", answer_tokens,
                                    Progress("reading", 1, 1, summary.read))
    else:
        summary.method = "sections"
        summary.parts = summarize_sections(writer, doc, section_tokens)
        summary.text = combine(writer, doc, summary.parts, section_tokens, answer_tokens)
    return summary


def summarize_sections(writer: Writer, doc: Document, section_tokens: int) -> list[Part]:
    """The map step: each chunk summarised on its own, with a progress event before each."""
    chunks = plan_chunks(doc, writer.tokenizer, writer.room("section", section_tokens))
    parts = []
    for i, chunk in enumerate(chunks, 1):
        label = chunk_label(doc, chunk)
        step = Progress("section", i, len(chunks), label, len(chunks))
        text = writer.write(document_block(doc, chunk), "section", section_tokens, step)
        parts.append(Part(chunk.start, chunk.end, label, text))
    return parts


def combine(writer: Writer, doc: Document, parts: list[Part], section_tokens: int,
            answer_tokens: int) -> str:
    """The reduce step: all summaries at once if they fit, else in groups, level by level."""
    if len(parts) == 1:
        return parts[0].text
    sections, level = len(parts), 1
    final_room = writer.room("combine", answer_tokens)
    group_room = writer.room("combine", section_tokens)
    while count_tokens(writer.tokenizer, notes_block(doc, parts)) > final_room:
        groups = group_parts(writer.tokenizer, doc, parts, group_room)
        if len(groups) == len(parts):
            raise EngineError(f"A {writer.context_length:,}-token context is too small to "
                              "combine the section summaries; use a longer context.")
        steps = [Progress("combining", i, len(groups), span(doc.unit, g[0].start, g[-1].end),
                          sections, level=level) for i, g in enumerate(groups, 1)]
        parts = [_combined(writer, doc, group, step, section_tokens)
                 for group, step in zip(groups, steps)]
        level += 1
    step = Progress("combining", 1, 1, coverage(doc), sections, level=level)
    return writer.write(notes_block(doc, parts), "combine", answer_tokens, step)


def _combined(writer, doc, group: list[Part], step: Progress, tokens: int) -> Part:
    if len(group) == 1:
        writer.report(step)
        return group[0]
    return Part(group[0].start, group[-1].end, step.label,
                writer.write(notes_block(doc, group), "combine", tokens, step))


def group_parts(tokenizer, doc: Document, parts: list[Part], room: int) -> list[list[Part]]:
    """Consecutive summaries gathered into groups whose notes block fits `room` tokens."""
    groups: list[list[Part]] = [[]]
    for part in parts:
        candidate = groups[-1] + [part]
        if groups[-1] and count_tokens(tokenizer, notes_block(doc, candidate)) > room:
            groups.append([part])
        else:
            groups[-1] = candidate
    return groups


def notes_block(doc: Document, parts: list[Part]) -> str:
    """Section summaries, framed like a document: they were written from the file's text."""
    name = re.sub(r"[\x00-\x1f\x7f\"]", "_", doc.name)
    tag = doc.sha256[:16]
    read = f"{span(doc.unit, parts[0].start, parts[-1].end)} of {doc.total:,}" if parts else ""
    body = "\n\n".join(f"[{part.label}]\n{part.text}" for part in parts)
    return (f'===== BEGIN SUMMARIES OF "{name}" ({read}) id {tag} =====\n{body}\n'
            f'===== END SUMMARIES OF "{name}" id {tag} =====')


class TerminalProgress:
    """A progress bar on stderr: "[######------] section 3 of 12 (pages 41-60)"."""

    def __init__(self, stream=None, width: int = 24):
        self.stream, self.width, self.shown = stream or sys.stderr, width, 0
        self.redraw = self.stream.isatty()  # in a log file, one line per step reads better
        self.step = ""

    def __call__(self, event: Progress) -> None:
        if self.redraw or str(event) != self.step:
            self._show(event.fraction, str(event))
        self.step = str(event)

    def finish(self, message: str = "done") -> None:
        self._show(1.0, message)
        if self.redraw:
            self.stream.write("\n")

    def _show(self, fraction: float, text: str) -> None:
        filled = round(fraction * self.width)
        line = f"[{'#' * filled}{'-' * (self.width - filled)}] {text}"
        if self.redraw:
            self.stream.write("\r" + line.ljust(self.shown))
            self.shown = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
