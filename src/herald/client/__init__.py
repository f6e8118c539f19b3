"""A small client of Herald: join a call (WebRTC or WebSocket), hear and record it, push speech.

Used by the ``herald call`` and ``herald say`` commands and by the end-to-end tests.

    async with RtcCall("http://127.0.0.1:8080", channel_id, token) as call:   # or WsCall
        await call.wait_until(lambda: call.ended, timeout_s=30, what="the end of the call")
        write_wav("call.wav", call.pcm(), call.sample_rate_hz)

Modules: ``session`` (what every joined call records), ``rtc`` and ``ws`` (the two transports),
``tracks`` (a microphone that sends a tone or silence), ``messages`` (the data-channel envelope),
``events`` (one readable line per message), ``wav``, ``rpc`` (signed API calls), ``credentials``
(which key and endpoint to use), ``commands`` (``herald say`` and ``herald call``).

Errors, all in ``herald.client.errors``:

    ClientError                 anything that kept the client from doing what was asked
    ├── Unreachable             no answer from the server: down, wrong address, timed out
    ├── Refused                 the server answered with an error: HTTP status, ICE Code and Message
    └── CallFailed              the call could not be set up or broke (no answer SDP, ICE failed, ...)
"""
