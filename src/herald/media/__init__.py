"""Media: 20 ms PCM frames, resampling, the real-time pacer and the outputs that carry audio to people."""
