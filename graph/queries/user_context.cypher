// Purpose: everything the API needs about a user before ranking, in one round trip: their interactions, the
//          genres they prefer (onboarding), their attributes, interactionsRev, and their exposure (the items recorded
//          lists showed them, for fatigue and rotation), so that the interaction fingerprint (user_fingerprint.cypher:
//          the INTERACTED degree, rev, the PREFERS degree, listsShown) follows from the same read and a request that
//          cannot be a cache hit needs no separate fingerprint query. No row when the user does not exist.
// Parameters: $userId: string; $held: [interactions, rev] of a history the caller holds (the INTERACTED degree and
//             interactionsRev it was read at), or [-1, -1] when it holds none (never null, a parameter type of its own:
//             graph/query.py): while both are unchanged the interactions are not read again (their lists come back
//             empty), so that a user who comes back costs an index seek and a few property reads however long their
//             history
// Returns: item_ids, ratings, weights, timestamps, polarities: the interactions as parallel lists, one per field (a heavy
//          user's thousands decode as five lists, not a list each), in no particular order (graph/reads.py puts them
//          most recent first — without timestamp last — then by item id: a sort here cost Neo4j more than the rest
//          of the read for a heavy user); a rating, weight or timestamp may be null (kept in place: the lists are
//          built from the relationships, not by collect(), which drops nulls); polarity 1, or -1 for a negative one;
//          preferred_genres (names, sorted), attributes (attributeIds "<kind>:<value>", sorted; the blend's peers
//          feature), rev (int; 0 when never bumped), shown_items, shown_counts, shown_lists (the user's exposure arrays,
//          record_impressions.cypher: the items recorded lists showed, times shown, the user's list number when last
//          shown; empty when none; interacted with or not: graph/reads.py leaves out the interacted ones, which it
//          has, since a check per shown item here costs a walk of the user's interactions each), lists_shown (int:
//          lists recorded; 0 when none), follows (int: the user's FOLLOWS degree; graph/explain.py needs no query when
//          every neighbourhood it needs is held, the user's followees among them while this is the degree they were
//          read at), interactions (int: the INTERACTED
//          degree, read once with rev before the interactions, so that the caller knows whether they were read)
MATCH (u:User {userId: $userId})
WITH u, COUNT { (u)-[:INTERACTED]->() } AS interactions, coalesce(u.interactionsRev, 0) AS rev
CALL (u, interactions, rev) {
  WITH u, interactions, rev WHERE [interactions, rev] <> $held
  MATCH (u)-[r:INTERACTED]->(i)
  RETURN collect(i.itemId) AS item_ids, collect(r) AS rels
}
RETURN item_ids,
       [r IN rels | r.rating] AS ratings,
       [r IN rels | r.weight] AS weights,
       [r IN rels | r.timestamp] AS timestamps,
       [r IN rels | coalesce(r.polarity, 1)] AS polarities,
       COLLECT { MATCH (u)-[:PREFERS]->(g:Genre) RETURN g.name AS name ORDER BY name } AS preferred_genres,
       COLLECT { MATCH (u)-[:HAS_ATTRIBUTE]->(a:Attribute) RETURN a.attributeId AS id ORDER BY id } AS attributes,
       interactions, rev,
       coalesce(u.shownItems, []) AS shown_items, coalesce(u.shownCounts, []) AS shown_counts,
       coalesce(u.shownLists, []) AS shown_lists,
       coalesce(u.listsShown, 0) AS lists_shown,
       COUNT { (u)-[:FOLLOWS]->() } AS follows
