"""ONNX export of the encoder: the graph, run by onnxruntime on ids made as the docstring's recipe makes
them from a saved folder, gives ``transform``'s latent vectors for every encoder and any batching."""

import json
import pathlib
import sys

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from sktextae import TextAutoencoder, TextAutoencoderClassifier
from sktextae import export

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# Of different lengths, with an empty text and one longer than max_length (cut, as transform cuts it).
TEXTS = ["Boil the pasta in salted water for about nine minutes.", "", "The server crashed.",
         "Let the cake cool completely before you spread the icing, then serve it " * 4,
         "I pushed the fix to the repository and opened a pull request.", "a"]
MAX_LENGTH = 24
# The long text is cut on purpose: the graph must read it as transform does.
pytestmark = pytest.mark.filterwarnings("ignore::sktextae.TruncationWarning")


def session(path):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def inputs_from_folder(folder, texts, *, extra_padding=0):
    """The docstring's recipe: ids from the saved tokenizer.json, with the prefix, suffix and max_length_ of
    its config.json, padded with 0 (to ``extra_padding`` more positions than the longest row)."""
    from tokenizers import Tokenizer

    config = json.loads((folder / "config.json").read_text())
    prefix, suffix = config["vocabulary"]["encoder_prefix"], config["vocabulary"]["encoder_suffix"]
    max_length = config["fitted"]["max_length_"]
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.encode_special_tokens = True
    rows = [prefix + tokenizer.encode(text, add_special_tokens=False).ids[:max_length] + suffix for text in texts]
    input_ids = np.zeros((len(rows), max(map(len, rows)) + extra_padding), dtype=np.int64)
    for row, ids in zip(input_ids, rows):
        row[:len(ids)] = ids
    return {"input_ids": input_ids, "lengths": np.array([len(ids) for ids in rows], dtype=np.int64)}


def exported(estimator, tmp_path):
    folder = estimator.save(tmp_path / "model")
    path = estimator.export_onnx(tmp_path / "encoder.onnx")
    return folder, path


def check_matches_transform(estimator, folder, path):
    encoder, expected = session(path), estimator.transform(TEXTS)
    batches = [TEXTS, TEXTS[:1], TEXTS[1:2], TEXTS[2:5], TEXTS[::-1]]
    for texts in batches:
        for extra_padding in (0, 3):
            latent, = encoder.run(["latent"], inputs_from_folder(folder, texts, extra_padding=extra_padding))
            assert latent.dtype == np.float32 and latent.shape == (len(texts), estimator.latent_dim)
            np.testing.assert_allclose(latent, estimator.transform(texts), atol=1e-4, rtol=0)
    latent, = encoder.run(["latent"], inputs_from_folder(folder, TEXTS))
    np.testing.assert_allclose(latent, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("encoder, params", [
    ("bow", {"architecture": "bow"}),
    ("conv", {}),
    ("gru", {"variational": True}),  # the Gaussian bottleneck's mean, as transform reads it
    ("lstm", {}),
    ("transformer", {"decoder": "transformer"}),
])
def test_every_encoder_matches_transform_in_any_batch(tiny, texts, tmp_path, encoder, params):
    estimator = tiny(**{"encoder": encoder, "max_length": MAX_LENGTH, "max_epochs": 1, **params}).fit(texts)
    folder, path = exported(estimator, tmp_path)
    check_matches_transform(estimator, folder, path)


def test_the_graph_has_the_documented_inputs_and_output(tiny, texts, tmp_path):
    path = tiny(architecture="bow", max_epochs=1).fit(texts).export_onnx(str(tmp_path / "encoder.onnx"))
    assert path == tmp_path / "encoder.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    graph = model.graph
    int64, float32 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.input] == [("input_ids", int64), ("lengths", int64)]
    assert [(o.name, o.type.tensor_type.elem_type) for o in graph.output] == [("latent", float32)]
    dims = {value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            for value in [*graph.input, *graph.output]}
    batch, length = dims["input_ids"]
    assert isinstance(batch, str) and isinstance(length, str) and batch != length  # both free
    assert dims["lengths"] == [batch] and dims["latent"] == [batch, 8]


def test_a_supervised_estimator_exports_its_encoder(texts, labels, tmp_path):
    estimator = TextAutoencoderClassifier(latent_dim=8, architecture="bow", hidden_dim=16, embedding_dim=16,
                                          max_epochs=1, validation_fraction=0, patience=None, vocab_size=300,
                                          random_state=0).fit(texts, labels)
    folder, path = exported(estimator, tmp_path)
    check_matches_transform(estimator, folder, path)


def test_a_pretrained_encoder_matches_transform(corpus, tmp_path):
    pytest.importorskip("transformers")
    from test_pretrained import TINY, save_tiny_bert

    bert = save_tiny_bert(tmp_path / "bert", corpus)
    estimator = TextAutoencoder(encoder=str(bert), **{**TINY, "max_epochs": 1}).fit(list(corpus))
    folder, path = exported(estimator, tmp_path)
    check_matches_transform(estimator, folder, path)


def test_a_pretrained_encoder_the_exporter_cannot_convert_is_refused(corpus, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from test_pretrained import TINY, save_tiny_bert

    bert = save_tiny_bert(tmp_path / "bert", corpus)
    estimator = TextAutoencoder(encoder=str(bert), **{**TINY, "max_epochs": 1}).fit(list(corpus))

    def fails(*args, **kwargs):
        raise RuntimeError("an operator without translation")

    monkeypatch.setattr(export.torch.onnx, "export", fails)
    with pytest.raises(ValueError, match=r"exporting this pretrained encoder \(BertModel\) to ONNX is not "
                                         r"supported yet: .*an operator without translation"):
        estimator.export_onnx(tmp_path / "encoder.onnx")
    assert list(tmp_path.glob("*.onnx*")) == []


def test_the_file_is_replaced_whole_or_not_at_all(tiny, texts, tmp_path, monkeypatch):
    estimator = tiny(architecture="bow", max_epochs=1).fit(texts)
    path = tmp_path / "encoder.onnx"
    path.write_bytes(b"an older export")
    estimator.export_onnx(path)
    assert path.read_bytes() != b"an older export" and sorted(p.name for p in tmp_path.iterdir()) == ["encoder.onnx"]
    before = path.read_bytes()

    def interrupted(model, args, f, **options):  # Ctrl-C while torch's exporter writes the file
        pathlib.Path(f).write_bytes(b"half a graph")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        estimator.export_onnx(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["encoder.onnx"]


def test_refusals(tiny, texts, tmp_path, monkeypatch):
    with pytest.raises(NotFittedError):
        tiny().export_onnx(tmp_path / "encoder.onnx")
    estimator = tiny(architecture="bow", max_epochs=1).fit(texts)
    with pytest.raises(ValueError, match=r"opset must be an int >= 18 .* got 13"):
        estimator.export_onnx(tmp_path / "encoder.onnx", opset=13)
    with pytest.raises(ValueError, match=r"the folder .*missing.* does not exist"):
        estimator.export_onnx(tmp_path / "missing" / "encoder.onnx")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "sktextae\[onnx\]"'):
        estimator.export_onnx(tmp_path / "encoder.onnx")
    assert list(tmp_path.iterdir()) == []
