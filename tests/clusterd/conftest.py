from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from .harness import Cluster


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator:
    """Make clusters of real daemons; every process is stopped at the end, whatever happened."""
    made: list[Cluster] = []

    def make(ids: list[int], **options) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(made)}", ids, **options)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop_all()
