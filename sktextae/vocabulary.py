"""Which token ids each side of the network reads and writes, and the way back to text.

A from-scratch model reads and writes its own tokenizer's ids: the encoder gets the text plus EOS,
the decoder predicts the text plus EOS. A pretrained encoder reads its model's vocabulary with the
model's own special tokens around the text (``[CLS] text [SEP]``), while the decoder writes a smaller
vocabulary of its own: the package's special tokens at ids 0-4 (PAD, BOS, EOS, UNK, MASK), then every
token of the pretrained vocabulary that the training texts hold. A token outside it (never seen in
``fit``) still reaches the encoder, but the decoder reads and scores it as UNK and never writes it.
"""

import copy
import re

import numpy as np

from .batching import Collator
from .tokenization import EOS_ID, MASK_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID, UNK_TEXT, as_decoded_case, decode

# What makes a token a word in a bag of words: a letter or digit (of any script) or "_", and for a model that
# counts bigrams two of them, as scikit-learn's TfidfVectorizer reads words (token_pattern r"\b\w\w+\b").
_WORD = {1: re.compile(r"\w"), 2: re.compile(r"\w\w")}


class Vocabulary:
    """A tokenizer and the ids around it.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
    encoder_prefix, encoder_suffix : tuple of int
        Ids put before and after each text for the encoder.
    decoder_tokens : numpy.ndarray of int or None
        The tokenizer id of each decoder id (ids 0-4: the ids that stand for PAD, BOS, EOS, UNK and MASK,
        whose embeddings start the decoder's); None when the decoder writes the tokenizer's own ids.
    """

    def __init__(self, tokenizer, *, encoder_prefix=(), encoder_suffix=(EOS_ID,), decoder_tokens=None):
        self.tokenizer, self.encoder_prefix, self.encoder_suffix = tokenizer, encoder_prefix, encoder_suffix
        self.decoder_tokens = decoder_tokens
        self.decoder_ids = None  # tokenizer id -> decoder id
        if decoder_tokens is not None:
            self.decoder_ids = np.full(tokenizer.get_vocab_size(), UNK_ID, dtype=np.int64)
            self.decoder_ids[decoder_tokens[len(SPECIAL_TOKENS):]] = np.arange(len(SPECIAL_TOKENS), len(decoder_tokens))

    @classmethod
    def for_pretrained(cls, pretrained, sequences):
        """The vocabulary of a ``pretrained.PretrainedModel`` whose decoder writes the tokens of ``sequences``."""
        special = pretrained.special_ids
        stand_ins = [special.get(name, special.get("unk", 0)) for name in ("pad", "bos", "eos", "unk", "mask")]
        seen = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *sequences]))
        seen = seen[~np.isin(seen, list(special.values()))]
        return cls(copy.deepcopy(pretrained.tokenizer), encoder_prefix=pretrained.prefix, encoder_suffix=pretrained.suffix,
                   decoder_tokens=np.concatenate([np.asarray(stand_ins, dtype=np.int64), seen]))

    @property
    def encoder_size(self):
        return self.tokenizer.get_vocab_size()

    @property
    def decoder_size(self):
        return self.encoder_size if self.decoder_tokens is None else len(self.decoder_tokens)

    def bag_terms(self, *, min_word_chars=1):
        """(V,) the tokenizer id that each token counts as in a bag of words (``nn.BagOfWordsEncoder``'s
        ``terms``), so that it counts words, as ``TfidfVectorizer`` does: tokens whose text differs only by
        whitespace (a word with and without the space before it: ``"▁word"`` after a space, ``"word"`` after
        a line break or a bracket) count as one, the first of them in the vocabulary; a token with fewer than
        ``min_word_chars`` letters or digits in a row (1: punctuation and whitespace; 2: also a letter or a
        digit alone, as ``TfidfVectorizer``'s default ``token_pattern`` skips them) counts as nothing
        (``PAD_ID``), and so do the special tokens but UNK, which counts as an unknown word. A token's text is
        the tokenizer's decoding of it alone."""
        if self.decoder_tokens is not None:
            raise ValueError("bag_terms is for a tokenizer trained by sktextae; a pretrained model's encoder is no "
                             "bag of words.")
        size = self.encoder_size
        texts = self.tokenizer.decode_batch([[token] for token in range(size)], skip_special_tokens=False)
        first, terms = {}, np.full(size, PAD_ID, dtype=np.int64)
        for token in range(len(SPECIAL_TOKENS), size):
            text = texts[token].strip()
            if _WORD[min_word_chars].search(text):
                terms[token] = first.setdefault(text, token)
        terms[UNK_ID] = UNK_ID
        return terms

    def collator(self, **options):
        """A ``batching.Collator`` that puts these ids around the texts (``options``: noise and the like)."""
        return Collator(encoder_prefix=self.encoder_prefix, encoder_suffix=self.encoder_suffix,
                        decoder_ids=self.decoder_ids, **options)

    def as_decoded(self, texts):
        """The texts as decoding their tokens gives them back: lowercased by a lowercasing tokenizer, and for
        a pretrained tokenizer, normalised as it normalises (BERT's uncased: lowercase, accents stripped,
        spaces around punctuation)."""
        if self.decoder_tokens is None:
            return as_decoded_case(self.tokenizer, texts)
        return [self.tokenizer.decode(self.tokenizer.encode(text, add_special_tokens=False).ids) for text in texts]

    def decode(self, sequences):
        """Decoder id sequences -> texts (each ends at its first EOS)."""
        if self.decoder_tokens is None:
            return decode(self.tokenizer, sequences)
        texts = []
        for sequence in sequences:
            ids = np.asarray(sequence, dtype=np.int64)
            eos = np.flatnonzero(ids == EOS_ID)
            ids = ids[: eos[0]] if eos.size else ids
            ids = ids[(ids == UNK_ID) | (ids > MASK_ID)]
            tokens = [UNK_TEXT if i == UNK_ID else self.tokenizer.id_to_token(int(self.decoder_tokens[i])) for i in ids]
            texts.append(self.tokenizer.decoder.decode(tokens) if self.tokenizer.decoder else " ".join(tokens))
        return texts
