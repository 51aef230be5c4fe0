"""Encoding texts with a fitted model on a Dask or Ray cluster, partition by partition, with the model
sent to each worker once.

A search (``GridSearchCV``) needs nothing from here: under ``joblib.parallel_backend("dask")`` or
``("ray")`` it runs on the cluster as it is (see docs/distributed.md). Dask and Ray are optional
extras, imported inside the functions that use them; ``RayEncoder`` imports neither.
"""

import os

import numpy as np
from sklearn.utils.validation import check_is_fitted

DASK_EXTRA = 'pip install "sktextae[dask]"'


def encode_dask(model, texts, *, client=None):
    """Encode a Dask collection of texts with a fitted model, one partition per task.

    The model is scattered to every worker of the client's cluster once (``client.scatter(model,
    broadcast=True, hash=False)``), and each partition's task uses the worker's copy: a worker unpickles the
    model once, however many partitions it encodes. Nothing is computed until the result is.

    Parameters
    ----------
    model : fitted TextAutoencoder, TextAutoencoderClassifier or TextAutoencoderRegressor
        Any fitted estimator of the package; its ``transform`` encodes each partition.
    texts : dask.bag.Bag of str or dask.dataframe.Series of str
        The texts, e.g. ``dask.bag.read_text(...)`` or a column ``ddf["text"]``.
    client : distributed.Client or None, default=None
        The cluster to encode on; None: the current client (the last one created).

    Returns
    -------
    latent : dask.array.Array of shape (n_texts, n_features) or dask.dataframe.DataFrame
        For a Bag, a float32 array in the Bag's order, whose chunk sizes are known once computed.
        For a Series, a DataFrame with the Series' index and divisions and one column per feature
        (``model.get_feature_names_out()``).

    Raises
    ------
    ImportError
        When Dask's distributed scheduler is not installed (``pip install "sktextae[dask]"``).
    ValueError
        When no client is given and none is running.
    TypeError
        When ``texts`` is neither a Bag nor a Series.

    Examples
    --------
    >>> from dask.distributed import Client  # doctest: +SKIP
    >>> client = Client(n_workers=2, threads_per_worker=1)  # or Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> texts = dask.bag.from_sequence(corpus, npartitions=8)  # doctest: +SKIP
    >>> Z = encode_dask(model, texts).compute()  # model.transform(corpus), up to float rounding  # doctest: +SKIP
    """
    try:
        import dask.array as da
        import dask.bag as db
        import distributed
    except ImportError as error:
        raise ImportError(f"encode_dask needs Dask and its distributed scheduler: {DASK_EXTRA}") from error
    check_is_fitted(model)
    if client is None:
        try:
            client = distributed.default_client()
        except ValueError:
            raise ValueError("encode_dask found no Dask client: start one first, Client() for a cluster on this "
                             "machine or Client('tcp://<scheduler>:8786') for a running one, or pass client=.") from None
    n_features = len(model.get_feature_names_out())
    dd = _dask_dataframe()
    if not isinstance(texts, db.Bag) and not (dd is not None and isinstance(texts, dd.Series)):
        raise TypeError(f"texts must be a dask.bag.Bag or a dask.dataframe.Series of str, got "
                        f"{type(texts).__name__}; for a DataFrame pass its text column, e.g. ddf['text'].")
    # A Future that each task resolves to its worker's copy: on a worker already, it is not sent again.
    # hash=False: a key of its own, where Dask's hashing would pickle and unpickle the model twice here.
    [shared_model] = client.scatter([model], broadcast=True, hash=False)
    if isinstance(texts, db.Bag):
        partitions = texts.map_partitions(_encode_partition, shared_model, n_features).to_delayed()
        return da.concatenate([da.from_delayed(part, shape=(np.nan, n_features), dtype=np.float32)
                               for part in partitions])
    import pandas as pd

    columns = list(model.get_feature_names_out())
    meta = pd.DataFrame(np.empty((0, n_features), dtype=np.float32), columns=columns, index=texts._meta.index)
    return texts.map_partitions(_encode_series, shared_model, columns, meta=meta)


def _dask_dataframe():
    """``dask.dataframe`` when it is importable (it needs pandas and pyarrow), else None."""
    try:
        import dask.dataframe
    except ImportError:
        return None
    return dask.dataframe


def _encode_partition(texts, model, n_features):
    """One partition's latent vectors, (n, n_features) float32; an empty partition gives no rows."""
    texts = list(texts)
    if not texts:
        return np.empty((0, n_features), dtype=np.float32)
    return np.asarray(model.transform(texts), dtype=np.float32)  # an array even under set_output("pandas")


def _encode_series(texts, model, columns):
    import pandas as pd

    return pd.DataFrame(_encode_partition(texts, model, len(columns)), index=texts.index, columns=columns)


class RayEncoder:
    """Encode batches of texts with a fitted model: the callable class for Ray Data's ``map_batches``.

    Ray builds one per actor, so the model is loaded (from a folder) or unpickled (an object) once per
    actor, and every batch the actor gets reuses it::

        ds = ray.data.read_parquet("texts.parquet")
        ds = ds.map_batches(RayEncoder, fn_constructor_args=("model-folder",), concurrency=2,
                            batch_size=4096)

    Each call batches its texts by length (see ``transform``): thousands of texts per call pad less
    than a few hundred of mixed lengths.

    Each batch keeps its columns and gains ``output_column``: a (batch_size, n_features) float32
    tensor column for Ray's default ``batch_format="numpy"`` (a dict of arrays), or a column of 1-D
    arrays for ``batch_format="pandas"``. Ray itself is not imported: the class works on any such batch.

    Parameters
    ----------
    model : str, os.PathLike or fitted estimator
        A folder written by ``save`` (read with ``sktextae.load``; on a cluster, a path every node can
        read), or a fitted estimator, which Ray pickles into each actor's constructor arguments.
    text_column : str, default="text"
        The batch's column that holds the texts.
    output_column : str, default="latent"
        The column the latent vectors are written to.
    device : str, default="auto"
        Where a model read from a folder runs: ``"auto"`` takes the actor's GPU when Ray gave it one
        (``num_gpus=1`` in ``map_batches``). A model passed as an object stays where it was trained,
        or on the CPU where the actor sees no GPU.
    """

    def __init__(self, model, *, text_column="text", output_column="latent", device="auto"):
        if isinstance(model, (str, os.PathLike)):
            from . import load

            model = load(model, device=device)
        check_is_fitted(model)
        self.model, self.text_column, self.output_column = model, text_column, output_column
        self.n_features = len(model.get_feature_names_out())

    def __call__(self, batch):
        if self.text_column not in batch:
            raise ValueError(f"text_column={self.text_column!r} is not a column of the batch, whose columns are "
                             f"{list(batch.keys())}: pass RayEncoder's text_column in fn_constructor_kwargs.")
        latent = _encode_partition(batch[self.text_column], self.model, self.n_features)
        if hasattr(batch, "assign"):  # a pandas DataFrame
            return batch.assign(**{self.output_column: list(latent)})
        return {**batch, self.output_column: latent}
