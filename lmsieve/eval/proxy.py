"""Downstream proxy loss: train a tiny LM from scratch on a selection, score held-out target text.

Every method gets the same model, the same number of training tokens and the same seed; only the
training documents differ. The tokenizer is byte-level so that losses are comparable across
methods; the loss is the micro-average over the held-out text in nats per UTF-8 byte (total NLL /
bytes), a unit that stays comparable whatever the tokenizer. The held-out examples are scored
every ``eval_every`` steps (a bounded sample of them: see ``eval_docs``), which gives the
loss curve.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: A CPU-minutes proxy: a 2-layer, 128-wide Llama, 256-byte context (about 0.4M parameters).
EVAL_MODEL = {"n_layer": 2, "d_model": 128, "n_head": 4, "context": 256}


@dataclass
class ProxyEval:
    """Callable (train_texts, eval_texts, seed) -> {"loss", "curve"} for :func:`harness.run_eval`."""

    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    eval_every: int = 100
    model: dict = field(default_factory=lambda: dict(EVAL_MODEL))
    #: Held-out text scored at each curve point: the first ``eval_docs`` examples, each cut to
    #: ``eval_chars`` characters (the same for every method; bounds the cost of the curve).
    eval_docs: int = 64
    eval_chars: int = 2000

    @property
    def tokens(self) -> int:
        return self.steps * self.batch_size * self.model["context"]

    def held_out_loss(self, lm, eval_texts) -> float:
        from lmsieve.features.proxy_lm.losses import document_losses

        r = document_losses(lm, eval_texts)
        return float(r.total_nll.sum() / max(1, r.n_bytes.sum()))  # nats per byte

    def __call__(self, train_texts: list[str], eval_texts: list[str], seed: int) -> dict:
        from lmsieve.features.proxy_lm.train import train_proxy

        eval_texts = [t[: self.eval_chars] for t in eval_texts[: self.eval_docs]]
        curve = []
        per_step = self.batch_size * self.model["context"]

        def on_step(step: int, lm) -> None:
            if step % self.eval_every == 0 or step == self.steps:
                curve.append([step * per_step, self.held_out_loss(lm, eval_texts)])

        train = {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr, "seed": seed,
                 "warmup_steps": min(50, self.steps // 10)}
        train_proxy(train_texts, model=self.model, train=train, tokenizer={"kind": "byte"}, callback=on_step)
        return {"loss": float(curve[-1][1]) if curve else float("nan"), "curve": curve,
                "tokens": self.tokens}


__all__ = ["EVAL_MODEL", "ProxyEval"]
