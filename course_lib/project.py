"""Where the course lives and which release this is: the one place that names the repository.

Badges, the Colab/Kaggle install cell and the README are built from these. Everything a
student opens points at the release tag ``v<version>`` of :data:`course_lib.__version__`, so
the course a student installs is the one the instructor grades with.
"""
from __future__ import annotations

from . import __version__

OWNER = "qair-course"
NAME = "qair-course"
TAG = f"v{__version__}"
REPO_URL = f"https://github.com/{OWNER}/{NAME}"
PIP_SPEC = f"qair-course @ git+{REPO_URL}@{TAG}"
# The first cell installs $QAIR_COURSE_PIP_SPEC instead of PIP_SPEC when it is set (the
# platform rehearsal points it at a wheel of the checkout); the command is otherwise the same.
PIP_SPEC_VARIABLE = "QAIR_COURSE_PIP_SPEC"
METADATA_KEY = "qair_course"   # release notebooks record {"version": __version__} under this key


def github_blob(path: str) -> str:
    """GitHub address of ``path`` (relative to the repository root) at the release tag."""
    return f"{REPO_URL}/blob/{TAG}/{path.lstrip('/')}"


def colab_url(path: str) -> str:
    """Open ``path`` (a notebook in the repository, at the release tag) in Google Colab."""
    return f"https://colab.research.google.com/github/{OWNER}/{NAME}/blob/{TAG}/{path.lstrip('/')}"


def kaggle_url(path: str) -> str:
    """Open ``path`` (a notebook in the repository, at the release tag) in a Kaggle notebook."""
    return f"https://kaggle.com/kernels/welcome?src={github_blob(path)}"


def binder_url(path: str | None = None) -> str:
    """Launch the release on mybinder.org, optionally opening ``path`` in JupyterLab."""
    url = f"https://mybinder.org/v2/gh/{OWNER}/{NAME}/{TAG}"
    return url if path is None else f"{url}?urlpath=lab/tree/{path.lstrip('/')}"


def recorded_version(notebook) -> str | None:
    """The course version a notebook's metadata records (``metadata.qair_course.version``), or None."""
    metadata = notebook.get("metadata") if isinstance(notebook, dict) else None
    course = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    version = course.get("version") if isinstance(course, dict) else None
    return version if isinstance(version, str) else None


def version_warning(notebook, installed: str = __version__) -> str | None:
    """One line for the grader when a submitted notebook was released with another course
    version than ``installed`` (or records none); None when they agree."""
    recorded = recorded_version(notebook)
    if recorded == installed:
        return None
    if recorded is None:
        return (f"this notebook records no course version (expected {installed}): it may come from another "
                "release; grades use the installed course")
    return (f"this notebook was released with course version {recorded[:40]!r}, grading uses {installed}: "
            "exercises and tests may differ")
