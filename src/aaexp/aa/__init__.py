"""Anti-aliasing of neural amp models: instrument (tones, bandlimiting, losses, NMR), model I/O, training, evaluation."""
