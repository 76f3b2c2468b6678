"""Finetuning: cross-entropy on the current task's head, every parameter trainable (lower bound)."""

from common.algorithm import Algorithm


class Finetuning(Algorithm):
    """Plain sequential training. The reference code used automatic optimisation, so its plateau scheduler was
    active (it can only fire in runs longer than 10 epochs)."""

    name = "finetuning"
