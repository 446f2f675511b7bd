"""Persistence: engine construction, models and repositories (the only modules that hold SQL)."""
