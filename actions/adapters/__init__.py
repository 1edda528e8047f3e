"""Adapters for the ports in `actions/ports.py`: `sql_*` (embedded, SQLAlchemy) and `http_*` (external REST)."""
