"""Authentication: find tokens, verify them against key sets, produce an Identity."""
