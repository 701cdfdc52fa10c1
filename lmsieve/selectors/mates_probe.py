"""MATES's oracle: one AdamW step per candidate from a fixed checkpoint, then the reference loss.

Yu, Das, Xiong (NeurIPS 2024), MATES; reference cxcscmu/MATES ``probe_oracle_data_influence.py``:
for each candidate, reload the checkpoint (weights + AdamW state), set the learning rate the schedule
gives at the checkpoint's iteration, take one step on that candidate alone (gradient clipped to
norm 1.0, as the reference's ``fabric.clip_gradients``), and record the mean loss on the reference
set. Lower is better. Works for any loaded causal LM (an lmsieve proxy or a Hugging Face model,
``lmsieve.features.proxy_lm.load_proxy``) in float32.

A model saved without AdamW state (any pretrained HF model, e.g. SmolLM2) gets one from
:func:`warm_adam_moments`: ``steps`` AdamW steps over pool-sample windows **at learning rate 0**,
so the first and second moments (and the step count behind Adam's bias correction) come from real
gradients of the pool while the weights stay exactly the model's. Our choice where the paper has no
such case (it probes its own training run): the optimizer is the paper's AdamW (betas 0.9/0.95,
weight decay 0.1 on matrices), and the probe learning rate is ``probe_lr`` (MATES' default for a
foreign model: :data:`FOREIGN_PROBE_LR`).

Batching: a candidate's first ``probe_tokens`` tokens form one batch of context-length windows
(one forward/backward), and the reference windows (``min(context, probe_tokens)`` tokens each) are
evaluated in micro-batches of about ``batch_tokens`` tokens; candidates are probed one after another
(each needs its own weights).
"""
from __future__ import annotations

import copy

import numpy as np

from lmsieve.schemas.errors import ConfigError, InputError

FOREIGN_PROBE_LR = 1e-4  # probe step for a pretrained model without a training schedule (our choice)
PAPER_ADAMW = {"lr": 1e-3, "betas": (0.9, 0.95), "weight_decay": 0.1, "eps": 1e-8}


def _texts(batch) -> list[str]:
    from lmsieve.selectors.color_filter import texts_of

    return texts_of(batch)


def warm_adam_moments(lm, texts, *, steps: int = 50, batch_size: int = 8, window: int = 512, seed: int = 0,
                      clip: float = 1.0) -> None:
    """Give ``lm`` an AdamW state (``lm.optimizer``) from ``steps`` zero-learning-rate steps over
    windows of ``texts``; the weights do not change."""
    import torch

    from lmsieve.features.device import generator
    from lmsieve.features.proxy_lm.train import token_stream, window_starts

    lm.model.float()
    stream = torch.from_numpy(token_stream(lm.tokenizer, _texts(texts)).astype(np.int64))
    span = min(int(window), lm.context) + 1
    span = min(span, len(stream))
    if span < 2:
        raise InputError("the warm-up documents hold no tokens", "pool sample")
    starts = window_starts(len(stream), span)
    order = starts[torch.randperm(len(starts), generator=generator(seed))]
    decay = [p for p in lm.model.parameters() if p.dim() >= 2]
    rest = [p for p in lm.model.parameters() if p.dim() < 2]
    hp = PAPER_ADAMW
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                             {"params": rest, "weight_decay": 0.0}], lr=0.0, betas=hp["betas"], eps=hp["eps"])
    lm.model.train()
    n = 0
    while n < steps:
        for s in range(0, len(order), batch_size):
            if n >= steps:
                break
            seq = stream[order[s:s + batch_size, None] + torch.arange(span)].to(lm.device)
            loss = lm.token_nll(seq).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(lm.model.parameters(), clip)
            opt.step()  # lr 0: moments and step count move, weights (and weight decay) do not
            n += 1
    opt.zero_grad(set_to_none=True)
    lm.model.eval()
    lm.optimizer = opt


class OracleProbe:
    """One-AdamW-step probes from a fixed state; the state is restored before every probe."""

    def __init__(self, lm, reference_texts, lr: float | None = None, ref_windows: int = 64, probe_tokens: int = 1024,
                 clip: float | None = 1.0, batch_tokens: int = 8192):
        import torch

        from lmsieve.features.proxy_lm.train import lr_at, token_stream, window_starts

        if getattr(lm, "optimizer", None) is None:
            raise ConfigError("MATES probes need the model's AdamW state: load it with_optimizer=True, or let "
                              "MATES.fit warm one up (a model saved without optimizer state)")
        self.lm = lm
        cfg = lm.train_cfg
        self.lr = float(lr) if lr is not None else lr_at(max(0, lm.step - 1), max(1, cfg.steps), cfg)
        stream = torch.from_numpy(token_stream(lm.tokenizer, _texts(reference_texts)).astype(np.int64))
        span = min(lm.context, int(probe_tokens)) + 1  # a 2,048-token context would make every evaluation long
        span = min(span, len(stream))
        if span < 2:
            raise InputError("the reference set holds no tokens", "target")
        starts = window_starts(len(stream), span)  # evenly spread over the whole reference set
        starts = starts[np.unique(np.linspace(0, len(starts) - 1, min(ref_windows, len(starts))).round().astype(int))]
        self.ref = torch.stack([stream[s:s + span] for s in starts.tolist()])
        self.probe_tokens, self.clip, self.batch_tokens = int(probe_tokens), clip, int(batch_tokens)
        self.model_state = {k: v.detach().clone() for k, v in lm.model.state_dict().items()}
        self.opt_state = copy.deepcopy(lm.optimizer.state_dict())

    def restore(self) -> None:
        self.lm.model.load_state_dict(self.model_state)
        self.lm.optimizer.load_state_dict(copy.deepcopy(self.opt_state))

    def ref_loss(self) -> float:
        """Mean next-token loss over the reference windows (micro-batches of ~``batch_tokens``)."""
        import torch

        self.lm.model.eval()
        rows = max(1, self.batch_tokens // self.ref.shape[1])
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(self.ref), rows):
                part = self.ref[i:i + rows].to(self.lm.device)
                total += float(self.lm.token_nll(part).double().mean()) * len(part)
        return total / len(self.ref)

    def windows(self, text: str):
        """The candidate's first ``probe_tokens`` tokens (after ``<bos>``) as one batch of windows
        covering them (``None`` when it has no token)."""
        import torch

        from lmsieve.features.proxy_lm.train import window_starts

        ids = self.lm.tokenizer.encode_batch([text])[0][: self.probe_tokens]
        bos = self.lm.tokenizer.bos_id
        seq = torch.from_numpy(np.concatenate([[bos] if bos is not None else [], ids]).astype(np.int64))
        if len(seq) < 2:
            return None
        span = min(self.lm.context + 1, len(seq))
        return torch.stack([seq[s:s + span] for s in window_starts(len(seq), span).tolist()])

    def step_on(self, text: str) -> None:
        import torch

        seq = self.windows(text)
        if seq is None:
            return
        opt = self.lm.optimizer
        for g in opt.param_groups:
            g["lr"] = self.lr
        self.lm.model.train()
        loss = self.lm.token_nll(seq.to(self.lm.device)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.lm.model.parameters(), self.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def probe(self, texts, progress=None) -> np.ndarray:
        """Reference loss after one step on each candidate (float64), from the same state each time."""
        out = []
        for t in _texts(texts):
            self.restore()
            self.step_on(t)
            out.append(self.ref_loss())
            if progress:
                progress(1)
        self.restore()
        return np.array(out, dtype=np.float64)


__all__ = ["FOREIGN_PROBE_LR", "OracleProbe", "warm_adam_moments"]
