"""Training losses: ratio losses (ESR, ASR, ...), the NMR, the harmonic loss, and the weighted mix the trainer optimises."""
