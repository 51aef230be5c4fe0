import inspect
import itertools
import math

import numpy as np
import pytest
import torch

from sktextae.beam import penalize_repetitions, repeated_ngrams
from sktextae.decoding import (
    _SEQUENCE_OPTIONS,
    _STRATEGY_OPTIONS,
    STRATEGIES,
    bag_decode,
    beam_search,
    decode_latent,
    greedy_decode,
    sample_decode,
    sequence_log_prob,
)
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
    (dict(no_repeat_ngram_size=-1), ValueError, "no_repeat_ngram_size=-1 is invalid; use an integer >= 0"),
    (dict(no_repeat_ngram_size=2.0), TypeError, "no_repeat_ngram_size=2.0 is not an integer"),
    (dict(no_repeat_ngram_size=True), TypeError, "no_repeat_ngram_size=True is not an integer"),
    (dict(repetition_penalty=0.9), ValueError,
     r"repetition_penalty=0.9 is invalid; use a finite float >= 1.0 \(1.0 is no penalty"),
    (dict(repetition_penalty=0), ValueError, "repetition_penalty=0 is invalid"),
    (dict(repetition_penalty=float("nan")), ValueError, "repetition_penalty=nan is invalid"),
    (dict(repetition_penalty=float("inf")), ValueError, "repetition_penalty=inf is invalid"),
    (dict(repetition_penalty="high"), TypeError, "repetition_penalty='high' is not a number; use a float >= 1.0"),
    (dict(repetition_penalty=True), TypeError, "repetition_penalty=True is not a number"),
    (dict(strategy="beam", length_penalty=float("nan")), ValueError,
     r"length_penalty=nan is invalid; use a float from -10.0 to 10.0 \(0.0 ranks texts by their log-probability"),
    (dict(strategy="beam", length_penalty=1000.0), ValueError, "length_penalty=1000.0 is invalid"),
    (dict(strategy="beam", length_penalty=-10.5), ValueError, "length_penalty=-10.5 is invalid"),
    (dict(strategy="beam", length_penalty=float("-inf")), ValueError, "length_penalty=-inf is invalid"),
    (dict(strategy="beam", length_penalty="long"), TypeError, "length_penalty='long' is not a number; use a float"),
    (dict(strategy="beam", length_penalty=None), TypeError, "length_penalty=None is not a number"),
    # A bad value is refused even where the strategy would not read it.
    (dict(length_penalty=float("inf")), ValueError, "length_penalty=inf is invalid"),
    (dict(length_penalty=1.0), ValueError,
     r"length_penalty=1.0 only applies to strategy='beam', but strategy='greedy' would ignore it; "
     r"leave length_penalty at its default \(0.0\)"),
    (dict(strategy="sample", length_penalty=-0.5), ValueError, "length_penalty=-0.5 only applies to strategy='beam'"),
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


# Rules against repetition: no_repeat_ngram_size, repetition_penalty and (for beam) length_penalty.

LOOP_A, LOOP_B, OTHER = 5, 6, 7


class LoopDecoder:
    """A decoder stuck in a loop: after A it scores B highest, after anything else A, so A B A B ...

    The logits do not depend on the latent vector: the token that continues the loop gets 10, the
    other loop token 5, OTHER 2, EOS -10 and the rest -100. EOS is never among the best extensions,
    so greedy, beam and sampling all run to max_length. Teacher forcing (``decode``) gives the same
    logits, for ``sequence_log_prob``.
    """

    is_sequence_decoder = True

    def init_state(self, latent):
        return torch.zeros(latent.shape[0])

    def reorder_state(self, state, index):
        return state.index_select(0, index)

    def step(self, tokens, state):
        return self._logits(tokens), state

    def decode(self, latent, decoder_input_ids):
        return torch.stack([self._logits(column) for column in decoder_input_ids.T], dim=1)  # (B, T, V)

    @staticmethod
    def _logits(tokens):
        rows = torch.arange(len(tokens))
        after_a = tokens == LOOP_A
        logits = torch.full((len(tokens), VOCAB), -100.0)
        logits[rows, torch.where(after_a, LOOP_B, LOOP_A)] = 10.0
        logits[rows, torch.where(after_a, LOOP_A, LOOP_B)] = 5.0
        logits[:, OTHER], logits[:, EOS_ID] = 2.0, -10.0
        return logits


class StepLogitsDecoder:
    """Step t gives every row ``logits[t]`` (the last one after that): a script of whole logit vectors."""

    is_sequence_decoder = True

    def __init__(self, logits):
        self.logits = torch.tensor(logits, dtype=torch.float32)

    def init_state(self, latent):
        return 0

    def reorder_state(self, t, index):
        return t

    def step(self, tokens, t):
        return self.logits[min(t, len(self.logits) - 1)].expand(len(tokens), -1).clone(), t + 1


def one_hot_logits(token, value=0.0, rest=-50.0):
    logits = [rest] * VOCAB
    logits[token] = value
    return logits


def repeated_ngram_count(text, size):
    ngrams = [tuple(text[i:i + size]) for i in range(len(text) - size + 1)]
    return len(ngrams) - len(set(ngrams))


def decode_all(module, latent, *, max_length, **options):
    """The texts of every strategy with the same rules against repetition: {strategy: list of lists}."""
    return {
        "greedy": as_lists(greedy_decode(module, latent, max_length=max_length, **options)),
        "beam": as_lists(beam_search(module, latent, max_length=max_length, beam_size=3, **options)),
        "sample": as_lists(sample_decode(module, latent, max_length=max_length, **options,
                                         generator=torch.Generator().manual_seed(0))),
    }


def test_a_looping_decoder_loops_to_max_length_without_the_rules():
    texts = decode_all(LoopDecoder(), torch.zeros(20, 3), max_length=12)
    for strategy, outputs in texts.items():
        assert all(len(text) == 12 for text in outputs), strategy
        assert all(repeated_ngram_count(text, 2) > 0 for text in outputs), strategy
    assert texts["greedy"] == [[LOOP_A, LOOP_B] * 6] * 20
    assert texts["beam"] == [[LOOP_A, LOOP_B] * 6] * 20


@pytest.mark.parametrize("size", [1, 2, 3])
def test_no_repeat_ngram_size_ends_the_loop(size):
    # A, B and OTHER make 3 ** size n-grams, so no text of them is longer than 3 ** size + size - 1
    # tokens without a repeat; then every way on but EOS costs far more: the texts end before max_length.
    texts = decode_all(LoopDecoder(), torch.zeros(20, 3), max_length=40, no_repeat_ngram_size=size)
    for strategy, outputs in texts.items():
        assert all(repeated_ngram_count(text, size) == 0 for text in outputs), strategy
        assert all(len(text) < 3 ** size + size for text in outputs), strategy


def test_no_repeat_ngram_size_takes_the_next_best_token_in_greedy_decoding():
    # A B A, then B would repeat "A B": A (5); then B and A would repeat "A B", "A A": OTHER (2);
    # after OTHER, A; after that B, A and OTHER all repeat a bigram, so EOS (-10) beats the rest (-100).
    out = greedy_decode(LoopDecoder(), torch.zeros(2, 3), max_length=12, no_repeat_ngram_size=2)
    assert as_lists(out) == [[LOOP_A, LOOP_B, LOOP_A, LOOP_A, OTHER, LOOP_A]] * 2


def test_the_rules_still_stop_at_eos_and_at_max_length():
    module = ScriptedDecoder([[5, 6, EOS_ID, 7], [8, EOS_ID, 9, 9]])
    rules = dict(no_repeat_ngram_size=2, repetition_penalty=1.5)
    assert as_lists(greedy_decode(module, torch.zeros(2, 3), max_length=10, **rules)) == [[5, 6], [8]]
    sampled = sample_decode(module, torch.zeros(2, 3), max_length=10, generator=torch.Generator().manual_seed(0),
                            **rules)
    assert as_lists(sampled) == [[5, 6], [8]]
    # A penalty alone does not end this loop (every token of it is penalised alike): it stops at max_length.
    texts = decode_all(LoopDecoder(), torch.zeros(4, 3), max_length=7, repetition_penalty=1.3)
    assert all(len(text) == 7 for outputs in texts.values() for text in outputs)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0, -4.0], [2.0, -1.0, 0.5, 3.0, -4.0]])
    history = torch.tensor([[0, 1, 1], [3, 3, 3]])  # a token seen twice is penalised once
    expected = torch.tensor([[1.0, -2.0, 0.5, 3.0, -4.0], [2.0, -1.0, 0.5, 1.5, -4.0]])
    torch.testing.assert_close(penalize_repetitions(logits, history, 2.0), expected, rtol=0, atol=0)
    assert penalize_repetitions(logits, history, 1.0) is logits
    assert penalize_repetitions(logits, history[:, :0], 2.0) is logits


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("first, second, threshold", [
    # The repeated token 5 against the fresh token 7, one step after 5 was produced: a positive logit
    # is divided (3 / p < 2 once p > 1.5), a negative one multiplied (-1 * p < -1.5 once p > 1.5).
    (3.0, 2.0, 1.5), (-1.0, -1.5, 1.5), (0.5, 0.1, 5.0),
])
def test_repetition_penalty_demotes_the_repeated_token_as_specified(strategy, first, second, threshold):
    step_two = one_hot_logits(5, first)
    step_two[7] = second
    module = StepLogitsDecoder([one_hot_logits(5), step_two, one_hot_logits(EOS_ID)])
    options = dict(beam_size=1) if strategy == "beam" else dict(top_k=1) if strategy == "sample" else {}
    for penalty, expected in [(1.0, [5, 5]), (threshold * 0.99, [5, 5]), (threshold * 1.01, [5, 7])]:
        out = decode_latent(module, torch.zeros(1, 3), max_length=5, strategy=strategy,
                            repetition_penalty=penalty, **options)
        assert as_lists(out) == [expected], penalty


@pytest.mark.parametrize("penalty, expected", [(4.9, [LOOP_A, LOOP_B, LOOP_A]), (5.1, [LOOP_A, LOOP_B, OTHER])])
def test_repetition_penalty_demotes_the_looped_token(penalty, expected):
    # After A B, the loop's A (10, seen) falls below OTHER (2, not seen) once 10 / penalty < 2.
    for strategy in ("greedy", "beam"):
        out = decode_latent(LoopDecoder(), torch.zeros(1, 3), max_length=6, strategy=strategy,
                            repetition_penalty=penalty, **({"beam_size": 1} if strategy == "beam" else {}))
        assert as_lists(out)[0][:3] == expected, strategy


def test_repeated_ngrams_matches_a_plain_python_reference():
    generator = torch.Generator().manual_seed(0)
    history = torch.randint(3, 7, (50, 9), generator=generator)  # 4 tokens: many repeats
    for size in (1, 2, 3, 4):
        for length in range(10):
            mask = repeated_ngrams(history[:, :length], size, VOCAB)
            assert mask.shape == (50, VOCAB) and mask.dtype == torch.bool
            for row, tokens in enumerate(history[:, :length].tolist()):
                prefix = tokens[length - size + 1:] if size > 1 else []
                banned = {tokens[i + size - 1] for i in range(length - size + 1)
                          if tokens[i:i + size - 1] == prefix}
                assert set(mask[row].nonzero().flatten().tolist()) == banned, (size, length, row)


def stepped_log_prob(module, latent, texts, *, no_repeat_ngram_size=0, repetition_penalty=1.0):
    """A text's score (EOS included) under the module's steps with the rules, in plain Python.

    The penalty applies to the logits before the log-softmax; a banned token scores -inf.
    """
    scores = []
    for row, text in enumerate(texts):
        state, score, previous = module.init_state(latent[row:row + 1]), 0.0, BOS_ID
        for t, token in enumerate([*text, EOS_ID]):
            logits, state = module.step(torch.tensor([previous]), state)
            logits = logits[0].double().clone()
            for seen in set(text[:t]):
                logits[seen] = logits[seen] / repetition_penalty if logits[seen] > 0 else \
                    logits[seen] * repetition_penalty
            size = no_repeat_ngram_size
            banned = size and t >= size - 1 and any(
                text[i:i + size] == [*text[t - size + 1:t], token] for i in range(t - size + 1))
            score += -math.inf if banned else logits.log_softmax(-1)[token].item()
            previous = token
        scores.append(score)
    return np.array(scores)


@pytest.mark.parametrize("architecture", SEQUENCE_ARCHITECTURES)
@pytest.mark.parametrize("rules", [dict(no_repeat_ngram_size=1), dict(no_repeat_ngram_size=2),
                                   dict(repetition_penalty=1.5), dict(no_repeat_ngram_size=2, repetition_penalty=2.0)])
def test_beam_with_the_rules_is_never_less_probable_than_greedy_with_them(architecture, rules):
    module, latent = tiny_module(architecture, vocab_size=8), random_latent()
    with torch.inference_mode():
        greedy = as_lists(greedy_decode(module, latent, max_length=10, **rules))
        for beam_size in (1, 3):
            beam = as_lists(beam_search(module, latent, max_length=10, beam_size=beam_size, **rules))
            gain = stepped_log_prob(module, latent, beam, **rules) - stepped_log_prob(module, latent, greedy, **rules)
            assert np.all(gain >= -1e-4), beam_size
            if beam_size == 1:
                assert beam == greedy
        if "repetition_penalty" not in rules:  # then the score is the model's own log-probability
            gain = sequence_log_prob(module, latent, beam) - sequence_log_prob(module, latent, greedy)
            assert np.all(gain >= -1e-5)
    size = rules.get("no_repeat_ngram_size", 0)
    for text in [*greedy, *beam]:
        assert len(text) <= 10 and (not size or repeated_ngram_count(text, size) == 0)


@pytest.mark.parametrize("architecture", SEQUENCE_ARCHITECTURES)
def test_beam_rows_with_the_rules_do_not_interfere(architecture):
    module, latent = tiny_module(architecture, vocab_size=8), random_latent(5)
    rules = dict(no_repeat_ngram_size=2, repetition_penalty=1.3, length_penalty=0.7)
    with torch.inference_mode():
        together = beam_search(module, latent, max_length=8, beam_size=3, **rules)
        alone = [beam_search(module, latent[i:i + 1], max_length=8, beam_size=3, **rules)[0] for i in range(5)]
    assert as_lists(together) == as_lists(alone)


def length_penalty_tree():
    # Greedy takes 6 then EOS: 0.5 * 0.8 = 0.4, two steps. The beam also finds 5 7 8 EOS:
    # 0.45 * 0.9 * 0.9 * 0.75 = 0.273, four steps: less probable, but longer.
    return TreeDecoder({(): {6: 0.5, 5: 0.45}, (6,): {EOS_ID: 0.8}, (5,): {7: 0.9}, (5, 7): {8: 0.9},
                        (5, 7, 8): {EOS_ID: 0.75}})


@pytest.mark.parametrize("length_penalty", [-1.0, 0.0, 0.5, 1.0, 2.0])
def test_length_penalty_ranks_closed_hypotheses_by_the_formula(length_penalty):
    module, latent = length_penalty_tree(), torch.zeros(2, 3)
    short, long = [6], [5, 7, 8]

    def rank(text):  # HF's convention: sum_logprobs / len ** length_penalty, len counting EOS
        return module.log_prob(text) / (len(text) + 1) ** length_penalty

    expected = long if rank(long) > rank(short) else short
    assert (expected == long) == (length_penalty >= 1.0)  # the case does separate the values
    out = decode_latent(module, latent, max_length=6, strategy="beam", beam_size=2, length_penalty=length_penalty)
    assert as_lists(out) == [expected, expected]


def test_length_penalty_does_not_stop_the_search_before_a_longer_text_can_win():
    # After two steps 6 EOS (0.42) has closed, ranked log(0.42) / 2 = -0.434 with length_penalty=1, and
    # 5 7 (0.2475) is open. Ranked at its current length, log(0.2475) / 3 = -0.465, it looks beaten
    # (Hugging Face's default early stop ranks it so), but it goes on almost surely to 5 7 8 9 EOS:
    # log(0.2475 * 0.99 ** 3) / 5 = -0.285, the better text under length_penalty=1.
    module = TreeDecoder({(): {6: 0.6, 5: 0.25}, (6,): {EOS_ID: 0.7}, (5,): {7: 0.99}, (5, 7): {8: 0.99},
                          (5, 7, 8): {9: 0.99}, (5, 7, 8, 9): {EOS_ID: 0.99}})
    assert math.log(0.2475) / 3 < module.log_prob([6]) / 2 < module.log_prob([5, 7, 8, 9]) / 5
    latent = torch.zeros(1, 3)
    assert as_lists(beam_search(module, latent, max_length=6, beam_size=2)) == [[6]]
    assert as_lists(beam_search(module, latent, max_length=6, beam_size=2, length_penalty=1.0)) == [[5, 7, 8, 9]]


@pytest.mark.parametrize("length_penalty", [-0.5, 0.5, 1.0])
def test_the_greedy_fallback_is_ranked_with_the_length_penalty_too(length_penalty):
    # The tree of test_beam_falls_back_to_greedy_when_the_beam_loses_its_path: the beam loses greedy's
    # 5 3 4 (3 tokens + EOS) and finds 6 4 (2 tokens + EOS) at best; greedy's text ranks higher under
    # each of these length penalties too, when its length counts its 3 tokens and its EOS.
    module = TreeDecoder({(): {5: 0.4, 6: 0.35, 7: 0.25}, (5,): {3: 0.23, 4: 0.18, 5: 0.18, 6: 0.18, 7: 0.18},
                          (5, 3): {4: 0.9}, (5, 3, 4): {EOS_ID: 0.99}, (6,): {4: 0.5, 3: 0.4},
                          (6, 4): {EOS_ID: 0.25}})
    assert module.log_prob([5, 3, 4]) / 4 ** length_penalty > module.log_prob([6, 4]) / 3 ** length_penalty
    out = beam_search(module, torch.zeros(1, 3), max_length=5, beam_size=2, length_penalty=length_penalty)
    assert as_lists(out) == [[5, 3, 4]]


def test_a_negative_length_penalty_does_not_stop_the_search_before_a_short_text_can_win():
    # With length_penalty=-1 a text ranks by score * length. The empty text closes first: log(0.3) * 1
    # = -1.20. The open 5 (log 0.6 = -0.51) would rank -0.51 * 11 = -5.6 at max_length, but may end at
    # once, and does: log(0.57) * 2 = -1.12 wins.
    module = TreeDecoder({(): {5: 0.6, EOS_ID: 0.3}, (5,): {EOS_ID: 0.95}})
    assert module.log_prob([]) * 1 < module.log_prob([5]) * 2
    out = beam_search(module, torch.zeros(1, 3), max_length=10, beam_size=2, length_penalty=-1.0)
    assert as_lists(out) == [[5]]


@pytest.mark.parametrize("architecture", ["gru", "transformer"])
@pytest.mark.parametrize("rules", [dict(length_penalty=1.0), dict(length_penalty=-1.0), dict(length_penalty=3.0),
                                   dict(no_repeat_ngram_size=1), dict(no_repeat_ngram_size=1, length_penalty=2.0)])
def test_a_beam_as_wide_as_the_search_space_finds_the_best_text_under_the_rules(architecture, rules):
    # As in the test without rules: 5 tokens besides EOS and max_length 3, so at most 125 open texts
    # and 150 extensions at a step. A beam of 150 keeps every EOS among its best extensions and prunes
    # nothing, so it must return the best-ranked of all 156 texts allowed by the rules: the early
    # stop must never cut a text that could still win.
    module, latent = tiny_module(architecture, vocab_size=6, max_length=3), random_latent(4)
    size, length_penalty = rules.get("no_repeat_ngram_size", 0), rules.get("length_penalty", 0.0)
    tokens = [t for t in range(6) if t != EOS_ID]
    texts = [list(text) for length in range(4) for text in itertools.product(tokens, repeat=length)
             if not size or repeated_ngram_count(list(text), size) == 0]
    lengths = np.array([len(text) + 1 for text in texts])
    with torch.inference_mode():
        beam = as_lists(beam_search(module, latent, max_length=3, beam_size=150, **rules))
        for row in range(len(latent)):
            ranks = sequence_log_prob(module, latent[row].expand(len(texts), -1), texts) / lengths ** length_penalty
            assert beam[row] == texts[int(np.argmax(ranks))]


def plain_greedy(module, latent, max_length):
    """Greedy decoding written out one row at a time, as a reference."""
    texts = []
    for row in range(len(latent)):
        state, token, text = module.init_state(latent[row:row + 1]), BOS_ID, []
        for _ in range(max_length):
            logits, state = module.step(torch.tensor([token]), state)
            token = int(logits[0].argmax())
            if token == EOS_ID:
                break
            text.append(token)
        texts.append(text)
    return texts


@pytest.mark.parametrize("architecture", SEQUENCE_ARCHITECTURES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_rules_at_their_off_values_change_nothing(architecture, strategy):
    module, latent = tiny_module(architecture), random_latent()
    options = {"beam": dict(beam_size=3), "sample": dict(temperature=0.8, top_k=5), "greedy": {}}[strategy]
    off = [dict(no_repeat_ngram_size=0, repetition_penalty=1.0), dict(repetition_penalty=1)]
    if strategy == "beam":
        off += [dict(length_penalty=0.0), dict(length_penalty=0), dict(length_penalty=-0.0)]
    with torch.inference_mode():
        def decode(**rules):
            return as_lists(decode_latent(module, latent, max_length=10, strategy=strategy,
                                          generator=torch.Generator().manual_seed(0), **options, **rules))

        plain = decode()
        for rules in off:
            assert decode(**rules) == plain, rules
        if strategy == "greedy":
            assert plain == plain_greedy(module, latent, 10)
        if strategy == "beam":
            assert as_lists(beam_search(module, latent, max_length=10, beam_size=1, no_repeat_ngram_size=0,
                                        repetition_penalty=1.0, length_penalty=0.0)) == plain_greedy(module, latent, 10)


def test_the_rules_default_to_off_in_every_signature():
    assert _SEQUENCE_OPTIONS == {"no_repeat_ngram_size": 0, "repetition_penalty": 1.0}
    assert _STRATEGY_OPTIONS["length_penalty"] == ("beam", 0.0)
    for function in (decode_latent, greedy_decode, sample_decode, beam_search):
        parameters = inspect.signature(function).parameters
        for name, default in _SEQUENCE_OPTIONS.items():
            assert parameters[name].default == default and parameters[name].kind == inspect.Parameter.KEYWORD_ONLY
    for function in (decode_latent, beam_search):
        assert inspect.signature(function).parameters["length_penalty"].default == 0.0


@pytest.mark.parametrize("rules, message", [
    (dict(no_repeat_ngram_size=2), r"no_repeat_ngram_size=2 needs a sequence decoder, but this bag-of-words module "
                                   r".*a bag has no order.*Leave no_repeat_ngram_size at its default \(0\)"),
    (dict(repetition_penalty=1.2), r"repetition_penalty=1.2 needs a sequence decoder.*"
                                   r"Leave repetition_penalty at its default \(1.0\)"),
    (dict(strategy="beam", length_penalty=1.0), "strategy='beam' needs a sequence decoder"),
])
def test_a_bag_of_words_module_refuses_the_rules_that_are_on(rules, message):
    module, latent = tiny_module("bow"), random_latent(3)
    with pytest.raises(ValueError, match=message):
        decode_latent(module, latent, max_length=8, n_tokens=4, **rules)


def test_a_bag_of_words_module_takes_the_rules_at_their_off_values():
    module, latent = tiny_module("bow"), random_latent(3)
    with torch.inference_mode():
        plain = decode_latent(module, latent, max_length=8, n_tokens=4)
        for rules in (dict(no_repeat_ngram_size=0, repetition_penalty=1.0, length_penalty=0.0),
                      dict(repetition_penalty=1)):
            assert as_lists(decode_latent(module, latent, max_length=8, n_tokens=4, **rules)) == as_lists(plain)


@pytest.mark.parametrize("function, extra", [(greedy_decode, {}), (sample_decode, {}),
                                             (beam_search, {"beam_size": 2})])
def test_each_strategy_checks_the_rules_itself(function, extra):
    module = ScriptedDecoder([[5, EOS_ID]])
    with pytest.raises(ValueError, match="no_repeat_ngram_size=-2 is invalid"):
        function(module, torch.zeros(1, 3), max_length=5, no_repeat_ngram_size=-2, **extra)
    with pytest.raises(ValueError, match="repetition_penalty=0.5 is invalid"):
        function(module, torch.zeros(1, 3), max_length=5, repetition_penalty=0.5, **extra)
    if function is beam_search:
        with pytest.raises(TypeError, match="length_penalty='x' is not a number"):
            function(module, torch.zeros(1, 3), max_length=5, length_penalty="x", **extra)


def test_never_write_keeps_the_given_ids_out_of_every_strategy():
    # The script prefers PAD (0), then BOS (1), then token 7, then EOS.
    script = [[9.0 if i == 0 else 8.0 if i == 1 else 5.0 if i == 7 else -50.0 for i in range(VOCAB)]] * 3 + \
             [one_hot_logits(EOS_ID)]
    latent = torch.zeros(2, 3)
    assert decode_all(StepLogitsDecoder(script), latent, max_length=6)["greedy"] == [[0, 0, 0]] * 2
    texts = decode_all(StepLogitsDecoder(script), latent, max_length=6, never_write=(0, 1))
    assert all(text == [[7, 7, 7]] * 2 for text in texts.values()), texts
    assert as_lists(decode_latent(StepLogitsDecoder(script), latent, max_length=6, never_write=[0, 1])) == \
        [[7, 7, 7]] * 2
    with pytest.raises(ValueError, match="never_write must hold token ids"):
        decode_latent(StepLogitsDecoder(script), latent, max_length=6, never_write=[-1])
