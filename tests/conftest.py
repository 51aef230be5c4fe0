"""Shared fixtures: a small English corpus with two topics, its labels, and a tiny, fast estimator."""

import numpy as np
import pytest
import torch
from sklearn.utils import estimator_checks

from sktextae import TextAutoencoder

# One intra-op thread: the models here are tiny, and on a small or busy CI machine OpenMP's worker
# threads spin against each other (a 16-unit GRU step goes from about 2 ms to 0.5 s with 2 threads).
torch.set_num_threads(1)

COOKING = (
    "Preheat the oven to 200 degrees before you roast the vegetables.",
    "She added a pinch of salt and a little black pepper to the soup.",
    "Slice the onions thinly and fry them until they turn golden.",
    "My grandmother's apple pie recipe uses brown sugar and cinnamon.",
    "Whisk the eggs with milk, then pour them into the hot pan.",
    "The bread needs to rise for an hour in a warm kitchen.",
    "We grilled fresh salmon with lemon and garlic for dinner.",
    "Stir the risotto slowly and add the stock one ladle at a time.",
    "He chopped tomatoes, basil and mozzarella for a simple salad.",
    "Let the cake cool completely before you spread the icing.",
    "Boil the pasta in salted water for about nine minutes.",
    "A good curry starts with toasted cumin, coriander and ginger.",
    "The café on the corner bakes croissants every morning at six.",
    "Marinate the chicken overnight in yoghurt and spices.",
    "Don't forget to rinse the rice until the water runs clear.",
    "They served roasted potatoes with rosemary and olive oil.",
    "Melt the butter gently so that it does not burn.",
    "This soup tastes even better on the second day.",
    "Knead the dough for ten minutes until it is smooth.",
    "Serve the pancakes warm with maple syrup and berries.",
)
COMPUTING = (
    "The server crashed after the latest software update.",
    "Restart your laptop and install the security patches.",
    "Our team wrote unit tests for every function in the library.",
    "The database query took twelve seconds on the old machine.",
    "He upgraded the graphics card to train larger neural networks.",
    "Please back up your files before formatting the hard drive.",
    "The compiler reported a syntax error on line 42.",
    "We moved the web application to a cloud provider last year.",
    "A memory leak slowly filled the RAM until the program froze.",
    "She debugged the network code late into the night.",
    "The new keyboard has a shorter key travel and a USB-C port.",
    "Version 2.1 of the app fixes the login bug on Android.",
    "The script parses the log files and counts the error messages.",
    "Open the terminal and type the command to list the files.",
    "Our website went down because the certificate had expired.",
    "The algorithm sorts a million numbers in under a second.",
    "They replaced the spinning disks with fast solid state drives.",
    "Cache the results so the page loads faster next time.",
    "The router kept dropping the wireless connection every hour.",
    "I pushed the fix to the repository and opened a pull request.",
)
TEXTS = COOKING + COMPUTING
LABELS = (0,) * len(COOKING) + (1,) * len(COMPUTING)

TINY_PARAMS = dict(latent_dim=8, architecture="gru", embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2,
                   max_epochs=2, batch_size=16, validation_fraction=0, patience=None, random_state=0,
                   vocab_size=300, noise=0.0)


def tiny_autoencoder(**overrides):
    """A ``TextAutoencoder`` small enough to fit the corpus in well under a second on one CPU core."""
    return TextAutoencoder(**{**TINY_PARAMS, **overrides})


@pytest.fixture(scope="session")
def tiny():
    """The ``tiny_autoencoder`` factory: ``tiny(architecture="bow", max_epochs=1)``."""
    return tiny_autoencoder


@pytest.fixture
def fast_compile(monkeypatch):
    """``compile=True`` with torch.compile's ``aot_eager`` backend: the network is captured and run as
    a compiled graph (forward and backward), without inductor's code generation, which takes many
    seconds per model on a CPU. Yields the list of networks torch.compile wrapped."""
    compiled, real_compile = [], torch.compile

    def compile_for_tests(model, **options):
        compiled.append(model)
        return real_compile(model, **{**options, "backend": "aot_eager"})

    torch.compiler.reset()
    monkeypatch.setattr(torch, "compile", compile_for_tests)
    yield compiled
    torch.compiler.reset()


@pytest.fixture(scope="session")
def corpus():
    """``TEXTS`` as an immutable tuple, for module- and session-scoped fixtures."""
    return TEXTS


@pytest.fixture
def texts(corpus):
    """40 short English sentences: 20 about cooking, then 20 about computing (a fresh list each time)."""
    return list(corpus)


@pytest.fixture
def labels():
    """The topic of each text in ``texts``: 0 for cooking, 1 for computing."""
    return np.array(LABELS)


# scikit-learn's own checks that need no numeric data: every estimator of the package passes them.
DATA_FREE_CHECKS = [
    estimator_checks.check_estimator_cloneable,
    estimator_checks.check_no_attributes_set_in_init,
    estimator_checks.check_get_params_invariance,
    estimator_checks.check_set_params,
    estimator_checks.check_parameters_default_constructible,
    # Calls fit with numeric data and bad parameters: @_fit_context validates the parameters first.
    estimator_checks.check_param_validation,
    estimator_checks.check_estimator_repr,
    estimator_checks.check_do_not_raise_errors_in_init_or_set_params,
    estimator_checks.check_mixin_order,
    estimator_checks.check_valid_tag_types,
    estimator_checks.check_estimator_tags_renamed,
    estimator_checks.check_get_feature_names_out_error,
    # Call predict / transform with numeric data on an unfitted estimator: NotFittedError comes first.
    estimator_checks.check_estimators_unfitted,
    estimator_checks.check_transformers_unfitted,
]
