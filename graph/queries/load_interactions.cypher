// Purpose: the bulk load's interaction write (etl/load.py): as upsert_interactions.cypher (one INTERACTED per
//          (user, item), properties replaced, a reload changes nothing, not even interactionsRev), but grouped by
//          user, so each user is merged once per batch instead of once per row, and a user without any interaction
//          yet (every user of a first load) gets its relationships by CREATE: no existence check per relationship,
//          whose cost grows with the degrees of the user and the item. A user that has interactions merges them.
//          interactionsRev is bumped once per group that created or changed an interaction.
//          created counts the CREATEd interactions; changes the MERGEd ones that were created or given different
//          values (a created one always differs: every row has a weight), so the existing interactions that changed
//          are changes minus the MERGE's creations (the summary's relationships_created minus created).
//          polarity is stored only when negative (-1); kinds and kindCounts only when given. A group must not name
//          the same item twice, and a user must appear in one group per call (the loader groups its rows).
// Parameters: $groups: list of {user_id, rows: list of {item_id, rating, weight, timestamp, polarity, kinds,
//             kind_counts}}; items exist already (rows naming another item are not written), users are created on
//             first sight
// Returns: created, changes: summed over the groups (one row)
UNWIND $groups AS g
MERGE (u:User {userId: g.user_id})
WITH u, g, COUNT { (u)-[:INTERACTED]->() } = 0 AS fresh
CALL (u, g, fresh) {
  WITH u, g
  WHERE fresh
  UNWIND g.rows AS row
  MATCH (i:Item {itemId: row.item_id})
  CREATE (u)-[:INTERACTED {rating: row.rating, weight: row.weight, timestamp: row.timestamp,
                           polarity: CASE WHEN row.polarity < 0 THEN -1 END, kinds: row.kinds,
                           kindCounts: row.kind_counts}]->(i)
  RETURN count(*) AS created
}
CALL (u, g, fresh) {
  WITH u, g
  WHERE NOT fresh
  UNWIND g.rows AS row
  MATCH (i:Item {itemId: row.item_id})
  MERGE (u)-[r:INTERACTED]->(i)
  WITH r, row, CASE WHEN row.polarity < 0 THEN -1 END AS polarity
  WITH r, row, polarity,
       coalesce(r.rating <> row.rating, (r.rating IS NULL) <> (row.rating IS NULL))
         OR coalesce(r.weight <> row.weight, (r.weight IS NULL) <> (row.weight IS NULL))
         OR coalesce(r.timestamp <> row.timestamp, (r.timestamp IS NULL) <> (row.timestamp IS NULL))
         OR coalesce(r.polarity <> polarity, (r.polarity IS NULL) <> (polarity IS NULL))
         OR coalesce(r.kinds <> row.kinds, (r.kinds IS NULL) <> (row.kinds IS NULL))
         OR coalesce(r.kindCounts <> row.kind_counts, (r.kindCounts IS NULL) <> (row.kind_counts IS NULL)) AS changed
  SET r.rating = row.rating, r.weight = row.weight, r.timestamp = row.timestamp, r.polarity = polarity,
      r.kinds = row.kinds, r.kindCounts = row.kind_counts
  RETURN sum(CASE WHEN changed THEN 1 ELSE 0 END) AS changes
}
WITH u, created, changes
WHERE created + changes > 0
SET u.interactionsRev = coalesce(u.interactionsRev, 0) + 1
RETURN sum(created) AS created, sum(changes) AS changes
