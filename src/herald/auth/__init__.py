"""Who may call: access keys, call tokens."""
