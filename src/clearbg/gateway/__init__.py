"""Accounts, keys, credits and usage: services over the store, with no HTTP types in here."""
