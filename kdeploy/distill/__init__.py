"""The distill stage: a small student learns from a teacher's softened outputs."""
