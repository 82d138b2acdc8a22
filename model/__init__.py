"""The CLAP model behind one interface: ``classifier`` (``Classifier``, the backend choice, the
per-process cache), its torch (``clap``) and ONNX Runtime (``onnx_towers``, exported by
``onnx_export``/``onnx_build``) backends, the numpy log-mel, the kept prompt embeddings, and
what scoring yields (``results``). Heavy imports (torch, transformers) happen only in the
modules that need them."""
