"""Reading estimators and runs: gradient diagnostics, run comparison, the lab."""
