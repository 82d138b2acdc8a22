"""Where audio comes from: URIs (``uris``), the allow-lists (``access``), S3 (``s3``), Hugging Face
datasets (``hf_datasets``), opening a URI wherever it lives (``storage``), and listing the files of
one source or several, each source named by the URI its files begin with (``walk``)."""
