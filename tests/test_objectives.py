"""The training objectives beyond plain reconstruction, and what they enable, at the estimator level.

Denoising (``noise``, ``noise_type``), the variational bottleneck (KL annealing, free bits,
``active_units``) and word dropout change training only; ``sample`` and ``interpolate`` decode new
latent vectors; beam search and sampling are chosen through ``inverse_transform``. The models that
must have learned something (``vae``, ``plain_gru``) use the configuration of
benchmarks/bench_reconstruction.py on its short real sentences, and are fitted once per module.
"""

import math
import sys
from numbers import Integral
from pathlib import Path

import numpy as np
import pytest
import torch
from sktextae._sklearn_private import InvalidParameterError

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from bench_reconstruction import CONFIG, short_sentences  # noqa: E402

from sktextae import TextAutoencoder  # noqa: E402
from sktextae.batching import Collator  # noqa: E402
from sktextae.decoding import decode_latent, sequence_log_prob  # noqa: E402
from sktextae.metrics import reconstruction_report  # noqa: E402
from sktextae.nn import ARCHITECTURES, build_module  # noqa: E402
from sktextae.tokenization import encode  # noqa: E402

# Module sizes for the checks at initialisation: the conftest's tiny model and the learning tests' one.
TINY_SIZES = dict(vocab_size=300, latent_dim=8, embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2,
                  dropout=0.1, max_length=32)
CONFIG_SIZES = dict(vocab_size=1000, latent_dim=64, embedding_dim=64, hidden_dim=128, num_layers=1, num_heads=4,
                    dropout=0.0, max_length=128)


@pytest.fixture(scope="module")
def sentences():
    """200 short real sentences (3 to 8 words), as in the learning tests."""
    texts = short_sentences(200)
    assert len(texts) == 200
    return tuple(texts)


@pytest.fixture(scope="module")
def vae(sentences):
    """A variational GRU that has learned the sentences well enough to sample varied texts from its prior."""
    return TextAutoencoder(architecture="gru", variational=True, max_epochs=30, **CONFIG).fit(list(sentences))


@pytest.fixture(scope="module")
def plain_gru(sentences):
    """A deterministic GRU that gives back (almost) every one of its 150 training sentences exactly."""
    return TextAutoencoder(architecture="gru", max_epochs=40, **CONFIG).fit(list(sentences[:150]))


@pytest.fixture(scope="module")
def noisy(tiny, corpus):
    """A tiny model trained with 90% of its encoder's input tokens deleted."""
    return tiny(noise=0.9).fit(list(corpus))


@pytest.fixture(scope="module")
def clean(tiny, corpus):
    """``noisy``'s twin, trained without noise or word dropout."""
    return tiny().fit(list(corpus))


@pytest.fixture(scope="module")
def tiny_vae(tiny, corpus):
    """A tiny variational model with a validation split, whose KL weight reaches 1 after 3 of its 5 epochs."""
    return tiny(variational=True, validation_fraction=0.2, kl_annealing_epochs=3, max_epochs=5).fit(list(corpus))


@pytest.fixture(params=["vae", "plain_gru"])
def trained(request):
    return request.getfixturevalue(request.param)


def _encode_directly(estimator, texts):
    """``module_.encode`` on one batch of the texts, clean (no noise), as ``transform`` should see them."""
    sequences, _ = encode(estimator.tokenizer_, texts, max_length=estimator.max_length_)
    inputs, _ = Collator(sequence_targets=estimator.net_.module_.is_sequence_decoder)(sequences)
    module = estimator.net_.module_.eval()
    with torch.inference_mode():
        return inputs, module.encode(inputs["input_ids"], inputs["lengths"]).numpy()


# --------------------------------------------------------------------------- denoising


def test_noise_is_not_applied_at_transform_or_score(noisy, texts):
    history = noisy.net_.history
    assert len(history) == 2 and all(math.isfinite(loss) for loss in history[:, "train_loss"])
    Z = noisy.transform(texts)
    np.testing.assert_array_equal(noisy.transform(texts), Z)
    np.testing.assert_array_equal(noisy.score_samples(texts), noisy.score_samples(texts))
    assert noisy.score(texts) == noisy.score(texts)
    # Not merely repeatable: the encoder reads the whole text, as with no noise at all.
    _, expected = _encode_directly(noisy, texts[:16])
    np.testing.assert_allclose(noisy.transform(texts[:16]), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("params", [dict(noise=0.9), dict(noise=0.3, noise_type="mask"), dict(word_dropout=0.5)],
                         ids=["delete", "mask", "word_dropout"])
def test_noise_and_word_dropout_change_training(params, clean, tiny, texts):
    model = tiny(**params).fit(texts)  # the same random_state as `clean`: only the corruption differs
    assert not np.allclose(model.transform(texts), clean.transform(texts), atol=1e-4)


@pytest.mark.parametrize("architecture, decoder, expected", [("bow", None, 0.6), ("gru", None, 0.0),
                                                           ("transformer", None, 0.0), ("bow", "gru", 0.0),
                                                           ("gru", "bag", 0.6)])
def test_auto_noise_denoises_for_a_bag_decoder_only(architecture, decoder, expected, tiny, texts):
    model = tiny(architecture=architecture, decoder=decoder, noise="auto", max_epochs=1).fit(texts)
    assert model.net_.noise == expected
    assert model.get_params()["noise"] == "auto"  # resolved in the net, never written back to the parameter
    if expected:  # and the resolved rate is the one training uses: it changes the fit, as noise=0.6 does
        same = tiny(architecture=architecture, decoder=decoder, noise=expected, max_epochs=1).fit(texts)
        np.testing.assert_allclose(model.transform(texts), same.transform(texts), rtol=1e-5, atol=1e-6)
        clean = tiny(architecture=architecture, decoder=decoder, noise=0.0, max_epochs=1).fit(texts)
        assert not np.allclose(model.transform(texts), clean.transform(texts), atol=1e-4)


@pytest.mark.parametrize("params, match", [
    (dict(noise=1.0), r"'noise' parameter .* range \[0(\.0)?, 1(\.0)?\)"),  # 1.0 would delete everything
    (dict(noise=-0.1), r"'noise' parameter .* range \[0(\.0)?, 1(\.0)?\)"),
    (dict(noise_type="shuffle"), r"'noise_type' parameter .*'delete'.* Got 'shuffle'"),
], ids=["noise=1", "noise<0", "noise_type"])
def test_bad_noise_parameters_raise(params, match, tiny, texts):
    with pytest.raises(InvalidParameterError, match=match):
        tiny(**params).fit(texts)


# --------------------------------------------------------------------------- the variational bottleneck


@pytest.mark.parametrize("sizes", [TINY_SIZES, CONFIG_SIZES], ids=["tiny", "config"])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_variational_module_starts_close_to_the_prior(architecture, sizes):
    with torch.random.fork_rng():  # seeded weights, and the global random state left as it was
        torch.manual_seed(0)
        module = build_module(architecture, variational=True, **sizes).eval()
    generator = torch.Generator().manual_seed(0)
    batch, width = 64, 20
    input_ids = torch.randint(5, sizes["vocab_size"], (batch, width), generator=generator)  # (B, T)
    lengths = torch.randint(1, width + 1, (batch,), generator=generator)  # (B,)
    input_ids[torch.arange(width)[None, :] >= lengths[:, None]] = 0  # pad after each length
    decoder_input_ids = torch.cat([torch.ones(batch, 1, dtype=torch.long), input_ids], dim=1)  # BOS + text
    with torch.inference_mode():
        means = module.encode(input_ids, lengths)  # (B, L)
        _, kl = module(input_ids, lengths, decoder_input_ids)  # (B, L)
    # The bounds. A posterior N(1, 1) (one prior standard deviation away) has a KL of 0.5 nat; a
    # bad initialisation (log-variance far from 0, posterior means scaled up) gives several nats per
    # unit. A sound one measures, over 10 seeds, at most 0.67 for |mean| (the Transformer, whose
    # pooled hidden vector is layer-normalised) and 0.28 nat for a unit's mean KL, 0.12 on average
    # over units; the recurrent and bag-of-words modules stay under a third of that.
    assert means.mean(dim=0).abs().max() < 1.0  # within one prior standard deviation of 0
    assert kl.mean(dim=0).max() < 0.5  # nats, per unit
    assert kl.mean() < 0.2  # nats, averaged over units: twice the default free_bits floor
    # Eval mode: deterministic (outside inference_mode torch skips its fused fast path: rounding only).
    assert torch.allclose(module.encode(input_ids, lengths), means, atol=1e-6)


def test_variational_history(tiny_vae):
    history = tiny_vae.net_.history
    assert len(history) == 5
    for key in ("train_kl", "train_reconstruction", "valid_kl", "valid_reconstruction", "train_loss", "valid_loss"):
        values = history[:, key]
        assert all(math.isfinite(value) for value in values), key
    assert all(value >= 0 for value in history[:, "train_kl"] + history[:, "valid_kl"])
    kl_weight = history[:, "kl_weight"]
    assert kl_weight == sorted(kl_weight)
    assert kl_weight[:2] == pytest.approx([1 / 3, 2 / 3])
    assert kl_weight[2:] == [1.0, 1.0, 1.0]  # reached after kl_annealing_epochs=3, and kept
    for active in history[:, "active_units"]:
        assert isinstance(active, Integral) and not isinstance(active, bool)
        assert 0 <= active <= tiny_vae.latent_dim


def test_deterministic_model_records_no_kl(noisy):
    assert not {"train_kl", "kl_weight", "active_units"} & set(noisy.net_.history[-1])


def test_variational_transform_is_the_posterior_mean(tiny_vae, texts):
    texts = texts[:16]  # one inference batch
    Z = tiny_vae.transform(texts)
    np.testing.assert_array_equal(tiny_vae.transform(texts), Z)
    inputs, expected = _encode_directly(tiny_vae, texts)
    np.testing.assert_allclose(Z, expected, rtol=1e-5, atol=1e-6)
    # The mean, not a draw: the bottleneck in training mode draws latents away from it.
    module = tiny_vae.net_.module_
    with torch.inference_mode(), torch.random.fork_rng():
        hidden = module.encode_hidden(inputs["input_ids"], inputs["lengths"])
        np.testing.assert_allclose(module.bottleneck.mean(hidden).numpy(), Z, rtol=1e-5, atol=1e-6)
        try:
            drawn, _ = module.bottleneck.train()(hidden)
        finally:
            module.eval()
    assert not np.allclose(drawn.numpy(), Z, atol=1e-3)


# --------------------------------------------------------------------------- sample and interpolate


def test_sample_from_the_prior_gives_varied_reproducible_texts(vae):
    texts = vae.sample(10, random_state=0)
    assert texts.shape == (10,) and all(isinstance(text, str) for text in texts)
    assert len(set(texts)) >= 8
    np.testing.assert_array_equal(vae.sample(10, random_state=0), texts)


def test_sample_needs_a_variational_model(plain_gru):
    with pytest.raises(ValueError, match="variational=False"):
        plain_gru.sample(3)


@pytest.mark.parametrize("n_samples", [0, -1, 2.5, True])
def test_sample_refuses_bad_n_samples(n_samples, tiny_vae):
    with pytest.raises(ValueError, match="n_samples must be an int >= 1"):
        tiny_vae.sample(n_samples)


def test_sample_and_interpolate_refuse_unknown_decoding_options(tiny_vae):
    with pytest.raises(TypeError, match=r"unknown decoding option\(s\) \['beam_width'\]"):
        tiny_vae.sample(2, beam_width=3)
    with pytest.raises(TypeError, match=r"unknown decoding option\(s\) \['nucleus'\]"):
        tiny_vae.interpolate("a text", "another text", nucleus=0.9)


def test_interpolation_ends_at_both_texts(plain_gru, sentences):
    pairs = [(sentences[i], sentences[i + 75]) for i in range(0, 75, 15)]  # 5 pairs of training sentences
    exact = 0
    for text_a, text_b in pairs:
        path = plain_gru.interpolate(text_a, text_b, n_steps=5)
        assert path.shape == (5,) and all(isinstance(text, str) for text in path)
        # The ends decode exactly the texts' own latent vectors, whatever the model has learned ...
        np.testing.assert_array_equal(path[[0, -1]], plain_gru.inverse_transform(plain_gru.transform([text_a, text_b])))
        exact += path[0] == text_a and path[-1] == text_b
    assert exact >= 4  # ... and a model that reconstructs its training texts gives them back.


@pytest.mark.parametrize("n_steps", [1, 0, "5", 2.0, True])
def test_interpolate_refuses_bad_n_steps(n_steps, tiny_vae):
    with pytest.raises(ValueError, match="n_steps must be an int >= 2"):
        tiny_vae.interpolate("a text", "another text", n_steps=n_steps)


@pytest.mark.parametrize("text_a, text_b, name", [(123, "a text", "text_a"), ("a text", ["a text"], "text_b")])
def test_interpolate_refuses_texts_that_are_not_str(text_a, text_b, name, tiny_vae):
    with pytest.raises(TypeError, match=f"{name} must be a str"):
        tiny_vae.interpolate(text_a, text_b)


# --------------------------------------------------------------------------- decoding strategies


def test_beam_search_is_never_less_probable_than_greedy(trained, sentences):
    texts = list(sentences[::5][:30])
    module = trained.net_.module_.eval()
    with torch.inference_mode():
        latent = torch.from_numpy(trained.transform(texts))
        greedy = decode_latent(module, latent, max_length=trained.max_length_, strategy="greedy")
        beam = decode_latent(module, latent, max_length=trained.max_length_, strategy="beam", beam_size=4)
        greedy_scores = sequence_log_prob(module, latent, greedy)
        beam_scores = sequence_log_prob(module, latent, beam)
    # Equal texts score exactly the same; for different ones the teacher-forced scores may differ from
    # the step-by-step ones beam search compared by float rounding, far below 1e-4 nat.
    assert (beam_scores >= greedy_scores - 1e-4).all(), beam_scores - greedy_scores


@pytest.mark.parametrize("options, match", [
    (dict(strategy="nucleus"), "strategy='nucleus' is not supported"),
    (dict(beam_size=8), "beam_size=8 only applies to strategy='beam'"),
    (dict(strategy="sample", temperature=0), "temperature=0 is invalid"),
    (dict(strategy="sample", top_k=0), "top_k=0 is invalid"),
])
def test_inverse_transform_refuses_bad_decoding_options(options, match, tiny_vae, texts):
    with pytest.raises(ValueError, match=match):
        tiny_vae.inverse_transform(tiny_vae.transform(texts[:2]), **options)


def test_bag_of_words_has_no_beam_search(tiny, corpus):
    bow = tiny(architecture="bow", max_epochs=1).fit(list(corpus))
    with pytest.raises(ValueError, match="bag-of-words"):
        bow.inverse_transform(bow.transform(list(corpus[:2])), strategy="beam")


def test_sampling_is_reproducible_and_varies_with_the_seed(vae, sentences):
    Z = vae.transform(list(sentences[:20]))
    first = vae.inverse_transform(Z, strategy="sample", random_state=0)
    assert first.shape == (20,)
    np.testing.assert_array_equal(vae.inverse_transform(Z, strategy="sample", random_state=0), first)
    assert (vae.inverse_transform(Z, strategy="sample", random_state=1) != first).any()
    prior = vae.sample(5, strategy="sample", temperature=0.8, top_k=10, random_state=0)
    np.testing.assert_array_equal(vae.sample(5, strategy="sample", temperature=0.8, top_k=10, random_state=0), prior)


def _distances(model, Z, texts):
    return ((model.transform(list(texts)) - Z) ** 2).sum(1)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_candidates_return_a_text_that_encodes_nearer_than_the_strategys(strategy, vae, sentences):
    held_out = list(sentences[150:190])
    Z = vae.transform(held_out)
    own = vae.inverse_transform(Z, strategy=strategy)
    chosen = vae.inverse_transform(Z, strategy=strategy, n_candidates=6, temperature=1.2, random_state=0)
    assert chosen.shape == own.shape
    near, far = _distances(vae, Z, chosen), _distances(vae, Z, own)
    assert (near <= far + 1e-6).all()  # the strategy's own text is a candidate: never farther
    assert (near < far - 1e-6).any() and (chosen != own).any()  # and a sampled one wins somewhere
    again = vae.inverse_transform(Z, strategy=strategy, n_candidates=6, temperature=1.2, random_state=0)
    np.testing.assert_array_equal(again, chosen)
    assert vae.inverse_transform(Z, strategy=strategy, n_candidates=1).tolist() == own.tolist()


def test_candidates_work_through_sample_and_interpolate(vae, sentences):
    assert vae.sample(3, n_candidates=3, random_state=0).shape == (3,)
    path = vae.interpolate(sentences[0], sentences[1], n_steps=3, n_candidates=3, random_state=0)
    assert path.shape == (3,)


@pytest.mark.parametrize("n_candidates", [0, -1, 2.5, True])
def test_bad_n_candidates_raise(n_candidates, tiny_vae, texts):
    with pytest.raises(ValueError, match="n_candidates must be an int >= 1"):
        tiny_vae.inverse_transform(tiny_vae.transform(texts[:2]), n_candidates=n_candidates)


def test_candidates_are_sampled_at_0_7_unless_told(vae, sentences):
    Z = vae.transform(list(sentences[150:170]))
    chosen = vae.inverse_transform(Z, n_candidates=4, random_state=0)
    np.testing.assert_array_equal(chosen, vae.inverse_transform(Z, n_candidates=4, temperature=0.7, random_state=0))
    assert (chosen != vae.inverse_transform(Z, n_candidates=4, temperature=1.5, random_state=0)).any()
    # strategy="sample" alone keeps its temperature of 1.0
    np.testing.assert_array_equal(vae.inverse_transform(Z, strategy="sample", random_state=0),
                                  vae.inverse_transform(Z, strategy="sample", temperature=1.0, random_state=0))


def test_temperature_needs_sampling_or_candidates(tiny_vae, texts):
    Z = tiny_vae.transform(texts[:2])
    with pytest.raises(ValueError, match="temperature=0.5 only applies to strategy='sample'"):
        tiny_vae.inverse_transform(Z, temperature=0.5)
    assert tiny_vae.inverse_transform(Z, temperature=0.5, n_candidates=2, random_state=0).shape == (2,)


def test_a_bag_of_words_has_no_candidates(tiny, corpus):
    bow = tiny(architecture="bow", max_epochs=1).fit(list(corpus))
    with pytest.raises(ValueError, match="bag of words, which has no order to sample"):
        bow.inverse_transform(bow.transform(list(corpus[:2])), n_candidates=2)


def test_reconstruction_report_is_a_set_of_rates(trained, sentences):
    report = reconstruction_report(trained, list(sentences[:50]))
    assert report["n_texts"] == 50
    for key in ("token_accuracy", "exact_match", "bleu"):
        assert 0.0 <= report[key] <= 1.0, key
