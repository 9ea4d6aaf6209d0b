"""`python -m app` is the `lulupay-analytics` command."""
from app.cli import main

if __name__ == "__main__":  # not when a spawned child process imports the main module
    main()
