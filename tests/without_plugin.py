"""Run a Python script as in an environment where hydra-grid-sweeper is, or is not, installed.

    python without_plugin.py --hide   app.py ARGS...   # the plugin's dirs dropped from sys.path
    python without_plugin.py --keep   app.py ARGS...   # unchanged: the plugin as installed

Both ways run the script the same way (runpy, as `__main__`), so their output can be compared byte
for byte; the only difference is whether Hydra's plugin scan can find `hydra_grid_sweeper`.
"""
import os
import runpy
import sys

PLUGIN_DIR = os.path.join("hydra_plugins", "hydra_grid_sweeper")


def main() -> None:
    mode, script, *args = sys.argv[1:]
    if mode == "--hide":
        sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or os.getcwd(), PLUGIN_DIR))]
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
