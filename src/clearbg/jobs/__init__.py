"""Bulk jobs on Huey (SQLite by default, Redis at scale). Tasks take ids, never image bytes."""
