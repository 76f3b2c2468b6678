"""DER and DER++: dark experience replay of stored logits (DER Eq. 5;
`docs/baselines.md#dark-experience-replay-der-der`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common.algorithm import Algorithm
from common.config import Hparam
from common.replay import ReplayBatch, ReplayBuffer, replay_logits, replay_losses


class DER(Algorithm):
    """Loss = CE(current batch) + alpha * MSE(logits of replayed examples through their own heads, stored logits).

    The replay batch has the current batch's size and is drawn with replacement from the buffer entries of the
    previous tasks (every task begun so far except the current one); as in the reference `Buffer.get_data`, at most
    as many examples are drawn as are stored. No replay term while there is none (task 1, or after unlearning
    emptied the buffer). After the step the current batch is offered to the reservoir buffer with its logits of
    this step's forward (detached). Automatic optimisation in the reference code, so the plateau scheduler is on.
    """

    name = "der"
    hparams = {
        "buffer_size": Hparam(200, "reservoir buffer size (examples with their logits and task)", ge=0),
        "der_alpha": Hparam(1.0, "alpha, the weight of the replay logit MSE", ge=0,
                            equation="DER loss CE + alpha MSE(logits, stored logits)"),
    }
    replay_ce = False  # DER++: beta * CE on the same replay examples

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.buffer = ReplayBuffer(cfg["buffer_size"])
        self.seen_tasks: list[int] = []  # task ids begun so far, in order

    def begin_task(self, task) -> None:
        super().begin_task(task)
        if task.id not in self.seen_tasks:
            self.seen_tasks.append(task.id)

    def replay_task_ids(self) -> list[int]:
        """Tasks whose buffer entries are replayed while training the current task."""
        return [t for t in self.seen_tasks if t != self.task_id]

    def replay_forward(self, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Student logits of replayed examples, each through its own task's head."""
        return replay_logits(self, x, task_ids)

    def replay_term(self, batch: ReplayBatch) -> torch.Tensor:
        """alpha * MSE (+ beta * CE for DER++) on one replay batch: the same examples for both terms."""
        mse, ce = replay_losses(self.replay_forward(batch.x, batch.task_ids), batch, with_ce=self.replay_ce)
        loss = self.cfg["der_alpha"] * mse
        return loss + self.cfg["der_beta"] * ce if self.replay_ce else loss

    def replay_loss(self, batch_size: int, task_ids: list[int] | None = None) -> torch.Tensor | None:
        """The replay term on a fresh draw of `batch_size` examples of `task_ids` (default: `replay_task_ids`);
        None when the buffer holds none of them."""
        batch = self.buffer.sample(batch_size, self.replay_task_ids() if task_ids is None else task_ids)
        return None if batch is None else self.replay_term(batch)

    def train_step(self, x, y, step):
        logits = self(x, step.task_id)
        ce = F.cross_entropy(logits, y)
        replay = self.replay_loss(len(y))
        loss = ce if replay is None else ce + replay
        self.optimizer_step(loss)
        self.buffer.add(x, y, logits.detach(), step.task_id)
        return {"loss": loss.detach(), "ce": ce.detach()}


class DERpp(DER):
    """DER++: adds beta * CE(replayed logits, stored labels) on the same replay examples (the original DER++ draws a
    second, independent batch; the reference code does not)."""

    name = "derpp"
    hparams = {"der_beta": Hparam(0.5, "beta, the weight of the replay cross-entropy (same replay examples)", ge=0,
                                  equation="DER++ loss CE + alpha MSE + beta CE(replay)")}
    replay_ce = True
