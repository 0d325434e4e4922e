"""How a prompt is cut into prefill chunks: never through an image block."""

from __future__ import annotations


def image_blocks(ids: list[int], image_token_id: int) -> list[tuple[int, int]]:
    """[start, end) of each maximal run of image soft tokens."""
    blocks, start = [], None
    for i, token in enumerate(ids):
        if token == image_token_id and start is None:
            start = i
        elif token != image_token_id and start is not None:
            blocks.append((start, i))
            start = None
    if start is not None:
        blocks.append((start, len(ids)))
    return blocks


def plan_chunks(ids: list[int], chunk_size: int, image_token_id: int) -> list[tuple[int, int]]:
    """[a, b) chunk bounds of at most chunk_size tokens, except a chunk that must hold a whole
    image block which is longer than chunk_size; a block is never split."""
    blocks = image_blocks(ids, image_token_id)
    chunks, a, n = [], 0, len(ids)
    while a < n:
        b = min(a + chunk_size, n)
        for start, end in blocks:
            if start < b < end:  # the cut falls inside a block
                b = start if start > a else end
                break
        chunks.append((a, b))
        a = b
    return chunks
