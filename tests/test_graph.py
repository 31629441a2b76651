import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SHARED_DATA, run_stage, write_named
from mygo import tables
from mygo.folders import KGFolder
from mygo.graph import load_raw, readable_name, write_processed


def test_readable_name():
    assert readable_name("<http://dbpedia.org/resource/Gary_Rydstrom>") == "Gary Rydstrom"
    assert readable_name("<http://dbpedia.org/resource/Face/Off>") == "Face/Off"
    assert readable_name("<http://dbpedia.org/resource/Caf%C3%A9_Society>") == "Café Society"
    assert readable_name("<http://dbpedia.org/ontology/starring>") == "starring"
    assert readable_name("http://www.wikidata.org/entity/Q370252") == ""
    assert readable_name("plain_name") == "plain name"


def test_named_format_round_trip(tiny_named, tmp_path):
    graph = load_raw(tiny_named)
    assert graph.entity_names == ["Paris", "France", "Berlin", "Germany", "Europe"]
    assert graph.relation_names == ["capital_of", "part_of", "located_in"]
    assert graph.entity_descriptions[1] is None and graph.entity_descriptions[3] is None
    assert graph.entity_images[4] == ["http://x/e1.png", "http://x/e2.png"]
    out = tmp_path / "kg"
    write_processed(graph, out)
    entities = tables.read_entities(out / "entities.parquet").to_pylist()
    assert entities[1]["text"] == "France"              # no description: readable name
    assert entities[0]["text"].startswith("The Eiffel")
    np.testing.assert_array_equal(KGFolder(out).split("train"), [[0, 0, 1], [2, 0, 3], [1, 1, 4]])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["entities"] == 5 and summary["test"] == 1 and summary["image_urls"] == 3


def test_benchmark_format(tiny_benchmark):
    graph = load_raw(tiny_benchmark)
    assert graph.num_entities == 4 and graph.num_relations == 2
    s = graph.summary
    assert s["valid_in_train"] == 1
    assert s["entities_with_text"] == 3                 # Q42 is not readable


@pytest.mark.parametrize("split_text, message", [
    ("0\t0\n", "line 2: expected 3 whitespace-separated columns"),
    ("0\t0\t9\n", "line 2: unknown entity id 9"),
    ("0\t5\t1\n", "line 2: unknown relation id 5"),
    ("0\tx\t1\n", "line 2: relation id 'x' is not an integer"),
])
def test_benchmark_split_errors(tiny_benchmark, split_text, message):
    (tiny_benchmark / "train.txt").write_text("0\t0\t1\n" + split_text)
    with pytest.raises(ValueError, match=message) as err:
        load_raw(tiny_benchmark)
    assert "train.txt" in str(err.value)


@pytest.mark.parametrize("content, message", [
    ("2\na 0\nb 0\n", "line 3: duplicate id 0"),
    ("2\na 0\na 1\n", "line 3: duplicate name 'a'"),
    ("2\na 0\nb one\n", "line 3: id 'one' is not an integer"),
    ("3\na 0\nb 1\n", "declares 3 entries but lists 2"),
])
def test_id_map_errors(tiny_benchmark, content, message):
    (tiny_benchmark / "relation2id.txt").write_text(content)
    with pytest.raises(ValueError, match=message):
        load_raw(tiny_benchmark)


def test_empty_split(tiny_benchmark):
    (tiny_benchmark / "test.txt").write_text("\n")
    with pytest.raises(ValueError, match="test.txt: split is empty"):
        load_raw(tiny_benchmark)


def test_undecodable_bytes(tiny_named):
    (tiny_named / "valid.tsv").write_bytes(b"Germany\tpart_of\tEurope\nBer\xfflin\tpart_of\tEurope\n")
    with pytest.raises(ValueError, match=r"valid.tsv: line 2: undecodable bytes"):
        load_raw(tiny_named)


def test_named_errors(tiny_named):
    (tiny_named / "test.tsv").write_text("Paris\tlocated_in\tAsia\n")
    with pytest.raises(ValueError, match="test.tsv: line 1: unknown entity 'Asia'"):
        load_raw(tiny_named)
    (tiny_named / "entities.tsv").write_text("Paris\t\nParis\t\n")
    with pytest.raises(ValueError, match="entities.tsv: line 2: duplicate entity name 'Paris'"):
        load_raw(tiny_named)


def test_non_fatal_reports(tmp_path):
    root = write_named(tmp_path / "raw", "a\nb\nc\nd\n", "a\tr\tb\na\tr\tb\nb\tr\tc\n",
                       "a\tr\tb\nc\tr\td\n", "b\tr\tc\n")
    s = load_raw(root).summary
    assert s["train_duplicate_lines"] == 1
    assert s["valid_in_train"] == 1 and s["test_in_train"] == 1
    assert s["valid_unseen_entities"] == 1 and s["valid_triples_with_unseen_entity"] == 1


def test_prepare_stage_malformed_line_leaves_nothing(tiny_named, tmp_path):
    out = tmp_path / "kg"
    (tiny_named / "train.tsv").write_text("Paris\tcapital_of\tFrance\nBerlin capital_of Germany\n")
    result = run_stage(ROOT / "stages/prepare.py", tiny_named, out, check=False)
    assert result.returncode == 1
    assert "train.tsv: line 2" in result.stderr and "Berlin capital_of Germany" in result.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".kg")]


def test_prepare_stage_keeps_old_output_on_failure(tiny_named, tmp_path):
    out = tmp_path / "kg"
    run_stage(ROOT / "stages/prepare.py", tiny_named, out)
    before = pq.read_table(out / "train.parquet")
    (tiny_named / "valid.tsv").write_text("Germany\tpart_of\n")
    assert run_stage(ROOT / "stages/prepare.py", tiny_named, out, check=False).returncode == 1
    assert pq.read_table(out / "train.parquet").equals(before)


@pytest.mark.skipif(not (SHARED_DATA / "DB15K").exists(), reason="benchmark data not present")
def test_db15k_counts():
    s = load_raw(SHARED_DATA / "DB15K").summary
    assert (s["entities"], s["relations"], s["train"], s["valid"], s["test"]) == (12842, 279, 79222, 9904, 9902)
    assert s["valid_in_train"] == 8719
    assert s["test_triples_with_unseen_entity"] == 77


@pytest.mark.skipif(not (SHARED_DATA / "MKG-W").exists(), reason="benchmark data not present")
def test_mkgw_counts():
    s = load_raw(SHARED_DATA / "MKG-W").summary
    assert (s["entities"], s["relations"], s["train"], s["valid"], s["test"]) == (15000, 169, 34196, 4276, 4274)
    assert s["test_triples_with_unseen_entity"] == 306


def test_tables_reject_wrong_schema(tmp_path):
    import pyarrow as pa
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"head": [1], "tail": [2]}), path)
    with pytest.raises(ValueError, match="missing column 'relation'"):
        tables.read_triples(path)


@pytest.mark.parametrize("bom_on", ["entities.tsv", "train.tsv", "valid.tsv", "test.tsv"])
def test_bom_and_crlf_in_named_files(tiny_named, bom_on):
    reference = load_raw(tiny_named)
    path = tiny_named / bom_on
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    graph = load_raw(tiny_named)
    assert graph.entity_names == reference.entity_names and graph.relation_names == reference.relation_names
    for split in ("train", "valid", "test"):
        assert (graph.splits[split] == reference.splits[split]).all()


def test_id_map_without_count_line_and_with_wrong_count(tiny_benchmark):
    path = tiny_benchmark / "entity2id.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[1:]) + "\n")                 # the release's own layout: no count
    assert load_raw(tiny_benchmark).num_entities == 4
    path.write_text("5\n" + "\n".join(lines[1:]) + "\n")
    with pytest.raises(ValueError, match="entity2id.txt: line 1: declares 5 entries but lists 4"):
        load_raw(tiny_benchmark)
