"""Datasets: the IDX reader, where files are found, checksums, and preprocessing.

The harness owns loading and preprocessing, so every framework gets the same arrays.
"""
