"""Physics helpers shared by tasks: kinematics (pt, eta, phi, delta phi, delta R) and jets."""
