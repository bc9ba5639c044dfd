"""A batch's plan: which files, where each result and run folder goes, and which runs resume.

The rules a user relies on:

- Folders are searched for image files (``io.READ_EXTENSIONS``; ``--glob`` narrows the names;
  ``--recursive`` descends). dip's own outputs (``*.restored.*``, ``*.dip/`` run folders, the
  ``-o`` folder) and hidden files are never taken as inputs.
- With ``-o DIR`` the output tree mirrors the input tree: ``photos/a/b.jpg`` -> ``DIR/a/b.png``.
  Without it, each result goes beside its input as ``STEM.restored.png``. Inputs that would
  share an output name (``x.png`` and ``x.jpg``) both get their extension in it (``x_png``,
  ``x_jpg``), so names never collide and stay the same on every rerun.
- A rerun skips images whose output exists (unless ``--overwrite``) and resumes images whose
  run was interrupted, from their checkpoints (``resumes``: the one rule every executor uses).
  Outputs are written atomically, so an existing output is always a finished one.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from dip_cli.errors import InputError
from dip_cli.io import READ_EXTENSIONS, check_output_path
from dip_cli.run_folder import RunFolder


@dataclass(frozen=True)
class Item:
    """One image of a batch: where it is, where its result and run folder go."""

    input: Path
    relative: Path  # its path under the folder it was found in (for mirroring and references)
    output: Path
    run_dir: Path


@dataclass
class Plan:
    items: list[Item]
    ignored: list[Path]  # files in the folders that are not images (or not matching --glob)
    summary_dir: Path  # where summary.csv / summary.json go


# --- planning ------------------------------------------------------------------------------------


def plan_batch(
    inputs: Iterable[Path],
    *,
    output_dir: Path | None,
    recursive: bool = False,
    pattern: str | None = None,
) -> Plan:
    """Expand files and folders into a list of images with collision-free output names."""
    inputs = list(inputs)
    if output_dir is not None and output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"-o {output_dir} is a file; with several inputs or a folder, -o names a folder")
    if output_dir is not None and not output_dir.exists() and output_dir.suffix.lower() in READ_EXTENSIONS:
        raise InputError(
            f"-o {output_dir} looks like a file name; with several inputs or a folder, -o names a folder"
        )
    if output_dir is not None:
        check_output_path(output_dir / "summary.csv", "the batch's output folder")
    folders = [p for p in inputs if p.is_dir()]
    found: list[tuple[Path, Path]] = []  # (path, relative path in the output tree)
    ignored: list[Path] = []
    for path in inputs:
        if not path.exists():
            raise InputError(f"{path} does not exist")
        if path.is_dir():
            # One folder mirrors into -o directly; several keep their names to stay apart.
            prefix = Path(path.resolve().name) if len(folders) > 1 else Path()
            for file in _scan(path, recursive, pattern, output_dir, ignored):
                found.append((file, prefix / file.relative_to(path)))
        else:
            found.append((path, Path(path.name)))
    found = _unique_by_file(found)
    if not found:
        where = ", ".join(str(p) for p in inputs)
        hint = "" if recursive else " (add --recursive to search subfolders)"
        raise InputError(f"no images found in {where}{hint}")
    items = _name_outputs(found, output_dir)
    _check_no_input_overwritten(items)
    summary_dir = output_dir or _common_folder([item.input for item in items])
    return Plan(items, ignored, summary_dir)


def _scan(
    folder: Path, recursive: bool, pattern: str | None, output_dir: Path | None, ignored: list[Path]
) -> list[Path]:
    skip_dir = output_dir.resolve() if output_dir is not None else None
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):
        root_path = Path(root)
        dirs[:] = sorted(
            d
            for d in dirs
            if recursive
            and not d.startswith(".")
            and not d.endswith(".dip")
            and (root_path / d).resolve() != skip_dir
        )
        for name in sorted(names):
            path = root_path / name
            if name.startswith(".") or ".restored." in name:
                continue  # hidden files, dip's own temp files and outputs
            is_image = path.suffix.lower() in READ_EXTENSIONS
            relative = path.relative_to(folder).as_posix().lower()
            matches = pattern is None or any(
                fnmatch.fnmatch(text, pattern.lower()) for text in (name.lower(), relative)
            )
            if is_image and matches:
                files.append(path)
            elif not is_image:
                ignored.append(path)
    return files


def _unique_by_file(found: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """The same file named twice (directly and through its folder) is restored once."""
    seen: set[Path] = set()
    unique = []
    for path, relative in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((path, relative))
    return unique


def _name_outputs(found: list[tuple[Path, Path]], output_dir: Path | None) -> list[Item]:
    """Each input's output stem: its own, unless another input in the same output folder would
    get the same name; those get their extension added (``x.png`` -> ``x_png``), again until
    no two collide (``x_png.bmp`` next to ``x.png`` becomes ``x_png_bmp``). The names depend
    only on the set of inputs, so a rerun finds the same outputs and run folders."""

    def folder(path: Path, relative: Path) -> Path:
        return (output_dir / relative.parent) if output_dir is not None else path.parent

    stems = [path.stem for path, _ in found]
    extended = [False] * len(found)
    while True:
        groups: dict[tuple[Path, str], list[int]] = {}
        for i, (path, relative) in enumerate(found):
            groups.setdefault((folder(path, relative).resolve(), stems[i].lower()), []).append(i)
        collisions = [members for members in groups.values() if len(members) > 1]
        if not collisions:
            break
        for members in collisions:
            fresh = [i for i in members if not extended[i]]
            for i in fresh:
                stems[i] = f"{stems[i]}_{found[i][0].suffix.lstrip('.').lower()}"
                extended[i] = True
            if not fresh:  # same name and extension up to case (X.PNG, x.png): number them
                for n, i in enumerate(sorted(members, key=lambda i: str(found[i][0]))[1:], start=2):
                    stems[i] = f"{stems[i]}_{n}"
    items = []
    for (path, relative), stem in zip(found, stems, strict=True):
        base = folder(path, relative)
        name = f"{stem}.png" if output_dir is not None else f"{stem}.restored.png"
        items.append(Item(path, relative, base / name, base / f"{stem}.dip"))
    return items


def _check_no_input_overwritten(items: list[Item]) -> None:
    inputs = {item.input.resolve() for item in items}
    for item in items:
        if item.output.resolve() in inputs:
            raise InputError(
                f"the output {item.output} would replace the input of the same name; "
                "dip never overwrites its inputs: give -o another folder"
            )


def _common_folder(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))


def find_reference(reference_dir: Path, item: Item) -> Path | None:
    """The clean image for ``item``: the same relative path, or the same stem with any extension."""
    exact = reference_dir / item.relative
    if exact.is_file():
        return exact
    for suffix in READ_EXTENSIONS:
        candidate = (reference_dir / item.relative).with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def resumes(run_dir: Path, overwrite: bool, *, retry: bool = False) -> bool:
    """Whether an image's run continues from its run folder: where an earlier run left something
    to resume (a checkpoint, or a tiled run's plan) and the user did not ask to start over, or
    where an executor retries its own task after losing the worker (Ray)."""
    return RunFolder(run_dir).resumable and (retry or not overwrite)


def request_for(item: Item, template, reference_dir: Path | None):
    """``template`` (a ``restore.RestoreRequest``) for ``item``: its paths, its reference, and
    whether its run resumes (a finished one was skipped)."""
    reference = find_reference(reference_dir, item) if reference_dir is not None else None
    resume = resumes(item.run_dir, template.options.overwrite)
    options = template.options.replace(run_dir=item.run_dir, resume=resume)
    return replace(template, input=item.input, output=item.output, reference=reference, options=options)


def finished_result(item: Item) -> dict | None:
    """The figures of an earlier run of ``item`` that wrote its output, read back from its run.json."""
    info = RunFolder(item.run_dir).read_info() or {}
    result = info.get("result")
    if isinstance(result, dict) and info.get("output") == str(item.output):
        return {"input": info.get("input"), "output": info["output"], **result}
    return None
