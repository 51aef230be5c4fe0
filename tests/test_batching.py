import numpy as np
import torch

from sktextae.batching import Collator, LengthBucketSampler, TokenDataset, pad
from sktextae.tokenization import BOS_ID, EOS_ID, PAD_ID

SEQS = [np.array([5, 6, 7]), np.array([8]), np.array([], dtype=np.int64)]


def test_pad_to_the_batch_maximum_not_beyond():
    ids, lengths = pad(SEQS, suffix=[EOS_ID])
    assert ids.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, PAD_ID, PAD_ID], [EOS_ID, PAD_ID, PAD_ID, PAD_ID]]
    assert lengths.tolist() == [4, 2, 1]


def test_collator_sequence_inputs_and_targets():
    inputs, targets = Collator(sequence_targets=True)(SEQS)
    assert inputs["decoder_input_ids"].tolist() == [[BOS_ID, 5, 6, 7], [BOS_ID, 8, 0, 0], [BOS_ID, 0, 0, 0]]
    assert targets.tolist() == [[5, 6, 7, EOS_ID], [8, EOS_ID, 0, 0], [EOS_ID, 0, 0, 0]]
    assert inputs["input_ids"].dtype == torch.int64


def test_collator_bag_targets_are_the_texts_own_tokens():
    inputs, targets = Collator(sequence_targets=False)(SEQS)
    assert "decoder_input_ids" not in inputs
    assert targets.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]


def test_inference_batches_run_shortest_first_and_cover_everything():
    lengths = np.array([5, 1, 9, 3, 7])
    batches = list(LengthBucketSampler(lengths, batch_size=2, shuffle=False))
    assert batches == [[1, 3], [0, 4], [2]]


def test_training_batches_cover_each_index_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=1000)
    sampler = LengthBucketSampler(lengths, batch_size=10, shuffle=True, rng=np.random.default_rng(1))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 100
    assert sorted(i for b in batches for i in b) == list(range(1000))
    # Bucketing: a batch spans far less than the corpus' range of lengths.
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 10
    # A fresh order every pass (epoch), reproducible from the seed.
    assert list(sampler) != batches
    again = LengthBucketSampler(lengths, batch_size=10, shuffle=True, rng=np.random.default_rng(1))
    assert list(again) == batches


def test_padding_fraction_is_small_with_bucketing():
    lengths = np.random.default_rng(0).integers(1, 200, size=5000)
    sampler = LengthBucketSampler(lengths, batch_size=32, shuffle=True, rng=np.random.default_rng(0))
    padded = sum(len(b) * lengths[b].max() for b in sampler)
    assert lengths.sum() / padded > 0.9


def test_dataset_lengths():
    ds = TokenDataset(SEQS)
    assert len(ds) == 3 and ds.lengths.tolist() == [3, 1, 0]
    np.testing.assert_array_equal(ds[0], SEQS[0])
