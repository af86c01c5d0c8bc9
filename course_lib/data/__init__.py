"""Data for every chapter: the bundled collection (written for this course) and
loaders for the real datasets when the hub is reachable."""
from .squad_json import load_squad_json, squad_rows

__all__ = ["load_squad_json", "squad_rows"]
