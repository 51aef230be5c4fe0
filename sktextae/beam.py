"""Beam search: decoding latent vectors to the most probable whole texts a beam of hypotheses finds.

``beam_search`` is the ``"beam"`` strategy of ``decoding.decode_latent``, which dispatches to it. It
also holds the small helpers the other strategies share with it (the checks of the latent matrix and
of integer options, and cutting a row at its EOS), which ``decoding`` imports from here so that the
imports go one way: ``decoding`` imports ``beam``, never the reverse.
"""

import math
from numbers import Integral

import numpy as np
import torch

from .tokenization import BOS_ID, EOS_ID, PAD_ID


def beam_search(module, latent, *, max_length, beam_size):
    """Decode each latent vector to the most probable text that a beam of ``beam_size`` hypotheses finds.

    All texts are searched at once: ``n * beam_size`` rows go through each ``step``, plus ``n`` rows
    that decode greedily alongside. A hypothesis that produces EOS is closed with its score (the sum
    of its token log-probabilities, EOS included, as ``sequence_log_prob`` computes it); an EOS
    counts only if it ranks among the ``beam_size`` best extensions, so that ``beam_size=1`` is greedy
    decoding. A hypothesis still open after ``max_length`` tokens is closed there with the EOS
    log-probability of that step added, just as ``sequence_log_prob`` scores its output. The search
    stops once no open hypothesis can beat a row's best closed one (scores only fall as a text grows)
    or after ``max_length + 1`` steps.

    Parameters
    ----------
    module : AutoencoderModule
        A module with a sequence decoder (``init_state``, ``step`` and ``reorder_state``).
    latent : torch.Tensor of shape (n, latent_dim)
    max_length : int
        The most tokens produced per text.
    beam_size : int
        Hypotheses kept per text at every step.

    Returns
    -------
    list of numpy.ndarray
        The token ids of each text, without BOS or EOS; never less probable under the model than
        ``greedy_decode``'s text for the same latent vector.
    """
    check_latent(latent)
    check_int("max_length", max_length, minimum=1)
    check_int("beam_size", beam_size, minimum=1)
    batch, device = latent.shape[0], latent.device
    if batch == 0:
        return []
    # A pruned search does not always contain the greedy text: after a confident first token, beam_size
    # other prefixes can outscore the greedy one and push it out, and yet end worse than greedy does
    # (a wider beam can even find a worse text). So greedy decoding runs alongside, in the last `batch`
    # rows, and wins where it ends more probable.
    beams, greedy = _Beams(batch, beam_size, max_length, device), _GreedyRows(batch, device)
    rows = torch.arange(batch, device=device)
    state = module.reorder_state(module.init_state(latent), torch.cat([rows.repeat_interleave(beam_size), rows]))
    tokens = torch.full((batch * (beam_size + 1),), BOS_ID, dtype=torch.long, device=device)
    greedy_rows = torch.arange(batch * beam_size, batch * (beam_size + 1), device=device)
    for step in range(max_length + 1):
        logits, state = module.step(tokens, state)  # (B*K + B, V)
        last = step == max_length
        log_probs = logits.float().log_softmax(dim=-1)
        if last:  # close every open hypothesis: only EOS may follow max_length tokens
            log_probs = _only_eos(log_probs)
        parent, beam_tokens = beams.advance(log_probs[:batch * beam_size].view(batch, beam_size, -1), step)
        greedy_tokens = greedy.advance(logits[batch * beam_size:], log_probs[batch * beam_size:], last=last)
        tokens = torch.cat([beam_tokens.flatten(), greedy_tokens])  # (B*K + B,)
        beam_parents = (rows[:, None] * beam_size + parent).flatten()  # (B*K,): the row each beam extends
        state = module.reorder_state(state, torch.cat([beam_parents, greedy_rows]))
        if bool((_best_open(beams, greedy) <= _best_closed(beams, greedy)).all()):
            break
    return _pick_results(beams, greedy, max_length)


def _only_eos(log_probs):
    eos_only = torch.full_like(log_probs[0], -math.inf)
    eos_only[EOS_ID] = 0.0
    return log_probs + eos_only  # (N, V): -inf everywhere but EOS


class _Beams:
    """The open hypotheses of each text and its best closed one, all as tensors on the device.

    ``scores`` (B, K) is sorted best first; ``history`` (B, K, t) holds the open hypotheses' tokens;
    ``best_score`` (B,), ``best_tokens`` (B, max_length) and ``best_length`` (B,) the best closed one,
    the only closed hypothesis worth keeping, as one text is returned per row.
    """

    def __init__(self, batch, beam_size, max_length, device):
        # Every beam starts as the same empty text; only one of them may extend, or the first step
        # would fill the beam with copies of the same hypotheses.
        self.scores = torch.full((batch, beam_size), -math.inf, device=device)
        self.scores[:, 0] = 0.0
        self.history = torch.zeros((batch, beam_size, 0), dtype=torch.long, device=device)
        self.best_score = torch.full((batch,), -math.inf, device=device)
        self.best_tokens = torch.full((batch, max_length), PAD_ID, dtype=torch.long, device=device)
        self.best_length = torch.zeros(batch, dtype=torch.long, device=device)

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
        score, pick = scores.masked_fill(~ends, -math.inf).max(dim=-1)  # (B,)
        better = score > self.best_score
        beam = parent.gather(1, pick[:, None])[:, 0]  # (B,)
        text = self.history[torch.arange(len(beam), device=beam.device), beam]  # (B, t)
        self.best_tokens[:, :step] = torch.where(better[:, None], text, self.best_tokens[:, :step])
        self.best_length = torch.where(better, step, self.best_length)
        self.best_score = torch.where(better, score, self.best_score)


class _GreedyRows:
    """Greedy decoding of each text, run in the same step calls as its beams, with its score."""

    def __init__(self, batch, device):
        self.steps = []
        self.score = torch.zeros(batch, device=device)
        self.finished = torch.zeros(batch, dtype=torch.bool, device=device)

    def advance(self, logits, log_probs, *, last):
        # The argmax of the logits themselves, as greedy_decode takes it (log_softmax may round a near tie).
        tokens = torch.full_like(self.finished, EOS_ID, dtype=torch.long) if last else logits.argmax(dim=-1)
        tokens = tokens.masked_fill(self.finished, EOS_ID)  # (B,)
        gained = log_probs.gather(1, tokens[:, None])[:, 0].masked_fill(self.finished, 0.0)
        self.score = self.score + gained
        self.steps.append(tokens)
        self.finished = self.finished | (tokens == EOS_ID)
        return tokens


def _best_closed(beams, greedy):
    return torch.where(greedy.finished, torch.maximum(beams.best_score, greedy.score), beams.best_score)  # (B,)


def _best_open(beams, greedy):
    # Scores only fall as a text grows, so an open hypothesis can at best keep its current score.
    return torch.maximum(beams.scores[:, 0], greedy.score.masked_fill(greedy.finished, -math.inf))  # (B,)


def _pick_results(beams, greedy, max_length):
    # Greedy's text wins only when finished and strictly better; a stop before greedy finished means
    # its open score was already no better than the best closed hypothesis.
    use_greedy = (greedy.finished & (greedy.score > beams.best_score)).cpu().numpy()
    greedy_ids = torch.stack(greedy.steps, dim=1).cpu().numpy()  # (B, steps)
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
