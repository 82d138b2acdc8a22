"""Finding audio in sources and handing it to workers. Never imports torch or transformers."""
