"""Generation behind one interface: transformers `generate` (any device) or vLLM (GPU, optional).

Decoding modes, named for what they do:
- `greedy`: argmax decoding;
- `beam1`: beam search of width 1, what alpaca-eval 0.6.2 actually ran for configs with
  `do_sample: true` (deterministic; the configured temperature is ignored). In transformers
  this is greedy decoding; vLLM runs its beam-search path with width 1;
- `sample`: temperature / top-p sampling with a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repro.errors import ReproError

MODES = ("greedy", "beam1", "sample")


@dataclass
class Decoding:
    mode: str = "greedy"
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    stop_token_ids: list[int] | None = None
    seed: int = 0

    @classmethod
    def alpaca_eval(cls, config: dict[str, Any], *, max_new_tokens: int | None = None) -> Decoding:
        """The decoding the published numbers used: do_sample true under 0.6.2 meant beam width 1."""
        mode = (
            "beam1" if config.get("do_sample") else ("greedy" if not config.get("temperature") else "sample")
        )
        return cls(
            mode=mode,
            max_new_tokens=max_new_tokens or config["max_new_tokens"],
            temperature=config.get("temperature") or 0.0,
            top_p=config.get("top_p") or 1.0,
            stop_token_ids=config.get("stop_token_ids"),
        )


class TransformersBackend:
    """transformers generate on raw prompt strings (the templates already hold the chat format)."""

    def __init__(
        self,
        model_path: str,
        *,
        tokenizer=None,
        device: str | None = None,
        batch_size: int = 8,
        add_special_tokens: bool = True,
    ):
        import torch
        from transformers import AutoModelForCausalLM

        from repro.data import tokenizers

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(self.device).eval()
        self.tokenizer = tokenizer or tokenizers.load(model_path)
        self.tokenizer.padding_side = "left"
        self.batch_size = batch_size
        self.add_special_tokens = add_special_tokens  # vLLM tokenizes prompts with special tokens

    def generate(self, prompts: list[str], decoding: Decoding, progress=None) -> list[str]:
        import torch

        if decoding.mode not in MODES:
            raise ReproError(f"unknown decoding mode '{decoding.mode}'")
        torch.manual_seed(decoding.seed)
        stop = list(decoding.stop_token_ids or []) + [self.tokenizer.eos_token_id]
        outputs: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            enc = self.tokenizer(
                batch, return_tensors="pt", padding=True, add_special_tokens=self.add_special_tokens
            )
            enc = {k: v.to(self.device) for k, v in enc.items()}
            kwargs: dict[str, Any] = {
                "max_new_tokens": decoding.max_new_tokens,
                "eos_token_id": stop,
                "pad_token_id": self.tokenizer.pad_token_id,
            }
            if decoding.mode == "sample":
                kwargs.update(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p)
            else:  # greedy, and beam search of width 1 (the same argmax path in transformers)
                kwargs.update(do_sample=False, num_beams=1)
            with torch.no_grad():
                out = self.model.generate(**enc, **kwargs)
            for row in out[:, enc["input_ids"].shape[1] :]:
                ids = [int(t) for t in row]
                for i, t in enumerate(ids):  # cut at the first stop token
                    if t in stop:
                        ids = ids[:i]
                        break
                outputs.append(self.tokenizer.decode(ids, skip_special_tokens=True).strip())
            if progress:
                progress(len(batch))
        return outputs


class VLLMBackend:  # pragma: no cover - needs a GPU and vllm
    """vLLM: `beam1` runs beam search of width 1 as alpaca-eval 0.6.2 did (use_beam_search on
    vLLM <= 0.6.2, LLM.beam_search with beam_width 1 on newer versions)."""

    whole_set = True  # one call samples every prompt (vLLM batches internally)

    def __init__(
        self,
        model_path: str,
        *,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        add_special_tokens: bool = True,
    ):
        self.add_special_tokens = add_special_tokens  # False: prompts go in as token ids, no BOS added
        try:
            import vllm
        except ImportError:
            raise ReproError("vllm is not installed (GPU only): pip install -r env/lock-gpu.txt") from None
        self.vllm = vllm
        self.llm = vllm.LLM(model=model_path, tensor_parallel_size=tensor_parallel_size, seed=seed)

    def generate(self, prompts: list[str], decoding: Decoding, progress=None) -> list[str]:
        vllm = self.vllm
        if decoding.mode == "beam1":
            params_cls = getattr(vllm, "BeamSearchParams", None) or vllm.sampling_params.BeamSearchParams
            params = params_cls(beam_width=1, max_tokens=decoding.max_new_tokens)
            results = self.llm.beam_search([{"prompt": p} for p in prompts], params)
            return [r.sequences[0].text.strip() for r in results]
        params = vllm.SamplingParams(
            max_tokens=decoding.max_new_tokens,
            temperature=decoding.temperature if decoding.mode == "sample" else 0.0,
            top_p=decoding.top_p,
            stop_token_ids=decoding.stop_token_ids,
            seed=decoding.seed,
        )
        inputs: list[Any] = prompts
        if not self.add_special_tokens:  # the template wrote the BOS: tokenize without adding one
            tokenizer = self.llm.get_tokenizer()
            inputs = [
                {"prompt_token_ids": tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts
            ]
        return [o.outputs[0].text.strip() for o in self.llm.generate(inputs, params)]


def backend(name: str, model_path: str, **kwargs: Any):
    if name == "transformers":
        return TransformersBackend(model_path, **kwargs)
    if name == "vllm":
        return VLLMBackend(model_path)
    raise ReproError(f"unknown generation backend '{name}' (transformers or vllm)")
