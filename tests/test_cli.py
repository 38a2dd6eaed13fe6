"""The ``workbench`` command: the CoSQA reference number, and clear errors on bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from workbench.cli import main
from workbench.paths import cosqa_dir

COSQA = cosqa_dir()


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["eval", "--model", "no-such-model", "--task", "cosqa", "--split", "dev", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'no-such-model'" in err and "minilm" in err and "Traceback" not in err


def test_unknown_task_is_a_clear_error(capsys):
    assert main(["eval", "--task", "imagenet", "--quiet"]) == 2
    assert "imagenet" in capsys.readouterr().err


def test_malformed_jsonl_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "test.jsonl"
    good = {"url": "u1", "idx": 0, "docstring_tokens": ["add", "two", "numbers"], "code_tokens": ["def", "f"], "function": "def f(): pass"}
    lines = [json.dumps(good), json.dumps({**good, "url": "u2", "idx": 1}), '{"url": "u3", "idx": 2, "docstring_tokens": ["x"', json.dumps({**good, "url": "u4"})]
    bad.write_text("\n".join(lines) + "\n")
    assert main(["eval", "--task", "advtest", "--data-dir", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3" in err


def test_empty_corpus_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "sort a list"}) + "\n")
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tc1\t1\n")
    assert main(["eval", "--task", "beir", "--data-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "corpus" in err.lower() and "Traceback" not in err


def _small_cosqa(folder, split: str, n_queries: int = 20, pool: int = 300):
    """A user-supplied split in the published layout: real CoSQA items, a smaller pool."""
    items = json.loads((COSQA / "cosqa-retrieval-dev-500.json").read_text())[:n_queries]
    code_map = json.loads((COSQA / "code_idx_map.txt").read_text())
    golds = {it["retrieval_idx"] for it in items}
    keep = {c: i for c, i in code_map.items() if i in golds or i < pool}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"cosqa-retrieval-{split}-500.json").write_text(json.dumps(items))
    (folder / "code_idx_map.txt").write_text(json.dumps(keep))
    return items, keep


def test_user_supplied_test_split(tmp_path, capsys):
    items, keep = _small_cosqa(tmp_path / "cosqa", "test")
    rc = main(["eval", "--model", "minilm", "--task", "cosqa", "--split", "test", "--data-dir", str(tmp_path / "cosqa"),
               "--n-boot", "100", "--quiet", "--output", str(tmp_path / "m.json")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_queries"] == len(items) if "n_queries" in out else out["metrics"]["n_queries"] == len(items)
    assert 0 < out["metrics"]["mrr"] <= 100
    assert json.loads((tmp_path / "m.json").read_text())["metrics"] == out["metrics"]


def test_missing_test_split_says_where_to_put_it(tmp_path, capsys):
    _small_cosqa(tmp_path / "cosqa", "dev")
    assert main(["eval", "--task", "cosqa", "--split", "test", "--data-dir", str(tmp_path / "cosqa"), "--quiet"]) == 2
    assert "cosqa-retrieval-test-500.json" in capsys.readouterr().err


@pytest.mark.slow
def test_cosqa_dev_reference_number():
    """all-MiniLM-L6-v2 zero-shot on the full CoSQA dev pool: MRR 54.12 +/- 0.3 (offline.md reference)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "eval", "--model", "minilm", "--task", "cosqa", "--split", "dev",
         "--data-dir", str(COSQA), "--quiet", "--n-boot", "200"],
        capture_output=True, text=True, env=env, timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads(proc.stdout)["metrics"]
    assert abs(m["mrr"] - 54.12) <= 0.3, m
    assert abs(m["recall@1"] - 39.6) <= 0.6 and abs(m["recall@10"] - 82.2) <= 0.6, m


def test_advtest_code_field_from_the_command_line(tmp_path):
    """AdvTest's code field is chosen on the command line as the loader allows: the raw ``function``
    text or the joined ``code_tokens`` (the default); the output says which was used."""
    rows = [{"url": f"u{i}", "idx": i, "docstring_tokens": ["return", "the", "sum", str(i)],
             "function_tokens": ["def", "func", "(", "arg_0", ")", ":", "return", str(i)],
             "function": f"def func(arg_0):\n    return {i}"} for i in range(4)]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    outs = {}
    for field in (None, "function"):
        out = tmp_path / f"{field}.json"
        args = ["eval", "--task", "advtest", "--data-dir", str(path), "--quiet", "--n-boot", "10", "--output", str(out)]
        assert main(args + (["--code-field", field] if field else [])) == 0
        outs[field] = json.loads(out.read_text())
    assert outs[None]["settings"]["code_field"] == "code_tokens"
    assert outs["function"]["settings"]["code_field"] == "function"
    assert outs["function"]["task_summary"]["max_code_chars"] == len(rows[0]["function"])
    assert outs[None]["task_summary"]["max_code_chars"] == len(" ".join(rows[0]["function_tokens"]))


def test_params_lists_what_a_chapter_reads_with_the_values(capsys):
    assert main(["params", "04", "--preset", "smoke", "--set", "mixup_alpha=0.2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("04: ") and "values of preset 'smoke' with mixup_alpha=0.2" in out
    assert "[select]" in out and re.search(r"\n  mixup_alpha +0\.2\n", out)
    assert "[curation]" not in out  # 04 reads nothing of 01's CoRNStack parameters
    assert main(["params", "09"]) == 2
    assert "unknown chapter '09'" in capsys.readouterr().err


def test_every_preset_the_readme_names_is_accepted(capsys):
    """``--preset paper`` (README, docs/guide.md) reaches the runner, which then names the bad notebook."""
    assert main(["run", "--preset", "paper", "--notebooks", "99", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no notebook '99'" in err and "invalid choice" not in err


def test_the_main_job_defaults_to_the_tour_preset(capsys):
    """``make run`` and a bare ``workbench run`` run the tour (about 15 minutes), not the hours-long cpu
    preset; ``workbench params`` shows its values and a chapter says what its numbers can tell."""
    from pathlib import Path

    from workbench.cli import build_parser
    from workbench.config import PRESET_NOTES

    assert build_parser().parse_args(["run"]).preset == "tour"
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert re.search(r"^PRESET \?= tour$", makefile, re.M)
    assert main(["params", "00"]) == 0
    out = capsys.readouterr().out
    assert "values of preset 'tour'" in out and re.search(r"\n  corpus +\"cpu\"\n", out)
    assert "--preset cpu" in PRESET_NOTES["tour"]


def test_a_reader_that_leaves_early_gets_no_traceback():
    """``workbench params | head -1``: the pipe closes before the listing is written; the command stops
    quietly (status 141, as a shell reports SIGPIPE) instead of printing a BrokenPipeError traceback."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "params"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # long before the interpreter has imported the workbench and printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err
