"""Sphinx configuration of the bgservice documentation.

Build it with ``nox -s docs``; warnings are errors, and every cross-reference
must resolve.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bgservice_core import __version__

# The local extension that generates the error reference and optional includes.
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "bgservice"
author = "The bgservice developers"
copyright = "the bgservice developers"  # noqa: A001 - the name Sphinx reads
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx_click",
    "bgservice_docs",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
# _generated holds fragments that pages include, never pages of their own.
exclude_patterns = ["_build", "_generated", "_ext", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

nitpicky = True
# The build is offline, so no intersphinx inventory links the standard library
# or the libraries we build on; their names are shown unlinked.
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(logging|threading|collections\.abc|typing|types|enum|pathlib|os|"
        r"importlib_metadata|importlib|pluggy|click|pytest|_pytest|sqlite3|"
        r"concurrent\.futures|datetime|dataclasses)(\..*)?",
    ),
    (r"py:.*", r"(Path|Logger|Iterator|Mapping|Sequence|Callable|TracebackType)"),
]

html_theme = "alabaster"
html_title = f"bgservice {release}"
html_static_path: list[str] = []
