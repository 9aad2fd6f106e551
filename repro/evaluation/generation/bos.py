"""The BOS guard at generation time: the token ids an engine is about to generate from are
checked for a doubled BOS (repro.data.bosguard counts it; the data layer checks training)."""

from __future__ import annotations

from repro.errors import ReproError


def check_bos(tokenizer, prompt_ids: list[list[int]], expected: int, what: str) -> None:
    """The BOS guard at generation time: refuse prompts with more leading BOS than `expected`."""
    from repro.data import bosguard

    bos = tokenizer.bos_token_id
    if bos is None:
        return
    for ids in prompt_ids:
        count = bosguard.leading(ids, bos)
        if count > expected:
            raise ReproError(
                f"{what}: a prompt starts with {count} BOS where {expected} expected: {bosguard.FIX} "
                "(or pass --allow-double-bos)"
            )
