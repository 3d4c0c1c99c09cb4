"""Simulated worlds, written as the files the real sources publish, with their truth apart: the bundled
sample world (sample.py; national.py: the same world in the national formats), the harness's random
worlds (stories.py: random_stories) and the universe-sized worlds of the scale benchmark (scale.py)."""
