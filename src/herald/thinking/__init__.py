"""The agent's thinking: a chat model that streams its reply, cut into clauses to speak."""
