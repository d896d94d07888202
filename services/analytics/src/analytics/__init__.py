"""Analytics facts and rollups; publishes the public analytics topic."""
