// Purpose: batch ingestion: the interactions of several users, grouped by user, with a result per row. Rows
//          whose item does not exist are left out of the answer (the caller rejects them) and a user none of
//          whose rows names an existing item is not created. Otherwise as upsert_interactions.cypher: one
//          INTERACTED relationship per (user, item), properties replaced, users created on first sight; each
//          user's interactionsRev is bumped once if any of its rows created or changed an interaction, and an
//          identical row changes nothing. A group must not name the same item twice. Relationships are merged in
//          item id order, so concurrent batches that share items take their locks in the same order (fewer
//          deadlocks; the driver retries those that remain).
//          The row's polarity replaces the stored one (-1 stored for a negative row, unset for a positive one); kinds
//          and kindCounts (written by mapping loads) are left as they are.
// Parameters: $rows: list of {user_id, rows: list of {index, item_id, rating, weight, timestamp, polarity}}
// Returns: index (int, the row's index as given), status ("created", "updated" or "unchanged"),
//          created_user (boolean: the user did not exist before this statement), interactions and rev (ints: the
//          user's INTERACTED degree and interactionsRev once its rows are written, read in this transaction after the
//          user's lock was taken when a row created or changed an interaction, so that the writer knows the version
//          its write left: the API updates a history it holds to it, graph/reads.py HeldHistory)
UNWIND $rows AS batch
CALL (batch) {
  UNWIND batch.rows AS row
  MATCH (i:Item {itemId: row.item_id})
  RETURN collect({row: row, item: i}) AS known
}
WITH batch, known
WHERE size(known) > 0
OPTIONAL MATCH (existing:User {userId: batch.user_id})
WITH batch, known, existing IS NULL AS newUser
MERGE (u:User {userId: batch.user_id})
WITH u, known, newUser
UNWIND known AS entry
WITH u, newUser, entry.row AS row, entry.item AS i
ORDER BY row.item_id
OPTIONAL MATCH (u)-[old:INTERACTED]->(i)
WITH u, newUser, row, i, old, CASE WHEN row.polarity < 0 THEN -1 END AS polarity
WITH u, newUser, row, i, polarity, old IS NULL AS isNew,
     coalesce(old.rating <> row.rating, (old.rating IS NULL) <> (row.rating IS NULL))
       OR coalesce(old.weight <> row.weight, (old.weight IS NULL) <> (row.weight IS NULL))
       OR coalesce(old.timestamp <> row.timestamp, (old.timestamp IS NULL) <> (row.timestamp IS NULL))
       OR coalesce(old.polarity <> polarity, (old.polarity IS NULL) <> (polarity IS NULL)) AS differs
MERGE (u)-[r:INTERACTED]->(i)
SET r.rating = row.rating, r.weight = row.weight, r.timestamp = row.timestamp, r.polarity = polarity
WITH u, newUser,
     collect({index: row.index, status: CASE WHEN isNew THEN 'created' WHEN differs THEN 'updated'
                                              ELSE 'unchanged' END}) AS results,
     sum(CASE WHEN isNew OR differs THEN 1 ELSE 0 END) AS changes
FOREACH (_ IN CASE WHEN changes > 0 THEN [1] ELSE [] END | SET u.interactionsRev = coalesce(u.interactionsRev, 0) + 1)
WITH results, newUser, COUNT { (u)-[:INTERACTED]->() } AS interactions, coalesce(u.interactionsRev, 0) AS rev
UNWIND results AS result
RETURN result.index AS index, result.status AS status, newUser AS created_user, interactions, rev
