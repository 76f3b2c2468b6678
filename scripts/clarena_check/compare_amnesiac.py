"""The AmnesiacHAT paper's own code (runs of `run_bundle_amnesiac.py`) next to this repository's runs of the same
methods and seeds on Permuted MNIST, 5 tasks, TIL: AA on the remaining tasks, DD, AG and the accuracy of the
unlearned tasks, per seed and as mean ± sample std over seeds.

    python -m scripts.clarena_check.compare_amnesiac --bundle_out '/work/bundle_out/{method}/seed{seed}' \
        [--methods amnesiachat,...] [--seeds 1-3] [--study main] [--out results/amnesiachat/reference_check]
        [--no_archive]

`--bundle_out` is the `--out` of the driver, `{method}` (our name) and `{seed}` standing for each run. Our runs are
the records of `--study` (`main`; `seeding`: the same runs seeded once per run and with each head drawn when its
task arrives, as the bundle does) on
Permuted MNIST 5 tasks (`runs/`, else `results/records/`). Writes `<out>/reference_check.md` and two CSV files
(`summary.csv`, `seeds.csv`), and copies the small result files of every bundle run it read to
`<out>/bundle_runs/<method>/seed<k>/` in the driver's layout, so that `--bundle_out
'<out>/bundle_runs/{method}/seed{seed}'` remakes the table without the outputs (`--no_archive` skips the copy).
A bundle run without its DD / AG files (crashed or unfinished) is listed under the table, never left out silently.

Bundle side: AA on the remaining tasks and the unlearned tasks' accuracy are computed with our metric code from its
accuracy matrix (`results/acc.csv`, final row); DD and AG are its own (`results/dd.csv`, `ag.csv`, last row: the
averages over `main_model.unlearned_task_ids` and over the remaining tasks); `AG from acc.csv` is our AG formula
on its main and original accuracy matrices, the like-for-like AG. Which tasks were unlearned comes from the run's
composed configuration (`.hydra/config.yaml`, `unlearning_requests`).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import statistics
import sys
from pathlib import Path

import yaml

from common import records
from common.records import git_commit
from common.studies import parse_seeds
from common.tables import find_run, short_commit
from common.unlearning_metrics import accuracy_gain, average_over, remaining_accuracy

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("independent", "amnesiac_finetuning", "amnesiac_lwf", "amnesiac_derpp", "clpu_derpp", "amnesiachat")
LABELS = {"independent": "Independent", "amnesiac_finetuning": "Finetuning", "amnesiac_lwf": "LwF",
          "amnesiac_derpp": "DER++", "clpu_derpp": "CLPU-DER++", "amnesiachat": "AmnesiacHAT"}
# metric key -> (column title, scale, format)
METRICS = {"aa_remaining": ("AA remaining (%)", 100.0, ".2f"), "dd": ("DD", 1.0, ".4f"),
           "ag": ("AG (%)", 100.0, ".2f"), "ag_from_acc": ("AG from acc.csv (%)", 100.0, ".2f"),
           "unlearned_acc": ("acc. unlearned tasks (%)", 100.0, ".2f")}
SIDES = ("bundle", "ours")
# the metrics whose agreement between the two codes the check judges
JUDGED = ("aa_remaining", "dd")
# files of a bundle run that the table reads (copied by the archive)
BUNDLE_FILES = ("results/acc.csv", "results/dd.csv", "results/ag.csv", "reforiginal/results/acc.csv",
                "refretrain/results/acc.csv", ".hydra/config.yaml", ".hydra/overrides.yaml", "timing.json",
                "command.json")


def read_matrix(path: Path) -> dict[int, dict[int, float]]:
    """{after task: {task: accuracy}} of an `acc.csv` with columns after_training_task, average_accuracy,
    test_on_task_<k> (the bundle's layout; the retrain reference names only the tasks it trained)."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return {int(r["after_training_task"]): {int(k.rsplit("_", 1)[1]): float(v) for k, v in r.items()
                                            if k.startswith("test_on_task_") and v not in ("", None)} for r in rows}


def last_row(path: Path) -> dict[str, float]:
    """The last row of a bundle metric CSV (`dd.csv`, `ag.csv`; a rerun into the same folder appends a row)."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no rows")
    return {k: float(v) for k, v in rows[-1].items()}


def unlearned_tasks(folder: Path) -> tuple[list[int], list[int]]:
    """(unlearned, remaining) task ids from the run's composed configuration."""
    cfg = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
    n = cfg["train_tasks"]
    unlearned = sorted({int(t) for ids in cfg["unlearning_requests"].values() for t in ids})
    return unlearned, [t for t in range(1, n + 1) if t not in unlearned]


def bundle_values(folder: Path) -> dict:
    """The metrics of one bundle run (see the module docstring); FileNotFoundError if a file is missing."""
    unlearned, remaining = unlearned_tasks(folder)
    acc = read_matrix(folder / "results" / "acc.csv")
    final = acc[max(acc)]
    original = read_matrix(folder / "reforiginal" / "results" / "acc.csv")
    dd, ag = last_row(folder / "results" / "dd.csv"), last_row(folder / "results" / "ag.csv")
    timing = folder / "timing.json"
    return {
        "aa_remaining": remaining_accuracy(final, remaining),
        "dd": dd["average_distribution_distance_on_unlearned"],
        "ag": ag["average_acc_gain_on_remaining"],
        "unlearned_acc": average_over(final, unlearned),
        "ag_from_acc": accuracy_gain(final, original[max(original)], remaining)[1],
        "dd_per_task": {int(k.rsplit("_", 1)[1]): v for k, v in dd.items() if k.startswith("unlearning_test_on")},
        "seconds": sum(json.loads(timing.read_text()).values()) if timing.exists() else None,
        "unlearned": unlearned,
    }


def our_values(method: str, seed: int, study: str = "main") -> dict | None:
    """Our record of (method, seed) in `study` on Permuted MNIST (5 tasks); None if it has not finished."""
    from amnesiachat import METHODS as REGISTRY  # the registry imports the methods: only when a record is read
    folder = find_run(ROOT / "amnesiachat", study, method, "pmnist", seed, REGISTRY)
    if not records.is_done(folder):
        return None
    rec = records.read_record(folder)
    m, final = rec["metrics"], rec["acc"][-1]
    return {"aa_remaining": m["aa_remaining"], "dd": m["dd"], "ag": m["ag"],
            "unlearned_acc": average_over(dict(enumerate(final, 1)), m["unlearned"]),
            "ag_from_acc": m["ag"],  # ours is computed from the accuracy matrices
            "seconds": rec.get("seconds"), "unlearned": m["unlearned"],
            "dd_per_task": {int(t): v for t, v in m.get("dd_per_task", {}).items()},
            "commit": (rec.get("environment") or {}).get("git_commit", "unknown")}


def cell(values: list[float], scale: float, fmt: str) -> str:
    """mean ± sample std (n=k); — without values."""
    if not values:
        return "—"
    text = format(scale * statistics.fmean(values), fmt)
    if len(values) > 1:
        text += " ± " + format(scale * statistics.stdev(values), fmt)
    return f"{text} (n={len(values)})"


def num(value, scale: float = 1.0, fmt: str = ".2f") -> str:
    return "—" if value is None else format(scale * value, fmt)


def archive(folder: Path, target: Path) -> None:
    """Copy the files the table reads from a bundle run to `target` (same layout)."""
    for name in BUNDLE_FILES:
        if (folder / name).exists() and (folder / name).resolve() != (target / name).resolve():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / name, target / name)


def collect(args, methods: list[str], seeds: list[int]) -> tuple[dict, list[str]]:
    """{(method, seed): {"bundle": values | None, "ours": values | None}} and the notes on missing runs."""
    runs, missing = {}, []
    for method in methods:
        for seed in seeds:
            folder = Path(args.bundle_out.format(method=method, seed=seed))
            try:
                theirs = bundle_values(folder)
            except (OSError, KeyError, ValueError) as err:
                theirs = None
                why = f"no {err.filename}" if isinstance(err, FileNotFoundError) else f"{type(err).__name__}: {err}"
                missing.append(f"bundle run {method} seed {seed}: {why}")
            if theirs and not args.no_archive:
                archive(folder, Path(args.out) / "bundle_runs" / method / f"seed{seed}")
            ours = our_values(method, seed, args.study)
            if ours is None:
                missing.append(f"our run {method} seed {seed} has not finished")
            runs[(method, seed)] = {"bundle": theirs, "ours": ours,
                                    "command": folder / "command.json" if theirs else None}
    return runs, missing


def side_values(runs: dict, method: str, metric: str, seeds: list[int], side: str) -> list[float]:
    """The values of `metric` over the seeds that `side` has finished for `method`."""
    return [runs[(method, s)][side][metric] for s in seeds if runs[(method, s)][side]]


def summary_lines(runs: dict, methods: list[str], seeds: list[int]) -> tuple[list[str], list[dict]]:
    """The mean ± std table (markdown lines) and its CSV rows."""
    head = [f"{METRICS[m][0]}, {side}" for m in METRICS for side in SIDES]
    lines = ["| method | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    rows = []
    for method in methods:
        cells = []
        for metric, (_, scale, fmt) in METRICS.items():
            for side in SIDES:
                values = side_values(runs, method, metric, seeds, side)
                cells.append(cell(values, scale, fmt))
                rows.append({"method": method, "metric": metric, "side": side, "n": len(values),
                             "mean": statistics.fmean(values) if values else "",
                             "std": statistics.stdev(values) if len(values) > 1 else "",
                             "values": " ".join(repr(v) for v in values)})
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
    return lines, rows


# what is known about a difference beyond the seed spread, (study, method, metric) -> text; shown only then
BEYOND = {
    ("main", "independent", "dd"): "seeding and heads: the bundle's retrain reference draws other batches and heads "
                                   "(`task_seeding`, `head_init`); within the spread in study `seeding`",
    ("main", "amnesiac_derpp", "dd"): "within the spread in study `seeding` (the bundle's seeding and heads) and at "
                                      "five seeds (`reference_check/five_seeds/`)",
    ("main", "amnesiac_derpp", "aa_remaining"): "cause found: the bundle's current-head alias, ours too since "
                                                "`delete_from_current_head` (+13.4 before it); within the spread at "
                                                "five seeds (`reference_check/five_seeds/`) and in study `seeding`",
    ("seeding", "amnesiac_finetuning", "aa_remaining"): "not known; within the spread in study `main`, at the edge "
                                                        "of it at five seeds (`reference_check/seeding/five_seeds/`)",
    ("seeding", "amnesiac_lwf", "aa_remaining"): "within the spread in study `main` and at five seeds "
                                                 "(`reference_check/seeding/five_seeds/`)",
}


def agreement(bundle: list[float], ours: list[float]) -> dict | None:
    """Difference of the two codes' means, delta = mean(ours) - mean(bundle), against their combined seed spread
    sqrt(sd_bundle^2 + sd_ours^2) (sample std over each code's seeds, i.e. the spread of the difference of two
    single runs): "within" when |delta| <= spread, else "beyond". None when a side has fewer than two seeds."""
    if len(bundle) < 2 or len(ours) < 2:
        return None
    delta = statistics.fmean(ours) - statistics.fmean(bundle)
    spread = (statistics.stdev(bundle) ** 2 + statistics.stdev(ours) ** 2) ** 0.5
    return {"delta": delta, "spread": spread, "verdict": "within" if abs(delta) <= spread else "beyond"}


def agreement_lines(runs: dict, methods: list[str], seeds: list[int], study: str) -> list[str]:
    """Markdown lines of the agreement table: per method and judged metric, delta, spread, verdict and, beyond the
    spread, what is known of the cause (`BEYOND`)."""
    head = ["method", "metric", "ours - bundle", "combined seed spread", "verdict", "cause"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for method in methods:
        for metric in JUDGED:
            title, scale, fmt = METRICS[metric]
            judged = agreement(*(side_values(runs, method, metric, seeds, side) for side in SIDES))
            if judged is None:
                cells = ["—", "—", "fewer than two seeds on a side", ""]
            else:
                cause = BEYOND.get((study, method, metric), "not known") if judged["verdict"] == "beyond" else ""
                cells = [format(scale * judged["delta"], "+" + fmt), format(scale * judged["spread"], fmt),
                         judged["verdict"], cause]
            lines.append(f"| {LABELS[method]} | {title} | " + " | ".join(cells) + " |")
    return lines


def seed_lines(runs: dict, methods: list[str], seeds: list[int]) -> tuple[list[str], list[dict]]:
    """One row per method, seed and side (markdown lines) and its CSV rows."""
    head = [METRICS[m][0] for m in METRICS] + ["DD per unlearned task", "wall s"]
    lines = ["| method | seed | code | " + " | ".join(head) + " |", "|---" * (len(head) + 3) + "|"]
    rows = []
    for method in methods:
        for seed in seeds:
            for side in SIDES:
                v = runs[(method, seed)][side]
                if v is None:
                    continue
                per_task = v.get("dd_per_task") or {}
                dd_tasks = ", ".join(f"{t}: {per_task[t]:.4f}" for t in v["unlearned"] if t in per_task) or "—"
                cells = [num(v[m], s, f) for m, (_, s, f) in METRICS.items()]
                cells += [dd_tasks, num(v.get("seconds"), 1.0, ".0f")]
                lines.append(f"| {LABELS[method]} | {seed} | {side} | " + " | ".join(cells) + " |")
                rows.append({"method": method, "seed": seed, "side": side,
                             **{m: v[m] for m in METRICS}, "seconds": v.get("seconds") or ""})
    return lines, rows


NOTES = [
    "bundle: the AmnesiacHAT paper's code (`clarena` 1.1.0 of the published bundle) run by "
    "`scripts/clarena_check/run_bundle_amnesiac.py` with its index files `configs/index/amnesiachat_paper/"
    "<method>_pmnist_5tasks.yaml` (pipeline `CUL_FULL_EXPR`: unlearning run, retrain and original references, "
    "full evaluation); ours: this repository's records of the study named in the command (`main`: "
    "`task_seeding: per_task`; `seeding`: `task_seeding: per_run` and `head_init: on_arrival`, as the bundle)",
    "AA remaining and the unlearned tasks' accuracy: final row of each side's accuracy matrix averaged over the "
    "remaining (never-unlearned) / unlearned tasks with our metric code; the bundle's accuracies are means of "
    "per-batch accuracies (79 test batches, the last of 16 samples), ours per sample",
    "DD, bundle: its own `dd.csv` (not recomputed): 1 - linear CKA per test batch of 128 between the backbone "
    "features (all-ones masks) of the unlearned model and of the retrain reference, unweighted mean over batches "
    "(the batch weight `len(batch)` is 2 for every batch), averaged over the unlearned tasks; the same definition "
    "as ours, but in float32 with eps 1e-12 in the denominator, where ours is float64 and defines a constant batch "
    "as CKA 0",
    "retrain references: both sides train the tasks never requested for unlearning (3, 4) with the same method, "
    "but the bundle seeds once per stage (`clarena/pipelines/cl_main_expr.py` 381, 387), so its retrain draws other "
    "batches and initial states than the main run, while ours seeds every task by (seed, task) "
    "(`task_seeding: per_task`, `common/engine.py`): hence our Independent's DD is exactly 0 and the bundle's is "
    "not; `task_seeding: per_run` (study `seeding`) seeds once per run as the bundle does "
    "(`docs/fidelity.md#task_seeding`)",
    "heads: the bundle creates a task's head when the task arrives (`clarena/heads/heads_til.py` 37-47), from the "
    "random state of that moment, so under once-per-run seeding its retrain reference starts tasks 3 and 4 from "
    "other heads than the unlearning run; ours builds every head with the network (`head_init: upfront`); "
    "`head_init: on_arrival` (study `seeding`) draws them as the bundle does (`docs/fidelity.md#head_init`)",
    "AG, bundle: its own `ag.csv`: unweighted mean over test batches of the per-batch accuracy difference main - "
    "original from the saved models, averaged over the remaining tasks; `AG from acc.csv`: our formula on its "
    "accuracy matrices (main and original, final rows), the like-for-like column (ours: our AG, which is computed "
    "that way, per sample). The two bundle columns agree except for Independent: its evaluation calls the model's "
    "`forward`, which uses the shared `self.backbone` (the last task's network) with every task's head "
    "(`clarena/utils/eval.py` 91-103, `clarena/cl_algorithms/base.py` 182), while Independent's own test uses the "
    "task's network (`clarena/cl_algorithms/independent.py` 86-88); its `ag.csv` is therefore not an accuracy gain",
    "CLPU-DER++: while a permanent task trains, the bundle replays the buffer examples of every earlier task, "
    "temporary ones included (`clarena/cl_algorithms/clpu_derpp.py` 355-358, `clarena/cl_algorithms/der.py` "
    "240-250), so its main backbone and the heads learn task 2 before task 2 is unlearned and it stays accurate "
    "through the main backbone; ours does the same since commit 11beb44 (`replay_temporary: true`, "
    "`docs/fidelity.md#replay_temporary`); our runs trained before it replay only the permanent, not unlearned "
    "tasks",
    "current-head alias: the bundle's heads module keeps the head being trained also as `head_t`, so the heads' "
    "state dict lists it twice and each task's update record holds its own head's change twice; deleting task u "
    "while task c trains reloads `head_t` last, so head c also loses u's own head change "
    "(`clarena/heads/heads_til.py` 45-47, `clarena/cul_algorithms/base.py` 146-169). Ours does the same since "
    "commit 23d8991 (`delete_from_current_head: true`, `docs/fidelity.md#delete_from_current_head`); our runs "
    "trained before it (Finetuning, LwF, DER++, AmnesiacHAT rows made earlier) leave head c alone",
    "mean ± sample std over seeds; (n=k): number of seeds in the cell",
    "wall s: bundle, its four stages together (`timing.json`: unlearning run, retrain, original, evaluation); ours, "
    "the unlearning run only (its references are runs of their own); one thread each, on a shared machine",
]


def write(out: Path, runs: dict, methods: list[str], seeds: list[int], missing: list[str], command: str,
          study: str = "main") -> None:
    """`reference_check.md`, `summary.csv`, `seeds.csv` under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    summary, summary_rows = summary_lines(runs, methods, seeds)
    per_seed, seed_rows = seed_lines(runs, methods, seeds)
    commands = ["python " + shlex.join(json.loads(r["command"].read_text())["driver"])
                for r in runs.values() if r["command"] and r["command"].exists()]
    shown = sorted({short_commit(r["ours"]["commit"]) for r in runs.values() if r["ours"]})
    notes = NOTES + ([f"our runs trained at commit(s) {', '.join(shown)}"] if shown else [])
    text = [f"Generated by `{command}` at commit {git_commit()}.", "",
            "## AmnesiacHAT reference check: the paper's code next to this repository, PMNIST-5 TIL", "",
            *summary, "", *[f"- {n}" for n in notes], "",
            "### Agreement", "",
            "Each code's mean over seeds, ours minus the bundle's, against the two codes' combined seed spread "
            "sqrt(sd_bundle² + sd_ours²): within when the difference is at most the spread.", "",
            *agreement_lines(runs, methods, seeds, study), ""]
    if missing:
        text += ["Missing or unusable runs:", "", *[f"- {m}" for m in missing], ""]
    text += ["### Per seed", "", *per_seed, ""]
    if commands:
        text += ["Bundle runs made by:", "", *[f"    {c}" for c in commands], ""]
    (out / "reference_check.md").write_text("\n".join(text))
    for name, rows in (("summary.csv", summary_rows), ("seeds.csv", seed_rows)):
        with open(out / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["method"])
            writer.writeheader()
            writer.writerows(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle_out", required=True, help="a bundle run's folder, with {method} and {seed}")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="1-3")
    parser.add_argument("--study", default="main",
                        help="our study: main (per-task seeds) or seeding (the bundle's seeding and heads)")
    parser.add_argument("--out", default="results/amnesiachat/reference_check")
    parser.add_argument("--no_archive", action="store_true", help="do not copy the bundle's result files")
    args = parser.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    seeds = parse_seeds(args.seeds)
    runs, missing = collect(args, methods, seeds)
    command = "python -m scripts.clarena_check.compare_amnesiac " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    write(Path(args.out), runs, methods, seeds, missing, command, args.study)
    for line in missing:
        print("warning:", line, file=sys.stderr)
    print(f"wrote {Path(args.out) / 'reference_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
