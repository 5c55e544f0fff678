// Purpose: convert the exposure of a graph recorded before the exposure arrays, (:User)-[:SHOWN {count, lastShown,
//          lastList}]->(:Item) relationships, into the user's arrays (shownItems, shownCounts, shownTimes, shownLists;
//          record_impressions.cypher), $limit users per transaction, deleting the SHOWN it converts: run in batches
//          until none is left (graph.writers.convert_shown). An item already in the arrays keeps its place there,
//          its SHOWN count added; the others go first, from the least to the most recently shown; then the arrays
//          are bounded to the $maxShown most recent items. The user's listsShown is written first (to itself), which
//          takes the user's lock before the arrays are read (a recorder writing meanwhile waits).
// Parameters: $limit: int (users per transaction), $maxShown: int
// Returns: users (int: users converted), converted (int: SHOWN deleted)
MATCH (u:User)-[:SHOWN]->()
WITH DISTINCT u
LIMIT $limit
CALL (u) {
  SET u.listsShown = coalesce(u.listsShown, 0)
  WITH u, coalesce(u.shownItems, []) AS ids, coalesce(u.shownCounts, []) AS counts,
       coalesce(u.shownTimes, []) AS times, coalesce(u.shownLists, []) AS lists
  MATCH (u)-[s:SHOWN]->(i:Item)
  WITH u, ids, counts, times, lists, s, i
  ORDER BY coalesce(s.lastShown, 0), coalesce(s.lastList, 0), i.itemId
  WITH u, ids, counts, times, lists, collect(s) AS rels,
       collect([i.itemId, coalesce(s.count, 0), coalesce(s.lastShown, 0), coalesce(s.lastList, 0)]) AS old
  WITH u, rels,
       [e IN old WHERE NOT e[0] IN ids] +
       [k IN range(0, size(ids) - 1) |
         [ids[k], counts[k] + reduce(c = 0, e IN old | CASE WHEN e[0] = ids[k] THEN e[1] ELSE c END), times[k],
          lists[k]]] AS merged
  WITH u, rels, CASE WHEN size(merged) > $maxShown THEN merged[size(merged) - $maxShown..] ELSE merged END AS kept
  SET u.shownItems = [e IN kept | e[0]], u.shownCounts = [e IN kept | e[1]], u.shownTimes = [e IN kept | e[2]],
      u.shownLists = [e IN kept | e[3]]
  FOREACH (s IN rels | DELETE s)
  RETURN size(rels) AS converted
}
RETURN count(*) AS users, coalesce(sum(converted), 0) AS converted
