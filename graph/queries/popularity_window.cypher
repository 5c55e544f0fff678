// Purpose: the popularity window of recall_popularity.cypher, the same for every user: computed once and held by
//          graph/recall.py's PopularityWindow (refreshed every KGREC_POPULARITY_REFRESH_SECONDS in the API) instead of
//          once per popularity call.
//   pop(item) = Σ over the $window most recent timestamped positives (index-ordered scan of INTERACTED.timestamp;
//          positive = rating >= $minRating or no rating, and not negative: polarity -1) of
//          0.5^((now − timestamp) / $halfLifeDays days), now = the newest timestamp in the graph.
// Parameters: $window: int; $minRating, $halfLifeDays: float
// Returns: one row: recent (list of [item_id, pop] of every item with pop > 0, most popular first, then by item_id)
CALL () {
  MATCH ()-[r:INTERACTED]->()
  WHERE r.timestamp IS NOT NULL
  WITH r ORDER BY r.timestamp DESC
  LIMIT 1
  RETURN max(r.timestamp) AS now
}
CALL (now) {
  MATCH ()-[r:INTERACTED]->(i)
  WHERE r.timestamp IS NOT NULL
  WITH r, i ORDER BY r.timestamp DESC
  LIMIT $window
  WITH r, i
  WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0
  WITH i, sum(0.5 ^ (toFloat(now - r.timestamp) / ($halfLifeDays * 86400.0))) AS pop
  WHERE pop > 0
  WITH i.itemId AS id, pop
  ORDER BY pop DESC, id ASC
  RETURN collect([id, pop]) AS recent
}
RETURN recent
