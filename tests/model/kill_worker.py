"""Writes artifacts and registers model versions, and kills itself (SIGKILL) just before its N-th file-system
operation or database commit; the kill test then checks what a crash at that point leaves behind.

    python tests/model/kill_worker.py ROOT REGISTRY_URL N     # N = 0: no kill; prints how many points there are
"""

import os
import signal
import sys

import pandas as pd
import sqlalchemy as sa

from trainflow.catalog import ArtifactStore
from trainflow.registry import Registry

RUN = "20261125-120000-abcdef"
COUNTED = ("open_output_stream", "move", "create_dir", "delete_file", "delete_dir")


class Points:
    def __init__(self, kill_at: int) -> None:
        self.kill_at, self.seen = kill_at, 0

    def hit(self) -> None:
        self.seen += 1
        if self.seen == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


class CountingFs:
    """A pyarrow file system whose writing operations are kill points."""

    def __init__(self, fs: object, points: Points) -> None:
        self._fs, self._points = fs, points

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._fs, name)
        if name not in COUNTED:
            return attr

        def counted(*args: object, **kwargs: object) -> object:
            self._points.hit()
            return attr(*args, **kwargs)

        return counted


def main(root: str, registry_url: str, kill_at: int) -> None:
    points = Points(kill_at)
    original_init = ArtifactStore.__init__

    def init(self: ArtifactStore, *args: object, **kwargs: object) -> None:
        original_init(self, *args, **kwargs)
        self.fs = CountingFs(self.fs, points)

    ArtifactStore.__init__ = init  # every store, the registry's too
    store = ArtifactStore(root)
    store.write_table(RUN, "split", "train", pd.DataFrame({"a": range(1000), "b": ["x"] * 1000}))
    store.write_table(RUN, "split", "test", pd.DataFrame({"a": range(10)}))
    store.write_bundle(RUN, "train", "model", {"model.json": b'{"family": "logistic"}', "weights.bin": b"w" * 5000})
    registry = Registry(registry_url)
    sa.event.listen(registry.engine, "commit", lambda conn: points.hit())  # a kill inside each transaction
    for i in range(2):
        registry.register("m", {"model.json": f'{{"v": {i}}}'.encode()}, RUN, "logistic", "binary",
                          {"roc_auc": 0.8 + i / 100}, {})
    registry.close()
    print(points.seen)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
