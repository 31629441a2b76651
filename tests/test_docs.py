"""The docs say what the repository holds: the demo's tables in docs/demo.md and the README are the
committed result files', every relative link in the README, docs/ and conf/ resolves, the README
stays a landing page, and the demo's description in docs/formats.md counts what data/raw/demo has."""
import re

import pytest

from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "conf").rglob("*.yaml"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tables(text: str) -> list[str]:
    """The Markdown tables of `text`, each as its block of lines."""
    blocks, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append("\n".join(current))
            current = []
    return blocks


RESULTS = ["bench/results/demo_ablation.md", "bench/results/demo_compare.md", "bench/results/demo_recipe.md",
           "bench/results/demo_amp.md"]


@pytest.mark.parametrize("result", RESULTS)
def test_the_demo_pages_tables_are_the_result_files(result):
    page = (ROOT / "docs/demo.md").read_text()
    found = tables((ROOT / result).read_text())
    assert found, f"{result} has no table"
    for table in found:
        assert table in page, f"docs/demo.md differs from {result}:\n{table}"


def test_every_demo_table_in_the_readme_is_a_result_files():
    """A table the README shows with the results' header is one of the result files' tables, as it
    stands there: a figure changed by hand, or left behind by a rerun, fails."""
    committed = [t for result in RESULTS for t in tables((ROOT / result).read_text())]
    shown = [t for t in tables((ROOT / "README.md").read_text()) if t.startswith(("| variant |", "| runs |"))]
    assert shown, "the README shows no demo table"
    for table in shown:
        assert table in committed, f"README.md shows a table no result file holds:\n{table}"


def test_the_demo_page_states_the_findings_as_computed():
    """The findings the ablation computes from its tables are docs/demo.md's, word for word."""
    page = " ".join((ROOT / "docs/demo.md").read_text().split())
    result = (ROOT / "bench/results/demo_ablation.md").read_text()
    findings = [line for line in result.split("Findings")[1].splitlines() if line.startswith("- ")]
    assert findings
    for line in findings:
        assert " ".join(line.split()) in page, f"docs/demo.md lacks the finding: {line}"


def test_the_readme_is_a_landing_page():
    """A newcomer reads it in two minutes: at most about 8 KB, details in docs/."""
    assert len((ROOT / "README.md").read_bytes()) <= 8200


@pytest.mark.parametrize("path", ["README.md", "docs/demo.md", "docs/reproducibility.md", "docs/paper.md"])
def test_no_text_explains_stale_figures(path):
    """The figures are this version's: none is explained away as an earlier one's."""
    text = " ".join((ROOT / path).read_text().lower().split())
    assert "previous version" not in text and "earlier version" not in text


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue                                 # a URL or an anchor
        file = (path.parent / target.split("#")[0]).resolve()
        assert file.exists(), f"{path.relative_to(ROOT)}: link {target} leads nowhere"


def test_the_demo_description_counts_the_demo():
    demo = ROOT / "data/raw/demo"
    lines = {split: len((demo / f"{split}.tsv").read_text().splitlines()) for split in ("train", "valid", "test")}
    entities = len((demo / "entities.tsv").read_text().splitlines())
    relations = {line.split("\t")[1] for split in lines for line in (demo / f"{split}.tsv").read_text().splitlines()}
    text = " ".join((ROOT / "docs/formats.md").read_text().split())
    expected = (f"({entities:,} entities, {len(relations)} relations, {lines['train']:,} / {lines['valid']:,} / "
                f"{lines['test']:,} triples)")
    assert expected in text, expected
