"""Constructed corpora whose dependencies are known by construction (lookalike_corpus.py) and web pages
with known chrome (web_pages.py): what the benches and tests measure the method against. Not part of
the product package. Benches import them as `corpora.*` (bench/ is their path), tests as `bench.corpora.*`."""
