"""Where audio comes from: URIs (``uris``), the allow-lists (``access``), S3 (``s3``), Hugging Face
datasets (``hf_datasets``), and opening a URI wherever it lives (``storage``). Walking a source to
list its files is the producer's (``soundtag.sources.walk``)."""
