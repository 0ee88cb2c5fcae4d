"""Subcommands of the web layer, wired into ``annobc`` by annobc.cli.main."""


def add_commands(sub) -> None:
    """Add the ``serve`` and ``compare`` subcommands to the ``annobc`` parser."""
