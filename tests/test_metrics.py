import numpy as np
import pytest

from sktextae.metrics import bag_token_accuracy, exact_match_rate, token_accuracy


def test_token_accuracy_counts_positions_over_reference_length():
    refs = [np.array([5, 6, 7, 8]), np.array([9, 10])]
    hyps = [np.array([5, 6, 0]), np.array([9, 10, 11])]
    assert token_accuracy(refs, hyps) == pytest.approx(4 / 6)  # 2 of 4 (short), 2 of 2 (extra ignored)


def test_bag_token_accuracy_ignores_order_but_counts_repeats():
    refs = [[5, 5, 6, 7]]
    assert bag_token_accuracy(refs, [[7, 6, 5, 9]]) == pytest.approx(3 / 4)
    assert bag_token_accuracy(refs, [[7, 6, 5, 5]]) == 1.0
    assert token_accuracy(refs, [[7, 6, 5, 5]]) == 0.0


def test_exact_match_rate_on_strings_and_ids():
    assert exact_match_rate(["a b", "c"], ["a b", "c d"]) == 0.5
    assert exact_match_rate([[1, 2], [3]], [np.array([1, 2]), [3, 4]]) == 0.5


def test_empty_inputs_and_mismatched_lengths():
    assert token_accuracy([[]], [[4]]) == 1.0
    with pytest.raises(ValueError, match=r"references \(2\) and hypotheses \(1\)"):
        token_accuracy([[1], [2]], [[1]])
