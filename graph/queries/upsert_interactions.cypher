// Purpose: one INTERACTED relationship per (user, item); properties replaced, so a reload is a no-op.
//          A row that creates or changes an interaction bumps the user's interactionsRev, which (with the
//          user's INTERACTED degree) is the cheap fingerprint the API keys its answer cache on; an identical
//          row changes nothing, not even the counter (a new relationship is seen by the degree anyway).
//          polarity is stored only when negative (-1; unset = positive, as on graphs loaded before it existed);
//          kinds and kindCounts (the interaction kinds combined into the pair and their counts) only when given.
// Parameters: $rows: list of {user_id, item_id, rating, weight, timestamp, polarity, kinds, kind_counts}; items
//             exist already, users are created on first sight (so interactions can be written while users are still
//             being read)
// Returns: nothing
UNWIND $rows AS row
MERGE (u:User {userId: row.user_id})
WITH u, row
MATCH (i:Item {itemId: row.item_id})
MERGE (u)-[r:INTERACTED]->(i)
WITH u, r, row, CASE WHEN row.polarity < 0 THEN -1 END AS polarity
WITH u, r, row, polarity,
     coalesce(r.rating <> row.rating, (r.rating IS NULL) <> (row.rating IS NULL))
       OR coalesce(r.weight <> row.weight, (r.weight IS NULL) <> (row.weight IS NULL))
       OR coalesce(r.timestamp <> row.timestamp, (r.timestamp IS NULL) <> (row.timestamp IS NULL))
       OR coalesce(r.polarity <> polarity, (r.polarity IS NULL) <> (polarity IS NULL))
       OR coalesce(r.kinds <> row.kinds, (r.kinds IS NULL) <> (row.kinds IS NULL))
       OR coalesce(r.kindCounts <> row.kind_counts, (r.kindCounts IS NULL) <> (row.kind_counts IS NULL)) AS changed
SET r.rating = row.rating, r.weight = row.weight, r.timestamp = row.timestamp, r.polarity = polarity,
    r.kinds = row.kinds, r.kindCounts = row.kind_counts
FOREACH (_ IN CASE WHEN changed THEN [1] ELSE [] END | SET u.interactionsRev = coalesce(u.interactionsRev, 0) + 1)
