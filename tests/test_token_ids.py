import numpy as np
import pytest
from tokenizers import Tokenizer

from sktextae.batching import TokenDataset
from sktextae.token_ids import TokenIds
from sktextae import tokenization
from sktextae.tokenization import encode, train_tokenizer

SEQS = [[5, 6, 7], [8], [], [9, 10]]


def test_items_are_each_texts_ids_as_read_only_int32_views():
    ids = TokenIds.of(SEQS)
    assert len(ids) == 4 and [item.tolist() for item in ids] == SEQS
    assert ids[0].dtype == np.int32 and ids[-1].tolist() == [9, 10]
    assert ids.lengths.tolist() == [3, 1, 0, 2]
    assert np.shares_memory(ids[0], ids.values)
    with pytest.raises(ValueError):
        ids[0][0] = 1  # a change would reach every holder of the texts
    with pytest.raises(IndexError):
        ids[4]


def test_subsets_share_the_flat_array_and_keep_their_order():
    ids = TokenIds.of(SEQS)
    subset = ids[np.array([3, 0, 2])]
    assert isinstance(subset, TokenIds) and subset.values is ids.values
    assert [item.tolist() for item in subset] == [[9, 10], [5, 6, 7], []]
    assert subset.flat().tolist() == [9, 10, 5, 6, 7]
    assert [item.tolist() for item in ids[1:3]] == [[8], []]
    assert ids.flat().tolist() == [5, 6, 7, 8, 9, 10] and np.shares_memory(ids.flat(), ids.values)
    assert ids[np.array([], dtype=np.int64)].flat().tolist() == []
    assert TokenIds.of(ids) is ids


def test_bad_ids_and_indices_are_refused():
    with pytest.raises(TypeError, match="integers"):
        TokenIds.of([[1.5, 2.0]])
    with pytest.raises(ValueError, match="must lie in"):
        TokenIds.of([[-1, 2]])
    with pytest.raises(TypeError, match="1-D int32"):
        TokenIds(np.zeros(3, dtype=np.int64), [0], [3])
    with pytest.raises(ValueError, match="within the 3 values"):
        TokenIds(np.zeros(3, dtype=np.int32), [0], [4])
    with pytest.raises(TypeError, match="index"):
        TokenIds.of(SEQS)[np.array([0.5])]


def test_encode_gives_the_tokenizers_ids_in_one_array(monkeypatch):
    texts = ["the cat sat on the mat", "", "a dog barked at the cat " * 40, "mat"]
    tokenizer = train_tokenizer(texts * 5, kind="bpe", vocab_size=300, lowercase=True, max_length=16)
    tokenizer = Tokenizer.from_str(tokenizer.to_str())
    monkeypatch.setattr(tokenization, "_ENCODE_CHUNK", 3)  # two chunks, put end to end
    ids, n_truncated = encode(tokenizer, texts, max_length=16)
    assert isinstance(ids, TokenIds) and len(ids) == 4 and n_truncated == 1
    for text, item in zip(texts, ids):
        assert item.tolist() == tokenizer.encode(text, add_special_tokens=False).ids[:16]
    assert ids.values.dtype == np.int32 and len(ids.values) == int(ids.lengths.sum())


def test_dataset_subsets_are_views_of_one_array():
    dataset = TokenDataset([np.array(s, dtype=np.int64) for s in SEQS], labels=np.array([0, 1, -1, 1]))
    part = dataset.subset(np.array([3, 1]))
    assert part.sequences.values is dataset.sequences.values
    assert part.lengths.tolist() == [2, 1]
    assert part[0]["ids"].tolist() == [9, 10] and part[0]["label"] == 1
