"""`python -m rafka` runs the `rafka` command."""

from rafka.cli.main import run

if __name__ == "__main__":
    run()
