"""Sphinx configuration of the graphpool API reference site (furo theme, offline build).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (or ``bash .ci/docs``).
The Markdown pages (docs/*.md) are read by myst-parser, the API pages (docs/api*.rst) are
generated from the docstrings by autodoc + napoleon. The build fetches nothing from the
network (no intersphinx, no remote images); only a reader's browser loads MathJax, from
its CDN, to typeset the ``.. math::`` blocks.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # the package, when it is not installed

import graphpool  # noqa: E402

project = "graphpool"
author = "graphpool contributors"
copyright = "graphpool contributors, MIT license"
release = graphpool.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "results/**/*.md", "Thumbs.db", ".DS_Store"]

# autodoc + napoleon: Google-style docstrings (``Args:``, ``Returns:``, ``Example:``).
autodoc_default_options = {"member-order": "bysource", "undoc-members": False}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"  # types next to the documented Args only
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False  # nn.Module's own docstrings are not the library's
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # `Attributes:` as fields, so properties are not described twice

# MyST: GitHub-flavoured Markdown pages; headings get anchors so ``page.md#section`` links work.
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# Offline: no intersphinx; linkcheck (if someone runs it) skips external addresses.
linkcheck_ignore = [r"https?://.*"]

html_theme = "furo"
html_title = f"graphpool {release}"
html_static_path: list[str] = []
html_show_sourcelink = False


# -- Links from a page to a folder of docs/ (molecules.md links ``results/``) -----------------
# On GitHub such a link opens the folder; on the site it opens a copy of the folder with a
# generated file list (``results/index.html``), so the pages keep their GitHub links as written.
import html as _html  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

from docutils import nodes  # noqa: E402
from sphinx import addnodes  # noqa: E402
from sphinx.transforms.post_transforms import SphinxPostTransform  # noqa: E402

_DOCS = Path(__file__).resolve().parent
_LINKED_DIRS: set[str] = set()


class _FolderLinks(SphinxPostTransform):
    default_priority = 5  # before MyST resolves (and reports) its cross-references

    def run(self, **kwargs) -> None:
        for node in list(self.document.findall(addnodes.pending_xref)):
            target = node.get("reftarget", "")
            if node.get("reftype") != "myst" or not target.endswith("/"):
                continue
            base = Path(self.env.doc2path(node.get("refdoc", self.env.docname))).parent
            folder = (base / target).resolve()
            if not folder.is_dir() or _DOCS not in folder.parents:
                continue
            rel = folder.relative_to(_DOCS).as_posix()
            _LINKED_DIRS.add(rel)
            ref = nodes.reference("", "", internal=True, refuri=f"{target}index.html")
            ref += node.children
            node.replace_self(ref)


def _copy_linked_dirs(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for rel in sorted(_LINKED_DIRS):
        src, dst = _DOCS / rel, Path(app.outdir) / rel
        shutil.copytree(src, dst, dirs_exist_ok=True)
        for folder in [dst, *[p for p in dst.rglob("*") if p.is_dir()]]:
            items = sorted(folder.iterdir(), key=lambda p: (p.is_file(), p.name))
            rows = "".join(
                f'<li><a href="{_html.escape(p.name)}{"/index.html" if p.is_dir() else ""}">'
                f"{_html.escape(p.name)}{'/' if p.is_dir() else ''}</a></li>"
                for p in items if p.name != "index.html")
            title = _html.escape(folder.relative_to(app.outdir).as_posix())
            (folder / "index.html").write_text(
                f"<!doctype html><meta charset=utf-8><title>{title}</title>"
                f"<h1>{title}/</h1><ul>{rows}</ul>", encoding="utf-8")


def setup(app):
    app.add_post_transform(_FolderLinks)
    app.connect("build-finished", _copy_linked_dirs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
