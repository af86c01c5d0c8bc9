"""A Hugging Face Hub emulator for tests and rehearsals: :mod:`hub.emulator` serves
:mod:`hub.fixtures`' stand-in repositories on loopback; ``python -m hub`` (``make hub``) runs it."""
from .emulator import FAULTS, HubEmulator, Repo

__all__ = ["FAULTS", "HubEmulator", "Repo"]
