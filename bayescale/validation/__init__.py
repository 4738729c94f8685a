"""Validation of fits against data they did not see: leave-future-out backtests."""
