"""Event generation: Pythia 8, fast detector simulation, rule-based particle flow."""
