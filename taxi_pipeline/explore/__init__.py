"""What the notebooks show: a model's outputs found through ML Metadata, and
offline companions (pandas tables, matplotlib charts) for TFMA's and TFDV's views."""
