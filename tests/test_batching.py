import numpy as np
import torch

from sktextae.batching import Collator, LengthBucketSampler, TokenDataset, inference_batches, pad, padded_width
from sktextae.nn import build_module
from sktextae.tokenization import BOS_ID, EOS_ID, PAD_ID
from sktextae.training import token_log_probs

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
    assert list(LengthBucketSampler(lengths, batch_size=2, shuffle=False)) == [[1, 3], [0, 4], [2]]
    assert inference_batches(lengths, batch_size=2) == [[1, 3], [0, 4], [2]]


def test_inference_batches_close_early_where_padding_would_pass_half():
    # Alike lengths fill whole batches; one long text after many short ones gets a batch of its own
    # instead of padding them all to its length.
    assert inference_batches([10] * 9, batch_size=4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert inference_batches([3] * 8 + [99], batch_size=256) == [list(range(8)), [8]]
    lengths = np.random.default_rng(0).zipf(1.5, size=2000).clip(max=300)
    batches = inference_batches(lengths, batch_size=64)
    assert sorted(i for batch in batches for i in batch) == list(range(2000))
    ordered = [lengths[i] for batch in batches for i in batch]
    assert ordered == sorted(ordered)
    for batch in batches:
        rows = lengths[batch] + 1
        assert len(batch) <= 64 and (len(batch) == 1 or len(batch) * rows.max() <= 2 * rows.sum())
    assert inference_batches([], batch_size=4) == []


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


# --------------------------------------------------------------------------- training-time noise

import pytest  # noqa: E402

from sktextae.batching import corrupt  # noqa: E402
from sktextae.tokenization import MASK_ID, UNK_ID  # noqa: E402


def _random_sequences(n_sequences, length, seed=0):
    """Token ids >= 5 (no special token), so that MASK_ID and UNK_ID in an output can only be noise."""
    rng = np.random.default_rng(seed)
    return [rng.integers(5, 1000, size=length) for _ in range(n_sequences)]


@pytest.mark.parametrize("noise", [0.1, 0.6, 0.9])
def test_delete_noise_is_the_fraction_deleted_not_kept(noise):
    """``noise`` is the share of tokens DELETED: noise=0.9 keeps about 10% of them.

    One public TSDAE implementation reads its ratio the other way round (it keeps a fraction p of
    the tokens); this pins sktextae's documented meaning. Over 20,000 tokens in texts of 20 the
    binomial standard error is at most 0.0035, and the one-token-kept rule lowers the expectation
    only by noise**20 / 20 (0.006 at noise=0.9), so 0.01 is a safe margin.
    """
    sequences = _random_sequences(1000, 20)
    rng = np.random.default_rng(0)
    kept = sum(len(corrupt(s, noise=noise, noise_type="delete", rng=rng)) for s in sequences)
    assert abs(1 - kept / 20_000 - noise) < 0.01


def test_delete_noise_keeps_at_least_one_token_in_order():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 6, size=2000)
    for sequence in (rng.permutation(np.arange(5, 5 + n)) for n in lengths):  # distinct ids: order is checkable
        out = corrupt(sequence, noise=0.99, noise_type="delete", rng=rng)
        assert 1 <= len(out) <= len(sequence)
        positions = [sequence.tolist().index(token) for token in out.tolist()]
        assert positions == sorted(positions)  # a subsequence, in the input's order


@pytest.mark.parametrize("noise_type", ["delete", "mask"])
def test_noise_leaves_an_empty_sequence_empty(noise_type):
    empty = np.array([], dtype=np.int64)
    assert len(corrupt(empty, noise=0.99, noise_type=noise_type, rng=np.random.default_rng(0))) == 0


@pytest.mark.parametrize("noise", [0.1, 0.6, 0.9])
def test_mask_noise_masks_in_place_at_the_given_rate(noise):
    sequences = _random_sequences(1000, 20)
    rng = np.random.default_rng(0)
    masked = 0
    for sequence in sequences:
        out = corrupt(sequence, noise=noise, noise_type="mask", rng=rng)
        assert out.shape == sequence.shape
        is_masked = out == MASK_ID
        np.testing.assert_array_equal(out[~is_masked], sequence[~is_masked])  # the rest is untouched
        assert not is_masked.all()
        masked += is_masked.sum()
    assert abs(masked / 20_000 - noise) < 0.01


def test_mask_noise_keeps_one_token_of_short_texts():
    rng = np.random.default_rng(0)
    for sequence in _random_sequences(500, 1) + _random_sequences(500, 3):
        assert (corrupt(sequence, noise=0.99, noise_type="mask", rng=rng) != MASK_ID).any()


@pytest.mark.parametrize("noise_type", ["delete", "mask"])
def test_collator_noise_corrupts_only_the_encoder_input(noise_type):
    sequences = _random_sequences(8, 12)
    clean_inputs, clean_targets = Collator()(sequences)
    collate = Collator(noise=0.5, noise_type=noise_type, rng=np.random.default_rng(0))
    inputs, targets = collate(sequences)
    # The decoder reads and predicts the original text ...
    assert torch.equal(targets, clean_targets)
    assert torch.equal(inputs["decoder_input_ids"], clean_inputs["decoder_input_ids"])
    # ... while the encoder reads a corrupted copy, still ending in EOS.
    assert not torch.equal(inputs["input_ids"], clean_inputs["input_ids"])
    rows = torch.arange(len(sequences))
    assert (inputs["input_ids"][rows, inputs["lengths"] - 1] == EOS_ID).all()
    if noise_type == "delete":
        assert (inputs["lengths"] < clean_inputs["lengths"]).any()
    else:
        assert torch.equal(inputs["lengths"], clean_inputs["lengths"])
        assert (inputs["input_ids"] == MASK_ID).any()
    # A fresh draw on every call (every batch, every epoch).
    again, _ = collate(sequences)
    assert not torch.equal(again["input_ids"], inputs["input_ids"])


def test_collator_without_noise_is_deterministic():
    sequences = _random_sequences(8, 12)
    collate = Collator(rng=np.random.default_rng(0))
    (first, first_targets), (second, second_targets) = collate(sequences), collate(sequences)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert torch.equal(first_targets, second_targets)


def test_word_dropout_replaces_only_decoder_words_by_unk():
    rng = np.random.default_rng(0)
    sequences = [rng.integers(5, 1000, size=n) for n in rng.integers(0, 30, size=400)]  # ragged: padding
    clean_inputs, clean_targets = Collator()(sequences)
    inputs, targets = Collator(word_dropout=0.25, rng=np.random.default_rng(1))(sequences)
    assert torch.equal(targets, clean_targets)
    assert torch.equal(inputs["input_ids"], clean_inputs["input_ids"])
    clean, dropped = clean_inputs["decoder_input_ids"], inputs["decoder_input_ids"]
    changed = dropped != clean
    assert (dropped[changed] == UNK_ID).all()
    words = (clean != PAD_ID) & (clean != BOS_ID)  # the only positions word dropout may touch
    assert not (changed & ~words).any()
    assert (dropped[:, 0] == BOS_ID).all()
    rate = changed.sum().item() / words.sum().item()  # over ~5,800 words: standard error 0.006
    assert abs(rate - 0.25) < 0.03


def test_pad_rounds_the_length_up_to_three_leading_binary_digits_within_the_limit():
    ids, lengths = pad([np.arange(5, 13), np.array([8])], suffix=[EOS_ID], rounded=True, limit=20)
    assert ids.shape == (2, 10) and lengths.tolist() == [9, 2]  # 9 -> 10
    assert ids[:, 9:].eq(PAD_ID).all() and ids[1, :2].tolist() == [8, EOS_ID] and ids[1, 2:].eq(PAD_ID).all()
    widths = [padded_width(n, rounded=True) for n in range(1, 130)]
    assert sorted(set(widths)) == [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96,
                                   112, 128, 160]
    assert all(n <= width <= 1.25 * n for n, width in zip(range(1, 130), widths))
    assert padded_width(9, rounded=False) == 9
    assert padded_width(65, rounded=True, limit=70) == 70  # capped: 80 would pass the limit
    assert padded_width(16, rounded=True, limit=13) == 16  # a row longer than the limit is never cut
    assert padded_width(1, rounded=True, limit=0) == 1


def test_collator_pads_training_batches_to_few_lengths():
    rng = np.random.default_rng(0)
    sequences = [rng.integers(5, 50, size=n) for n in rng.integers(0, 30, size=400)]
    longest = max(len(s) for s in sequences)  # 29: the encoder's and decoder's rows hold at most 30 ids
    collate = Collator(round_lengths=True, max_text_length=longest, noise=0.3, word_dropout=0.2,
                       rng=np.random.default_rng(1))
    widths = set()
    for batch in LengthBucketSampler([len(s) for s in sequences], batch_size=16, shuffle=True,
                                     rng=np.random.default_rng(2)):
        inputs, targets = collate([sequences[i] for i in batch])
        for ids in (inputs["input_ids"], inputs["decoder_input_ids"], targets):
            widths.add(ids.shape[1])
        assert inputs["input_ids"].shape[1] >= int(inputs["lengths"].max())
        rows = [len(sequences[i]) + 1 for i in batch]
        assert max(rows) <= targets.shape[1] <= 1.25 * max(rows)
        assert all(targets[j, n:].eq(PAD_ID).all() and targets[j, n - 1] == EOS_ID for j, n in enumerate(rows))
    assert widths <= {1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 30}
    text = [np.arange(5, 21)]  # 16 tokens: 17 target positions, which round to 20
    assert Collator(round_lengths=True, max_text_length=19)(text)[1].shape == (1, 20)
    assert Collator(round_lengths=True, max_text_length=16)(text)[1].shape == (1, 17)  # capped at 16 + EOS


def test_collator_needs_the_longest_text_to_round_lengths():
    with pytest.raises(ValueError, match="max_text_length"):
        Collator(round_lengths=True)


@pytest.mark.parametrize("architecture", ["bow", "gru", "lstm", "transformer"])
def test_extra_padding_changes_neither_outputs_nor_loss_nor_gradients(architecture):
    rng = np.random.default_rng(0)
    sequences = [rng.integers(5, 40, size=n) for n in (17, 3, 0, 7)]
    torch.manual_seed(0)
    module = build_module(architecture, vocab_size=40, latent_dim=4, embedding_dim=8, hidden_dim=8, num_layers=2,
                          num_heads=2, dropout=0.0, max_length=20)
    results = []
    for collate in (Collator(sequence_targets=module.is_sequence_decoder),
                    Collator(sequence_targets=module.is_sequence_decoder, round_lengths=True, max_text_length=20)):
        inputs, targets = collate(sequences)
        module.zero_grad()
        logits, _ = module(**inputs)
        loss = -token_log_probs(logits, targets).sum() / (targets != PAD_ID).sum()
        loss.backward()
        latent = module.encode(inputs["input_ids"], inputs["lengths"])
        results.append((inputs["input_ids"].shape[1], latent, logits, loss,
                        [p.grad.clone() for p in module.parameters()]))
    (width, latent, logits, loss, grads), (padded, padded_latent, padded_logits, padded_loss, padded_grads) = results
    assert (width, padded) == (18, 20)
    torch.testing.assert_close(padded_latent, latent, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(padded_logits[:, :logits.shape[1]] if logits.dim() == 3 else padded_logits, logits,
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(padded_loss, loss, rtol=1e-6, atol=1e-6)
    for padded_grad, grad in zip(padded_grads, grads):
        torch.testing.assert_close(padded_grad, grad, rtol=1e-5, atol=1e-6)
