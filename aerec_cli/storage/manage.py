"""Managing what is stored: pinning the default run (`aerec use`), deleting runs and
datasets (`aerec runs --delete`, `aerec datasets --delete`), and cleaning what interrupted
writes left behind.

A delete takes the lock a writer of that name takes (storage/locks.py), so it never removes
a run being trained or a dataset being ingested, and removes the folder in one rename
(atomic.retire_folder), so a reader sees the whole folder or none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aerec_cli.errors import AerecError
from aerec_cli.storage import atomic, dataset_store, integrity, locks, paths, pin, run_store


def use(home: Path, name: str) -> run_store.Run:
    """Pin run ``name`` as the default ``--run``; it must exist and be readable."""
    run = run_store.load_run(home, run_store.check_run_name(name))
    pin.write_pin(home, run.name)
    return run


def use_latest(home: Path) -> str | None:
    """Unpin: the latest run is the default again. Returns the run that was pinned."""
    return pin.clear_pin(home)


def clean(home: Path) -> list[str]:
    """Clean the leftovers of interrupted writes in runs/ and datasets/ (those no live
    writer holds); returns what was cleaned, as "runs/NAME" or "datasets/NAME"."""
    cleaned = []
    for kind in ("runs", "datasets"):
        folder = paths.store_folder(home, kind)
        cleaned += [f"{kind}/{name}" for name in locks.sweep_unheld(folder)]
    return cleaned


def delete_runs(home: Path, names: Sequence[str]) -> bool:
    """Delete runs ``names`` (all checked to exist first); True if the pinned run was one
    of them (it is then unpinned)."""
    root = paths.store_folder(home, "runs")
    _check_known(root, [run_store.check_run_name(n) for n in names], "run", "aerec runs")
    for name in dict.fromkeys(names):
        busy = (
            f"run {name} is being written by another aerec process (train or evaluate); "
            "wait for it to end, then delete it"
        )
        _retire(root, name, busy)
    locks.sweep_unheld(root)
    try:
        pinned = pin.pinned_run(home)
    except AerecError:
        pinned = None
    if pinned in names:
        pin.clear_pin(home)
        return True
    return False


def delete_dataset(home: Path, name: str, *, force: bool = False) -> list[str]:
    """Delete dataset ``name``; returns the runs trained on it. Refused while there are
    such runs, unless ``force`` (then only the dataset goes: scoring those runs fails)."""
    root = paths.store_folder(home, "datasets")
    _check_known(root, [dataset_store.check_dataset_name(name)], "dataset", "aerec datasets")
    users = [run.name for run in run_store.list_runs(home) if run.dataset == name]
    if users and not force:
        raise AerecError(
            f"dataset {name} has runs trained on it ({', '.join(users)}); delete them first "
            f"(aerec runs --delete {','.join(users)}), or add --force to delete only the dataset"
        )
    busy = (
        f"dataset {name} is being ingested by another aerec process; wait for it to end, "
        "then delete it"
    )
    _retire(root, name, busy)
    locks.sweep_unheld(root)
    return users


def _retire(root: Path, name: str, busy: str) -> None:
    """Move ``root/name`` out of the store under its lock (``busy``: why it is held)."""
    with locks.name_lock(root, name, busy):
        atomic.retire_folder(root / name)


def _check_known(root: Path, names: list[str], what: str, listing: str) -> None:
    """Every name is a stored folder of ``root``, else one error listing what there is."""
    atomic.recover_folders(root)
    unknown = [name for name in names if not (root / name).is_dir()]
    if unknown:
        stored = ", ".join(p.name for p in integrity.stored_entries(root)) or "none"
        raise AerecError(
            f"no {what} named {', '.join(unknown)} in {root.parent} (stored: {stored}); "
            f"see {listing}"
        )
