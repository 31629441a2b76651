import json

import numpy as np
import pytest
import torch

from conftest import ROOT, SHARED_DATA, write_params
from mygo.selection import load_embedding_tensor, read_released_tokens, select, top_k


def test_top_k_ties_break_by_first_occurrence():
    assert top_k([5, 3, 3, 5, 9, 1], 2) == [5, 3]          # 5 and 3 twice; 5 occurs first
    assert top_k([9, 1, 1, 9, 2], 3) == [9, 1, 2]
    assert top_k([4, 7, 7], 1) == [7]


def test_top_k_larger_than_list():
    assert top_k([1, 2], 5) == [1, 2]
    assert top_k([], 3) == []
    assert top_k([1, 2], 0) == []


def test_select_pads_masks_and_remaps():
    source = torch.arange(40, dtype=torch.float32).view(10, 4)
    ids, mask, table = select([[7, 7, 2, 3], [], [3]], 2, source)
    assert ids.shape == (3, 2) and mask.tolist() == [[True, True], [False, False], [True, False]]
    assert table.weight.shape == (4, 4)                   # padding + ids 2, 3, 7
    assert torch.equal(table.weight[0], torch.zeros(4))
    # Round trip: the compact row of every selected token is its original embedding row.
    for row, original in zip(ids[0], [7, 2]):
        assert torch.equal(table.weight[row], source[original])
    assert torch.equal(table.weight[ids[2, 0]], source[3])
    assert table.source_ids.tolist() == [2, 3, 7]
    assert ids[1].tolist() == [0, 0]


def test_select_rejects_out_of_range():
    with pytest.raises(ValueError, match="token id 12 is outside the embedding table of 10 rows"):
        select([[12]], 2, torch.zeros(10, 3))


def test_select_without_any_tokens():
    ids, mask, table = select([[], []], 3, None)
    assert not mask.any() and table.weight.shape == (1, 1)


def test_released_files(tmp_path):
    names = ["<http://dbpedia.org/resource/A>", "<http://dbpedia.org/resource/B>", "C"]
    (tmp_path / "vis.json").write_text(json.dumps({names[0]: [4, 4, 1, 8], "2": [1]}))
    tokens = read_released_tokens(tmp_path / "vis.json", names)
    assert tokens == [[4, 4, 1, 8], [], [1]]
    (tmp_path / "bad.json").write_text(json.dumps({"nobody": [1]}))
    with pytest.raises(ValueError, match=r"1 of 1 keys match no prepared entity .* e.g. \['nobody'\]"):
        read_released_tokens(tmp_path / "bad.json", names)
    (tmp_path / "bad2.json").write_text(json.dumps({"C": ["x"]}))
    with pytest.raises(ValueError, match="list of integer token ids"):
        read_released_tokens(tmp_path / "bad2.json", names)


def test_released_table_formats(tmp_path):
    weight = torch.randn(6, 3)
    torch.save(weight, tmp_path / "bare.pth")
    torch.save({"weight": weight}, tmp_path / "dict.pth")
    assert torch.equal(load_embedding_tensor(tmp_path / "bare.pth"), weight)
    assert torch.equal(load_embedding_tensor(tmp_path / "dict.pth"), weight)
    (tmp_path / "junk.pth").write_bytes(b"not a tensor")
    with pytest.raises(ValueError, match="junk.pth: cannot read an embedding table"):
        load_embedding_tensor(tmp_path / "junk.pth")


@pytest.mark.skipif(not (SHARED_DATA / "mygo-codebooks").exists(), reason="codebook not present")
def test_real_beit_codebook_with_released_tokens(tmp_path):
    codebook = load_embedding_tensor(SHARED_DATA / "mygo-codebooks" / "beit_v2_codebook.pth")
    assert codebook.shape == (8193, 32)
    names = [f"e{i}" for i in range(3)]
    (tmp_path / "visual.json").write_text(json.dumps({"e0": [8191, 5, 5, 8192, 0], "e2": [8192]}))
    tokens = read_released_tokens(tmp_path / "visual.json", names)
    ids, mask, table = select(tokens, 4, codebook, pad_row=8192)
    assert mask.sum(1).tolist() == [3, 0, 0]
    assert table.weight.shape == (4, 32)
    assert torch.equal(table.weight[ids[0, 0]], codebook[5])          # most frequent first
    norms = table.weight[1:].norm(dim=1)
    np.testing.assert_allclose(norms.numpy(), 1.0, atol=1e-4)        # L2-normalised codes


def test_select_tokens_stage_reads_released_files(tiny_benchmark, tmp_path):
    from conftest import ROOT, run_stage
    from mygo import tables

    kg = tmp_path / "kg"
    run_stage(ROOT / "stages/prepare.py", tiny_benchmark, kg)
    visual = torch.nn.functional.normalize(torch.randn(9, 4), dim=-1)
    visual[8] = 0                                                    # padding row, as in visual.pth
    text = torch.randn(20, 6)
    torch.save(visual, tmp_path / "visual.pth")
    torch.save(text, tmp_path / "textual.pth")
    (tmp_path / "vis.json").write_text(json.dumps({"<http://dbpedia.org/resource/Gary_Rydstrom>": [3, 3, 8, 1],
                                                   "2": [7]}))
    (tmp_path / "txt.json").write_text(json.dumps({"Q42": [5, 6, 6, 19], "3": [2]}))
    params = write_params(tmp_path / "params.yaml", {"max_vis_token": 2, "max_txt_token": 3, "select_tokens": {
        "visual_json": "vis.json", "visual_table": "visual.pth", "visual_pad_row": 8,
        "text_json": "txt.json", "text_table": "textual.pth"}})
    run_stage(ROOT / "stages/select_tokens.py", kg, tmp_path / "tokens", "--released-dir", tmp_path, "--params", params)
    rows = tables.read_entity_tokens(tmp_path / "tokens" / "entity_tokens.parquet").to_pylist()
    compact_visual = torch.load(tmp_path / "tokens" / "visual_table.pt", weights_only=True)
    compact_text = torch.load(tmp_path / "tokens" / "text_table.pt", weights_only=True)
    assert [r["visual_mask"] for r in rows] == [[True, True], [False, False], [True, False], [False, False]]
    assert torch.equal(compact_visual["weight"][rows[0]["visual"][0]], visual[3])     # most frequent first
    assert torch.equal(compact_visual["weight"][rows[2]["visual"][0]], visual[7])
    assert [sum(r["text_mask"]) for r in rows] == [0, 0, 3, 1]
    assert torch.equal(compact_text["weight"][rows[2]["text"][0]], text[6])
    assert compact_text["source_ids"].tolist() == [2, 5, 6, 19]


def test_demo_images_make_m_matter():
    """On the demo, m = 4 / 8 / 16 select different visual tokens for most entities (the
    flagship `dvc exp run -S max_vis_token=16` is not a no-op): the four most frequent are the
    room's colours, the same for every photo, and the object's colour comes within the eight."""
    import torch

    from mygo.selection import top_k
    from mygo.vision import PaletteTokenizer, tokenize_images
    demo = ROOT / "data/raw/demo"
    per_entity: dict[str, list[int]] = {}
    rows = [line.split("\t") for line in (demo / "entities.tsv").read_text().splitlines()]
    paths = [(name, demo / p) for name, _, *images in rows for p in images if (demo / p).exists()]
    ids = tokenize_images(PaletteTokenizer(), [p for _, p in paths], 64, 64, torch.device("cpu"), progress=False)
    for (name, _), tokens in zip(paths, ids):
        per_entity.setdefault(name, []).extend(tokens)
    entities = len(rows)
    differ_4_8 = sum(set(top_k(t, 4)) != set(top_k(t, 8)) for t in per_entity.values())
    differ_8_16 = sum(set(top_k(t, 8)) != set(top_k(t, 16)) for t in per_entity.values())
    assert differ_4_8 > entities / 2 and differ_8_16 > entities / 2, (differ_4_8, differ_8_16, entities)
    from mygo.demo import COLORS
    palette = PaletteTokenizer().colours
    bin_of = {c: int(torch.cdist(torch.tensor([rgb], dtype=torch.float32) / 255, palette).argmin()) for c, rgb in COLORS.items()}
    rooms = {frozenset(top_k(t, 4)) for name, t in per_entity.items() if name not in COLORS}
    assert len(rooms) == 1 and not set(bin_of.values()) & next(iter(rooms))     # m = 4: the room, no colour
    for colour in COLORS:                                  # a colour's swatch: its tones and nothing else
        assert bin_of[colour] in per_entity[colour] and not set(per_entity[colour]) & next(iter(rooms)), colour
        assert len(set(per_entity[colour])) <= 3, colour
    colours = {h: t for split in ("train", "valid", "test") for h, r, t in
               (line.split("\t") for line in (demo / f"{split}.tsv").read_text().splitlines()) if r == "has_color"}
    colours.update({c: c for c in COLORS})
    checked = [name for name in per_entity if name in colours]
    assert len(checked) > entities / 2
    for name in checked:
        assert bin_of[colours[name]] in top_k(per_entity[name], 8), name
