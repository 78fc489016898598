"""Real local peer servers for tests and benchmarks (npm packages installed by `make peers`)."""
