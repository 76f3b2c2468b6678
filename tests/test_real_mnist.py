"""Real Permuted MNIST, quick size: Finetuning forgets, Joint does not (spec/design.md, quality bar)."""

import pytest

from baselines import METHODS
from common import config, records, runner

pytestmark = pytest.mark.realdata

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
