"""The docs say what the repository holds: the demo's tables in docs/demo.md and the README are the
committed result files', every relative link in the README, docs/ and conf/ resolves, the README
stays a landing page, and the demo's description in docs/formats.md counts what data/raw/demo has."""
import re
import subprocess
import sys

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
           "bench/results/demo_recipe_round1.md"]


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


@pytest.mark.parametrize("result, section", [("bench/results/demo_ablation.md", "Findings"),
                                             ("bench/results/demo_recipe.md", "Decisions"),
                                             ("bench/results/demo_recipe_round1.md", "Decisions")])
def test_the_demo_page_states_the_findings_as_computed(result, section):
    """The findings the ablation computes from its tables, and the recipe's decisions, are
    docs/demo.md's, word for word."""
    page = " ".join((ROOT / "docs/demo.md").read_text().split())
    lines = [line for line in (ROOT / result).read_text().split(section)[1].splitlines() if line.startswith("- ")]
    assert lines
    for line in lines:
        assert " ".join(line.split()) in page, f"docs/demo.md lacks the line of {result}: {line}"


def verdict_rows(block: str) -> list[dict[str, str]]:
    """The rows of `mygo compare`'s terminal table, by header: cells are two spaces or more apart."""
    lines = block.strip("\n").splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    rows = []
    for line in lines[2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells)))
    return rows


def test_the_readmes_demo_verdicts_are_mygo_compares_output():
    """README "What the demo shows": its verdicts are `mygo compare --baseline structure-only
    --per-relation` over the ablation run as DVC experiments (bench/demo_verdicts.sh), as the
    result file holds them, and its sentence about them says what they say: whether the text's
    lift of made_of and the images' lift of has_color are above the noise or within it."""
    result = (ROOT / "bench/results/demo_verdicts.md").read_text()
    assert "mygo compare --baseline structure-only --per-relation" in result
    block = result.split("```text\n")[1].split("```")[0]
    readme = (ROOT / "README.md").read_text()
    assert block in readme, "the README's verdicts are not the result file's"
    rows = {(row["relation"], row["runs"].removesuffix("-*")): row for row in verdict_rows(block)}
    said = " ".join(readme.split())
    for who, relation, runs in (("the text's", "made_of", "with-text"), ("the images'", "has_color", "with-images")):
        row = rows[relation, runs]
        lift = "lift" if row["difference"].startswith("+") else "loss"
        expected = f"{who} {lift} of `{relation}` is {row['verdict']}"
        assert expected in said, f"the README does not say: {expected}"


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


def demo_description() -> str:
    """How docs/formats.md counts the demo, from data/raw/demo itself."""
    demo = ROOT / "data/raw/demo"
    lines = {split: len((demo / f"{split}.tsv").read_text().splitlines()) for split in ("train", "valid", "test")}
    entities = len((demo / "entities.tsv").read_text().splitlines())
    relations = {line.split("\t")[1] for split in lines for line in (demo / f"{split}.tsv").read_text().splitlines()}
    return (f"({entities:,} entities, {len(relations)} relations, {lines['train']:,} / {lines['valid']:,} / "
            f"{lines['test']:,} triples)")


def test_the_demo_description_counts_the_demo():
    expected = demo_description()
    assert expected in " ".join((ROOT / "docs/formats.md").read_text().split()), expected


# ---- every figure traced: a number in prose sits beside the result file that holds it ----------

# every page but docs/params.md, which scripts/params_doc.py renders from the params' declarations
# (test_recipes.py checks it is that rendering)
TRACED = ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "params.md")]
# figures a test computes from the data itself: the text it checks is taken out before the search
VERIFIED = {"docs/formats.md": [demo_description]}
FIGURE = re.compile(r"(?<![\w.\-/])(\d+(?:,\d{3})+(?:\.\d+)?|\d+\.\d+)(?=\s*(?:s\b|x\b|%|[\s,;:)]|$))")
SOURCE = re.compile(r"(?:bench/results|tests/golden|metrics|conf)/[\w./@-]+\.(?:md|json|csv|yaml)")
NOT_FIGURES = re.compile(r"(?:torch|Zen|python|version|arXiv|p <)\s*$")   # versions, ids, the test's level


def blocks(text: str) -> list[tuple[str, str]]:
    """A Markdown text's blocks as (kind, text): "heading", "table", "list" or "prose" (lines
    joined); code blocks, indented code and images left out."""
    out, fenced = [], False
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if any(line.startswith("```") for line in lines):
            fenced = fenced != (sum(line.startswith("```") for line in lines) % 2 == 1)
            continue
        if fenced or not lines or lines[0].startswith(("    ", "![")):
            continue
        kind = ("heading" if lines[0].startswith("#") else "table" if lines[0].startswith("|")
                else "list" if lines[0].startswith("- ") else "prose")
        out.append((kind, " ".join(lines)))
    return out


def prose(text: str) -> list[str]:
    """The paragraphs of a Markdown text that are prose (lists included): no headings, tables or code."""
    return [block for kind, block in blocks(text) if kind in ("prose", "list")]


def with_sources(text: str) -> list[tuple[str, str]]:
    """Each paragraph, list and table with the result files it is checked against: those it names,
    those of the heading it sits under (a heading naming a file holds for its section, deeper
    headings included) and, for a list or a table, those of the paragraph that introduces it."""
    out, heading, level, paragraph = [], "", 0, ""
    for kind, block in blocks(text):
        if kind == "heading":
            depth = len(block) - len(block.lstrip("#"))
            if SOURCE.search(block) or depth <= level:
                heading, level = " ".join(SOURCE.findall(block)), depth if SOURCE.search(block) else 0
            paragraph = ""
            continue
        if kind == "prose":
            paragraph = " ".join(SOURCE.findall(block))
        out.append((block, f"{heading} {paragraph if kind != 'prose' else ''}"))
    return out


CODE = re.compile(r"`[^`]*`")


def read_result(path: str) -> str:
    """A result file's text; one not made yet holds no figure."""
    file = ROOT / path
    return file.read_text() if file.is_file() else ""


def untraced(paragraph: str, read=read_result) -> list[str]:
    """The figures of a paragraph that none of the result files it names holds, as written (or
    without its thousands commas: 12,842 for a file's 12842). Inline code (commands, example log
    lines, names) holds no figures."""
    sources = " ".join(read(path) for path in dict.fromkeys(SOURCE.findall(paragraph)))
    words = CODE.sub(" ", paragraph)

    def held(figure: str) -> bool:          # a whole number there: 1.8 is not held by 1.85
        return any(re.search(rf"(?<![\d.,]){re.escape(f)}(?![\d]|[.,]\d)", sources)
                   for f in (figure, figure.replace(",", "")))
    return [m.group(1) for m in FIGURE.finditer(words)
            if not NOT_FIGURES.search(words[:m.start()]) and not held(m.group(1))]


@pytest.mark.parametrize("path", TRACED)
def test_every_figure_is_in_a_result_file_it_names(path):
    """Prose, lists and tables: each figure is in a result file named beside it (or by its
    heading, or by the paragraph that introduces the list or table)."""
    missing = []
    for block, sources in with_sources((ROOT / path).read_text()):
        block = " ".join(block.split())
        for verified in VERIFIED.get(path, []):
            block = block.replace(verified(), "")
        if figures := untraced(f"{block} {sources}"):
            missing.append((figures, block[:100]))
    assert not missing, f"{path}: figures without a result file beside them that holds them: {missing}"


def test_benchmarks_page_is_rendered_from_the_result_files():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/benchmarks_doc.py"), "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_a_figure_changed_by_hand_is_caught():
    files = {"bench/results/x.md": "step 1.90 s, 1.34x its products, 12,842 entities"}
    good = "The step takes 1.90 s, 1.34x its products, on 12,842 entities (`bench/results/x.md`)."
    assert untraced(good, files.get) == []
    assert untraced(good.replace("1.90", "1.80"), files.get) == ["1.80"]
    assert untraced(good.replace("1.90", "1.9"), files.get) == ["1.9"]        # a part of 1.90 is not it
    assert untraced(good.replace("12,842", "2,842"), files.get) == ["2,842"]
    assert untraced("It takes 1.90 s.", files.get) == ["1.90"]                  # no file named
    assert untraced("Under torch 2.11 it differs.", files.get) == []           # a version, not a figure
    page = "## `bench/results/x.md`\n\n| step | 1.90 |\n\n### Details\n\nIt took 1.34x.\n\n## Other\n\nIt took 1.34x.\n"
    found = [untraced(f"{block} {sources}", files.get) for block, sources in with_sources(page)]
    assert found == [[], [], ["1.34"]]             # a heading's file holds for its section, deeper headings too


def test_the_demo_recipe_departs_from_the_paper_only_where_validation_shows_it():
    """params.yaml is the recipe of bench/results/demo_recipe.md (its table's first row names its
    values) and that recipe stands there: each departure from the paper's values above the noise
    on valid MRR. A departure the file says to revert, or a recipe it did not judge, fails."""
    sys.path.insert(0, str(ROOT / "bench"))
    from demo_recipe import ALL_REVERTED, RECIPE, departure, paper_values, variants

    from mygo.params import load_params
    result = (ROOT / "bench/results/demo_recipe.md").read_text()
    judged = variants(load_params(ROOT / "params.yaml").train, paper_values())
    recipe = next(label for label in judged if label.startswith(RECIPE))
    assert f"| {recipe} |" in result, f"bench/results/demo_recipe.md was not made with params.yaml's {recipe}"
    assert "- verdict: every departure is above the noise: **the recipe stands**" in result
    for label in judged:
        if label not in (recipe, ALL_REVERTED):
            name = departure(label)
            assert re.search(rf"^- {re.escape(name)}: valid MRR \+.*: above the noise$", result, re.M), name


def test_the_cpu_kinds_seen_to_reproduce_are_the_records():
    """docs/reproducibility.md's table of CPU kinds is bench/cpu_kind.py's table of the committed
    records, the README lists exactly the kinds whose records saw today's bytes, and the page says
    an Intel CPU is not yet seen for this version exactly while no Intel record saw them."""
    sys.path.insert(0, str(ROOT / "bench"))
    import cpu_kind
    records = cpu_kind.records()
    page = (ROOT / "docs/reproducibility.md").read_text()
    assert cpu_kind.table(records) in page, "python bench/cpu_kind.py --table differs from the page's table"
    readme = " ".join((ROOT / "README.md").read_text().split())
    listed = re.search(r"for this version \(`bench/results/cpu_kinds/`\): (.*?)\. The pin's cost", readme)
    assert listed, "README: the list of CPU kinds seen to reproduce this version's bytes is missing"
    assert listed.group(1) == ("; ".join(cpu_kind.reproducing(records)) or "none yet")
    intel = any(r["cpu"]["vendor"] == "GenuineIntel" and cpu_kind.this_version(r) for r in records)
    assert ("Not yet seen for this version: an Intel CPU." in page) == (not intel)


def test_the_bf16_record_is_of_this_recipe_and_its_verdict_is_its_tables():
    """bench/results/demo_amp.md (docs/demo.md quotes it) trained params.yaml's recipe, both its
    rows are of a CPU with native bf16, and its last line is computed from its table."""
    from mygo.params import load_params
    result = (ROOT / "bench/results/demo_amp.md").read_text()
    header = result.splitlines()[0]
    assert f"{load_params(ROOT / 'params.yaml').train.epochs} epochs" in header, header
    assert "native bf16: none" not in header and "both rows are float32" not in header, header
    mrr = {line.split("|")[1].split()[0]: [float(x) for x in line.split("|")[2].split(" ± ")]
           for line in result.splitlines() if line.startswith(("| float32", "| bf16"))}
    (m32, s32), (m16, s16) = mrr["float32"], mrr["bf16"]
    verdict = re.search(r"test MRR: ([+-][\d.]+); twice the larger standard deviation: ([\d.]+): (within|OUTSIDE)",
                        result)
    assert verdict, result.splitlines()[-1]
    assert abs(float(verdict.group(1)) - (m16 - m32)) <= 0.0011 and abs(float(verdict.group(2)) - 2 * max(s32, s16)) <= 0.0011
    assert (verdict.group(3) == "within") == (abs(m16 - m32) <= 2 * max(s32, s16))
