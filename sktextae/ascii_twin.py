"""A BERT tokenizer's faster twin for plain ASCII text.

A ``BertNormalizer`` removes control characters, turns whitespace into spaces, puts spaces around Chinese
characters, strips accents (a Unicode decomposition) and lowercases: passes over the text that cost a BERT
tokenizer much of its time on English. On ASCII text that holds no control character, only the
lowercasing changes anything (and, where ``clean_text``, ``"\\t"``, ``"\\n"`` and ``"\\r"`` become spaces,
which ``BertPreTokenizer`` splits on all the same). The twin is the tokenizer with its normalizer replaced by
that lowercasing alone: it shares the model and the pre-tokenizer and has the same added tokens, so it gives
such texts the same ids and offsets. ``encode_batch`` gives it those texts and the tokenizer the others.
"""

import re

from tokenizers import Tokenizer, normalizers, pre_tokenizers

# What a BertNormalizer with clean_text removes from ASCII text, and with the tabs and line ends it turns into
# spaces (which only BertPreTokenizer is known to split on exactly as on a space).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROLS_AND_LINE_SPACES = re.compile(r"[\x00-\x1f\x7f]")


def twin(tokenizer):
    """``(twin, plain)``: the twin of ``tokenizer`` and a function that tells whether a text is plain (the twin
    gives it the tokenizer's ids), or None for a tokenizer without a ``BertNormalizer`` of its own, or with
    truncation or padding (which the twin would have to copy)."""
    normalizer = tokenizer.normalizer
    if type(normalizer) is not normalizers.BertNormalizer or tokenizer.truncation or tokenizer.padding:
        return None
    copy = Tokenizer(tokenizer.model)  # the same model (shared, not copied)
    copy.pre_tokenizer = tokenizer.pre_tokenizer
    copy.normalizer = normalizers.Lowercase() if normalizer.lowercase else None
    added = tokenizer.get_added_tokens_decoder()  # {id: AddedToken}
    copy.add_tokens([added[i] for i in sorted(added)])  # each AddedToken keeps whether it is special
    if _described(copy.get_added_tokens_decoder()) != _described(added):  # another id or setting: no twin
        return None
    copy.encode_special_tokens = tokenizer.encode_special_tokens
    if not normalizer.clean_text:
        return copy, str.isascii
    bert_words = type(tokenizer.pre_tokenizer) is pre_tokenizers.BertPreTokenizer
    controls = _CONTROLS if bert_words else _CONTROLS_AND_LINE_SPACES
    return copy, lambda text: text.isascii() and controls.search(text) is None


def _described(added):
    return {index: repr(token) for index, token in added.items()}  # repr names every setting of the token


def encode_batch(tokenizer, texts):
    """``tokenizer.encode_batch_fast(texts, add_special_tokens=False)``: the same encodings, the plain texts'
    from the twin."""
    made = twin(tokenizer)
    if made is None:
        return tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    copy, plain = made
    flags = list(map(plain, texts))
    if all(flags):
        return copy.encode_batch_fast(texts, add_special_tokens=False)
    encodings = [None] * len(texts)
    for source, wanted in ((copy, True), (tokenizer, False)):
        indices = [index for index, flag in enumerate(flags) if flag is wanted]
        for index, encoding in zip(indices, source.encode_batch_fast([texts[i] for i in indices],
                                                                      add_special_tokens=False)):
            encodings[index] = encoding
    return encodings
