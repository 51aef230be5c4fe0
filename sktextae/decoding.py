"""Turning latent vectors back into token sequences, batched on the module's device.

``decode_latent`` is the one entry point; it dispatches to a strategy of :data:`STRATEGIES`:

- ``"greedy"``: the most probable token at every step (``greedy_decode``); for a bag-of-words
  module, the most probable tokens of the bag (``bag_decode``).
- ``"beam"``: beam search for the most probable whole text (``beam_search``).
- ``"sample"``: ancestral sampling, optionally sharpened by a temperature and cut to the top-k
  tokens (``sample_decode``).

Trained models often loop ("the first the first the first ..."), and a search for the most probable
text loops as well. Every sequence strategy therefore takes the rules of Hugging Face's ``generate``
against repetition: ``no_repeat_ngram_size`` bans a token that would repeat an n-gram of the text so
far, and ``repetition_penalty`` makes the tokens it already has less likely; beam search also takes
``length_penalty``, which ranks a finished text by its score divided by ``length ** length_penalty``.
They are off by default; the estimators choose their own defaults.

A text's score is its log-probability under the model: the sum of the log-probabilities of its
tokens and of the EOS that ends it (``sequence_log_prob``). Everything here runs under the grad mode
the caller set (the estimator wraps it in ``torch.inference_mode``), and a decoding loop reads from the
device once per step, to learn whether every row is done.
"""

import math
from numbers import Real

import numpy as np
import torch

from .beam import (
    beam_search,
    check_int,
    check_latent,
    check_length_penalty,
    check_never_write,
    check_repetition_options,
    never_written,
    penalize_repetitions,
    repeated_ngrams,
    until_eos,
)
from .tokenization import BOS_ID, EOS_ID, PAD_ID

STRATEGIES = ("greedy", "beam", "sample")

# The tuning options only one strategy reads, with that strategy and the option's default in decode_latent.
_STRATEGY_OPTIONS = {"beam_size": ("beam", 4), "temperature": ("sample", 1.0), "top_k": ("sample", None),
                     "length_penalty": ("beam", 0.0)}
# The options every sequence strategy reads but a bag of words cannot, with their default ("off") value.
_SEQUENCE_OPTIONS = {"no_repeat_ngram_size": 0, "repetition_penalty": 1.0}
# Every option decode_latent reads besides the latent vectors and what the caller derives (max_length,
# generator, n_tokens, never_write): the names inverse_transform and friends accept.
OPTIONS = ("strategy", *_STRATEGY_OPTIONS, *_SEQUENCE_OPTIONS)


def decode_latent(module, latent, *, max_length, strategy="greedy", beam_size=4, temperature=1.0, top_k=None,
                  no_repeat_ngram_size=0, repetition_penalty=1.0, length_penalty=0.0, never_write=(),
                  generator=None, n_tokens=None):
    """Decode latent vectors with the chosen strategy: the entry point for ``inverse_transform`` and friends.

    Every option is checked, whatever the strategy. A tuning option must be left at its default
    unless the chosen strategy reads it: ``beam_size`` and ``length_penalty`` belong to ``"beam"``,
    ``temperature`` and ``top_k`` to ``"sample"``; ``beam_size=8`` with ``strategy="greedy"`` raises
    ``ValueError`` rather than being silently ignored. Likewise ``no_repeat_ngram_size`` and
    ``repetition_penalty``, which every sequence strategy reads, must be left at their defaults (the
    values that turn them off) for a bag-of-words module, whose bag has no order to repeat. ``generator`` and ``n_tokens`` are no choice of strategy
    and may always be passed: a random source does not change a deterministic strategy, and the
    bag size (required by a bag-of-words module) does not concern a sequence decoder. So a caller
    can pass its one generator and its bag size whatever the strategy and module.

    Parameters
    ----------
    module : AutoencoderModule
        A sequence decoder (``init_state``, ``step``, ``reorder_state``) or a bag-of-words module
        (``is_sequence_decoder = False``).
    latent : torch.Tensor of shape (n, latent_dim)
        On the module's device; the results are computed there.
    max_length : int
        The most tokens produced per text (not used by a bag-of-words module).
    strategy : {"greedy", "beam", "sample"}, default="greedy"
        A bag-of-words module only knows ``"greedy"``: a bag has no order to search or sample.
    beam_size : int, default=4
        Hypotheses kept per text by ``"beam"``; 1 is greedy decoding.
    temperature : float, default=1.0
        ``"sample"`` draws from ``softmax(logits / temperature)``: below 1 is closer to greedy,
        above 1 more varied.
    top_k : int or None, default=None
        ``"sample"`` draws only among the ``top_k`` most probable tokens of each step.
    no_repeat_ngram_size : int, default=0
        No n-gram of this many tokens occurs twice in a text: a token that would complete one already
        in the text gets probability 0 (0: no such rule). ``no_repeat_ngram_size=2`` ends the loops
        of "the first the first ...", but also forbids a text to repeat any pair of tokens.
    repetition_penalty : float, default=1.0
        CTRL's penalty, as Hugging Face applies it: every token already in the text has its logit
        divided by this when positive and multiplied by it when negative (1.0: no penalty; 1.2 is
        the value the CTRL paper recommends).
    length_penalty : float, default=0.0
        ``"beam"`` ranks a finished text by ``score / length ** length_penalty``, where ``length``
        counts its tokens and its EOS: above 0 favours longer texts, below 0 shorter ones (0.0: by
        the score alone, which tends to favour short texts).
    generator : torch.Generator or None, default=None
        Random source of ``"sample"``, on ``latent``'s device: the same seed gives the same texts.
        Not used by the other strategies.
    n_tokens : int or None, default=None
        Tokens returned per bag by a bag-of-words module, most probable first (required there).
        Not used by a sequence decoder, which ends each text at its EOS or ``max_length``.

    Returns
    -------
    list of numpy.ndarray
        The int64 token ids of each text, without BOS or EOS.
    """
    _check_strategy(strategy)
    check_latent(latent)
    check_int("max_length", max_length, minimum=1)
    check_int("beam_size", beam_size, minimum=1)
    _check_sampling(latent, temperature=temperature, top_k=top_k, generator=generator)
    repetition = dict(no_repeat_ngram_size=no_repeat_ngram_size, repetition_penalty=repetition_penalty)
    check_repetition_options(**repetition)
    never_write = check_never_write(never_write, latent)
    check_length_penalty(length_penalty)
    if n_tokens is not None:
        check_int("n_tokens", n_tokens, minimum=1)
    _check_unused(strategy, beam_size=beam_size, temperature=temperature, top_k=top_k,
                  length_penalty=length_penalty)
    if not module.is_sequence_decoder:
        _check_orderless(**repetition)  # never_write concerns sequences: a bag's tokens are its best ones
        return _decode_bag(module, latent, strategy=strategy, n_tokens=n_tokens)
    if strategy == "beam":
        return beam_search(module, latent, max_length=max_length, beam_size=beam_size,
                           length_penalty=length_penalty, never_write=never_write, **repetition)
    if strategy == "sample":
        return sample_decode(module, latent, max_length=max_length, temperature=temperature, top_k=top_k,
                             generator=generator, never_write=never_write, **repetition)
    return greedy_decode(module, latent, max_length=max_length, never_write=never_write, **repetition)


def _decode_bag(module, latent, *, strategy, n_tokens):
    if strategy != "greedy":
        raise ValueError(f"strategy={strategy!r} needs a sequence decoder, but this bag-of-words module "
                         f"predicts an unordered bag of tokens: a bag has no order to search or sample. "
                         f"Use strategy='greedy' (the n_tokens most probable tokens).")
    if n_tokens is None:
        raise ValueError("n_tokens=None: a bag-of-words module needs n_tokens, the number of tokens to "
                         "return per bag (the estimator passes its bag_size_).")
    return bag_decode(module.decode(latent), n_tokens=n_tokens)


def greedy_decode(module, latent, *, max_length, no_repeat_ngram_size=0, repetition_penalty=1.0, never_write=()):
    """Decode each latent vector by taking the most probable token at every step.

    Parameters
    ----------
    module : AutoencoderModule
        A module with a sequence decoder (``init_state`` and ``step``).
    latent : torch.Tensor of shape (n, latent_dim)
    max_length : int
        The most tokens produced per text; a text that has not produced EOS by then is cut there.
    no_repeat_ngram_size : int, default=0
        Never take a token that would repeat an n-gram of this size already in the text (0: no such rule).
    repetition_penalty : float, default=1.0
        Every token already in the text has its positive logit divided by this, a negative one
        multiplied (1.0: no penalty).

    Returns
    -------
    list of numpy.ndarray
        The token ids of each text, without BOS or EOS.
    """
    check_repetition_options(no_repeat_ngram_size=no_repeat_ngram_size, repetition_penalty=repetition_penalty)
    return _decode_each_step(module, latent, max_length=max_length, choose=lambda logits: logits.argmax(dim=-1),
                             no_repeat_ngram_size=no_repeat_ngram_size, repetition_penalty=repetition_penalty,
                             never_write=check_never_write(never_write, latent))


def sample_decode(module, latent, *, max_length, temperature=1.0, top_k=None, no_repeat_ngram_size=0,
                  repetition_penalty=1.0, never_write=(), generator=None):
    """Decode each latent vector by drawing every token from the model's distribution (ancestral sampling).

    Parameters
    ----------
    module : AutoencoderModule
        A module with a sequence decoder (``init_state`` and ``step``).
    latent : torch.Tensor of shape (n, latent_dim)
    max_length : int
        The most tokens produced per text; a text that has not produced EOS by then is cut there.
    temperature : float, default=1.0
        Tokens are drawn from ``softmax(logits / temperature)``; towards 0 this becomes greedy decoding.
    top_k : int or None, default=None
        Draw only among the ``top_k`` most probable tokens of each step (all of them when None);
        ``top_k=1`` is greedy decoding.
    no_repeat_ngram_size : int, default=0
        Never draw a token that would repeat an n-gram of this size already in the text (0: no such rule).
    repetition_penalty : float, default=1.0
        Every token already in the text has its positive logit divided by this, a negative one
        multiplied (1.0: no penalty), before the temperature and ``top_k`` apply.
    generator : torch.Generator or None, default=None
        On ``latent``'s device; a generator seeded the same way gives the same texts.

    Returns
    -------
    list of numpy.ndarray
        The token ids of each text, without BOS or EOS.
    """
    check_latent(latent)
    check_int("max_length", max_length, minimum=1)
    _check_sampling(latent, temperature=temperature, top_k=top_k, generator=generator)
    check_repetition_options(no_repeat_ngram_size=no_repeat_ngram_size, repetition_penalty=repetition_penalty)

    def choose(logits):
        return _sample(logits, temperature=temperature, top_k=top_k, generator=generator)

    return _decode_each_step(module, latent, max_length=max_length, choose=choose,
                             no_repeat_ngram_size=no_repeat_ngram_size, repetition_penalty=repetition_penalty,
                             never_write=check_never_write(never_write, latent))


def _decode_each_step(module, latent, *, max_length, choose, no_repeat_ngram_size, repetition_penalty, never_write):
    """The loop of greedy decoding and sampling: ``choose(logits (B, V)) -> tokens (B,)`` picks each token.

    The rules against repetition reshape the logits first, from each row's tokens so far.
    """
    batch = latent.shape[0]
    state = module.init_state(latent)
    tokens = torch.full((batch,), BOS_ID, dtype=torch.long, device=latent.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=latent.device)
    history = torch.full((batch, max_length + 1), EOS_ID, dtype=torch.long, device=latent.device)  # (B, T + 1)
    for step in range(max_length + 1):  # + 1: the EOS after max_length tokens
        logits, state = module.step(tokens, state)
        logits = never_written(penalize_repetitions(logits, history[:, :step], repetition_penalty), never_write)
        if no_repeat_ngram_size:
            logits = logits.masked_fill(repeated_ngrams(history[:, :step], no_repeat_ngram_size, logits.shape[-1]),
                                        -math.inf)
        tokens = choose(logits).masked_fill(finished, EOS_ID)  # (B,)
        history[:, step] = tokens
        finished |= tokens == EOS_ID
        if bool(finished.all()):
            break
    ids = history[:, :step + 1].cpu().numpy()  # (B, steps)
    return [until_eos(row)[:max_length] for row in ids]


def _sample(logits, *, temperature, top_k, generator):
    """One token per row drawn from ``softmax(logits / temperature)`` cut to its ``top_k`` best: (B, V) -> (B,)."""
    scaled = logits.float() / temperature  # (B, V)
    if top_k is not None and top_k < scaled.shape[-1]:
        # Scattering the top k (rather than masking below the k-th value) keeps exactly k tokens on ties.
        top = scaled.topk(top_k, dim=-1)
        scaled = torch.full_like(scaled, -math.inf).scatter(-1, top.indices, top.values)
    # The Gumbel-max trick: argmax(scaled + Gumbel noise) is a draw from softmax(scaled), made of plain
    # elementwise kernels (torch.multinomial checks its input, which can wait on the device). The clamp
    # keeps log(0) out: a zero uniform would give a token noise of -inf, a bias of 2**-24 per draw.
    uniform = torch.rand(scaled.shape, generator=generator, device=scaled.device)
    gumbel = -torch.log(-torch.log(uniform.clamp_(min=torch.finfo(uniform.dtype).tiny)))  # (B, V)
    return (scaled + gumbel).argmax(dim=-1)


def bag_decode(logits, *, n_tokens):
    """The ``n_tokens`` most probable tokens of each bag, most probable first: (n, V) -> list of arrays."""
    top = logits.topk(min(n_tokens, logits.shape[-1]), dim=-1).indices  # (B, k)
    return list(top.cpu().numpy())


def sequence_log_prob(module, latent, sequences):
    """The model's log-probability of each token sequence followed by EOS, given its latent vector.

    Read by teacher forcing (``module.decode`` on BOS followed by the sequence). This is the score
    that ``beam_search`` maximises, so it compares decoding strategies on the model's own terms.

    Parameters
    ----------
    module : AutoencoderModule
        A module with a sequence decoder.
    latent : torch.Tensor of shape (n, latent_dim)
    sequences : sequence of n array-like of int
        Token ids without BOS or EOS, one sequence per latent vector.

    Returns
    -------
    numpy.ndarray of shape (n,), dtype float64
    """
    check_latent(latent)
    if not module.is_sequence_decoder:
        raise ValueError("sequence_log_prob needs a sequence decoder; a bag-of-words module gives no "
                         "probability to a token order.")
    if len(sequences) != latent.shape[0]:
        raise ValueError(f"sequences ({len(sequences)}) and latent ({latent.shape[0]} rows) must have the same "
                         f"length: one sequence per latent vector.")
    if not len(sequences):
        return np.zeros(0)
    decoder_input_ids, targets, lengths = _teacher_forcing(sequences, latent.device)
    log_probs = module.decode(latent, decoder_input_ids).float().log_softmax(dim=-1)  # (B, T + 1, V)
    picked = log_probs.gather(2, targets[..., None])[..., 0]  # (B, T + 1)
    positions = torch.arange(targets.shape[1], device=latent.device)
    scored = positions[None, :] <= lengths[:, None]  # (B, T + 1): the tokens and their EOS
    return picked.masked_fill(~scored, 0.0).double().sum(dim=1).cpu().numpy()


def _teacher_forcing(sequences, device):
    """BOS + tokens as decoder input, tokens + EOS as targets, both padded: -> (B, T + 1) each, lengths (B,)."""
    rows = [torch.as_tensor(np.asarray(seq, dtype=np.int64).reshape(-1)) for seq in sequences]
    lengths = torch.tensor([len(row) for row in rows])
    width = int(lengths.max()) + 1
    decoder_input_ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    targets = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    decoder_input_ids[:, 0] = BOS_ID
    for i, row in enumerate(rows):
        decoder_input_ids[i, 1:len(row) + 1] = row
        targets[i, :len(row)] = row
        targets[i, len(row)] = EOS_ID
    return decoder_input_ids.to(device), targets.to(device), lengths.to(device)


def _check_strategy(strategy):
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not supported; use one of {STRATEGIES}.")


def _check_sampling(latent, *, temperature, top_k, generator):
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise TypeError(f"temperature={temperature!r} is not a number; use a float > 0 "
                        f"(1.0 samples the model's own distribution).")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r} is invalid; use a finite float > 0 (below 1.0 is "
                         f"closer to greedy, 1.0 samples the model's own distribution).")
    if top_k is not None:
        check_int("top_k", top_k, minimum=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator is a {type(generator).__name__}; pass a torch.Generator or None.")
    if generator is not None and not _same_device(generator.device, latent.device):
        raise ValueError(f"generator is on {generator.device} but latent is on {latent.device}; create it "
                         f"with torch.Generator(device=latent.device).")


def _same_device(a, b):
    # A device named without an index, as in torch.Generator(device="cuda"), is the current one.
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _check_orderless(**options):
    """Refuse a rule against repetition that is on for a bag-of-words module, whose bag has no order."""
    for name, value in options.items():
        default = _SEQUENCE_OPTIONS[name]
        if value != default:
            raise ValueError(f"{name}={value!r} needs a sequence decoder, but this bag-of-words module predicts "
                             f"an unordered bag of tokens: a bag has no order, so no repetition to prevent. "
                             f"Leave {name} at its default ({default!r}).")


def _check_unused(strategy, **options):
    for name, value in options.items():
        owner, default = _STRATEGY_OPTIONS[name]
        changed = value is not None if default is None else value != default
        if strategy != owner and changed:
            raise ValueError(f"{name}={value!r} only applies to strategy={owner!r}, but strategy={strategy!r} "
                             f"would ignore it; leave {name} at its default ({default!r}) or use "
                             f"strategy={owner!r}.")
