import collections

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sktextae.validation import check_latent, check_ordered, check_texts

TEXTS = ["first text", "", "Ωμέγα 👍🏽", "last\n"]

ORDERED_FORMS = {
    "list": list,
    "tuple": tuple,
    "deque": collections.deque,
    "generator": lambda texts: (text for text in texts),
    "iterator": iter,
    "map": lambda texts: map(str, texts),
    "array-str": np.array,
    "array-object": lambda texts: np.array(texts, dtype=object),
    "array-2d-one-column": lambda texts: np.array(texts)[:, None],
    "series": pd.Series,
    "series-string-dtype": lambda texts: pd.Series(texts, dtype="string"),
    "series-shuffled-index": lambda texts: pd.Series(texts, index=np.arange(len(texts))[::-1]),
    "dataframe-one-column": lambda texts: pd.DataFrame({"text": texts}),
}


@pytest.mark.parametrize("form", ORDERED_FORMS)
def test_ordered_forms_give_the_texts_in_order(form):
    texts = check_texts(ORDERED_FORMS[form](TEXTS))
    assert texts == TEXTS
    assert type(texts) is list and all(type(text) is str for text in texts)


def _mapping():
    return dict.fromkeys(TEXTS, 0)


SET_FIX, MAPPING_FIX = r"sorted\(X\)\.", r"sorted\(X\) or list\(X.values\(\)\)\."
UNORDERED_FORMS = [
    pytest.param(lambda: set(TEXTS), "set", SET_FIX, id="set"),
    pytest.param(lambda: frozenset(TEXTS), "frozenset", SET_FIX, id="frozenset"),
    pytest.param(_mapping, "dict", MAPPING_FIX, id="dict"),
    pytest.param(lambda: collections.OrderedDict(_mapping()), "OrderedDict", MAPPING_FIX, id="ordered-dict"),
    pytest.param(lambda: collections.Counter(TEXTS), "Counter", MAPPING_FIX, id="counter"),
    pytest.param(lambda: _mapping().keys(), "dict_keys", SET_FIX, id="dict-keys"),
    pytest.param(lambda: _mapping().values(), "dict_values", SET_FIX, id="dict-values"),
    pytest.param(lambda: _mapping().items(), "dict_items", SET_FIX, id="dict-items"),
]


@pytest.mark.parametrize("make_X, type_name, fix", UNORDERED_FORMS)
def test_unordered_collections_are_refused(make_X, type_name, fix):
    # A set of str iterates in an order salted afresh in every process (PYTHONHASHSEED).
    with pytest.raises(TypeError, match=rf"^X is a {type_name}, .*: pass a list, e.g. {fix}"):
        check_texts(make_X())


def test_set_message_says_why():
    with pytest.raises(TypeError, match="iteration order follows string hashing and changes from one Python "
                                        "process to the next"):
        check_texts({"a", "b"})
    with pytest.raises(TypeError, match="a mapping or a view of one, not a sequence of texts"):
        check_texts({"a": 1})


def test_check_ordered_names_the_argument():
    with pytest.raises(TypeError, match=r"^texts is a set, .*e.g. sorted\(texts\)\.$"):
        check_ordered({"a"}, name="texts")
    for ordered in (["a"], ("a",), iter(["a"]), np.array(["a"]), pd.Series(["a"]), "a"):
        assert check_ordered(ordered, name="texts") is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(), min_size=1))
def test_any_list_of_text_comes_back_unchanged(texts):
    assert check_texts(texts) == texts
    assert check_texts(tuple(texts)) == texts
    assert check_texts(text for text in texts) == texts


def test_check_latent_checks_the_width():
    assert check_latent([[0, 1], [2, 3]], latent_dim=2).dtype == np.float32
    with pytest.raises(ValueError, match=r"Z has 3 columns but this model's latent_dim is 2"):
        check_latent(np.zeros((1, 3)), latent_dim=2)


def test_an_int_too_large_for_a_float_is_named_as_an_int():
    with pytest.raises(TypeError, match=r"X\[1\] is of type int, but every text must be a str"):
        check_texts(["a", 10**400])  # np.isnan refuses it: "ufunc 'isnan' not supported for the input types"
