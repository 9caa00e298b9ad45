"""Deployments of the flows (schedules and per-schedule parameters) and the demo data simulator."""
