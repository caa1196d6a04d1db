"""The plain helpers every layer may use: configs and their checks, errors, files, tables, progress, seeding, device."""
