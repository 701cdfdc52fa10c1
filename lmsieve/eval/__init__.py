"""Evaluation: what a selection buys (target-domain precision, KL reduction, downstream proxy loss)."""
