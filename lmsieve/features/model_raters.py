"""Model raters for Meta-rater that run offline: a causal LM's perplexity and lid.176's English probability.

* :class:`PerplexityRater`: per-document perplexity exp(mean token NLL) of a Hugging Face causal LM
  (default SmolLM2-135M, ``lmsieve models fetch smollm2-135m``), loaded with
  ``AutoModelForCausalLM``/``AutoTokenizer`` from the resolved directory, fp32, on ``device``
  (default CPU), batched (right padding, attention mask) and truncated to the first ``max_tokens``
  tokens (default 512: perplexity of a document's opening is what the quality raters of
  RedPajama/CCNet use, and it bounds the CPU cost). Lower perplexity is more "fluent"; Meta-rater's
  weights are ≥ 0, so pass ``signs={"perplexity": -1}`` to reward low perplexity. A document
  with fewer than two tokens has no next-token loss: NaN (scaled to 0).
* :class:`EnglishRater`: fastText lid.176's probability of ``__label__en`` (``lmsieve models fetch
  lid176``; ``fasttext.load_model`` on ``lid.176.ftz``), on the text with newlines replaced by
  spaces (fastText predicts one line), k = -1 labels so English's probability is read even when
  it is not the top label.

Both resolve their model reference with :func:`lmsieve.models.resolve` (a fetched name or a local
path); nothing is downloaded at run time. Models load lazily on first use and are not pickled
(Beam workers load their own copy).
"""
from __future__ import annotations

import numpy as np

from lmsieve.schemas.document import text_array


class PerplexityRater:
    """Perplexity of a causal LM over each document's first ``max_tokens`` tokens."""

    def __init__(self, model: str = "smollm2-135m", *, max_tokens: int = 512, batch_size: int = 8,
                 device: str = "cpu"):
        self.ref, self.max_tokens, self.batch_size, self.device = model, int(max_tokens), int(batch_size), device
        self._lm = None

    def __getstate__(self):
        return {**self.__dict__, "_lm": None}

    def _load(self):
        if self._lm is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from lmsieve.models import resolve

            path = str(resolve(self.ref))
            tok = AutoTokenizer.from_pretrained(path)
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            tok.padding_side = "right"
            lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(self.device).eval()
            self._lm = (tok, lm)
        return self._lm

    def __call__(self, batch) -> np.ndarray:
        import torch

        tok, lm = self._load()
        texts = [t or "" for t in text_array(batch).to_pylist()]
        out = np.full(len(texts), np.nan)
        # sort by length so a batch pads little; results go back to input order
        order = np.argsort([len(t) for t in texts], kind="stable")
        for s in range(0, len(texts), self.batch_size):
            idx = order[s:s + self.batch_size]
            enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                      max_length=self.max_tokens, add_special_tokens=False)
            ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
            if ids.shape[1] < 2:
                continue
            with torch.no_grad():
                logits = lm(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
            m = mask[:, 1:].float()
            n = m.sum(1)
            mean = (nll * m).sum(1) / n.clamp(min=1)
            ppl = torch.exp(mean).cpu().numpy()
            out[idx] = np.where(n.cpu().numpy() > 0, ppl, np.nan)
        return out


class EnglishRater:
    """lid.176's probability that a document is English."""

    def __init__(self, model: str = "lid176", *, label: str = "__label__en"):
        self.ref, self.label = model, label
        self._ft = None

    def __getstate__(self):
        return {**self.__dict__, "_ft": None}

    def _load(self):
        if self._ft is None:
            import fasttext

            from lmsieve.models import model_file

            self._ft = fasttext.load_model(str(model_file(self.ref)))
        return self._ft

    def __call__(self, batch) -> np.ndarray:
        ft = self._load()
        texts = [" ".join((t or "").split()) for t in text_array(batch).to_pylist()]
        labels, probs = ft.predict(texts, k=-1)
        return np.array([float(dict(zip(lab, pr)).get(self.label, 0.0)) for lab, pr in zip(labels, probs)])


__all__ = ["EnglishRater", "PerplexityRater"]
