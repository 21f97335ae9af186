"""Commands that manage what is stored: use (pin the default run), and the deleting and
cleaning behind `aerec runs --delete` and `aerec datasets --delete`."""

from __future__ import annotations

import typer

from aerec_cli.cli import output
from aerec_cli.cli.app import Settings, app
from aerec_cli.errors import AerecError


@app.command()
def use(
    ctx: typer.Context,
    run: str = typer.Argument(None, help="The run to pin as the default --run."),
    latest: bool = typer.Option(
        False, "--latest", help="Unpin: the latest run is the default again."
    ),
):
    """Pin RUN as the default for every command's --run (aerec use --latest unpins)."""
    from aerec_cli.storage import manage

    settings: Settings = ctx.obj
    if (run is None) == (not latest):
        raise AerecError("give one of a run to pin (aerec use RUN) or --latest to unpin")
    if latest:
        was = manage.use_latest(settings.home)
        settings.note(
            f"unpinned {was}: the latest run is the default again"
            if was
            else "no run was pinned: the latest run is the default"
        )
        return
    pinned = manage.use(settings.home, run)
    settings.note(f"pinned {pinned.name}: commands use it when --run is not given")


def clean_leftovers(settings: Settings) -> None:
    """Before listing: remove what interrupted writes left that no live writer holds."""
    from aerec_cli.storage import manage

    for entry in manage.clean(settings.home):
        if settings.verbose:
            settings.note(f"cleaned what an interrupted write of {entry} left behind")


def delete_runs(settings: Settings, names: list[str]) -> None:
    from aerec_cli.storage import manage

    was_pinned = manage.delete_runs(settings.home, names)
    settings.note(f"deleted run{'s' if len(names) > 1 else ''} {', '.join(names)}")
    if was_pinned:
        settings.note(
            "the pinned run was deleted, so it is unpinned: the latest run is the default"
        )


def delete_dataset(settings: Settings, name: str, force: bool) -> None:
    from aerec_cli.storage import manage

    orphans = manage.delete_dataset(settings.home, name, force=force)
    settings.note(f"deleted dataset {name}")
    if orphans:
        output.warn(
            f"runs trained on it can no longer be scored: {', '.join(orphans)} "
            f"(aerec runs --delete {','.join(orphans)} removes them)"
        )
