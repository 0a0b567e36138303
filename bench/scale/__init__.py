"""One module per bench_scale part; each exposes run(quick: bool) -> None and prints its own rows."""
