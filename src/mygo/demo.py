"""The embedded demo knowledge graph: a household of objects whose colour shows only in their
images and whose material is named only in their descriptions.

`python scripts/make_demo.py data/raw/demo` (re)builds it; the output is deterministic.

Graph facts (`is_a`, `located_in`, `owned_by`, people `works_in` rooms) are drawn independently of
colour and material, so the structure alone cannot tell them. Valid/test hold `has_color`
triples only for objects that have images and `made_of` triples only for objects that have a
description: those answers can be read from one modality and from nothing else.
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
SIZES = ["small", "large", "tall", "round", "heavy", "light", "old", "new"]
NUM_OBJECTS = 240
IMAGE_SIZE = 64          # an 8 x 8 grid of 8 px cells: the palette tokenizer's patches
CELL = 8
LEVELS = (0, 85, 170, 255)   # the palette tokenizer's 4 x 4 x 4 RGB grid


def _tones(color) -> list[np.ndarray]:
    """The object's tint (lit top), colour (two rows) and shade (bottom), as 4 x 3 RGB rows."""
    base = np.array(color, dtype=np.float64)
    return [0.5 * base + 127.5, base, base, 0.5 * base]


def _nearest_level(rgb) -> tuple[int, int, int]:
    return tuple(min(LEVELS, key=lambda level: abs(level - v)) for v in rgb)


def _background_colours() -> list[tuple[int, int, int]]:
    """Palette colours that no object tone maps to: walls, floors and clutter share these."""
    used = {_nearest_level(tone) for rgb in COLORS.values() for tone in _tones(rgb)}
    free = [(r, g, b) for r in LEVELS for g in LEVELS for b in LEVELS if (r, g, b) not in used]
    return free[::2]


def _image(rng: random.Random, color: tuple[int, int, int]) -> Image.Image:
    """A scene: the object fills a 4 x 4 block of cells at a random place, lit from above (a row
    of its colour's tint, two of the colour, one of its shade); the other 48 cells are background
    in colours no object has. The object's tones are an entity's most frequent tokens, and the
    background adds a dozen or more distinct shared ones, so an entity has more distinct visual
    tokens than m = 8 and m = 4 / 8 / 16 select different tokens."""
    np_rng = np.random.default_rng(rng.randrange(2**32))
    grid = IMAGE_SIZE // CELL
    background = _background_colours()
    cells = np.array([background[rng.randrange(len(background))] for _ in range(grid * grid)], dtype=np.float64)
    top, left = rng.randrange(grid - 3), rng.randrange(grid - 3)
    for r, tone in enumerate(_tones(color)):
        for c in range(4):
            cells[(top + r) * grid + left + c] = tone
    pixels = np.repeat(np.repeat(cells.reshape(grid, grid, 3), CELL, axis=0), CELL, axis=1)
    pixels += np_rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def build(out_dir: str | Path, seed: int = 7) -> None:
    rng = random.Random(seed)
    entities: list[tuple[str, str, list[str]]] = []   # name, description, image paths
    train, valid, test = [], [], []
    images: dict[str, Image.Image] = {}

    for color, rgb in COLORS.items():
        path = f"images/color_{color}.png"
        images[path] = _image(rng, rgb)
        entities.append((color, "", [path]))                       # colours: an image, no text
    for material in MATERIALS:
        entities.append((material, f"{material}", []))              # materials: text, no image
    for category in CATEGORIES:
        entities.append((category, f"a kind of household object: {category}", []))
    for room in ROOMS:
        entities.append((room, "" if rng.random() < 0.5 else f"a room of the house: the {room}", []))
    for person in PEOPLE:
        entities.append((person, "", []))
        train.append((person, "works_in", rng.choice(ROOMS)))

    for i in range(NUM_OBJECTS):
        category = CATEGORIES[i % len(CATEGORIES)]
        name = f"{category}_{i:03d}"
        color, material = rng.choice(list(COLORS)), rng.choice(MATERIALS)
        num_images = rng.choices([0, 1, 2, 3], weights=[2, 4, 3, 1])[0]
        paths = []
        for k in range(num_images):
            path = f"images/{name}_{k}.png"
            images[path] = _image(rng, COLORS[color])
            paths.append(path)
        if i % 60 == 7:
            paths.append(f"images/{name}_missing.png")              # a dead link: recorded, not fatal
        has_text = rng.random() < 0.8
        description = (f"a {rng.choice(SIZES)} {category} made of {material}, "
                       f"bought in {rng.randrange(1950, 2024)}") if has_text else ""
        entities.append((name, description, paths))

        train.append((name, "is_a", category))
        for relation, answer in (("located_in", rng.choice(ROOMS)), ("owned_by", rng.choice(PEOPLE))):
            draw = rng.random()
            (test if draw < 0.1 else valid if draw < 0.15 else train).append((name, relation, answer))
        for relation, answer, visible in (("has_color", color, num_images > 0),
                                          ("made_of", material, has_text)):
            draw = rng.random()
            if visible and draw < 0.25:
                test.append((name, relation, answer))
            elif visible and draw < 0.35:
                valid.append((name, relation, answer))
            else:
                train.append((name, relation, answer))

    with atomic_dir(out_dir) as tmp:
        (tmp / "images").mkdir()
        for path, image in images.items():
            image.save(tmp / path, format="PNG")
        lines = ["\t".join([name, description, *paths]) for name, description, paths in entities]
        (tmp / "entities.tsv").write_text("\n".join(lines) + "\n")
        for split, rows in (("train", train), ("valid", valid), ("test", test)):
            (tmp / f"{split}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
