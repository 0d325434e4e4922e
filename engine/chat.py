"""Gemma 3 chat format: turns, the system prompt, and image blocks, rendered straight to ids.

The HF chat template renders text with control strings in it and tokenizes that; here the control
ids are placed directly and only the people's text goes through `tokenizer.encode`, so a user (or a
document) writing `<end_of_turn>` can never close a turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

IMAGE_SOFT_TOKENS = 256  # soft tokens per picture (SigLIP 4096 patches pooled 4x4)
CROPS_INTRO = "Here is the original image "  # HF processing_gemma3 wording, spaces included
CROPS_MIDDLE = " and here are some crops to help you see better "
CROPS_SEPARATOR = " "
ROLES = {"user": "user", "model": "model", "assistant": "model"}


@dataclass(frozen=True)
class ImagePart:
    """One picture in a turn; `crops` are the pan-and-scan crops shown besides the original."""

    crops: int = 0

    def __post_init__(self):
        if not isinstance(self.crops, int) or self.crops < 0:
            raise ValueError(f"ImagePart.crops must be a whole number >= 0, not {self.crops!r}")


@dataclass
class Turn:
    role: str  # "user", "model" or "assistant" (rendered as "model")
    parts: list[str | ImagePart] | str = field(default_factory=list)

    def __post_init__(self):
        if self.role == "system":
            raise ValueError("Gemma has no system role: give it as render_prompt(system=...)")
        if self.role not in ROLES:
            raise ValueError(f"unknown role '{self.role}': use 'user', 'model' or 'assistant'")
        if isinstance(self.parts, (str, ImagePart)):
            self.parts = [self.parts]
        for part in self.parts:
            if not isinstance(part, (str, ImagePart)):
                raise TypeError(f"a turn holds text and ImagePart items, not {type(part).__name__}")


def image_block_ids(tokenizer) -> list[int]:
    """"\\n\\n", <start_of_image>, 256 soft tokens, <end_of_image>, "\\n\\n" (the 108s placed as
    ids, as Google's code does, so they never merge with newlines in the text around them)."""
    blank = tokenizer.encode("\n\n")
    soft = [tokenizer.image_token_id] * IMAGE_SOFT_TOKENS
    return [*blank, tokenizer.boi_id, *soft, tokenizer.eoi_id, *blank]


def image_ids(tokenizer, crops: int = 0) -> list[int]:
    """One picture as the prompt carries it: a block, or with crops HF's sentence around blocks."""
    block = image_block_ids(tokenizer)
    if crops == 0:
        return block
    ids = tokenizer.encode(CROPS_INTRO) + block + tokenizer.encode(CROPS_MIDDLE) + block
    for _ in range(crops - 1):
        ids += tokenizer.encode(CROPS_SEPARATOR) + block
    return ids


def image_token_cost(tokenizer, crops: int = 0) -> int:
    """Tokens one picture adds to the prompt: 260 per block, plus the sentence when cropped."""
    return len(image_ids(tokenizer, ImagePart(crops).crops))


def render_prompt(tokenizer, turns, *, system: str | None = None,
                  add_generation_prompt: bool = True) -> list[int]:
    """The whole prompt: BOS, each turn, and the opening of the model's turn."""
    turns = [_as_turn(turn) for turn in turns]
    _check_alternation(turns)
    ids = [tokenizer.bos_id]
    for index, turn in enumerate(turns):
        # Gemma has no system role: the template folds it, untrimmed, into the first user turn
        # (so with no turns at all it is left out, as the template leaves it out).
        prefix = system + "\n\n" if index == 0 and system else ""
        ids += turn_ids(tokenizer, turn, prefix)
    if add_generation_prompt:
        ids += [tokenizer.start_of_turn_id, *tokenizer.encode("model\n")]
    return ids


def turn_ids(tokenizer, turn: Turn, prefix: str = "") -> list[int]:
    """<start_of_turn>role\\n{prefix}{content}<end_of_turn>\\n, every text item trimmed."""
    segments: list[str | list[int]] = [f"{ROLES[turn.role]}\n{prefix}"]
    for part in turn.parts:
        segments.append(part.strip() if isinstance(part, str) else image_ids(tokenizer, part.crops))
    segments += [[tokenizer.end_of_turn_id], "\n"]
    return [tokenizer.start_of_turn_id, *_encode_segments(tokenizer, segments)]


def _encode_segments(tokenizer, segments) -> list[int]:
    """Neighbouring texts are encoded together, as the reference tokenizes the rendered string."""
    ids: list[int] = []
    text = ""
    for segment in segments:
        if isinstance(segment, str):
            text += segment
            continue
        ids += tokenizer.encode(text) + segment
        text = ""
    return ids + tokenizer.encode(text)


def _as_turn(turn) -> Turn:
    if isinstance(turn, Turn):
        return turn
    if isinstance(turn, tuple) and len(turn) == 2:
        return Turn(*turn)
    raise TypeError(f"a turn is a Turn or a (role, content) pair, not {turn!r:.60}")


def _check_alternation(turns: list[Turn]) -> None:
    for index, turn in enumerate(turns):
        expected = "user" if index % 2 == 0 else "model"
        if ROLES[turn.role] != expected:
            raise ValueError(
                f"turn {index + 1} is '{turn.role}' but Gemma chats alternate user and model "
                f"turns, starting with user (expected '{expected}')"
            )
