"""Agents and their instances: definitions, the instance state machine, lifecycle."""
