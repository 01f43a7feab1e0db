"""Market data as the rest of the core sees it: raw and curated schemas, the trading calendar
and rebalance dates, curation (latest vintages, adjusted prices, point-in-time fundamentals),
pandera models of the curated tables, and cheap facts about frames (row order, columns)."""
