"""Machine-learned particle flow: tracks and calorimeter towers -> particle class and 4-momentum."""
