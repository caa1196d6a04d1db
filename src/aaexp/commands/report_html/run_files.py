"""A run's MLflow artifacts, listed once and copied into a report folder on demand."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class RunFiles:
    """Artifacts of one run: `exists(path)`, `listdir(folder)`, and `copy(path)` into `<study dir>/runs/<id8>/`,
    which returns the copy's path relative to the study folder (what an `src` or `href` needs)."""

    def __init__(self, client, run, study_dir: Path):
        self.client, self.run_id = client, run.info.run_id
        self.study_dir = study_dir
        self.rel_root = PurePosixPath("runs") / self.run_id[:8]
        self._listing: dict[str, list] = {}

    def listdir(self, folder: str) -> list:
        """FileInfos directly under `folder` ("" for the root); empty when the folder is not there."""
        if folder not in self._listing:
            self._listing[folder] = list(self.client.list_artifacts(self.run_id, folder or None))
        return self._listing[folder]

    def exists(self, path: str) -> bool:
        parent = str(PurePosixPath(path).parent)
        return any(f.path == path and not f.is_dir for f in self.listdir("" if parent == "." else parent))

    def walk(self, folder: str = "") -> list[str]:
        """Every file path under `folder`, depth first, in MLflow's listing order."""
        out = []
        for f in self.listdir(folder):
            out += self.walk(f.path) if f.is_dir else [f.path]
        return out

    def local(self, path: str) -> Path:
        """Download `path` into the report folder (kept under its artifact path) and return where it is."""
        dst = self.study_dir / self.rel_root / PurePosixPath(path).parent
        dst.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(self.run_id, path, str(dst)))   # a file lands in dst under its name

    def copy(self, path: str) -> str:
        """Copy `path` into the folder; its link relative to the study folder."""
        self.local(path)
        return str(self.rel_root / path)
