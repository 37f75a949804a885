"""hydra-grid-sweeper engine: Grid flag expressions, search spaces, launch backends, records.

Importable without Hydra. Heavy modules (numpy, submitit) are imported lazily where used.
"""

__version__ = "0.1.0"
