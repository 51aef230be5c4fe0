import numpy as np
import torch

from sktextae.decoding import bag_decode, greedy_decode
from sktextae.tokenization import BOS_ID, EOS_ID

VOCAB = 12


class ScriptedDecoder:
    """Emits a fixed script per row, whatever the latent vector: enough to test the decoding loop."""

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
