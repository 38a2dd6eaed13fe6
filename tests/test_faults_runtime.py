"""Faults tried for real (issue 10, "Reliability and security"): processes killed with SIGKILL and
resumed in a new process, LLM servers that fail on a real socket, corrupted model files, hostile
code in the sandbox, unsafe loads in the source and the embedded server's access rules.

Every fault is one entry of the ledger in ``tests/faults.py``: what the user sees, how many finished
pieces were checked kept and how many were lost (always asserted 0). No project code is mocked: the
children are real ``python`` processes, the servers real ``http.server`` / ``llama_cpp.server``
processes or threads on 127.0.0.1, the files real files in ``tmp_path``. Faults that other test files
already try exactly are recorded there (tests/test_llm.py, tests/test_models.py, tests/test_sweep.py).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from chat_server import ChatServer, scripted_answer
from faults import fault
from test_llm import GREEDY, HELLO

from workbench.faultpoints import PAUSE_AT, PAUSE_READY
from workbench.llm import CachedLLM, LLMError, OpenAIBackend, Sampling, free_port

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CHILD_ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
}


# --- helpers: children, polling ------------------------------------------------------------------------------


def spawn(script: Path, *args: object, log: Path, pause_at: str | None = None,
          ready: Path | None = None) -> subprocess.Popen:
    """``python script args`` in its own process group, output to ``log``; with ``pause_at`` the child
    waits for good at that point (``workbench.faultpoints``) after writing its pid to ``ready``."""
    env = CHILD_ENV if pause_at is None else {**CHILD_ENV, PAUSE_AT: pause_at, PAUSE_READY: str(ready)}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=script.parent, start_new_session=True)


def kill_at(proc: subprocess.Popen, ready: Path, what: str, log: Path, timeout: float = 240) -> None:
    """Wait until the child paused at its point (it wrote ``ready``), then SIGKILL it: the kill happens
    at that point every time, however loaded the machine."""
    try:
        wait_until(ready.exists, what, timeout=timeout, proc=proc, log=log, pause=0.05)
        assert int(ready.read_text()) == proc.pid
    finally:
        sigkill(proc)


def run_child(script: Path, *args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          env=CHILD_ENV, cwd=script.parent, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def sigkill(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def wait_until(cond, what: str, timeout: float = 90, proc: subprocess.Popen | None = None, log: Path | None = None,
               pause: float = 0.005) -> None:
    """Poll ``cond()`` until true; fail naming ``what`` on timeout or if ``proc`` ended first."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            pytest.fail(f"the child exited ({proc.returncode}) before {what}:\n{tail}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(pause)


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def start_server_process(port: int, log_path: Path, out: Path, delay: float = 0.05) -> subprocess.Popen:
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); import chat_server as t; " \
           f"t.serve({port}, {str(log_path)!r}, {delay})"
    with open(out, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=fh, stderr=subprocess.STDOUT, env=CHILD_ENV,
                                start_new_session=True)

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_until(answers, f"the scripted server on port {port}", timeout=60, proc=proc, log=out, pause=0.05)
    return proc


def request_ids(bodies) -> list[str]:
    """A request's identity as the server sees it (messages and seed)."""
    return [json.dumps([b["messages"], b["seed"]], sort_keys=True) for b in bodies]


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# === 1. kills ==================================================================================================

KILLED_WRITE = """
import os, signal, sys
from workbench.store import atomic_path
with atomic_path(sys.argv[1], suffix=".parquet") as tmp:
    tmp.write_bytes(b"half a file")
    os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write, at a known point (no race with a watcher)
"""


def test_a_killed_atomic_write_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    """A writer killed between writing its temporary and renaming it leaves the old file intact and a
    temporary of the workbench's naming; the next write of that file removes it. Nothing else goes:
    not a running writer's temporary, not another host's, not another target's, not a user's file."""
    from workbench.store import _HOST, atomic_write_bytes, remove_stale_temporaries

    target = tmp_path / "x.parquet"
    target.write_bytes(b"old")
    with fault("kills", "SIGKILL inside an atomic write, then the same file written again") as f:
        proc = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(target)], capture_output=True, timeout=60)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        left = sorted(p.name for p in tmp_path.iterdir() if p.name != "x.parquet")
        assert len(left) == 1 and re.fullmatch(rf"\.x\.parquet\.wb-{_HOST}-\d+-[a-z0-9_]+\.parquet\.tmp", left[0])
        assert target.read_bytes() == b"old"
        dead = int(left[0].split("-")[2])
        keep = [f".x.parquet.wb-{_HOST}-{os.getpid()}-live1234.parquet.tmp",  # a writer still running
                f".x.parquet.wb-abcdef-{dead}-other123.parquet.tmp",  # another host's (shared folder)
                ".x.parquet.tmp", "notes.tmp", "x.parquet.wb-old.tmp"]  # not the workbench's naming
        other_target = f".y.json.wb-{_HOST}-{dead}-zz99.tmp"
        for name in [*keep, other_target]:
            (tmp_path / name).write_text("keep?")
        atomic_write_bytes(target, b"new")
        after = sorted(p.name for p in tmp_path.iterdir())
        f.saw(f"left by the kill: {left}; after the next write: {after}")
        assert target.read_bytes() == b"new" and sorted(after) == sorted([*keep, other_target, "x.parquet"])
        assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask_now())
        assert [p.name for p in remove_stale_temporaries(tmp_path)] == [other_target]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, "x.parquet"])
        f.keep()


def _umask_now() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


TRAIN_SCRIPT = """
import json, sys
import pandas as pd
import torch
torch.set_num_threads(1)
from workbench.models import BiEncoder
from workbench.training import TrainConfig, train

pairs, out = pd.read_parquet(sys.argv[1]), sys.argv[2]
encoder = BiEncoder.load("minilm", max_query_len=32, max_code_len=64)
config = TrainConfig(epochs=1, batch_size=4, lr=1e-4, warmup_ratio=0.0, seed=7, save_every_steps=2)
result = train(encoder, pairs, config, out, show_progress=False)
print(json.dumps({"resumed_from_step": result.resumed_from_step, "steps": result.steps}))
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_sigkill_during_training_then_resume_is_bit_identical(tmp_path):
    from stdlib_pairs import mine_stdlib_pairs
    from test_training import STDLIB_MODULES

    pairs_path = tmp_path / "pairs.parquet"
    mine_stdlib_pairs(STDLIB_MODULES, 24)[["id", "query", "code"]].to_parquet(pairs_path)  # 6 steps of 4
    script = write_script(tmp_path / "train_child.py", TRAIN_SCRIPT)
    ref_dir, dir_ = tmp_path / "uninterrupted", tmp_path / "killed"
    with fault("kills", "SIGKILL during training, then resume in a new process") as f:
        ref = spawn(script, pairs_path, ref_dir, log=tmp_path / "ref.log")  # in parallel: 1 thread each
        ready = tmp_path / "victim.paused"
        victim = spawn(script, pairs_path, dir_, log=tmp_path / "victim.log", pause_at="train.checkpoint#1",
                       ready=ready)
        resume = None
        try:
            kill_at(victim, ready, "the first checkpoint", tmp_path / "victim.log")
            state_path = dir_ / "checkpoint" / "state.json"
            state = json.loads(state_path.read_text())  # the commit marker is whole and names whole files
            assert state["completed"] is False and state["step"] == 2, state  # killed right after it, always
            assert not (dir_ / "model").exists() and not (dir_ / "train_config.json").exists()
            for name in state["files"].values():
                assert (dir_ / "checkpoint" / name).stat().st_size > 0
            resume = spawn(script, pairs_path, dir_, log=tmp_path / "resume.log")  # a new process
            for proc, name in ((ref, "ref"), (resume, "resume")):
                assert proc.wait(timeout=180) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
        finally:
            for p in (ref, victim, resume):
                if p is not None and p.poll() is None:
                    sigkill(p)
        lines = (tmp_path / "resume.log").read_text().splitlines()
        resumed = json.loads([line for line in lines if line.startswith("{")][-1])
        assert resumed == {"resumed_from_step": state["step"], "steps": 6}
        f.keep(state["step"])
        weights = "model/model.safetensors"
        same = _sha(ref_dir / weights) == _sha(dir_ / weights)
        f.lost = 0 if same else state["step"]
        assert same, "resumed weights differ from the uninterrupted run's"
        for table in ("dynamics.parquet", "history.parquet"):
            a, b = pd.read_parquet(ref_dir / table), pd.read_parquet(dir_ / table)
            pd.testing.assert_frame_equal(a.drop(columns="seconds", errors="ignore"),
                                          b.drop(columns="seconds", errors="ignore"))
        cfg_a, cfg_b = (json.loads((d / "train_config.json").read_text()) for d in (ref_dir, dir_))
        assert {k: v for k, v in cfg_a.items() if k != "seconds"} == {k: v for k, v in cfg_b.items() if k != "seconds"}
        assert f.lost == 0
        f.saw(f"resumed from step {state['step']} of 6; weights bit-identical (sha256 {_sha(dir_ / weights)[:12]}) "
              "and dynamics, history and config equal to the uninterrupted run")


CORPUS_SCRIPT = """
import json, sys
from workbench.corpus.build import CorpusSpec, build_corpus
df = build_corpus(CorpusSpec(**json.loads(sys.argv[1])), data_dir=sys.argv[2], progress=False)
print("built", len(df))
"""
CORPUS_SPEC = {
    "name": "faults",
    "in_distribution": ["stdlib:email", "stdlib:logging", "stdlib:asyncio", "stdlib:http", "stdlib:xml",
                        "stdlib:unittest", "stdlib:concurrent", "stdlib:importlib", "stdlib:multiprocessing"],
    "ood": ["stdlib:json"],
}


def test_sigkill_during_corpus_build_reuses_finished_sources(tmp_path):
    from workbench.corpus.build import CorpusSpec, build_corpus, corpus_dir, source_cache_paths
    from workbench.corpus.sources import parse_source

    spec = CorpusSpec(**CORPUS_SPEC)
    script = write_script(tmp_path / "corpus_child.py", CORPUS_SCRIPT)
    data, log = tmp_path / "data", tmp_path / "corpus.log"
    pieces = {s: source_cache_paths(parse_source(s), data) for s in [*spec.in_distribution, *spec.ood]}
    markers = [pieces[s][1] for s in spec.in_distribution[:2]]
    final = corpus_dir(spec, data) / "pairs.parquet"
    with fault("kills", "SIGKILL during corpus building, then rebuild") as f:
        ready = tmp_path / "corpus.paused"
        proc = spawn(script, json.dumps(CORPUS_SPEC), data, log=log, pause_at="corpus.source#2", ready=ready)
        kill_at(proc, ready, "two mined sources", log)
        finished = {s: p for s, p in pieces.items() if p[0].exists() and p[1].exists()}
        unfinished = [s for s in pieces if s not in finished]
        assert all(m.exists() for m in markers) and len(finished) == 2 and not final.exists(), sorted(finished)
        stamps = {s: [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths] for s, paths in finished.items()}
        # a torn write of an unfinished source (what a non-atomic writer would leave): its marker is absent,
        # so it must be mined again, not read
        torn = pieces[unfinished[0]][0]
        torn.parent.mkdir(parents=True, exist_ok=True)
        torn.write_bytes(b"PAR1 half a parquet file")

        out = run_child(script, json.dumps(CORPUS_SPEC), data)
        assert out.stdout.startswith("built")
        reused = [s for s, paths in finished.items()
                  if [(p.stat().st_ino, p.stat().st_mtime_ns) for p in paths] == stamps[s]]
        f.keep(len(reused))
        f.lost = len(finished) - len(reused)
        assert f.lost == 0, f"finished sources mined again: {sorted(set(finished) - set(reused))}"
        assert pd.read_parquet(torn).shape[0] > 0  # replaced by a complete file

        reference = build_corpus(spec, data_dir=tmp_path / "ref", progress=False)  # an uninterrupted build
        pd.testing.assert_frame_equal(pd.read_parquet(final), reference)
        for s, (pq, _) in pieces.items():
            ref_pq = source_cache_paths(parse_source(s), tmp_path / "ref")[0]
            pd.testing.assert_frame_equal(pd.read_parquet(pq), pd.read_parquet(ref_pq))
        f.saw(f"rebuild reused {len(reused)} of {len(pieces)} mined sources untouched, re-mined {len(unfinished)} "
              f"(a torn {torn.name} without its marker was ignored); corpus of {len(reference)} pairs equal")


CHATDANCE_SCRIPT = """
import json, sys
import pandas as pd
from workbench.augment.chatdance import rewrite_queries
from workbench.llm import CachedLLM, OpenAIBackend

pairs = pd.read_parquet(sys.argv[1])
llm = CachedLLM(OpenAIBackend(sys.argv[2], "scripted", max_retries=1, backoff=0.05, timeout=10, connect_timeout=2),
                sys.argv[3])
cands, log = rewrite_queries(llm, pairs, n=2, seed=3, show_progress=False)
cands.to_parquet(sys.argv[4])
log.to_frame().to_parquet(sys.argv[5])
print(json.dumps(llm.stats()))
"""


def test_sigkill_during_chatdance_reuses_every_cached_response(tmp_path):
    from stdlib_pairs import mine_stdlib_pairs

    from workbench.augment.chatdance import rewrite_queries

    pairs = mine_stdlib_pairs(("textwrap.py", "shlex.py", "fnmatch.py"), 6)[["id", "query", "code"]]
    pairs_path = tmp_path / "pairs.parquet"
    pairs.to_parquet(pairs_path)
    script = write_script(tmp_path / "chatdance_child.py", CHATDANCE_SCRIPT)
    cache, log = tmp_path / "cache", tmp_path / "chatdance.log"
    total = 12
    with ChatServer(delay=0.15) as srv, fault("kills", "SIGKILL during LLM augmentation (ChatDANCE), then rerun") as f:
        ready = tmp_path / "chatdance.paused"
        proc = spawn(script, pairs_path, srv.base_url, cache, tmp_path / "c.parquet", tmp_path / "l.parquet", log=log,
                     pause_at="llm.cached#5", ready=ready)
        kill_at(proc, ready, "5 cached responses", log)
        entries = [json.loads(p.read_text()) for p in cache.glob("??/*.json")]
        assert len(entries) == 5 < total
        cached_ids = set(request_ids([{"messages": e["request"]["messages"], "seed": e["request"]["sampling"]["seed"]}
                                      for e in entries]))
        asked_before = len(srv.seen)

        stats = json.loads(run_child(script, pairs_path, srv.base_url, cache, tmp_path / "c.parquet",
                                     tmp_path / "l.parquet").stdout.strip().splitlines()[-1])
        rerun_ids = request_ids(srv.seen[asked_before:])
        repeated = cached_ids & set(rerun_ids)
        f.keep(len(cached_ids))
        f.lost = len(repeated)
        assert f.lost == 0, f"{len(repeated)} cached responses were asked for again"
        assert len(rerun_ids) == total - len(cached_ids) and stats["hits"] == len(cached_ids)

        srv_fresh = len(srv.seen)
        cands, rlog = rewrite_queries(CachedLLM(OpenAIBackend(srv.base_url, "scripted", max_retries=0), tmp_path / "c2"),
                                      pairs, n=2, seed=3, show_progress=False)  # an uninterrupted run
        assert len(srv.seen) - srv_fresh == total
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "c.parquet"), cands)
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "l.parquet"), rlog.to_frame())
        f.saw(f"rerun: {stats['hits']} of {total} responses from the cache, {stats['misses']} asked; "
              f"{len(cands)} candidates equal to an uninterrupted run's")


# === 2. LLM server faults on a real socket =====================================================================


def test_server_that_accepts_and_never_answers_times_out():
    with socket.create_server(("127.0.0.1", 0)) as sock, fault("llm server", "accepts, never answers") as f:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # the kernel accepts; nobody reads or answers
        backend = OpenAIBackend(url, "m", max_retries=1, backoff=0.05, timeout=1.0, connect_timeout=1.0)
        t0 = time.monotonic()
        with pytest.raises(LLMError) as err:
            backend.chat(HELLO, GREEDY)
        elapsed = time.monotonic() - t0
        msg = f.saw(err.value)
        assert f"{url}/chat/completions" in msg and "ReadTimeout" in msg and "after 2 attempt" in msg
        assert 1.9 < elapsed < 5 and backend.requests == 2


def test_server_that_hangs_once_then_answers():
    with ChatServer([("hang",)]) as srv, fault("llm server", "hangs on one request, then answers") as f:
        backend = OpenAIBackend(srv.base_url, "m", max_retries=2, backoff=0.05, timeout=1.0, connect_timeout=1.0)
        text = backend.chat(HELLO, GREEDY)
        assert text == scripted_answer(srv.seen[1]) and backend.retries == 1 and len(srv.seen) == 2
        f.keep()
        f.saw(f"answer after 1 retry (timeout 1 s): {text!r}")


def test_500_then_success():
    with ChatServer([(("status", 500, {}, b"internal error"))]) as srv, fault("llm server", "HTTP 500 then 200") as f:
        backend = OpenAIBackend(srv.base_url, "m", max_retries=2, backoff=0.05)
        text = backend.chat(HELLO, GREEDY)
        assert text == scripted_answer(srv.seen[1]) and backend.retries == 1 and backend.requests == 2
        f.keep()
        f.saw(f"answer after 1 retry: {text!r}")


def test_truncated_body_is_retried_then_answered():
    with ChatServer([("truncate",)]) as srv, fault("llm server", "truncated response body, then a whole one") as f:
        backend = OpenAIBackend(srv.base_url, "m", max_retries=2, backoff=0.05, timeout=3)
        text = backend.chat(HELLO, GREEDY)
        assert text == scripted_answer(srv.seen[1]) and backend.retries == 1
        f.keep()
        f.saw(f"answer after 1 retry: {text!r}")
    with ChatServer([("truncate",)] * 5) as srv, fault("llm server", "truncated response body every time") as f:
        backend = OpenAIBackend(srv.base_url, "m", max_retries=1, backoff=0.05, timeout=3)
        with pytest.raises(LLMError) as err:
            backend.chat(HELLO, GREEDY)
        msg = f.saw(err.value)
        assert f"{srv.base_url}/chat/completions" in msg and "RemoteProtocolError" in msg and len(srv.seen) == 2


@pytest.mark.parametrize("body, name", [
    (b'{"choices": [{"message": {"role": "assistant", "content": "cut', "invalid JSON"),
    (json.dumps({"choices": []}).encode(), "empty choices"),
    (json.dumps({"choices": [{"text": "a completions-API answer"}]}).encode(), "choice without message"),
    (json.dumps({"choices": [{"message": {"role": "assistant"}}]}).encode(), "message without content"),
    (b"<html>502 Bad Gateway</html>", "an HTML page with status 200"),
])
def test_answers_that_are_not_chat_completions(body, name):
    with ChatServer([("raw", body)]) as srv, fault("llm server", f"200 with {name}") as f:
        with pytest.raises(LLMError) as err:
            OpenAIBackend(srv.base_url, "m", max_retries=2, backoff=0.05).chat(HELLO, GREEDY)
        msg = f.saw(err.value)
        assert f"{srv.base_url}/chat/completions" in msg and "not a chat completion" in msg
        assert body.decode()[:20] in msg and len(srv.seen) == 1


NULL_CONTENT = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": None}}]}).encode()


def test_null_content_is_a_failed_request_retried_then_reported():
    """A completion whose content is null is not an empty answer: it is retried, and when every
    attempt gets one the error says so and names the server."""
    with ChatServer([("raw", NULL_CONTENT)]) as srv, fault("llm server", "200 with content null, then an answer") as f:
        backend = OpenAIBackend(srv.base_url, "m", max_retries=2, backoff=0.05)
        text = backend.chat(HELLO, GREEDY)
        assert text == scripted_answer(srv.seen[1]) and text and backend.retries == 1 and len(srv.seen) == 2
        f.keep()
        f.saw(f"answer after 1 retry: {text!r}")
    with ChatServer([("raw", NULL_CONTENT)], then="last") as srv, fault("llm server", "200 with content null every time") as f:
        with pytest.raises(LLMError) as err:
            OpenAIBackend(srv.base_url, "m", max_retries=2, backoff=0.05).chat(HELLO, GREEDY)
        msg = f.saw(err.value)
        assert f"{srv.base_url}/chat/completions" in msg and "content is null" in msg and "3 attempt(s)" in msg
        assert len(srv.seen) == 3
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": [{"type": "text"}]}}]}).encode()
    with ChatServer([("raw", body)]) as srv, pytest.raises(LLMError, match="not a string"):
        OpenAIBackend(srv.base_url, "m", max_retries=2, backoff=0.05).chat(HELLO, GREEDY)

def test_server_killed_mid_job_keeps_answers_and_rerun_asks_only_missing(tmp_path):
    port, log_path = free_port(), tmp_path / "server-requests.jsonl"
    requests = [([{"role": "user", "content": f"Paraphrase query number {i}"}], GREEDY) for i in range(12)]
    cache = tmp_path / "cache"
    with fault("llm server", "server SIGKILLed during chat_many, restarted, job rerun") as f:
        server = start_server_process(port, log_path, tmp_path / "server1.out", delay=0.2)
        try:
            backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff=0.05, timeout=5,
                                    connect_timeout=1)
            llm = CachedLLM(backend, cache)
            killer = threading.Thread(target=lambda: (
                wait_until(lambda: len(read_jsonl(log_path)) >= 5, "5 answers", timeout=60), sigkill(server)))
            killer.start()
            with pytest.raises(LLMError) as err:
                llm.chat_many(requests, concurrency=2, show_progress=False)
            killer.join(timeout=60)
        finally:
            sigkill(server)
        msg = f.saw(err.value)
        assert f"http://127.0.0.1:{port}/v1/chat/completions" in msg and "ConnectError" in msg
        answered = read_jsonl(log_path)
        kept = [r for r in requests if llm.lookup(*r) is not None]
        assert 5 <= len(kept) < len(requests) and llm.entries() == len(kept)
        # every answer the client got before the kill is in the cache (the server may have answered one more
        # whose reply never arrived)
        assert len(answered) - len(kept) in (0, 1, 2)

        server = start_server_process(port, log_path, tmp_path / "server2.out")  # restarted on the same port
        try:
            before = len(read_jsonl(log_path))
            out = CachedLLM(backend, cache).chat_many(requests, concurrency=2, show_progress=False)
        finally:
            sigkill(server)
        rerun = request_ids(read_jsonl(log_path)[before:])
        kept_ids = set(request_ids([{"messages": m, "seed": s.seed} for m, s in kept]))
        f.keep(len(kept))
        f.lost = len(kept_ids & set(rerun))
        assert f.lost == 0 and len(rerun) == len(requests) - len(kept)
        assert out == [scripted_answer({"messages": m, "seed": s.seed}) for m, s in requests]
        f.saw(f"{msg[:160]} ... rerun after restart asked only the {len(rerun)} missing of {len(requests)}")


# === 3. artifacts and execution ================================================================================


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x5A]))


def test_split_gguf_with_a_corrupted_part_is_refused(tmp_path, monkeypatch):
    from workbench.llm import (
        LOCAL_MODELS,
        LocalModel,
        ModelChecksumError,
        assembled_model_path,
        local_model_path,
    )

    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    smol = LOCAL_MODELS["smollm2-135m"]
    blob = local_model_path("smollm2-135m").read_bytes()  # sha256-checked in place
    cut = [0, len(blob) // 3, 2 * len(blob) // 3, len(blob)]
    parts = []
    for i in range(3):
        parts.append(tmp_path / "parts" / f"part0{i + 1}.bin")
        parts[-1].parent.mkdir(exist_ok=True)
        parts[-1].write_bytes(blob[cut[i]:cut[i + 1]])
    model = LocalModel("smol-split", "SmolLM2 in three parts", smol.file, smol.sha256, ("p1", "p2", "p3"),
                       ("a", "b", "c"), "0")
    with fault("artifacts", "GGUF assembled from parts, one part corrupted") as f:
        bad = [tmp_path / "bad" / p.name for p in parts]
        bad[0].parent.mkdir()
        for src, dst in zip(parts, bad):
            dst.write_bytes(src.read_bytes())
        _flip(bad[1], 12345)
        actual = hashlib.sha256(b"".join(p.read_bytes() for p in bad)).hexdigest()
        target_dir = tmp_path / "data" / "models" / "llm"
        with pytest.raises(ModelChecksumError) as err:
            assembled_model_path(model, parts=bad)
        msg = f.saw(err.value)
        assert str(target_dir / smol.file) in msg and smol.sha256 in msg and actual in msg and "refusing" in msg
        left = {p.name for p in target_dir.iterdir()} - {"verified.json"}  # the hash records of local_model_path
        assert not left, f"a bad or temporary file was left: {left}"
        good = assembled_model_path(model, parts=parts)  # the good parts: assembled, checked, marked
        assert good == target_dir / smol.file and _sha(good) == smol.sha256
        f.keep()

    with fault("artifacts", "assembled GGUF corrupted on disk after its check") as f:
        _flip(good, 777)
        rebuilt = assembled_model_path(model, parts=parts)  # mtime changed: re-hashed, rebuilt from the parts
        f.keep()
        assert _sha(rebuilt) == smol.sha256
        f.saw(f"{rebuilt.name} re-verified (its stamp changed) and rebuilt from its parts")


def test_hostile_code_is_stopped_in_the_sandbox(tmp_path):
    from workbench.sandbox import run_calls_in_sandbox

    marker = tmp_path / "outside" / "marker.txt"
    marker.parent.mkdir()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0)
        port = listener.getsockname()[1]
        calls = {
            "loops forever": "spin()",
            "allocates 4 GB": "len(bytearray(4 << 30))",
            "forks": "os.fork()",
            "starts a process": "__import__('subprocess').run(['touch', " + repr(str(marker)) + "])",
            "opens a socket": f"socket.create_connection(('127.0.0.1', {port}), timeout=1)",
            "connects a raw socket": f"socket.socket().connect(('127.0.0.1', {port}))",
            "writes a marker outside its folder": f"open({str(marker)!r}, 'w').write('pwned')",
            "os.open()s a marker outside its folder": f"os.open({str(marker)!r}, os.O_CREAT | os.O_WRONLY)",
            "renames into a folder outside": f"open('x', 'w').close() or os.rename('x', {str(marker)!r})",
            "still works afterwards": "sum(range(10))",
        }
        source = "import os, socket\ndef spin():\n    while True:\n        pass\n"
        t0 = time.monotonic()
        results = dict(zip(calls, run_calls_in_sandbox(source, list(calls.values()), timeout=1.0, memory_mb=512)))
        elapsed = time.monotonic() - t0
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    expected = {"loops forever": ("timeout", "TimeoutError"), "allocates 4 GB": ("error", "MemoryError"),
                "forks": ("error", "PermissionError"), "starts a process": ("error", "PermissionError"),
                "opens a socket": ("error", "PermissionError"), "connects a raw socket": ("error", "PermissionError"),
                "writes a marker outside its folder": ("error", "PermissionError"),
                "os.open()s a marker outside its folder": ("error", "PermissionError"),
                "renames into a folder outside": ("error", "PermissionError")}
    for name, (status, exc_type) in expected.items():
        r = results[name]
        with fault("artifacts", f"sandboxed code that {name}") as f:
            f.saw(f"{r.status}: {r.exc_type}: {r.exc_message}")
            assert (r.status, r.exc_type) == (status, exc_type), r
            assert r.exc_message or r.exc_type == "MemoryError"  # MemoryError() carries no text
    assert not marker.exists()
    assert results["still works afterwards"].value_repr == "45"
    assert results["loops forever"].seconds < 2.0 and elapsed < 1.0 * (len(calls) + 1) + 10
    assert "outside its folder" in results["writes a marker outside its folder"].exc_message


# --- no pickle loaded from anything a user did not create ------------------------------------------------------

UNSAFE_HELP = ("torch.load without weights_only=True, pickle/dill/joblib/cloudpickle loads, pandas.read_pickle, "
               "np.load(allow_pickle=True)")


UNPICKLERS = ("pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle")


def _kw(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def unsafe_loads(source: str, filename: str) -> list[str]:
    """``file:line: what`` for every call in ``source`` that can unpickle data (see UNSAFE_HELP)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ImportFrom) and node.module in UNPICKLERS:
            for alias in node.names:
                if alias.name in ("load", "loads", "Unpickler"):
                    found.append(f"{filename}:{node.lineno}: from {node.module} import {alias.name}")
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        leaf = name.rsplit(".", 1)[-1]
        head = name.split(".", 1)[0]
        bad = None
        if leaf == "load" and head == "torch":
            wo = _kw(node, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                bad = "torch.load without weights_only=True"
        elif head in UNPICKLERS and leaf in (
                "load", "loads", "Unpickler"):
            bad = f"{name}(): unpickles"
        elif leaf in ("read_pickle", "Unpickler"):
            bad = f"{name}(): unpickles"
        elif leaf == "load" and head in ("np", "numpy"):
            ap = _kw(node, "allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                bad = "np.load with allow_pickle not False"
        if bad:
            found.append(f"{filename}:{node.lineno}: {bad}")
    return found


def test_no_unsafe_loads_in_the_package():
    with fault("artifacts", "unpickling loads in the package source") as f:
        planted = ("import torch, pickle, numpy as np\nimport pandas as pd\n"
                   "a = torch.load('x.pt')\nb = torch.load('x.pt', weights_only=False)\nc = pickle.loads(b'')\n"
                   "d = np.load('x.npy', allow_pickle=True)\ne = pd.read_pickle('x.pkl')\n"
                   "ok = torch.load('x.pt', weights_only=True)\nok2 = np.load('x.npy')\n"
                   "ok3 = np.load('x.npy', allow_pickle=False)\nfrom joblib import load\n")
        caught = unsafe_loads(planted, "planted.py")
        assert sorted(int(c.split(":")[1]) for c in caught) == [3, 4, 5, 6, 7, 11], caught  # the guard can fail
        files = sorted([*(ROOT / "workbench").rglob("*.py"), *(ROOT / "tools").glob("*.py")])  # + notebook code
        hits = [h for p in files for h in unsafe_loads(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
        f.saw(f"{len(files)} package and notebook-builder files scanned for {UNSAFE_HELP}: {len(hits)} found")
        assert not hits, "unsafe loads (use weights_only=True / allow_pickle=False):\n" + "\n".join(hits)


# --- servers the project starts: 127.0.0.1 and a token ---------------------------------------------------------


@pytest.mark.slow
def test_embedded_llama_server_binds_loopback_and_needs_its_token(llm_server):
    import httpx
    import psutil

    with fault("artifacts", "embedded llama.cpp server: loopback only, random token required") as f:
        leader = psutil.Process(llm_server.process.pid)
        procs = [leader, *leader.children(recursive=True)]
        listening = [c.laddr for p in procs for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
        assert listening and all(a.ip == "127.0.0.1" for a in listening), listening
        assert llm_server.port in {a.port for a in listening}
        cmdline = " ".join(leader.cmdline())
        assert "--host 127.0.0.1" in cmdline and llm_server.api_key not in cmdline  # others can read a command line
        assert leader.environ().get("HOST") == "127.0.0.1"  # uvicorn prefers HOST over --host
        url = f"{llm_server.base_url}/models"
        codes = [httpx.get(url, headers=h, timeout=10, trust_env=False).status_code
                 for h in ({}, {"Authorization": "Bearer guessed"}, {"Authorization": f"Bearer {llm_server.api_key}"})]
        assert codes == [401, 401, 200], codes
        body = {"model": llm_server.model, "messages": HELLO, "max_tokens": 2}
        anon = httpx.post(f"{llm_server.base_url}/chat/completions", json=body, timeout=30, trust_env=False)
        assert anon.status_code == 401
        # a client that cannot read this user's private token folder (another user's, here one whose folder
        # is elsewhere) does not know the token; this user's other processes read it (test_llm)
        foreign = _foreign_client_chat(llm_server)
        assert "HTTP 401" in foreign and f"{llm_server.base_url}/chat/completions" in foreign, foreign
        text = OpenAIBackend(llm_server.base_url, llm_server.model, api_key="", timeout=60).chat(
            HELLO, Sampling(temperature=0.0, top_p=1.0, max_tokens=3, seed=1))
        assert isinstance(text, str) and text.strip()  # this process's backends send the token by themselves
        f.saw(f"listening on {sorted({(a.ip, a.port) for a in listening})}; without the token: HTTP {codes[0]} "
              f"'Invalid API key'; with it: {codes[2]}")


def _foreign_client_chat(server) -> str:
    """The error a chat request from a process that cannot read the server's token file (its private
    token folder is another one, as another user's is) ends with."""
    code = ("import sys\nfrom workbench.llm import OpenAIBackend, Sampling\n"
            f"b = OpenAIBackend({server.base_url!r}, {server.model!r}, api_key='', max_retries=0, timeout=30)\n"
            "b.chat([{'role': 'user', 'content': 'hi'}], Sampling(max_tokens=2))\n")
    with tempfile.TemporaryDirectory() as elsewhere:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={**CHILD_ENV, "XDG_RUNTIME_DIR": elsewhere})
    assert proc.returncode != 0, proc.stdout
    return proc.stderr.strip().splitlines()[-1]


def test_jupyterlab_started_by_the_project_binds_loopback_with_a_token():
    with fault("artifacts", "JupyterLab started by the project: loopback and a token") as f:
        launches = []  # (file, the launch's arguments)
        for p in [*(ROOT / "workbench").rglob("*.py"), TESTS / "labtools.py"]:
            for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
                if isinstance(node, ast.List | ast.Tuple) and any(
                        isinstance(e, ast.Constant) and e.value in ("lab", "jupyter-lab") for e in node.elts):
                    launches.append((p, ast.unparse(node)))
                elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("ServerApp"):
                    launches.append((p, ast.unparse(node)))
        for p in [ROOT / "Makefile", *(ROOT / "tools").rglob("*.sh")]:
            if p.exists():
                launches += [(p, line) for line in p.read_text().splitlines() if re.search(r"jupyter[ -]lab", line)]
        assert launches, "no JupyterLab launch found: the guard checks nothing"
        for p, around in launches:
            assert "--ip=127.0.0.1" in around and "token=" in around, f"{p}: JupyterLab without --ip=127.0.0.1 and a token"
        f.saw(f"{len(launches)} JupyterLab launch(es) ({', '.join(sorted({p.name for p, _ in launches}))}) "
              "bind 127.0.0.1 with a random token (labtools checks a request without it is refused)")
