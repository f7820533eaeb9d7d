"""The public leaderboard: the ranking of the portfolios that opted in (``ranking``, pure),
the live board and its views (``board``, pure) and the service that keeps it live
(``service``, I/O)."""

from tickcast.leaderboard.ranking import (
    Changes,
    LeaderboardEntry,
    RankChange,
    RankedEntry,
    Ranking,
    sort_key,
)

__all__ = ["Changes", "LeaderboardEntry", "RankChange", "RankedEntry", "Ranking", "sort_key"]
