"""The chat template the representation selectors (BETR, RDS+, MONA) apply before embedding.

A row is *instruction-style* when its batch has a ``prompt`` column and a response column
(``response``, else ``answer``) and both are non-empty in that row. Such a row becomes the Tulu
template that RDS+ (Ivison et al. 2025) embeds, prompt and response together::

    <|user|>\\n{prompt}\\n<|assistant|>\\n{response}

(the reference appends the model's end-of-sequence string ``</s>``; we leave it out because our
tokenizers have no such string and a constant suffix shifts every pooled vector alike). Every
other row, and every row of a batch without those columns (a raw pool), is embedded as its
``text`` unchanged, as BETR embeds documents raw. The shared target sets carry ``prompt`` and
``answer`` for task data (HumanEval, CHAMP) and leave them empty for held-out domain documents.

Kept here (not in ``lmsieve.schemas``) because it is a choice of these selectors' inputs, not a
property of the document schema.
"""
from __future__ import annotations

import pyarrow as pa

from lmsieve.schemas.document import text_array

PROMPT = "prompt"
RESPONSE_COLUMNS = ("response", "answer")
#: Columns a selector using the template should request from batches (absent ones are fine).
TEMPLATE_COLUMNS = ("text", PROMPT) + RESPONSE_COLUMNS
USER, ASSISTANT = "<|user|>\n", "\n<|assistant|>\n"


def apply_template(prompt: str, response: str) -> str:
    """One prompt/response pair in the Tulu template."""
    return f"{USER}{prompt}{ASSISTANT}{response}"


def template_texts(batch) -> list[str]:
    """Texts to embed, in row order: templated where a row has a prompt and a response."""
    texts = text_array(batch).to_pylist()
    if not isinstance(batch, (pa.Table, pa.RecordBatch)):
        if hasattr(batch, "columns") and hasattr(batch, "__getitem__"):  # pandas
            batch = pa.Table.from_pandas(batch, preserve_index=False)
        else:
            return texts
    names = batch.schema.names
    resp = next((c for c in RESPONSE_COLUMNS if c in names), None)
    if PROMPT not in names or resp is None:
        return texts
    prompts, responses = batch.column(PROMPT).to_pylist(), batch.column(resp).to_pylist()
    return [apply_template(p, r) if p and r else t for t, p, r in zip(texts, prompts, responses)]
