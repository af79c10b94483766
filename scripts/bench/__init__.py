"""`python -m scripts.bench`: the pipeline against its physical limit and the seed's design."""
