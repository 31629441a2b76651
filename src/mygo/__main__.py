"""`python -m mygo`: the `mygo` command."""
from mygo.cli import main

main()
