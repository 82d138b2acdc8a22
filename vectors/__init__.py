"""Stored window vectors and what is computed from them without a recording: results scored
from stored embeddings (``stored``), relabeling a scope with a new taxonomy or a head
(``relabel``), search by text or by example (``search``) through the kept window index
(``window_index``, its segments ``index_segment``, the approximate ``approximate_index``)."""
