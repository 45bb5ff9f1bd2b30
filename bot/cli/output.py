"""Where `atelier generate` saves its images: claimed before anything is sent, and a safe place if saving fails.

`claim_files` checks the folder (exists or can be made, is a folder, is writable) and claims every file name the
generation will use by creating it empty (`open(..., "x")`: a name taken meanwhile is never overwritten; a taken
name moves the whole set to the next free suffix). A failure is an `OutputError` with the one line to print, before
any request. `Claim.discard` removes the empty files (and the folders it made) when the generation fails;
`save_elsewhere` writes the images to a new temporary folder when saving them where they were claimed fails after
they were paid for.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_SUFFIX = 1000
"""How many `-2`, `-3`, ... suffixes `claim_files` tries before it says the names are all taken."""


class OutputError(Exception):
    """The output folder cannot take the images; `str()` is the one line printed (nothing was sent)."""


@dataclass(slots=True)
class Claim:
    """The empty files claimed for a generation's images, and the folders made for them."""

    paths: list[Path]
    made_folders: list[Path] = field(default_factory=list)

    def discard(self) -> None:
        """Remove the claimed (still empty) files and the folders this claim made, if they are empty."""
        for path in self.paths:
            with contextlib.suppress(OSError):
                if path.stat().st_size == 0:
                    path.unlink()
        for folder in reversed(self.made_folders):
            with contextlib.suppress(OSError):
                folder.rmdir()


def claim_files(folder: Path, stem: str, extension: str, count: int) -> Claim:
    """Make sure `count` images can be written in `folder` and claim their names; raises `OutputError`."""
    made = _make_folder(folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        _remove_folders(made)
        raise OutputError(f"cannot write in {folder}: permission denied; nothing was sent")
    for attempt in range(1, MAX_SUFFIX + 1):
        base = stem if attempt == 1 else f"{stem}-{attempt}"
        paths = [folder / f"{base}-{number}.{extension}" for number in range(1, count + 1)]
        claimed: list[Path] = []
        try:
            for path in paths:
                with path.open("xb"):
                    claimed.append(path)
        except FileExistsError:
            Claim(claimed).discard()
            continue
        except OSError as exc:
            Claim(claimed, made).discard()
            raise OutputError(f"cannot write in {folder}: {exc.strerror or exc}; nothing was sent") from exc
        return Claim(paths, made)
    _remove_folders(made)
    raise OutputError(f"cannot find free file names for {stem}-N.{extension} in {folder}; nothing was sent")


def _make_folder(folder: Path) -> list[Path]:
    """Create `folder` (and missing parents); return the folders made, outermost first. Raises `OutputError`."""
    missing: list[Path] = []
    probe = folder
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"{probe} is a file, not a folder; --out must name a folder; nothing was sent")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError(f"{folder} is a file, not a folder; --out must name a folder; nothing was sent") from exc
    except OSError as exc:
        raise OutputError(f"cannot create the folder {folder}: {exc.strerror or exc}; nothing was sent") from exc
    return list(reversed(missing))


def _remove_folders(folders: list[Path]) -> None:
    for made in reversed(folders):
        with contextlib.suppress(OSError):
            made.rmdir()


def save_elsewhere(files: list[tuple[str, bytes]]) -> Path:
    """Write `(name, data)` pairs into a new folder under the system's temporary folder; return the folder."""
    folder = Path(tempfile.mkdtemp(prefix="atelier-unsaved-"))
    for name, data in files:
        (folder / name).write_bytes(data)
    return folder
