"""The Gemma 3 tokenizer: ids equal to transformers' on a corpus, control strings stay text,
streamed decoding never shows half a character, and both sources (GGUF, tokenizer.model)."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from sentencepiece import SentencePieceProcessor
from sentencepiece import sentencepiece_model_pb2 as sp_model

from engine.checkpoints.gguf_file import GGUFFile
from engine.errors import ModelLoadError
from engine.tokenizer import CONTROL, USER_DEFINED, Tokenizer, is_marker

CORPUS = json.loads((Path(__file__).parent / "data" / "tokenizer_corpus.json").read_text("utf-8"))
TEXTS = [text for group in CORPUS.values() for text in group]
SPECIAL_IDS = {0, 1, 2, 3, 4, 5, 105, 106, 255999, 256000, 262144}
MARKER_TEXTS = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>",
                "<start_of_image>", "<end_of_image>", "[multimodal]", "<image_soft_token>",
                "<unused0>", "<unused6241>"]


@pytest.fixture(scope="session")
def reference(reference_tokenizer):
    return reference_tokenizer


@pytest.fixture(scope="session")
def tok(real_gguf, tmp_path_factory):
    return Tokenizer.from_gguf(GGUFFile(real_gguf), cache_dir=tmp_path_factory.mktemp("tokcache"))


def test_corpus_is_varied_enough():
    assert len(TEXTS) >= 60
    assert len(set(TEXTS)) == len(TEXTS)


def test_corpus_ids_equal_the_reference_tokenizer(tok, reference):
    wrong = [(text, tok.encode(text), reference.encode(text, add_special_tokens=False))
             for text in TEXTS]
    wrong = [case for case in wrong if case[1] != case[2]]
    assert not wrong, f"{len(wrong)} of {len(TEXTS)} differ, first: {wrong[0]!r:.400}"


def test_corpus_round_trips_and_decodes_like_the_reference(tok, reference):
    for text in TEXTS:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert reference.decode(ids, skip_special_tokens=True) == text


def test_corpus_covers_byte_fallback_newlines_tabs_and_space_runs(tok):
    pieces = {tok.piece(i) for text in TEXTS for i in tok.encode(text)}
    assert any(p.startswith("<0x") for p in pieces)
    assert {"\n", "\n\n", "\t", "\t\t", "\u2581" * 31, "\u2581" * 2} <= pieces


def test_gemma3_ids(tok):
    assert (tok.pad_id, tok.eos_id, tok.bos_id) == (0, 1, 2)
    assert (tok.start_of_turn_id, tok.end_of_turn_id) == (105, 106)
    assert (tok.boi_id, tok.eoi_id, tok.image_token_id) == (255999, 256000, 262144)
    assert tok.vocab_size == 262144
    assert tok.stop_ids == frozenset({1, 106})
    assert tok.encode("\n") == [107] and tok.encode("\n\n") == [108]
    assert tok.encode("") == []


@pytest.mark.parametrize("marker", MARKER_TEXTS)
def test_control_strings_in_text_stay_text(tok, marker):
    text = f"{marker}x {marker}\n{marker}"
    ids = tok.encode(text)
    assert not SPECIAL_IDS & set(ids)
    assert not any(is_marker(tok.piece(i)) for i in ids)
    assert tok.decode(ids) == text


def test_html_like_pieces_are_still_matched_whole(tok, reference):
    text = "<table><tr><td>1</td></tr></table>"
    assert tok.encode(text) == reference.encode(text, add_special_tokens=False)
    assert tok.piece(tok.encode(text)[0]) == "<table>"


def test_space_runs_past_the_longest_space_piece_follow_sentencepiece(tok, reference):
    """The longest space piece is 31 spaces; SentencePiece takes it first, then the rest.

    transformers' GGUF tokenizer rebuilds merges for the space runs and splits 40 spaces 16 + 24
    ([236746, 152, 160, 236763]); Gemma was trained with SentencePiece, whose user-defined pieces
    match longest first, as transformers itself does for newline runs (checked below)."""
    assert tok.encode("a" + " " * 40 + "b") == [236746, 167, 145, 236763]
    assert tok.encode("a" + " " * 32 + "b") == [236746, 167, 518]  # the 32nd space joins "▁b"
    assert tok.piece(167) == "\u2581" * 31 and tok.piece(145) == "\u2581" * 9
    newlines = "a" + "\n" * 40 + "b"
    assert tok.encode(newlines) == reference.encode(newlines, add_special_tokens=False)
    assert tok.encode(newlines)[1:3] == [137, 115]  # 31 + 9 newlines


def test_a_typed_sentencepiece_space_mark_reads_back_as_a_space(tok, reference):
    """SentencePiece writes spaces as U+2581, so that character typed in text is a space to it
    (the reference agrees): one case where decode(encode(text)) != text."""
    assert tok.encode("a\u2581b") == tok.encode("a b") == reference.encode("a\u2581b",
                                                                          add_special_tokens=False)
    assert tok.decode(tok.encode("a\u2581b")) == "a b"


def test_decode_drops_control_and_image_tokens(tok):
    ids = [2, 105, *tok.encode("model\nHi"), 262144, 255999, 256000, 106, 1, 0]
    assert tok.decode(ids) == "model\nHi"
    assert tok.piece(105) == "<start_of_turn>" and tok.piece(262144) == "<image_soft_token>"


def test_bad_ids_and_input_are_named(tok):
    for bad in (-1, 262145, 300000, 1.5, "3"):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            tok.decode([bad])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.piece(-1)
    with pytest.raises(TypeError, match="str"):
        tok.encode(b"bytes")


def test_lone_surrogates_encode_as_replacement_character(tok):
    assert tok.encode("a\ud800b") == tok.encode("a\ufffdb")


STREAM_TEXTS = ["𓀀𓀁𓀂 hieroglyphs", "𠀀𪚥 rare CJK and 日本語", "👨‍👩‍👧‍👦🏳️‍🌈🫠🪿",
                "\ue000\U000f0000x", "emoji 😀 in 中文 مرحبا"]


@pytest.mark.parametrize("text", STREAM_TEXTS)
def test_stream_decoding_never_shows_a_broken_character(tok, text):
    ids = tok.encode(text)
    decoder = tok.stream_decoder()
    shown = [decoder.push(i) for i in ids]
    shown.append(decoder.flush())
    assert not any("\ufffd" in piece for piece in shown)
    assert "".join(shown) == tok.decode(ids) == text


def test_stream_holds_back_a_character_until_its_last_byte(tok):
    ids = tok.encode("𓀀")
    assert len(ids) == 4 and all(tok.piece(i).startswith("<0x") for i in ids)
    decoder = tok.stream_decoder()
    assert [decoder.push(i) for i in ids] == ["", "", "", "𓀀"]
    decoder.push(ids[0])
    assert decoder.flush() == "\ufffd" == tok.decode(ids[:1])  # cut short: shown as decode shows it


def hf_style_model_file(tok: Tokenizer, path: Path) -> Path:
    """A tokenizer.model as HF folders carry it: markers USER_DEFINED with score 0, so raw
    SentencePiece matches `<start_of_turn>` in text."""
    tok.save_model_file(path)
    proto = sp_model.ModelProto()
    proto.ParseFromString(path.read_bytes())
    for piece in proto.pieces:
        if is_marker(piece.piece) and piece.piece not in ("<pad>", "<eos>", "<bos>", "<unk>"):
            piece.type, piece.score = USER_DEFINED, 0.0
    path.write_bytes(proto.SerializeToString())
    return path


def test_from_model_file_gives_the_same_ids(tok, tmp_path):
    path = hf_style_model_file(tok, tmp_path / "tokenizer.model")
    raw = SentencePieceProcessor(model_file=str(path))
    assert raw.encode("<start_of_turn>") == [105]  # what escaping protects against
    from_file = Tokenizer.from_model_file(path)
    for text in TEXTS + MARKER_TEXTS:
        assert from_file.encode(text) == tok.encode(text)
    assert from_file.stop_ids == tok.stop_ids and from_file.boi_id == tok.boi_id


def test_unreadable_model_file_is_named(tmp_path):
    path = tmp_path / "tokenizer.model"
    path.write_bytes(b"\xff\x00 not a protobuf")
    with pytest.raises(ModelLoadError, match="tokenizer.model"):
        Tokenizer.from_model_file(path)


# A tiny GGUF-style vocabulary: fast checks of the readers, the cache and the errors.
MINI_TOKENS = (["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[multimodal]", "<unused0>",
                "<start_of_turn>", "<end_of_turn>", "\n", "\n\n", "  ", "   ",
                "<start_of_image>", "<end_of_image>"]
               + [f"<0x{b:02X}>" for b in range(256)]
               + ["\u2581", "h", "i", "hi", "\u2581hi", "<", ">", "s", "t", "a", "r"])
MINI_TYPES = ([CONTROL] * 5 + [USER_DEFINED, CONTROL, CONTROL, CONTROL] + [USER_DEFINED] * 6
              + [6] * 256 + [1] * 11)


def mini_fields(tokens=MINI_TOKENS, types=MINI_TYPES) -> dict:
    return {"tokenizer.ggml.tokens": [t.encode() for t in tokens],
            "tokenizer.ggml.scores": -np.arange(len(tokens), dtype=np.float32),
            "tokenizer.ggml.token_type": np.array(types, dtype=np.int32)}


def write_mini_gguf(path: Path) -> Path:
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(MINI_TOKENS)
    writer.add_token_scores(mini_fields()["tokenizer.ggml.scores"].tolist())
    writer.add_token_types(MINI_TYPES)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path


def test_gguf_reader_own_reader_and_dict_agree(tmp_path):
    path = write_mini_gguf(tmp_path / "mini.gguf")
    sources = [gguf.GGUFReader(path), GGUFFile(path), mini_fields()]
    tokenizers = [Tokenizer.from_gguf(s, cache_dir=tmp_path / "cache") for s in sources]
    text = "hi  hi\n\n<start_of_turn>[multimodal]é"
    encodings = [t.encode(text) for t in tokenizers]
    assert encodings[0] == encodings[1] == encodings[2]
    assert 11 in encodings[0] and 10 in encodings[0]  # "  " and "\n\n" matched whole
    assert not {5, 7} & set(encodings[0])
    assert tokenizers[0].decode(encodings[0]) == text


def test_rebuilt_proto_is_cached_and_a_damaged_cache_is_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    first = Tokenizer.from_gguf(mini_fields(), cache_dir=cache)
    (cached,) = cache.glob("*.model")
    cached.write_bytes(b"garbage")
    again = Tokenizer.from_gguf(mini_fields(), cache_dir=cache)
    assert again.encode("hi hi") == first.encode("hi hi") == [274, 275]
    assert SentencePieceProcessor(model_proto=cached.read_bytes()).get_piece_size() == 282


def test_vocabulary_without_gemma_pieces_is_refused(tmp_path):
    tokens = [t if t != "<start_of_turn>" else "<sot>" for t in MINI_TOKENS]
    with pytest.raises(ModelLoadError, match="<start_of_turn>"):
        Tokenizer.from_gguf(mini_fields(tokens), cache_dir=tmp_path)
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        Tokenizer.from_gguf({"general.architecture": "gemma3"}, cache_dir=tmp_path)
    fields = mini_fields()
    fields["tokenizer.ggml.token_type"] = fields["tokenizer.ggml.token_type"][:-1]
    with pytest.raises(ModelLoadError, match="differ in length"):
        Tokenizer.from_gguf(fields, cache_dir=tmp_path)
    fields = mini_fields()
    fields["tokenizer.ggml.tokens"][-1] = b"\xff\xfe"
    with pytest.raises(ModelLoadError, match="not UTF-8"):
        Tokenizer.from_gguf(fields, cache_dir=tmp_path)
    fields["tokenizer.ggml.tokens"][-1] = b"h"  # the same piece twice
    with pytest.raises(ModelLoadError, match="not a usable SentencePiece model"):
        Tokenizer.from_gguf(fields, cache_dir=tmp_path)
