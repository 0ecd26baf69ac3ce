"""Sample formats and containers: s16/f32 PCM, mu-law/A-law, WAV in and out."""
