"""`python -m stellarstack` runs the CLI."""

from stellarstack.cli import main

main()
