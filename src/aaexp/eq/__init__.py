"""Semantic EQ morphing on SAFE-DB: descriptors to 5-band EQ settings through an autoencoder."""
