"""The agent's conversation: user turns heard or typed, the LLM's answers spoken, barge-in, history."""
