"""Train, apply and invert the tokenizers that turn raw text into integer ids.

Three kinds of Hugging Face ``tokenizers.Tokenizer`` are built, all with :data:`SPECIAL_TOKENS` at the
same fixed ids and no BOS/EOS added on encoding. None alters the text (no Unicode normalization, no
lowercasing) unless trained with ``lowercase=True``: its normalizer then lowercases every text before
tokenizing it, in training and in every later encoding (a pickled tokenizer included), and decoding gives
back the lowercased text (:func:`as_decoded_case` turns texts into that case). The kinds:

- ``"bpe"``: byte-level BPE (GPT-2 style). Every byte is in the vocabulary, so any text, even characters
  never seen in training, round-trips exactly. A run of more than 64 characters without whitespace is cut
  every 64 characters before BPE sees it (no merge crosses a cut): training time stays linear in its length.
- ``"word"``: one token per word or punctuation mark; a word carries the space before it (``"▁word"``), and
  whitespace other than ``" "`` is a token of its own. Out-of-vocabulary words become ``[UNK]``.
- ``"char"``: one token per Unicode code point. Unseen characters become ``[UNK]``.

Decoding renders ``[UNK]`` as :data:`UNK_TEXT`, U+FFFD (the replacement character), and always gives
valid text: with ``"bpe"``, bytes that form no valid UTF-8 character (a model may generate any byte
sequence) are dropped rather than rendered as U+FFFD.
"""

import itertools
import re
from numbers import Integral

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from . import ascii_twin
from .token_ids import ID_DTYPE, TokenIds
from .validation import check_texts

PAD_ID, BOS_ID, EOS_ID, UNK_ID, MASK_ID = 0, 1, 2, 3, 4
SPECIAL_TOKENS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "[MASK]"]
TOKENIZER_KINDS = ("bpe", "word", "char")
UNK_TEXT = "\ufffd"
_N_BYTES = 256
# BPE training takes time quadratic in the length of a pre-tokenized piece; cutting longer runs
# keeps it linear (one 200,000-character text without spaces: 20-25 s uncut, about 1 s cut).
_MAX_RUN = 64  # characters without whitespace in one piece (plus the space before them)


def _byte_level_alphabet():
    """The printable character that byte-level BPE writes for each byte (GPT-2's table)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(_N_BYTES) if byte not in printable]
    return {**{byte: chr(byte) for byte in printable},
            **{byte: chr(_N_BYTES + rank) for rank, byte in enumerate(others)}}


# str.translate() table from a byte-level character to the character of its byte's code point (then latin-1).
_BYTES_OF_BYTE_LEVEL = {ord(char): byte for byte, char in _byte_level_alphabet().items()}
_ENCODE_CHUNK = 16384  # texts per encode_batch call
# Tokenizing takes about 100-450 bytes of memory per character (offsets and alignments kept for each byte and
# token): encode() and train_tokenizer() read at most this many characters of one text (more if max_length needs).
_MAX_CHARACTERS = 2 ** 18
# And one encode_batch call reads at most this many characters (but for a single text), a few hundred
# MB at once. Smaller calls cost speed: the tokenizer's threads share less work per call.
_CHUNK_CHARACTERS = 2 ** 20
# The most characters that _budget_for() counts for one token, whatever the vocabulary (a loaded tokenizer.json
# is untrusted input: one long token must not lift the budget, and the memory, with it); for encode's first
# prefix, _PREFIX_TOKEN: twice an English word piece's four or so (a text of longer tokens is read again).
_LONGEST_TOKEN, _PREFIX_TOKEN = 256, 8
# Matches up to the last non-space before whitespace: no tokenizer joins the characters on either side of
# that point, so a text cut there keeps all its tokens before it. Only ASCII whitespace, which every
# tokenizer counts as such, may follow; any Unicode whitespace may not precede (the cut would split a run).
_CLEAN_CUT = re.compile(r".*\S(?=[ \t\n\r])", re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_texts(texts):
    texts = check_texts(texts, name="texts", allow_empty=True)
    for index, text in enumerate(texts):
        if not text.isascii():
            _check_encodable(text, index)
    return texts


def _check_encodable(text, index):
    """Refuse a lone surrogate (U+D800-U+DFFF), which no tokenizer can read: a str that holds one is not
    Unicode text (bytes decoded with errors="surrogateescape", or half of a UTF-16 pair, make them)."""
    # A search rather than text.encode("utf-8"), which would copy a text of any length.
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        raise ValueError(f"texts[{index}] holds a lone surrogate {surrogate.group()!r} at position "
                         f"{surrogate.start()}, which is not Unicode text: decode the bytes with errors='replace', "
                         f"or clean the text with text.encode('utf-8', 'replace').decode('utf-8').")


def _build(kind, *, lowercase):
    tokenizer = _build_kind(kind)
    if lowercase:
        # In the tokenizer's normalizer rather than applied to the training texts: encode() then
        # lowercases on its own, at fit and at transform, and so does a pickled tokenizer.
        if tokenizer.normalizer is None:
            tokenizer.normalizer = normalizers.Lowercase()
        else:
            tokenizer.normalizer = normalizers.Sequence([normalizers.Lowercase(), tokenizer.normalizer])
    return tokenizer


def _build_kind(kind):
    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE())
        # Both only decide where merges may not cross; they keep every character, so they are lossless.
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            # Cuts only inside a run longer than _MAX_RUN (the lookahead), so shorter words are untouched;
            # the first piece keeps the space before it, which ByteLevel's regex joins to a word ("Ġword").
            pre_tokenizers.Split(Regex(rf" ?\S{{{_MAX_RUN}}}(?=\S)"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
        tokenizer.decoder = decoders.ByteLevel()
        return tokenizer
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    if kind == "char":
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tokenizer.decoder = decoders.Fuse()
        return tokenizer
    # Prepending one space (which the decoder removes again) lets the first word share its "▁word" token with
    # the same word mid-text, while a real leading space survives as an extra "▁"; Metaspace's schemes drop it.
    tokenizer.normalizer = normalizers.Prepend(" ")
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[^\S ]"), behavior="isolated"),  # "\n", "\t", ... alone
        pre_tokenizers.Metaspace(prepend_scheme="never"),
        pre_tokenizers.Punctuation(),
    ])
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="always")
    return tokenizer


def train_tokenizer(texts, *, kind, vocab_size, lowercase=False, max_length=None):
    """Train a tokenizer of the given kind on raw texts.

    Parameters
    ----------
    texts : iterable of str
        Training corpus. Empty strings are allowed, even a corpus of only empty strings
        (the tokenizer then holds just the special tokens, plus the 256 bytes for ``"bpe"``).
        Only the beginning of a very long text is trained on, so that memory stays bounded
        (tokenizing takes some hundred bytes per character): its first 262,144 (``2**18``)
        characters, or more where ``max_length`` needs more (see below), cut back to the last
        whitespace among the second half of them where there is one. Shorter texts are used whole.
    kind : {"bpe", "word", "char"}
        Tokenization scheme; see the module docstring.
    vocab_size : int
        Maximum vocabulary size, special tokens included. At least 6, and at least
        261 (5 special tokens + 256 bytes) for ``"bpe"``.
    lowercase : bool, default=False
        Lowercase every text before tokenizing it, in training and in every later
        :func:`encode` (the tokenizer's normalizer does it, so it is kept when pickled).
    max_length : int or None, default=None
        The ``max_length`` that :func:`encode` will be given, if known: a text is then
        trained on up to ``2 * (max_length + 1) * 65`` characters where that is more than
        ``2**18`` (room for twice ``max_length`` tokens of 65 characters, the most a
        ``"bpe"`` token spans), so that training sees all that encoding keeps of it.

    Returns
    -------
    tokenizers.Tokenizer
        Trained deterministically, with ``[PAD]``, ``[BOS]``, ``[EOS]``, ``[UNK]``, ``[MASK]``
        at ids 0-4 and no post-processor.

    Notes
    -----
    ``decode(encode(t)) == t`` holds for every text with ``"bpe"``; with ``"char"``, for
    texts whose characters were all seen in training. With ``"word"`` it holds for texts
    whose words are all in the vocabulary, except that a literal ``"▁"`` (U+2581) decodes
    as a space; an unknown word decodes to a single U+FFFD that also replaces the space
    before it (``"a zzz b"`` gives ``"a\\ufffd b"``). With ``lowercase=True``, each of these
    holds with ``as_decoded_case(tokenizer, [t])[0]`` in place of ``t`` on the right.
    """
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"kind={kind!r} is not supported; use one of {TOKENIZER_KINDS}.")
    minimum = len(SPECIAL_TOKENS) + (_N_BYTES if kind == "bpe" else 1)
    if not isinstance(vocab_size, Integral) or isinstance(vocab_size, bool) or vocab_size < minimum:
        raise ValueError(f"vocab_size={vocab_size!r} is too small for kind={kind!r}; "
                         f"use an integer >= {minimum}.")
    if not isinstance(lowercase, (bool, np.bool_)):
        raise ValueError(f"lowercase={lowercase!r} is invalid; use True or False.")
    if max_length is not None:
        _check_max_length(max_length)
    texts = _check_texts(texts)
    longest = _MAX_CHARACTERS
    if max_length is not None:
        longest = max(longest, _budget_for(max_length, longest_token=_MAX_RUN + 1))
    tokenizer = _build(kind, lowercase=bool(lowercase))
    options = dict(vocab_size=int(vocab_size), special_tokens=SPECIAL_TOKENS, show_progress=False)
    if kind == "bpe":
        trainer = trainers.BpeTrainer(initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **options)
    else:
        trainer = trainers.WordLevelTrainer(**options)
    # A generator, so that only the texts the trainer is reading are copied.
    tokenizer.train_from_iterator((_cut(text, longest)[0] for text in texts), trainer=trainer, length=len(texts))
    assert [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS] == list(range(5))
    return tokenizer


def _lowercases(tokenizer):
    """Whether the tokenizer lowercases texts before tokenizing them (trained with ``lowercase=True``)."""
    normalizer = tokenizer.normalizer
    parts = list(normalizer) if isinstance(normalizer, normalizers.Sequence) else [normalizer]
    return any(isinstance(part, normalizers.Lowercase) for part in parts)


def as_decoded_case(tokenizer, texts):
    """The texts in the case that decoding their encodings gives back.

    Lowercased exactly as the tokenizer lowercases (Unicode-aware, and not always what
    ``str.lower`` gives: a final sigma stays "σ") if it does, else the texts unchanged.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        A tokenizer from :func:`train_tokenizer`.
    texts : iterable of str

    Returns
    -------
    list of str
    """
    texts = _check_texts(texts)
    if not _lowercases(tokenizer):
        return texts
    lowercase = normalizers.Lowercase()
    return [lowercase.normalize_str(text) for text in texts]


def encode(tokenizer, texts, *, max_length):
    """Encode texts to id arrays of at most ``max_length`` tokens, without BOS/EOS.

    A text is not tokenized whole when only its beginning can be kept: it is first cut to a
    character budget, so that memory is bounded by the batch rather than by the longest text
    (tokenizing takes some hundred bytes per character). The budget is
    ``2 * (max_length + 1) * longest`` characters, ``longest`` being the length of the longest
    token string in the tokenizer's vocabulary (special tokens aside) but at most 8: room for
    ``max_length + 1`` tokens of that length even where the cut goes back half of it. A longer
    text is cut before its last run of whitespace that starts (with ``" "``, ``"\\t"``,
    ``"\\n"`` or ``"\\r"``) in the second half of the budget, which no tokenizer joins to the
    word before it; where there is none, at the budget itself.

    The ids are those of the whole text, cut to ``max_length``, whenever the prefix settles
    them: it gives more than ``max_length`` tokens and, if cut inside a word, the first
    ``max_length`` of them end before whitespace in it. Ordinary text needs far fewer
    characters per token than the budget allows, so its prefix settles them. Otherwise
    prefixes 4, 16, ... times as long are tried, up to ``max(budget, 2**18)`` characters:
    a text shorter than that is encoded exactly as a whole. A text that not even that
    prefix settles (megabytes of whitespace that the tokenizer drops, say) is encoded from
    it and counted in ``n_truncated`` whatever it gives: its ids may differ from those of
    the whole text, which is never read beyond that prefix.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        A tokenizer from :func:`train_tokenizer`, or a pretrained one's.
    texts : iterable of str
        Texts to encode. A literal ``"[MASK]"`` (or other special token string) in a
        text is encoded as ordinary text, never as the special id.
    max_length : int
        Longer encodings are cut to their first ``max_length`` tokens.

    Returns
    -------
    ids : TokenIds
        One 1-D ``int32`` array per text (empty for an empty text), held end to end in one array.
    n_truncated : int
        How many texts were longer than ``max_length`` tokens and were cut. A text cut
        to a prefix of characters counts too, even if the prefix gives fewer tokens (see above).
    """
    _check_max_length(max_length)
    texts = _check_texts(texts)
    # Not kept by pickling or to_str(), so it is set on every call; without it a special
    # token's string inside a text would become its id and vanish on decoding.
    tokenizer.encode_special_tokens = True
    budget = _character_budget(tokenizer, max_length)
    largest = max(budget, _MAX_CHARACTERS)
    pieces, lengths, n_truncated = [], [], 0
    one = texts and len(texts) <= _ENCODE_CHUNK and sum(map(len, texts)) <= _CHUNK_CHARACTERS  # (most calls)
    for chunk in [texts] if one else _chunks(texts, budget):
        cuts = {index: _cut(text, budget) for index, text in enumerate(chunk) if len(text) > budget}  # (few texts)
        prefixes = [cuts[index][0] if index in cuts else text for index, text in enumerate(chunk)] if cuts else chunk
        # In chunks: an Encoding holds far more than its ids (offsets, token strings, masks), so a whole corpus'
        # Encodings would dwarf the ids kept. Without offsets (faster): a text cut inside a word is encoded again.
        encodings = ascii_twin.encode_batch(tokenizer, prefixes)  # a BERT tokenizer's plain ASCII texts faster
        kept = [encoding.ids for encoding in encodings]
        sizes = np.fromiter(map(len, kept), dtype=np.int64, count=len(kept))
        n_truncated += int(np.count_nonzero(sizes > max_length))
        for index, (prefix, clean) in cuts.items():
            text, encoding, cut = chunk[index], encodings[index], len(prefix) < len(chunk[index])
            if cut and not clean:
                encoding = tokenizer.encode(prefix, add_special_tokens=False)
            if cut and budget < largest and not _keeps_whole_text_ids(encoding, prefix, clean, max_length):
                prefix, encoding = _encode_longer_prefix(tokenizer, text, budget, largest, max_length)
                cut = len(prefix) < len(text)
            n_truncated += (cut or len(encoding.ids) > max_length) - bool(sizes[index] > max_length)  # counted once
            kept[index], sizes[index] = encoding.ids, len(encoding.ids)
        if (sizes > max_length).any():
            kept, sizes = [ids[:max_length] for ids in kept], np.minimum(sizes, max_length)
        lengths += sizes.tolist()
        pieces.append(np.fromiter(itertools.chain.from_iterable(kept), dtype=ID_DTYPE, count=int(sizes.sum())))
    stops = np.cumsum(np.asarray(lengths, dtype=np.int64))
    return TokenIds(np.concatenate([np.zeros(0, ID_DTYPE), *pieces]), stops - lengths, stops), n_truncated


def _check_max_length(max_length):
    if not isinstance(max_length, Integral) or isinstance(max_length, bool) or max_length < 1:
        raise ValueError(f"max_length={max_length!r} is invalid; use an integer >= 1.")


def _character_budget(tokenizer, max_length):
    """How many characters of a text :func:`encode` tokenizes first (see there)."""
    return _budget_for(max_length, longest_token=min(_longest_token(tokenizer), _PREFIX_TOKEN))


# tokenizer -> (vocabulary size, its longest token string): reading the vocabulary takes tens of milliseconds,
# as long as encoding some hundred short texts. Keyed by the object and checked against its size; at worst a
# stale length only changes how many characters are tokenized first, never the ids (see encode).
_LONGEST_TOKENS = {}


def _longest_token(tokenizer):
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    cached = _LONGEST_TOKENS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer and cached[1] == size:
        return cached[2]
    special = {token.content for token in tokenizer.get_added_tokens_decoder().values() if token.special}
    # A special token's string is never matched (encode_special_tokens), and an UNK spans anything.
    longest = max((len(token) for token in tokenizer.get_vocab(with_added_tokens=True) if token not in special),
                  default=1)
    if len(_LONGEST_TOKENS) >= 16:
        _LONGEST_TOKENS.clear()
    _LONGEST_TOKENS[id(tokenizer)] = (tokenizer, size, longest)
    return longest


def _budget_for(max_length, *, longest_token):
    # Twice: _cut() may go back to the middle of the budget to find whitespace.
    return 2 * (max_length + 1) * min(max(longest_token, 1), _LONGEST_TOKEN)


def _cut(text, budget):
    """``(prefix, clean)``: the text's first ``budget`` characters at most, and whether they end
    before whitespace (or the text ends), which no tokenizer joins to the word before it."""
    if len(text) <= budget:
        return text, True
    match = _CLEAN_CUT.match(text, budget // 2, budget + 1)  # the character at the budget may be the space
    if match is not None:
        return text[:match.end()], True
    return text[:budget], False


def _keeps_whole_text_ids(encoding, prefix, clean, max_length):
    """Whether the first ``max_length`` ids of the prefix are those of the whole text.

    Cut before whitespace, the prefix's ids are the first ids of the whole text. Cut inside a word,
    the last ones may not be (a cut word may split differently, or make a single UNK as a whole), so
    the ids kept must end by the last whitespace in the prefix, before which its ids are the text's.
    """
    if len(encoding.ids) <= max_length:
        return False
    if clean:
        return True
    last_whitespace = _CLEAN_CUT.match(prefix)
    return last_whitespace is not None and encoding.offsets[max_length - 1][1] <= last_whitespace.end()


def _encode_longer_prefix(tokenizer, text, budget, largest, max_length):
    """``(prefix, encoding)`` of prefixes 4 times as long each time, up to ``largest`` characters,
    until one keeps the whole text's ids: one text at a time, so that memory stays bounded."""
    while True:
        budget = min(4 * budget, largest)
        prefix, clean = _cut(text, budget)
        encoding = tokenizer.encode(prefix, add_special_tokens=False)
        if (len(prefix) == len(text) or budget == largest
                or _keeps_whole_text_ids(encoding, prefix, clean, max_length)):
            return prefix, encoding


def _chunks(texts, budget):
    """The texts in consecutive lists of at most ``_ENCODE_CHUNK`` texts and, but for a single
    text, ``_CHUNK_CHARACTERS`` characters once cut to the budget."""
    chunk, size = [], 0
    for text in texts:
        length = min(len(text), budget)
        if chunk and (len(chunk) == _ENCODE_CHUNK or size + length > _CHUNK_CHARACTERS):
            yield chunk
            chunk, size = [], 0
        chunk.append(text)
        size += length
    if chunk:
        yield chunk


def decode(tokenizer, sequences):
    """Turn id sequences back into text.

    Each sequence ends at its first EOS (later ids are ignored); PAD, BOS and MASK ids
    are dropped and UNK is rendered as U+FFFD (:data:`UNK_TEXT`). With ``"bpe"``, the
    bytes that form no valid UTF-8 character (a lone continuation byte, a multi-byte
    character cut short, the pieces of one split by an UNK) are dropped, so U+FFFD in the
    text marks an UNK id, or a U+FFFD that the encoded text held itself.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        The tokenizer the ids come from.
    sequences : iterable of array-like of int, or 2-D int array
        One 1-D id sequence per text.

    Returns
    -------
    list of str
        Valid Unicode text. Decoding keeps every character the tokens spell, control
        characters (``"\\x00"``, ``"\\x1b"``, ...) included, as a lossless round trip must;
        clean generated text of them before showing it where they would act, e.g. a terminal.
    """
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    id_to_token = np.empty(max(vocab.values()) + 1, dtype=object)
    id_to_token[list(vocab.values())] = list(vocab.keys())
    # All three decoders pass an unknown string through as is, and U+FFFD is no byte-level character.
    id_to_token[UNK_ID] = UNK_TEXT
    byte_level = isinstance(tokenizer.decoder, decoders.ByteLevel)
    texts = []
    for index, sequence in enumerate(sequences):
        ids = np.asarray(sequence)
        if ids.ndim != 1:
            raise ValueError(f"sequences[{index}] has {ids.ndim} dimensions; each sequence must be "
                             f"1-D (pass a list of sequences or a 2-D array, not one sequence).")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"sequences[{index}] has dtype {ids.dtype}; token ids must be integers.")
        eos = np.flatnonzero(ids == EOS_ID)
        ids = ids[: eos[0]] if eos.size else ids
        ids = ids[~np.isin(ids, (PAD_ID, BOS_ID, MASK_ID))].astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(id_to_token)):
            bad = ids[(ids < 0) | (ids >= len(id_to_token))][0]
            raise ValueError(f"sequences[{index}] holds id {bad}, outside the vocabulary "
                             f"[0, {len(id_to_token)}); decode with the tokenizer that made the ids.")
        tokens = id_to_token[ids].tolist()
        # Not Tokenizer.decode_batch, so that UNK can be rendered as U+FFFD.
        texts.append(_decode_byte_level(tokens) if byte_level else tokenizer.decoder.decode(tokens))
    return texts


def _decode_byte_level(tokens):
    """Join byte-level tokens into text, dropping bytes that form no valid UTF-8 character.

    What decoders.ByteLevel does, except that it renders such bytes as U+FFFD, which would
    then be indistinguishable from an UNK.
    """
    runs = "".join(tokens).split(UNK_TEXT)
    return UNK_TEXT.join(run.translate(_BYTES_OF_BYTE_LEVEL).encode("latin-1").decode("utf-8", errors="ignore")
                         for run in runs)
