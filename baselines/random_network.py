"""Random: the untrained network with random heads (chance-level reference for FR)."""

from common.algorithm import Algorithm


class Random(Algorithm):
    """No training at all; tests the initial backbone and heads. One accuracy row over all tasks."""

    name = "random"
    multitask = True
    plateau_scheduler = False

    def fit_all(self, tasks, cfg, log) -> list[dict]:
        log("random reference: no training")
        return []
