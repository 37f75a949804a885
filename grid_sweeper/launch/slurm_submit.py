"""What each Slurm job runs: submitit's job runner, with its plugin lookup fixed on Python 3.9.

submitit 1.5.4 looks its plugins up with `importlib.metadata.entry_points()["submitit"]`, which
raises KeyError on Python < 3.10 when no installed package declares that group, so every job
fails before it starts. The lookup is replaced by one that works there; elsewhere this is
exactly `python -m submitit.core._submit FOLDER`.
"""
import sys
from typing import Any, List


def _submitit_entry_points() -> List[Any]:
    from importlib import metadata

    found = metadata.entry_points()
    if hasattr(found, "select"):
        return list(found.select(group="submitit"))
    return list(found.get("submitit", []))  # type: ignore[union-attr]


def main() -> None:
    from submitit.core import plugins
    from submitit.core.submission import submitit_main

    if sys.version_info < (3, 10) and hasattr(plugins, "_iter_submitit_entrypoints"):
        plugins._iter_submitit_entrypoints = _submitit_entry_points
    submitit_main()


if __name__ == "__main__":
    main()
