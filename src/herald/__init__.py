"""Herald: a self-hosted runtime for real-time voice AI agents, wire-compatible with ICE's AI-agent API."""

__version__ = "0.1.0"
