"""Cluster mode: several nodes as one service, on PostgreSQL (state) and Redis (who runs what, commands).

See ``docs/cluster.md``. Embedded mode (the default) imports nothing from here.
"""
