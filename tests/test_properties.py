"""Property-based tests over arbitrary input: a fitted model's transform, score and inverse_transform, and the
command line's readers of TEXTS files. Each either gives a well-formed result or fails as documented (a
ValueError or TypeError from the model; exit status 2 with one line on stderr from the command line),
never with another exception. The model is fitted once for the module, not once per example."""

import contextlib
import csv
import io
import json

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import TEXTS, tiny_autoencoder
from sktextae import cli, cli_files

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LATENT_DIM = 8

# Any text, and now and then one with a lone surrogate (U+D800-U+DFFF), which a str can hold (bytes decoded
# with errors="surrogateescape", JSON's "\ud800") but no tokenizer reads.
SURROGATE = st.characters(categories=["Cs"])
TEXT = st.one_of(st.text(max_size=30), st.tuples(st.text(max_size=10), SURROGATE, st.text(max_size=10)).map("".join))


@pytest.fixture(scope="module")
def model():
    return tiny_autoencoder(max_length=12).fit(list(TEXTS))


@pytest.fixture(scope="module")
def model_folder(model, tmp_path_factory):
    return model.save(tmp_path_factory.mktemp("properties") / "model")


def has_lone_surrogate(text):
    return any(0xD800 <= ord(character) <= 0xDFFF for character in text)


# --------------------------------------------------------------------------- the estimator


@PROPERTY_SETTINGS
@given(texts=st.lists(TEXT, min_size=1, max_size=6))
def test_transform_and_score_any_list_of_text(model, texts):
    if any(has_lone_surrogate(text) for text in texts):
        with pytest.raises(ValueError, match=r"texts\[\d+\] holds a lone surrogate .* errors='replace'"):
            model.transform(texts)
        return
    Z = model.transform(texts)
    assert Z.dtype == np.float32 and Z.shape == (len(texts), LATENT_DIM) and np.isfinite(Z).all()
    scores = model.score_samples(texts)
    assert scores.shape == (len(texts),) and np.isfinite(scores).all() and (scores <= 0).all()
    assert np.isfinite(model.score(texts))


# Not only lists of str: what a caller might pass by mistake.
ANYTHING = st.one_of(
    st.lists(st.one_of(TEXT, st.none(), st.integers(), st.floats(), st.binary(max_size=5), st.booleans()),
             max_size=4),
    TEXT, st.binary(max_size=5), st.integers(), st.none(), st.floats(),
    st.sets(TEXT, max_size=3), st.dictionaries(TEXT, st.integers(), max_size=3),
    st.lists(st.lists(TEXT, max_size=2), max_size=3),
)


@PROPERTY_SETTINGS
@given(X=ANYTHING)
def test_transform_of_anything_gives_vectors_or_a_value_or_type_error(model, X):
    try:
        Z = model.transform(X)
    except (ValueError, TypeError) as error:
        # A message that names the argument and what to pass instead, never a library's own.
        # (A lone surrogate is named by its place among the texts, as fit names it.)
        assert re.match(r"(X\b|X\[\d+\]|Iterable over raw text documents|texts\[\d+\] holds a lone surrogate)",
                        str(error)), str(error)
        return
    assert Z.shape == (len(X), LATENT_DIM) and np.isfinite(Z).all()


@PROPERTY_SETTINGS
@given(Z=hnp.arrays(np.float64, st.tuples(st.integers(0, 3), st.sampled_from([LATENT_DIM - 1, LATENT_DIM])),
                    elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))
def test_inverse_transform_of_any_matrix_gives_texts_or_a_value_error(model, Z):
    try:
        texts = model.inverse_transform(Z)
    except ValueError as error:
        assert re.search(r"\bZ\b", str(error)), str(error)  # names the argument: its shape, type or values
        return
    assert texts.shape == (len(Z),) and all(isinstance(text, str) for text in texts)
    assert Z.shape[1] == LATENT_DIM and np.isfinite(Z.astype(np.float32)).all()


# --------------------------------------------------------------------------- the command line's readers

# Lines of a .txt file: anything but the line end itself. Python's other line boundaries (form feed,
# U+2028, ...) are inside a text, as wc -l counts lines.
LINE = st.text(st.characters(codec="utf-8", exclude_characters="\n\r\ufeff"), max_size=20)


def encode_command(model_folder, source, tmp_path_factory):
    """``sktextae encode MODEL source -o vectors.npy`` in this process: (exit status, stderr)."""
    output = tmp_path_factory.mktemp("out") / "vectors.npy"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["encode", str(model_folder), str(source), "-o", str(output), "--device", "cpu"])
    return code, stderr.getvalue(), output


def assert_fails_as_documented(code, stderr):
    assert code == 2, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("sktextae encode: error: ") and len(last) > len("sktextae encode: error: ")


@PROPERTY_SETTINGS
@given(lines=st.lists(LINE, min_size=1, max_size=5), suffix=st.sampled_from([".txt", ".csv", ".jsonl"]),
       line_end=st.sampled_from(["\n", "\r\n"]))
def test_texts_written_in_each_format_are_read_back_as_written(lines, suffix, line_end, tmp_path_factory):
    file = tmp_path_factory.mktemp("texts") / f"texts{suffix}"
    if suffix == ".txt":
        file.write_bytes("".join(line + line_end for line in lines).encode("utf-8"))
    elif suffix == ".csv":
        with open(file, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator=line_end)
            writer.writerow(["text"])
            writer.writerows([line] for line in lines)
    else:  # raw U+2028 and the like inside the JSON strings, as ensure_ascii=False writes them
        file.write_text("".join(json.dumps({"text": line}, ensure_ascii=False) + line_end for line in lines),
                        encoding="utf-8", newline="")
    assert cli_files.read_records(str(file), ["text"]) == {"text": lines}


@PROPERTY_SETTINGS
@given(content=st.one_of(st.binary(max_size=60), TEXT.map(lambda text: text.encode("utf-8", "surrogatepass"))),
       suffix=st.sampled_from([".txt", ".csv", ".jsonl"]))
def test_any_bytes_in_a_texts_file_encode_or_exit_2_with_one_line(content, suffix, model_folder, tmp_path_factory):
    file = tmp_path_factory.mktemp("texts") / f"texts{suffix}"
    file.write_bytes(content)
    try:
        records = cli_files.read_records(str(file), ["text"])
    except cli.CommandError as error:
        assert "\n" not in cli._one_line(error)
    else:
        assert set(records) == {"text"} and isinstance(records["text"], list)
    code, stderr, output = encode_command(model_folder, file, tmp_path_factory)
    if code == 0:
        assert np.load(output).shape == (len(records["text"]), LATENT_DIM)
    else:
        assert_fails_as_documented(code, stderr)
        assert not output.exists()


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children,
                                                                                             max_size=3),
                           max_leaves=6)


@PROPERTY_SETTINGS
@given(records=st.lists(st.one_of(st.fixed_dictionaries({"text": JSON_VALUES}), JSON_VALUES), min_size=1, max_size=4))
def test_any_json_lines_encode_or_exit_2_with_one_line(records, model_folder, tmp_path_factory):
    file = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    file.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    code, stderr, output = encode_command(model_folder, file, tmp_path_factory)
    if code == 0:
        assert np.load(output).shape == (len(records), LATENT_DIM)
    else:
        assert_fails_as_documented(code, stderr)


@pytest.mark.parametrize("content, message", [
    ("[" * 100_000 + "]" * 100_000 + "\n", "line 1: JSON nested too deeply"),
    ('{"text": "half of a pair \\ud800"}\n', "lone surrogate"),
    (json.dumps({"text": 10**400}) + "\n", "X\\[0\\] is of type int"),
])
def test_json_lines_that_once_crashed_the_command(content, message, model_folder, tmp_path_factory):
    file = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    file.write_text(content, encoding="utf-8")
    code, stderr, _ = encode_command(model_folder, file, tmp_path_factory)
    assert_fails_as_documented(code, stderr)
    assert pytest.importorskip("re").search(message, stderr.strip().splitlines()[-1])


def test_a_txt_file_holds_one_text_per_line_end(tmp_path):
    # str.splitlines would have made four texts of these two, and the vectors would not line up with wc -l.
    (tmp_path / "texts.txt").write_bytes("page one\x0cpage two\nline\u2028separator\r\n".encode("utf-8"))
    assert cli_files.read_records(str(tmp_path / "texts.txt"), ["text"]) == {
        "text": ["page one\x0cpage two", "line\u2028separator"]}
