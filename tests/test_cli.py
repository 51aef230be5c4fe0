"""The ``sktextae`` command line: fit, encode, decode and score through the installed console script, on
small files; every error path exits 2 with one line on stderr and leaves no output file.

Each run of the script pays for importing torch (seconds on a busy machine), so the flows and a few
error paths run it in a subprocess, and the other error paths call ``cli.main`` in this process:
the same code, which the console script only wraps in ``sys.exit``."""

import csv
import errno
import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

import sktextae
from sktextae import cli, cli_files
from conftest import LABELS, TEXTS

TINY = ["--param", "architecture=gru", "--param", "embedding_dim=16", "--param", "hidden_dim=16",
        "--param", "latent_dim=8", "--param", "max_epochs=1", "--param", "validation_fraction=0",
        "--param", "patience=None", "--param", "vocab_size=300", "--param", "random_state=0"]


def sktextae_command():
    script = shutil.which("sktextae", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "sktextae"]


def run(*args, cwd, stdin=None):
    return subprocess.run([*sktextae_command(), *map(str, args)], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


def write_texts(folder):
    (folder / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    with open(folder / "texts.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"])
        writer.writerows([i, text, label] for i, (text, label) in enumerate(zip(TEXTS, LABELS)))
    (folder / "texts.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with the texts as .txt, .csv and .jsonl, and a model that ``sktextae fit`` saved in it."""
    folder = tmp_path_factory.mktemp("cli")
    write_texts(folder)
    result = run("fit", "texts.txt", "-o", "model", *TINY, cwd=folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # progress goes to stderr
    assert "fitting TextAutoencoder on 40 texts" in result.stderr
    return folder


def test_fit_saves_a_loadable_model(workdir):
    model = sktextae.load(workdir / "model")
    assert model.get_params()["latent_dim"] == 8 and model.get_params()["patience"] is None
    assert model.architecture == "gru"


def test_encode_writes_the_models_vectors(workdir):
    expected = sktextae.load(workdir / "model").transform(list(TEXTS))
    result = run("encode", "model", "texts.csv", "-o", "vectors.npy", cwd=workdir)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(workdir / "vectors.npy"), expected)
    result = run("encode", "model", "texts.jsonl", "-o", "vectors.csv", cwd=workdir)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(open(workdir / "vectors.csv", encoding="utf-8")))
    assert rows[0] == [f"textautoencoder{i}" for i in range(8)]
    np.testing.assert_array_equal(np.array(rows[1:], dtype=np.float64).astype(np.float32), expected)


def test_parquet_texts_in_and_vectors_out(workdir, monkeypatch, capsys):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet

    pyarrow.parquet.write_table(pyarrow.table({"id": list(range(len(TEXTS))), "body": list(TEXTS)}),
                                workdir / "texts.parquet")
    code, captured, _ = run_main(("encode", "model", "texts.parquet", "--text-column", "body", "-o", "v.parquet"),
                                 workdir, monkeypatch, capsys)
    assert code == 0, captured.err
    table = pyarrow.parquet.read_table(workdir / "v.parquet")
    assert table.column_names == [f"textautoencoder{i}" for i in range(8)]
    vectors = np.column_stack([table.column(name).to_numpy() for name in table.column_names])
    np.testing.assert_array_equal(vectors, sktextae.load(workdir / "model").transform(list(TEXTS)))


def test_decode_and_score(workdir):
    model = sktextae.load(workdir / "model")
    vectors = model.transform(list(TEXTS[:5]))
    np.save(workdir / "five.npy", vectors)
    result = run("decode", "model", "five.npy", "-o", "decoded.jsonl", cwd=workdir)
    assert result.returncode == 0, result.stderr
    decoded = [json.loads(line)["text"] for line in open(workdir / "decoded.jsonl", encoding="utf-8")]
    assert decoded == list(model.inverse_transform(vectors))
    result = run("score", "model", "texts.txt", cwd=workdir)  # to stdout, one score a line
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(np.array(result.stdout.split(), dtype=float), model.score_samples(list(TEXTS)),
                               rtol=1e-12)


def test_decode_with_candidates(workdir, monkeypatch, capsys):
    model = sktextae.load(workdir / "model")
    np.save(workdir / "three.npy", model.transform(list(TEXTS[:3])))
    code, captured, _ = run_main(("decode", "model", "three.npy", "--n-candidates", "4", "--random-state", "0",
                                  "-o", "chosen.jsonl"), workdir, monkeypatch, capsys)
    assert code == 0, captured.err
    expected = model.inverse_transform(np.load(workdir / "three.npy"), n_candidates=4, random_state=0)
    chosen = [json.loads(line)["text"] for line in open(workdir / "chosen.jsonl", encoding="utf-8")]
    assert chosen == list(expected)


def test_stdin(workdir):
    result = run("encode", "model", "-", cwd=workdir, stdin="\n".join(TEXTS[:3]) + "\n")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(result.stdout.splitlines()))
    assert len(rows) == 4 and len(rows[1]) == 8  # a header and one row per line of stdin
    np.testing.assert_array_equal(np.array(rows[1:], dtype=np.float64).astype(np.float32),
                                  sktextae.load(workdir / "model").transform(list(TEXTS[:3])))


def test_fit_a_classifier_from_csv_labels(workdir):
    result = run("fit", "texts.csv", "-o", "classifier", "--estimator", "TextAutoencoderClassifier",
                 "--label-column", "label", *TINY, cwd=workdir)
    assert result.returncode == 0, result.stderr
    classifier = sktextae.TextAutoencoderClassifier.load(workdir / "classifier")
    assert classifier.classes_.tolist() == [0, 1]


def test_help_on_each_command(workdir, capsys):
    result = run("fit", "--help", cwd=workdir)
    assert result.returncode == 0 and "usage: sktextae fit" in result.stdout and "--param" in result.stdout
    for command in ("encode", "decode", "score", "demo"):  # in this process: argparse exits after --help
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0 and "usage: sktextae " + command in capsys.readouterr().out


def test_errors_exit_2_with_one_line_in_a_subprocess(workdir):
    for args, message in ((("encode", "model", "missing.txt", "-o", "out.npy"), "missing.txt: no such file"),
                          (("fit", "texts.txt", "-o", "new-model", "--param", "latent_dimm=3"), "did you mean latent_dim"),
                          (("encode", "texts.txt", "texts.txt", "-o", "out.npy"), "no such model folder")):
        result = run(*args, cwd=workdir)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()[-1]) > 0
        assert "Traceback" not in result.stderr
    assert not (workdir / "out.npy").exists() and not (workdir / "new-model").exists()


# --------------------------------------------------------------------------------- in-process errors

def run_main(args, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    before = set(os.listdir(workdir))
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured, set(os.listdir(workdir)) - before


ERRORS = {
    "missing texts file": (("score", "model", "nothing.csv", "-o", "scores.csv"), "nothing.csv: no such file"),
    "missing column": (("encode", "model", "texts.csv", "--text-column", "body", "-o", "v.npy"), "no column 'body'"),
    "missing jsonl field": (("score", "model", "texts.jsonl", "--text-column", "txt", "-o", "s.txt"), "no column 'txt'"),
    "missing label column": (("fit", "texts.csv", "-o", "m2", "--estimator", "TextAutoencoderRegressor",
                              "--label-column", "target", *TINY), "no column 'target'"),
    "labels without a column": (("fit", "texts.csv", "-o", "m2", "--estimator", "TextAutoencoderClassifier", *TINY),
                                "--label-column"),
    "bad parameter value": (("fit", "texts.txt", "-o", "m2", *TINY, "--param", "latent_dim=-1"), "latent_dim"),
    "parameter without =": (("fit", "texts.txt", "-o", "m2", "--param", "latent_dim"), "NAME=VALUE"),
    "unknown parameter": (("fit", "texts.txt", "-o", "m2", "--param", "hiden_dim=4"), "did you mean hidden_dim"),
    "fit over a saved model": (("fit", "texts.txt", "-o", "model", *TINY), "--overwrite"),
    "unreadable model": (("encode", "broken-model", "texts.txt", "-o", "v.npy"), "config_sha256"),
    "unknown output format": (("encode", "model", "texts.txt", "-o", "v.xlsx"), "unknown vectors format"),
    "unknown input format": (("score", "model", "texts.docx", "-o", "s.txt"), "texts.docx"),
    "parquet without pyarrow": (("encode", "model", "texts.txt", "-o", "v.parquet"), "pyarrow"),
    "vectors of the wrong width": (("decode", "model", "narrow.npy", "-o", "d.txt"), "narrow.npy|latent|features"),
    "vectors not numbers": (("decode", "model", "texts.csv", "-o", "d.txt"), "numbers"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_exits_2_and_writes_nothing(case, workdir, monkeypatch, capsys):
    args, message = ERRORS[case]
    if case == "parquet without pyarrow":
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    if case == "unreadable model" and not (workdir / "broken-model").exists():
        shutil.copytree(workdir / "model", workdir / "broken-model")
        config = workdir / "broken-model" / "config.json"
        config.write_text(config.read_text().replace('"latent_dim": 8', '"latent_dim": 9'))
    if case == "unknown input format":
        (workdir / "texts.docx").write_text("x")
    if case == "vectors of the wrong width":
        np.save(workdir / "narrow.npy", np.zeros((2, 3), dtype=np.float32))
    code, captured, created = run_main(args, workdir, monkeypatch, capsys)
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert lines and lines[-1].startswith(f"sktextae {args[0]}: error: ")
    assert pytest.importorskip("re").search(message, lines[-1]), lines[-1]
    assert captured.out == ""
    assert not {name for name in created if not name.startswith(("broken-model", "texts.docx", "narrow.npy"))}


def test_param_values_are_literals_or_strings():
    params = cli._parse_params(["latent_dim=64", "architecture=gru", "patience=None", "lr=1e-3", "lowercase=True",
                                "encoder='conv'", "device=cuda:1"], sktextae.TextAutoencoder)
    assert params == dict(latent_dim=64, architecture="gru", patience=None, lr=1e-3, lowercase=True, encoder="conv",
                          device="cuda:1")


def test_text_file_formats(tmp_path):
    write_texts(tmp_path)
    for name in ("texts.txt", "texts.csv", "texts.jsonl"):
        assert cli_files.read_records(str(tmp_path / name), ["text"])["text"] == list(TEXTS)
    records = cli_files.read_records(str(tmp_path / "texts.csv"), ["text", "label"])
    assert cli_files.read_labels(records["label"], regression=False).tolist() == list(LABELS)


def test_param_values_are_never_evaluated():
    params = cli._parse_params(["architecture=__import__('os').getpid()", "encoder=[1, 2] + [3]"],
                               sktextae.TextAutoencoder)
    assert params == dict(architecture="__import__('os').getpid()", encoder="[1, 2] + [3]")  # strings, not results


# --------------------------------------------------------------------------------- outputs that are inputs

def keep_file(workdir, name, text):
    """A fresh input file of ``workdir`` holding ``text``, removed with its links by the caller's test."""
    path = workdir / name
    path.unlink(missing_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


SAME_FILE = {  # (the arguments, how the output names the input)
    "score to its texts": ("score", "model", "keep.txt", "-o", "keep.txt"),
    "score to its texts through another path": ("score", "model", "keep.txt", "-o", "../{workdir}/keep.txt"),
    "score through a symbolic link to the output": ("score", "model", "link.txt", "-o", "keep.txt"),
    "score to a hard link of its texts": ("score", "model", "keep.txt", "-o", "hard.txt"),
    "encode to its texts": ("encode", "model", "keep.csv", "-o", "keep.csv"),
    "decode to its vectors": ("decode", "model", "keep.csv", "-o", "keep.csv"),
}


@pytest.mark.parametrize("case", list(SAME_FILE))
def test_an_output_that_is_an_input_is_refused(case, workdir, monkeypatch, capsys):
    args = [arg.replace("{workdir}", workdir.name) for arg in SAME_FILE[case]]
    kept = keep_file(workdir, args[2] if args[2].startswith("keep") else "keep.txt",
                     "text,textautoencoder0\n" + "\n".join(TEXTS[:3]) + "\n")
    before = kept.read_bytes()
    links = []
    if "link.txt" in args:
        links.append(workdir / "link.txt")
        links[-1].symlink_to("keep.txt")
    if "hard.txt" in args:
        links.append(workdir / "hard.txt")
        os.link(kept, links[-1])
    try:
        code, captured, created = run_main(args, workdir, monkeypatch, capsys)
        assert code == 2 and kept.read_bytes() == before  # the input is left as it was
        assert captured.err.strip().splitlines()[-1].startswith(f"sktextae {args[0]}: error: -o ")
        assert "is the input" in captured.err and created == set()
    finally:
        for path in (*links, kept):
            path.unlink()


def test_fit_refuses_a_model_folder_that_is_or_holds_its_texts(workdir, monkeypatch, capsys):
    code, captured, created = run_main(("fit", "texts.txt", "-o", "texts.txt", "--overwrite", *TINY), workdir,
                                       monkeypatch, capsys)
    assert code == 2 and "is the texts file texts.txt" in captured.err and "fitting" not in captured.err
    assert (workdir / "texts.txt").read_text(encoding="utf-8") == "\n".join(TEXTS) + "\n"
    saved = workdir / "saved-with-texts"  # a saved model with the texts kept inside it
    shutil.copytree(workdir / "model", saved)
    (saved / "texts.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    try:
        code, captured, _ = run_main(("fit", f"{saved.name}/texts.txt", "-o", saved.name, "--overwrite", *TINY),
                                     workdir, monkeypatch, capsys)
        assert code == 2 and "a folder that holds it" in captured.err
        assert (saved / "texts.txt").is_file()  # replacing the folder would have deleted them
    finally:
        shutil.rmtree(saved)


def test_outputs_that_a_file_moved_into_place_would_replace_are_refused(workdir, monkeypatch, capsys):
    pipe, link = workdir / "pipe.txt", workdir / "elsewhere.txt"
    os.mkfifo(pipe)
    link.symlink_to("scores-target.txt")
    try:
        for output, message in ((pipe, "not a regular file"), (link, "symbolic link")):
            code, captured, _ = run_main(("score", "model", "texts.txt", "-o", output.name), workdir, monkeypatch,
                                         capsys)
            assert code == 2 and message in captured.err
        assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and link.is_symlink()  # both left as they were
        assert not (workdir / "scores-target.txt").exists()
    finally:
        pipe.unlink()
        link.unlink()


# --------------------------------------------------------------------------------- failures to write

class FullDisk:
    """A file handle whose ``write`` writes half of what it is given, then fails as on a full disk."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.handle.close()


def full_disk(monkeypatch):
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda descriptor, mode="r", *args, **kwargs: FullDisk(
        real_fdopen(descriptor, mode, *args, **kwargs)) if "w" in mode else real_fdopen(descriptor, mode, *args, **kwargs))


def read_only_file_system(monkeypatch):
    def refuse(source, target, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(target))

    monkeypatch.setattr(os, "replace", refuse)


@pytest.mark.parametrize("output, failure", [("full.txt", full_disk), ("full.npy", full_disk),
                                             ("scores.csv", read_only_file_system)])
def test_a_failure_to_write_exits_2_and_leaves_nothing(output, failure, workdir, monkeypatch, capsys):
    command = "encode" if output.endswith(".npy") else "score"
    old = workdir / "scores.csv"
    old.write_text("the previous scores\n", encoding="utf-8")
    try:
        failure(monkeypatch)
        code, captured, created = run_main((command, "model", "texts.txt", "-o", output), workdir, monkeypatch, capsys)
        monkeypatch.undo()
        assert code == 2
        line = captured.err.strip().splitlines()[-1]
        assert line.startswith(f"sktextae {command}: error: -o {output}: cannot write it (")
        assert os.strerror(errno.EROFS if output == "scores.csv" else errno.ENOSPC) in line
        assert created == set()  # no partial file and no temporary file
        assert old.read_text(encoding="utf-8") == "the previous scores\n"
    finally:
        old.unlink()


def test_fit_on_a_full_disk_exits_2_and_leaves_nothing(workdir, monkeypatch, capsys):
    def full(source, target, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    code, captured, created = run_main(("fit", "texts.txt", "-o", "m-full", *TINY), workdir, monkeypatch, capsys)
    assert code == 2 and created == set()
    assert captured.err.strip().splitlines()[-1] == ("sktextae fit: error: -o m-full: cannot save the model "
                                                      f"({os.strerror(errno.ENOSPC)}).")


def test_a_full_standard_output_exits_2_with_one_line(workdir):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        result = subprocess.run([*sktextae_command(), "score", "model", "texts.txt"], cwd=workdir, stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=600,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("sktextae score: error: standard output: cannot write")
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr


# --------------------------------------------------------------------------------- modes of the outputs

def test_outputs_get_the_mode_of_a_plain_open(workdir, monkeypatch, capsys):
    umask = os.umask(0o022)
    try:
        for name, mode in (("new.txt", None), ("public.txt", 0o644), ("private.txt", 0o600)):
            path = workdir / name
            if mode is not None:  # a file that the output replaces keeps its mode, as open("w") keeps it
                path.write_text("old\n")
                os.chmod(path, mode)
            code, captured, _ = run_main(("score", "model", "texts.txt", "-o", name), workdir, monkeypatch, capsys)
            assert code == 0, captured.err
            assert oct(os.stat(path).st_mode & 0o777) == oct(mode or 0o644)  # a new file: 0o666 less the umask
            assert len(path.read_text().split()) == len(TEXTS)
            path.unlink()
    finally:
        os.umask(umask)


# --------------------------------------------------------------------------------- devices and model files

@pytest.mark.parametrize("device", ["mps", "meta", "nonsense", "cuda:99"])
def test_a_device_sktextae_cannot_use_exits_2_naming_the_device(device, workdir, monkeypatch, capsys):
    code, captured, created = run_main(("encode", "model", "texts.txt", "--device", device, "-o", "v.npy"), workdir,
                                       monkeypatch, capsys)
    assert code == 2 and created == set()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sktextae encode: error: --device: ")
    assert f"device={device!r}" in lines[0] and "config" not in lines[0]


def test_a_model_file_error_while_loading_is_one_line(workdir, monkeypatch, capsys):
    def damaged(path, **kwargs):
        raise sktextae.ModelFileError(f"{path}/config.json: the field\n'format_version'   is missing.")

    monkeypatch.setattr(sktextae, "load", damaged)
    code, captured, created = run_main(("score", "model", "texts.txt", "-o", "s.txt"), workdir, monkeypatch, capsys)
    assert code == 2 and created == set()
    assert captured.err.strip().splitlines() == [
        "sktextae score: error: model/config.json: the field 'format_version' is missing."]


def test_decoding_a_bag_of_words_model_says_it_writes_bags(workdir, tmp_path, monkeypatch, capsys):
    model = sktextae.TextAutoencoder(latent_dim=8, hidden_dim=16, max_epochs=1, validation_fraction=0, patience=None,
                                     vocab_size=300, random_state=0).fit(list(TEXTS))  # architecture="bow"
    model.save(tmp_path / "bag")
    np.save(tmp_path / "z.npy", model.transform(list(TEXTS[:2])))
    code, captured, _ = run_main(("decode", "bag", "z.npy", "-o", "bags.txt"), tmp_path, monkeypatch, capsys)
    assert code == 0, captured.err
    assert "bag of words" in captured.err and "no word order" in captured.err
    np.save(workdir / "two.npy", sktextae.load(workdir / "model").transform(list(TEXTS[:2])))
    code, captured, _ = run_main(("decode", "model", "two.npy", "-o", "texts.txt"), workdir, monkeypatch, capsys)
    assert code == 0 and "bag of words" not in captured.err  # a sequence decoder writes texts
