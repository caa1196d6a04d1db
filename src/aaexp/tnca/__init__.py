"""Timbre NCA study: grow a mel spectrogram with a neural cellular automaton and vocode it."""
