"""Simulated sensors of the city: homes, road segments, flood sites and weather."""
