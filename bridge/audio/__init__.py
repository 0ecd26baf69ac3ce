"""The sans-I/O audio pipeline: ring buffer, framer, stream resampler, VAD, playback pacing."""
