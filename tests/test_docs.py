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


# ---- every figure traced: a number in prose sits beside the result file that holds it ----------

TRACED = ["README.md", "docs/demo.md", "docs/reproducibility.md"]
FIGURE = re.compile(r"(?<![\w.\-/])(\d+(?:,\d{3})+(?:\.\d+)?|\d+\.\d+)(?=\s*(?:s\b|x\b|%|[\s,;:)]|$))")
SOURCE = re.compile(r"(?:bench/results|tests/golden|metrics|conf)/[\w./@-]+\.(?:md|json|csv|yaml)")
NOT_FIGURES = re.compile(r"(?:torch|Zen|python|version|arXiv|p <)\s*$")   # versions, ids, the test's level


def prose(text: str) -> list[str]:
    """The paragraphs of a Markdown text that are prose: no tables, code blocks or indented code."""
    paragraphs, fenced = [], False
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if any(line.startswith("```") for line in lines):
            fenced = fenced != (sum(line.startswith("```") for line in lines) % 2 == 1)
            continue
        if fenced or not lines or lines[0].startswith(("|", "    ", "#", "![")):
            continue
        paragraphs.append(" ".join(lines))
    return paragraphs


def untraced(paragraph: str, read=lambda path: (ROOT / path).read_text()) -> list[str]:
    """The figures of a paragraph that none of the result files it names holds, as written."""
    sources = " ".join(read(path) for path in dict.fromkeys(SOURCE.findall(paragraph)))
    return [m.group(1) for m in FIGURE.finditer(paragraph)
            if not NOT_FIGURES.search(paragraph[:m.start()]) and m.group(1) not in sources]


@pytest.mark.parametrize("path", TRACED)
def test_every_figure_in_prose_is_in_a_result_file_it_names(path):
    """A list carries the result files of the paragraph that introduces it."""
    missing, sources = [], ""
    for paragraph in prose((ROOT / path).read_text()):
        if not paragraph.startswith("- "):
            sources = " ".join(SOURCE.findall(paragraph))
        if figures := untraced(f"{paragraph} {sources}" if paragraph.startswith("- ") else paragraph):
            missing.append((figures, paragraph[:100]))
    assert not missing, f"{path}: figures without a result file beside them that holds them: {missing}"


def test_a_figure_changed_by_hand_is_caught():
    files = {"bench/results/x.md": "step 1.90 s, 1.34x its products, 12,842 entities"}
    good = "The step takes 1.90 s, 1.34x its products, on 12,842 entities (`bench/results/x.md`)."
    assert untraced(good, files.get) == []
    assert untraced(good.replace("1.90", "1.80"), files.get) == ["1.80"]
    assert untraced("It takes 1.90 s.", files.get) == ["1.90"]                  # no file named
    assert untraced("Under torch 2.11 it differs.", files.get) == []           # a version, not a figure
