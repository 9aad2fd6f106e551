"""A standard Hugging Face checkpoint from a GGUF file (llama family).

`repro models import FILE.gguf --output DIR` writes what every other stage loads: safetensors
weights, config.json, the tokenizer with its chat template, generation_config.json, and
`repro-import.json` (the source file's sha256 and the conversion). transformers reads the GGUF
(with the `gguf` package) and dequantizes every tensor to float32; its model cannot be saved as
it is (it carries a GGUF quantization config), so the state dict goes into a plain model of
the same config, which saves normally. A tied head stays tied.

The header is checked before anything loads: the magic, a complete tensor table whose data lies
inside the file (a truncated download fails here, not halfway through), and the architecture
(llama only: Llama, Mistral and SmolLM2 files all declare `llama`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from repro import hashing, io
from repro.errors import ReproError

SUPPORTED_ARCHITECTURES = ("llama",)
RECORD = "repro-import.json"
MAGIC = b"GGUF"


@dataclass(frozen=True)
class Header:
    """What a GGUF file says about itself."""

    architecture: str
    name: str | None
    file_type: int | None  # llama.cpp's LLAMA_FTYPE (3: mostly Q4_1)
    tensors: int
    tensor_types: list[str]  # the distinct quantization types of its tensors
    size: int


@dataclass(frozen=True)
class ImportRecord:
    """repro-import.json: where the checkpoint came from and how it was converted."""

    source: str  # the file's name (not its path: the record says what, not where)
    source_sha256: str
    source_bytes: int
    architecture: str
    gguf_name: str | None
    file_type: int | None
    tensor_types: list[str]
    conversion: dict[str, Any]  # what converted it and how (dequantized dtype, library versions)
    weights_sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"schema": "repro.import/1", **asdict(self)}


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None or not field.data:
        return None
    value = field.parts[field.data[0]]
    try:
        return (
            bytes(value).decode() if value.dtype.kind == "u" and value.dtype.itemsize == 1 else value.item()
        )
    except (ValueError, UnicodeDecodeError):
        return None


def read_header(path: str | os.PathLike) -> Header:
    """The file's header, or one line saying why it is not a complete llama-family GGUF."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ReproError(f"{path}: cannot read ({exc.strerror})") from None
    if magic != MAGIC:
        raise ReproError(f"{path}: not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    import gguf  # deferred: numpy-heavy, only the import needs it

    size = path.stat().st_size
    try:
        reader = gguf.GGUFReader(path)
        ends = [int(t.data_offset) + int(t.n_bytes) for t in reader.tensors]
    except Exception as exc:  # noqa: BLE001 - the reader's errors on a cut file are numpy's
        raise ReproError(
            f"{path}: truncated or corrupt GGUF ({size} bytes; the reader stopped: {str(exc)[:80]})"
        ) from None
    if not ends or max(ends) > size:
        raise ReproError(f"{path}: truncated GGUF: tensor data runs past the end of the file ({size} bytes)")
    architecture = _field(reader, "general.architecture")
    if not isinstance(architecture, str):
        raise ReproError(f"{path}: GGUF without general.architecture")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise ReproError(
            f"{path}: architecture '{architecture}' is not supported "
            f"(repro imports {', '.join(SUPPORTED_ARCHITECTURES)} GGUF files)"
        )
    types = sorted({t.tensor_type.name for t in reader.tensors})
    return Header(
        architecture, _field(reader, "general.name"), _field(reader, "general.file_type"),
        len(reader.tensors), types, size,
    )  # fmt: skip


def import_gguf(source: str | os.PathLike, output: str | os.PathLike) -> ImportRecord:
    """Write the Hugging Face folder for `source` at `output` (built aside, then renamed, so a
    killed import leaves no half folder). An existing `output` is refused."""
    source, output = Path(source), Path(output)
    header = read_header(source)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ReproError(f"{output}: exists and is not empty; choose another --output")
    output.parent.mkdir(parents=True, exist_ok=True)
    sha = hashing.file_sha256(source)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        conversion = _convert(source, work)
        record = ImportRecord(
            source=source.name,
            source_sha256=sha,
            source_bytes=header.size,
            architecture=header.architecture,
            gguf_name=header.name,
            file_type=header.file_type,
            tensor_types=header.tensor_types,
            conversion=conversion,
            weights_sha256=hashing.weights_sha256(work),
        )
        io.write_json(work / RECORD, record.to_json())
        if output.is_dir():
            output.rmdir()  # an empty folder the user made
        os.replace(work, output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return record


def _convert(source: Path, folder: Path) -> dict[str, Any]:
    # deferred: torch and transformers take seconds to import
    import gguf
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    directory, name = str(source.parent), source.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - transformers' GGUF errors vary by version
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReproError(f"{source}: transformers cannot load this GGUF: {first[:160]}") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):  # save_pretrained refuses a GGUF-quantized model
        del config.quantization_config
    plain = type(loaded)(config)  # a plain model of the same config takes the dequantized weights
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    allowed_missing = {"lm_head.weight"} if tied else set()
    if set(missing) - allowed_missing or unexpected:
        raise ReproError(
            f"{source}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    if tied:
        plain.tie_weights()
    plain.save_pretrained(folder)
    # the GGUF's context length (transformers reads none for the tokenizer: it says 1e30)
    tokenizer.model_max_length = int(getattr(config, "max_position_embeddings", 2048))
    tokenizer.save_pretrained(folder)
    generation = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    generation.save_pretrained(folder)
    return {
        "by": "transformers from_pretrained(gguf_file=...), state dict into a plain model",
        "dtype": "float32",
        "dequantized": True,
        "tied_embeddings": tied,
        "parameters": sum(p.numel() for p in plain.parameters()),
        "transformers": transformers.__version__,
        "gguf": getattr(gguf, "__version__", None) or _version("gguf"),
        "torch": torch.__version__,
    }


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def read_record(folder: str | os.PathLike) -> dict[str, Any] | None:
    """A folder's repro-import.json, if it was imported by repro."""
    return io.read_json(Path(folder) / RECORD)
