"""The ``trainflow`` command: every subcommand and every printer, in one package above the flows. Nothing below
it (flows, stages, the library) parses a command line or prints a run's table."""
