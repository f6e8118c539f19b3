"""Operator commands that change what is in the database: accounts, users, access keys, policies."""
