"""Planning: training costs, the compute-optimal frontier, serving-aware optima, decisions."""
