"""How well transship detects: the harness on seeded worlds (seeded.py), on folders of files with their
truth (folders.py), and the demo's verdict against its sample world (demo.py). The metrics themselves are
models/metrics.py."""
