"""Reading runs: compare, published tables, curves, grids, plots, diagnosis, the report."""
