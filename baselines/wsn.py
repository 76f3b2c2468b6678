"""WSN: Winning SubNetworks (Kang et al., "Forget-free continual learning with winning subnetworks", ICML 2022).

Every weight tensor of the backbone (linear and convolution weights, ResNet shortcut convolutions included) has a
learnable score tensor rho of the same shape. Task t uses the subnetwork m_t = top-c of |rho| per layer (exactly
round(c * numel) weights of each layer, §3.1 of the paper); the forward pass uses theta * m_t. The top-c selection
has no gradient, so the scores get the straight-through estimate (the paper's Eq. 3-4): dL/d rho = dL/d m_t
(times sign(rho) through |rho|), with dL/d m_t = dL/d(theta * m) * theta. Weights already chosen by an earlier task
(M_{<t} = union of m_1..m_{t-1}) are frozen: their gradient is zeroed before Adam (Eq. 5), and with a fresh Adam per
task and no weight decay their update is exactly zero. Each task's mask is stored packed 8 weights per byte and is
the only thing a test of that task needs, besides its own head.

Defaults and where they come from (`docs/baselines.md#wsn`):
* from the paper: per-layer top-c selection on |rho| with the straight-through estimate, frozen earlier weights,
  binary per-task masks, task-incremental testing with the task's mask; capacity c = 0.5 (`wsn_capacity`; the
  paper reports several capacities between 3 % and 50 %; the results table also runs c = 0.1);
* ours: scores initialised like the weights (Kaiming-uniform, a = sqrt(5), PyTorch's default for linear and conv
  layers), one score tensor per layer carried over from task to task (relearned, never reset); one Adam over
  weights, scores and heads at the run's learning rate, fresh per task, constant (the repository's protocol for
  every method); no weight decay (it would move frozen weights); the backbone's biases are zero and never trained
  (a shared bias would change earlier tasks' outputs; the paper's subnetwork layers have none); heads are per task
  and not masked; no batch norm (shared batch statistics would also change earlier tasks).
"""

from __future__ import annotations

import math
import struct

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from common.algorithm import Algorithm
from common.config import ConfigError, Hparam
from common.nets import build_backbone

_BIT_VALUES = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """A boolean tensor packed 8 entries per byte (uint8, most significant bit first)."""
    flat = mask.flatten().to(torch.uint8)
    flat = F.pad(flat, (0, (-flat.numel()) % 8))
    return (flat.view(-1, 8) * _BIT_VALUES.to(flat.device)).sum(1).to(torch.uint8)


def unpack_mask(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of `pack_mask`: the boolean tensor of `shape`."""
    bits = (packed.unsqueeze(1) & _BIT_VALUES.to(packed.device)) != 0
    return bits.flatten()[:math.prod(shape)].view(shape)


def topk_mask(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 0/1 mask (dtype of `scores`) of the k largest entries of `scores` by torch.topk, and the k-th largest."""
    values, indices = scores.flatten().topk(k, sorted=False)
    mask = torch.zeros(scores.numel(), dtype=scores.dtype, device=scores.device)
    mask[indices] = 1.0
    return mask.view_as(scores), values.min()


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


class TopKSelector:
    """The top-k mask of one layer's scores, step after step, found by a threshold instead of by torch.topk.

    If exactly k entries are >= g, then {scores >= g} is the one and only top-k set (the k-th largest value is >= g,
    the (k+1)-th < g), so the mask is the one `topk_mask` gives. The scores move little per step, so such a g is
    searched from the last one by counting passes (one float comparison and one sum each): a step along the count's
    slope near the threshold, widened until the count brackets k, then interpolation. Where no such g exists (a tie
    across the k-th largest value) or the search is not done in `max_passes`, the mask is `topk_mask`'s."""

    max_passes = 16

    def __init__(self, k: int):
        self.k, self.threshold, self.slope = k, None, None  # slope: entries per unit of threshold near it

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        flat = scores.detach().flatten()
        if self.threshold is not None and flat.numel() < 2 ** 24:  # float sums of 0/1 are exact below 2^24
            mask = torch.empty_like(flat)
            if self.search(flat, mask):
                return mask.view_as(scores)
        mask, kth = topk_mask(scores, self.k)
        self.threshold = float(kth)
        return mask

    def search(self, flat: torch.Tensor, mask: torch.Tensor) -> bool:
        """Look for a float32 g with exactly k entries >= g, starting at the last one; `mask` ends as (flat >= g)."""
        k, g = self.k, self.threshold
        slope = self.slope or flat.numel() / (2 * abs(g) + 1e-30)  # first time: as if uniform on [0, 2 g]
        lo = hi = None  # the highest g with a count > k, the lowest with a count < k
        widen = 1.0
        for _ in range(self.max_passes):
            count = int(torch.ge(flat, g, out=mask).sum())
            if count == k:
                self.threshold = g
                return True
            if count > k:
                lo = (g, count)
            else:
                hi = (g, count)
            if lo is None or hi is None:  # not bracketed yet: step along the slope, twice as far each time
                g, widen = _float32(g + widen * (count - k) / slope), 2 * widen
                continue
            slope = self.slope = (lo[1] - hi[1]) / (hi[0] - lo[0])
            g = _float32(lo[0] + (lo[1] - k) / slope)
            if not lo[0] < g < hi[0]:
                g = _float32(0.5 * (lo[0] + hi[0]))
                if not lo[0] < g < hi[0]:  # lo and hi are neighbouring float32 values: a tie at the k-th value
                    return False
        return False


class TopKStraightThrough(torch.autograd.Function):
    """Forward: the 0/1 mask of the k largest entries of `scores` (by `selector` if given, the same set); backward:
    the identity (straight-through)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, k: int, selector: TopKSelector | None = None) -> torch.Tensor:
        return selector(scores) if selector is not None else topk_mask(scores, k)[0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None, None


def kept_count(numel: int, capacity: float) -> int:
    """Weights of a layer of `numel` weights that a task's subnetwork keeps: round(c * numel), at least 1."""
    return max(1, min(numel, round(capacity * numel)))


class WSN(Algorithm):
    """Training step: m = TopK(|rho|); logits = head_t(f(x; theta * m)); CE; backward; zero the gradient of the
    weights in M_{<t}; Adam. Test of task j: f(x; theta * m_j) with the stored m_j."""

    name = "wsn"
    plateau_scheduler = False
    hparams = {"wsn_capacity": Hparam(0.5, "c, the fraction of each layer's weights in a task's subnetwork (top-c of "
                                           "|score|)", gt=0, le=1, equation="WSN Eq. 3 (top-c subnetwork)")}

    @classmethod
    def check_config(cls, cfg):
        """WSN keeps earlier tasks exactly through masks: no batch norm, no weight decay, task-incremental only."""
        super().check_config(cfg)
        if cfg["batch_norm"]:
            raise ConfigError("batch_norm must be false for wsn: shared batch norm statistics would change earlier "
                              "tasks' outputs")
        if cfg["setting"] != "til":
            raise ConfigError("setting must be til for wsn: a test needs the task's mask")
        if cfg["weight_decay"]:
            raise ConfigError("weight_decay must be 0 for wsn: weight decay would move earlier tasks' frozen weights")

    def __init__(self, cfg, classes_per_task, input_shape):
        super().__init__(cfg, classes_per_task, input_shape)
        self.weight_names = [n for n, p in self.backbone.named_parameters() if p.dim() > 1]
        params = dict(self.backbone.named_parameters())
        self.weights = [params[n] for n in self.weight_names]
        self.scores = nn.ParameterList()
        for w in self.weights:
            score = torch.empty_like(w)
            nn.init.kaiming_uniform_(score, a=math.sqrt(5))
            self.scores.append(nn.Parameter(score))
        self.keep = [kept_count(w.numel(), cfg["wsn_capacity"]) for w in self.weights]
        self.selectors = [TopKSelector(k) for k in self.keep]
        self.used = [torch.zeros_like(w, dtype=torch.bool) for w in self.weights]  # M_{<t}
        self.free = [torch.ones_like(w) for w in self.weights]  # 1 - M_{<t}, as floats (see `train_step`)
        self.task_masks: dict[int, list[torch.Tensor]] = {}  # packed m_t per layer
        self.capacity_log: list[tuple[int, float]] = []
        self.subnetwork_rows: list[dict] = []
        self._unpacked: tuple[int, list[torch.Tensor]] | None = None

    tensor_lists = ("used", "free")

    def build_backbone(self, input_shape):
        cfg = self.cfg
        backbone = build_backbone(cfg["backbone"], input_shape, False)
        for name, p in backbone.named_parameters():
            if p.dim() == 1:  # biases: zero and frozen (see the module docstring)
                p.data.zero_()
                p.requires_grad_(False)
        return backbone

    # ----- masks ---------------------------------------------------------------------------------------------------
    def current_masks(self) -> list[torch.Tensor]:
        """m_t = TopK(|rho|) per layer, differentiable to the scores by the straight-through estimator."""
        return [TopKStraightThrough.apply(s.abs(), k, select)
                for s, k, select in zip(self.scores, self.keep, self.selectors)]

    def masked_features(self, x: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
        weights = {n: w * m for n, w, m in zip(self.weight_names, self.weights, masks)}
        return functional_call(self.backbone, weights, (x,), strict=False)

    def stored_masks(self, task_id: int) -> list[torch.Tensor]:
        if self._unpacked is None or self._unpacked[0] != task_id:
            masks = [unpack_mask(p, w.shape).to(w.dtype) for p, w in zip(self.task_masks[task_id], self.weights)]
            self._unpacked = (task_id, masks)
        return self._unpacked[1]

    def free_fraction(self) -> float:
        """Network capacity as HAT reports it: the fraction of masked weights still trainable (1 - |M_{<t}| / N)."""
        used = sum(int(u.sum()) for u in self.used)
        return 1.0 - used / sum(u.numel() for u in self.used)

    # ----- hooks ---------------------------------------------------------------------------------------------------
    def begin_task(self, task) -> None:
        super().begin_task(task)
        self.task_capacity = self.free_fraction()

    def train_step(self, x, y, step):
        logits = self.heads(self.masked_features(x, self.current_masks()), step.task_id)
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():  # Eq. 5: weights of earlier subnetworks are frozen. Times 0/1 then + 0 (a -0 becomes 0)
            for w, free in zip(self.weights, self.free):  # is masked_fill_(used, 0), bit for bit, at float speed
                if w.grad is not None:
                    w.grad.mul_(free).add_(0.0)
        self.optimizer.step()
        self.capacity_log.append((step.task_id, self.task_capacity))
        return {"loss": loss.detach()}

    @torch.no_grad()
    def end_task(self, task) -> None:
        masks = [m.bool() for m in self.current_masks()]
        self.task_masks[task.id] = [pack_mask(m) for m in masks]
        reused = sum(int((m & u).sum()) for m, u in zip(masks, self.used))
        self.used = [u | m for u, m in zip(self.used, masks)]
        self.free = [(~u).to(w.dtype) for u, w in zip(self.used, self.weights)]
        self._unpacked = None
        total = sum(u.numel() for u in self.used)
        self.subnetwork_rows.append({
            "task": task.id, "kept": sum(int(m.sum()) for m in masks), "reused": reused,
            "used_total": sum(int(u.sum()) for u in self.used), "weights": total,
            "mask_bytes": sum(p.numel() for p in self.task_masks[task.id])})

    @torch.no_grad()
    def predict(self, x, task_id):
        return self.heads(self.masked_features(x, self.stored_masks(task_id)), task_id)

    @torch.no_grad()
    def validation_logits(self, x, task_id):
        return self.heads(self.masked_features(x, self.current_masks()), task_id)

    @torch.no_grad()
    def aggregated_features(self, x):
        return self.masked_features(x, [u.to(w.dtype) for u, w in zip(self.used, self.weights)])

    def extra_records(self):
        capacity = [{"step": i + 1, "task": t, "capacity": c} for i, (t, c) in enumerate(self.capacity_log)]
        return {"capacity": capacity, "subnetworks": self.subnetwork_rows}
