"""Shared fixtures: tiny random checkpoints (built once per run) and the real 270M GGUF."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from tests import tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_text_checkpoint(tmp_path_factory):
    """Folder of a tiny random Gemma3ForCausalLM (config.json + model.safetensors)."""
    return tiny.build_text_model(tmp_path_factory.mktemp("tiny_text"))


@pytest.fixture(scope="session")
def tiny_multimodal_checkpoint(tmp_path_factory):
    """Folder of a tiny random Gemma3ForConditionalGeneration with a small SigLIP tower.

    query_pre_attn_scalar equals head_dim so that a GGUF of the same text model matches it
    (GGUF cannot store the scalar).
    """
    return tiny.build_multimodal_model(tmp_path_factory.mktemp("tiny_mm"), query_pre_attn_scalar=32)


@pytest.fixture(scope="session")
def real_gguf():
    """Path of the real Gemma 3 270M Q4_K_M GGUF (assembled from its PyPI chunks)."""
    from engine.default_model import ensure_default_model

    return ensure_default_model()


@pytest.fixture(scope="session")
def reference_270m(real_gguf):
    """transformers' own model for the same GGUF (the oracle; about a minute to load)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        real_gguf.parent, gguf_file=real_gguf.name, dtype=torch.float32
    )
    return model.eval()


@pytest.fixture(scope="session")
def reference_tokenizer(real_gguf):
    """transformers' tokenizer for the same GGUF (the oracle; 20-80 s to build)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(real_gguf.parent, gguf_file=real_gguf.name)


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """Keep every test's settings and chats out of the real user folders (not the model cache)."""
    monkeypatch.setenv("GEMMA_DESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GEMMA_DESK_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def make_window(qtbot, tmp_path):
    """make(client=None, **settings): a shown MainWindow on a scripted client (FakeClient
    unless given) and a chat store in tmp_path."""
    from app.main_window import MainWindow
    from app.settings import Settings
    from app.store import Store
    from tests.app_support import FakeClient

    def make(client=None, **settings):
        values = {"theme": "light", "first_run_done": True, **settings}
        win = MainWindow(client=client or FakeClient("Hello **there**."),
                         store=Store(tmp_path / "chats.sqlite3"), settings=Settings(**values))
        qtbot.addWidget(win)
        win.show()
        win.activateWindow()
        qtbot.waitActive(win)
        return win
    return make
