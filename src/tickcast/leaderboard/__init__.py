"""The public leaderboard: portfolios that opted in, ranked by return (pure ranking core)."""

from tickcast.leaderboard.ranking import (
    Changes,
    LeaderboardEntry,
    RankChange,
    RankedEntry,
    Ranking,
    sort_key,
)

__all__ = ["Changes", "LeaderboardEntry", "RankChange", "RankedEntry", "Ranking", "sort_key"]
