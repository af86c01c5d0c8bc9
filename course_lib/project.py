"""Where the course lives: the one place that names the repository.

Badges, the Colab/Kaggle install cell and the README are built from these.
"""
from __future__ import annotations

OWNER = "qair-course"
NAME = "qair-course"
BRANCH = "main"
REPO_URL = f"https://github.com/{OWNER}/{NAME}"
PIP_SPEC = f"git+{REPO_URL}@{BRANCH}"


def github_blob(path: str) -> str:
    """GitHub address of ``path`` (relative to the repository root) on BRANCH."""
    return f"{REPO_URL}/blob/{BRANCH}/{path.lstrip('/')}"


def colab_url(path: str) -> str:
    """Open ``path`` (a notebook in the repository) in Google Colab."""
    return f"https://colab.research.google.com/github/{OWNER}/{NAME}/blob/{BRANCH}/{path.lstrip('/')}"


def kaggle_url(path: str) -> str:
    """Open ``path`` (a notebook in the repository) in a Kaggle notebook."""
    return f"https://kaggle.com/kernels/welcome?src={github_blob(path)}"


def binder_url(path: str | None = None) -> str:
    """Launch the repository on mybinder.org, optionally opening ``path`` in JupyterLab."""
    url = f"https://mybinder.org/v2/gh/{OWNER}/{NAME}/{BRANCH}"
    return url if path is None else f"{url}?urlpath=lab/tree/{path.lstrip('/')}"
