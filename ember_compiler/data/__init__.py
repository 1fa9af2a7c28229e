"""Data shipped with Ember: the price table snapshot (see make_prices.py and LICENSE-litellm.txt)."""
