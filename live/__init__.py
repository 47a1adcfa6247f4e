"""Paper and live trading nodes for the rebalance executor."""
