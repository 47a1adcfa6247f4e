"""Interactive Brokers Financial Advisor adapter on ib_async."""
