"""Speech services the responders use: speech-to-text, text-to-speech, OpenAI-compatible clients."""
