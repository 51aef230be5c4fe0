"""Sphinx configuration of the sktextae documentation site.

Build it from the repository root (the doc tools: ``pip install -e ".[docs]"``)::

    OMP_NUM_THREADS=1 python -m sphinx -W --keep-going -b html docs docs/_build/html

``-D plot_gallery=0`` skips running the gallery's examples (they are still rendered, without
output). The docstrings' Examples sections run as doctests under pytest::

    python -m pytest --doctest-modules sktextae

Nothing here reaches the network: no intersphinx inventories are fetched, and the executed examples
read their texts from this Python's own standard library (``sktextae.datasets``).
"""

import re

import sktextae

project = "sktextae"
author = "the sktextae developers"
copyright = "the sktextae developers"
version = release = sktextae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build"]
# ``code`` in a docstring is code, not a cross-reference to look up.
default_role = "literal"

# -- autodoc, autosummary, numpydoc ---------------------------------------------------------------

autosummary_generate = True
autodoc_default_options = {"member-order": "groupwise"}
# The signature shows the parameters; their types and meanings are in the numpydoc tables.
autodoc_typehints = "none"
# The class pages list their methods themselves (_templates/class.rst), in full.
numpydoc_show_class_members = False
numpydoc_attributes_as_param_list = True

# The class pages document the methods inherited from scikit-learn too (get_params, set_output,
# score, ...), but not its metadata-routing methods (set_inverse_transform_request and the like,
# which scikit-learn adds to each class), that these estimators take no part in.
_METADATA_ROUTING = re.compile(r"get_metadata_routing|set_\w+_request")


def _skip_metadata_routing(app, what, name, obj, skip, options):
    return True if _METADATA_ROUTING.fullmatch(name) else None


# scikit-learn's docstrings cross-reference its own site (":ref:`accuracy <accuracy_score>`"), which
# this offline build cannot resolve: a titled reference keeps its title as plain text, and a
# paragraph that points to a page by its label alone is left out.
_TITLED_REFERENCE = re.compile(r":(?:ref|term):`([^`<]+?)\s*<[^`>]+>`")  # :ref:`title <label>`: the title
_TERM = re.compile(r":term:`([^`]+)`")  # :term:`word`: the word
_LABEL_REFERENCE = re.compile(r":ref:`[^`]+`")  # :ref:`label`: no title to keep


def _plain_sklearn_references(app, what, name, obj, options, lines):
    if not (getattr(obj, "__module__", None) or "").startswith("sklearn."):
        return
    paragraphs = []
    for paragraph in "\n".join(lines).split("\n\n"):
        paragraph = _TERM.sub(r"\1", _TITLED_REFERENCE.sub(r"\1", paragraph))
        if not _LABEL_REFERENCE.search(paragraph):
            paragraphs.append(paragraph)
    lines[:] = "\n\n".join(paragraphs).split("\n")


# -- MyST (the Markdown pages: the user guide and the design notes) ------------------------------

# GitHub-style anchors on headings down to ###, so that links such as guide.md#pretrained-encoders
# work on the site as they do on GitHub.
myst_heading_anchors = 3

# guide.md and design.md are written for GitHub, where a link such as ../README.md or
# ../benchmarks/README.md opens the file in the repository. On the site, a link to something the site
# has goes to its page, and a link to a repository file the site does not have becomes plain text
# (the file's name stays). The .md files themselves are not changed.
_SITE_PAGES = {"../README.md": "index.rst", "../examples/": "auto_examples/index.rst",
               "../examples": "auto_examples/index.rst"}
_RELATIVE_LINK = re.compile(r"\[([^\]]+)\]\((\.\./[^)#\s]*)(#[^)\s]*)?\)")
# A code fence without a language (design.md's diagram of the layers) is shown as it is, not
# highlighted as Python as Sphinx would by default.
_NO_HIGHLIGHT = "```{highlight} none\n```\n\n"


def _markdown_for_the_site(app, docname, source):
    if app.env.doc2path(docname).suffix != ".md":
        return

    def replace(match):
        text, target, anchor = match.group(1), match.group(2), match.group(3) or ""
        if target in _SITE_PAGES:
            return f"[{text}]({_SITE_PAGES[target]}{anchor})"
        return text

    source[0] = _NO_HIGHLIGHT + _RELATIVE_LINK.sub(replace, source[0])


# -- sphinx-gallery ------------------------------------------------------------------------------

# Only the examples named plot_*.py, and novelty_detection.py, run at build time: each takes well
# under a minute on 2 CPU cores, needs no download and reads its texts from this Python's standard
# library. The others (generate.py, pretrain_finetune.py: a minute or more of training) are
# rendered with their code but not run.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"[\\/](plot_\w+|novelty_detection)\.py$",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("sktextae",),
    # An executed example that raises fails the build, after the other examples have run.
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
}

# -- HTML ----------------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sktextae {release}"
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
# The pages without subpages need no left sidebar: their text gets the width.
html_sidebars = {"index": [], "guide": [], "design": []}


def setup(app):
    app.connect("source-read", _markdown_for_the_site)
    # Before numpydoc (priority 500) turns the docstring into reST.
    app.connect("autodoc-process-docstring", _plain_sklearn_references, priority=400)
    app.connect("autodoc-skip-member", _skip_metadata_routing)
