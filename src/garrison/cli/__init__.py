"""The `garrison` command line: a thin adapter over the library."""

#: Nothing at package level: the command-line app is ``garrison.cli.main``.
__all__: list[str] = []
