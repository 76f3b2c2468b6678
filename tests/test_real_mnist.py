"""Real Permuted MNIST, quick size: Finetuning forgets, Joint does not; the quick mode's picture (HAT family far
above Finetuning, HAT without forgetting); AmnesiacHAT unlearns."""

from pathlib import Path

import pytest

from baselines import METHODS
from common import config, records, runner

pytestmark = pytest.mark.realdata
REPO = Path(__file__).resolve().parent.parent

QUICK = {"benchmark": "pmnist", "num_tasks": "3", "epochs": "1", "train_subset": "10000", "seed": "1",
         "threads": "2", "references": "none"}


def run(method, out_dir, data_dir):
    cfg = config.resolve({"method": method, **QUICK, "out_dir": str(out_dir), "data_dir": str(data_dir)}, METHODS)
    return records.read_acc(runner.run(cfg, METHODS))


def test_finetuning_forgets_and_joint_does_not(mnist_dir, tmp_path):
    ft = run("finetuning", tmp_path, mnist_dir)
    assert [len(r) for r in ft] == [1, 2, 3]
    after_1, after_3 = ft[0][0], ft[2][0]
    assert after_1 > 0.85, ft                      # task 1 is learned
    assert after_1 - after_3 > 0.10, ft            # and forgotten by > 10 points after tasks 2 and 3

    (joint,) = run("joint", tmp_path, mnist_dir)
    assert len(joint) == 3
    assert joint[0] > 0.85, joint                  # joint training keeps task 1
    assert min(joint) > 0.85, joint


def test_amnesiachat_unlearns_on_permuted_mnist(mnist_dir, tmp_path):
    """PMNIST-5 with the published requests (tasks 1, 2, 5 unlearned), small size: the unlearned tasks fall towards
    chance (not all the way: replay during later tasks also trained their heads, and those changes belong to the
    later tasks' updates), the remaining tasks 3 and 4 stay about as good as in the original reference, and DD is a
    distance in [0, 1] (at this size the DD ranking of methods is not stable; the full-size comparison is in
    results/)."""
    from amnesiachat import METHODS as UNLEARNING

    def unlearning_run(method):
        cli = {"method": method, **QUICK, "num_tasks": "5", "train_subset": "10000", "references": "auto",
               "unlearning_requests": "published", "out_dir": str(tmp_path), "data_dir": str(mnist_dir)}
        return records.read_record(runner.run(config.resolve(cli, UNLEARNING), UNLEARNING))

    hat = unlearning_run("amnesiachat")
    final = hat["acc"][-1]
    original_folder = next(hat["folder"].parent.parent.glob("ref-original-amnesiachat-*")) / "seed1"
    original = records.read_acc(original_folder)[-1]
    assert (final[0] + final[1] + final[4]) / 3 < 0.3, final   # unlearned: towards chance (10 classes)
    assert min(final[2], final[3]) > 0.6, final                # remaining tasks kept, about as well as without
    assert final[2] + final[3] > original[2] + original[3] - 0.1, (final, original)  # unlearning (AG)
    per_task = hat["metrics"]["dd_per_task"]
    assert all(0.0 <= v <= 1.0 for v in per_task.values()), per_task
    assert hat["metrics"]["dd"] > 0.0


def test_quick_mode_shows_the_published_picture(mnist_dir, tmp_path):
    """The quick mode's settings (FG-AdaHAT main study, Permuted MNIST 5 tasks x 1 epoch, full data, seed 1):
    Finetuning forgets most, HAT's BWT is 0, and HAT, AdaHAT and FG-AdaHAT (IG) are far above Finetuning in AA
    (seed 1, one thread as in the quick mode: Finetuning AA 50.4, BWT -58.2; HAT 91.3, BWT 0; AdaHAT 89.9;
    FG-AdaHAT IG 90.4). AdaHAT's gain over HAT needs a long sequence, so it is not asked here. Estimated 1-2 minutes on
    an idle 2-core machine."""
    from fg_adahat import METHODS as FG
    from common.runner import apply_study

    def quick(entry):
        cli = {"package": "fg_adahat", "study": "main", "method": entry, "benchmark": "pmnist", "seed": "1",
               "num_tasks": "5", "epochs": "1", "threads": "1", "references": "none", "out_dir": str(tmp_path),
               "data_dir": str(mnist_dir)}
        cli, layer = apply_study(REPO / "fg_adahat", cli)
        return records.read_record(runner.run(config.resolve(cli, FG, layer), FG))["metrics"]

    ft = quick("finetuning")
    assert ft["bwt"] < -0.3, ft
    for entry in ("hat", "adahat", "fgadahat_ig"):
        metrics = quick(entry)
        assert metrics["aa"] > ft["aa"] + 0.25, (entry, metrics, ft)
        assert metrics["bwt"] > ft["bwt"] + 0.3, (entry, metrics, ft)
        if entry == "hat":
            assert abs(metrics["bwt"]) < 1e-9, metrics
