"""The CLAP model behind one interface: ``classifier`` (``Classifier``, the backend choice, the
per-process cache), its torch (``clap``) and ONNX Runtime (``onnx_towers``, exported by
``onnx_export``/``onnx_build`` into the folder ``onnx_layout`` describes) backends, which weights
a model name loads (``weights``), the numpy log-mel, the kept prompt embeddings, and what
scoring yields (``results``). Heavy imports (torch, transformers) happen only in the
modules that need them."""
