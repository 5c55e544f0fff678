// Purpose: embedding recall: the items whose learned embeddings score highest with the user's, through the
//   vector index item_embedding (approximate nearest neighbours). Vectors are stored so that cosine order equals
//   the model's dot-product order (see graph/embeddings.py). Users without an embedding get nothing.
// Parameters: $userId: string; $k, $fetch: int ($fetch >= $k neighbours are read before filtering);
//             $excludeItems, $includeGenres, $excludeGenres: padded lists of strings (off when empty or led by '');
//             $yearMin, $yearMax: [int or null]
//             $now: [int or null] (epoch seconds; null = the server's clock): hidden items and items outside
//             their availability window (availableFrom <= now < availableUntil) are never returned
// Returns: item_id, title, score (cosine in [-1, 1]), paths ([{reason: 'taste_match', nodes: [], rels: []}]),
//          ordered by score desc, item_id asc
MATCH (u:User {userId: $userId})
WHERE u.embedding IS NOT NULL
CALL db.index.vector.queryNodes('item_embedding', $fetch, u.embedding) YIELD node AS rec, score
WHERE NOT EXISTS { (u)-[:INTERACTED]->(rec) }
  AND NOT rec.itemId IN $excludeItems
  AND (coalesce($includeGenres[0], '') = '' OR EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $includeGenres })
  AND (coalesce($excludeGenres[0], '') = '' OR NOT EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $excludeGenres })
  AND ($yearMin[0] IS NULL OR rec.year >= $yearMin[0])
  AND ($yearMax[0] IS NULL OR rec.year <= $yearMax[0])
  AND NOT coalesce(rec.hidden, false)
  AND (rec.availableFrom IS NULL OR rec.availableFrom <= coalesce($now[0], timestamp() / 1000))
  AND (rec.availableUntil IS NULL OR rec.availableUntil > coalesce($now[0], timestamp() / 1000))
RETURN rec.itemId AS item_id, rec.title AS title, score, [{reason: 'taste_match', nodes: [], rels: []}] AS paths
ORDER BY score DESC, item_id ASC
LIMIT $k
