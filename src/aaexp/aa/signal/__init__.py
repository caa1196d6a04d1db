"""Signal tools: test tones, exact bandlimiting, FIR pre-emphasis filters, PEAQ tables."""
