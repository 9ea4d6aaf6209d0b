"""Users, passwords and personal API tokens (`users`); the request side (sessions, login, OIDC)
lives in app/auth.py and produces the `Principal` every read is scoped by."""
