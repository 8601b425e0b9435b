"""`python -m loader` does what the `pharmload` command does."""

from loader.cli import main

if __name__ == "__main__":
    main()
