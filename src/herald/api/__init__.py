"""HTTP: RPC dispatch, request signatures, the error envelope, and the audio WebSocket."""
