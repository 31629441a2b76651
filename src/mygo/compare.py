"""A compact comparison of experiments from `dvc exp show --json`: the params that differ and the
headline metrics, with runs that differ only in `train.seed` averaged as mean ± std.

    python scripts/compare.py                     # every experiment, Markdown
    python scripts/compare.py --percent           # metrics as the paper's percentages
    python scripts/compare.py --csv > runs.csv
    python scripts/compare.py --json show.json    # a saved `dvc exp show --json`
"""
from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass

SEED = "train.seed"
# (column, metrics file, key path) of the headline metrics
METRICS = [
    ("valid MRR", "metrics/train/metrics.json", ("best", "mrr")),
    ("test MRR", "metrics/eval.json", ("mrr",)),
    ("Hits@1", "metrics/eval.json", ("hits@1",)),
    ("Hits@3", "metrics/eval.json", ("hits@3",)),
    ("Hits@10", "metrics/eval.json", ("hits@10",)),
    ("best epoch", "metrics/train/metrics.json", ("best_epoch",)),
]


@dataclass
class Run:
    name: str
    params: dict[str, object]       # flattened: "train.model.dim" -> 64
    metrics: dict[str, float]       # by METRICS column


def _flatten(values: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _dig(values, path):
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return None
        values = values[key]
    return values


def runs_from_exp_show(show: list) -> list[Run]:
    """Every committed revision and experiment of `dvc exp show --json` (the workspace only when
    it is the only row), in the order DVC lists them."""
    found = []

    def visit(entry: dict) -> None:
        data = entry.get("data") or {}
        if entry.get("rev") and "params" in data:
            params = _flatten((data.get("params") or {}).get("params.yaml", {}).get("data") or {})
            files = data.get("metrics") or {}
            metrics = {}
            for column, file, path in METRICS:
                value = _dig((files.get(file) or {}).get("data"), path)
                if isinstance(value, (int, float)):
                    metrics[column] = float(value)
            name = entry.get("name") or ("workspace" if entry["rev"] == "workspace" else entry["rev"][:7])
            found.append(Run(name, params, metrics))
        for group in entry.get("experiments") or []:
            for rev in group.get("revs") or []:
                visit(rev)

    for entry in show:
        visit(entry)
    rest = [r for r in found if r.name != "workspace"]
    return rest or found


def differing(runs: list[Run]) -> list[str]:
    """The params whose values are not the same in every run, in params.yaml order."""
    keys = list(dict.fromkeys(k for run in runs for k in run.params))
    return [k for k in keys if len({repr(run.params.get(k)) for run in runs}) > 1]


def table(runs: list[Run], percent: bool = False) -> tuple[list[str], list[list[str]]]:
    """Rows of the comparison: one per group of runs that differ only in train.seed."""
    keys = [k for k in differing(runs) if k != SEED]
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(repr(run.params.get(k)) for k in keys), []).append(run)
    header = ["runs", *keys, "seeds", *(column for column, _, _ in METRICS)]
    rows = []
    for members in groups.values():
        first = members[0]
        row = [", ".join(run.name for run in members), *(str(first.params.get(k, "")) for k in keys),
               str(len(members))]
        for column, _, _ in METRICS:
            values = [run.metrics[column] for run in members if column in run.metrics]
            scale = 100.0 if percent and column not in ("best epoch",) else 1.0
            digits = 0 if column == "best epoch" else (2 if percent else 4)
            if not values:
                row.append("")
            elif len(values) == 1:
                row.append(f"{values[0] * scale:.{digits}f}")
            else:
                row.append(f"{statistics.mean(values) * scale:.{digits}f} ± "
                           f"{statistics.stdev(values) * scale:.{digits}f}")
        rows.append(row)
    return header, rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def as_csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


__all__ = ["Run", "runs_from_exp_show", "differing", "table", "markdown", "as_csv"]
