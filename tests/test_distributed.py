"""On Dask and Ray clusters of this machine (2 worker processes): a search under joblib's Dask and Ray
backends finds what the serial one finds, each trial runs the one torch thread its worker allows, a
fitted model pickles without its training data, and ``sktextae.parallel`` encodes partitions with the
model sent to each worker once. The engines are optional extras: their tests skip without them."""

import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

from conftest import TEXTS, TINY_PARAMS
from sktextae import TextAutoencoder
from sktextae.batching import TokenDataset
from sktextae.parallel import RayEncoder, encode_dask

GRID = {"latent_dim": [4, 8], "lr": [1e-3, 3e-3]}


class RecordThreads(Callback):
    """Records, every epoch, the intra-op threads torch runs the fit with, in the process that fits."""

    def on_epoch_end(self, net, **kwargs):
        net.history.record("torch_threads", torch.get_num_threads())


def fit_threads(estimator, X, y=None):
    """A scorer that reports the threads of the fit it scores (``RecordThreads``)."""
    return estimator.net_.history[-1, "torch_threads"]


class CountingAutoencoder(TextAutoencoder):
    """Appends the unpickling process's id to ``unpickle_log`` (a file) each time it is unpickled."""

    def __setstate__(self, state):
        super().__setstate__(state)
        if getattr(self, "unpickle_log", None) is not None:
            with open(self.unpickle_log, "a") as log:
                log.write(f"{os.getpid()}\n")


def search(backend=None):
    grid_search = GridSearchCV(TextAutoencoder(**TINY_PARAMS, callbacks=[RecordThreads()]), GRID, cv=2, n_jobs=-1,
                               scoring={"score": lambda estimator, X, y=None: estimator.score(X),
                                        "threads": fit_threads},
                               refit="score", error_score="raise")
    if backend is None:
        return grid_search.fit(list(TEXTS))
    import joblib

    with joblib.parallel_backend(backend):
        return grid_search.fit(list(TEXTS))


@pytest.fixture(scope="module")
def serial_search():
    return search()


@pytest.fixture(scope="module")
def fitted():
    model = CountingAutoencoder(**TINY_PARAMS)
    return model.fit(list(TEXTS))


def unpickling_pids(model):
    with open(model.unpickle_log) as log:
        return log.read().split()


@pytest.fixture
def counted(fitted, tmp_path):
    """The fitted model, logging its unpickling to a fresh file."""
    fitted.unpickle_log = str(tmp_path / "unpickled.log")
    open(fitted.unpickle_log, "w").close()
    return fitted


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    # What a cluster of two single-threaded machines gets; the worker processes inherit sys.path, so they
    # import this module (its callback, scorer and model class) as the test process does.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    register_ray()
    # Ray's workers do not inherit sys.path: this module's classes reach them through PYTHONPATH.
    tests = os.path.dirname(__file__)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}})
    yield ray
    ray.shutdown()


# --------------------------------------------------------------------------- search


@pytest.mark.slow  # starts a cluster of 2 worker processes
@pytest.mark.parametrize("engine", ["dask", "ray"])
def test_search_on_a_cluster_equals_the_serial_search(engine, serial_search, request):
    request.getfixturevalue("dask_client" if engine == "dask" else "ray_session")
    distributed_search = search(engine)
    assert distributed_search.best_params_ == serial_search.best_params_
    np.testing.assert_allclose(distributed_search.cv_results_["mean_test_score"],
                               serial_search.cv_results_["mean_test_score"], rtol=1e-6)
    # Each trial ran on one torch thread, as many as its worker has cores (2 trials on 2 cores: 2 threads).
    np.testing.assert_array_equal(distributed_search.cv_results_["mean_test_threads"], 1)


@pytest.mark.slow  # starts a cluster of 2 worker processes
def test_workers_limit_torch_to_their_threads(dask_client):
    # Dask's nanny sets OMP_NUM_THREADS=1 before a worker starts, and torch reads it: a worker thread runs
    # one torch thread, so n_workers * threads_per_worker trials use as many cores.
    threads = dask_client.run(lambda: (os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()))
    assert set(threads.values()) == {("1", 1)}


# --------------------------------------------------------------------------- pickling


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    pytest.importorskip("transformers")
    from test_pretrained import save_tiny_bert

    return str(save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), TEXTS))


class _RecordingPickler(pickle.Pickler):
    """Notes the type of every object pickled (beyond plain containers, numbers and strings)."""

    def __init__(self, file):
        super().__init__(file)
        self.types = set()

    def reducer_override(self, obj):
        self.types.add(type(obj))
        return NotImplemented


def test_pickle_of_a_frozen_encoder_model_does_not_grow_with_its_training_texts(bert, tmp_path):
    params = dict(latent_dim=8, decoder="gru", hidden_dim=16, max_epochs=1, batch_size=16, validation_fraction=0.25,
                  patience=None, random_state=0, max_length=32, freeze_encoder=True)
    sizes = []
    for copies in (1, 8):
        model = TextAutoencoder(encoder=bert, **params).fit(list(TEXTS) * copies)
        with open(tmp_path / "model.pkl", "wb") as file:
            pickler = _RecordingPickler(file)
            pickler.dump(model)
        sizes.append((tmp_path / "model.pkl").stat().st_size)
        assert TokenDataset not in pickler.types  # neither the held-out texts nor the encoder's outputs for them
        assert all(tensor.device.type == "cpu" for tensor in model.net_.module_.state_dict().values())
    assert model.net_.train_split is not None  # the model in memory keeps its held-out split
    # 7 * 40 more texts, a quarter of them held out: their frozen encoder outputs alone (width 32, float32)
    # would add 70 * 32 * 4 bytes. What grows is skorch's history, a few numbers per training batch.
    assert sizes[1] - sizes[0] < 70 * 32 * 4 / 4


# --------------------------------------------------------------------------- encoding


@pytest.mark.slow  # starts a cluster of 2 worker processes
def test_encode_dask_bag_equals_transform_with_one_copy_per_worker(dask_client, counted):
    import dask.bag

    texts = dask.bag.from_sequence(list(TEXTS), npartitions=8)
    latent = encode_dask(counted, texts).compute()
    np.testing.assert_array_equal(latent, counted.transform(list(TEXTS)))
    pids = unpickling_pids(counted)
    assert len(pids) == len(set(pids)) <= 2  # once per worker at most, not once for each of the 8 partitions
    assert str(os.getpid()) not in pids  # nor here, where hashing it for a key would have


@pytest.mark.slow  # starts a cluster of 2 worker processes
def test_encode_dask_series_keeps_the_index(dask_client, counted):
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    frame = pd.DataFrame({"text": list(TEXTS)}, index=np.arange(100, 100 + len(TEXTS)))
    latent = encode_dask(counted, dd.from_pandas(frame, npartitions=4)["text"]).compute()
    assert list(latent.columns) == list(counted.get_feature_names_out())
    np.testing.assert_array_equal(latent.index, frame.index)
    np.testing.assert_array_equal(latent.to_numpy(), counted.transform(list(TEXTS)))
    assert len(unpickling_pids(counted)) <= 2


def test_encode_dask_refuses_other_collections(fitted, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(distributed, "default_client", lambda: object())  # the type is checked before any use
    with pytest.raises(TypeError, match="dask.bag.Bag or a dask.dataframe.Series"):
        encode_dask(fitted, list(TEXTS))


def test_encode_dask_without_a_client_says_how_to_start_one(fitted, monkeypatch):
    distributed = pytest.importorskip("distributed")

    def no_client():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "default_client", no_client)
    import dask.bag

    with pytest.raises(ValueError, match="Client"):
        encode_dask(fitted, dask.bag.from_sequence(list(TEXTS)))


def test_encode_dask_without_dask_names_the_extra(fitted, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_distributed(name, *args, **kwargs):
        if name.split(".")[0] in ("dask", "distributed"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_distributed)
    with pytest.raises(ImportError, match=r'pip install "sktextae\[dask\]"'):
        encode_dask(fitted, None)


def encode_on_ray(ray, source):
    """Each text's latent vector from ``map_batches(RayEncoder)`` on 2 actors, 8 blocks of 5 texts."""
    rows = [{"id": i, "text": text} for i, text in enumerate(TEXTS)]
    dataset = ray.data.from_items(rows, override_num_blocks=8)
    encoded = dataset.map_batches(RayEncoder, fn_constructor_args=(source,), concurrency=2, batch_size=5)
    out = sorted(encoded.take_all(), key=lambda row: row["id"])
    assert [row["text"] for row in out] == list(TEXTS)
    return np.stack([row["latent"] for row in out])


@pytest.mark.slow  # starts a cluster of 2 worker processes
def test_ray_map_batches_equals_transform_with_one_copy_per_actor(ray_session, counted):
    np.testing.assert_array_equal(encode_on_ray(ray_session, counted), counted.transform(list(TEXTS)))
    assert 1 <= len(unpickling_pids(counted)) <= 2  # once per actor, not once for each of the 8 batches


@pytest.mark.slow  # starts a cluster of 2 worker processes
def test_ray_map_batches_from_a_saved_folder(ray_session, tmp_path):
    model = TextAutoencoder(**TINY_PARAMS).fit(list(TEXTS))
    folder = model.save(tmp_path / "model")
    np.testing.assert_array_equal(encode_on_ray(ray_session, str(folder)), model.transform(list(TEXTS)))


def test_ray_encoder_on_dict_and_pandas_batches(fitted, tmp_path):
    pd = pytest.importorskip("pandas")
    encoder = RayEncoder(fitted, output_column="z")
    expected = fitted.transform(list(TEXTS[:3]))
    np.testing.assert_array_equal(encoder({"text": np.array(TEXTS[:3], dtype=object)})["z"], expected)
    frame = encoder(pd.DataFrame({"text": list(TEXTS[:3]), "id": [1, 2, 3]}))
    assert list(frame.columns) == ["text", "id", "z"]
    np.testing.assert_array_equal(np.stack(frame["z"]), expected)
    assert encoder({"text": np.array([], dtype=object)})["z"].shape == (0, fitted.latent_dim)
    with pytest.raises(ValueError, match="text_column='text' is not a column"):
        encoder({"sentence": np.array(TEXTS[:3], dtype=object)})
