"""A compact comparison of experiments from `dvc exp show --json`: the params that differ and the
headline metrics, with runs that differ only in `train.seed` averaged as mean ± std, and, against
a baseline, each difference with a verdict on whether it stands above the seed noise.

    mygo compare                                    # every run, Markdown
    mygo compare --baseline main                    # differences against main's group, with verdicts
    mygo compare --baseline main --per-relation     # the same per relation (test MRR)
    mygo compare --csv > runs.csv

Rows are committed revisions (named by branch, else by short hash), experiments (by name), and
the workspace whenever its params or metrics differ from the commit it sits on (after a
`dvc repro` whose bytes differ from the committed ones, say). A run still training shows
"(training)" and none of the previous run's test metrics; a queued or failed one says so.

The verdict (`verdict`) is Welch's t-test over seeds, two-sided, at ALPHA: "above the noise"
when the groups' means differ with p < ALPHA, "within the noise" otherwise, and "one seed only
(cannot tell)" when either side has a single seed, whatever the difference. It suits 3 to 10
seeds a side; with many metrics or relations compared at once, some "above" verdicts are
expected by chance alone (1 in 20 where nothing differs).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
import subprocess
from dataclasses import dataclass, field

SEED = "train.seed"
ALPHA = 0.05
# (column, metrics file, key path) of the headline metrics
METRICS = [
    ("valid MRR", "metrics/train/metrics.json", ("best", "mrr")),
    ("test MRR", "metrics/eval.json", ("mrr",)),
    ("Hits@1", "metrics/eval.json", ("hits@1",)),
    ("Hits@3", "metrics/eval.json", ("hits@3",)),
    ("Hits@10", "metrics/eval.json", ("hits@10",)),
    ("best epoch", "metrics/train/metrics.json", ("best_epoch",)),
]
TEST_COLUMNS = {column for column, file, _ in METRICS if file == "metrics/eval.json"}
PER_RELATION = "metrics/per_relation.json"
ABOVE, WITHIN, ONE_SEED = "above the noise", "within the noise", "one seed only (cannot tell)"


@dataclass
class Run:
    name: str
    params: dict[str, object]       # flattened: "train.model.dim" -> 64
    metrics: dict[str, float]       # by METRICS column
    kind: str = "experiment"        # "workspace", "commit" or "experiment"
    rev: str = ""                   # the git revision holding its outputs ("workspace": the folder)
    baseline: str = ""              # an experiment's commit
    state: str = "done"             # "done", "training", "queued" or "failed"
    relations: dict[str, float] | None = field(default=None, repr=False)   # test MRR per relation

    @property
    def label(self) -> str:
        return self.name if self.state == "done" else f"{self.name} ({self.state})"


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


def _check_shape(show) -> None:
    """`show` must be what `dvc exp show --json` prints: a list of revision objects."""
    if not isinstance(show, list) or not all(isinstance(entry, dict) and "rev" in entry for entry in show):
        found = type(show).__name__ if not isinstance(show, list) else "a list of other things"
        raise ValueError(f"not the output of `dvc exp show --json` (a list of revisions, each with a 'rev'); "
                         f"found {found}")


def _run(entry: dict, kind: str, baseline: str = "", executor: dict | None = None) -> Run | None:
    data = entry.get("data") or {}
    state = (executor or {}).get("state") or ""
    if not entry.get("rev") or ("params" not in data and state not in ("queued", "running", "failed")):
        return None
    params = _flatten((data.get("params") or {}).get("params.yaml", {}).get("data") or {})
    files = data.get("metrics") or {}
    train = (files.get("metrics/train/metrics.json") or {}).get("data") or {}
    if state == "running" or (isinstance(train, dict) and "step" in train and "epochs" not in train):
        state = "training"          # the training log is live; eval.json is still an earlier run's
    elif state not in ("queued", "failed"):
        state = "done"
    metrics = {}
    for column, file, path in METRICS:
        value = _dig((files.get(file) or {}).get("data"), path)
        if isinstance(value, (int, float)) and not (state == "training" and column in TEST_COLUMNS):
            metrics[column] = float(value)
    if kind == "workspace":
        name = "workspace"
    else:
        name = entry.get("name") or entry["rev"][:7]
    return Run(name, params, metrics, kind, entry["rev"], baseline, state)


def runs_from_exp_show(show: list) -> list[Run]:
    """Every committed revision and experiment of `dvc exp show --json`, in DVC's order, and the
    workspace when it is the only row or its params or metrics differ from its commit's."""
    _check_shape(show)
    found: list[Run] = []
    for entry in show:
        kind = "workspace" if entry["rev"] == "workspace" else "commit"
        run = _run(entry, kind)
        if run is not None:
            found.append(run)
        for group in entry.get("experiments") or []:
            for rev in (group or {}).get("revs") or []:
                exp = _run(rev, "experiment", baseline=entry["rev"], executor=group.get("executor"))
                if exp is not None:
                    found.append(exp)
    workspace = [r for r in found if r.kind == "workspace"]
    commits = [r for r in found if r.kind == "commit"]
    rest = [r for r in found if r.kind != "workspace"]
    if not rest:
        return found
    # the workspace holds its commit's results, or the last experiment's (`dvc exp run` leaves
    # them there): a row only when it holds results of its own
    if workspace and commits and all((workspace[0].params, workspace[0].metrics) != (r.params, r.metrics)
                                     for r in rest if r.kind == "commit" and r.rev == commits[0].rev
                                     or r.kind == "experiment" and r.baseline == commits[0].rev):
        workspace[0].baseline = commits[0].rev
        return found
    return rest


def differing(runs: list[Run]) -> list[str]:
    """The params whose values are not the same in every run, in params.yaml order (a queued run
    whose params DVC does not show yet counts for none)."""
    runs = [run for run in runs if run.params]
    keys = list(dict.fromkeys(k for run in runs for k in run.params))
    return [k for k in keys if len({repr(run.params.get(k)) for run in runs}) > 1]


def repeats(runs: list[Run]) -> dict[str, str]:
    """Finished runs whose params, seed included, are an earlier run's (an experiment that
    repeats its commit's settings, say): {the repeat's name: the earlier run's name}. A group
    counts such a run once: the same seed twice is not two seeds. The workspace never counts as
    a repeat (it is a group of its own)."""
    first: dict[str, str] = {}
    out = {}
    for run in runs:
        if run.state != "done" or not run.params or run.kind == "workspace":
            continue
        key = repr(sorted(run.params.items(), key=lambda item: item[0]))
        if key in first:
            out[run.name] = first[key]
        else:
            first[key] = run.name
    return out


def groups(runs: list[Run]) -> tuple[list[str], list[list[Run]]]:
    """The params that differ (but the seed) and the runs grouped by them, in order of first run,
    each repeat of an earlier run's params and seed left out (`repeats`). The workspace is a group
    of its own: it is its commit's run made again, not another seed."""
    keys = [k for k in differing(runs) if k != SEED]
    again = repeats(runs)
    found: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.name in again:
            continue
        key = (*(repr(run.params.get(k)) for k in keys), run.kind == "workspace")
        found.setdefault(key, []).append(run)
    return keys, list(found.values())


def _digits(percent: bool, compact: bool) -> int:
    return (1 if percent else 3) if compact else (2 if percent else 4)


def _fmt(values: list[float], column: str, percent: bool, compact: bool = False) -> str:
    """Mean ± sample standard deviation (one value: itself); `compact`: fewer digits, no spaces."""
    scale = 100.0 if percent and column != "best epoch" else 1.0
    digits = 0 if column == "best epoch" else _digits(percent, compact)
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0] * scale:.{digits}f}"
    return _plus_minus(f"{statistics.mean(values) * scale:.{digits}f}", statistics.stdev(values) * scale, digits,
                       compact)


def _plus_minus(value: str, spread: float, digits: int, compact: bool) -> str:
    return f"{value}{'±' if compact else ' ± '}{spread:.{digits}f}"


def _difference(diff: float, se: float, percent: bool, compact: bool) -> str:
    scale, digits = (100.0 if percent else 1.0), _digits(percent, compact)
    return _plus_minus(f"{diff * scale:+.{digits}f}", se * scale, digits, compact)


RUNS_WIDTH = 24     # a compact row's runs cell: longer lists become "prefix-*" or "first +N"


def _names(members: list[Run], compact: bool = False, states: bool = True) -> str:
    """A group's runs: every name, or (`compact`, too long to show) the names' common prefix
    ("m16-*", the seeds column counts them) or the first name and how many more."""
    names = [run.label if states else run.name for run in members]
    full = ", ".join(names)
    if not compact or len(names) == 1 or len(full) <= RUNS_WIDTH:
        return full
    prefix = os.path.commonprefix([run.name for run in members])
    cut = max(prefix.rfind("-"), prefix.rfind("_"))
    busy = [run.state for run in members if run.state != "done"]
    note = f" ({len(busy)} {busy[0]})" if states and busy and len(set(busy)) == 1 else ""
    return (f"{prefix[:cut + 1]}*" if cut > 0 else f"{names[0]} +{len(names) - 1}") + note


def table(runs: list[Run], percent: bool = False, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Rows of the comparison: one per group of runs that differ only in train.seed; `seeds`
    counts the finished runs, whose metrics the row averages."""
    keys, found = groups(runs)
    header = ["runs", *keys, "seeds", *(column for column, _, _ in METRICS)]
    rows = []
    for members in found:
        done = [run for run in members if run.state == "done"]
        shown = done or members          # a group with no finished run shows what its runs have so far
        row = [_names(members, compact), *(str(members[0].params.get(k, "")) for k in keys),
               str(len(done))]
        for column, _, _ in METRICS:
            row.append(_fmt([run.metrics[column] for run in shown if column in run.metrics], column, percent, compact))
        rows.append(row)
    return header, rows


def legend(runs: list[Run]) -> str:
    """Which row is which commit or experiment, in one line each kind."""
    commits = {run.rev: run.name for run in runs if run.kind == "commit"}
    parts = []
    for run in runs:
        if run.kind == "commit":
            parts.append(f"`{run.name}` is commit {run.rev[:7]}")
    experiments = [run for run in runs if run.kind == "experiment"]
    by_base: dict[str, list[str]] = {}
    for run in experiments:
        by_base.setdefault(commits.get(run.baseline, run.baseline[:7]), []).append(f"`{run.name}`")
    for base, names in by_base.items():
        parts.append(f"{', '.join(names)} {'is an experiment' if len(names) == 1 else 'are experiments'} on {base}")
    if any(run.kind == "workspace" for run in runs):
        base = next((commits.get(r.baseline, r.baseline[:7]) for r in runs if r.kind == "workspace"), "")
        parts.append(f"`workspace` is this folder's results, which differ from {base or 'the commit'}'s "
                     "(not committed)")
    for name, earlier in repeats(runs).items():
        parts.append(f"`{name}` repeats `{earlier}` (the same params and seed: counted once)")
    if any(run.state == "training" for run in runs):
        parts.append("(training): still training; its test metrics come when it ends")
    return "Rows: " + "; ".join(parts) + ".\n" if parts else ""


# ---------------------------------------------------------------------------- verdicts


def welch_summary(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float,
                  n_b: int) -> tuple[float, float | None]:
    """mean_b - mean_a and Welch's two-sided p-value from each side's mean, sample standard
    deviation and count (None with fewer than 2 values a side)."""
    diff = mean_b - mean_a
    if n_a < 2 or n_b < 2:
        return diff, None
    va, vb = sd_a ** 2 / n_a, sd_b ** 2 / n_b
    if va + vb == 0:
        return diff, (1.0 if diff == 0 else 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    from scipy.stats import t as student
    return diff, float(2 * student.sf(abs(t), df))


def welch(a: list[float], b: list[float]) -> tuple[float, float | None]:
    """mean(b) - mean(a) and Welch's two-sided p-value (None with fewer than 2 values a side)."""
    sd = [statistics.stdev(x) if len(x) > 1 else 0.0 for x in (a, b)]
    return welch_summary(statistics.mean(a), sd[0], len(a), statistics.mean(b), sd[1], len(b))


def said(p: float | None) -> str:
    """The verdict for Welch's p-value `p` (None: a side with one seed)."""
    return ONE_SEED if p is None else (ABOVE if p < ALPHA else WITHIN)


def _p(p: float | None) -> str:
    return "" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def verdict(a: list[float], b: list[float]) -> tuple[float, float, float | None, str]:
    """The difference of b's mean over a's, its standard error, the p-value and the verdict."""
    diff, p = welch(a, b)
    se = math.sqrt(sum(statistics.variance(x) / len(x) for x in (a, b) if len(x) > 1)) if p is not None else 0.0
    return diff, se, p, said(p)


def _find_baseline(found: list[list[Run]], name: str) -> list[Run]:
    """The group holding the run `name`, or the one group whose every run is named `name-...`
    (`structure-only` for structure-only-s1, structure-only-s2, ...)."""
    for members in found:
        if name in [run.name for run in members] or name == ", ".join(run.name for run in members):
            return members
    named = [members for members in found if all(run.name.startswith(f"{name}-") for run in members)]
    if len(named) == 1:
        return named[0]
    names = sorted({run.name for members in found for run in members})
    if named:
        raise ValueError(f"--baseline {name!r}: {len(named)} groups of runs are named {name}-...: "
                         f"{'; '.join(_names(m) for m in named)}; name one of their runs")
    raise ValueError(f"--baseline {name!r}: no run of that name or prefix; runs: {', '.join(names)}")


def against_baseline(runs: list[Run], baseline: str, metrics: list[str] | None = None,
                     percent: bool = False, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """For every group but the baseline's, each headline metric's difference against the
    baseline group's (mean over seeds ± its standard error), Welch's p-value and the verdict."""
    keys, found = groups([run for run in runs if run.state == "done"])
    base = _find_baseline(found, repeats(runs).get(baseline, baseline))
    columns = metrics or [column for column, _, _ in METRICS if column != "best epoch"]
    header = ["runs", *keys, "seeds", "metric", "baseline", "this", "difference", "p (Welch)", "verdict"]
    rows = []
    for members in found:
        if members is base:
            continue
        for column in columns:
            a = [run.metrics[column] for run in base if column in run.metrics]
            b = [run.metrics[column] for run in members if column in run.metrics]
            if not a or not b:
                continue
            diff, se, p, said = verdict(a, b)
            rows.append([_names(members, compact, states=False), *(str(members[0].params.get(k, "")) for k in keys),
                         f"{len(b)} vs {len(a)}", column, _fmt(a, column, percent, compact),
                         _fmt(b, column, percent, compact), _difference(diff, se, percent, compact),
                         _p(p), said])
    return header, rows


def read_relations(run: Run, reader=None) -> dict[str, float]:
    """Test MRR per relation of `run`, from the evaluate stage's per-relation file: the folder's
    for the workspace, `git show REV:...` for a commit or an experiment."""
    if run.relations is not None:
        return run.relations
    if reader is None:
        reader = _git_reader
    text = reader(run)
    try:
        rows = json.loads(text)
        run.relations = {str(row["name"]): float(row["mrr"]) for row in rows}
    except (json.JSONDecodeError, TypeError, KeyError, ValueError) as err:
        raise ValueError(f"{PER_RELATION} of run {run.name!r}: not the evaluate stage's per-relation list "
                         f"({err})") from None
    return run.relations


def _git_reader(run: Run) -> str:
    from pathlib import Path
    if run.kind == "workspace":
        try:
            return Path(PER_RELATION).read_text()
        except OSError as err:
            raise ValueError(f"{PER_RELATION}: {err.strerror} (run `dvc repro` first)") from None
    result = subprocess.run(["git", "show", f"{run.rev}:{PER_RELATION}"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(f"{PER_RELATION} of run {run.name!r} ({run.rev[:7]}): {result.stderr.strip()} "
                         "(`dvc exp pull` brings another machine's experiments)")
    return result.stdout


def per_relation(runs: list[Run], baseline: str, relations: list[str] | None = None, reader=None,
                 percent: bool = False, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """For each relation and each group but the baseline's: test MRR of the baseline and of the
    group, the difference, Welch's p-value and the verdict, the largest changes first."""
    keys, found = groups([run for run in runs if run.state == "done"])
    base = _find_baseline(found, repeats(runs).get(baseline, baseline))
    names = list(dict.fromkeys(name for run in base for name in read_relations(run, reader)))
    if relations:
        unknown = [r for r in relations if r not in names]
        if unknown:
            raise ValueError(f"--relations: {', '.join(unknown)}: not a relation of the test split; relations: "
                             f"{', '.join(names)}")
        names = [n for n in names if n in relations]
    header = ["relation", "runs", *keys, "seeds", "baseline MRR", "this MRR", "difference", "p (Welch)", "verdict"]
    rows = []
    for members in found:
        if members is base:
            continue
        for name in names:
            a = [read_relations(run, reader)[name] for run in base if name in read_relations(run, reader)]
            b = [read_relations(run, reader)[name] for run in members if name in read_relations(run, reader)]
            if not a or not b:
                continue
            diff, se, p, said = verdict(a, b)
            rows.append((abs(diff), [name, _names(members, compact, states=False),
                                     *(str(members[0].params.get(k, "")) for k in keys), f"{len(b)} vs {len(a)}",
                                     _fmt(a, "MRR", percent, compact), _fmt(b, "MRR", percent, compact),
                                     _difference(diff, se, percent, compact),
                                     _p(p), said]))
    rows.sort(key=lambda item: -item[0])
    return header, [row for _, row in rows]


# ---------------------------------------------------------------------------- output


def short_headers(header: list[str]) -> list[str]:
    """Each dotted param name cut to its shortest suffix that no other column shares
    (train.model.use_visual -> use_visual)."""
    out = []
    for name in header:
        parts, short = name.split("."), name
        for size in range(1, len(parts)):
            candidate = ".".join(parts[-size:])
            others = [h for h in header if h != name]
            if all(candidate != h and not h.endswith(f".{candidate}") for h in others):
                short = candidate
                break
        out.append(short)
    return out


def text(header: list[str], rows: list[list[str]]) -> str:
    """An aligned table for a terminal: short param names, two spaces between columns, numbers
    right-aligned."""
    shown = short_headers(header)
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(shown)]
    numeric = [all(not row[i] or row[i][0] in "+-0123456789" for row in rows) and any(row[i] for row in rows)
               for i in range(len(shown))]

    def line(cells):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()
    return "\n".join([line(shown), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]) + "\n"


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


def as_json(header: list[str], rows: list[list[str]]) -> str:
    return json.dumps([dict(zip(header, row)) for row in rows], indent=1) + "\n"


__all__ = ["Run", "runs_from_exp_show", "differing", "groups", "table", "legend", "welch", "welch_summary", "said",
           "verdict",
           "repeats", "against_baseline", "per_relation", "read_relations", "short_headers", "text", "markdown", "as_csv", "as_json"]
