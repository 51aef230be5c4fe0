import inspect
import itertools
import math

import numpy as np
import pytest
import torch

from sktextae.decoding import (
    _STRATEGY_OPTIONS, STRATEGIES, bag_decode, beam_search, decode_latent, greedy_decode, sample_decode,
    sequence_log_prob)
from sktextae.nn import build_module
from sktextae.tokenization import BOS_ID, EOS_ID

VOCAB = 12
TINY = dict(vocab_size=30, latent_dim=6, embedding_dim=8, hidden_dim=12, num_layers=2, num_heads=2, dropout=0.1,
            max_length=10)
SEQUENCE_ARCHITECTURES = ("gru", "lstm", "transformer")


class ScriptedDecoder:
    """Emits a fixed script per row, whatever the latent vector: enough to test the decoding loop."""

    is_sequence_decoder = True

    def __init__(self, scripts):
        self.scripts = scripts

    def init_state(self, latent):
        return 0

    def step(self, tokens, t):
        logits = torch.full((len(self.scripts), VOCAB), -1e9)
        for row, script in enumerate(self.scripts):
            logits[row, script[min(t, len(script) - 1)]] = 0.0
        return logits, t + 1


def test_greedy_stops_each_row_at_its_eos():
    module = ScriptedDecoder([[5, 6, EOS_ID, 7], [8, EOS_ID, 9, 9]])
    out = greedy_decode(module, torch.zeros(2, 3), max_length=10)
    assert [o.tolist() for o in out] == [[5, 6], [8]]


def test_greedy_cuts_at_max_length():
    module = ScriptedDecoder([[5] * 50])
    out = greedy_decode(module, torch.zeros(1, 3), max_length=4)
    assert out[0].tolist() == [5, 5, 5, 5]


def test_greedy_starts_from_bos():
    seen = []

    class Recorder(ScriptedDecoder):
        def step(self, tokens, t):
            seen.append(tokens.tolist())
            return super().step(tokens, t)

    greedy_decode(Recorder([[EOS_ID]]), torch.zeros(1, 3), max_length=5)
    assert seen[0] == [BOS_ID]


def test_bag_decode_most_probable_first():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    np.testing.assert_array_equal(bag_decode(logits, n_tokens=3)[0], [1, 3, 2])
    assert len(bag_decode(logits, n_tokens=10)[0]) == 4


class TreeDecoder:
    """Next-token probabilities looked up by the prefix so far (the same for every row), for beam search.

    ``table`` maps a prefix tuple to ``{token: probability}``; the rest of the mass is spread evenly
    over the tokens not named, except EOS, which only gets a negligible share unless named.
    """

    is_sequence_decoder = True

    def __init__(self, table):
        self.table = table

    def init_state(self, latent):
        return torch.zeros((latent.shape[0], 0), dtype=torch.long)

    def reorder_state(self, prefix, index):
        return prefix.index_select(0, index)

    def step(self, tokens, prefix):
        prefix = torch.cat([prefix, tokens[:, None]], dim=1)
        logits = torch.stack([self._logits(tuple(row[1:])) for row in prefix.tolist()])  # [1:]: drop BOS
        return logits, prefix

    def _logits(self, prefix):
        named = self.table.get(prefix, {})
        others = [t for t in range(3, VOCAB) if t not in named]
        probs = torch.full((VOCAB,), 1e-9)
        for token in others:
            probs[token] = (1.0 - sum(named.values())) / len(others)
        for token, p in named.items():
            probs[token] = p
        return probs.log()

    def log_prob(self, text):
        """log p(text, EOS), by the same table."""
        prefixes = [tuple(text[:i]) for i in range(len(text) + 1)]
        return sum(self._logits(prefix).log_softmax(-1)[token].item()
                   for prefix, token in zip(prefixes, [*text, EOS_ID]))


class RankedDecoder:
    """Never ends; at even steps tokens 5 > 6 lead the others, at odd steps 7 > 8 do: for top-k sampling."""

    is_sequence_decoder = True

    def init_state(self, latent):
        return 0

    def step(self, tokens, t):
        logits = torch.zeros(len(tokens), VOCAB)
        first, second = (5, 6) if t % 2 == 0 else (7, 8)
        logits[:, first], logits[:, second], logits[:, EOS_ID] = 1.0, 0.5, -math.inf
        return logits, t + 1


def tiny_module(architecture, **overrides):
    torch.manual_seed(0)
    return build_module(architecture, **{**TINY, **overrides}).eval()


def random_latent(n=16, seed=1):
    return torch.randn(n, TINY["latent_dim"], generator=torch.Generator().manual_seed(seed)) * 2


def as_lists(sequences):
    return [np.asarray(s).tolist() for s in sequences]


def test_beam_finds_a_more_probable_text_than_greedy():
    # Greedy takes 5 (0.5), then its best, 7 (0.3), then EOS: 0.15. Beam keeps 6 (0.4) too, whose
    # EOS (0.9) makes 0.36 and closes; no open hypothesis can beat that, so the search stops there.
    module = TreeDecoder({(): {5: 0.5, 6: 0.4}, (5,): {7: 0.3, EOS_ID: 0.2}, (5, 7): {EOS_ID: 1.0},
                          (6,): {EOS_ID: 0.9}})
    latent = torch.zeros(2, 3)
    assert as_lists(greedy_decode(module, latent, max_length=5)) == [[5, 7], [5, 7]]
    assert as_lists(beam_search(module, latent, max_length=5, beam_size=2)) == [[6], [6]]
    assert module.log_prob([6]) == pytest.approx(math.log(0.36), abs=1e-6)


def test_beam_falls_back_to_greedy_when_the_beam_loses_its_path():
    # Greedy: 5 (0.4), 3 (0.23), 4 (0.9), EOS (0.99) = 0.082. With 2 beams (5 and 6), 6 4 (0.175) and
    # 6 3 (0.14) push the greedy prefix 5 3 (0.092) out; the best they then reach is 6 4 EOS
    # (0.175 * 0.25 = 0.044), and every open beam is below that after 3 tokens, while greedy is still
    # open at 0.083. The beam alone would stop there and return 6 4, less probable than greedy's text.
    module = TreeDecoder({(): {5: 0.4, 6: 0.35, 7: 0.25}, (5,): {3: 0.23, 4: 0.18, 5: 0.18, 6: 0.18, 7: 0.18},
                          (5, 3): {4: 0.9}, (5, 3, 4): {EOS_ID: 0.99}, (6,): {4: 0.5, 3: 0.4},
                          (6, 4): {EOS_ID: 0.25}})
    latent = torch.zeros(1, 3)
    assert module.log_prob([5, 3, 4]) > module.log_prob([6, 4])
    assert as_lists(greedy_decode(module, latent, max_length=5)) == [[5, 3, 4]]
    assert as_lists(beam_search(module, latent, max_length=5, beam_size=2)) == [[5, 3, 4]]
    # A beam wide enough to keep 5 3 finds it on its own.
    assert as_lists(beam_search(module, latent, max_length=5, beam_size=3)) == [[5, 3, 4]]


def test_beam_closes_its_best_open_hypothesis_with_eos_at_max_length():
    # After 6 7 (0.405), EOS (0.3) ranks only third, but at max_length = 2 it is the only way on:
    # 6 7 EOS (0.12) beats greedy's 5 3 (0.15), whose EOS is all but impossible.
    module = TreeDecoder({(): {5: 0.5, 6: 0.45}, (5,): {3: 0.3}, (6,): {7: 0.9},
                          (6, 7): {EOS_ID: 0.3, 3: 0.35, 4: 0.35}})
    latent = torch.zeros(1, 3)
    assert as_lists(greedy_decode(module, latent, max_length=2)) == [[5, 3]]
    assert as_lists(beam_search(module, latent, max_length=2, beam_size=2)) == [[6, 7]]


def test_beam_closes_open_hypotheses_at_max_length():
    module = TreeDecoder({})  # EOS is never likely: every hypothesis runs to max_length
    out = beam_search(module, torch.zeros(3, 3), max_length=4, beam_size=3)
    assert [len(o) for o in out] == [4, 4, 4]
    assert all(o.dtype == np.int64 for o in out)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_an_empty_batch_decodes_to_nothing(strategy):
    module = tiny_module("gru")
    empty = torch.zeros(0, TINY["latent_dim"])
    assert decode_latent(module, empty, max_length=5, strategy=strategy) == []
    assert sequence_log_prob(module, empty, []).shape == (0,)


@pytest.mark.parametrize("architecture", SEQUENCE_ARCHITECTURES)
def test_beam_of_one_is_greedy(architecture):
    module, latent = tiny_module(architecture), random_latent()
    with torch.inference_mode():
        greedy = greedy_decode(module, latent, max_length=10)
        beam = beam_search(module, latent, max_length=10, beam_size=1)
    assert as_lists(beam) == as_lists(greedy)


@pytest.mark.parametrize("architecture", SEQUENCE_ARCHITECTURES)
@pytest.mark.parametrize("beam_size", [2, 4])
def test_beam_is_never_less_probable_than_greedy(architecture, beam_size):
    module, latent = tiny_module(architecture), random_latent()
    with torch.inference_mode():
        greedy = greedy_decode(module, latent, max_length=10)
        beam = beam_search(module, latent, max_length=10, beam_size=beam_size)
        gain = sequence_log_prob(module, latent, beam) - sequence_log_prob(module, latent, greedy)
    assert np.all(gain >= -1e-5)
    assert all(len(text) <= 10 for text in beam)


@pytest.mark.parametrize("architecture", ["gru", "transformer"])
def test_a_beam_as_wide_as_the_search_space_finds_the_most_probable_text(architecture):
    # Vocabulary of 6: 5 tokens besides EOS, so at most 5 ** 3 = 125 open texts of max_length 3.
    # A beam of 125 prunes nothing: it must return the best of all 156 texts of 0 to 3 tokens.
    module, latent = tiny_module(architecture, vocab_size=6, max_length=3), random_latent(4)
    tokens = [t for t in range(6) if t != EOS_ID]
    texts = [list(text) for length in range(4) for text in itertools.product(tokens, repeat=length)]
    with torch.inference_mode():
        beam = beam_search(module, latent, max_length=3, beam_size=125)
        for row in range(len(latent)):
            scores = sequence_log_prob(module, latent[row].expand(len(texts), -1), texts)
            assert as_lists(beam)[row] == texts[int(np.argmax(scores))]


@pytest.mark.parametrize("architecture", SEQUENCE_ARCHITECTURES)
def test_beam_rows_do_not_interfere(architecture):
    module, latent = tiny_module(architecture), random_latent(5)
    with torch.inference_mode():
        together = beam_search(module, latent, max_length=8, beam_size=3)
        alone = [beam_search(module, latent[i:i + 1], max_length=8, beam_size=3)[0] for i in range(5)]
    assert as_lists(together) == as_lists(alone)


def test_beam_runs_with_grad_enabled_too():
    module, latent = tiny_module("lstm"), random_latent(3)
    out = beam_search(module, latent, max_length=6, beam_size=2)
    with torch.no_grad():
        assert as_lists(out) == as_lists(beam_search(module, latent, max_length=6, beam_size=2))


@pytest.mark.parametrize("architecture", SEQUENCE_ARCHITECTURES)
def test_sequence_log_prob_sums_the_step_log_probs_with_eos(architecture):
    module, latent = tiny_module(architecture), random_latent(2)
    texts = [[5, 6, 7], []]
    with torch.inference_mode():
        state, expected = module.init_state(latent[:1]), 0.0
        for previous, token in zip([BOS_ID, 5, 6, 7], [5, 6, 7, EOS_ID]):
            logits, state = module.step(torch.tensor([previous]), state)
            expected += logits.log_softmax(-1)[0, token].item()
        empty = module.step(torch.tensor([BOS_ID]), module.init_state(latent[1:]))[0].log_softmax(-1)[0, EOS_ID]
        scores = sequence_log_prob(module, latent, texts)
    assert scores.dtype == np.float64 and scores.shape == (2,)
    np.testing.assert_allclose(scores, [expected, empty.item()], atol=1e-5)


@pytest.mark.parametrize("architecture", SEQUENCE_ARCHITECTURES)
def test_sampling_is_reproducible_and_varies_with_the_seed(architecture):
    module, latent = tiny_module(architecture), random_latent()

    def draw(seed, **options):
        generator = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            return as_lists(sample_decode(module, latent, max_length=10, generator=generator, **options))

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)
    assert all(len(text) <= 10 for text in draw(2))
    greedy = as_lists(greedy_decode(module, latent, max_length=10))
    assert draw(3, temperature=1e-6) == greedy
    assert draw(4, top_k=1) == greedy
    assert draw(5, top_k=1, temperature=3.0) == greedy


def test_sampling_keeps_to_the_top_k_tokens_of_each_step():
    latent = torch.zeros(300, 3)
    generator = torch.Generator().manual_seed(0)
    texts = np.stack(sample_decode(RankedDecoder(), latent, max_length=6, top_k=2, generator=generator))
    assert set(texts[:, 0::2].ravel()) == {5, 6}  # both drawn, nothing else
    assert set(texts[:, 1::2].ravel()) == {7, 8}
    # The same draws without top_k reach the other tokens too.
    free = np.stack(sample_decode(RankedDecoder(), latent, max_length=6, generator=generator))
    assert not set(free[:, 0::2].ravel()) <= {5, 6}


def test_sample_stops_rows_at_their_eos():
    module = ScriptedDecoder([[5, 6, EOS_ID, 7], [8, EOS_ID, 9, 9]])
    out = sample_decode(module, torch.zeros(2, 3), max_length=10, generator=torch.Generator().manual_seed(0))
    assert as_lists(out) == [[5, 6], [8]]


@pytest.mark.parametrize("architecture", SEQUENCE_ARCHITECTURES)
def test_decode_latent_dispatches_to_each_strategy(architecture):
    module, latent = tiny_module(architecture), random_latent(6)
    with torch.inference_mode():
        assert as_lists(decode_latent(module, latent, max_length=8)) == \
            as_lists(greedy_decode(module, latent, max_length=8))
        assert as_lists(decode_latent(module, latent, max_length=8, strategy="beam", beam_size=3)) == \
            as_lists(beam_search(module, latent, max_length=8, beam_size=3))
        sampled = decode_latent(module, latent, max_length=8, strategy="sample", temperature=0.7, top_k=5,
                                generator=torch.Generator().manual_seed(0))
        assert as_lists(sampled) == as_lists(sample_decode(module, latent, max_length=8, temperature=0.7, top_k=5,
                                                           generator=torch.Generator().manual_seed(0)))


def test_decode_latent_bag_of_words():
    module, latent = tiny_module("bow"), random_latent(3)
    with torch.inference_mode():
        out = decode_latent(module, latent, max_length=8, n_tokens=4)
        expected = bag_decode(module.decode(latent), n_tokens=4)
    assert as_lists(out) == as_lists(expected)
    for strategy in ("beam", "sample"):
        with pytest.raises(ValueError, match=f"strategy='{strategy}' needs a sequence decoder.*a bag has no order"):
            decode_latent(module, latent, max_length=8, strategy=strategy, n_tokens=4)
    with pytest.raises(ValueError, match="n_tokens=None: a bag-of-words module needs n_tokens"):
        decode_latent(module, latent, max_length=8)
    with pytest.raises(ValueError, match="sequence_log_prob needs a sequence decoder"):
        sequence_log_prob(module, latent, [[5]] * 3)


def test_strategies_and_option_defaults_agree_with_the_signature():
    assert STRATEGIES == ("greedy", "beam", "sample")
    parameters = inspect.signature(decode_latent).parameters
    for name, (owner, default) in _STRATEGY_OPTIONS.items():
        assert owner in STRATEGIES and parameters[name].default == default


@pytest.mark.parametrize("options, error, message", [
    (dict(strategy="nucleus"), ValueError,
     r"strategy='nucleus' is not supported; use one of \('greedy', 'beam', 'sample'\)"),
    (dict(strategy=None), ValueError, "strategy=None is not supported"),
    (dict(max_length=0), ValueError, "max_length=0 is invalid; use an integer >= 1"),
    (dict(strategy="beam", beam_size=0), ValueError, "beam_size=0 is invalid; use an integer >= 1"),
    (dict(strategy="beam", beam_size=2.0), TypeError, "beam_size=2.0 is not an integer"),
    (dict(strategy="beam", beam_size=True), TypeError, "beam_size=True is not an integer"),
    (dict(strategy="sample", temperature=0), ValueError, "temperature=0 is invalid; use a finite float > 0"),
    (dict(strategy="sample", temperature=-1.0), ValueError, r"temperature=-1.0 is invalid"),
    (dict(strategy="sample", temperature=float("nan")), ValueError, "temperature=nan is invalid"),
    (dict(strategy="sample", temperature=float("inf")), ValueError, "temperature=inf is invalid"),
    (dict(strategy="sample", temperature="hot"), TypeError, "temperature='hot' is not a number"),
    (dict(strategy="sample", top_k=0), ValueError, "top_k=0 is invalid; use an integer >= 1"),
    (dict(strategy="sample", top_k=2.5), TypeError, "top_k=2.5 is not an integer"),
    (dict(strategy="sample", generator=0), TypeError, "generator is a int; pass a torch.Generator or None"),
    # A bad value is refused even where the strategy would not read it.
    (dict(strategy="greedy", beam_size=-1), ValueError, "beam_size=-1 is invalid"),
    # Options of another strategy are refused rather than silently ignored.
    (dict(beam_size=8), ValueError,
     r"beam_size=8 only applies to strategy='beam', but strategy='greedy' would ignore it; "
     r"leave beam_size at its default \(4\)"),
    (dict(strategy="sample", beam_size=2), ValueError, "beam_size=2 only applies to strategy='beam'"),
    (dict(strategy="beam", temperature=0.5), ValueError, "temperature=0.5 only applies to strategy='sample'"),
    (dict(top_k=3), ValueError, "top_k=3 only applies to strategy='sample'"),
    (dict(n_tokens=0), ValueError, "n_tokens=0 is invalid"),
])
def test_decode_latent_refuses_bad_options(options, error, message):
    module = ScriptedDecoder([[5, EOS_ID]])
    with pytest.raises(error, match=message):
        decode_latent(module, torch.zeros(1, 3), **{"max_length": 5, **options})


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_generator_and_n_tokens_may_be_passed_to_any_strategy(strategy):
    # The estimator passes its one generator and its bag size whatever the strategy and module.
    module, latent = tiny_module("gru"), random_latent(4)
    options = {} if strategy != "beam" else {"beam_size": 2}
    with torch.inference_mode():
        plain = decode_latent(module, latent, max_length=6, strategy=strategy,
                              generator=torch.Generator().manual_seed(0), **options)
        given = decode_latent(module, latent, max_length=6, strategy=strategy, n_tokens=5,
                              generator=torch.Generator().manual_seed(0), **options)
    assert as_lists(given) == as_lists(plain)
    if strategy != "sample":  # a deterministic strategy gives the same texts with or without a generator
        assert as_lists(decode_latent(module, latent, max_length=6, strategy=strategy, **options)) == \
            as_lists(plain)


def test_bad_latent_and_generator_device_are_refused():
    module = ScriptedDecoder([[5, EOS_ID]])
    with pytest.raises(TypeError, match="latent is a ndarray; pass a torch.Tensor"):
        decode_latent(module, np.zeros((1, 3)), max_length=5)
    with pytest.raises(ValueError, match=r"latent has shape \(3,\); it must be 2-D"):
        decode_latent(module, torch.zeros(3), max_length=5)
    with pytest.raises(ValueError, match="generator is on cpu but latent is on meta"):
        sample_decode(module, torch.zeros(1, 3, device="meta"), max_length=5, generator=torch.Generator())
    with pytest.raises(ValueError, match="beam_size=0 is invalid"):
        beam_search(module, torch.zeros(1, 3), max_length=5, beam_size=0)
    with pytest.raises(ValueError, match=r"sequences \(2\) and latent \(1 rows\) must have the same length"):
        sequence_log_prob(tiny_module("gru"), torch.zeros(1, TINY["latent_dim"]), [[5], [6]])
