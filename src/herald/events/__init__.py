"""What each agent did, for the customer's systems: the outbox, callbacks, and the event stream."""
