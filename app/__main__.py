"""`python -m app` is the `lulupay-analytics` command."""
from app.cli import main

main()
