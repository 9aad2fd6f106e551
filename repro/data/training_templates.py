"""Chat templates the paper's settings train with, by name, and the rule that picks one.

A setting's `chat_template` is either "tokenizer" (the model's own template), a name
below, or a literal Jinja string (as alignment-handbook configs allow). Each named
template renders the same text as the original it stands for; the golden tests in
tests/test_data_golden.py check the resulting token ids against the original code.

Fidelity quirks of the original (scripts/run_simpo.py) reproduced here:
- `mistral_path_swap`: when the model path contains "mistral" (case-insensitive), the
  tokenizer's template is replaced by the SimPO repo's Mistral template, also for a local
  path of a non-Mistral model that happens to contain the word.
- empty system message: inserted before the prompt when the template *text* mentions
  "system" (or "<|im_start|>"), by substring, as alignment-handbook does.
"""

from __future__ import annotations

from repro.errors import unknown

# The Llama 3 Instruct template (also the Llama-3-Base SFT run's); it never mentions
# the system role by name, so no empty system turn is inserted for Llama 3.
LLAMA3 = (
    "{% for m in messages %}"
    "{% set content = '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

# scripts/run_simpo.py MISTRAL_CHAT_TEMPLATE: a system turn is prefixed to the first user
# turn; user turns are "[INST] ... [/INST]", assistant turns " content eos"; no BOS.
MISTRAL_SIMPO = (
    "{% if messages[0]['role'] == 'system' %}{% set turns = messages[1:] %}"
    "{% set prefix = messages[0]['content'].strip() + '\\n\\n' %}"
    "{% else %}{% set turns = messages %}{% set prefix = '' %}{% endif %}"
    "{% for m in turns %}"
    "{% if loop.index0 == 0 %}{% set content = prefix + m['content'] %}{% else %}{% set content = m['content'] %}{% endif %}"
    "{% if m['role'] == 'user' %}{{ '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif m['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

# gemma-2-9b-it-simpo.yaml's chat_template: Gemma's, with a system turn merged into the
# first user turn and "assistant" rendered as "model".
GEMMA2_SIMPO = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{% set prefix = messages[0]['content'] | trim + '\\n\\n' %}"
    "{% set messages = messages[1:] %}{% else %}{% set prefix = '' %}{% endif %}"
    "{% for m in messages %}"
    "{% if loop.index0 == 0 %}{% set content = prefix + m['content'] %}{% else %}{% set content = m['content'] %}{% endif %}"
    "{% if m['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = m['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + content | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

# The Zephyr template of alignment-handbook/zephyr-7b-sft-full (Mistral-Base).
ZEPHYR = (
    "{% for m in messages %}\n"
    "{% if m['role'] == 'user' %}\n{{ '<|user|>\\n' + m['content'] + eos_token }}\n"
    "{% elif m['role'] == 'system' %}\n{{ '<|system|>\\n' + m['content'] + eos_token }}\n"
    "{% elif m['role'] == 'assistant' %}\n{{ '<|assistant|>\\n' + m['content'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
    "{% endfor %}"
)

# The tiny CPU setting: a Llama-3-like layout over the tiny word-level vocabulary.
TINY = (
    "{% for m in messages %}{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
    "{{ '<' + m['role'] + '> ' + m['content'] | trim + ' <eot> ' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<assistant> ' }}{% endif %}"
)

NAMED = {
    "llama3": LLAMA3,
    "mistral-simpo": MISTRAL_SIMPO,
    "gemma2-simpo": GEMMA2_SIMPO,
    "zephyr": ZEPHYR,
    "tiny": TINY,
}


def lookup(name_or_text: str) -> str | None:
    """The Jinja text for a setting's chat_template; None means "the tokenizer's own"."""
    if name_or_text == "tokenizer":
        return None
    if name_or_text in NAMED:
        return NAMED[name_or_text]
    if "{%" in name_or_text or "{{" in name_or_text:
        return name_or_text  # a literal template (alignment-handbook configs)
    raise unknown("chat template", name_or_text, [*NAMED, "tokenizer"])


def select(
    chat_template: str, model_name_or_path: str, *, mistral_path_swap: bool = True
) -> tuple[str | None, list[str]]:
    """The template to use and notes on why: the setting's choice, or the Mistral path swap."""
    notes = []
    text = lookup(chat_template)
    if mistral_path_swap and "mistral" in model_name_or_path.lower() and text is None:
        text = MISTRAL_SIMPO
        notes.append(
            "model path contains 'mistral': the SimPO repo's Mistral template replaces the tokenizer's"
        )
    return text, notes


def wants_system_message(template_text: str) -> bool:
    """alignment-handbook's maybe_insert_system_message test, on the template text."""
    return "system" in template_text or "<|im_start|>" in template_text
