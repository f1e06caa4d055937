"""Benchmarks of RetroVue run against real parts (worker, Redis, FFmpeg); see docs/BENCHMARKS.md."""
