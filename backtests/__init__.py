"""Backtests of the rebalance executor in NautilusTrader's simulated exchange."""
