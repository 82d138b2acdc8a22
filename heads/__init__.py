"""Heads: a logistic regression per label over a base model's stored window embeddings, learned
from the reviews. The head itself (``head``), what verdicts teach it (``targets``), fitting it
(``training``), ``soundtag train`` (``train``), finding a stored one by name (``stored``) and
its file for notebooks (``file_format``)."""
