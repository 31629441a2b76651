"""The embedded demo knowledge graph: a household of objects whose room follows from the graph,
whose colour shows only in their images and whose material is named only in their descriptions.

`python scripts/make_demo.py data/raw/demo` (re)builds it; the output is deterministic.

Each relation in valid and test is answered by one modality and by nothing else:

- `located_in` by the structure: an object stands in the room its owner works in (`owned_by`,
  `works_in` are in train), with a few exceptions;
- `has_color` by the images (only for objects that have one): colour is drawn independently of
  everything in the graph;
- `made_of` by the text (only for objects with a description): likewise independent.

The images are photographs of the object in a room: the wall (two colours in stripes) and the
floor (two in a checkerboard) fill most of the picture, the object a 3 x 3 block of cells in
rows of its colour's tint, the colour and its shade, and a few cells of clutter. An object's
photos share their room, so its four most frequent visual tokens are the room's colours and
its colour's tones come next: m = 4 selects the room only, m = 8 adds the object's tones and a
clutter token, m = 16 more clutter (README, "What the demo shows"). A colour entity's picture is
a swatch: its tint, colour and shade in three bands, nothing else, so its tokens are the tones
that its objects' photos share with it.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

from mygo.io import atomic_dir

COLORS = {
    "red": (200, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 200), "yellow": (230, 210, 40),
    "purple": (130, 40, 160), "orange": (240, 130, 20), "white": (240, 240, 240), "black": (20, 20, 20),
}
MATERIALS = ["wood", "steel", "glass", "plastic", "leather", "wool", "stone", "copper"]
CATEGORIES = ["chair", "table", "lamp", "vase", "bowl", "clock", "bottle", "box", "shelf", "mug"]
ROOMS = ["kitchen", "bedroom", "attic", "garage", "office", "hallway", "cellar", "studio"]
PEOPLE = ["Alice", "Bruno", "Chiara", "Dmitri", "Eun-ji", "Farid", "Greta", "Hiro",
          "Ines", "Jonas", "Kemal", "Lena", "Marek", "Noor", "Oskar", "Priya"]
NUM_OBJECTS = 600
IMAGE_SIZE = 64          # an 8 x 8 grid of 8 px cells: the palette tokenizer's patches
CELL = 8
LEVELS = (0, 85, 170, 255)   # the palette tokenizer's 4 x 4 x 4 RGB grid


def _tones(color) -> list[np.ndarray]:
    """The object's tint (lit top), colour and shade (bottom), as RGB rows."""
    base = np.array(color, dtype=np.float64)
    return [0.5 * base + 127.5, base, 0.5 * base]


def _nearest_level(rgb) -> tuple[int, int, int]:
    return tuple(min(LEVELS, key=lambda level: abs(level - v)) for v in rgb)


def _background_colours() -> list[tuple[int, int, int]]:
    """Palette colours that no object tone maps to: walls, floors and clutter share these."""
    used = {_nearest_level(tone) for rgb in COLORS.values() for tone in _tones(rgb)}
    free = [(r, g, b) for r in LEVELS for g in LEVELS for b in LEVELS if (r, g, b) not in used]
    return free[::2]


def _room() -> list[tuple[int, int, int]]:
    """Where every object is photographed: two wall colours and two floor colours."""
    return _background_colours()[:4]


def _render(cells: np.ndarray, np_rng: np.random.Generator) -> Image.Image:
    """An image of an 8 x 8 grid of cells (64 RGB rows), CELL px each, with the pixel noise."""
    grid = IMAGE_SIZE // CELL
    pixels = np.repeat(np.repeat(cells.reshape(grid, grid, 3), CELL, axis=0), CELL, axis=1)
    pixels += np_rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _image(rng: random.Random, color: tuple[int, int, int], room: list[tuple[int, int, int]]) -> Image.Image:
    """A photo: the wall's two colours in stripes over the top half of an 8 x 8 grid of cells, the
    floor's two in a checkerboard below; the object on a 3 x 3 block of cells at a random place (a
    row of its colour's tint, one of the colour, one of its shade); three cells of clutter in
    random background colours. Each room colour covers about 12 cells, each tone 3, each clutter
    cell 1, so the room's colours are an entity's four most frequent tokens."""
    np_rng = np.random.default_rng(rng.randrange(2**32))
    grid = IMAGE_SIZE // CELL
    background = _background_colours()
    wall, floor = room[:2], room[2:]
    cells = np.array([wall[c % 2] if r < grid // 2 else floor[(r + c) % 2]
                      for r in range(grid) for c in range(grid)], dtype=np.float64)
    top, left = rng.randrange(grid - 2), rng.randrange(grid - 2)
    block = set()
    for r, tone in enumerate(_tones(color)):            # tint, colour, shade
        for c in range(3):
            cells[(top + r) * grid + left + c] = tone
            block.add((top + r) * grid + left + c)
    clutter = background[4:]                            # never the room's colours
    for cell in rng.sample(sorted(set(range(grid * grid)) - block), 3):
        cells[cell] = clutter[rng.randrange(len(clutter))]
    return _render(cells, np_rng)


def _swatch(rng: random.Random, color: tuple[int, int, int]) -> Image.Image:
    """A colour's own picture: its tint, the colour and its shade in three horizontal bands of
    an 8 x 8 grid of cells (three rows, three and two), with the photos' pixel noise."""
    np_rng = np.random.default_rng(rng.randrange(2**32))
    grid = IMAGE_SIZE // CELL
    tones = _tones(color)
    cells = np.array([tones[min(r // 3, 2)] for r in range(grid) for _ in range(grid)], dtype=np.float64)
    return _render(cells, np_rng)


def build(out_dir: str | Path, seed: int = 7) -> None:
    rng = random.Random(seed)
    entities: list[tuple[str, str, list[str]]] = []   # name, description, image paths
    train, valid, test = [], [], []
    images: dict[str, Image.Image] = {}

    for color, rgb in COLORS.items():
        path = f"images/color_{color}.png"
        images[path] = _swatch(rng, rgb)
        entities.append((color, "", [path]))                       # colours: a swatch, no text
    for material in MATERIALS:
        entities.append((material, f"{material}", []))              # materials: text, no image
    for category in CATEGORIES:
        entities.append((category, f"a kind of household object: {category}", []))
    for room in ROOMS:
        entities.append((room, "" if rng.random() < 0.5 else f"a room of the house: the {room}", []))
    workplace = {}
    for person in PEOPLE:
        entities.append((person, "", []))
        workplace[person] = rng.choice(ROOMS)
        train.append((person, "works_in", workplace[person]))

    def place(triple, visible: bool, test_share: float, valid_share: float) -> None:
        draw = rng.random()
        (test if visible and draw < test_share else
         valid if visible and draw < test_share + valid_share else train).append(triple)

    for i in range(NUM_OBJECTS):
        category = CATEGORIES[i % len(CATEGORIES)]
        name = f"{category}_{i:03d}"
        color, material, owner = rng.choice(list(COLORS)), rng.choice(MATERIALS), rng.choice(PEOPLE)
        room = workplace[owner] if rng.random() < 0.9 else rng.choice(ROOMS)
        num_images = rng.choices([0, 1, 2, 3], weights=[1, 4, 3, 2])[0]
        paths = []
        for k in range(num_images):
            path = f"images/{name}_{k}.png"
            images[path] = _image(rng, COLORS[color], _room())
            paths.append(path)
        if i % 60 == 7:
            paths.append(f"images/{name}_missing.png")              # a dead link: recorded, not fatal
        has_text = rng.random() < 0.9
        description = f"a {category} made of {material}" if has_text else ""
        entities.append((name, description, paths))
        train.append((name, "is_a", category))
        train.append((name, "owned_by", owner))
        place((name, "located_in", room), True, 0.15, 0.1)
        place((name, "has_color", color), num_images > 0, 0.25, 0.1)
        place((name, "made_of", material), has_text, 0.25, 0.1)

    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        for path, image in images.items():
            image.save(tmp / path, format="PNG")
        lines = ["\t".join([name, description, *paths]) for name, description, paths in entities]
        (tmp / "entities.tsv").write_text("\n".join(lines) + "\n")
        for split, rows in (("train", train), ("valid", valid), ("test", test)):
            (tmp / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
