"""`python -m rafka` runs the `rafka` command."""

from rafka.cli.launch import main

if __name__ == "__main__":
    main()
