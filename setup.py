"""Packaging for hydra-grid-sweeper (engine + Hydra plugins)."""
from setuptools import find_namespace_packages, setup

setup(
    name="hydra-grid-sweeper",
    version="0.1.0",
    description="Grid.ai flag syntax sweeps for Hydra apps and plain scripts, local and on SLURM",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_namespace_packages(include=["grid_sweeper", "grid_sweeper.*", "hydra_plugins.*"]),
    install_requires=[
        "hydra-core>=1.3.2,<1.4",
        "omegaconf",
        "numpy",
        "submitit>=1.4",
        "PyYAML",
    ],
    extras_require={
        "report": ["plotly>=5"],  # gridsweep report, hydra.sweeper.report=true
        # websocket-client drives the headless Chromium that checks report.html renders
        "test": ["pytest", "pytest-xdist", "hypothesis", "ruff", "plotly>=5", "websocket-client"],
    },
    entry_points={"console_scripts": ["gridsweep=grid_sweeper.cli:main"]},
    include_package_data=True,
    classifiers=["Framework :: Hydra", "Programming Language :: Python :: 3"],
)
