"""WebRTC: people join calls from browsers and apps; signalling in ``api/webrtc.py``."""
