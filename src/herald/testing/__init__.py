"""Fakes and harnesses for Herald's tests (and for users testing their integrations)."""
