"""soundtag: zero-shot labeling of sound archives with CLAP."""
