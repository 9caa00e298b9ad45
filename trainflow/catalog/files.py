"""The file system under an artifacts root (a local folder or any ``pyarrow.fs`` URI): paths that stay under the
root, writes under a ``.tmp-<pid>-*`` name moved into place (a folder at once, or file by file on an object store),
the sweeping of what killed writes left, and content hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import threading
from contextlib import suppress
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from trainflow.catalog.refs import ArtifactRef, check_parts, folder_digest
from trainflow.credentials import mask, redact, resolve
from trainflow.errors import ArtifactError, TrainflowError
from trainflow.names import inside

_CHUNK = 8 << 20
STALE_TMP_SECONDS = 3600
# the folders this process has written temporary files into (filesystem, absolute folder): what an interrupted
# command sweeps of its own unfinished writes on the way out (remove_unfinished_writes)
_WROTE_IN: dict[tuple[str, str], pafs.FileSystem] = {}
_WROTE_IN_LOCK = threading.Lock()


def remove_unfinished_writes() -> int:
    """Delete this process's ``.tmp-<pid>-*`` files and folders, the writes an interrupt cut short; returns how
    many. Finished artifacts stay: they are whole, and a later run's cache may reuse them."""
    mine, removed = f".tmp-{os.getpid()}-", 0
    with _WROTE_IN_LOCK:
        folders = [(fs, folder) for (_, folder), fs in _WROTE_IN.items()]
    for fs, folder in folders:
        with suppress(OSError, pa.ArrowException):
            for info in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)):
                if info.base_name.startswith(mine):
                    (fs.delete_dir if info.type == pafs.FileType.Directory else fs.delete_file)(info.path)
                    removed += 1
    return removed


def _alive(pid: int) -> bool:
    """Whether a process of this machine with that id still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


class FileStore:
    """The files under one root; :class:`trainflow.catalog.ArtifactStore` builds the catalog on them.

    Args:
        root: Local folder or filesystem URI; runs go under ``<root>/runs``.
    """

    def __init__(self, root: str | Path):
        root = str(root)
        if "://" in root:
            try:  # the secret, if the URI holds one, exists only here and in the filesystem object
                self.fs, base = pafs.FileSystem.from_uri(resolve(root))
            except (pa.ArrowException, ValueError, TrainflowError) as exc:
                raise ArtifactError(f"artifacts root {mask(root)}: {redact(str(exc), root)}") from None
        else:
            try:
                self.fs, base = pafs.LocalFileSystem(), str(Path(root).resolve())
            except (OSError, RuntimeError) as exc:  # a symbolic link loop
                raise ArtifactError(f"artifacts root {root} cannot be used: {exc}") from None
        self.root = root
        self.base = base.rstrip("/")
        self._lock = threading.Lock()

    def check_writable(self) -> None:
        """A local root that runs cannot be written under (``/proc``, a file, a read-only folder), found before
        any work: the folder is made if missing and a file is written and removed in it.

        Raises:
            ArtifactError: One line naming the root and the system's reason.
        """
        folder = self.local_folder()
        if folder is None:
            return
        try:
            runs = folder / "runs"
            runs.mkdir(parents=True, exist_ok=True)
            probe = runs / f".tmp-{os.getpid()}-writable"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ArtifactError(f"artifacts root {self.root} cannot be written: {exc.strerror or exc}"
                                f"{f' ({exc.filename})' if exc.filename else ''}") from None

    def local_folder(self, *parts: str) -> Path | None:
        """``<root>/<parts...>`` on the local disk, for files that need a real path (checkpoints, a SQLite
        database); None when the root is a remote filesystem."""
        return Path(self.base, *parts) if isinstance(self.fs, pafs.LocalFileSystem) else None

    def _abs(self, rel: str) -> str:
        if isinstance(self.fs, pafs.LocalFileSystem):
            inside(self.base, *rel.split("/"))  # a symbolic link under the root must not lead out of it
        return f"{self.base}/{rel}"

    def local_path(self, ref: ArtifactRef) -> Path:
        """The artifact's path on the local disk (local stores only)."""
        path = self.local_folder(ref.path)
        if path is None:
            raise ArtifactError(f"store {self.root} is not local")
        return path

    def path_uri(self, rel: str) -> str:
        """Where a path relative to the root lies (local path or URI)."""
        return self._uri(rel)

    def _uri(self, rel: str) -> str:
        if isinstance(self.fs, pafs.LocalFileSystem):
            return self._abs(rel)
        base, mark, options = self.root.partition("?")  # s3://bucket/root?endpoint_override=...: the path first
        return mask(f"{base.rstrip('/')}/{rel}{mark}{options}")

    def uri(self, ref: ArtifactRef) -> str:
        """Where an artifact lies, as a person would type it (local path or URI)."""
        return self._uri(ref.path)

    def run_uri(self, run_id: str) -> str:
        """Where a run's folder lies (local path or URI)."""
        return self._uri(self.run_dir(run_id))

    def run_dir(self, run_id: str) -> str:
        """Path of a run's folder, relative to the root."""
        check_parts(run_id)
        return f"runs/{run_id}"

    def _exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self._abs(rel)).type != pafs.FileType.NotFound

    def _claim(self, rel: str) -> None:
        if self._exists(rel):
            raise ArtifactError(f"artifact {rel} already exists; runs never overwrite artifacts")
        folder = rel.rsplit("/", 1)[0]
        self.fs.create_dir(self._abs(folder), recursive=True)
        self._sweep(folder)

    def _prune(self, rel: str) -> None:
        """Remove the folders above ``rel`` up to its run's that a write abandoned there left empty (a failed
        command left an empty run folder behind). Local only: ``rmdir`` refuses a folder another writer has
        just put a file in; an object store has no empty folders."""
        local = self.local_folder()
        parts = rel.split("/")
        if local is None or len(parts) < 3 or parts[0] != "runs":
            return
        for depth in range(len(parts) - 1, 1, -1):  # runs/<run>/<stage>/...: the stage folder up to the run's
            try:
                (local / "/".join(parts[:depth])).rmdir()
            except OSError:  # not empty, or gone
                return

    def _sweep(self, folder: str, recursive: bool = False) -> int:
        """Delete the ``.tmp-*`` leftovers of killed writes in ``folder`` (and below it if ``recursive``): on a
        local disk, those whose writing process is gone; elsewhere, those older than ``STALE_TMP_SECONDS``. A
        write still in progress is left alone. Returns how many were deleted."""
        now = dt.datetime.now(dt.UTC).timestamp()
        local = isinstance(self.fs, pafs.LocalFileSystem)
        selector = pafs.FileSelector(self._abs(folder), allow_not_found=True, recursive=recursive)
        swept: list[str] = []
        for info in self.fs.get_file_info(selector):
            if not info.base_name.startswith(".tmp-") or any(info.path.startswith(f"{s}/") for s in swept):
                continue
            pid = info.base_name.split("-")[1]
            if local and pid.isdigit():
                stale = not _alive(int(pid))
            else:
                stale = info.mtime is not None and now - info.mtime.timestamp() > STALE_TMP_SECONDS
            if stale:
                (self.fs.delete_dir if info.type == pafs.FileType.Directory else self.fs.delete_file)(info.path)
                swept.append(info.path)
        return len(swept)

    def _move_folder(self, src: str, dest: str, last: str | None = None) -> None:
        """Move a folder of files into place: one rename on a local disk; elsewhere file by file, ``last`` after
        the others (an object store has no folders to rename: Arrow's S3FileSystem refuses to move one), and
        what this call put under ``dest`` is removed again if a move fails."""
        if isinstance(self.fs, pafs.LocalFileSystem):
            self.fs.move(self._abs(src), self._abs(dest))
            return
        names = [i.base_name for i in self.fs.get_file_info(pafs.FileSelector(self._abs(src)))]
        existed = self._exists(dest)  # a content-addressed folder another writer stored first: never removed
        self.fs.create_dir(self._abs(dest), recursive=True)
        try:
            for name in sorted(names, key=lambda n: n == last):
                self.fs.move(self._abs(f"{src}/{name}"), self._abs(f"{dest}/{name}"))
        except BaseException:
            if not existed:
                self.fs.delete_dir(self._abs(dest))
            raise
        self.fs.delete_dir(self._abs(src))

    def _tmp(self, rel: str) -> str:
        head, tail = rel.rsplit("/", 1)
        with _WROTE_IN_LOCK:
            _WROTE_IN.setdefault((self.fs.type_name, self._abs(head)), self.fs)
        return f"{head}/.tmp-{os.getpid()}-{secrets.token_hex(4)}-{tail}"  # the writer's pid: see _sweep

    def _hash_file(self, rel: str) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        with self.fs.open_input_stream(self._abs(rel)) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def put_folder(self, rel: str, files: dict[str, bytes], exist_ok: bool = False) -> str:
        """Write a folder of files at ``rel`` that appears all at once or not at all (on an object store, whose
        folders cannot be renamed, file by file, what was moved removed again if a move fails).

        Args:
            rel: Folder path relative to the root.
            files: File name to content.
            exist_ok: Leave an existing folder as it is (for content-addressed folders) instead of raising.

        Returns:
            The sha256 of the folder: of its files' names and hashes, in name order.
        """
        check_parts(*files)
        sha = folder_digest(files)
        with self._lock:
            if exist_ok and self._exists(rel):
                return sha
            self._claim(rel)
        tmp = self._tmp(rel)
        self.fs.create_dir(self._abs(tmp), recursive=True)
        for fname, data in files.items():
            with self.fs.open_output_stream(self._abs(f"{tmp}/{fname}")) as sink:
                sink.write(data)
        try:
            self._move_folder(tmp, rel)
        except OSError:
            if not (exist_ok and self._exists(rel)):  # another writer stored the same content first
                raise
            self.fs.delete_dir(self._abs(tmp))
        return sha
