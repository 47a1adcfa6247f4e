"""Venues the rebalance executor runs on: the simulated exchange and the IB FA adapter."""
