"""The bench command: a quick real run on the 270M (so it cannot rot) and its tables."""

from __future__ import annotations

import json

from engine import graph_step
from engine.bench_report import markdown
from engine.cli import main

METRICS = ("load_s", "prefill_32_tps", "prefill_64_tps", "decode_tps", "first_turn_ttft_s",
           "follow_up_ttft_s", "peak_rss_bytes")


def test_quick_bench_writes_markdown_and_json(tmp_path, real_gguf):
    out = tmp_path / "BENCHMARKS.md"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    ours = report["results"]["gemma-desk"]
    assert "error" not in ours, ours
    for key in METRICS:
        assert ours[key] and all(value > 0 for value in ours[key]), key
    assert ours["engine"].startswith("gemma-desk (")
    assert report["environment"]["threads"] >= 1
    text = out.read_text()
    assert "| Decode (tokens/s) |" in text
    assert f"{report['environment']['model']}" in text


def test_quick_shape_bench_measures_decode_against_the_bandwidth(tmp_path):
    out = tmp_path / "GPU.md"
    assert main(["bench-shape", "--shape", "270m", "--quick", "--device", "cpu",
                 "--prefill", "48", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["shape"] == "270m" and result["dtype"] == "float32"
    assert result["prefill_tokens"] == 48
    assert 0.25e9 < result["parameters"] < 0.3e9
    # int8, as the app runs on the CPU: every weight once in 34 bytes a group of 32 (the
    # 262,144 x 640 table among them), fp32 norms, a little KV
    assert result["quantization"] == "int8"
    assert 34 / 32 < result["bytes_per_token"] / result["parameters"] < 1.07
    assert result["decode_tps"][0] > 0 and result["prefill_tps"][0] > 0
    assert result["copy_bandwidth"] > 1e9
    text = out.read_text()
    assert "| Fraction of that limit |" in text and result["device"] in text


def test_shape_bench_holds_the_attached_and_compiled_steps_to_the_modules(tmp_path, monkeypatch):
    """On CUDA the graph step is attached; here it runs eagerly on the CPU in its place."""
    monkeypatch.setattr(graph_step, "DEVICES", {"cpu"})
    out = tmp_path / "GPU.md"
    monkeypatch.setattr(graph_step, "COMPILE_BACKEND", "eager")  # traced, not compiled
    assert main(["bench-shape", "--shape", "270m", "--quick", "--device", "cpu", "--compile",
                 "--quantization", "none", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["step"] == "fixed-shape step" and result["quantization"] == "none"
    # fp32: every weight (4 bytes) once, plus a little KV
    assert 4 < result["bytes_per_token"] / result["parameters"] < 4.02
    for variant in ("decode", "decode_modules", "decode_compiled"):
        assert result[f"{variant}_tps"][0] > 0
    for variant in ("decode", "decode_compiled"):  # fp32: the same arithmetic
        assert 0 <= result[f"{variant}_difference"] < 1e-4
    text = out.read_text()
    assert "| Decode with the module path instead (tokens/s) |" in text
    assert "| Decode with the step compiled (torch.compile) first (tokens/s) |" in text


def test_a_prefill_shorter_than_the_decode_prompt_is_refused(tmp_path, capsys):
    assert main(["bench-shape", "--shape", "270m", "--quick", "--prefill", "8",
                 "--out", str(tmp_path / "G.md")]) == 2
    assert "--prefill must be more than the 16 tokens" in capsys.readouterr().err
    assert not (tmp_path / "G.md").exists()


def test_unknown_shape_is_refused(tmp_path, capsys):
    assert main(["bench-shape", "--shape", "3b", "--out", str(tmp_path / "G.md")]) == 2
    assert "Unknown Gemma 3 size '3b'" in capsys.readouterr().err
    assert not (tmp_path / "G.md").exists()


def test_unknown_peer_is_refused(tmp_path, capsys):
    assert main(["bench", "--quick", "--peers", "vllm", "--out", str(tmp_path / "B.md")]) == 2
    assert "Unknown peer vllm" in capsys.readouterr().err
    assert not (tmp_path / "B.md").exists()


def report(results: dict) -> dict:
    environment = {"command": "gemma-desk-cli bench", "date": "today", "device": "CPU: test",
                   "threads": 2, "model": "m.gguf", "model_bytes": 2e8, "torch": "2",
                   "python": "3", "platform": "linux", "int8_kernel": "built"}
    sizes = {"prefill": [512], "decode_prompt": 64, "document": 8000, "runs": 3}
    return {"environment": environment, "sizes": sizes, "results": results}


def test_tables_show_medians_and_ratios_in_our_favour_direction():
    ours = {"engine": "gemma-desk (int8)", "load_s": [1.0], "prefill_512_tps": [400, 500, 450],
            "decode_tps": [50, 60, 55], "peak_rss_bytes": [500e6]}
    peer = {"engine": "transformers", "load_s": [50.0], "prefill_512_tps": [150, 150, 150],
            "decode_tps": [11, 11, 11], "peak_rss_bytes": [2000e6]}
    text = markdown(report({"gemma-desk": ours, "transformers": peer,
                            "llama.cpp": {"error": "not installed"}}))
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()}
    assert rows["Load (s)"].endswith("| 1.00 | 50.00 | 50.0x |")  # less time: peer / ours
    assert rows["Prefill 512 tokens (tokens/s)"].endswith("| 450 | 150 | 3.0x |")
    assert rows["Decode (tokens/s)"].endswith("| 55.0 | 11.0 | 5.0x |")
    assert rows["Peak memory, RSS (MB)"].endswith("| 500 | 2000 | 4.0x |")
    assert "- llama.cpp: not installed" in text


def test_rounds_are_merged_and_a_failed_round_does_not_hide_a_good_one():
    from engine.bench import merge

    first = {"engine": "e", "decode_tps": [30.0, 31.0], "load_s": [1.0]}
    second = {"engine": "e", "decode_tps": [29.0], "load_s": [1.2]}
    merged = merge(first, second)
    assert merged == {"engine": "e", "decode_tps": [30.0, 31.0, 29.0], "load_s": [1.0, 1.2]}
    assert merge(first, {"error": "crashed"}) == first
    assert merge({"error": "crashed"}, second) == second
    assert merge(None, second) == second
