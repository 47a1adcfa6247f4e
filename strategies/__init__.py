"""The rebalance executor: plan, money math and the NautilusTrader strategy that runs it."""
