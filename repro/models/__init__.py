"""Checkpoints repro can make itself: a Hugging Face folder from a GGUF file (`gguf`), and the
built-in models a setting names as `repro:NAME` (`catalog`: recipes/models/NAME.yaml), fetched
from a pinned source, checked against its sha256 and kept under $REPRO_CACHE/models/."""
