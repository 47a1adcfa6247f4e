"""The simulated venue: NautilusTrader's exchange over real or synthetic books, plus IB FA behaviour."""
