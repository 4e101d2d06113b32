"""``python -m skinedge`` = the ``skinedge`` command."""

from skinedge.cli import main

main()
