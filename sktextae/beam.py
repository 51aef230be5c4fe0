"""Beam search: decoding latent vectors to the most probable whole texts a beam of hypotheses finds.

``beam_search`` is the ``"beam"`` strategy of ``decoding.decode_latent``, which dispatches to it. It
also holds the small helpers the other strategies share with it (the checks of the latent matrix and
of integer options, cutting a row at its EOS, and the rules against repetition that every sequence
strategy applies: ``penalize_repetitions`` and ``repeated_ngrams``), which ``decoding`` imports from here
so that the imports go one way: ``decoding`` imports ``beam``, never the reverse.

The rules against repetition read a row's history, the tokens it has produced so far (BOS excluded:
it is no part of the text), as a (rows, t) tensor on the device, and act on every row at once.
"""

import math
from numbers import Integral, Real

import numpy as np
import torch

from .tokenization import BOS_ID, EOS_ID, MASK_ID, PAD_ID


def beam_search(module, latent, *, max_length, beam_size, no_repeat_ngram_size=0, repetition_penalty=1.0,
                length_penalty=0.0, never_write=()):
    """Decode each latent vector to the most probable text that a beam of ``beam_size`` hypotheses finds.

    All texts are searched at once: ``n * beam_size`` rows go through each ``step``, plus ``n`` rows
    that decode greedily alongside. A hypothesis that produces EOS is closed with its score (the sum
    of its token log-probabilities, EOS included, as ``sequence_log_prob`` computes it); an EOS
    counts only if it ranks among the ``beam_size`` best extensions, so that ``beam_size=1`` is greedy
    decoding. A hypothesis still open after ``max_length`` tokens is closed there with the EOS
    log-probability of that step added, just as ``sequence_log_prob`` scores its output. The search
    stops once no open hypothesis can still beat a row's best closed one, or after ``max_length + 1``
    steps.

    The rules against repetition apply to every hypothesis with its own history, and to the greedy
    rows alongside. ``repetition_penalty`` changes the logits before the log-softmax, as in greedy
    decoding (Hugging Face's beam search penalises the log-probabilities instead): the beam then ranks
    by a proper distribution and ``beam_size=1`` stays greedy decoding under the same options. A token
    banned by ``no_repeat_ngram_size`` gets a log-probability of -inf after the log-softmax, as in
    Hugging Face, so that without a repetition penalty a score is the model's own log-probability of
    a text that has no repeated n-gram.

    Parameters
    ----------
    module : AutoencoderModule
        A module with a sequence decoder (``init_state``, ``step`` and ``reorder_state``).
    latent : torch.Tensor of shape (n, latent_dim)
    max_length : int
        The most tokens produced per text.
    beam_size : int
        Hypotheses kept per text at every step.
    no_repeat_ngram_size : int, default=0
        A hypothesis never repeats an n-gram of this size (0: no such rule).
    repetition_penalty : float, default=1.0
        Every token already in a hypothesis has its positive logit divided by this, a negative one
        multiplied (1.0: no penalty).
    length_penalty : float, default=0.0
        A closed hypothesis ranks by ``score / (length ** length_penalty)``, where ``length`` counts
        its tokens and its EOS; above 0 favours longer texts, below 0 shorter ones (0.0: by score).

    Returns
    -------
    list of numpy.ndarray
        The token ids of each text, without BOS or EOS; never ranked below ``greedy_decode``'s text
        for the same latent vector and options (never less probable under the model when no option
        is set).
    """
    check_latent(latent)
    check_int("max_length", max_length, minimum=1)
    check_int("beam_size", beam_size, minimum=1)
    check_repetition_options(no_repeat_ngram_size=no_repeat_ngram_size, repetition_penalty=repetition_penalty)
    never_write = check_never_write(never_write, latent)
    check_length_penalty(length_penalty)
    batch, device = latent.shape[0], latent.device
    if batch == 0:
        return []
    # A pruned search does not always contain the greedy text: after a confident first token, beam_size
    # other prefixes can outscore the greedy one and push it out, and yet end worse than greedy does
    # (a wider beam can even find a worse text). So greedy decoding runs alongside, in the last `batch`
    # rows, and wins where it ends more probable.
    ranking = _Ranking(length_penalty, max_length)
    beams = _Beams(batch, beam_size, max_length, device, ranking)
    greedy = _GreedyRows(batch, max_length, device)
    rows = torch.arange(batch, device=device)
    state = module.reorder_state(module.init_state(latent), torch.cat([rows.repeat_interleave(beam_size), rows]))
    tokens = torch.full((batch * (beam_size + 1),), BOS_ID, dtype=torch.long, device=device)
    greedy_rows = torch.arange(batch * beam_size, batch * (beam_size + 1), device=device)
    any_rule = no_repeat_ngram_size != 0 or repetition_penalty != 1.0
    for step in range(max_length + 1):
        logits, state = module.step(tokens, state)  # (B*K + B, V)
        if any_rule:  # each row's own tokens so far: a hypothesis' history, or its greedy row's
            history = torch.cat([beams.history.flatten(0, 1), greedy.history[:, :step]])  # (B*K + B, step)
            logits = penalize_repetitions(logits, history, repetition_penalty)
        log_probs = logits.float().log_softmax(dim=-1)
        logits, log_probs = never_written(logits, never_write), never_written(log_probs, never_write)
        if no_repeat_ngram_size:
            banned = repeated_ngrams(history, no_repeat_ngram_size, logits.shape[-1])  # (B*K + B, V)
            logits, log_probs = logits.masked_fill(banned, -math.inf), log_probs.masked_fill(banned, -math.inf)
        last = step == max_length
        if last:  # close every open hypothesis: only EOS may follow max_length tokens
            log_probs = _only_eos(log_probs)
        parent, beam_tokens = beams.advance(log_probs[:batch * beam_size].view(batch, beam_size, -1), step)
        greedy_tokens = greedy.advance(logits[batch * beam_size:], log_probs[batch * beam_size:], step)
        tokens = torch.cat([beam_tokens.flatten(), greedy_tokens])  # (B*K + B,)
        beam_parents = (rows[:, None] * beam_size + parent).flatten()  # (B*K,): the row each beam extends
        state = module.reorder_state(state, torch.cat([beam_parents, greedy_rows]))
        if bool((_best_open(beams, greedy, ranking, step) <= _best_closed(beams, greedy, ranking)).all()):
            break
    return _pick_results(beams, greedy, ranking, max_length)


class _Ranking:
    """How a closed text ranks: ``score / length ** length_penalty``, ``length`` its tokens plus EOS.

    Scores only fall as a text grows (every log-probability is <= 0), which is what lets the search
    stop early: without a length penalty an open hypothesis can at best keep its current score. A
    length penalty breaks that, since a longer text is divided by more (``length_penalty > 0``) or
    less (``< 0``). Rather than run every search to ``max_length`` whenever ``length_penalty != 0``,
    ``attainable`` bounds what an open hypothesis can still reach under the normalised score: the
    search stops once that bound shows that none can win (never earlier), which with a positive
    penalty is seldom before ``max_length``, and it stops exactly as before when the penalty is 0.
    """

    def __init__(self, length_penalty, max_length):
        self.length_penalty, self.max_length = float(length_penalty), max_length

    def closed(self, score, n_tokens):
        """The rank of texts of ``n_tokens`` tokens (int or tensor) closed with ``score``."""
        if self.length_penalty == 0.0:  # exactly the score, as before length penalties existed
            return score
        return score / (n_tokens + 1) ** self.length_penalty

    def attainable(self, score, n_tokens):
        """The best rank an open text of ``n_tokens`` tokens and ``score`` can still close with.

        It closes with some length L from ``n_tokens + 1`` to ``max_length + 1`` and a score s <= ``score``
        <= 0, so s / L ** p <= ``score`` / L ** p, which is largest at the longest L when p > 0 and at
        the shortest when p < 0 (when p = 0 it is ``score`` itself).
        """
        if self.length_penalty > 0.0:
            return score / (self.max_length + 1) ** self.length_penalty
        return self.closed(score, n_tokens)


# The ids the package's decoders never write inside a text: padding, the start token and the noise mask
# (``inverse_transform`` passes them as ``never_write``). Training never asks for them, but a little-trained
# decoder can still rank them first, and a PAD or BOS in the middle of a text decodes to nothing: a text
# that reads as if its neighbours repeated. UNK stays: it stands for real text.
SPECIAL_IDS = (PAD_ID, BOS_ID, MASK_ID)


def never_written(scores, never_write):
    """``scores`` (N, V) with the ids of ``never_write`` (a (k,) tensor, maybe empty) set to -inf."""
    return scores.index_fill(-1, never_write, -math.inf) if len(never_write) else scores


def check_never_write(never_write, latent):
    """``never_write`` (ids no text may hold) as a tensor on ``latent``'s device."""
    if isinstance(never_write, torch.Tensor):
        never_write = never_write.tolist()
    if not all(isinstance(i, Integral) and not isinstance(i, bool) and i >= 0 for i in never_write):
        raise ValueError(f"never_write must hold token ids (ints >= 0), got {never_write!r}.")
    return torch.tensor(list(never_write), dtype=torch.long, device=latent.device)


def penalize_repetitions(logits, history, penalty):
    """CTRL's repetition penalty, as Hugging Face applies it: (N, V) logits, (N, t) history -> (N, V).

    Every token already in a row's history has its logit divided by ``penalty`` if positive and
    multiplied by it if negative, so that it always becomes less likely; a token seen twice is
    penalised once. ``penalty=1.0`` returns ``logits`` itself.
    """
    if penalty == 1.0 or history.shape[1] == 0:
        return logits
    seen = logits.gather(1, history)  # (N, t); a token seen twice reads and writes the same value
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(1, history, seen)


def repeated_ngrams(history, size, vocab_size):
    """The tokens that would repeat an n-gram of ``size`` tokens: (N, t) history -> (N, V) bool mask.

    A token is banned from a row when the row's last ``size - 1`` tokens followed by it form an
    n-gram already in the row's history, as Hugging Face's ``NoRepeatNGramLogitsProcessor`` bans it
    (``size=1`` bans every token already produced). The last ``size - 1`` tokens are compared with
    the first ``size - 1`` of every earlier n-gram of the row at once.
    """
    rows, length = history.shape
    # A spare last column takes the followers of the n-grams that do not match, so that every write
    # of the scatter is True and duplicate indices do not matter.
    banned = torch.zeros((rows, vocab_size + 1), dtype=torch.bool, device=history.device)
    if length >= size:
        ngrams = history.unfold(1, size, 1)  # (N, W, size): every n-gram so far, W = t - size + 1
        prefix = history[:, length - size + 1:]  # (N, size - 1): what the next token would complete
        matches = (ngrams[..., :-1] == prefix[:, None, :]).all(dim=-1)  # (N, W)
        followers = ngrams[..., -1].masked_fill(~matches, vocab_size)  # (N, W)
        banned.scatter_(1, followers, True)
    return banned[:, :vocab_size]


def _only_eos(log_probs):
    eos_only = torch.full_like(log_probs[0], -math.inf)
    eos_only[EOS_ID] = 0.0
    return log_probs + eos_only  # (N, V): -inf everywhere but EOS


class _Beams:
    """The open hypotheses of each text and its best closed one, all as tensors on the device.

    ``scores`` (B, K) is sorted best first; ``history`` (B, K, t) holds the open hypotheses' tokens;
    ``best_score`` (B,), ``best_tokens`` (B, max_length) and ``best_length`` (B,) the best closed one,
    the only closed hypothesis worth keeping, as one text is returned per row; ``best_score`` is its
    rank under the length penalty (``_Ranking.closed``), its score when there is none.
    """

    def __init__(self, batch, beam_size, max_length, device, ranking):
        # Every beam starts as the same empty text; only one of them may extend, or the first step
        # would fill the beam with copies of the same hypotheses.
        self.scores = torch.full((batch, beam_size), -math.inf, device=device)
        self.scores[:, 0] = 0.0
        self.history = torch.zeros((batch, beam_size, 0), dtype=torch.long, device=device)
        self.best_score = torch.full((batch,), -math.inf, device=device)
        self.best_tokens = torch.full((batch, max_length), PAD_ID, dtype=torch.long, device=device)
        self.best_length = torch.zeros(batch, dtype=torch.long, device=device)
        self.ranking = ranking

    def advance(self, log_probs, step):
        """Extend every hypothesis by one token: (B, K, V) log-probs -> parent beam (B, K) and token (B, K)."""
        batch, width, vocab = log_probs.shape
        candidates = (self.scores[..., None] + log_probs).view(batch, width * vocab)  # (B, K*V)
        # The best 2K extensions hold at least K that do not end, since each beam has one EOS.
        top_scores, top_ids = candidates.topk(2 * width, dim=-1)  # (B, 2K), best first
        parent, token = top_ids // vocab, top_ids % vocab  # (B, 2K) each
        ends = token == EOS_ID
        self._close(top_scores[:, :width], parent[:, :width], ends[:, :width], step)
        # The K best that do not end stay open; a stable sort keeps them best first.
        keep = (~ends).to(torch.uint8).argsort(dim=-1, descending=True, stable=True)[:, :width]  # (B, K)
        self.scores = top_scores.gather(1, keep)
        parent, token = parent.gather(1, keep), token.gather(1, keep)
        history = self.history.gather(1, parent[..., None].expand(-1, -1, step))  # (B, K, t)
        self.history = torch.cat([history, token[..., None]], dim=-1)  # (B, K, t + 1)
        return parent, token

    def _close(self, scores, parent, ends, step):
        """Keep the best of the hypotheses that end here, ``step`` tokens long, where it beats the best so far."""
        # All of them have the same length, so the best score is also the best rank.
        score, pick = scores.masked_fill(~ends, -math.inf).max(dim=-1)  # (B,)
        score = self.ranking.closed(score, step)
        better = score > self.best_score
        beam = parent.gather(1, pick[:, None])[:, 0]  # (B,)
        text = self.history[torch.arange(len(beam), device=beam.device), beam]  # (B, t)
        self.best_tokens[:, :step] = torch.where(better[:, None], text, self.best_tokens[:, :step])
        self.best_length = torch.where(better, step, self.best_length)
        self.best_score = torch.where(better, score, self.best_score)


class _GreedyRows:
    """Greedy decoding of each text, run in the same step calls as its beams, with its score.

    ``history`` (B, max_length + 1) holds the tokens chosen so far (EOS repeated after a row's end),
    ``length`` (B,) the tokens of each text before its EOS.
    """

    def __init__(self, batch, max_length, device):
        self.history = torch.full((batch, max_length + 1), EOS_ID, dtype=torch.long, device=device)
        self.score = torch.zeros(batch, device=device)
        self.length = torch.zeros(batch, dtype=torch.long, device=device)
        self.finished = torch.zeros(batch, dtype=torch.bool, device=device)

    def advance(self, logits, log_probs, step):
        # The argmax of the logits themselves, as greedy_decode takes it (log_softmax may round a near tie).
        last = step == self.history.shape[1] - 1
        tokens = torch.full_like(self.finished, EOS_ID, dtype=torch.long) if last else logits.argmax(dim=-1)
        tokens = tokens.masked_fill(self.finished, EOS_ID)  # (B,)
        gained = log_probs.gather(1, tokens[:, None])[:, 0].masked_fill(self.finished, 0.0)
        self.score = self.score + gained
        self.history[:, step] = tokens
        self.finished = self.finished | (tokens == EOS_ID)
        self.length = self.length + (~self.finished).long()
        return tokens


def _best_closed(beams, greedy, ranking):
    greedy_rank = ranking.closed(greedy.score, greedy.length)
    return torch.where(greedy.finished, torch.maximum(beams.best_score, greedy_rank), beams.best_score)  # (B,)


def _best_open(beams, greedy, ranking, step):
    # After `step`, every open hypothesis has step + 1 tokens, and so has an open greedy row.
    greedy_rank = ranking.attainable(greedy.score, greedy.length).masked_fill(greedy.finished, -math.inf)
    return torch.maximum(ranking.attainable(beams.scores[:, 0], step + 1), greedy_rank)  # (B,)


def _pick_results(beams, greedy, ranking, max_length):
    # Greedy's text wins only when finished and strictly better; a stop before greedy finished means
    # its open score was already no better than the best closed hypothesis.
    greedy_rank = ranking.closed(greedy.score, greedy.length)
    use_greedy = (greedy.finished & (greedy_rank > beams.best_score)).cpu().numpy()
    greedy_ids = greedy.history.cpu().numpy()  # (B, max_length + 1)
    beam_ids, lengths = beams.best_tokens.cpu().numpy(), beams.best_length.cpu().numpy()
    return [until_eos(greedy_ids[row])[:max_length] if use_greedy[row] else beam_ids[row, :lengths[row]]
            for row in range(len(lengths))]


def until_eos(row):
    stop = np.flatnonzero(row == EOS_ID)
    return row[:stop[0]] if len(stop) else row


def check_latent(latent):
    if not isinstance(latent, torch.Tensor):
        raise TypeError(f"latent is a {type(latent).__name__}; pass a torch.Tensor of shape (n, latent_dim) "
                        f"on the module's device.")
    if latent.ndim != 2:
        raise ValueError(f"latent has shape {tuple(latent.shape)}; it must be 2-D, (n, latent_dim).")


def check_int(name, value, *, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name}={value!r} is not an integer; use an integer >= {minimum}.")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is invalid; use an integer >= {minimum}.")


def check_repetition_options(*, no_repeat_ngram_size, repetition_penalty):
    """Check the rules against repetition that every sequence strategy applies."""
    check_int("no_repeat_ngram_size", no_repeat_ngram_size, minimum=0)
    if isinstance(repetition_penalty, bool) or not isinstance(repetition_penalty, Real):
        raise TypeError(f"repetition_penalty={repetition_penalty!r} is not a number; use a float >= 1.0 "
                        f"(1.0 is no penalty).")
    if not (math.isfinite(repetition_penalty) and repetition_penalty >= 1.0):
        raise ValueError(f"repetition_penalty={repetition_penalty!r} is invalid; use a finite float >= 1.0 "
                         f"(1.0 is no penalty, above 1.0 makes the tokens a text already has less likely).")


# Beyond this, length ** length_penalty overflows (a Python float raises, a float32 rank becomes inf or 0)
# for ordinary lengths; Hugging Face's default is 1.0 and useful values lie within a few units of it.
MAX_LENGTH_PENALTY = 10.0


def check_length_penalty(length_penalty):
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, Real):
        raise TypeError(f"length_penalty={length_penalty!r} is not a number; use a float (0.0 ranks texts "
                        f"by their log-probability, above 0 favours longer ones).")
    if not (math.isfinite(length_penalty) and abs(length_penalty) <= MAX_LENGTH_PENALTY):
        raise ValueError(f"length_penalty={length_penalty!r} is invalid; use a float from {-MAX_LENGTH_PENALTY} "
                         f"to {MAX_LENGTH_PENALTY} (0.0 ranks texts by their log-probability, above 0 favours "
                         f"longer ones, below 0 shorter ones; beyond that, length ** length_penalty overflows).")
