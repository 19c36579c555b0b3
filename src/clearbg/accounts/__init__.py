"""Accounts: applications, API keys, the credits ledger, console users and usage summaries.
Services over the store, with no HTTP types in here."""
