"""Fix: train task 1 normally, then freeze the backbone; later tasks train only their own new head."""

from common.algorithm import Algorithm


class Fix(Algorithm):
    """The papers' Fix (linear probing on the task-1 features). As in the reference code, the frozen backbone
    stays in training mode, so batch-norm running statistics (if any) keep moving."""

    name = "fix"

    def begin_task(self, task) -> None:
        if task.id > 1:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
        super().begin_task(task)
