"""Artifacts on disk, verified before use: the manifest's schema, the bundle loader, safe Keras loading
and run folders."""
