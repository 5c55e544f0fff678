// Purpose: prune recorded lists: delete at most $limit (:Recommendation) nodes shown before $before (through the
//          recommendation_shown_at index). The lists' exposure stays: SHOWN counts, listsShown and the items'
//          impressions are aggregates kept as they are; attribution and the variant report no longer see the lists.
// Parameters: $before: epoch seconds; $limit: int
// Returns: deleted (int)
MATCH (r:Recommendation)
WHERE r.shownAt < $before
WITH r
LIMIT $limit
DELETE r
RETURN count(*) AS deleted
