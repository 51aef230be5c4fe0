import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, pre_tokenizers

from sktextae import tokenization
from sktextae.tokenization import (
    BOS_ID,
    EOS_ID,
    MASK_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    TOKENIZER_KINDS,
    UNK_ID,
    UNK_TEXT,
    _byte_level_alphabet,
    _character_budget,
    _decode_byte_level,
    as_decoded_case,
    decode,
    encode,
    train_tokenizer,
)

TEXTS = [
    "Héllo wörld, señor ñandú über alles.",
    "日本語のテキスト",
    "thumbs 👍🏽 party 🎉 family 👨‍👩‍👧 flag 🇫🇷",
    "line one\nline two\r\nthree\ttabbed",
    "multiple   spaces  here",
    " leading space",
    "  two leading and trailing  ",
    "\nstarts with a newline",
    '"quoted," she said -- (really)?',
    "literal [MASK] and [PAD] are text",
    "",
]
VOCAB_SIZE = 400
PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)


@pytest.fixture(scope="module", params=TOKENIZER_KINDS)
def kind_and_tokenizer(request):
    return request.param, train_tokenizer(TEXTS, kind=request.param, vocab_size=VOCAB_SIZE)


@pytest.fixture(scope="module")
def word_tokenizer():
    return train_tokenizer(["a b c", "b c", "c"], kind="word", vocab_size=VOCAB_SIZE)


def test_special_token_ids_are_fixed(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    ids = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
    assert ids == [PAD_ID, BOS_ID, EOS_ID, UNK_ID, MASK_ID] == [0, 1, 2, 3, 4]


def test_training_texts_round_trip_exactly(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    ids, n_truncated = encode(tokenizer, TEXTS, max_length=1000)
    assert n_truncated == 0
    assert all(row.dtype == np.int32 and row.ndim == 1 for row in ids)
    assert not any(np.isin(row, [PAD_ID, BOS_ID, EOS_ID, UNK_ID, MASK_ID]).any() for row in ids)
    assert decode(tokenizer, ids) == TEXTS


def test_bpe_round_trips_unseen_text():
    tokenizer = train_tokenizer(["just ascii"], kind="bpe", vocab_size=300)
    unseen = ["Ωμέγα ∑ 🐍 中文  \r\n\t x ", "\u00a0\u3000\u200b", "[UNK][EOS]"]
    assert decode(tokenizer, encode(tokenizer, unseen, max_length=100)[0]) == unseen


def test_word_splits_words_punctuation_and_whitespace():
    tokenizer = train_tokenizer(["Hi, you.\n\tyou"], kind="word", vocab_size=VOCAB_SIZE)
    (ids,), _ = encode(tokenizer, ["Hi, you.\n\tyou"], max_length=100)
    tokens = [tokenizer.id_to_token(i) for i in ids]
    assert tokens == ["▁Hi", ",", "▁you", ".", "\n", "\t", "you"]


def test_word_lossy_cases_are_exactly_as_documented(word_tokenizer):
    # The unknown word takes the space before it into its U+FFFD; U+2581 comes back as a space.
    ids, _ = encode(word_tokenizer, ["a zzz b", "zzz c", "a\u2581b"], max_length=100)
    assert decode(word_tokenizer, ids) == ["a\ufffd b", "\ufffd c", "a b"]


def test_char_is_one_token_per_code_point_and_unseen_is_unk():
    tokenizer = train_tokenizer(["ab 👍🏽"], kind="char", vocab_size=VOCAB_SIZE)
    (ids, unseen), _ = encode(tokenizer, ["ab 👍🏽", "aXb"], max_length=100)
    assert len(ids) == len("ab 👍🏽") == 5
    assert unseen.tolist()[1] == UNK_ID
    assert decode(tokenizer, [unseen]) == ["a\ufffdb"]


def test_empty_texts_encode_to_empty_arrays_and_decode_to_empty(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    ids, n_truncated = encode(tokenizer, ["", ""], max_length=5)
    assert n_truncated == 0
    assert [row.shape for row in ids] == [(0,), (0,)]
    assert ids[0].dtype == np.int32
    assert decode(tokenizer, ids) == ["", ""]
    assert decode(tokenizer, [[], np.array([], dtype=np.int64)]) == ["", ""]


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
@pytest.mark.parametrize("corpus", [["", "", ""], []])
def test_all_empty_corpus_trains_a_working_tokenizer(kind, corpus):
    tokenizer = train_tokenizer(corpus, kind=kind, vocab_size=VOCAB_SIZE)
    n_bytes = 256 if kind == "bpe" else 0
    assert tokenizer.get_vocab_size() == len(SPECIAL_TOKENS) + n_bytes
    ids, _ = encode(tokenizer, ["", "hé"], max_length=10)
    assert ids[0].size == 0
    expected = "hé" if kind == "bpe" else ("\ufffd" if kind == "word" else "\ufffd\ufffd")
    assert decode(tokenizer, ids) == ["", expected]


def test_truncation_is_counted_exactly(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    texts = ["a", "one two three four five", "", "x y z w v u t s", "日本語のテキスト 日本語 🎉 🎉 !"]
    max_length = 4
    full, _ = encode(tokenizer, texts, max_length=10_000)
    ids, n_truncated = encode(tokenizer, texts, max_length=max_length)
    assert n_truncated == sum(len(row) > max_length for row in full) == 3
    assert all(len(row) <= max_length for row in ids)
    assert all(np.array_equal(cut, row[:max_length]) for cut, row in zip(ids, full))


def test_decode_stops_at_eos_and_drops_pad_bos_mask(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    (ids,), _ = encode(tokenizer, ["Héllo wörld"], max_length=100)
    ids = ids.tolist()
    noisy = [BOS_ID, *ids[:1], MASK_ID, *ids[1:], EOS_ID, *ids, PAD_ID]
    padded = np.array([
        [BOS_ID, *ids, EOS_ID, PAD_ID, PAD_ID],
        [BOS_ID, *ids, PAD_ID, PAD_ID, EOS_ID],
    ])
    assert decode(tokenizer, [noisy]) == ["Héllo wörld"]
    assert decode(tokenizer, padded) == ["Héllo wörld"] * 2
    assert decode(tokenizer, [[EOS_ID, *ids]]) == [""]


def test_unk_renders_as_replacement_character(kind_and_tokenizer):
    kind, tokenizer = kind_and_tokenizer
    (ids,), _ = encode(tokenizer, ["señor"], max_length=100)
    # A word token carries its leading space ("▁señor"), shown once a token precedes it.
    expected = "\ufffd señor\ufffd" if kind == "word" else "\ufffdseñor\ufffd"
    assert decode(tokenizer, [[UNK_ID, *ids.tolist(), UNK_ID]]) == [expected]


def test_literal_special_token_strings_are_ordinary_text(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    text = "literal [MASK] and [PAD] are text"
    (ids,), _ = encode(tokenizer, [text], max_length=100)
    assert not np.isin(ids, [PAD_ID, MASK_ID]).any()
    assert decode(tokenizer, [ids]) == [text]


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
@pytest.mark.parametrize("vocab_size", [261, 270, 300])
def test_vocab_size_is_respected(kind, vocab_size):
    tokenizer = train_tokenizer(TEXTS * 3, kind=kind, vocab_size=vocab_size)
    assert tokenizer.get_vocab_size() <= vocab_size


@pytest.mark.parametrize("kind", ["word", "char"])
def test_small_vocab_keeps_the_most_frequent_tokens(kind):
    tokenizer = train_tokenizer(["aaa bb c"], kind=kind, vocab_size=6)
    assert tokenizer.get_vocab_size() == 6
    assert tokenizer.id_to_token(5) in ("▁aaa", "a")


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_training_is_deterministic(kind):
    # Ties in frequency are common in a small corpus; they must not be broken at random.
    vocabs = [train_tokenizer(TEXTS, kind=kind, vocab_size=300).get_vocab() for _ in range(5)]
    assert all(vocab == vocabs[0] for vocab in vocabs)


def test_pickle_round_trip_gives_identical_encodings(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    restored = pickle.loads(pickle.dumps(tokenizer))
    ids, n = encode(tokenizer, TEXTS, max_length=7)
    restored_ids, restored_n = encode(restored, TEXTS, max_length=7)
    assert n == restored_n
    assert all(np.array_equal(a, b) for a, b in zip(ids, restored_ids))
    assert decode(restored, ids) == decode(tokenizer, ids)


def test_unknown_kind_raises():
    message = r"kind='wordpiece' is not supported; use one of \('bpe', 'word', 'char'\)"
    with pytest.raises(ValueError, match=message):
        train_tokenizer(TEXTS, kind="wordpiece", vocab_size=VOCAB_SIZE)


@pytest.mark.parametrize(
    "kind, vocab_size, minimum",
    [("bpe", 260, 261), ("bpe", 100, 261), ("word", 5, 6), ("char", 0, 6),
     ("word", 10.5, 6), ("char", None, 6)],
)
def test_too_small_vocab_size_raises(kind, vocab_size, minimum):
    message = rf"vocab_size={vocab_size!r} is too small .* use an integer >= {minimum}"
    with pytest.raises(ValueError, match=message):
        train_tokenizer(TEXTS, kind=kind, vocab_size=vocab_size)


def test_minimum_vocab_size_is_accepted():
    assert train_tokenizer(TEXTS, kind="bpe", vocab_size=261).get_vocab_size() == 261
    assert train_tokenizer(TEXTS, kind="char", vocab_size=6).get_vocab_size() == 6


@pytest.mark.parametrize("max_length", [0, -3, 2.5, True])
def test_bad_max_length_raises(word_tokenizer, max_length):
    with pytest.raises(ValueError, match=rf"max_length={max_length!r} is invalid; use an integer >= 1"):
        encode(word_tokenizer, ["a b"], max_length=max_length)


def test_bare_string_raises(word_tokenizer):
    with pytest.raises(TypeError, match=r"string object received. Wrap a single text in a list"):
        train_tokenizer("a b c", kind="word", vocab_size=VOCAB_SIZE)
    with pytest.raises(TypeError, match="string object received"):
        encode(word_tokenizer, "a b", max_length=5)


@pytest.mark.parametrize("make_texts", [lambda: {"a", "b"}, lambda: frozenset("ab"), lambda: {"a": 0}],
                         ids=["set", "frozenset", "dict"])
def test_unordered_texts_raise(word_tokenizer, make_texts):
    # A set's order follows string hashing, which changes from one process to the next.
    with pytest.raises(TypeError, match=r"^texts is a .*: pass a list, e.g. sorted\(texts\)"):
        train_tokenizer(make_texts(), kind="word", vocab_size=VOCAB_SIZE)
    with pytest.raises(TypeError, match=r"^texts is a "):
        encode(word_tokenizer, make_texts(), max_length=5)


def test_non_string_text_raises(word_tokenizer):
    with pytest.raises(TypeError, match=r"texts\[1\] is of type int, but every text must be a str"):
        train_tokenizer(["a", 3], kind="word", vocab_size=VOCAB_SIZE)
    with pytest.raises(ValueError, match=r"texts\[0\] is None, a missing value"):  # as the estimators say it
        encode(word_tokenizer, [None], max_length=5)


def test_bad_sequences_raise(word_tokenizer):
    with pytest.raises(ValueError, match=r"sequences\[0\] has 0 dimensions; each sequence must be 1-D"):
        decode(word_tokenizer, [5, 6])
    with pytest.raises(ValueError, match=r"sequences\[0\] has dtype float64; token ids must be integers"):
        decode(word_tokenizer, [[5.0, 6.0]])
    size = word_tokenizer.get_vocab_size()
    message = rf"sequences\[1\] holds id {size}, outside the vocabulary \[0, {size}\)"
    with pytest.raises(ValueError, match=message):
        decode(word_tokenizer, [[5], [5, size]])
    with pytest.raises(ValueError, match=r"holds id -1, outside the vocabulary"):
        decode(word_tokenizer, [[-1]])


# --------------------------------------------------------------------------- lowercase

CASED = ["The CAT sat on the mat.", "the cat SAT", "Ωμέγα ΟΔΟΣ", "İstanbul"]


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_lowercase_makes_case_variants_encode_alike(kind):
    # Both spellings are in the corpus, so without lowercasing each has tokens of its own (not [UNK]).
    cased = train_tokenizer(CASED, kind=kind, vocab_size=VOCAB_SIZE)
    lowercased = train_tokenizer(CASED, kind=kind, vocab_size=VOCAB_SIZE, lowercase=True)
    (upper, lower), _ = encode(lowercased, ["The CAT", "the cat"], max_length=100)
    np.testing.assert_array_equal(upper, lower)
    assert not np.isin(upper, UNK_ID).any()
    (upper, lower), _ = encode(cased, ["The CAT", "the cat"], max_length=100)
    assert not np.array_equal(upper, lower)


@pytest.mark.parametrize("kind", ["word", "char"])  # "bpe" holds every byte, "A" included, whatever it learns
def test_lowercase_vocabulary_has_no_uppercase(kind):
    tokenizer = train_tokenizer(CASED, kind=kind, vocab_size=VOCAB_SIZE, lowercase=True)
    tokens = [token for token in tokenizer.get_vocab() if token not in SPECIAL_TOKENS]
    assert tokens and not any(character.isupper() for token in tokens for character in token)


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_lowercase_decodes_to_the_lowercased_text(kind):
    tokenizer = train_tokenizer(CASED, kind=kind, vocab_size=VOCAB_SIZE, lowercase=True)
    expected = as_decoded_case(tokenizer, CASED)
    assert expected == ["the cat sat on the mat.", "the cat sat", "ωμέγα οδοσ", "i\u0307stanbul"]
    assert decode(tokenizer, encode(tokenizer, CASED, max_length=100)[0]) == expected


def test_lowercase_bpe_round_trips_unseen_text_lowercased():
    tokenizer = train_tokenizer(["just ascii"], kind="bpe", vocab_size=300, lowercase=True)
    unseen = ["Héllo WÖRLD, The CAT 🐍\n", "", "  Two  Spaces "]
    assert decode(tokenizer, encode(tokenizer, unseen, max_length=100)[0]) == [
        "héllo wörld, the cat 🐍\n", "", "  two  spaces "]


def test_lowercase_word_keeps_its_spacing_rules():
    # Lowercase() comes before the word kind's Prepend(" "): tokens and spaces are as without it.
    tokenizer = train_tokenizer([" Hi, You.\n\tyou"], kind="word", vocab_size=VOCAB_SIZE, lowercase=True)
    (ids,), _ = encode(tokenizer, [" Hi, YOU.\n\tyou"], max_length=100)
    assert [tokenizer.id_to_token(i) for i in ids] == ["▁", "▁hi", ",", "▁you", ".", "\n", "\t", "you"]
    assert decode(tokenizer, [ids]) == [" hi, you.\n\tyou"]


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_lowercase_survives_pickling(kind):
    tokenizer = train_tokenizer(CASED, kind=kind, vocab_size=VOCAB_SIZE, lowercase=True)
    restored = pickle.loads(pickle.dumps(tokenizer))
    (upper, lower), _ = encode(restored, ["The CAT", "the cat"], max_length=100)
    np.testing.assert_array_equal(upper, lower)
    assert as_decoded_case(restored, ["The CAT"]) == ["the cat"]


def test_as_decoded_case_leaves_texts_of_a_cased_tokenizer_alone(kind_and_tokenizer):
    _, tokenizer = kind_and_tokenizer
    assert as_decoded_case(tokenizer, ("The CAT", "")) == ["The CAT", ""]


@pytest.mark.parametrize("lowercase", ["yes", 1, None])
def test_bad_lowercase_raises(lowercase):
    with pytest.raises(ValueError, match=rf"lowercase={lowercase!r} is invalid; use True or False"):
        train_tokenizer(TEXTS, kind="word", vocab_size=VOCAB_SIZE, lowercase=lowercase)


# --------------------------------------------------------------------------- invalid bytes


@pytest.fixture(scope="module")
def byte_tokenizer():
    """A "bpe" tokenizer that knows no merges: every byte of a text is a token of its own."""
    return train_tokenizer([], kind="bpe", vocab_size=300)


def byte_ids(tokenizer, text):
    (ids,), _ = encode(tokenizer, [text], max_length=1000)
    return ids.tolist()


def test_byte_tokenizer_gives_one_token_per_byte(byte_tokenizer):
    assert len(byte_ids(byte_tokenizer, "é👍")) == len("é👍".encode()) == 6


def test_bpe_decode_drops_bytes_that_form_no_character(byte_tokenizer):
    lead, continuation = byte_ids(byte_tokenizer, "é")  # 0xC3 0xA9
    thumb = byte_ids(byte_tokenizer, "👍")  # 4 bytes
    a, b = byte_ids(byte_tokenizer, "ab")
    assert decode(byte_tokenizer, [[lead, continuation]]) == ["é"]
    assert decode(byte_tokenizer, [
        [continuation],  # a lone continuation byte
        [a, lead, b],  # a lead byte without its continuation
        [a, *thumb[:3]],  # a character cut short at the end
        [*thumb[1:], b],  # ... and at the start
        [continuation, lead],  # the two bytes of "é" in the wrong order
        [lead, EOS_ID, continuation],
    ]) == ["", "ab", "a", "b", "", ""]


def test_bpe_decode_keeps_unk_and_real_replacement_characters(byte_tokenizer):
    lead, continuation = byte_ids(byte_tokenizer, "é")
    # An UNK inside a character leaves its halves no valid character: only the UNK shows.
    assert decode(byte_tokenizer, [[lead, UNK_ID, continuation]]) == [UNK_TEXT]
    assert decode(byte_tokenizer, [[UNK_ID, lead, UNK_ID]]) == [UNK_TEXT * 2]
    text = "a\ufffdb \ufffd"  # U+FFFD in a text is a character like any other
    assert decode(byte_tokenizer, encode(byte_tokenizer, [text], max_length=100)[0]) == [text]


def test_bpe_round_trips_control_characters(byte_tokenizer):
    texts = ["\x00\x1b[31mred\x07\x7f", "\x85\u2028\u200e"]
    assert decode(byte_tokenizer, encode(byte_tokenizer, texts, max_length=100)[0]) == texts


def test_byte_level_alphabet_is_the_pre_tokenizers():
    alphabet = _byte_level_alphabet()
    assert sorted(alphabet) == list(range(256))
    assert set(alphabet.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    ascii_text = "".join(map(chr, range(128)))
    (pieces,) = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(ascii_text)
    assert pieces[0] == "".join(alphabet[byte] for byte in range(128))


@PROPERTY_SETTINGS
@given(st.binary(max_size=40))
def test_byte_level_decoding_is_the_decoders_with_invalid_bytes_dropped(data):
    alphabet = _byte_level_alphabet()
    tokens = [alphabet[byte] for byte in data]
    assert decoders.ByteLevel().decode(tokens) == data.decode("utf-8", errors="replace")
    assert _decode_byte_level(tokens) == data.decode("utf-8", errors="ignore")


# --------------------------------------------------------------------------- long runs without spaces

MAX_RUN = 64
LONG_RUNS = ["a" * 1000, "日本語のテキスト" * 125, "x" * 65 + " " + "y" * 129, "https://example.com/" + "q" * 200]


@pytest.fixture(scope="module")
def bpe_tokenizer():
    return train_tokenizer(TEXTS, kind="bpe", vocab_size=VOCAB_SIZE)


@pytest.mark.parametrize("text", LONG_RUNS, ids=["ascii", "cjk", "two-runs", "url"])
def test_bpe_cuts_long_runs_into_bounded_pieces(bpe_tokenizer, text):
    # BPE training is quadratic in a piece's length; a cut keeps every character.
    pieces = bpe_tokenizer.pre_tokenizer.pre_tokenize_str(text)
    assert max(len(text[start:end].lstrip(" ")) for _, (start, end) in pieces) <= MAX_RUN
    assert [start for _, (start, _) in pieces[1:]] == [end for _, (_, end) in pieces[:-1]]
    assert decode(bpe_tokenizer, encode(bpe_tokenizer, [text], max_length=10_000)[0]) == [text]


def test_bpe_learns_no_token_longer_than_the_bound():
    text = "ab" * 2500  # merges double "ab" up to the longest piece: "abab", "abababab", ...
    tokenizer = train_tokenizer([text], kind="bpe", vocab_size=300)
    assert max(len(token) for token in tokenizer.get_vocab()) <= MAX_RUN  # ASCII: one byte-level character each
    assert decode(tokenizer, encode(tokenizer, [text], max_length=10_000)[0]) == [text]


def test_bpe_leaves_runs_up_to_the_bound_whole(bpe_tokenizer):
    # A cut before the comma of " a...a," would change nothing either: the regex puts one there too.
    for text in ["a" * MAX_RUN, " " + "a" * MAX_RUN + ",", "x " + "a" * MAX_RUN + " y", "hello world, 1234"]:
        expected = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True).pre_tokenize_str(text)
        assert bpe_tokenizer.pre_tokenizer.pre_tokenize_str(text) == expected


@PROPERTY_SETTINGS
@given(text=st.text(st.characters(exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"]), min_size=MAX_RUN + 1))
def test_any_long_run_round_trips_with_bpe(bpe_tokenizer, text):
    pieces = bpe_tokenizer.pre_tokenizer.pre_tokenize_str(text)
    assert max(end - start for _, (start, end) in pieces) <= MAX_RUN  # no spaces to add
    assert decode(bpe_tokenizer, encode(bpe_tokenizer, [text], max_length=10_000)[0]) == [text]


# --------------------------------------------------------------------------- properties over any text


@pytest.fixture(scope="module", params=[(kind, lowercase) for kind in TOKENIZER_KINDS for lowercase in (False, True)],
                ids=lambda param: param[0] + ("-lowercase" if param[1] else ""))
def any_tokenizer(request):
    kind, lowercase = request.param
    return kind, train_tokenizer(TEXTS + CASED, kind=kind, vocab_size=VOCAB_SIZE, lowercase=lowercase)


@PROPERTY_SETTINGS
@given(texts=st.lists(st.text(), max_size=4))
def test_any_text_encodes_and_decodes(any_tokenizer, texts):
    kind, tokenizer = any_tokenizer
    ids, n_truncated = encode(tokenizer, texts, max_length=10_000)
    assert n_truncated == 0
    decoded = decode(tokenizer, ids)
    assert len(decoded) == len(texts)
    for text in decoded:
        text.encode("utf-8")  # raises on a lone surrogate
    expected = as_decoded_case(tokenizer, texts)
    if kind == "bpe":
        assert decoded == expected
    if kind == "char":  # exact for the texts whose characters were all seen in training
        assert all(got == text for row, text, got in zip(ids, expected, decoded) if UNK_ID not in row)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_ids_decode_to_valid_text(any_tokenizer, data):
    kind, tokenizer = any_tokenizer
    vocab = tokenizer.get_vocab()
    # Byte 0xEF ("ï" at byte level) starts the valid encoding of U+FFFD itself; without it, and with
    # no U+FFFD in the training texts, a U+FFFD in the decoded text can only come from an UNK.
    ids = sorted(i for token, i in vocab.items() if not (kind == "bpe" and "ï" in token))
    sequences = data.draw(st.lists(st.lists(st.sampled_from(ids), max_size=30), max_size=4))
    decoded = decode(tokenizer, sequences)
    assert len(decoded) == len(sequences)
    for sequence, text in zip(sequences, decoded):
        text.encode("utf-8")  # raises on a lone surrogate
        kept = sequence[:sequence.index(EOS_ID)] if EOS_ID in sequence else sequence
        assert text.count(UNK_TEXT) == kept.count(UNK_ID)


def test_a_lone_surrogate_is_refused_naming_the_text_and_the_fix():
    # A str can hold one (JSON's "\ud800", bytes decoded with errors="surrogateescape"); the tokenizer's
    # own error said only "TextEncodeInput must be Union[...]".
    tokenizer = train_tokenizer(TEXTS, kind="bpe", vocab_size=VOCAB_SIZE)
    with pytest.raises(ValueError, match=r"texts\[1\] holds a lone surrogate '\\udcff' at position 2, .*"
                                         r"errors='replace'"):
        encode(tokenizer, ["fine", "ok\udcff"], max_length=8)
    with pytest.raises(ValueError, match=r"texts\[0\] holds a lone surrogate"):
        train_tokenizer(["\ud800"], kind="word", vocab_size=VOCAB_SIZE)


# --------------------------------------------------------------------------- very long texts

# A WordPiece tokenizer as pretrained encoders have (BertNormalizer, lowercase): it drops whitespace.
PRETRAINED_TOKENIZER = Path(__file__).parent / "data" / "saved_models" / "autoencoder_pretrained" / "tokenizer.json"
WORDS = " ".join(TEXTS + CASED).split()


@pytest.fixture(scope="module", params=["bpe", "word", "char", "bpe-lowercase", "word-lowercase", "char-lowercase",
                                        "pretrained"])
def long_text_tokenizer(request):
    if request.param == "pretrained":
        return Tokenizer.from_file(str(PRETRAINED_TOKENIZER))
    kind, _, lowercase = request.param.partition("-")
    return train_tokenizer(TEXTS + CASED, kind=kind, vocab_size=VOCAB_SIZE, lowercase=bool(lowercase))


def whole_text_encoding(tokenizer, texts, max_length):
    """What encode() gave before it cut texts to a budget: the whole text tokenized, then truncated."""
    tokenizer.encode_special_tokens = True
    full = [tokenizer.encode(text, add_special_tokens=False).ids for text in texts]
    return [ids[:max_length] for ids in full], sum(len(ids) > max_length for ids in full)


def assert_encodes_as_whole_texts(tokenizer, texts, max_length):
    ids, n_truncated = encode(tokenizer, texts, max_length=max_length)
    expected_ids, expected_n_truncated = whole_text_encoding(tokenizer, texts, max_length)
    assert [row.tolist() for row in ids] == expected_ids
    assert n_truncated == expected_n_truncated


def words_of_length(length, *, seed, separators=(" ",)):
    """Ordinary text: the words of TEXTS and CASED, cut to ``length`` characters."""
    rng = np.random.default_rng(seed)
    parts = []
    while sum(map(len, parts)) < length:
        parts += [str(rng.choice(WORDS)), str(rng.choice(separators))]
    return "".join(parts)[:length]


def texts_around_the_budget(budget):
    """Texts just shorter and longer than the budget, with the character at the budget, and the
    characters before it, each of the kinds a cut must handle."""
    texts = []
    for seed, length in enumerate([budget - 1, budget, budget + 1, budget + 2, 2 * budget + 3, 10 * budget]):
        texts.append(words_of_length(length, seed=seed))
        texts.append(words_of_length(length, seed=seed, separators=(" ", "  ", "\n", "\t", ", ", "\r\n")))
    prefix = words_of_length(budget // 2, seed=1)
    texts += [
        prefix + " " * budget + words_of_length(budget, seed=2),  # a run of whitespace across the cut
        prefix.rstrip() + " " + "x" * budget,  # no whitespace after the middle of the budget: cut in a word
        words_of_length(budget - 3, seed=3).rstrip() + " " + "abcdefgh" * 3,  # a word across the budget
        words_of_length(budget, seed=4).rstrip() + "\n" * budget,  # whitespace up to and past the budget
        "日本語のテキスト" * budget,  # no whitespace at all
        "\n".join(["日本語のテキスト" * 4] * budget),
        " ".join(["Zyxwvutsrqponmlkjihgfedcba" * 3] * budget),  # words far longer than any token
    ]
    return texts


@pytest.mark.parametrize("max_length", [1, 7, 40])
def test_long_texts_encode_as_whole_texts_did(long_text_tokenizer, max_length):
    budget = _character_budget(long_text_tokenizer, max_length)
    texts = texts_around_the_budget(budget)
    assert max(map(len, texts)) > budget and min(map(len, texts)) < budget  # cut and not cut
    assert_encodes_as_whole_texts(long_text_tokenizer, texts, max_length)


def test_budget_follows_max_length_and_the_longest_token_up_to_8_characters():
    tokenizer = train_tokenizer(["a bb cccc", "ddddd"], kind="word", vocab_size=VOCAB_SIZE)
    longest = len("▁ddddd")  # special tokens ("[MASK]") aside
    assert _character_budget(tokenizer, 1) == 2 * 2 * longest
    assert _character_budget(tokenizer, 100) == 2 * 101 * longest
    longer = train_tokenizer(["a bb cccc", "dddddddddddd"], kind="word", vocab_size=VOCAB_SIZE)
    assert _character_budget(longer, 100) == 2 * 101 * 8
    char = train_tokenizer(["ab"], kind="char", vocab_size=VOCAB_SIZE)
    assert _character_budget(char, 10) == 2 * 11


PIECES = ["the", "cat", "Héllo", "WÖRLD", "日本語", "tokenization", " ", " ", " ", "  ", "\n", "\t", "\r\n",
          ",", ".", "!?", "👍🏽", "e\u0301", "İ", "x" * 30, "\u00a0", "\u3000", "[MASK]", "'s", "123"]


@PROPERTY_SETTINGS
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=150), max_length=st.integers(1, 6))
def test_any_text_shorter_than_the_cap_encodes_as_the_whole_text_did(long_text_tokenizer, pieces, max_length):
    # Texts up to 2**18 characters are read further when a prefix does not settle their first ids.
    assert_encodes_as_whole_texts(long_text_tokenizer, ["".join(pieces)], max_length)


def test_many_long_texts_in_several_chunks_keep_their_order(long_text_tokenizer, monkeypatch):
    monkeypatch.setattr(tokenization, "_MAX_CHARACTERS", 2000)  # a text of 2000 characters at most
    monkeypatch.setattr(tokenization, "_CHUNK_CHARACTERS", 2000)  # and a chunk
    chunks = list(tokenization._chunks(["x" * 700] * 10, 10**6))
    assert [len(chunk) for chunk in chunks] == [2] * 5  # two texts of 700 characters a chunk
    budget = _character_budget(long_text_tokenizer, 5)
    texts = [words_of_length(length, seed=seed) for seed, length in enumerate([3, budget * 3, 0, 700, budget] * 40)]
    assert_encodes_as_whole_texts(long_text_tokenizer, texts, 5)


def test_text_that_no_prefix_settles_is_counted_as_truncated(monkeypatch):
    # The pretrained tokenizer drops whitespace: the text's second word lies past every prefix tried.
    tokenizer = Tokenizer.from_file(str(PRETRAINED_TOKENIZER))
    text = "a" + " " * 10_000 + " b c d"
    assert encode(tokenizer, [text], max_length=2)[0][0].tolist() == whole_text_encoding(tokenizer, [text], 2)[0][0]
    monkeypatch.setattr(tokenization, "_MAX_CHARACTERS", 4096)
    (ids,), n_truncated = encode(tokenizer, [text], max_length=2)
    assert n_truncated == 1  # although its 1 id is fewer than max_length
    assert ids.tolist() == tokenizer.encode(text[:4096], add_special_tokens=False).ids == [tokenizer.token_to_id("a")]


def test_whitespace_only_text_longer_than_the_cap_is_counted_as_truncated(long_text_tokenizer, monkeypatch):
    monkeypatch.setattr(tokenization, "_MAX_CHARACTERS", 4096)
    (ids,), n_truncated = encode(long_text_tokenizer, [" \n" * 5000], max_length=3)
    assert n_truncated == 1
    assert ids.tolist() == long_text_tokenizer.encode(" \n" * 2048, add_special_tokens=False).ids[:3]


def test_a_lone_surrogate_past_the_budget_is_still_refused(word_tokenizer):
    text = "a " * 50_000 + "\udcff"
    with pytest.raises(ValueError, match=r"texts\[0\] holds a lone surrogate '\\udcff' at position 100000"):
        encode(word_tokenizer, [text], max_length=2)


def test_training_reads_a_long_text_up_to_the_cap_or_what_max_length_needs():
    # "zebra" lies past 2**18 characters, within the 2 * (3000 + 1) * 65 that max_length=3000 needs.
    text = "a " * 150_000 + "zebra " + "a " * 100_000
    assert "▁zebra" not in train_tokenizer([text], kind="word", vocab_size=VOCAB_SIZE).get_vocab()
    assert "▁zebra" in train_tokenizer([text], kind="word", vocab_size=VOCAB_SIZE, max_length=3000).get_vocab()
    shorter = "a " * 120_000 + "zebra"  # shorter than 2**18 characters: read whole
    assert "▁zebra" in train_tokenizer([shorter], kind="word", vocab_size=VOCAB_SIZE).get_vocab()


@pytest.mark.parametrize("max_length", [0, 2.5, True, "8"])
def test_train_tokenizer_bad_max_length_raises(max_length):
    with pytest.raises(ValueError, match=rf"max_length={max_length!r} is invalid; use an integer >= 1"):
        train_tokenizer(TEXTS, kind="word", vocab_size=VOCAB_SIZE, max_length=max_length)


# Run in a fresh interpreter, whose peak memory (ru_maxrss, in KiB on Linux) is its own. The address
# space is capped 3 GiB above what the imports took, so that a regression fails here instead of taking
# the machine's memory (whole-text tokenization took about 9 GB for 50 MB).
MEMORY_PROBE = """
import json, resource, sys
from sktextae.tokenization import encode, train_tokenizer

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

with open("/proc/self/status") as status:
    virtual_kib = int(next(line for line in status if line.startswith("VmSize:")).split()[1])
resource.setrlimit(resource.RLIMIT_AS, ((virtual_kib + 3 * 2 ** 20) * 1024,) * 2)
unit = "Héllo wörld, the cat sat on the mat. "
line = unit * (50_000_000 // len(unit))  # 50 MB, one line, not ASCII
"""


def run_memory_probe(body):
    environment = {**os.environ, "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                   "RUST_BACKTRACE": "0"}
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE + textwrap.dedent(body)], capture_output=True,
                            text=True, env=environment, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_50_mb_line_encodes_in_bounded_memory():
    report = run_memory_probe("""
        tokenizer = train_tokenizer([unit] * 10, kind="bpe", vocab_size=300)
        before = peak_mib()
        ids, n_truncated = encode(tokenizer, ["short", line, ""], max_length=32)
        growth = peak_mib() - before
        first_part, first_n_truncated = encode(tokenizer, [line[:100_000]], max_length=32)
        print(json.dumps({"growth_mib": growth, "n_truncated": n_truncated, "lengths": [len(row) for row in ids],
                          "ids": ids[1].tolist(), "first_part": first_part[0].tolist(),
                          "first_n_truncated": first_n_truncated}))
    """)
    assert report["growth_mib"] < 300, report
    assert report["n_truncated"] == report["first_n_truncated"] == 1
    assert report["lengths"][1:] == [32, 0]
    assert report["ids"] == report["first_part"]


def test_training_on_a_50_mb_line_stays_bounded():
    report = run_memory_probe("""
        corpus = ["a short text", line + " zebra", "another one"]
        before = peak_mib()
        vocabularies = {kind: train_tokenizer(corpus, kind=kind, vocab_size=400).get_vocab()
                        for kind in ("bpe", "word", "char")}
        growth = peak_mib() - before
        # The line cut where train_tokenizer cuts it: before the last space within its first 2**18 characters.
        cut = line[:2 ** 18 + 1].rsplit(" ", 1)[0]
        same = {kind: train_tokenizer([corpus[0], cut, corpus[2]], kind=kind, vocab_size=400).get_vocab() == vocabulary
                for kind, vocabulary in vocabularies.items()}
        print(json.dumps({"growth_mib": growth, "same_as_trained_on_the_cut_line": same,
                          "zebra": "\\u2581zebra" in vocabularies["word"]}))
    """)
    assert report["growth_mib"] < 300, report
    assert report["same_as_trained_on_the_cut_line"] == {"bpe": True, "word": True, "char": True}
    assert not report["zebra"]  # the end of the line was never read


@pytest.mark.parametrize("kind", ["word", "bpe", "char"])
def test_a_bag_of_words_counts_a_word_as_one_term_and_marks_as_nothing(kind):
    from sktextae.vocabulary import Vocabulary

    texts = ["The cat sat.\nCat food (cat) -- the end!", "the cat"]
    tokenizer = train_tokenizer(texts, kind=kind, vocab_size=300 if kind == "bpe" else 60, lowercase=True)
    terms = Vocabulary(tokenizer).bag_terms()
    ids = [encode(tokenizer, [text], max_length=64)[0][0] for text in ("cat", " cat", "(cat", "\ncat")]
    assert len({tuple(terms[i][terms[i] != PAD_ID]) for i in ids}) == 1  # one term, wherever the word stands
    for mark in (".", "!", " --", "\n"):
        assert (terms[encode(tokenizer, [mark], max_length=8)[0][0]] == PAD_ID).all()
    assert terms[UNK_ID] == UNK_ID and (terms[[PAD_ID, BOS_ID, EOS_ID, MASK_ID]] == PAD_ID).all()
    assert (terms[terms] == terms).all()  # a term counts as itself


def test_a_bag_of_words_that_counts_bigrams_skips_single_letters_and_digits_as_tfidfvectorizer_does():
    from sktextae.vocabulary import Vocabulary

    texts = ["a cat is 1 of 2 big cats", "i saw a cat, 10 of them"]
    tokenizer = train_tokenizer(texts, kind="word", vocab_size=60, lowercase=True)
    vocabulary = Vocabulary(tokenizer)
    every, two = vocabulary.bag_terms(), vocabulary.bag_terms(min_word_chars=2)
    for word in ("a", "1", "i"):
        token = tokenizer.token_to_id("▁" + word)  # the word after a space
        assert every[token] == token and two[token] == PAD_ID
    for word in ("cat", "is", "10", "of"):
        token = tokenizer.token_to_id("▁" + word)  # the word after a space
        assert every[token] == two[token] == token
