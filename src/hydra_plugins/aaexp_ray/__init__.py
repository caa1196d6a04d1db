"""`hydra/launcher=ray`: aaexp's Ray launcher (code in ray_launcher.py; config conf/hydra/launcher/ray.yaml)."""
