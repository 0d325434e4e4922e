"""`gemma-desk --self-test`: prove that an installed or packaged app can answer, without a screen.

It starts Qt (offscreen when there is no display), draws the app icon, loads the default model
through the same inference thread the window uses, answers one short prompt, prints what it did,
and exits 0; any failure prints the reason and exits 1.
"""

from __future__ import annotations

import os
import sys

PROMPT = "Hello! In one sentence, who are you?"
ANSWER_TOKENS = 8
GIVE_UP_AFTER_S = 600  # a hung load or answer must fail the check, not block it forever


def use_offscreen_without_display() -> None:
    """Qt would abort on a Linux box without X11 or Wayland; the check does not need a screen."""
    on_linux = sys.platform.startswith("linux")
    has_display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if on_linux and not has_display:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def run_self_test(out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        lines = check_app()
    except Exception as exc:  # noqa: BLE001 - the check's whole job is to report any failure
        _say(err, f"gemma-desk self-test FAILED: {exc}")
        return 1
    for line in lines:
        _say(out, line)
    return 0


def check_app() -> list[str]:
    use_offscreen_without_display()
    from PySide6.QtWidgets import QApplication

    from app.main import app_icon

    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    icon = app_icon()
    if icon.isNull() or icon.pixmap(64, 64).isNull():
        raise RuntimeError("the app icon could not be drawn (resources or image plugins missing)")
    info, answer, stats = answer_one_prompt()
    return [
        f"gemma-desk self-test passed on Qt platform '{qt_app.platformName()}'",
        f"model:    {info['name']} ({info['source']})",
        f"device:   {info['device']} ({info['dtype']}), context {info['context_length']:,} "
        f"tokens, loaded in {info['load_seconds']:.1f} s",
        f"prompt:   {PROMPT!r}",
        f"answer:   {answer!r}",
        f"speed:    prefill {stats.get('prefill_tps', 0):.1f} tokens/s, decode "
        f"{stats.get('decode_tps', 0):.1f} tokens/s ({stats.get('decode_tokens', 0)} tokens, "
        f"{stats.get('stop_reason', '?')})",
    ]


def answer_one_prompt() -> tuple[dict, str, dict]:
    """Load the default model in the app's inference thread and answer PROMPT with it."""
    from PySide6.QtCore import QEventLoop, QTimer

    from app.worker import EngineClient

    client = EngineClient()
    loop = QEventLoop()
    result: dict = {"pieces": []}

    def fail(message: str) -> None:
        result["error"] = message
        loop.quit()

    def on_loaded(info: dict) -> None:
        result["info"] = info
        client.generate({"turns": [{"role": "user", "text": PROMPT}],
                         "max_new_tokens": ANSWER_TOKENS, "sampling": None})

    def on_finished(_job: int, stats: dict) -> None:
        result["stats"] = stats
        loop.quit()

    client.loaded.connect(on_loaded)
    client.load_failed.connect(fail)
    client.token.connect(lambda _job, piece: result["pieces"].append(piece))
    client.finished.connect(on_finished)
    client.failed.connect(lambda _job, message, _details: fail(message))
    QTimer.singleShot(GIVE_UP_AFTER_S * 1000,
                      lambda: fail(f"no answer after {GIVE_UP_AFTER_S} s"))
    client.load_model(None)
    try:
        loop.exec()
    finally:
        client.shutdown()
    if "error" in result:
        raise RuntimeError(result["error"])
    answer = "".join(result["pieces"])
    if not result["stats"].get("decode_tokens"):
        raise RuntimeError("the model loaded but produced no tokens")
    return result["info"], answer, result["stats"]


def _say(stream, line: str) -> None:
    # a windowed build on Windows has no console: there, stdout and stderr are None
    if stream is not None:
        print(line, file=stream, flush=True)
