"""``sktextae demo --plots DIR``: the two PNGs it writes, what it refuses before training, and its
message without matplotlib."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import LABELS, TEXTS, tiny_autoencoder

from sktextae import cli, demo

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import imread  # noqa: E402

SMALL_DEMO = ["demo", "--max-texts", "300", "--max-epochs", "1", "--latent-dim", "8"]


def run_python(code, *args):
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(__file__), env={**os.environ, "OMP_NUM_THREADS": "1"})


def partials(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".partial"))


@pytest.fixture(scope="module")
def model():
    """A tiny model trained one epoch, as the small demo's is."""
    return tiny_autoencoder(max_epochs=1).fit(list(TEXTS))


def foreign_png(path):
    """A real PNG, written by matplotlib but not by the demo."""
    figure = Figure(figsize=(2, 2))
    figure.subplots().plot([0, 1], [1, 0])
    figure.savefig(path, format="png")
    return path.read_bytes()


# ------------------------------------------------------------------------------------------ the demo's plots

# The user's own backend (svg, set before the demo) must survive the demo, and pyplot must hold no figure.
DEMO_WITH_PLOTS = """
import sys
import matplotlib
matplotlib.use("svg")
from sktextae.cli import main
code = main(sys.argv[1:])
import matplotlib.pyplot as plt
print(code, matplotlib.get_backend(), plt.get_fignums())
"""


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    """The small demo run once with --plots into a folder whose parents do not exist yet."""
    folder = tmp_path_factory.mktemp("demo") / "new" / "plots"
    done = run_python(DEMO_WITH_PLOTS, *SMALL_DEMO, "--plots", folder)
    assert done.returncode == 0, done.stderr
    return folder, done.stdout


def test_the_demo_writes_two_pngs_and_prints_their_paths(small_demo):
    folder, stdout = small_demo
    assert sorted(path.name for path in folder.iterdir()) == ["history.png", "latent_map.png"]  # no temporary file
    for name in demo.PLOT_FILES:
        assert str(folder / name) in stdout
        image = imread(folder / name)  # (height, width, RGBA) floats in [0, 1]
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
        assert image[..., :3].std() > 0.01  # something is drawn on the white figure
        assert demo._written_by_demo(folder / name)
    assert stdout.splitlines()[-1] == "0 svg []"  # the user's backend kept, no figure left open in pyplot


def test_a_second_demo_may_replace_its_own_plots(small_demo):
    folder, _ = small_demo
    assert demo.prepare_plot_folder(folder) == folder  # no --overwrite-plots needed for the demo's own PNGs


def test_the_plots_are_reproducible(model, tmp_path):
    labels = ["cooking" if label == 0 else "computing" for label in LABELS]
    first = demo.write_plots(model, TEXTS, labels, tmp_path, random_state=0)
    contents = [path.read_bytes() for path in first]
    (tmp_path / "again").mkdir()
    second = demo.write_plots(model, TEXTS, labels, tmp_path / "again", random_state=0)
    assert [path.read_bytes() for path in second] == contents


# ------------------------------------------------------------------------------------------ refusals

def refused(args, capsys):
    """Run the demo's command line; assert it stopped with one line before the demo printed anything."""
    assert cli.main(SMALL_DEMO + args) == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing trained: the demo's first line ("Corpus: ...") was never printed
    assert err.startswith("sktextae demo: error: ") and len(err.strip().splitlines()) == 1
    return err


@pytest.mark.parametrize("overwrite", [[], ["--overwrite-plots"]], ids=["", "overwrite"])
def test_a_file_at_dir_is_never_replaced(tmp_path, capsys, overwrite):
    target = tmp_path / "plots"
    target.write_text("my notes")
    assert "is a file, not a folder" in refused(["--plots", str(target)] + overwrite, capsys)
    assert target.read_text() == "my notes"
    err = refused(["--plots", str(target / "inside")], capsys)  # a file where a parent folder would go
    assert f"cannot create the folder: {target} is a file" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plots"]


@pytest.mark.parametrize("name", demo.PLOT_FILES)
def test_a_png_the_demo_did_not_write_is_refused_without_the_flag(tmp_path, capsys, name):
    before = foreign_png(tmp_path / name)
    err = refused(["--plots", str(tmp_path)], capsys)
    assert f"{tmp_path / name} exists and was not written by sktextae demo: pass --overwrite-plots" in err
    assert (tmp_path / name).read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [name]  # nothing else written


def test_both_pngs_named_in_one_line(tmp_path, capsys):
    (tmp_path / "history.png").write_bytes(b"not a png")
    (tmp_path / "latent_map.png").write_bytes(b"")
    err = refused(["--plots", str(tmp_path)], capsys)
    assert "history.png and " in err and "latent_map.png exist and were not written" in err


def test_the_flag_replaces_foreign_pngs(model, tmp_path):
    for name in demo.PLOT_FILES:
        foreign_png(tmp_path / name)
    with pytest.raises(ValueError, match="--overwrite-plots"):
        demo.prepare_plot_folder(tmp_path)
    assert demo.prepare_plot_folder(tmp_path, overwrite=True) == tmp_path
    paths = demo.write_plots(model, TEXTS, LABELS, tmp_path, random_state=0)
    assert [path.name for path in paths] == list(demo.PLOT_FILES)
    assert all(demo._written_by_demo(path) for path in paths)


def test_links_and_folders_in_place_of_a_png_are_never_replaced(tmp_path):
    (tmp_path / "history.png").mkdir()
    with pytest.raises(ValueError, match="history.png is not a regular file"):
        demo.prepare_plot_folder(tmp_path, overwrite=True)
    (tmp_path / "history.png").rmdir()
    (tmp_path / "latent_map.png").symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(ValueError, match="latent_map.png is a symbolic link"):
        demo.prepare_plot_folder(tmp_path, overwrite=True)


def test_overwrite_plots_needs_plots(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", "--overwrite-plots"])
    assert exit_.value.code == 2
    assert "--overwrite-plots" in capsys.readouterr().err


def test_only_pngs_the_demo_marked_count_as_its_own(model, tmp_path):
    [history, _] = demo.write_plots(model, TEXTS, LABELS, tmp_path, random_state=0)
    content = history.read_bytes()
    cases = {"demo.png": content, "foreign.png": None, "garbage.png": b"\x89PNG\r\n\x1a\n" + b"\xff" * 40,
             "cut.png": content[:30], "empty.png": b""}
    for name, data in cases.items():
        if data is None:
            foreign_png(tmp_path / name)
        else:
            (tmp_path / name).write_bytes(data)
    assert {name: demo._written_by_demo(tmp_path / name) for name in cases} == {
        "demo.png": True, "foreign.png": False, "garbage.png": False, "cut.png": False, "empty.png": False}


def test_an_interrupted_write_leaves_no_half_written_png(model, tmp_path, monkeypatch):
    old = foreign_png(tmp_path / "history.png")

    def interrupted(self, handle, **kwargs):
        handle.write(b"\x89PNG\r\n\x1a\n half")  # Ctrl-C in the middle of writing the file
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo.write_plots(model, TEXTS, LABELS, tmp_path, random_state=0)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["history.png"] and partials(tmp_path) == []
    assert (tmp_path / "history.png").read_bytes() == old


# ------------------------------------------------------------------------------------------ without matplotlib

def test_without_matplotlib_plots_fail_before_training_naming_the_extra(tmp_path):
    # sys.modules[name] = None makes `import name` raise ImportError, as if it were not installed.
    done = run_python("import sys\n"
                      "sys.modules['matplotlib'] = None\n"
                      "from sktextae.cli import main\n"
                      "sys.exit(main(sys.argv[1:]))\n", *SMALL_DEMO, "--plots", tmp_path / "plots")
    assert done.returncode == 2
    assert done.stdout == ""  # nothing trained
    assert done.stderr.strip().splitlines() == [
        'sktextae demo: error: --plots needs matplotlib, an optional dependency of sktextae: '
        'pip install "sktextae[plot]"']
    assert not (tmp_path / "plots").exists()



# ------------------------------------------------------------------------------------------ what the plots show

def test_one_epoch_gets_an_integer_tick(model):
    from sktextae.plotting import plot_history

    figure = Figure()
    [ax] = plot_history(model, ax=figure.subplots())
    figure.draw_without_rendering()
    ticks = [tick for tick in ax.get_xticks() if ax.get_xlim()[0] <= tick <= ax.get_xlim()[1]]
    assert ticks == [1]


def test_many_modules_get_distinct_styles_and_a_legend_beside_the_map(model):
    from sktextae.plotting import plot_latent_map

    modules = [f"module{i:02d}" for i in range(len(TEXTS))]  # 40 labels, more than tab20's colours
    figure = Figure(figsize=(12, 7), layout="constrained")
    ax = plot_latent_map(model, TEXTS, modules, annotate=0, ax=figure.subplots())
    styles = {(tuple(np.round(collection.get_facecolor()[0], 3)), collection.get_paths()[0].vertices.tobytes())
              for collection in ax.collections}
    assert len(styles) == len(TEXTS)  # no two modules drawn alike
    # ... by a qualitative palette (a sequential one gives neighbouring modules near-identical colours)
    tab20 = {tuple(np.round(colour, 3)) for colour in matplotlib.colormaps["tab20"].colors}
    assert {colour[:3] for colour, _ in styles} == tab20
    figure.draw_without_rendering()
    renderer = figure._get_renderer()
    legend, axes = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.x0 >= axes.x1  # beside the map, hiding no point
    figure = Figure(layout="constrained")
    few = plot_latent_map(model, TEXTS, LABELS, annotate=0, ax=figure.subplots())  # two labels
    figure.draw_without_rendering()
    legend, axes = few.get_legend().get_window_extent(renderer), few.get_window_extent(renderer)
    assert axes.x0 <= legend.x0 and legend.x1 <= axes.x1  # inside
