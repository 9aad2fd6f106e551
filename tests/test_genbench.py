"""`repro bench generate`'s presets (repro/perf/generation_speed.py): what each builds, not its speed.

Oracle for `cpu-long`: the checkpoint it builds, read back with transformers: 1,024 positions,
an all-zero EOS output row, and greedy answers of the promised length (no early stop).
"""

from __future__ import annotations

from repro.perf import generation_speed


def test_every_preset_loads_and_names_known_decodings():
    for name in ("cpu-tiny", "cpu-long"):
        preset = generation_speed.get_preset(name)
        for decoding in preset.decodings:
            mode, search = generation_speed.decoding_of(decoding, preset.max_new_tokens)
            mode.check()
            assert search in ("one-pass", "stepwise")
    assert generation_speed.get_preset("cpu-long").max_new_tokens <= 512


def test_cpu_long_builds_a_model_whose_answers_do_not_stop_early(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from repro.evaluation import generation
    from repro.evaluation.generation.decoding import Decoding

    preset = generation_speed.get_preset("cpu-long")
    model, ids = generation_speed.prepare(preset, tmp_path)
    policy = AutoModelForCausalLM.from_pretrained(model)
    assert policy.config.max_position_embeddings == 1024
    assert torch.count_nonzero(policy.lm_head.weight[policy.config.eos_token_id]) == 0
    backend = generation.backend("transformers", str(model), batch_size=8)
    completions = backend.complete(ids[:8], Decoding("beam1", 96), lambda i, c: None)
    assert [len(c) for c in completions] == [96] * 8
