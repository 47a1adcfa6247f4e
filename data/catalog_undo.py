"""Put a catalog back exactly as it was before an import that failed: files, folders and definitions.

An import only ever touches one instrument: the folder of each data class it writes
(``data/<class>/<instrument>``), the folder of the instrument's definition and the parents of those.
``CatalogUndo`` notes, before the first write, which of these folders exist and which files they hold;
``apply`` deletes every file that was not there, puts back the files set aside for ``--overwrite`` and
removes the folders the import made. Files are compared by name: an import never rewrites a file in
place (the catalog refuses overlapping intervals), so a name that was there still holds its old bytes.

Files replaced by ``--overwrite`` are moved, not deleted, into a hidden folder in the catalog root
until the import is kept, so a refused overwrite gives the old data back byte for byte.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Sequence

from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.persistence.funcs import class_to_filename, urisafe_identifier

_SET_ASIDE_PREFIX = ".replaced-"


class CatalogUndo:
    """What one instrument's folders of ``catalog`` held when it was made, and how to get back to it."""

    def __init__(self, catalog: ParquetDataCatalog, key: str, classes: Sequence[type]) -> None:
        self.fs = catalog.fs
        self.root = catalog.path.rstrip("/")
        self.folders = {cls: f"{self.root}/data/{class_to_filename(cls)}/{urisafe_identifier(key)}" for cls in classes}
        parents = {self.root, f"{self.root}/data"} | {posixpath.dirname(f) for f in self.folders.values()}
        # Deepest first, which is the order they can be removed in.
        candidates = sorted(parents | set(self.folders.values()), key=lambda p: p.count("/"), reverse=True)
        self.new_folders = [f for f in candidates if not self.fs.isdir(f)]
        self.files = {folder: set(self._names(folder)) for folder in self.folders.values()}
        self.set_aside_folder: str | None = None

    def _names(self, folder: str) -> list[str]:
        if not self.fs.isdir(folder):
            return []
        return [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(folder, detail=False)]

    def set_aside(self, cls: type) -> None:
        """Move the instrument's files of ``cls`` out of the catalog's view, to come back on ``apply``."""
        folder = self.folders[cls]
        names = self._names(folder)
        if not names:
            return
        if self.set_aside_folder is None:
            self.set_aside_folder = f"{self.root}/{_SET_ASIDE_PREFIX}{uuid.uuid4().hex}"
        target = f"{self.set_aside_folder}/{class_to_filename(cls)}"
        self.fs.mkdirs(target, exist_ok=True)
        for name in names:
            self.fs.mv(f"{folder}/{name}", f"{target}/{name}")

    def drop(self) -> None:
        """The import stands: what ``set_aside`` moved is deleted for good."""
        if self.set_aside_folder is not None:
            self.fs.rm(self.set_aside_folder, recursive=True)
            self.set_aside_folder = None

    def apply(self) -> None:
        """Back to the state at creation: new files out, set-aside files back, new folders gone."""
        for folder, before in self.files.items():
            for name in self._names(folder):
                if name not in before:
                    self.fs.rm(f"{folder}/{name}")
        if self.set_aside_folder is not None:
            for cls, folder in self.folders.items():
                parked = f"{self.set_aside_folder}/{class_to_filename(cls)}"
                if self.fs.isdir(parked):
                    for name in self._names(parked):
                        self.fs.mv(f"{parked}/{name}", f"{folder}/{name}")
            self.fs.rm(self.set_aside_folder, recursive=True)
            self.set_aside_folder = None
        for folder in self.new_folders:
            if self.fs.isdir(folder) and not self._names(folder):
                self.fs.rmdir(folder)
