"""Shared pytest fixtures."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import pytest

# =================================================================================================
# Test Slurm cluster (tests/slurm_cluster.py, docs/slurm-test-cluster.md)
#
# Fixtures:
#   slurm_cluster             session: a cluster without accounting (sacct does not work)
#   slurm_cluster_accounting  session: a cluster with slurmdbd + MariaDB (sacct works)
#   slurm_env                 function: slurm_cluster with SLURM_CONF set in os.environ for the
#                             test; cancels the test's leftover jobs and resumes drained nodes
#                             afterwards
#   slurm_accounting_env      function: the same for slurm_cluster_accounting
# Each pytest-xdist worker starts its own clusters, lazily, once. A test using any of them is
# marked `slurm`. When a cluster can't start (not root, packages missing) its tests are skipped,
# or fail when GRID_SWEEPER_REQUIRE_SLURM=1 (CI).
# =================================================================================================
try:  # `tests` is a namespace package when the repo root is on sys.path (python -m pytest)
    from tests.slurm_cluster import SlurmCluster, SlurmClusterError
except ImportError:  # plain `pytest`: this dir is on sys.path (rootdir conftest, no __init__.py)
    from slurm_cluster import SlurmCluster, SlurmClusterError

SLURM_FIXTURES = frozenset({"slurm_cluster", "slurm_cluster_accounting", "slurm_env", "slurm_accounting_env"})


def slurm_required() -> bool:
    """True when GRID_SWEEPER_REQUIRE_SLURM asks for a failure instead of a skip."""
    value = os.environ.get("GRID_SWEEPER_REQUIRE_SLURM", "").strip().lower()
    return value not in ("", "0", "false", "no")


def _start_cluster_or_skip(accounting: bool) -> SlurmCluster:
    mode = "with accounting" if accounting else "without accounting"
    reason = SlurmCluster.unavailable_reason(accounting)
    if reason is None:
        cluster = SlurmCluster(accounting=accounting)
        try:
            return cluster.start()
        except SlurmClusterError as exc:
            reason = str(exc)
    if slurm_required():
        pytest.fail(
            f"GRID_SWEEPER_REQUIRE_SLURM is set but the test Slurm cluster ({mode}) could not start: {reason}",
            pytrace=False,
        )
    pytest.skip(f"test Slurm cluster ({mode}) unavailable: {reason.splitlines()[0]}")


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running test Slurm cluster without accounting, one per xdist worker."""
    cluster = _start_cluster_or_skip(accounting=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def slurm_cluster_accounting() -> Iterator[SlurmCluster]:
    """A running test Slurm cluster with slurmdbd (sacct works), one per xdist worker."""
    cluster = _start_cluster_or_skip(accounting=True)
    try:
        yield cluster
    finally:
        cluster.stop()


def _env_for_test(cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlurmCluster]:
    for key in list(os.environ):  # variables of an outer Slurm job would mislead sbatch/srun
        if key.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_")):
            monkeypatch.delenv(key)
    for key, value in cluster.env().items():
        monkeypatch.setenv(key, value)
    yield cluster
    with contextlib.suppress(Exception):
        cluster.cancel_all(wait=True, timeout=30)
    with contextlib.suppress(Exception):
        cluster.resume_nodes()


@pytest.fixture
def slurm_env(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlurmCluster]:
    """``slurm_cluster`` with its SLURM_CONF in os.environ during the test (for code that runs
    sbatch/squeue itself, e.g. submitit); cancels jobs left over at the end."""
    yield from _env_for_test(slurm_cluster, monkeypatch)


@pytest.fixture
def slurm_accounting_env(
    slurm_cluster_accounting: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SlurmCluster]:
    """``slurm_cluster_accounting`` with its SLURM_CONF in os.environ during the test."""
    yield from _env_for_test(slurm_cluster_accounting, monkeypatch)


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark every test that uses a test-cluster fixture `slurm` (so `-m "not slurm"` works)."""
    if SLURM_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.slurm)


# ======================================= end of the Slurm section ================================


# =================================================================================================
# Headless Chromium (tests/browser.py): `headless_chromium` is a started browser, or a skip when
# chromium or websocket-client is missing; GRID_SWEEPER_REQUIRE_BROWSER=1 (CI) makes that a failure.
# =================================================================================================
try:
    from tests.browser import Chromium, unavailable_reason
except ImportError:
    from browser import Chromium, unavailable_reason


def browser_required() -> bool:
    value = os.environ.get("GRID_SWEEPER_REQUIRE_BROWSER", "").strip().lower()
    return value not in ("", "0", "false", "no")


@pytest.fixture
def headless_chromium() -> Iterator[Chromium]:
    reason = unavailable_reason()
    if reason is not None:
        if browser_required():
            pytest.fail(f"GRID_SWEEPER_REQUIRE_BROWSER is set but headless Chromium is unavailable: {reason}",
                        pytrace=False)
        pytest.skip(f"headless Chromium unavailable: {reason}")
    with Chromium() as browser:
        yield browser
